//! Settings of the HTTP server and the embedded store.

use engine::StoreConfig;
use serde::{Deserialize, Serialize};

use super::tls::TlsConfig;

/// The embedded store (under `<data_dir>/store`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// sled's page cache in MiB (the engine keeps its state in memory besides).
    pub cache_mb: u64,
    /// Free space the data directory's file system must keep, in MiB. Below
    /// it writes are refused with 503 and `/readyz` is not ready, until space
    /// returns. 0 turns the check off.
    pub min_free_mb: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let store = StoreConfig::default();
        Self {
            cache_mb: store.cache_bytes >> 20,
            min_free_mb: store.min_free_bytes >> 20,
        }
    }
}

/// HTTP server limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Open connections at most; further ones wait to be accepted.
    pub max_connections: u32,
    /// Time allowed to send the request headers.
    pub header_read_timeout_ms: u64,
    /// Time allowed for a whole request; past it the answer is 503.
    pub request_timeout_ms: u64,
    /// Time allowed to send the request body once the headers are in;
    /// past it the answer is 408 and nothing is done.
    pub body_read_timeout_ms: u64,
    /// Largest request body.
    pub body_limit_bytes: u32,
    /// Largest body of a bulk import.
    pub import_body_limit_bytes: u32,
    /// On SIGTERM/SIGINT, time allowed for requests in flight to finish.
    pub shutdown_grace_ms: u64,
    /// Argon2 computations at once (0: one per CPU).
    pub argon2_workers: u32,
    /// Niceness added to the Argon2 threads (0-19; 0: none), so verifies
    /// and step-ups keep their latency while logins use the idle CPU.
    pub argon2_nice: i32,
    /// How often expired challenges are swept.
    pub sweep_interval_ms: u64,
    /// TLS and mutual TLS on the listeners (off: plain HTTP).
    pub tls: TlsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            body_read_timeout_ms: 5_000,
            body_limit_bytes: 16 * 1024,
            import_body_limit_bytes: 8 * 1024 * 1024,
            shutdown_grace_ms: 10_000,
            argon2_workers: 0,
            argon2_nice: 5,
            sweep_interval_ms: 60_000,
            tls: TlsConfig::default(),
        }
    }
}
