//! Delivery through every channel, to real peers on loopback.

use std::time::Duration;

use otpd::config::{BodyFormat, Config, LetterMode, SmsGatewayConfig, SmtpTls};
use serde_json::json;

use crate::helpers::*;

/// The 6-digit code in a message: a run of exactly six digits that starts
/// after a space or `>` (headers and ids hold other digit runs).
pub fn code_in(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let before = start.checked_sub(1).map(|j| bytes[j]);
            if i - start == 6 && matches!(before, Some(b' ' | b'>')) {
                return text[start..i].to_owned();
            }
        } else {
            i += 1;
        }
    }
    panic!("no code in {text}")
}
use crate::peers::{Answer, HttpPeer, SmtpSink};

pub fn sms_gateway(peer: &HttpPeer, format: BodyFormat) -> SmsGatewayConfig {
    SmsGatewayConfig {
        name: "local".into(),
        url: format!("{}/send", peer.url),
        auth_header: "Authorization".into(),
        auth_value: "Bearer gateway-token".into(),
        body: format,
        template: match format {
            BodyFormat::Json => r#"{"to":"{to}","text":"{message}","ref":"{id}"}"#.into(),
            BodyFormat::Form => "to={to}&text={message}".into(),
        },
    }
}

/// Ana: civil id 12345678, an email and `PIN` (tests add a phone where they need one).
fn ana() -> NewAccount {
    NewAccount::new(Identity::civil_id("12345678"))
        .email("ana@example.pt")
        .pin(PIN)
}

pub fn fast_retries(c: &mut Config) {
    c.delivery.poll_interval_ms = 10;
    c.delivery.log_sink = false;
}

/// Waits (up to 10 s) for the challenge's delivery state; `nudge` runs between looks.
pub async fn wait_for_delivery(
    app: &TestApp,
    challenge: &str,
    state: &str,
    mut nudge: impl FnMut(),
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.challenge_status(challenge).await.body["delivery"] != state {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery never became {state}"
        );
        nudge();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sms_codes_reach_the_gateway_and_the_code_received_verifies() {
    let gateway = HttpPeer::start(&[]).await;
    let g = gateway.clone();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Json)];
        c.delivery.service_name = "gov.pt".into();
    })
    .await;
    app.registered(PHONE, "12345678").await;
    let login = app.login(PHONE, PIN).await;
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();
    let received = gateway.wait_for(1, || {}).await;
    let request = &received[0];
    assert_eq!(request.path, "/send");
    assert_eq!(request.headers["authorization"], "Bearer gateway-token");
    assert_eq!(request.headers["content-type"], "application/json");
    let body = request.json();
    assert_eq!(body["to"], PHONE);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("gov.pt: código de autenticação "),
        "{text}"
    );
    assert!(text.contains("Nunca partilhe este código"), "{text}");
    let code = code_in(text);
    assert_eq!(
        request.headers["idempotency-key"],
        body["ref"].as_str().unwrap()
    );
    assert_eq!(app.verify(&challenge, &code).await.status, 200);
    // Delivery status is visible on the challenge.
    wait_for_delivery(&app, &challenge, "sent", || {}).await;
}

#[tokio::test]
async fn form_bodies_and_english_messages_are_supported() {
    let gateway = HttpPeer::start(&[]).await;
    let g = gateway.clone();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Form)];
    })
    .await;
    let account = app.registered(PHONE, "12345678").await;
    app.step_up_with(&account, Sending::default().locale("en"))
        .await;
    let request = &gateway.wait_for(1, || {}).await[0];
    assert_eq!(
        request.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert!(
        request.body.starts_with("to=%2B351912345678&text="),
        "{}",
        request.body
    );
    assert!(
        request.body.contains("Never+share+this+code"),
        "{}",
        request.body
    );
}

