//! The audit trail: every operation writes its event with its change, on
//! both stores; the chain survives restarts and pruning; reads are paged;
//! no secret is ever recorded (notices to citizens: notices.rs).

use std::time::Duration;

use engine::audit::{Actor, AuditRecord, EventKind, Outcome, acting};
use engine::*;

use crate::helpers::*;

const PHONE: &str = "+351912345678";
const NEW_PHONE: &str = "+351934567890";

fn all_events(t: &TestEngine) -> Vec<AuditRecord> {
    t.engine.flush().unwrap();
    let mut out = Vec::new();
    t.engine
        .scan_events(0, &mut |r| {
            out.push(r);
            Ok(true)
        })
        .unwrap();
    out
}

fn kinds(events: &[AuditRecord]) -> Vec<EventKind> {
    events
        .iter()
        .map(|r| r.event.kind)
        .filter(|k| *k != EventKind::Checkpoint)
        .collect()
}

fn actor(client: &str, request: &str) -> Actor {
    Actor {
        client: Some(client.into()),
        request_id: Some(request.into()),
        source_ip: Some("192.0.2.7".into()),
        idempotency: None,
        client_id: None,
    }
}

fn step_up_by_sms(t: &TestEngine, id: AccountId) -> Issued {
    t.engine
        .issue_step_up(id, Some(Channel::Sms), None, None)
        .and_then(Durable::wait)
        .unwrap()
}

/// A citizen's whole life: every operation, by the client "portal".
/// Returns the account, and every secret that passed through.
fn life(t: &TestEngine) -> (AccountId, Vec<String>) {
    let mut secrets = vec![PIN.to_owned(), OTHER_PIN.to_owned()];
    let who = actor("portal", "req-1");
    acting(&who, || {
        let id = t.register_full(PHONE, Some("ana.silva@example.pt"), PIN);
        // A wrong PIN, then a right one, a wrong code, the right code.
        t.login(PHONE, OTHER_PIN);
        let issued = t.login_code(PHONE);
        secrets.push(issued.code.expose().to_owned());
        t.verify(issued.challenge_id, &wrong(&issued.code));
        t.verify(issued.challenge_id, issued.code.expose());
        // The same code again.
        t.verify(issued.challenge_id, issued.code.expose());
        // A PIN change, proven by a step-up code.
        let proof = step_up_by_sms(t, id);
        secrets.push(proof.code.expose().to_owned());
        let changed = t
            .engine
            .change_pin(
                id,
                &Pin::new(PIN),
                proof.challenge_id,
                &proof.code,
                &Pin::new(OTHER_PIN),
            )
            .and_then(Durable::wait)
            .unwrap();
        assert!(matches!(changed, PinChange::Changed), "{changed:?}");
        // A contact change.
        let proof = step_up_by_sms(t, id);
        secrets.push(proof.code.expose().to_owned());
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
        secrets.push(confirm.code.expose().to_owned());
        t.engine
            .confirm_contact_change(confirm.challenge_id, &confirm.code)
            .and_then(Durable::wait)
            .unwrap();
        // An operator locks, unlocks, resets, and finally cancels.
        t.engine.lock(id, "fraud report").unwrap().wait().unwrap();
        t.engine.unlock(id).unwrap().wait().unwrap();
        t.engine
            .reset_pin(id, &Pin::new("7302"))
            .unwrap()
            .wait()
            .unwrap();
        secrets.push("7302".into());
        t.engine
            .register_push_device(id, PushToken::parse("push-token-0123456789abcdef").unwrap())
            .unwrap()
            .wait()
            .unwrap();
        secrets.push("push-token-0123456789abcdef".into());
        t.engine.cancel(id).unwrap().wait().unwrap();
        (id, secrets)
    })
}

