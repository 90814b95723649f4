//! Resident memory of the real `otpd` binary stays bounded while it runs
//! Argon2 at the production cost (m=19456 KiB, t=2, p=1) again and again:
//! registrations, logins (right and wrong PINs, unknown logins), PIN
//! changes, activations and PIN resets, several at a time.
//!
//! Each Argon2 run needs a 19 MiB block of memory. Allocated afresh per
//! run on tokio's blocking pool, those blocks were never given back to
//! the system (~20 MB per login in production, issue #14); a correctness
//! test, not a timing one: it reads VmRSS from /proc and asserts a bound.
//!
//! Also a node on a Redis Cluster, whose every engine call waits for the
//! network on a thread: its threads and memory stay bounded while many
//! requests wait at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "../../engine/tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;

use std::path::Path;

use hyper::StatusCode;
use serde_json::json;
use support::{Api, Server, add_client, cluster_settings, niss, otpd_with, settings};

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

/// Threads a cluster node may hold: the runtime's 2 workers and its 32
/// blocking threads (`MAX_BLOCKING_THREADS` in main.rs), the cluster
/// client's runtime (2), the store's, the PIN workers', the journal's and
/// the delivery's own threads (~50 here). With tokio's default pool (512)
/// this run reaches 84 threads and 210 MB.
const CLUSTER_THREADS: u64 = 60;
/// Growth allowed over the run on the cluster path (~70 MB measured here,
/// most of it the blocking threads' stacks and allocator pages).
const CLUSTER_BOUND_MB: u64 = 110;
/// Citizens logging in at once on the cluster node.
const CLUSTER_PARALLEL: usize = 64;

fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads in /proc/PID/status")
}

/// On a cluster every engine call waits for the network on a thread of its
/// own: 64 citizens logging in at once while the cluster holds writes back,
/// round after round, must not grow the node's threads or its resident
/// memory past a bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_under_load_keeps_its_threads_and_memory_bounded() {
    let cluster = cluster::TestCluster::start();
    let nodes = cluster.nodes.join(",");
    let mut with = cluster_settings(&nodes);
    with.push(("OTPD_STORE_REDIS_NAMESPACE", "memory"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = support::client_key(otpd_with(&data, &with), "memory", "auth,accounts");
    let server = Server::spawn(otpd_with(&data, &with));
    let api = Api::new(&server, &key);
    let pid = server.child.id();
    let (status, body) = api.call(hyper::Method::GET, "/readyz", None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let registrations: Vec<_> = (0..CLUSTER_PARALLEL)
        .map(|n| {
            let api = api.clone();
            tokio::spawn(async move {
                let (status, body) = api
                    .post(
                        "/v1/accounts",
                        json!({
                            "identity": { "kind": "civil_id", "number": format!("{n:08}") },
                            "phone": format!("+35192{n:07}"), "pin": "4821",
                        }),
                    )
                    .await
                    .unwrap();
                assert_eq!(status, StatusCode::CREATED, "{body}");
            })
        })
        .collect();
    for r in registrations {
        r.await.unwrap();
    }
    let codes = std::sync::Arc::clone(&server.codes);
    let start = resident_mb(pid);
    let (mut peak, mut most_threads) = (start, threads(pid));
    let mut after_rounds = Vec::new();
    for _ in 0..6 {
        // Logins go through the PIN workers (a pool of their own); the
        // verifications wait for the cluster on the runtime's threads.
        let logins: Vec<_> = (0..CLUSTER_PARALLEL)
            .map(|n| {
                let (api, codes) = (api.clone(), std::sync::Arc::clone(&codes));
                tokio::spawn(async move {
                    let login = json!({ "phone": format!("+35192{n:07}"), "pin": "4821" });
                    let (status, challenge) = api.post("/v1/login", login).await.unwrap();
                    assert_eq!(status, StatusCode::CREATED, "{challenge}");
                    let id = challenge["challenge_id"].as_str().unwrap().to_owned();
                    let code = codes.for_challenge(&id).await.unwrap();
                    json!({ "challenge_id": id, "code": code })
                })
            })
            .collect();
        let mut verifications = Vec::new();
        for l in logins {
            verifications.push(l.await.unwrap());
        }
        // Writes held back by every Redis node for a while: every
        // verification waits at once, as under a slow network.
        cluster.on_every_node(&["CLIENT", "PAUSE", "300", "WRITE"]);
        let flows: Vec<_> = verifications
            .into_iter()
            .map(|verify| {
                let api = api.clone();
                tokio::spawn(async move {
                    let (status, answer) = api.post("/v1/verify", verify).await.unwrap();
                    assert_eq!(status, StatusCode::OK, "{answer}");
                })
            })
            .collect();
        for f in flows {
            f.await.unwrap();
            most_threads = most_threads.max(threads(pid));
        }
        let now = resident_mb(pid);
        peak = peak.max(now);
        after_rounds.push(now);
    }
    println!(
        "cluster node: {start} MB at start, {after_rounds:?} MB after each round of \
         {CLUSTER_PARALLEL} logins and verifications, peak {peak} MB, at most {most_threads} threads"
    );
    assert!(
        most_threads <= CLUSTER_THREADS,
        "the node ran {most_threads} threads (bound {CLUSTER_THREADS})"
    );
    assert!(
        peak <= start + CLUSTER_BOUND_MB,
        "resident memory grew from {start} MB to {peak} MB (bound {CLUSTER_BOUND_MB} MB): \
         {after_rounds:?}"
    );
    server.kill();
}