#[tokio::test]
async fn a_gateway_failing_twice_then_answering_gets_the_message_on_the_third_try() {
    let gateway = HttpPeer::start(&[Answer::Status(503), Answer::StatusRetryAfter(429, 2)]).await;
    let g = gateway.clone();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Json)];
    })
    .await;
    app.registered(PHONE, "12345678").await;
    let login = app.login(PHONE, PIN).await;
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();
    let clock = app.clock.clone();
    let received = gateway
        .wait_for(3, || clock.advance(Duration::from_millis(500)))
        .await;
    let keys: Vec<_> = received
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one idempotency key for every try"
    );
    wait_for_delivery(&app, &challenge, "sent", || {}).await;
}

#[tokio::test]
async fn a_gateway_refusing_with_4xx_is_not_retried_and_the_message_is_dead_lettered() {
    let gateway = HttpPeer::start(&[Answer::Status(400)]).await;
    let g = gateway.clone();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Json)];
    })
    .await;
    app.registered(PHONE, "12345678").await;
    let login = app.login(PHONE, PIN).await;
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();
    gateway.wait_for(1, || {}).await;
    wait_for_delivery(&app, &challenge, "failed", || {}).await;
    app.clock.advance(Duration::from_secs(120));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        gateway.received().len(),
        1,
        "a permanent failure is not retried"
    );
    let dead = app.state.engine.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("400"), "{}", dead[0].reason);
}

#[tokio::test]
async fn a_hanging_gateway_times_out_and_a_second_gateway_takes_the_message() {
    let hanging = HttpPeer::start(&[Answer::Hang, Answer::Hang, Answer::Hang]).await;
    let backup = HttpPeer::start(&[]).await;
    let (h, b) = (hanging.clone(), backup.clone());
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.send_timeout_ms = 200;
        c.delivery.sms = vec![
            sms_gateway(&h, BodyFormat::Json),
            sms_gateway(&b, BodyFormat::Json),
        ];
    })
    .await;
    app.registered(PHONE, "12345678").await;
    app.login(PHONE, PIN).await;
    let clock = app.clock.clone();
    let got = backup
        .wait_for(1, || clock.advance(Duration::from_millis(500)))
        .await;
    assert_eq!(got[0].json()["to"], PHONE);
    assert!(
        !hanging.received().is_empty(),
        "the first gateway was tried first"
    );
}

#[tokio::test]
async fn email_goes_over_smtp_with_text_and_html_parts() {
    let smtp = SmtpSink::start(&[]).await;
    let port = smtp.port;
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.email.enabled = true;
        c.delivery.email.host = "127.0.0.1".into();
        c.delivery.email.port = port;
        c.delivery.email.tls = SmtpTls::None;
        c.delivery.email.from = "Autenticação <no-reply@gov.example>".into();
    })
    .await;
    let r = app.register_account(&ana()).await;
    assert_eq!(r.status, 201);
    let login = app
        .login_with(Contact::Email("ana@example.pt"), PIN, Sending::default())
        .await;
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();
    let mail = smtp.wait_for(1, || {}).await.remove(0);
    assert_eq!(mail.to, vec!["<ana@example.pt>"]);
    assert!(mail.from.contains("no-reply@gov.example"), "{}", mail.from);
    assert!(mail.data.contains("multipart/alternative"), "{}", mail.data);
    assert!(mail.data.contains("text/html"));
    assert!(mail.data.contains("Message-ID: <"), "{}", mail.data);
    let code = code_in(&mail.data);
    assert_eq!(app.verify(&challenge, &code).await.status, 200);
}

#[tokio::test]
async fn smtp_4xx_is_retried_and_5xx_is_final() {
    let smtp = SmtpSink::start(&["451 try later", "550 no such user"]).await;
    let port = smtp.port;
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.email.enabled = true;
        c.delivery.email.host = "127.0.0.1".into();
        c.delivery.email.port = port;
        c.delivery.email.tls = SmtpTls::None;
    })
    .await;
    app.register_account(&ana()).await;
    let login = app
        .login_with(Contact::Email("ana@example.pt"), PIN, Sending::default())
        .await;
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();
    let clock = app.clock.clone();
    wait_for_delivery(&app, &challenge, "failed", || {
        clock.advance(Duration::from_millis(500))
    })
    .await;
    let dead = app.state.engine.dead_letters().unwrap();
    assert_eq!(
        dead[0].attempts, 2,
        "one retry after 451, then 550 ended it"
    );
    assert!(smtp.mails().is_empty());
}

