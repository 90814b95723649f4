//! The embedded store: sled, one database per data directory. The only
//! module that knows sled, its keys and the record encoding.
//!
//! Records live under one-byte prefixes followed by their id (big-endian
//! ids are random, so key ranges split evenly for parallel scans). Every
//! batch goes through the group commit (`commit.rs`). Two guards keep a
//! damaged store from starting: a format marker, and the number of the last
//! write round acknowledged to callers, kept beside sled's files and
//! compared with the round sled holds (`acknowledged-round`).
//!
//! The audit trail's keys and blocks are in `audit.rs`, the unit tests in
//! `tests.rs`.

mod audit;
pub(crate) mod backup;
mod commit;
mod guard;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use self::audit::{AUDIT_LAST_PREFIX, audit_index_key, audit_key};
pub(crate) use self::commit::Writes;
use self::commit::{GroupCommit, Health, ROUND_KEY};
pub use self::guard::in_use;
use self::guard::{
    ACKNOWLEDGED_FILE, check_acknowledged, is_lock_contention, open_with_lock_retry, read_round,
};
use crate::account::Account;
use crate::audit::{AuditRecord, EventKind, Numbered, Sealer};
use crate::challenge::Challenge;
use crate::client::Client;
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::idempotency::IdempotencyRecord;
use crate::outbox::{DeadLetter, Message};
use crate::store::codec;
use crate::store::{
    BackupSummary, Change, Changes, Commit, FlushStats, Store, StoreConfig, Ticket,
};

const ACCOUNT_PREFIX: u8 = b'a';
const CHALLENGE_PREFIX: u8 = b'c';
const CLIENT_PREFIX: u8 = b'k';
const OUTBOX_PREFIX: u8 = b'o';
const DEAD_LETTER_PREFIX: u8 = b'x';
/// Idempotency keys: the first 16 bytes of SHA-256(client ‖ 0 ‖ key).
const IDEMPOTENCY_PREFIX: u8 = b'd';
const FORMAT_KEY: &[u8] = b"m:format";
const FORMAT_VERSION: &[u8] = b"otpd-1";
const CLOCK_KEY: &[u8] = b"m:clock";
const DECOY_KEY: &[u8] = b"m:decoy";

fn prefixed(prefix: u8, id: [u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..].copy_from_slice(&id);
    key
}

/// Where `client`'s `key` is stored. The record holds both in full, so a
/// scan needs nothing from the hash.
fn idempotency_key(client: &str, key: &str) -> [u8; 17] {
    let mut hash = Sha256::new();
    hash.update(client.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    let digest: [u8; 32] = hash.finalize().into();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    prefixed(IDEMPOTENCY_PREFIX, id)
}

fn client_key(id: [u8; 8]) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = CLIENT_PREFIX;
    key[1..].copy_from_slice(&id);
    key
}

/// What a raw export hands each key and value to.
pub(crate) type RawRecord<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// The sled database and its writer thread.
#[derive(Debug)]
pub(crate) struct SledStore {
    db: ::sled::Db,
    commit: Arc<GroupCommit>,
    flusher: Option<JoinHandle<()>>,
    /// Set by [`Store::start_audit`]: events are refused before.
    audit_started: AtomicBool,
}

