//! The send queue across nodes: a message is sent by the node that queued
//! it, or, if that node does not report on it within its lease, by another;
//! two nodes polling at once never both take one message; retries, dead
//! letters and delivery status are the cluster's.

use std::collections::HashSet;
use std::time::Duration;

use engine::*;

use crate::helpers::*;

fn phone(n: usize) -> String {
    format!("+3519{n:08}")
}

fn report(t: &TestEngine, id: MessageId, result: SendResult) {
    t.engine.outbox_report(id, result).unwrap().wait().unwrap();
}

fn delivery(t: &TestEngine, challenge: ChallengeId) -> DeliveryState {
    t.engine.challenge_status(challenge).unwrap().delivery
}

/// Messages waiting on the cluster (its due indexes, every node's).
fn queued(t: &TestEngine) -> u64 {
    t.engine.outbox_depth().unwrap()
}

fn counts(t: &TestEngine) -> ClusterCounts {
    t.engine.stats().cluster.expect("a cluster node")
}

#[test]
fn a_code_is_sent_by_the_node_that_queued_it_and_no_other() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(&phone(1));
    let issued = a.login_code(&phone(1));
    assert_eq!(queued(&b), 1, "one queue for both nodes");
    assert!(
        b.engine.outbox_due(10).is_empty(),
        "leased to the node that queued it"
    );
    let due = a.engine.outbox_due(10);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, issued.message_id);
    assert_eq!(due[0].code.expose(), issued.code.expose());
    assert_eq!(counts(&a).outbox_handed_off, 1);
    assert_eq!(counts(&a).outbox_claimed, 0, "no claim, no poll");
    report(&a, issued.message_id, SendResult::Sent);
    assert_eq!(delivery(&b, issued.challenge_id), DeliveryState::Sent);
    assert_eq!(queued(&a), 0, "its entry went with it");
    a.advance(a.config.outbox.lease * 2);
    assert!(a.engine.outbox_due(10).is_empty());
    assert!(b.engine.outbox_due(10).is_empty(), "sent once");
}

#[test]
fn a_message_whose_node_died_is_sent_by_another_once_the_lease_runs_out() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(&phone(1));
    a.register(&phone(2));
    // One code the dead node had taken (mid-send), one it never took.
    let taken = a.login_code(&phone(1));
    assert_eq!(a.engine.outbox_due(1).len(), 1, "taken by A's sender");
    let untaken = a.login_code(&phone(2));
    // A dies here: B must not send before A's lease has run out...
    let lease = a.config.outbox.lease;
    a.advance(lease - Duration::from_millis(1));
    assert!(b.engine.outbox_due(10).is_empty(), "still A's");
    // ...and sends both, once, with their ids (the gateways' idempotency
    // key: a send A finished after all is not made twice).
    a.advance(Duration::from_millis(1));
    let due = b.engine.outbox_due(10);
    let mut ids: Vec<MessageId> = due.iter().map(|m| m.id).collect();
    ids.sort_by_key(|id| id.to_string());
    let mut expected = vec![taken.message_id, untaken.message_id];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(ids, expected);
    assert!(due.iter().all(|m| m.attempt == 1));
    assert_eq!(counts(&b).outbox_leases_expired, 2);
    for m in &due {
        report(&b, m.id, SendResult::Sent);
    }
    // A's late report (it was sending after all) changes nothing.
    report(&a, taken.message_id, SendResult::Sent);
    for challenge in [taken.challenge_id, untaken.challenge_id] {
        assert_eq!(delivery(&a, challenge), DeliveryState::Sent);
    }
    assert_eq!(queued(&a), 0);
    a.advance(lease * 2);
    assert!(a.engine.outbox_due(10).is_empty());
    assert!(b.engine.outbox_due(10).is_empty());
}