#[tokio::test]
async fn push_codes_go_to_the_relay_as_json() {
    let relay = HttpPeer::start(&[]).await;
    let r = relay.clone();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.push.url = format!("{}/push", r.url);
    })
    .await;
    let account = app.registered(PHONE, "12345678").await;
    app.push_device(&account, "device-token-0123456789").await;
    let issued = app.step_up_with(&account, Sending::by("push")).await;
    let challenge = issued.body["challenge_id"].as_str().unwrap();
    let body = relay.wait_for(1, || {}).await[0].json();
    assert_eq!(body["device_token"], "device-token-0123456789");
    assert_eq!(body["challenge_id"], challenge);
    assert_eq!(body["expires_at"], issued.body["expires_at"]);
    let code = body["code"].as_str().unwrap();
    assert_eq!(app.step_up_verify(challenge, code).await.status, 200);
}

/// A server that spools letters into the directory it returns.
async fn spawn_app_spooling_letters() -> (tempfile::TempDir, TestApp) {
    let spool = tempfile::tempdir().unwrap();
    let dir = spool.path().to_str().unwrap().to_owned();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.letter.mode = LetterMode::Spool;
        c.delivery.letter.spool_dir = dir;
    })
    .await;
    (spool, app)
}

/// Maria, pending activation by letter: her NISS, birth date and postal address.
fn maria(niss: &Identity) -> NewAccount {
    NewAccount::new(niss.clone())
        .birth_date("1980-04-25")
        .postal_address("Maria Silva\nRua Augusta 1\n1100-048 Lisboa")
}

#[tokio::test]
async fn letters_are_spooled_as_files_a_print_house_can_collect() {
    let (spool, app) = spawn_app_spooling_letters().await;
    let niss = Identity::social_security("11234567892");
    app.pre_register(&maria(&niss)).await;
    let r = app
        .request_activation(&niss, "1980-04-25", Sending::by("letter"))
        .await;
    let challenge = r.body["challenge_id"].as_str().unwrap().to_owned();
    let letter = spooled_letter(spool.path()).await;
    assert!(
        letter.starts_with("Maria Silva\nRua Augusta 1\n1100-048 Lisboa"),
        "{letter}"
    );
    assert!(
        letter.contains("Válido até 2026-12-23"),
        "30 days: {letter}"
    );
    let code = letter_code(&letter);
    assert_eq!(code.len(), 11, "printed in two groups: {code}");
    let done = app
        .complete_activation(&Activation::by_challenge(&challenge, &code, PIN))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
}

