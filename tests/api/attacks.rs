//! The attack suite: each test plays one attacker against a real server and
//! asserts the safe outcome. Defaults in force unless a test says otherwise:
//! 3 attempts per code, 10 code failures or 5 PIN failures lock the account,
//! 5 codes per account (and per destination) per 10 minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use otpd::config::{BodyFormat, Config};
use serde_json::json;
use tokio::task::JoinSet;

use crate::delivery::sms_gateway;
use crate::helpers::*;
use crate::peers::HttpPeer;

/// Lets tests claim a source address through `X-Forwarded-For` from loopback.
fn trust_loopback(c: &mut Config) {
    c.limits.trusted_proxies = vec!["127.0.0.1".into()];
}

async fn failures(app: &TestApp, account: &str) -> (u64, u64, String) {
    let a = app.account(account).await;
    (
        a.body["pin_failures"].as_u64().unwrap(),
        a.body["code_failures"].as_u64().unwrap(),
        a.body["state"].as_str().unwrap().to_owned(),
    )
}

fn reason(r: &Response) -> &str {
    r.body["error"]["reason"].as_str().unwrap_or("")
}

fn assert_retry_after(r: &Response) {
    let seconds: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(seconds >= 1, "{}", r.text);
}

/// 1. Guessing one code stops at its attempt limit; across re-issued codes
/// the account's counter keeps counting, and locks.
#[tokio::test]
async fn sequential_guessing_stops_per_code_and_locks_the_account() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "30000001").await;
    let mut guesses = 0;
    for round in 0..3 {
        let (id, code) = app.login_code(PHONE).await;
        for left in [2, 1, 0] {
            let r = app.verify(&id, &wrong(&code)).await;
            guesses += 1;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
            assert_eq!(r.body["error"]["attempts_remaining"], left);
        }
        // The right code is not even checked once the attempts are spent.
        let r = app.verify(&id, &code).await;
        assert_eq!((r.status, r.error_code()), (StatusCode::GONE, "exhausted"));
        assert_eq!(failures(&app, &account).await.1, 3 * (round + 1));
    }
    let (id, code) = app.login_code(PHONE).await;
    let r = app.verify(&id, &wrong(&code)).await;
    guesses += 1;
    assert_eq!(guesses, 10);
    assert_eq!(r.status, StatusCode::LOCKED, "the 10th failure locks");
    assert_eq!(app.verify(&id, &code).await.status, StatusCode::LOCKED);
    assert_eq!(app.login(PHONE, PIN).await.status, StatusCode::LOCKED);
    assert_eq!(failures(&app, &account).await.2, "locked");
}

/// 2. Resending after wrong guesses resets nothing, and the send cap is hit.
#[tokio::test]
async fn resending_resets_no_counter_and_hits_the_send_cap() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "30000002").await;
    let (mut id, mut code) = app.login_code(PHONE).await;
    let mut wrong_guesses = 0;
    let mut sent = 1;
    let refused = loop {
        assert_eq!(
            app.verify(&id, &wrong(&code)).await.status,
            StatusCode::UNAUTHORIZED
        );
        wrong_guesses += 1;
        assert_eq!(
            failures(&app, &account).await.1,
            wrong_guesses,
            "nothing resets"
        );
        app.clock.advance(Duration::from_secs(30)); // past the resend cooldown
        let r = app.resend(&id).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            break r;
        }
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        sent += 1;
        assert!(sent <= 6, "the send cap never came");
        id = r.body["challenge_id"].as_str().unwrap().to_owned();
        code = app.outbox.code_for(&id).await;
    };
    // 5 per 10 minutes as a burst, then one per 2 minutes: at 30 s spacing
    // the 7th send is refused.
    assert_eq!(sent, 6);
    assert_eq!(reason(&refused), "account_issue_rate", "{}", refused.text);
    assert_eq!(refused.error_code(), "rate_limited");
    assert_retry_after(&refused);
    // The refused resend did not kill the live code either.
    assert_eq!(app.verify(&id, &code).await.status, StatusCode::OK);
}

