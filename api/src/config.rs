//! Configuration: safe defaults, then a TOML file, then `OTPD_*` variables, then flags.
//!
//! Every layer rejects keys it does not know. The environment layer is
//! derived from the defaults themselves: each setting `a.b_c` is also
//! `OTPD_A_B_C`, so the two can never drift apart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::{
    Alphabet, Argon2Params, CodePolicies, CodePolicy, EngineConfig, IssueLimitsConfig, LockMode,
    LockoutPolicy, PinPolicy, Rate, ResendCooldown, StoreConfig,
};
use serde::{Deserialize, Serialize};

/// Variables read from the environment that are not settings.
pub const ENV_CONFIG_FILE: &str = "OTPD_CONFIG";
/// The code key in hex (64 digits), instead of a key file.
pub const ENV_CODE_KEY: &str = "OTPD_CODE_KEY";
/// An admin-scoped client key, for `otpd backup` to ask a running server.
pub const ENV_ADMIN_KEY: &str = "OTPD_ADMIN_KEY";

/// Where the service runs and what it is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Data directory: the sled store and, unless set elsewhere, the code key.
    pub data_dir: PathBuf,
    /// `development` or `production`; production refuses development-only parts.
    pub environment: Environment,
    /// `human` or `json` logs.
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `otpd=debug,info`.
    pub log_level: String,
    /// File holding the 32-byte code key (raw or 64 hex digits). Empty: `<data_dir>/code.key`.
    pub code_key_file: String,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The embedded store.
    pub store: StoreSettings,
    /// What a PIN must look like.
    pub pin: PinConfig,
    /// Argon2id cost for PINs.
    pub argon2: Argon2Config,
    /// When accounts lock.
    pub lockout: LockoutConfig,
    /// Code shape, lifetime and attempts per purpose.
    pub codes: CodesConfig,
    /// Least time between a code and its resend.
    pub resend_cooldown_seconds: u64,
    /// How codes reach citizens.
    pub delivery: DeliveryConfig,
    /// Rate limits and SMS budgets (0 turns a limit off).
    pub limits: LimitsConfig,
}

/// Rate limits and SMS budgets. Every count is per its window; 0 turns that
/// limit off. Limits are kept in memory: a restart forgets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Addresses (or CIDR ranges) of proxies whose `X-Forwarded-For` is
    /// believed; for any other peer the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Codes sent per account in 10 minutes (all purposes and channels).
    pub issue_per_account_10min: u32,
    /// Codes sent per account in a day.
    pub issue_per_account_day: u32,
    /// Codes sent per phone number, email, device or address in 10 minutes.
    pub issue_per_destination_10min: u32,
    /// Codes sent per destination in a day.
    pub issue_per_destination_day: u32,
    /// Requests that may send a code, per source IP per minute.
    pub issue_per_ip_minute: u32,
    /// Requests that may send a code, per client per minute.
    pub issue_per_client_minute: u32,
    /// Requests that check a PIN or code, per source IP per minute.
    pub attempts_per_ip_minute: u32,
    /// Requests that check a PIN or code, per client per minute.
    pub attempts_per_client_minute: u32,
    /// SMS per country calling code per hour, unless it has its own budget.
    pub sms_per_country_hour: u32,
    /// SMS per country calling code per day, unless it has its own budget.
    pub sms_per_country_day: u32,
    /// Budgets for particular calling codes, e.g. `[limits.sms_country_budgets.351]`.
    pub sms_country_budgets: BTreeMap<String, CountryBudget>,
    /// All SMS per hour.
    pub sms_global_hour: u32,
    /// If not empty, SMS only to numbers starting with one of these prefixes
    /// (e.g. `["+351", "+34"]`).
    pub sms_allowed_prefixes: Vec<String>,
    /// Never SMS to numbers starting with one of these prefixes (e.g. `["+1876"]`).
    pub sms_blocked_prefixes: Vec<String>,
    /// Pumping alarm: raised for a country when under this per cent of its
    /// recent SMS codes are verified...
    pub pumping_alarm_percent: u32,
    /// ...once at least this many were sent in the last hour or two.
    pub pumping_min_sends: u64,
    /// Keys each limiter holds at most; beyond it, unseen keys share one bucket.
    pub max_keys: u32,
}

