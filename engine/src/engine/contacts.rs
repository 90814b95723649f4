//! Contact changes: proof of a current contact, then a code sent to the new one.

use dashmap::mapref::entry::Entry;

use crate::account::{email_key, phone_key};
use crate::audit::EventKind;
use crate::challenge::{Issued, Verification};
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::identity::{Email, Phone};
use crate::outbox::Notice;
use crate::secret::Code;
use crate::store::Durable;
use crate::terms::{Channel, Locale, Purpose};

use super::codes::Issue;
use super::{Engine, ensure_usable};

/// A contact detail that can be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// A new mobile number.
    Phone(Phone),
    /// A new email address.
    Email(Email),
}

/// The outcome of starting a contact change.
#[derive(Debug, Clone)]
pub enum ContactChangeStart {
    /// The current contact was proven; a code was sent to the new one.
    CodeSent(Issued),
    /// The proof code for the current contact was not accepted.
    ProofRejected(Verification),
}

impl Engine {
    /// Starts a phone or email change: `proof` must be a fresh step-up code
    /// sent to a current contact; a contact-change code then goes to the new one.
    pub fn begin_contact_change(
        &self,
        account: AccountId,
        proof: ChallengeId,
        proof_code: &Code,
        new_contact: Contact,
        locale: Option<Locale>,
    ) -> Result<Durable<ContactChangeStart>> {
        self.admit_purpose(Purpose::ContactChange, None)?;
        match &new_contact {
            Contact::Phone(p) => self.admit_contacts(Some(p), None)?,
            Contact::Email(e) => self.admit_contacts(None, Some(e))?,
        }
        let (key, field, channel, destination) = match &new_contact {
            Contact::Phone(p) => (phone_key(p), "phone", Channel::Sms, p.as_str().to_owned()),
            Contact::Email(e) => (email_key(e), "email", Channel::Email, e.as_str().to_owned()),
        };
        self.mutate(account, |tx, now| {
            ensure_usable(&tx.account, now)?;
            match self.index.get(&key).map(|owner| *owner) {
                Some(owner) if owner == tx.account.id => {
                    return Err(EngineError::invalid(field, "is already this account's"));
                }
                Some(_) => return Err(EngineError::Conflict { field }),
                None => {}
            }
            match self.check_code(tx, proof, Purpose::StepUp, proof_code, now)? {
                Verification::Approved(_) => {}
                other => return Ok(ContactChangeStart::ProofRejected(other)),
            }
            let event = tx
                .event(EventKind::ContactChangeRequested)
                .with("field", field)
                .with(
                    "to",
                    crate::challenge::mask_destination(channel, &destination),
                );
            tx.record(event);
            let issued = self.issue_in(
                tx,
                Issue {
                    purpose: Purpose::ContactChange,
                    channel,
                    destination,
                    lifetime: None,
                    locale,
                    document: None,
                },
                now,
            )?;
            Ok(ContactChangeStart::CodeSent(issued))
        })
    }

    /// Completes a contact change with the code sent to the new contact.
    pub fn confirm_contact_change(
        &self,
        challenge: ChallengeId,
        code: &Code,
    ) -> Result<Durable<Verification>> {
        let account = self.challenge_owner(challenge)?;
        let mut reserved: Option<String> = None;
        let result = self.mutate(account, |tx, now| {
            let outcome = self.check_code(tx, challenge, Purpose::ContactChange, code, now)?;
            if !matches!(outcome, Verification::Approved(_)) {
                return Ok(outcome);
            }
            let c = self
                .challenge_in(tx, challenge)
                .ok_or(EngineError::ChallengeNotFound)?;
            let (key, field) = match c.channel {
                Channel::Sms => (phone_key(&Phone::parse(&c.destination)?), "phone"),
                _ => (email_key(&Email::parse(&c.destination)?), "email"),
            };
            match self.index.entry(key.clone()) {
                Entry::Occupied(owner) if *owner.get() != tx.account.id => {
                    return Err(EngineError::Conflict { field });
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(vacant) => {
                    vacant.insert(tx.account.id);
                    reserved = Some(key);
                }
            }
            let mut event = tx
                .event(EventKind::ContactChanged)
                .with("field", field)
                .with(
                    "to",
                    crate::challenge::mask_destination(c.channel, &c.destination),
                );
            let before_phone = tx.account.phone.as_ref().map(|p| p.as_str().to_owned());
            let before_email = tx.account.email.as_ref().map(|e| e.as_str().to_owned());
            let before = match c.channel {
                Channel::Sms => tx.account.phone.as_ref().map(Phone::masked),
                _ => tx.account.email.as_ref().map(Email::masked),
            };
            if let Some(before) = before {
                event = event.with("from", before);
            }
            tx.record(event);
            let account = tx.account_mut();
            let old = match c.channel {
                Channel::Sms => account
                    .phone
                    .replace(Phone::parse(&c.destination)?)
                    .map(|p| phone_key(&p)),
                _ => account
                    .email
                    .replace(Email::parse(&c.destination)?)
                    .map(|e| email_key(&e)),
            };
            tx.unindex.extend(old);
            let replaced = match c.channel {
                Channel::Sms => before_phone.map(|p| (Channel::Sms, p)),
                _ => before_email.map(|e| (Channel::Email, e)),
            };
            self.notify(tx, Notice::ContactChanged, replaced, now);
            Ok(outcome)
        });
        if result.is_err()
            && let Some(key) = reserved
        {
            self.index.remove_if(&key, |_, owner| *owner == account);
        }
        result
    }
}
