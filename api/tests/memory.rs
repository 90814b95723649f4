//! Resident memory of the real `otpd` binary stays bounded while it runs
//! Argon2 at the production cost (m=19456 KiB, t=2, p=1) again and again:
//! registrations, logins (right and wrong PINs, unknown logins), PIN
//! changes, activations and PIN resets, several at a time.
//!
//! Each Argon2 run needs a 19 MiB block of memory. Allocated afresh per
//! run on tokio's blocking pool, those blocks were never given back to
//! the system (~20 MB per login in production, issue #14); a correctness
//! test, not a timing one: it reads VmRSS from /proc and asserts a bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use hyper::StatusCode;
use serde_json::json;
use support::{Api, Server, add_client, niss, otpd_with, settings};

/// Growth allowed over the whole run: the Argon2 workers' reusable blocks
/// (two of ~19 MiB by default) plus allocator slack.
const BOUND_MB: u64 = 100;
/// Citizens worked on at once.
const PARALLEL: usize = 8;

fn resident_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024
}

/// Test settings with the production Argon2 cost (no cheap override).
fn production_argon2(data: &Path) -> Server {
    let settings: Vec<(&str, &str)> = settings()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("OTPD_ARGON2_"))
        .chain([("OTPD_LOCKOUT_PIN_THRESHOLD", "50")])
        .collect();
    Server::spawn(otpd_with(data, &settings))
}

/// One citizen's round: register, wrong PIN, login + verify, PIN change,
/// unknown login, pre-registration + activation, PIN reset. Eight Argon2 runs.
async fn citizen(api: Api, n: usize) {
    let phone = format!("+35191{n:07}");
    let (status, account) = api
        .post(
            "/v1/accounts",
            json!({
                "identity": { "kind": "civil_id", "number": format!("{n:08}") },
                "phone": phone, "pin": "4821",
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let id = account["account_id"].as_str().unwrap().to_owned();

    let (status, _) = api
        .post("/v1/login", json!({ "phone": phone, "pin": "9999" }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .post(
            "/v1/login",
            json!({ "phone": format!("+35192{n:07}"), "pin": "4821" }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, sent) = api
        .post("/v1/login", json!({ "phone": phone, "pin": "4821" }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let challenge = sent["challenge_id"].as_str().unwrap();
    let code = api.codes.for_challenge(challenge).await.unwrap();
    let (status, body) = api
        .post(
            "/v1/verify",
            json!({ "challenge_id": challenge, "code": code }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, sent) = api
        .post("/v1/step-up", json!({ "account_id": id }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let challenge = sent["challenge_id"].as_str().unwrap();
    let code = api.codes.for_challenge(challenge).await.unwrap();
    let (status, body) = api
        .post(
            &format!("/v1/accounts/{id}/pin"),
            json!({ "current_pin": "4821", "challenge_id": challenge, "code": code, "new_pin": "5930" }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let identity = json!({ "kind": "social_security", "number": niss(n as u64) });
    let (status, body) = api
        .post(
            "/v1/accounts/pre-register",
            json!({ "identity": identity, "birth_date": "1980-05-17", "phone": format!("+35193{n:07}") }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pending = body["account_id"].as_str().unwrap().to_owned();
    let (status, sent) = api
        .post(
            "/v1/activation/request",
            json!({ "identity": identity, "birth_date": "1980-05-17", "channel": "sms" }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let challenge = sent["challenge_id"].as_str().unwrap();
    let code = api.codes.for_challenge(challenge).await.unwrap();
    let (status, body) = api
        .post(
            "/v1/activation/complete",
            json!({ "challenge_id": challenge, "code": code, "pin": "6041" }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = api
        .post(
            &format!("/v1/admin/accounts/{pending}/pin-reset"),
            json!({ "pin": "7152" }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argon2_at_production_cost_does_not_grow_resident_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = add_client(&data);
    let server = production_argon2(&data);
    let api = Api::new(&server, &key);
    let pid = server.child.id();
    let (status, _) = api.call(hyper::Method::GET, "/readyz", None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let start = resident_mb(pid);

    let mut peak = start;
    let mut after_rounds = Vec::new();
    for round in 0..3 {
        let citizens: Vec<_> = (0..PARALLEL)
            .map(|i| tokio::spawn(citizen(api.clone(), round * PARALLEL + i)))
            .collect();
        for c in citizens {
            c.await.unwrap();
        }
        let now = resident_mb(pid);
        peak = peak.max(now);
        after_rounds.push(now);
    }
    let runs = 3 * PARALLEL * 8;
    println!(
        "resident memory: {start} MB at start, {after_rounds:?} MB after each round of {} \
         Argon2 runs ({runs} in all), peak {peak} MB",
        PARALLEL * 8
    );
    assert!(
        peak <= start + BOUND_MB,
        "resident memory grew from {start} MB to {peak} MB over {runs} Argon2 runs \
         (bound {BOUND_MB} MB): {after_rounds:?}"
    );
    server.kill();
}
