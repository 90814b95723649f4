//! The port's second implementation: records in memory, for tests. A batch
//! is applied under one lock and is durable at once; the records live as
//! long as the [`MemoryStore`] (clones share them), so an engine dropped
//! and opened again on the same `MemoryStore` is a restart.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use crate::account::Account;
use crate::audit::{AuditRecord, EventKind, Numbered, Sealer};
use crate::challenge::Challenge;
use crate::client::Client;
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::idempotency::IdempotencyRecord;
use crate::outbox::{DeadLetter, Message};
use crate::store::{BackupSummary, Change, Changes, Commit, FlushStats, Store, Ticket};

/// An in-memory store. Cloning it shares the records.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Records>>,
}

#[derive(Debug, Default)]
struct Records {
    accounts: BTreeMap<[u8; 16], Account>,
    challenges: BTreeMap<[u8; 16], Challenge>,
    messages: BTreeMap<[u8; 16], Message>,
    dead_letters: BTreeMap<[u8; 16], DeadLetter>,
    clients: BTreeMap<[u8; 8], Client>,
    audit: BTreeMap<u64, AuditRecord>,
    audit_head: Option<(u64, [u8; 32])>,
    /// Seals the events written (from [`Store::start_audit`] on).
    sealer: Option<Sealer>,
    /// By (client, key).
    idempotency: BTreeMap<(String, String), IdempotencyRecord>,
    clock_floor: Timestamp,
    round: u64,
    writes: u64,
    /// Set by a test to make every write fail as a full disk would.
    refusing: Option<String>,
    /// Set by a test: writes are taken but never kept, as writes not yet
    /// flushed when the process dies.
    losing: bool,
}

/// Writes are durable when applied: every ticket is settled.
#[derive(Debug)]
struct Immediate;

impl Commit for Immediate {
    fn wait(&self, _ticket: Ticket) -> Result<()> {
        Ok(())
    }

    fn poll(&self, _ticket: Ticket, _waker: &Waker) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn flushed(&self) -> Ticket {
        Ticket::MAX
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on every write is refused with `why`, as by a full disk
    /// (`None` takes writes again). For tests of the refusal path.
    pub fn refuse_writes(&self, why: Option<&str>) {
        self.lock().refusing = why.map(str::to_owned);
    }

    /// From now on every write is taken (a ticket, no error) and dropped,
    /// as the writes in flight when a process is killed: a test then opens
    /// a new engine on what was kept (`false` keeps writes again).
    pub fn lose_writes(&self, losing: bool) {
        self.lock().losing = losing;
    }

    /// Records held: accounts, challenges, messages, dead letters, clients.
    pub fn counts(&self) -> [usize; 5] {
        let r = self.lock();
        [
            r.accounts.len(),
            r.challenges.len(),
            r.messages.len(),
            r.dead_letters.len(),
            r.clients.len(),
        ]
    }
}

impl Store for MemoryStore {
    fn write_audited(&self, changes: Changes<'_>, events: Numbered) -> Result<Ticket> {
        let mut r = self.lock();
        if let Some(why) = &r.refusing {
            return Err(EngineError::DiskFull(why.clone()));
        }
        // Sealed into a copy, taken only if every event seals: a refused
        // batch leaves the head where it was. Writes being lost are sealed
        // too (the engine numbered them), then dropped.
        let mut records = Vec::new();
        if !events.is_empty() {
            let mut sealer = r.sealer.clone().ok_or_else(crate::store::not_started)?;
            records = events
                .into_iter()
                .map(|event| sealer.seal(event))
                .collect::<Result<Vec<_>>>()?;
            r.sealer = Some(sealer);
        }
        if r.losing {
            return Ok(r.round);
        }
        if records
            .iter()
            .any(|r| r.event.kind == EventKind::Checkpoint)
        {
            r.audit_head = r.sealer.as_ref().map(Sealer::head);
        }
        for record in records {
            r.audit.insert(record.seq, record);
        }
        for change in changes.0 {
            match change {
                Change::Account(a, _) => {
                    r.accounts.insert(a.id.0, a.clone());
                }
                Change::RemoveAccount(id) => {
                    r.accounts.remove(&id.0);
                }
                Change::Challenge(c) => {
                    r.challenges.insert(c.id.0, c.clone());
                }
                Change::RemoveChallenge(id) => {
                    r.challenges.remove(&id.0);
                }
                Change::Message(m) => {
                    let mut m = m.clone();
                    // In flight is a state of one process, never stored.
                    m.in_flight = false;
                    r.messages.insert(m.id.0, m);
                }
                Change::RemoveMessage(id) => {
                    r.messages.remove(&id.0);
                }
                Change::DeadLetter(d) => {
                    r.dead_letters.insert(d.id.0, d.clone());
                }
                Change::Client(c) => {
                    r.clients.insert(c.info.id.0, c.clone());
                }
                Change::Decoy => {}
                Change::RemoveAudit(seq, _) => {
                    r.audit.remove(&seq);
                }
                Change::Idempotency(record) => {
                    let at = (record.client.clone(), record.key.clone());
                    r.idempotency.insert(at, record.clone());
                }
                Change::RemoveIdempotency(client, key) => {
                    r.idempotency.remove(&(client.to_owned(), key.to_owned()));
                }
            }
        }
        r.round += 1;
        r.writes += 1;
        Ok(r.round)
    }

