//! The durable outbox: queued with the challenge, retried, dead-lettered, dropped, recovered.

use std::time::Duration;

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";

fn report(t: &TestEngine, id: MessageId, result: SendResult) {
    t.engine.outbox_report(id, result).unwrap().wait().unwrap();
}

fn delivery(t: &TestEngine, challenge: ChallengeId) -> DeliveryState {
    t.engine.challenge_status(challenge).unwrap().delivery
}

fn retry() -> SendResult {
    SendResult::Retry {
        after: None,
        reason: "503 from gateway".into(),
    }
}

#[test]
fn an_issued_code_waits_in_the_outbox_until_reported_sent() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Queued);
    let due = t.engine.outbox_due(10);
    assert_eq!(due.len(), 1);
    let item = &due[0];
    assert_eq!(item.id, issued.message_id);
    assert_eq!(item.challenge_id, issued.challenge_id);
    assert_eq!(item.code.expose(), issued.code.expose());
    assert_eq!(item.destination, PHONE);
    assert_eq!(item.locale, Locale::Pt, "the default locale");
    assert_eq!(item.attempt, 1);
    assert!(
        t.engine.outbox_due(10).is_empty(),
        "in flight: not handed out twice"
    );
    report(&t, item.id, SendResult::Sent);
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Sent);
    assert_eq!(t.engine.stats().outbox, 0);
}

#[test]
fn transient_failures_retry_with_growing_waits_and_honour_retry_after() {
    let t = TestEngine::new();
    t.register(PHONE);
    t.login_code(PHONE);
    let id = t.engine.outbox_due(1)[0].id;
    report(&t, id, retry());
    assert!(t.engine.outbox_due(1).is_empty(), "not before the backoff");
    t.advance(Duration::from_millis(500));
    let again = t.engine.outbox_due(1);
    assert_eq!(again[0].attempt, 2);
    report(
        &t,
        id,
        SendResult::Retry {
            after: Some(Duration::from_secs(7)),
            reason: "429".into(),
        },
    );
    t.advance(Duration::from_millis(6_999));
    assert!(t.engine.outbox_due(1).is_empty(), "Retry-After is honoured");
    t.advance(Duration::from_millis(1));
    assert_eq!(t.engine.outbox_due(1)[0].attempt, 3);
}

#[test]
fn backoff_is_jittered_between_half_and_all_of_the_doubling() {
    let t = TestEngine::with_config(|c| c.outbox.max_attempts = 20);
    t.register(PHONE);
    t.login_code(PHONE);
    let id = t.engine.outbox_due(1)[0].id;
    for attempt in 1..=4u32 {
        report(&t, id, retry());
        let full = Duration::from_millis(500 * (1 << (attempt - 1)));
        t.advance(full / 2 - Duration::from_millis(1));
        assert!(
            t.engine.outbox_due(1).is_empty(),
            "attempt {attempt} came too early"
        );
        t.advance(full / 2 + Duration::from_millis(1));
        assert_eq!(
            t.engine.outbox_due(1).len(),
            1,
            "attempt {attempt} came too late"
        );
    }
}

#[test]
fn a_message_that_keeps_failing_goes_to_the_dead_letters() {
    let t = TestEngine::with_config(|c| c.outbox.max_attempts = 3);
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    for _ in 0..3 {
        t.advance(Duration::from_secs(10));
        let due = t.engine.outbox_due(1);
        report(&t, due[0].id, retry());
    }
    t.advance(Duration::from_secs(10));
    assert!(t.engine.outbox_due(1).is_empty());
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Failed);
    let dead = t.engine.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].reason.contains("503 from gateway"),
        "{}",
        dead[0].reason
    );
}

#[test]
fn a_permanent_failure_stops_at_once() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let id = t.engine.outbox_due(1)[0].id;
    report(
        &t,
        id,
        SendResult::Permanent {
            reason: "400 invalid number".into(),
        },
    );
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Failed);
    assert_eq!(t.engine.dead_letters().unwrap()[0].attempts, 1);
    t.advance(Duration::from_secs(3600));
    assert!(t.engine.outbox_due(1).is_empty());
}

