//! Fixtures the benchmarks share: engines on stores populated with many
//! accounts and live challenges, an in-process otpd whose SMS gateway is a
//! load-test sink, and the process's resident memory.
//!
//! The benchmarks themselves are in `benches/`; `docs/CAPACITY.md` says how
//! to run them and what they showed on the reference machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::{
    AccountId, Argon2Params, Channel, CodeKey, Durable, Engine, EngineConfig, Identity,
    IdentityKind, ImportAccount, ImportState, ManualClock, Phone, Pin, Scope, Scopes, SendResult,
    SystemClock, Timestamp, hash_pin_phc, seeded_rng,
};
use otpd::config::{BodyFormat, Config, LimitsConfig, SmsGatewayConfig};
use otpd::{App, Dependencies};
use tokio::sync::oneshot;

/// 2026-11-23T00:00:00Z: every fixture engine runs on a manual clock from here,
/// so recovered challenges are still live however long a benchmark takes.
pub const START: Timestamp = Timestamp(1_795_392_000_000);

/// The PIN of every fixture account.
pub const PIN: &str = "4821";

/// The code key of every fixture engine.
pub fn code_key() -> CodeKey {
    CodeKey::new([42; 32])
}

/// An engine configuration on `dir` with limits off and cheap Argon2 (the
/// engine benchmarks time codes and storage; Argon2 has its own benchmark).
pub fn engine_config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::for_tests();
    config.store.path = Some(dir.to_path_buf());
    config
}

/// Opens an engine on `dir` at [`START`].
pub fn open_engine(dir: &Path) -> Result<(Engine, ManualClock), String> {
    open_with(engine_config(dir))
}

/// Opens an engine with `config` at [`START`].
pub fn open_with(config: EngineConfig) -> Result<(Engine, ManualClock), String> {
    let clock = ManualClock::new(START);
    let place = format!("{:?}", config.store.path);
    let engine = Engine::open(
        config,
        code_key(),
        Arc::new(clock.clone()),
        seeded_rng([7; 32]),
    )
    .map_err(|e| format!("open the engine on {place}: {e}"))?;
    Ok((engine, clock))
}

/// A data directory holding `accounts` active accounts and, when
/// `challenges` is set, one live SMS step-up challenge each whose message
/// was already sent (as in production, where the outbox drains in
/// milliseconds). Removed on drop.
#[derive(Debug)]
pub struct Populated {
    dir: tempfile::TempDir,
    /// The accounts, in creation order.
    pub accounts: Vec<AccountId>,
}

impl Populated {
    /// Where the data is.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Moves the data to `dest` (same file system), to be kept after the run.
    pub fn keep_at(self, dest: &Path) -> Result<(), String> {
        std::fs::rename(self.path(), dest).map_err(|e| format!("keep {}: {e}", dest.display()))
    }
}

/// The identity of fixture account `n`: an 8-digit civil ID.
pub fn identity(n: u64) -> Result<Identity, String> {
    Identity::parse(IdentityKind::CivilId, &format!("{n:08}"), None).map_err(|e| e.to_string())
}

/// Builds a [`Populated`] store through the engine's own operations, so every
/// record is exactly what production writes. PIN hashes are real PHC strings
/// at the default Argon2 cost (hashed once), so records have their real size.
pub fn populate(accounts: u64, challenges: bool) -> Result<Populated, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("data");
    let (engine, _clock) = open_engine(&path)?;
    let phc = hash_pin_phc(&Pin::new(PIN), Argon2Params::default(), [5; 16])
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(usize::try_from(accounts).unwrap_or(0));
    for n in 0..accounts {
        let imported = engine
            .import(ImportAccount {
                identity: identity(n)?,
                phone: Some(Phone::parse(&loadtest::seed::phone(n)).map_err(|e| e.to_string())?),
                email: None,
                birth_date: None,
                postal_address: None,
                pin_hash: Some(phc.clone()),
                state: ImportState::Active,
            })
            .map_err(|e| format!("import account {n}: {e}"))?;
        ids.push(*imported.peek());
        // Like API callers, who each wait: keep the writer's queue bounded.
        if n % 1_000 == 999 {
            imported.wait().map_err(|e| e.to_string())?;
        }
    }
    if challenges {
        for (n, id) in ids.iter().enumerate() {
            let issued = engine
                .issue_step_up(*id, Some(Channel::Sms), None, None)
                .map_err(|e| format!("issue a code to account {n}: {e}"))?;
            if n % 1_000 == 999 {
                issued.wait().map_err(|e| e.to_string())?;
                drain_outbox(&engine)?;
            }
        }
        drain_outbox(&engine)?;
    }
    engine.flush().map_err(|e| e.to_string())?;
    drop(engine);
    Ok(Populated { dir, accounts: ids })
}

/// Reports every queued message as sent.
pub fn drain_outbox(engine: &Engine) -> Result<(), String> {
    loop {
        let due = engine.outbox_due(10_000);
        if due.is_empty() {
            return Ok(());
        }
        let mut last = None;
        for message in due {
            last = Some(
                engine
                    .outbox_report(message.id, SendResult::Sent)
                    .map_err(|e| format!("report a message sent: {e}"))?,
            );
        }
        if let Some(last) = last {
            last.wait().map_err(|e| e.to_string())?;
        }
    }
}

