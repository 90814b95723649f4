//! Account-less verification of a phone or an email: the same code rules
//! as every code (a new code per send, only the last valid, single use, an
//! attempt budget, a lifetime), the issuance limits, each client's own, and
//! no account made, claimed or left behind.

use std::time::Duration;

use engine::audit::acting;
use engine::*;

use crate::clients::{add, as_client};
use crate::helpers::*;

const PHONE: &str = "+351912000111";
const EMAIL: &str = "ana@example.pt";

fn phone(p: &str) -> Destination {
    Destination::Phone(Phone::parse(p).unwrap())
}

fn email(e: &str) -> Destination {
    Destination::Email(Email::parse(e).unwrap())
}

/// Asks for a code to `to` (channel and language its own).
fn ask(t: &TestEngine, to: Destination, lifetime: Option<Duration>) -> Result<Durable<Issued>> {
    t.engine
        .verify_destination(DestinationRequest {
            destination: to,
            channel: None,
            locale: None,
            lifetime,
        })
        .map(|sent| sent.map(|(issued, _)| issued))
}

fn send(t: &TestEngine, to: Destination) -> Issued {
    ask(t, to, None).and_then(Durable::wait).unwrap()
}

fn check(t: &TestEngine, target: DestinationTarget, code: &str) -> DestinationCheck {
    t.engine
        .check_destination(target, &Code::new(code))
        .and_then(Durable::wait)
        .unwrap()
}

fn by_id(issued: &Issued) -> DestinationTarget {
    DestinationTarget::Challenge(issued.challenge_id)
}

/// The accounts the engine holds in memory, holders included (embedded store).
fn held_in_memory(t: &TestEngine) -> usize {
    t.engine.accounts_in_memory()
}

/// The holder id the audit trail gives a destination's codes.
fn holder_of(t: &TestEngine, challenge: ChallengeId) -> AccountId {
    t.engine.flush().unwrap();
    let mut found = None;
    let hex = challenge.to_string();
    t.engine
        .scan_events(0, &mut |r| {
            let mine = r
                .event
                .details
                .iter()
                .any(|(k, v)| k == "challenge_id" && v.to_string() == hex);
            if mine {
                found = r.event.account;
            }
            Ok(found.is_none())
        })
        .unwrap();
    found.expect("the code's events name its holder")
}

#[test]
fn a_phone_and_an_email_are_verified_without_an_account() {
    let t = TestEngine::new();
    for (to, channel) in [(phone(PHONE), Channel::Sms), (email(EMAIL), Channel::Email)] {
        let issued = send(&t, to.clone());
        assert_eq!(issued.purpose, Purpose::Destination);
        assert_eq!(issued.channel, channel);
        assert_eq!(issued.destination, to.as_str());
        let due = t.engine.outbox_due(10);
        assert_eq!(due.len(), 1, "queued for its gateway like any code");
        assert_eq!(due[0].code.expose(), issued.code.expose());
        assert_eq!(due[0].purpose, Purpose::Destination);
        t.engine
            .outbox_report(due[0].id, SendResult::Sent)
            .and_then(Durable::wait)
            .unwrap();
        let status = t.engine.destination_status(issued.challenge_id).unwrap();
        assert_eq!(status.destination, to.as_str());
        assert_eq!(status.status.state, ChallengeStatusKind::Pending);
        assert_eq!(status.status.delivery, DeliveryState::Sent);
        let checked = check(&t, by_id(&issued), issued.code.expose());
        assert!(matches!(checked.outcome, Verification::Approved(_)));
        assert_eq!(checked.status.status.state, ChallengeStatusKind::Verified);
        assert_eq!(checked.status.destination, to.as_str());
        // Single use.
        let again = check(&t, by_id(&issued), issued.code.expose());
        assert_eq!(again.outcome, Verification::AlreadyUsed);
    }
    // No account came of it: nothing to find, nothing counted, and the
    // generic challenge read does not show a holder's challenges.
    if t.backend != Backend::Cluster {
        assert_eq!(t.engine.stats().accounts, 0);
    }
    let issued = send(&t, phone(PHONE));
    assert!(matches!(
        t.engine.challenge_status(issued.challenge_id),
        Err(EngineError::ChallengeNotFound)
    ));
}

