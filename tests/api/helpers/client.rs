//! How a test talks to the server: one method per endpoint.

use std::time::Duration;

use bytes::Bytes;
use engine::Scope;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use serde_json::{Value, json};

use super::*;

/// How a test talks to the server: one method per endpoint, each sent with
/// the key of its endpoint's scope, plus raw requests for odd input.
#[derive(Clone)]
pub struct ApiClient {
    pub address: String,
    /// Keys with one scope each, and one with all.
    pub auth_key: String,
    pub accounts_key: String,
    pub admin_key: String,
    pub sign_key: String,
    pub all_key: String,
    /// A strong-authentication service's key (`recovery` only).
    pub recovery_key: String,
    pub(super) client: Client<HttpConnector, Full<Bytes>>,
    /// Sent instead of each endpoint's own key (see `with_key`).
    pub(super) key: Option<String>,
    /// Sent as `X-Forwarded-For` (see `forwarded_for`).
    pub(super) forwarded_for: Option<String>,
    /// Sent as `Idempotency-Key` (see `with_idempotency_key`).
    pub(super) idempotency_key: Option<String>,
}

impl ApiClient {
    /// The same endpoints called with `key` instead of their scope's key.
    pub fn with_key(&self, key: &str) -> ApiClient {
        ApiClient {
            key: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// The key chosen with `with_key` (empty if none was).
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// The same endpoints called as forwarded for `ip` (believed only from a
    /// trusted proxy).
    pub fn forwarded_for(&self, ip: &str) -> ApiClient {
        ApiClient {
            forwarded_for: Some(ip.to_owned()),
            ..self.clone()
        }
    }

    /// The same endpoints called with `Idempotency-Key: key`.
    pub fn with_idempotency_key(&self, key: &str) -> ApiClient {
        ApiClient {
            idempotency_key: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// A raw request: for odd input, and paths no endpoint method covers.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.address));
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        if let Some(ip) = &self.forwarded_for {
            builder = builder.header("x-forwarded-for", ip);
        }
        if let Some(key) = &self.idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let body = match body {
            Some(value) => {
                builder = builder.header("content-type", "application/json");
                Full::new(Bytes::from(value.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        self.send(builder.body(body).unwrap()).await
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Response {
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .expect("response within 30 s")
            .expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(key), Some(body))
            .await
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.request(Method::GET, path, Some(key), None).await
    }

    /// A call to an endpoint of `scope`, with its key (or the chosen one).
    async fn call(
        &self,
        method: Method,
        path: &str,
        scope: Scope,
        body: Option<Value>,
    ) -> Response {
        let own = match scope {
            Scope::Auth => &self.auth_key,
            Scope::Accounts => &self.accounts_key,
            Scope::Admin => &self.admin_key,
            Scope::Sign => &self.sign_key,
            // `admin` includes reading the audit trail.
            Scope::Audit => &self.admin_key,
            Scope::Recovery => &self.recovery_key,
            // The client with every scope.
            Scope::Verify => &self.all_key,
        };
        let key = self.key.as_deref().unwrap_or(own);
        self.request(method, path, Some(key), body).await
    }

    async fn post_as(&self, scope: Scope, path: &str, body: Value) -> Response {
        self.call(Method::POST, path, scope, Some(body)).await
    }

    // Operations (no key).

    pub async fn livez(&self) -> Response {
        self.request(Method::GET, "/livez", None, None).await
    }

    pub async fn readyz(&self) -> Response {
        self.request(Method::GET, "/readyz", None, None).await
    }

    pub async fn metrics(&self) -> Response {
        self.request(Method::GET, "/metrics", None, None).await
    }

    // Accounts (scope `accounts`).

    pub async fn register_account(&self, account: &NewAccount) -> Response {
        self.post_as(Scope::Accounts, "/v1/accounts", account.0.clone())
            .await
    }

    /// Registers a civil id with a phone and `PIN`.
    pub async fn register(&self, phone: &str, civil_id: &str) -> Response {
        let account = NewAccount::new(Identity::civil_id(civil_id))
            .phone(phone)
            .pin(PIN);
        self.register_account(&account).await
    }

    /// Registers and returns the account id.
    pub async fn registered(&self, phone: &str, civil_id: &str) -> String {
        let r = self.register(phone, civil_id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["account_id"].as_str().unwrap().to_owned()
    }

    pub async fn pre_register(&self, account: &NewAccount) -> Response {
        let path = "/v1/accounts/pre-register";
        self.post_as(Scope::Accounts, path, account.0.clone()).await
    }

    pub async fn account(&self, account_id: &str) -> Response {
        let path = format!("/v1/accounts/{account_id}");
        self.call(Method::GET, &path, Scope::Accounts, None).await
    }

    pub async fn cancel(&self, account_id: &str) -> Response {
        let path = format!("/v1/accounts/{account_id}");
        self.call(Method::DELETE, &path, Scope::Accounts, None)
            .await
    }

    /// Changes the PIN with the current one and a step-up code.
    pub async fn change_pin(
        &self,
        account_id: &str,
        current_pin: &str,
        (challenge_id, code): (&str, &str),
        new_pin: &str,
    ) -> Response {
        let body = json!({ "current_pin": current_pin, "challenge_id": challenge_id,
            "code": code, "new_pin": new_pin });
        let path = format!("/v1/accounts/{account_id}/pin");
        self.post_as(Scope::Accounts, &path, body).await
    }

    /// Starts replacing a contact, proven by a step-up code sent to a current one.
    pub async fn begin_contact_change(
        &self,
        account_id: &str,
        (proof_challenge_id, proof_code): (&str, &str),
        new: Contact<'_>,
    ) -> Response {
        let mut body =
            json!({ "proof_challenge_id": proof_challenge_id, "proof_code": proof_code });
        new.add_to(&mut body);
        let path = format!("/v1/accounts/{account_id}/contact");
        self.post_as(Scope::Accounts, &path, body).await
    }

    pub async fn confirm_contact_change(&self, challenge_id: &str, code: &str) -> Response {
        let path = "/v1/contact-changes/confirm";
        self.post_as(Scope::Accounts, path, answer(challenge_id, code))
            .await
    }

    /// Removes a contact (`phone`, `email`, `push_device` or `dm`), proven by a step-up code.
    pub async fn remove_contact(
        &self,
        account_id: &str,
        (proof_challenge_id, proof_code): (&str, &str),
        contact: &str,
    ) -> Response {
        let body = json!({ "contact": contact, "proof_challenge_id": proof_challenge_id,
            "proof_code": proof_code });
        let path = format!("/v1/accounts/{account_id}/contact/remove");
        self.post_as(Scope::Accounts, &path, body).await
    }

    /// Sets the language of the citizen's messages; `body` as sent
    /// (`{"locale": "en"}`, `{"locale": null}`, or odd ones).
    pub async fn set_locale(&self, account_id: &str, body: Value) -> Response {
        let path = format!("/v1/accounts/{account_id}/locale");
        self.call(Method::PUT, &path, Scope::Accounts, Some(body))
            .await
    }

    pub async fn push_device(&self, account_id: &str, push_token: &str) -> Response {
        let path = format!("/v1/accounts/{account_id}/push-device");
        let body = json!({ "push_token": push_token });
        self.call(Method::PUT, &path, Scope::Accounts, Some(body))
            .await
    }

    // Login, step-up and challenges (scope `auth`).

    pub async fn login(&self, phone: &str, pin: &str) -> Response {
        self.login_with(Contact::Phone(phone), pin, Sending::default())
            .await
    }

    /// A login by phone or email, with the optional choices.
    pub async fn login_with(&self, by: Contact<'_>, pin: &str, sending: Sending<'_>) -> Response {
        let mut body = json!({ "pin": pin });
        by.add_to(&mut body);
        sending.add_to(&mut body);
        self.post_as(Scope::Auth, "/v1/login", body).await
    }

    pub async fn verify(&self, challenge_id: &str, code: &str) -> Response {
        self.post_as(Scope::Auth, "/v1/verify", answer(challenge_id, code))
            .await
    }

    pub async fn resend(&self, challenge_id: &str) -> Response {
        let path = format!("/v1/challenges/{challenge_id}/resend");
        self.post_as(Scope::Auth, &path, json!({})).await
    }

    pub async fn challenge_status(&self, challenge_id: &str) -> Response {
        let path = format!("/v1/challenges/{challenge_id}");
        self.call(Method::GET, &path, Scope::Auth, None).await
    }

    pub async fn step_up(&self, account_id: &str) -> Response {
        self.step_up_with(account_id, Sending::default()).await
    }

    pub async fn step_up_with(&self, account_id: &str, sending: Sending<'_>) -> Response {
        let mut body = json!({ "account_id": account_id });
        sending.add_to(&mut body);
        self.post_as(Scope::Auth, "/v1/step-up", body).await
    }

    pub async fn step_up_verify(&self, challenge_id: &str, code: &str) -> Response {
        let path = "/v1/step-up/verify";
        self.post_as(Scope::Auth, path, answer(challenge_id, code))
            .await
    }

    // Activation (scope `auth`).

    /// Asks for an activation code; `sending` must name the channel.
    pub async fn request_activation(
        &self,
        identity: &Identity,
        birth_date: &str,
        sending: Sending<'_>,
    ) -> Response {
        let mut body = json!({ "identity": identity.0, "birth_date": birth_date });
        sending.add_to(&mut body);
        self.post_as(Scope::Auth, "/v1/activation/request", body)
            .await
    }

    pub async fn complete_activation(&self, activation: &Activation) -> Response {
        let path = "/v1/activation/complete";
        self.post_as(Scope::Auth, path, activation.0.clone()).await
    }

    // Administration (scope `admin`).

    pub async fn lock(&self, account_id: &str, reason: &str) -> Response {
        let path = format!("/v1/admin/accounts/{account_id}/lock");
        self.post_as(Scope::Admin, &path, json!({ "reason": reason }))
            .await
    }

    pub async fn unlock(&self, account_id: &str) -> Response {
        let path = format!("/v1/admin/accounts/{account_id}/unlock");
        self.post_as(Scope::Admin, &path, json!({})).await
    }

    pub async fn reset_pin(&self, account_id: &str, pin: &str) -> Response {
        let path = format!("/v1/admin/accounts/{account_id}/pin-reset");
        self.post_as(Scope::Admin, &path, json!({ "pin": pin }))
            .await
    }

    /// Helpdesk search: `query` is e.g. `phone=%2B351912345678`.
    pub async fn find_accounts(&self, query: &str) -> Response {
        let path = format!("/v1/admin/accounts?{query}");
        self.call(Method::GET, &path, Scope::Admin, None).await
    }

    // Recovery.

    pub async fn recovery_unlock(
        &self,
        account_id: &str,
        method: &str,
        reference: &str,
    ) -> Response {
        let path = format!("/v1/accounts/{account_id}/recovery/unlock");
        let body = json!({ "method": method, "reference": reference });
        self.post_as(Scope::Recovery, &path, body).await
    }

    pub async fn recovery_pin(
        &self,
        account_id: &str,
        method: &str,
        reference: &str,
        new_pin: &str,
    ) -> Response {
        let path = format!("/v1/accounts/{account_id}/recovery/pin");
        let body = json!({ "method": method, "reference": reference, "new_pin": new_pin });
        self.post_as(Scope::Recovery, &path, body).await
    }

    pub async fn import(&self, accounts: &[NewAccount]) -> Response {
        let accounts: Vec<&Value> = accounts.iter().map(|a| &a.0).collect();
        let body = json!({ "accounts": accounts });
        self.post_as(Scope::Admin, "/v1/admin/import", body).await
    }

    pub async fn backup(&self) -> Response {
        self.post_as(Scope::Admin, "/v1/admin/backup", json!({}))
            .await
    }

    pub async fn keys(&self) -> Response {
        self.call(Method::GET, "/v1/admin/keys", Scope::Admin, None)
            .await
    }

    pub async fn rotate_key(&self) -> Response {
        self.post_as(Scope::Admin, "/v1/admin/keys/rotate", json!({}))
            .await
    }

    pub async fn retire_key(&self, kid: &str) -> Response {
        let path = format!("/v1/admin/keys/{kid}/retire");
        self.post_as(Scope::Admin, &path, json!({})).await
    }

    // The audit trail (scope `admin`); `query` is the query string as sent
    // (`before=9&limit=3`), so tests can send odd ones.

    pub async fn account_events(&self, account_id: &str, query: &str) -> Response {
        let path = format!("/v1/admin/accounts/{account_id}/events?{query}");
        self.call(Method::GET, &path, Scope::Admin, None).await
    }

    pub async fn events(&self, query: &str) -> Response {
        let path = format!("/v1/admin/events?{query}");
        self.call(Method::GET, &path, Scope::Admin, None).await
    }

    pub async fn event_trailer(&self, seq: u64) -> Response {
        let path = format!("/v1/admin/events/{seq}/trailer");
        self.call(Method::GET, &path, Scope::Admin, None).await
    }

    pub async fn audit_info(&self) -> Response {
        self.call(Method::GET, "/v1/admin/audit", Scope::Admin, None)
            .await
    }

    // Clients (scope `admin`).

    pub async fn add_client(&self, body: Value) -> Response {
        self.post_as(Scope::Admin, "/v1/admin/clients", body).await
    }

    pub async fn clients(&self) -> Response {
        self.call(Method::GET, "/v1/admin/clients", Scope::Admin, None)
            .await
    }

    pub async fn client(&self, name: &str) -> Response {
        let path = format!("/v1/admin/clients/{name}");
        self.call(Method::GET, &path, Scope::Admin, None).await
    }

    pub async fn update_client(&self, name: &str, body: Value) -> Response {
        let path = format!("/v1/admin/clients/{name}");
        self.call(Method::PATCH, &path, Scope::Admin, Some(body))
            .await
    }

    pub async fn revoke_client(&self, name: &str) -> Response {
        let path = format!("/v1/admin/clients/{name}");
        self.call(Method::DELETE, &path, Scope::Admin, None).await
    }

    pub async fn rotate_client_key(&self, name: &str, body: Value) -> Response {
        let path = format!("/v1/admin/clients/{name}/keys");
        self.post_as(Scope::Admin, &path, body).await
    }

    pub async fn revoke_client_key(&self, name: &str, key_id: &str) -> Response {
        let path = format!("/v1/admin/clients/{name}/keys/{key_id}");
        self.call(Method::DELETE, &path, Scope::Admin, None).await
    }

    // Signatures (scope `sign`) and the published keys (no key).

    /// Asks the citizen to approve signing `document`.
    pub async fn request_signature(
        &self,
        by: Contact<'_>,
        pin: &str,
        document: &Document,
        sending: Sending<'_>,
    ) -> Response {
        let mut body = json!({ "pin": pin, "document": document.0 });
        by.add_to(&mut body);
        sending.add_to(&mut body);
        self.post_as(Scope::Sign, "/v1/signatures", body).await
    }

    pub async fn verify_signature(&self, challenge_id: &str, code: &str) -> Response {
        let path = "/v1/signatures/verify";
        self.post_as(Scope::Sign, path, answer(challenge_id, code))
            .await
    }

    pub async fn jwks(&self) -> Response {
        self.request(Method::GET, "/.well-known/jwks.json", None, None)
            .await
    }
}

/// The body of every call that answers a challenge with its code.
fn answer(challenge_id: &str, code: &str) -> Value {
    json!({ "challenge_id": challenge_id, "code": code })
}