/// One country's SMS budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountryBudget {
    /// SMS per hour (0: no limit).
    pub per_hour: u32,
    /// SMS per day (0: no limit).
    pub per_day: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            issue_per_account_10min: 5,
            issue_per_account_day: 20,
            issue_per_destination_10min: 5,
            issue_per_destination_day: 20,
            issue_per_ip_minute: 60,
            issue_per_client_minute: 60_000,
            attempts_per_ip_minute: 120,
            attempts_per_client_minute: 120_000,
            sms_per_country_hour: 200,
            sms_per_country_day: 2_000,
            sms_country_budgets: BTreeMap::from([(
                "351".to_owned(),
                CountryBudget {
                    per_hour: 50_000,
                    per_day: 500_000,
                },
            )]),
            sms_global_hour: 100_000,
            sms_allowed_prefixes: Vec::new(),
            sms_blocked_prefixes: Vec::new(),
            pumping_alarm_percent: 20,
            pumping_min_sends: 50,
            max_keys: 1_000_000,
        }
    }
}

impl LimitsConfig {
    /// Every limit off (load tests of the code path itself).
    pub fn off() -> Self {
        Self {
            issue_per_account_10min: 0,
            issue_per_account_day: 0,
            issue_per_destination_10min: 0,
            issue_per_destination_day: 0,
            issue_per_ip_minute: 0,
            issue_per_client_minute: 0,
            attempts_per_ip_minute: 0,
            attempts_per_client_minute: 0,
            sms_per_country_hour: 0,
            sms_per_country_day: 0,
            sms_country_budgets: BTreeMap::new(),
            sms_global_hour: 0,
            ..Self::default()
        }
    }

    /// The engine's part: per-account, per-destination and SMS limits.
    pub fn issue_limits(&self) -> Result<IssueLimitsConfig, String> {
        let ten_minutes = |count| Rate {
            count,
            per: Duration::from_secs(600),
        };
        let mut budgets = BTreeMap::new();
        for (code, budget) in &self.sms_country_budgets {
            let digits = code.trim_start_matches('+');
            let parsed = digits
                .parse::<u16>()
                .ok()
                .filter(|c| (1..=999).contains(c) && !digits.starts_with('0'));
            let Some(parsed) = parsed else {
                return Err(format!(
                    "limits.sms_country_budgets: {code:?} is not a country calling code such as 351"
                ));
            };
            budgets.insert(
                parsed,
                vec![
                    Rate::per_hour(budget.per_hour),
                    Rate::per_day(budget.per_day),
                ],
            );
        }
        Ok(IssueLimitsConfig {
            per_account: vec![
                ten_minutes(self.issue_per_account_10min),
                Rate::per_day(self.issue_per_account_day),
            ],
            per_destination: vec![
                ten_minutes(self.issue_per_destination_10min),
                Rate::per_day(self.issue_per_destination_day),
            ],
            sms_per_calling_code: vec![
                Rate::per_hour(self.sms_per_country_hour),
                Rate::per_day(self.sms_per_country_day),
            ],
            sms_calling_code_budgets: budgets,
            sms_global: vec![Rate::per_hour(self.sms_global_hour)],
            sms_allowed_prefixes: self.sms_allowed_prefixes.clone(),
            sms_blocked_prefixes: self.sms_blocked_prefixes.clone(),
            max_keys: self.max_keys as usize,
            pumping_alarm_percent: self.pumping_alarm_percent,
            pumping_min_sends: self.pumping_min_sends,
        })
    }
}

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

/// Deployment kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Local use: the log delivery sink is allowed.
    Development,
    /// Real citizens: development-only parts refuse to start.
    Production,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable text.
    Human,
    /// One JSON object a line.
    Json,
}

