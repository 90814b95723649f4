//! The per-account transaction: a change built on a copy of the account while its entry is held, then written as one batch and applied to memory.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use smallvec::smallvec;

use crate::account::Account;
use crate::audit::{Event as AuditEvent, EventKind, Events};
use crate::challenge::Challenge;
use crate::clock::Timestamp;
use crate::cluster::slot;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::lockout::{Event, Transition};
use crate::outbox::{DeadLetter, Message};
use crate::store::codec::{encode_challenge, encode_message};
use crate::store::{Change, Changes, Durable};
use crate::terms::{Channel, MessageId};

use super::Engine;
use super::destinations::Destination;
use super::remote::{Entry, Remote, challenge_ttl, encode_record};

/// A change being prepared for one account.
pub(super) struct Tx {
    pub(super) account: Account,
    pub(super) dirty: bool,
    /// The account record itself changed (not only its challenges or messages).
    pub(super) account_changed: bool,
    pub(super) locked_now: bool,
    pub(super) puts: Vec<Challenge>,
    pub(super) removes: Vec<ChallengeId>,
    pub(super) unindex: Vec<String>,
    pub(super) messages: Vec<Message>,
    pub(super) message_removes: Vec<MessageId>,
    pub(super) dead: Vec<DeadLetter>,
    /// Audit events, written with the change.
    pub(super) events: Events,
    /// On a cluster: the challenges of the account's slot read so far. Any
    /// read after the account's is safe: a challenge changed since makes
    /// the account's version move, so the write conflicts and the change
    /// is computed again.
    fetched: Option<RefCell<Vec<Challenge>>>,
    /// On a cluster: the queued messages read with the account.
    fetched_messages: Vec<Message>,
    /// On a cluster: a read of a challenge that failed (the change fails with it).
    failure: RefCell<Option<EngineError>>,
    /// Issues this call's limits were charged for, by any computation of
    /// the change (shared by them: a change computed again after a
    /// conflict charges nothing again).
    admitted: Rc<RefCell<Vec<(Channel, String)>>>,
    /// SMS destinations whose code was verified: counted for the pumping
    /// alarm once the change is written.
    pub(super) verified_sms: Vec<String>,
}

impl Tx {
    pub(super) fn new(account: Account) -> Self {
        Self {
            account,
            dirty: false,
            account_changed: false,
            locked_now: false,
            puts: Vec::new(),
            removes: Vec::new(),
            unindex: Vec::new(),
            messages: Vec::new(),
            message_removes: Vec::new(),
            dead: Vec::new(),
            events: Events::new(),
            fetched: None,
            fetched_messages: Vec::new(),
            failure: RefCell::new(None),
            admitted: Rc::default(),
            verified_sms: Vec::new(),
        }
    }

    /// Whether this call was charged for an issue by `channel` to `destination`.
    pub(super) fn admitted(&self, channel: Channel, destination: &str) -> bool {
        self.admitted
            .borrow()
            .iter()
            .any(|(c, d)| *c == channel && d == destination)
    }

    /// Notes that this call was charged for an issue by `channel` to `destination`.
    pub(super) fn note_admitted(&self, channel: Channel, destination: &str) {
        self.admitted
            .borrow_mut()
            .push((channel, destination.to_owned()));
    }

    /// Records an audit event about this account, written with the change.
    pub(super) fn record(&mut self, event: AuditEvent) {
        self.dirty = true;
        self.events.push(event);
    }

    /// An event of `kind` about this account, by the current actor.
    pub(super) fn event(&self, kind: EventKind) -> AuditEvent {
        AuditEvent::new(kind, Some(self.account.id))
    }

    pub(super) fn account_mut(&mut self) -> &mut Account {
        self.dirty = true;
        self.account_changed = true;
        &mut self.account
    }

    pub(super) fn put_message(&mut self, message: Message) {
        self.dirty = true;
        self.messages.retain(|m| m.id != message.id);
        self.messages.push(message);
    }

