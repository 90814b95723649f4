//! What the calling client may do: see a challenge (only its own), have a
//! code issued (its purposes, channels and rate), and, for a test client,
//! touch an account (only one whose phone and email are test destinations).
//!
//! The caller is the client the api names around an engine call with
//! [`acting`](crate::audit::acting) (`Actor::client_id`). A call made
//! outside it (the sweeper, the sender, offline commands) is the system's
//! own and is held to none of this.

use dashmap::mapref::one::Ref;

use crate::account::Account;
use crate::audit::current_client_id;
use crate::challenge::Challenge;
use crate::client::{Client, ClientId, ClientInfo};
use crate::error::{EngineError, Result};
use crate::identity::{Email, Phone};
use crate::terms::{Channel, Purpose};

use super::{Engine, LoginId};

type Caller<'a> = Ref<'a, ClientId, Client>;

impl Engine {
    /// The calling client; `None` for the system. Held briefly: the clients
    /// map is written only by client changes, which hold no other lock.
    fn caller(&self) -> Result<Option<Caller<'_>>> {
        let Some(id) = current_client_id() else {
            return Ok(None);
        };
        // Fail closed: a caller named but not known is refused, not let through.
        self.clients.get(&id).map(Some).ok_or_else(|| {
            EngineError::not_permitted("client", "the calling client is not registered")
        })
    }

    /// Whether the calling client may see `challenge`: its own, or one that
    /// belongs to no client (the system's, or made before challenges had
    /// owners). To any other client it does not exist.
    pub(super) fn may_see(&self, challenge: &Challenge) -> bool {
        match (challenge.client, current_client_id()) {
            (Some(owner), Some(caller)) => owner == caller,
            _ => true,
        }
    }

    /// Refuses, before any PIN work, a code the caller may not have issued:
    /// its purpose, or the channel the request names.
    pub(super) fn admit_purpose(&self, purpose: Purpose, channel: Option<Channel>) -> Result<()> {
        let Some(caller) = self.caller()? else {
            return Ok(());
        };
        check_policy(&caller.info, purpose, channel)
    }

    /// Everything a code must pass for the caller before it is made: its
    /// purpose and channel, test mode (`to_test_destination`: it goes to
    /// one), and last the caller's rate, which it spends.
    pub(super) fn admit_issue(
        &self,
        purpose: Purpose,
        channel: Channel,
        to_test_destination: bool,
    ) -> Result<()> {
        let Some(caller) = self.caller()? else {
            return Ok(());
        };
        check_policy(&caller.info, purpose, Some(channel))?;
        if caller.info.test && !to_test_destination {
            return Err(EngineError::not_permitted(
                "channel",
                format!(
                    "test client {:?} sends codes only by sms or email to test destinations \
                     ([test_mode] destinations); this one is not",
                    caller.info.name
                ),
            ));
        }
        if let Some(limit) = self.client_rates.get(&caller.info.id) {
            limit.check()?;
        }
        Ok(())
    }

    /// For a test client: refuses an account unless it has a phone or an
    /// email and each it has is a test destination. The answer does not say
    /// which contact failed: the caller may not know the account's.
    pub(super) fn admit_account(&self, account: &Account) -> Result<()> {
        let Some(caller) = self.caller()? else {
            return Ok(());
        };
        // A destination's holder is no account: a client reaches it only
        // through the account-less operations (`destinations.rs`).
        if account.is_holder() && !super::destinations::on_holders_now() {
            return Err(EngineError::AccountNotFound);
        }
        if !caller.info.test || self.is_test_contact(account.phone.as_ref(), account.email.as_ref())
        {
            return Ok(());
        }
        Err(EngineError::not_permitted(
            "account_id",
            format!(
                "test client {:?} may only touch accounts whose phone and email are test \
                 destinations ([test_mode] destinations); this account's are not",
                caller.info.name
            ),
        ))
    }

    /// For a test client: refuses contacts for a new account (or a new
    /// contact) unless there is a phone or an email and each is a test
    /// destination, naming the one that is not.
    pub(super) fn admit_contacts(
        &self,
        phone: Option<&Phone>,
        email: Option<&Email>,
    ) -> Result<()> {
        let Some(caller) = self.caller()? else {
            return Ok(());
        };
        if !caller.info.test || self.is_test_contact(phone, email) {
            return Ok(());
        }
        let field = match (phone, email) {
            (Some(p), _) if !self.test_codes.contains(p.as_str()) => "phone",
            (_, Some(e)) if !self.test_codes.contains(e.as_str()) => "email",
            _ => "phone",
        };
        Err(EngineError::not_permitted(
            field,
            format!(
                "test client {:?} may only use test destinations ([test_mode] destinations) \
                 as a phone or email, and needs one; this {field} is not one",
                caller.info.name
            ),
        ))
    }

    /// For a test client: refuses a login by a phone or email that is not a
    /// test destination, before the account is looked up.
    pub(super) fn admit_login(&self, login: &LoginId) -> Result<()> {
        let Some(caller) = self.caller()? else {
            return Ok(());
        };
        let (field, value) = match login {
            LoginId::Phone(p) => ("phone", p.as_str()),
            LoginId::Email(e) => ("email", e.as_str()),
        };
        if !caller.info.test || self.test_codes.contains(value) {
            return Ok(());
        }
        Err(EngineError::not_permitted(
            field,
            format!(
                "test client {:?} may only log in with a test destination ([test_mode] \
                 destinations); this {field} is not one",
                caller.info.name
            ),
        ))
    }

    /// Whether an account found by identity must look absent to the caller
    /// (a test client, an account not made of test destinations): so a
    /// test client learns nothing of identities beyond its test accounts.
    pub(super) fn hides(&self, account: &Account) -> bool {
        matches!(self.caller(), Ok(Some(c)) if c.info.test)
            && !self.is_test_contact(account.phone.as_ref(), account.email.as_ref())
    }

    fn is_test_contact(&self, phone: Option<&Phone>, email: Option<&Email>) -> bool {
        let phone_ok = phone.is_none_or(|p| self.test_codes.contains(p.as_str()));
        let email_ok = email.is_none_or(|e| self.test_codes.contains(e.as_str()));
        (phone.is_some() || email.is_some()) && phone_ok && email_ok
    }
}

/// The caller's purposes and channels (`channel` if one is named).
fn check_policy(caller: &ClientInfo, purpose: Purpose, channel: Option<Channel>) -> Result<()> {
    if let Some(allowed) = caller.policy.purposes
        && !allowed.contains(purpose)
    {
        return Err(EngineError::not_permitted(
            "purpose",
            format!(
                "client {:?} may not have {} codes issued (its purposes: {})",
                caller.name,
                purpose.as_str(),
                allowed
                    .iter()
                    .map(Purpose::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let (Some(allowed), Some(channel)) = (caller.policy.channels, channel)
        && !allowed.contains(channel)
    {
        return Err(EngineError::not_permitted(
            "channel",
            format!(
                "client {:?} may not have codes sent by {} (its channels: {})",
                caller.name,
                channel.as_str(),
                allowed
                    .iter()
                    .map(Channel::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}
