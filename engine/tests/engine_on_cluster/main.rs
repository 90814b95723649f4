//! The engine's behaviour tests again, on the cluster backend: the same
//! files as `tests/engine`, with every engine they make on a Redis Cluster
//! (3 masters, 3 replicas on loopback, started for this process and
//! stopped when it ends). Files about the embedded store alone (its
//! backups, its on-disk compatibility, its recovery after a crash) are
//! not here; neither are those about what a cluster node does not keep
//! yet (docs/ARCHITECTURE.md, "Cluster backend").

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The backend these tests run on.
const BACKEND: helpers::Backend = helpers::Backend::Cluster;

#[path = "../support/cluster.rs"]
#[allow(dead_code)]
mod cluster_fixture;

#[path = "../engine/account_recovery.rs"]
mod account_recovery;
#[path = "../engine/accounts.rs"]
mod accounts;
#[path = "../engine/audit.rs"]
mod audit;
#[path = "../engine/clients.rs"]
mod clients;
#[path = "../engine/codes.rs"]
mod codes;
#[path = "../engine/concurrency.rs"]
mod concurrency;
#[path = "../engine/contacts.rs"]
mod contacts;
#[path = "../engine/destinations.rs"]
mod destinations;
mod failover;
#[path = "../engine/helpers.rs"]
mod helpers;
#[path = "../engine/idempotency.rs"]
mod idempotency;
#[path = "../engine/lifecycle.rs"]
mod lifecycle;
#[path = "../engine/lockout.rs"]
mod lockout;
mod migrate;
#[path = "../engine/model.rs"]
mod model;
#[path = "../engine/notices.rs"]
mod notices;
#[path = "../engine/outbox.rs"]
mod outbox;
mod resharding;
mod send_queue;
#[path = "../engine/signatures.rs"]
mod signatures;
#[path = "../engine/test_clients.rs"]
mod test_clients;
mod two_nodes;