/// 3. 200 parallel wrong guesses on one code: every one is answered, only
/// the first 3 are checked and counted; the rest are refused unchecked.
#[tokio::test]
async fn parallel_wrong_guesses_are_all_counted_and_none_passes_the_limit() {
    let app = spawn_app_with(|c| {
        c.limits.attempts_per_ip_minute = 0;
        c.limits.attempts_per_client_minute = 0;
    })
    .await;
    let account = app.registered(PHONE, "30000003").await;
    let (id, code) = app.login_code(PHONE).await;
    let app = Arc::new(app);
    let mut set = JoinSet::new();
    for _ in 0..200 {
        let (app, id, guess) = (Arc::clone(&app), id.clone(), wrong(&code));
        set.spawn(async move { app.verify(&id, &guess).await });
    }
    let (mut counted, mut refused) = (0, 0);
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        match (r.status, r.error_code()) {
            (StatusCode::UNAUTHORIZED, "wrong_code") => counted += 1,
            (StatusCode::GONE, "exhausted") => refused += 1,
            other => panic!("unexpected answer {other:?}: {}", r.text),
        }
    }
    assert_eq!((counted, refused), (3, 197));
    assert_eq!(failures(&app, &account).await.1, 3, "recorded = checked");
    let r = app.verify(&id, &code).await;
    assert_eq!(
        r.error_code(),
        "exhausted",
        "the right code is not checked now"
    );
}

/// 4. The right code sent 50 times at once approves exactly once.
#[tokio::test]
async fn the_right_code_in_parallel_approves_exactly_once() {
    let app = spawn_app().await;
    app.registered(PHONE, "30000004").await;
    let (id, code) = app.login_code(PHONE).await;
    let app = Arc::new(app);
    let mut set = JoinSet::new();
    for _ in 0..50 {
        let (app, id, code) = (Arc::clone(&app), id.clone(), code.clone());
        set.spawn(async move { app.verify(&id, &code).await });
    }
    let (mut approved, mut used) = (0, 0);
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        match (r.status, r.error_code()) {
            (StatusCode::OK, _) => approved += 1,
            (StatusCode::GONE, "already_used") => used += 1,
            other => panic!("unexpected answer {other:?}: {}", r.text),
        }
    }
    assert_eq!((approved, used), (1, 49));
}

/// 5. One guess sprayed over many accounts: no hits, and the per-IP then the
/// per-client limits trip.
#[tokio::test]
async fn one_guess_sprayed_over_many_accounts_trips_ip_then_client_limits() {
    let app = spawn_app_with(|c| {
        trust_loopback(c);
        c.limits.attempts_per_ip_minute = 20;
        c.limits.attempts_per_client_minute = 30;
    })
    .await;
    let mut challenges = Vec::new();
    for i in 0..40 {
        let account = app
            .registered(&format!("+3519100000{i:02}"), &format!("310000{i:02}"))
            .await;
        let r = app.forwarded_for("10.0.0.1").step_up(&account).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        challenges.push(r.body["challenge_id"].as_str().unwrap().to_owned());
    }
    // On a cluster the attacker alternates between two nodes: the limits
    // are the cluster's, so the answers are exactly one node's.
    let second = app.second_node().await;
    let node = |n: usize| match &second {
        Some(b) if n % 2 == 1 => b,
        _ => &app,
    };
    let mut answers = Vec::new();
    for (n, id) in challenges.iter().enumerate() {
        let ip = if n < 25 { "203.0.113.7" } else { "203.0.113.8" };
        let r = node(n).forwarded_for(ip).step_up_verify(id, "123456").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_retry_after(&r);
        }
        answers.push((r.status, reason(&r).to_owned()));
    }
    let hits = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(
        hits, 0,
        "a one-in-a-million guess does not land in 40 tries"
    );
    let wrong = |range: std::ops::Range<usize>| {
        answers[range]
            .iter()
            .all(|(s, _)| *s == StatusCode::UNAUTHORIZED)
    };
    let limited = |range: std::ops::Range<usize>, why: &str| {
        answers[range]
            .iter()
            .all(|(s, r)| *s == StatusCode::TOO_MANY_REQUESTS && r == why)
    };
    assert!(wrong(0..20), "{answers:?}");
    assert!(limited(20..25, "ip_attempt_rate"), "{answers:?}");
    // A fresh address gets the client's remaining 10, then the client limit.
    assert!(wrong(25..35), "{answers:?}");
    assert!(limited(35..40, "client_attempt_rate"), "{answers:?}");
}

/// 6. Rotating source addresses do not help: the account counter locks.
#[tokio::test]
async fn rotating_source_addresses_still_lock_the_account() {
    let app = spawn_app_with(trust_loopback).await;
    let account = app.registered(PHONE, "30000006").await;
    for n in 1..=5 {
        let r = app
            .forwarded_for(&format!("198.51.100.{n}"))
            .login(PHONE, "9513")
            .await;
        let expected = if n < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::LOCKED
        };
        assert_eq!(r.status, expected, "attempt {n}: {}", r.text);
    }
    let r = app.forwarded_for("192.0.2.200").login(PHONE, PIN).await;
    assert_eq!(
        r.status,
        StatusCode::LOCKED,
        "the right PIN from a new address"
    );
    assert_eq!(failures(&app, &account).await.2, "locked");
}

