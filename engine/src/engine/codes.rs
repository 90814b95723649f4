//! Codes: issuing one (superseding the last), resending, checking one against its challenge, and a challenge's status.

use std::time::Duration;

use crate::account::{Account, Status};
use crate::audit::{Detail, Event as AuditEvent, EventKind, current_client_id};
use crate::challenge::{
    Approval, Challenge, ChallengeState, ChallengeStatus, Issued, Verification, mask_destination,
};
use crate::clock::Timestamp;
use crate::document::Document;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::identity::DmHandle;
use crate::keys::{MacKey, Seal};
use crate::lockout::{Event, Transition};
use crate::outbox::Message;
use crate::secret::Code;
use crate::store::Durable;
use crate::terms::{Channel, DeliveryState, Locale, MessageId, Purpose};

use super::{Engine, Tx};

pub(super) fn ensure_usable(account: &Account, now: Timestamp) -> Result<()> {
    match account.status {
        Status::Cancelled(_) => Err(EngineError::WrongState("the account is cancelled")),
        Status::PendingActivation => Err(EngineError::WrongState("the account is not activated")),
        Status::Active => match account.lockout.lock_at(now) {
            Some(lock) => Err(EngineError::Locked { until: lock.until }),
            None => Ok(()),
        },
    }
}

pub(super) fn choose_channel(account: &Account, requested: Option<Channel>) -> Result<Channel> {
    if let Some(channel) = requested {
        return Ok(channel);
    }
    // The login contacts first: a phone or an email, if the account has
    // exactly one; then the app or the handle, if it has exactly one.
    match (&account.phone, &account.email) {
        (Some(_), None) => return Ok(Channel::Sms),
        (None, Some(_)) => return Ok(Channel::Email),
        (Some(_), Some(_)) => {
            return Err(EngineError::invalid(
                "channel",
                "the account has a mobile number and an email: choose sms or email",
            ));
        }
        (None, None) => {}
    }
    match (&account.push_token, &account.dm) {
        (Some(_), None) => Ok(Channel::Push),
        (None, Some(_)) => Ok(Channel::Dm),
        (Some(_), Some(_)) => Err(EngineError::invalid(
            "channel",
            "the account has an app and a direct-message handle: choose push or dm",
        )),
        (None, None) => Err(EngineError::ChannelUnavailable("contact")),
    }
}

pub(super) fn destination_for(
    account: &Account,
    channel: Channel,
    purpose: Purpose,
) -> Result<String> {
    let missing = EngineError::ChannelUnavailable;
    match channel {
        Channel::Sms => account
            .phone
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .ok_or(missing("mobile number")),
        Channel::Email => account
            .email
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .ok_or(missing("email address")),
        Channel::Push => account
            .push_token
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .ok_or(missing("registered app")),
        Channel::Letter if purpose == Purpose::Activation => account
            .postal_address
            .as_ref()
            .map(|a| a.as_str().to_owned())
            .ok_or(missing("postal address")),
        Channel::Letter => Err(EngineError::invalid(
            "channel",
            "letters carry activation codes only",
        )),
        Channel::Dm => account
            .dm
            .as_deref()
            .map(DmHandle::destination)
            .ok_or(missing("direct-message handle")),
    }
}

/// An event about a code of challenge `c`.
fn code_event(tx: &Tx, kind: EventKind, c: &Challenge) -> AuditEvent {
    tx.event(kind)
        .with("purpose", c.purpose.as_str())
        .with("challenge_id", Detail::hex(&c.id.to_bytes()))
        .with("channel", c.channel.as_str())
}

/// What to issue: a code of `purpose` by `channel` to `destination`.
pub(super) struct Issue {
    pub(super) purpose: Purpose,
    pub(super) channel: Channel,
    pub(super) destination: String,
    /// Shorter than the policy's, if asked.
    pub(super) lifetime: Option<Duration>,
    pub(super) locale: Option<Locale>,
    /// For a signature: the document the code will be bound to.
    pub(super) document: Option<Document>,
    /// The issuance limits were charged for it already (an account-less
    /// code is charged before its holder is made).
    pub(super) admitted: bool,
}

