//! The engine: every operation on accounts and codes, in memory and durable through the store.
//!
//! Each account's entry in `accounts` is that account's lock. A change to an
//! account or its challenges is built on a copy (a [`Tx`]) while the entry is
//! held, written to sled as one batch, and only then applied to memory, so an
//! error leaves nothing half done and sled sees one account's changes in the
//! order memory does. Maps are always locked in the order
//! accounts → index → challenges, and no lock is held across Argon2.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::account::{Account, AccountView, Status, email_key, phone_key};
use crate::challenge::{
    Approval, Challenge, ChallengeState, ChallengeStatus, Issued, Verification, mask_destination,
};
use crate::client::{ApiKey, Client, ClientInfo, Scopes, check_name, hash_secret};
use crate::clock::{Clock, Monotonic, Timestamp};
use crate::code::code_mac;
use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::identity::{BirthDate, Email, Identity, Phone, PostalAddress, PushToken};
use crate::limits::{IssueLimits, SmsConversion};
use crate::lockout::{Event, Transition};
use crate::outbox::{DeadLetter, Message, Outgoing, SendResult, seal, unseal};
use crate::pin::PinHasher;
use crate::secret::{Code, CodeKey, Pin, PinHash};
use crate::store::{Change, Changes, Commit, Durable, FlushStats, Store};
use crate::terms::{Channel, DeliveryState, Locale, MessageId, Purpose};

/// A ChaCha20 generator seeded from the operating system.
pub fn os_seeded_rng() -> Result<ChaCha20Rng> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
    Ok(ChaCha20Rng::from_seed(seed))
}

/// A ChaCha20 generator from a fixed seed: reproducible, for tests and simulations only.
pub fn seeded_rng(seed: [u8; 32]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(seed)
}

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

/// A contact detail that can be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// A new mobile number.
    Phone(Phone),
    /// A new email address.
    Email(Email),
}

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

/// The outcome of an authenticated PIN change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    /// The PIN was changed.
    Changed,
    /// The current PIN was wrong (and counted).
    WrongPin,
    /// The account is locked.
    Locked,
    /// The PIN was right but the code was not accepted.
    CodeRejected(Verification),
}

/// The outcome of starting a contact change.
#[derive(Debug, Clone)]
pub enum ContactChangeStart {
    /// The current contact was proven; a code was sent to the new one.
    CodeSent(Issued),
    /// The proof code for the current contact was not accepted.
    ProofRejected(Verification),
}

/// Sizes and counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Accounts held, cancelled ones included.
    pub accounts: u64,
    /// Challenges held, not yet swept.
    pub challenges: u64,
    /// Group-commit counters.
    pub flush: FlushStats,
    /// Accounts locked by failures since start.
    pub lockouts: u64,
    /// Messages waiting in the outbox.
    pub outbox: u64,
    /// Keys held by the per-account and per-destination issuance limiters.
    pub limiter_keys: u64,
    /// Argon2 hashes and verifications since start.
    pub argon2_runs: u64,
    /// Bytes of Argon2 memory held for reuse (one block per run that ran at once).
    pub argon2_memory_bytes: u64,
}

/// A change being prepared for one account.
struct Tx {
    account: Account,
    dirty: bool,
    /// The account record itself changed (not only its challenges or messages).
    account_changed: bool,
    locked_now: bool,
    puts: Vec<Challenge>,
    removes: Vec<ChallengeId>,
    unindex: Vec<String>,
    messages: Vec<Message>,
    message_removes: Vec<MessageId>,
    dead: Vec<DeadLetter>,
}

impl Tx {
    fn new(account: Account) -> Self {
        Self {
            account,
            dirty: false,
            account_changed: false,
            locked_now: false,
            puts: Vec::new(),
            removes: Vec::new(),
            unindex: Vec::new(),
            messages: Vec::new(),
            message_removes: Vec::new(),
            dead: Vec::new(),
        }
    }

    fn account_mut(&mut self) -> &mut Account {
        self.dirty = true;
        self.account_changed = true;
        &mut self.account
    }

    fn put_message(&mut self, message: Message) {
        self.dirty = true;
        self.messages.retain(|m| m.id != message.id);
        self.messages.push(message);
    }

    fn remove_message(&mut self, id: MessageId) {
        self.dirty = true;
        self.messages.retain(|m| m.id != id);
        self.message_removes.push(id);
    }

    fn put(&mut self, challenge: Challenge) {
        self.dirty = true;
        self.puts.retain(|c| c.id != challenge.id);
        self.puts.push(challenge);
    }

    fn lockout(&mut self, event: Event, now: Timestamp, engine: &Engine) -> Transition {
        let failure = matches!(event, Event::PinFailed | Event::CodeFailed);
        let before = (self.dirty, self.account_changed);
        let transition = self
            .account_mut()
            .lockout
            .apply(event, now, &engine.config.lockout);
        if failure && transition == Transition::LockedNow {
            self.locked_now = true;
        }
        if transition == Transition::Refused {
            // Nothing changed; don't write for it.
            (self.dirty, self.account_changed) = before;
        }
        transition
    }
}

