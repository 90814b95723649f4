//! Slots moving between masters under load (what adding a shard does:
//! `redis-cli --cluster reshard`, `MIGRATE` key by key, `MOVED` and `ASK`
//! redirections): every operation either succeeds with the right answer or
//! fails as storage unavailable (503, nothing acknowledged), and nothing
//! acknowledged is lost.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::*;

use crate::helpers::*;

/// Waits (a bounded number of checks) until every node agrees on the
/// slots again after a move: `redis-cli --cluster reshard` refuses to
/// start before.
fn settled(seed: &str) {
    for _ in 0..100 {
        let out = Command::new("redis-cli")
            .args(["--cluster", "check", seed])
            .output()
            .expect("redis-cli --cluster check");
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && !text.contains("[WARNING]") && !text.contains("[ERR]") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the cluster's nodes never agreed on the slots");
}

/// What one worker saw.
#[derive(Debug, Default)]
struct Seen {
    approved: u64,
    unavailable: u64,
}

#[test]
fn codes_issue_and_verify_while_slots_move_between_masters() {
    let private = crate::cluster_fixture::TestCluster::start();
    let node = TestEngine::with_config(|c| {
        c.store.cluster = Some(engine::cluster::ClusterConfig {
            namespace: "reshard".into(),
            ..private.config()
        });
        c.limits = IssueLimitsConfig::off();
    });
    let accounts: Vec<AccountId> = (0..40)
        .map(|n| node.register(&format!("+3519177000{n:02}")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = accounts
        .chunks(10)
        .map(|mine| {
            let (engine, mine, stop) = (Arc::clone(&node.engine), mine.to_vec(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen = Seen::default();
                let unavailable = |e: &EngineError| {
                    matches!(e, EngineError::Storage(_) | EngineError::NotStored(_))
                };
                while !stop.load(Ordering::Relaxed) {
                    for id in &mine {
                        let issued = match engine
                            .issue_step_up(*id, None, None, None)
                            .and_then(Durable::wait)
                        {
                            Ok(issued) => issued,
                            Err(e) if unavailable(&e) => {
                                seen.unavailable += 1;
                                continue;
                            }
                            Err(e) => panic!("issue: {e:?}"),
                        };
                        match engine
                            .verify(issued.challenge_id, Purpose::StepUp, &issued.code)
                            .and_then(Durable::wait)
                        {
                            Ok(Verification::Approved(_)) => seen.approved += 1,
                            Err(e) if unavailable(&e) => seen.unavailable += 1,
                            // A verify answered 503 whose change was made
                            // anyway is retried by nobody here: never a
                            // wrong answer to a first verify.
                            other => panic!("verify of a fresh code: {other:?}"),
                        }
                    }
                }
                seen
            })
        })
        .collect();
    // Move a third of the slots, keys and all, from one master to another,
    // and back, while the workers run.
    let masters = private.masters();
    let id = |port: &str| private.on_node(port, &["cluster", "myid"]);
    let (a, b) = (id(&masters[0]), id(&masters[1]));
    let seed = format!("127.0.0.1:{}", masters[0]);
    for (from, to) in [(&a, &b), (&b, &a)] {
        settled(&seed);
        let out = Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &seed,
                "--cluster-from",
                from,
                "--cluster-to",
                to,
            ])
            .args([
                "--cluster-slots",
                "5000",
                "--cluster-yes",
                "--cluster-pipeline",
                "50",
            ])
            .output()
            .expect("redis-cli --cluster reshard");
        assert!(
            out.status.success(),
            "reshard: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let approved: u64 = seen.iter().map(|s| s.approved).sum();
    let unavailable: u64 = seen.iter().map(|s| s.unavailable).sum();
    eprintln!("while slots moved: {approved} approved, {unavailable} unavailable ({seen:?})");
    assert!(approved > 0, "{seen:?}");
    // Redirections are followed, not failed: at most a few operations may
    // have given up mid-move.
    assert!(unavailable * 20 <= approved, "{seen:?}");
    // Every account is still there and serves, wherever its slot now is.
    for id in &accounts {
        assert_eq!(node.view(*id).phone.unwrap().as_str().len(), 13);
        let issued = node.step_up(*id);
        let verified = node
            .engine
            .verify(issued.challenge_id, Purpose::StepUp, &issued.code)
            .and_then(Durable::wait)
            .unwrap();
        assert!(
            matches!(verified, Verification::Approved(_)),
            "{verified:?}"
        );
    }
}
