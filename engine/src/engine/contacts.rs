//! Contact changes and removals: proof by a step-up code, then (for a
//! change) a code sent to the new contact.

use dashmap::mapref::entry::Entry;

use crate::account::{Account, dm_key, email_key, phone_key};
use crate::audit::EventKind;
use crate::challenge::{ChallengeState, Issued, Verification, mask_destination};
use crate::cluster::index::Claim;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::identity::{DmHandle, Email, Phone};
use crate::outbox::Notice;
use crate::secret::Code;
use crate::store::Durable;
use crate::terms::{Channel, Locale, Purpose};

use super::codes::Issue;
use super::{Engine, Tx, ensure_usable};

/// A contact detail that can be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// A new mobile number.
    Phone(Phone),
    /// A new email address.
    Email(Email),
    /// A new direct-message handle.
    Dm(DmHandle),
}

/// Which contact to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactKind {
    /// The mobile number.
    Phone,
    /// The email address.
    Email,
    /// The registered app (push codes).
    PushDevice,
    /// The direct-message handle.
    Dm,
}

impl ContactKind {
    /// Parses the API name: `phone`, `email`, `push_device` or `dm`.
    pub fn parse(text: &str) -> Result<ContactKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "phone" => Ok(ContactKind::Phone),
            "email" => Ok(ContactKind::Email),
            "push_device" => Ok(ContactKind::PushDevice),
            "dm" => Ok(ContactKind::Dm),
            _ => Err(EngineError::invalid(
                "contact",
                "must be one of phone, email, push_device, dm",
            )),
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Phone => "phone",
            ContactKind::Email => "email",
            ContactKind::PushDevice => "push_device",
            ContactKind::Dm => "dm",
        }
    }

    /// The channel codes to this contact travel by.
    fn channel(self) -> Channel {
        match self {
            ContactKind::Phone => Channel::Sms,
            ContactKind::Email => Channel::Email,
            ContactKind::PushDevice => Channel::Push,
            ContactKind::Dm => Channel::Dm,
        }
    }

    /// This contact on `account`, as a challenge names its destination.
    fn destination(self, account: &Account) -> Option<String> {
        match self {
            ContactKind::Phone => account.phone.as_ref().map(|p| p.as_str().to_owned()),
            ContactKind::Email => account.email.as_ref().map(|e| e.as_str().to_owned()),
            ContactKind::PushDevice => account.push_token.as_ref().map(|t| t.as_str().to_owned()),
            ContactKind::Dm => account.dm.as_deref().map(DmHandle::destination),
        }
    }

    const ALL: [ContactKind; 4] = [
        ContactKind::Phone,
        ContactKind::Email,
        ContactKind::PushDevice,
        ContactKind::Dm,
    ];
}

