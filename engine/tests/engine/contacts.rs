//! Contacts: a direct-message handle as a third way to receive codes
//! (set at registration or by a contact change, one account's only),
//! removing a contact with a step-up code while a login and a working
//! channel remain, and the citizen's own language for every message.

use engine::audit::{AuditRecord, EventKind};
use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";
const EMAIL: &str = "ana.silva@example.pt";

fn twitter(handle: &str) -> DmHandle {
    DmPolicy::default().parse("twitter", handle).unwrap()
}

/// Registers a citizen with the given contacts and locale.
fn register(
    t: &TestEngine,
    phone: Option<&str>,
    email: Option<&str>,
    dm: Option<DmHandle>,
    locale: Option<Locale>,
) -> AccountId {
    t.engine
        .register(NewAccount {
            identity: identity_for(phone.unwrap_or("+351900000001")),
            phone: phone.map(|p| Phone::parse(p).unwrap()),
            email: email.map(|e| Email::parse(e).unwrap()),
            pin: Pin::new(PIN),
            birth_date: None,
            postal_address: None,
            dm,
            locale,
        })
        .and_then(Durable::wait)
        .unwrap()
        .id
}

/// Sends (and reports sent) every message due, and returns them.
fn drain(t: &TestEngine) -> Vec<Outgoing> {
    let due = t.engine.outbox_due(100);
    for m in &due {
        t.engine
            .outbox_report(m.id, SendResult::Sent)
            .and_then(Durable::wait)
            .unwrap();
    }
    due
}

/// A step-up code by `channel`, delivered.
fn proof(t: &TestEngine, id: AccountId, channel: Channel) -> Issued {
    let issued = t
        .engine
        .issue_step_up(id, Some(channel), None, None)
        .and_then(Durable::wait)
        .unwrap();
    drain(t);
    issued
}

fn remove(t: &TestEngine, id: AccountId, contact: ContactKind) -> Result<ContactRemoval> {
    let proof = proof(t, id, Channel::Sms);
    t.engine
        .remove_contact(id, proof.challenge_id, &proof.code, contact)
        .and_then(Durable::wait)
}

fn events(t: &TestEngine, id: AccountId) -> Vec<AuditRecord> {
    t.engine.flush().unwrap();
    t.engine.account_events(id, None, 1000).unwrap()
}

#[test]
fn a_handle_given_at_registration_receives_login_codes_by_direct_message() {
    let t = TestEngine::new();
    let handle = DmPolicy::default().parse("Twitter", "@Ana_Silva").unwrap();
    let id = register(&t, Some(PHONE), None, Some(handle.clone()), None);
    assert_eq!(t.view(id).dm, Some(twitter("ana_silva")), "case folded");
    let issued = match t
        .engine
        .login(
            &LoginId::Phone(Phone::parse(PHONE).unwrap()),
            &Pin::new(PIN),
            Some(Channel::Dm),
            None,
            None,
        )
        .and_then(Durable::wait)
        .unwrap()
    {
        LoginOutcome::CodeSent(issued) => issued,
        other => panic!("{other:?}"),
    };
    assert_eq!(issued.channel, Channel::Dm);
    assert_eq!(issued.destination, "twitter:ana_silva");
    assert_eq!(issued.masked_destination, "twitter:a***");
    let sent = drain(&t);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].channel, &*sent[0].destination),
        (Channel::Dm, "twitter:ana_silva")
    );
    let status = t.engine.challenge_status(issued.challenge_id).unwrap();
    assert_eq!(status.masked_destination, "twitter:a***");
    assert!(matches!(
        t.verify(issued.challenge_id, issued.code.expose()),
        Verification::Approved(_)
    ));
    let issued = event_of(&events(&t, id), EventKind::CodeIssued);
    assert_eq!(issued.event.detail("destination"), Some("twitter:a***"));
}

fn event_of(events: &[AuditRecord], kind: EventKind) -> AuditRecord {
    events
        .iter()
        .find(|r| r.event.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} in {events:?}"))
        .clone()
}