/// The otpd engine. Share it behind an `Arc`; every method takes `&self`.
pub struct Engine {
    config: EngineConfig,
    limits: IssueLimits,
    clock: Monotonic,
    rng: Mutex<ChaCha20Rng>,
    pins: PinHasher,
    key: CodeKey,
    store: Arc<dyn Store>,
    /// The store's durability, kept to hand to each `Durable`.
    commit: Arc<dyn Commit>,
    accounts: DashMap<AccountId, Account>,
    index: DashMap<String, AccountId>,
    /// Boxed: a map's tables run at 44–87 % load, and slack slots of a
    /// pointer cost 8 bytes where slots of a whole challenge cost ~130
    /// (docs/CAPACITY.md, memory per live challenge).
    challenges: DashMap<ChallengeId, Box<Challenge>>,
    clients: DashMap<[u8; 8], Client>,
    outbox: DashMap<MessageId, Message>,
    lockouts: std::sync::atomic::AtomicU64,
    /// Serialises client additions and revocations (rare, admin-only).
    client_admin: Mutex<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("accounts", &self.accounts.len())
            .field("challenges", &self.challenges.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens (or creates) the store and recovers every account, lock and live challenge.
    pub fn open(
        config: EngineConfig,
        key: CodeKey,
        clock: Arc<dyn Clock>,
        rng: ChaCha20Rng,
    ) -> Result<Engine> {
        config.validate()?;
        let store = crate::store::open(&config.store)?;
        Self::open_on(store, config, key, clock, rng)
    }

    /// Opens the engine on records kept in memory (tests): `store` outlives
    /// the engine, so opening another engine on it is a restart.
    pub fn open_in_memory(
        store: &crate::store::memory::MemoryStore,
        config: EngineConfig,
        key: CodeKey,
        clock: Arc<dyn Clock>,
        rng: ChaCha20Rng,
    ) -> Result<Engine> {
        config.validate()?;
        Self::open_on(Arc::new(store.clone()), config, key, clock, rng)
    }

    fn open_on(
        store: Arc<dyn Store>,
        config: EngineConfig,
        key: CodeKey,
        clock: Arc<dyn Clock>,
        mut rng: ChaCha20Rng,
    ) -> Result<Engine> {
        let pins = PinHasher::new(config.argon2, &mut rng)?;
        let commit = store.commit();
        let limits = IssueLimits::new(config.limits.clone(), Arc::clone(&clock));
        let engine = Engine {
            config,
            limits,
            clock: Monotonic::new(clock),
            rng: Mutex::new(rng),
            pins,
            key,
            store,
            commit,
            accounts: DashMap::new(),
            index: DashMap::new(),
            challenges: DashMap::new(),
            clients: DashMap::new(),
            outbox: DashMap::new(),
            lockouts: std::sync::atomic::AtomicU64::new(0),
            client_admin: Mutex::new(()),
        };
        engine.recover()?;
        Ok(engine)
    }

    /// Reads the store back into memory. Accounts, then challenges, are
    /// each scanned on one thread per CPU (key ranges split by id): every
    /// structure they fill is a concurrent map, and a challenge is placed
    /// while its account's entry is held.
    fn recover(&self) -> Result<()> {
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let floor = self.store.clock_floor()?;
        let newest = std::sync::atomic::AtomicU64::new(floor.0);
        self.store.scan_accounts(parts, &|account| {
            newest.fetch_max(account.updated_at.0, std::sync::atomic::Ordering::Relaxed);
            if !account.is_cancelled() {
                for (key, field) in account.index_keys() {
                    if self.index.insert(key, account.id).is_some() {
                        return Err(EngineError::Corrupt(format!(
                            "two live accounts share one {field}"
                        )));
                    }
                }
            }
            self.accounts.insert(account.id, account);
            Ok(())
        })?;
        self.store.scan_clients(&mut |client| {
            self.clients.insert(client.id, client);
            Ok(())
        })?;
        self.clock
            .observe(Timestamp(newest.load(std::sync::atomic::Ordering::Relaxed)));
        let now = self.clock.now();
        let dead = Mutex::new(Vec::new());
        self.store.scan_challenges(parts, &|challenge| {
            let owner = self.accounts.get_mut(&challenge.account);
            let Some(mut owner) = owner.filter(|a| !a.is_cancelled()) else {
                lock(&dead).push(challenge.id);
                return Ok(());
            };
            if now >= challenge.expires_at {
                lock(&dead).push(challenge.id);
                return Ok(());
            }
            if challenge.state == ChallengeState::Live {
                let slot = &mut owner.current[challenge.purpose.slot()];
                let newer = slot
                    .and_then(|id| self.challenges.get(&id).map(|c| c.created_at))
                    .is_none_or(|t| t <= challenge.created_at);
                if newer {
                    *slot = Some(challenge.id);
                }
            }
            // Inserted while the owner is held: a challenge in a slot is
            // always in the map when another thread compares with it.
            self.challenges.insert(challenge.id, Box::new(challenge));
            drop(owner);
            Ok(())
        })?;
        let dead_challenges = dead.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut dead_messages = Vec::new();
        self.store.scan_messages(&mut |message| {
            let queued = self
                .challenges
                .get(&message.challenge)
                .is_some_and(|c| c.message == Some(message.id));
            if queued {
                self.outbox.insert(message.id, message);
            } else {
                dead_messages.push(message.id);
            }
            Ok(())
        })?;
        let mut garbage = Changes::default();
        garbage
            .0
            .extend(dead_challenges.into_iter().map(Change::RemoveChallenge));
        garbage
            .0
            .extend(dead_messages.into_iter().map(Change::RemoveMessage));
        if !garbage.is_empty() {
            // Only garbage goes here; if the removal is lost (or refused on
            // a short disk) it is redone next start.
            let _ = self.store.write(garbage);
        }
        Ok(())
    }

    /// The engine's current time (never earlier than any time it has seen).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn rng(&self) -> MutexGuard<'_, ChaCha20Rng> {
        self.rng.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn random<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.rng().fill_bytes(&mut bytes);
        bytes
    }

    fn hash_pin(&self, pin: &Pin) -> Result<PinHash> {
        let salt: [u8; 16] = self.random();
        self.pins.hash(pin, salt)
    }

    fn ready<T>(&self, value: T) -> Durable<T> {
        Durable::new(value, None, Arc::clone(&self.commit))
    }

    fn durable<T>(&self, value: T, ticket: crate::store::Ticket) -> Durable<T> {
        Durable::new(value, Some(ticket), Arc::clone(&self.commit))
    }