impl Engine {
    /// Sends a new code for a challenge's purpose to the same destination; the
    /// old code dies. Refused within the resend cooldown.
    pub fn resend(
        &self,
        challenge: ChallengeId,
        locale: Option<Locale>,
    ) -> Result<Durable<Issued>> {
        let account = self.challenge_owner(challenge)?;
        self.mutate_about(account, challenge, |tx, now| {
            let old = self
                .challenge_in(tx, challenge)
                // An account-less code is sent again by asking again.
                .filter(|c| c.purpose != Purpose::Destination)
                .ok_or(EngineError::ChallengeNotFound)?;
            if tx.account.current(old.purpose) != Some(challenge) {
                return Err(EngineError::WrongState(
                    "only a live code can be resent: this one was used, replaced by a newer one, or cancelled",
                ));
            }
            if let Some(lock) = tx.account.lockout.lock_at(now) {
                return Err(EngineError::Locked { until: lock.until });
            }
            let ready_at = old.created_at.plus(self.config.resend_cooldown.0);
            if now < ready_at {
                return Err(EngineError::TooSoon {
                    retry_after: now.until(ready_at),
                });
            }
            let issue = Issue {
                purpose: old.purpose,
                channel: old.channel,
                destination: old.destination.to_string(),
                lifetime: Some(old.created_at.until(old.expires_at)),
                locale: locale.or(Some(old.locale)),
                // A new code for the same document: it is bound to it too.
                document: old.document.map(|d| *d),
                admitted: false,
            };
            self.issue_in(tx, issue, now)
        })
    }

    /// The account of a challenge the caller may see (to another client,
    /// a challenge that is not its own does not exist).
    pub(super) fn challenge_owner(&self, challenge: ChallengeId) -> Result<AccountId> {
        self.with_challenge(challenge, |c| self.may_see(c).then_some(c.account))?
            .flatten()
            .ok_or(EngineError::ChallengeNotFound)
    }

