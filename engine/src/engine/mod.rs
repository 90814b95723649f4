//! The engine: every operation on accounts and codes, in memory and durable
//! through the storage port. This file holds the `Engine` and its opening;
//! the operations live in the files beside it, one capability each.
//!
//! Each account's entry in `accounts` is that account's lock. A change to an
//! account or its challenges is built on a copy (a [`Tx`], `tx.rs`) while the
//! entry is held, written to the store as one batch, and only then applied
//! to memory, so an error leaves nothing half done and the store sees one
//! account's changes in the order memory does. Maps are always locked in
//! the order accounts → index → challenges (→ idempotency keys → audit
//! log), and no lock is held across Argon2.

mod account_recovery;
mod accounts;
mod activation;
mod audit;
mod clients;
mod codes;
mod contacts;
mod delivery;
mod destinations;
mod idempotency;
mod login;
mod migrate;
mod notices;
mod pins;
mod reads;
mod recovery;
mod remote;
mod services;
mod tenancy;
mod tx;
mod upkeep;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::account::Account;
use crate::challenge::Challenge;
use crate::client::{Client, ClientId, KeyId};
use crate::clock::{Clock, Monotonic, Timestamp};
use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId, IdHasher};
use crate::keys::Keys;
use crate::limits::{GlobalLimit, IssueLimits, SharedBuckets};
use crate::pin::PinHasher;
use crate::queue::Queue;
use crate::secret::{CodeKey, Pin, PinHash};
use crate::store::{Commit, Durable, Store};
use crate::test_mode::TestDestinations;

pub use self::account_recovery::{Recovery, RecoveryMethod};
pub use self::accounts::{ImportAccount, ImportState, NewAccount, PreRegistration};
pub use self::activation::ActivationTarget;
pub use self::audit::MAX_EVENTS_PER_READ;
pub use self::clients::{ClientUpdate, MAX_LIVE_KEYS, NewClient, NewKey};
use self::codes::{choose_channel, destination_for, ensure_usable};
pub use self::contacts::{Contact, ContactChangeStart, ContactKind, ContactRemoval};
pub use self::destinations::{
    Destination, DestinationCheck, DestinationRequest, DestinationStatus, DestinationTarget, Ending,
};
pub use self::login::{LoginId, LoginOutcome};
pub use self::migrate::Migration;
pub use self::pins::PinChange;
pub use self::remote::check_cluster;
pub use self::services::MAX_SERVICES;
use self::tx::Tx;
pub use self::upkeep::{ClusterCounts, Stats, Sweeper};

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

