//! Two engines on one cluster, as two otpd processes behind a load
//! balancer: what one does, the other sees at once, and every single-use,
//! lockout and uniqueness guarantee holds across them.

use std::sync::Arc;

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";

#[test]
fn a_citizen_logs_in_on_one_node_and_verifies_on_the_other() {
    let a = TestEngine::new();
    let b = a.peer();
    let id = a.register(PHONE);
    assert_eq!(b.view(id).phone.unwrap().as_str(), PHONE);
    let issued = a.login_code(PHONE);
    let status = b.engine.challenge_status(issued.challenge_id).unwrap();
    assert_eq!(status.account, id);
    assert_eq!(status.state, ChallengeStatusKind::Pending);
    assert!(matches!(
        b.verify(issued.challenge_id, issued.code.expose()),
        Verification::Approved(_)
    ));
    // Used on B: used on A too.
    assert_eq!(
        a.verify(issued.challenge_id, issued.code.expose()),
        Verification::AlreadyUsed
    );
    // A new login on B supersedes A's code: only the last is valid.
    let first = b.login_code(PHONE);
    let second = a.login_code(PHONE);
    assert_eq!(
        b.verify(first.challenge_id, first.code.expose()),
        Verification::Superseded
    );
    assert!(matches!(
        b.verify(second.challenge_id, second.code.expose()),
        Verification::Approved(_)
    ));
}

#[test]
fn a_lock_on_one_node_refuses_on_the_other() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(PHONE);
    let threshold = a.config.lockout.pin_threshold;
    for _ in 0..threshold {
        assert!(!matches!(
            a.login(PHONE, OTHER_PIN),
            LoginOutcome::CodeSent(_)
        ));
    }
    assert!(matches!(b.login(PHONE, PIN), LoginOutcome::Locked));
    assert!(matches!(a.login(PHONE, PIN), LoginOutcome::Locked));
}

#[test]
fn failures_counted_on_both_nodes_add_up() {
    let a = TestEngine::with_config(|c| {
        c.codes.login.max_attempts = 100;
        c.lockout.code_threshold = 100;
    });
    let b = a.peer();
    let id = a.register(PHONE);
    let issued = a.login_code(PHONE);
    let bad = wrong(&issued.code);
    let (ea, eb) = (Arc::clone(&a.engine), Arc::clone(&b.engine));
    let challenge = issued.challenge_id;
    let results = in_parallel(40, move |i| {
        let engine = if i % 2 == 0 { &ea } else { &eb };
        engine
            .verify(challenge, Purpose::Login, &Code::new(&bad))
            .and_then(Durable::wait)
            .unwrap()
    });
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Verification::WrongCode { .. }))
    );
    assert_eq!(a.view(id).code_failures, 40);
    assert_eq!(b.view(id).code_failures, 40);
}

#[test]
fn the_right_code_sent_fifty_times_through_two_nodes_is_approved_once() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(PHONE);
    let issued = a.login_code(PHONE);
    let (ea, eb) = (Arc::clone(&a.engine), Arc::clone(&b.engine));
    let (id, code) = (issued.challenge_id, issued.code.clone());
    let results = in_parallel(50, move |i| {
        let engine = if i % 2 == 0 { &ea } else { &eb };
        engine
            .verify(id, Purpose::Login, &code)
            .and_then(Durable::wait)
            .unwrap()
    });
    let approved = results
        .iter()
        .filter(|r| matches!(r, Verification::Approved(_)))
        .count();
    assert_eq!(approved, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Verification::Approved(_) | Verification::AlreadyUsed))
    );
}

