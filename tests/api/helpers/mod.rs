//! `spawn_app`: a real otpd on 127.0.0.1 port 0 with a temporary data directory,
//! a manual clock and a delivery sink the test can read, called through one
//! method per endpoint.
//!
//! This file starts and stops the server; `client.rs` has the method per
//! endpoint, `bodies.rs` the typed request bodies they take.

mod bodies;
mod client;
mod python;

pub use bodies::*;
pub use client::*;
pub use python::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{
    CodeKey, Durable, ManualClock, Outgoing, Scope, Scopes, SendResult, Timestamp, seeded_rng,
};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use otpd::config::{Backend, Config};
use otpd::delivery::{Channel, Rendered, SendFuture};
use otpd::{App, Dependencies};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// 2026-11-23T00:00:00Z.
pub const START: Timestamp = Timestamp(1_795_392_000_000);
pub const PHONE: &str = "+351912345678";
pub const PIN: &str = "4821";

/// Codes as a gateway would receive them: the channel for every message
/// whose channel has no configuration of its own.
#[derive(Debug, Default, Clone)]
pub struct Outbox {
    sent: Arc<Mutex<Vec<(Outgoing, Rendered)>>>,
    arrived: Arc<tokio::sync::Notify>,
    /// How the next notices are answered (then `Sent`): a gateway failing them.
    notice_answers: Arc<Mutex<std::collections::VecDeque<SendResult>>>,
}

impl Channel for Outbox {
    fn name(&self) -> &'static str {
        "test-capture"
    }

    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a> {
        self.sent
            .lock()
            .unwrap()
            .push((message.clone(), rendered.clone()));
        let result = match message.notice {
            Some(_) => self.notice_answers.lock().unwrap().pop_front(),
            None => None,
        };
        self.arrived.notify_waiters();
        Box::pin(async { result.unwrap_or(SendResult::Sent) })
    }
}

impl Outbox {
    /// Answers the next notices (not codes) with `results`, in order.
    pub fn answer_notices_with(&self, results: Vec<SendResult>) {
        self.notice_answers.lock().unwrap().extend(results);
    }

    /// Every message with a code tried so far, each try once.
    pub fn codes(&self) -> Vec<(Outgoing, Rendered)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m.notice.is_none())
            .cloned()
            .collect()
    }

    /// Every message tried so far, each try once.
    pub fn sent(&self) -> Vec<(Outgoing, Rendered)> {
        self.sent.lock().unwrap().clone()
    }

    /// Every notice (a message with no code) tried so far, each try once.
    pub fn notices(&self) -> Vec<(Outgoing, Rendered)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m.notice.is_some())
            .cloned()
            .collect()
    }

    /// Waits (up to 10 s; `nudge` runs between looks) until `n` notice
    /// tries have been made, and returns them all.
    pub async fn wait_for_notices(
        &self,
        n: usize,
        mut nudge: impl FnMut(),
    ) -> Vec<(Outgoing, Rendered)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            let notices = self.notices();
            if notices.len() >= n {
                return notices;
            }
            nudge();
            let look = deadline.min(tokio::time::Instant::now() + Duration::from_millis(50));
            if tokio::time::timeout_at(look, arrived).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                panic!("{} notices were tried, expected {n}", notices.len());
            }
        }
    }

    /// Waits (up to 10 s) for the message of a challenge and returns it.
    pub async fn message_for(&self, challenge_id: &str) -> (Outgoing, Rendered) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            if let Some(found) = self
                .sent
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(m, _)| m.challenge_id.to_string() == challenge_id)
            {
                return found.clone();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("no code was delivered for {challenge_id}");
            }
        }
    }

    /// Waits for and returns the code sent for a challenge.
    pub async fn code_for(&self, challenge_id: &str) -> String {
        self.message_for(challenge_id)
            .await
            .0
            .code
            .expose()
            .to_owned()
    }
}

pub struct Response {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Response {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub struct TestApp {
    api: ApiClient,
    pub clock: ManualClock,
    pub outbox: Outbox,
    pub state: Arc<otpd::AppState>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), String>>>,
    pub config: Config,
    pub dir: Arc<tempfile::TempDir>,
    capture: bool,
    /// The operators' listener, when `ops_listen` is set.
    pub ops_address: Option<String>,
}

/// Tests call endpoints on the app itself (`app.login(..)`): the server's
/// handles and the client that talks to it are one thing to a test.
impl std::ops::Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.join("data"),
        ..Config::default()
    };
    config.argon2.memory_kib = 64;
    config.argon2.iterations = 1;
    config.server.shutdown_grace_ms = 2_000;
    if crate::BACKEND == Backend::RedisCluster {
        // One cluster for the test process, a namespace per server.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cluster = crate::cluster_fixture::for_process();
        config.store.backend = Backend::RedisCluster;
        config.store.redis.nodes.clone_from(&cluster.nodes);
        config.store.redis.wait_timeout_ms = 2_000;
        config.store.redis.timeout_ms = 5_000;
        config.store.redis.namespace = format!("api{}-{n}", std::process::id());
        // The servers run on a manual clock set in 2026, not the cluster's:
        // the skew check is the cluster tests' (engine/tests/cluster).
        config.store.redis.max_clock_skew_ms = 100 * 365 * 86_400_000;
    }
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Everything the servers in this test binary log, at every level.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .try_init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn(adjust, true).await
}

