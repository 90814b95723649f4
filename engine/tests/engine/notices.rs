//! Notices to the citizen: a change tells the citizen (and an old contact
//! being replaced) with no code in the message, as the policy says, and a
//! notice that cannot be delivered changes nothing else.

use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";
const NEW_PHONE: &str = "+351934567890";

#[test]
fn notices_go_to_the_citizen_and_to_the_old_contact_with_no_code() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    t.engine
        .reset_pin(id, &Pin::new("7302"))
        .unwrap()
        .wait()
        .unwrap();
    let due = t.engine.outbox_due(10);
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].notice, Some(Notice::PinReset));
    assert_eq!(due[0].destination, PHONE);
    assert!(due[0].code.expose().is_empty(), "a notice carries no code");
    for m in &due {
        t.engine
            .outbox_report(m.id, SendResult::Sent)
            .unwrap()
            .wait()
            .unwrap();
    }
    // A contact change: the new phone and the old one both hear of it.
    let proof = t.step_up(id);
    t.engine
        .outbox_report(proof.message_id, SendResult::Sent)
        .and_then(Durable::wait)
        .unwrap();
    let start = t
        .engine
        .begin_contact_change(
            id,
            proof.challenge_id,
            &proof.code,
            Contact::Phone(Phone::parse(NEW_PHONE).unwrap()),
            None,
        )
        .and_then(Durable::wait)
        .unwrap();
    let ContactChangeStart::CodeSent(confirm) = start else {
        panic!("{start:?}")
    };
    t.engine
        .outbox_report(confirm.message_id, SendResult::Sent)
        .and_then(Durable::wait)
        .unwrap();
    t.engine
        .confirm_contact_change(confirm.challenge_id, &confirm.code)
        .and_then(Durable::wait)
        .unwrap();
    let mut to: Vec<String> = t
        .engine
        .outbox_due(10)
        .into_iter()
        .filter(|m| m.notice == Some(Notice::ContactChanged))
        .map(|m| m.destination)
        .collect();
    to.sort();
    assert_eq!(to, [PHONE, NEW_PHONE]);
}

#[test]
fn notices_follow_the_policy() {
    let t = TestEngine::with_config(|c| {
        c.notices.pin_reset = false;
        c.notices.locked = true;
    });
    let id = t.register(PHONE);
    t.engine
        .reset_pin(id, &Pin::new("7302"))
        .unwrap()
        .wait()
        .unwrap();
    assert!(t.engine.outbox_due(10).is_empty(), "pin_reset is off");
    t.engine.lock(id, "fraud report").unwrap().wait().unwrap();
    let due = t.engine.outbox_due(10);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].notice, Some(Notice::Locked));
}

#[test]
fn a_notice_that_cannot_be_delivered_changes_nothing_else() {
    let t = TestEngine::with_config(|c| c.outbox.max_attempts = 1);
    let id = t.register(PHONE);
    t.engine
        .reset_pin(id, &Pin::new("7302"))
        .unwrap()
        .wait()
        .unwrap();
    let notice = t.engine.outbox_due(1).remove(0);
    t.engine
        .outbox_report(
            notice.id,
            SendResult::Permanent {
                reason: "number unreachable".into(),
            },
        )
        .unwrap()
        .wait()
        .unwrap();
    // The reset stands: the new PIN logs in.
    assert!(matches!(t.login(PHONE, "7302"), LoginOutcome::CodeSent(_)));
}