#[test]
fn an_account_without_a_handle_cannot_be_sent_a_direct_message() {
    let t = TestEngine::new();
    let id = register(&t, Some(PHONE), None, None, None);
    assert!(matches!(
        t.engine.issue_step_up(id, Some(Channel::Dm), None, None),
        Err(EngineError::ChannelUnavailable("direct-message handle"))
    ));
    let disabled = TestEngine::with_config(|c| c.outbox.enabled = vec![Channel::Sms]);
    let id = register(&disabled, Some(PHONE), None, Some(twitter("ana")), None);
    assert!(matches!(
        disabled
            .engine
            .issue_step_up(id, Some(Channel::Dm), None, None),
        Err(EngineError::ChannelUnavailable(_))
    ));
}

#[test]
fn two_accounts_never_share_a_handle() {
    let t = TestEngine::new();
    register(&t, Some(PHONE), None, Some(twitter("ana")), None);
    let clash = t.engine.register(NewAccount {
        identity: identity_for("+351922222222"),
        phone: Some(Phone::parse("+351922222222").unwrap()),
        email: None,
        pin: Pin::new(PIN),
        birth_date: None,
        postal_address: None,
        dm: Some(DmPolicy::default().parse("twitter", "ANA").unwrap()),
        locale: None,
    });
    assert!(matches!(clash, Err(EngineError::Conflict { field: "dm" })));
    let other = register(&t, Some("+351933333333"), None, None, None);
    let proof = proof(&t, other, Channel::Sms);
    let change = t.engine.begin_contact_change(
        other,
        proof.challenge_id,
        &proof.code,
        Contact::Dm(twitter("ana")),
        None,
    );
    assert!(matches!(change, Err(EngineError::Conflict { field: "dm" })));
}

#[test]
fn a_handle_is_changed_like_a_phone_and_the_old_one_is_told() {
    let t = TestEngine::new();
    let id = register(&t, Some(PHONE), None, Some(twitter("ana")), None);
    let proof = proof(&t, id, Channel::Sms);
    let start = t
        .engine
        .begin_contact_change(
            id,
            proof.challenge_id,
            &proof.code,
            Contact::Dm(twitter("ana_new")),
            None,
        )
        .and_then(Durable::wait)
        .unwrap();
    let ContactChangeStart::CodeSent(confirm) = start else {
        panic!("{start:?}")
    };
    assert_eq!(
        confirm.destination, "twitter:ana_new",
        "the code goes to the new handle"
    );
    let sent = drain(&t);
    assert_eq!(sent[0].channel, Channel::Dm);
    t.engine
        .confirm_contact_change(confirm.challenge_id, &confirm.code)
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(t.view(id).dm, Some(twitter("ana_new")));
    let mut told: Vec<String> = drain(&t)
        .into_iter()
        .filter(|m| m.notice == Some(Notice::ContactChanged))
        .map(|m| m.destination)
        .collect();
    told.sort();
    assert_eq!(told, [PHONE, "twitter:ana", "twitter:ana_new"]);
    let changed = event_of(&events(&t, id), EventKind::ContactChanged);
    assert_eq!(changed.event.detail("field"), Some("dm"));
    assert_eq!(changed.event.detail("from"), Some("twitter:a***"));
    assert_eq!(changed.event.detail("to"), Some("twitter:a***"));
    // The old handle is free again.
    register(&t, Some("+351944444444"), None, Some(twitter("ana")), None);
}