/// 7. Phone and email reach one account and share one counter.
#[tokio::test]
async fn phone_and_email_share_one_failure_counter() {
    let app = spawn_app().await;
    let ana = NewAccount::new(Identity::civil_id("30000007"))
        .phone(PHONE)
        .email("ana@example.pt")
        .pin(PIN);
    let r = app.register_account(&ana).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let account = r.body["account_id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(
            app.login(PHONE, "9513").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let by_email = |pin: &'static str| {
        app.login_with(Contact::Email("ana@example.pt"), pin, Sending::default())
    };
    assert_eq!(by_email("9513").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(failures(&app, &account).await.0, 4);
    assert_eq!(
        by_email("9513").await.status,
        StatusCode::LOCKED,
        "3 + 2 = 5"
    );
    assert_eq!(app.login(PHONE, PIN).await.status, StatusCode::LOCKED);
}

/// 8. While locked, the right code gets the wrong code's answer and unlocks
/// nothing; after an unlock the old code is dead.
#[tokio::test]
async fn a_locked_account_answers_right_and_wrong_codes_alike() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "30000008").await;
    let (id, code) = app.login_code(PHONE).await;
    let r = app.lock(&account, "reported stolen phone").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let right = app.verify(&id, &code).await;
    let wrong_one = app.verify(&id, &wrong(&code)).await;
    assert_eq!(right.status, StatusCode::LOCKED);
    assert_eq!(
        (right.status, &right.body),
        (wrong_one.status, &wrong_one.body)
    );
    assert_eq!(
        failures(&app, &account).await.2,
        "locked",
        "the right code unlocked nothing"
    );
    assert_eq!(app.unlock(&account).await.status, StatusCode::OK);
    let r = app.verify(&id, &code).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.text);
    // A new login works.
    let (id, code) = app.login_code(PHONE).await;
    assert_eq!(app.verify(&id, &code).await.status, StatusCode::OK);
}

/// 9. Wrong PINs sprayed at a victim lock PIN login; a privileged reset recovers.
#[tokio::test]
async fn a_pin_spray_locks_login_but_a_privileged_reset_recovers() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "30000009").await;
    for pin in ["1357", "2468", "9753", "8642", "1470"] {
        app.login(PHONE, pin).await;
    }
    assert_eq!(app.login(PHONE, PIN).await.status, StatusCode::LOCKED);
    let r = app.reset_pin(&account, "5937").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["state"], "active");
    assert_eq!(
        app.login(PHONE, PIN).await.status,
        StatusCode::UNAUTHORIZED,
        "old PIN"
    );
    let r = app.login(PHONE, "5937").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&id).await;
    assert_eq!(app.verify(&id, &code).await.status, StatusCode::OK);
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// 10. Unknown and known logins are indistinguishable: same status, same
/// body, and (grossly) the same time, since both pay one Argon2 verification.
#[tokio::test]
async fn unknown_and_known_logins_look_the_same() {
    const SAMPLES: usize = 200;
    let app = spawn_app_with(|c| {
        c.limits = otpd::config::LimitsConfig::off();
        c.lockout.pin_threshold = 100;
    })
    .await;
    let known: Vec<String> = (0..4).map(|i| format!("+35192000000{i}")).collect();
    for (i, phone) in known.iter().enumerate() {
        app.registered(phone, &format!("3200000{i}")).await;
    }
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    let mut bodies = std::collections::BTreeSet::new();
    for n in 0..SAMPLES {
        // Interleaved, so drift on a shared machine hits both alike.
        for (phone, times) in [
            (known[n % known.len()].clone(), &mut known_times),
            (format!("+3519300{n:05}"), &mut unknown_times),
        ] {
            let started = Instant::now();
            let r = app.login(&phone, "9513").await;
            times.push(started.elapsed());
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
            bodies.insert(r.text);
        }
    }
    assert_eq!(bodies.len(), 1, "one body for both: {bodies:?}");
    let (k, u) = (median(known_times), median(unknown_times));
    eprintln!("login medians over {SAMPLES} samples: known {k:?}, unknown {u:?}");
    let ratio = k.as_secs_f64() / u.as_secs_f64();
    assert!((0.5..2.0).contains(&ratio), "known {k:?} vs unknown {u:?}");
}