impl SledStore {
    pub(crate) fn open(config: &StoreConfig) -> Result<SledStore> {
        let mut sled_config = ::sled::Config::new()
            .cache_capacity(config.cache_bytes)
            .mode(::sled::Mode::HighThroughput);
        sled_config = match &config.path {
            Some(path) => sled_config.path(path),
            None => sled_config.temporary(true),
        };
        let db = open_with_lock_retry(&sled_config).map_err(|e| match e {
            ::sled::Error::Io(io) if is_lock_contention(&io) => EngineError::StoreInUse(format!(
                "the data directory {:?} is in use by another process (is another otpd running?)",
                config
                    .path
                    .as_deref()
                    .unwrap_or(std::path::Path::new("<temporary>"))
            )),
            ::sled::Error::Io(io) => EngineError::Storage(format!(
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
        Ok(SledStore {
            db,
            commit,
            flusher: Some(flusher),
            audit_started: AtomicBool::new(false),
        })
    }

    /// Queues raw `writes` for the writer thread and returns the ticket to
    /// wait on. They reach sled, atomically, in the writer's next round.
    pub(crate) fn write_raw(&self, writes: Writes) -> Result<Ticket> {
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
        let mut batch = ::sled::Batch::default();
        self.commit.seal_into(vec![writes], &mut batch)?;
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Every stored value under `prefix`, in key order.
    fn scan(&self, prefix: u8, each: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        for item in self.db.scan_prefix([prefix]) {
            each(&item?.1)?;
        }
        Ok(())
    }

    /// Runs `each` on every stored value under `prefix`, split by the key's
    /// first id byte into `parts` ranges scanned on as many threads. Ids are
    /// random, so the parts are even. Returns each part's result, or the
    /// first error.
    fn scan_parallel<R: Send>(
        &self,
        prefix: u8,
        parts: usize,
        each: impl Fn(&mut R, ::sled::IVec) -> Result<()> + Sync,
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

    /// Calls `each` with every key and value in the store, in key order,
    /// with the writer paused between two rounds: the copy holds every
    /// write acknowledged before it began, and no half of any round.
    /// Writes queue meanwhile. Returns the round the copy ends at.
    pub(crate) fn export_raw(&self, each: &mut RawRecord<'_>) -> Result<u64> {
        let _between_rounds = self
            .commit
            .rounds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let round = read_round(self.db.get(ROUND_KEY)?.as_deref())?;
        for item in self.db.iter() {
            let (key, value) = item?;
            each(&key, &value)?;
        }
        Ok(round)
    }

    /// Creates a store at `path` (which must hold none) from `records`, as
    /// an export wrote them, ending at write round `round`.
    pub(crate) fn import(
        path: &Path,
        records: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
        round: u64,
    ) -> Result<()> {
        if std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()) {
            return Err(EngineError::Storage(format!(
                "{} is not empty; restore only into a new directory",
                path.display()
            )));
        }
        let db = ::sled::Config::new()
            .path(path)
            .mode(::sled::Mode::HighThroughput)
            .open()?;
        let mut batch = ::sled::Batch::default();
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

    /// `Ok` unless the file system is below the free-space reserve (a
    /// backup checks this: it may still copy a store whose writes failed).
    pub(crate) fn has_room(&self) -> Result<()> {
        self.commit.health.observe();
        self.commit.health.check_room()
    }
}

/// One change as raw writes: the key, and the encoded record (or `None` to
/// delete).
fn encode(change: &Change<'_>, writes: &mut Writes) {
    match *change {
        Change::Account(a, audit_newest) => writes.insert(
            &prefixed(ACCOUNT_PREFIX, a.id.0),
            codec::encode_account(a, audit_newest),
        ),
        Change::RemoveAccount(id) => {
            writes.remove(&prefixed(ACCOUNT_PREFIX, id.0));
            writes.remove(&prefixed(AUDIT_LAST_PREFIX, id.0));
        }
        Change::Challenge(c) => writes.insert(
            &prefixed(CHALLENGE_PREFIX, c.id.0),
            codec::encode_challenge(c),
        ),
        Change::RemoveChallenge(id) => writes.remove(&prefixed(CHALLENGE_PREFIX, id.0)),
        Change::Message(m) => {
            writes.insert(&prefixed(OUTBOX_PREFIX, m.id.0), codec::encode_message(m))
        }
        Change::RemoveMessage(id) => writes.remove(&prefixed(OUTBOX_PREFIX, id.0)),
        Change::DeadLetter(d) => writes.insert(
            &prefixed(DEAD_LETTER_PREFIX, d.id.0),
            codec::encode_dead_letter(d),
        ),
        Change::Client(c) => writes.insert(&client_key(c.info.id.0), codec::encode_client(c)),
        Change::Decoy => writes.insert(DECOY_KEY, vec![0u8; 256]),
        Change::RemoveAudit(seq, account) => {
            writes.remove(&audit_key(seq));
            if let Some(account) = account {
                writes.remove(&audit_index_key(account, seq));
            }
        }
        Change::Idempotency(r) => writes.insert(
            &idempotency_key(&r.client, &r.key),
            codec::encode_idempotency(r),
        ),
        Change::RemoveIdempotency(client, key) => writes.remove(&idempotency_key(client, key)),
    }
}

impl Store for SledStore {
    fn write_audited(&self, changes: Changes<'_>, events: Numbered) -> Result<Ticket> {
        let mut writes = Writes::default();
        for change in &changes.0 {
            encode(change, &mut writes);
        }
        if !events.is_empty() && !self.audit_started.load(Ordering::Acquire) {
            return Err(crate::store::not_started());
        }
        for event in &events {
            // Stored in its round's block (`audit.rs`), sealed there. An
            // erased account keeps no pointer: its record goes in the same
            // batch. Nor does one whose record the batch writes: the record
            // holds its newest event (the engine saw to it), and one key
            // fewer per event is most of what the pointer cost.
            if let Some(account) = event.account()
                && event.kind() != EventKind::Erased
                && !changes
                    .0
                    .iter()
                    .any(|c| matches!(c, Change::Account(a, Some(_)) if a.id == account))
            {
                writes.insert_small(
                    &prefixed(AUDIT_LAST_PREFIX, account.0),
                    &event.seq.to_be_bytes(),
                );
            }
        }
        writes.audit(events);
        self.write_raw(writes)
    }

    fn start_audit(&self, sealer: Sealer) {
        *self
            .commit
            .sealer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sealer);
        self.audit_started.store(true, Ordering::Release);
    }

    fn commit(&self) -> Arc<dyn Commit> {
        Arc::clone(&self.commit) as Arc<dyn Commit>
    }

    fn scan_accounts(
        &self,
        parts: usize,
        each: &(dyn Fn(Account) -> Result<()> + Sync),
    ) -> Result<()> {
        self.scan_parallel(
            ACCOUNT_PREFIX,
            parts,
            |(), v| each(codec::decode_account(&v)?),
            || (),
        )
        .map(drop)
    }

    fn scan_challenges(
        &self,
        parts: usize,
        each: &(dyn Fn(Challenge) -> Result<()> + Sync),
    ) -> Result<()> {
        self.scan_parallel(
            CHALLENGE_PREFIX,
            parts,
            |(), v| each(codec::decode_challenge(&v)?),
            || (),
        )
        .map(drop)
    }

    fn scan_messages(&self, each: &mut dyn FnMut(Message) -> Result<()>) -> Result<()> {
        self.scan(OUTBOX_PREFIX, &mut |v| each(codec::decode_message(v)?))
    }

    fn scan_dead_letters(&self, each: &mut dyn FnMut(DeadLetter) -> Result<()>) -> Result<()> {
        self.scan(DEAD_LETTER_PREFIX, &mut |v| {
            each(codec::decode_dead_letter(v)?)
        })
    }

    fn scan_clients(&self, each: &mut dyn FnMut(Client) -> Result<()>) -> Result<()> {
        self.scan(CLIENT_PREFIX, &mut |v| each(codec::decode_client(v)?))
    }

    fn scan_idempotency(
        &self,
        each: &mut dyn FnMut(IdempotencyRecord) -> Result<()>,
    ) -> Result<()> {
        self.scan(IDEMPOTENCY_PREFIX, &mut |v| {
            each(codec::decode_idempotency(v)?)
        })
    }

    fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        audit::head(&self.db)
    }

    fn scan_audit(
        &self,
        from: u64,
        each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
    ) -> Result<()> {
        audit::scan(&self.db, from, each)
    }

    fn audit_last(&self, account: AccountId) -> Result<Option<u64>> {
        audit::last(&self.db, account)
    }

    fn scan_account_audit(
        &self,
        account: AccountId,
        before: u64,
        each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
    ) -> Result<()> {
        audit::scan_account(&self.db, account, before, each)
    }

    fn clock_floor(&self) -> Result<Timestamp> {
        let Some(bytes) = self.db.get(CLOCK_KEY)? else {
            return Ok(Timestamp(0));
        };
        let bytes: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| EngineError::Corrupt("clock floor is not 8 bytes".into()))?;
        Ok(Timestamp(u64::from_be_bytes(bytes)))
    }

    fn save_clock_floor(&self, t: Timestamp) -> Result<()> {
        self.db.insert(CLOCK_KEY, &t.0.to_be_bytes())?;
        Ok(())
    }

    fn writable(&self) -> Result<()> {
        self.commit.health.observe();
        self.commit.health.check()
    }

    fn stats(&self) -> FlushStats {
        self.commit.lock().stats
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    fn flush(&self) -> Result<()> {
        let queued = self.commit.lock().requested;
        self.commit.wait(queued)?;
        self.db.flush()?;
        Ok(())
    }

    fn backup_to(&self, dir: &Path) -> Result<BackupSummary> {
        backup::write(self, dir)
    }
}

impl Drop for SledStore {
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
mod tests;
