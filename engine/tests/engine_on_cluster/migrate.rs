//! `otpd migrate`'s engine half: a population on the embedded store moved
//! to a cluster and served there (logins, a live code, a lock, a cancelled
//! account's freed phone, a client), then moved back into a new store.

use engine::*;

use crate::helpers::*;

const ANA: &str = "+351912345678";
const RUI: &str = "+351912345679";
const EVA: &str = "+351912345670";

#[test]
fn a_population_moves_to_a_cluster_and_back_and_is_served_the_same() {
    let sled = TestEngine::on(Backend::Sled, |_| {});
    let ana = sled.register_full(ANA, Some("ana@example.pt"), PIN);
    let rui = sled.register(RUI);
    let eva = sled.register(EVA);
    sled.engine
        .lock(rui, "fraud report")
        .and_then(Durable::wait)
        .unwrap();
    sled.engine.cancel(eva).and_then(Durable::wait).unwrap();
    let (_, key) = sled
        .engine
        .add_client("portal", Scopes::of(&[Scope::Auth]))
        .and_then(Durable::wait)
        .unwrap();
    // A live code, its message still queued.
    let pending = sled.login_code(ANA);

    let target = cluster_config();
    let moved = sled.engine.copy_to_cluster(target.clone()).unwrap();
    assert_eq!(
        (
            moved.accounts,
            moved.challenges,
            moved.messages,
            moved.clients
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(moved.sampled, 3);
    // Into a namespace that holds them already: refused.
    assert!(matches!(
        sled.engine.copy_to_cluster(target.clone()),
        Err(EngineError::WrongState(_))
    ));

    // Restarted once: a seed of its own, so its new ids are not the source's.
    let cluster =
        TestEngine::on(Backend::Cluster, |c| c.store.cluster = Some(target.clone())).restart();
    assert!(cluster.engine.authenticate_client(key.expose()).is_some());
    match cluster.verify(pending.challenge_id, pending.code.expose()) {
        Verification::Approved(approval) => assert_eq!(approval.account_id, ana),
        other => panic!("the migrated code: {other:?}"),
    }
    assert!(matches!(cluster.login(RUI, PIN), LoginOutcome::Locked));
    assert_eq!(cluster.view(eva).state.as_str(), "cancelled");
    // Erased by the cluster when the retention (730 days) ends; the others stay.
    let keys = engine::cluster::keys::KeySpace::new(&target.namespace);
    let ttl = crate::two_nodes::pttl(&keys.account(eva));
    assert!(ttl > 729 * 86_400_000, "{ttl}");
    assert_eq!(crate::two_nodes::pttl(&keys.account(ana)), -1);
    // The cancelled account's phone is free on the cluster too.
    cluster.register_full(EVA, None, OTHER_PIN);

    let back = TestEngine::on(Backend::Sled, |_| {}).restart().restart();
    let moved = back.engine.copy_from_cluster(target).unwrap();
    assert_eq!((moved.accounts, moved.clients), (4, 1));
    assert!(moved.sampled >= 4);
    let back = back.restart();
    assert!(back.engine.authenticate_client(key.expose()).is_some());
    assert!(matches!(back.login(ANA, PIN), LoginOutcome::CodeSent(_)));
    assert!(matches!(back.login(RUI, PIN), LoginOutcome::Locked));
    assert!(matches!(
        back.login(EVA, OTHER_PIN),
        LoginOutcome::CodeSent(_)
    ));
    // Into a store that is not empty: refused.
    assert!(back.engine.copy_from_cluster(cluster_config()).is_err());
}

#[test]
fn accounts_cancelled_longer_ago_than_the_retention_are_not_moved() {
    let sled = TestEngine::on(Backend::Sled, |c| {
        c.audit.retention = Some(std::time::Duration::from_secs(30 * 86_400));
    });
    let gone = sled.register(ANA);
    sled.engine.cancel(gone).and_then(Durable::wait).unwrap();
    sled.advance(std::time::Duration::from_secs(31 * 86_400));
    let recent = sled.register(RUI);
    sled.engine.cancel(recent).and_then(Durable::wait).unwrap();
    let kept = sled.register(EVA);
    let target = cluster_config();
    let moved = sled.engine.copy_to_cluster(target.clone()).unwrap();
    assert_eq!((moved.accounts, moved.erased, moved.sampled), (2, 1, 2));
    let keys = engine::cluster::keys::KeySpace::new(&target.namespace);
    assert_eq!(crate::two_nodes::pttl(&keys.account(gone)), -2, "not there");
    let ttl = crate::two_nodes::pttl(&keys.account(recent));
    assert!((29 * 86_400_000..=30 * 86_400_000).contains(&ttl), "{ttl}");
    assert_eq!(crate::two_nodes::pttl(&keys.account(kept)), -1);
}
