//! Channels over HTTP(S): SMS gateways, the push relay, the letter webhook, and the direct-message relay.
//!
//! Outcome by status: 2xx sent; 429 and 5xx transient (honouring
//! `Retry-After`); any other status permanent; no answer transient. Every
//! request carries the message id as `Idempotency-Key`, so a retried send is
//! not delivered twice by a gateway that honours it.

use std::time::Duration;

use bytes::Bytes;
use engine::{Outgoing, SendResult};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use super::{Channel, Rendered, SendFuture, secret};
use crate::config::{BodyFormat, DmConfig, LetterConfig, PushConfig, SmsGatewayConfig};

/// A shared HTTPS-capable client (rustls with the ring provider, Mozilla roots).
#[derive(Clone)]
pub(super) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    pub(super) fn new(timeout: Duration) -> Result<Self, String> {
        // Only rustls' ring provider is compiled in, so it is the one used.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        })
    }

    /// POSTs `body` and classifies the answer.
    async fn post(
        &self,
        url: &str,
        content_type: &'static str,
        body: String,
        auth: Option<&(HeaderName, HeaderValue)>,
        idempotency_key: &str,
    ) -> SendResult {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, content_type)
            .header("idempotency-key", idempotency_key);
        if let Some((name, value)) = auth {
            builder = builder.header(name, value);
        }
        let request = match builder.body(Full::new(Bytes::from(body))) {
            Ok(request) => request,
            Err(e) => {
                return SendResult::Permanent {
                    reason: format!("bad request to {}: {e}", host(url)),
                };
            }
        };
        let answer = tokio::time::timeout(self.timeout, async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // Read (and bound) the body so the connection can be reused.
            let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after))
        })
        .await;
        match answer {
            Err(_) => SendResult::Retry {
                after: None,
                reason: format!(
                    "no answer from {} within {} ms",
                    host(url),
                    self.timeout.as_millis()
                ),
            },
            Ok(Err(e)) => SendResult::Retry {
                after: None,
                reason: format!("cannot reach {}: {e}", host(url)),
            },
            Ok(Ok((status, retry_after))) => classify(status, retry_after, url),
        }
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>, url: &str) -> SendResult {
    let reason = format!("{} answered {status}", host(url));
    if status.is_success() {
        SendResult::Sent
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendResult::Retry {
            after: retry_after,
            reason,
        }
    } else {
        SendResult::Permanent { reason }
    }
}

/// The host part of a URL, for messages (never its path or query, which may hold keys).
/// The URL's host and port, for messages: never its path, query or userinfo,
/// which may hold credentials.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

fn auth_header(
    setting: &str,
    name: &str,
    value: &str,
) -> Result<Option<(HeaderName, HeaderValue)>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    let name = HeaderName::try_from(name).map_err(|e| format!("{setting}.auth_header: {e}"))?;
    let mut value = HeaderValue::try_from(secret(&format!("{setting}.auth_value"), value)?)
        .map_err(|e| format!("{setting}.auth_value: {e}"))?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

fn check_url(setting: &str, url: &str) -> Result<(), String> {
    let parsed: hyper::Uri = url.parse().map_err(|e| format!("{setting}.url: {e}"))?;
    match parsed.scheme_str() {
        Some("https" | "http") if parsed.host().is_some() => Ok(()),
        _ => Err(format!("{setting}.url: must be an http:// or https:// URL")),
    }
}

struct SmsGateway {
    name: String,
    url: String,
    auth: Option<(HeaderName, HeaderValue)>,
    body: BodyFormat,
    template: String,
}

/// SMS through one or more HTTP gateways, tried in order until one accepts.
pub(super) struct SmsGateways {
    http: HttpClient,
    gateways: Vec<SmsGateway>,
}

