//! Accounts: registration, pre-registration, import, reading, and the privileged operations (lock, unlock, cancel), the push device and the citizen's locale.

use smallvec::smallvec;

use crate::cluster::index::Registration;

use dashmap::mapref::entry::Entry;

use crate::account::{Account, AccountView, Current, Status, dm_key, email_key, phone_key};
use crate::audit::{Event as AuditEvent, EventKind};
use crate::clock::Timestamp;

use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::identity::{BirthDate, DmHandle, Email, Identity, Phone, PostalAddress, PushToken};
use crate::lockout::Event;
use crate::outbox::Notice;
use crate::pin::PinHasher;
use crate::secret::Pin;
use crate::store::{Change, Changes, Durable};
use crate::terms::{Locale, MessageId, Purpose};

use super::{Engine, Tx, ensure_usable};

/// A registration with a PIN.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The identity document.
    pub identity: Identity,
    /// The mobile number, if any.
    pub phone: Option<Phone>,
    /// The email, if any.
    pub email: Option<Email>,
    /// The chosen PIN.
    pub pin: Pin,
    /// Date of birth, if known.
    pub birth_date: Option<BirthDate>,
    /// Postal address, if known.
    pub postal_address: Option<PostalAddress>,
    /// A direct-message handle, if any (codes by relay; not a login).
    pub dm: Option<DmHandle>,
    /// The language for the citizen's messages; `None` follows the server's default.
    pub locale: Option<Locale>,
}

#[cfg(test)]
impl NewAccount {
    /// The unit tests' citizen: civil ID 12345678, `phone`, PIN 4821.
    pub(crate) fn for_tests(phone: &Phone) -> NewAccount {
        NewAccount {
            identity: Identity::parse(crate::identity::IdentityKind::CivilId, "12345678", None)
                .unwrap_or_else(|e| panic!("{e}")),
            phone: Some(phone.clone()),
            email: None,
            pin: Pin::new("4821"),
            birth_date: None,
            postal_address: None,
            dm: None,
            locale: None,
        }
    }
}

/// A pre-registration, to be activated with a code.
#[derive(Debug, Clone)]
pub struct PreRegistration {
    /// The identity document.
    pub identity: Identity,
    /// Date of birth: the second thing the citizen must know to activate.
    pub birth_date: BirthDate,
    /// The mobile number on file, if any.
    pub phone: Option<Phone>,
    /// The email on file, if any.
    pub email: Option<Email>,
    /// The postal address on file, if any (for letters).
    pub postal_address: Option<PostalAddress>,
    /// The language for the citizen's messages; `None` follows the server's default.
    pub locale: Option<Locale>,
}

/// An account migrated from another system.
#[derive(Debug, Clone)]
pub struct ImportAccount {
    /// The identity document.
    pub identity: Identity,
    /// The mobile number, if any.
    pub phone: Option<Phone>,
    /// The email, if any.
    pub email: Option<Email>,
    /// Date of birth, if known.
    pub birth_date: Option<BirthDate>,
    /// Postal address, if known.
    pub postal_address: Option<PostalAddress>,
    /// An existing Argon2 PHC string; required unless pending activation.
    pub pin_hash: Option<String>,
    /// The state to import into.
    pub state: ImportState,
}

/// The state an imported account starts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportState {
    /// Usable at once.
    Active,
    /// Waits for activation.
    PendingActivation,
    /// Locked by the previous system, with its reason.
    Locked(String),
}

fn check_reason(reason: &str) -> Result<String> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            "reason",
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(reason.to_owned())
}

