//! The index's reservations: one live account per phone, email or
//! identity, also when two nodes race and when a node dies mid-way.

use engine::cluster::index::{Claim, Holder, Registration};
use engine::cluster::keys;

use crate::fixture::TestCluster;
use crate::slot::redis_int;
use crate::{account_id, phone_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_registering_one_phone_100_times_make_one_account_each_time() {
    let cluster = TestCluster::shared();
    let nodes = [cluster.node().await, cluster.node().await];
    for round in 0..100 {
        let phone = phone_key();
        let email =
            engine::cluster::keys::index(&format!("email:race{round}-{}@example.pt", account_id()));
        let ids = [account_id(), account_id()];
        let mut tasks = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let node = nodes[n].clone();
            // Each has its own email too: only the phone is in dispute.
            let own_email = format!("{email}{n}");
            let index = vec![phone.clone(), own_email];
            let id = *id;
            tasks.push(tokio::spawn(async move {
                node.register(id, format!("record of {id}").into_bytes(), &index)
                    .await
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap().unwrap());
        }
        let winners: Vec<usize> = (0..2)
            .filter(|&n| outcomes[n] == Registration::Registered)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let (winner, loser) = (ids[winners[0]], ids[1 - winners[0]]);
        match &outcomes[1 - winners[0]] {
            Registration::Taken(key, holder) => {
                assert_eq!(key, &phone);
                assert_eq!(holder.account(), winner);
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert_eq!(nodes[0].lookup(&phone).await.unwrap(), Some(winner));
        assert!(nodes[1].exists(&keys::account(winner)).await.unwrap());
        assert!(
            !nodes[1].exists(&keys::account(loser)).await.unwrap(),
            "the loser left no account"
        );
        assert_eq!(
            nodes[1]
                .holder(&format!("{email}{}", 1 - winners[0]))
                .await
                .unwrap(),
            None,
            "nor its email's claim"
        );
        assert_eq!(
            redis_int(&nodes[0], "PTTL", &keys::account(winner)).await,
            -1,
            "the winner's account is permanent"
        );
        assert_eq!(
            redis_int(&nodes[0], "PTTL", &phone).await,
            -1,
            "and its phone held for good"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_dead_node_blocks_until_it_expires() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let phone = phone_key();
    let (dead, next) = (account_id(), account_id());
    // A node claims the phone and dies before writing the account.
    assert_eq!(node.claim(&phone, dead).await.unwrap(), Claim::Ours);
    let ttl = redis_int(&node, "PTTL", &phone).await;
    assert!(
        ttl > 0 && ttl <= 10_000,
        "the claim expires within the reservation TTL: {ttl}"
    );
    assert_eq!(
        node.lookup(&phone).await.unwrap(),
        None,
        "a claim is not a holder"
    );
    let outcome = node
        .register(next, b"next".to_vec(), std::slice::from_ref(&phone))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Registration::Taken(phone.clone(), Holder::Claimed(dead))
    );
    // Its TTL runs out (set in the past: expired now, without waiting).
    expire_now(&node, &phone).await;
    registers(&node, next, &phone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_held_by_an_account_that_is_gone_is_free() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let phone = phone_key();
    let (dead, next) = (account_id(), account_id());
    // A node committed the phone for its new account and died before making
    // the account permanent: the account's TTL runs out.
    assert_eq!(node.claim(&phone, dead).await.unwrap(), Claim::Ours);
    let pending = engine::cluster::slot::Change {
        account: engine::cluster::slot::Write::Put(
            b"dead".to_vec(),
            Some(std::time::Duration::from_secs(20)),
        ),
        others: Vec::new(),
    };
    node.compare_and_set(&keys::account(dead), 0, &pending)
        .await
        .unwrap();
    assert!(node.commit_claim(&phone, dead).await.unwrap());
    let ttl = redis_int(&node, "PTTL", &keys::account(dead)).await;
    assert!(
        ttl > 10_000 && ttl <= 20_000,
        "an unfinished account expires: {ttl}"
    );
    assert_eq!(node.lookup(&phone).await.unwrap(), Some(dead));
    expire_now(&node, &keys::account(dead)).await;
    assert_eq!(
        node.lookup(&phone).await.unwrap(),
        None,
        "no account, no holder"
    );
    registers(&node, next, &phone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_commit_and_release_only_for_their_claimant() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let email = keys::index(&format!("email:{}@example.pt", account_id()));
    let (ana, rui) = (account_id(), account_id());
    assert!(
        !node.commit_claim(&email, ana).await.unwrap(),
        "nothing to commit"
    );
    assert_eq!(node.claim(&email, ana).await.unwrap(), Claim::Ours);
    assert_eq!(
        node.claim(&email, ana).await.unwrap(),
        Claim::Ours,
        "claiming again is harmless"
    );
    assert!(!node.commit_claim(&email, rui).await.unwrap());
    assert!(!node.release(&email, rui).await.unwrap());
    assert!(node.commit_claim(&email, ana).await.unwrap());
    assert_eq!(node.holder(&email).await.unwrap(), Some(Holder::Held(ana)));
    // A contact change or cancellation gives it up; then it is anyone's.
    assert!(node.release(&email, ana).await.unwrap());
    assert_eq!(node.holder(&email).await.unwrap(), None);
    assert_eq!(node.claim(&email, rui).await.unwrap(), Claim::Ours);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_index_entry_is_reported_not_trusted() {
    let cluster = TestCluster::shared();
    let node = cluster.node().await;
    let phone = phone_key();
    let mut set = redis::cmd("SET");
    set.arg(&phone).arg("garbage");
    node.command_on_key(set, &phone).await.unwrap();
    assert!(matches!(
        node.holder(&phone).await,
        Err(engine::EngineError::Corrupt(_))
    ));
    assert!(matches!(
        node.claim(&phone, account_id()).await,
        Err(engine::EngineError::Corrupt(_))
    ));
}

/// `id` registers holding `key`, and `key` then leads to it.
async fn registers(node: &engine::cluster::Cluster, id: engine::AccountId, key: &str) {
    let index = [key.to_string()];
    let outcome = node.register(id, b"next".to_vec(), &index).await.unwrap();
    assert_eq!(outcome, Registration::Registered);
    assert_eq!(node.lookup(key).await.unwrap(), Some(id));
}

/// Makes `key`'s TTL run out now (an expiry time in the past deletes it).
async fn expire_now(node: &engine::cluster::Cluster, key: &str) {
    let mut cmd = redis::cmd("PEXPIREAT");
    cmd.arg(key).arg(1);
    node.command_on_key(cmd, key).await.unwrap();
}
