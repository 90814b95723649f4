//! Upkeep: sweeping expired challenges, the sweeper thread, counters for metrics, and the store's health, size, backups and flush.

use smallvec::smallvec;

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::limits::SmsConversion;
use crate::store::{Change, Changes, FlushStats};

use super::Engine;

/// Sizes and counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Accounts held, cancelled ones included.
    pub accounts: u64,
    /// Challenges held, not yet swept.
    pub challenges: u64,
    /// Group-commit counters.
    pub flush: FlushStats,
    /// Accounts locked by failures since start.
    pub lockouts: u64,
    /// Messages waiting in the outbox (on a cluster: the cluster's, every node's).
    pub outbox: u64,
    /// Keys held by the per-account and per-destination issuance limiters.
    pub limiter_keys: u64,
    /// Argon2 hashes and verifications since start.
    pub argon2_runs: u64,
    /// Bytes of Argon2 memory held for reuse (one block per run that ran at once).
    pub argon2_memory_bytes: u64,
    /// Idempotency keys held, every client's together.
    pub idempotency_keys: u64,
    /// Idempotency keys forgotten before their retention by the per-client cap, since start.
    pub idempotency_evicted: u64,
    /// What the audit log holds in memory about its writes: those not yet
    /// known durable, and recent accounts' newest events (both bounded).
    pub audit_tracked: u64,
    /// On a cluster: what this node's cluster client has met since start.
    pub cluster: Option<ClusterCounts>,
}

/// A cluster node's health counters since start (`cluster::Counters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    /// Operations that failed because the cluster did not answer or answered an error.
    pub errors: u64,
    /// Compare-and-set conflicts that made a change be computed again.
    pub cas_retries: u64,
    /// Writes too few replicas confirmed in time (`WAIT`): not acknowledged.
    pub wait_timeouts: u64,
    /// Rate-limit checks the cluster did not answer (their requests were refused).
    pub limits_unanswered: u64,
    /// SMS tally counts lost.
    pub tallies_lost: u64,
    /// Messages claimed from the cluster's send queue.
    pub outbox_claimed: u64,
    /// Of those, messages whose lease had run out (a node did not report in time).
    pub outbox_leases_expired: u64,
    /// Messages sent by the node that queued them, without a claim.
    pub outbox_handed_off: u64,
}

/// Stops the background sweeper when dropped.
#[derive(Debug)]
pub struct Sweeper {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Engine {
    /// Accounts held in memory, destinations' holders included (tests:
    /// that holders go). Always 0 on a cluster.
    #[doc(hidden)]
    pub fn accounts_in_memory(&self) -> usize {
        self.accounts.len()
    }

    /// Deletes expired challenges and idempotency keys from memory and
    /// disk, and forgets rate-limit keys whose buckets have refilled;
    /// returns how many challenges went.
    pub fn sweep_expired(&self) -> Result<usize> {
        self.limits.prune();
        let now = self.now();
        let expired: Vec<(ChallengeId, AccountId)> = self
            .challenges
            .iter()
            .filter(|c| now >= c.expires_at)
            .map(|c| (c.id, c.account))
            .collect();
        let mut batch = Changes::default();
        let mut swept = 0;
        let mut holders = Vec::new();
        for (id, account) in expired {
            let owner = self.accounts.get_mut(&account);
            if let Some(mut owner) = owner {
                owner.current.forget(id);
                if owner.is_holder() {
                    holders.push(account);
                }
            }
            if let Some((_, gone)) = self.challenges.remove_if(&id, |_, c| now >= c.expires_at) {
                batch.push(Change::RemoveChallenge(id));
                if let Some(message) = gone.message {
                    self.outbox.remove(&message);
                    batch.push(Change::RemoveMessage(message));
                }
                swept += 1;
            }
        }
        if swept > 0 {
            // Deleting dead records needs no flush: if lost, recovery deletes them again.
            self.store.write(batch)?;
        }
        // A destination's holder lives while its code does.
        for holder in holders {
            self.erase_holder_if_done(holder)?;
        }
        self.sweep_idempotency(now)?;
        self.store.save_clock_floor(now)?;
        Ok(swept)
    }

    /// On a cluster, its health (reachable, every slot served, persistence
    /// settings, its clock within `max_skew` of this node's); `None` on the
    /// embedded store.
    pub fn cluster_health(
        &self,
        max_skew: Duration,
    ) -> Option<Result<crate::cluster::health::Health>> {
        let remote = self.remote.as_ref()?;
        let now = self.now().0;
        Some(remote.health(move || now, max_skew))
    }

    /// On a cluster, this node's name (kept in its data directory): its
    /// journal's and its audit chain's.
    pub fn cluster_node(&self) -> Option<String> {
        self.remote.as_ref().map(|r| r.node().to_owned())
    }