impl SmsGateways {
    pub(super) fn new(http: HttpClient, configs: &[SmsGatewayConfig]) -> Result<Self, String> {
        let mut gateways = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let setting = format!("delivery.sms[{i}]");
            check_url(&setting, &c.url)?;
            if !c.template.contains("{to}") || !c.template.contains("{message}") {
                return Err(format!(
                    "{setting}.template must contain {{to}} and {{message}}"
                ));
            }
            gateways.push(SmsGateway {
                name: if c.name.is_empty() {
                    format!("sms-{i}")
                } else {
                    c.name.clone()
                },
                url: c.url.clone(),
                auth: auth_header(&setting, &c.auth_header, &c.auth_value)?,
                body: c.body,
                template: c.template.clone(),
            });
        }
        Ok(Self { http, gateways })
    }
}

impl Channel for SmsGateways {
    fn name(&self) -> &'static str {
        "sms-http"
    }

    fn worst_case(&self, per_request: Duration) -> Duration {
        per_request * u32::try_from(self.gateways.len()).unwrap_or(u32::MAX)
    }

    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a> {
        Box::pin(async move {
            let mut transient: Option<SendResult> = None;
            let mut reasons = Vec::new();
            for gateway in &self.gateways {
                let (content_type, body) = fill(
                    gateway.body,
                    &gateway.template,
                    &message.destination,
                    &rendered.short,
                    &message.id.to_string(),
                );
                let result = self
                    .http
                    .post(
                        &gateway.url,
                        content_type,
                        body,
                        gateway.auth.as_ref(),
                        &message.id.to_string(),
                    )
                    .await;
                match result {
                    SendResult::Sent => return SendResult::Sent,
                    SendResult::Retry { ref reason, .. } | SendResult::Permanent { ref reason } => {
                        reasons.push(format!("{}: {reason}", gateway.name));
                        if matches!(result, SendResult::Retry { .. }) && transient.is_none() {
                            transient = Some(result);
                        }
                    }
                }
            }
            let reason = reasons.join("; ");
            match transient {
                // Some gateway may work later: retry (after the first one's wait).
                Some(SendResult::Retry { after, .. }) => SendResult::Retry { after, reason },
                _ => SendResult::Permanent { reason },
            }
        })
    }
}

/// Fills `{to}`, `{message}` and `{id}` into a JSON or form template, escaped for it.
pub(super) fn fill(
    format: BodyFormat,
    template: &str,
    to: &str,
    message: &str,
    id: &str,
) -> (&'static str, String) {
    fill_placeholders(
        format,
        template,
        &[("{to}", to), ("{message}", message), ("{id}", id)],
    )
}

/// Replaces each placeholder of `values` in `template` with its value,
/// escaped for `format`, in one pass: a value holding another
/// placeholder's name (a message with `{id}` in it) is never filled again.
fn fill_placeholders(
    format: BodyFormat,
    template: &str,
    values: &[(&str, &str)],
) -> (&'static str, String) {
    let escape = |value: &str| match format {
        BodyFormat::Json => {
            let quoted = serde_json::to_string(value).unwrap_or_default();
            quoted[1..quoted.len().saturating_sub(1).max(1)].to_owned()
        }
        BodyFormat::Form => form_encode(value),
    };
    let mut body = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        body.push_str(&rest[..at]);
        let tail = &rest[at..];
        match values.iter().find(|(name, _)| tail.starts_with(name)) {
            Some((name, value)) => {
                body.push_str(&escape(value));
                rest = &tail[name.len()..];
            }
            None => {
                body.push('{');
                rest = &tail[1..];
            }
        }
    }
    body.push_str(rest);
    let content_type = match format {
        BodyFormat::Json => "application/json",
        BodyFormat::Form => "application/x-www-form-urlencoded",
    };
    (content_type, body)
}

fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A channel that POSTs one JSON document per message: the push relay and
/// the print house's letter webhook differ only in the document.
pub(super) struct JsonWebhook {
    http: HttpClient,
    name: &'static str,
    url: String,
    auth: Option<(HeaderName, HeaderValue)>,
    document: fn(&Outgoing, &Rendered) -> serde_json::Value,
}