/// A server whose only channels are those `adjust` configures (no capture).
pub async fn spawn_app_without_capture(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn(adjust, false).await
}

async fn spawn(adjust: impl FnOnce(&mut Config), capture: bool) -> TestApp {
    captured_logs();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(dir.path());
    adjust(&mut config);
    start(config, dir, ManualClock::new(START), None, capture).await
}

/// A different seed for every server in the binary: tests run side by side
/// and share one log, so equal code sequences would make one test's codes
/// show up in another's log.
fn next_seed() -> [u8; 32] {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut seed = [7; 32];
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed
}

async fn start(
    config: Config,
    dir: Arc<tempfile::TempDir>,
    clock: ManualClock,
    keys: Option<[String; 6]>,
    capture: bool,
) -> TestApp {
    let outbox = Outbox::default();
    let deps = Dependencies {
        clock: Arc::new(clock.clone()),
        rng: seeded_rng(next_seed()),
        code_key: CodeKey::new([42; 32]),
        delivery: capture.then(|| Arc::new(outbox.clone()) as Arc<dyn Channel>),
    };
    let app = App::build(config.clone(), deps).expect("app builds");
    let state = app.state();
    let engine = Arc::clone(&state.engine);
    let keys = keys.unwrap_or_else(|| {
        let add = |name: &str, scopes: &[Scope]| {
            let (_, key) = engine
                .add_client(name, Scopes::of(scopes))
                .and_then(Durable::wait)
                .unwrap();
            key.expose().to_owned()
        };
        [
            add("auth-only", &[Scope::Auth]),
            add("accounts-only", &[Scope::Accounts]),
            add("admin-only", &[Scope::Admin]),
            add("sign-only", &[Scope::Sign]),
            add("everything", &Scope::ALL),
            add("recovery-desk", &[Scope::Recovery]),
        ]
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    // An operators' listener when the configuration asks for one (on a
    // port of its own, whatever the configuration says).
    let ops = if config.ops_listen.is_empty() {
        None
    } else {
        Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    };
    let ops_address = ops
        .as_ref()
        .map(|l| format!("http://{}", l.local_addr().unwrap()));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve_split(listener, ops, async {
        let _ = stopped.await;
    }));
    let [
        auth_key,
        accounts_key,
        admin_key,
        sign_key,
        all_key,
        recovery_key,
    ] = keys;
    drop(engine);
    TestApp {
        api: ApiClient {
            address,
            auth_key,
            accounts_key,
            admin_key,
            sign_key,
            all_key,
            recovery_key,
            client: Client::builder(TokioExecutor::new()).build_http(),
            key: None,
            forwarded_for: None,
            idempotency_key: None,
        },
        clock,
        outbox,
        state,
        stop: Some(stop),
        server: Some(server),
        config,
        dir,
        capture,
        ops_address,
    }
}

impl TestApp {
    /// Stops the server (graceful drain and flush) and starts a new one on the same data.
    pub async fn restart(self) -> TestApp {
        self.restart_expecting(Ok(())).await
    }

    /// As `restart`, where the stop's outcome is `stopped` (a store that
    /// failed cannot make its final flush).
    pub async fn restart_expecting(mut self, stopped: Result<(), &str>) -> TestApp {
        let outcome = self.stop().await;
        match (stopped, &outcome) {
            (Ok(()), Ok(())) => {}
            (Err(part), Err(why)) if why.contains(part) => {}
            _ => panic!("stopped with {outcome:?}, expected {stopped:?}"),
        }
        let keys = self.keys();
        let (config, dir, clock) = (
            self.config.clone(),
            Arc::clone(&self.dir),
            self.clock.clone(),
        );
        let capture = self.capture;
        let engine = Arc::downgrade(&self.state.engine);
        drop(self);
        // The old engine must be gone before the store can be opened again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while engine.strong_count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "old engine still referenced"
            );
            tokio::task::yield_now().await;
        }
        start(config, dir, clock, Some(keys), capture).await
    }

    /// A second server on a copy of this one's data in `data_dir` (restored
    /// from a backup, say): same clients and keys, same clock.
    pub async fn spawn_on_copy(&self, data_dir: std::path::PathBuf) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let config = Config {
            data_dir,
            ..self.config.clone()
        };
        let keys = self.keys();
        start(config, dir, self.clock.clone(), Some(keys), self.capture).await
    }

    /// On a cluster, a second node serving this one's population (as two
    /// otpd processes behind one load balancer): same namespace, clients,
    /// keys, configuration and clock, its own data directory. `None` on the
    /// embedded store, where one process is the whole service.
    pub async fn second_node(&self) -> Option<TestApp> {
        if crate::BACKEND != Backend::RedisCluster {
            return None;
        }
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let config = Config {
            data_dir: dir.path().join("data"),
            ..self.config.clone()
        };
        let keys = self.keys();
        Some(start(config, dir, self.clock.clone(), Some(keys), self.capture).await)
    }

    /// The six clients' keys, for another server on the same clients.
    fn keys(&self) -> [String; 6] {
        [
            self.auth_key.clone(),
            self.accounts_key.clone(),
            self.admin_key.clone(),
            self.sign_key.clone(),
            self.all_key.clone(),
            self.recovery_key.clone(),
        ]
    }

    /// Challenges the store holds, counted in the store itself (on a
    /// cluster, its keys in this server's namespace).
    pub fn challenges_held(&self) -> u64 {
        self.count_on_cluster("c:*")
            .unwrap_or_else(|| self.state.engine.stats().challenges)
    }

    /// Accounts the store holds.
    pub fn accounts_held(&self) -> u64 {
        self.count_on_cluster("????????????????")
            .unwrap_or_else(|| self.state.engine.stats().accounts)
    }

    /// On a cluster, the TTL (ms) of each of `limit`'s buckets in this
    /// server's namespace; `None` on the embedded store.
    pub fn limit_buckets(&self, limit: &str) -> Option<Vec<i64>> {
        (self.config.store.backend == Backend::RedisCluster).then(|| {
            let ns = &self.config.store.redis.namespace;
            crate::cluster_fixture::for_process().ttls(&format!("r:{ns}/{limit}:*"))
        })
    }

    /// Keys `{a:NS/TAG}rest` of this server's accounts' slots on the cluster.
    fn count_on_cluster(&self, rest: &str) -> Option<u64> {
        (self.config.store.backend == Backend::RedisCluster).then(|| {
            let ns = &self.config.store.redis.namespace;
            crate::cluster_fixture::for_process()
                .count_keys(&format!("{{a:{ns}/????????????????}}{rest}"))
        })
    }

    /// This client, calling the operators' listener (`ops_listen`).
    pub fn ops(&self) -> ApiClient {
        let mut client = self.api.clone();
        client.address = self
            .ops_address
            .clone()
            .expect("the server has an operators' listener");
        client
    }

    /// The client with every scope: one relying party doing every step of
    /// a flow (a challenge belongs to the client that asked for it).
    pub fn portal(&self) -> ApiClient {
        self.api.with_key(&self.api.all_key)
    }

    /// Adds a client through the admin API and returns its key.
    pub async fn new_client(&self, body: Value) -> String {
        let r = self.add_client(body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["key"].as_str().unwrap().to_owned()
    }

    /// A relying party of its own (auth, accounts and sign), added through
    /// the admin API, called with its key.
    pub async fn relying_party(&self, name: &str) -> ApiClient {
        let key = self
            .new_client(serde_json::json!({ "name": name, "scopes": ["auth", "accounts", "sign"] }))
            .await;
        self.api.with_key(&key)
    }

    /// Logs in and returns (challenge id, delivered code).
    pub async fn login_code(&self, phone: &str) -> (String, String) {
        self.login_code_as(&self.api, phone).await
    }

    /// Logs in as `client` and returns (challenge id, delivered code).
    pub async fn login_code_as(&self, client: &ApiClient, phone: &str) -> (String, String) {
        let r = client.login(phone, PIN).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["challenge_id"].as_str().unwrap().to_owned();
        let code = self.outbox.code_for(&id).await;
        (id, code)
    }

    /// Asks to sign `document` and returns (challenge id, delivered code).
    pub async fn signature_code(&self, phone: &str, document: &Document) -> (String, String) {
        let r = self
            .request_signature(Contact::Phone(phone), PIN, document, Sending::default())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["challenge_id"].as_str().unwrap().to_owned();
        let code = self.outbox.code_for(&id).await;
        (id, code)
    }

    /// Sets the clock to the real time: attestations are checked by
    /// libraries that read the system clock for `exp`.
    pub fn at_real_time(&self) {
        self.clock
            .set(engine::Clock::now(&engine::SystemClock::new()));
    }

    /// Steps up and returns (challenge id, delivered code).
    pub async fn step_up_code(&self, account_id: &str) -> (String, String) {
        self.step_up_code_as(&self.api, account_id).await
    }

    /// Steps up as `client` and returns (challenge id, delivered code): a
    /// proof for a PIN or contact change, which only that client may use.
    pub async fn step_up_code_as(&self, client: &ApiClient, account_id: &str) -> (String, String) {
        let r = client.step_up(account_id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["challenge_id"].as_str().unwrap().to_owned();
        let code = self.outbox.code_for(&id).await;
        (id, code)
    }

    pub async fn stop(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.unwrap(),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