#[test]
fn a_contact_is_removed_with_a_step_up_code_and_leaves_nothing_behind() {
    let t = TestEngine::new();
    let id = register(&t, Some(PHONE), Some(EMAIL), Some(twitter("ana")), None);
    // A wrong proof removes nothing.
    let proof_code = proof(&t, id, Channel::Sms);
    let rejected = t
        .engine
        .remove_contact(
            id,
            proof_code.challenge_id,
            &Code::new(wrong(&proof_code.code)),
            ContactKind::Email,
        )
        .and_then(Durable::wait)
        .unwrap();
    assert!(matches!(
        rejected,
        ContactRemoval::ProofRejected(Verification::WrongCode { .. })
    ));
    assert!(t.view(id).email.is_some());
    // A login code sent to the email dies with it.
    let by_email = match t
        .engine
        .login(
            &LoginId::Email(Email::parse(EMAIL).unwrap()),
            &Pin::new(PIN),
            Some(Channel::Email),
            None,
            None,
        )
        .and_then(Durable::wait)
        .unwrap()
    {
        LoginOutcome::CodeSent(issued) => issued,
        other => panic!("{other:?}"),
    };
    drain(&t);
    assert!(matches!(
        remove(&t, id, ContactKind::Email).unwrap(),
        ContactRemoval::Removed
    ));
    assert_eq!(t.view(id).email, None);
    assert_eq!(
        t.engine
            .find_by_login(&LoginId::Email(Email::parse(EMAIL).unwrap()))
            .unwrap(),
        None,
        "the email logs in no more"
    );
    assert_eq!(
        t.verify(by_email.challenge_id, by_email.code.expose()),
        Verification::Superseded
    );
    // The removed email and the contacts that remain are told.
    let mut told: Vec<(Channel, String)> = drain(&t)
        .into_iter()
        .filter(|m| m.notice == Some(Notice::ContactRemoved))
        .map(|m| (m.channel, m.destination))
        .collect();
    told.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        told,
        [
            (Channel::Sms, PHONE.to_owned()),
            (Channel::Email, EMAIL.to_owned()),
            (Channel::Dm, "twitter:ana".to_owned()),
        ]
    );
    let removed = event_of(&events(&t, id), EventKind::ContactRemoved);
    assert_eq!(removed.event.detail("field"), Some("email"));
    assert_eq!(removed.event.detail("from"), Some("a***@example.pt"));
    // The handle and the email can go to another account now.
    assert!(matches!(
        remove(&t, id, ContactKind::Dm).unwrap(),
        ContactRemoval::Removed
    ));
    let t = t.restart();
    let view = t.view(id);
    assert_eq!((view.email, view.dm), (None, None), "removed for good");
    register(
        &t,
        Some("+351955555555"),
        Some(EMAIL),
        Some(twitter("ana")),
        None,
    );
}

