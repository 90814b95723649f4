//! A master killed under writes, its replica frozen first so it misses
//! what the master applies: what was acknowledged (applied by the master
//! with `appendfsync always` and confirmed by `WAIT 1`) is still there once
//! that replica has taken over. (With `replicas = 0` this test fails: the
//! master acknowledges writes its replica never sees.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::EngineError;
use engine::cluster::keys;
use engine::cluster::slot::{Change, Outcome};

use crate::account_id;
use crate::fixture::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_master_killed_under_load() {
    let cluster = TestCluster::start();
    // The default WAIT limit: writes to the frozen replica's master give up
    // after 500 ms each, so the others keep being acknowledged.
    let config = engine::cluster::ClusterConfig {
        wait_timeout: Duration::from_millis(500),
        timeout: Duration::from_secs(2),
        ..cluster.config()
    };
    let node = Arc::new(engine::cluster::Cluster::connect(config).await.unwrap());
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..8 {
        let (node, acknowledged, refused, stop) = (
            Arc::clone(&node),
            Arc::clone(&acknowledged),
            Arc::clone(&refused),
            Arc::clone(&stop),
        );
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = account_id();
                let record = id.to_string().into_bytes();
                match node
                    .compare_and_set(&keys::account(id), 0, &Change::account(record))
                    .await
                {
                    Ok(Outcome::Written(1)) => acknowledged.lock().unwrap().push(id),
                    Ok(other) => panic!("a fresh account answered {other:?}"),
                    // Not acknowledged: may or may not be there; never counted.
                    Err(EngineError::NotStored(_) | EngineError::Storage(_)) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
        }));
    }
    let acks = || acknowledged.lock().unwrap().len();
    // Bounded waits on events, not on time: polls with a cap.
    let until = |what: &str, mut done: Box<dyn FnMut() -> bool + '_>| {
        for _ in 0..1200 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} did not happen within a minute");
    };
    until("300 acknowledged writes", Box::new(|| acks() >= 300));
    let master = cluster.masters()[0].clone();
    let replica = cluster.replica_of(&master);
    // The replica is frozen and its link dropped: the master goes on
    // applying writes its replica will never see.
    cluster.signal(&replica, "STOP");
    let dropped = std::process::Command::new("redis-cli")
        .args(["-p", &master, "client", "kill", "type", "replica"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&dropped.stdout).trim(), "1");
    let at_freeze = acks();
    until(
        "100 acknowledged writes",
        Box::new(|| acks() >= at_freeze + 100),
    );
    cluster.signal(&master, "KILL");
    cluster.signal(&replica, "CONT");
    let at_kill = acks();
    // The killed master's replica takes over (cluster-node-timeout 2 s),
    // and writes are acknowledged again on every slot.
    until(
        "a replica taking over",
        Box::new(|| {
            cluster
                .on_every_node(&["cluster", "info"])
                .iter()
                .any(|i| i.contains("cluster_state:ok"))
                && cluster.masters().len() == 3
                && !cluster.masters().contains(&master)
        }),
    );
    until(
        "300 more acknowledged writes",
        Box::new(|| acks() >= at_kill + 300),
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut missing = Vec::new();
    for id in &acknowledged {
        let slot = node.load(&keys::account(*id), &[]).await.unwrap();
        if slot.record.as_deref() != Some(id.to_string().as_bytes()) {
            missing.push(*id);
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost in the failover ({} refused): {:?}",
        missing.len(),
        acknowledged.len(),
        refused.load(Ordering::Relaxed),
        &missing[..missing.len().min(5)]
    );
}
