//! Configuration: safe defaults, then a TOML file, then `OTPD_*` variables, then flags.
//!
//! Every layer rejects keys it does not know. The environment layer is
//! derived from the defaults themselves: each setting `a.b_c` is also
//! `OTPD_A_B_C`, so the two can never drift apart.

mod audit;
mod delivery;
mod idempotency;
mod layers;
mod limits;
mod policy;
mod redact;
mod server;
mod signing;
mod test_mode;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::{
    Argon2Params, CodePolicies, EngineConfig, LockMode, LockoutPolicy, PinPolicy, ResendCooldown,
    StoreConfig,
};
use serde::{Deserialize, Serialize};

pub use audit::{AuditConfig, NoticesConfig, SourceIp};
pub use delivery::{
    BodyFormat, DeliveryConfig, DmConfig, EmailConfig, LetterConfig, LetterMode, PushConfig,
    SmsGatewayConfig, SmtpTls,
};
pub use idempotency::IdempotencyConfig;
pub use limits::{CountryBudget, LimitsConfig, parse_proxies};
pub use policy::{
    AlphabetConfig, Argon2Config, CodeConfig, CodesConfig, LockModeConfig, LockoutConfig, PinConfig,
};
pub use server::{Backend, RedisSettings, ServerConfig, StoreSettings};
pub use signing::SigningConfig;
pub use test_mode::TestModeConfig;
pub use tls::{CertificateClient, CertificateMode, TlsConfig};

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
    /// A second address, for operators only: when set, `/livez`, `/readyz`,
    /// `/metrics` and `/v1/admin/*` are served there and no longer on
    /// `listen`, which keeps only what relying parties call. Empty: off.
    pub ops_listen: String,
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
    /// Signed attestations and their keys.
    pub signing: SigningConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Which changes the citizen is told of.
    pub notices: NoticesConfig,
    /// Idempotency keys: retention, the cap per client, the largest answer kept.
    pub idempotency: IdempotencyConfig,
    /// Test destinations with fixed codes (never in production).
    pub test_mode: TestModeConfig,
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
        return Err(
            "log_level: not a level (error, warn, info, debug, trace, off) \
                    or a list of target=level directives"
                .into(),
        );
    }
    Ok(())
}
impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            ops_listen: String::new(),
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
            signing: SigningConfig::default(),
            audit: AuditConfig::default(),
            notices: NoticesConfig::default(),
            idempotency: IdempotencyConfig::default(),
            test_mode: TestModeConfig::default(),
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
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| format!("internal: defaults do not serialise: {e}"))?;
        let variables = layers::env_variables(&defaults);
        let mut merged = defaults;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
            let table =
                layers::parse(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
            layers::merge(&mut merged, table);
            layers::check::<Config>(&merged)
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
        }
        for (name, value) in env {
            if !name.starts_with("OTPD_")
                || [ENV_CONFIG_FILE, ENV_CODE_KEY, ENV_ADMIN_KEY].contains(&name.as_str())
            {
                continue;
            }
            let Some(path) = variables.get(&name) else {
                return Err(format!(
                    "unknown environment variable {name} (see `otpd --help` and docs/OPERATIONS.md; \
                     a secret read through an env: reference needs a name not starting with OTPD_)"
                ));
            };
            layers::set_from_env(&mut merged, path, &value).map_err(|e| format!("{name}: {e}"))?;
        }
        let mut config: Config = layers::check(&merged)?;
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
        let listen = self.listen_addr()?;
        if let Some(ops) = self.ops_listen_addr()?
            && ops == listen
            && ops.port() != 0
        {
            return Err(format!(
                "ops_listen: {ops} is also `listen`; give the operators' listener an \
                 address of its own, or leave ops_listen empty to serve everything on listen"
            ));
        }
        check_log_level(&self.log_level)?;
        self.cluster_config()?;
        if self.server.max_connections == 0 {
            return Err("server.max_connections must be at least 1".into());
        }
        engine::Locale::parse(&self.delivery.default_locale)
            .map_err(|_| "delivery.default_locale must be pt or en".to_owned())?;
        self.limits.issue_limits()?;
        parse_proxies(&self.limits.trusted_proxies)?;
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
        self.server.tls.validate()?;
        self.signing.validate()?;
        self.idempotency.validate()?;
        self.test_mode.validate(self.environment)?;
        if !(0..=19).contains(&self.server.argon2_nice) {
            return Err("server.argon2_nice must be 0 to 19".into());
        }
        self.engine_config()
            .validate()
            .map_err(|e| format!("invalid setting {e}"))
    }

    /// A copy for printing: every inline secret (SMTP password, gateway,
    /// push, letter and direct-message relay credentials) replaced by `<redacted>`, and so are URL
    /// passwords and secret-looking query values in every URL setting;
    /// references (`env:NAME`, `file:/path`) kept, as they reveal nothing.
    pub fn redacted(&self) -> Config {
        let mut copy = self.clone();
        let delivery = &mut copy.delivery;
        for gateway in &mut delivery.sms {
            redact::secret(&mut gateway.auth_value);
            redact::url(&mut gateway.url);
        }
        redact::secret(&mut delivery.email.password);
        redact::secret(&mut delivery.push.auth_value);
        redact::url(&mut delivery.push.url);
        redact::secret(&mut delivery.letter.auth_value);
        redact::url(&mut delivery.letter.url);
        redact::secret(&mut delivery.dm.auth_value);
        redact::url(&mut delivery.dm.url);
        copy
    }

    /// The listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen
            .parse()
            .map_err(|_| "listen: not an address like 127.0.0.1:8080".to_owned())
    }

    /// The operators' listen address, if one is set.
    pub fn ops_listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        if self.ops_listen.trim().is_empty() {
            return Ok(None);
        }
        self.ops_listen.trim().parse().map(Some).map_err(|_| {
            "ops_listen: not an address like 127.0.0.1:9090 (or empty, for none)".to_owned()
        })
    }

    /// The cluster's settings when accounts live on one (`store.backend`).
    pub fn cluster_config(&self) -> Result<Option<engine::cluster::ClusterConfig>, String> {
        match self.store.backend {
            server::Backend::Sled => Ok(None),
            server::Backend::RedisCluster => self.store.redis.cluster_config().map(Some),
        }
    }

    /// The engine's part of the configuration. On a cluster whose settings
    /// do not resolve (see [`Config::cluster_config`]), the engine's
    /// `store.cluster` is `None`: callers that open a store check first.
    pub fn engine_config(&self) -> EngineConfig {
        let d = &self.delivery;
        EngineConfig {
            audit: self.audit.policy(),
            notices: self.notices.policy(),
            idempotency: self.idempotency.policy(),
            dm: d.dm.policy(),
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
                destination: self.codes.destination.policy(),
            },
            resend_cooldown: ResendCooldown(Duration::from_secs(self.resend_cooldown_seconds)),
            store: StoreConfig {
                path: Some(self.data_dir.join("store")),
                cache_bytes: self.store.cache_mb.saturating_mul(1 << 20),
                min_free_bytes: self.store.min_free_mb.saturating_mul(1 << 20),
                // validate() reports a bad one; `cluster_config` says why here.
                cluster: self.cluster_config().ok().flatten(),
            },
            // validate() reports a bad budget; here it only falls back.
            limits: self.limits.issue_limits().unwrap_or_default(),
            test_mode: self.test_mode.policy(self.environment),
        }
    }

    /// Every `OTPD_*` setting variable and its key, for `--help`.
    pub fn environment_variables() -> Vec<(String, String)> {
        let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
        layers::env_variables(&defaults)
            .into_iter()
            .map(|(var, path)| (var, path.join(".")))
            .collect()
    }
}

#[cfg(test)]
mod tests;