/// The embedded store (under `<data_dir>/store`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// sled's page cache in MiB (the engine keeps its state in memory besides).
    pub cache_mb: u64,
    /// Free space the data directory's file system must keep, in MiB. Below
    /// it writes are refused with 503 and `/readyz` is not ready, until space
    /// returns. 0 turns the check off.
    pub min_free_mb: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        let store = StoreConfig::default();
        Self {
            cache_mb: store.cache_bytes >> 20,
            min_free_mb: store.min_free_bytes >> 20,
        }
    }
}

/// HTTP server limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Open connections at most; further ones wait to be accepted.
    pub max_connections: u32,
    /// Time allowed to send the request headers.
    pub header_read_timeout_ms: u64,
    /// Time allowed for a whole request; past it the answer is 503.
    pub request_timeout_ms: u64,
    /// Time allowed to send the request body once the headers are in;
    /// past it the answer is 408 and nothing is done.
    pub body_read_timeout_ms: u64,
    /// Largest request body.
    pub body_limit_bytes: u32,
    /// Largest body of a bulk import.
    pub import_body_limit_bytes: u32,
    /// On SIGTERM/SIGINT, time allowed for requests in flight to finish.
    pub shutdown_grace_ms: u64,
    /// Argon2 computations at once (0: one per CPU).
    pub argon2_workers: u32,
    /// Niceness added to the Argon2 threads (0-19; 0: none), so verifies
    /// and step-ups keep their latency while logins use the idle CPU.
    pub argon2_nice: i32,
    /// How often expired challenges are swept.
    pub sweep_interval_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            body_read_timeout_ms: 5_000,
            body_limit_bytes: 16 * 1024,
            import_body_limit_bytes: 8 * 1024 * 1024,
            shutdown_grace_ms: 10_000,
            argon2_workers: 0,
            argon2_nice: 5,
            sweep_interval_ms: 60_000,
        }
    }
}

/// A level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a list of
/// `target=level` directives. A bare word that is not a level would be read
/// by the filter as a target name and silence every other log: refused.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let well_formed = !level.trim().is_empty()
        && level.split(',').all(|directive| {
            let directive = directive.trim();
            match directive.split_once('=') {
                Some((target, level)) => {
                    !target.is_empty() && LEVELS.contains(&level.to_ascii_lowercase().as_str())
                }
                None => LEVELS.contains(&directive.to_ascii_lowercase().as_str()),
            }
        });
    if !well_formed || tracing_subscriber::EnvFilter::try_new(level).is_err() {
        return Err(format!(
            "log_level: {level:?} is not a level (error, warn, info, debug, trace, off) \
             or a list of target=level directives"
        ));
    }
    Ok(())
}

/// PIN policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PinConfig {
    /// Fewest characters.
    pub min_length: u32,
    /// Most characters.
    pub max_length: u32,
    /// Digits only.
    pub digits_only: bool,
    /// Refuse repeated digits and straight runs.
    pub reject_trivial: bool,
    /// PINs refused outright.
    pub blocklist: Vec<String>,
}

impl Default for PinConfig {
    fn default() -> Self {
        let p = PinPolicy::default();
        Self {
            min_length: u32::try_from(p.min_length).unwrap_or(4),
            max_length: u32::try_from(p.max_length).unwrap_or(8),
            digits_only: p.digits_only,
            reject_trivial: p.reject_trivial,
            blocklist: p.blocklist,
        }
    }
}

/// Argon2id parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Config {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        let a = Argon2Params::default();
        Self {
            memory_kib: a.memory_kib,
            iterations: a.iterations,
            parallelism: a.parallelism,
        }
    }
}

/// Lockout policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive wrong PINs that lock.
    pub pin_threshold: u32,
    /// Consecutive wrong codes that lock.
    pub code_threshold: u32,
    /// `until_unlocked` (default) or `temporary`.
    pub mode: LockModeConfig,
    /// Temporary mode: length of the first lock.
    pub temporary_first_seconds: u64,
    /// Temporary mode: longest lock.
    pub temporary_max_seconds: u64,
}

