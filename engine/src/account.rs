//! Accounts: an identity bound to at most one phone, at most one email, at
//! most one direct-message handle, and a PIN.

use crate::clock::Timestamp;
use crate::id::{AccountId, ChallengeId};
use crate::identity::{BirthDate, DmHandle, Email, Identity, Phone, PostalAddress, PushToken};
use crate::lockout::{Lock, Lockout};
use crate::secret::PinHash;
use crate::terms::{Locale, Purpose};

/// The life stage of an account, apart from locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Pre-registered; waits for activation and has no PIN.
    PendingActivation,
    /// Registered and usable.
    Active,
    /// Cancelled at the given time; kept for audit, its identifiers freed.
    Cancelled(Timestamp),
}

/// An account as the engine holds it.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) id: AccountId,
    pub(crate) identity: Identity,
    pub(crate) phone: Option<Phone>,
    pub(crate) email: Option<Email>,
    pub(crate) birth_date: Option<BirthDate>,
    pub(crate) postal_address: Option<PostalAddress>,
    pub(crate) push_token: Option<PushToken>,
    /// A handle on a direct-message platform, for codes by relay. Boxed:
    /// few accounts have one, and accounts are held by value in their map.
    pub(crate) dm: Option<Box<DmHandle>>,
    /// The language the citizen chose for messages; `None` follows the server's default.
    pub(crate) locale: Option<Locale>,
    pub(crate) pin: Option<PinHash>,
    pub(crate) status: Status,
    pub(crate) lockout: Lockout,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    /// The live challenge of each purpose (memory only; rebuilt on start).
    pub(crate) current: [Option<ChallengeId>; 5],
}

impl Account {
    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(self.status, Status::Cancelled(_))
    }

    pub(crate) fn current(&self, purpose: Purpose) -> Option<ChallengeId> {
        self.current[purpose.slot()]
    }

    /// Index keys under which this account can be found while live, with the field each comes from.
    pub(crate) fn index_keys(&self) -> Vec<(String, &'static str)> {
        let mut keys = vec![(self.identity.index_key(), "identity")];
        keys.extend(self.phone.as_ref().map(|p| (phone_key(p), "phone")));
        keys.extend(self.email.as_ref().map(|e| (email_key(e), "email")));
        keys.extend(self.dm.as_ref().map(|d| (dm_key(d), "dm")));
        keys
    }

    /// Its state at `now`, apart from the rest of the view.
    pub(crate) fn state(&self, now: Timestamp) -> AccountState {
        match (self.status, self.lockout.lock_at(now)) {
            (Status::Cancelled(at), _) => AccountState::Cancelled { at },
            (_, Some(lock)) => AccountState::Locked(lock.clone()),
            (Status::PendingActivation, None) => AccountState::PendingActivation,
            (Status::Active, None) => AccountState::Active,
        }
    }

    pub(crate) fn view(&self, now: Timestamp) -> AccountView {
        let state = self.state(now);
        AccountView {
            id: self.id,
            identity: self.identity.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            has_postal_address: self.postal_address.is_some(),
            has_push_device: self.push_token.is_some(),
            dm: self.dm.as_deref().cloned(),
            locale: self.locale,
            state,
            pin_failures: self.lockout.pin_failures(),
            code_failures: self.lockout.code_failures(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

pub(crate) fn phone_key(phone: &Phone) -> String {
    format!("p:{}", phone.as_str())
}

pub(crate) fn email_key(email: &Email) -> String {
    format!("e:{}", email.as_str())
}

/// A handle is one citizen's, like a phone: two accounts never share one.
pub(crate) fn dm_key(dm: &DmHandle) -> String {
    format!("d:{}", dm.destination())
}

/// An account's state as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountState {
    /// Pre-registered, waiting for activation.
    PendingActivation,
    /// Usable.
    Active,
    /// Locked; login and verification answer "locked".
    Locked(Lock),
    /// Cancelled; kept for audit.
    Cancelled {
        /// When.
        at: Timestamp,
    },
}

impl AccountState {
    /// The API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountState::PendingActivation => "pending_activation",
            AccountState::Active => "active",
            AccountState::Locked(_) => "locked",
            AccountState::Cancelled { .. } => "cancelled",
        }
    }
}

/// A read-only view of an account. It never carries the PIN hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The account id.
    pub id: AccountId,
    /// Its identity.
    pub identity: Identity,
    /// Its mobile number.
    pub phone: Option<Phone>,
    /// Its email.
    pub email: Option<Email>,
    /// Whether letters can be sent.
    pub has_postal_address: bool,
    /// Whether a push device is registered.
    pub has_push_device: bool,
    /// Its direct-message handle.
    pub dm: Option<DmHandle>,
    /// The language chosen for its messages; `None` follows the server's default.
    pub locale: Option<Locale>,
    /// Its state.
    pub state: AccountState,
    /// Consecutive wrong PINs.
    pub pin_failures: u32,
    /// Consecutive wrong codes.
    pub code_failures: u32,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}