#[test]
fn superseded_and_expired_codes_are_dropped_never_sent_late() {
    let t = TestEngine::new();
    t.register(PHONE);
    let first = t.login_code(PHONE);
    let second = t.login_code(PHONE);
    assert_eq!(delivery(&t, first.challenge_id), DeliveryState::Dropped);
    let due = t.engine.outbox_due(10);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].challenge_id, second.challenge_id);
    report(&t, due[0].id, retry());
    t.advance(Duration::from_secs(301));
    assert!(
        t.engine.outbox_due(10).is_empty(),
        "expired while waiting to retry"
    );
    assert_eq!(delivery(&t, second.challenge_id), DeliveryState::Dropped);
    assert!(t.engine.dead_letters().unwrap().is_empty());
}

#[test]
fn queued_messages_survive_a_restart_and_are_sent_after_it() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let in_flight = t.engine.outbox_due(1);
    assert_eq!(in_flight.len(), 1, "taken by a sender that then dies");
    let t = t.restart();
    if t.backend == Backend::Cluster {
        // The cluster's send queue: the dead sender's lease must run out
        // first (then any node takes the message, this one included).
        assert!(t.engine.outbox_due(10).is_empty(), "still leased");
        t.advance(t.config.outbox.lease);
    }
    let due = t.engine.outbox_due(10);
    assert_eq!(due.len(), 1, "the message is still there after the restart");
    assert_eq!(due[0].code.expose(), issued.code.expose());
    report(&t, due[0].id, SendResult::Sent);
    let t = t.restart();
    assert!(t.engine.outbox_due(10).is_empty());
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Sent);
}

/// A delivery report of a sent code is not written on its own: of a
/// step-up flow's writes, only the code and the verify reach the store. A
/// report lost with the process costs at most a resend of the same code,
/// still valid, to the same destination; never a lost or reusable code.
#[test]
fn a_delivery_report_lost_in_a_crash_costs_at_most_a_resend_of_a_live_code() {
    let t = TestEngine::on(Backend::Memory, |_| {});
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let due = t.engine.outbox_due(10);
    assert_eq!(due.len(), 1);
    report(&t, due[0].id, SendResult::Sent);
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Sent);
    // The process dies before the challenge is written again.
    let t = t.crash();
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Queued);
    let again = t.engine.outbox_due(10);
    assert_eq!(again.len(), 1, "the message is due again");
    assert_eq!(again[0].challenge_id, issued.challenge_id);
    assert_eq!(
        again[0].code.expose(),
        issued.code.expose(),
        "the same code"
    );
    assert_eq!(again[0].destination, PHONE);
    report(&t, again[0].id, SendResult::Sent);
    // The code works once, as it would have without the crash.
    assert!(matches!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Approved(_)
    ));
    assert!(!matches!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Approved(_)
    ));
}

/// Once the challenge is written again (here a wrong code), the report is
/// in the store with it: a crash after that resends nothing.
#[test]
fn a_sent_report_reaches_the_store_with_the_challenges_next_write() {
    let t = TestEngine::on(Backend::Memory, |_| {});
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let id = t.engine.outbox_due(10)[0].id;
    report(&t, id, SendResult::Sent);
    assert_eq!(
        t.memory().counts()[2],
        1,
        "the message record is still stored"
    );
    let wrong = if issued.code.expose() == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert!(matches!(
        t.verify(issued.challenge_id, wrong),
        Verification::WrongCode { .. }
    ));
    assert_eq!(t.memory().counts()[2], 0, "written away with the challenge");
    let t = t.crash();
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Sent);
    assert!(t.engine.outbox_due(10).is_empty(), "nothing to resend");
}

/// A code superseded after it was sent stays "sent" (it reached the phone),
/// and its message record goes with the superseding write.
#[test]
fn a_sent_code_superseded_before_it_is_written_still_reads_sent() {
    let t = TestEngine::on(Backend::Memory, |_| {});
    t.register(PHONE);
    let first = t.login_code(PHONE);
    report(&t, t.engine.outbox_due(10)[0].id, SendResult::Sent);
    let second = t.login_code(PHONE);
    assert_eq!(delivery(&t, first.challenge_id), DeliveryState::Sent);
    let t = t.crash();
    assert_eq!(delivery(&t, first.challenge_id), DeliveryState::Sent);
    let due = t.engine.outbox_due(10);
    assert_eq!(due.len(), 1, "only the new code");
    assert_eq!(due[0].challenge_id, second.challenge_id);
}

