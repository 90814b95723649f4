//! Running the load: the HTTP client for otpd, the arrival scheduler, each flow's steps and the ceiling runs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::argon2::Argon2Ceiling;
use crate::options::{Flow, Model, Options};
use crate::report::Report;
use crate::sink::Sink;
use crate::stats::Recorder;

/// One test account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: String,
    /// Its phone (the sink matches codes by it).
    pub phone: String,
}

/// An HTTP client for otpd.
#[derive(Clone, Debug)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    auth: String,
    timeout: Duration,
}

/// A response, or why there was none.
pub type Answer = Result<(StatusCode, Value), String>;

impl Http {
    /// A client with keep-alive connections.
    pub fn new(base: &str, key: &str, timeout: Duration) -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4096)
            .build(connector);
        Http {
            client,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {key}"),
            timeout,
        }
    }

    /// Sends a request; a JSON body when `body` is given.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        let payload = match body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(payload).map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| format!("connection error: {e}"))?;
        let status = response.status();
        let bytes = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| format!("body error: {e}"))?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// A lease on test accounts, so no two flows use one account at once
/// (a second code would supersede the first flow's).
#[derive(Debug)]
struct Pool {
    free: std::sync::Mutex<VecDeque<usize>>,
}

impl Pool {
    fn take(&self) -> Option<usize> {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }

    fn give(&self, i: usize) {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(i);
    }
}

struct Shared {
    /// One client per target.
    https: Vec<Http>,
    pick: crate::options::Pick,
    turns: crate::options::Turns,
    sink: Sink,
    accounts: Vec<Account>,
    pool: Pool,
    pin: String,
    timeout: Duration,
    recorder: Recorder,
    recent: std::sync::Mutex<VecDeque<String>>,
    measured_from: Instant,
    warmup_end: Instant,
}

impl Shared {
    fn second(&self, at: Instant) -> usize {
        usize::try_from(at.saturating_duration_since(self.warmup_end).as_secs()).unwrap_or(0)
    }
}

/// What a failed step says: its status and reason, or the transport error.
fn describe(answer: &Answer) -> String {
    match answer {
        Ok((status, body)) => {
            let reason = body["error"]["reason"]
                .as_str()
                .or(body["error"]["code"].as_str())
                .unwrap_or("-");
            format!("{} {reason}", status.as_u16())
        }
        Err(e) => e.clone(),
    }
}

/// Runs one step: records its latency if `expected`, its error otherwise.
async fn step(
    shared: &Shared,
    name: &'static str,
    record: bool,
    expected: StatusCode,
    call: impl std::future::Future<Output = Answer>,
) -> Option<Value> {
    let started = Instant::now();
    let answer = call.await;
    match &answer {
        Ok((status, body)) if *status == expected => {
            if record {
                shared
                    .recorder
                    .step(name, shared.second(started), started.elapsed());
            }
            Some(body.clone())
        }
        _ => {
            if record {
                shared.recorder.step_error(name, &describe(&answer));
            }
            None
        }
    }
}

/// Waits for the code sent to `phone`.
async fn delivered(
    shared: &Shared,
    record: bool,
    phone: &str,
    waiting: tokio::sync::oneshot::Receiver<String>,
) -> Option<String> {
    let started = Instant::now();
    match tokio::time::timeout(shared.timeout, waiting).await {
        Ok(Ok(code)) => {
            if record {
                shared
                    .recorder
                    .step("deliver", shared.second(started), started.elapsed());
            }
            Some(code)
        }
        _ => {
            shared.sink.forget(phone);
            if record {
                shared.recorder.step_error("deliver", "no code arrived");
            }
            None
        }
    }
}

fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| match c {
            '9' => '0',
            d => char::from(d as u8 + 1),
        })
        .collect()
}