    /// Creates a challenge and its outgoing message in `tx`, superseding the
    /// account's previous challenge of the same purpose.
    pub(super) fn issue_in(&self, tx: &mut Tx, issue: Issue, now: Timestamp) -> Result<Issued> {
        let Issue {
            purpose,
            channel,
            destination,
            lifetime,
            locale,
            document,
            admitted,
        } = issue;
        let (fixed, lifetime) = self.issue_terms(purpose, channel, &destination, lifetime)?;
        let policy = self.config.codes.for_code(purpose, channel);
        // Once per call: on a cluster the change may be computed again
        // after losing a race, and a limit must not be spent twice for it.
        if !admitted && !tx.admitted(channel, &destination) {
            self.admit_issue(purpose, channel, fixed.is_some())?;
            if fixed.is_none() {
                self.limits.admit(tx.account.id, channel, &destination)?;
            }
            tx.note_admitted(channel, &destination);
        }
        // The first 8 bytes are the account's: with the cluster backend a
        // challenge id alone names its account's slot (cluster/keys.rs).
        let id = crate::cluster::keys::challenge_id(tx.account.id, self.random());
        // For a test destination, an id no message has.
        let message_id = MessageId(self.random());
        let withheld = fixed.is_some();
        let code = match fixed {
            Some(code) => code,
            None => policy.generate(&mut self.rng()),
        };
        if let Some(previous) = tx.account.current(purpose) {
            self.supersede(tx, previous);
        }
        tx.account_mut().current.set(purpose, Some(id));
        let challenge = Challenge {
            id,
            account: tx.account.id,
            purpose,
            channel,
            destination: destination.clone().into_boxed_str(),
            mac: self.keys.code_mac(
                MacKey::Derived,
                id,
                code.expose(),
                document.as_ref().map(|d| d.sha256()).as_ref(),
            ),
            mac_key: MacKey::Derived,
            document: document.map(Box::new),
            created_at: now,
            expires_at: now.plus(lifetime),
            attempts: 0,
            max_attempts: u8::try_from(policy.max_attempts).unwrap_or(u8::MAX),
            state: ChallengeState::Live,
            delivery: if withheld {
                DeliveryState::Withheld
            } else {
                DeliveryState::Queued
            },
            message: (!withheld).then_some(message_id),
            // The request's choice, else the citizen's, else the server's.
            locale: locale
                .or(tx.account.locale)
                .unwrap_or(self.config.outbox.default_locale),
            client: current_client_id(),
        };
        let expires_at = challenge.expires_at;
        let challenge_document = challenge.document.clone();
        if !withheld {
            tx.put_message(Message {
                id: message_id,
                challenge: id,
                account: tx.account.id,
                purpose,
                channel,
                destination: destination.clone().into_boxed_str(),
                sealed_code: self.keys.seal(message_id, &code),
                seal: Seal::Aead,
                locale: challenge.locale,
                expires_at,
                created_at: now,
                attempts: 0,
                next_attempt_at: now,
                in_flight: false,
                notice: None,
            });
        }
        let masked_destination = mask_destination(channel, &destination);
        let mut event = tx
            .event(EventKind::CodeIssued)
            .with("purpose", purpose.as_str())
            .with("challenge_id", Detail::hex(&id.to_bytes()))
            .with("channel", channel.as_str())
            .with("destination", &masked_destination);
        if let Some(document) = &challenge.document {
            event = event.with("document_sha256", document.sha256_hex());
        }
        tx.record(event);
        tx.put(challenge);
        Ok(Issued {
            challenge_id: id,
            account_id: tx.account.id,
            purpose,
            channel,
            masked_destination,
            destination,
            expires_at,
            code,
            message_id,
            document: challenge_document,
        })
    }

    /// What a code of `purpose` by `channel` to `destination` would be, or
    /// why it cannot be: a test destination's fixed code, and its
    /// lifetime (within the policy's). Checked before any limit is spent.
    pub(super) fn issue_terms(
        &self,
        purpose: Purpose,
        channel: Channel,
        destination: &str,
        lifetime: Option<Duration>,
    ) -> Result<(Option<Code>, Duration)> {
        // A test destination's code is fixed and never sent: no gateway, no
        // sending limit (nothing leaves), whatever the channel's state.
        let fixed = self.test_codes.code_for(channel, destination);
        if fixed.is_none() && !self.config.outbox.enabled.contains(&channel) {
            return Err(EngineError::ChannelUnavailable(match channel {
                Channel::Sms => "SMS delivery (disabled here)",
                Channel::Email => "email delivery (disabled here)",
                Channel::Push => "push delivery (disabled here)",
                Channel::Letter => "letter delivery (disabled here)",
                Channel::Dm => "direct-message delivery (disabled here)",
            }));
        }
        let policy = self.config.codes.for_code(purpose, channel);
        let lifetime = match lifetime {
            None => policy.lifetime,
            Some(l) if l > policy.lifetime => {
                return Err(EngineError::invalid(
                    "lifetime",
                    format!("must not exceed {} s", policy.lifetime.as_secs()),
                ));
            }
            Some(l) if l < Duration::from_secs(10) => {
                return Err(EngineError::invalid("lifetime", "must be at least 10 s"));
            }
            Some(l) => l,
        };
        Ok((fixed, lifetime))
    }

    /// Marks a live challenge superseded and drops its message if still queued.
    pub(super) fn supersede(&self, tx: &mut Tx, id: ChallengeId) {
        let Some(mut old) = self.challenge_in(tx, id) else {
            return;
        };
        if old.state != ChallengeState::Live {
            return;
        }
        old.state = ChallengeState::Superseded;
        if let Some(message) = old.message.take() {
            tx.remove_message(message);
            if old.delivery != DeliveryState::Sent {
                old.delivery = DeliveryState::Dropped;
            }
        }
        tx.put(old);
    }