    fn start_audit(&self, sealer: Sealer) {
        self.lock().sealer = Some(sealer);
    }

    fn commit(&self) -> Arc<dyn Commit> {
        Arc::new(Immediate)
    }

    fn scan_accounts(
        &self,
        _parts: usize,
        each: &(dyn Fn(Account) -> Result<()> + Sync),
    ) -> Result<()> {
        let all: Vec<Account> = self.lock().accounts.values().cloned().collect();
        all.into_iter().try_for_each(each)
    }

    fn scan_challenges(
        &self,
        _parts: usize,
        each: &(dyn Fn(Challenge) -> Result<()> + Sync),
    ) -> Result<()> {
        let all: Vec<Challenge> = self.lock().challenges.values().cloned().collect();
        all.into_iter().try_for_each(each)
    }

    fn scan_messages(&self, each: &mut dyn FnMut(Message) -> Result<()>) -> Result<()> {
        let all: Vec<Message> = self.lock().messages.values().cloned().collect();
        all.into_iter().try_for_each(each)
    }

    fn scan_dead_letters(&self, each: &mut dyn FnMut(DeadLetter) -> Result<()>) -> Result<()> {
        let all: Vec<DeadLetter> = self.lock().dead_letters.values().cloned().collect();
        all.into_iter().try_for_each(each)
    }

    fn scan_clients(&self, each: &mut dyn FnMut(Client) -> Result<()>) -> Result<()> {
        let all: Vec<Client> = self.lock().clients.values().cloned().collect();
        all.into_iter().try_for_each(each)
    }

    fn scan_idempotency(
        &self,
        each: &mut dyn FnMut(IdempotencyRecord) -> Result<()>,
    ) -> Result<()> {
        let all: Vec<IdempotencyRecord> = self.lock().idempotency.values().cloned().collect();
        all.into_iter().try_for_each(each)
    }

    fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        Ok(self.lock().audit_head)
    }

    fn scan_audit(
        &self,
        from: u64,
        each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
    ) -> Result<()> {
        let all: Vec<AuditRecord> = self
            .lock()
            .audit
            .range(from..)
            .map(|(_, r)| r.clone())
            .collect();
        for record in all {
            if !each(record)? {
                break;
            }
        }
        Ok(())
    }

    fn audit_last(&self, _account: AccountId) -> Result<Option<u64>> {
        // Events are found by scanning here: no links needed.
        Ok(None)
    }

    fn scan_account_audit(
        &self,
        account: AccountId,
        before: u64,
        each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
    ) -> Result<()> {
        let all: Vec<AuditRecord> = self
            .lock()
            .audit
            .range(..before)
            .rev()
            .filter(|(_, r)| r.event.account == Some(account))
            .map(|(_, r)| r.clone())
            .collect();
        for record in all {
            if !each(record)? {
                break;
            }
        }
        Ok(())
    }

    fn clock_floor(&self) -> Result<Timestamp> {
        Ok(self.lock().clock_floor)
    }

    fn save_clock_floor(&self, t: Timestamp) -> Result<()> {
        let mut r = self.lock();
        r.clock_floor = r.clock_floor.max(t);
        Ok(())
    }

