//! The real `otpd` binary as a child process on loopback, for the tests
//! that need a whole process: crash safety, resident memory, exit codes.
//! Codes are read from the development log sink's JSON lines.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const OTPD: &str = env!("CARGO_BIN_EXE_otpd");
/// Longest wait for anything the server should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Settings for every start: cheap Argon2 (a debug build), no rate limits
/// (the load would trip them), small lockout thresholds (so locks happen),
/// codes through the development log sink, JSON logs to read them from.
pub fn settings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OTPD_ARGON2_MEMORY_KIB", "64"),
        ("OTPD_ARGON2_ITERATIONS", "1"),
        ("OTPD_LOCKOUT_PIN_THRESHOLD", "3"),
        ("OTPD_LOCKOUT_CODE_THRESHOLD", "3"),
        ("OTPD_RESEND_COOLDOWN_SECONDS", "0"),
        ("OTPD_LIMITS_ATTEMPTS_PER_CLIENT_MINUTE", "0"),
        ("OTPD_LIMITS_ATTEMPTS_PER_IP_MINUTE", "0"),
        ("OTPD_LIMITS_ISSUE_PER_ACCOUNT_10MIN", "0"),
        ("OTPD_LIMITS_ISSUE_PER_ACCOUNT_DAY", "0"),
        ("OTPD_LIMITS_ISSUE_PER_CLIENT_MINUTE", "0"),
        ("OTPD_LIMITS_ISSUE_PER_DESTINATION_10MIN", "0"),
        ("OTPD_LIMITS_ISSUE_PER_DESTINATION_DAY", "0"),
        ("OTPD_LIMITS_ISSUE_PER_IP_MINUTE", "0"),
        ("OTPD_LIMITS_SMS_GLOBAL_HOUR", "0"),
        ("OTPD_LIMITS_SMS_PER_COUNTRY_DAY", "0"),
        ("OTPD_LIMITS_SMS_PER_COUNTRY_HOUR", "0"),
        ("OTPD_LIMITS_SMS_COUNTRY_BUDGETS_351_PER_DAY", "0"),
        ("OTPD_LIMITS_SMS_COUNTRY_BUDGETS_351_PER_HOUR", "0"),
        ("OTPD_DELIVERY_LOG_SINK", "true"),
        ("OTPD_SERVER_SHUTDOWN_GRACE_MS", "5000"),
    ]
}

/// The test settings, with accounts and codes on the Redis Cluster of
/// `nodes` (`host:port,...`); WAIT and operations get 2 s and 5 s, as the
/// cluster tests give them on a busy machine.
pub fn cluster_settings(nodes: &str) -> Vec<(&str, &str)> {
    let mut with = settings();
    with.extend([
        ("OTPD_STORE_BACKEND", "redis-cluster"),
        ("OTPD_STORE_REDIS_NODES", nodes),
        ("OTPD_STORE_REDIS_WAIT_TIMEOUT_MS", "2000"),
        ("OTPD_STORE_REDIS_TIMEOUT_MS", "5000"),
    ]);
    with
}

/// `otpd` on `data` with the test settings.
pub fn otpd(data: &Path) -> Command {
    otpd_with(data, &settings())
}

/// `otpd` on `data`, listening on loopback port 0, JSON logs, with `settings` as `OTPD_*` variables.
pub fn otpd_with(data: &Path, settings: &[(&str, &str)]) -> Command {
    let mut command = Command::new(OTPD);
    command
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("OTPD_CODE_KEY", "2a".repeat(32))
        .envs(settings.iter().copied());
    command
}

/// Registers the test's client offline and returns its key.
pub fn add_client(data: &Path) -> String {
    client_key(otpd(data), "crash-test", "auth,accounts,admin")
}