/// How long a lock lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockModeConfig {
    /// Until a privileged unlock.
    UntilUnlocked,
    /// Escalating, ending by itself.
    Temporary,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let l = LockoutPolicy::default();
        Self {
            pin_threshold: l.pin_threshold,
            code_threshold: l.code_threshold,
            mode: LockModeConfig::UntilUnlocked,
            temporary_first_seconds: 60,
            temporary_max_seconds: 3_600,
        }
    }
}

/// One purpose's code policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeConfig {
    /// Symbols in a code.
    pub length: u32,
    /// `digits` or `unambiguous` (letters and digits without look-alikes).
    pub alphabet: AlphabetConfig,
    /// Longest life of a code.
    pub lifetime_seconds: u64,
    /// Wrong guesses allowed on one code.
    pub max_attempts: u32,
}

/// Code alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphabetConfig {
    /// 0-9.
    Digits,
    /// Letters and digits without 0/O, 1/I/L.
    Unambiguous,
}

impl From<&CodePolicy> for CodeConfig {
    fn from(p: &CodePolicy) -> Self {
        Self {
            length: u32::try_from(p.length).unwrap_or(6),
            alphabet: match p.alphabet {
                Alphabet::Digits => AlphabetConfig::Digits,
                Alphabet::Unambiguous => AlphabetConfig::Unambiguous,
            },
            lifetime_seconds: p.lifetime.as_secs(),
            max_attempts: p.max_attempts,
        }
    }
}

impl CodeConfig {
    fn policy(&self) -> CodePolicy {
        CodePolicy {
            length: self.length as usize,
            alphabet: match self.alphabet {
                AlphabetConfig::Digits => Alphabet::Digits,
                AlphabetConfig::Unambiguous => Alphabet::Unambiguous,
            },
            lifetime: Duration::from_secs(self.lifetime_seconds),
            max_attempts: self.max_attempts,
        }
    }
}

/// Code policies per purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodesConfig {
    /// Login second factor.
    pub login: CodeConfig,
    /// Step-up.
    pub step_up: CodeConfig,
    /// Activation by SMS.
    pub activation_sms: CodeConfig,
    /// Activation by email.
    pub activation_email: CodeConfig,
    /// Activation by letter.
    pub activation_letter: CodeConfig,
    /// New phone or email.
    pub contact_change: CodeConfig,
}