fn every_operation_writes_its_event_naming_the_client(backend: Backend) {
    let t = TestEngine::on(backend, |_| {});
    let (id, secrets) = life(&t);
    let events = all_events(&t);
    let mine: Vec<&AuditRecord> = events
        .iter()
        .filter(|r| r.event.account == Some(id))
        .collect();
    let seen: Vec<EventKind> = mine.iter().map(|r| r.event.kind).collect();
    for expected in [
        EventKind::Registered,
        EventKind::LoginWrongPin,
        EventKind::LoginAccepted,
        EventKind::CodeIssued,
        EventKind::CodeWrong,
        EventKind::CodeAccepted,
        EventKind::CodeAlreadyUsed,
        EventKind::PinChanged,
        EventKind::ContactChangeRequested,
        EventKind::ContactChanged,
        EventKind::NoticeQueued,
        EventKind::Locked,
        EventKind::Unlocked,
        EventKind::PinReset,
        EventKind::PushDeviceSet,
        EventKind::Cancelled,
    ] {
        assert!(
            seen.contains(&expected),
            "{expected:?} missing from {seen:?}"
        );
    }
    for r in &mine {
        assert_eq!(r.event.actor.client.as_deref(), Some("portal"), "{r:?}");
        assert_eq!(r.event.actor.request_id.as_deref(), Some("req-1"));
        assert_eq!(r.event.actor.source_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(r.event.outcome, r.event.kind.outcome());
    }
    // The order is the order things happened in.
    let position = |k: EventKind| seen.iter().position(|s| *s == k).unwrap();
    assert!(position(EventKind::Registered) < position(EventKind::LoginWrongPin));
    assert!(position(EventKind::LoginWrongPin) < position(EventKind::LoginAccepted));
    assert!(position(EventKind::CodeWrong) < position(EventKind::CodeAccepted));
    assert!(position(EventKind::Locked) < position(EventKind::Unlocked));
    assert_eq!(seen.last(), Some(&EventKind::Cancelled));
    // Sequence numbers are consecutive over the whole trail.
    for pair in events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(pair[1].prev, pair[0].hash);
    }
    // No secret and no full contact, in any field.
    let text = format!("{events:?}");
    for secret in secrets.iter().map(String::as_str).chain([
        PHONE,
        NEW_PHONE,
        "912345678",
        "ana.silva@example.pt",
    ]) {
        assert!(!text.contains(secret), "{secret} is in the trail");
    }
    // The destination a code went to is there, masked.
    let issued = mine
        .iter()
        .find(|r| r.event.kind == EventKind::CodeIssued)
        .unwrap();
    assert!(
        issued
            .event
            .detail("destination")
            .is_some_and(|to| to.contains('*'))
    );
    assert_eq!(issued.event.detail("purpose"), Some("login"));
    assert_eq!(issued.event.detail("channel"), Some("sms"));
    let locked = mine
        .iter()
        .find(|r| r.event.kind == EventKind::Locked)
        .unwrap();
    assert_eq!(
        locked.event.detail("reason"),
        Some("administrative: fraud report")
    );
    assert!(t.engine.verify_audit().unwrap().is_ok());
}

#[test]
fn every_operation_writes_its_event_naming_the_client_on_sled() {
    every_operation_writes_its_event_naming_the_client(Backend::Sled);
}

#[test]
fn every_operation_writes_its_event_naming_the_client_in_memory() {
    every_operation_writes_its_event_naming_the_client(Backend::Memory);
}

#[test]
fn a_refused_operation_records_no_change() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let before = all_events(&t).len();
    // A second registration of the same phone fails: no event.
    let again = t.engine.register(NewAccount {
        identity: Identity::parse(IdentityKind::CivilId, "11111111", None).unwrap(),
        phone: Some(Phone::parse(PHONE).unwrap()),
        email: None,
        pin: Pin::new(PIN),
        birth_date: None,
        postal_address: None,
        dm: None,
        locale: None,
    });
    assert!(again.is_err());
    // A lock with an empty reason is refused before anything happens.
    assert!(t.engine.lock(id, "").is_err());
    let after = all_events(&t);
    let new: Vec<EventKind> = kinds(&after[before..]);
    assert!(new.is_empty(), "{new:?}");
}

#[test]
fn an_unknown_login_is_recorded_by_a_keyed_hash_that_links_attempts() {
    let t = TestEngine::new();
    for _ in 0..2 {
        t.login("+351911111111", PIN);
    }
    t.login("+351922222222", PIN);
    let events = all_events(&t);
    let unknown: Vec<&AuditRecord> = events
        .iter()
        .filter(|r| r.event.kind == EventKind::LoginUnknown)
        .collect();
    assert_eq!(unknown.len(), 3);
    assert!(unknown.iter().all(|r| r.event.account.is_none()));
    assert_eq!(unknown[0].event.outcome, Outcome::Failure);
    let hash = |r: &AuditRecord| r.event.detail("login").unwrap().to_owned();
    assert_eq!(hash(unknown[0]), hash(unknown[1]), "same login, same hash");
    assert_ne!(hash(unknown[0]), hash(unknown[2]));
    let text = format!("{events:?}");
    assert!(!text.contains("911111111") && !text.contains("922222222"));
}

