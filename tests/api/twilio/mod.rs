//! The Twilio Verify v2 surface, route by route and field by field: every
//! answer's shape (the fields Twilio's SDKs read, dates as they parse them),
//! here; every refusal as Twilio's error body (`code`, `message`,
//! `more_info`, `status`), in `errors.rs`. The official SDKs themselves run
//! against a real otpd in `api/tests/twilio_sdk.rs`.

mod errors;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};
use serde_json::Value;

use crate::helpers::*;

pub(super) const TO: &str = "+351912000555";

/// A key's Twilio credentials: `AC` + key id + 16 zeros, and its secret.
pub(super) fn credentials(key: &str) -> (String, String) {
    let (id, secret) = key
        .strip_prefix("otpd_")
        .and_then(|k| k.split_once('_'))
        .unwrap();
    (format!("AC{id}0000000000000000"), secret.to_owned())
}

/// A form request to the Twilio surface as `key`'s client (`None`: no credentials).
pub(super) async fn twilio(
    app: &ApiClient,
    method: Method,
    path: &str,
    key: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{}{path}", app.address));
    if let Some(key) = key {
        let (sid, token) = credentials(key);
        let basic = STANDARD.encode(format!("{sid}:{token}"));
        builder = builder.header("authorization", format!("Basic {basic}"));
    }
    let body = if form.is_empty() {
        String::new()
    } else {
        builder = builder.header("content-type", "application/x-www-form-urlencoded");
        let mut encoded = String::new();
        for (i, (name, value)) in form.iter().enumerate() {
            if i > 0 {
                encoded.push('&');
            }
            encoded.push_str(name);
            encoded.push('=');
            for b in value.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                        encoded.push(char::from(b));
                    }
                    b' ' => encoded.push('+'),
                    other => encoded.push_str(&format!("%{other:02X}")),
                }
            }
        }
        encoded
    };
    app.send(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
}

pub(super) async fn post(app: &ApiClient, path: &str, form: &[(&str, &str)]) -> Response {
    twilio(app, Method::POST, path, Some(&app.all_key), form).await
}

pub(super) async fn get(app: &ApiClient, path: &str) -> Response {
    twilio(app, Method::GET, path, Some(&app.all_key), &[]).await
}

/// Asserts a Twilio error: HTTP status, Twilio code, the message's start.
#[track_caller]
pub(super) fn refused(r: &Response, status: StatusCode, code: u64, message: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["code"], code, "{}", r.text);
    assert_eq!(r.body["status"], status.as_u16(), "{}", r.text);
    assert_eq!(
        r.body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{}",
        r.text
    );
    let said = r.body["message"].as_str().unwrap_or_default();
    assert!(said.starts_with(message), "{message:?} in {}", r.text);
    // Either key would make the SDKs read another error type.
    assert!(r.body.get("type").is_none() && r.body.get("title").is_none());
}

/// Asserts `body` has exactly `keys`, and Twilio's dates.
#[track_caller]
fn shape(body: &Value, keys: &[&str]) {
    let mut have: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    have.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(have, want, "{body}");
    for date in ["date_created", "date_updated"] {
        let text = body[date].as_str().unwrap();
        let b = text.as_bytes();
        assert!(
            b.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[19] == b'Z',
            "{date} {text:?} is not YYYY-MM-DDTHH:MM:SSZ"
        );
    }
}

const SERVICE: &[&str] = &[
    "sid",
    "account_sid",
    "friendly_name",
    "code_length",
    "lookup_enabled",
    "psd2_enabled",
    "skip_sms_to_landlines",
    "dtmf_input_required",
    "tts_name",
    "do_not_share_warning_enabled",
    "custom_code_enabled",
    "push",
    "totp",
    "whatsapp",
    "default_template_sid",
    "verify_event_subscription_enabled",
    "date_created",
    "date_updated",
    "url",
    "links",
];
const VERIFICATION: &[&str] = &[
    "sid",
    "service_sid",
    "account_sid",
    "to",
    "channel",
    "status",
    "valid",
    "lookup",
    "amount",
    "payee",
    "send_code_attempts",
    "date_created",
    "date_updated",
    "sna",
    "url",
];
const CHECK: &[&str] = &[
    "sid",
    "service_sid",
    "account_sid",
    "to",
    "channel",
    "status",
    "valid",
    "amount",
    "payee",
    "sna_attempts_error_codes",
    "date_created",
    "date_updated",
];

