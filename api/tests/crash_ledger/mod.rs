//! What the crash test knows of its citizens from acknowledged answers
//! (the ledger), and the checks after each restart: every acknowledged
//! change is there, used codes stay used, and the audit trail agrees.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::StatusCode;
use serde_json::{Value, json};

use super::support::Api;

/// What the test knows of one citizen from acknowledged answers.
#[derive(Clone, Debug)]
pub struct Citizen {
    pub id: String,
    pub phone: String,
    pub pin: String,
    /// `state`, `pin_failures`, `code_failures` as last acknowledged.
    pub state: String,
    pub pin_failures: u64,
    pub code_failures: u64,
    /// An operation on it got no answer: it may or may not have happened.
    pub unsure: Option<Op>,
    /// Its PIN changed since the last check.
    pub pin_changed: bool,
    /// Its PIN is unknown (a PIN change got no answer); it is left alone.
    pub retired: bool,
}

impl Citizen {
    pub fn take(&mut self, account: &Value) {
        self.state = account["state"].as_str().unwrap().to_owned();
        self.pin_failures = account["pin_failures"].as_u64().unwrap();
        self.code_failures = account["code_failures"].as_u64().unwrap();
    }

    pub fn usable(&self) -> bool {
        !self.retired && self.unsure.is_none() && self.state != "cancelled"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Login,
    WrongPin,
    WrongCode,
    ChangePin,
    Cancel,
    Unlock,
}

/// A fresh `X-Request-Id`: the audit trail names each call by it.
pub fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("crash-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An acknowledged call: its events must include one of `kinds`, for `account`.
#[derive(Clone, Debug)]
pub struct Expect {
    pub request: String,
    pub account: String,
    pub kinds: &'static [&'static str],
}

/// A call that got no answer: its event must exist exactly when its change does.
#[derive(Clone, Debug)]
pub enum Unanswered {
    Register {
        request: String,
        phone: String,
    },
    Cancel {
        request: String,
        account: String,
    },
    Unlock {
        request: String,
        account: String,
    },
    ChangePin {
        request: String,
        account: String,
        new_pin: String,
    },
}

/// Everything acknowledged so far.
#[derive(Default)]
pub struct Ledger {
    pub citizens: Vec<Citizen>,
    /// (challenge, code) pairs acknowledged as approved: never again.
    pub used: Vec<(String, String)>,
    /// `used[..checked]` were checked after a restart.
    pub checked: usize,
    pub acknowledged: u64,
    /// Acknowledged locks (by failures), PIN changes and cancellations.
    pub locks: u64,
    pub pin_changes: u64,
    pub cancels: u64,
    /// Acknowledged calls whose events are yet to be checked.
    pub expected: Vec<Expect>,
    /// Calls with no answer, to be checked against the store.
    pub unanswered: Vec<Unanswered>,
    /// Events checked against acknowledged calls, over the whole run.
    pub events_checked: u64,
    /// Unanswered calls whose event was checked against the store.
    pub unanswered_checked: u64,
}

impl Ledger {
    pub fn expect(&mut self, request: &str, account: &str, kinds: &'static [&'static str]) {
        self.expected.push(Expect {
            request: request.to_owned(),
            account: account.to_owned(),
            kinds,
        });
    }
}

