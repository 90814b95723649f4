//! The audit trail as the engine keeps it: events numbered into the chain
//! and written in the same batch as their change (the store's writer seals
//! them, `crate::audit::seal`), the chain's head recovered on open and
//! handed to the store, checkpoints, reading (only what is durable), pruning.

use smallvec::smallvec;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::audit::{
    AuditKey, AuditPublicKey, AuditRecord, Break, Chain, Event, EventKind, Events, Report, Sealer,
    Unsealed, Verifier,
};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, IdHasher};
use crate::keys::{AUDIT_LOGIN, subkey};
use crate::secret::CodeKey;
use crate::store::{Change, Changes, Durable, Ticket};

use super::{Engine, lock};

/// The most events one read returns.
pub const MAX_EVENTS_PER_READ: usize = 1_000;

/// The chain's writer side.
pub(super) struct AuditLog {
    /// Signs checkpoints: shared with the store's writer, which seals.
    key: Arc<AuditKey>,
    /// Keys the HMAC that names unknown logins.
    login_key: [u8; 32],
    state: Mutex<LogState>,
}

struct LogState {
    chain: Chain,
    /// Writes not yet known durable: their ticket and last sequence number.
    pending: VecDeque<(Ticket, u64)>,
    /// Every event up to here is durable.
    durable: u64,
    /// Recent accounts' newest events, with the ticket of the write that
    /// holds each: what links the next event without reading the store,
    /// and the only answer while that write is not yet flushed. Bounded by
    /// [`LINKS_KEPT`]: past it, entries already flushed are dropped.
    last: HashMap<AccountId, (u64, Ticket), IdHasher>,
}

/// An account and the sequence number of its newest event.
type Newest = (AccountId, u64);

/// How many accounts' newest events [`LogState::last`] keeps before it
/// drops those the store can answer for (~2.5 MB at most).
const LINKS_KEPT: usize = 1 << 16;

/// How many writes [`LogState::pending`] holds before the flushed ones are
/// let go without waiting for a reader to ask (each is 16 bytes; unread,
/// they grew by one per write for ever).
const PENDING_KEPT: usize = 1 << 10;

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    pub(super) fn new(code_key: &CodeKey) -> Result<AuditLog> {
        Ok(AuditLog {
            key: Arc::new(AuditKey::derive(code_key)?),
            login_key: subkey(code_key, AUDIT_LOGIN),
            state: Mutex::new(LogState {
                chain: Chain::resume(None, 0),
                pending: VecDeque::new(),
                durable: 0,
                last: HashMap::default(),
            }),
        })
    }
}

impl Engine {
    /// Writes `changes` and `events` as one batch: the events get their
    /// places in the chain (and a checkpoint when one is due) under the
    /// log's lock, which is held until the batch is queued, so the chain's
    /// order is the store's. A change made for a request with an
    /// idempotency key carries the key's claim in the same batch
    /// (`idempotency.rs`); events alone (a refusal recorded) do not.
    pub(super) fn write(&self, changes: Changes<'_>, events: Events) -> Result<Ticket> {
        // On a cluster the key was taken before the request ran (`take`).
        if !changes.is_empty()
            && self.remote.is_none()
            && let Some(claim) = crate::audit::current_claim()
        {
            return self.write_claimed(&claim, changes, events);
        }
        self.write_sealed(changes, events)
    }

