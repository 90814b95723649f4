//! One account's slot, written through two nodes at once.

use std::sync::Arc;
use std::time::Duration;

use engine::EngineError;
use engine::cluster::keys;
use engine::cluster::slot::{Change, Outcome, Snapshot, Write};

use crate::account_id;
use crate::fixture::TestCluster;

/// An account with one live challenge (its record says "live", with 0 attempts).
async fn account_with_challenge(node: &engine::cluster::Cluster) -> (String, String) {
    let id = account_id();
    let account = keys::account(id);
    let challenge = keys::challenge(keys::challenge_id(id, [1; 8]));
    let change = Change::account(b"citizen".to_vec()).put(
        challenge.clone(),
        b"live 0".to_vec(),
        Some(Duration::from_secs(300)),
    );
    assert_eq!(
        node.compare_and_set(&account, 0, &change).await.unwrap(),
        Outcome::Written(1)
    );
    (account, challenge)
}

/// Runs `change` on the slot of a fresh account with one live challenge
/// ("live 0") from 50 tasks at once, alternating between two nodes; the
/// results, and the account and its challenge's key.
async fn fifty_through_two_nodes<T: Send + 'static>(
    change: fn(&Snapshot, &str) -> (Option<Change>, T),
) -> (Vec<T>, engine::cluster::Cluster, String, String) {
    let cluster = TestCluster::shared();
    let nodes = [cluster.node().await, cluster.node().await];
    let (account, challenge) = account_with_challenge(&nodes[0]).await;
    let mut tasks = Vec::new();
    for n in 0..50 {
        let node = nodes[n % 2].clone();
        let (account, challenge) = (account.clone(), challenge.clone());
        tasks.push(tokio::spawn(async move {
            let others = [challenge.clone()];
            node.update(&account, &others, |slot| Ok(change(slot, &challenge)))
                .await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    let [_, other] = nodes;
    (results, other, account, challenge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_right_codes_through_two_nodes_approve_once() {
    let (approvals, node, account, challenge) = fifty_through_two_nodes(|slot, challenge| {
        if slot.others[0].as_deref().unwrap().starts_with(b"live") {
            let used = Change::keep().put(challenge.to_string(), b"used".to_vec(), None);
            (Some(used), true)
        } else {
            (None, false)
        }
    })
    .await;
    assert_eq!(
        approvals.iter().filter(|a| **a).count(),
        1,
        "one right code approves, once"
    );
    let slot = node.load(&account, &[challenge]).await.unwrap();
    assert_eq!(slot.others[0].as_deref(), Some(&b"used"[..]));
    assert_eq!(slot.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_wrong_codes_through_two_nodes_count_fifty() {
    let (_, node, account, challenge) = fifty_through_two_nodes(|slot, challenge| {
        let text = String::from_utf8(slot.others[0].clone().unwrap()).unwrap();
        let attempts: u32 = text.split(' ').nth(1).unwrap().parse().unwrap();
        let next = format!("live {}", attempts + 1).into_bytes();
        (
            Some(Change::keep().put(challenge.to_string(), next, None)),
            (),
        )
    })
    .await;
    let slot = node.load(&account, &[challenge]).await.unwrap();
    assert_eq!(slot.others[0].as_deref(), Some(&b"live 50"[..]));
    assert_eq!(slot.version, 51, "each wrong code one write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_changes_nothing() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let (account, challenge) = account_with_challenge(&node).await;
    let late = Change::account(b"stale".to_vec()).delete(challenge.clone());
    assert_eq!(
        node.compare_and_set(&account, 1, &Change::account(b"new".to_vec()))
            .await
            .unwrap(),
        Outcome::Written(2)
    );
    assert_eq!(
        node.compare_and_set(&account, 1, &late).await.unwrap(),
        Outcome::Conflict(2)
    );
    let slot = node
        .load(&account, std::slice::from_ref(&challenge))
        .await
        .unwrap();
    assert_eq!(slot.record.as_deref(), Some(&b"new"[..]));
    assert!(
        slot.others[0].is_some(),
        "the conflicting change deleted nothing"
    );
    // Deleting the account: version 0, record gone; a change based on the
    // old version conflicts rather than bring it back.
    let delete = Change {
        account: Write::Delete,
        others: vec![(challenge.clone(), Write::Delete)],
    };
    assert_eq!(
        node.compare_and_set(&account, 2, &delete).await.unwrap(),
        Outcome::Written(0)
    );
    assert_eq!(
        node.compare_and_set(&account, 2, &Change::keep())
            .await
            .unwrap(),
        Outcome::Conflict(0)
    );
    assert!(!node.exists(&account).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_expire_by_ttl_no_earlier_than_asked() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let (_, challenge) = account_with_challenge(&node).await;
    let ttl: i64 = redis_int(&node, "PTTL", &challenge).await;
    assert!(ttl > 290_000 && ttl <= 300_000, "PTTL {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_another_slot_are_refused_before_anything_is_sent() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let (account, _) = account_with_challenge(&node).await;
    let elsewhere = keys::challenge(keys::challenge_id(account_id(), [2; 8]));
    let change = Change::keep().put(elsewhere.clone(), b"x".to_vec(), None);
    assert!(matches!(
        node.compare_and_set(&account, 1, &change).await,
        Err(EngineError::Internal(_))
    ));
    assert_eq!(node.load(&account, &[]).await.unwrap().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_replicas_than_exist_is_not_acknowledged() {
    let cluster = TestCluster::shared();
    let node = engine::cluster::Cluster::connect(engine::cluster::ClusterConfig {
        replicas: 2,
        wait_timeout: Duration::from_millis(50),
        ..cluster.config()
    })
    .await
    .unwrap();
    let id = account_id();
    let err = node
        .compare_and_set(&keys::account(id), 0, &Change::account(b"x".to_vec()))
        .await
        .unwrap_err();
    match err {
        EngineError::NotStored(why) => assert!(why.contains("1 of the 2 replicas"), "{why}"),
        other => panic!("{other:?}"),
    }
    // One replica is what each master has: acknowledged.
    let one = Arc::new(cluster.node().await);
    let id = account_id();
    assert_eq!(
        one.compare_and_set(&keys::account(id), 0, &Change::account(b"x".to_vec()))
            .await
            .unwrap(),
        Outcome::Written(1)
    );
}

/// An integer answer of `command key` on the key's master.
pub async fn redis_int(node: &engine::cluster::Cluster, command: &str, key: &str) -> i64 {
    let mut cmd = redis::cmd(command);
    cmd.arg(key);
    let value = node.command_on_key(cmd, key).await.unwrap();
    redis::from_redis_value(value).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_write_run_twice_is_written_once() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let (account, challenge) = account_with_challenge(&node).await;
    let wrong = Change::keep().put(challenge.clone(), b"live 1".to_vec(), None);
    // A retry of one write (same token) after it ran: applied, not a conflict.
    let first = node
        .compare_and_set_as(&account, 1, &wrong, "retry-token")
        .await;
    let again = node
        .compare_and_set_as(&account, 1, &wrong, "retry-token")
        .await;
    assert_eq!(first.unwrap(), Outcome::Written(2));
    assert_eq!(again.unwrap(), Outcome::Written(2));
    // Another write on the old version is a conflict all the same.
    let other = node
        .compare_and_set_as(&account, 1, &wrong, "another")
        .await;
    assert_eq!(other.unwrap(), Outcome::Conflict(2));
    // Still recognised after another writer moved the version on.
    let next = Change::keep().put(challenge.clone(), b"live 2".to_vec(), None);
    assert_eq!(
        node.compare_and_set(&account, 2, &next).await.unwrap(),
        Outcome::Written(3)
    );
    let late = node
        .compare_and_set_as(&account, 1, &wrong, "retry-token")
        .await;
    assert_eq!(late.unwrap(), Outcome::Written(2));
    let slot = node
        .load(&account, std::slice::from_ref(&challenge))
        .await
        .unwrap();
    assert_eq!(
        slot.others[0].as_deref(),
        Some(&b"live 2"[..]),
        "not applied again"
    );
    assert_eq!(slot.version, 3);
    // The receipt lives as long as a retry can come in (4x the timeout, at
    // least 10 s), no longer.
    let ttl = redis_int(
        &node,
        "PTTL",
        &keys::receipt(&account, "retry-token").unwrap(),
    )
    .await;
    let bound = (node.config().timeout * 4).max(Duration::from_secs(10));
    assert!(
        ttl > 0 && ttl as u128 <= bound.as_millis(),
        "receipt PTTL {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_moves_the_version_and_leaves_record_and_ttl() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let id = account_id();
    let account = keys::account(id);
    let pending = Change {
        account: Write::Put(b"pending".to_vec(), Some(Duration::from_secs(20))),
        others: Vec::new(),
    };
    node.compare_and_set(&account, 0, &pending).await.unwrap();
    let challenge = keys::challenge(keys::challenge_id(id, [3; 8]));
    let keep = Change::keep().put(challenge, b"live 0".to_vec(), None);
    assert_eq!(
        node.compare_and_set(&account, 1, &keep).await.unwrap(),
        Outcome::Written(2)
    );
    let ttl = redis_int(&node, "PTTL", &account).await;
    assert!(ttl > 10_000 && ttl <= 20_000, "Keep left the TTL: {ttl}");
    let slot = node.load(&account, &[]).await.unwrap();
    assert_eq!(slot.record.as_deref(), Some(&b"pending"[..]));
    // A Put without a TTL makes it permanent.
    node.compare_and_set(&account, 2, &Change::account(b"done".to_vec()))
        .await
        .unwrap();
    assert_eq!(redis_int(&node, "PTTL", &account).await, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_or_keep_among_the_other_records_is_refused() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let (account, challenge) = account_with_challenge(&node).await;
    let itself = Change::keep().delete(account.clone());
    let keep_other = Change {
        account: Write::Keep,
        others: vec![(challenge.clone(), Write::Keep)],
    };
    for change in [itself, keep_other] {
        assert!(matches!(
            node.compare_and_set(&account, 1, &change).await,
            Err(EngineError::Internal(_))
        ));
    }
    let slot = node.load(&account, &[challenge]).await.unwrap();
    assert_eq!(slot.version, 1);
    assert_eq!(slot.others[0].as_deref(), Some(&b"live 0"[..]));
}