impl Default for CodesConfig {
    fn default() -> Self {
        let c = CodePolicies::default();
        Self {
            login: (&c.login).into(),
            step_up: (&c.step_up).into(),
            activation_sms: (&c.activation_sms).into(),
            activation_email: (&c.activation_email).into(),
            activation_letter: (&c.activation_letter).into(),
            contact_change: (&c.contact_change).into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("otpd-data"),
            environment: Environment::Development,
            log_format: LogFormat::Human,
            log_level: "info".into(),
            code_key_file: String::new(),
            server: ServerConfig::default(),
            store: StoreSettings::default(),
            pin: PinConfig::default(),
            argon2: Argon2Config::default(),
            lockout: LockoutConfig::default(),
            codes: CodesConfig::default(),
            resend_cooldown_seconds: ResendCooldown::default().0.as_secs(),
            delivery: DeliveryConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// Settings given as command-line flags, applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--environment`.
    pub environment: Option<Environment>,
}

impl Config {
    /// Builds the configuration from the layers. `file` is the TOML file (if
    /// any); `env` is the process environment (passed in for testing).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, String> {
        let mut merged = toml::Table::try_from(Config::default())
            .map_err(|e| format!("internal: defaults do not serialise: {e}"))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
            merge(&mut merged, table);
            check(&merged).map_err(|e| format!("config file {}: {e}", path.display()))?;
        }
        let variables = env_variables();
        for (name, value) in env {
            if !name.starts_with("OTPD_")
                || [ENV_CONFIG_FILE, ENV_CODE_KEY, ENV_ADMIN_KEY].contains(&name.as_str())
            {
                continue;
            }
            let Some(path) = variables.get(&name) else {
                return Err(format!(
                    "unknown environment variable {name} (see `otpd --help` and docs/OPERATIONS.md)"
                ));
            };
            set_from_env(&mut merged, path, &value).map_err(|e| format!("{name}: {e}"))?;
        }
        let mut config: Config = check(&merged)?;
        if let Some(listen) = &overrides.listen {
            config.listen.clone_from(listen);
        }
        if let Some(dir) = &overrides.data_dir {
            config.data_dir.clone_from(dir);
        }
        if let Some(format) = overrides.log_format {
            config.log_format = format;
        }
        if let Some(environment) = overrides.environment {
            config.environment = environment;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addr()?;
        check_log_level(&self.log_level)?;
        if self.server.max_connections == 0 {
            return Err("server.max_connections must be at least 1".into());
        }
        engine::Locale::parse(&self.delivery.default_locale)
            .map_err(|_| "delivery.default_locale must be pt or en".to_owned())?;
        self.limits.issue_limits()?;
        crate::limits::parse_proxies(&self.limits.trusted_proxies)?;
        if self.server.body_limit_bytes < 256 {
            return Err("server.body_limit_bytes must be at least 256".into());
        }
        if self.server.body_read_timeout_ms == 0
            || self.server.body_read_timeout_ms >= self.server.request_timeout_ms
        {
            return Err(
                "server.body_read_timeout_ms must be above 0 and below server.request_timeout_ms"
                    .into(),
            );
        }
        if !(0..=19).contains(&self.server.argon2_nice) {
            return Err("server.argon2_nice must be 0 to 19".into());
        }
        self.engine_config()
            .validate()
            .map_err(|e| format!("invalid setting {e}"))
    }

    /// A copy for printing: every inline secret (SMTP password, gateway,
    /// push and letter credentials) replaced by `<redacted>`; references
    /// (`env:NAME`, `file:/path`) kept, as they reveal nothing.
    pub fn redacted(&self) -> Config {
        fn redact(value: &mut String) {
            let reference = value.starts_with("env:") || value.starts_with("file:");
            if !value.is_empty() && !reference {
                *value = "<redacted>".into();
            }
        }
        let mut copy = self.clone();
        for gateway in &mut copy.delivery.sms {
            redact(&mut gateway.auth_value);
        }
        redact(&mut copy.delivery.email.password);
        redact(&mut copy.delivery.push.auth_value);
        redact(&mut copy.delivery.letter.auth_value);
        copy
    }

    /// The listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "listen: {:?} is not an address like 127.0.0.1:8080",
                self.listen
            )
        })
    }

    /// The engine's part of the configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let d = &self.delivery;
        EngineConfig {
            outbox: engine::OutboxPolicy {
                max_attempts: d.max_attempts,
                backoff_first: Duration::from_millis(d.backoff_first_ms),
                backoff_max: Duration::from_millis(d.backoff_max_ms),
                sms_fallback_to_email: d.sms_fallback_to_email,
                default_locale: engine::Locale::parse(&d.default_locale)
                    .unwrap_or(engine::Locale::Pt),
                ..engine::OutboxPolicy::default()
            },
            pin: PinPolicy {
                min_length: self.pin.min_length as usize,
                max_length: self.pin.max_length as usize,
                digits_only: self.pin.digits_only,
                reject_trivial: self.pin.reject_trivial,
                blocklist: self.pin.blocklist.clone(),
            },
            argon2: Argon2Params {
                memory_kib: self.argon2.memory_kib,
                iterations: self.argon2.iterations,
                parallelism: self.argon2.parallelism,
            },
            lockout: LockoutPolicy {
                pin_threshold: self.lockout.pin_threshold,
                code_threshold: self.lockout.code_threshold,
                mode: match self.lockout.mode {
                    LockModeConfig::UntilUnlocked => LockMode::UntilUnlocked,
                    LockModeConfig::Temporary => LockMode::Temporary {
                        first: Duration::from_secs(self.lockout.temporary_first_seconds),
                        max: Duration::from_secs(self.lockout.temporary_max_seconds),
                    },
                },
            },
            codes: CodePolicies {
                login: self.codes.login.policy(),
                step_up: self.codes.step_up.policy(),
                activation_sms: self.codes.activation_sms.policy(),
                activation_email: self.codes.activation_email.policy(),
                activation_letter: self.codes.activation_letter.policy(),
                contact_change: self.codes.contact_change.policy(),
            },
            resend_cooldown: ResendCooldown(Duration::from_secs(self.resend_cooldown_seconds)),
            store: StoreConfig {
                path: Some(self.data_dir.join("store")),
                cache_bytes: self.store.cache_mb.saturating_mul(1 << 20),
                min_free_bytes: self.store.min_free_mb.saturating_mul(1 << 20),
            },
            // validate() reports a bad budget; here it only falls back.
            limits: self.limits.issue_limits().unwrap_or_default(),
        }
    }

    /// Every `OTPD_*` setting variable and its key, for `--help`.
    pub fn environment_variables() -> Vec<(String, String)> {
        env_variables()
            .into_iter()
            .map(|(var, path)| (var, path.join(".")))
            .collect()
    }
}

