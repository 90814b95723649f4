//! Login (phone or email and PIN, then a code) and step-up codes for citizens already authenticated.

use smallvec::smallvec;

use std::time::Duration;

use crate::account::{Status, email_key, phone_key};
use crate::audit::{Event as AuditEvent, EventKind};
use crate::challenge::Issued;
use crate::document::Document;

use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::identity::{Email, Phone};
use crate::lockout::{Event, Transition};
use crate::secret::Pin;
use crate::store::{Change, Changes, Durable};
use crate::terms::{Channel, Locale, Purpose};

use super::codes::Issue;
use super::{Engine, choose_channel, destination_for, ensure_usable};

/// What a citizen logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginId {
    /// The mobile number.
    Phone(Phone),
    /// The email address.
    Email(Email),
}

impl LoginId {
    fn index_key(&self) -> String {
        match self {
            LoginId::Phone(p) => phone_key(p),
            LoginId::Email(e) => email_key(e),
        }
    }
}

/// The outcome of the PIN step of a login.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// The PIN was right; a code was issued.
    CodeSent(Issued),
    /// Unknown login or wrong PIN: deliberately indistinguishable.
    InvalidCredentials,
    /// The account is locked.
    Locked,
}

impl Engine {
    /// Refuses, before any Argon2 work, a presented PIN that no PIN could be:
    /// empty, over 64 bytes, with control or non-ASCII characters, or with
    /// non-digits when PINs are digits only. The answer does not depend on
    /// any account, so it reveals nothing.
    pub(super) fn check_presented_pin(&self, field: &'static str, pin: &Pin) -> Result<()> {
        let raw = pin.expose();
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EngineError::invalid(
                field,
                "must be 1 to 64 printable ASCII characters",
            ));
        }
        if self.config.pin.digits_only && !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EngineError::invalid(
                field,
                "must contain only the digits 0-9",
            ));
        }
        Ok(())
    }

    /// The live account this phone or email logs in to, if any.
    pub fn find_by_login(&self, login: &LoginId) -> Result<Option<AccountId>> {
        self.holder(&login.index_key())
    }

    /// First factor: checks the PIN and, if right, sends a new login code by
    /// the chosen channel (or the only one the account has).
    ///
    /// Unknown logins cost one Argon2 verification against a dummy hash and
    /// answer exactly as a wrong PIN does.
    pub fn login(
        &self,
        login: &LoginId,
        pin: &Pin,
        channel: Option<Channel>,
        lifetime: Option<Duration>,
        locale: Option<Locale>,
    ) -> Result<Durable<LoginOutcome>> {
        self.first_factor(login, pin, Purpose::Login, None, channel, lifetime, locale)
    }

    /// Asks the citizen to authorise signing `document`: checks the PIN as
    /// a login does (same counting, same lockout) and, if right, sends a
    /// code bound to the document's hash, naming the document in its
    /// message. The code approves this document and nothing else; a new
    /// request supersedes the previous one.
    pub fn request_signature(
        &self,
        login: &LoginId,
        pin: &Pin,
        document: Document,
        channel: Option<Channel>,
        lifetime: Option<Duration>,
        locale: Option<Locale>,
    ) -> Result<Durable<LoginOutcome>> {
        self.first_factor(
            login,
            pin,
            Purpose::Signature,
            Some(document),
            channel,
            lifetime,
            locale,
        )
    }

    /// The PIN, then a code of `purpose` (bound to `document` if given).
    #[allow(clippy::too_many_arguments)] // Two callers, each naming every part.
    fn first_factor(
        &self,
        login: &LoginId,
        pin: &Pin,
        purpose: Purpose,
        document: Option<Document>,
        channel: Option<Channel>,
        lifetime: Option<Duration>,
        locale: Option<Locale>,
    ) -> Result<Durable<LoginOutcome>> {
        self.check_presented_pin("pin", pin)?;
        self.admit_login(login)?;
        self.admit_purpose(purpose, channel)?;
        let now = self.now();
        let found = match self.find_by_login(login)? {
            Some(id) => self.with_account(id, |a| {
                let locked = a.lockout.lock_at(now).is_some();
                (id, a.pin.clone(), a.status, locked)
            })?,
            None => None,
        };
        // Whose events an attempt on a pending or cancelled account belongs to.
        let known = found.as_ref().map(|f| f.0);
        let (id, stored) = match found {
            Some((id, _, _, true)) => {
                let event = AuditEvent::new(EventKind::LoginLocked, Some(id))
                    .with("purpose", purpose.as_str());
                let ticket = self.write(Changes::default(), smallvec![event])?;
                return Ok(self.durable(LoginOutcome::Locked, ticket));
            }
            Some((id, Some(hash), Status::Active, false)) => (id, hash),
            // Unknown, cancelled, or pending activation (no PIN to match):
            // the same Argon2 work and the same durable write as a wrong PIN.
            _ => {
                self.pins.verify_dummy(pin);
                let event = AuditEvent::new(EventKind::LoginUnknown, known)
                    .with("purpose", purpose.as_str())
                    .with("login", self.login_fingerprint(&login.index_key()));
                if let Some(remote) = &self.remote {
                    // The round trips a known login makes on a cluster.
                    remote.decoy(AccountId(self.random()))?;
                }
                let ticket = self.write(Changes(vec![Change::Decoy]), smallvec![event])?;
                return Ok(self.durable(LoginOutcome::InvalidCredentials, ticket));
            }
        };
        let pin_ok = self.pins.verify(pin, &stored);
        self.mutate(id, |tx, now| {
            if tx.account.is_cancelled() || tx.account.pin.as_ref() != Some(&stored) {
                // Cancelled or PIN changed while we were hashing: the check is moot.
                return Ok(LoginOutcome::InvalidCredentials);
            }
            if !pin_ok {
                let event = tx
                    .event(EventKind::LoginWrongPin)
                    .with("purpose", purpose.as_str());
                tx.record(event);
                return Ok(match tx.lockout(Event::PinFailed, now, self) {
                    Transition::Counted { .. } => LoginOutcome::InvalidCredentials,
                    _ => LoginOutcome::Locked,
                });
            }
            if tx.lockout(Event::PinSucceeded, now, self) == Transition::Refused {
                let event = tx
                    .event(EventKind::LoginLocked)
                    .with("purpose", purpose.as_str());
                tx.record(event);
                return Ok(LoginOutcome::Locked);
            }
            let event = tx
                .event(EventKind::LoginAccepted)
                .with("purpose", purpose.as_str());
            tx.record(event);
            let channel = choose_channel(&tx.account, channel)?;
            let destination = destination_for(&tx.account, channel, purpose)?;
            let issue = Issue {
                purpose,
                channel,
                destination,
                lifetime,
                locale,
                document: document.clone(),
                admitted: false,
            };
            Ok(LoginOutcome::CodeSent(self.issue_in(tx, issue, now)?))
        })
    }

    /// Issues a step-up code to an account a client has already authenticated.
    pub fn issue_step_up(
        &self,
        account: AccountId,
        channel: Option<Channel>,
        lifetime: Option<Duration>,
        locale: Option<Locale>,
    ) -> Result<Durable<Issued>> {
        self.admit_purpose(Purpose::StepUp, channel)?;
        self.mutate(account, |tx, now| {
            ensure_usable(&tx.account, now)?;
            let channel = choose_channel(&tx.account, channel)?;
            let destination = destination_for(&tx.account, channel, Purpose::StepUp)?;
            self.issue_in(
                tx,
                Issue {
                    purpose: Purpose::StepUp,
                    channel,
                    destination,
                    lifetime,
                    locale,
                    document: None,
                    admitted: false,
                },
                now,
            )
        })
    }
}