    /// [`Engine::write`] without a claim. An account record written goes
    /// with the number of the account's newest event, which the store may
    /// keep in it instead of a pointer of its own: so a write of an account
    /// takes the log's lock even without events, lest it carry an older
    /// number than a write queued before it.
    pub(super) fn write_sealed(&self, mut changes: Changes<'_>, events: Events) -> Result<Ticket> {
        let accounts = changes.0.iter().any(|c| matches!(c, Change::Account(..)));
        if !crate::audit::RECORDED || (events.is_empty() && !accounts) {
            return self.store.write(changes);
        }
        let mut log = lock(&self.audit.state);
        if events.is_empty() {
            self.note_newest(&log, &mut changes, &[])?;
            return self.store.write(changes);
        }
        let now = self.now();
        let every = self.config.audit.checkpoint_every;
        // Numbered here, in the order the batches are queued; the store's
        // writer hashes and signs them in the same order (`audit::seal`).
        let (mut events, next) = log.chain.number(events, now, every);
        // Link each event to its account's previous one.
        if log.last.len() >= LINKS_KEPT {
            let flushed = self.commit.flushed();
            log.last.retain(|_, (_, ticket)| *ticket > flushed);
        }
        for i in 0..events.len() {
            let Some(account) = events[i].account() else {
                continue;
            };
            // The account's previous event: earlier in this batch, or
            // remembered, or (for an account not seen lately) stored.
            events[i].link = match events[..i]
                .iter()
                .rev()
                .find(|earlier| earlier.account() == Some(account))
            {
                Some(earlier) => Some(earlier.seq),
                None => match log.last.get(&account) {
                    Some(&(seq, _)) => Some(seq),
                    None => self.store.audit_last(account)?,
                },
            };
        }
        self.note_newest(&log, &mut changes, &events)?;
        // What `last` learns once the write is queued: kept without an
        // allocation for the usual batch of one event.
        let (one, many): (Option<Newest>, Vec<Newest>) = match &events[..] {
            [e] => (e.account().map(|a| (a, e.seq)), Vec::new()),
            _ => (
                None,
                events
                    .iter()
                    .filter_map(|e| Some((e.account()?, e.seq)))
                    .collect(),
            ),
        };
        // The store records the head with each write round that holds a
        // checkpoint, not with each batch: one write fewer per operation
        // (sled rewrites the page it sits on). Recovery reads on from it
        // to the last event.
        let ticket = self.store.write_audited(changes, events)?;
        log.pending.push_back((ticket, next.seq));
        if log.pending.len() >= PENDING_KEPT {
            self.settle(&mut log);
        }
        for (account, seq) in one.into_iter().chain(many) {
            log.last.insert(account, (seq, ticket));
        }
        log.chain.advance(next);
        Ok(ticket)
    }

    /// Fills in, for each account record in `changes`, the number of the
    /// account's newest event: its last in `records` (this batch), else the
    /// one remembered, else the store's (every write of that account is
    /// then flushed: the remembered ones are kept until they are).
    fn note_newest(
        &self,
        log: &LogState,
        changes: &mut Changes<'_>,
        events: &[Unsealed],
    ) -> Result<()> {
        for change in &mut changes.0 {
            if let Change::Account(account, newest) = change {
                let id = account.id;
                *newest = match events.iter().rev().find(|e| e.account() == Some(id)) {
                    Some(e) => Some(e.seq),
                    None => match log.last.get(&id) {
                        Some(&(seq, _)) => Some(seq),
                        None => self.store.audit_last(id)?,
                    },
                };
            }
        }
        Ok(())
    }

