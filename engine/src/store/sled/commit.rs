//! The group commit: one writer thread applies every queued batch to sled
//! as one atomic batch per round, flushes, and wakes each caller whose
//! ticket the flush covered; and the store's health (free space, a failed
//! round), checked before a change touches memory.
//!
//! Why one thread applies the batches too, not each caller: sled 0.34 holds a
//! process-wide lock in shared mode for the whole of a flush, and
//! `apply_batch` takes it exclusively. Callers applying their own batches
//! therefore each waited out a flush in progress (~150–250 µs here), and a
//! verify cost that much before it even asked for durability; 64 writers
//! managed ~4,000 durable writes/s. Applied by the thread that also flushes,
//! a batch never waits on a flush.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Instant;

use super::audit::{AUDIT_HEAD_KEY, Blocks, PendingEvent};
use crate::audit::{EventKind, Numbered, Sealer};
use crate::error::{EngineError, Result};
use crate::store::codec;
use crate::store::{Commit, FlushStats, Ticket};

/// The number of the last write round applied (u64, big-endian).
pub(super) const ROUND_KEY: &[u8] = b"m:round";
/// The most queued batches one write round applies.
pub(super) const MAX_ROUND: usize = 4_096;

/// Raw changes to apply atomically: inserts and removals in order (a later
/// change to a key wins), and audit events, which the writer thread seals
/// and stores in blocks (`audit.rs`). Encoded by the store, applied by the
/// writer thread.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    writes: Vec<Write>,
    events: Numbered,
}

/// A key and its new value, or `None` to remove it. Keys (at most 17
/// bytes) are held inline by sled's `IVec` (up to 22 bytes), so queuing a
/// write allocates nothing for its key, and neither does a small value
/// (an account's newest audit event); an encoded record stays the `Vec`
/// its codec made, which sled takes over on the writer thread.
type Write = (::sled::IVec, Option<Value>);

#[derive(Debug)]
enum Value {
    Record(Vec<u8>),
    Small(::sled::IVec),
}