impl Engine {
    /// Adds a new account, reserving its identity and contacts atomically;
    /// `describe` says what the caller gets back.
    fn insert_account<T>(
        &self,
        account: Account,
        kind: EventKind,
        describe: impl FnOnce(&Account, Timestamp) -> T,
    ) -> Result<Durable<T>> {
        let id = account.id;
        let mut event =
            AuditEvent::new(kind, Some(id)).with("identity_kind", account.identity.kind().as_str());
        if let Some(phone) = &account.phone {
            event = event.with("phone", phone.masked());
        }
        if let Some(email) = &account.email {
            event = event.with("email", email.masked());
        }
        if let Some(dm) = &account.dm {
            event = event.with("dm", dm.masked());
        }
        if let Some(locale) = account.locale {
            event = event.with("locale", locale.as_str());
        }
        if account.postal_address.is_some() {
            event = event.with("postal_address", "on file");
        }
        if let Some(remote) = &self.remote {
            let keys: Vec<String> = account.index_keys().into_iter().map(|(k, _)| k).collect();
            // The event goes to this node's store: refused there (a full
            // disk), the registration is refused before it is made.
            self.store.writable()?;
            let journal = remote.journal(id, std::slice::from_ref(&event), self.now())?;
            let key = journal.0.clone();
            let registered = match remote.register_with(&account, &keys, Some(journal)) {
                // Outcome unknown: if its journal entry is there, the account
                // was made (unacknowledged): its event is recorded now.
                Err(EngineError::NotStored(why)) if remote.holds(&key).unwrap_or(false) => {
                    let ticket = self.write(Changes::default(), smallvec![event])?;
                    remote.forget_after(key, &self.commit, ticket);
                    return Err(EngineError::NotStored(why));
                }
                other => other?,
            };
            return match registered {
                Registration::Registered => {
                    let ticket = self.write(Changes::default(), smallvec![event])?;
                    remote.forget_after(key, &self.commit, ticket);
                    Ok(self.durable(describe(&account, self.now()), ticket))
                }
                Registration::Taken(key, _) => {
                    let field = account
                        .index_keys()
                        .into_iter()
                        .find(|(k, _)| remote.keys().index(k) == key)
                        .map_or("identity", |(_, field)| field);
                    Err(EngineError::Conflict { field })
                }
            };
        }
        let keys = account.index_keys();
        let Entry::Vacant(slot) = self.accounts.entry(id) else {
            return Err(EngineError::Internal("account id collision".into()));
        };
        let guard = slot.insert(Box::new(account));
        let mut reserved: Vec<String> = Vec::new();
        let release = |reserved: &[String]| {
            for key in reserved {
                self.index.release(key, id);
            }
        };
        for (key, field) in keys {
            // Decide under the index entry, act after it is released: rolling
            // back while holding it deadlocks when an earlier key shares its shard.
            let taken = match self.index.entry(&key) {
                Entry::Occupied(_) => true,
                Entry::Vacant(vacant) => {
                    vacant.insert(id);
                    false
                }
            };
            if taken {
                release(&reserved);
                drop(guard);
                self.accounts.remove(&id);
                return Err(EngineError::Conflict { field });
            }
            reserved.push(key);
        }
        match self.write(
            Changes(vec![Change::Account(&guard, None)]),
            smallvec![event],
        ) {
            Ok(ticket) => Ok(self.durable(describe(&guard, self.now()), ticket)),
            Err(e) => {
                release(&reserved);
                drop(guard);
                self.accounts.remove(&id);
                Err(e)
            }
        }
    }

    fn new_account(
        &self,
        identity: Identity,
        phone: Option<Phone>,
        email: Option<Email>,
        birth_date: Option<BirthDate>,
        postal_address: Option<PostalAddress>,
    ) -> Account {
        let now = self.now();
        Account {
            id: AccountId(self.random()),
            identity,
            phone,
            email,
            birth_date,
            postal_address,
            push_token: None,
            dm: None,
            locale: None,
            pin: None,
            status: Status::Active,
            lockout: Default::default(),
            created_at: now,
            updated_at: now,
            current: Current::None,
        }
    }

