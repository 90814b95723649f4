//! The storage port: the engine's records go in and come out as typed
//! values; keys, encodings, batches and flushes are each implementation's.
//!
//! The contract every implementation keeps (docs/ARCHITECTURE.md,
//! "Durability", says what it means for the sled store):
//!
//! - **One batch, all or nothing.** [`Store::write`] takes one [`Changes`]
//!   and applies all of it or none of it, also across a crash.
//! - **Order.** Batches are applied in the order their tickets were handed
//!   out; within and across batches, a later change to a record wins.
//! - **Refused means untouched.** An error from `write` (disk below its
//!   reserve, a store that stopped after a failed round, a closing store)
//!   means nothing of that batch is or will be stored.
//! - **Durable.** Once [`Commit::wait`] (or its async poll) returns `Ok`
//!   for a ticket, that batch and every batch before it survive what the
//!   implementation promises to survive: a killed process for sled (its
//!   flush is `sync_file_range`), the engine being dropped and reopened on
//!   the same store for the in-memory one. An `Err` there means the batch
//!   is not acknowledged and may or may not be stored.
//! - **Scans** see every record whose batch was acknowledged, and may see
//!   later ones. A backup ([`Store::backup_to`]) is a consistent cut: every
//!   batch acknowledged before it began, and no half of any batch.

pub(crate) mod codec;
pub(crate) mod memory;
pub(crate) mod sled;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::account::Account;
use crate::audit::{AuditRecord, Numbered, Sealer};
use crate::challenge::Challenge;
use crate::client::Client;
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::idempotency::IdempotencyRecord;
use crate::outbox::{DeadLetter, Message};
use crate::terms::MessageId;

pub use self::sled::backup::{BACKUP_FILE, BackupSummary, restore, verify};
pub use self::sled::in_use;

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
    /// A Redis Cluster for accounts, challenges and their index (`None`:
    /// everything in the embedded store at `path`). On a cluster the
    /// embedded store still keeps this node's audit chain, clients,
    /// idempotency keys and send queue.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: Some(PathBuf::from("otpd-data")),
            cache_bytes: 64 * 1024 * 1024,
            min_free_bytes: 128 * 1024 * 1024,
            cluster: None,
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
            cluster: None,
        }
    }
}

/// Opens the embedded (sled) store `config` describes.
pub(crate) fn open(config: &StoreConfig) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(self::sled::SledStore::open(config)?))
}

/// Why audit events were refused before [`Store::start_audit`].
pub(crate) fn not_started() -> EngineError {
    EngineError::NotStored("the audit chain was not resumed before its first event".into())
}

