//! The only module that knows sled: keys, batches, recovery scans and group commit.
//!
//! Callers hand their changes ([`Writes`]) to one writer thread and take a
//! ticket. The writer applies everything queued since its last round to sled
//! as one atomic batch, flushes, and wakes every caller whose ticket that
//! flush covered. Many concurrent writers thus share one batch and one
//! `fsync`-class call instead of paying one each.
//!
//! Why one thread applies the batches too, not each caller: sled 0.34 holds a
//! process-wide lock in shared mode for the whole of a flush, and
//! `apply_batch` takes it exclusively. Callers applying their own batches
//! therefore each waited out a flush in progress (~150–250 µs here), and a
//! verify cost that much before it even asked for durability; 64 writers
//! managed ~4,000 durable writes/s. Applied by the thread that also flushes,
//! a batch never waits on a flush.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};

const ACCOUNT_PREFIX: u8 = b'a';
const CHALLENGE_PREFIX: u8 = b'c';
const FORMAT_KEY: &[u8] = b"m:format";
const FORMAT_VERSION: &[u8] = b"otpd-1";
const CLOCK_KEY: &[u8] = b"m:clock";
/// The number of the last write round applied (u64, big-endian).
const ROUND_KEY: &[u8] = b"m:round";
/// The most queued changes one write round applies.
const MAX_ROUND: usize = 4_096;
/// Beside sled's files: the number of the last round acknowledged to callers.
const ACKNOWLEDGED_FILE: &str = "acknowledged-round";
const CLIENT_PREFIX: u8 = b'k';
const OUTBOX_PREFIX: u8 = b'o';
const DEAD_LETTER_PREFIX: u8 = b'x';

/// Where and how the store keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The data directory; `None` keeps data in a temporary directory removed on drop.
    pub path: Option<PathBuf>,
    /// sled's page cache, in bytes. The engine keeps its own state in memory,
    /// so this only needs to cover writes and recovery.
    pub cache_bytes: u64,
    /// Free space the store's file system must keep. Below it new writes
    /// are refused (nothing changes, callers are told why) until space
    /// returns; the reserve absorbs the writes already in flight, so sled
    /// never meets a full disk in the middle of a batch. 0 turns it off.
    pub min_free_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: Some(PathBuf::from("otpd-data")),
            cache_bytes: 64 * 1024 * 1024,
            min_free_bytes: 128 * 1024 * 1024,
        }
    }
}

impl StoreConfig {
    /// A throw-away store, for tests.
    pub fn temporary() -> Self {
        Self {
            path: None,
            cache_bytes: 16 * 1024 * 1024,
            min_free_bytes: 0,
        }
    }
}

pub(crate) fn account_key(id: AccountId) -> [u8; 17] {
    prefixed(ACCOUNT_PREFIX, id.0)
}

pub(crate) fn challenge_key(id: ChallengeId) -> [u8; 17] {
    prefixed(CHALLENGE_PREFIX, id.0)
}

pub(crate) fn outbox_key(id: crate::terms::MessageId) -> [u8; 17] {
    prefixed(OUTBOX_PREFIX, id.0)
}

pub(crate) fn dead_letter_key(id: crate::terms::MessageId) -> [u8; 17] {
    prefixed(DEAD_LETTER_PREFIX, id.0)
}

pub(crate) fn client_key(id: [u8; 8]) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = CLIENT_PREFIX;
    key[1..].copy_from_slice(&id);
    key
}

fn prefixed(prefix: u8, id: [u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..].copy_from_slice(&id);
    key
}

/// Counters of the group commit, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Flushes done.
    pub flushes: u64,
    /// Writes made durable.
    pub writes: u64,
    /// Time spent in the most recent flush.
    pub last_flush: Duration,
    /// Time spent flushing since start.
    pub flush_time: Duration,
    /// Flushes that failed.
    pub failures: u64,
}

/// Changes to apply atomically: inserts and removals in order (a later
/// change to a key wins). Built by the engine, applied by the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Writes(Vec<Write>);

