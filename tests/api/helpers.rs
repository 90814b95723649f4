//! `spawn_app`: a real otpd on 127.0.0.1 port 0 with a temporary data directory,
//! a manual clock and a delivery sink the test can read, called through one
//! method per endpoint.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engine::{
    CodeKey, Durable, ManualClock, Outgoing, Scope, Scopes, SendResult, Timestamp, seeded_rng,
};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use otpd::config::Config;
use otpd::delivery::{Channel, Rendered, SendFuture};
use otpd::{App, Dependencies};
use serde_json::{Value, json};
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
        self.arrived.notify_waiters();
        Box::pin(async { SendResult::Sent })
    }
}

impl Outbox {
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
    keys: Option<[String; 4]>,
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
            add("everything", &Scope::ALL),
        ]
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    let [auth_key, accounts_key, admin_key, all_key] = keys;
    drop(engine);
    TestApp {
        api: ApiClient {
            address,
            auth_key,
            accounts_key,
            admin_key,
            all_key,
            client: Client::builder(TokioExecutor::new()).build_http(),
            key: None,
            forwarded_for: None,
        },
        clock,
        outbox,
        state,
        stop: Some(stop),
        server: Some(server),
        config,
        dir,
        capture,
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
        let keys = [
            self.auth_key.clone(),
            self.accounts_key.clone(),
            self.admin_key.clone(),
            self.all_key.clone(),
        ];
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
        let keys = [
            self.auth_key.clone(),
            self.accounts_key.clone(),
            self.admin_key.clone(),
            self.all_key.clone(),
        ];
        start(config, dir, self.clock.clone(), Some(keys), self.capture).await
    }

    /// Logs in and returns (challenge id, delivered code).
    pub async fn login_code(&self, phone: &str) -> (String, String) {
        let r = self.login(phone, PIN).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["challenge_id"].as_str().unwrap().to_owned();
        let code = self.outbox.code_for(&id).await;
        (id, code)
    }

    /// Steps up and returns (challenge id, delivered code).
    pub async fn step_up_code(&self, account_id: &str) -> (String, String) {
        let r = self.step_up(account_id).await;
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

/// How a test talks to the server: one method per endpoint, each sent with
/// the key of its endpoint's scope, plus raw requests for odd input.
#[derive(Clone)]
pub struct ApiClient {
    pub address: String,
    /// Keys with one scope each, and one with all.
    pub auth_key: String,
    pub accounts_key: String,
    pub admin_key: String,
    pub all_key: String,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Sent instead of each endpoint's own key (see `with_key`).
    key: Option<String>,
    /// Sent as `X-Forwarded-For` (see `forwarded_for`).
    forwarded_for: Option<String>,
}

impl ApiClient {
    /// The same endpoints called with `key` instead of their scope's key.
    pub fn with_key(&self, key: &str) -> ApiClient {
        ApiClient {
            key: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// The same endpoints called as forwarded for `ip` (believed only from a
    /// trusted proxy).
    pub fn forwarded_for(&self, ip: &str) -> ApiClient {
        ApiClient {
            forwarded_for: Some(ip.to_owned()),
            ..self.clone()
        }
    }

    /// A raw request: for odd input, and paths no endpoint method covers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.address));
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        if let Some(ip) = &self.forwarded_for {
            builder = builder.header("x-forwarded-for", ip);
        }
        let body = match body {
            Some(value) => {
                builder = builder.header("content-type", "application/json");
                Full::new(Bytes::from(value.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        self.send(builder.body(body).unwrap()).await
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Response {
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("response within 30 s")
            .expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(key), Some(body))
            .await
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.request(Method::GET, path, Some(key), None).await
    }

    /// A call to an endpoint of `scope`, with its key (or the chosen one).
    async fn call(
        &self,
        method: Method,
        path: &str,
        scope: Scope,
        body: Option<Value>,
    ) -> Response {
        let own = match scope {
            Scope::Auth => &self.auth_key,
            Scope::Accounts => &self.accounts_key,
            Scope::Admin => &self.admin_key,
        };
        let key = self.key.as_deref().unwrap_or(own);
        self.request(method, path, Some(key), body).await
    }

    async fn post_as(&self, scope: Scope, path: &str, body: Value) -> Response {
        self.call(Method::POST, path, scope, Some(body)).await
    }

    // Operations (no key).

    pub async fn livez(&self) -> Response {
        self.request(Method::GET, "/livez", None, None).await
    }

    pub async fn readyz(&self) -> Response {
        self.request(Method::GET, "/readyz", None, None).await
    }

    pub async fn metrics(&self) -> Response {
        self.request(Method::GET, "/metrics", None, None).await
    }

    // Accounts (scope `accounts`).

    pub async fn register_account(&self, account: &NewAccount) -> Response {
        self.post_as(Scope::Accounts, "/v1/accounts", account.0.clone())
            .await
    }

    /// Registers a civil id with a phone and `PIN`.
    pub async fn register(&self, phone: &str, civil_id: &str) -> Response {
        let account = NewAccount::new(Identity::civil_id(civil_id))
            .phone(phone)
            .pin(PIN);
        self.register_account(&account).await
    }

    /// Registers and returns the account id.
    pub async fn registered(&self, phone: &str, civil_id: &str) -> String {
        let r = self.register(phone, civil_id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["account_id"].as_str().unwrap().to_owned()
    }

    pub async fn pre_register(&self, account: &NewAccount) -> Response {
        let path = "/v1/accounts/pre-register";
        self.post_as(Scope::Accounts, path, account.0.clone()).await
    }

    pub async fn account(&self, account_id: &str) -> Response {
        let path = format!("/v1/accounts/{account_id}");
        self.call(Method::GET, &path, Scope::Accounts, None).await
    }

    pub async fn cancel(&self, account_id: &str) -> Response {
        let path = format!("/v1/accounts/{account_id}");
        self.call(Method::DELETE, &path, Scope::Accounts, None)
            .await
    }

    /// Changes the PIN with the current one and a step-up code.
    pub async fn change_pin(
        &self,
        account_id: &str,
        current_pin: &str,
        (challenge_id, code): (&str, &str),
        new_pin: &str,
    ) -> Response {
        let body = json!({ "current_pin": current_pin, "challenge_id": challenge_id,
            "code": code, "new_pin": new_pin });
        let path = format!("/v1/accounts/{account_id}/pin");
        self.post_as(Scope::Accounts, &path, body).await
    }

    /// Starts replacing a contact, proven by a step-up code sent to a current one.
    pub async fn begin_contact_change(
        &self,
        account_id: &str,
        (proof_challenge_id, proof_code): (&str, &str),
        new: Contact<'_>,
    ) -> Response {
        let mut body =
            json!({ "proof_challenge_id": proof_challenge_id, "proof_code": proof_code });
        new.add_to(&mut body);
        let path = format!("/v1/accounts/{account_id}/contact");
        self.post_as(Scope::Accounts, &path, body).await
    }

    pub async fn confirm_contact_change(&self, challenge_id: &str, code: &str) -> Response {
        let path = "/v1/contact-changes/confirm";
        self.post_as(Scope::Accounts, path, answer(challenge_id, code))
            .await
    }

    pub async fn push_device(&self, account_id: &str, push_token: &str) -> Response {
        let path = format!("/v1/accounts/{account_id}/push-device");
        let body = json!({ "push_token": push_token });
        self.call(Method::PUT, &path, Scope::Accounts, Some(body))
            .await
    }

    // Login, step-up and challenges (scope `auth`).

    pub async fn login(&self, phone: &str, pin: &str) -> Response {
        self.login_with(Contact::Phone(phone), pin, Sending::default())
            .await
    }

    /// A login by phone or email, with the optional choices.
    pub async fn login_with(&self, by: Contact<'_>, pin: &str, sending: Sending<'_>) -> Response {
        let mut body = json!({ "pin": pin });
        by.add_to(&mut body);
        sending.add_to(&mut body);
        self.post_as(Scope::Auth, "/v1/login", body).await
    }

    pub async fn verify(&self, challenge_id: &str, code: &str) -> Response {
        self.post_as(Scope::Auth, "/v1/verify", answer(challenge_id, code))
            .await
    }

    pub async fn resend(&self, challenge_id: &str) -> Response {
        let path = format!("/v1/challenges/{challenge_id}/resend");
        self.post_as(Scope::Auth, &path, json!({})).await
    }

    pub async fn challenge_status(&self, challenge_id: &str) -> Response {
        let path = format!("/v1/challenges/{challenge_id}");
        self.call(Method::GET, &path, Scope::Auth, None).await
    }

    pub async fn step_up(&self, account_id: &str) -> Response {
        self.step_up_with(account_id, Sending::default()).await
    }

    pub async fn step_up_with(&self, account_id: &str, sending: Sending<'_>) -> Response {
        let mut body = json!({ "account_id": account_id });
        sending.add_to(&mut body);
        self.post_as(Scope::Auth, "/v1/step-up", body).await
    }

    pub async fn step_up_verify(&self, challenge_id: &str, code: &str) -> Response {
        let path = "/v1/step-up/verify";
        self.post_as(Scope::Auth, path, answer(challenge_id, code))
            .await
    }

    // Activation (scope `auth`).

    /// Asks for an activation code; `sending` must name the channel.
    pub async fn request_activation(
        &self,
        identity: &Identity,
        birth_date: &str,
        sending: Sending<'_>,
    ) -> Response {
        let mut body = json!({ "identity": identity.0, "birth_date": birth_date });
        sending.add_to(&mut body);
        self.post_as(Scope::Auth, "/v1/activation/request", body)
            .await
    }

    pub async fn complete_activation(&self, activation: &Activation) -> Response {
        let path = "/v1/activation/complete";
        self.post_as(Scope::Auth, path, activation.0.clone()).await
    }

    // Administration (scope `admin`).

    pub async fn lock(&self, account_id: &str, reason: &str) -> Response {
        let path = format!("/v1/admin/accounts/{account_id}/lock");
        self.post_as(Scope::Admin, &path, json!({ "reason": reason }))
            .await
    }

    pub async fn unlock(&self, account_id: &str) -> Response {
        let path = format!("/v1/admin/accounts/{account_id}/unlock");
        self.post_as(Scope::Admin, &path, json!({})).await
    }

    pub async fn reset_pin(&self, account_id: &str, pin: &str) -> Response {
        let path = format!("/v1/admin/accounts/{account_id}/pin-reset");
        self.post_as(Scope::Admin, &path, json!({ "pin": pin }))
            .await
    }

    pub async fn import(&self, accounts: &[NewAccount]) -> Response {
        let accounts: Vec<&Value> = accounts.iter().map(|a| &a.0).collect();
        let body = json!({ "accounts": accounts });
        self.post_as(Scope::Admin, "/v1/admin/import", body).await
    }

    pub async fn backup(&self) -> Response {
        self.post_as(Scope::Admin, "/v1/admin/backup", json!({}))
            .await
    }
}

/// The body of every call that answers a challenge with its code.
fn answer(challenge_id: &str, code: &str) -> Value {
    json!({ "challenge_id": challenge_id, "code": code })
}

/// An identity as the API takes it.
#[derive(Debug, Clone)]
pub struct Identity(Value);

impl Identity {
    pub fn civil_id(number: &str) -> Identity {
        Identity(json!({ "kind": "civil_id", "number": number }))
    }

    pub fn social_security(number: &str) -> Identity {
        Identity(json!({ "kind": "social_security", "number": number }))
    }

    pub fn passport(number: &str, country: &str) -> Identity {
        Identity(json!({ "kind": "passport", "number": number, "country": country }))
    }
}

/// An account as registration, pre-registration or import takes it: an
/// identity and the fields the call sets.
#[derive(Debug, Clone)]
pub struct NewAccount(Value);

impl NewAccount {
    pub fn new(identity: Identity) -> NewAccount {
        NewAccount(json!({ "identity": identity.0 }))
    }

    fn with(mut self, field: &str, value: &str) -> NewAccount {
        self.0[field] = value.into();
        self
    }

    pub fn phone(self, phone: &str) -> NewAccount {
        self.with("phone", phone)
    }

    pub fn email(self, email: &str) -> NewAccount {
        self.with("email", email)
    }

    pub fn pin(self, pin: &str) -> NewAccount {
        self.with("pin", pin)
    }

    pub fn birth_date(self, date: &str) -> NewAccount {
        self.with("birth_date", date)
    }

    pub fn postal_address(self, address: &str) -> NewAccount {
        self.with("postal_address", address)
    }

    /// Import only: an Argon2 PHC string.
    pub fn pin_hash(self, hash: &str) -> NewAccount {
        self.with("pin_hash", hash)
    }

    /// Import only: `active`, `pending_activation` or `locked`.
    pub fn state(self, state: &str) -> NewAccount {
        self.with("state", state)
    }

    /// Import only: why a `locked` account is locked.
    pub fn lock_reason(self, reason: &str) -> NewAccount {
        self.with("lock_reason", reason)
    }
}

/// A phone or an email: how a login names its account, or a new contact.
#[derive(Debug, Clone, Copy)]
pub enum Contact<'a> {
    Phone(&'a str),
    Email(&'a str),
}

impl Contact<'_> {
    fn add_to(self, body: &mut Value) {
        match self {
            Contact::Phone(phone) => body["phone"] = phone.into(),
            Contact::Email(email) => body["email"] = email.into(),
        }
    }
}

/// The optional choices of a call that sends a code (none: the server's defaults).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sending<'a> {
    channel: Option<&'a str>,
    lifetime_seconds: Option<u64>,
    locale: Option<&'a str>,
}

impl<'a> Sending<'a> {
    /// By `channel`: `sms`, `email`, `push` or `letter`.
    pub fn by(channel: &'a str) -> Sending<'a> {
        Sending {
            channel: Some(channel),
            ..Sending::default()
        }
    }

    pub fn lifetime_seconds(self, seconds: u64) -> Sending<'a> {
        Sending {
            lifetime_seconds: Some(seconds),
            ..self
        }
    }

    pub fn locale(self, locale: &'a str) -> Sending<'a> {
        Sending {
            locale: Some(locale),
            ..self
        }
    }

    fn add_to(self, body: &mut Value) {
        if let Some(channel) = self.channel {
            body["channel"] = channel.into();
        }
        if let Some(seconds) = self.lifetime_seconds {
            body["lifetime_seconds"] = seconds.into();
        }
        if let Some(locale) = self.locale {
            body["locale"] = locale.into();
        }
    }
}

/// What completes an activation: the code with a new PIN, for a challenge
/// or (as typed from a letter) for an identity.
#[derive(Debug, Clone)]
pub struct Activation(Value);

impl Activation {
    pub fn by_challenge(challenge_id: &str, code: &str, pin: &str) -> Activation {
        Activation(json!({ "challenge_id": challenge_id, "code": code, "pin": pin }))
    }

    pub fn by_identity(identity: &Identity, code: &str, pin: &str) -> Activation {
        Activation(json!({ "identity": identity.0, "code": code, "pin": pin }))
    }

    /// Must match the birth date on file.
    pub fn birth_date(mut self, date: &str) -> Activation {
        self.0["birth_date"] = date.into();
        self
    }
}

/// A well-formed code that is not `right`.
pub fn wrong(right: &str) -> String {
    let mut digits: Vec<u8> = right.bytes().collect();
    digits[0] = if digits[0] == b'9' {
        b'0'
    } else {
        digits[0] + 1
    };
    String::from_utf8(digits).unwrap()
}
