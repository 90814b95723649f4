//! Crash safety of the real `otpd` binary: SIGKILL at random moments under a
//! mixed load, and SIGTERM under load. After each stop the server restarts
//! on the same data directory and every change it acknowledged must be
//! there: registrations, PIN changes, locks, cancellations, failure
//! counters, and used codes stay used. The audit trail never disagrees with
//! the changes: every acknowledged operation has its event; an operation
//! that got no answer has its event exactly when its change is there; and
//! the chain verifies after the last kill.
//!
//! `CRASH_SOAK_CYCLES=N` runs N kill cycles instead of 20 (a long soak);
//! `CRASH_SEED=N` replays one run. All traffic is on loopback, every wait is
//! bounded, and the server is killed when a test ends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash_ledger;
mod support;

#[path = "../../engine/tests/support/cluster.rs"]
#[allow(dead_code)]
mod cluster;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crash_ledger::{Citizen, Ledger, Op, Rng, Unanswered, check, request_id};
use hyper::{Method, StatusCode};
use serde_json::json;
use support::{Api, Server, add_client, cli, otpd, refused_start};

const WORKERS: u64 = 6;
/// Each worker keeps at most this many live citizens of its own.
const CITIZENS_PER_WORKER: usize = 12;

/// One worker's share of the load: its own citizens, one operation at a
/// time, until an operation gets no answer (the server is gone).
async fn work(
    api: Api,
    mut citizens: Vec<Citizen>,
    mut rng: Rng,
    numbers: Arc<Mutex<u64>>,
) -> Ledger {
    let mut ledger = Ledger::default();
    loop {
        let live: Vec<usize> = (0..citizens.len())
            .filter(|&i| citizens[i].usable())
            .collect();
        let register = live.len() < CITIZENS_PER_WORKER && (live.is_empty() || rng.below(4) == 0);
        let alive = if register {
            let n = {
                let mut next = numbers.lock().unwrap();
                *next += 1;
                *next
            };
            let phone = format!("+3519{n:08}");
            let request = request_id();
            let answer = api
                .post_as(
                    &request,
                    "/v1/accounts",
                    json!({
                        "identity": { "kind": "civil_id", "number": format!("{n:08}") },
                        "phone": phone,
                        "pin": "4821",
                    }),
                )
                .await;
            match answer {
                Some((StatusCode::CREATED, account)) => {
                    let mut citizen = Citizen {
                        id: account["account_id"].as_str().unwrap().to_owned(),
                        phone,
                        pin: "4821".into(),
                        state: String::new(),
                        pin_failures: 0,
                        code_failures: 0,
                        unsure: None,
                        pin_changed: false,
                        retired: false,
                    };
                    citizen.take(&account);
                    ledger.expect(&request, &citizen.id, &["registered"]);
                    citizens.push(citizen);
                    ledger.acknowledged += 1;
                    true
                }
                Some((status, body)) => panic!("registration answered {status}: {body}"),
                None => {
                    ledger
                        .unanswered
                        .push(Unanswered::Register { request, phone });
                    false
                }
            }
        } else {
            let i = live[usize::try_from(rng.below(live.len() as u64)).unwrap()];
            let op = if citizens[i].state == "locked" {
                Op::Unlock
            } else {
                match rng.below(20) {
                    0..=6 => Op::Login,
                    7..=10 => Op::WrongPin,
                    11..=14 => Op::WrongCode,
                    15..=17 => Op::ChangePin,
                    _ => Op::Cancel,
                }
            };
            let fresh = (rng.next() % 9_000 + 1_000).to_string();
            let done = run(&api, &mut citizens[i], op, &fresh, &mut ledger).await;
            if done.is_none() {
                citizens[i].unsure = Some(op);
            }
            done.is_some()
        };
        if !alive {
            ledger.citizens = citizens;
            return ledger;
        }
    }
}