#[test]
fn a_lockout_records_the_failures_and_the_lock() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    for _ in 0..t.config.lockout.pin_threshold {
        t.login(PHONE, OTHER_PIN);
    }
    t.login(PHONE, PIN);
    let events = t.engine.account_events(id, None, 100).unwrap();
    let kinds = kinds(&events);
    assert_eq!(kinds[0], EventKind::LoginLocked, "newest first: {kinds:?}");
    assert!(kinds.contains(&EventKind::Locked));
    let wrong = kinds
        .iter()
        .filter(|k| **k == EventKind::LoginWrongPin)
        .count();
    assert_eq!(wrong as u32, t.config.lockout.pin_threshold);
}

#[test]
fn an_accounts_events_page_newest_first_and_every_event_once() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let other = t.register("+351939999999");
    for _ in 0..7 {
        t.login_code(PHONE);
        t.login_code("+351939999999");
    }
    t.engine.flush().unwrap();
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = t.engine.account_events(id, before, 4).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 4);
        before = page.last().map(|r| r.seq);
        pages.extend(page);
    }
    let seqs: Vec<u64> = pages.iter().map(|r| r.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seqs, sorted, "strictly newest first, no repeats");
    assert!(pages.iter().all(|r| r.event.account == Some(id)));
    // 1 registration + 7 × (login accepted + code issued).
    assert_eq!(pages.len(), 15);
    let theirs = t.engine.account_events(other, None, 1000).unwrap();
    assert_eq!(theirs.len(), 15);
}

#[test]
fn the_feed_serves_events_after_a_sequence_number_in_order() {
    let t = TestEngine::new();
    t.register(PHONE);
    t.login_code(PHONE);
    t.engine.flush().unwrap();
    let first = t.engine.events_after(0, 2).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].seq, 1);
    let rest = t.engine.events_after(first[1].seq, 1000).unwrap();
    assert_eq!(rest[0].seq, first[1].seq + 1);
    let last = rest.last().unwrap().seq;
    assert_eq!(last, t.engine.audit_durable_seq());
    assert!(t.engine.events_after(last, 10).unwrap().is_empty());
    assert!(t.engine.events_after(u64::MAX, 10).unwrap().is_empty());
}

#[test]
fn a_restart_continues_the_chain() {
    for backend in [Backend::Sled, Backend::Memory] {
        let t = TestEngine::on(backend, |_| {});
        t.register(PHONE);
        t.login_code(PHONE);
        let before = all_events(&t).last().unwrap().seq;
        let t = t.restart();
        t.login_code(PHONE);
        let events = all_events(&t);
        assert!(events.last().unwrap().seq > before + 1);
        let report = t.engine.verify_audit().unwrap().expect("the chain holds");
        assert_eq!(report.first, 1);
        assert_eq!(report.last, events.last().unwrap().seq);
        assert!(report.checkpoints >= 2, "{report:?}");
    }
}

#[test]
fn checkpoints_come_every_n_events_and_after_the_interval() {
    let t = TestEngine::with_config(|c| {
        c.audit.checkpoint_every = 5;
        c.audit.checkpoint_interval = Duration::from_secs(60);
    });
    t.register(PHONE);
    for _ in 0..6 {
        t.login_code(PHONE);
    }
    let count = |t: &TestEngine| {
        let mut n = 0;
        t.engine
            .scan_events(0, &mut |r| {
                n += u64::from(r.event.kind == EventKind::Checkpoint);
                Ok(true)
            })
            .unwrap();
        n
    };
    // 13 events with one every 5: two checkpoints, no flush needed.
    let wait = |written: Option<Durable<()>>| written.map(|d| d.wait().unwrap()).is_some();
    assert!(!wait(t.engine.audit_checkpoint(false).unwrap()));
    t.engine.flush().unwrap();
    let by_count = count(&t);
    assert_eq!(by_count, 3, "two by count, one by the flush");
    t.login_code(PHONE);
    assert!(
        !wait(t.engine.audit_checkpoint(false).unwrap()),
        "not before the interval"
    );
    t.advance(Duration::from_secs(60));
    assert!(
        wait(t.engine.audit_checkpoint(false).unwrap()),
        "after the interval"
    );
    assert_eq!(count(&t), by_count + 1);
    assert!(
        !wait(t.engine.audit_checkpoint(false).unwrap()),
        "none when nothing happened since"
    );
    if let Err(b) = t.engine.verify_audit().unwrap() {
        panic!("{b}");
    }
}