    /// Registers a citizen with a PIN. The identity, phone and email must not
    /// belong to another live account.
    /// Answers with the new account's view.
    pub fn register(&self, new: NewAccount) -> Result<Durable<AccountView>> {
        if new.phone.is_none() && new.email.is_none() {
            return Err(EngineError::invalid(
                "phone",
                "a mobile number or an email address is required",
            ));
        }
        self.admit_contacts(new.phone.as_ref(), new.email.as_ref())?;
        self.config.pin.check("pin", &new.pin)?;
        self.ensure_free(&new.identity, new.phone.as_ref(), new.email.as_ref())?;
        if new
            .dm
            .as_ref()
            .map(|d| self.is_held(&dm_key(d)))
            .transpose()?
            .unwrap_or(false)
        {
            return Err(EngineError::Conflict { field: "dm" });
        }
        let pin = self.hash_pin(&new.pin)?;
        let mut account = self.new_account(
            new.identity,
            new.phone,
            new.email,
            new.birth_date,
            new.postal_address,
        );
        account.pin = Some(pin);
        account.dm = new.dm.map(Box::new);
        account.locale = new.locale;
        self.insert_account(account, EventKind::Registered, Account::view)
    }

    /// Fails early (before Argon2) when an identifier is visibly taken; the
    /// reservation in `insert_account` is what makes it certain.
    fn ensure_free(
        &self,
        identity: &Identity,
        phone: Option<&Phone>,
        email: Option<&Email>,
    ) -> Result<()> {
        if self.is_held(&identity.index_key())? {
            return Err(EngineError::Conflict { field: "identity" });
        }
        if let Some(p) = phone
            && self.is_held(&phone_key(p))?
        {
            return Err(EngineError::Conflict { field: "phone" });
        }
        if let Some(e) = email
            && self.is_held(&email_key(e))?
        {
            return Err(EngineError::Conflict { field: "email" });
        }
        Ok(())
    }

    /// Pre-registers an identity with the contacts on file; it is activated
    /// later with a code sent by SMS, email or letter.
    /// Answers with the new account's view.
    pub fn pre_register(&self, pre: PreRegistration) -> Result<Durable<AccountView>> {
        if pre.phone.is_none() && pre.email.is_none() && pre.postal_address.is_none() {
            return Err(EngineError::invalid(
                "postal_address",
                "a mobile number, an email or a postal address is needed to send the activation code",
            ));
        }
        self.admit_contacts(pre.phone.as_ref(), pre.email.as_ref())?;
        let mut account = self.new_account(
            pre.identity,
            pre.phone,
            pre.email,
            Some(pre.birth_date),
            pre.postal_address,
        );
        account.status = Status::PendingActivation;
        account.locale = pre.locale;
        self.insert_account(account, EventKind::PreRegistered, Account::view)
    }

    /// Imports an account from another system, keeping its Argon2 PIN hash.
    pub fn import(&self, import: ImportAccount) -> Result<Durable<AccountId>> {
        let pin = import
            .pin_hash
            .as_deref()
            .map(PinHasher::parse_imported)
            .transpose()?;
        let status = match (&import.state, &pin) {
            (ImportState::PendingActivation, _) => Status::PendingActivation,
            (_, None) => {
                return Err(EngineError::invalid(
                    "pin_hash",
                    "is required for an active or locked account",
                ));
            }
            (ImportState::Active | ImportState::Locked(_), Some(_)) => Status::Active,
        };
        if import.phone.is_none() && import.email.is_none() && import.postal_address.is_none() {
            return Err(EngineError::invalid(
                "phone",
                "a mobile number, an email or a postal address is required",
            ));
        }
        let now = self.now();
        let mut account = self.new_account(
            import.identity,
            import.phone,
            import.email,
            import.birth_date,
            import.postal_address,
        );
        account.pin = pin;
        account.status = status;
        if let ImportState::Locked(reason) = import.state {
            account.lockout.apply(
                Event::AdminLock(check_reason(&reason)?),
                now,
                &self.config.lockout,
            );
        }
        self.insert_account(account, EventKind::Imported, |account, _| account.id)
    }

    /// Parses a direct-message handle on a platform this server accepts
    /// (`dm.platforms`), normalised as the platform compares handles.
    pub fn parse_dm(&self, platform: &str, handle: &str) -> Result<DmHandle> {
        self.config.dm.parse(platform, handle)
    }

