//! Clients managed while the server runs: added, listed, read, updated,
//! rotated and revoked through the admin API, each change in the audit
//! trail, a key shown only when made, and bad input named by its field.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn events_of(r: &Response, kinds: &[&str]) -> Vec<Value> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| kinds.contains(&e["kind"].as_str().unwrap()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_relying_party_is_onboarded_rotated_and_revoked_with_no_restart() {
    let app = spawn_app().await;
    let r = app
        .add_client(json!({ "name": "portal-financas", "scopes": ["auth", "accounts"] }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let first = r.body["key"].as_str().unwrap().to_owned();
    let first_id = r.body["key_id"].as_str().unwrap().to_owned();
    assert!(first.starts_with(&format!("otpd_{first_id}_")), "{first}");
    let client = &r.body["client"];
    assert_eq!(client["scopes"], json!(["auth", "accounts"]));
    assert_eq!(
        (
            &client["purposes"],
            &client["channels"],
            &client["issue_rate"]
        ),
        (&Value::Null, &Value::Null, &Value::Null),
        "every purpose and channel, no rate of its own"
    );
    assert_eq!(client["test"], false);
    // The key works on the very next request.
    let portal = app.with_key(&first);
    portal.registered(PHONE, "12345678").await;

    // A second key for the switch-over; both work meanwhile.
    let r = app.rotate_client_key("portal-financas", json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let second = r.body["key"].as_str().unwrap().to_owned();
    let second_id = r.body["key_id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(portal.login(PHONE, PIN).await.status, StatusCode::CREATED);
    let next = app.with_key(&second);
    let (id, code) = app.login_code_as(&next, PHONE).await;
    // The relying party has switched: the old key is revoked, refused at once.
    let r = app.revoke_client_key("portal-financas", &first_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        portal.login(PHONE, PIN).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(next.verify(&id, &code).await.status, StatusCode::OK);

    // Listed with its keys' ids and states, never a key.
    let r = app.clients().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for key in [&first, &second] {
        assert!(
            !r.text.contains(&key[22..]),
            "a key in the list: {}",
            r.text
        );
    }
    let listed = r.body["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "portal-financas")
        .unwrap()
        .clone();
    let keys: Vec<(&str, &str)> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["key_id"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [(first_id.as_str(), "revoked"), (second_id.as_str(), "live")]
    );
    assert!(listed.get("key").is_none());

    // Narrowed, then revoked: every key refused at once.
    let r = app
        .update_client("portal-financas", json!({ "scopes": ["auth"] }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = next.account("00000000000000000000000000000000").await;
    assert_eq!(r.error_code(), "forbidden", "{}", r.text);
    let r = app.revoke_client("portal-financas").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        next.login(PHONE, PIN).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client("portal-financas").await.error_code(),
        "client_not_found"
    );

    // Each change is in the audit trail, by the operator's client, with no key.
    let r = app.events("after=0&limit=1000").await;
    let changes = events_of(
        &r,
        &[
            "client_added",
            "client_key_rotated",
            "client_key_revoked",
            "client_updated",
            "client_revoked",
        ],
    );
    let kinds: Vec<&str> = changes
        .iter()
        .filter(|e| e["details"]["name"] == "portal-financas")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "client_added",
            "client_key_rotated",
            "client_key_revoked",
            "client_updated",
            "client_revoked"
        ]
    );
    for event in changes
        .iter()
        .filter(|e| e["details"]["name"] == "portal-financas")
    {
        assert_eq!(event["client"], "admin-only", "{event}");
        for key in [&first, &second] {
            assert!(!event.to_string().contains(&key[22..]), "{event}");
        }
    }
}

#[tokio::test]
async fn clients_and_their_keys_survive_a_restart() {
    let app = spawn_app().await;
    let key = app
        .new_client(json!({
            "name": "portal-saude", "scopes": ["auth", "accounts"],
            "purposes": ["login", "step_up"], "channels": ["sms"],
            "issue_rate": { "codes": 100, "per": "second" },
            "expires_at": "2027-01-01T00:00:00Z",
        }))
        .await;
    let app = app.restart().await;
    let portal = app.with_key(&key);
    portal.registered(PHONE, "12345678").await;
    let r = app.client("portal-saude").await;
    let client = &r.body["client"];
    assert_eq!(client["purposes"], json!(["login", "step_up"]));
    assert_eq!(client["channels"], json!(["sms"]));
    assert_eq!(
        client["issue_rate"],
        json!({ "codes": 100, "per": "second" })
    );
    assert_eq!(
        client["keys"][0]["expires_at"], "2027-01-01T00:00:00.000Z",
        "{}",
        r.text
    );
}

#[tokio::test]
async fn bad_client_input_gets_a_4xx_naming_the_field() {
    let app = spawn_app().await;
    app.new_client(json!({ "name": "taken", "scopes": ["auth"] }))
        .await;
    let base = || json!({ "name": "portal", "scopes": ["auth"] });
    let with = |key: &str, value: Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    for (body, status, field) in [
        (json!({ "scopes": ["auth"] }), 400, "name"),
        (json!({ "name": "portal" }), 400, "scopes"),
        (with("name", json!("bad name!")), 400, "name"),
        (with("name", json!("")), 400, "name"),
        (with("name", json!("x".repeat(65))), 400, "name"),
        (with("name", json!("taken")), 409, "name"),
        (with("scopes", json!(["root"])), 400, "scopes"),
        (with("scopes", json!([])), 400, "scopes"),
        (with("scopes", json!("auth")), 400, "scopes"),
        (with("purposes", json!(["everything"])), 400, "purposes"),
        (with("purposes", json!([])), 400, "purposes"),
        (with("channels", json!(["pigeon"])), 400, "channels"),
        (with("channels", json!([])), 400, "channels"),
        (
            with("issue_rate", json!({ "codes": 0, "per": "minute" })),
            400,
            "issue_rate",
        ),
        (
            with("issue_rate", json!({ "codes": 5, "per": "fortnight" })),
            400,
            "issue_rate.per",
        ),
        (
            with("issue_rate", json!({ "codes": -1, "per": "minute" })),
            400,
            "issue_rate.codes",
        ),
        (
            with("issue_rate", json!({ "codes": 5 })),
            400,
            "issue_rate.per",
        ),
        (with("issue_rate", json!([5, "minute"])), 400, "issue_rate"),
        (with("expires_at", json!("yesterday")), 400, "expires_at"),
        (with("expires_at", json!("2020-01-01")), 400, "expires_at"),
        (with("test", json!("yes")), 400, "test"),
        (with("colour", json!("red")), 400, "colour"),
        (
            json!({ "name": "fe", "scopes": ["auth", "admin"], "test": true }),
            400,
            "scopes",
        ),
    ] {
        let r = app.add_client(body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (status, Some(field)),
            "{body}: {}",
            r.text
        );
    }
    for (r, status, field) in [
        (
            app.update_client("taken", json!({})).await,
            400,
            Some("body"),
        ),
        (
            app.update_client("taken", json!({ "channels": ["pigeon"] }))
                .await,
            400,
            Some("channels"),
        ),
        (
            app.update_client("nobody", json!({ "scopes": ["auth"] }))
                .await,
            404,
            Some("name"),
        ),
        (app.revoke_client("nobody").await, 404, Some("name")),
        (app.client("nobody").await, 404, Some("name")),
        (
            app.rotate_client_key("nobody", json!({})).await,
            404,
            Some("name"),
        ),
        (
            app.rotate_client_key("taken", json!({ "expires_at": "2020-01-01" }))
                .await,
            400,
            Some("expires_at"),
        ),
        (
            app.rotate_client_key("taken", json!({ "previous_expires_at": "soon" }))
                .await,
            400,
            Some("previous_expires_at"),
        ),
        (
            app.revoke_client_key("taken", "xyz").await,
            400,
            Some("key_id"),
        ),
        (
            app.revoke_client_key("taken", "0102030405060708").await,
            404,
            Some("key_id"),
        ),
    ] {
        assert_eq!(
            (r.status.as_u16(), r.body["error"]["field"].as_str()),
            (status, field),
            "{}",
            r.text
        );
    }
    // A rotation needs no body; a fifth live key is refused.
    let rotate = "/v1/admin/clients/taken/keys";
    for _ in 0..3 {
        let r = app
            .request(Method::POST, rotate, Some(&app.admin_key), None)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let r = app.rotate_client_key("taken", json!({})).await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::CONFLICT, "wrong_state"),
        "{}",
        r.text
    );
    // Only admin manages clients.
    let r = app
        .with_key(&app.auth_key)
        .add_client(json!({ "name": "sneaky", "scopes": ["admin"] }))
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
}