/// Runs one flow on one leased account through `http`; true when it
/// ended as it should.
async fn run_flow(
    shared: &Shared,
    http: &Http,
    flow: Flow,
    account: &Account,
    record: bool,
) -> bool {
    match flow {
        Flow::Status => {
            let recent = shared
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .back()
                .cloned();
            let Some(id) = recent else {
                // Nothing issued yet: issue one to read.
                return issue(shared, http, account, record).await.is_some();
            };
            let path = format!("/v1/challenges/{id}");
            step(
                shared,
                "status",
                record,
                StatusCode::OK,
                http.call(Method::GET, &path, None),
            )
            .await
            .is_some()
        }
        Flow::StepUp | Flow::WrongCode => {
            let Some((challenge, code)) = issue(shared, http, account, record).await else {
                return false;
            };
            if flow == Flow::WrongCode {
                let body = json!({ "challenge_id": challenge, "code": wrong(&code) });
                let call = http.call(Method::POST, "/v1/step-up/verify", Some(&body));
                if step(shared, "wrong", record, StatusCode::UNAUTHORIZED, call)
                    .await
                    .is_none()
                {
                    return false;
                }
            }
            let body = json!({ "challenge_id": challenge, "code": code });
            let call = http.call(Method::POST, "/v1/step-up/verify", Some(&body));
            step(shared, "verify", record, StatusCode::OK, call)
                .await
                .is_some()
        }
        Flow::Login => {
            let waiting = shared.sink.expect(&account.phone);
            let body = json!({ "phone": account.phone, "pin": shared.pin });
            let call = http.call(Method::POST, "/v1/login", Some(&body));
            let Some(issued) = step(shared, "login", record, StatusCode::CREATED, call).await
            else {
                shared.sink.forget(&account.phone);
                return false;
            };
            let Some(code) = delivered(shared, record, &account.phone, waiting).await else {
                return false;
            };
            let body = json!({ "challenge_id": issued["challenge_id"], "code": code });
            let call = http.call(Method::POST, "/v1/verify", Some(&body));
            step(shared, "verify-login", record, StatusCode::OK, call)
                .await
                .is_some()
        }
        Flow::Destination => {
            let send = ("send", "/v1/destinations/verify");
            let body = json!({ "phone": account.phone });
            let check = ("check", "/v1/destinations/verify/check");
            code_and_check(shared, http, account, record, send, &body, check)
                .await
                .is_some_and(|proven| proven["verified"] == true)
        }
        Flow::Signature => {
            // A name without digits: the sink finds the code as the message's six-digit run.
            let document = json!({ "name": "contrato.pdf", "sha256": document_hash(account) });
            let body = json!({ "phone": account.phone, "pin": shared.pin, "document": document });
            let (send, check) = (
                ("sign", "/v1/signatures"),
                ("verify-sign", "/v1/signatures/verify"),
            );
            code_and_check(shared, http, account, record, send, &body, check)
                .await
                .is_some_and(|approval| approval["attestation"].is_string())
        }
    }
}

