//! PIN changes by the citizen (current PIN and a step-up code) and privileged resets.

use smallvec::smallvec;

use crate::account::{AccountView, Status};
use crate::audit::{Event as AuditEvent, EventKind};
use crate::challenge::Verification;

use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::lockout::{Event, Transition};
use crate::outbox::Notice;
use crate::secret::{Code, Pin};
use crate::store::Durable;
use crate::terms::Purpose;

use super::Engine;

/// The outcome of an authenticated PIN change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    /// The PIN was changed.
    Changed,
    /// The current PIN was wrong (and counted).
    WrongPin,
    /// The account is locked.
    Locked,
    /// The PIN was right but the code was not accepted.
    CodeRejected(Verification),
}

impl Engine {
    /// Changes the PIN of an authenticated citizen: needs the current PIN and
    /// a fresh step-up code.
    pub fn change_pin(
        &self,
        account: AccountId,
        current_pin: &Pin,
        challenge: ChallengeId,
        code: &Code,
        new_pin: &Pin,
    ) -> Result<Durable<PinChange>> {
        self.config.pin.check("new_pin", new_pin)?;
        self.check_presented_pin("current_pin", current_pin)?;
        if current_pin.expose() == new_pin.expose() {
            return Err(EngineError::invalid(
                "new_pin",
                "must differ from the current PIN",
            ));
        }
        let now = self.now();
        let (locked, stored) = self
            .with_account(account, |a| {
                (a.lockout.lock_at(now).is_some(), (a.status, a.pin.clone()))
            })?
            .ok_or(EngineError::AccountNotFound)?;
        if locked {
            let event = AuditEvent::new(EventKind::LoginLocked, Some(account))
                .with("purpose", "pin_change");
            let ticket = self.write(crate::store::Changes::default(), smallvec![event])?;
            return Ok(self.durable(PinChange::Locked, ticket));
        }
        let stored = match stored {
            (Status::Active, Some(pin)) => pin,
            _ => return Err(EngineError::WrongState("the account is not active")),
        };
        let pin_ok = self.pins.verify(current_pin, &stored);
        let new_hash = if pin_ok {
            Some(self.hash_pin(new_pin)?)
        } else {
            None
        };
        self.mutate(account, |tx, now| {
            if tx.account.pin.as_ref() != Some(&stored) {
                return Err(EngineError::WrongState(
                    "the PIN was changed by another request",
                ));
            }
            let Some(new_hash) = new_hash.clone() else {
                let event = tx.event(EventKind::PinChangeRefused);
                tx.record(event);
                return Ok(match tx.lockout(Event::PinFailed, now, self) {
                    Transition::Counted { .. } => PinChange::WrongPin,
                    _ => PinChange::Locked,
                });
            };
            if tx.lockout(Event::PinSucceeded, now, self) == Transition::Refused {
                return Ok(PinChange::Locked);
            }
            match self.check_code(tx, challenge, Purpose::StepUp, code, now)? {
                Verification::Approved(_) => {
                    let event = tx.event(EventKind::PinChanged);
                    tx.record(event);
                    tx.account_mut().pin = Some(new_hash);
                    self.notify(tx, Notice::PinChanged, None, now);
                    Ok(PinChange::Changed)
                }
                Verification::Locked => Ok(PinChange::Locked),
                other => Ok(PinChange::CodeRejected(other)),
            }
        })
    }

    /// Sets a new PIN without the old one (privileged). Also unlocks the
    /// account, clears its counters, activates a pending account, and kills
    /// every outstanding code; answers with the account's view.
    pub fn reset_pin(&self, account: AccountId, new_pin: &Pin) -> Result<Durable<AccountView>> {
        self.config.pin.check("pin", new_pin)?;
        let hash = self.hash_pin(new_pin)?;
        self.mutate_then(
            account,
            &[],
            |tx, now| {
                if tx.account.is_cancelled() {
                    return Err(EngineError::WrongState("the account is cancelled"));
                }
                let event = tx.event(EventKind::PinReset);
                tx.record(event);
                self.release(tx, now);
                let account = tx.account_mut();
                account.pin = Some(hash.clone());
                account.status = Status::Active;
                self.notify(tx, Notice::PinReset, None, now);
                Ok(())
            },
            |(), account, now| account.view(now),
        )
    }
}