/// A new service of the auth client; its path.
pub(super) async fn service(app: &ApiClient) -> String {
    let r = post(app, "/v2/Services", &[("FriendlyName", "Loja Online")]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    format!("/v2/Services/{}", r.body["sid"].as_str().unwrap())
}

/// Starts an SMS verification to `to`; answers its sid and code.
pub(super) async fn verification(app: &TestApp, service: &str, to: &str) -> (String, String) {
    let r = post(
        app,
        &format!("{service}/Verifications"),
        &[("To", to), ("Channel", "sms")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sid = r.body["sid"].as_str().unwrap().to_owned();
    let code = app.outbox.code_for(&sid[2..]).await;
    (sid, code)
}

#[tokio::test]
async fn services_are_created_and_read_in_twilios_shape() {
    let app = spawn_app().await;
    let r = post(
        &app,
        "/v2/Services",
        &[("FriendlyName", "Loja Online"), ("CodeLength", "6")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    shape(&r.body, SERVICE);
    let sid = r.body["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("VA") && sid.len() == 34, "{sid}");
    assert_eq!(r.body["friendly_name"], "Loja Online");
    assert_eq!(r.body["code_length"], 6);
    assert_eq!(r.body["account_sid"].as_str().unwrap().len(), 34);
    let url = r.body["url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/v2/Services/{sid}")), "{url}");
    assert!(
        r.body["links"]["verifications"]
            .as_str()
            .unwrap()
            .ends_with("/Verifications")
    );
    let fetched = get(&app, &format!("/v2/Services/{sid}")).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);
    shape(&fetched.body, SERVICE);
    assert_eq!(fetched.body["sid"], sid.as_str());
    // Another client's service does not exist for this one.
    let other = app
        .new_client(serde_json::json!({"name": "shop", "scopes": ["verify"]}))
        .await;
    let r = twilio(
        &app,
        Method::GET,
        &format!("/v2/Services/{sid}"),
        Some(&other),
        &[],
    )
    .await;
    refused(
        &r,
        StatusCode::NOT_FOUND,
        20404,
        "The requested resource /v2/Services/VA",
    );
}

#[tokio::test]
async fn a_verification_runs_from_start_to_approval() {
    let app = spawn_app().await;
    let service = service(&app).await;
    let r = post(
        &app,
        &format!("{service}/Verifications"),
        &[
            ("To", TO),
            ("Channel", "sms"),
            ("Locale", "pt-PT"),
            ("CustomFriendlyName", "Loja"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    shape(&r.body, VERIFICATION);
    let sid = r.body["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("VE") && sid.len() == 34, "{sid}");
    assert_eq!(r.body["service_sid"], &service["/v2/Services/".len()..]);
    assert_eq!(
        (r.body["to"].as_str(), r.body["channel"].as_str()),
        (Some(TO), Some("sms"))
    );
    assert_eq!(
        (r.body["status"].as_str(), r.body["valid"].as_bool()),
        (Some("pending"), Some(false))
    );
    assert_eq!(r.body["send_code_attempts"][0]["channel"], "sms");
    let code = app.outbox.code_for(&sid[2..]).await;
    let r = get(&app, &format!("{service}/Verifications/{sid}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    shape(&r.body, VERIFICATION);
    let check = format!("{service}/VerificationCheck");
    let r = post(&app, &check, &[("To", TO), ("Code", &wrong(&code))]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    shape(&r.body, CHECK);
    assert_eq!(
        (r.body["status"].as_str(), r.body["valid"].as_bool()),
        (Some("pending"), Some(false))
    );
    let r = post(&app, &check, &[("VerificationSid", &sid), ("Code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    shape(&r.body, CHECK);
    assert_eq!(r.body["sid"], sid.as_str());
    assert_eq!(
        (r.body["status"].as_str(), r.body["valid"].as_bool()),
        (Some("approved"), Some(true))
    );
    // Used: Twilio keeps only pending verifications.
    let r = post(&app, &check, &[("To", TO), ("Code", &code)]).await;
    refused(
        &r,
        StatusCode::NOT_FOUND,
        20404,
        "The requested resource /v2/Services/",
    );
    let r = get(&app, &format!("{service}/Verifications/{sid}")).await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
}

#[tokio::test]
async fn each_send_is_a_new_code_and_only_the_last_verifies() {
    let app = spawn_app().await;
    let service = service(&app).await;
    let (first, first_code) = verification(&app, &service, TO).await;
    let (second, second_code) = verification(&app, &service, TO).await;
    assert_ne!(first, second);
    let check = format!("{service}/VerificationCheck");
    let r = post(
        &app,
        &check,
        &[("VerificationSid", &first), ("Code", &first_code)],
    )
    .await;
    refused(&r, StatusCode::NOT_FOUND, 20404, "The requested resource");
    let r = get(&app, &format!("{service}/Verifications/{first}")).await;
    assert_eq!(r.body["status"], "canceled", "replaced: {}", r.text);
    let r = post(&app, &check, &[("To", TO), ("Code", &second_code)]).await;
    assert_eq!(r.body["status"], "approved", "{}", r.text);
}

#[tokio::test]
async fn verifications_are_cancelled_or_approved_by_status() {
    let app = spawn_app().await;
    let service = service(&app).await;
    let (sid, code) = verification(&app, &service, TO).await;
    let path = format!("{service}/Verifications/{sid}");
    let r = post(&app, &path, &[("Status", "cancelled")]).await;
    refused(
        &r,
        StatusCode::BAD_REQUEST,
        60200,
        "Invalid parameter: Status",
    );
    let r = post(&app, &path, &[("Status", "canceled")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    shape(&r.body, VERIFICATION);
    assert_eq!(r.body["status"], "canceled");
    let r = post(&app, &path, &[("Status", "approved")]).await;
    refused(&r, StatusCode::NOT_FOUND, 20404, "The requested resource");
    let r = post(
        &app,
        &format!("{service}/VerificationCheck"),
        &[("VerificationSid", &sid), ("Code", &code)],
    )
    .await;
    refused(&r, StatusCode::NOT_FOUND, 20404, "The requested resource");
    let (sid, _) = verification(&app, &service, TO).await;
    let r = post(
        &app,
        &format!("{service}/Verifications/{sid}"),
        &[("Status", "approved")],
    )
    .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["valid"].as_bool()),
        (Some("approved"), Some(true)),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn wrong_codes_run_out_with_60202() {
    let app = spawn_app().await;
    let service = service(&app).await;
    let (sid, code) = verification(&app, &service, TO).await;
    let check = format!("{service}/VerificationCheck");
    for _ in 0..3 {
        let r = post(
            &app,
            &check,
            &[("VerificationSid", &sid), ("Code", &wrong(&code))],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["valid"], false);
    }
    let r = post(&app, &check, &[("VerificationSid", &sid), ("Code", &code)]).await;
    refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        60202,
        "Max check attempts reached",
    );
    let r = get(&app, &format!("{service}/Verifications/{sid}")).await;
    assert_eq!(r.body["status"], "max_attempts_reached", "{}", r.text);
}