    /// Whether accounts and codes live on a cluster.
    pub fn on_cluster(&self) -> bool {
        self.remote.is_some()
    }

    /// Sweeps expired challenges every `every` on a background thread until
    /// the returned handle is dropped.
    pub fn start_sweeper(self: &Arc<Self>, every: Duration) -> Result<Sweeper> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("otpd-sweeper".into())
            .spawn(move || {
                let mut last_prune: Option<std::time::Instant> = None;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failed sweep, checkpoint or prune is retried on the next tick.
                    let _ = engine.sweep_expired();
                    let _ = engine.audit_checkpoint(false);
                    if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                        last_prune = Some(std::time::Instant::now());
                        let _ = engine.prune_audit();
                        let _ = engine.erase_cancelled();
                    }
                }
            })
            .map_err(|e| EngineError::Internal(format!("cannot start the sweeper: {e}")))?;
        Ok(Sweeper {
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    /// Sizes and counters.
    pub fn stats(&self) -> Stats {
        let (idempotency_keys, idempotency_evicted) = self.idempotency_counts();
        Stats {
            idempotency_keys: idempotency_keys as u64,
            idempotency_evicted,
            // A destination verification's holder is no account.
            accounts: (self.accounts.len() as u64)
                .saturating_sub(self.holders.load(std::sync::atomic::Ordering::Relaxed)),
            challenges: self.challenges.len() as u64,
            flush: self.store.stats(),
            lockouts: self.lockouts.load(std::sync::atomic::Ordering::Relaxed),
            // On a cluster: the cluster's send queue (every node's), read
            // from its due indexes (as last read if the cluster does not answer).
            outbox: match &self.remote {
                Some(remote) => remote.queued_or_last(),
                None => self.outbox.len() as u64,
            },
            limiter_keys: self.limits.keys() as u64,
            argon2_runs: self.pins.runs(),
            argon2_memory_bytes: self.pins.pooled_memory().1,
            audit_tracked: self.audit_tracked(),
            cluster: self.remote.as_ref().map(|remote| {
                let c = remote.counters();
                let read =
                    |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
                ClusterCounts {
                    errors: read(&c.errors),
                    cas_retries: read(&c.cas_retries),
                    wait_timeouts: read(&c.wait_timeouts),
                    limits_unanswered: read(&c.limits_unanswered),
                    tallies_lost: read(&c.tallies_lost),
                    outbox_claimed: read(&c.outbox_claimed),
                    outbox_leases_expired: read(&c.outbox_leases_expired),
                    outbox_handed_off: read(&c.outbox_handed_off),
                }
            }),
        }
    }

    /// Messages waiting to be sent, in flight included; on a cluster every
    /// node's, read from the cluster's due indexes (which may fail).
    pub fn outbox_depth(&self) -> Result<u64> {
        match &self.remote {
            Some(remote) => remote.queued(),
            None => Ok(self.outbox.len() as u64),
        }
    }

    /// SMS codes sent and verified per country calling code, with the pumping alarm.
    /// On a cluster these are every node's, read from the cluster (which
    /// may fail).
    pub fn sms_conversion(&self) -> Result<Vec<SmsConversion>> {
        self.limits.sms_conversion()
    }

    /// `Ok` when the store takes writes; otherwise why not: its disk is
    /// below the free-space reserve (cleared when space returns), or a write
    /// failed and writes are stopped until a restart.
    pub fn writable(&self) -> Result<()> {
        self.store.writable()
    }

    /// Writes a consistent copy of the store into `dir` (see [`crate::BackupSummary`]):
    /// every write acknowledged before the call, none half-applied. Writes
    /// queue while the store is read.
    pub fn backup_to(&self, dir: &std::path::Path) -> Result<crate::BackupSummary> {
        let summary = self.store.backup_to(dir)?;
        let event = crate::audit::Event::new(crate::audit::EventKind::BackupTaken, None)
            .with("records", summary.records)
            .with("sha256", summary.sha256.clone());
        // Answered once its event is durable, like every operation; but a
        // store refusing writes (a full disk) must still be able to copy
        // what it holds, so a failure to record the backup is not the
        // backup's.
        if let Ok(ticket) = self.write(Changes::default(), smallvec![event]) {
            let _ = self.durable((), ticket).wait();
        }
        Ok(summary)
    }

    /// Bytes the store occupies on disk.
    pub fn disk_bytes(&self) -> Result<u64> {
        self.store.size_on_disk()
    }

    /// Signs the audit chain's head, then flushes the store now (for shutdown).
    pub fn flush(&self) -> Result<()> {
        // Neither a refused checkpoint (a full disk) nor an unwritten
        // delivery report may stop the flush.
        let _ = self.settle_sent();
        let _ = self.audit_checkpoint(true);
        self.store.flush()
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