    /// Checks `code` against a challenge of `expected` purpose on `tx`'s account.
    /// Counts a wrong code against the challenge and the account.
    pub(super) fn check_code(
        &self,
        tx: &mut Tx,
        challenge: ChallengeId,
        expected: Purpose,
        code: &Code,
        now: Timestamp,
    ) -> Result<Verification> {
        self.check_code_then(tx, challenge, expected, code, now, true)
    }

    /// [`Engine::check_code`]; with `consume` false, a right code is
    /// reported but left usable (nothing changes), so costly work that must
    /// follow a right code (Argon2) can run before the code is spent.
    pub(super) fn check_code_then(
        &self,
        tx: &mut Tx,
        challenge: ChallengeId,
        expected: Purpose,
        code: &Code,
        now: Timestamp,
        consume: bool,
    ) -> Result<Verification> {
        let mut c = self
            .challenge_in(tx, challenge)
            .filter(|c| c.account == tx.account.id && c.purpose == expected && self.may_see(c))
            .ok_or(EngineError::ChallengeNotFound)?;
        let typed = self
            .config
            .codes
            .for_code(c.purpose, c.channel)
            .normalise_input(code)?;
        if tx.account.lockout.lock_at(now).is_some() {
            tx.record(code_event(tx, EventKind::CodeLocked, &c));
            return Ok(Verification::Locked);
        }
        if let Some(refusal) = c.refusal(now) {
            let kind = match refusal {
                Verification::Expired => EventKind::CodeExpired,
                Verification::Superseded => EventKind::CodeSuperseded,
                Verification::Exhausted => EventKind::CodeExhausted,
                Verification::Cancelled => EventKind::CodeWasCancelled,
                _ => EventKind::CodeAlreadyUsed,
            };
            tx.record(code_event(tx, kind, &c));
            return Ok(refusal);
        }
        let bound = c.document.as_ref().map(|d| d.sha256());
        if self
            .keys
            .code_mac(c.mac_key, c.id, &typed, bound.as_ref())
            .matches(&c.mac)
        {
            let mut approval = Approval {
                account_id: tx.account.id,
                identity: tx.account.identity.clone(),
                purpose: expected,
                state: tx.account.state(now),
                channel: c.channel,
                document: c.document.as_deref().cloned(),
            };
            if !consume {
                return Ok(Verification::Approved(approval));
            }
            tx.record(code_event(tx, EventKind::CodeAccepted, &c));
            if let Some(document) = &c.document {
                let event = code_event(tx, EventKind::SignatureAuthorised, &c)
                    .with("document_sha256", document.sha256_hex())
                    .with("document_name", document.name().to_owned());
                tx.record(event);
            }
            c.state = ChallengeState::Consumed;
            if let Some(message) = c.message.take() {
                // Used before its send was reported (a report still on its
                // way, or a retry of a send that did go out): the code
                // reached the citizen, so it reads sent, and the message goes.
                tx.remove_message(message);
                c.delivery = DeliveryState::Sent;
            }
            if !tx.account.is_holder() {
                tx.lockout(Event::CodeSucceeded, now, self);
            }
            if c.channel == Channel::Sms {
                // Counted once the change is written (it may be computed again).
                tx.verified_sms.push(c.destination.to_string());
            }
            if tx.account.current(c.purpose) == Some(c.id) {
                tx.account_mut().current.set(c.purpose, None);
            }
            tx.put(c);
            approval.state = tx.account.state(now);
            return Ok(Verification::Approved(approval));
        }
        c.attempts = c.attempts.saturating_add(1);
        let attempts_remaining = u32::from(c.max_attempts.saturating_sub(c.attempts));
        let event =
            code_event(tx, EventKind::CodeWrong, &c).with("attempts_remaining", attempts_remaining);
        tx.record(event);
        tx.put(c);
        if tx.account.is_holder() {
            // No account to lock: the challenge's attempts and the send
            // limits bound the guesses (`destinations.rs`).
            return Ok(Verification::WrongCode { attempts_remaining });
        }
        Ok(match tx.lockout(Event::CodeFailed, now, self) {
            Transition::Counted { .. } => Verification::WrongCode { attempts_remaining },
            _ => Verification::Locked,
        })
    }