    pub(super) fn remove_message(&mut self, id: MessageId) {
        self.dirty = true;
        self.messages.retain(|m| m.id != id);
        self.message_removes.push(id);
    }

    pub(super) fn put(&mut self, challenge: Challenge) {
        self.dirty = true;
        self.puts.retain(|c| c.id != challenge.id);
        self.puts.push(challenge);
    }

    /// A challenge whose message was reported sent (in memory only) tells
    /// the store so with this write, and its message record goes.
    fn record_sent_reports(&mut self) {
        for c in &mut self.puts {
            if let Some(message) = c.sent_unrecorded() {
                c.message = None;
                self.message_removes.push(message);
            }
        }
    }

    pub(super) fn lockout(&mut self, event: Event, now: Timestamp, engine: &Engine) -> Transition {
        let failure = matches!(event, Event::PinFailed | Event::CodeFailed);
        let reason = if matches!(event, Event::PinFailed) {
            "pin_failures"
        } else {
            "code_failures"
        };
        let before = (self.dirty, self.account_changed);
        let transition = self
            .account_mut()
            .lockout
            .apply(event, now, &engine.config.lockout);
        if failure && transition == Transition::LockedNow {
            self.locked_now = true;
            let locked = self.event(EventKind::Locked).with("reason", reason);
            self.record(locked);
            engine.notify(self, crate::outbox::Notice::Locked, None, now);
        }
        if transition == Transition::Refused {
            // Nothing changed; don't write for it.
            (self.dirty, self.account_changed) = before;
        }
        transition
    }
}

/// A change's part for the send queue: messages queued and dropped, and
/// dead letters (both backends' writes carry it).
fn queue_changes<'a>(
    changes: &mut Changes<'a>,
    messages: &'a [Message],
    removes: &'a [MessageId],
    dead: &'a [DeadLetter],
) {
    changes.0.extend(messages.iter().map(Change::Message));
    changes
        .0
        .extend(removes.iter().map(|id| Change::RemoveMessage(*id)));
    changes.0.extend(dead.iter().map(Change::DeadLetter));
}

impl Engine {
    /// Runs `change` on a copy of the account while holding its entry, then
    /// writes and applies the copy. Nothing changes if `change` fails.
    pub(super) fn mutate<T>(
        &self,
        id: AccountId,
        change: impl FnMut(&mut Tx, Timestamp) -> Result<T>,
    ) -> Result<Durable<T>> {
        self.mutate_then(id, &[], change, |value, _, _| value)
    }

    /// As [`Engine::mutate`], about challenge `challenge` of the account:
    /// on a cluster it is read with the account, in the same round trip.
    pub(super) fn mutate_about<T>(
        &self,
        id: AccountId,
        challenge: ChallengeId,
        change: impl FnMut(&mut Tx, Timestamp) -> Result<T>,
    ) -> Result<Durable<T>> {
        self.mutate_then(id, &[challenge], change, |value, _, _| value)
    }

    /// As [`Engine::mutate`], about queued message `message` of the account
    /// (and its challenge, if known): on a cluster both are read with the
    /// account, in the same round trip.
    pub(super) fn mutate_message<T>(
        &self,
        id: AccountId,
        challenge: Option<ChallengeId>,
        message: MessageId,
        change: impl FnMut(&mut Tx, Timestamp) -> Result<T>,
    ) -> Result<Durable<T>> {
        if let Some(remote) = &self.remote {
            let preload: Vec<ChallengeId> = challenge.into_iter().collect();
            return self.mutate_remote(
                remote,
                (id, None),
                &preload,
                &[message],
                change,
                |v, _, _| v,
            );
        }
        self.mutate_then(id, &[], change, |value, _, _| value)
    }

