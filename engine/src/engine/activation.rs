//! Activation of pre-registered accounts: a code by SMS, email or letter, then the code (with its challenge id or the identity) and a new PIN.

use crate::account::Status;
use crate::audit::EventKind;
use crate::challenge::{ChallengeState, Issued, Verification};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::identity::{BirthDate, Identity};
use crate::secret::{Code, Pin};
use crate::store::Durable;
use crate::terms::{Channel, Locale, Purpose};

use super::codes::Issue;
use super::{Engine, Tx, destination_for};

/// Which pending activation a code is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationTarget {
    /// The challenge the activation request answered with.
    Challenge {
        /// The challenge id.
        id: ChallengeId,
        /// If given, must match the birth date on file.
        birth_date: Option<BirthDate>,
    },
    /// The identity the citizen types with the code from a letter (as the
    /// Social Security guide has it: NISS and code), for any channel.
    Identity {
        /// The identity pre-registered.
        identity: Identity,
        /// If given, must match the birth date on file.
        birth_date: Option<BirthDate>,
    },
}

impl Engine {
    /// Sends an activation code to a pre-registered identity, if the birth
    /// date matches. Letters use the letter policy's long lifetime.
    pub fn request_activation(
        &self,
        identity: &Identity,
        birth_date: BirthDate,
        channel: Channel,
        locale: Option<Locale>,
    ) -> Result<Durable<Issued>> {
        self.admit_purpose(Purpose::Activation, Some(channel))?;
        let id = self
            .find_by_identity(identity)?
            .ok_or(EngineError::ActivationNotFound)?;
        if self.with_account(id, |a| self.hides(a))? != Some(false) {
            return Err(EngineError::ActivationNotFound);
        }
        self.mutate(id, |tx, now| {
            let pending = tx.account.status == Status::PendingActivation
                && tx.account.birth_date == Some(birth_date);
            if !pending {
                return Err(EngineError::ActivationNotFound);
            }
            if let Some(lock) = tx.account.lockout.lock_at(now) {
                return Err(EngineError::Locked { until: lock.until });
            }
            if matches!(channel, Channel::Push | Channel::Dm) {
                return Err(EngineError::invalid(
                    "channel",
                    "activation codes go by sms, email or letter",
                ));
            }
            let destination = destination_for(&tx.account, channel, Purpose::Activation)?;
            let event = tx
                .event(EventKind::ActivationRequested)
                .with("channel", channel.as_str());
            tx.record(event);
            self.issue_in(
                tx,
                Issue {
                    purpose: Purpose::Activation,
                    channel,
                    destination,
                    lifetime: None,
                    locale,
                    document: None,
                    admitted: false,
                },
                now,
            )
        })
    }

    /// Completes activation: the code proves the contact (or, for a
    /// letter, the postal address), and the new PIN is set.
    ///
    /// The code is checked first, without spending it; only a right code
    /// pays for the Argon2 hash of the new PIN, after which the code is
    /// checked again and spent with the PIN set, in one change. A wrong
    /// code counts against the challenge and the account as at login.
    pub fn activate(
        &self,
        target: &ActivationTarget,
        code: &Code,
        new_pin: &Pin,
    ) -> Result<Durable<Verification>> {
        self.config.pin.check("pin", new_pin)?;
        let (account, challenge) = self.activation_challenge(target)?;
        let first = self.mutate(account, |tx, now| {
            self.activation_check(tx, target, challenge, code, now, false)
        })?;
        if !matches!(first.peek(), Verification::Approved(_)) {
            return Ok(first);
        }
        let hash = self.hash_pin(new_pin)?;
        self.mutate(account, |tx, now| {
            let mut outcome = self.activation_check(tx, target, challenge, code, now, true)?;
            if let Verification::Approved(approval) = &mut outcome {
                let event = tx.event(EventKind::ActivationCompleted);
                tx.record(event);
                let account = tx.account_mut();
                account.pin = Some(hash.clone());
                account.status = Status::Active;
                approval.state = account.state(now);
            }
            Ok(outcome)
        })
    }

    /// The account and the activation challenge `target` names. By
    /// identity, everything that is not about the code itself (unknown
    /// identity, nothing pending, another birth date, no code sent, a
    /// lock) is one answer, so it reveals nothing about the identity.
    fn activation_challenge(&self, target: &ActivationTarget) -> Result<(AccountId, ChallengeId)> {
        match target {
            ActivationTarget::Challenge { id, .. } => Ok((self.challenge_owner(*id)?, *id)),
            ActivationTarget::Identity { identity, .. } => {
                let now = self.now();
                let account = self
                    .find_by_identity(identity)?
                    .ok_or(EngineError::ActivationNotFound)?;
                let challenge = self
                    .with_account(account, |entry| {
                        entry
                            .current(Purpose::Activation)
                            .filter(|_| !self.hides(entry))
                            .filter(|_| entry.status == Status::PendingActivation)
                            .filter(|_| entry.lockout.lock_at(now).is_none())
                    })?
                    .flatten()
                    .ok_or(EngineError::ActivationNotFound)?;
                if self.with_challenge(challenge, |c| self.may_see(c))? != Some(true) {
                    return Err(EngineError::ActivationNotFound);
                }
                Ok((account, challenge))
            }
        }
    }

    /// One check of an activation code in `tx`, spending it if `consume`.
    fn activation_check(
        &self,
        tx: &mut Tx,
        target: &ActivationTarget,
        challenge: ChallengeId,
        code: &Code,
        now: Timestamp,
        consume: bool,
    ) -> Result<Verification> {
        let birth_date = match target {
            ActivationTarget::Challenge { birth_date, .. }
            | ActivationTarget::Identity { birth_date, .. } => *birth_date,
        };
        let by_identity = matches!(target, ActivationTarget::Identity { .. });
        let birth_matches = birth_date.is_none_or(|b| tx.account.birth_date == Some(b));
        if tx.account.status != Status::PendingActivation || !birth_matches {
            if by_identity || !birth_matches {
                return Err(EngineError::ActivationNotFound);
            }
            // Activated already: a second use of its code is "already used", as at verify.
            let used = self.challenge_in(tx, challenge).is_some_and(|c| {
                c.purpose == Purpose::Activation && c.state == ChallengeState::Consumed
            });
            return if used {
                Ok(Verification::AlreadyUsed)
            } else {
                Err(EngineError::ChallengeNotFound)
            };
        }
        if by_identity && tx.account.lockout.lock_at(now).is_some() {
            return Err(EngineError::ActivationNotFound);
        }
        self.check_code_then(tx, challenge, Purpose::Activation, code, now, consume)
    }
}
