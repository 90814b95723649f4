//! Idempotency keys across SIGKILL of the real `otpd` binary: keyed logins
//! run back to back until the kill, then every login cut off without an
//! answer is retried with its key on the restarted server. The audit trail
//! (written in the batch of each change) shows how many codes each key
//! caused: never two. A retry gets the first answer, or runs once if the
//! first left nothing, or is 409 `idempotent_answer_lost` if the first's
//! change survived without its answer; and a code answered is verified.
//!
//! `IDEMPOTENCY_CRASH_CYCLES=N` runs N kill cycles instead of 8;
//! `CRASH_SEED=N` replays one run. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::{Api, Codes, PATIENCE, Server, add_client};

const CITIZENS: u64 = 12;
const PIN: &str = "4821";

/// An answer with whether it was a replay; `None` when none came.
type Keyed = Option<(StatusCode, Value, bool)>;

/// A keyed call on a fresh connection.
#[derive(Clone)]
struct Caller {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    key: String,
}

impl Caller {
    fn new(server: &Server, key: &str) -> Caller {
        Caller {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
            base: format!("http://{}", server.address),
            key: key.to_owned(),
        }
    }

    async fn post(&self, path: &str, body: &Value, key: &str, request: &str) -> Keyed {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .header("x-request-id", request)
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
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
}

fn login_body(phone: &str) -> Value {
    json!({ "phone": phone, "pin": PIN })
}

fn phone(i: u64) -> String {
    format!("+35191{i:07}")
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// One citizen's keyed logins until the server is gone: the key of the
/// last one, which got no answer.
async fn logins(caller: Caller, cycle: u64, i: u64) -> String {
    let body = login_body(&phone(i));
    for n in 0.. {
        let key = format!("c{cycle}-p{i}-n{n}");
        match caller
            .post("/v1/login", &body, &key, &format!("{key}-a"))
            .await
        {
            Some((StatusCode::CREATED, _, false)) => {}
            // Refused while the server dies (draining, say): no answer kept.
            Some((status, _, _)) if status.is_server_error() => return key,
            Some(other) => panic!("a keyed login answered {other:?}"),
            None => return key,
        }
    }
    unreachable!()
}

/// Code-issued events by request id, for one account each.
async fn issued_by_request(api: &Api) -> HashMap<String, usize> {
    let mut by = HashMap::new();
    for e in api.all_events().await {
        if e["kind"] == "code_issued"
            && let Some(request) = e["request_id"].as_str()
        {
            *by.entry(request.to_owned()).or_default() += 1;
        }
    }
    by
}

/// The code of `challenge`, from whichever server's log sent it.
async fn code_for(old: &[Arc<Codes>], current: &Codes, challenge: &str) -> String {
    for codes in old {
        // A dead server's log has ended: this answers at once.
        if let Some(code) = codes.for_challenge(challenge).await {
            return code;
        }
    }
    current
        .for_challenge(challenge)
        .await
        .unwrap_or_else(|| panic!("no code was sent for {challenge}"))
}

#[derive(Debug, Default)]
struct Tally {
    cut_off: u64,
    replayed: u64,
    ran_once: u64,
    answer_lost: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_change_and_answer_never_sends_a_second_code() {
    let cycles: u64 = std::env::var("IDEMPOTENCY_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x1de0_7e17);
    println!("seed {seed} (CRASH_SEED={seed} replays), {cycles} cycles");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = add_client(&data);
    let mut server = Server::start(&data);
    let api = Api::new(&server, &key);
    for i in 0..CITIZENS {
        let body = json!({
            "identity": { "kind": "civil_id", "number": format!("{:08}", 10_000 + i) },
            "phone": phone(i),
            "pin": PIN,
        });
        let (status, answer) = api.post("/v1/accounts", body).await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let mut old_logs: Vec<Arc<Codes>> = Vec::new();
    let mut tally = Tally::default();
    for cycle in 0..cycles {
        let caller = Caller::new(&server, &key);
        let workers: Vec<_> = (0..CITIZENS)
            .map(|i| tokio::spawn(logins(caller.clone(), cycle, i)))
            .collect();
        let after = Duration::from_millis(30 + rng.below(120));
        // Wall time is the point: the kill lands wherever the load is.
        tokio::time::sleep(after).await;
        old_logs.push(Arc::clone(&server.codes));
        server.kill();
        let mut cut_off = Vec::new();
        for w in workers {
            cut_off.push(w.await.unwrap());
        }
        server = Server::start(&data);
        let caller = Caller::new(&server, &key);
        let api = Api::new(&server, &key);
        let mut retried = Vec::new();
        for (i, key) in (0..CITIZENS).zip(&cut_off) {
            let answer = caller
                .post(
                    "/v1/login",
                    &login_body(&phone(i)),
                    key,
                    &format!("{key}-b"),
                )
                .await
                .expect("the restarted server answers");
            retried.push(answer);
        }
        let issued = issued_by_request(&api).await;
        for (key, (status, body, replayed)) in cut_off.iter().zip(retried) {
            tally.cut_off += 1;
            let first = issued.get(&format!("{key}-a")).copied().unwrap_or(0);
            let retry = issued.get(&format!("{key}-b")).copied().unwrap_or(0);
            assert!(
                first + retry <= 1,
                "{key}: {first} + {retry} codes for one key"
            );
            match status {
                StatusCode::CREATED if replayed => {
                    assert_eq!((first, retry), (1, 0), "{key}: a replay ran nothing");
                    tally.replayed += 1;
                }
                StatusCode::CREATED => {
                    assert_eq!((first, retry), (0, 1), "{key}: the first left nothing");
                    tally.ran_once += 1;
                }
                StatusCode::CONFLICT => {
                    assert_eq!(body["error"]["code"], "idempotent_answer_lost", "{body}");
                    assert_eq!((first, retry), (1, 0), "{key}: the first's change stays");
                    tally.answer_lost += 1;
                }
                other => panic!("{key}: a retry answered {other}: {body}"),
            }
            if status == StatusCode::CREATED {
                // The code answered (first or retried) is the live one, and works.
                let challenge = body["challenge_id"].as_str().unwrap();
                let code = code_for(&old_logs, &server.codes, challenge).await;
                let verify = json!({ "challenge_id": challenge, "code": code });
                let (status, approved) = api.post("/v1/verify", verify).await.unwrap();
                assert_eq!(status, StatusCode::OK, "{key}: {approved}");
            }
        }
        println!("cycle {cycle}: killed after {after:?}; {tally:?}");
    }
    println!("{tally:?}");
    assert_eq!(tally.cut_off, cycles * CITIZENS);
    assert_eq!(
        tally.replayed + tally.ran_once + tally.answer_lost,
        tally.cut_off
    );
}
