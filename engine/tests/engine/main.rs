//! Behaviour of the engine through its public API: one test binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The backend these tests run on (`engine_on_cluster` runs them again on a cluster).
const BACKEND: helpers::Backend = helpers::Backend::Sled;

#[path = "../support/cluster.rs"]
#[allow(dead_code)] // Only the cluster suite starts one.
mod cluster_fixture;

mod account_recovery;
mod accounts;
mod audit;
mod backup;
mod clients;
mod codes;
mod compat;
mod concurrency;
mod contacts;
mod destinations;
mod helpers;
mod idempotency;
mod lifecycle;
mod lockout;
mod model;
mod notices;
mod outbox;
mod parsers;
mod recovery;
mod signatures;
mod test_clients;