/// Waits (up to 10 s) for the one letter in the spool and reads it.
async fn spooled_letter(spool: &std::path::Path) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let files: Vec<_> = std::fs::read_dir(spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        if let Some(file) = files.first() {
            return std::fs::read_to_string(file).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no letter was written"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The activation code as a letter prints it.
fn letter_code(letter: &str) -> String {
    letter
        .lines()
        .find_map(|l| l.strip_prefix("Código de ativação: "))
        .unwrap_or_else(|| panic!("no code in the letter: {letter}"))
        .to_owned()
}

#[tokio::test]
async fn a_citizen_activates_from_the_letter_with_the_niss_and_the_code_then_logs_in() {
    let (spool, app) = spawn_app_spooling_letters().await;
    let niss = Identity::social_security("11234567892");
    let r = app
        .pre_register(&maria(&niss).email("maria@example.pt"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .request_activation(&niss, "1980-04-25", Sending::by("letter"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["challenge_id"].is_string());
    // The letter carries the code, not the challenge id: days later the
    // citizen types the NISS and the code, and chooses a PIN.
    let code = letter_code(&spooled_letter(spool.path()).await);
    let by_niss = |code: &str| Activation::by_identity(&niss, code, PIN);
    let wrong = app.complete_activation(&by_niss("ABCDE-FGHJK")).await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.error_code()),
        (401, "wrong_code"),
        "{}",
        wrong.text
    );
    let other_birth = app
        .complete_activation(&by_niss(&code).birth_date("1980-04-26"))
        .await;
    assert_eq!(
        (other_birth.status.as_u16(), other_birth.error_code()),
        (404, "activation_not_found")
    );
    let done = app
        .complete_activation(&by_niss(&code).birth_date("1980-04-25"))
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["result"], "approved");
    assert_eq!(done.body["state"], "active");
    let again = app.complete_activation(&by_niss(&code)).await;
    assert_eq!(
        (again.status.as_u16(), again.error_code()),
        (404, "activation_not_found"),
        "nothing is pending any more"
    );
    let login = app
        .login_with(Contact::Email("maria@example.pt"), PIN, Sending::default())
        .await;
    assert_eq!(login.status, 201, "{}", login.text);
    let challenge = login.body["challenge_id"].as_str().unwrap();
    let code = app.outbox.code_for(challenge).await;
    assert_eq!(app.verify(challenge, &code).await.status, 200);
}

#[tokio::test]
async fn an_activation_code_used_twice_is_gone_and_the_body_names_one_target() {
    let app = spawn_app().await;
    let niss = Identity::social_security("11234567892");
    let pending = NewAccount::new(niss.clone())
        .birth_date("1980-04-25")
        .phone(PHONE);
    app.pre_register(&pending).await;
    let r = app
        .request_activation(&niss, "1980-04-25", Sending::by("sms"))
        .await;
    let challenge = r.body["challenge_id"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&challenge).await;
    // Neither target, then both: odd bodies, sent as written.
    let niss_json = json!({ "kind": "social_security", "number": "11234567892" });
    for body in [
        json!({ "code": code, "pin": PIN }),
        json!({ "challenge_id": challenge, "identity": niss_json, "code": code, "pin": PIN }),
    ] {
        let r = app
            .post("/v1/activation/complete", &app.auth_key, body)
            .await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (400, Some("challenge_id")),
            "{}",
            r.text
        );
    }
    let activation = Activation::by_challenge(&challenge, &code, PIN);
    let first = app.complete_activation(&activation).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = app.complete_activation(&activation).await;
    assert_eq!(
        (second.status.as_u16(), second.error_code()),
        (410, "already_used"),
        "{}",
        second.text
    );
}

#[tokio::test]
async fn failed_sms_falls_back_to_email_when_configured() {
    let gateway = HttpPeer::start(&[Answer::Status(400)]).await;
    let smtp = SmtpSink::start(&[]).await;
    let (g, port) = (gateway.clone(), smtp.port);
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Json)];
        c.delivery.sms_fallback_to_email = true;
        c.delivery.email.enabled = true;
        c.delivery.email.host = "127.0.0.1".into();
        c.delivery.email.port = port;
        c.delivery.email.tls = SmtpTls::None;
    })
    .await;
    app.register_account(&ana().phone(PHONE)).await;
    let login = app
        .login_with(Contact::Phone(PHONE), PIN, Sending::by("sms"))
        .await;
    let challenge = login.body["challenge_id"].as_str().unwrap().to_owned();
    let mail = smtp.wait_for(1, || {}).await.remove(0);
    let code = code_in(&mail.data);
    assert_eq!(app.verify(&challenge, &code).await.status, 200);
    assert_eq!(
        app.challenge_status(&challenge).await.body["channel"],
        "email"
    );
}

