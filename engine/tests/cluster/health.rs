//! What startup and `/readyz` see: a healthy cluster, wrong persistence
//! settings, a user without CONFIG, a stray clock, a cluster that is down.

use std::time::{Duration, Instant};

use engine::EngineError;
use engine::cluster::keys;
use engine::cluster::slot::Change;
use engine::cluster::{Cluster, ClusterConfig};

use crate::account_id;
use crate::fixture::TestCluster;

/// This node's clock, as otpd reads it.
fn now_ms() -> u64 {
    use engine::Clock;
    engine::SystemClock::new().now().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_cluster_is_ready() {
    let cluster = TestCluster::shared();
    let health = cluster
        .node()
        .await
        .health(now_ms, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(health.ready(), "{health:?}");
    assert_eq!(health.masters, 3);
    assert_eq!(health.slots_ok, 16_384);
    assert!(health.settings_checked);
    assert!(health.clock_offset_ms.abs() < 500, "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_clock_beyond_the_skew_bound_is_not_ready() {
    let cluster = TestCluster::shared();
    let ahead = || now_ms() + 10_000;
    let health = cluster
        .node()
        .await
        .health(ahead, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(!health.ready());
    assert!(
        health.problems.iter().any(|p| p.contains("clock")),
        "{:?}",
        health.problems
    );
}

/// One cluster of its own, broken step by step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_settings_a_restricted_user_and_a_dead_cluster_are_each_reported() {
    let cluster = TestCluster::start();
    let node = cluster.node().await;

    // A master that fsyncs once a second could lose acknowledged writes.
    let master = cluster.masters()[0].clone();
    let set = std::process::Command::new("redis-cli")
        .args(["-p", &master, "config", "set", "appendfsync", "everysec"])
        .output()
        .unwrap();
    assert!(set.status.success());
    let health = node
        .health(now_ms, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(!health.ready());
    assert!(
        health.problems.iter().any(
            |p| p.contains(&master) && p.contains("appendfsync is everysec, otpd needs always")
        ),
        "{:?}",
        health.problems
    );
    cluster.on_every_node(&["config", "set", "appendfsync", "always"]);
    assert!(
        node.health(now_ms, Duration::from_millis(500))
            .await
            .unwrap()
            .ready()
    );

    // An ACL user that may read and write keys and run scripts, not CONFIG.
    let acl = [
        "acl",
        "setuser",
        "otpd",
        "on",
        ">s3cret",
        "~*",
        "+@all",
        "-@dangerous",
        "+wait",
        "+cluster|info",
        "+time",
    ];
    assert!(cluster.on_every_node(&acl).iter().all(|a| a == "OK"));
    let user = Cluster::connect(ClusterConfig {
        username: Some("otpd".into()),
        password: Some("s3cret".into()),
        ..cluster.config()
    })
    .await
    .unwrap();
    let health = user
        .health(now_ms, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(health.ready(), "{health:?}");
    assert!(!health.settings_checked);
    assert_eq!(health.warnings.len(), 3, "{:?}", health.warnings);
    let id = account_id();
    user.compare_and_set(&keys::account(id), 0, &Change::account(b"x".to_vec()))
        .await
        .unwrap();
    // A wrong password is refused at connection, naming the cluster.
    let wrong = Cluster::connect(ClusterConfig {
        username: Some("otpd".into()),
        password: Some("wrong".into()),
        ..cluster.config()
    })
    .await;
    assert!(matches!(wrong, Err(EngineError::Storage(_))), "{wrong:?}");

    // Every node stopped: operations fail as storage errors, within the timeout.
    cluster.stop();
    let started = Instant::now();
    let read = node.load(&keys::account(id), &[]).await;
    assert!(matches!(read, Err(EngineError::Storage(_))), "{read:?}");
    let write = node
        .compare_and_set(
            &keys::account(account_id()),
            0,
            &Change::account(b"y".to_vec()),
        )
        .await;
    assert!(
        matches!(
            write,
            Err(EngineError::Storage(_) | EngineError::NotStored(_))
        ),
        "{write:?}"
    );
    assert!(
        node.health(now_ms, Duration::from_millis(500))
            .await
            .is_err()
    );
    // Bounded, not timed: three calls, each within its 2 s timeout (plus
    // the client's retries), never hanging.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_is_verified_against_its_ca() {
    let cluster = TestCluster::start_tls();
    let tls_nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("rediss://{n}"))
        .collect();
    let config = ClusterConfig {
        nodes: tls_nodes.clone(),
        ca_file: Some(cluster.ca()),
        ..cluster.config()
    };
    let node = Cluster::connect(config.clone()).await.unwrap();
    let id = account_id();
    node.compare_and_set(
        &keys::account(id),
        0,
        &Change::account(b"over tls".to_vec()),
    )
    .await
    .unwrap();
    let read = node.load(&keys::account(id), &[]).await.unwrap();
    assert_eq!(read.record.as_deref(), Some(&b"over tls"[..]));
    assert!(
        node.health(now_ms, Duration::from_millis(500))
            .await
            .unwrap()
            .ready()
    );

    // Not trusted without the CA: the system's roots never signed it.
    let untrusted = Cluster::connect(ClusterConfig {
        ca_file: None,
        ..config.clone()
    })
    .await;
    assert!(
        matches!(untrusted, Err(EngineError::Storage(_))),
        "{untrusted:?}"
    );
    // Plain text to a TLS-only cluster gets nowhere either.
    let plain = Cluster::connect(ClusterConfig {
        nodes: cluster.nodes.clone(),
        ca_file: None,
        ..config.clone()
    })
    .await;
    assert!(plain.is_err(), "{plain:?}");
    // Settings that cannot work are refused before connecting, naming them.
    let mixed = vec![tls_nodes[0].clone(), cluster.nodes[1].clone()];
    let refused = Cluster::connect(ClusterConfig {
        nodes: mixed,
        ..config.clone()
    })
    .await;
    assert!(
        matches!(&refused, Err(EngineError::Invalid { field, .. }) if *field == "store.redis.nodes"),
        "{refused:?}"
    );
    let ca_without_tls = Cluster::connect(ClusterConfig {
        nodes: cluster.nodes.clone(),
        ..config
    })
    .await;
    assert!(
        matches!(&ca_without_tls, Err(EngineError::Invalid { field, .. }) if *field == "store.redis.ca_file"),
        "{ca_without_tls:?}"
    );
}
