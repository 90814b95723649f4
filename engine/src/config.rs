//! Engine configuration: a plain struct whose defaults are the safe production values.

use std::time::Duration;

use crate::code::CodePolicies;
use crate::error::{EngineError, Result};
use crate::idempotency::IdempotencyPolicy;
use crate::identity::DmPolicy;
use crate::limits::IssueLimitsConfig;
use crate::lockout::LockoutPolicy;
use crate::outbox::{NoticePolicy, OutboxPolicy};
use crate::pin::{Argon2Params, PinPolicy};
use crate::store::StoreConfig;
use crate::test_mode::TestMode;

/// Everything the engine can be told.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineConfig {
    /// What a PIN must look like.
    pub pin: PinPolicy,
    /// Argon2id cost.
    pub argon2: Argon2Params,
    /// When accounts lock.
    pub lockout: LockoutPolicy,
    /// Code shape, lifetime and attempts, per purpose.
    pub codes: CodePolicies,
    /// Least time between a code and its resend.
    pub resend_cooldown: ResendCooldown,
    /// Where data lives.
    pub store: StoreConfig,
    /// How the outbox retries.
    pub outbox: OutboxPolicy,
    /// How many codes may be sent, and where SMS may go.
    pub limits: IssueLimitsConfig,
    /// The audit trail's checkpoints and retention.
    pub audit: AuditPolicy,
    /// Which changes the citizen is told of.
    pub notices: NoticePolicy,
    /// How long idempotency keys are kept, and how many per client.
    pub idempotency: IdempotencyPolicy,
    /// Test destinations and whether test clients may exist (by default
    /// none and no).
    pub test_mode: TestMode,
    /// Which direct-message platforms handles may be on.
    pub dm: DmPolicy,
}

/// How the audit trail is signed and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPolicy {
    /// A signed checkpoint after at most this many events (1 to 100,000).
    pub checkpoint_every: u64,
    /// A signed checkpoint at least this often while events arrive.
    pub checkpoint_interval: Duration,
    /// Events older than this are pruned (the chain stays verifiable from
    /// the oldest checkpoint kept). `None` keeps everything.
    pub retention: Option<Duration>,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self {
            checkpoint_every: 1_000,
            checkpoint_interval: Duration::from_secs(60),
            retention: Some(Duration::from_secs(730 * 24 * 3600)),
        }
    }
}

/// The least time between issuing a code and resending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendCooldown(pub Duration);

impl Default for ResendCooldown {
    fn default() -> Self {
        Self(Duration::from_secs(30))
    }
}

impl EngineConfig {
    /// A configuration for tests: a temporary store and cheap Argon2.
    pub fn for_tests() -> Self {
        Self {
            argon2: Argon2Params::INSECURE_FOR_TESTS,
            store: StoreConfig::temporary(),
            limits: IssueLimitsConfig::off(),
            ..Self::default()
        }
    }

    /// Rejects settings that would make the engine unsafe or unusable.
    pub fn validate(&self) -> Result<()> {
        let pin = &self.pin;
        if pin.min_length < 4 || pin.min_length > pin.max_length || pin.max_length > 64 {
            return Err(EngineError::invalid(
                "pin",
                "lengths must satisfy 4 <= min_length <= max_length <= 64",
            ));
        }
        let lockout = &self.lockout;
        for (name, threshold) in [
            ("lockout.pin_threshold", lockout.pin_threshold),
            ("lockout.code_threshold", lockout.code_threshold),
        ] {
            // NIST SP 800-63B §5.2.2: no more than 100 consecutive failures.
            if !(1..=100).contains(&threshold) {
                return Err(EngineError::invalid(name, "must be 1 to 100"));
            }
        }
        if !(1..=100).contains(&self.outbox.max_attempts) {
            return Err(EngineError::invalid(
                "delivery.max_attempts",
                "must be 1 to 100",
            ));
        }
        self.limits.validate()?;
        self.dm.validate()?;
        if !(1..=100_000).contains(&self.audit.checkpoint_every) {
            return Err(EngineError::invalid(
                "audit.checkpoint_every",
                "must be 1 to 100000",
            ));
        }
        if self.audit.checkpoint_interval.is_zero() {
            return Err(EngineError::invalid(
                "audit.checkpoint_interval_seconds",
                "must be above 0",
            ));
        }
        self.idempotency.validate()?;
        self.codes.validate()?;
        self.test_mode.validate(&self.codes)
    }
}
