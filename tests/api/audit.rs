//! The audit trail over HTTP: a citizen's events (newest first, paged),
//! what events keep of the caller, and who may read them. The feed and
//! exports are in `audit_feed.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use engine::{Durable, Scope, Scopes};
use hyper::Method;
use otpd::config::SourceIp;
use serde_json::Value;

use crate::helpers::*;

/// Every event of `account`, newest first, read `page` at a time by
/// following `next_before`; also the raw text of every page.
async fn account_history(app: &TestApp, account: &str, page: u64) -> (Vec<Value>, String) {
    let mut events = Vec::new();
    let mut raw = String::new();
    let mut query = format!("limit={page}");
    loop {
        let r = app.account_events(account, &query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        raw.push_str(&r.text);
        let got = r.body["events"].as_array().unwrap().clone();
        assert!(got.len() as u64 <= page, "{query}: more than the limit");
        events.extend(got);
        match r.body["next_before"].as_u64() {
            Some(before) => query = format!("before={before}&limit={page}"),
            None => return (events, raw),
        }
    }
}

/// Every durable event after `after`, in order, read `page` at a time by
/// following `next_after`.
pub(crate) async fn feed_from(app: &TestApp, after: u64, page: u64) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = after;
    loop {
        let r = app.events(&format!("after={after}&limit={page}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let got = r.body["events"].as_array().unwrap().clone();
        let next = r.body["next_after"].as_u64().unwrap();
        match got.last() {
            None => {
                assert_eq!(next, after, "an empty page keeps the place");
                return events;
            }
            Some(last) => assert_eq!(next, seq(last), "next_after is the page's last event"),
        }
        assert!(got.len() as u64 <= page);
        events.extend(got);
        after = next;
    }
}

pub(crate) fn seq(event: &Value) -> u64 {
    event["seq"].as_u64().unwrap()
}

pub(crate) fn kind(event: &Value) -> &str {
    event["kind"].as_str().unwrap()
}

fn request_id(r: &Response) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_owned()
}

/// `text` with every run of ten or more hex digits (hashes, signatures,
/// ids, millisecond times) replaced by `#`: a PIN or a code found inside a
/// hash by chance is not a leak.
fn without_long_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 10 {
            out.push('#');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// One call of the citizen's story and the events it must have written.
struct Call {
    request_id: String,
    client: &'static str,
    kinds: Vec<&'static str>,
}

fn call(r: &Response, status: u16, client: &'static str, kinds: &[&'static str]) -> Call {
    assert_eq!(r.status, status, "{}", r.text);
    Call {
        request_id: request_id(r),
        client,
        kinds: kinds.to_vec(),
    }
}

#[tokio::test]
async fn every_step_of_a_citizen_is_an_event_naming_its_client_and_request_newest_first() {
    const FIRST_PIN: &str = "48213907";
    const WRONG_PIN: &str = "59314826";
    const NEW_PIN: &str = "73920461";
    const EMAIL: &str = "ana.silva@example.pt";
    const NEW_PHONE: &str = "+351913579246";
    let app = spawn_app().await;
    let mut calls = Vec::new();
    let mut codes = Vec::new();

    let ana = NewAccount::new(Identity::civil_id("30571946"))
        .phone(PHONE)
        .email(EMAIL)
        .pin(FIRST_PIN);
    let r = app.register_account(&ana).await;
    calls.push(call(&r, 201, "accounts-only", &["registered"]));
    let account = r.body["account_id"].as_str().unwrap().to_owned();

    let r = app.login(PHONE, WRONG_PIN).await;
    calls.push(call(&r, 401, "auth-only", &["login_wrong_pin"]));
    let r = app
        .login_with(Contact::Phone(PHONE), FIRST_PIN, Sending::by("sms"))
        .await;
    calls.push(call(
        &r,
        201,
        "auth-only",
        &["login_accepted", "code_issued"],
    ));
    let login = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&login).await;
    let r = app.verify(&login, &wrong(&code)).await;
    calls.push(call(&r, 401, "auth-only", &["code_wrong"]));
    let r = app.verify(&login, &code).await;
    calls.push(call(&r, 200, "auth-only", &["code_accepted"]));
    codes.push(code);

    // A PIN or contact change: one relying party asks for the proof and uses it.
    let portal = app.portal();
    let r = portal.step_up_with(&account, Sending::by("sms")).await;
    calls.push(call(&r, 201, "everything", &["code_issued"]));
    let step_up = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&step_up).await;
    let r = portal
        .change_pin(&account, FIRST_PIN, (&step_up, &code), NEW_PIN)
        .await;
    calls.push(call(
        &r,
        200,
        "everything",
        &["code_accepted", "pin_changed"],
    ));
    codes.push(code);

    let r = portal.step_up_with(&account, Sending::by("sms")).await;
    calls.push(call(&r, 201, "everything", &["code_issued"]));
    let proof = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&proof).await;
    let r = portal
        .begin_contact_change(&account, (&proof, &code), Contact::Phone(NEW_PHONE))
        .await;
    calls.push(call(
        &r,
        201,
        "everything",
        &["code_accepted", "contact_change_requested", "code_issued"],
    ));
    codes.push(code);
    let change = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&change).await;
    let r = portal.confirm_contact_change(&change, &code).await;
    // Notices of the change: the new phone, the email and the old phone.
    calls.push(call(
        &r,
        200,
        "everything",
        &[
            "code_accepted",
            "contact_changed",
            "notice_queued",
            "notice_queued",
            "notice_queued",
        ],
    ));
    codes.push(code);

    let r = app.lock(&account, "suspected fraud").await;
    calls.push(call(&r, 200, "admin-only", &["locked"]));
    let r = app.unlock(&account).await;
    calls.push(call(&r, 200, "admin-only", &["unlocked"]));
    let r = app.cancel(&account).await;
    calls.push(call(&r, 200, "accounts-only", &["cancelled"]));

    // The whole history in one page, newest first.
    let whole = app.account_events(&account, "limit=1000").await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    assert_eq!(whole.body["next_before"], Value::Null, "{}", whole.text);
    let events = whole.body["events"].as_array().unwrap().clone();
    let seqs: Vec<u64> = events.iter().map(seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    for event in &events {
        assert_eq!(event["account_id"], account.as_str(), "{event}");
        assert_eq!(
            event["source_ip"], "127.0.0.0/24",
            "truncated by default: {event}"
        );
    }

    // Oldest first, each call's events together, in the call's order, with
    // its client and request id.
    let mut oldest_first = events.clone();
    oldest_first.reverse();
    let mut rest = oldest_first.as_slice();
    for call in &calls {
        let (mine, after) = rest.split_at(call.kinds.len().min(rest.len()));
        let kinds: Vec<&str> = mine.iter().map(kind).collect();
        assert_eq!(kinds, call.kinds, "request {}", call.request_id);
        for event in mine {
            assert_eq!(event["request_id"], call.request_id.as_str(), "{event}");
            assert_eq!(event["client"], call.client, "{event}");
        }
        rest = after;
    }
    assert!(rest.is_empty(), "events no call explains: {rest:?}");

    // What the events say, and their outcomes.
    let find =
        |wanted: &str| -> Vec<&Value> { events.iter().filter(|e| kind(e) == wanted).collect() };
    assert_eq!(find("login_wrong_pin")[0]["outcome"], "failure");
    assert_eq!(find("code_wrong")[0]["outcome"], "failure");
    assert_eq!(find("code_wrong")[0]["details"]["attempts_remaining"], "2");
    assert_eq!(find("login_accepted")[0]["outcome"], "success");
    let issued = find("code_issued");
    let login_issued = issued
        .iter()
        .find(|e| e["details"]["challenge_id"] == login.as_str())
        .unwrap();
    assert_eq!(login_issued["details"]["purpose"], "login");
    assert_eq!(login_issued["details"]["channel"], "sms");
    assert_eq!(login_issued["details"]["destination"], "+351******678");
    let changed = find("contact_changed")[0];
    assert_eq!(changed["details"]["field"], "phone");
    assert_eq!(changed["details"]["from"], "+351******678");
    assert_eq!(changed["details"]["to"], "+351******246");
    let notified: BTreeSet<&str> = find("notice_queued")
        .iter()
        .map(|e| e["details"]["to"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = ["+351******678", "+351******246", "a***@example.pt"].into();
    assert_eq!(notified, expected);
    assert!(
        find("locked")[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("suspected fraud")
    );

    // Paged three at a time: every event exactly once, in the same order.
    let (paged, raw) = account_history(&app, &account, 3).await;
    let paged_seqs: Vec<u64> = paged.iter().map(seq).collect();
    assert_eq!(paged_seqs, seqs);
    let (paged, _) = account_history(&app, &account, 1).await;
    assert_eq!(paged.iter().map(seq).collect::<Vec<_>>(), seqs);

    // No secret and no whole contact anywhere in what was served.
    let served = without_long_hex(&format!("{}{raw}", whole.text));
    let mut secrets = vec![
        FIRST_PIN,
        WRONG_PIN,
        NEW_PIN,
        PHONE,
        "912345678",
        NEW_PHONE,
        "913579246",
        EMAIL,
        "ana.silva",
    ];
    secrets.extend(codes.iter().map(String::as_str));
    for secret in secrets {
        assert!(!served.contains(secret), "{secret} in {served}");
    }
}

#[tokio::test]
async fn an_unknown_login_is_recorded_by_a_keyed_hash_shared_by_its_attempts() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let start = app.audit_info().await.body["durable_seq"].as_u64().unwrap();
    for (phone, pin) in [
        ("+351999888777", PIN),
        ("+351 999 888 777", "5093"),
        ("+351966555444", PIN),
    ] {
        assert_eq!(app.login(phone, pin).await.status, 401);
    }
    let by_email = Contact::Email("nobody@example.pt");
    let r = app.login_with(by_email, PIN, Sending::default()).await;
    assert_eq!(r.status, 401, "{}", r.text);

    let r = app.events(&format!("after={start}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let unknown: Vec<&Value> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| kind(e) == "login_unknown")
        .collect();
    assert_eq!(unknown.len(), 4, "{}", r.text);
    let hashes: Vec<&str> = unknown
        .iter()
        .map(|e| e["details"]["login"].as_str().unwrap())
        .collect();
    for (event, hash) in unknown.iter().zip(&hashes) {
        assert_eq!(event["account_id"], Value::Null, "{event}");
        assert_eq!(event["client"], "auth-only", "{event}");
        assert_eq!(event["outcome"], "failure", "{event}");
        assert!(
            hash.len() >= 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{hash}"
        );
    }
    assert_eq!(hashes[0], hashes[1], "one number, however it is written");
    assert_ne!(hashes[0], hashes[2]);
    assert_ne!(hashes[2], hashes[3]);
    for clear in ["999888777", "966555444", "nobody"] {
        assert!(!r.text.contains(clear), "{clear} in {}", r.text);
    }
}

#[tokio::test]
async fn the_source_address_is_kept_whole_truncated_or_not_at_all_as_configured() {
    let v4 = "198.51.100.77";
    let v6 = "2001:db8:1234:5678::1";
    for (setting, kept_v4, kept_v6, kept_peer) in [
        (SourceIp::Full, Some(v4), Some(v6), Some("127.0.0.1")),
        (
            SourceIp::Truncated,
            Some("198.51.100.0/24"),
            Some("2001:db8:1234::/48"),
            Some("127.0.0.0/24"),
        ),
        (SourceIp::Off, None, None, None),
    ] {
        let app = spawn_app_with(|c| {
            c.audit.source_ip = setting;
            c.limits.trusted_proxies = vec!["127.0.0.1".into()];
        })
        .await;
        let mut kept = Vec::new();
        for (caller, number, phone) in [
            (app.forwarded_for(v4), "12345678", "+351912000001"),
            (app.forwarded_for(v6), "23456789", "+351912000002"),
            ((*app).clone(), "34567890", "+351912000003"),
        ] {
            let account = caller.registered(phone, number).await;
            let r = app.account_events(&account, "").await;
            assert_eq!(r.status, 200, "{}", r.text);
            let event = &r.body["events"][0];
            assert_eq!(kind(event), "registered", "{}", r.text);
            kept.push((event["source_ip"].as_str().map(str::to_owned), r.text));
        }
        let wanted = [kept_v4, kept_v6, kept_peer];
        for ((got, text), wanted) in kept.iter().zip(wanted) {
            assert_eq!(got.as_deref(), wanted, "{setting:?}: {text}");
            if setting != SourceIp::Full {
                assert!(!text.contains(v4) && !text.contains("5678::1"), "{text}");
            }
        }
    }
}

#[tokio::test]
async fn only_admin_and_audit_clients_read_the_audit_trail() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (_, siem) = app
        .state
        .engine
        .add_client("siem", Scopes::of(&[Scope::Audit]))
        .and_then(Durable::wait)
        .unwrap();
    let paths = [
        format!("/v1/admin/accounts/{account}/events"),
        "/v1/admin/events".to_owned(),
        "/v1/admin/events?after=0&wait=1".to_owned(),
        "/v1/admin/events/1/trailer".to_owned(),
        "/v1/admin/audit".to_owned(),
    ];
    for path in &paths {
        for key in [&app.auth_key, &app.accounts_key, &app.sign_key] {
            let r = app.request(Method::GET, path, Some(key), None).await;
            assert_eq!(
                (r.status.as_u16(), r.error_code()),
                (403, "forbidden"),
                "{path}: {}",
                r.text
            );
            assert!(!r.text.contains("events\""), "{}", r.text);
        }
        let r = app.request(Method::GET, path, None, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text);
        let r = app
            .request(Method::GET, path, Some("not-a-key"), None)
            .await;
        assert_eq!(r.status, 401, "{path}: {}", r.text);
        for key in [&app.admin_key, &app.all_key, siem.expose()] {
            let r = app.request(Method::GET, path, Some(key), None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            // On a cluster each answer names the node whose chain it is.
            if !path.ends_with("/trailer") {
                let node = &r.body["node"];
                match crate::BACKEND {
                    otpd::config::Backend::Sled => assert!(node.is_null(), "{}", r.text),
                    otpd::config::Backend::RedisCluster => {
                        assert_eq!(node.as_str().map(str::len), Some(16), "{}", r.text);
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn each_relying_party_is_named_in_the_events_of_its_own_calls_only() {
    let app = spawn_app().await;
    let add = |name: &str| {
        let (_, key) = app
            .state
            .engine
            .add_client(name, Scopes::of(&[Scope::Auth]))
            .and_then(Durable::wait)
            .unwrap();
        app.with_key(key.expose())
    };
    let (portal, tax) = (add("citizen-portal"), add("tax-office"));
    let ana = app.registered(PHONE, "12345678").await;
    let rui = app.registered("+351912000002", "23456789").await;

    // Interleaved: each portal logs in both citizens, one wrong code each.
    let mut made_by: BTreeMap<String, &str> = BTreeMap::new();
    for (client, name) in [(&portal, "citizen-portal"), (&tax, "tax-office")] {
        for phone in [PHONE, "+351912000002"] {
            let r = client.login(phone, PIN).await;
            assert_eq!(r.status, 201, "{}", r.text);
            made_by.insert(request_id(&r), name);
            let id = r.body["challenge_id"].as_str().unwrap();
            let code = app.outbox.code_for(id).await;
            let r = client.verify(id, &wrong(&code)).await;
            made_by.insert(request_id(&r), name);
            let r = client.verify(id, &code).await;
            assert_eq!(r.status, 200, "{}", r.text);
            made_by.insert(request_id(&r), name);
        }
    }
    for account in [&ana, &rui] {
        let (events, _) = account_history(&app, account, 100).await;
        let mut seen = BTreeMap::new();
        for event in events.iter().filter(|e| kind(e) != "registered") {
            let id = event["request_id"].as_str().unwrap();
            let name = made_by.get(id).unwrap_or_else(|| panic!("{event}"));
            assert_eq!(event["client"], *name, "{event}");
            *seen.entry(*name).or_insert(0) += 1;
        }
        // login_accepted, code_issued, code_wrong, code_accepted, each.
        assert_eq!(seen.get("citizen-portal"), Some(&4), "{seen:?}");
        assert_eq!(seen.get("tax-office"), Some(&4), "{seen:?}");
        assert_eq!(events.last().map(kind), Some("registered"));
        assert_eq!(events.last().unwrap()["client"], "accounts-only");
    }
}

#[tokio::test]
async fn every_other_endpoint_that_changes_something_names_its_client_in_its_events() {
    const HASH: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443322";
    let app = spawn_app().await;
    // (request id, client, a kind its events must include)
    let mut made: Vec<(String, &str, &str)> = Vec::new();
    let mut note = |r: &Response, status: u16, client: &'static str, kind: &'static str| {
        assert_eq!(r.status, status, "{kind}: {}", r.text);
        made.push((request_id(r), client, kind));
    };

    let niss = Identity::social_security("11234567892");
    let maria = NewAccount::new(niss.clone())
        .birth_date("1980-04-25")
        .phone("+351912000009");
    let r = app.pre_register(&maria).await;
    note(&r, 201, "accounts-only", "pre_registered");
    let r = app
        .request_activation(&niss, "1980-04-25", Sending::by("sms"))
        .await;
    note(&r, 201, "auth-only", "activation_requested");
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&id).await;
    let r = app
        .complete_activation(&Activation::by_challenge(&id, &code, PIN))
        .await;
    note(&r, 200, "auth-only", "activation_completed");
    let maria = r.body["account_id"].as_str().unwrap().to_owned();
    let r = app.push_device(&maria, "device-token-0123456789").await;
    note(&r, 200, "accounts-only", "push_device_set");

    let ana = app.registered(PHONE, "12345678").await;
    let r = app.login(PHONE, PIN).await;
    note(&r, 201, "auth-only", "code_issued");
    let first = r.body["challenge_id"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::from_secs(30));
    let r = app.resend(&first).await;
    note(&r, 201, "auth-only", "code_issued");
    let code = app.outbox.code_for(&first).await;
    let r = app.verify(&first, &code).await;
    note(&r, 410, "auth-only", "code_superseded");

    let document = Document::new("contrato.pdf", HASH);
    let r = app
        .request_signature(Contact::Phone(PHONE), PIN, &document, Sending::default())
        .await;
    note(&r, 201, "sign-only", "login_accepted");
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&id).await;
    let r = app.verify_signature(&id, &code).await;
    note(&r, 200, "sign-only", "signature_authorised");

    let r = app
        .import(&[NewAccount::new(Identity::civil_id("22345678"))
            .email("x@example.pt")
            .state("pending_activation")
            .birth_date("1970-01-01")])
        .await;
    note(&r, 200, "admin-only", "imported");
    let r = app.backup().await;
    note(&r, 200, "admin-only", "backup_taken");
    let r = app.rotate_key().await;
    note(&r, 200, "admin-only", "key_rotated");
    let r = app.lock(&ana, "fraud").await;
    note(&r, 200, "admin-only", "locked");
    let r = app.login(PHONE, PIN).await;
    note(&r, 423, "auth-only", "login_locked");
    // Acknowledged last: every event before it is durable, so in the feed.
    let r = app.reset_pin(&ana, "60418275").await;
    note(&r, 200, "admin-only", "pin_reset");

    let events = feed_from(&app, 0, 1000).await;
    for (request, client, wanted) in &made {
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["request_id"] == request.as_str())
            .collect();
        assert!(
            mine.iter().any(|e| kind(e) == *wanted),
            "no {wanted} for request {request}: {mine:?}"
        );
        for event in mine {
            assert_eq!(event["client"], *client, "{event}");
        }
    }
    let signed = events
        .iter()
        .find(|e| kind(e) == "signature_authorised")
        .unwrap();
    assert_eq!(signed["details"]["document_sha256"], HASH);
}

#[test]
fn long_hex_runs_are_masked_and_short_ones_kept() {
    assert_eq!(
        without_long_hex(r#"{"hash":"48213907ab12cd34ef","pin":"4821","seq":12}"#),
        r##"{"hash":"#","pin":"4821","seq":12}"##
    );
}
