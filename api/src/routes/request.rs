//! What a handler gets from a request: the client checked against the
//! endpoint's scope, its path parameter, and its body read within the
//! limits and parsed as a JSON object.

use std::time::Duration;

use bytes::Bytes;
use engine::audit::Actor;
use engine::{AccountId, ChallengeId, ClientInfo, Scope};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Request};
use serde::de::DeserializeOwned;

use super::table::{Body, Found};
use crate::config::CertificateMode;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tls::ClientCertificate;
use crate::wire;

/// Checks the client's key, or its client certificate, and its scope;
/// returns the client.
///
/// A certificate mapped to a client (`server.tls.clients`) authenticates
/// it alone in mode `instead`; in mode `also` the client's key is needed
/// too. A key and a certificate that name different clients are refused.
/// With `basic`, HTTP Basic credentials in Twilio's form are a key too
/// (the `/v2` surface, `twilio/credentials.rs`).
pub fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
    certificate: Option<&ClientCertificate>,
    basic: bool,
) -> Result<ClientInfo, ApiError> {
    let tls = &state.config.server.tls;
    let by_certificate = match certificate {
        Some(certificate) => certificate
            .client(tls)
            .map_err(ApiError::CertificateUnusable)?,
        None => None,
    };
    let client = match headers.get(AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(|_| ApiError::Unauthenticated)?;
            let key = match value.strip_prefix("Bearer ") {
                Some(key) => key.trim().to_owned(),
                None if basic => crate::twilio::credentials::key_of_basic(value)
                    .ok_or(ApiError::Unauthenticated)?,
                None => return Err(ApiError::Unauthenticated),
            };
            let client = state
                .engine
                .authenticate_client(&key)
                .ok_or(ApiError::Unauthenticated)?;
            match by_certificate {
                Some(mapped) if mapped.name != client.name => {
                    return Err(ApiError::CertificateMismatch {
                        certificate: mapped.name.clone(),
                        key: client.name,
                    });
                }
                Some(_) => {}
                None => {
                    if tls
                        .client(&client.name)
                        .is_some_and(|m| m.mode == CertificateMode::Also)
                    {
                        return Err(ApiError::CertificateRequired {
                            client: client.name,
                        });
                    }
                }
            }
            client
        }
        None => match by_certificate {
            Some(mapped) if mapped.mode == CertificateMode::Instead => state
                .engine
                .client(&mapped.name)
                .map_err(|_| ApiError::Unauthenticated)?,
            _ => return Err(ApiError::Unauthenticated),
        },
    };
    if !client.scopes.grants(scope) {
        return Err(ApiError::Forbidden {
            client: client.name,
            scope,
        });
    }
    Ok(client)
}

/// A request's body, as sent or once read.
#[derive(Debug)]
enum Content {
    Unread(Incoming),
    Read(Bytes),
}

/// A request on its way to a handler.
#[derive(Debug)]
pub struct Input {
    id: Option<String>,
    /// The path's second parameter (`{key_id}`).
    second: Option<String>,
    /// The client, for endpoints that need a client key.
    client: Option<ClientInfo>,
    /// Who the request's audit events name.
    actor: Actor,
    /// The query string's pairs, decoded.
    query: Vec<(String, String)>,
    headers: HeaderMap,
    /// `None` once taken.
    body: Option<Content>,
    limit: usize,
    patience: Duration,
}

impl Input {
    /// Prepares `request` for its handler. An endpoint that takes no input
    /// has its body checked here: empty, or `{}`.
    pub async fn new(
        state: &AppState,
        found: Found,
        client: Option<ClientInfo>,
        actor: Actor,
        request: Request<Incoming>,
    ) -> Result<Input, ApiError> {
        let server = &state.config.server;
        let limit = match found.endpoint.body {
            Body::Bulk => server.import_body_limit_bytes,
            Body::Ignored | Body::Empty | Body::Json | Body::Form => server.body_limit_bytes,
        };
        let (parts, body) = request.into_parts();
        let query = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        let mut input = Input {
            id: found.id,
            second: found.second,
            client,
            actor,
            query,
            headers: parts.headers,
            body: Some(Content::Unread(body)),
            limit: limit as usize,
            patience: Duration::from_millis(server.body_read_timeout_ms),
        };
        if found.endpoint.body == Body::Empty {
            input.nothing().await?;
        }
        Ok(input)
    }

    /// A query parameter as text.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names of the query parameters, in order, repeats included.
    pub fn query_names(&self) -> impl Iterator<Item = &str> {
        self.query.iter().map(|(k, _)| k.as_str())
    }

