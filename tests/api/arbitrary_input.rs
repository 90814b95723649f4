//! No request panics the server or gets a 5xx: every endpoint, fed bodies
//! with its own field names holding arbitrary values (so parsers are
//! reached, not just the JSON reader), arbitrary raw bytes, and arbitrary
//! ids in its path, answers a JSON 2xx or 4xx (issue #14).

use hyper::Method;
use otpd::config::LimitsConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Map, Value, json};

use crate::helpers::*;

/// Every endpoint that takes input: method, path (`{id}` is replaced by an
/// arbitrary id), and its body's fields (`identity` and `dm` are objects).
const ENDPOINTS: &[(&str, &str, &[&str])] = &[
    (
        "POST",
        "/v1/accounts",
        &[
            "identity",
            "phone",
            "email",
            "pin",
            "birth_date",
            "postal_address",
            "dm",
            "locale",
        ],
    ),
    (
        "POST",
        "/v1/accounts/pre-register",
        &[
            "identity",
            "birth_date",
            "phone",
            "email",
            "postal_address",
            "locale",
        ],
    ),
    ("GET", "/v1/accounts/{id}", &[]),
    ("DELETE", "/v1/accounts/{id}", &[]),
    (
        "POST",
        "/v1/accounts/{id}/pin",
        &["current_pin", "challenge_id", "code", "new_pin"],
    ),
    (
        "POST",
        "/v1/accounts/{id}/contact",
        &[
            "proof_challenge_id",
            "proof_code",
            "phone",
            "email",
            "dm",
            "locale",
        ],
    ),
    (
        "POST",
        "/v1/accounts/{id}/contact/remove",
        &["contact", "proof_challenge_id", "proof_code"],
    ),
    ("PUT", "/v1/accounts/{id}/push-device", &["push_token"]),
    ("PUT", "/v1/accounts/{id}/locale", &["locale"]),
    (
        "POST",
        "/v1/contact-changes/confirm",
        &["challenge_id", "code"],
    ),
    (
        "POST",
        "/v1/login",
        &[
            "phone",
            "email",
            "pin",
            "channel",
            "lifetime_seconds",
            "locale",
        ],
    ),
    ("POST", "/v1/verify", &["challenge_id", "code"]),
    (
        "POST",
        "/v1/step-up",
        &["account_id", "channel", "lifetime_seconds", "locale"],
    ),
    ("POST", "/v1/step-up/verify", &["challenge_id", "code"]),
    ("GET", "/v1/challenges/{id}", &[]),
    ("POST", "/v1/challenges/{id}/resend", &[]),
    (
        "POST",
        "/v1/activation/request",
        &["identity", "birth_date", "channel", "locale"],
    ),
    (
        "POST",
        "/v1/activation/complete",
        &["challenge_id", "identity", "birth_date", "code", "pin"],
    ),
    ("POST", "/v1/admin/accounts/{id}/lock", &["reason"]),
    ("POST", "/v1/admin/accounts/{id}/unlock", &[]),
    ("POST", "/v1/admin/accounts/{id}/pin-reset", &["pin"]),
    (
        "POST",
        "/v1/accounts/{id}/recovery/unlock",
        &["method", "reference"],
    ),
    (
        "POST",
        "/v1/accounts/{id}/recovery/pin",
        &["method", "reference", "new_pin"],
    ),
    ("POST", "/v1/admin/import", &["accounts"]),
];

/// Arbitrary text, biased toward what parsers trip on.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F+\\- €é]{0,40}",
        "\\+?[0-9 ]{0,20}",
        "[a-z0-9.\u{202e}€]{0,10}@[a-z.€]{0,10}",
        "[0-9\\-/]{0,12}",
    ]
}

/// An arbitrary JSON value: mostly strings, sometimes other types.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        4 => text().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn identity() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            prop_oneof![
                Just("civil_id".to_owned()),
                Just("passport".to_owned()),
                Just("social_security".to_owned()),
                text()
            ],
            text(),
            proptest::option::of(text()),
        )
            .prop_map(|(kind, number, country)| {
                let mut o = json!({ "kind": kind, "number": number });
                if let Some(c) = country {
                    o["country"] = json!(c);
                }
                o
            }),
        value(),
    ]
}

/// A direct-message handle: a platform and a handle, usually a known
/// platform so the handle's parser is reached, or anything at all.
fn dm() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            prop_oneof![
                Just("twitter".to_owned()),
                Just("Twitter".to_owned()),
                text()
            ],
            text(),
        )
            .prop_map(|(platform, handle)| json!({ "platform": platform, "handle": handle })),
        value(),
    ]
}

/// A body for `fields`: each present or not, with an arbitrary value.
fn body(fields: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let per_field: Vec<_> = fields
        .iter()
        .map(|f| {
            let v = if *f == "identity" {
                identity().boxed()
            } else if *f == "dm" {
                dm().boxed()
            } else if *f == "accounts" {
                prop::collection::vec(
                    (identity(), text(), text()).prop_map(|(identity, phone, pin_hash)| {
                        json!({ "identity": identity, "phone": phone, "pin_hash": pin_hash })
                    }),
                    0..3,
                )
                .prop_map(Value::Array)
                .boxed()
            } else {
                value().boxed()
            };
            proptest::option::weighted(0.8, v).prop_map(move |v| (*f, v))
        })
        .collect();
    per_field.prop_map(|pairs| {
        let mut o = Map::new();
        for (k, v) in pairs {
            if let Some(v) = v {
                o.insert(k.to_owned(), v);
            }
        }
        Value::Object(o)
    })
}

/// An id for a path: arbitrary text, percent-encoded so it stays one segment.
fn path_id() -> impl Strategy<Value = String> {
    text().prop_map(|s| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    })
}

fn answered_cleanly(r: &Response, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !r.status.is_server_error(),
        "{what} answered {}: {}",
        r.status,
        r.text
    );
    prop_assert!(
        r.status.is_success() || r.body["error"]["code"].is_string(),
        "{what} answered {} without a JSON error: {}",
        r.status,
        r.text
    );
    Ok(())
}

#[test]
fn every_endpoint_answers_arbitrary_input_with_json_and_no_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app_with(|c| c.limits = LimitsConfig::off()));
    let cases = std::env::var("OTPD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48);
    for &(method, path, fields) in ENDPOINTS {
        let method: Method = method.parse().unwrap();
        let mut runner = TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(
                &(body(fields), path_id(), any::<Vec<u8>>()),
                |(body, id, bytes)| {
                    let path = path.replace("{id}", &id);
                    let what = format!("{method} {path} {body}");
                    let r = runtime.block_on(app.request(
                        method.clone(),
                        &path,
                        Some(&app.all_key),
                        Some(body),
                    ));
                    answered_cleanly(&r, &what)?;
                    let r = runtime.block_on(
                        app.send(
                            hyper::Request::builder()
                                .method(method.clone())
                                .uri(format!("{}{path}", app.address))
                                .header("authorization", format!("Bearer {}", app.all_key))
                                .header("content-type", "application/json")
                                .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
                                .unwrap(),
                        ),
                    );
                    answered_cleanly(&r, &format!("{method} {path} with raw bytes"))
                },
            )
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }
    drop(app);
}