#[test]
fn pruning_keeps_the_chain_verifiable_from_the_oldest_kept_checkpoint() {
    let t = TestEngine::with_config(|c| {
        c.audit.retention = Some(Duration::from_secs(30 * 86_400));
        c.audit.checkpoint_every = 4;
    });
    let id = t.register(PHONE);
    for _ in 0..5 {
        t.login_code(PHONE);
    }
    t.engine.flush().unwrap();
    assert_eq!(t.engine.prune_audit().unwrap(), 0, "nothing is old yet");
    let old = all_events(&t).last().unwrap().seq;
    t.advance(Duration::from_secs(31 * 86_400));
    t.login_code(PHONE);
    let pruned = t.engine.prune_audit().unwrap();
    assert!(pruned > 0);
    let events = all_events(&t);
    let first = &events[0];
    assert_eq!(first.event.kind, EventKind::Checkpoint, "{first:?}");
    assert_eq!(pruned, first.seq - 1, "every event before the anchor, once");
    assert!(first.seq <= old + 1 && first.seq > 1);
    assert!(
        t.engine
            .account_events(id, None, 1000)
            .unwrap()
            .iter()
            .all(|r| r.seq > first.seq),
        "the account index is pruned too"
    );
    let report = t.engine.verify_audit().unwrap().expect("still verifies");
    assert_eq!(report.first, first.seq);
    // And it still does after a restart.
    let t = t.restart();
    assert!(t.engine.verify_audit().unwrap().is_ok());
}

#[test]
fn an_export_starts_at_the_checkpoint_before_its_time() {
    let t = TestEngine::with_config(|c| c.audit.checkpoint_every = 3);
    t.register(PHONE);
    t.login_code(PHONE);
    t.engine.flush().unwrap();
    t.advance(Duration::from_secs(3600));
    let since = t.engine.now();
    t.login_code(PHONE);
    t.login_code(PHONE);
    let start = t.engine.export_start(since).unwrap();
    let events = all_events(&t);
    let at = events.iter().find(|r| r.seq == start).unwrap();
    assert_eq!(at.event.kind, EventKind::Checkpoint);
    assert!(at.at <= since);
    let tail: Vec<AuditRecord> = events.into_iter().filter(|r| r.seq >= start).collect();
    let key = t.engine.audit_public_key();
    assert!(engine::audit::verify(tail, &key, 3, None).is_ok());
}

#[test]
fn signature_authorisations_record_the_documents_hash() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    let document = Document::parse("contrato-arrendamento.pdf", &"ab".repeat(32), None).unwrap();
    let outcome = t
        .engine
        .request_signature(
            &LoginId::Phone(Phone::parse(PHONE).unwrap()),
            &Pin::new(PIN),
            document,
            None,
            None,
            None,
        )
        .and_then(Durable::wait)
        .unwrap();
    let LoginOutcome::CodeSent(issued) = outcome else {
        panic!("{outcome:?}")
    };
    t.engine
        .verify(issued.challenge_id, Purpose::Signature, &issued.code)
        .and_then(Durable::wait)
        .unwrap();
    let events = t.engine.account_events(id, None, 10).unwrap();
    let signed = events
        .iter()
        .find(|r| r.event.kind == EventKind::SignatureAuthorised)
        .expect("recorded");
    assert_eq!(
        signed.event.detail("document_sha256"),
        Some(&*"ab".repeat(32))
    );
}

#[test]
fn a_cancelled_citizen_keeps_only_an_identity_until_the_retention_ends() {
    for backend in [Backend::Sled, Backend::Memory] {
        let t = TestEngine::on(backend, |c| {
            c.audit.retention = Some(Duration::from_secs(30 * 86_400));
        });
        let id = t.register_full(PHONE, Some("ana.silva@example.pt"), PIN);
        let kept = t.register("+351939999999");
        t.engine.cancel(id).unwrap().wait().unwrap();
        let view = t.view(id);
        assert!(view.phone.is_none() && view.email.is_none(), "{view:?}");
        assert!(!view.has_postal_address && !view.has_push_device);
        assert_eq!(view.identity, identity_for(PHONE), "the identity stays");
        // The phone and identity are free again: the citizen may come back.
        let back = t.register(PHONE);
        assert_ne!(back, id);
        t.advance(Duration::from_secs(29 * 86_400));
        assert_eq!(t.engine.erase_cancelled().unwrap(), 0, "not yet");
        t.advance(Duration::from_secs(2 * 86_400));
        assert_eq!(t.engine.erase_cancelled().unwrap(), 1);
        assert!(matches!(
            t.engine.account(id),
            Err(EngineError::AccountNotFound)
        ));
        assert!(t.engine.account(kept).is_ok() && t.engine.account(back).is_ok());
        let events = all_events(&t);
        let erased = events
            .iter()
            .rev()
            .find(|r| r.event.kind != EventKind::Checkpoint)
            .unwrap();
        assert_eq!(erased.event.kind, EventKind::Erased, "{erased:?}");
        assert_eq!(erased.event.account, Some(id));
        let t = t.restart();
        assert!(
            matches!(t.engine.account(id), Err(EngineError::AccountNotFound)),
            "erased on disk too"
        );
        assert!(t.engine.verify_audit().unwrap().is_ok());
    }
}