fn check(table: &toml::Table) -> Result<Config, String> {
    Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.to_string())
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                merge(existing, incoming);
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// `OTPD_SERVER_MAX_CONNECTIONS` → `["server", "max_connections"]`, from the defaults.
fn env_variables() -> BTreeMap<String, Vec<String>> {
    fn walk(table: &toml::Table, prefix: &[String], out: &mut BTreeMap<String, Vec<String>>) {
        for (key, value) in table {
            let mut path = prefix.to_vec();
            path.push(key.clone());
            if let toml::Value::Table(inner) = value {
                walk(inner, &path, out);
            } else if path == ["delivery", "sms"] {
                // A list of tables: set in the file only.
            } else {
                out.insert(format!("OTPD_{}", path.join("_").to_uppercase()), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(defaults) = toml::Table::try_from(Config::default()) {
        walk(&defaults, &[], &mut out);
    }
    out
}

fn set_from_env(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut node = table;
    for key in parents {
        node = match node.get_mut(key) {
            Some(toml::Value::Table(inner)) => inner,
            _ => return Err("not a setting".into()),
        };
    }
    let value = match node.get(last) {
        Some(toml::Value::Integer(_)) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{raw:?} is not a whole number"))?,
        Some(toml::Value::Boolean(_)) => match raw.trim() {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err(format!("{raw:?} is not true or false")),
        },
        Some(toml::Value::Array(_)) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_owned()),
    };
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_safe() {
        let config = Config::load(None, env(&[]), &Overrides::default()).unwrap();
        assert_eq!(config, Config::default());
        let engine = config.engine_config();
        assert_eq!(engine.argon2.memory_kib, 19_456);
        assert_eq!(engine.lockout.pin_threshold, 5);
        assert_eq!(config.listen, "127.0.0.1:8080");
    }

    #[test]
    fn the_defaults_in_the_operations_guide_are_the_defaults() {
        let guide = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/OPERATIONS.md"),
        )
        .unwrap();
        let block = guide
            .split_once("The defaults:\n\n```toml\n")
            .and_then(|(_, rest)| rest.split_once("```"))
            .map(|(block, _)| block)
            .expect("docs/OPERATIONS.md has the defaults block");
        let documented: Vec<&str> = block
            .lines()
            .map(|l| {
                l.split_once(" #")
                    .map_or(l, |(setting, _)| setting)
                    .trim_end()
            })
            .collect();
        let actual = toml::to_string(&Config::default()).unwrap();
        let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
        assert_eq!(documented, actual, "update docs/OPERATIONS.md's defaults");
    }

    #[test]
    fn log_levels_are_levels_or_directives_and_nothing_else() {
        for good in ["info", "WARN", "otpd=debug,hyper=warn", "debug,sled=error"] {
            let config = Config::load(
                None,
                env(&[("OTPD_LOG_LEVEL", good)]),
                &Overrides::default(),
            );
            assert!(config.is_ok(), "{good}: {config:?}");
        }
        for bad in ["infoo", "", "verbose", "otpd=loud", "=info"] {
            let err = Config::load(None, env(&[("OTPD_LOG_LEVEL", bad)]), &Overrides::default())
                .unwrap_err();
            assert!(err.contains("log_level"), "{bad}: {err}");
        }
    }

    #[test]
    fn printing_redacts_inline_secrets_and_keeps_references() {
        let mut config = Config::default();
        config.delivery.email.password = "hunter2".into();
        config.delivery.push.auth_value = "env:PUSH_TOKEN".into();
        config.delivery.letter.auth_value = "Bearer print-house-secret".into();
        config.delivery.sms.push(SmsGatewayConfig {
            name: "gw".into(),
            url: "https://sms.example/send".into(),
            auth_header: "authorization".into(),
            auth_value: "Bearer sms-secret".into(),
            body: BodyFormat::Json,
            template: "{}".into(),
        });
        let text = toml::to_string(&config.redacted()).unwrap();
        for secret in ["hunter2", "print-house-secret", "sms-secret"] {
            assert!(!text.contains(secret), "{secret} printed:\n{text}");
        }
        assert!(text.contains("env:PUSH_TOKEN"));
        assert_eq!(text.matches("<redacted>").count(), 3, "{text}");
        assert_eq!(
            config.delivery.email.password, "hunter2",
            "the original is untouched"
        );
    }

    #[test]
    fn layers_apply_in_order_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otpd.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[lockout]\npin_threshold = 3\n[codes.login]\nlength = 8\nalphabet = \"digits\"\nlifetime_seconds = 120\nmax_attempts = 3\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("OTPD_LOCKOUT_PIN_THRESHOLD", "4"),
                ("OTPD_SERVER_MAX_CONNECTIONS", "7"),
                ("PATH", "/bin"),
            ]),
            &Overrides {
                listen: Some("127.0.0.1:9100".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.lockout.pin_threshold, 4, "env beats file");
        assert_eq!(config.server.max_connections, 7);
        assert_eq!(config.codes.login.length, 8, "file beats defaults");
        assert_eq!(config.listen, "127.0.0.1:9100", "flags beat all");
    }

    #[test]
    fn unknown_keys_are_errors_in_every_layer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otpd.toml");
        std::fs::write(&file, "[lockout]\npin_treshold = 3\n").unwrap();
        let err = Config::load(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
        assert!(err.contains("pin_treshold"), "{err}");
        let err = Config::load(
            None,
            env(&[("OTPD_LOCKOUT_PIN_TRESHOLD", "3")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("OTPD_LOCKOUT_PIN_TRESHOLD"), "{err}");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::load(
            None,
            env(&[("OTPD_SERVER_MAX_CONNECTIONS", "lots")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("OTPD_SERVER_MAX_CONNECTIONS"), "{err}");
        let err = Config::load(
            None,
            env(&[("OTPD_LOCKOUT_CODE_THRESHOLD", "1000")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("lockout.code_threshold"), "{err}");
        let err = Config::load(
            None,
            env(&[("OTPD_LISTEN", "nowhere")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("listen"), "{err}");
        let err = Config::load(
            None,
            env(&[("OTPD_ENVIRONMENT", "staging")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.contains("staging"), "{err}");
    }

    #[test]
    fn lists_come_from_comma_separated_variables() {
        let config = Config::load(
            None,
            env(&[("OTPD_PIN_BLOCKLIST", "1357, 2468")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.pin.blocklist, vec!["1357", "2468"]);
    }

    #[test]
    fn every_setting_has_an_environment_variable() {
        let vars = Config::environment_variables();
        let names: Vec<&str> = vars.iter().map(|(v, _)| v.as_str()).collect();
        for expected in [
            "OTPD_LISTEN",
            "OTPD_DATA_DIR",
            "OTPD_CODES_LOGIN_LIFETIME_SECONDS",
            "OTPD_ARGON2_MEMORY_KIB",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
    }
}