#[test]
fn every_send_is_a_new_code_and_only_the_last_verifies() {
    let t = TestEngine::new();
    let first = send(&t, phone(PHONE));
    let second = send(&t, phone(PHONE));
    assert_ne!(first.challenge_id, second.challenge_id);
    assert_eq!(
        check(&t, by_id(&first), first.code.expose()).outcome,
        Verification::Superseded
    );
    // The live one is found by its destination too.
    let live = t.engine.live_destination_challenge(&phone(PHONE)).unwrap();
    assert_eq!(live, second.challenge_id);
    let checked = check(
        &t,
        DestinationTarget::To(phone(PHONE)),
        second.code.expose(),
    );
    assert!(matches!(checked.outcome, Verification::Approved(_)));
    // Nothing live any more.
    assert!(matches!(
        t.engine.live_destination_challenge(&phone(PHONE)),
        Err(EngineError::ChallengeNotFound)
    ));
}

#[test]
fn wrong_codes_spend_the_attempts_and_lock_nothing() {
    let t = TestEngine::new();
    let issued = send(&t, phone(PHONE));
    let attempts = t.config.codes.destination.max_attempts;
    for left in (0..attempts).rev() {
        let outcome = check(&t, by_id(&issued), &wrong(&issued.code)).outcome;
        assert_eq!(
            outcome,
            Verification::WrongCode {
                attempts_remaining: left
            }
        );
    }
    assert_eq!(
        check(&t, by_id(&issued), issued.code.expose()).outcome,
        Verification::Exhausted,
        "out of attempts, even with the right code"
    );
    // More wrong codes than the lockout threshold across codes: no lock,
    // a new code still works (the send limits bound the guesses).
    for _ in 0..t.config.lockout.code_threshold {
        let next = send(&t, phone(PHONE));
        check(&t, by_id(&next), &wrong(&next.code));
    }
    let last = send(&t, phone(PHONE));
    assert!(matches!(
        check(&t, by_id(&last), last.code.expose()).outcome,
        Verification::Approved(_)
    ));
}

#[test]
fn a_code_expires_and_lifetimes_stay_within_the_policy() {
    let t = TestEngine::new();
    let issued = send(&t, email(EMAIL));
    t.advance(t.config.codes.destination.lifetime);
    assert_eq!(
        check(&t, by_id(&issued), issued.code.expose()).outcome,
        Verification::Expired
    );
    let too_long = ask(
        &t,
        email(EMAIL),
        Some(t.config.codes.destination.lifetime + Duration::from_secs(1)),
    );
    assert!(
        matches!(
            too_long,
            Err(EngineError::Invalid {
                field: "lifetime",
                ..
            })
        ),
        "{too_long:?}"
    );
    let wrong_channel = t.engine.verify_destination(DestinationRequest {
        destination: phone(PHONE),
        channel: Some(Channel::Email),
        locale: None,
        lifetime: None,
    });
    assert!(
        matches!(
            wrong_channel,
            Err(EngineError::Invalid {
                field: "channel",
                ..
            })
        ),
        "{wrong_channel:?}"
    );
}

#[test]
fn a_client_sees_only_its_own_verifications() {
    let t = TestEngine::new();
    let a = add(&t, NewClient::new("shop", Scopes::of(&[Scope::Auth]))).0;
    let b = add(&t, NewClient::new("bank", Scopes::of(&[Scope::Auth]))).0;
    let issued = acting(&as_client(&a), || send(&t, phone(PHONE)));
    acting(&as_client(&b), || {
        for target in [by_id(&issued), DestinationTarget::To(phone(PHONE))] {
            let found = t.engine.check_destination(target, &issued.code);
            assert!(
                matches!(found, Err(EngineError::ChallengeNotFound)),
                "{found:?}"
            );
        }
        assert!(t.engine.destination_status(issued.challenge_id).is_err());
        let ended = t.engine.end_destination(by_id(&issued), Ending::Cancel);
        assert!(matches!(ended, Err(EngineError::ChallengeNotFound)));
        // Its own code to the same phone is another holder's: A's stays live.
        let own = send(&t, phone(PHONE));
        assert!(matches!(
            check(&t, by_id(&own), own.code.expose()).outcome,
            Verification::Approved(_)
        ));
    });
    acting(&as_client(&a), || {
        assert!(matches!(
            check(&t, by_id(&issued), issued.code.expose()).outcome,
            Verification::Approved(_)
        ));
    });
}