/// The otpd engine. Share it behind an `Arc`; every method takes `&self`.
pub struct Engine {
    config: EngineConfig,
    limits: IssueLimits,
    clock: Monotonic,
    rng: Mutex<ChaCha20Rng>,
    pins: PinHasher,
    /// The subkeys of the code key (code MACs, sealing queued codes).
    keys: Keys,
    store: Arc<dyn Store>,
    /// The store's durability, kept to hand to each `Durable`.
    commit: Arc<dyn Commit>,
    /// Boxed, as challenges are: a slot is then 24 bytes, not a whole
    /// account, and the tables' slack costs little (docs/CAPACITY.md, memory).
    accounts: DashMap<AccountId, Box<Account>, IdHasher>,
    index: crate::index::Index,
    /// Boxed: a map's tables run at 44–87 % load, and slack slots of a
    /// pointer cost 8 bytes where slots of a whole challenge cost ~130
    /// (docs/CAPACITY.md, memory per live challenge).
    challenges: DashMap<ChallengeId, Box<Challenge>, IdHasher>,
    clients: DashMap<ClientId, Client>,
    /// Which client each key belongs to.
    client_keys: DashMap<KeyId, ClientId>,
    /// The issuance rate of each client that has one (in memory on the
    /// embedded store, where a restart forgets it; on the cluster otherwise).
    client_rates: DashMap<ClientId, GlobalLimit>,
    /// Test destinations and their fixed codes.
    test_codes: TestDestinations,
    /// Messages not yet sent, by id and by due time.
    outbox: Queue,
    lockouts: std::sync::atomic::AtomicU64,
    /// Destination verifications' holders in `accounts` (not accounts).
    holders: std::sync::atomic::AtomicU64,
    /// Serialises changes to clients (rare, admin-only).
    client_admin: Mutex<()>,
    /// The audit chain's writer.
    audit: self::audit::AuditLog,
    /// Idempotency keys by client. Locked after the accounts, index and
    /// challenges, before the audit log.
    idempotency: Mutex<crate::idempotency::Book>,
    /// Keys forgotten early by the per-client cap, since start.
    idempotency_evicted: std::sync::atomic::AtomicU64,
    /// On a cluster: where accounts, challenges and the index live instead
    /// of the maps above (which then stay empty); `None` on the embedded store.
    remote: Option<remote::Remote>,
    /// On a cluster: the limits every node shares (`None`: each limit is
    /// this process's).
    buckets: Option<Arc<dyn SharedBuckets>>,
    /// On a cluster: when this node last read the client registry (engine time, ms).
    clients_read_at: std::sync::atomic::AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
        let remote = config
            .store
            .cluster
            .clone()
            .map(|cluster| remote::Remote::connect_as(cluster, config.store.path.as_deref()))
            .transpose()?;
        Self::open_on(store, remote, config, key, clock, rng)
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
        Self::open_on(Arc::new(store.clone()), None, config, key, clock, rng)
    }

    fn open_on(
        store: Arc<dyn Store>,
        remote: Option<remote::Remote>,
        config: EngineConfig,
        key: CodeKey,
        clock: Arc<dyn Clock>,
        mut rng: ChaCha20Rng,
    ) -> Result<Engine> {
        let pins = PinHasher::new(config.argon2, &mut rng)?;
        let commit = store.commit();
        let buckets = remote.as_ref().map(remote::Remote::buckets).transpose()?;
        let keys = Keys::derive(&key);
        let destination_key = keys.limit_subjects();
        let limits = IssueLimits::new(
            config.limits.clone(),
            Arc::clone(&clock),
            buckets.as_ref(),
            destination_key,
        );
        let test_codes = config.test_mode.prepared(&config.codes)?;
        let engine = Engine {
            config,
            limits,
            clock: Monotonic::new(clock),
            rng: Mutex::new(rng),
            pins,
            keys,
            audit: self::audit::AuditLog::new(&key)?,
            store,
            commit,
            accounts: DashMap::with_hasher(IdHasher::default()),
            index: crate::index::Index::new()?,
            challenges: DashMap::with_hasher(IdHasher::default()),
            clients: DashMap::new(),
            client_keys: DashMap::new(),
            client_rates: DashMap::new(),
            test_codes,
            outbox: Queue::default(),
            lockouts: std::sync::atomic::AtomicU64::new(0),
            holders: std::sync::atomic::AtomicU64::new(0),
            client_admin: Mutex::new(()),
            idempotency: Mutex::default(),
            idempotency_evicted: std::sync::atomic::AtomicU64::new(0),
            remote,
            buckets,
            clients_read_at: std::sync::atomic::AtomicU64::new(0),
        };
        engine.recover()?;
        Ok(engine)
    }

    /// The state limits share across nodes on a cluster (the request-level
    /// limits of the server use it too); `None` on the embedded store.
    pub fn shared_buckets(&self) -> Option<Arc<dyn SharedBuckets>> {
        self.buckets.clone()
    }

    /// The key of the digests that name rate-limit buckets (of source
    /// addresses, in the server's request limits): the same on every node.
    pub fn limit_subject_key(&self) -> [u8; 16] {
        self.keys.limit_subjects()
    }

    /// The engine's current time (never earlier than any time it has seen).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(super) fn rng(&self) -> MutexGuard<'_, ChaCha20Rng> {
        self.rng.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn random<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.rng().fill_bytes(&mut bytes);
        bytes
    }

    pub(super) fn hash_pin(&self, pin: &Pin) -> Result<PinHash> {
        let salt: [u8; 16] = self.random();
        self.pins.hash(pin, salt)
    }

    pub(super) fn ready<T>(&self, value: T) -> Durable<T> {
        Durable::new(value, None, Arc::clone(&self.commit))
    }

    pub(super) fn durable<T>(&self, value: T, ticket: crate::store::Ticket) -> Durable<T> {
        Durable::new(value, Some(ticket), Arc::clone(&self.commit))
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("accounts", &self.accounts.len())
            .field("challenges", &self.challenges.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Best effort: the store's own drop flushes it.
        let _ = self.settle_sent();
        if let Some(remote) = &self.remote {
            // Codes this node queued and has not sent: due now, for any
            // node, not a lease later.
            remote.give_back_unsent(self.clock.now());
        }
        let _ = self.store.save_clock_floor(self.clock.now());
    }
}
