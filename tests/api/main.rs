//! End-to-end tests: a real otpd on loopback, driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Where these servers keep accounts and codes (`api_on_cluster` runs
/// these files again on a Redis Cluster).
const BACKEND: otpd::config::Backend = otpd::config::Backend::Sled;

#[path = "../../engine/tests/support/cluster.rs"]
#[allow(dead_code)] // Only the cluster suite starts one.
mod cluster_fixture;

mod accounts;
mod admin;
mod arbitrary_input;
mod attacks;
mod audit;
mod audit_feed;
mod bad_input;
mod clients;
mod contacts;
mod delivery;
mod deploy;
mod destinations;
mod faults;
mod helpers;
mod idempotency;
mod listeners;
mod login;
mod notices;
mod openapi_client;
mod operations;
mod peers;
mod recovery;
mod server;
mod signatures;
mod tenants;
mod test_mode;
mod tls;
mod twilio;
