//! Every refusal on the Twilio surface, as Twilio's error body: bad
//! parameters (400, 60200), missing resources (404, 20404), methods,
//! credentials and scopes, the attempt and send limits (60202, 60203), and
//! refusals replayed for an `Idempotency-Key`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode};

use super::{TO, credentials, get, post, refused, service, twilio, verification};
use crate::helpers::*;

#[tokio::test]
async fn every_bad_request_gets_twilios_error_naming_the_parameter() {
    let app = spawn_app().await;
    let service = service(&app).await;
    let (sid, _) = verification(&app, &service, TO).await;
    let verifications = format!("{service}/Verifications");
    let check = format!("{service}/VerificationCheck");
    let long = "x".repeat(65);
    // (path, form, the parameter the error names)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("/v2/Services", vec![], "FriendlyName"),
        (
            "/v2/Services",
            vec![("FriendlyName", &long)],
            "FriendlyName",
        ),
        (
            "/v2/Services",
            vec![("FriendlyName", "a"), ("CodeLength", "3")],
            "CodeLength",
        ),
        (
            "/v2/Services",
            vec![("FriendlyName", "a"), ("CodeLength", "six")],
            "CodeLength",
        ),
        (
            "/v2/Services",
            vec![("FriendlyName", "a"), ("CodeLength", "8")],
            "CodeLength",
        ),
        (
            "/v2/Services",
            vec![("FriendlyName", "a"), ("Psd2Enabled", "true")],
            "Psd2Enabled",
        ),
        (
            "/v2/Services",
            vec![("FriendlyName", "a"), ("FriendlyName", "b")],
            "FriendlyName",
        ),
        (&verifications, vec![("Channel", "sms")], "To"),
        (&verifications, vec![("To", TO)], "Channel"),
        (
            &verifications,
            vec![("To", TO), ("Channel", "call")],
            "Channel",
        ),
        (
            &verifications,
            vec![("To", TO), ("Channel", "whatsapp")],
            "Channel",
        ),
        (
            &verifications,
            vec![("To", TO), ("Channel", "fax")],
            "Channel",
        ),
        (
            &verifications,
            vec![("To", "912000555"), ("Channel", "sms")],
            "To",
        ),
        (
            &verifications,
            vec![("To", "ana@example.pt"), ("Channel", "sms")],
            "To",
        ),
        (&verifications, vec![("To", TO), ("Channel", "email")], "To"),
        (
            &verifications,
            vec![("To", TO), ("Channel", "sms"), ("Locale", "fr")],
            "Locale",
        ),
        (
            &verifications,
            vec![
                ("To", TO),
                ("Channel", "sms"),
                ("CustomFriendlyName", &long),
            ],
            "CustomFriendlyName",
        ),
        (
            &verifications,
            vec![("To", TO), ("Channel", "sms"), ("Amount", "10")],
            "Amount",
        ),
        (&check, vec![("To", TO)], "Code"),
        (&check, vec![("Code", "123456")], "To"),
        (
            &check,
            vec![("To", TO), ("VerificationSid", &sid), ("Code", "123456")],
            "VerificationSid",
        ),
        (
            &check,
            vec![("VerificationSid", "VEnothex"), ("Code", "123456")],
            "VerificationSid",
        ),
        (&check, vec![("To", TO), ("Code", "12ab56")], "Code"),
        (&check, vec![("To", "+0"), ("Code", "123456")], "To"),
    ];
    for (path, form, parameter) in cases {
        let r = post(&app, path, &form).await;
        refused(
            &r,
            StatusCode::BAD_REQUEST,
            60200,
            &format!("Invalid parameter: {parameter}"),
        );
        assert!(r.body["detail"].is_string(), "says why: {}", r.text);
    }
    // The body must be a form.
    let r = app
        .send(
            Request::post(format!("{}{verifications}", app.address))
                .header(
                    "authorization",
                    format!("Basic {}", {
                        let (sid, token) = credentials(&app.all_key);
                        STANDARD.encode(format!("{sid}:{token}"))
                    }),
                )
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(r#"{"To":"+351912000555"}"#)))
                .unwrap(),
        )
        .await;
    refused(
        &r,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        60200,
        "Invalid parameter",
    );
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn missing_resources_and_methods_and_credentials_answer_as_twilio_does() {
    let app = spawn_app().await;
    let service = service(&app).await;
    let unknown = format!("/v2/Services/VA{}", "0".repeat(32));
    for path in [
        unknown.clone(),
        "/v2/Services/VAnothex".to_owned(),
        "/v2/Services/XY00000000000000000000000000000000".to_owned(),
        format!("{service}/Verifications/VE{}", "0".repeat(32)),
        format!("{service}/Verifications/nothing"),
        "/v2/Nothing".to_owned(),
    ] {
        let r = get(&app, &path).await;
        refused(
            &r,
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource {path} was not found"),
        );
    }
    let r = post(
        &app,
        &format!("{unknown}/Verifications"),
        &[("To", TO), ("Channel", "sms")],
    )
    .await;
    refused(&r, StatusCode::NOT_FOUND, 20404, "The requested resource");
    let r = post(
        &app,
        &format!("{service}/VerificationCheck"),
        &[("To", TO), ("Code", "123456")],
    )
    .await;
    refused(&r, StatusCode::NOT_FOUND, 20404, "The requested resource");
    let r = twilio(
        &app,
        Method::DELETE,
        "/v2/Services",
        Some(&app.all_key),
        &[],
    )
    .await;
    refused(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        20004,
        "Method not allowed",
    );
    assert_eq!(r.headers["allow"], "POST");
    // No credentials, a wrong token, a malformed SID, the wrong scheme.
    let r = twilio(&app, Method::GET, &service, None, &[]).await;
    refused(&r, StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    let (sid, token) = credentials(&app.all_key);
    for (user, password) in [
        (sid.as_str(), "0".repeat(64)),
        (&sid[..20], token.clone()),
        ("", token.clone()),
    ] {
        let r = app
            .send(
                Request::get(format!("{}{service}", app.address))
                    .header(
                        "authorization",
                        format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
                    )
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
        refused(&r, StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    // An API key SID (SK…) stands for the same key; a bearer key works too.
    let r = app
        .send(
            Request::get(format!("{}{service}", app.address))
                .header(
                    "authorization",
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!("SK{}:{token}", &sid[2..]))
                    ),
                )
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Basic credentials are for the Twilio surface only.
    let r = app
        .send(
            Request::get(format!("{}/v1/challenges/{}", app.address, "0".repeat(32)))
                .header(
                    "authorization",
                    format!("Basic {}", STANDARD.encode(format!("{sid}:{token}"))),
                )
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.error_code(), "unauthenticated");
    // A client without the verify scope (auth does not grant it).
    for key in [&app.accounts_key, &app.auth_key] {
        let r = twilio(&app, Method::GET, &service, Some(key), &[]).await;
        refused(&r, StatusCode::FORBIDDEN, 20403, "Permission denied");
    }
    // A service is deleted (204), then gone.
    let r = twilio(&app, Method::DELETE, &service, Some(&app.all_key), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = get(&app, &service).await;
    refused(&r, StatusCode::NOT_FOUND, 20404, "The requested resource");
}

/// The send limits hold on the Twilio surface too, as Twilio's 60203.
#[tokio::test]
async fn too_many_sends_to_one_number_answer_60203() {
    let app = spawn_app_with(|c| c.limits.issue_per_destination_10min = 2).await;
    let service = service(&app).await;
    verification(&app, &service, TO).await;
    verification(&app, &service, TO).await;
    let r = post(
        &app,
        &format!("{service}/Verifications"),
        &[("To", TO), ("Channel", "sms")],
    )
    .await;
    refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        60203,
        "Max send attempts reached",
    );
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    assert_eq!(app.outbox.codes().len(), 2);
}

#[tokio::test]
async fn a_new_key_is_shown_with_its_twilio_credentials() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/admin/clients",
            &app.admin_key,
            serde_json::json!({"name": "shop", "scopes": ["verify"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = r.body["key"].as_str().unwrap();
    let (sid, token) = credentials(key);
    assert_eq!(r.body["twilio"]["account_sid"], sid.as_str());
    assert_eq!(r.body["twilio"]["auth_token"], token.as_str());
    let shop = app.with_key(key);
    let r = twilio(
        &shop,
        Method::POST,
        "/v2/Services",
        Some(key),
        &[("FriendlyName", "Shop")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["account_sid"].as_str().unwrap().len(), 34);
}

/// A refusal kept for an `Idempotency-Key` is given again as Twilio says it.
#[tokio::test]
async fn a_replayed_refusal_keeps_twilios_shape() {
    let app = spawn_app().await;
    let service = service(&app).await;
    let (sid, token) = credentials(&app.all_key);
    let request = || {
        Request::post(format!("{}{service}/Verifications", app.address))
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{sid}:{token}"))),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("idempotency-key", "twilio-retry-1")
            .body(Full::new(Bytes::from("To=%2B351912000555&Channel=call")))
            .unwrap()
    };
    let first = app.send(request()).await;
    refused(
        &first,
        StatusCode::BAD_REQUEST,
        60200,
        "Invalid parameter: Channel",
    );
    let again = app.send(request()).await;
    assert_eq!(
        again.headers["idempotent-replayed"], "true",
        "{:?}",
        again.headers
    );
    refused(
        &again,
        StatusCode::BAD_REQUEST,
        60200,
        "Invalid parameter: Channel",
    );
    assert_eq!(again.body, first.body);
    // And an otpd refusal translated on the way out (an unknown Service).
    let unknown = format!("/v2/Services/VA{}/Verifications", "0".repeat(32));
    let request = || {
        Request::post(format!("{}{unknown}", app.address))
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{sid}:{token}"))),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("idempotency-key", "twilio-retry-2")
            .body(Full::new(Bytes::from("To=%2B351912000555&Channel=sms")))
            .unwrap()
    };
    let first = app.send(request()).await;
    refused(
        &first,
        StatusCode::NOT_FOUND,
        20404,
        "The requested resource",
    );
    let again = app.send(request()).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    refused(
        &again,
        StatusCode::NOT_FOUND,
        20404,
        "The requested resource",
    );
    assert_eq!(again.body, first.body);
}