#[test]
fn a_client_limited_to_other_purposes_may_not_verify_destinations() {
    let t = TestEngine::new();
    let mut new = NewClient::new("portal", Scopes::of(&[Scope::Auth]));
    new.policy.purposes = Some(PurposeSet::of(&[Purpose::Login]));
    let portal = add(&t, new).0;
    let refused = acting(&as_client(&portal), || ask(&t, phone(PHONE), None));
    assert!(
        matches!(
            refused,
            Err(EngineError::NotPermitted {
                field: "purpose",
                ..
            })
        ),
        "{refused:?}"
    );
}

#[test]
fn a_verification_is_cancelled_or_approved_by_its_client() {
    let t = TestEngine::new();
    let cancelled = send(&t, phone(PHONE));
    let status = t
        .engine
        .end_destination(by_id(&cancelled), Ending::Cancel)
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(status.status.state, ChallengeStatusKind::Cancelled);
    assert_eq!(
        status.status.delivery,
        DeliveryState::Dropped,
        "never sent now"
    );
    assert!(t.engine.outbox_due(10).is_empty());
    assert_eq!(
        check(&t, by_id(&cancelled), cancelled.code.expose()).outcome,
        Verification::Cancelled
    );
    let again = t.engine.end_destination(by_id(&cancelled), Ending::Approve);
    assert!(
        matches!(again, Err(EngineError::WrongState(_))),
        "{again:?}"
    );
    let approved = send(&t, email(EMAIL));
    let status = t
        .engine
        .end_destination(DestinationTarget::To(email(EMAIL)), Ending::Approve)
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(status.status.state, ChallengeStatusKind::Verified);
    assert_eq!(
        check(&t, by_id(&approved), approved.code.expose()).outcome,
        Verification::AlreadyUsed
    );
}

#[test]
fn a_verified_phone_is_still_free_for_an_account_and_an_accounts_phone_can_be_verified() {
    let t = TestEngine::new();
    let issued = send(&t, phone(PHONE));
    // The holder claims nothing: the phone registers.
    let account = t.register(PHONE);
    assert!(matches!(
        check(&t, by_id(&issued), issued.code.expose()).outcome,
        Verification::Approved(_)
    ));
    // And an account's phone can be verified without touching the account.
    let again = send(&t, phone(PHONE));
    assert!(matches!(
        check(&t, by_id(&again), &wrong(&again.code)).outcome,
        Verification::WrongCode { .. }
    ));
    let view = t.view(account);
    assert_eq!(view.code_failures, 0);
    assert_eq!(view.state, AccountState::Active);
    if t.backend != Backend::Cluster {
        assert_eq!(t.engine.stats().accounts, 1);
    }
}

#[test]
fn the_limits_hold_and_a_refused_request_holds_nothing() {
    let t = TestEngine::with_config(|c| {
        c.limits.per_destination = vec![Rate {
            count: 3,
            per: Duration::from_secs(600),
        }];
        c.limits.sms_per_calling_code = vec![Rate {
            count: 5,
            per: Duration::from_secs(3600),
        }];
    });
    for _ in 0..3 {
        send(&t, phone("+447700900001"));
    }
    let refused = ask(&t, phone("+447700900001"), None);
    assert!(
        matches!(refused, Err(EngineError::RateLimited { .. })),
        "a fourth code to one destination: {refused:?}"
    );
    // Rotating numbers of one country: its budget runs out.
    send(&t, phone("+447700900002"));
    send(&t, phone("+447700900003"));
    let before = held_in_memory(&t);
    for n in 4..20 {
        let rotated = ask(&t, phone(&format!("+4477009000{n:02}")), None);
        assert!(
            matches!(
                rotated,
                Err(EngineError::RateLimited {
                    reason: "sms_country_budget",
                    ..
                })
            ),
            "{rotated:?}"
        );
    }
    if t.backend != Backend::Cluster {
        assert_eq!(held_in_memory(&t), before, "refused requests hold nothing");
    }
    // Another country is not touched by that budget.
    send(&t, phone("+351912000222"));
}