/// xorshift64*: reproducible choices without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every event the server holds, by request id: (kind, account id).
pub async fn events_by_request(api: &Api) -> HashMap<String, Vec<(String, String)>> {
    let mut by: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for e in api.all_events().await {
        if let Some(request) = e["request_id"].as_str() {
            by.entry(request.to_owned()).or_default().push((
                e["kind"].as_str().unwrap().to_owned(),
                e["account_id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    by
}

/// After a restart: every acknowledged call has its event; a call that got
/// no answer has its event exactly when its change is there (and then the
/// citizen's PIN is known again).
pub async fn check_audit(api: &Api, ledger: &mut Ledger) {
    let events = events_by_request(api).await;
    let has = |request: &str, account: &str, kind: &str| {
        events
            .get(request)
            .is_some_and(|es| es.iter().any(|(k, a)| k == kind && a == account))
    };
    for e in ledger.expected.drain(..) {
        assert!(
            e.kinds.iter().any(|k| has(&e.request, &e.account, k)),
            "acknowledged call {e:?} has no event after a crash; its events: {:?}",
            events.get(&e.request)
        );
        ledger.events_checked += 1;
    }
    for u in std::mem::take(&mut ledger.unanswered) {
        ledger.unanswered_checked += 1;
        match &u {
            Unanswered::Register { request, phone } => {
                let registered = events
                    .get(request)
                    .and_then(|es| es.iter().find(|(k, _)| k == "registered"));
                let (status, answer) = api
                    .post("/v1/login", json!({ "phone": phone, "pin": "4821" }))
                    .await
                    .unwrap();
                assert_eq!(
                    registered.is_some(),
                    status == StatusCode::CREATED,
                    "unanswered registration {u:?}: event {registered:?}, login {status} {answer}"
                );
            }
            Unanswered::Cancel { request, account } => {
                let (_, view) = api.account(account).await.unwrap();
                assert_eq!(
                    has(request, account, "cancelled"),
                    view["state"] == "cancelled",
                    "unanswered cancel {u:?}: {view}"
                );
            }
            Unanswered::Unlock { request, account } => {
                let (_, view) = api.account(account).await.unwrap();
                // Only a locked account is unlocked, and nothing else
                // touched it since.
                assert_eq!(
                    has(request, account, "unlocked"),
                    view["state"] != "locked",
                    "unanswered unlock {u:?}: {view}"
                );
            }
            Unanswered::ChangePin {
                request,
                account,
                new_pin,
            } => {
                let changed = has(request, account, "pin_changed");
                let Some(c) = ledger.citizens.iter_mut().find(|c| &c.id == account) else {
                    continue;
                };
                if changed {
                    c.pin = new_pin.clone();
                }
                if c.state != "active" {
                    continue;
                }
                // The PIN the trail says is in force logs in.
                let (status, answer) = api
                    .post("/v1/login", json!({ "phone": c.phone, "pin": c.pin }))
                    .await
                    .unwrap();
                assert_eq!(
                    status,
                    StatusCode::CREATED,
                    "unanswered PIN change {u:?}: its event says changed={changed}, \
                     but that PIN does not log in: {answer}"
                );
                let (_, view) = api.account(account).await.unwrap();
                c.take(&view);
                c.retired = false;
            }
        }
    }
}

/// After a restart: every acknowledged change is there, exactly for
/// citizens with no unanswered operation, and at least as far for the rest;
/// no used code is accepted again; the audit trail agrees.
pub async fn check(api: &Api, ledger: &mut Ledger) {
    for c in ledger.citizens.iter_mut() {
        let (status, account) = api
            .account(&c.id)
            .await
            .expect("the restarted server answers");
        assert_eq!(
            status,
            StatusCode::OK,
            "acknowledged registration {} lost: {account}",
            c.id
        );
        let (state, pin_failures, code_failures) = (
            account["state"].as_str().unwrap(),
            account["pin_failures"].as_u64().unwrap(),
            account["code_failures"].as_u64().unwrap(),
        );
        match c.unsure {
            None => {
                assert_eq!(
                    (state, pin_failures, code_failures),
                    (c.state.as_str(), c.pin_failures, c.code_failures),
                    "acknowledged state of {} changed across a crash: {account}",
                    c.id
                );
            }
            // An unanswered operation may or may not have happened, but
            // nothing it could do takes back an acknowledged failure count,
            // lock or cancellation. (A wrong-code round starts with a good
            // login, which may reset the PIN counter.)
            Some(op) => {
                let back = match op {
                    Op::WrongPin => {
                        pin_failures < c.pin_failures || code_failures < c.code_failures
                    }
                    Op::WrongCode => code_failures < c.code_failures,
                    _ => false,
                };
                assert!(
                    !back,
                    "failure counters of {} went back: {c:?} → {account}",
                    c.id
                );
                let undone = match c.state.as_str() {
                    "cancelled" => state != "cancelled",
                    "locked" => op != Op::Unlock && state != "locked",
                    _ => false,
                };
                assert!(
                    !undone,
                    "acknowledged {} of {} undone: {account}",
                    c.state, c.id
                );
            }
        }
        c.take(&account);
        c.unsure = None;
        if c.pin_changed && c.state == "active" && !c.retired {
            let (status, answer) = api
                .post("/v1/login", json!({ "phone": c.phone, "pin": c.pin }))
                .await
                .unwrap();
            assert_eq!(
                status,
                StatusCode::CREATED,
                "acknowledged new PIN of {} lost: {answer}",
                c.id
            );
            let (_, account) = api.account(&c.id).await.unwrap();
            c.take(&account);
        }
        c.pin_changed = false;
    }
    // Codes used since the last check, and a sample of older ones (each
    // was checked after the restart that followed its use).
    let older = ledger.checked;
    let sample = (0..older.min(50)).map(|i| (i * 7_919) % older);
    let picks: Vec<usize> = sample.chain(older..ledger.used.len()).collect();
    ledger.checked = ledger.used.len();
    for (challenge, code) in picks.into_iter().map(|i| &ledger.used[i]) {
        let (status, answer) = api
            .post(
                "/v1/verify",
                json!({ "challenge_id": challenge, "code": code }),
            )
            .await
            .unwrap();
        assert_ne!(
            status,
            StatusCode::OK,
            "used code accepted again after a crash: {answer}"
        );
    }
    check_audit(api, ledger).await;
}