#[test]
fn two_nodes_polling_at_once_take_each_message_once() {
    const MESSAGES: usize = 60;
    let a = TestEngine::new();
    let b = a.peer();
    let mut expected = HashSet::new();
    for n in 0..MESSAGES {
        a.register(&phone(n));
        expected.insert(a.login_code(&phone(n)).message_id);
    }
    // A's own sender never took them: every one falls due for a claim.
    a.advance(a.config.outbox.lease);
    let poll = |node: &TestEngine| {
        let mut taken = Vec::new();
        loop {
            let due = node.engine.outbox_due(4);
            if due.is_empty() {
                return taken;
            }
            taken.extend(due.into_iter().map(|m| m.id));
        }
    };
    let (by_a, by_b) = std::thread::scope(|s| {
        let on_a = s.spawn(|| poll(&a));
        let on_b = s.spawn(|| poll(&b));
        (on_a.join().unwrap(), on_b.join().unwrap())
    });
    let all: HashSet<MessageId> = by_a.iter().chain(&by_b).copied().collect();
    assert_eq!(by_a.len() + by_b.len(), MESSAGES, "none taken twice");
    assert_eq!(all, expected, "every one taken");
    for id in &by_a {
        report(&a, *id, SendResult::Sent);
    }
    for id in &by_b {
        report(&b, *id, SendResult::Sent);
    }
    assert_eq!(queued(&a), 0);
}

#[test]
fn a_retry_is_sent_by_any_node_and_a_failure_is_the_clusters() {
    let a = TestEngine::with_config(|c| c.outbox.max_attempts = 2);
    let b = a.peer();
    a.register(&phone(1));
    let issued = a.login_code(&phone(1));
    let first = a.engine.outbox_due(1).remove(0);
    report(
        &a,
        first.id,
        SendResult::Retry {
            after: Some(Duration::from_secs(5)),
            reason: "503 from gateway".into(),
        },
    );
    assert_eq!(delivery(&b, issued.challenge_id), DeliveryState::Queued);
    a.advance(Duration::from_millis(4_999));
    assert!(b.engine.outbox_due(1).is_empty(), "not before Retry-After");
    a.advance(Duration::from_millis(1));
    let second = b.engine.outbox_due(1);
    assert_eq!(second.len(), 1, "B sends A's retry");
    assert_eq!((second[0].id, second[0].attempt), (first.id, 2));
    report(
        &b,
        first.id,
        SendResult::Permanent {
            reason: "400 unknown number".into(),
        },
    );
    assert_eq!(delivery(&a, issued.challenge_id), DeliveryState::Failed);
    let dead = b.engine.dead_letters().unwrap();
    assert_eq!(dead.len(), 1, "kept by the node that gave up");
    assert_eq!((dead[0].id, dead[0].attempts), (first.id, 2));
    assert_eq!(queued(&a), 0);
    a.advance(a.config.outbox.lease * 2);
    assert!(a.engine.outbox_due(10).is_empty());
    assert!(b.engine.outbox_due(10).is_empty());
}

#[test]
fn a_superseded_code_queued_on_one_node_is_never_sent_by_the_other() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(&phone(1));
    let first = a.login_code(&phone(1));
    let second = b.login_code(&phone(1));
    // A's handoff still names the first code, which B's login superseded
    // (and marked dropped): A finds it gone and sends nothing.
    let from_a = a.engine.outbox_due(10);
    assert!(from_a.is_empty(), "superseded: {from_a:?}");
    assert_eq!(delivery(&a, first.challenge_id), DeliveryState::Dropped);
    let from_b = b.engine.outbox_due(10);
    assert_eq!(from_b.len(), 1);
    assert_eq!(from_b[0].id, second.message_id);
    report(&b, second.message_id, SendResult::Sent);
    assert_eq!(queued(&a), 0, "no entry left behind");
}

#[test]
fn a_message_whose_record_is_gone_leaves_no_entry_behind() {
    // An entry whose change never landed (a refused write, a conflict) is
    // removed by whoever claims it; it is never "sent".
    let a = TestEngine::new();
    a.register(&phone(1));
    let issued = a.login_code(&phone(1));
    let ns = a.cluster_namespace().unwrap();
    let fixture = crate::cluster_fixture::for_process();
    let account = issued.account_id.to_string();
    let message_key = format!("{{a:{ns}/{}}}m:{}", &account[..16], issued.message_id);
    let port = fixture.master_of(&message_key);
    assert_eq!(
        fixture.on_node(&port, &["DEL", &message_key]),
        "1",
        "the message's record"
    );
    a.advance(a.config.outbox.lease);
    assert!(a.engine.outbox_due(10).is_empty());
    assert_eq!(queued(&a), 0);
}