#[tokio::test]
async fn every_message_queued_when_the_service_stops_is_sent_after_it_restarts() {
    // The gateway is down for the first three tries, one per citizen.
    let gateway = HttpPeer::start(&[
        Answer::Status(503),
        Answer::Status(503),
        Answer::Status(503),
    ])
    .await;
    let g = gateway.clone();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Json)];
    })
    .await;
    let phones = ["+351911111111", "+351922222222", "+351933333333"];
    let mut challenges = Vec::new();
    for (i, phone) in phones.iter().enumerate() {
        app.registered(phone, &format!("1000000{i}")).await;
        let login = app.login(phone, PIN).await;
        challenges.push(login.body["challenge_id"].as_str().unwrap().to_owned());
    }
    gateway.wait_for(3, || {}).await;
    let app = app.restart().await;
    let clock = app.clock.clone();
    let received = gateway
        .wait_for(6, || clock.advance(Duration::from_millis(500)))
        .await;
    for (phone, challenge) in phones.iter().zip(&challenges) {
        let delivered = received[3..]
            .iter()
            .find(|r| r.json()["to"] == *phone)
            .unwrap_or_else(|| panic!("nothing delivered to {phone} after the restart"));
        let code = code_in(delivered.json()["text"].as_str().unwrap());
        assert_eq!(app.verify(challenge, &code).await.status, 200);
    }
}

#[tokio::test]
async fn a_disabled_channel_is_refused_when_the_code_is_requested() {
    let gateway = HttpPeer::start(&[]).await;
    let g = gateway.clone();
    let app = spawn_app_without_capture(move |c| {
        fast_retries(c);
        c.delivery.sms = vec![sms_gateway(&g, BodyFormat::Json)];
    })
    .await;
    let r = app.register_account(&ana().phone(PHONE)).await;
    let account = r.body["account_id"].as_str().unwrap().to_owned();
    let by_email = app.step_up_with(&account, Sending::by("email")).await;
    assert_eq!(
        (by_email.status.as_u16(), by_email.error_code()),
        (409, "channel_unavailable")
    );
    let by_sms = app.step_up_with(&account, Sending::by("sms")).await;
    assert_eq!(by_sms.status, 201);
}

#[tokio::test]
async fn letters_can_be_posted_to_a_print_house_webhook_and_delivery_is_measured() {
    let printer = HttpPeer::start(&[]).await;
    let p = printer.clone();
    let app = spawn_app_with(move |c| {
        fast_retries(c);
        c.delivery.letter.mode = LetterMode::Webhook;
        c.delivery.letter.url = format!("{}/letters", p.url);
        c.delivery.letter.auth_header = "x-api-key".into();
        c.delivery.letter.auth_value = "printer-key".into();
    })
    .await;
    let civil_id = Identity::civil_id("12345678");
    let pending = NewAccount::new(civil_id.clone())
        .birth_date("1980-04-25")
        .postal_address("Rua Augusta 1\n1100-048 Lisboa");
    app.pre_register(&pending).await;
    let in_english = Sending::by("letter").locale("en");
    let r = app
        .request_activation(&civil_id, "1980-04-25", in_english)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let request = printer.wait_for(1, || {}).await.remove(0);
    assert_eq!(request.headers["x-api-key"], "printer-key");
    let body = request.json();
    assert_eq!(body["address"], "Rua Augusta 1\n1100-048 Lisboa");
    assert_eq!(body["code"].as_str().unwrap().len(), 10);
    assert!(
        body["letter"]
            .as_str()
            .unwrap()
            .contains("Activation code: ")
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app.metrics().await.text;
        if metrics.contains("otpd_delivery_attempts_total{channel=\"letter\",outcome=\"sent\"}") {
            assert!(metrics.contains("otpd_delivery_seconds_bucket{channel=\"letter\""));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery metrics"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_log_sink_refuses_to_run_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.environment = otpd::config::Environment::Production;
    let deps = || otpd::Dependencies {
        clock: std::sync::Arc::new(engine::ManualClock::new(START)),
        rng: engine::seeded_rng([1; 32]),
        code_key: engine::CodeKey::new([1; 32]),
        delivery: None,
    };
    let err = otpd::App::build(config.clone(), deps()).unwrap_err();
    assert!(err.to_string().contains("development only"), "{err}");
    assert_eq!(err.exit_code(), otpd::failure::Failure::CONFIG);
    config.delivery.log_sink = false;
    assert!(otpd::App::build(config, deps()).is_ok());
}