/// Issue, send, verify: two durable writes, the report costing none (on
/// the embedded store; a cluster node keeps nothing in memory, so it
/// writes the report at once).
#[test]
fn a_step_up_flow_makes_two_durable_writes() {
    let t = TestEngine::new();
    let account = t.register(PHONE);
    let before = t.engine.stats().flush.writes;
    let issued = t.step_up(account);
    let due = t.engine.outbox_due(10);
    report(&t, due[0].id, SendResult::Sent);
    let verified = t
        .engine
        .verify(issued.challenge_id, Purpose::StepUp, &issued.code)
        .and_then(Durable::wait)
        .unwrap();
    assert!(matches!(verified, Verification::Approved(_)));
    let writes = if t.backend == Backend::Cluster { 3 } else { 2 };
    assert_eq!(t.engine.stats().flush.writes - before, writes);
    // Nothing was left for later: a restart finds the flow complete.
    let t = t.restart();
    assert!(t.engine.outbox_due(10).is_empty());
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Sent);
}

#[test]
fn sms_can_fall_back_to_email_after_a_permanent_failure() {
    let t = TestEngine::with_config(|c| c.outbox.sms_fallback_to_email = true);
    t.register_full(PHONE, Some("ana@example.pt"), PIN);
    let issued = t.login_code(PHONE);
    let sms = t.engine.outbox_due(1).remove(0);
    report(
        &t,
        sms.id,
        SendResult::Permanent {
            reason: "unreachable handset".into(),
        },
    );
    let email = t.engine.outbox_due(1).remove(0);
    assert_eq!(email.channel, Channel::Email);
    assert_eq!(email.destination, "ana@example.pt");
    assert_eq!(email.code.expose(), issued.code.expose(), "the same code");
    assert_ne!(email.id, sms.id, "a new idempotency key");
    let status = t.engine.challenge_status(issued.challenge_id).unwrap();
    assert_eq!(
        (status.channel, status.delivery),
        (Channel::Email, DeliveryState::Queued)
    );
    assert_eq!(status.masked_destination, "a***@example.pt");
}

#[test]
fn without_fallback_a_failed_sms_stays_failed() {
    let t = TestEngine::new();
    t.register_full(PHONE, Some("ana@example.pt"), PIN);
    t.login_code(PHONE);
    let sms = t.engine.outbox_due(1).remove(0);
    report(&t, sms.id, SendResult::Permanent { reason: "x".into() });
    assert!(t.engine.outbox_due(1).is_empty());
}

#[test]
fn the_requested_locale_travels_with_the_message() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    t.engine
        .issue_step_up(id, None, None, Some(Locale::En))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(t.engine.outbox_due(1)[0].locale, Locale::En);
}

#[test]
fn cancelling_an_account_discards_its_queued_messages() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    t.login_code(PHONE);
    t.engine.cancel(id).unwrap().wait().unwrap();
    assert!(t.engine.outbox_due(10).is_empty());
    let t = t.restart();
    assert_eq!(t.engine.stats().outbox, 0);
}

#[test]
fn a_resend_keeps_the_language_of_the_code_it_replaces() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let first = t
        .engine
        .issue_step_up(id, None, None, Some(Locale::En))
        .unwrap()
        .wait()
        .unwrap();
    let sent = t.engine.outbox_due(1).remove(0);
    report(&t, sent.id, SendResult::Sent);
    t.advance(Duration::from_secs(30));
    t.engine
        .resend(first.challenge_id, None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(t.engine.outbox_due(1)[0].locale, Locale::En);
}

#[test]
fn codes_are_not_issued_for_a_channel_that_cannot_deliver() {
    let t = TestEngine::with_config(|c| c.outbox.enabled = vec![Channel::Email]);
    let id = t.register(PHONE);
    assert!(matches!(
        t.engine.issue_step_up(id, Some(Channel::Sms), None, None),
        Err(EngineError::ChannelUnavailable(_))
    ));
    assert_eq!(t.engine.stats().challenges, 0);
}

/// A code used before its send was reported (the report still on its way,
/// or a retried send that had gone out after all) reached the citizen: it
/// reads sent, and the late report changes nothing.
#[test]
fn a_code_used_before_its_send_is_reported_reads_sent() {
    let t = TestEngine::new();
    t.register(PHONE);
    let issued = t.login_code(PHONE);
    let taken = t.engine.outbox_due(10);
    assert_eq!(taken.len(), 1);
    assert!(matches!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Approved(_)
    ));
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Sent);
    report(&t, taken[0].id, SendResult::Sent);
    assert_eq!(delivery(&t, issued.challenge_id), DeliveryState::Sent);
    assert!(t.engine.outbox_due(10).is_empty());
    assert_eq!(t.engine.outbox_depth().unwrap(), 0);
}
