//! Settings of the HTTP server and the embedded store.

use engine::StoreConfig;
use engine::cluster::ClusterConfig;
use serde::{Deserialize, Serialize};

use super::tls::TlsConfig;

/// Where accounts and codes live: the embedded store (under
/// `<data_dir>/store`), or a Redis Cluster with the embedded store beside it
/// for what each node keeps (its audit chain, clients, idempotency keys,
/// send queue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Where accounts and codes live: `sled` (embedded, in the data
    /// directory) or `redis-cluster` (shared by every otpd node; `store.redis`).
    pub backend: Backend,
    /// sled's page cache in MiB (the engine keeps its state in memory besides).
    pub cache_mb: u64,
    /// Free space the data directory's file system must keep, in MiB. Below
    /// it writes are refused with 503 and `/readyz` is not ready, until space
    /// returns. 0 turns the check off.
    pub min_free_mb: u64,
    /// The Redis Cluster of `backend = "redis-cluster"`.
    pub redis: RedisSettings,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let store = StoreConfig::default();
        Self {
            backend: Backend::Sled,
            cache_mb: store.cache_bytes >> 20,
            min_free_mb: store.min_free_bytes >> 20,
            redis: RedisSettings::default(),
        }
    }
}

/// Where accounts and codes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The embedded store (sled) in the data directory.
    Sled,
    /// A Redis Cluster (or Valkey cluster) shared by every otpd node.
    RedisCluster,
}

/// How to reach the cluster (docs/OPERATIONS.md, "A Redis Cluster").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// Seed nodes: `host:port`, `redis://host:port` or `rediss://host:port` (TLS).
    pub nodes: Vec<String>,
    /// The ACL user otpd logs in as (empty: the default user).
    pub username: String,
    /// Its password: `env:NAME`, `file:/path`, or the value itself (empty: none).
    pub password: String,
    /// PEM file of the CA that signed the nodes' certificates (TLS; empty: the system's roots).
    pub ca_file: String,
    /// Replicas that must confirm each write (`WAIT`) before it is acknowledged.
    pub replicas: u32,
    /// How long the `WAIT` may take, in ms (below `timeout_ms`).
    pub wait_timeout_ms: u64,
    /// How long one operation on the cluster may take, in ms, before it
    /// answers 503 storage_unavailable.
    pub timeout_ms: u64,
    /// How long a claim on a phone, email or identity lives while a
    /// registration or contact change is under way, in ms.
    pub reservation_ttl_ms: u64,
    /// Put in every key, so deployments sharing one cluster never meet
    /// (a-z, 0-9, - and _; empty: none).
    pub namespace: String,
    /// How long a node trusts its copy of the client registry, in ms: a
    /// client added, changed or revoked on one node reaches the others
    /// within this.
    pub client_refresh_ms: u64,
    /// How far the cluster's clock (`TIME`) may be from this node's, in ms,
    /// before `/readyz` says not ready: expiry and lock times are this
    /// node's clock, so nodes must agree.
    pub max_clock_skew_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        let c = ClusterConfig::default();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            nodes: Vec::new(),
            username: String::new(),
            password: String::new(),
            ca_file: String::new(),
            replicas: c.replicas,
            wait_timeout_ms: ms(c.wait_timeout),
            timeout_ms: ms(c.timeout),
            reservation_ttl_ms: ms(c.reservation_ttl),
            namespace: String::new(),
            client_refresh_ms: ms(c.client_refresh),
            max_clock_skew_ms: 1000,
        }
    }
}

impl RedisSettings {
    /// The engine's settings, with the password read (`env:`/`file:`).
    pub fn cluster_config(&self) -> Result<ClusterConfig, String> {
        let password = if self.password.is_empty() {
            None
        } else {
            Some(
                crate::secret_ref::resolve_secret(&self.password)
                    .map_err(|e| format!("store.redis.password: {e}"))?,
            )
        };
        let config = ClusterConfig {
            nodes: self.nodes.clone(),
            username: (!self.username.is_empty()).then(|| self.username.clone()),
            password,
            ca_file: (!self.ca_file.is_empty()).then(|| self.ca_file.clone().into()),
            replicas: self.replicas,
            wait_timeout: std::time::Duration::from_millis(self.wait_timeout_ms),
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            reservation_ttl: std::time::Duration::from_millis(self.reservation_ttl_ms),
            namespace: self.namespace.clone(),
            client_refresh: std::time::Duration::from_millis(self.client_refresh_ms),
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// The clock skew `/readyz` allows.
    pub fn max_clock_skew(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.max_clock_skew_ms)
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