    /// Runs `change` on a copy of the account while holding its entry, then
    /// writes and applies the copy. Nothing changes if `change` fails.
    fn mutate<T>(
        &self,
        id: AccountId,
        change: impl FnOnce(&mut Tx, Timestamp) -> Result<T>,
    ) -> Result<Durable<T>> {
        let mut entry = self
            .accounts
            .get_mut(&id)
            .ok_or(EngineError::AccountNotFound)?;
        let now = self.now();
        let mut tx = Tx::new(entry.clone());
        let value = change(&mut tx, now)?;
        if !tx.dirty {
            return Ok(self.ready(value));
        }
        let mut account = tx.account;
        // A delivery report or a claim touches only challenges and messages:
        // the account record is rewritten only when it changed.
        if tx.account_changed {
            account.updated_at = now;
        }
        let mut changes = Changes::default();
        if tx.account_changed {
            changes.push(Change::Account(&account));
        }
        changes.0.extend(tx.puts.iter().map(Change::Challenge));
        changes
            .0
            .extend(tx.removes.iter().map(|id| Change::RemoveChallenge(*id)));
        changes.0.extend(tx.messages.iter().map(Change::Message));
        changes.0.extend(
            tx.message_removes
                .iter()
                .map(|id| Change::RemoveMessage(*id)),
        );
        changes.0.extend(tx.dead.iter().map(Change::DeadLetter));
        let ticket = self.store.write(changes)?;
        for c in tx.puts {
            // An update (a verify, a delivery report) reuses the box.
            match self.challenges.get_mut(&c.id) {
                Some(mut held) => **held = c,
                None => {
                    self.challenges.insert(c.id, Box::new(c));
                }
            }
        }
        for removed in tx.removes {
            self.challenges.remove(&removed);
        }
        for removed in tx.message_removes {
            self.outbox.remove(&removed);
        }
        for m in tx.messages {
            self.outbox.insert(m.id, m);
        }
        for key in tx.unindex {
            self.index.remove_if(&key, |_, owner| *owner == id);
        }
        if tx.locked_now {
            self.lockouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *entry = account;
        Ok(self.durable(value, ticket))
    }

    fn challenge_in(&self, tx: &Tx, id: ChallengeId) -> Option<Challenge> {
        if let Some(staged) = tx.puts.iter().rev().find(|c| c.id == id) {
            return Some(staged.clone());
        }
        if tx.removes.contains(&id) {
            return None;
        }
        self.challenges.get(&id).map(|c| Challenge::clone(&c))
    }

    /// Adds a new account, reserving its identity and contacts atomically.
    fn insert_account(&self, account: Account) -> Result<Durable<AccountId>> {
        let id = account.id;
        let keys = account.index_keys();
        let Entry::Vacant(slot) = self.accounts.entry(id) else {
            return Err(EngineError::Internal("account id collision".into()));
        };
        let guard = slot.insert(account);
        let mut reserved: Vec<String> = Vec::new();
        let release = |reserved: &[String]| {
            for key in reserved {
                self.index.remove_if(key, |_, owner| *owner == id);
            }
        };
        for (key, field) in keys {
            // Decide under the index entry, act after it is released: rolling
            // back while holding it deadlocks when an earlier key shares its shard.
            let taken = match self.index.entry(key.clone()) {
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
        match self.store.write(Changes(vec![Change::Account(&guard)])) {
            Ok(ticket) => Ok(self.durable(id, ticket)),
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
            pin: None,
            status: Status::Active,
            lockout: Default::default(),
            created_at: now,
            updated_at: now,
            current: [None; 4],
        }
    }

    /// Registers a citizen with a PIN. The identity, phone and email must not
    /// belong to another live account.
    pub fn register(&self, new: NewAccount) -> Result<Durable<AccountId>> {
        if new.phone.is_none() && new.email.is_none() {
            return Err(EngineError::invalid(
                "phone",
                "a mobile number or an email address is required",
            ));
        }
        self.config.pin.check("pin", &new.pin)?;
        self.ensure_free(&new.identity, new.phone.as_ref(), new.email.as_ref())?;
        let pin = self.hash_pin(&new.pin)?;
        let mut account = self.new_account(
            new.identity,
            new.phone,
            new.email,
            new.birth_date,
            new.postal_address,
        );
        account.pin = Some(pin);
        self.insert_account(account)
    }

    /// Fails early (before Argon2) when an identifier is visibly taken; the
    /// reservation in `insert_account` is what makes it certain.
    fn ensure_free(
        &self,
        identity: &Identity,
        phone: Option<&Phone>,
        email: Option<&Email>,
    ) -> Result<()> {
        if self.index.contains_key(&identity.index_key()) {
            return Err(EngineError::Conflict { field: "identity" });
        }
        if phone.is_some_and(|p| self.index.contains_key(&phone_key(p))) {
            return Err(EngineError::Conflict { field: "phone" });
        }
        if email.is_some_and(|e| self.index.contains_key(&email_key(e))) {
            return Err(EngineError::Conflict { field: "email" });
        }
        Ok(())
    }

    /// Pre-registers an identity with the contacts on file; it is activated
    /// later with a code sent by SMS, email or letter.
    pub fn pre_register(&self, pre: PreRegistration) -> Result<Durable<AccountId>> {
        if pre.phone.is_none() && pre.email.is_none() && pre.postal_address.is_none() {
            return Err(EngineError::invalid(
                "postal_address",
                "a mobile number, an email or a postal address is needed to send the activation code",
            ));
        }
        let mut account = self.new_account(
            pre.identity,
            pre.phone,
            pre.email,
            Some(pre.birth_date),
            pre.postal_address,
        );
        account.status = Status::PendingActivation;
        self.insert_account(account)
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
        self.insert_account(account)
    }

    /// A read-only view of an account.
    pub fn account(&self, id: AccountId) -> Result<AccountView> {
        let now = self.now();
        self.accounts
            .get(&id)
            .map(|a| a.view(now))
            .ok_or(EngineError::AccountNotFound)
    }

    /// The live account registered with this identity, if any.
    pub fn find_by_identity(&self, identity: &Identity) -> Option<AccountId> {
        self.index.get(&identity.index_key()).map(|id| *id)
    }

    /// Refuses, before any Argon2 work, a presented PIN that no PIN could be:
    /// empty, over 64 bytes, with control or non-ASCII characters, or with
    /// non-digits when PINs are digits only. The answer does not depend on
    /// any account, so it reveals nothing.
    fn check_presented_pin(&self, field: &'static str, pin: &Pin) -> Result<()> {
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
    pub fn find_by_login(&self, login: &LoginId) -> Option<AccountId> {
        self.index.get(&login.index_key()).map(|id| *id)
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
        self.check_presented_pin("pin", pin)?;
        let now = self.now();
        let found = self.find_by_login(login).and_then(|id| {
            self.accounts.get(&id).map(|a| {
                let locked = a.lockout.lock_at(now).is_some();
                (id, a.pin.clone(), a.status, locked)
            })
        });
        let (id, stored) = match found {
            Some((_, _, _, true)) => return Ok(self.ready(LoginOutcome::Locked)),
            Some((id, Some(hash), Status::Active, false)) => (id, hash),
            // Unknown, cancelled, or pending activation (no PIN to match):
            // the same Argon2 work and the same durable write as a wrong PIN.
            _ => {
                self.pins.verify_dummy(pin);
                let ticket = self.store.write(Changes(vec![Change::Decoy]))?;
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
                return Ok(match tx.lockout(Event::PinFailed, now, self) {
                    Transition::Counted { .. } => LoginOutcome::InvalidCredentials,
                    _ => LoginOutcome::Locked,
                });
            }
            if tx.lockout(Event::PinSucceeded, now, self) == Transition::Refused {
                return Ok(LoginOutcome::Locked);
            }
            let channel = choose_channel(&tx.account, channel)?;
            let destination = destination_for(&tx.account, channel, Purpose::Login)?;
            let issued = self.issue_in(
                tx,
                Purpose::Login,
                channel,
                destination,
                lifetime,
                locale,
                now,
            )?;
            Ok(LoginOutcome::CodeSent(issued))
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
        self.mutate(account, |tx, now| {
            ensure_usable(&tx.account, now)?;
            let channel = choose_channel(&tx.account, channel)?;
            let destination = destination_for(&tx.account, channel, Purpose::StepUp)?;
            self.issue_in(
                tx,
                Purpose::StepUp,
                channel,
                destination,
                lifetime,
                locale,
                now,
            )
        })
    }

    /// Sends a new code for a challenge's purpose to the same destination; the
    /// old code dies. Refused within the resend cooldown.
    pub fn resend(
        &self,
        challenge: ChallengeId,
        locale: Option<Locale>,
    ) -> Result<Durable<Issued>> {
        let account = self.challenge_owner(challenge)?;
        self.mutate(account, |tx, now| {
            let old = self
                .challenge_in(tx, challenge)
                .ok_or(EngineError::ChallengeNotFound)?;
            if tx.account.current(old.purpose) != Some(challenge) {
                return Err(EngineError::WrongState(
                    "only the most recent code of a challenge can be resent",
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
            let lifetime = old.created_at.until(old.expires_at);
            let destination = old.destination.to_string();
            let locale = locale.or(Some(old.locale));
            self.issue_in(
                tx,
                old.purpose,
                old.channel,
                destination,
                Some(lifetime),
                locale,
                now,
            )
        })
    }

    fn challenge_owner(&self, challenge: ChallengeId) -> Result<AccountId> {
        self.challenges
            .get(&challenge)
            .map(|c| c.account)
            .ok_or(EngineError::ChallengeNotFound)
    }

    /// Creates a challenge and its outgoing message in `tx`, superseding the
    /// account's previous challenge of the same purpose.
    #[allow(clippy::too_many_arguments)] // One private call site per purpose.
    fn issue_in(
        &self,
        tx: &mut Tx,
        purpose: Purpose,
        channel: Channel,
        destination: String,
        lifetime: Option<Duration>,
        locale: Option<Locale>,
        now: Timestamp,
    ) -> Result<Issued> {
        if !self.config.outbox.enabled.contains(&channel) {
            return Err(EngineError::ChannelUnavailable(match channel {
                Channel::Sms => "SMS delivery (disabled here)",
                Channel::Email => "email delivery (disabled here)",
                Channel::Push => "push delivery (disabled here)",
                Channel::Letter => "letter delivery (disabled here)",
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
        self.limits.admit(tx.account.id, channel, &destination)?;
        let id = ChallengeId(self.random());
        let message_id = MessageId(self.random());
        let code = policy.generate(&mut self.rng());
        if let Some(previous) = tx.account.current(purpose) {
            self.supersede(tx, previous);
        }
        tx.account_mut().current[purpose.slot()] = Some(id);
        let challenge = Challenge {
            id,
            account: tx.account.id,
            purpose,
            channel,
            destination: destination.clone().into_boxed_str(),
            mac: code_mac(&self.key, id, code.expose()),
            created_at: now,
            expires_at: now.plus(lifetime),
            attempts: 0,
            max_attempts: u8::try_from(policy.max_attempts).unwrap_or(u8::MAX),
            state: ChallengeState::Live,
            delivery: DeliveryState::Queued,
            message: Some(message_id),
            locale: locale.unwrap_or(self.config.outbox.default_locale),
        };
        let expires_at = challenge.expires_at;
        tx.put_message(Message {
            id: message_id,
            challenge: id,
            account: tx.account.id,
            purpose,
            channel,
            destination: destination.clone().into_boxed_str(),
            sealed_code: seal(&self.key, message_id, &code),
            locale: challenge.locale,
            expires_at,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            in_flight: false,
        });
        tx.put(challenge);
        Ok(Issued {
            challenge_id: id,
            account_id: tx.account.id,
            purpose,
            channel,
            masked_destination: mask_destination(channel, &destination),
            destination,
            expires_at,
            code,
            message_id,
        })
    }

    /// Marks a live challenge superseded and drops its message if still queued.
    fn supersede(&self, tx: &mut Tx, id: ChallengeId) {
        let Some(mut old) = self.challenge_in(tx, id) else {
            return;
        };
        if old.state != ChallengeState::Live {
            return;
        }
        old.state = ChallengeState::Superseded;
        if let Some(message) = old.message.take() {
            tx.remove_message(message);
            old.delivery = DeliveryState::Dropped;
        }
        tx.put(old);
    }

    /// Checks `code` against a challenge of `expected` purpose on `tx`'s account.
    /// Counts a wrong code against the challenge and the account.
    fn check_code(
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
    fn check_code_then(
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
            .filter(|c| c.account == tx.account.id && c.purpose == expected)
            .ok_or(EngineError::ChallengeNotFound)?;
        let typed = self
            .config
            .codes
            .for_code(c.purpose, c.channel)
            .normalise_input(code)?;
        if tx.account.lockout.lock_at(now).is_some() {
            return Ok(Verification::Locked);
        }
        if let Some(refusal) = c.refusal(now) {
            return Ok(refusal);
        }
        if code_mac(&self.key, c.id, &typed).matches(&c.mac) {
            let approval = Approval {
                account_id: tx.account.id,
                identity: tx.account.identity.clone(),
                purpose: expected,
            };
            if !consume {
                return Ok(Verification::Approved(approval));
            }
            c.state = ChallengeState::Consumed;
            if let Some(message) = c.message.take() {
                // Used before the gateway took it (e.g. read from a retried send).
                tx.remove_message(message);
            }
            tx.lockout(Event::CodeSucceeded, now, self);
            if c.channel == Channel::Sms {
                self.limits.verified_sms(&c.destination);
            }
            let slot = &mut tx.account_mut().current[c.purpose.slot()];
            if *slot == Some(c.id) {
                *slot = None;
            }
            tx.put(c);
            return Ok(Verification::Approved(approval));
        }
        c.attempts = c.attempts.saturating_add(1);
        let attempts_remaining = u32::from(c.max_attempts.saturating_sub(c.attempts));
        tx.put(c);
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
        if !matches!(expected, Purpose::Login | Purpose::StepUp) {
            return Err(EngineError::invalid(
                "purpose",
                "activation and contact-change codes have their own operations",
            ));
        }
        let account = self.challenge_owner(challenge)?;
        self.mutate(account, |tx, now| {
            self.check_code(tx, challenge, expected, code, now)
        })
    }

    /// Where a challenge stands.
    pub fn challenge_status(&self, challenge: ChallengeId) -> Result<ChallengeStatus> {
        let now = self.now();
        self.challenges
            .get(&challenge)
            .map(|c| c.status(now))
            .ok_or(EngineError::ChallengeNotFound)
    }

    /// Sends an activation code to a pre-registered identity, if the birth
    /// date matches. Letters use the letter policy's long lifetime.
    pub fn request_activation(
        &self,
        identity: &Identity,
        birth_date: BirthDate,
        channel: Channel,
        locale: Option<Locale>,
    ) -> Result<Durable<Issued>> {
        let id = self
            .find_by_identity(identity)
            .ok_or(EngineError::ActivationNotFound)?;
        self.mutate(id, |tx, now| {
            let pending = tx.account.status == Status::PendingActivation
                && tx.account.birth_date == Some(birth_date);
            if !pending {
                return Err(EngineError::ActivationNotFound);
            }
            if let Some(lock) = tx.account.lockout.lock_at(now) {
                return Err(EngineError::Locked { until: lock.until });
            }
            if channel == Channel::Push {
                return Err(EngineError::invalid(
                    "channel",
                    "activation codes go by sms, email or letter",
                ));
            }
            let destination = destination_for(&tx.account, channel, Purpose::Activation)?;
            self.issue_in(
                tx,
                Purpose::Activation,
                channel,
                destination,
                None,
                locale,
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
            let outcome = self.activation_check(tx, target, challenge, code, now, true)?;
            if matches!(outcome, Verification::Approved(_)) {
                let account = tx.account_mut();
                account.pin = Some(hash);
                account.status = Status::Active;
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
                    .find_by_identity(identity)
                    .ok_or(EngineError::ActivationNotFound)?;
                let entry = self
                    .accounts
                    .get(&account)
                    .ok_or(EngineError::ActivationNotFound)?;
                let challenge = entry
                    .current(Purpose::Activation)
                    .filter(|_| entry.status == Status::PendingActivation)
                    .filter(|_| entry.lockout.lock_at(now).is_none())
                    .ok_or(EngineError::ActivationNotFound)?;
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

    /// Changes the PIN of an authenticated citizen: needs the current PIN and
    /// a fresh step-up code.
    pub fn change_pin(
        &self,
        account: AccountId,
        current_pin: &Pin,
        challenge: ChallengeId,
        code: &Code,
        new_pin: &Pin,
    ) -> Result<Durable<PinChange>> {
        self.config.pin.check("new_pin", new_pin)?;
        self.check_presented_pin("current_pin", current_pin)?;
        if current_pin.expose() == new_pin.expose() {
            return Err(EngineError::invalid(
                "new_pin",
                "must differ from the current PIN",
            ));
        }
        let now = self.now();
        let stored = {
            let a = self
                .accounts
                .get(&account)
                .ok_or(EngineError::AccountNotFound)?;
            if a.lockout.lock_at(now).is_some() {
                return Ok(self.ready(PinChange::Locked));
            }
            match (a.status, &a.pin) {
                (Status::Active, Some(pin)) => pin.clone(),
                _ => return Err(EngineError::WrongState("the account is not active")),
            }
        };
        let pin_ok = self.pins.verify(current_pin, &stored);
        let new_hash = if pin_ok {
            Some(self.hash_pin(new_pin)?)
        } else {
            None
        };
        self.mutate(account, |tx, now| {
            if tx.account.pin.as_ref() != Some(&stored) {
                return Err(EngineError::WrongState(
                    "the PIN was changed by another request",
                ));
            }
            let Some(new_hash) = new_hash else {
                return Ok(match tx.lockout(Event::PinFailed, now, self) {
                    Transition::Counted { .. } => PinChange::WrongPin,
                    _ => PinChange::Locked,
                });
            };
            if tx.lockout(Event::PinSucceeded, now, self) == Transition::Refused {
                return Ok(PinChange::Locked);
            }
            match self.check_code(tx, challenge, Purpose::StepUp, code, now)? {
                Verification::Approved(_) => {
                    tx.account_mut().pin = Some(new_hash);
                    Ok(PinChange::Changed)
                }
                Verification::Locked => Ok(PinChange::Locked),
                other => Ok(PinChange::CodeRejected(other)),
            }
        })
    }

    /// Sets a new PIN without the old one (privileged). Also unlocks the
    /// account, clears its counters, activates a pending account, and kills
    /// every outstanding code.
    pub fn reset_pin(&self, account: AccountId, new_pin: &Pin) -> Result<Durable<()>> {
        self.config.pin.check("pin", new_pin)?;
        let hash = self.hash_pin(new_pin)?;
        self.mutate(account, |tx, now| {
            if tx.account.is_cancelled() {
                return Err(EngineError::WrongState("the account is cancelled"));
            }
            tx.lockout(Event::AdminUnlock, now, self);
            self.supersede_all(tx);
            let account = tx.account_mut();
            account.pin = Some(hash);
            account.status = Status::Active;
            Ok(())
        })
    }

    fn supersede_all(&self, tx: &mut Tx) {
        for purpose in Purpose::ALL {
            if let Some(id) = tx.account.current(purpose) {
                self.supersede(tx, id);
                tx.account_mut().current[purpose.slot()] = None;
            }
        }
    }

    /// Locks an account (privileged), with a reason kept for audit.
    pub fn lock(&self, account: AccountId, reason: &str) -> Result<Durable<()>> {
        let reason = check_reason(reason)?;
        self.mutate(account, |tx, now| {
            if tx.account.is_cancelled() {
                return Err(EngineError::WrongState("the account is cancelled"));
            }
            tx.lockout(Event::AdminLock(reason), now, self);
            Ok(())
        })
    }

    /// Unlocks an account (privileged): counters cleared, outstanding codes killed.
    pub fn unlock(&self, account: AccountId) -> Result<Durable<()>> {
        self.mutate(account, |tx, now| {
            if tx.account.is_cancelled() {
                return Err(EngineError::WrongState("the account is cancelled"));
            }
            tx.lockout(Event::AdminUnlock, now, self);
            self.supersede_all(tx);
            Ok(())
        })
    }

    /// Cancels a registration: its identity and contacts are freed for reuse,
    /// its codes deleted, and its record kept for audit.
    pub fn cancel(&self, account: AccountId) -> Result<Durable<()>> {
        self.mutate(account, |tx, now| {
            if tx.account.is_cancelled() {
                return Err(EngineError::WrongState("the account is already cancelled"));
            }
            let owned: Vec<(ChallengeId, Option<MessageId>)> = self
                .challenges
                .iter()
                .filter(|c| c.account == tx.account.id)
                .map(|c| (c.id, c.message))
                .collect();
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
            let account = tx.account_mut();
            account.status = Status::Cancelled(now);
            account.current = [None; 4];
            account.push_token = None;
            Ok(())
        })
    }

    /// Registers (or replaces) the citizen's app for push codes.
    pub fn register_push_device(
        &self,
        account: AccountId,
        token: PushToken,
    ) -> Result<Durable<()>> {
        self.mutate(account, |tx, now| {
            ensure_usable(&tx.account, now)?;
            tx.account_mut().push_token = Some(token);
            Ok(())
        })
    }

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
            let issued = self.issue_in(
                tx,
                Purpose::ContactChange,
                channel,
                destination,
                None,
                locale,
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
            Ok(outcome)
        });
        if result.is_err()
            && let Some(key) = reserved
        {
            self.index.remove_if(&key, |_, owner| *owner == account);
        }
        result
    }

    /// Up to `limit` messages due now, oldest first, marked in flight. Messages
    /// whose code has died (expired, superseded, used) are dropped instead:
    /// a code is never sent late.
    pub fn outbox_due(&self, limit: usize) -> Vec<Outgoing> {
        let now = self.now();
        let mut due: Vec<(Timestamp, MessageId, AccountId)> = self
            .outbox
            .iter()
            .filter(|m| !m.in_flight && m.next_attempt_at <= now)
            .map(|m| (m.next_attempt_at, m.id, m.account))
            .collect();
        due.sort_unstable();
        let mut outgoing = Vec::new();
        for (_, id, account) in due {
            if outgoing.len() >= limit {
                break;
            }
            let claimed = self.mutate(account, |tx, now| {
                let Some(message) = self.outbox.get(&id).map(|m| m.clone()) else {
                    return Ok(None);
                };
                let challenge = self
                    .challenge_in(tx, message.challenge)
                    .filter(|c| c.message == Some(id));
                let Some(mut challenge) = challenge else {
                    tx.remove_message(id);
                    return Ok(None);
                };
                if challenge.state != ChallengeState::Live || now >= challenge.expires_at {
                    tx.remove_message(id);
                    challenge.message = None;
                    challenge.delivery = DeliveryState::Dropped;
                    tx.put(challenge);
                    return Ok(None);
                }
                if let Some(mut entry) = self.outbox.get_mut(&id) {
                    entry.in_flight = true;
                }
                Ok(Some(Outgoing {
                    id,
                    challenge_id: message.challenge,
                    purpose: message.purpose,
                    channel: message.channel,
                    destination: message.destination.to_string(),
                    code: unseal(&self.key, id, &message.sealed_code)?,
                    locale: message.locale,
                    expires_at: message.expires_at,
                    attempt: message.attempts + 1,
                }))
            });
            // A drop that is lost in a crash is simply made again on the next start.
            if let Ok(Some(item)) = claimed.map(|d| d.peek().clone()) {
                outgoing.push(item);
            }
        }
        outgoing
    }

    /// Records what a send came to: sent, retry later (with backoff and
    /// jitter, honouring the gateway's wait), or failed for good (dead letter,
    /// and the optional SMS-to-email fallback).
    pub fn outbox_report(&self, id: MessageId, result: SendResult) -> Result<Durable<()>> {
        let Some(account) = self.outbox.get(&id).map(|m| m.account) else {
            // Dropped meanwhile (superseded, cancelled, swept): nothing to record.
            return Ok(self.ready(()));
        };
        let policy = &self.config.outbox;
        self.mutate(account, |tx, now| {
            let Some(mut message) = self.outbox.get(&id).map(|m| m.clone()) else {
                return Ok(());
            };
            message.in_flight = false;
            message.attempts += 1;
            let challenge = self
                .challenge_in(tx, message.challenge)
                .filter(|c| c.message == Some(id));
            let reason = match result {
                SendResult::Sent => {
                    tx.remove_message(id);
                    if let Some(mut c) = challenge {
                        c.message = None;
                        c.delivery = DeliveryState::Sent;
                        tx.put(c);
                    }
                    return Ok(());
                }
                SendResult::Retry { after, .. } if message.attempts < policy.max_attempts => {
                    let wait = after.unwrap_or_else(|| self.backoff(message.attempts));
                    message.next_attempt_at = now.plus(wait);
                    tx.put_message(message);
                    return Ok(());
                }
                SendResult::Retry { reason, .. } => {
                    format!("gave up after {} attempts: {reason}", message.attempts)
                }
                SendResult::Permanent { reason } => reason,
            };
            tx.remove_message(id);
            tx.dead.push(DeadLetter {
                id,
                challenge_id: message.challenge,
                channel: message.channel,
                attempts: message.attempts,
                reason,
                failed_at: now,
            });
            let Some(mut c) = challenge else {
                return Ok(());
            };
            c.message = None;
            c.delivery = DeliveryState::Failed;
            let fallback = policy.sms_fallback_to_email
                && message.channel == Channel::Sms
                && c.state == ChallengeState::Live
                && now < c.expires_at;
            if let (true, Some(email)) = (fallback, tx.account.email.clone()) {
                let code = unseal(&self.key, id, &message.sealed_code)?;
                let new_id = MessageId(self.random());
                c.channel = Channel::Email;
                c.destination = email.as_str().into();
                c.delivery = DeliveryState::Queued;
                c.message = Some(new_id);
                tx.put_message(Message {
                    id: new_id,
                    channel: Channel::Email,
                    destination: email.as_str().into(),
                    sealed_code: seal(&self.key, new_id, &code),
                    attempts: 0,
                    next_attempt_at: now,
                    in_flight: false,
                    created_at: now,
                    ..message
                });
            }
            tx.put(c);
            Ok(())
        })
    }

    /// The wait before retry `attempt`: `first · 2^(attempt-1)`, capped, less
    /// up to half at random so retries from many messages spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let policy = &self.config.outbox;
        let doublings = attempt.saturating_sub(1).min(31);
        let full = policy
            .backoff_first
            .saturating_mul(1u32 << doublings)
            .min(policy.backoff_max);
        let [r0, r1, r2, r3] = self.random::<4>();
        let fraction = f64::from(u32::from_le_bytes([r0, r1, r2, r3])) / f64::from(u32::MAX);
        full.mul_f64(1.0 - fraction / 2.0)
    }

    /// Messages that failed for good, newest last.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let mut all = Vec::new();
        self.store.scan_dead_letters(&mut |d| {
            all.push(d);
            Ok(())
        })?;
        all.sort_by_key(|d| d.failed_at);
        Ok(all)
    }

    /// Deletes expired challenges from memory and disk, and forgets rate-limit
    /// keys whose buckets have refilled; returns how many challenges went.
    pub fn sweep_expired(&self) -> Result<usize> {
        self.limits.prune();
        let now = self.now();
        let expired: Vec<(ChallengeId, AccountId)> = self
            .challenges
            .iter()
            .filter(|c| now >= c.expires_at)
            .map(|c| (c.id, c.account))
            .collect();
        let mut batch = Changes::default();
        let mut swept = 0;
        for (id, account) in expired {
            let owner = self.accounts.get_mut(&account);
            if let Some(mut owner) = owner {
                for slot in owner.current.iter_mut() {
                    if *slot == Some(id) {
                        *slot = None;
                    }
                }
            }
            if let Some((_, gone)) = self.challenges.remove_if(&id, |_, c| now >= c.expires_at) {
                batch.push(Change::RemoveChallenge(id));
                if let Some(message) = gone.message {
                    self.outbox.remove(&message);
                    batch.push(Change::RemoveMessage(message));
                }
                swept += 1;
            }
        }
        if swept > 0 {
            // Deleting dead records needs no flush: if lost, recovery deletes them again.
            self.store.write(batch)?;
        }
        self.store.save_clock_floor(now)?;
        Ok(swept)
    }

    /// Sweeps expired challenges every `every` on a background thread until
    /// the returned handle is dropped.
    pub fn start_sweeper(self: &Arc<Self>, every: Duration) -> Result<Sweeper> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("otpd-sweeper".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failed sweep is retried on the next tick.
                    let _ = engine.sweep_expired();
                }
            })
            .map_err(|e| EngineError::Internal(format!("cannot start the sweeper: {e}")))?;
        Ok(Sweeper {
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    /// Registers a client service and returns its API key, which is not stored
    /// and cannot be shown again. Names are unique among unrevoked clients.
    pub fn add_client(&self, name: &str, scopes: Scopes) -> Result<Durable<(ClientInfo, ApiKey)>> {
        let name = check_name(name)?;
        if scopes == Scopes::default() {
            return Err(EngineError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        let _serial = self
            .client_admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self
            .clients
            .iter()
            .any(|c| c.info.name == name && c.info.revoked_at.is_none())
        {
            return Err(EngineError::Conflict { field: "name" });
        }
        let id: [u8; 8] = self.random();
        let secret: [u8; 32] = self.random();
        let client = Client {
            id,
            info: ClientInfo {
                name,
                scopes,
                created_at: self.now(),
                revoked_at: None,
            },
            secret_hash: hash_secret(&secret),
        };
        let ticket = self.store.write(Changes(vec![Change::Client(&client)]))?;
        let info = client.info.clone();
        self.clients.insert(id, client);
        Ok(self.durable((info, ApiKey::new(id, &secret)), ticket))
    }

    /// Every client ever added, revoked ones included, by name.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut all: Vec<ClientInfo> = self.clients.iter().map(|c| c.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.created_at.cmp(&b.created_at)));
        all
    }

    /// Revokes the unrevoked client called `name`; its key stops working at once.
    pub fn revoke_client(&self, name: &str) -> Result<Durable<()>> {
        let _serial = self
            .client_admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let id = self
            .clients
            .iter()
            .find(|c| c.info.name == name && c.info.revoked_at.is_none())
            .map(|c| c.id)
            .ok_or_else(|| EngineError::invalid("name", "no active client has this name"))?;
        let mut revoked = self
            .clients
            .get(&id)
            .map(|c| c.clone())
            .ok_or_else(|| EngineError::Internal("client vanished".into()))?;
        revoked.info.revoked_at = Some(self.now());
        let ticket = self.store.write(Changes(vec![Change::Client(&revoked)]))?;
        self.clients.insert(id, revoked);
        Ok(self.durable((), ticket))
    }

    /// The client whose API key this is, if it is valid and not revoked.
    pub fn authenticate_client(&self, presented: &str) -> Option<ClientInfo> {
        let (id, secret) = ApiKey::split(presented)?;
        let client = self.clients.get(&id)?;
        client.accepts(&secret).then(|| client.info.clone())
    }

    /// Sizes and counters.
    pub fn stats(&self) -> Stats {
        Stats {
            accounts: self.accounts.len() as u64,
            challenges: self.challenges.len() as u64,
            flush: self.store.stats(),
            lockouts: self.lockouts.load(std::sync::atomic::Ordering::Relaxed),
            outbox: self.outbox.len() as u64,
            limiter_keys: self.limits.keys() as u64,
            argon2_runs: self.pins.runs(),
            argon2_memory_bytes: self.pins.pooled_memory().1,
        }
    }

    /// SMS codes sent and verified per country calling code, with the pumping alarm.
    pub fn sms_conversion(&self) -> Vec<SmsConversion> {
        self.limits.sms_conversion()
    }

    /// `Ok` when the store takes writes; otherwise why not: its disk is
    /// below the free-space reserve (cleared when space returns), or a write
    /// failed and writes are stopped until a restart.
    pub fn writable(&self) -> Result<()> {
        self.store.writable()
    }

    /// Writes a consistent copy of the store into `dir` (see [`crate::BackupSummary`]):
    /// every write acknowledged before the call, none half-applied. Writes
    /// queue while the store is read.
    pub fn backup_to(&self, dir: &std::path::Path) -> Result<crate::BackupSummary> {
        self.store.backup_to(dir)
    }

    /// Bytes the store occupies on disk.
    pub fn disk_bytes(&self) -> Result<u64> {
        self.store.size_on_disk()
    }

    /// Flushes the store now (for shutdown).
    pub fn flush(&self) -> Result<()> {
        self.store.flush()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Best effort: the store's own drop flushes it.
        let _ = self.store.save_clock_floor(self.clock.now());
    }
}

/// Stops the background sweeper when dropped.
#[derive(Debug)]
pub struct Sweeper {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

fn ensure_usable(account: &Account, now: Timestamp) -> Result<()> {
    match account.status {
        Status::Cancelled(_) => Err(EngineError::WrongState("the account is cancelled")),
        Status::PendingActivation => Err(EngineError::WrongState("the account is not activated")),
        Status::Active => match account.lockout.lock_at(now) {
            Some(lock) => Err(EngineError::Locked { until: lock.until }),
            None => Ok(()),
        },
    }
}

fn choose_channel(account: &Account, requested: Option<Channel>) -> Result<Channel> {
    if let Some(channel) = requested {
        return Ok(channel);
    }
    match (&account.phone, &account.email, &account.push_token) {
        (Some(_), None, _) => Ok(Channel::Sms),
        (None, Some(_), _) => Ok(Channel::Email),
        (None, None, Some(_)) => Ok(Channel::Push),
        (None, None, None) => Err(EngineError::ChannelUnavailable("contact")),
        (Some(_), Some(_), _) => Err(EngineError::invalid(
            "channel",
            "the account has a mobile number and an email: choose sms or email",
        )),
    }
}

fn destination_for(account: &Account, channel: Channel, purpose: Purpose) -> Result<String> {
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
    }
}