#[test]
fn two_nodes_registering_one_phone_a_hundred_times_make_one_account_each_time() {
    let a = TestEngine::new();
    let b = a.peer();
    let engines = [Arc::clone(&a.engine), Arc::clone(&b.engine)];
    for round in 0..100u32 {
        let phone = format!("+3519{:08}", 10_000_000 + round);
        let engines = engines.clone();
        let results = in_parallel(2, move |i| {
            engines[i]
                .register(NewAccount {
                    // Each node its own identity: only the phone is shared.
                    identity: Identity::parse(
                        IdentityKind::CivilId,
                        &format!("{:08}", round * 2 + u32::try_from(i).unwrap()),
                        None,
                    )
                    .unwrap(),
                    phone: Some(Phone::parse(&phone).unwrap()),
                    email: None,
                    pin: Pin::new(PIN),
                    birth_date: None,
                    postal_address: None,
                    dm: None,
                    locale: None,
                })
                .and_then(Durable::wait)
                .map(|view| view.id)
        });
        let winners: Vec<AccountId> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(EngineError::Conflict { field: "phone" }))),
            "round {round}: {results:?}"
        );
        let login =
            LoginId::Phone(Phone::parse(&format!("+3519{:08}", 10_000_000 + round)).unwrap());
        assert_eq!(a.engine.find_by_login(&login).unwrap(), Some(winners[0]));
        assert_eq!(b.engine.find_by_login(&login).unwrap(), Some(winners[0]));
    }
    // The losers left nothing: one account per round.
    assert_eq!(a.accounts_held(), 100);
}

#[test]
fn a_client_added_or_revoked_on_one_node_reaches_the_other_within_the_refresh_bound() {
    let a = TestEngine::new();
    let b = a.peer();
    let bound = a.config.store.cluster.as_ref().unwrap().client_refresh;
    let (_, key) = a
        .engine
        .add_client("portal", Scopes::of(&[Scope::Auth]))
        .and_then(Durable::wait)
        .unwrap();
    let key = key.expose().to_owned();
    assert!(a.engine.authenticate_client(&key).is_some());
    // A name is unique across nodes at once (B reads the registry to add).
    assert!(matches!(
        b.engine.add_client("portal", Scopes::of(&[Scope::Auth])),
        Err(EngineError::Conflict { field: "name" })
    ));
    // B answers from its copy until the bound passes, then knows the client.
    a.advance(bound);
    assert!(b.engine.authenticate_client(&key).is_some());
    a.engine
        .revoke_client("portal")
        .and_then(Durable::wait)
        .unwrap();
    assert!(
        a.engine.authenticate_client(&key).is_none(),
        "at once where revoked"
    );
    a.advance(bound);
    assert!(
        b.engine.authenticate_client(&key).is_none(),
        "on the other node within the bound"
    );
    // A restarted node reads the registry, not its own directory.
    let b = b.restart();
    assert!(b.engine.clients().iter().any(|c| c.name == "portal"));
}

#[test]
fn a_contact_change_confirmed_through_both_nodes_at_once_keeps_the_new_phone_indexed() {
    let a = TestEngine::new();
    let b = a.peer();
    let id = a.register(PHONE);
    for round in 0..10u32 {
        let new_phone = format!("+3519{:08}", 20_000_000 + round);
        let proof = a.step_up(id);
        let started = a
            .engine
            .begin_contact_change(
                id,
                proof.challenge_id,
                &proof.code,
                Contact::Phone(Phone::parse(&new_phone).unwrap()),
                None,
            )
            .and_then(Durable::wait)
            .unwrap();
        let ContactChangeStart::CodeSent(issued) = started else {
            panic!("round {round}: {started:?}");
        };
        let engines = [Arc::clone(&a.engine), Arc::clone(&b.engine)];
        let (challenge, code) = (issued.challenge_id, issued.code.clone());
        let results = in_parallel(4, move |i| {
            engines[i % 2]
                .confirm_contact_change(challenge, &code)
                .and_then(Durable::wait)
        });
        let approved = results
            .iter()
            .filter(|r| matches!(r, Ok(Verification::Approved(_))))
            .count();
        assert_eq!(approved, 1, "round {round}: {results:?}");
        // The account holds the new phone, and the phone finds the account
        // on both nodes (a request that lost the race never frees it).
        assert_eq!(a.view(id).phone.unwrap().as_str(), new_phone);
        let login = LoginId::Phone(Phone::parse(&new_phone).unwrap());
        assert_eq!(
            a.engine.find_by_login(&login).unwrap(),
            Some(id),
            "round {round}"
        );
        assert_eq!(
            b.engine.find_by_login(&login).unwrap(),
            Some(id),
            "round {round}"
        );
    }
}