/// A key and its new value, or `None` to remove it.
type Write = (Box<[u8]>, Option<Vec<u8>>);

impl Writes {
    pub(crate) fn insert(&mut self, key: &[u8], value: Vec<u8>) {
        self.0.push((key.into(), Some(value)));
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.0.push((key.into(), None));
    }

    fn add_to(self, batch: &mut sled::Batch) {
        for (key, value) in self.0 {
            match value {
                Some(value) => batch.insert(&*key, value),
                None => batch.remove(&*key),
            }
        }
    }
}

#[derive(Debug, Default)]
struct CommitState {
    /// Tickets handed out (each write takes the next).
    requested: u64,
    /// Writes queued for the writer thread, in ticket order.
    queued: Vec<Writes>,
    /// The writer is asleep waiting for work: only then does a new write
    /// need to wake it (a wake-up is a system call per write otherwise).
    writer_idle: bool,
    /// Every ticket up to here is durable.
    flushed: u64,
    /// Every ticket up to here was in a failed flush (and not in a later good one).
    failed_through: u64,
    last_error: Option<String>,
    shutdown: bool,
    stats: FlushStats,
    /// Async waiters and the ticket each waits for.
    wakers: Vec<(u64, Waker)>,
}

impl CommitState {
    fn outcome(&self, ticket: u64) -> Option<Result<()>> {
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

    fn wake_settled(&mut self) {
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
struct Health {
    /// The store's directory, whose file system is watched; `None` for a temporary store.
    path: Option<PathBuf>,
    /// Free space to keep (0: not watched).
    min_free: u64,
    /// Free space fell below `min_free`; cleared when a check finds it back.
    short: AtomicBool,
    /// Set once a write round failed in sled. Its changes were already in
    /// memory, so memory may be ahead of disk: writes stop until a restart
    /// reloads the store from what is on disk.
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl Health {
    fn free_bytes(&self) -> Option<u64> {
        let path = self.path.as_ref().filter(|_| self.min_free > 0)?;
        let stat = rustix::fs::statvfs(path).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// The writer calls this before each round: one `statvfs` per round.
    fn observe(&self) {
        if self.free_bytes().is_some_and(|free| free < self.min_free) {
            self.short.store(true, Ordering::Release);
        }
    }

    fn fail(&self, why: &str) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        failure.get_or_insert_with(|| why.to_owned());
        self.failed.store(true, Ordering::Release);
    }

    /// `Ok` when a write may go ahead; otherwise the reason, for the caller.
    fn check(&self) -> Result<()> {
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
    fn check_room(&self) -> Result<()> {
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
    health: Health,
    /// Held by the writer for each round and by an export for its whole
    /// scan, so a backup sees sled between two rounds, never inside one.
    rounds: Mutex<()>,
    state: Mutex<CommitState>,
    work: Condvar,
    done: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, CommitState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait(&self, ticket: u64) -> Result<()> {
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
    fn run_flusher(&self, db: &sled::Db, mut round: u64, acknowledged: Option<std::fs::File>) {
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
            let mut batch = sled::Batch::default();
            for writes in queued {
                writes.add_to(&mut batch);
            }
            batch.insert(ROUND_KEY, &(round + 1).to_be_bytes());
            let between_rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
            // After the lock: a backup that just ran may have used space.
            self.health.observe();
            let started = Instant::now();
            let result = db.apply_batch(batch).and_then(|()| db.flush());
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

/// A change applied in memory and written to the store, durable once [`Durable::wait`] returns.
#[must_use = "a change is not known to be on disk until `wait` returns"]
#[derive(Debug)]
pub struct Durable<T> {
    value: T,
    ticket: Option<u64>,
    commit: Arc<GroupCommit>,
}

impl<T> Durable<T> {
    pub(crate) fn new(value: T, ticket: Option<u64>, commit: Arc<GroupCommit>) -> Self {
        Self {
            value,
            ticket,
            commit,
        }
    }

    /// Blocks until the change is on disk, then gives the result.
    ///
    /// An error means durability could not be confirmed: the caller must not
    /// report success.
    pub fn wait(self) -> Result<T> {
        if let Some(ticket) = self.ticket {
            self.commit.wait(ticket)?;
        }
        Ok(self.value)
    }

    /// Waits without blocking a thread until the change is on disk, then gives the result.
    pub fn wait_async(self) -> DurableWait<T> {
        DurableWait {
            value: Some(self.value),
            ticket: self.ticket,
            commit: self.commit,
        }
    }

    /// The result, before it is known to be durable (for benchmarks and logs).
    pub fn peek(&self) -> &T {
        &self.value
    }

    /// Whether anything was written (false for outcomes that changed nothing).
    pub fn needs_flush(&self) -> bool {
        self.ticket.is_some()
    }
}

/// The future of [`Durable::wait_async`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct DurableWait<T> {
    value: Option<T>,
    ticket: Option<u64>,
    commit: Arc<GroupCommit>,
}

impl<T: Unpin> Future for DurableWait<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if let Some(ticket) = self.ticket {
            match self.commit.poll_ticket(ticket, cx.waker()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => self.ticket = None,
            }
        }
        match self.value.take() {
            Some(value) => Poll::Ready(Ok(value)),
            None => Poll::Ready(Err(EngineError::Internal(
                "durable result polled after completion".into(),
            ))),
        }
    }
}

/// The sled database and its flusher.
#[derive(Debug)]
pub(crate) struct Store {
    db: sled::Db,
    commit: Arc<GroupCommit>,
    flusher: Option<JoinHandle<()>>,
}

impl Store {
    pub(crate) fn open(config: &StoreConfig) -> Result<Store> {
        let mut sled_config = sled::Config::new()
            .cache_capacity(config.cache_bytes)
            .mode(sled::Mode::HighThroughput);
        sled_config = match &config.path {
            Some(path) => sled_config.path(path),
            None => sled_config.temporary(true),
        };
        let db = open_with_lock_retry(&sled_config).map_err(|e| match e {
            sled::Error::Io(io) if is_lock_contention(&io) => EngineError::StoreInUse(format!(
                "the data directory {:?} is in use by another process (is another otpd running?)",
                config
                    .path
                    .as_deref()
                    .unwrap_or(std::path::Path::new("<temporary>"))
            )),
            sled::Error::Io(io) => EngineError::Storage(format!(
                "cannot open the data directory {:?}: {io}",
                config
                    .path
                    .as_deref()
                    .unwrap_or(std::path::Path::new("<temporary>"))
            )),
            other => EngineError::from(other),
        })?;
        match db.get(FORMAT_KEY)? {
            Some(v) if v.as_ref() == FORMAT_VERSION => {}
            Some(v) => {
                return Err(EngineError::Corrupt(format!(
                    "unknown data format {:?}",
                    String::from_utf8_lossy(&v)
                )));
            }
            None if db.is_empty() => {
                db.insert(FORMAT_KEY, FORMAT_VERSION)?;
                db.flush()?;
            }
            None => {
                return Err(EngineError::Corrupt(
                    "records present but the format marker is missing".into(),
                ));
            }
        }
        let round = read_round(db.get(ROUND_KEY)?.as_deref())?;
        let acknowledged = match &config.path {
            Some(path) => Some(check_acknowledged(path, round)?),
            None => None,
        };
        let commit = Arc::new(GroupCommit {
            health: Health {
                path: config.path.clone(),
                min_free: config.min_free_bytes,
                ..Health::default()
            },
            ..GroupCommit::default()
        });
        commit.health.observe();
        let flusher = {
            let (db, commit) = (db.clone(), Arc::clone(&commit));
            std::thread::Builder::new()
                .name("otpd-flusher".into())
                .spawn(move || commit.run_flusher(&db, round, acknowledged))
                .map_err(|e| EngineError::Storage(format!("cannot start the flusher: {e}")))?
        };
        Ok(Store {
            db,
            commit,
            flusher: Some(flusher),
        })
    }

    pub(crate) fn commit_handle(&self) -> Arc<GroupCommit> {
        Arc::clone(&self.commit)
    }

    /// Queues `writes` for the writer thread and returns the ticket to wait
    /// on. They reach sled, atomically, in the writer's next round.
    pub(crate) fn write(&self, writes: Writes) -> Result<u64> {
        self.commit.health.check()?;
        let mut state = self.commit.lock();
        if state.shutdown {
            return Err(EngineError::Storage("the store is closing".into()));
        }
        state.requested += 1;
        state.queued.push(writes);
        let ticket = state.requested;
        let wake = std::mem::take(&mut state.writer_idle);
        drop(state);
        if wake {
            self.commit.work.notify_one();
        }
        Ok(ticket)
    }

    /// Applies `writes` to sled at once on this thread, with no ticket and no
    /// flush (benchmarks time sled alone with this).
    pub(crate) fn apply_unflushed(&self, writes: Writes) -> Result<()> {
        let mut batch = sled::Batch::default();
        writes.add_to(&mut batch);
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Writes a throw-away record the size of an account and returns its
    /// ticket: a login for an unknown account pays the same write and flush
    /// as a wrong PIN on a known one, so timing does not tell them apart.
    pub(crate) fn decoy_write(&self) -> Result<u64> {
        let mut writes = Writes::default();
        writes.insert(b"m:decoy", vec![0u8; 256]);
        self.write(writes)
    }

    /// Every stored value under `prefix`, in key order.
    pub(crate) fn scan(&self, prefix: u8) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        self.db
            .scan_prefix([prefix])
            .map(|item| item.map(|(_, v)| v).map_err(EngineError::from))
    }

    /// Runs `each` on every stored value under `prefix`, split by the key's
    /// first id byte into `parts` ranges scanned on as many threads. Ids are
    /// random, so the parts are even. Returns each part's result, or the
    /// first error.
    fn scan_parallel<R: Send>(
        &self,
        prefix: u8,
        parts: usize,
        each: impl Fn(&mut R, sled::IVec) -> Result<()> + Sync,
        start: impl Fn() -> R + Sync,
    ) -> Result<Vec<R>> {
        let parts = parts.clamp(1, 256);
        let bound = |i: usize| (i * 256 / parts) as u16;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..parts)
                .map(|i| {
                    let (lo, hi) = (bound(i), bound(i + 1));
                    let (each, start) = (&each, &start);
                    scope.spawn(move || -> Result<R> {
                        let mut out = start();
                        let from = vec![prefix, lo as u8];
                        let to = if hi == 256 {
                            vec![prefix + 1]
                        } else {
                            vec![prefix, hi as u8]
                        };
                        let items = self.db.range(from..to);
                        for item in items {
                            each(&mut out, item?.1)?;
                        }
                        Ok(out)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .map_err(|_| EngineError::Internal("a recovery thread panicked".into()))?
                })
                .collect()
        })
    }

    /// Every account record, as [`Store::scan_parallel`].
    pub(crate) fn scan_accounts_parallel<R: Send>(
        &self,
        parts: usize,
        each: impl Fn(&mut R, sled::IVec) -> Result<()> + Sync,
        start: impl Fn() -> R + Sync,
    ) -> Result<Vec<R>> {
        self.scan_parallel(ACCOUNT_PREFIX, parts, each, start)
    }

    /// Every challenge record, as [`Store::scan_parallel`].
    pub(crate) fn scan_challenges_parallel<R: Send>(
        &self,
        parts: usize,
        each: impl Fn(&mut R, sled::IVec) -> Result<()> + Sync,
        start: impl Fn() -> R + Sync,
    ) -> Result<Vec<R>> {
        self.scan_parallel(CHALLENGE_PREFIX, parts, each, start)
    }

    pub(crate) fn scan_outbox(&self) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        self.scan(OUTBOX_PREFIX)
    }

    pub(crate) fn scan_dead_letters(&self) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        self.scan(DEAD_LETTER_PREFIX)
    }

    pub(crate) fn scan_clients(&self) -> impl Iterator<Item = Result<sled::IVec>> + '_ {
        self.scan(CLIENT_PREFIX)
    }

    /// Records the newest time the engine has seen, so a restart never runs earlier.
    pub(crate) fn save_clock_floor(&self, t: crate::Timestamp) -> Result<()> {
        self.db.insert(CLOCK_KEY, &t.0.to_be_bytes())?;
        Ok(())
    }

    pub(crate) fn clock_floor(&self) -> Result<crate::Timestamp> {
        let Some(bytes) = self.db.get(CLOCK_KEY)? else {
            return Ok(crate::Timestamp(0));
        };
        let bytes: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| EngineError::Corrupt("clock floor is not 8 bytes".into()))?;
        Ok(crate::Timestamp(u64::from_be_bytes(bytes)))
    }

    /// Calls `each` with every key and value in the store, in key order,
    /// with the writer paused between two rounds: the copy holds every
    /// write acknowledged before it began, and no half of any round.
    /// Writes queue meanwhile. Returns the round the copy ends at.
    pub(crate) fn export(
        &self,
        mut each: impl FnMut(&[u8], &[u8]) -> std::io::Result<()>,
    ) -> Result<u64> {
        let _between_rounds = self
            .commit
            .rounds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let round = read_round(self.db.get(ROUND_KEY)?.as_deref())?;
        for item in self.db.iter() {
            let (key, value) = item?;
            each(&key, &value)
                .map_err(|e| EngineError::Storage(format!("cannot write the copy: {e}")))?;
        }
        Ok(round)
    }

    /// Creates a store at `path` (which must hold none) from `records`, as
    /// an export wrote them, ending at write round `round`.
    pub(crate) fn import(
        path: &std::path::Path,
        records: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
        round: u64,
    ) -> Result<()> {
        if std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()) {
            return Err(EngineError::Storage(format!(
                "{} is not empty; restore only into a new directory",
                path.display()
            )));
        }
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        let mut format = None;
        for record in records {
            let (key, value) = record?;
            if key == FORMAT_KEY {
                format = Some(value.clone());
            }
            batch.insert(key, value);
            in_batch += 1;
            if in_batch == 10_000 {
                db.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        if format.as_deref() != Some(FORMAT_VERSION) {
            return Err(EngineError::Corrupt(format!(
                "the copy's data format is {:?}, not {:?}",
                format.map(|f| String::from_utf8_lossy(&f).into_owned()),
                String::from_utf8_lossy(FORMAT_VERSION)
            )));
        }
        batch.insert(ROUND_KEY, &round.to_be_bytes());
        db.apply_batch(batch)?;
        db.flush()?;
        drop(db);
        let guard = path.join(ACKNOWLEDGED_FILE);
        std::fs::write(&guard, round.to_be_bytes())
            .and_then(|()| std::fs::File::open(&guard)?.sync_all())
            .map_err(|e| EngineError::Storage(format!("cannot write {}: {e}", guard.display())))?;
        Ok(())
    }

    /// `Ok` when the store takes writes; otherwise why not (disk short of
    /// its reserve, or a failed write round).
    pub(crate) fn writable(&self) -> Result<()> {
        self.commit.health.observe();
        self.commit.health.check()
    }

    /// `Ok` unless the file system is below the free-space reserve (a
    /// backup checks this: it may still copy a store whose writes failed).
    pub(crate) fn has_room(&self) -> Result<()> {
        self.commit.health.observe();
        self.commit.health.check_room()
    }

    pub(crate) fn stats(&self) -> FlushStats {
        self.commit.lock().stats
    }

    pub(crate) fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Makes every write queued so far durable, and flushes sled (used on shutdown).
    pub(crate) fn flush(&self) -> Result<()> {
        let queued = self.commit.lock().requested;
        self.commit.wait(queued)?;
        self.db.flush()?;
        Ok(())
    }
}

/// Whether a live process has the store at `path` open: it holds sled's
/// lock on the `db` file (a lock dies with its process, so a crashed
/// server's store reads as free).
pub fn in_use(path: &std::path::Path) -> Result<bool> {
    let db = path.join("db");
    let file = match std::fs::File::open(&db) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(EngineError::Storage(format!(
                "cannot open {}: {e}",
                db.display()
            )));
        }
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        // Closing the file lets the probe's lock go.
        Ok(()) => Ok(false),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(true),
        Err(e) => Err(EngineError::Storage(format!(
            "cannot test the lock on {}: {e}",
            db.display()
        ))),
    }
}