/// Runs `op` on `c`; `None` when some step got no answer. Every answer is
/// checked against what the citizen's known state allows.
async fn run(
    api: &Api,
    c: &mut Citizen,
    op: Op,
    fresh_pin: &str,
    ledger: &mut Ledger,
) -> Option<()> {
    let login = |pin: String, request: String| {
        let phone = c.phone.clone();
        async move {
            api.post_as(&request, "/v1/login", json!({ "phone": phone, "pin": pin }))
                .await
        }
    };
    let account = c.id.clone();
    match op {
        Op::Login | Op::WrongCode => {
            let request = request_id();
            let (status, challenge) = login(c.pin.clone(), request.clone()).await?;
            assert_eq!(status, StatusCode::CREATED, "login of {c:?}: {challenge}");
            ledger.expect(&request, &account, &["login_accepted"]);
            ledger.expect(&request, &account, &["code_issued"]);
            let id = challenge["challenge_id"].as_str().unwrap().to_owned();
            let code = api.codes.for_challenge(&id).await?;
            let sent = if op == Op::Login {
                code.clone()
            } else {
                format!("{:06}", (code.parse::<u64>().unwrap() + 1) % 1_000_000)
            };
            let request = request_id();
            let (status, answer) = api
                .post_as(
                    &request,
                    "/v1/verify",
                    json!({ "challenge_id": id, "code": sent }),
                )
                .await?;
            if op == Op::Login {
                assert_eq!(status, StatusCode::OK, "right code for {c:?}: {answer}");
                ledger.expect(&request, &account, &["code_accepted"]);
                assert_eq!(answer["result"], "approved");
                ledger.used.push((id, code));
            } else {
                assert!(
                    [
                        StatusCode::UNAUTHORIZED,
                        StatusCode::GONE,
                        StatusCode::LOCKED
                    ]
                    .contains(&status),
                    "wrong code for {c:?}: {status} {answer}"
                );
                ledger.expect(
                    &request,
                    &account,
                    &[
                        "code_wrong",
                        "code_exhausted",
                        "code_locked",
                        "code_expired",
                    ],
                );
            }
        }
        Op::WrongPin => {
            let wrong = if c.pin == "1357" { "2468" } else { "1357" };
            let request = request_id();
            let (status, answer) = login(wrong.to_owned(), request.clone()).await?;
            assert!(
                [StatusCode::UNAUTHORIZED, StatusCode::LOCKED].contains(&status),
                "wrong PIN for {c:?}: {status} {answer}"
            );
            ledger.expect(&request, &account, &["login_wrong_pin", "login_locked"]);
        }
        Op::ChangePin => {
            let request = request_id();
            let (status, challenge) = api
                .post_as(&request, "/v1/step-up", json!({ "account_id": c.id }))
                .await?;
            assert_eq!(
                status,
                StatusCode::CREATED,
                "step-up for {c:?}: {challenge}"
            );
            ledger.expect(&request, &account, &["code_issued"]);
            let id = challenge["challenge_id"].as_str().unwrap().to_owned();
            let code = api.codes.for_challenge(&id).await?;
            let request = request_id();
            let (status, answer) = api
                .post_as(
                    &request,
                    &format!("/v1/accounts/{}/pin", c.id),
                    json!({ "current_pin": c.pin, "challenge_id": id, "code": code, "new_pin": fresh_pin }),
                )
                .await
                .or_else(|| {
                    // No answer: the new PIN may or may not be in force;
                    // its event says which, once the server is back.
                    c.retired = true;
                    ledger.unanswered.push(Unanswered::ChangePin {
                        request: request.clone(),
                        account: account.clone(),
                        new_pin: fresh_pin.to_owned(),
                    });
                    None
                })?;
            if status == StatusCode::OK {
                ledger.expect(&request, &account, &["pin_changed"]);
                c.pin = fresh_pin.to_owned();
                c.pin_changed = true;
                ledger.pin_changes += 1;
                ledger.used.push((id, code));
            } else {
                // A PIN the policy refuses (too simple) changes nothing.
                assert_eq!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "PIN change for {c:?}: {answer}"
                );
            }
        }
        Op::Cancel => {
            let request = request_id();
            let (status, answer) = api
                .call_as(
                    Some(&request),
                    Method::DELETE,
                    &format!("/v1/accounts/{}", c.id),
                    None,
                )
                .await
                .or_else(|| {
                    ledger.unanswered.push(Unanswered::Cancel {
                        request: request.clone(),
                        account: account.clone(),
                    });
                    None
                })?;
            assert_eq!(status, StatusCode::OK, "cancel {c:?}: {answer}");
            ledger.expect(&request, &account, &["cancelled"]);
            ledger.cancels += 1;
        }
        Op::Unlock => {
            let request = request_id();
            let (status, answer) = api
                .post_as(
                    &request,
                    &format!("/v1/admin/accounts/{}/unlock", c.id),
                    json!({}),
                )
                .await
                .or_else(|| {
                    ledger.unanswered.push(Unanswered::Unlock {
                        request: request.clone(),
                        account: account.clone(),
                    });
                    None
                })?;
            assert_eq!(status, StatusCode::OK, "unlock {c:?}: {answer}");
            ledger.expect(&request, &account, &["unlocked"]);
        }
    }
    ledger.acknowledged += 1;
    // This worker alone touches `c`, so what the server holds now is what
    // it acknowledged: the floor the next restart must keep.
    let (status, account) = api.account(&c.id).await?;
    assert_eq!(status, StatusCode::OK, "{account}");
    let was = std::mem::take(&mut c.state);
    c.take(&account);
    if c.state == "locked" && was != "locked" {
        ledger.locks += 1;
    }
    Some(())
}