/// One change of a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// Store an account (replacing the one with its id), with the sequence
    /// number of its newest audit event, which the engine's write fills in
    /// (construct it with `None`): a store may keep it in the account's
    /// record instead of a pointer of its own (see [`Store::write_audited`]).
    Account(&'a Account, Option<u64>),
    /// Delete an account (a cancelled one, past the audit retention).
    RemoveAccount(AccountId),
    /// Store a challenge.
    Challenge(&'a Challenge),
    /// Delete a challenge.
    RemoveChallenge(ChallengeId),
    /// Store a queued outgoing message.
    Message(&'a Message),
    /// Delete a queued message.
    RemoveMessage(MessageId),
    /// Store a message given up on.
    DeadLetter(&'a DeadLetter),
    /// Store a client (relying party).
    Client(&'a Client),
    /// Store a throw-away record the size of an account, so a login for an
    /// unknown account pays the write a wrong PIN pays.
    Decoy,
    /// Delete an audit event (pruning past retention).
    RemoveAudit(u64, Option<AccountId>),
    /// Store an idempotency key's record (a claim, or a claim with its answer).
    Idempotency(&'a IdempotencyRecord),
    /// Delete an idempotency key's record: (client, key).
    RemoveIdempotency(&'a str, &'a str),
}

/// Changes applied together, atomically, in order.
#[derive(Debug, Default)]
pub(crate) struct Changes<'a>(pub(crate) Vec<Change<'a>>);

impl<'a> Changes<'a> {
    pub(crate) fn push(&mut self, change: Change<'a>) {
        self.0.push(change);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A write's place in the store's order; durable once its commit says so.
pub(crate) type Ticket = u64;

/// Durability of written batches.
pub(crate) trait Commit: Send + Sync + std::fmt::Debug {
    /// Blocks until `ticket` is durable, or failed.
    fn wait(&self, ticket: Ticket) -> Result<()>;
    /// Whether `ticket` is durable yet; if not, `waker` is woken when it settles.
    fn poll(&self, ticket: Ticket, waker: &Waker) -> Poll<Result<()>>;
    /// Every ticket up to this one is durable.
    fn flushed(&self) -> Ticket;
}

/// What the engine asks of a store. See the module documentation for the
/// contract every implementation keeps.
pub(crate) trait Store: Send + Sync + std::fmt::Debug {
    /// Queues `changes` to be applied as one atomic batch after every
    /// earlier one, and returns the ticket to wait on.
    fn write(&self, changes: Changes<'_>) -> Result<Ticket> {
        self.write_audited(changes, Numbered::new())
    }

    /// [`Store::write`] with audit events, numbered in the order their
    /// batches are queued (each with its account's previous event, from
    /// [`Store::audit_last`], through which the store finds an account's
    /// events). The store seals them with the [`Sealer`] it was given, in
    /// the order it applies the batches, which is the order they were
    /// queued in, and stores them in the same atomic batch as `changes`; a
    /// batch (or write round) that holds a checkpoint also records the
    /// chain's head as it leaves it. Refused before [`Store::start_audit`].
    fn write_audited(&self, changes: Changes<'_>, events: Numbered) -> Result<Ticket>;

    /// Hands the store the writer's half of the audit chain, resumed from
    /// its last stored event, before the first event is written.
    fn start_audit(&self, sealer: Sealer);

    /// The durability of this store's tickets.
    fn commit(&self) -> Arc<dyn Commit>;

    /// Every account, split over `parts` threads; `each` runs on them.
    fn scan_accounts(
        &self,
        parts: usize,
        each: &(dyn Fn(Account) -> Result<()> + Sync),
    ) -> Result<()>;

    /// Every challenge, split over `parts` threads; `each` runs on them.
    fn scan_challenges(
        &self,
        parts: usize,
        each: &(dyn Fn(Challenge) -> Result<()> + Sync),
    ) -> Result<()>;

    /// Every queued message.
    fn scan_messages(&self, each: &mut dyn FnMut(Message) -> Result<()>) -> Result<()>;

    /// Every dead letter.
    fn scan_dead_letters(&self, each: &mut dyn FnMut(DeadLetter) -> Result<()>) -> Result<()>;

    /// Every client.
    fn scan_clients(&self, each: &mut dyn FnMut(Client) -> Result<()>) -> Result<()>;

    /// Every idempotency key's record, in no particular order.
    fn scan_idempotency(&self, each: &mut dyn FnMut(IdempotencyRecord) -> Result<()>)
    -> Result<()>;

    /// The audit chain's recorded head (`None` before the first event).
    fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>>;

    /// The newest stored event of `account`, as [`Store::write_audited`] links
    /// them (`None` if it has none, or the store does not link them).
    fn audit_last(&self, account: AccountId) -> Result<Option<u64>>;

    /// Audit events from sequence number `from` on, oldest first, while
    /// `each` returns `true`.
    fn scan_audit(
        &self,
        from: u64,
        each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
    ) -> Result<()>;

    /// `account`'s audit events before sequence number `before`, newest
    /// first, while `each` returns `true`.
    fn scan_account_audit(
        &self,
        account: AccountId,
        before: u64,
        each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
    ) -> Result<()>;

    /// The newest time the engine recorded (0 for a new store).
    fn clock_floor(&self) -> Result<Timestamp>;

    /// Records the newest time the engine has seen, so a restart never runs
    /// earlier. Needs no durability of its own: a lost floor is older, not wrong.
    fn save_clock_floor(&self, t: Timestamp) -> Result<()>;

    /// `Ok` when writes are taken; otherwise why not.
    fn writable(&self) -> Result<()>;

    /// Group-commit counters.
    fn stats(&self) -> FlushStats;

    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64>;

    /// Makes every write queued so far durable (on shutdown).
    fn flush(&self) -> Result<()>;

    /// Writes a consistent backup of the store into `dir`.
    fn backup_to(&self, dir: &Path) -> Result<BackupSummary>;
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

/// A change applied in memory and written to the store, durable once [`Durable::wait`] returns.
#[must_use = "a change is not known to be on disk until `wait` returns"]
#[derive(Debug)]
pub struct Durable<T> {
    value: T,
    ticket: Option<Ticket>,
    commit: Arc<dyn Commit>,
}

impl<T> Durable<T> {
    pub(crate) fn new(value: T, ticket: Option<Ticket>, commit: Arc<dyn Commit>) -> Self {
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

    /// The same change, its result turned into another.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Durable<U> {
        Durable {
            value: f(self.value),
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
    ticket: Option<Ticket>,
    commit: Arc<dyn Commit>,
}

impl<T: Unpin> Future for DurableWait<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if let Some(ticket) = self.ticket {
            match self.commit.poll(ticket, cx.waker()) {
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
