//! Idempotency keys in the engine: the claim written with the first change, answers, expiry, the cap, revocation, on both stores and across restarts.

use std::time::Duration;

use engine::audit::{Actor, acting};
use engine::*;

use crate::helpers::*;

const BACKENDS: [Backend; 2] = [Backend::Sled, Backend::Memory];
const PHONE_A: &str = "+351912345678";
const PHONE_B: &str = "+351912345679";
const DAY: Duration = Duration::from_secs(24 * 3600);

fn claim(client: &str, key: &str, request: u8) -> Claim {
    Claim::new(client, key, [request; 32]).unwrap()
}

/// The actor of a request from `claim`'s client carrying `claim`.
fn keyed(claim: &Claim) -> Actor {
    Actor {
        client: Some(claim.client().into()),
        request_id: Some("r1".into()),
        source_ip: None,
        idempotency: Some(std::sync::Arc::new(claim.clone())),
        client_id: None,
    }
}

fn remember(t: &TestEngine, claim: &Claim, answer: &[u8]) {
    t.engine
        .remember(claim, answer.to_vec())
        .and_then(Durable::wait)
        .unwrap();
}

fn answer(t: &TestEngine, claim: &Claim) -> Option<Vec<u8>> {
    let remembered = t.engine.recall(claim.client(), claim.key())?;
    assert_eq!(remembered.fingerprint, claim.fingerprint());
    Some(remembered.answer.map(|a| a.to_vec()).unwrap_or_default())
}

fn login(t: &TestEngine, phone: &str) -> LoginOutcome {
    t.engine
        .login(
            &LoginId::Phone(Phone::parse(phone).unwrap()),
            &Pin::new(PIN),
            Some(Channel::Sms),
            None,
            None,
        )
        .and_then(Durable::wait)
        .unwrap()
}

#[test]
fn a_keyed_login_writes_its_claim_in_the_logins_own_batch_and_it_survives_a_restart() {
    for backend in BACKENDS {
        let mut t = TestEngine::on(backend, |_| {});
        t.register(PHONE_A);
        t.register(PHONE_B);
        let writes = || t.engine.stats().flush.writes;
        let before = writes();
        login(&t, PHONE_B);
        let unkeyed = writes() - before;
        let first = claim("portal", "login-1", 1);
        let before = writes();
        let outcome = acting(&keyed(&first), || login(&t, PHONE_A));
        assert!(matches!(outcome, LoginOutcome::CodeSent(_)), "{backend:?}");
        assert_eq!(
            writes() - before,
            unkeyed,
            "{backend:?}: the claim takes no batch of its own"
        );
        let held = t.engine.recall("portal", "login-1").unwrap();
        assert_eq!(held.answer, None, "{backend:?}: claimed, not yet answered");
        assert_eq!(held.created_at, START);
        // A crash before the answer is stored keeps the claim: a retry is
        // told the request ran, and never runs it again.
        t = t.restart();
        let held = t.engine.recall("portal", "login-1").unwrap();
        assert_eq!(
            (held.fingerprint, held.answer),
            ([1; 32], None),
            "{backend:?}"
        );
        remember(&t, &first, b"201 challenge");
        t = t.restart();
        assert_eq!(
            answer(&t, &first).as_deref(),
            Some(&b"201 challenge"[..]),
            "{backend:?}"
        );
        assert_eq!(t.engine.stats().idempotency_keys, 1);
        // The key is the client's own: another client has none.
        assert_eq!(t.engine.recall("other", "login-1"), None);
    }
}

#[test]
fn events_name_the_actor_but_never_carry_the_key() {
    let t = TestEngine::new();
    let id = t.register(PHONE_A);
    let key = claim("portal", "step-up-1", 2);
    acting(&keyed(&key), || {
        t.engine.issue_step_up(id, None, None, None)
    })
    .and_then(Durable::wait)
    .unwrap();
    let events = t.engine.account_events(id, None, 10).unwrap();
    let issued = events
        .iter()
        .find(|r| r.event.actor.client.as_deref() == Some("portal"))
        .expect("the step-up's event names the client");
    assert_eq!(issued.event.actor.idempotency, None);
}