/// Runs the workers until they stop (after `stop`), folding their results into `ledger`.
async fn load(
    api: &Api,
    ledger: &mut Ledger,
    rng: &mut Rng,
    numbers: &Arc<Mutex<u64>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut shares: Vec<Vec<Citizen>> = vec![Vec::new(); WORKERS as usize];
    for (i, c) in ledger.citizens.drain(..).enumerate() {
        shares[i % WORKERS as usize].push(c);
    }
    let workers: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let worker = work(api.clone(), share, Rng(rng.next() | 1), Arc::clone(numbers));
            tokio::spawn(worker)
        })
        .collect();
    stop.await;
    for worker in workers {
        let done = worker.await.unwrap();
        ledger.citizens.extend(done.citizens);
        ledger.used.extend(done.used);
        ledger.acknowledged += done.acknowledged;
        ledger.locks += done.locks;
        ledger.pin_changes += done.pin_changes;
        ledger.cancels += done.cancels;
        ledger.expected.extend(done.expected);
        ledger.unanswered.extend(done.unanswered);
    }
}

fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_ed0f_c4a5)
}

struct Run {
    dir: tempfile::TempDir,
    data: PathBuf,
    key: String,
    /// Accounts and codes on this cluster (`None`: the embedded store).
    cluster: Option<cluster::TestCluster>,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key = add_client(&data);
        Run {
            dir,
            data,
            key,
            cluster: None,
        }
    }

    /// A run whose otpd keeps accounts and codes on a cluster of its own.
    fn on_cluster() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cluster = cluster::TestCluster::start();
        let mut run = Run {
            dir,
            data,
            key: String::new(),
            cluster: Some(cluster),
        };
        run.key = support::client_key(run.otpd(), "crash-test", "auth,accounts,admin");
        run
    }

    /// `otpd` on this run's data directory (and cluster).
    fn otpd(&self) -> std::process::Command {
        let Some(cluster) = &self.cluster else {
            return otpd(&self.data);
        };
        let nodes = cluster.nodes.join(",");
        support::otpd_with(&self.data, &support::cluster_settings(&nodes))
    }

    fn start(&self) -> (Server, Api) {
        let server = Server::spawn(self.otpd());
        let api = Api::new(&server, &self.key);
        (server, api)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_acknowledged() {
    sigkill_loop(Run::new()).await;
}

/// The same kill -9 loop with otpd's accounts and codes on a Redis Cluster
/// (3 masters, 3 replicas on loopback, started here): the node dies, the
/// cluster does not, and nothing acknowledged is lost, its audit events
/// included (a change and its events are one write: the node's journal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_node_on_a_cluster_loses_nothing_acknowledged() {
    sigkill_loop(Run::on_cluster()).await;
}

