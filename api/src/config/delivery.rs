//! Delivery settings: the channels (SMS gateways, SMTP, push relay, letters, direct-message relay) and the outbox's retry policy.

use serde::{Deserialize, Serialize};

/// Delivery channels and the outbox's retry policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Send codes for channels without their own configuration to the log.
    /// Development only: refused in production.
    pub log_sink: bool,
    /// The name citizens know the service by, used in messages.
    pub service_name: String,
    /// `pt` or `en`, when a request names no locale.
    pub default_locale: String,
    /// Sends tried before a message is dead-lettered.
    pub max_attempts: u32,
    /// First retry wait; doubles, with jitter.
    pub backoff_first_ms: u64,
    /// Longest retry wait.
    pub backoff_max_ms: u64,
    /// After a permanent SMS failure, send the code by email if the account has one.
    pub sms_fallback_to_email: bool,
    /// Time allowed for one send.
    pub send_timeout_ms: u64,
    /// Sends at once.
    pub concurrency: u32,
    /// How often the outbox is checked for retries that fell due.
    pub poll_interval_ms: u64,
    /// SMS gateways, tried in order (configure in the file: `[[delivery.sms]]`).
    pub sms: Vec<SmsGatewayConfig>,
    /// Email over SMTP.
    pub email: EmailConfig,
    /// Push relay.
    pub push: PushConfig,
    /// Postal letters.
    pub letter: LetterConfig,
    /// Direct messages through a relay, and the platforms handles may be on.
    pub dm: DmConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let p = engine::OutboxPolicy::default();
        Self {
            log_sink: true,
            service_name: "otpd".into(),
            default_locale: p.default_locale.as_str().into(),
            max_attempts: p.max_attempts,
            backoff_first_ms: u64::try_from(p.backoff_first.as_millis()).unwrap_or(500),
            backoff_max_ms: u64::try_from(p.backoff_max.as_millis()).unwrap_or(60_000),
            sms_fallback_to_email: p.sms_fallback_to_email,
            send_timeout_ms: 10_000,
            concurrency: 32,
            poll_interval_ms: 250,
            sms: Vec::new(),
            email: EmailConfig::default(),
            push: PushConfig::default(),
            letter: LetterConfig::default(),
            dm: DmConfig::default(),
        }
    }
}

/// One SMS gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsGatewayConfig {
    /// A name for logs.
    #[serde(default)]
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// Header carrying the credential, e.g. `Authorization`; empty for none.
    #[serde(default)]
    pub auth_header: String,
    /// Its value: `env:NAME`, `file:/path`, or the value itself.
    #[serde(default)]
    pub auth_value: String,
    /// `json` or `form`.
    #[serde(default = "default_body")]
    pub body: BodyFormat,
    /// The body with `{to}`, `{message}` and `{id}` placeholders.
    pub template: String,
}

fn default_body() -> BodyFormat {
    BodyFormat::Json
}

/// Request body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/json`; placeholders are JSON-escaped.
    Json,
    /// `application/x-www-form-urlencoded`; placeholders are percent-encoded.
    Form,
}

/// SMTP settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Send email.
    pub enabled: bool,
    /// SMTP server.
    pub host: String,
    /// Port; 0 for the default of the TLS mode (587 STARTTLS, 465 TLS, 25 none).
    pub port: u16,
    /// `starttls`, `tls`, or `none` (local relays only).
    pub tls: SmtpTls,
    /// Login; empty for none.
    pub username: String,
    /// `env:NAME`, `file:/path`, or the value itself.
    pub password: String,
    /// Sender, e.g. `Autenticação <no-reply@example.pt>`.
    pub from: String,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: String::new(),
            port: 0,
            tls: SmtpTls::Starttls,
            username: String::new(),
            password: String::new(),
            from: "otpd <no-reply@localhost>".into(),
        }
    }
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the start (port 465).
    Tls,
    /// Plain text: only for a relay on the same host or a test.
    None,
}

/// Push relay settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// The relay's URL; empty disables push.
    pub url: String,
    /// Credential header name; empty for none.
    pub auth_header: String,
    /// `env:NAME`, `file:/path`, or the value itself.
    pub auth_value: String,
}

/// Letter settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LetterConfig {
    /// `off`, `spool` (files for a print house) or `webhook`.
    pub mode: LetterMode,
    /// Directory for `spool`.
    pub spool_dir: String,
    /// URL for `webhook`.
    pub url: String,
    /// Credential header name; empty for none.
    pub auth_header: String,
    /// `env:NAME`, `file:/path`, or the value itself.
    pub auth_value: String,
}

impl Default for LetterConfig {
    fn default() -> Self {
        Self {
            mode: LetterMode::Off,
            spool_dir: String::new(),
            url: String::new(),
            auth_header: String::new(),
            auth_value: String::new(),
        }
    }
}

/// How letters leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterMode {
    /// No letters (the log sink takes them in development).
    Off,
    /// One file per letter in `spool_dir`.
    Spool,
    /// POSTed to `url`.
    Webhook,
}

/// Direct-message relay settings (`[delivery.dm]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DmConfig {
    /// The relay's URL; empty disables direct messages.
    pub url: String,
    /// Credential header name; empty for none.
    pub auth_header: String,
    /// `env:NAME`, `file:/path`, or the value itself.
    pub auth_value: String,
    /// The JSON body, with `{platform}`, `{handle}`, `{message}` and `{id}`
    /// placeholders (JSON-escaped when filled).
    pub template: String,
    /// Platforms a handle may be on (lower case).
    pub platforms: Vec<String>,
    /// Platforms whose handles are case-sensitive; on the others a handle is lower-cased.
    pub case_sensitive_platforms: Vec<String>,
}

impl Default for DmConfig {
    fn default() -> Self {
        let policy = engine::DmPolicy::default();
        Self {
            url: String::new(),
            auth_header: String::new(),
            auth_value: String::new(),
            template: r#"{"platform":"{platform}","handle":"{handle}","text":"{message}","message_id":"{id}"}"#
                .into(),
            platforms: policy.platforms,
            case_sensitive_platforms: policy.case_sensitive,
        }
    }
}

impl DmConfig {
    /// The engine's part: which platforms, and how their handles compare.
    pub fn policy(&self) -> engine::DmPolicy {
        engine::DmPolicy {
            platforms: self.platforms.clone(),
            case_sensitive: self.case_sensitive_platforms.clone(),
        }
    }
}
