//! Shared state on a Redis Cluster (or Valkey): the primitives otpd's
//! cluster backend is built on, so that any number of otpd nodes can serve
//! one population with the embedded store's guarantees.
//!
//! - [`slot`]: everything one account owns lives under one hash tag, in one
//!   slot; a change is read, computed in Rust, and written back with a
//!   compare-and-set on the account's version, in one Lua script.
//! - [`index`]: phone, email and identity → account live in other slots;
//!   claims on them go through a reservation (a pending marker that
//!   expires), so two live accounts never hold one value, even when a node
//!   dies between steps.
//! - [`rate`]: rate limits and SMS tallies every node shares (GCRA buckets
//!   checked and spent in one script each).
//! - [`due`]: the send queue's due indexes, from which every node claims
//!   the messages due now under a lease.
//! - [`health`]: what `/readyz` asks (the cluster up, every slot served,
//!   persistence as otpd needs it, clocks close enough).
//!
//! Every acknowledged write has been applied by a master running with
//! `appendfsync always` and, by default, confirmed by `WAIT` on at least one
//! replica (docs/ARCHITECTURE.md, "Cluster backend", says what that does
//! and does not promise). Routing, `MOVED`/`ASK` and reconnection are the
//! `redis` crate's async cluster client's.

pub mod due;
pub mod health;
pub mod idempotency;
pub mod index;
pub mod keys;
pub mod rate;
pub mod scan;
pub mod slot;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};

use crate::error::{EngineError, Result};

/// How to reach the cluster and what an acknowledgement waits for.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Seed nodes: `redis://host:port` (or `rediss://` for TLS), or bare
    /// `host:port`. Any reachable one is enough; the rest are discovered.
    pub nodes: Vec<String>,
    /// The ACL user otpd logs in as (`None`: the default user).
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// PEM file of the CA that signed the nodes' certificates (TLS only;
    /// `None`: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Replicas that must confirm a write (`WAIT`) before it is
    /// acknowledged; 0 acknowledges on the master's `appendfsync always`.
    pub replicas: u32,
    /// How long `WAIT` may take before the write is reported not stored.
    pub wait_timeout: Duration,
    /// How long one command may take, including redirections and retries,
    /// before the operation fails as storage unavailable.
    pub timeout: Duration,
    /// How long a claim on a phone, email or identity lives while its
    /// registration (or contact change) is under way. A node that dies
    /// mid-way blocks that value for at most this long.
    pub reservation_ttl: Duration,
    /// Put in every key (`keys::KeySpace`): deployments sharing one
    /// cluster never see each other's records. Empty: none.
    pub namespace: String,
    /// How long a node answers from its copy of the client registry before
    /// reading it again: a client added, changed or revoked on one node
    /// reaches every other within this.
    pub client_refresh: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            username: None,
            password: None,
            ca_file: None,
            replicas: 1,
            wait_timeout: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            reservation_ttl: Duration::from_secs(10),
            namespace: String::new(),
            client_refresh: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .map(|n| redact_userinfo(n))
                    .collect::<Vec<_>>(),
            )
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("replicas", &self.replicas)
            .field("wait_timeout", &self.wait_timeout)
            .field("timeout", &self.timeout)
            .field("reservation_ttl", &self.reservation_ttl)
            .field("namespace", &self.namespace)
            .field("client_refresh", &self.client_refresh)
            .finish()
    }
}

impl ClusterConfig {
    /// Checks the settings make sense, naming the one that does not.
    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(EngineError::invalid(
                "store.redis.nodes",
                "needs at least one node (host:port or redis://host:port)",
            ));
        }
        for node in &self.nodes {
            node_url(node)?;
        }
        let tls = self
            .nodes
            .iter()
            .filter(|n| n.starts_with("rediss://"))
            .count();
        if tls != 0 && tls != self.nodes.len() {
            return Err(EngineError::invalid(
                "store.redis.nodes",
                "mixes rediss:// (TLS) and plain nodes: a cluster is all one or the other",
            ));
        }
        if self.ca_file.is_some() && tls == 0 {
            return Err(EngineError::invalid(
                "store.redis.ca_file",
                "is only used with TLS (rediss://) nodes",
            ));
        }
        if self.timeout.is_zero() || self.wait_timeout.is_zero() {
            return Err(EngineError::invalid(
                "store.redis.timeout",
                "timeouts must be above zero",
            ));
        }
        if self.wait_timeout >= self.timeout {
            return Err(EngineError::invalid(
                "store.redis.wait_timeout",
                "must be shorter than store.redis.timeout, which includes the WAIT",
            ));
        }
        let namespace_ok = self.namespace.len() <= 32
            && self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !namespace_ok {
            return Err(EngineError::invalid(
                "store.redis.namespace",
                "must be at most 32 characters of a-z, 0-9, - and _",
            ));
        }
        if self.reservation_ttl < Duration::from_secs(1) {
            return Err(EngineError::invalid(
                "store.redis.reservation_ttl",
                "must be at least 1 second: a registration must finish within it",
            ));
        }
        Ok(())
    }
}