#[test]
fn a_poll_takes_no_more_than_it_asks_for() {
    const MESSAGES: usize = 40;
    let a = TestEngine::new();
    let b = a.peer();
    for n in 0..MESSAGES {
        a.register(&phone(n));
        a.login_code(&phone(n));
    }
    // Lost by a node that died: all due for claims at once.
    a.advance(a.config.outbox.lease);
    let mut taken = HashSet::new();
    for limit in [1, 3, 4, 17] {
        let due = b.engine.outbox_due(limit);
        assert!(
            !due.is_empty() && due.len() <= limit,
            "{} for {limit}",
            due.len()
        );
        taken.extend(due.into_iter().map(|m| m.id));
    }
    // What a share brought beyond the limit was given back, due now.
    loop {
        let due = b.engine.outbox_due(5);
        assert!(due.len() <= 5);
        if due.is_empty() {
            break;
        }
        for m in due {
            assert!(taken.insert(m.id), "taken twice");
        }
    }
    assert_eq!(taken.len(), MESSAGES);
}

#[test]
fn a_late_report_from_a_node_whose_lease_ran_out_does_not_undo_the_takeover() {
    let a = TestEngine::with_config(|c| c.outbox.max_attempts = 1);
    let b = a.peer();
    a.register(&phone(1));
    let issued = a.login_code(&phone(1));
    assert_eq!(a.engine.outbox_due(1).len(), 1, "A sends, slowly");
    a.advance(a.config.outbox.lease);
    let taken = b.engine.outbox_due(1);
    assert_eq!(taken.len(), 1, "B takes over");
    // A's gateway finally answers "retry" (or "failed"): B holds the message now.
    report(
        &a,
        issued.message_id,
        SendResult::Permanent {
            reason: "late".into(),
        },
    );
    assert!(
        a.engine.dead_letters().unwrap().is_empty(),
        "not A's to fail"
    );
    assert_eq!(delivery(&a, issued.challenge_id), DeliveryState::Queued);
    assert!(a.engine.outbox_due(10).is_empty(), "still B's");
    report(&b, issued.message_id, SendResult::Sent);
    assert_eq!(delivery(&a, issued.challenge_id), DeliveryState::Sent);
    assert_eq!(queued(&a), 0);
}

#[test]
fn a_late_sent_report_is_recorded_and_the_other_nodes_report_finds_it_done() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(&phone(1));
    let issued = a.login_code(&phone(1));
    assert_eq!(a.engine.outbox_due(1).len(), 1);
    a.advance(a.config.outbox.lease);
    assert_eq!(b.engine.outbox_due(1).len(), 1, "B takes over");
    // Both sends went out (the gateway saw one message id twice).
    report(&a, issued.message_id, SendResult::Sent);
    assert_eq!(delivery(&b, issued.challenge_id), DeliveryState::Sent);
    report(
        &b,
        issued.message_id,
        SendResult::Retry {
            after: None,
            reason: "503".into(),
        },
    );
    assert_eq!(delivery(&b, issued.challenge_id), DeliveryState::Sent);
    a.advance(a.config.outbox.lease * 2);
    assert!(a.engine.outbox_due(10).is_empty());
    assert!(b.engine.outbox_due(10).is_empty(), "not sent a third time");
    assert_eq!(queued(&a), 0);
}

#[test]
fn a_node_shutting_down_gives_back_the_codes_it_had_not_sent() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(&phone(1));
    let issued = a.login_code(&phone(1));
    drop(a);
    // No lease to wait for: the message is due for B at once.
    let due = b.engine.outbox_due(10);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, issued.message_id);
    assert_eq!(
        counts(&b).outbox_leases_expired,
        0,
        "given back, not taken over"
    );
}