async fn sigkill_loop(run: Run) {
    let cycles: u64 = std::env::var("CRASH_SOAK_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed = seed();
    println!("seed {seed} (CRASH_SEED={seed} replays), {cycles} cycles");
    let mut rng = Rng(seed | 1);
    let numbers = Arc::new(Mutex::new(0u64));
    let mut ledger = Ledger::default();
    let (mut server, mut api) = run.start();
    for cycle in 0..cycles {
        // Each change on a cluster waits for two fsyncs (master and
        // replica): a node there gets longer between kills for as much load.
        let after = if run.cluster.is_some() {
            Duration::from_millis(200 + rng.below(1300))
        } else {
            Duration::from_millis(50 + rng.below(400))
        };
        let (killed, kill) = tokio::sync::oneshot::channel();
        let killer = std::thread::spawn(move || {
            // Wall time is the point here: the kill lands wherever the load is.
            std::thread::sleep(after);
            server.kill();
            let _ = killed.send(());
        });
        load(&api, &mut ledger, &mut rng, &numbers, async {
            let _ = kill.await;
        })
        .await;
        killer.join().unwrap();
        let restarted = std::time::Instant::now();
        (server, api) = run.start();
        let started = restarted.elapsed();
        check(&api, &mut ledger).await;
        let checked = restarted.elapsed() - started;
        let unsure = ledger.citizens.iter().filter(|c| c.retired).count();
        println!(
            "cycle {cycle}: killed after {after:?}, restarted in {started:.0?}, checked in {checked:.0?}; {} citizens, {} used codes, {} acknowledged operations so far, {unsure} retired",
            ledger.citizens.len(),
            ledger.used.len(),
            ledger.acknowledged
        );
    }
    println!(
        "acknowledged: {} operations, {} locks, {} PIN changes, {} cancellations, {} codes used; \
         {} events matched to acknowledged calls, {} unanswered calls matched to the store",
        ledger.acknowledged,
        ledger.locks,
        ledger.pin_changes,
        ledger.cancels,
        ledger.used.len(),
        ledger.events_checked,
        ledger.unanswered_checked
    );
    assert!(
        ledger.acknowledged > cycles * 5,
        "too little load to mean anything"
    );
    assert!(ledger.locks > 0 && ledger.pin_changes > 0 && ledger.cancels > 0);
    assert!(ledger.events_checked >= ledger.acknowledged);
    server.kill();
    // After the last kill, the stored chain holds from its first event.
    let out = run.otpd().args(["audit", "verify"]).output().unwrap();
    let (ok, out, err) = (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        ok,
        "the audit chain does not verify after kills: {out}{err}"
    );
    assert!(out.contains("audit chain ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_or_refuses_and_keeps_everything() {
    let mut rng = Rng(seed() | 1);
    let run = Run::new();
    let numbers = Arc::new(Mutex::new(0u64));
    let mut ledger = Ledger::default();
    let (server, api) = run.start();
    let (stopped, stop) = tokio::sync::oneshot::channel();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        let status = server.terminate();
        let _ = stopped.send(());
        status
    });
    load(&api, &mut ledger, &mut rng, &numbers, async {
        let _ = stop.await;
    })
    .await;
    let status = stopper.join().unwrap();
    assert!(status.success(), "otpd exited with {status} after SIGTERM");
    assert!(ledger.acknowledged > 5);
    let (server, api) = run.start();
    check(&api, &mut ledger).await;
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_stops_serve_and_check_and_a_backup_brings_it_back() {
    let run = Run::new();
    let (server, api) = run.start();
    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, account) = api
            .post(
                "/v1/accounts",
                json!({
                    "identity": { "kind": "civil_id", "number": format!("{n:08}") },
                    "phone": format!("+3519{n:08}"),
                    "pin": "4821",
                }),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::CREATED, "{account}");
        ids.push(account["account_id"].as_str().unwrap().to_owned());
    }
    let (status, _) = api
        .post(
            &format!("/v1/admin/accounts/{}/lock", ids[0]),
            json!({ "reason": "fraud" }),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    // While it runs, `check` refuses and points to a backup instead, and
    // `backup` asks the server for its copy.
    let (ok, _, err) = cli(&run.data, &["check"]);
    assert!(!ok && err.contains("running"), "{err}");
    let live = run.dir.path().join("live-backup");
    let live_arg = live.to_str().unwrap();
    let (ok, _, err) = cli(&run.data, &["backup", "--to", live_arg]);
    assert!(!ok && err.contains("OTPD_ADMIN_KEY"), "{err}");
    let out = otpd(&run.data)
        .env("OTPD_ADMIN_KEY", &run.key)
        .args([
            "backup",
            "--to",
            live_arg,
            "--server",
            &format!("http://{}", server.address),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out, err) = cli(&run.data, &["check", "--backup", live_arg]);
    assert!(ok && out.contains("backup ok"), "{out}{err}");
    assert!(server.terminate().success());

    let (ok, out, err) = cli(&run.data, &["check"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("3 accounts") && out.contains("store ok"),
        "{out}"
    );
    let backup = run.dir.path().join("backup");
    let backup_arg = backup.to_str().unwrap();
    let (ok, out, err) = cli(&run.data, &["backup", "--to", backup_arg]);
    assert!(ok, "{err}");
    assert!(out.contains("otpd.backup"), "{out}");

    // The log emptied: sled alone would open an empty store, forgetting the lock.
    let log = run.data.join("store").join("db");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let (ok, _, err) = cli(&run.data, &["check"]);
    assert!(!ok, "check passed a damaged store");
    assert!(
        err.contains("acknowledged") || err.contains("corrupt"),
        "{err}"
    );
    let (code, why) = refused_start(&run.data);
    assert!(
        why.contains("acknowledged") || why.contains("corrupt"),
        "{why}"
    );
    assert_eq!(code, 65, "a damaged store exits with EX_DATAERR: {why}");

    let (ok, _, err) = cli(&run.data, &["restore", "--from", backup_arg]);
    assert!(!ok && err.contains("--replace"), "{err}");
    let (ok, out, err) = cli(&run.data, &["restore", "--from", backup_arg, "--replace"]);
    assert!(ok, "{err}");
    assert!(out.contains("3 accounts"), "{out}");
    assert!(err.contains("store.replaced-"), "{err}");
    let (ok, _, err) = cli(&run.data, &["check"]);
    assert!(ok, "{err}");

    let (server, api) = run.start();
    let (status, account) = api.account(&ids[0]).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account["state"], "locked", "{account}");
    server.kill();
}
