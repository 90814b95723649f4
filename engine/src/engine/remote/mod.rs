//! The engine's accounts, challenges and index on a Redis Cluster: the
//! records the engine would otherwise hold in its maps, read from the
//! cluster for each operation and written back with a compare-and-set on
//! the account's version (`cluster::slot`), so any number of nodes share
//! them and no node remembers anything between requests.
//!
//! The engine is synchronous and the cluster client is not: the client runs
//! on a small runtime of its own, and each call here waits for its answer —
//! inside `block_in_place` when the caller is a worker of a multi-threaded
//! runtime (the server), so the worker's other tasks move elsewhere while
//! it waits; plainly otherwise (tests, tools, blocking threads).
//!
//! This file holds the connection, that bridge, the node's name and the
//! health check; beside it: `records.rs` (accounts, challenges, the index,
//! registration), `registry.rs` (clients), `journal.rs` (what a node has
//! yet to record in its own store), `outbox.rs` (the send queue every node
//! sends from), `export.rs` (a namespace read whole or
//! written whole, for `otpd migrate`, `check` and `backup`).

mod export;
mod idempotency;
mod journal;
mod limits;
mod outbox;
mod records;
mod registry;

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::cluster::{Cluster, ClusterConfig};
use crate::error::{EngineError, Result};

pub(super) use self::export::Exported;
pub(super) use self::outbox::{Came, Entry};
pub(crate) use self::records::CHALLENGE_GRACE;
pub(super) use self::records::{challenge_ttl, encode_record};

/// The version byte of every record otpd itself lays out on the cluster
/// (an account's envelope, the client registry, a journal entry).
const RECORD_V1: u8 = 1;

/// The cluster connection and the runtime its client runs on.
pub(super) struct Remote {
    cluster: Cluster,
    runtime: Option<Runtime>,
    /// This node's name in its journal entries (16 hex digits, kept in its
    /// data directory so a restarted node finds its own entries).
    node: String,
    /// The queue of the thread deleting journal entries, once started.
    forgetter: std::sync::OnceLock<self::journal::ForgetQueue>,
    /// This node's requests running with an idempotency key.
    running: self::idempotency::Running,
    /// This node's part of the send queue (`outbox.rs`).
    sending: self::outbox::Sending,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The node's name kept in `dir/cluster-node` (made on first use), or a
/// fresh one.
fn node_name(dir: Option<&std::path::Path>) -> Result<String> {
    let fresh = || {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
        Ok::<_, EngineError>(crate::hex::encode(bytes))
    };
    let Some(dir) = dir else {
        return fresh();
    };
    let path = dir.join("cluster-node");
    match std::fs::read_to_string(&path) {
        Ok(text)
            if text.trim().len() == 16 && text.trim().bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(text.trim().to_owned())
        }
        Ok(_) => Err(EngineError::Corrupt(format!(
            "{} is not a node name",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = fresh()?;
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, format!("{name}\n")))
                .map_err(|e| EngineError::Storage(format!("{}: {e}", path.display())))?;
            Ok(name)
        }
        Err(e) => Err(EngineError::Storage(format!("{}: {e}", path.display()))),
    }
}

/// Runs `future` on `handle`'s runtime and waits for it from synchronous code.
fn wait_on<T, F>(handle: &Handle, future: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = answer.send(future.await);
    });
    let wait = move || answered.recv();
    let got = match Handle::try_current() {
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    };
    got.unwrap_or_else(|_| {
        Err(EngineError::Internal(
            "a cluster call ended without an answer".into(),
        ))
    })
}

impl Remote {
    /// Connects to the cluster `config` names.
    pub(super) fn connect(config: ClusterConfig) -> Result<Remote> {
        Self::connect_as(config, None)
    }

    /// [`Remote::connect`] as the node whose name is kept in `dir` (made
    /// there on first use); `None`: a name for this process only.
    pub(super) fn connect_as(
        config: ClusterConfig,
        dir: Option<&std::path::Path>,
    ) -> Result<Remote> {
        config.validate()?;
        let node = node_name(dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("otpd-cluster")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Internal(format!("the cluster client's runtime: {e}")))?;
        let cluster = match wait_on(runtime.handle(), Cluster::connect(config)) {
            Ok(cluster) => cluster,
            Err(e) => {
                // Dropping a runtime blocks, which a caller inside another
                // runtime (otpd's start) may not do: it would panic.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(Remote {
            cluster,
            runtime: Some(runtime),
            node,
            forgetter: std::sync::OnceLock::new(),
            running: self::idempotency::Running::default(),
            sending: self::outbox::Sending::default(),
        })
    }

    fn run<T, F>(&self, call: impl FnOnce(Cluster) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| EngineError::Internal("the cluster client's runtime is gone".into()))?;
        let answer = wait_on(runtime.handle(), call(self.cluster.clone()));
        if let Err(EngineError::Storage(_) | EngineError::NotStored(_)) = &answer {
            let counters = self.cluster.counters();
            counters
                .errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        answer
    }

    /// What this node's cluster client has met since start.
    pub(super) fn counters(&self) -> &crate::cluster::Counters {
        self.cluster.counters()
    }

    /// This node's name on the cluster (its journal's, its audit chain's).
    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// How long this node answers from its copy of the client registry.
    pub(super) fn client_refresh(&self) -> Duration {
        self.cluster.config().client_refresh
    }

    /// Where this node's records live on the cluster.
    pub(super) fn keys(&self) -> &crate::cluster::keys::KeySpace {
        self.cluster.keys()
    }

    /// The cluster's health (see `cluster::health`).
    pub(super) fn health(
        &self,
        local_now_ms: impl Fn() -> u64 + Send + 'static,
        max_skew: Duration,
    ) -> Result<crate::cluster::health::Health> {
        self.run(|cluster| async move { cluster.health(local_now_ms, max_skew).await })
    }
}

/// Connects to the cluster `config` names and asks its health (as a node's
/// start and `/readyz` do), with this machine's clock; for `otpd check`.
pub fn check_cluster(
    config: ClusterConfig,
    max_skew: Duration,
) -> Result<crate::cluster::health::Health> {
    let remote = Remote::connect(config)?;
    let now = crate::clock::Clock::now(&crate::clock::SystemClock::new()).0;
    remote.health(move || now, max_skew)
}

/// Appends `bytes` to `out` after its length (4 bytes, little-endian).
fn push_part(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// The parts [`push_part`] wrote, after a version byte that must be
/// [`RECORD_V1`]; `what` names the record in the error.
fn split_parts<'a>(bytes: &'a [u8], what: &str) -> Result<Vec<&'a [u8]>> {
    let corrupt = |why: &str| EngineError::Corrupt(format!("{what}: {why}"));
    let (&version, mut rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if version != RECORD_V1 {
        return Err(corrupt(&format!("unknown version {version}")));
    }
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt("truncated"));
        }
        let (part, tail) = tail.split_at(len);
        parts.push(part);
        rest = tail;
    }
    Ok(parts)
}