#[test]
fn a_holder_goes_once_its_code_has_ended() {
    let t = TestEngine::new();
    if let Some(ns) = t.cluster_namespace() {
        // On a cluster a holder's record carries its end as a TTL, past
        // the longest code it can hold; an account's has none.
        t.register(PHONE);
        send(&t, phone(PHONE));
        let mut ttls = crate::cluster_fixture::for_process()
            .ttls(&format!("{{a:{ns}/????????????????}}????????????????"));
        ttls.sort_unstable();
        let longest = t.config.codes.destination.lifetime.as_millis() as i64;
        assert_eq!(ttls.len(), 2, "{ttls:?}");
        assert_eq!(ttls[0], -1, "the account's record does not expire");
        assert!(
            ttls[1] > longest && ttls[1] <= longest + 3_600_000,
            "{ttls:?}"
        );
        return;
    }
    let baseline = held_in_memory(&t);
    let used = send(&t, phone(PHONE));
    let ignored = send(&t, email(EMAIL));
    assert_eq!(held_in_memory(&t), baseline + 2);
    check(&t, by_id(&used), used.code.expose());
    t.advance(t.config.codes.destination.lifetime);
    t.engine.sweep_expired().unwrap();
    assert_eq!(held_in_memory(&t), baseline, "both holders erased");
    let t = t.restart();
    assert_eq!(held_in_memory(&t), baseline, "and not brought back");
    assert!(t.engine.destination_status(ignored.challenge_id).is_err());
}

#[test]
fn a_pending_verification_survives_a_restart() {
    let t = TestEngine::new();
    let issued = send(&t, phone(PHONE));
    let t = t.restart();
    assert_eq!(
        t.engine.live_destination_challenge(&phone(PHONE)).unwrap(),
        issued.challenge_id
    );
    let next = send(&t, phone(PHONE));
    assert_eq!(
        check(&t, by_id(&issued), issued.code.expose()).outcome,
        Verification::Superseded,
        "the holder found again: the new code supersedes the old"
    );
    assert!(matches!(
        check(&t, by_id(&next), next.code.expose()).outcome,
        Verification::Approved(_)
    ));
    if t.backend != Backend::Cluster {
        assert_eq!(t.engine.stats().accounts, 0);
    }
}

#[test]
fn a_holder_is_no_account_to_any_client() {
    let t = TestEngine::new();
    let shop = add(&t, NewClient::new("shop", Scopes::of(&Scope::ALL))).0;
    let issued = acting(&as_client(&shop), || send(&t, phone(PHONE)));
    let holder = holder_of(&t, issued.challenge_id);
    acting(&as_client(&shop), || {
        assert!(matches!(
            t.engine.account(holder),
            Err(EngineError::AccountNotFound)
        ));
        let step_up = t.engine.issue_step_up(holder, None, None, None);
        assert!(
            matches!(step_up, Err(EngineError::AccountNotFound)),
            "{step_up:?}"
        );
        let lock = t.engine.lock(holder, "probe");
        assert!(
            matches!(lock, Err(EngineError::AccountNotFound)),
            "{lock:?}"
        );
        let cancel = t.engine.cancel(holder);
        assert!(
            matches!(cancel, Err(EngineError::AccountNotFound)),
            "{cancel:?}"
        );
        let resend = t.engine.resend(issued.challenge_id, None);
        assert!(resend.is_err(), "sent again by asking again: {resend:?}");
        // Its own operations still reach it.
        assert!(matches!(
            check(&t, by_id(&issued), issued.code.expose()).outcome,
            Verification::Approved(_)
        ));
    });
}