    /// A read-only view of an account.
    pub fn account(&self, id: AccountId) -> Result<AccountView> {
        let now = self.now();
        self.with_account(id, |account| {
            if account.is_holder() {
                // A destination verification's holder is no account.
                return Err(EngineError::AccountNotFound);
            }
            self.admit_account(account)?;
            Ok(account.view(now))
        })?
        .ok_or(EngineError::AccountNotFound)?
    }

    /// The live account registered with this identity, if any.
    pub fn find_by_identity(&self, identity: &Identity) -> Result<Option<AccountId>> {
        self.holder(&identity.index_key())
    }

    /// Locks an account (privileged), with a reason kept for audit;
    /// answers with the account's view.
    pub fn lock(&self, account: AccountId, reason: &str) -> Result<Durable<AccountView>> {
        let reason = check_reason(reason)?;
        self.mutate_then(
            account,
            &[],
            |tx, now| {
                if tx.account.is_cancelled() {
                    return Err(EngineError::WrongState("the account is cancelled"));
                }
                let event = tx
                    .event(EventKind::Locked)
                    .with("reason", format!("administrative: {reason}"));
                tx.record(event);
                tx.lockout(Event::AdminLock(reason.clone()), now, self);
                self.notify(tx, Notice::Locked, None, now);
                Ok(())
            },
            |(), account, now| account.view(now),
        )
    }

    /// Unlocks an account (privileged): counters cleared, outstanding codes
    /// killed; answers with the account's view.
    pub fn unlock(&self, account: AccountId) -> Result<Durable<AccountView>> {
        self.mutate_then(
            account,
            &[],
            |tx, now| {
                if tx.account.is_cancelled() {
                    return Err(EngineError::WrongState("the account is cancelled"));
                }
                let event = tx.event(EventKind::Unlocked);
                tx.record(event);
                self.release(tx, now);
                Ok(())
            },
            |(), account, now| account.view(now),
        )
    }

    /// Cancels a registration: its identity and contacts are freed for reuse,
    /// its codes deleted, and its record kept for audit.
    pub fn cancel(&self, account: AccountId) -> Result<Durable<()>> {
        self.mutate(account, |tx, now| {
            if tx.account.is_cancelled() {
                return Err(EngineError::WrongState("the account is already cancelled"));
            }
            let owned: Vec<(ChallengeId, Option<MessageId>)> = if self.remote.is_some() {
                // A cluster keeps an account's past challenges only until
                // their records expire; its live ones are these.
                Purpose::ALL
                    .iter()
                    .filter_map(|p| tx.account.current(*p))
                    .filter_map(|id| self.challenge_in(tx, id))
                    .map(|c| (c.id, c.message))
                    .collect()
            } else {
                self.challenges
                    .iter()
                    .filter(|c| c.account == tx.account.id)
                    .map(|c| (c.id, c.message))
                    .collect()
            };
            for (challenge, message) in owned {
                tx.removes.push(challenge);
                if let Some(message) = message {
                    tx.remove_message(message);
                }
            }
            tx.unindex = tx
                .account
                .index_keys()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let event = tx.event(EventKind::Cancelled);
            tx.record(event);
            let account = tx.account_mut();
            account.status = Status::Cancelled(now);
            account.current = Current::None;
            // Data minimisation: only the identity stays, so the audit
            // trail can still say whose account it was, until
            // `audit.retention` passes and the record goes too.
            account.push_token = None;
            account.pin = None;
            account.phone = None;
            account.email = None;
            account.dm = None;
            account.locale = None;
            account.birth_date = None;
            account.postal_address = None;
            Ok(())
        })
    }

