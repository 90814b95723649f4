//! A test engine on a temporary directory with a manual clock, restartable in place.

use std::sync::Arc;
use std::time::Duration;

use engine::*;

fn seeded(seed: u64) -> ChaCha20Rng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    seeded_rng(bytes)
}

/// 2026-11-23T00:00:00Z.
pub const START: Timestamp = Timestamp(1_795_392_000_000);
pub const PIN: &str = "4821";
pub const OTHER_PIN: &str = "9135";

/// Which implementation of the storage port an engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// sled in a temporary directory.
    Sled,
    /// Records in memory, kept across restarts.
    Memory,
    /// Accounts, challenges and the index on a Redis Cluster (one for the
    /// whole test process, a namespace of its own per engine), the rest in
    /// sled in a temporary directory.
    Cluster,
}

/// The backend of [`TestEngine::new`] and [`TestEngine::with_config`]: the
/// test binary's (the same tests run on sled and again on a cluster).
pub fn default_backend() -> Backend {
    crate::BACKEND
}

/// Settings for a fresh namespace on the process's test cluster.
pub fn cluster_config() -> engine::cluster::ClusterConfig {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    engine::cluster::ClusterConfig {
        namespace: format!("t{}-{n}", std::process::id()),
        ..crate::cluster_fixture::for_process().config()
    }
}

pub struct TestEngine {
    pub engine: Arc<Engine>,
    pub clock: ManualClock,
    pub config: EngineConfig,
    key: CodeKey,
    seed: u64,
    pub dir: tempfile::TempDir,
    /// Set when the engine runs on the in-memory store.
    memory: Option<MemoryStore>,
    pub backend: Backend,
}

fn open(
    config: &EngineConfig,
    key: &CodeKey,
    clock: &ManualClock,
    seed: u64,
    memory: Option<&MemoryStore>,
) -> Engine {
    let (config, key, clock, rng) = (
        config.clone(),
        key.clone(),
        Arc::new(clock.clone()),
        seeded(seed),
    );
    match memory {
        Some(store) => Engine::open_in_memory(store, config, key, clock, rng),
        None => Engine::open(config, key, clock, rng),
    }
    .expect("engine opens")
}

impl TestEngine {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    pub fn with_config(adjust: impl FnOnce(&mut EngineConfig)) -> Self {
        Self::on(default_backend(), adjust)
    }