impl Writes {
    pub(crate) fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        self.writes.push((key.into(), Some(Value::Record(value))));
    }

    /// Inserts a value of a few bytes, copied inline.
    pub(crate) fn insert_small(&mut self, key: &[u8], value: &[u8]) {
        self.writes
            .push((key.into(), Some(Value::Small(value.into()))));
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.writes.push((key.into(), None));
    }

    /// Audit events, in sequence order, after any already added.
    pub(crate) fn audit(&mut self, events: Numbered) {
        if self.events.is_empty() {
            self.events = events;
        } else {
            self.events.extend(events);
        }
    }

    /// Adds the writes to `batch` and the events, sealed by `sealer` in
    /// their order, to `blocks`; whether one was a checkpoint. Fails (and
    /// the round with it) if an event comes out of order or before the
    /// chain was resumed.
    pub(super) fn add_to(
        self,
        batch: &mut ::sled::Batch,
        blocks: &mut Blocks,
        sealer: Option<&mut Sealer>,
    ) -> Result<bool> {
        for (key, value) in self.writes {
            match value {
                Some(Value::Record(value)) => batch.insert(key, value),
                Some(Value::Small(value)) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        if self.events.is_empty() {
            return Ok(false);
        }
        let sealer = sealer.ok_or_else(crate::store::not_started)?;
        let mut checkpointed = false;
        for event in self.events {
            let link = event.link;
            let record = sealer.seal(event)?;
            let checkpoint = record.event.kind == EventKind::Checkpoint;
            checkpointed |= checkpoint;
            blocks.push(PendingEvent {
                seq: record.seq,
                checkpoint,
                bytes: codec::encode_audit(&record, link),
            });
        }
        Ok(checkpointed)
    }
}

#[derive(Debug, Default)]
pub(super) struct CommitState {
    /// Tickets handed out (each write takes the next).
    pub(super) requested: u64,
    /// Writes queued for the writer thread, in ticket order.
    pub(super) queued: Vec<Writes>,
    /// The writer is asleep waiting for work: only then does a new write
    /// need to wake it (a wake-up is a system call per write otherwise).
    pub(super) writer_idle: bool,
    /// Every ticket up to here is durable.
    pub(super) flushed: u64,
    /// Every ticket up to here was in a failed flush (and not in a later good one).
    pub(super) failed_through: u64,
    pub(super) last_error: Option<String>,
    pub(super) shutdown: bool,
    pub(super) stats: FlushStats,
    /// Async waiters and the ticket each waits for.
    pub(super) wakers: Vec<(u64, Waker)>,
}

impl CommitState {
    pub(super) fn outcome(&self, ticket: u64) -> Option<Result<()>> {
        if self.flushed >= ticket {
            return Some(Ok(()));
        }
        if self.failed_through >= ticket {
            let why = self.last_error.clone().unwrap_or_default();
            return Some(Err(EngineError::NotStored(format!("flush failed: {why}"))));
        }
        if self.shutdown && self.requested == self.flushed.max(self.failed_through) {
            return Some(Err(EngineError::NotStored(
                "store closed before flushing".into(),
            )));
        }
        None
    }

    pub(super) fn wake_settled(&mut self) {
        let settled = self.flushed.max(self.failed_through);
        let shutdown = self.shutdown;
        self.wakers.retain(|(ticket, waker)| {
            let done = *ticket <= settled || shutdown;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }
}

/// Whether the store can take writes. Checked before a change touches
/// memory, so a refused change leaves nothing behind.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// The store's directory, whose file system is watched; `None` for a temporary store.
    pub(super) path: Option<PathBuf>,
    /// Free space to keep (0: not watched).
    pub(super) min_free: u64,
    /// Free space fell below `min_free`; cleared when a check finds it back.
    pub(super) short: AtomicBool,
    /// Set once a write round failed in sled. Its changes were already in
    /// memory, so memory may be ahead of disk: writes stop until a restart
    /// reloads the store from what is on disk.
    pub(super) failed: AtomicBool,
    pub(super) failure: Mutex<Option<String>>,
}

impl Health {
    pub(super) fn free_bytes(&self) -> Option<u64> {
        let path = self.path.as_ref().filter(|_| self.min_free > 0)?;
        let stat = rustix::fs::statvfs(path).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// The writer calls this before each round: one `statvfs` per round.
    pub(super) fn observe(&self) {
        if self.free_bytes().is_some_and(|free| free < self.min_free) {
            self.short.store(true, Ordering::Release);
        }
    }

    pub(super) fn fail(&self, why: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert_with(|| why.to_owned());
        self.failed.store(true, Ordering::Release);
    }

    /// `Ok` when a write may go ahead; otherwise the reason, for the caller.
    pub(super) fn check(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            let why = self
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_default();
            return Err(EngineError::Storage(format!(
                "a write to the store failed ({why}); writes stay stopped until otpd is \
                 restarted and reloads the store"
            )));
        }
        self.check_room()
    }

    /// `Ok` unless free space is below the reserve.
    pub(super) fn check_room(&self) -> Result<()> {
        if self.short.load(Ordering::Acquire) {
            // Only while short: a `statvfs` per refused write notices at
            // once when space comes back.
            match self.free_bytes() {
                Some(free) if free < self.min_free => {
                    return Err(EngineError::DiskFull(format!(
                        "{} MiB free on the file system of {}, below the reserve \
                         of {} MiB (store.min_free_mb); writes resume when space is freed",
                        free >> 20,
                        self.path
                            .as_deref()
                            .unwrap_or(std::path::Path::new(""))
                            .display(),
                        self.min_free >> 20
                    )));
                }
                _ => self.short.store(false, Ordering::Release),
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    pub(super) health: Health,
    /// Held by the writer for each round and by an export for its whole
    /// scan, so a backup sees sled between two rounds, never inside one.
    pub(super) rounds: Mutex<()>,
    /// The audit chain's writer half: taken by the writer for each round.
    pub(super) sealer: Mutex<Option<Sealer>>,
    pub(super) state: Mutex<CommitState>,
    pub(super) work: Condvar,
    pub(super) done: Condvar,
}

impl GroupCommit {
    pub(super) fn lock(&self) -> MutexGuard<'_, CommitState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_for(&self, ticket: u64) -> Result<()> {
        let mut state = self.lock();
        loop {
            if let Some(outcome) = state.outcome(ticket) {
                return outcome;
            }
            state = self
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn poll_ticket(&self, ticket: u64, waker: &Waker) -> Poll<Result<()>> {
        let mut state = self.lock();
        if let Some(outcome) = state.outcome(ticket) {
            return Poll::Ready(outcome);
        }
        if !state
            .wakers
            .iter()
            .any(|(t, w)| *t == ticket && w.will_wake(waker))
        {
            state.wakers.push((ticket, waker.clone()));
        }
        Poll::Pending
    }

    /// The writer thread. Each round carries its number into sled with its
    /// changes; once flushed, the number goes to `acknowledged` (the guard
    /// file), so a store that later opens with an older round lost writes.
    pub(super) fn run_flusher(
        &self,
        db: &::sled::Db,
        mut round: u64,
        acknowledged: Option<std::fs::File>,
    ) {
        let mut state = self.lock();
        loop {
            while state.requested == state.flushed.max(state.failed_through) && !state.shutdown {
                state.writer_idle = true;
                state = self
                    .work
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.writer_idle = false;
            let settled = state.flushed.max(state.failed_through);
            if state.requested == settled {
                // Shut down with nothing outstanding.
                state.wake_settled();
                self.done.notify_all();
                return;
            }
            // Tickets settled+1 ..= requested are queued in order, one each.
            // A round takes at most MAX_ROUND of them: a caller that queues
            // without waiting (a bulk load) must not make one giant batch,
            // which sled holds in memory whole.
            let take = state.queued.len().min(MAX_ROUND);
            let queued: Vec<Writes> = state.queued.drain(..take).collect();
            let target = settled + take as u64;
            drop(state);
            let mut batch = ::sled::Batch::default();
            let sealed = self.seal_into(queued, &mut batch);
            batch.insert(ROUND_KEY, &(round + 1).to_be_bytes());
            let between_rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
            // After the lock: a backup that just ran may have used space.
            self.health.observe();
            let started = Instant::now();
            let result = sealed.and_then(|()| {
                db.apply_batch(batch)
                    .and_then(|()| db.flush())
                    .map(drop)
                    .map_err(EngineError::from)
            });
            let took = started.elapsed();
            if result.is_ok() {
                round += 1;
                if let Some(file) = &acknowledged {
                    // Eight bytes rewritten in place need no new disk space; if
                    // this fails the guard is only older, never ahead of sled.
                    let _ = std::os::unix::fs::FileExt::write_all_at(file, &round.to_be_bytes(), 0);
                }
            }
            drop(between_rounds);
            state = self.lock();
            let batch = target - state.flushed.max(state.failed_through);
            state.stats.last_flush = took;
            state.stats.flush_time += took;
            match result {
                Ok(_) => {
                    state.flushed = target;
                    state.stats.flushes += 1;
                    state.stats.writes += batch;
                }
                Err(e) => {
                    self.forget_sealer();
                    self.health.fail(&e.to_string());
                    state.failed_through = target;
                    state.last_error = Some(e.to_string());
                    state.stats.failures += 1;
                }
            }
            state.wake_settled();
            self.done.notify_all();
        }
    }
}

impl GroupCommit {
    /// Adds `queued` to `batch`, their events sealed in order. A round that
    /// sealed a checkpoint records the chain's head as the round leaves it
    /// (recovery reads on from there; `otpd audit verify` requires the
    /// chain to reach it).
    pub(super) fn seal_into(&self, queued: Vec<Writes>, batch: &mut ::sled::Batch) -> Result<()> {
        let mut sealer = self.sealer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut blocks = Blocks::default();
        let mut checkpointed = false;
        for writes in queued {
            checkpointed |= writes.add_to(batch, &mut blocks, sealer.as_mut())?;
        }
        blocks.add_to(batch);
        if let (true, Some(sealer)) = (checkpointed, sealer.as_ref()) {
            let (seq, hash) = sealer.head();
            let mut head = [0u8; 40];
            head[..8].copy_from_slice(&seq.to_be_bytes());
            head[8..].copy_from_slice(&hash);
            batch.insert(AUDIT_HEAD_KEY, &head[..]);
        }
        Ok(())
    }

    /// After a failed round: its events were sealed but not stored, so the
    /// sealer's head is past what is on disk. Writes already queued behind
    /// it would be chained to hashes never stored, a gap only a full
    /// verification finds; without a sealer their rounds fail instead, as
    /// new writes do (the store refuses them until a restart resumes the
    /// chain from what was stored).
    fn forget_sealer(&self) {
        *self.sealer.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Commit for GroupCommit {
    fn wait(&self, ticket: Ticket) -> Result<()> {
        self.wait_for(ticket)
    }

    fn poll(&self, ticket: Ticket, waker: &Waker) -> Poll<Result<()>> {
        self.poll_ticket(ticket, waker)
    }

    fn flushed(&self) -> Ticket {
        self.lock().flushed
    }
}
