//! The cluster backend's primitives against a real Redis Cluster (3 masters,
//! 3 replicas on loopback, started by the tests): per-account compare-and-set
//! through two nodes, the index's reservations, expiry, durability and the
//! health checks `/readyz` uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod failover;
#[path = "../support/cluster.rs"]
#[allow(dead_code)] // Shared with the engine suite on a cluster.
mod fixture;
mod health;
mod index;
mod slot;

use engine::AccountId;

/// A fresh random account id.
pub fn account_id() -> AccountId {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    AccountId::parse("id", &hex::encode(bytes)).unwrap()
}

/// A fresh random phone number's index key.
pub fn phone_key() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    engine::cluster::keys::index(&format!(
        "phone:+3519{:08}",
        u32::from_le_bytes(bytes) % 100_000_000
    ))
}