/// Asks for a code (`send`: step name and path, with `body`), waits for it
/// at the sink, then presents it (`check`: step name and path); answers
/// the check's answer, if it was the 200 expected.
async fn code_and_check(
    shared: &Shared,
    http: &Http,
    account: &Account,
    record: bool,
    (send_step, send_path): (&'static str, &str),
    body: &Value,
    (check_step, check_path): (&'static str, &str),
) -> Option<Value> {
    let waiting = shared.sink.expect(&account.phone);
    let call = http.call(Method::POST, send_path, Some(body));
    let Some(issued) = step(shared, send_step, record, StatusCode::CREATED, call).await else {
        shared.sink.forget(&account.phone);
        return None;
    };
    let code = delivered(shared, record, &account.phone, waiting).await?;
    let body = json!({ "challenge_id": issued["challenge_id"], "code": code });
    let call = http.call(Method::POST, check_path, Some(&body));
    step(shared, check_step, record, StatusCode::OK, call).await
}

/// A document hash per account (any 64 hex digits do; otpd never sees the document).
fn document_hash(account: &Account) -> String {
    let digits: String = account.phone.chars().filter(char::is_ascii_digit).collect();
    format!("{digits:0>64}")
}

/// Issues a step-up code and waits for it at the sink.
async fn issue(
    shared: &Shared,
    http: &Http,
    account: &Account,
    record: bool,
) -> Option<(String, String)> {
    let waiting = shared.sink.expect(&account.phone);
    let body = json!({ "account_id": account.id });
    let call = http.call(Method::POST, "/v1/step-up", Some(&body));
    let Some(issued) = step(shared, "issue", record, StatusCode::CREATED, call).await else {
        shared.sink.forget(&account.phone);
        return None;
    };
    let challenge = issued["challenge_id"].as_str()?.to_owned();
    {
        let mut recent = shared
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.push_back(challenge.clone());
        if recent.len() > 1024 {
            recent.pop_front();
        }
    }
    let code = delivered(shared, record, &account.phone, waiting).await?;
    Some((challenge, code))
}

/// Arrival `n`: lease an account, run the flow on its target, record it
/// from `intended`.
async fn arrival(shared: Arc<Shared>, n: u64, flow: Flow, intended: Instant) {
    let node = shared
        .pick
        .target(n, shared.turns.next(flow), shared.https.len());
    let record = intended >= shared.warmup_end;
    let Some(index) = shared.pool.take() else {
        if record {
            shared.recorder.flow(flow.name(), 0, Duration::ZERO, false);
            shared
                .recorder
                .step_error(flow.name(), "no free account (raise --accounts)");
        }
        return;
    };
    let http = &shared.https[node];
    let ok = run_flow(&shared, http, flow, &shared.accounts[index], record).await;
    shared.pool.give(index);
    if record {
        let (second, latency) = (shared.second(intended), intended.elapsed());
        shared.recorder.flow(flow.name(), second, latency, ok);
        shared.recorder.node_flow(node, second, latency, ok);
    }
}

/// When arrival `n` is due, at `rate` per second after a linear ramp.
fn intended_offset(n: u64, rate: f64, ramp: Duration) -> Duration {
    let n = n as f64;
    let ramp_s = ramp.as_secs_f64();
    let during_ramp = rate * ramp_s / 2.0;
    let seconds = if ramp_s > 0.0 && n < during_ramp {
        (2.0 * ramp_s * n / rate).sqrt()
    } else {
        ramp_s + (n - during_ramp.min(n)) / rate
    };
    Duration::from_secs_f64(seconds)
}

/// Runs the load and returns what it measured.
pub async fn run(options: Options, sink: Sink, accounts: Vec<Account>) -> Result<Report, String> {
    if accounts.is_empty() {
        return Err("no test accounts: seed some first".into());
    }
    if options.targets.is_empty() {
        return Err("no target: give otpd's URL with --target".into());
    }
    let https: Vec<Http> = options
        .targets
        .iter()
        .map(|t| Http::new(t, &options.key, options.timeout))
        .collect();
    // Before the run and after it, with otpd idle: the mean of the two
    // evens out a machine whose speed drifts during the run.
    let argon2_before = match options.argon2_ceiling {
        Some(raw) => Some(raw_argon2(raw).await?),
        None => None,
    };
    let start = Instant::now();
    let warmup_end = start + options.warmup;
    let shared = Arc::new(Shared {
        https: https.clone(),
        pick: options.pick,
        turns: crate::options::Turns::default(),
        sink: sink.clone(),
        pool: Pool {
            free: std::sync::Mutex::new((0..accounts.len()).collect()),
        },
        accounts,
        pin: options.pin.clone(),
        timeout: options.timeout,
        recorder: Recorder::default(),
        recent: std::sync::Mutex::new(VecDeque::new()),
        measured_from: warmup_end,
        warmup_end,
    });
    let end = options.duration.map(|d| warmup_end + d);
    let started = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let progress = options.progress.then(|| {
        let (shared, in_flight) = (Arc::clone(&shared), Arc::clone(&in_flight));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let (ok, errors) = shared.recorder.totals();
                eprintln!(
                    "[{:>4}s] {:>7} flows/s  ok {:>9}  errors {:>6}  in flight {:>5}{}",
                    start.elapsed().as_secs(),
                    ok + errors - last,
                    ok,
                    errors,
                    in_flight.load(Ordering::Relaxed),
                    if Instant::now() < shared.warmup_end {
                        "  (warm-up)"
                    } else {
                        ""
                    },
                );
                last = ok + errors;
            }
        })
    });
    let budget_left = |n: u64| options.max_flows.is_none_or(|max| n < max);
    let mut tasks = tokio::task::JoinSet::new();
    match options.model {
        Model::Open { rate } => {
            if !rate.is_finite() || rate <= 0.0 {
                return Err("--rate must be above 0".into());
            }
            let mut n = 0u64;
            while budget_left(n) {
                let intended = start + intended_offset(n, rate, options.ramp);
                if end.is_some_and(|end| intended >= end) {
                    break;
                }
                tokio::time::sleep_until(intended.into()).await;
                let flow = options.mix.pick(n);
                n += 1;
                if intended >= warmup_end
                    && Instant::now().saturating_duration_since(intended)
                        > Duration::from_millis(10)
                {
                    shared.recorder.late();
                }
                if in_flight.load(Ordering::Relaxed) >= options.max_in_flight {
                    if intended >= warmup_end {
                        shared.recorder.dropped();
                    }
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (shared, in_flight) = (Arc::clone(&shared), Arc::clone(&in_flight));
                let arrived = n - 1;
                tasks.spawn(async move {
                    arrival(shared, arrived, flow, intended).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
                // Reap finished tasks so the set does not grow with the run.
                while tasks.try_join_next().is_some() {}
            }
            started.store(n, Ordering::Relaxed);
        }
        Model::Closed { concurrency } => {
            for _ in 0..concurrency.max(1) {
                let (shared, mix, started, in_flight) = (
                    Arc::clone(&shared),
                    options.mix.clone(),
                    Arc::clone(&started),
                    Arc::clone(&in_flight),
                );
                let max = options.max_flows;
                tasks.spawn(async move {
                    loop {
                        let n = started.fetch_add(1, Ordering::Relaxed);
                        if max.is_some_and(|m| n >= m) || end.is_some_and(|e| Instant::now() >= e) {
                            break;
                        }
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        arrival(Arc::clone(&shared), n, mix.pick(n), Instant::now()).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    }
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let measured = shared.measured_from.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    let ceiling = match options.ceiling {
        // The first target's: one node's bare-HTTP ceiling.
        Some((connections, how_long)) => Some(ceiling(&https[0], connections, how_long).await),
        None => None,
    };
    let argon2_ceiling = match (options.argon2_ceiling, argon2_before) {
        (Some(raw), Some(before)) => Some((before + raw_argon2(raw).await?) / 2.0),
        _ => None,
    };
    let mut report = Report::new(
        &options,
        shared.recorder.snapshot(),
        measured,
        ceiling,
        sink.counts(),
    );
    report.argon2_ceiling = argon2_ceiling;
    Ok(report)
}

/// The raw Argon2 rate (on the blocking pool: it keeps the cores busy).
async fn raw_argon2(raw: Argon2Ceiling) -> Result<f64, String> {
    tokio::task::spawn_blocking(move || crate::argon2::raw_verify_rate(raw))
        .await
        .map_err(|e| format!("the Argon2 measurement failed: {e}"))?
}

/// Bare-HTTP throughput: `connections` workers calling `/livez` for `how_long`.
async fn ceiling(http: &Http, connections: usize, how_long: Duration) -> f64 {
    let end = Instant::now() + how_long;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..connections.max(1) {
        let (http, done) = (http.clone(), Arc::clone(&done));
        tasks.spawn(async move {
            while Instant::now() < end {
                if let Ok((StatusCode::OK, _)) = http.call(Method::GET, "/livez", None).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_ramp_linearly_then_hold_the_rate() {
        let ramp = Duration::from_secs(10);
        // 100/s after a 10 s ramp: 500 arrivals during it, the 500th at 10 s.
        assert_eq!(intended_offset(0, 100.0, ramp), Duration::ZERO);
        let at = |n| intended_offset(n, 100.0, ramp).as_secs_f64();
        assert!((at(500) - 10.0).abs() < 1e-9);
        assert!(
            (at(125) - 5.0).abs() < 1e-9,
            "a quarter of the ramp's arrivals by half-time"
        );
        assert!((at(600) - 11.0).abs() < 1e-9);
        assert!((intended_offset(50, 100.0, Duration::ZERO).as_secs_f64() - 0.5).abs() < 1e-9);
    }
}