    /// Records one event that changes nothing else (an operator's action
    /// outside the engine: a key rotated, a restore).
    pub fn record_event(
        &self,
        kind: EventKind,
        account: Option<AccountId>,
        details: &[(&'static str, &str)],
    ) -> Result<Durable<()>> {
        let mut event = Event::new(kind, account);
        for (key, value) in details {
            event = event.with(key, (*value).to_owned());
        }
        let ticket = self.write(Changes::default(), smallvec![event])?;
        Ok(self.durable((), ticket))
    }

    /// A keyed hash naming a login identifier that matched no account, so
    /// repeated attempts on one identifier can be linked without keeping it.
    pub(super) fn login_fingerprint(&self, login: &str) -> String {
        // HMAC takes a key of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.audit.login_key) else {
            return String::new();
        };
        mac.update(login.as_bytes());
        crate::hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Finds the chain's end on open: from the head recorded with the last
    /// checkpoint, which must still be there unchanged, on to the last
    /// event (at most about `checkpoint_every` further).
    pub(super) fn recover_audit(&self) -> Result<()> {
        let head = self.store.audit_head()?;
        let every = self.config.audit.checkpoint_every;
        let from = head.map_or(0, |(seq, _)| seq.saturating_sub(every.saturating_mul(2)));
        let mut last = None;
        let mut since_checkpoint = 0;
        let mut head_found = head.is_none();
        self.store.scan_audit(from, &mut |r| {
            since_checkpoint = if r.event.kind == EventKind::Checkpoint {
                0
            } else {
                since_checkpoint + 1
            };
            if let Some((seq, hash)) = head
                && r.seq == seq
            {
                head_found = r.hash == hash;
                if !head_found {
                    return Ok(false);
                }
            }
            last = Some(r);
            Ok(true)
        })?;
        if let (Some((seq, _)), false) = (head, head_found) {
            return Err(EngineError::Corrupt(format!(
                "the audit chain's head is event {seq}, which is missing or differs: \
                 run `otpd audit verify`"
            )));
        }
        let mut state = lock(&self.audit.state);
        let Some(last) = last else {
            self.store
                .start_audit(Sealer::new(Arc::clone(&self.audit.key), (0, [0; 32])));
            return Ok(());
        };
        state.durable = last.seq;
        state.chain = Chain::resume(Some(&last), since_checkpoint);
        self.store.start_audit(Sealer::new(
            Arc::clone(&self.audit.key),
            (last.seq, last.hash),
        ));
        Ok(())
    }

    /// Writes a signed checkpoint if events arrived since the last one and
    /// `audit.checkpoint_interval` has passed (or `force`); the write to
    /// wait for, if there was one.
    pub fn audit_checkpoint(&self, force: bool) -> Result<Option<Durable<()>>> {
        let now = self.now();
        let mut log = lock(&self.audit.state);
        let due = now.0.saturating_sub(log.chain.last_checkpoint_at.0)
            >= u64::try_from(self.config.audit.checkpoint_interval.as_millis()).unwrap_or(u64::MAX);
        if log.chain.since_checkpoint == 0 || !(due || force) {
            return Ok(None);
        }
        let mut next = log.chain.clone();
        let checkpoint = next.number_checkpoint(now, self.config.audit.checkpoint_every);
        let ticket = self
            .store
            .write_audited(Changes::default(), smallvec![checkpoint])?;
        log.pending.push_back((ticket, next.seq));
        if log.pending.len() >= PENDING_KEPT {
            self.settle(&mut log);
        }
        log.chain.advance(next);
        Ok(Some(self.durable((), ticket)))
    }

    /// Every event up to this sequence number is durable; later ones may not be.
    pub fn audit_durable_seq(&self) -> u64 {
        let mut log = lock(&self.audit.state);
        self.settle(&mut log);
        log.durable
    }

    /// Moves the durable mark past every write the store has flushed.
    fn settle(&self, log: &mut LogState) {
        let flushed = self.commit.flushed();
        while let Some(&(ticket, seq)) = log.pending.front() {
            if ticket > flushed {
                break;
            }
            log.durable = seq;
            log.pending.pop_front();
        }
    }

    /// Entries the audit log holds in memory (for [`Engine::stats`]).
    pub(super) fn audit_tracked(&self) -> u64 {
        let log = lock(&self.audit.state);
        (log.pending.len() + log.last.len()) as u64
    }

    /// `account`'s durable events before sequence number `before` (all when
    /// `None`), newest first, at most `limit` (capped at 1,000).
    pub fn account_events(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>> {
        let durable = self.audit_durable_seq();
        let before = before.unwrap_or(u64::MAX).min(durable.saturating_add(1));
        let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
        let mut out = Vec::new();
        self.store.scan_account_audit(account, before, &mut |r| {
            out.push(r);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Durable events after sequence number `after`, oldest first, at most
    /// `limit` (capped at 1,000): the feed a SIEM follows.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let durable = self.audit_durable_seq();
        let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
        let mut out = Vec::new();
        if after >= durable {
            return Ok(out);
        }
        self.store.scan_audit(after + 1, &mut |r| {
            if r.seq > durable {
                return Ok(false);
            }
            out.push(r);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Runs `each` on every durable event from sequence number `from` on, in
    /// order, while it returns `true` (exports).
    pub fn scan_events(
        &self,
        from: u64,
        each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
    ) -> Result<()> {
        let durable = self.audit_durable_seq();
        self.store.scan_audit(from, &mut |r| {
            if r.seq > durable {
                return Ok(false);
            }
            each(r)
        })
    }

    /// Where an export of events from `since` on starts so that it
    /// verifies alone: the newest checkpoint at or before `since` (its
    /// signature anchors what follows), or the first event.
    pub fn export_start(&self, since: Timestamp) -> Result<u64> {
        let mut start = 0;
        self.store.scan_audit(0, &mut |r| {
            if r.at > since {
                return Ok(false);
            }
            if r.event.kind == EventKind::Checkpoint {
                start = r.seq;
            }
            Ok(true)
        })?;
        Ok(start)
    }

    /// Checks the whole stored chain against its recorded head and the
    /// checkpoint key (`otpd audit verify`).
    pub fn verify_audit(&self) -> Result<std::result::Result<Report, Break>> {
        let head = self.store.audit_head()?;
        let key = self.audit.key.public();
        let mut verifier = Verifier::new(&key, self.config.audit.checkpoint_every);
        // The chain must reach the head recorded with the last checkpoint.
        verifier.expect_at_least(head);
        let mut broken = None;
        self.store
            .scan_audit(0, &mut |r| match verifier.check(&r) {
                Ok(()) => Ok(true),
                Err(b) => {
                    broken = Some(b);
                    Ok(false)
                }
            })?;
        Ok(match broken {
            Some(b) => Err(b),
            None => verifier.finish(None),
        })
    }

    /// The key that verifies this store's checkpoints.
    pub fn audit_public_key(&self) -> AuditPublicKey {
        self.audit.key.public()
    }

    /// Signs `(seq, hash)`: the trailer that closes an export, so a
    /// truncated export is detected.
    pub fn sign_audit_head(&self, seq: u64, hash: &[u8; 32]) -> [u8; 64] {
        self.audit.key.sign(seq, hash)
    }

    /// Deletes events older than the retention, keeping the chain verifiable
    /// from the newest checkpoint before the cutoff. Returns how many went.
    pub fn prune_audit(&self) -> Result<u64> {
        let Some(retention) = self.config.audit.retention else {
            return Ok(0);
        };
        let cutoff = Timestamp(
            self.now()
                .0
                .saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX)),
        );
        // The newest checkpoint older than the cutoff: the new anchor.
        let mut anchor = None;
        self.store.scan_audit(0, &mut |r| {
            if r.at >= cutoff {
                return Ok(false);
            }
            if r.event.kind == EventKind::Checkpoint {
                anchor = Some(r.seq);
            }
            Ok(true)
        })?;
        let Some(anchor) = anchor else {
            return Ok(0);
        };
        let mut first = None;
        loop {
            let mut doomed = Vec::new();
            self.store.scan_audit(0, &mut |r| {
                if r.seq >= anchor {
                    return Ok(false);
                }
                doomed.push((r.seq, r.event.account));
                Ok(doomed.len() < 10_000)
            })?;
            let Some(&(lowest, _)) = doomed.first() else {
                break;
            };
            first.get_or_insert(lowest);
            let changes = Changes(
                doomed
                    .into_iter()
                    .map(|(seq, account)| Change::RemoveAudit(seq, account))
                    .collect(),
            );
            // The next pass reads the store: these must be gone from it by
            // then, or it finds them again.
            let ticket = self.store.write(changes)?;
            self.commit.wait(ticket)?;
        }
        // Sequence numbers have no gaps, and a store keeps events in
        // blocks that removing one number may delete whole: every event
        // from the first one kept until now up to the anchor is gone.
        Ok(first.map_or(0, |first| anchor - first))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::EngineConfig;
    use crate::engine::NewAccount;
    use crate::identity::Phone;
    use crate::secret::CodeKey;
    use crate::store::Durable;

    /// A write of an account's record without events (none of the
    /// engine's operations makes one today) must still carry the account's
    /// newest event, or the record written over one that held it would
    /// hide the account's events from every listing: also after a restart,
    /// when the number comes from the store, not from memory.
    #[test]
    fn an_account_written_without_events_keeps_its_newest_event() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let mut config = EngineConfig::for_tests();
            config.store.path = Some(dir.path().join("store"));
            Engine::open(
                config,
                CodeKey::new([5; 32]),
                Arc::new(ManualClock::new(Timestamp(1_795_392_000_000))),
                crate::seeded_rng([6; 32]),
            )
            .unwrap()
        };
        let engine = open();
        let registered = engine
            .register(NewAccount::for_tests(
                &Phone::parse("+351912345000").unwrap(),
            ))
            .and_then(Durable::wait)
            .unwrap();
        let id = registered.id;
        let events = || {
            engine.flush().unwrap();
            engine.account_events(id, None, 100).unwrap().len()
        };
        assert_eq!(events(), 1, "registered, its record holding the event");
        let rewrite = |engine: &Engine| {
            let account = engine.accounts.get(&id).unwrap().clone();
            let ticket = engine
                .write(
                    Changes(vec![Change::Account(&account, None)]),
                    Events::new(),
                )
                .unwrap();
            engine.durable((), ticket).wait().unwrap();
            engine.flush().unwrap();
            (
                engine.account_events(id, None, 100).unwrap().len(),
                engine.store.audit_last(id).unwrap(),
            )
        };
        assert_eq!(rewrite(&engine), (1, Some(1)), "the number from memory");
        drop(engine);
        let engine = open();
        assert!(lock(&engine.audit.state).last.is_empty());
        assert_eq!(rewrite(&engine), (1, Some(1)), "the number from the store");
    }
}