/// Runs `otpd client add NAME --scopes SCOPES` as `command` (an `otpd` with
/// its data directory and settings) and returns the new client's key.
pub fn client_key(mut command: Command, name: &str, scopes: &str) -> String {
    let out = command
        .args(["client", "add", name, "--scopes", scopes])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Codes the log sink wrote, by challenge id.
#[derive(Default)]
pub struct Codes {
    by_challenge: Mutex<HashMap<String, String>>,
    arrived: tokio::sync::Notify,
    /// The server's log ended (it exited): no more codes will come.
    ended: std::sync::atomic::AtomicBool,
}

impl Codes {
    /// Whether this server's log sink has sent the code of `challenge`.
    #[allow(dead_code)] // Not every test binary asks.
    pub fn has(&self, challenge: &str) -> bool {
        self.by_challenge.lock().unwrap().contains_key(challenge)
    }

    pub async fn for_challenge(&self, challenge: &str) -> Option<String> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let arrived = self.arrived.notified();
            if let Some(code) = self.by_challenge.lock().unwrap().get(challenge) {
                return Some(code.clone());
            }
            if self.ended.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

/// A running `otpd`, killed if still running when dropped.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    /// The operators' listener, when `ops_listen` is set.
    pub ops_address: Option<SocketAddr>,
    pub codes: Arc<Codes>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `otpd` on `data` with the test settings.
    pub fn start(data: &Path) -> Server {
        Server::spawn(otpd(data))
    }

    /// Starts `command` (an [`otpd_with`]) and waits until it listens.
    pub fn spawn(command: Command) -> Server {
        Server::spawn_teeing(command, None)
    }

    /// [`Server::spawn`], copying every log line to `tee` as it comes (for
    /// a program outside the test that reads codes from the log).
    pub fn spawn_teeing(mut command: Command, tee: Option<&Path>) -> Server {
        let mut tee = tee.map(|path| std::fs::File::create(path).unwrap());
        let codes = Arc::new(Codes::default());
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = std::sync::mpsc::channel();
        {
            let (codes, log) = (Arc::clone(&codes), Arc::clone(&log));
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(file) = tee.as_mut() {
                        use std::io::Write;
                        let _ = writeln!(file, "{line}").and_then(|()| file.flush());
                    }
                    if let Ok(entry) = serde_json::from_str::<Value>(&line) {
                        // The JSON log puts an event's fields beside its message.
                        let fields = if entry["fields"].is_object() {
                            &entry["fields"]
                        } else {
                            &entry
                        };
                        if fields["message"] == "otpd listening" {
                            let _ = found.send((
                                fields["address"].as_str().unwrap().to_owned(),
                                fields["ops_address"].as_str().map(str::to_owned),
                            ));
                        }
                        if let (Some(challenge), Some(code)) =
                            (fields["challenge_id"].as_str(), fields["code"].as_str())
                        {
                            codes
                                .by_challenge
                                .lock()
                                .unwrap()
                                .insert(challenge.to_owned(), code.to_owned());
                            codes.arrived.notify_waiters();
                            continue;
                        }
                    }
                    log.lock().unwrap().push(line);
                }
                codes.ended.store(true, std::sync::atomic::Ordering::SeqCst);
                codes.arrived.notify_waiters();
            });
        }
        let Ok((address, ops_address)) = address.recv_timeout(PATIENCE) else {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!(
                "otpd did not start ({status}):\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Server {
            child,
            address: address.parse().unwrap(),
            ops_address: ops_address.map(|a| a.parse().unwrap()),
            codes,
            log,
        }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "otpd did not stop after SIGTERM:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer, or `None` when no answer came (the server died or closed the
/// connection): the request's outcome is then unknown.
pub type Answer = Option<(StatusCode, Value)>;

#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    pub base: String,
    pub key: String,
    pub codes: Arc<Codes>,
}

impl Api {
    pub fn new(server: &Server, key: &str) -> Api {
        Api {
            // A fresh connection per request: a reused one the server has
            // already closed would blur "refused" and "cut off".
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
            base: format!("http://{}", server.address),
            key: key.to_owned(),
            codes: Arc::clone(&server.codes),
        }
    }

    /// A request with this client's key, a JSON `body` and `headers`.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap()
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(None, method, path, body).await
    }

    /// [`Api::call`] with `X-Request-Id: request` when given: the id the
    /// audit trail records for it.
    pub async fn call_as(
        &self,
        request: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let headers: Vec<(&str, &str)> =
            request.map(|id| ("x-request-id", id)).into_iter().collect();
        let request = self.request(method, path, body, &headers);
        let response = tokio::time::timeout(PATIENCE, self.client.request(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status();
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Refused (the server is draining): not acknowledged, like no answer.
            return None;
        }
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A POST with `Idempotency-Key: key`: the answer, and whether it was a
    /// stored one given again (`Idempotent-Replayed: true`).
    pub async fn post_keyed(
        &self,
        path: &str,
        key: &str,
        body: Value,
    ) -> Option<(StatusCode, Value, bool)> {
        let request = self.request(Method::POST, path, Some(body), &[("idempotency-key", key)]);
        let response = tokio::time::timeout(PATIENCE, self.client.request(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status();
        let replayed = response
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let bytes = response.into_body().collect().await.ok()?.to_bytes();
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            replayed,
        ))
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// [`Api::post`] with a request id.
    pub async fn post_as(&self, request: &str, path: &str, body: Value) -> Answer {
        self.call_as(Some(request), Method::POST, path, Some(body))
            .await
    }

    pub async fn account(&self, id: &str) -> Answer {
        self.call(Method::GET, &format!("/v1/accounts/{id}"), None)
            .await
    }

    /// Every audit event the server holds, in order, read through the feed
    /// a page at a time.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = self
                .call(
                    Method::GET,
                    &format!("/v1/admin/events?after={after}&limit=1000"),
                    None,
                )
                .await
                .expect("the server answers");
            assert_eq!(status, StatusCode::OK, "{page}");
            let events = page["events"].as_array().unwrap();
            if events.is_empty() {
                return all;
            }
            all.extend(events.iter().cloned());
            after = page["next_after"].as_u64().unwrap();
        }
    }
}

/// Runs an offline `otpd` command: (succeeded, stdout, stderr).
pub fn cli(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = otpd(data).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `otpd` on `data` that must refuse to start: (exit code, stderr). A
/// server that starts anyway fails the test (bounded wait).
pub fn refused_start(data: &Path) -> (i32, String) {
    refused(otpd(data))
}

/// Runs `command`, which must exit by itself with a failure: (exit code, stderr).
pub fn refused(mut command: Command) -> (i32, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("otpd did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A valid social-security number (NISS) for a person: `1`, nine digits of
/// `n`, and the check digit `9 - (Σ dᵢ·wᵢ mod 10)`.
pub fn niss(n: u64) -> String {
    const WEIGHTS: [u32; 10] = [29, 23, 19, 17, 13, 11, 7, 5, 3, 2];
    let body = format!("1{:09}", n % 1_000_000_000);
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    format!("{body}{}", 9 - sum % 10)
}