/// A node address without a `user:password@` part, for printing.
fn redact_userinfo(node: &str) -> String {
    match (node.find("://"), node.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}<redacted>@{}", &node[..scheme + 3], &node[at + 1..])
        }
        _ => node.to_string(),
    }
}

/// A node's address as a URL the client takes.
fn node_url(node: &str) -> Result<String> {
    let url = if node.contains("://") {
        node.to_string()
    } else {
        format!("redis://{node}")
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(EngineError::invalid(
            "store.redis.nodes",
            format!("{node:?} is not host:port, redis://host:port or rediss://host:port"),
        ));
    }
    redis::parse_redis_url(&url).ok_or_else(|| {
        EngineError::invalid(
            "store.redis.nodes",
            format!("{node:?} is not a valid address"),
        )
    })?;
    Ok(url)
}

/// What a node's cluster client has met since start (`/metrics` shows it
/// as cluster health).
#[derive(Debug, Default)]
pub struct Counters {
    /// Operations that failed because the cluster did not answer, or
    /// answered with an error (each answered 503).
    pub errors: AtomicU64,
    /// Compare-and-set conflicts: another node changed the account first,
    /// and the change was computed again.
    pub cas_retries: AtomicU64,
    /// Writes the master applied that too few replicas confirmed in time
    /// (`WAIT`): not acknowledged.
    pub wait_timeouts: AtomicU64,
    /// Rate-limit checks the cluster did not answer (each refused its
    /// request: limits fail closed).
    pub limits_unanswered: AtomicU64,
    /// SMS tally counts lost (the pumping alarm saw one send or
    /// verification fewer).
    pub tallies_lost: AtomicU64,
    /// Messages this node claimed from the send queue's due indexes.
    pub outbox_claimed: AtomicU64,
    /// Of those, messages whose lease had run out: the node holding it
    /// (or the node that queued it) did not report on it in time.
    pub outbox_leases_expired: AtomicU64,
    /// Messages this node sent as the node that queued them (no claim).
    pub outbox_handed_off: AtomicU64,
}