#[test]
fn a_call_that_changes_nothing_claims_nothing() {
    for backend in BACKENDS {
        let t = TestEngine::on(backend, |_| {});
        let key = claim("portal", "verify-1", 3);
        let unknown = ChallengeId::parse("challenge_id", &"09".repeat(16)).unwrap();
        let result = acting(&keyed(&key), || {
            t.engine
                .verify(unknown, Purpose::Login, &Code::new("123456"))
        });
        assert!(matches!(result, Err(EngineError::ChallengeNotFound)));
        assert_eq!(t.engine.recall("portal", "verify-1"), None, "{backend:?}");
    }
}

#[test]
fn a_key_is_forgotten_a_retention_after_its_first_request_and_swept() {
    for backend in BACKENDS {
        let mut t = TestEngine::on(backend, |_| {});
        let key = claim("portal", "k", 4);
        remember(&t, &key, b"first");
        t.advance(DAY - Duration::from_millis(1));
        // Answering again (a later store of the same key) keeps its time.
        remember(&t, &key, b"first");
        assert!(answer(&t, &key).is_some(), "{backend:?}: within the day");
        t.advance(Duration::from_millis(1));
        assert_eq!(t.engine.recall("portal", "k"), None, "{backend:?}");
        assert_eq!(t.engine.stats().idempotency_keys, 1, "held until swept");
        t.engine.sweep_expired().unwrap();
        assert_eq!(t.engine.stats().idempotency_keys, 0, "{backend:?}");
        t = t.restart();
        assert_eq!(t.engine.recall("portal", "k"), None, "{backend:?}");
        assert_eq!(t.engine.stats().idempotency_keys, 0);
    }
}

#[test]
fn expired_keys_are_dropped_on_open_even_if_never_swept() {
    for backend in BACKENDS {
        let mut t = TestEngine::on(backend, |_| {});
        remember(&t, &claim("portal", "old", 5), b"x");
        t.advance(DAY);
        t = t.restart();
        assert_eq!(t.engine.stats().idempotency_keys, 0, "{backend:?}");
    }
}

#[test]
fn past_the_cap_a_clients_oldest_key_is_forgotten_first_and_others_keep_theirs() {
    for backend in BACKENDS {
        let mut t = TestEngine::on(backend, |c| c.idempotency.max_keys_per_client = 2);
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            remember(&t, &claim("portal", key, 6), &[i as u8]);
            remember(&t, &claim("other", key, 6), &[i as u8]);
            t.advance(Duration::from_secs(1));
        }
        for client in ["portal", "other"] {
            assert_eq!(t.engine.recall(client, "a"), None, "{backend:?}");
            assert!(t.engine.recall(client, "b").is_some());
            assert!(t.engine.recall(client, "c").is_some());
        }
        assert_eq!(t.engine.stats().idempotency_evicted, 2);
        t = t.restart();
        assert_eq!(t.engine.stats().idempotency_keys, 4, "{backend:?}");
        // Opened with a lower cap, the oldest go.
        t.config.idempotency.max_keys_per_client = 1;
        t = t.restart();
        for client in ["portal", "other"] {
            assert_eq!(t.engine.recall(client, "b"), None, "{backend:?}");
            assert!(t.engine.recall(client, "c").is_some());
        }
    }
}

#[test]
fn revoking_a_client_forgets_its_keys_so_a_namesake_starts_afresh() {
    for backend in BACKENDS {
        let mut t = TestEngine::on(backend, |_| {});
        t.engine
            .add_client("portal", Scopes::of(&[Scope::Auth]))
            .and_then(Durable::wait)
            .unwrap();
        remember(&t, &claim("portal", "k", 7), b"x");
        remember(&t, &claim("other", "k", 7), b"y");
        t.engine
            .revoke_client("portal")
            .and_then(Durable::wait)
            .unwrap();
        assert_eq!(t.engine.recall("portal", "k"), None, "{backend:?}");
        t = t.restart();
        assert_eq!(t.engine.recall("portal", "k"), None, "{backend:?}");
        assert!(t.engine.recall("other", "k").is_some());
    }
}

#[test]
fn a_refused_answer_changes_nothing() {
    let store = MemoryStore::new();
    let engine = Engine::open_in_memory(
        &store,
        EngineConfig::for_tests(),
        CodeKey::new([1; 32]),
        std::sync::Arc::new(ManualClock::new(START)),
        seeded_rng([2; 32]),
    )
    .unwrap();
    store.refuse_writes(Some("1 MiB free"));
    let key = claim("portal", "k", 8);
    assert!(matches!(
        engine.remember(&key, b"x".to_vec()),
        Err(EngineError::DiskFull(_))
    ));
    assert_eq!(engine.recall("portal", "k"), None);
}