    /// An engine on `backend`, with the test configuration adjusted.
    pub fn on(backend: Backend, adjust: impl FnOnce(&mut EngineConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = EngineConfig::for_tests();
        config.store.path = Some(dir.path().join("data"));
        if backend == Backend::Cluster {
            config.store.cluster = Some(cluster_config());
        }
        adjust(&mut config);
        let clock = ManualClock::new(START);
        let key = CodeKey::new([42; 32]);
        let memory = (backend == Backend::Memory).then(MemoryStore::new);
        let engine = open(&config, &key, &clock, 1, memory.as_ref());
        Self {
            engine: Arc::new(engine),
            clock,
            config,
            key,
            seed: 1,
            dir,
            memory,
            backend,
        }
    }

    #[allow(dead_code)] // The cluster suite's two-node tests use it.
    /// Another node on the same cluster namespace (`Backend::Cluster`
    /// only): its own directory and random ids, the same clock, code key
    /// and settings, as a second otpd process would have.
    pub fn peer(&self) -> TestEngine {
        assert_eq!(self.backend, Backend::Cluster, "peers share a cluster");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = self.config.clone();
        config.store.path = Some(dir.path().join("data"));
        let seed = self.seed + 1000;
        let engine = open(&config, &self.key, &self.clock, seed, None);
        Self {
            engine: Arc::new(engine),
            clock: self.clock.clone(),
            config,
            key: self.key.clone(),
            seed,
            dir,
            memory: None,
            backend: Backend::Cluster,
        }
    }

    /// Accounts the store holds (cancelled ones and unfinished
    /// registrations included), counted in the store itself.
    pub fn accounts_held(&self) -> u64 {
        match self.cluster_namespace() {
            Some(ns) => crate::cluster_fixture::for_process()
                .count_keys(&format!("{{a:{ns}/????????????????}}????????????????")),
            None => self.engine.stats().accounts,
        }
    }

    /// Challenges the store holds.
    pub fn challenges_held(&self) -> u64 {
        match self.cluster_namespace() {
            Some(ns) => crate::cluster_fixture::for_process()
                .count_keys(&format!("{{a:{ns}/????????????????}}c:*")),
            None => self.engine.stats().challenges,
        }
    }

    pub fn cluster_namespace(&self) -> Option<String> {
        self.config
            .store
            .cluster
            .as_ref()
            .map(|c| c.namespace.clone())
    }

    /// The in-memory store under the engine (`Backend::Memory` only).
    pub fn memory(&self) -> &MemoryStore {
        self.memory
            .as_ref()
            .expect("an engine on the in-memory store")
    }

    /// Drops the engine (flushing it) and opens a new one on the same store.
    pub fn restart(self) -> Self {
        self.restart_with(|| {})
    }

    /// As [`TestEngine::restart`], running `between` once the old engine is gone.
    fn restart_with(self, between: impl FnOnce()) -> Self {
        let TestEngine {
            engine,
            clock,
            config,
            key,
            seed,
            dir,
            memory,
            backend,
        } = self;
        drop(Arc::into_inner(engine).expect("no other engine handles"));
        between();
        let engine = open(&config, &key, &clock, seed + 1, memory.as_ref());
        Self {
            engine: Arc::new(engine),
            clock,
            config,
            key,
            seed: seed + 1,
            dir,
            memory,
            backend,
        }
    }

    /// As a killed process (`Backend::Memory` only): whatever the engine
    /// writes from now until it is gone is lost, then a new engine opens
    /// on what was kept.
    pub fn crash(self) -> Self {
        let store = self.memory().clone();
        store.lose_writes(true);
        self.restart_with(|| store.lose_writes(false))
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub fn register(&self, phone: &str) -> AccountId {
        self.register_full(phone, None, PIN)
    }

    pub fn register_full(&self, phone: &str, email: Option<&str>, pin: &str) -> AccountId {
        // Each registration gets a fresh identity unless the phone's own is free.
        let mut identity = identity_for(phone);
        while self.engine.find_by_identity(&identity).unwrap().is_some() {
            let n: u32 = identity.number().parse().unwrap();
            identity = Identity::parse(
                IdentityKind::CivilId,
                &format!("{:08}", (n + 1) % 100_000_000),
                None,
            )
            .unwrap();
        }
        self.engine
            .register(NewAccount {
                identity,
                phone: Some(Phone::parse(phone).unwrap()),
                email: email.map(|e| Email::parse(e).unwrap()),
                pin: Pin::new(pin),
                birth_date: None,
                postal_address: None,
                dm: None,
                locale: None,
            })
            .and_then(Durable::wait)
            .expect("registration succeeds")
            .id
    }

    pub fn login(&self, phone: &str, pin: &str) -> LoginOutcome {
        self.engine
            .login(
                &LoginId::Phone(Phone::parse(phone).unwrap()),
                &Pin::new(pin),
                Some(Channel::Sms),
                None,
                None,
            )
            .and_then(Durable::wait)
            .expect("login runs")
    }

    /// Logs in with the right PIN and returns the issued code.
    pub fn login_code(&self, phone: &str) -> Issued {
        match self.login(phone, PIN) {
            LoginOutcome::CodeSent(issued) => issued,
            other => panic!("expected a code, got {other:?}"),
        }
    }

    /// Issues a step-up code by the account's only channel, durably.
    pub fn step_up(&self, account: AccountId) -> Issued {
        self.engine
            .issue_step_up(account, None, None, None)
            .and_then(Durable::wait)
            .expect("step-up issued")
    }

    pub fn verify(&self, challenge: ChallengeId, code: &str) -> Verification {
        self.engine
            .verify(challenge, Purpose::Login, &Code::new(code))
            .and_then(Durable::wait)
            .expect("verify runs")
    }

    pub fn view(&self, id: AccountId) -> AccountView {
        self.engine.account(id).unwrap()
    }
}

/// A civil ID derived from the phone, so each test phone has its own identity.
pub fn identity_for(phone: &str) -> Identity {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let tail = &digits[digits.len() - 8..];
    Identity::parse(IdentityKind::CivilId, tail, None).unwrap()
}

/// A code that is well formed but not `right`.
pub fn wrong(right: &Code) -> String {
    let mut digits: Vec<u8> = right.expose().bytes().collect();
    digits[0] = if digits[0] == b'9' {
        b'0'
    } else {
        digits[0] + 1
    };
    String::from_utf8(digits).unwrap()
}

/// Runs `f(i)` for i in 0..n on n threads released together.
pub fn in_parallel<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, f) = (Arc::clone(&barrier), Arc::clone(&f));
            std::thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}
