use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request};
use serde_json::json;
use std::time::Duration;

use crate::helpers::*;

fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{}{path}", app.address))
        .header("authorization", format!("Bearer {}", app.all_key));
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let big = format!(r#"{{"phone":"{}","pin":"4821"}}"#, "9".repeat(1_000_000));
    let r = app
        .send(raw(
            &app,
            Method::POST,
            "/v1/login",
            Some("application/json"),
            big.into_bytes(),
        ))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (413, "payload_too_large")
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_and_broken_json_is_400() {
    let app = spawn_app().await;
    let r = app
        .send(raw(
            &app,
            Method::POST,
            "/v1/login",
            Some("text/plain"),
            b"phone=1".to_vec(),
        ))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (415, "unsupported_media_type")
    );
    let r = app
        .send(raw(&app, Method::POST, "/v1/login", None, b"{}".to_vec()))
        .await;
    assert_eq!(r.status, 415);
    let r = app
        .send(raw(
            &app,
            Method::POST,
            "/v1/login",
            Some("application/json; charset=utf-8"),
            b"{\"phone\":".to_vec(),
        ))
        .await;
    assert_eq!((r.status.as_u16(), r.error_code()), (400, "malformed_json"));
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let r = app
        .send(raw(
            &app,
            Method::POST,
            "/v1/login",
            Some("application/json"),
            deep.into_bytes(),
        ))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    let r = app.get("/v1/nothing-here", &app.all_key).await;
    assert_eq!((r.status.as_u16(), r.error_code()), (404, "not_found"));
    let r = app.get("/v1/login", &app.all_key).await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (405, "method_not_allowed")
    );
    let r = app.get("/v1/accounts/not-an-id", &app.all_key).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"]["field"].as_str()),
        (400, Some("account_id"))
    );
    let r = app
        .get(&format!("/v1/accounts/{}", "0".repeat(32)), &app.all_key)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (404, "account_not_found")
    );
    let r = app
        .get(&format!("/v1/challenges/{}", "0".repeat(32)), &app.all_key)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (404, "challenge_not_found")
    );
}