/// The outcome of asking to remove a contact.
#[derive(Debug, Clone)]
pub enum ContactRemoval {
    /// The proof was accepted and the contact is gone.
    Removed,
    /// The step-up code was not accepted; nothing was removed.
    ProofRejected(Verification),
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
    /// Starts a phone, email or direct-message handle change (or adds one
    /// the account lacks): `proof` must be a fresh step-up code
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
            // Test mode has no test handles: a test client may add none.
            Contact::Dm(_) => self.admit_contacts(None, None)?,
        }
        let (key, field, channel, destination) = match &new_contact {
            Contact::Phone(p) => (phone_key(p), "phone", Channel::Sms, p.as_str().to_owned()),
            Contact::Email(e) => (email_key(e), "email", Channel::Email, e.as_str().to_owned()),
            Contact::Dm(d) => (dm_key(d), "dm", Channel::Dm, d.destination()),
        };
        self.mutate(account, |tx, now| {
            ensure_usable(&tx.account, now)?;
            match self.holder(&key)? {
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
                .with("to", mask_destination(channel, &destination));
            tx.record(event);
            let issued = self.issue_in(
                tx,
                Issue {
                    purpose: Purpose::ContactChange,
                    channel,
                    destination: destination.clone(),
                    lifetime: None,
                    locale,
                    document: None,
                    admitted: false,
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
        // Whether the change as last computed (on a cluster it may run
        // again) wants the reserved key.
        let mut wanted = false;
        let result = self.mutate_about(account, challenge, |tx, now| {
            wanted = false;
            let outcome = self.check_code(tx, challenge, Purpose::ContactChange, code, now)?;
            if !matches!(outcome, Verification::Approved(_)) {
                return Ok(outcome);
            }
            let c = self
                .challenge_in(tx, challenge)
                .ok_or(EngineError::ChallengeNotFound)?;
            let new = match c.channel {
                Channel::Sms => Contact::Phone(Phone::parse(&c.destination)?),
                Channel::Email => Contact::Email(Email::parse(&c.destination)?),
                Channel::Dm => Contact::Dm(DmHandle::from_destination(&c.destination)?),
                Channel::Push | Channel::Letter => {
                    return Err(EngineError::Internal(
                        "a contact-change code went by push or letter".into(),
                    ));
                }
            };
            let (key, field) = match &new {
                Contact::Phone(p) => (phone_key(p), "phone"),
                Contact::Email(e) => (email_key(e), "email"),
                Contact::Dm(d) => (dm_key(d), "dm"),
            };
            if self.reserve(&key, tx.account.id)? {
                reserved = Some(key);
            } else if self.holder(&key)? != Some(tx.account.id) {
                return Err(EngineError::Conflict { field });
            }
            wanted = true;
            let mut event = tx
                .event(EventKind::ContactChanged)
                .with("field", field)
                .with("to", mask_destination(c.channel, &c.destination));
            let before = match &new {
                Contact::Phone(_) => tx.account.phone.as_ref().map(Phone::masked),
                Contact::Email(_) => tx.account.email.as_ref().map(Email::masked),
                Contact::Dm(_) => tx.account.dm.as_deref().map(DmHandle::masked),
            };
            if let Some(before) = before {
                event = event.with("from", before);
            }
            tx.record(event);
            let account = tx.account_mut();
            let (old_key, replaced) = match new {
                Contact::Phone(p) => account
                    .phone
                    .replace(p)
                    .map(|old| (phone_key(&old), (Channel::Sms, old.as_str().to_owned())))
                    .unzip(),
                Contact::Email(e) => account
                    .email
                    .replace(e)
                    .map(|old| (email_key(&old), (Channel::Email, old.as_str().to_owned())))
                    .unzip(),
                Contact::Dm(d) => account
                    .dm
                    .replace(Box::new(d))
                    .map(|old| (dm_key(&old), (Channel::Dm, old.destination())))
                    .unzip(),
            };
            tx.unindex.extend(old_key);
            self.notify(tx, Notice::ContactChanged, replaced, now);
            Ok(outcome)
        });
        if (result.is_err() || !wanted)
            && let Some(key) = reserved
        {
            // Best effort: a key left held blocks that contact, never
            // shares it; the change's own outcome is what the caller gets.
            let _ = self.unreserve(&key, account);
        }
        result
    }

    /// Gives index key `key` to `owner` if nobody holds it: true if it
    /// did, false if somebody (`owner` included) held it already. On a
    /// cluster the key is claimed, then held, before the account's change
    /// is written: a node that dies in between leaves a key held for an
    /// account without that contact (blocked, never shared).
    fn reserve(&self, key: &str, owner: AccountId) -> Result<bool> {
        let Some(remote) = &self.remote else {
            return Ok(match self.index.entry(key) {
                Entry::Occupied(_) => false,
                Entry::Vacant(vacant) => {
                    vacant.insert(owner);
                    true
                }
            });
        };
        if remote.lookup(key)? == Some(owner) {
            return Ok(false);
        }
        match remote.claim(key, owner)? {
            Claim::Taken(_) => Ok(false),
            Claim::Ours => {
                if remote.commit_claim(key, owner)? {
                    Ok(true)
                } else {
                    Err(EngineError::Storage(format!(
                        "the claim on {key} expired before it was held"
                    )))
                }
            }
        }
    }

    /// Undoes [`Engine::reserve`]. On a cluster, only if the account as
    /// stored now does not hold the key: a change that lost a race and
    /// was computed again may find that another request for the same
    /// change committed it, and a write that failed may have been made.
    fn unreserve(&self, key: &str, owner: AccountId) -> Result<()> {
        match &self.remote {
            Some(remote) => {
                let holds =
                    self.with_account(owner, |a| a.index_keys().iter().any(|(k, _)| k == key))?;
                if holds == Some(false) {
                    remote.release(key, owner)?;
                }
                Ok(())
            }
            None => {
                self.index.release(key, owner);
                Ok(())
            }
        }
    }

    /// Removes a contact, proven by a step-up code (`proof`), as long as
    /// the account keeps a phone or an email to log in with and a contact
    /// that can receive codes on this server. Live codes sent to the
    /// removed contact die with it, and the citizen is told (the removed
    /// contact too) if notices of contact changes are on.
    pub fn remove_contact(
        &self,
        account: AccountId,
        proof: ChallengeId,
        proof_code: &Code,
        contact: ContactKind,
    ) -> Result<Durable<ContactRemoval>> {
        self.mutate(account, |tx, now| {
            ensure_usable(&tx.account, now)?;
            let Some(destination) = contact.destination(&tx.account) else {
                return Err(EngineError::WrongState(match contact {
                    ContactKind::Phone => "the account has no mobile number to remove",
                    ContactKind::Email => "the account has no email address to remove",
                    ContactKind::PushDevice => "the account has no push device to remove",
                    ContactKind::Dm => "the account has no direct-message handle to remove",
                }));
            };
            self.ensure_reachable_without(&tx.account, contact)?;
            match self.check_code(tx, proof, Purpose::StepUp, proof_code, now)? {
                Verification::Approved(_) => {}
                other => return Ok(ContactRemoval::ProofRejected(other)),
            }
            let channel = contact.channel();
            let event = tx
                .event(EventKind::ContactRemoved)
                .with("field", contact.as_str())
                .with("from", mask_destination(channel, &destination));
            tx.record(event);
            self.drop_codes_to(tx, channel, &destination);
            let account = tx.account_mut();
            let unindexed = match contact {
                ContactKind::Phone => account.phone.take().map(|p| phone_key(&p)),
                ContactKind::Email => account.email.take().map(|e| email_key(&e)),
                ContactKind::PushDevice => {
                    account.push_token = None;
                    None
                }
                ContactKind::Dm => account.dm.take().map(|d| dm_key(&d)),
            };
            tx.unindex.extend(unindexed);
            self.notify(
                tx,
                Notice::ContactRemoved,
                Some((channel, destination)),
                now,
            );
            Ok(ContactRemoval::Removed)
        })
    }

    /// Refuses to remove `contact` when the account would be left with no
    /// phone or email to log in with, or with no contact whose channel can
    /// deliver codes here.
    fn ensure_reachable_without(&self, account: &Account, contact: ContactKind) -> Result<()> {
        let remaining: Vec<ContactKind> = ContactKind::ALL
            .into_iter()
            .filter(|k| *k != contact && k.destination(account).is_some())
            .collect();
        let is_login = |k: &ContactKind| matches!(k, ContactKind::Phone | ContactKind::Email);
        if is_login(&contact) && !remaining.iter().any(is_login) {
            return Err(EngineError::LastContact {
                field: contact.as_str(),
                reason: "a citizen logs in with a mobile number or an email, and this is the \
                         account's only one: add the other before removing it",
            });
        }
        let enabled = &self.config.outbox.enabled;
        if !remaining.iter().any(|k| enabled.contains(&k.channel())) {
            return Err(EngineError::LastContact {
                field: contact.as_str(),
                reason: "no other contact of the account can receive codes on this server: \
                         add one before removing this one",
            });
        }
        Ok(())
    }

    /// Supersedes the account's live codes that went to `destination` by `channel`.
    fn drop_codes_to(&self, tx: &mut Tx, channel: Channel, destination: &str) {
        for purpose in Purpose::ALL {
            let Some(id) = tx.account.current(purpose) else {
                continue;
            };
            let to_it = self.challenge_in(tx, id).is_some_and(|c| {
                c.state == ChallengeState::Live
                    && c.channel == channel
                    && *c.destination == *destination
            });
            if to_it {
                self.supersede(tx, id);
                tx.account_mut().current.set(purpose, None);
            }
        }
    }
}