/// The actor of a request from `claim`'s client carrying `claim`.
fn keyed(claim: &Claim) -> audit::Actor {
    audit::Actor {
        client: Some(claim.client().into()),
        request_id: Some("r1".into()),
        source_ip: None,
        idempotency: Some(Arc::new(claim.clone())),
        client_id: None,
    }
}

#[test]
fn an_idempotency_key_taken_on_one_node_holds_on_the_other() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(PHONE);
    let claim = Claim::new("portal", "login-1", [1; 32]).unwrap();
    let other_request = Claim::new("portal", "login-1", [2; 32]).unwrap();
    assert_eq!(a.engine.take(&claim).unwrap(), Taken::Run);
    // Running on A: a retry through B is told so, and runs nothing.
    assert_eq!(b.engine.take(&claim).unwrap(), Taken::Elsewhere);
    let outcome = audit::acting(&keyed(&claim), || a.login(PHONE, PIN));
    assert!(matches!(outcome, LoginOutcome::CodeSent(_)));
    a.engine
        .remember(&claim, b"201 challenge".to_vec())
        .and_then(Durable::wait)
        .unwrap();
    // Answered on A: B gives the answer, for this request only.
    for (node, asked) in [(&b, &claim), (&a, &claim), (&b, &other_request)] {
        match node.engine.take(asked).unwrap() {
            Taken::Remembered(r) => {
                assert_eq!(r.answer.as_deref(), Some(&b"201 challenge"[..]));
                assert_eq!(r.fingerprint, [1; 32], "the caller compares it");
                assert_eq!(r.created_at, START);
            }
            other => panic!("{other:?}"),
        }
    }
    // Another client's key of the same name is its own.
    let theirs = Claim::new("other", "login-1", [1; 32]).unwrap();
    assert_eq!(b.engine.take(&theirs).unwrap(), Taken::Run);
}