#[test]
fn the_last_login_contact_stays() {
    let t = TestEngine::new();
    let id = register(&t, Some(PHONE), None, Some(twitter("ana")), None);
    t.engine
        .register_push_device(id, PushToken::parse("device-token-0123456789").unwrap())
        .and_then(Durable::wait)
        .unwrap();
    match remove(&t, id, ContactKind::Phone) {
        Err(EngineError::LastContact { field, reason }) => {
            assert_eq!(field, "phone");
            assert!(reason.contains("logs in"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t.view(id).phone.is_some());
    assert!(matches!(
        remove(&t, id, ContactKind::PushDevice).unwrap(),
        ContactRemoval::Removed
    ));
    assert!(!t.view(id).has_push_device);
    assert!(matches!(
        remove(&t, id, ContactKind::PushDevice),
        Err(EngineError::WrongState(_))
    ));
    let removed = event_of(&events(&t, id), EventKind::ContactRemoved);
    assert_eq!(removed.event.detail("field"), Some("push_device"));
    assert_eq!(removed.event.detail("from"), Some("registered app"));
}

#[test]
fn a_contact_is_kept_when_no_other_could_receive_codes_on_this_server() {
    let t = TestEngine::with_config(|c| c.outbox.enabled = vec![Channel::Sms, Channel::Dm]);
    let id = register(&t, Some(PHONE), Some(EMAIL), None, None);
    match remove(&t, id, ContactKind::Phone) {
        Err(EngineError::LastContact { field, reason }) => {
            assert_eq!(field, "phone");
            assert!(reason.contains("receive codes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // With a handle that can receive codes here, the phone may go.
    let proof = proof(&t, id, Channel::Sms);
    let ContactChangeStart::CodeSent(confirm) = t
        .engine
        .begin_contact_change(
            id,
            proof.challenge_id,
            &proof.code,
            Contact::Dm(twitter("ana")),
            None,
        )
        .and_then(Durable::wait)
        .unwrap()
    else {
        panic!("no code")
    };
    t.engine
        .confirm_contact_change(confirm.challenge_id, &confirm.code)
        .and_then(Durable::wait)
        .unwrap();
    assert!(matches!(
        remove(&t, id, ContactKind::Phone).unwrap(),
        ContactRemoval::Removed
    ));
    let view = t.view(id);
    assert!(view.phone.is_none() && view.email.is_some() && view.dm.is_some());
}

#[test]
fn the_citizens_language_is_used_unless_a_request_names_one() {
    let t = TestEngine::new();
    let id = register(&t, Some(PHONE), None, None, Some(Locale::En));
    assert_eq!(t.view(id).locale, Some(Locale::En));
    let locale_of = |requested: Option<Locale>| {
        t.engine
            .issue_step_up(id, None, None, requested)
            .and_then(Durable::wait)
            .unwrap();
        drain(&t).remove(0).locale
    };
    assert_eq!(locale_of(None), Locale::En, "the account's choice");
    assert_eq!(locale_of(Some(Locale::Pt)), Locale::Pt, "the request's");
    // Notices follow the citizen's language too.
    t.engine
        .reset_pin(id, &Pin::new("7302"))
        .and_then(Durable::wait)
        .unwrap();
    let notices = drain(&t);
    assert_eq!(notices[0].notice, Some(Notice::PinReset));
    assert_eq!(notices[0].locale, Locale::En);
    // Back to the server's default, which is Portuguese here.
    let view = t
        .engine
        .set_locale(id, None)
        .and_then(Durable::wait)
        .unwrap();
    assert_eq!(view.locale, None);
    assert_eq!(locale_of(None), Locale::Pt);
    let changed = event_of(&events(&t, id), EventKind::LocaleChanged);
    assert_eq!(changed.event.detail("from"), Some("en"));
    assert_eq!(changed.event.detail("to"), Some("default"));
}

#[test]
fn a_handle_and_a_language_survive_a_restart_on_both_stores() {
    for backend in [Backend::Sled, Backend::Memory] {
        let t = TestEngine::on(backend, |_| {});
        let id = register(&t, Some(PHONE), None, Some(twitter("ana")), None);
        t.engine
            .set_locale(id, Some(Locale::En))
            .and_then(Durable::wait)
            .unwrap();
        let t = t.restart();
        let view = t.view(id);
        assert_eq!(view.dm, Some(twitter("ana")), "{backend:?}");
        assert_eq!(view.locale, Some(Locale::En), "{backend:?}");
        // The handle is still this account's alone.
        let other = register(&t, Some("+351966666666"), None, None, None);
        let proof = proof(&t, other, Channel::Sms);
        assert!(matches!(
            t.engine.begin_contact_change(
                other,
                proof.challenge_id,
                &proof.code,
                Contact::Dm(twitter("ana")),
                None,
            ),
            Err(EngineError::Conflict { field: "dm" })
        ));
    }
}

#[test]
fn a_cancelled_account_keeps_neither_handle_nor_language() {
    let t = TestEngine::new();
    let id = register(
        &t,
        Some(PHONE),
        None,
        Some(twitter("ana")),
        Some(Locale::En),
    );
    t.engine.cancel(id).and_then(Durable::wait).unwrap();
    let view = t.view(id);
    assert_eq!((view.dm, view.locale), (None, None));
    assert!(matches!(
        t.engine.set_locale(id, Some(Locale::Pt)),
        Err(EngineError::WrongState(_))
    ));
    register(&t, Some("+351977777777"), None, Some(twitter("ana")), None);
}

#[test]
fn an_app_or_a_handle_stays_when_it_is_the_only_way_codes_can_arrive() {
    // Imported with only a postal address (no login contact), then an app:
    // the app is the one contact codes can reach.
    let t = TestEngine::new();
    let pin_hash = hash_pin_phc(&Pin::new(PIN), Argon2Params::INSECURE_FOR_TESTS, [9; 16]).unwrap();
    let id = t
        .engine
        .import(ImportAccount {
            identity: identity_for(PHONE),
            phone: None,
            email: None,
            birth_date: None,
            postal_address: Some(PostalAddress::parse("Rua Augusta 1\nLisboa").unwrap()),
            pin_hash: Some(pin_hash),
            state: ImportState::Active,
        })
        .and_then(Durable::wait)
        .unwrap();
    t.engine
        .register_push_device(id, PushToken::parse("device-token-0123456789").unwrap())
        .and_then(Durable::wait)
        .unwrap();
    let proof = proof(&t, id, Channel::Push);
    match t
        .engine
        .remove_contact(id, proof.challenge_id, &proof.code, ContactKind::PushDevice)
    {
        Err(EngineError::LastContact { field, reason }) => {
            assert_eq!(field, "push_device");
            assert!(reason.contains("receive codes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t.view(id).has_push_device);
}