/// A connection to the cluster, shared by every task of a node: cloning it
/// is cheap (multiplexed connections per cluster node underneath: one for
/// reads, one for writes and their `WAIT`, so a `WAIT` that blocks its
/// connection never holds up a read).
#[derive(Clone)]
pub struct Cluster {
    conn: ClusterConnection,
    writes: ClusterConnection,
    config: ClusterConfig,
    keys: keys::KeySpace,
    counters: std::sync::Arc<Counters>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to the cluster `config` names (discovering its slots from
    /// the seed nodes). Fails as [`EngineError::Storage`] when none answers.
    pub async fn connect(config: ClusterConfig) -> Result<Cluster> {
        config.validate()?;
        let urls = config
            .nodes
            .iter()
            .map(|n| node_url(n))
            .collect::<Result<Vec<_>>>()?;
        let tls = urls.iter().any(|u| u.starts_with("rediss://"));
        let mut builder = ClusterClientBuilder::new(urls)
            .connection_timeout(config.timeout)
            .response_timeout(config.timeout)
            .overall_response_timeout(Some(config.timeout))
            .retries(3)
            .max_retry_wait(100)
            .min_retry_wait(10);
        if let Some(user) = &config.username {
            builder = builder.username(user);
        }
        if let Some(password) = &config.password {
            builder = builder.password(password);
        }
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                EngineError::invalid("store.redis.ca_file", format!("{}: {e}", ca.display()))
            })?;
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            });
        }
        if tls {
            // The client builds its TLS configuration from the process's
            // rustls provider: ring, as everywhere in otpd (there is no other
            // provider compiled in; one installed already stays).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = builder
            .build()
            .map_err(|e| EngineError::invalid("store.redis.nodes", e.to_string()))?;
        let conn = Self::open_connection(&client, config.timeout).await?;
        let writes = Self::open_connection(&client, config.timeout).await?;
        Ok(Cluster {
            conn,
            writes,
            keys: keys::KeySpace::new(&config.namespace),
            config,
            counters: std::sync::Arc::default(),
        })
    }

    async fn open_connection(
        client: &redis::cluster::ClusterClient,
        timeout: Duration,
    ) -> Result<ClusterConnection> {
        match tokio::time::timeout(timeout, client.get_async_connection()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(unavailable("connecting to the cluster", &e)),
            Err(_) => Err(EngineError::Storage(format!(
                "connecting to the cluster: no answer within {timeout:?}"
            ))),
        }
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Where its records live (its namespace's keys).
    pub fn keys(&self) -> &keys::KeySpace {
        &self.keys
    }

    /// What this client has met since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn conn(&self) -> ClusterConnection {
        self.conn.clone()
    }

    /// Runs `script` (an `EVAL` on the keys of one slot, the first of them
    /// `key`) on the master serving `key` and, in the same pipeline on the
    /// same connection, `WAIT`s for `self.config.replicas` replicas: the
    /// write is acknowledged only when they confirm it. Scripts that write
    /// must be safe to run twice (the client retries a pipeline whose
    /// connection dropped): the compare-and-set carries a token for that,
    /// the index scripts are idempotent by their claimant.
    pub(crate) async fn write(&self, script: redis::Cmd, key: &str) -> Result<redis::Value> {
        let wanted = self.config.replicas;
        let mut pipe = redis::pipe();
        pipe.add_command(script);
        if wanted > 0 {
            let timeout = u64::try_from(self.config.wait_timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            pipe.cmd("WAIT").arg(wanted).arg(timeout);
        }
        let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
        let count = if wanted > 0 { 2 } else { 1 };
        let mut values = self
            .writes
            .clone()
            .route_pipeline(pipe, 0, count, route)
            .await
            .map_err(|e| not_stored("writing", &e))?;
        if values.len() != count {
            return Err(EngineError::NotStored(format!(
                "the write's pipeline answered {} values, not {count}",
                values.len()
            )));
        }
        if wanted > 0 {
            let confirmed: u32 = redis::from_redis_value(values.pop().unwrap_or(redis::Value::Nil))
                .map_err(|e| EngineError::NotStored(format!("WAIT answered {e}")))?;
            if confirmed < wanted {
                self.counters.wait_timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(EngineError::NotStored(format!(
                    "{confirmed} of the {wanted} replicas required confirmed the write within \
                     {} ms (WAIT); it is not acknowledged",
                    self.config.wait_timeout.as_millis()
                )));
            }
        }
        let answer = values.pop().unwrap_or(redis::Value::Nil);
        if let redis::Value::ServerError(e) = &answer {
            return Err(EngineError::NotStored(format!(
                "redis cluster, writing: {} {}",
                e.code(),
                e.details().unwrap_or_default()
            )));
        }
        Ok(answer)
    }
}

/// An `EVAL` of `script` on `keys` with `args`.
pub(crate) fn eval(script: &str, keys: &[&str], args: Vec<Vec<u8>>) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    for arg in args {
        cmd.arg(arg);
    }
    cmd
}

/// A failure before anything could have been written: nothing changed.
pub(crate) fn unavailable(doing: &str, e: &redis::RedisError) -> EngineError {
    EngineError::Storage(format!("redis cluster, {doing}: {e}"))
}

/// A failure of a write: not acknowledged, and not promised undone. Even a
/// refusal may follow an attempt that ran (the client retries a dropped
/// connection), so no write error says "nothing changed".
pub(crate) fn not_stored(doing: &str, e: &redis::RedisError) -> EngineError {
    EngineError::NotStored(format!("redis cluster, {doing}: {e}"))
}
