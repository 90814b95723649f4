//! Account recovery: a citizen who proved who they are elsewhere (Citizen Card, a Citizen Space) is unlocked or given a new PIN.
//!
//! Not to be confused with `recovery`, which reads the store back on open.
//! The proof itself happens outside otpd; what otpd keeps is which method
//! the recovery service used and its reference, in the change's own audit event.

use std::fmt;

use crate::account::{AccountView, Status};
use crate::audit::EventKind;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::lockout::LockReason;
use crate::outbox::Notice;
use crate::secret::Pin;
use crate::store::Durable;

use super::{Engine, Tx};

/// How the citizen proved who they are before a recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMethod {
    /// The Citizen Card in a reader, in the personal area.
    CitizenCard,
    /// At a counter: a Citizen Space or a Company Space.
    InPerson,
    /// A qualified electronic certificate.
    QualifiedCertificate,
}

impl RecoveryMethod {
    /// Every method.
    pub const ALL: [RecoveryMethod; 3] = [
        RecoveryMethod::CitizenCard,
        RecoveryMethod::InPerson,
        RecoveryMethod::QualifiedCertificate,
    ];

    /// Parses the method's name; the error names `method` and the names allowed.
    pub fn parse(text: &str) -> Result<RecoveryMethod> {
        RecoveryMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == text)
            .ok_or_else(|| {
                EngineError::invalid(
                    "method",
                    "must be one of citizen_card, in_person, qualified_certificate",
                )
            })
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryMethod::CitizenCard => "citizen_card",
            RecoveryMethod::InPerson => "in_person",
            RecoveryMethod::QualifiedCertificate => "qualified_certificate",
        }
    }
}

/// The proof a recovery rests on: the method and the recovery service's
/// reference for it (a case or session number), both recorded.
#[derive(Clone, PartialEq, Eq)]
pub struct Recovery {
    method: RecoveryMethod,
    reference: String,
}

impl Recovery {
    /// A recovery by `method`; `reference` is 1 to 128 printable characters.
    pub fn new(method: RecoveryMethod, reference: &str) -> Result<Recovery> {
        let reference = reference.trim();
        if reference.is_empty()
            || reference.chars().count() > 128
            || reference.chars().any(char::is_control)
        {
            return Err(EngineError::invalid(
                "reference",
                "must be 1 to 128 printable characters",
            ));
        }
        Ok(Recovery {
            method,
            reference: reference.to_owned(),
        })
    }

    /// How the citizen proved who they are.
    pub fn method(&self) -> RecoveryMethod {
        self.method
    }

    /// The recovery service's reference.
    pub fn reference(&self) -> &str {
        &self.reference
    }
}

impl fmt::Debug for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("method", &self.method.as_str())
            .field("reference", &self.reference)
            .finish()
    }
}

impl Engine {
    /// Unlocks an account after a recovery: counters cleared, outstanding
    /// codes killed, as [`Engine::unlock`] does; answers with the account's view.
    pub fn recover_unlock(
        &self,
        account: AccountId,
        recovery: &Recovery,
    ) -> Result<Durable<AccountView>> {
        self.mutate_then(
            account,
            &[],
            |tx, now| {
                ensure_recoverable(tx, now)?;
                record(tx, EventKind::RecoveryUnlocked, recovery);
                self.release(tx, now);
                Ok(())
            },
            |(), account, now| account.view(now),
        )
    }

    /// Sets a new PIN after a recovery: the PIN policy applies, the account
    /// is unlocked, counters cleared, outstanding codes killed and the
    /// citizen notified, as [`Engine::reset_pin`] does; answers with the
    /// account's view.
    pub fn recover_pin(
        &self,
        account: AccountId,
        recovery: &Recovery,
        new_pin: &Pin,
    ) -> Result<Durable<AccountView>> {
        self.config.pin.check("new_pin", new_pin)?;
        // Fail early, before Argon2; the check inside the change is what counts.
        match self.with_account(account, |a| a.status)? {
            None => return Err(EngineError::AccountNotFound),
            Some(Status::Active) => {}
            Some(Status::PendingActivation) => return Err(PENDING),
            Some(Status::Cancelled(_)) => return Err(CANCELLED),
        }
        let hash = self.hash_pin(new_pin)?;
        self.mutate_then(
            account,
            &[],
            |tx, now| {
                ensure_recoverable(tx, now)?;
                record(tx, EventKind::RecoveryPinSet, recovery);
                self.release(tx, now);
                tx.account_mut().pin = Some(hash.clone());
                self.notify(tx, Notice::PinReset, None, now);
                Ok(())
            },
            |(), account, now| account.view(now),
        )
    }
}

const CANCELLED: EngineError = EngineError::WrongState("the account is cancelled");
const PENDING: EngineError = EngineError::WrongState(
    "the account is pending activation: activate it with its activation code instead",
);

/// A recovery needs an active account, and lifts only a lock the citizen's
/// own failures caused: an operator's lock stays until an operator lifts it.
fn ensure_recoverable(tx: &Tx, now: crate::clock::Timestamp) -> Result<()> {
    match tx.account.status {
        Status::Active => {}
        Status::PendingActivation => return Err(PENDING),
        Status::Cancelled(_) => return Err(CANCELLED),
    }
    if let Some(lock) = tx.account.lockout.lock_at(now)
        && matches!(lock.reason, LockReason::Administrative(_))
    {
        return Err(EngineError::WrongState(
            "the account is locked by an operator: only an operator can unlock it",
        ));
    }
    Ok(())
}

fn record(tx: &mut Tx, kind: EventKind, recovery: &Recovery) {
    let event = tx
        .event(kind)
        .with("method", recovery.method.as_str())
        .with("reference", recovery.reference.clone());
    tx.record(event);
}