#[test]
fn account_less_codes_have_a_destination_budget_of_their_own() {
    let t = TestEngine::with_config(|c| {
        c.limits.per_destination = vec![Rate {
            count: 1,
            per: Duration::from_secs(600),
        }];
    });
    t.register(PHONE);
    send(&t, phone(PHONE));
    let again = ask(&t, phone(PHONE), None);
    assert!(
        matches!(
            again,
            Err(EngineError::RateLimited {
                reason: "destination_issue_rate",
                ..
            })
        ),
        "{again:?}"
    );
    // The citizen's login still gets its code: account-less requests (no
    // PIN needed) cannot spend the number's login budget.
    t.login_code(PHONE);
    // And the refusal is in the audit trail, under the holder.
    t.engine.flush().unwrap();
    let mut limited = 0;
    t.engine
        .scan_events(0, &mut |r| {
            if r.event.kind == engine::audit::EventKind::RateLimited {
                limited += 1;
            }
            Ok(true)
        })
        .unwrap();
    assert_eq!(limited, 1);
}

#[test]
fn a_request_refused_for_its_terms_spends_no_limit() {
    let t = TestEngine::with_config(|c| {
        c.limits.per_destination = vec![Rate {
            count: 1,
            per: Duration::from_secs(600),
        }];
    });
    let before = held_in_memory(&t);
    for lifetime in [Duration::from_secs(1), Duration::from_secs(3600)] {
        let refused = ask(&t, phone(PHONE), Some(lifetime));
        assert!(matches!(
            refused,
            Err(EngineError::Invalid {
                field: "lifetime",
                ..
            })
        ));
    }
    if t.backend != Backend::Cluster {
        assert_eq!(held_in_memory(&t), before, "nothing held");
    }
    // The one code the destination may have is still there to send.
    send(&t, phone(PHONE));
}

#[test]
fn an_ended_code_answers_for_itself_once_its_holder_is_gone() {
    let t = TestEngine::new();
    let old = send(&t, phone(PHONE));
    let short = ask(&t, phone(PHONE), Some(Duration::from_secs(60)))
        .and_then(Durable::wait)
        .unwrap();
    check(&t, by_id(&short), short.code.expose());
    t.advance(Duration::from_secs(61));
    t.engine.sweep_expired().unwrap();
    // The holder went with its last live code; the older, replaced code is
    // still there to read, check and end, and says why it cannot verify.
    assert_eq!(
        check(&t, by_id(&old), old.code.expose()).outcome,
        Verification::Superseded
    );
    let ended = t.engine.end_destination(by_id(&old), Ending::Cancel);
    assert!(
        matches!(ended, Err(EngineError::WrongState(_))),
        "{ended:?}"
    );
    assert_eq!(
        t.engine
            .destination_status(old.challenge_id)
            .unwrap()
            .status
            .state,
        ChallengeStatusKind::Superseded
    );
    // A new code makes a new holder.
    let next = send(&t, phone(PHONE));
    assert!(matches!(
        check(&t, by_id(&next), next.code.expose()).outcome,
        Verification::Approved(_)
    ));
}

#[test]
fn codes_sent_at_once_to_one_destination_leave_one_live() {
    let t = TestEngine::new();
    let engine = std::sync::Arc::clone(&t.engine);
    let issued = in_parallel(8, move |_| {
        engine
            .verify_destination(DestinationRequest {
                destination: phone(PHONE),
                channel: None,
                locale: None,
                lifetime: None,
            })
            .and_then(Durable::wait)
            .unwrap()
            .0
    });
    let live = t.engine.live_destination_challenge(&phone(PHONE)).unwrap();
    let mut approved = 0;
    for code in &issued {
        match check(&t, by_id(code), code.code.expose()).outcome {
            Verification::Approved(_) => {
                approved += 1;
                assert_eq!(code.challenge_id, live, "only the last one verifies");
            }
            Verification::Superseded | Verification::AlreadyUsed => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(approved, 1);
}