/// 11. A code cannot be replayed: after success, after expiry, after being
/// superseded, on another account's challenge, or for another purpose.
#[tokio::test]
async fn codes_cannot_be_replayed() {
    let app = spawn_app().await;
    app.registered(PHONE, "30000011").await;
    let other = "+351911111111";
    app.registered(other, "30000012").await;

    let (id, code) = app.login_code(PHONE).await;
    assert_eq!(app.verify(&id, &code).await.status, StatusCode::OK);
    let r = app.verify(&id, &code).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::GONE, "already_used")
    );

    let (old, old_code) = app.login_code(PHONE).await;
    let (id, code) = app.login_code(PHONE).await;
    let r = app.verify(&old, &old_code).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::GONE, "superseded"));

    let r = app.step_up_verify(&id, &code).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "a login code is no step-up code"
    );
    let (theirs, _) = app.login_code(other).await;
    let r = app.verify(&theirs, &code).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "not valid on another account"
    );

    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    let r = app.verify(&id, &code).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::GONE, "expired"));
}

/// 12. Oversized and odd input is refused before any Argon2 work.
#[tokio::test]
async fn odd_input_is_refused_before_argon2_runs() {
    let app = spawn_app().await;
    app.registered(PHONE, "30000013").await;
    let (id, _) = app.login_code(PHONE).await;
    let runs = || app.state.engine.stats().argon2_runs;
    let before = runs();
    let huge = "9".repeat(10_000);
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "/v1/login",
            format!(r#"{{"phone":"{PHONE}","pin":"{}"}}"#, "1".repeat(1 << 20)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
        ),
        (
            "/v1/login",
            json!({ "phone": PHONE, "pin": "٤٨٢١" }).to_string(),
            StatusCode::BAD_REQUEST,
            "pin",
        ),
        (
            "/v1/login",
            json!({ "phone": PHONE, "pin": "48\u{0}21" }).to_string(),
            StatusCode::BAD_REQUEST,
            "pin",
        ),
        (
            "/v1/login",
            json!({ "phone": PHONE, "pin": "４８２１" }).to_string(),
            StatusCode::BAD_REQUEST,
            "pin",
        ),
        (
            "/v1/login",
            json!({ "phone": format!("+{huge}"), "pin": PIN }).to_string(),
            StatusCode::BAD_REQUEST,
            "phone",
        ),
        (
            "/v1/login",
            json!({ "phone": PHONE, "pin": huge }).to_string(),
            StatusCode::BAD_REQUEST,
            "pin",
        ),
        (
            "/v1/login",
            format!(r#"{{"phone":{deep},"pin":"{PIN}"}}"#),
            StatusCode::BAD_REQUEST,
            // Refused at the first bracket: a phone is a string.
            "phone",
        ),
        (
            "/v1/verify",
            json!({ "challenge_id": id, "code": huge }).to_string(),
            StatusCode::BAD_REQUEST,
            "code",
        ),
        (
            "/v1/verify",
            json!({ "challenge_id": huge, "code": "123456" }).to_string(),
            StatusCode::BAD_REQUEST,
            "challenge_id",
        ),
    ];
    for (path, body, status, field) in cases {
        let request = Request::post(format!("{}{path}", app.address))
            .header("authorization", format!("Bearer {}", app.auth_key))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let r = app.send(request).await;
        assert_eq!(
            r.status,
            status,
            "{field}: {}",
            &r.text[..r.text.len().min(300)]
        );
        if status == StatusCode::BAD_REQUEST {
            assert_eq!(r.body["error"]["field"], field, "{}", r.text);
        }
    }
    assert_eq!(runs(), before, "Argon2 ran on odd input");
    // Control: a well-formed wrong PIN does run Argon2, so the counter works.
    assert_eq!(
        app.login(PHONE, "9513").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(runs(), before + 1);
}

/// 13. SMS pumping: a blocked country and a burst into one calling code are
/// refused before the gateway is called.
#[tokio::test]
async fn sms_to_blocked_countries_and_bursts_never_reach_the_gateway() {
    let gateway = HttpPeer::start(&[]).await;
    let g = gateway.clone();
    let app = spawn_app_with(move |c| {
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Json)];
        c.limits.sms_blocked_prefixes = vec!["+234".into()];
        c.limits.sms_per_country_hour = 3;
    })
    .await;
    for i in 0..2 {
        let phone = format!("+23480312340{i}");
        app.registered(&phone, &format!("3300000{i}")).await;
        let r = app.login(&phone, PIN).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_eq!(r.error_code(), "destination_not_allowed");
        assert_eq!(reason(&r), "sms_country_not_allowed");
    }
    // On a cluster, alternately through two nodes: one budget for both.
    let second = app.second_node().await;
    let node = |n: usize| match &second {
        Some(b) if n % 2 == 1 => b,
        _ => &app,
    };
    let mut answers = Vec::new();
    for i in 0..5 {
        let phone = format!("+44770090000{i}");
        app.registered(&phone, &format!("3400000{i}")).await;
        let r = node(i).login(&phone, PIN).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(reason(&r), "sms_country_budget", "{}", r.text);
            assert_retry_after(&r);
        }
        answers.push(r.status);
    }
    assert_eq!(answers[..3], [StatusCode::CREATED; 3]);
    assert_eq!(answers[3..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    let received = gateway.wait_for(3, || {}).await;
    assert!(
        received
            .iter()
            .all(|r| r.json()["to"].as_str().unwrap().starts_with("+44"))
    );
    // Nothing else is queued: the refused codes were never made.
    assert_eq!(app.state.engine.stats().outbox, 0);
    assert_eq!(gateway.received().len(), 3);
    if let Some(b) = &second {
        assert_eq!(b.state.engine.stats().outbox, 0);
    }
    // (Servers in one test process share one metrics registry: this is
    // both nodes' count.)
    let metrics = app.metrics().await.text;
    assert!(
        metrics.contains(r#"otpd_rate_limited_total{reason="sms_country_budget"} 2"#),
        "{metrics}"
    );
}

/// 14. Spraying random source addresses at a limiter: its memory stays
/// capped, the limit still holds, and pruning empties it.
#[tokio::test]
async fn a_random_key_spray_cannot_grow_the_limiters() {
    const CAP: u32 = 500;
    let app = spawn_app_with(|c| {
        trust_loopback(c);
        c.limits.max_keys = CAP;
        c.limits.attempts_per_ip_minute = 5;
        c.limits.attempts_per_client_minute = 0;
    })
    .await;
    let app = Arc::new(app);
    let bogus = "0123456789abcdef0123456789abcdef";
    let mut set = JoinSet::new();
    for worker in 0..8u32 {
        let app = Arc::clone(&app);
        set.spawn(async move {
            let mut limited = 0;
            for n in 0..250u32 {
                let ip = format!("10.{}.{}.{}", worker, n / 256, n % 256);
                let r = app.forwarded_for(&ip).verify(bogus, "123456").await;
                match r.status {
                    StatusCode::NOT_FOUND => {}
                    StatusCode::TOO_MANY_REQUESTS => limited += 1,
                    other => panic!("unexpected {other}: {}", r.text),
                }
            }
            limited
        });
    }
    let mut limited = 0;
    while let Some(n) = set.join_next().await {
        limited += n.unwrap();
    }
    if let Some(buckets) = app.limit_buckets("ip_attempt_rate") {
        // On a cluster no node holds limiter keys: each address has its
        // bucket on the cluster, which expires once refilled (one check of
        // 5 per minute: 12 s), so a spray costs memory only briefly (those
        // of the spray's first seconds may be gone already). No single
        // address sent more than its limit.
        assert!(app.state.gate.usage().is_empty());
        assert_eq!(limited, 0);
        assert!((1..=2_000).contains(&buckets.len()), "{}", buckets.len());
        for ttl in buckets.iter().step_by(97) {
            // -2: gone since the scan; never -1 (kept for ever).
            assert!(
                *ttl == -2 || (1..=12_000).contains(ttl),
                "a bucket's TTL is {ttl} ms"
            );
        }
        return;
    }
    let usage = app.state.gate.usage();
    let (_, keys, overflowed) = usage
        .iter()
        .find(|(l, _, _)| *l == "ip_attempt_rate")
        .copied()
        .unwrap();
    assert!(keys <= CAP as usize, "{keys} keys held");
    assert_eq!(
        overflowed,
        2_000 - keys as u64,
        "every unseen key past the cap shares a bucket"
    );
    assert!(
        limited >= 2_000 - CAP as u64 - 5,
        "the overflow bucket still limits ({limited})"
    );
    app.clock.advance(Duration::from_secs(120));
    app.state.gate.prune();
    let (_, keys, _) = app
        .state
        .gate
        .usage()
        .into_iter()
        .find(|(l, _, _)| *l == "ip_attempt_rate")
        .unwrap();
    assert_eq!(keys, 0, "pruning forgets refilled buckets");
}