    /// A query parameter as a whole number within `range`.
    pub fn query_number(
        &self,
        name: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.query(name) else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid(
                name,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// A query parameter as a time (RFC 3339, e.g. `2026-11-23T00:00:00Z`).
    pub fn query_time(&self, name: &'static str) -> Result<Option<engine::Timestamp>, ApiError> {
        let Some(text) = self.query(name) else {
            return Ok(None);
        };
        crate::cli::parse_time(text)
            .map(Some)
            .map_err(|why| ApiError::invalid(name, why))
    }

    /// The path's `{id}` as a sequence number.
    pub fn seq(&self) -> Result<u64, ApiError> {
        self.id()
            .parse()
            .map_err(|_| ApiError::invalid("seq", "an event's sequence number is a whole number"))
    }

    /// The path's `{id}` as an account id.
    pub fn account_id(&self) -> Result<AccountId, ApiError> {
        Ok(AccountId::parse("account_id", self.id())?)
    }

    /// The path's `{id}` as a challenge id.
    pub fn challenge_id(&self) -> Result<ChallengeId, ApiError> {
        Ok(ChallengeId::parse("challenge_id", self.id())?)
    }

    /// The path's `{id}` as a signing key id (an RFC 7638 thumbprint).
    pub fn key_id(&self) -> Result<String, ApiError> {
        let id = self.id();
        if !crate::signing::is_key_id(id) {
            return Err(ApiError::invalid(
                "kid",
                "a key id is 43 base64url characters (see GET /v1/admin/keys)",
            ));
        }
        Ok(id.to_owned())
    }

    /// The path's `{name}`: a client's name (checked by the engine, which
    /// answers 404 for any name no active client has).
    pub fn client_name(&self) -> &str {
        self.id()
    }

    /// The path's `{key_id}`: one of a client's keys.
    pub fn client_key_id(&self) -> Result<engine::KeyId, ApiError> {
        Ok(engine::KeyId::parse(
            "key_id",
            self.second.as_deref().unwrap_or_default(),
        )?)
    }

    /// The name of the client that sent the request (empty for endpoints
    /// that take no client key).
    pub fn client(&self) -> &str {
        self.client.as_ref().map_or("", |c| c.name.as_str())
    }

    /// The id of the client that sent the request, if one did.
    pub fn client_id(&self) -> Option<engine::ClientId> {
        self.client.as_ref().map(|c| c.id)
    }

    /// Whether the client holds `scope`.
    pub fn may(&self, scope: Scope) -> bool {
        self.client.as_ref().is_some_and(|c| c.scopes.grants(scope))
    }

    /// Who the request's audit events name.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Makes every engine call of the request carry `claim` (its
    /// idempotency key), through the actor they run as.
    pub fn claim(&mut self, claim: engine::Claim) {
        self.actor.idempotency = Some(std::sync::Arc::new(claim));
    }

    /// The body, read (within the limits) and kept for the handler.
    pub async fn buffered(&mut self) -> Result<Bytes, ApiError> {
        let body = self.read().await?;
        self.body = Some(Content::Read(body.clone()));
        Ok(body)
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// The path's parameters as sent (`""` for one it does not have).
    pub fn path_params(&self) -> (&str, &str) {
        (self.id(), self.second.as_deref().unwrap_or_default())
    }

    /// A request header as text, if it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads a form-encoded body (`application/x-www-form-urlencoded`,
    /// within the size limit); an empty body is an empty form.
    pub async fn form(mut self) -> Result<Bytes, ApiError> {
        let body = self.read().await?;
        if body.is_empty() {
            return Ok(body);
        }
        let form = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(ApiError::UnsupportedMediaType);
        }
        Ok(body)
    }

    /// Reads the body as the JSON object `T`: right content type, within the
    /// size limit, well formed, nothing after it.
    pub async fn json<T: DeserializeOwned>(mut self) -> Result<T, ApiError> {
        if !is_json(&self.headers) {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&self.read().await?)
    }

    /// As [`Input::json`], but an empty body is `T::default()` (every
    /// field of an endpoint whose fields are all optional left out).
    pub async fn json_or_default<T: DeserializeOwned + Default>(mut self) -> Result<T, ApiError> {
        let body = self.read().await?;
        if body.is_empty() {
            return Ok(T::default());
        }
        if !is_json(&self.headers) {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&body)
    }

    /// Checks a body that must say nothing: empty, or `{}` (sent as JSON).
    async fn nothing(&mut self) -> Result<(), ApiError> {
        let body = self.buffered().await?;
        if body.is_empty() {
            return Ok(());
        }
        if !is_json(&self.headers) {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json::<wire::NoInput>(&body).map(|_| ())
    }

    /// The body, within the size limit and the body timeout.
    async fn read(&mut self) -> Result<Bytes, ApiError> {
        let body = match self.body.take() {
            None => return Ok(Bytes::new()),
            Some(Content::Read(bytes)) => return Ok(bytes),
            Some(Content::Unread(body)) => body,
        };
        let limit = self.limit;
        let declared = self
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let collected = tokio::time::timeout(self.patience, Limited::new(body, limit).collect())
            .await
            .map_err(|_| ApiError::BodyTimeout(self.patience))?;
        Ok(collected
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::invalid("body", "the body could not be read")
                }
            })?
            .to_bytes())
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// Parses a body that must be one JSON object and nothing more; a 400 names
/// the field at fault by its full path (`identity.number`), or `body` when
/// the JSON itself is broken or is not an object.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let wire::Object(value) =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| json_error(&e))?;
    // Data after the object (`{…} x`, `{…}{…}`) is not ignored.
    deserializer.end().map_err(|e| ApiError::MalformedJson {
        field: "body".into(),
        message: format!("malformed JSON: {e}"),
    })?;
    Ok(value)
}

/// serde's wording with Rust's type names put in words a caller knows.
fn plain_words(text: &str) -> String {
    let mut text = text.to_owned();
    for (rust, words) in [
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number, 0 or more"),
        ("expected u8", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
    ] {
        text = text.replace(rust, words);
    }
    text
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    let text = plain_words(&inner.to_string());
    let path = e.path().to_string();
    let named = text.split('`').nth(1);
    let field = if inner.is_syntax() || inner.is_eof() {
        "body".to_owned()
    } else if text.starts_with("missing field") {
        // The path is the object missing it.
        match (path.as_str(), named) {
            (".", Some(name)) => name.to_owned(),
            (object, Some(name)) => format!("{object}.{name}"),
            (object, None) => object.to_owned(),
        }
    } else if path == "." || path.starts_with('[') {
        // The body as a whole is the wrong shape (e.g. an array).
        "body".to_owned()
    } else {
        path
    };
    ApiError::MalformedJson {
        field,
        message: format!("malformed JSON: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_speak_of_numbers_not_rust_types() {
        #[derive(Debug, serde::Deserialize)]
        struct Sized {
            #[allow(dead_code)]
            size: Option<u64>,
        }
        let Err(ApiError::MalformedJson { field, message }) =
            parse_json::<Sized>(br#"{"size": -1}"#)
        else {
            panic!("accepted");
        };
        assert_eq!(field, "size");
        assert!(message.contains("a whole number, 0 or more"), "{message}");
        assert!(!message.contains("u64"), "{message}");
    }
    use crate::wire;

    fn refused<T: DeserializeOwned + std::fmt::Debug>(json: &str) -> (String, String) {
        match parse_json::<T>(json.as_bytes()).unwrap_err() {
            ApiError::MalformedJson { field, message } => (field, message),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_unknown_or_missing_field_by_its_path() {
        let field = |json: &str| refused::<wire::RegisterIn>(json).0;
        let identity = r#""identity":{"kind":"civil_id","number":"12345678"}"#;
        assert_eq!(
            field(&format!(r#"{{{identity},"pin":"1","extra":1}}"#)),
            "extra"
        );
        assert_eq!(field(&format!(r#"{{{identity}}}"#)), "pin");
        assert_eq!(
            field(r#"{"identity":{"kind":"civil_id"},"pin":"4821"}"#),
            "identity.number"
        );
        assert_eq!(
            field(r#"{"identity":{"kind":"civil_id","number":"1","colour":"red"},"pin":"4821"}"#),
            "identity.colour"
        );
        assert_eq!(
            field(r#"{"identity":{"kind":"civil_id","number":12},"pin":"4821"}"#),
            "identity.number"
        );
        assert_eq!(field("["), "body");
        assert_eq!(field("[1]"), "body");
        assert_eq!(field(r#"{"identity":"#), "body");
    }

    #[test]
    fn a_body_must_be_an_object_and_the_message_names_no_rust_type() {
        for json in [
            r#"["+351912345679",null,"4821",null,null,null]"#,
            "null",
            "\"text\"",
            "12",
        ] {
            let (field, message) = refused::<wire::LoginIn>(json);
            assert_eq!(field, "body", "{json}");
            assert!(message.contains("a JSON object"), "{json}: {message}");
            assert!(
                !message.contains("LoginIn") && !message.contains("struct"),
                "{message}"
            );
        }
        let nested = r#"{"identity":["civil_id","12345678",null],"pin":"4821"}"#;
        let (field, message) = refused::<wire::RegisterIn>(nested);
        assert_eq!(field, "identity", "{message}");
        assert!(!message.contains("IdentityIn"), "{message}");
    }

    #[test]
    fn anything_after_the_object_is_refused() {
        let login = r#"{"phone":"+351912345679","pin":"4821"}"#;
        assert!(parse_json::<wire::LoginIn>(login.as_bytes()).is_ok());
        assert!(parse_json::<wire::LoginIn>(format!("{login} \n").as_bytes()).is_ok());
        for trailing in [" x", r#"{"x":1}"#, "}", "[]"] {
            let (field, message) = refused::<wire::LoginIn>(&format!("{login}{trailing}"));
            assert_eq!(field, "body", "{trailing}");
            assert!(message.contains("trailing"), "{message}");
        }
    }

    #[test]
    fn no_input_is_an_empty_object_and_nothing_else() {
        assert!(parse_json::<wire::NoInput>(b"{}").is_ok());
        assert!(parse_json::<wire::NoInput>(b" { } ").is_ok());
        assert_eq!(refused::<wire::NoInput>(r#"{"x":1}"#).0, "x");
        assert_eq!(refused::<wire::NoInput>(r#"{"to":"/etc"}"#).0, "to");
        assert_eq!(refused::<wire::NoInput>("garbage").0, "body");
        assert_eq!(refused::<wire::NoInput>("[]").0, "body");
    }
}