#[test]
fn with_events_kept_for_ever_cancelled_identities_are_kept_too() {
    let t = TestEngine::with_config(|c| c.audit.retention = None);
    let id = t.register(PHONE);
    t.engine.cancel(id).unwrap().wait().unwrap();
    t.advance(Duration::from_secs(10 * 365 * 86_400));
    assert_eq!(t.engine.erase_cancelled().unwrap(), 0);
    assert!(t.engine.account(id).is_ok());
}

#[test]
fn a_login_on_a_pending_account_is_in_that_accounts_events() {
    let t = TestEngine::new();
    let pending = t
        .engine
        .pre_register(PreRegistration {
            identity: identity_for(PHONE),
            phone: Some(Phone::parse(PHONE).unwrap()),
            email: None,
            birth_date: BirthDate::parse("1980-04-25", START).unwrap(),
            postal_address: None,
            locale: None,
        })
        .and_then(Durable::wait)
        .unwrap()
        .id;
    assert!(matches!(
        t.login(PHONE, PIN),
        LoginOutcome::InvalidCredentials
    ));
    t.engine.flush().unwrap();
    let events = t.engine.account_events(pending, None, 10).unwrap();
    let kinds = kinds(&events);
    assert_eq!(
        kinds,
        [EventKind::LoginUnknown, EventKind::PreRegistered],
        "{events:?}"
    );
    assert!(events[0].event.detail("login").is_some());
}

/// Memory is correctness: what the audit log keeps about its writes stays
/// bounded however long nobody reads the trail (it grew by one entry per
/// write, for ever, when only a read let go of the flushed ones).
#[test]
fn the_logs_memory_of_its_writes_stays_bounded_without_readers() {
    let t = TestEngine::new();
    let id = t.register(PHONE);
    for _ in 0..2_500 {
        t.engine
            .issue_step_up(id, Some(Channel::Sms), None, None)
            .unwrap()
            .wait()
            .unwrap();
    }
    let tracked = t.engine.stats().audit_tracked;
    assert!(tracked <= 1_100, "{tracked} entries after 2,500 writes");
    // Reading still finds every event durable.
    assert!(t.engine.audit_durable_seq() >= 2_500);
}

/// An account's newest event is kept in its record when the same batch
/// writes the record, and by a pointer of its own when it does not (an
/// event alone, an operator's record): listing must find every event
/// either way, across restarts, whichever was written last.
#[test]
fn an_accounts_events_are_all_found_whichever_record_holds_the_newest() {
    let mut t = TestEngine::on(Backend::Sled, |_| {});
    let ana = t.register(PHONE);
    let rui = t.register(NEW_PHONE);
    for round in 0..3 {
        for (id, phone) in [(ana, PHONE), (rui, NEW_PHONE)] {
            // The record and its events in one batch.
            let issued = t.login_code(phone);
            t.verify(issued.challenge_id, &wrong(&issued.code));
            t.verify(issued.challenge_id, issued.code.expose());
            // An event without its account's record, then one with it.
            t.engine
                .record_event(EventKind::RateLimited, Some(id), &[("reason", "test")])
                .and_then(Durable::wait)
                .unwrap();
            if round == 1 {
                t.engine.lock(id, "check").unwrap().wait().unwrap();
                t.engine.unlock(id).unwrap().wait().unwrap();
            }
        }
        // The last thing written for ana this round is a pointer alone.
        t.engine
            .record_event(EventKind::RateLimited, Some(ana), &[("reason", "last")])
            .and_then(Durable::wait)
            .unwrap();
        t = t.restart();
    }
    let all = all_events(&t);
    for id in [ana, rui] {
        let expected: Vec<u64> = all
            .iter()
            .rev()
            .filter(|r| r.event.account == Some(id))
            .map(|r| r.seq)
            .collect();
        let listed: Vec<u64> = t
            .engine
            .account_events(id, None, 1_000)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(listed, expected, "{id}");
        assert!(listed.len() >= 18, "{}", listed.len());
    }
}
