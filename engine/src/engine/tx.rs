//! The per-account transaction: a change built on a copy of the account while its entry is held, then written as one batch and applied to memory.

use smallvec::smallvec;

use crate::account::Account;
use crate::audit::{Event as AuditEvent, EventKind, Events};
use crate::challenge::Challenge;
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::lockout::{Event, Transition};
use crate::outbox::{DeadLetter, Message};
use crate::store::{Change, Changes, Durable};
use crate::terms::MessageId;

use super::Engine;

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
        }
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

impl Engine {
    /// Runs `change` on a copy of the account while holding its entry, then
    /// writes and applies the copy. Nothing changes if `change` fails.
    pub(super) fn mutate<T>(
        &self,
        id: AccountId,
        change: impl FnOnce(&mut Tx, Timestamp) -> Result<T>,
    ) -> Result<Durable<T>> {
        self.mutate_then(id, change, |value, _, _| value)
    }

    /// As [`Engine::mutate`]; `finish` then sees the account as the change
    /// left it, still held (to describe it to the caller without a second read).
    pub(super) fn mutate_then<T, U>(
        &self,
        id: AccountId,
        change: impl FnOnce(&mut Tx, Timestamp) -> Result<T>,
        finish: impl FnOnce(T, &Account, Timestamp) -> U,
    ) -> Result<Durable<U>> {
        let mut entry = self
            .accounts
            .get_mut(&id)
            .ok_or(EngineError::AccountNotFound)?;
        self.admit_account(&entry)?;
        let now = self.now();
        let mut tx = Tx::new(Account::clone(&entry));
        let value = match change(&mut tx, now) {
            Ok(value) => value,
            Err(e) => {
                if let Some(reason) = e.limit_reason() {
                    // A limit that refused a code for this account is a
                    // security event; nothing else of the change happened.
                    let event =
                        AuditEvent::new(EventKind::RateLimited, Some(id)).with("reason", reason);
                    let _ = self.write(Changes::default(), smallvec![event]);
                }
                return Err(e);
            }
        };
        if !tx.dirty {
            return Ok(self.ready(finish(value, &entry, now)));
        }
        // A challenge whose message was reported sent (in memory only) tells
        // the store so with this write, and its message record goes.
        for c in &mut tx.puts {
            if let Some(message) = c.sent_unrecorded() {
                c.message = None;
                tx.message_removes.push(message);
            }
        }
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
        changes.0.extend(tx.messages.iter().map(Change::Message));
        changes.0.extend(
            tx.message_removes
                .iter()
                .map(|id| Change::RemoveMessage(*id)),
        );
        changes.0.extend(tx.dead.iter().map(Change::DeadLetter));
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
        **entry = account;
        Ok(self.durable(finish(value, &entry, now), ticket))
    }

    pub(super) fn challenge_in(&self, tx: &Tx, id: ChallengeId) -> Option<Challenge> {
        if let Some(staged) = tx.puts.iter().rev().find(|c| c.id == id) {
            return Some(staged.clone());
        }
        if tx.removes.contains(&id) {
            return None;
        }
        self.challenges.get(&id).map(|c| Challenge::clone(&c))
    }
}