impl JsonWebhook {
    /// Push to the citizen's app through a relay: the app shows the code.
    pub(super) fn push(http: HttpClient, config: &PushConfig) -> Result<Self, String> {
        Self::new(
            http,
            "push-webhook",
            "delivery.push",
            &config.url,
            &config.auth_header,
            &config.auth_value,
            |m, r| match m.notice {
                Some(notice) => json!({
                    "message_id": m.id.to_string(),
                    "device_token": m.destination,
                    "notice": notice.as_str(),
                    "locale": m.locale.as_str(),
                    "text": r.short,
                }),
                None => json!({
                    "message_id": m.id.to_string(),
                    "device_token": m.destination,
                    "challenge_id": m.challenge_id.to_string(),
                    "purpose": m.purpose.as_str(),
                    "code": m.code.expose(),
                    "expires_at": crate::wire::rfc3339(m.expires_at),
                    "locale": m.locale.as_str(),
                    "text": r.short,
                }),
            },
        )
    }

    /// Letters posted to a print house.
    pub(super) fn letter(http: HttpClient, config: &LetterConfig) -> Result<Self, String> {
        Self::new(
            http,
            "letter-webhook",
            "delivery.letter",
            &config.url,
            &config.auth_header,
            &config.auth_value,
            |m, r| {
                json!({
                    "message_id": m.id.to_string(),
                    "address": m.destination,
                    "code": m.code.expose(),
                    "expires_at": crate::wire::rfc3339(m.expires_at),
                    "locale": m.locale.as_str(),
                    "letter": r.letter,
                })
            },
        )
    }

    fn new(
        http: HttpClient,
        name: &'static str,
        setting: &str,
        url: &str,
        auth_header_name: &str,
        auth_value: &str,
        document: fn(&Outgoing, &Rendered) -> serde_json::Value,
    ) -> Result<Self, String> {
        check_url(setting, url)?;
        Ok(Self {
            http,
            name,
            url: url.to_owned(),
            auth: auth_header(setting, auth_header_name, auth_value)?,
            document,
        })
    }
}

impl Channel for JsonWebhook {
    fn name(&self) -> &'static str {
        self.name
    }

    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a> {
        Box::pin(async move {
            let body = (self.document)(message, rendered).to_string();
            self.http
                .post(
                    &self.url,
                    "application/json",
                    body,
                    self.auth.as_ref(),
                    &message.id.to_string(),
                )
                .await
        })
    }
}

/// Direct messages through a relay that speaks to the messaging platforms:
/// one JSON document per message, from the configured template, with the
/// message's short text (the same words as an SMS).
pub(super) struct DmRelay {
    http: HttpClient,
    url: String,
    auth: Option<(HeaderName, HeaderValue)>,
    template: String,
}

impl DmRelay {
    pub(super) fn new(http: HttpClient, config: &DmConfig) -> Result<Self, String> {
        let setting = "delivery.dm";
        check_url(setting, &config.url)?;
        if !config.template.contains("{handle}") || !config.template.contains("{message}") {
            return Err(format!(
                "{setting}.template must contain {{handle}} and {{message}}"
            ));
        }
        let (_, sample) = Self::body(&config.template, "twitter:ana", "a \"text\"", "id");
        if serde_json::from_str::<serde_json::Value>(&sample).is_err() {
            return Err(format!(
                "{setting}.template is not JSON once filled (placeholders go inside strings)"
            ));
        }
        Ok(Self {
            http,
            url: config.url.clone(),
            auth: auth_header(setting, &config.auth_header, &config.auth_value)?,
            template: config.template.clone(),
        })
    }

    /// The body for a message to `destination` (`platform:handle`).
    fn body(template: &str, destination: &str, text: &str, id: &str) -> (&'static str, String) {
        let (platform, handle) = destination.split_once(':').unwrap_or(("", destination));
        fill_placeholders(
            BodyFormat::Json,
            template,
            &[
                ("{platform}", platform),
                ("{handle}", handle),
                ("{message}", text),
                ("{id}", id),
            ],
        )
    }
}