/// What opening an engine in a fresh process showed (see [`open_in_child`]).
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// Time `Engine::open` took: reading and decoding every record.
    pub recovery: std::time::Duration,
    /// Resident bytes before and after opening.
    pub rss_before: u64,
    /// Resident bytes after.
    pub rss_after: u64,
    /// sled's bytes on disk.
    pub disk: u64,
    /// Accounts and challenges recovered.
    pub accounts: u64,
    /// Live challenges recovered.
    pub challenges: u64,
}

/// The argument a benchmark binary's `main` recognises as "be the child".
pub const CHILD_FLAG: &str = "--open-child";

/// In the child: opens an engine on `path` with sled's cache at
/// `cache_bytes` and prints what [`Opened`] holds.
pub fn child_main(path: &Path, cache_bytes: u64) -> Result<(), String> {
    let rss_before = resident_bytes().ok_or("no /proc/self/status")?;
    let mut config = engine_config(path);
    config.store.cache_bytes = cache_bytes;
    let started = std::time::Instant::now();
    let (engine, _clock) = open_with(config)?;
    let recovery = started.elapsed();
    let rss_after = resident_bytes().ok_or("no /proc/self/status")?;
    let stats = engine.stats();
    let disk = engine.disk_bytes().map_err(|e| e.to_string())?;
    println!(
        "{} {rss_before} {rss_after} {disk} {} {}",
        recovery.as_nanos(),
        stats.accounts,
        stats.challenges
    );
    Ok(())
}

/// Runs this executable as a child (`CHILD_FLAG path cache_bytes`) and
/// reads its report: every recovery starts in a fresh process, as after a
/// restart, and leaves nothing behind in the benchmark's own memory. sled's
/// page cache is `cache_bytes`: the deployment default to time recovery as
/// operators will see it, 1 MiB to read the engine's own memory.
pub fn open_in_child(path: &Path, cache_bytes: u64) -> Result<Opened, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .arg(CHILD_FLAG)
        .arg(path)
        .arg(cache_bytes.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|f| f.parse().map_err(|_| format!("child printed {text:?}")))
        .collect::<Result<_, _>>()?;
    let [nanos, rss_before, rss_after, disk, accounts, challenges] = fields[..] else {
        return Err(format!("child printed {text:?}"));
    };
    Ok(Opened {
        recovery: std::time::Duration::from_nanos(nanos),
        rss_before,
        rss_after,
        disk,
        accounts,
        challenges,
    })
}

/// If this process was started as a child, does the child's work and says so.
pub fn run_as_child() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == CHILD_FLAG) else {
        return false;
    };
    let (Some(path), Some(Ok(cache_bytes))) = (args.get(i + 1), args.get(i + 2).map(|c| c.parse()))
    else {
        eprintln!("{CHILD_FLAG} needs a data directory and a cache size in bytes");
        std::process::exit(2);
    };
    if let Err(e) = child_main(Path::new(path), cache_bytes) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    true
}

/// This process's resident memory in bytes (Linux `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An otpd serving on loopback in this process, its SMS gateway pointed at a
/// load-test sink and its limits off (benchmarks and load tests measure the
/// code path, not the abuse defences). Stops when dropped.
#[derive(Debug)]
pub struct InProcess {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// An API key with the `auth` and `admin` scopes.
    pub key: String,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl InProcess {
    /// Starts otpd on `127.0.0.1:0`, sending SMS to `sink_url`, hashing PINs at `argon2`.
    /// Call from within a multi-threaded tokio runtime.
    pub async fn start(sink_url: &str, argon2: Argon2Params) -> Result<InProcess, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            limits: LimitsConfig::off(),
            ..Config::default()
        };
        config.argon2.memory_kib = argon2.memory_kib;
        config.argon2.iterations = argon2.iterations;
        config.argon2.parallelism = argon2.parallelism;
        config.delivery.log_sink = false;
        config.delivery.sms = vec![SmsGatewayConfig {
            name: "sink".into(),
            url: sink_url.to_owned(),
            auth_header: String::new(),
            auth_value: String::new(),
            body: BodyFormat::Json,
            template: r#"{"to":"{to}","text":"{message}"}"#.into(),
        }];
        let deps = Dependencies {
            clock: Arc::new(SystemClock::new()),
            rng: seeded_rng([3; 32]),
            code_key: CodeKey::new([9; 32]),
            delivery: None,
        };
        let app = App::build(config, deps).map_err(|e| e.to_string())?;
        let (_, key) = app
            .state()
            .engine
            .add_client(
                "loadtest",
                Scopes::of(&[Scope::Auth, Scope::Admin, Scope::Verify]),
            )
            .and_then(Durable::wait)
            .map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(InProcess {
            url,
            key: key.expose().to_owned(),
            stop: Some(stop),
            _dir: dir,
        })
    }
}