    /// Second factor: checks a login or step-up code. A code verifies at most
    /// once, however many requests carry it at the same time.
    pub fn verify(
        &self,
        challenge: ChallengeId,
        expected: Purpose,
        code: &Code,
    ) -> Result<Durable<Verification>> {
        if !matches!(
            expected,
            Purpose::Login | Purpose::StepUp | Purpose::Signature
        ) {
            return Err(EngineError::invalid(
                "purpose",
                "activation and contact-change codes have their own operations",
            ));
        }
        let account = self.challenge_owner(challenge)?;
        self.mutate_about(account, challenge, |tx, now| {
            self.check_code(tx, challenge, expected, code, now)
        })
    }

    /// Where a challenge stands (an account-less one: `destination_status`).
    pub fn challenge_status(&self, challenge: ChallengeId) -> Result<ChallengeStatus> {
        let now = self.now();
        self.with_challenge(challenge, |c| {
            (self.may_see(c) && c.purpose != Purpose::Destination).then(|| c.status(now))
        })?
        .flatten()
        .ok_or(EngineError::ChallengeNotFound)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::EngineConfig;
    use crate::engine::{LoginId, LoginOutcome, NewAccount};
    use crate::identity::Phone;
    use crate::secret::{CodeKey, Pin};
    use crate::store::memory::MemoryStore;

    const HASH_A: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443322";
    const HASH_B: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443323";

    /// Someone who can rewrite a stored challenge points it at another
    /// document: its code must not approve that one, because the code's MAC
    /// covers the document's hash.
    #[test]
    fn a_code_for_one_document_never_approves_another() {
        let engine = Engine::open_in_memory(
            &MemoryStore::new(),
            EngineConfig::for_tests(),
            CodeKey::new([5; 32]),
            Arc::new(ManualClock::new(Timestamp(1_795_392_000_000))),
            crate::seeded_rng([6; 32]),
        )
        .unwrap();
        let phone = Phone::parse("+351912345000").unwrap();
        engine
            .register(NewAccount::for_tests(&phone))
            .and_then(Durable::wait)
            .unwrap();
        let request = |hash: &str| {
            let outcome = engine
                .request_signature(
                    &LoginId::Phone(phone.clone()),
                    &Pin::new("4821"),
                    Document::parse("a.pdf", hash, None).unwrap(),
                    None,
                    None,
                    None,
                )
                .and_then(Durable::wait)
                .unwrap();
            match outcome {
                LoginOutcome::CodeSent(issued) => issued,
                other => panic!("{other:?}"),
            }
        };
        let issued = request(HASH_A);
        let forged = Document::parse("b.pdf", HASH_B, None).unwrap();
        engine
            .challenges
            .get_mut(&issued.challenge_id)
            .unwrap()
            .document = Some(Box::new(forged));
        let outcome = engine
            .verify(issued.challenge_id, Purpose::Signature, &issued.code)
            .and_then(Durable::wait)
            .unwrap();
        assert!(
            matches!(outcome, Verification::WrongCode { .. }),
            "{outcome:?}"
        );
        // The same code on the document it was made for is right.
        let honest = request(HASH_A);
        let outcome = engine
            .verify(honest.challenge_id, Purpose::Signature, &honest.code)
            .and_then(Durable::wait)
            .unwrap();
        assert!(matches!(outcome, Verification::Approved(_)), "{outcome:?}");
    }
}
