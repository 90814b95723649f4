//! The end-to-end suite's files (`tests/api`) run again with every server's
//! accounts and codes on a Redis Cluster (3 masters, 3 replicas on
//! loopback, one for this process, stopped when it ends; a namespace per
//! server). Files about the embedded store alone are left out (see below).

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Where these servers keep accounts and codes.
const BACKEND: otpd::config::Backend = otpd::config::Backend::RedisCluster;

#[path = "../../engine/tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster_fixture;

#[path = "../api/accounts.rs"]
mod accounts;
#[path = "../api/admin.rs"]
mod admin;
#[path = "../api/arbitrary_input.rs"]
mod arbitrary_input;
#[path = "../api/attacks.rs"]
mod attacks;
#[path = "../api/audit.rs"]
mod audit;
#[path = "../api/audit_feed.rs"]
mod audit_feed;
#[path = "../api/bad_input.rs"]
mod bad_input;
#[path = "../api/clients.rs"]
mod clients;
#[path = "../api/contacts.rs"]
mod contacts;
#[path = "../api/delivery.rs"]
mod delivery;
#[path = "../api/deploy.rs"]
mod deploy;
#[path = "../api/destinations.rs"]
mod destinations;
#[path = "../api/faults.rs"]
mod faults;
#[path = "../api/helpers/mod.rs"]
mod helpers;
#[path = "../api/idempotency.rs"]
mod idempotency;
#[path = "../api/listeners.rs"]
mod listeners;
#[path = "../api/login.rs"]
mod login;
#[path = "../api/notices.rs"]
mod notices;
#[path = "../api/openapi_client.rs"]
mod openapi_client;
#[path = "../api/operations.rs"]
mod operations;
#[path = "../api/peers.rs"]
mod peers;
#[path = "../api/recovery.rs"]
mod recovery;
#[path = "../api/server.rs"]
mod server;
#[path = "../api/signatures.rs"]
mod signatures;
#[path = "../api/tenants.rs"]
mod tenants;
#[path = "../api/test_mode.rs"]
mod test_mode;
#[path = "../api/tls.rs"]
mod tls;
#[path = "../api/twilio/mod.rs"]
mod twilio;
