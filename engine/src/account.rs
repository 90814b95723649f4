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
    pub(crate) current: Current,
}

impl Account {
    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(self.status, Status::Cancelled(_))
    }

    pub(crate) fn current(&self, purpose: Purpose) -> Option<ChallengeId> {
        self.current.get(purpose)
    }

    /// Whether this is no citizen's account but the holder of a client's
    /// account-less codes to one destination (`engine/destinations.rs`):
    /// never indexed, listed, counted or shown as an account.
    pub(crate) fn is_holder(&self) -> bool {
        matches!(self.identity, Identity::Destination)
    }

    /// Index keys under which this account can be found while live, with the field each comes from.
    /// A holder has none: it claims no identity and no contact.
    pub(crate) fn index_keys(&self) -> Vec<(String, &'static str)> {
        if self.is_holder() {
            return Vec::new();
        }
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

/// The live challenge of each purpose. An account mostly has none, or one
/// live at a time: one is held inline (24 bytes in all, where six slots
/// took 101), more than one in a box.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Current {
    #[default]
    None,
    One(Purpose, ChallengeId),
    Many(Box<[Option<ChallengeId>; 6]>),
}

impl Current {
    pub(crate) fn get(&self, purpose: Purpose) -> Option<ChallengeId> {
        match self {
            Current::None => None,
            Current::One(held, id) => (*held == purpose).then_some(*id),
            Current::Many(slots) => slots[purpose.slot()],
        }
    }

    /// Makes `id` the live challenge of `purpose` (`None`: there is none).
    pub(crate) fn set(&mut self, purpose: Purpose, id: Option<ChallengeId>) {
        let mut slots = match std::mem::take(self) {
            Current::None => [None; 6],
            Current::One(held, other) => {
                let mut slots = [None; 6];
                slots[held.slot()] = Some(other);
                slots
            }
            Current::Many(slots) => *slots,
        };
        slots[purpose.slot()] = id;
        let mut live = Purpose::ALL
            .iter()
            .filter_map(|p| slots[p.slot()].map(|id| (*p, id)));
        *self = match (live.next(), live.next()) {
            (None, _) => Current::None,
            (Some((p, id)), None) => Current::One(p, id),
            (Some(_), Some(_)) => Current::Many(Box::new(slots)),
        };
    }

    /// Clears whichever purpose `id` is the live challenge of.
    pub(crate) fn forget(&mut self, id: ChallengeId) {
        for purpose in Purpose::ALL {
            if self.get(purpose) == Some(id) {
                self.set(purpose, None);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChallengeId {
        ChallengeId([n; 16])
    }

    #[test]
    fn current_holds_one_inline_and_more_in_a_box() {
        let mut current = Current::default();
        assert_eq!(current.get(Purpose::Login), None);
        current.set(Purpose::Login, Some(id(1)));
        assert_eq!(current, Current::One(Purpose::Login, id(1)));
        assert_eq!(current.get(Purpose::StepUp), None);
        current.set(Purpose::Signature, Some(id(2)));
        assert!(matches!(current, Current::Many(_)));
        assert_eq!(
            Purpose::ALL.map(|p| current.get(p)),
            [Some(id(1)), None, None, None, Some(id(2)), None]
        );
        current.set(Purpose::Login, Some(id(3)));
        assert_eq!(current.get(Purpose::Login), Some(id(3)));
        current.forget(id(3));
        assert_eq!(current, Current::One(Purpose::Signature, id(2)));
        current.forget(id(9));
        assert_eq!(current, Current::One(Purpose::Signature, id(2)));
        current.set(Purpose::Signature, None);
        assert_eq!(current, Current::None);
        assert!(std::mem::size_of::<Current>() <= 24);
    }

    /// Every account is held in memory: its size is a capacity figure
    /// (docs/CAPACITY.md, memory per account), not to grow unnoticed.
    #[test]
    fn an_account_stays_compact() {
        let size = std::mem::size_of::<Account>();
        eprintln!("Account: {size} bytes");
        assert!(size <= 288, "Account grew to {size} bytes");
        assert!(std::mem::size_of::<crate::lockout::Lockout>() <= 24);
    }
}