    /// As [`Engine::mutate`]; `finish` then sees the account as the change
    /// left it, still held (to describe it to the caller without a second
    /// read). `preload` names challenges the change will read (a cluster
    /// reads them with the account). On a cluster `change` runs again, on
    /// a fresh read, whenever another writer changed the account first.
    pub(super) fn mutate_then<T, U>(
        &self,
        id: AccountId,
        preload: &[ChallengeId],
        mut change: impl FnMut(&mut Tx, Timestamp) -> Result<T>,
        finish: impl FnOnce(T, &Account, Timestamp) -> U,
    ) -> Result<Durable<U>> {
        if let Some(remote) = &self.remote {
            return self.mutate_remote(remote, (id, None), preload, &[], change, finish);
        }
        let mut entry = self
            .accounts
            .get_mut(&id)
            .ok_or(EngineError::AccountNotFound)?;
        self.admit_account(&entry)?;
        let now = self.now();
        let mut tx = Tx::new(Account::clone(&entry));
        let value = match change(&mut tx, now) {
            Ok(value) => value,
            Err(e) => return Err(self.refused(id, e)),
        };
        if !tx.dirty {
            self.count_verified(&tx.verified_sms);
            return Ok(self.ready(finish(value, &entry, now)));
        }
        tx.record_sent_reports();
        let mut account = tx.account;
        // A delivery report or a claim touches only challenges and messages:
        // the account record is rewritten only when it changed.
        if tx.account_changed {
            account.updated_at = now;
        }
        let mut changes = Changes::default();
        if tx.account_changed {
            changes.push(Change::Account(&account, None));
        }
        changes.0.extend(tx.puts.iter().map(Change::Challenge));
        changes
            .0
            .extend(tx.removes.iter().map(|id| Change::RemoveChallenge(*id)));
        queue_changes(&mut changes, &tx.messages, &tx.message_removes, &tx.dead);
        let ticket = self.write(changes, tx.events)?;
        for c in tx.puts {
            // An update (a verify, a delivery report) reuses the box.
            match self.challenges.get_mut(&c.id) {
                Some(mut held) => **held = c,
                None => {
                    self.challenges.insert(c.id, Box::new(c));
                }
            }
        }
        for removed in tx.removes {
            self.challenges.remove(&removed);
        }
        for removed in tx.message_removes {
            self.outbox.remove(&removed);
        }
        for m in tx.messages {
            self.outbox.insert(m);
        }
        for key in tx.unindex {
            self.index.release(&key, id);
        }
        if tx.locked_now {
            self.lockouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.count_verified(&tx.verified_sms);
        **entry = account;
        Ok(self.durable(finish(value, &entry, now), ticket))
    }

    /// Counts codes verified by SMS for the pumping alarm (after their write).
    fn count_verified(&self, destinations: &[String]) {
        for destination in destinations {
            self.limits.verified_sms(destination);
        }
    }

    /// A change that failed: a limit that refused a code for this account
    /// is a security event (nothing else of the change happened).
    pub(super) fn refused(&self, id: AccountId, e: EngineError) -> EngineError {
        if let Some(reason) = e.limit_reason() {
            let event = AuditEvent::new(EventKind::RateLimited, Some(id)).with("reason", reason);
            let _ = self.write(Changes::default(), smallvec![event]);
        }
        e
    }

    /// [`Engine::mutate_then`] on a cluster: read the account's slot,
    /// compute the change, write it back if nobody wrote in between (else
    /// again, from a fresh read); then this node's part (the audit events,
    /// dead letters) in its embedded store, and the send queue's due
    /// indexes.
    fn mutate_remote<T, U>(
        &self,
        remote: &Remote,
        (id, holder): (AccountId, Option<&Destination>),
        preload: &[ChallengeId],
        messages: &[MessageId],
        mut change: impl FnMut(&mut Tx, Timestamp) -> Result<T>,
        finish: impl FnOnce(T, &Account, Timestamp) -> U,
    ) -> Result<Durable<U>> {
        let admitted: Rc<RefCell<Vec<(Channel, String)>>> = Rc::default();
        for _ in 0..slot::MAX_ATTEMPTS {
            let loaded = remote.load_with(id, preload, messages)?;
            let account = match (loaded.account, holder) {
                (Some(account), _) => account,
                // A destination's holder is made by its first change.
                (None, Some(destination)) => self.new_holder(id, destination),
                (None, None) => return Err(EngineError::AccountNotFound),
            };
            self.admit_account(&account)?;
            let now = self.now();
            let mut tx = Tx::new(account);
            tx.fetched = Some(RefCell::new(loaded.challenges));
            tx.fetched_messages = loaded.messages;
            tx.admitted = Rc::clone(&admitted);
            let outcome = change(&mut tx, now);
            if let Some(failure) = tx.failure.take() {
                return Err(failure);
            }
            let value = match outcome {
                Ok(value) => value,
                Err(e) => return Err(self.refused(id, e)),
            };
            if !tx.dirty {
                self.count_verified(&tx.verified_sms);
                return Ok(self.ready(finish(value, &tx.account, now)));
            }
            tx.record_sent_reports();
            if tx.account_changed {
                tx.account.updated_at = now;
            }
            let keys = remote.keys();
            let mut write = if tx.account_changed {
                let erase = self.erasure_due(&tx.account, now);
                slot::Change::account_expiring(encode_record(&tx.account), erase)
            } else {
                slot::Change::keep()
            };
            for c in &tx.puts {
                let ttl = challenge_ttl(c, now);
                write = write.put(keys.challenge(c.id), encode_challenge(c), Some(ttl));
            }
            for removed in &tx.removes {
                write = write.delete(keys.challenge(*removed));
            }
            for m in &tx.messages {
                // A message goes with its code (or its notice's relevance),
                // whatever becomes of its entry in the due index.
                let ttl = now.until(m.expires_at) + super::remote::CHALLENGE_GRACE;
                write = write.put(keys.message(id, m.id), encode_message(m), Some(ttl));
            }
            for removed in &tx.message_removes {
                write = write.delete(keys.message(id, *removed));
            }
            // What this node must record in its own store goes with the
            // change, so a crash between the two loses none of it.
            let journal = if tx.events.is_empty() {
                None
            } else {
                let (key, bytes) = remote.journal(id, &tx.events, now)?;
                write = write.put(key.clone(), bytes, None);
                Some(key)
            };
            // This node's part must be writable before the cluster's is
            // written (a full disk refuses the change, not half of it).
            self.store.writable()?;
            // The messages' entries in the due index come first, leased to
            // this node: no message is ever queued without one.
            let lease_end = now.plus(self.config.outbox.lease);
            let entries: Vec<(Entry, Timestamp)> = tx
                .messages
                .iter()
                .map(|m| (Entry::of(id, m), m.next_attempt_at))
                .collect();
            if !entries.is_empty() {
                let leased: Vec<Entry> = entries.iter().map(|(e, _)| *e).collect();
                remote.lease_entries(&leased, lease_end)?;
            }
            // An outcome unknown (`WAIT` timed out after the master applied
            // the change, say) stays an error, but a change that was made has
            // its events recorded here now (and its messages sent), not at the node's
            // next start: its journal entry, written with it, says it was.
            let mut unacknowledged = None;
            match remote.compare_and_set(id, loaded.version, write) {
                Ok(slot::Outcome::Conflict(_)) => {
                    let counters = remote.counters();
                    counters.cas_retries.fetch_add(1, Ordering::Relaxed);
                    // Nothing was written: the entries of messages this
                    // computation made go (those of messages already queued
                    // stay, as they were).
                    for (entry, _) in &entries {
                        if !tx.fetched_messages.iter().any(|m| m.id == entry.message) {
                            remote.remove_entry(*entry);
                        }
                    }
                    continue;
                }
                Ok(slot::Outcome::Written(_)) => {}
                Err(EngineError::NotStored(why)) => {
                    let made = match &journal {
                        Some(key) => remote.holds(key).unwrap_or(false),
                        None => false,
                    };
                    if !made {
                        return Err(EngineError::NotStored(why));
                    }
                    unacknowledged = Some(EngineError::NotStored(why));
                }
                Err(e) => return Err(e),
            }
            // The audit chain and dead letters are this node's own; the
            // send queue is the cluster's.
            let mut changes = Changes::default();
            queue_changes(&mut changes, &[], &[], &tx.dead);
            let ticket = self.write(changes, tx.events)?;
            if let Some(key) = journal {
                remote.forget_after(key, &self.commit, ticket);
            }
            // A change not confirmed may be undone by a failover, bringing
            // its removed messages back: their entries stay (a claim
            // removes an entry whose message is gone).
            if unacknowledged.is_none() {
                for removed in tx.message_removes {
                    remote.remove_entry(Entry::removed(id, removed));
                }
            }
            let stalled = self.now() >= lease_end;
            for (entry, at) in entries {
                // Due now (a new code): this node sends it itself, under
                // the lease it took; a retry waits in the index for any
                // node, as does a code whose lease ran out before the
                // change was written (its entry may have been taken and
                // removed as stale meanwhile: it is written again).
                if at > now || stalled || !remote.hand_off(entry, lease_end) {
                    remote.schedule_entry(entry, at);
                }
            }
            // A change the master made but no replica confirmed may be lost
            // in a failover: its old keys stay held (blocked, never shared)
            // rather than freed for another account while this one, as a
            // promoted replica has it, still holds them.
            let release = if unacknowledged.is_none() {
                &tx.unindex[..]
            } else {
                &[]
            };
            for key in release {
                // The change is made: a release that fails leaves the key
                // held by this account (blocked, never shared), and is not
                // a reason to report the change as failed.
                let _ = remote.release(key, id);
            }
            if tx.locked_now {
                self.lockouts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.count_verified(&tx.verified_sms);
            if let Some(e) = unacknowledged {
                return Err(e);
            }
            return Ok(self.durable(finish(value, &tx.account, now), ticket));
        }
        Err(EngineError::Storage(format!(
            "account {id} changed under this change {} times in a row; nothing was written",
            slot::MAX_ATTEMPTS
        )))
    }

    /// On a cluster: [`Engine::mutate`] on the holder of an account-less
    /// code to `destination`, made by this change if it is not there.
    pub(super) fn mutate_holder<T>(
        &self,
        id: AccountId,
        destination: &Destination,
        change: impl FnMut(&mut Tx, Timestamp) -> Result<T>,
    ) -> Result<Durable<T>> {
        match &self.remote {
            Some(remote) => self.mutate_remote(
                remote,
                (id, Some(destination)),
                &[],
                &[],
                change,
                |v, _, _| v,
            ),
            None => Err(EngineError::Internal(
                "mutate_holder is for a cluster; the embedded store holds holders in memory".into(),
            )),
        }
    }

    /// Queued message `id` as the change sees it.
    pub(super) fn message_in(&self, tx: &Tx, id: MessageId) -> Option<Message> {
        if let Some(staged) = tx.messages.iter().rev().find(|m| m.id == id) {
            return Some(staged.clone());
        }
        if tx.message_removes.contains(&id) {
            return None;
        }
        if self.remote.is_some() {
            return tx.fetched_messages.iter().find(|m| m.id == id).cloned();
        }
        self.outbox.cloned(&id)
    }

    pub(super) fn challenge_in(&self, tx: &Tx, id: ChallengeId) -> Option<Challenge> {
        if let Some(staged) = tx.puts.iter().rev().find(|c| c.id == id) {
            return Some(staged.clone());
        }
        if tx.removes.contains(&id) {
            return None;
        }
        match (&tx.fetched, &self.remote) {
            (Some(fetched), Some(remote)) => {
                if let Some(c) = fetched.borrow().iter().find(|c| c.id == id) {
                    return Some(c.clone());
                }
                match remote.challenge(id) {
                    Ok(found) => {
                        fetched.borrow_mut().extend(found.clone());
                        found
                    }
                    Err(e) => {
                        tx.failure.borrow_mut().get_or_insert(e);
                        None
                    }
                }
            }
            _ => self.challenges.get(&id).map(|c| Challenge::clone(&c)),
        }
    }
}