#[test]
fn a_key_given_back_runs_again_unless_its_request_changed_something() {
    let a = TestEngine::new();
    let b = a.peer();
    a.register(PHONE);
    // Nothing changed (a refusal): given back, a retry on B runs.
    let refused = Claim::new("portal", "k1", [1; 32]).unwrap();
    assert_eq!(a.engine.take(&refused).unwrap(), Taken::Run);
    let outcome = audit::acting(&keyed(&refused), || a.login("+351919999999", PIN));
    assert!(!matches!(outcome, LoginOutcome::CodeSent(_)));
    a.engine.give_back(&refused).unwrap();
    assert_eq!(b.engine.take(&refused).unwrap(), Taken::Run);
    // A change made, its answer not kept (say a 503 after the write): a
    // retry on B is told the answer is lost, and never runs it again.
    let changed = Claim::new("portal", "k2", [2; 32]).unwrap();
    assert_eq!(a.engine.take(&changed).unwrap(), Taken::Run);
    let outcome = audit::acting(&keyed(&changed), || a.login(PHONE, PIN));
    assert!(matches!(outcome, LoginOutcome::CodeSent(_)));
    a.engine.give_back(&changed).unwrap();
    match b.engine.take(&changed).unwrap() {
        Taken::Remembered(r) => assert_eq!(r.answer, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_key_whose_node_died_mid_request_is_never_run_again() {
    let a = TestEngine::new();
    let b = a.peer();
    let claim = Claim::new("portal", "k", [3; 32]).unwrap();
    assert_eq!(a.engine.take(&claim).unwrap(), Taken::Run);
    drop(a);
    // Within the lease the request may still be running.
    assert_eq!(b.engine.take(&claim).unwrap(), Taken::Elsewhere);
    b.advance(std::time::Duration::from_secs(121));
    match b.engine.take(&claim).unwrap() {
        Taken::Remembered(r) => assert_eq!(r.answer, None, "lost, not run"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fifty_nodes_worth_of_retries_of_one_key_run_it_once() {
    let a = Arc::new(TestEngine::new());
    let b = Arc::new(a.peer());
    let claim = Claim::new("portal", "burst", [4; 32]).unwrap();
    let runs = in_parallel(50, move |i| {
        let node = if i % 2 == 0 { &a } else { &b };
        node.engine.take(&claim).unwrap() == Taken::Run
    });
    assert_eq!(runs.iter().filter(|r| **r).count(), 1, "{runs:?}");
}

/// The TTL of `key` on the cluster, in ms (-1: none, -2: no such key).
pub(crate) fn pttl(key: &str) -> i64 {
    let cluster = crate::cluster_fixture::for_process();
    let port = cluster.masters()[0].clone();
    let out = std::process::Command::new("redis-cli")
        .args(["-c", "-p", &port, "PTTL", key])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("PTTL")
}

#[test]
fn a_cancelled_account_is_erased_by_the_cluster_when_the_retention_ends() {
    const DAY_MS: i64 = 86_400_000;
    let t = TestEngine::with_config(|c| {
        c.audit.retention = Some(std::time::Duration::from_secs(30 * 86_400));
    });
    let id = t.register(PHONE);
    let kept = t.register("+351939999999");
    let keys = engine::cluster::keys::KeySpace::new(&t.cluster_namespace().unwrap());
    assert_eq!(pttl(&keys.account(id)), -1, "a live account is permanent");
    t.advance(std::time::Duration::from_secs(86_400));
    t.engine.cancel(id).unwrap().wait().unwrap();
    let ttl = pttl(&keys.account(id));
    assert!(
        (30 * DAY_MS - 60_000..=30 * DAY_MS).contains(&ttl),
        "erased 30 days after the cancellation: {ttl} ms"
    );
    assert_eq!(pttl(&keys.account(kept)), -1);
    // Its phone is free at once: the citizen may come back.
    let back = t.register(PHONE);
    assert_eq!(pttl(&keys.account(back)), -1);
}

/// An engine on a cluster of the test's own (`namespace` in it). Its
/// writes wait the fixture's 2 s for a replica's confirmation: a fresh
/// cluster on a machine also building and testing can take a replica past
/// a shorter wait before the test has stopped any.
fn on_private(private: &crate::cluster_fixture::TestCluster, namespace: &str) -> TestEngine {
    TestEngine::with_config(|c| {
        c.store.cluster = Some(engine::cluster::ClusterConfig {
            namespace: namespace.into(),
            ..private.config()
        });
    })
}

/// `f`'s answer, run while every replica of `private` is stopped (SIGSTOP):
/// masters apply writes, `WAIT` sees none confirmed.
fn with_replicas_stopped<T>(
    private: &crate::cluster_fixture::TestCluster,
    f: impl FnOnce() -> T,
) -> T {
    let replicas: Vec<String> = private
        .masters()
        .iter()
        .map(|m| private.replica_of(m))
        .collect();
    for r in &replicas {
        private.signal(r, "STOP");
    }
    let answer = f();
    for r in &replicas {
        private.signal(r, "CONT");
    }
    answer
}

#[test]
fn a_change_made_but_not_confirmed_by_a_replica_is_in_its_nodes_trail_at_once() {
    let private = crate::cluster_fixture::TestCluster::start();
    let t = on_private(&private, "unconfirmed");
    let id = t.register(PHONE);
    // The master applies the lock; WAIT sees no replica confirm it.
    let outcome = with_replicas_stopped(&private, || t.engine.lock(id, "fraud report"));
    assert!(
        matches!(outcome, Err(EngineError::NotStored(_))),
        "not acknowledged: {outcome:?}"
    );
    // Made all the same: the account is locked, and the lock's event is in
    // this node's trail now, not only at its next start.
    assert!(matches!(t.view(id).state, AccountState::Locked(_)));
    t.engine.flush().unwrap();
    let events = t.engine.account_events(id, None, 10).unwrap();
    assert!(
        events
            .iter()
            .any(|r| r.event.kind == audit::EventKind::Locked),
        "{events:?}"
    );
}

#[test]
fn a_key_whose_take_was_not_confirmed_is_free_for_the_retry() {
    let private = crate::cluster_fixture::TestCluster::start();
    let t = on_private(&private, "unconfirmed-take");
    let claim = Claim::new("portal", "k", [5; 32]).unwrap();
    let taken = with_replicas_stopped(&private, || t.engine.take(&claim));
    assert!(matches!(taken, Err(EngineError::NotStored(_))), "{taken:?}");
    // The request never ran: its retry runs, not "in flight" nor "lost".
    assert_eq!(t.engine.take(&claim).unwrap(), Taken::Run);
}

#[test]
fn past_its_cap_a_clients_oldest_key_is_forgotten_on_the_cluster_and_others_keep_theirs() {
    let a = TestEngine::with_config(|c| c.idempotency.max_keys_per_client = 2);
    let b = a.peer();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        for client in ["portal", "other"] {
            let claim = Claim::new(client, key, [6; 32]).unwrap();
            let node = if i % 2 == 0 { &a } else { &b };
            assert_eq!(node.engine.take(&claim).unwrap(), Taken::Run);
            node.engine
                .remember(&claim, vec![i as u8])
                .and_then(Durable::wait)
                .unwrap();
        }
        a.advance(std::time::Duration::from_secs(1));
    }
    for client in ["portal", "other"] {
        // A key remembered is only read; a forgotten one is taken afresh
        // (last: it would push the client's oldest out again).
        for (i, key) in [(1u8, "b"), (2, "c")] {
            let claim = Claim::new(client, key, [6; 32]).unwrap();
            match a.engine.take(&claim).unwrap() {
                Taken::Remembered(r) => assert_eq!(r.answer.as_deref(), Some(&[i][..])),
                other => panic!("{client} {key}: {other:?}"),
            }
        }
        let first = Claim::new(client, "a", [6; 32]).unwrap();
        assert_eq!(
            b.engine.take(&first).unwrap(),
            Taken::Run,
            "{client}: forgotten"
        );
    }
}

/// Issues a step-up code for `account` on `node`: the refusal, if any.
fn step_up_refusal(node: &TestEngine, account: AccountId) -> Option<EngineError> {
    node.engine
        .issue_step_up(account, None, None, None)
        .and_then(Durable::wait)
        .err()
}

#[test]
fn an_accounts_code_budget_is_one_for_both_nodes() {
    let a = TestEngine::with_config(|c| {
        c.limits = IssueLimitsConfig {
            per_account: vec![Rate {
                count: 5,
                per: std::time::Duration::from_secs(600),
            }],
            ..IssueLimitsConfig::off()
        };
    });
    let b = a.peer();
    let id = a.register(PHONE);
    // An attacker alternating between nodes gets one node's five, not ten.
    for i in 0..5 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert!(step_up_refusal(node, id).is_none(), "code {i}");
    }
    for node in [&a, &b] {
        match step_up_refusal(node, id) {
            Some(EngineError::RateLimited {
                reason: "account_issue_rate",
                retry_after,
                ..
            }) => assert_eq!(retry_after, std::time::Duration::from_secs(120)),
            other => panic!("expected the account's limit, got {other:?}"),
        }
    }
    // One more every two minutes, whichever node asks.
    a.advance(std::time::Duration::from_secs(120));
    assert!(step_up_refusal(&b, id).is_none());
    assert!(step_up_refusal(&a, id).is_some());
}

#[test]
fn an_sms_country_budget_and_its_pumping_tallies_hold_across_nodes() {
    let a = TestEngine::with_config(|c| {
        c.limits = IssueLimitsConfig {
            sms_per_calling_code: vec![Rate::per_hour(3)],
            pumping_min_sends: 3,
            ..IssueLimitsConfig::off()
        };
    });
    let b = a.peer();
    // Rotating destinations in one country, through both nodes.
    let phones: Vec<String> = (0..5).map(|n| format!("+4477009000{n:02}")).collect();
    let ids: Vec<AccountId> = phones.iter().map(|p| a.register(p)).collect();
    let mut refused = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        if let Some(e) = step_up_refusal(node, *id) {
            refused.push((i, e));
        }
    }
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (i, e) in &refused {
        assert!(*i >= 3, "{refused:?}");
        assert!(
            matches!(
                e,
                EngineError::RateLimited {
                    reason: "sms_country_budget",
                    ..
                }
            ),
            "{e:?}"
        );
    }
    // Both nodes see the country's three sends, none verified: the alarm
    // is the cluster's, not each node's. (Counts go out without waiting:
    // poll a bounded number of times.)
    for node in [&a, &b] {
        let mut seen = None;
        for _ in 0..200 {
            let uk = node
                .engine
                .sms_conversion()
                .unwrap()
                .into_iter()
                .find(|c| c.calling_code == 44);
            if uk.is_some_and(|c| c.recent_sent == 3) {
                seen = uk;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let uk = seen.expect("the country's tallies reach 3 on every node");
        assert_eq!((uk.sent, uk.recent_verified), (3, 0));
        assert!(uk.alarm);
    }
}

#[test]
fn a_limit_the_cluster_cannot_check_refuses_the_code_and_is_counted() {
    // A cluster of its own: one of its masters stops taking writes.
    let private = crate::cluster_fixture::TestCluster::start();
    let node = TestEngine::with_config(|c| {
        // The fixture's 2 s WAIT (the setup's writes must not flake on a
        // loaded machine), and a limit check given up well within the
        // master's 4 s pause below.
        c.store.cluster = Some(engine::cluster::ClusterConfig {
            timeout: std::time::Duration::from_millis(2_500),
            namespace: "fail-closed".into(),
            ..private.config()
        });
        c.limits = IssueLimitsConfig {
            per_account: vec![Rate::per_hour(100)],
            ..IssueLimitsConfig::off()
        };
    });
    // An account whose own slot is on another master than its limit's
    // bucket: that master alone stops answering writes.
    let (id, bucket_master) = (0..20)
        .find_map(|n| {
            let id = node.register(&format!("+3519123400{n:02}"));
            let bucket = format!("r:fail-closed/account_issue_rate:{id}");
            let account = engine::cluster::keys::KeySpace::new("fail-closed").account(id);
            let master = private.master_of(&bucket);
            (master != private.master_of(&account)).then_some((id, master))
        })
        .expect("some account's slot is on another master than its bucket");
    assert!(step_up_refusal(&node, id).is_none());
    let queued = node.engine.stats().outbox;
    private.on_node(&bucket_master, &["client", "pause", "4000", "write"]);
    let refused = step_up_refusal(&node, id);
    private.on_node(&bucket_master, &["client", "unpause"]);
    match refused {
        Some(EngineError::Storage(why)) => {
            assert!(why.contains("account_issue_rate"), "{why}");
        }
        other => panic!("expected the request refused (503), got {other:?}"),
    }
    // Nothing was sent or queued, and the metric says why.
    assert_eq!(node.engine.stats().outbox, queued);
    let counts = node.engine.stats().cluster.unwrap();
    assert_eq!(counts.limits_unanswered, 1);
    assert!(step_up_refusal(&node, id).is_none(), "answers again");
}

/// Two nodes send account-less codes to one new number at once, 20 times:
/// the holder is made by whichever compare-and-set lands first (the other
/// recomputes on it), every request succeeds, and only the last code of
/// each round verifies, through either node.
#[test]
fn two_nodes_sending_to_one_new_destination_at_once_leave_one_live_code() {
    let a = TestEngine::new();
    let b = a.peer();
    for round in 0..20 {
        let to = Destination::Phone(Phone::parse(&format!("+3519120010{round:02}")).unwrap());
        let nodes = [Arc::clone(&a.engine), Arc::clone(&b.engine)];
        let issued = in_parallel(2, {
            let to = to.clone();
            move |i| {
                nodes[i]
                    .verify_destination(DestinationRequest {
                        destination: to.clone(),
                        channel: None,
                        locale: None,
                        lifetime: None,
                    })
                    .and_then(Durable::wait)
                    .unwrap()
                    .0
            }
        });
        let live = a.engine.live_destination_challenge(&to).unwrap();
        assert_eq!(b.engine.live_destination_challenge(&to).unwrap(), live);
        let mut approved = 0;
        for (i, code) in issued.iter().enumerate() {
            let node = if i == 0 { &b } else { &a };
            let outcome = node
                .engine
                .check_destination(DestinationTarget::Challenge(code.challenge_id), &code.code)
                .and_then(Durable::wait)
                .unwrap()
                .outcome;
            match outcome {
                Verification::Approved(_) => {
                    approved += 1;
                    assert_eq!(code.challenge_id, live, "round {round}");
                }
                Verification::Superseded => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(approved, 1, "round {round}");
    }
}