fn read_round(bytes: Option<&[u8]>) -> Result<u64> {
    match bytes {
        None => Ok(0),
        Some(bytes) => bytes
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| EngineError::Corrupt("the write-round record is not 8 bytes".into())),
    }
}

/// Refuses a store whose last applied round is older than the last one
/// acknowledged to callers: its files were truncated, damaged in a way sled
/// recovers from by dropping the tail, deleted, or replaced by an older
/// copy. Starting on it would forget acknowledged locks, used codes and PIN
/// changes. Returns the guard file, open for the writer thread.
fn check_acknowledged(dir: &std::path::Path, round: u64) -> Result<std::fs::File> {
    use std::io::Read;
    let path = dir.join(ACKNOWLEDGED_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| EngineError::Storage(format!("cannot open {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| EngineError::Storage(format!("cannot read {}: {e}", path.display())))?;
    let acknowledged = match bytes.len() {
        0 => 0,
        8 => read_round(Some(&bytes))?,
        n => {
            return Err(EngineError::Corrupt(format!(
                "{} holds {n} bytes, not 8",
                path.display()
            )));
        }
    };
    if acknowledged > round {
        return Err(EngineError::Corrupt(format!(
            "the store in {} ends at write round {round}, but round {acknowledged} was \
             acknowledged to clients: its files were truncated, damaged or replaced by an \
             older copy, and starting would forget acknowledged changes (locks, used codes, \
             PIN changes). Restore the data directory from a backup; to start \
             from what is left anyway, delete {} first",
            dir.display(),
            path.display()
        )));
    }
    Ok(file)
}

/// sled 0.34 releases its directory lock from a background thread shortly
/// after the last handle drops (spacejam/sled#1289), so an immediate reopen
/// in the same process can find it still held. Retry briefly; a lock held by
/// a live process outlasts the budget and is reported.
fn open_with_lock_retry(config: &sled::Config) -> sled::Result<sled::Db> {
    const BUDGET: Duration = Duration::from_secs(2);
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match config.open() {
            Err(sled::Error::Io(io)) if is_lock_contention(&io) && started.elapsed() < BUDGET => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

fn is_lock_contention(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

impl Drop for Store {
    fn drop(&mut self) {
        {
            let mut state = self.commit.lock();
            state.shutdown = true;
            if state.requested == state.flushed.max(state.failed_through) {
                state.wake_settled();
            }
        }
        self.commit.work.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        let _ = self.db.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_share_flushes_and_all_become_durable() {
        let store = Arc::new(Store::open(&StoreConfig::temporary()).unwrap());
        let commit = store.commit_handle();
        let threads: Vec<_> = (0..16u8)
            .map(|t| {
                let (store, commit) = (Arc::clone(&store), Arc::clone(&commit));
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        let mut writes = Writes::default();
                        writes.insert(&[b'x', t, i], vec![i]);
                        let ticket = store.write(writes).unwrap();
                        Durable::new((), Some(ticket), Arc::clone(&commit))
                            .wait()
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = store.stats();
        assert_eq!(stats.writes, 800);
        // 16 writers waiting at once: a flusher per write would mean no grouping.
        assert!(stats.flushes < stats.writes, "{stats:?}");
        assert_eq!(store.scan(b'x').count(), 800);
    }

    #[test]
    fn queued_writes_apply_in_order_and_flush_waits_for_them() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        for i in 0..100u8 {
            let mut writes = Writes::default();
            writes.insert(b"x-same", vec![i]);
            writes.insert(&[b'x', i], vec![i]);
            if i % 2 == 1 {
                writes.remove(&[b'x', i - 1]);
            }
            // Nobody waits: `flush` must still apply and persist them all.
            store.write(writes).unwrap();
        }
        store.flush().unwrap();
        assert_eq!(store.db.get(b"x-same").unwrap().unwrap().as_ref(), [99]);
        // 100 keys x0..x99 written, the 50 even ones removed by the next write.
        assert_eq!(store.scan(b'x').count(), 1 + 50);
    }

    #[test]
    fn a_long_queue_is_applied_in_bounded_rounds() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let n = 3 * MAX_ROUND;
        {
            // Queue everything while the writer cannot look, as behind a slow disk.
            let mut state = store.commit.lock();
            for i in 0..n as u32 {
                let mut writes = Writes::default();
                writes.insert(&i.to_be_bytes(), vec![1]);
                state.queued.push(writes);
            }
            state.requested += n as u64;
        }
        store.commit.work.notify_one();
        store.flush().unwrap();
        let stats = store.stats();
        assert_eq!(stats.writes, n as u64);
        assert_eq!(stats.flushes, 3, "rounds of MAX_ROUND: {stats:?}");
        assert_eq!(store.scan(0).count(), n);
    }

    #[test]
    fn a_closing_store_refuses_new_writes() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        store.commit.lock().shutdown = true;
        let err = store.write(Writes::default()).unwrap_err();
        assert!(err.to_string().contains("closing"), "{err}");
    }

    #[test]
    fn async_waiters_are_woken_by_the_flusher() {
        let store = Store::open(&StoreConfig::temporary()).unwrap();
        let mut writes = Writes::default();
        writes.insert(b"x1", b"1".to_vec());
        let ticket = store.write(writes).unwrap();
        let wait = Durable::new(7, Some(ticket), store.commit_handle()).wait_async();
        assert_eq!(block_on(wait).unwrap(), 7);
        let ready = Durable::new(8, None, store.commit_handle()).wait_async();
        assert_eq!(block_on(ready).unwrap(), 8);
    }

    /// A minimal executor: parks the thread until woken.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    #[test]
    fn a_store_with_a_foreign_format_marker_refuses_to_open() {
        let dir = tempdir();
        {
            let db = sled::open(&dir).unwrap();
            db.insert(FORMAT_KEY, &b"something-else"[..]).unwrap();
            db.flush().unwrap();
        }
        let config = StoreConfig {
            path: Some(dir.clone()),
            cache_bytes: 1 << 20,
            min_free_bytes: 0,
        };
        assert!(matches!(Store::open(&config), Err(EngineError::Corrupt(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_store_with_records_but_no_marker_refuses_to_open() {
        let dir = tempdir();
        {
            let db = sled::open(&dir).unwrap();
            db.insert(b"a-record", &b"x"[..]).unwrap();
            db.flush().unwrap();
        }
        let config = StoreConfig {
            path: Some(dir.clone()),
            cache_bytes: 1 << 20,
            min_free_bytes: 0,
        };
        assert!(matches!(Store::open(&config), Err(EngineError::Corrupt(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_directory_held_by_a_live_store_is_reported_as_in_use() {
        let dir = tempdir();
        let config = StoreConfig {
            path: Some(dir.clone()),
            cache_bytes: 1 << 20,
            min_free_bytes: 0,
        };
        let _held = Store::open(&config).unwrap();
        match Store::open(&config) {
            Err(EngineError::StoreInUse(why)) => assert!(why.contains("in use"), "{why}"),
            other => panic!("{other:?}"),
        }
        drop(_held);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_store_reopens_at_once_after_being_dropped() {
        let dir = tempdir();
        let config = StoreConfig {
            path: Some(dir.clone()),
            cache_bytes: 1 << 20,
            min_free_bytes: 0,
        };
        for _ in 0..5 {
            drop(Store::open(&config).unwrap());
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempdir() -> PathBuf {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        std::env::temp_dir().join(format!("otpd-store-test-{}", u64::from_le_bytes(bytes)))
    }
}