    fn writable(&self) -> Result<()> {
        match &self.lock().refusing {
            Some(why) => Err(EngineError::DiskFull(why.clone())),
            None => Ok(()),
        }
    }

    fn stats(&self) -> FlushStats {
        let r = self.lock();
        FlushStats {
            flushes: r.writes,
            writes: r.writes,
            ..FlushStats::default()
        }
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(0)
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn backup_to(&self, _dir: &Path) -> Result<BackupSummary> {
        Err(EngineError::Storage(
            "the in-memory store writes no backup files".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditKey, Chain, Event};
    use crate::id::ChallengeId;
    use crate::internals::sample_account;
    use crate::secret::CodeKey;

    fn seqs(store: &MemoryStore) -> Vec<u64> {
        let mut seqs = Vec::new();
        store
            .scan_audit(0, &mut |r| {
                seqs.push(r.seq);
                Ok(true)
            })
            .unwrap();
        seqs
    }

    #[test]
    fn lost_events_are_sealed_all_the_same_so_later_ones_follow_them() {
        let store = MemoryStore::new();
        let key = AuditKey::derive(&CodeKey::new([4; 32])).unwrap();
        store.start_audit(Sealer::new(key.into(), (0, [0; 32])));
        let event = || Event::new(EventKind::CodeIssued, None);
        let mut chain = Chain::resume(None, 0);
        let mut write = |store: &MemoryStore| {
            let (events, next) = chain.number(vec![event(), event()], Timestamp(1), 0);
            chain.advance(next);
            store.write_audited(Changes::default(), events)
        };
        store.lose_writes(true);
        write(&store).unwrap();
        store.lose_writes(false);
        write(&store).unwrap();
        assert_eq!(seqs(&store), [3, 4], "1 and 2 were lost; 3 follows them");
        // A batch out of order is refused whole, and the head stays.
        let (stale, _) = Chain::resume(None, 0).number(vec![event()], Timestamp(1), 0);
        let refused = store.write_audited(Changes::default(), stale);
        assert!(
            matches!(refused, Err(EngineError::Corrupt(_))),
            "{refused:?}"
        );
        write(&store).unwrap();
        assert_eq!(seqs(&store), [3, 4, 5, 6]);
    }

    #[test]
    fn a_batch_is_applied_whole_in_order_and_is_durable_at_once() {
        let store = MemoryStore::new();
        let mut account = sample_account();
        let mut changes = Changes::default();
        changes.push(Change::Account(&account, None));
        changes.push(Change::RemoveChallenge(ChallengeId([1; 16])));
        changes.push(Change::Decoy);
        let ticket = store.write(changes).unwrap();
        store.commit().wait(ticket).unwrap();
        account.updated_at = Timestamp(99);
        store
            .write(Changes(vec![Change::Account(&account, None)]))
            .unwrap();
        assert_eq!(store.counts(), [1, 0, 0, 0, 0]);
        let mut seen = Vec::new();
        store
            .scan_accounts(2, &|a| {
                assert_eq!(a.updated_at, Timestamp(99), "the later change wins");
                Ok(())
            })
            .unwrap();
        store
            .scan_clients(&mut |c| {
                seen.push(c.info.id);
                Ok(())
            })
            .unwrap();
        assert!(seen.is_empty());
    }

    #[test]
    fn a_refused_write_changes_nothing_and_clones_share_records() {
        let store = MemoryStore::new();
        let other = store.clone();
        store.refuse_writes(Some("1 MiB free"));
        let account = sample_account();
        assert!(matches!(
            store.write(Changes(vec![Change::Account(&account, None)])),
            Err(EngineError::DiskFull(_))
        ));
        assert!(store.writable().is_err());
        assert_eq!(other.counts(), [0; 5]);
        store.refuse_writes(None);
        store
            .write(Changes(vec![Change::Account(&account, None)]))
            .unwrap();
        assert_eq!(other.counts(), [1, 0, 0, 0, 0]);
        store.save_clock_floor(Timestamp(7)).unwrap();
        store.save_clock_floor(Timestamp(5)).unwrap();
        assert_eq!(
            other.clock_floor().unwrap(),
            Timestamp(7),
            "the floor never goes back"
        );
    }
}