    /// Erases the records of accounts cancelled longer ago than the audit
    /// retention (`audit.retention`; never when events are kept for ever):
    /// by then their events are pruned too, and the identity kept for them
    /// has no more purpose. Each erasure is itself an event. Returns how
    /// many went.
    pub fn erase_cancelled(&self) -> Result<u64> {
        let Some(retention) = self.config.audit.retention else {
            return Ok(0);
        };
        if self.remote.is_some() {
            // A cluster node never scans every account: a cancelled account's
            // record carries its erasure as a TTL (`erasure_due`).
            return Ok(0);
        }
        let cutoff = Timestamp(
            self.now()
                .0
                .saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX)),
        );
        let past = move |a: &Account| matches!(a.status, Status::Cancelled(at) if at < cutoff);
        let doomed: Vec<AccountId> = self
            .accounts
            .iter()
            .filter(|a| past(a))
            .map(|a| a.id)
            .collect();
        let mut erased = 0;
        for id in doomed {
            if self.accounts.remove_if(&id, |_, a| past(a)).is_none() {
                continue;
            }
            let event = AuditEvent::new(EventKind::Erased, Some(id));
            self.write(Changes(vec![Change::RemoveAccount(id)]), smallvec![event])?;
            erased += 1;
        }
        Ok(erased)
    }

    /// On a cluster, how long from `now` until a cancelled `account` is
    /// erased: the cluster erases it itself then (its record's TTL), as
    /// [`Engine::erase_cancelled`] does on the embedded store; `None` for a
    /// live account, or when events are kept for ever. Its index keys were
    /// released with the cancellation; one whose release was lost (a node
    /// dead in between) is free again once the account is gone (a holder
    /// that no longer exists is dangling: `cluster::index`).
    pub(super) fn erasure_due(
        &self,
        account: &Account,
        now: Timestamp,
    ) -> Option<std::time::Duration> {
        if account.is_holder() {
            // Past the longest code it can hold: a holder lives while its code does.
            return Some(self.holder_lifetime());
        }
        let retention = self.config.audit.retention?;
        let Status::Cancelled(at) = account.status else {
            return None;
        };
        let due = at.plus(retention);
        Some(std::time::Duration::from_millis(
            due.0.saturating_sub(now.0).max(1),
        ))
    }

    /// Whether `account` was cancelled longer ago than the retention (the
    /// embedded sweep erases it at its next run).
    pub(super) fn past_erasure(&self, account: &Account, now: Timestamp) -> bool {
        match (account.status, self.config.audit.retention) {
            (Status::Cancelled(at), Some(retention)) => now >= at.plus(retention),
            _ => false,
        }
    }

    /// Registers (or replaces) the citizen's app for push codes.
    pub fn register_push_device(
        &self,
        account: AccountId,
        token: PushToken,
    ) -> Result<Durable<()>> {
        self.mutate(account, |tx, now| {
            ensure_usable(&tx.account, now)?;
            let event = tx.event(EventKind::PushDeviceSet);
            tx.record(event);
            tx.account_mut().push_token = Some(token.clone());
            self.notify(tx, Notice::PushDeviceSet, None, now);
            Ok(())
        })
    }

    /// Sets the language of the citizen's messages (codes and notices),
    /// used whenever a request names none; `None` follows the server's
    /// default. Answers with the account's view.
    pub fn set_locale(
        &self,
        account: AccountId,
        locale: Option<Locale>,
    ) -> Result<Durable<AccountView>> {
        self.mutate_then(
            account,
            &[],
            |tx, _| {
                if tx.account.is_cancelled() {
                    return Err(EngineError::WrongState("the account is cancelled"));
                }
                if tx.account.locale == locale {
                    return Ok(());
                }
                let name = |l: Option<Locale>| l.map_or("default", Locale::as_str);
                let event = tx
                    .event(EventKind::LocaleChanged)
                    .with("from", name(tx.account.locale))
                    .with("to", name(locale));
                tx.record(event);
                tx.account_mut().locale = locale;
                Ok(())
            },
            |(), account, now| account.view(now),
        )
    }

    /// Lifts any lock, clears the counters and kills every outstanding
    /// code: what an unlock, a PIN reset and a recovery share.
    pub(super) fn release(&self, tx: &mut Tx, now: Timestamp) {
        tx.lockout(Event::AdminUnlock, now, self);
        self.supersede_all(tx);
    }

    pub(super) fn supersede_all(&self, tx: &mut Tx) {
        for purpose in Purpose::ALL {
            if let Some(id) = tx.account.current(purpose) {
                self.supersede(tx, id);
                tx.account_mut().current.set(purpose, None);
            }
        }
    }
}