impl Channel for DmRelay {
    fn name(&self) -> &'static str {
        "dm-relay"
    }

    fn send<'a>(&'a self, message: &'a Outgoing, rendered: &'a Rendered) -> SendFuture<'a> {
        Box::pin(async move {
            let id = message.id.to_string();
            let (content_type, body) =
                Self::body(&self.template, &message.destination, &rendered.short, &id);
            self.http
                .post(&self.url, content_type, body, self.auth.as_ref(), &id)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_host_without_credentials() {
        assert_eq!(
            host("https://u:s3cret@sms.example:8443/x?k=1"),
            "sms.example:8443"
        );
        assert_eq!(host("https://sms.example?key=s3cret"), "sms.example");
    }

    #[test]
    fn statuses_are_classified_as_the_gateway_meant_them() {
        let url = "https://sms.example/send?key=secret";
        assert_eq!(classify(StatusCode::OK, None, url), SendResult::Sent);
        assert_eq!(classify(StatusCode::ACCEPTED, None, url), SendResult::Sent);
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(9)), url),
            SendResult::Retry { after: Some(d), .. } if d == Duration::from_secs(9)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None, url),
            SendResult::Retry { .. }
        ));
        match classify(StatusCode::BAD_REQUEST, None, url) {
            SendResult::Permanent { reason } => {
                assert!(
                    reason.contains("sms.example") && !reason.contains("secret"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn templates_are_filled_with_escaped_values() {
        let (ct, body) = fill(
            BodyFormat::Json,
            r#"{"to":"{to}","text":"{message}"}"#,
            "+351912345678",
            "a \"quoted\" code: 123",
            "m1",
        );
        assert_eq!(ct, "application/json");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["text"], "a \"quoted\" code: 123");
        let (ct, body) = fill(
            BodyFormat::Form,
            "to={to}&text={message}&ref={id}",
            "+351 91",
            "código: 1&2",
            "m1",
        );
        assert_eq!(ct, "application/x-www-form-urlencoded");
        assert_eq!(body, "to=%2B351+91&text=c%C3%B3digo%3A+1%262&ref=m1");
    }

    #[test]
    fn a_value_naming_a_placeholder_is_not_filled_again() {
        let (_, body) = fill(
            BodyFormat::Json,
            r#"{"text":"{message}","ref":"{id}","odd":"{other}"}"#,
            "+351912345678",
            "code {id} {to}",
            "m1",
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["text"], "code {id} {to}");
        assert_eq!(parsed["ref"], "m1");
        assert_eq!(parsed["odd"], "{other}", "unknown braces are kept");
    }

    #[test]
    fn a_direct_message_names_the_platform_and_the_handle_apart() {
        let (ct, body) = DmRelay::body(
            &DmConfig::default().template,
            "mastodon:ana@social.example",
            "otpd: code 123456",
            "m1",
        );
        assert_eq!(ct, "application/json");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["platform"], "mastodon");
        assert_eq!(parsed["handle"], "ana@social.example");
        assert_eq!(parsed["text"], "otpd: code 123456");
        assert_eq!(parsed["message_id"], "m1");
    }

    #[test]
    fn a_relay_template_must_be_json_and_name_the_handle_and_the_text() {
        let http = HttpClient::new(Duration::from_secs(1)).unwrap();
        let config = |template: &str| DmConfig {
            url: "http://127.0.0.1:9/dm".into(),
            template: template.into(),
            ..DmConfig::default()
        };
        assert!(DmRelay::new(http.clone(), &config(&DmConfig::default().template)).is_ok());
        for bad in [
            r#"{"to":"{handle}"}"#,
            r#"{"to":"{handle}","text":{message}}"#,
            r#"handle={handle}&text={message}"#,
        ] {
            let err = DmRelay::new(http.clone(), &config(bad)).err().unwrap();
            assert!(err.starts_with("delivery.dm.template"), "{bad}: {err}");
        }
        let err = DmRelay::new(
            http,
            &DmConfig {
                url: "ftp://relay".into(),
                ..DmConfig::default()
            },
        )
        .err()
        .unwrap();
        assert!(err.starts_with("delivery.dm.url"), "{err}");
    }
}
