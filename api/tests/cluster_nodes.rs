//! Two real `otpd` processes on one Redis Cluster (3 masters, 3 replicas on
//! loopback, started by the test and stopped when it ends), as two nodes
//! behind a load balancer: a citizen logs in on one and verifies on the
//! other, a lock on one refuses on the other, the right code sent 50
//! times through both is approved once, and a code one node cannot send
//! is sent by the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "../../engine/tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;

use std::path::Path;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::json;
use support::{Api, Server, otpd_with};

/// `OTPD_*` settings of a node on `cluster`.
fn on_cluster(nodes: &str) -> Vec<(&str, &str)> {
    let mut with = support::cluster_settings(nodes);
    with.push(("OTPD_STORE_REDIS_NAMESPACE", "two-nodes"));
    with
}

/// `otpd` on `data`, its accounts and codes on the cluster of `nodes`.
fn node(data: &Path, nodes: &str) -> Server {
    Server::spawn(otpd_with(data, &on_cluster(nodes)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_otpd_processes_on_one_cluster_serve_one_population() {
    let cluster = cluster::TestCluster::start();
    let root = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    let nodes = cluster.nodes.join(",");
    // A client added with the command line goes to the cluster's registry:
    // both nodes know it, neither shares a data directory.
    let key = support::client_key(
        otpd_with(&dir_a, &on_cluster(&nodes)),
        "two-nodes",
        "auth,accounts,admin",
    );
    let (a, b) = (node(&dir_a, &nodes), node(&dir_b, &nodes));
    let (api_a, api_b) = (Api::new(&a, &key), Api::new(&b, &key));
    for api in [&api_a, &api_b] {
        let (status, body) = api.call(Method::GET, "/readyz", None).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let (status, account) = api_a
        .post(
            "/v1/accounts",
            json!({
                "identity": { "kind": "civil_id", "number": "12345678" },
                "phone": "+351912345678",
                "pin": "4821",
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let id = account["account_id"].as_str().unwrap().to_owned();
    // The same phone on B: taken.
    let (status, body) = api_b
        .post(
            "/v1/accounts",
            json!({
                "identity": { "kind": "civil_id", "number": "87654321" },
                "phone": "+351912345678",
                "pin": "4821",
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Log in on A, verify on B; the code is then used on A too.
    let login = json!({ "phone": "+351912345678", "pin": "4821" });
    let (status, challenge) = api_a.post("/v1/login", login.clone()).await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{challenge}");
    let challenge_id = challenge["challenge_id"].as_str().unwrap().to_owned();
    let code = a.codes.for_challenge(&challenge_id).await.unwrap();
    let verify = json!({ "challenge_id": challenge_id, "code": code });
    let (status, answer) = api_b.post("/v1/verify", verify.clone()).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], "approved");
    let (status, answer) = api_a.post("/v1/verify", verify).await.unwrap();
    assert_ne!(status, StatusCode::OK, "used on B, refused on A: {answer}");

    // The right code 50 times at once, through both: approved once.
    let (status, challenge) = api_b.post("/v1/login", login.clone()).await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{challenge}");
    let challenge_id = challenge["challenge_id"].as_str().unwrap().to_owned();
    let code = b.codes.for_challenge(&challenge_id).await.unwrap();
    let verify = json!({ "challenge_id": challenge_id, "code": code });
    let (api_a, api_b) = (Arc::new(api_a), Arc::new(api_b));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let api = Arc::clone(if i % 2 == 0 { &api_a } else { &api_b });
            let verify = verify.clone();
            tokio::spawn(async move { api.post("/v1/verify", verify).await })
        })
        .collect();
    let mut approved = 0;
    for task in tasks {
        let (status, answer) = task.await.unwrap().expect("an answer");
        if status == StatusCode::OK {
            assert_eq!(answer["result"], "approved");
            approved += 1;
        }
    }
    assert_eq!(approved, 1);

    // Wrong PINs on A lock the account (threshold 3): B refuses the right one.
    for _ in 0..3 {
        let (status, _) = api_a
            .post(
                "/v1/login",
                json!({ "phone": "+351912345678", "pin": "1357" }),
            )
            .await
            .unwrap();
        assert!([StatusCode::UNAUTHORIZED, StatusCode::LOCKED].contains(&status));
    }
    let (status, answer) = api_b.post("/v1/login", login).await.unwrap();
    assert_eq!(status, StatusCode::LOCKED, "{answer}");
    let (status, account) = api_b.account(&id).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["state"], "locked");

    // A node whose cluster is gone answers 503 quickly and is not ready.
    drop(cluster);
    let started = std::time::Instant::now();
    let answer = api_a.call(Method::GET, "/readyz", None).await;
    assert!(
        answer.is_none(),
        "503 (not ready) without a cluster: {answer:?}"
    );
    // Answered (503), not given up on by the client: no hang.
    assert!(
        started.elapsed() < support::PATIENCE,
        "{:?}",
        started.elapsed()
    );
}

/// A client's retry through the load balancer lands on the other node: it
/// gets the first answer again, and the request ran once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_request_retried_on_the_other_node_is_answered_not_run_again() {
    let Setup {
        cluster: _cluster,
        root: _root,
        dir_a,
        dir_b,
        nodes,
        key,
    } = setup("retries");
    let (a, b) = (node(&dir_a, &nodes), node(&dir_b, &nodes));
    let (api_a, api_b) = (Api::new(&a, &key), Api::new(&b, &key));
    let register = json!({
        "identity": { "kind": "civil_id", "number": "12345678" },
        "phone": "+351912345678",
        "pin": "4821",
    });
    let (status, first, replayed) = api_a
        .post_keyed("/v1/accounts", "register-1", register.clone())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(!replayed);
    let (status, again, replayed) = api_b
        .post_keyed("/v1/accounts", "register-1", register.clone())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(replayed, "B gives A's answer: {again}");
    assert_eq!(again["account_id"], first["account_id"]);
    // The key with another request: refused on either node.
    let other = json!({
        "identity": { "kind": "civil_id", "number": "87654321" },
        "phone": "+351912345679",
        "pin": "4821",
    });
    let (status, body, _) = api_b
        .post_keyed("/v1/accounts", "register-1", other)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    // A login retried on the other node sends no second code: the first
    // challenge is still the one to verify.
    let login = json!({ "phone": "+351912345678", "pin": "4821" });
    let (status, challenge, _) = api_b
        .post_keyed("/v1/login", "login-1", login.clone())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{challenge}");
    let (status, retried, replayed) = api_a
        .post_keyed("/v1/login", "login-1", login)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    assert!(replayed);
    assert_eq!(retried["challenge_id"], challenge["challenge_id"]);
    let id = challenge["challenge_id"].as_str().unwrap();
    let code = b.codes.for_challenge(id).await.unwrap();
    let (status, answer) = api_a
        .post("/v1/verify", json!({ "challenge_id": id, "code": code }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], "approved");
}

/// The send queue is the cluster's: a code the node that queued it cannot
/// send (its SMS gateway refuses every connection: a retry, then another)
/// is sent by the other node, which takes the retry from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_one_node_cannot_send_is_sent_by_the_other() {
    let Setup {
        cluster: _cluster,
        root,
        dir_a,
        dir_b,
        nodes,
        key,
    } = setup("queue");
    // A port nothing listens on: every send from A is refused (a retry).
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config_a = root.path().join("a.toml");
    std::fs::write(
        &config_a,
        format!(
            "[[delivery.sms]]\nname = \"down\"\nurl = \"http://127.0.0.1:{down}/sms\"\n\
             template = '{{\"to\": \"{{to}}\", \"text\": \"{{message}}\"}}'\n"
        ),
    )
    .unwrap();
    // A polls the queue rarely, B often: B takes A's retries first.
    let mut with_a = on_cluster(&nodes);
    with_a.push(("OTPD_DELIVERY_POLL_INTERVAL_MS", "60000"));
    let mut command_a = otpd_with(&dir_a, &with_a);
    command_a.arg("--config").arg(&config_a);
    let a = Server::spawn(command_a);
    let mut with_b = on_cluster(&nodes);
    with_b.push(("OTPD_DELIVERY_POLL_INTERVAL_MS", "50"));
    let b = Server::spawn(otpd_with(&dir_b, &with_b));
    let (api_a, api_b) = (Api::new(&a, &key), Api::new(&b, &key));
    let (status, account) = api_a
        .post(
            "/v1/accounts",
            json!({
                "identity": { "kind": "civil_id", "number": "12345678" },
                "phone": "+351912345678",
                "pin": "4821",
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let (status, challenge) = api_a
        .post(
            "/v1/login",
            json!({ "phone": "+351912345678", "pin": "4821", "channel": "sms" }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{challenge}");
    let id = challenge["challenge_id"].as_str().unwrap();
    let code = b.codes.for_challenge(id).await.expect("B sent A's code");
    assert!(!a.codes.has(id), "A's log sink is not its SMS channel");
    let (status, answer) = api_a
        .post("/v1/verify", json!({ "challenge_id": id, "code": code }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], "approved");
    // B records the send after its log line: its report may land after the
    // verify above. Polled until then (bounded).
    let deadline = std::time::Instant::now() + support::PATIENCE;
    loop {
        let (status, state) = api_b
            .call(Method::GET, &format!("/v1/challenges/{id}"), None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{state}");
        if state["delivery"] == "sent" {
            break;
        }
        assert_eq!(state["delivery"], "queued", "{state}");
        assert!(std::time::Instant::now() < deadline, "never sent: {state}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A cluster of the test's own, two data directories for its nodes, and a
/// client (`name`, scopes `auth,accounts`) added on it through the first.
struct Setup {
    cluster: cluster::TestCluster,
    root: tempfile::TempDir,
    dir_a: std::path::PathBuf,
    dir_b: std::path::PathBuf,
    nodes: String,
    key: String,
}

fn setup(name: &str) -> Setup {
    let cluster = cluster::TestCluster::start();
    let root = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (root.path().join("a"), root.path().join("b"));
    let nodes = cluster.nodes.join(",");
    let (ok, key, err) = command(
        &dir_a,
        &nodes,
        &["client", "add", name, "--scopes", "auth,accounts"],
    );
    assert!(ok, "{err}");
    let key = key.trim().to_owned();
    Setup {
        cluster,
        root,
        dir_a,
        dir_b,
        nodes,
        key,
    }
}

/// `otpd` with `args` on `data`, on the cluster of `nodes`: (ok, stdout, stderr).
fn command(data: &Path, nodes: &str, args: &[&str]) -> (bool, String, String) {
    let out = otpd_with(data, &on_cluster(nodes))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_migrates_to_a_cluster_which_is_checked_backed_up_and_migrated_back() {
    let cluster = cluster::TestCluster::start();
    let nodes = cluster.nodes.join(",");
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| root.path().join(name);
    let path = |name: &str| dir(name).to_str().unwrap().to_owned();

    // A population on the embedded store: an account and a live code
    // (its message sent: the log sink took it).
    let key = support::add_client(&dir("embedded"));
    let server = Server::start(&dir("embedded"));
    let api = Api::new(&server, &key);
    let (status, account) = api
        .post(
            "/v1/accounts",
            json!({
                "identity": { "kind": "civil_id", "number": "12345678" },
                "phone": "+351912345678",
                "pin": "4821",
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let login = json!({ "phone": "+351912345678", "pin": "4821" });
    let (status, challenge) = api.post("/v1/login", login.clone()).await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{challenge}");
    let challenge_id = challenge["challenge_id"].as_str().unwrap().to_owned();
    let code = server.codes.for_challenge(&challenge_id).await.unwrap();
    assert!(server.terminate().success());

    // A cluster that is not there: a clear refusal, nothing written.
    let (ok, _, err) = command(
        &dir("x"),
        "127.0.0.1:1",
        &[
            "migrate",
            "--from",
            &path("embedded"),
            "--to",
            "redis-cluster",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("migration failed") || err.contains("cluster"),
        "{err}"
    );
    let (ok, _, err) = command(
        &dir("x"),
        &nodes,
        &["migrate", "--from", "nowhere", "--to", "elsewhere"],
    );
    assert!(!ok && err.contains("redis-cluster"), "{err}");

    let (ok, out, err) = command(
        &dir("x"),
        &nodes,
        &[
            "migrate",
            "--from",
            &path("embedded"),
            "--to",
            "redis-cluster",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("moved 1 accounts, 1 live challenges, 0 queued messages, 1 clients"),
        "{out}"
    );
    // Twice: the cluster holds them already.
    let (ok, _, err) = command(
        &dir("x"),
        &nodes,
        &[
            "migrate",
            "--from",
            &path("embedded"),
            "--to",
            "redis-cluster",
        ],
    );
    assert!(!ok, "{err}");

    // A node on the cluster serves the population: the code sent before verifies.
    let node = node(&dir("node"), &nodes);
    let api = Api::new(&node, &key);
    let (status, answer) = api
        .post(
            "/v1/verify",
            json!({ "challenge_id": challenge_id, "code": code }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], "approved");
    let (status, answer) = api.post("/v1/login", login.clone()).await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(node.terminate().success());

    let (ok, out, err) = command(&dir("node"), &nodes, &["check"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("read 1 accounts") && out.contains("cluster ok"),
        "{out}"
    );
    let (ok, out, err) = command(&dir("node"), &nodes, &["backup", "--to", &path("backup")]);
    assert!(ok, "{err}");
    assert!(out.contains("backed up 1 accounts"), "{out}");
    let (ok, out, err) = command(
        &dir("node"),
        &nodes,
        &["check", "--backup", &path("backup")],
    );
    assert!(ok && out.contains("backup ok"), "{err}");

    // Restored onto the cluster: into an empty namespace only, never over one.
    let (ok, _, err) = command(
        &dir("node"),
        &nodes,
        &["restore", "--from", &path("backup")],
    );
    assert!(!ok && err.contains("empty namespace"), "{err}");
    let (ok, _, err) = command(
        &dir("node"),
        &nodes,
        &["restore", "--from", &path("backup"), "--replace"],
    );
    assert!(!ok && err.contains("--replace does not apply"), "{err}");
    let mut restored = support::cluster_settings(&nodes);
    restored.push(("OTPD_STORE_REDIS_NAMESPACE", "restored"));
    let restore = otpd_with(&dir("node"), &restored)
        .args(["restore", "--from", &path("backup")])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&restore.stdout);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert!(
        out.contains("restored into the cluster: 1 accounts") && out.contains("1 clients"),
        "{out}"
    );
    let node = Server::spawn(otpd_with(&dir("node"), &restored));
    let api = Api::new(&node, &key);
    let (status, answer) = api.post("/v1/login", login.clone()).await.unwrap();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the restored namespace serves: {answer}"
    );
    assert!(node.terminate().success());

    let (ok, out, err) = command(
        &dir("node"),
        &nodes,
        &["migrate", "--from", "redis-cluster", "--to", &path("back")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("moved 1 accounts"), "{out}");
    let (ok, _, err) = command(
        &dir("node"),
        &nodes,
        &["migrate", "--from", "redis-cluster", "--to", &path("back")],
    );
    assert!(!ok && err.contains("new data directory"), "{err}");
    let server = Server::start(&dir("back"));
    let api = Api::new(&server, &key);
    let (status, answer) = api.post("/v1/login", login).await.unwrap();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the population is back on disk: {answer}"
    );
}

#[test]
fn a_node_whose_cluster_does_not_answer_refuses_to_start_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let (code, why) = support::refused(otpd_with(
        &root.path().join("a"),
        &on_cluster("127.0.0.1:1"),
    ));
    assert_ne!(code, 101, "a panic: {why}");
    assert!(why.contains("cannot open the store"), "{why}");
}