#[tokio::test]
async fn odd_input_never_causes_a_server_error() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    let (challenge, _) = app.login_code(PHONE).await;
    let odd_values = [
        json!(null),
        json!(""),
        json!("\u{0}\u{0}"),
        json!("٤٨٢١"),
        json!("9".repeat(10_000)),
        json!(-1),
        json!(1e308),
        json!([1, 2]),
        json!({ "a": { "b": {} } }),
        json!(true),
    ];
    let endpoints = [
        ("/v1/accounts", vec!["pin", "phone", "email", "birth_date"]),
        (
            "/v1/login",
            vec!["phone", "pin", "channel", "lifetime_seconds"],
        ),
        ("/v1/verify", vec!["challenge_id", "code"]),
        ("/v1/step-up", vec!["account_id", "channel"]),
        ("/v1/activation/request", vec!["birth_date", "channel"]),
        (
            "/v1/activation/complete",
            vec!["challenge_id", "code", "pin"],
        ),
        ("/v1/admin/import", vec!["accounts"]),
    ];
    for (path, fields) in endpoints {
        for field in fields {
            for value in &odd_values {
                let mut body = json!({
                    "identity": { "kind": "civil_id", "number": "12345678" },
                    "phone": PHONE, "pin": PIN, "challenge_id": challenge, "code": "123456",
                    "account_id": account, "birth_date": "1980-01-01", "channel": "sms",
                    "accounts": [],
                });
                body[field] = value.clone();
                let r = app.post(path, &app.all_key, body).await;
                assert!(
                    r.status.as_u16() < 500,
                    "{path} {field}={value}: {} {}",
                    r.status,
                    r.text
                );
                assert!(
                    r.body["error"]["code"].is_string() || r.status.is_success(),
                    "{path}: {}",
                    r.text
                );
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_never_sends_its_headers_is_cut_off() {
    use tokio::io::AsyncReadExt;
    let app = spawn_app_with(|c| c.server.header_read_timeout_ms = 200).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // Send half a request line and stall: hyper's timer must close the connection.
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /livez HT")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut buffer),
    )
    .await;
    assert!(read.is_ok(), "the server kept a stalled connection open");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_a_408_and_nothing_is_done() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|c| c.server.body_read_timeout_ms = 200).await;
    let body = format!(
        r#"{{"identity":{{"kind":"civil_id","number":"12345678"}},"phone":"{PHONE}","pin":"{PIN}"}}"#
    );
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/accounts HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.accounts_key,
        body.len() + 10
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    // The server's own body timeout answers; nothing here waits on a clock.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer, not a hang")
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    assert!(answer.contains("Content-Length"), "{answer}");
    // Nothing was registered.
    let r = app.register(PHONE, "12345678").await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_body_that_is_not_exactly_one_json_object_is_400_on_body() {
    let app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let login = format!(r#"{{"phone":"{PHONE}","pin":"{PIN}"}}"#);
    for body in [
        // serde's derive would read an array as the fields in order.
        format!(r#"["{PHONE}",null,"{PIN}",null,null,null]"#),
        "null".to_owned(),
        r#""text""#.to_owned(),
        // Data after the object used to be ignored.
        format!("{login} x"),
        format!(r#"{login}{{"x":1}}"#),
    ] {
        let r = app
            .send(raw(
                &app,
                Method::POST,
                "/v1/login",
                Some("application/json"),
                body.clone().into_bytes(),
            ))
            .await;
        assert_eq!(
            (
                r.status.as_u16(),
                r.error_code(),
                r.body["error"]["field"].as_str()
            ),
            (400, "malformed_json", Some("body")),
            "{body}: {}",
            r.text
        );
        assert!(
            !r.text.contains("LoginIn") && !r.text.contains("struct"),
            "no Rust type names: {}",
            r.text
        );
    }
    let r = app
        .send(raw(
            &app,
            Method::POST,
            "/v1/login",
            Some("application/json"),
            format!("{login}\n").into_bytes(),
        ))
        .await;
    assert_eq!(r.status, 201, "trailing whitespace is fine: {}", r.text);
}

#[tokio::test]
async fn a_nested_object_sent_as_an_array_is_400_on_its_field() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/v1/accounts",
            &app.all_key,
            json!({ "identity": ["civil_id", "12345678", null], "phone": PHONE, "pin": PIN }),
        )
        .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.error_code(),
            r.body["error"]["field"].as_str()
        ),
        (400, "malformed_json", Some("identity")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn endpoints_that_take_no_input_accept_nothing_or_an_empty_object_only() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    // Asked for by the client `raw` sends as: only it may resend the code.
    let (challenge, _) = app.login_code_as(&app.portal(), PHONE).await;
    let resend = format!("/v1/challenges/{challenge}/resend");
    let unlock = format!("/v1/admin/accounts/{account}/unlock");
    let cancel = format!("/v1/accounts/{account}");
    let json = Some("application/json");
    for (method, path, content_type, body, status, field) in [
        (Method::POST, &resend, json, r#"{"x":1}"#, 400, Some("x")),
        (Method::POST, &resend, json, "garbage", 400, Some("body")),
        (Method::POST, &unlock, json, "garbage", 400, Some("body")),
        (Method::POST, &unlock, json, "[]", 400, Some("body")),
        (Method::POST, &unlock, Some("text/plain"), "{}", 415, None),
        (Method::DELETE, &cancel, json, "garbage", 400, Some("body")),
        (
            Method::POST,
            &"/v1/admin/backup".to_owned(),
            json,
            r#"{"to":"/etc"}"#,
            400,
            Some("to"),
        ),
    ] {
        let r = app
            .send(raw(
                &app,
                method.clone(),
                path,
                content_type,
                body.as_bytes().to_vec(),
            ))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (status, field),
            "{method} {path} {body}: {}",
            r.text
        );
    }
    assert!(
        !app.config.data_dir.join("backups").exists(),
        "a refused backup writes nothing"
    );
    // Accepted: no body at all (with or without a content type), or `{}`.
    app.clock.advance(Duration::from_secs(30)); // past the resend cooldown
    let r = app
        .send(raw(&app, Method::POST, &resend, None, Vec::new()))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for (content_type, body) in [(None, ""), (json, ""), (json, "{}"), (json, " { } ")] {
        let r = app
            .send(raw(
                &app,
                Method::POST,
                &unlock,
                content_type,
                body.as_bytes().to_vec(),
            ))
            .await;
        assert_eq!(r.status, 200, "unlock with {body:?}: {}", r.text);
    }
    let r = app
        .send(raw(&app, Method::DELETE, &cancel, None, Vec::new()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn head_is_answered_like_get_without_a_body_and_405_lists_the_methods() {
    let app = spawn_app().await;
    let get = app.livez().await;
    let r = app
        .send(raw(&app, Method::HEAD, "/livez", None, Vec::new()))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    assert_eq!(
        r.headers["content-length"].to_str().unwrap(),
        get.text.len().to_string()
    );
    let path = format!("/v1/challenges/{}", "0".repeat(32));
    let r = app
        .send(raw(&app, Method::HEAD, &path, None, Vec::new()))
        .await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (404, ""));
    let r = app
        .send(raw(&app, Method::HEAD, "/v1/login", None, Vec::new()))
        .await;
    assert_eq!(r.status, 405);
    let r = app
        .send(raw(&app, Method::POST, "/livez", None, Vec::new()))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error_code()),
        (405, "method_not_allowed")
    );
    assert_eq!(r.headers["allow"], "GET, HEAD");
    assert_eq!(r.body["error"]["message"], "/livez accepts GET, HEAD");
}
