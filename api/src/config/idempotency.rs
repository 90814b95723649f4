//! Settings of idempotency keys: how long they are kept, how many per client, and the largest answer kept.

use std::time::Duration;

use engine::IdempotencyPolicy;
use serde::{Deserialize, Serialize};

/// Idempotency keys (`[idempotency]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencyConfig {
    /// A key is forgotten this many hours after its first request (1 to 720).
    pub retention_hours: u64,
    /// Keys kept per client; past it the oldest is forgotten first.
    pub max_keys_per_client: u64,
    /// Answers larger than this are not kept: a retry is told so (409).
    pub max_answer_bytes: u64,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        let policy = IdempotencyPolicy::default();
        Self {
            retention_hours: policy.retention.as_secs() / 3600,
            max_keys_per_client: policy.max_keys_per_client as u64,
            max_answer_bytes: 8 * 1024,
        }
    }
}

impl IdempotencyConfig {
    /// The engine's part.
    pub fn policy(&self) -> IdempotencyPolicy {
        IdempotencyPolicy {
            retention: Duration::from_secs(self.retention_hours.saturating_mul(3600)),
            max_keys_per_client: usize::try_from(self.max_keys_per_client).unwrap_or(usize::MAX),
        }
    }

    /// Checks what the engine does not: the answer limit.
    pub fn validate(&self) -> Result<(), String> {
        if !(256..=1 << 20).contains(&self.max_answer_bytes) {
            return Err("idempotency.max_answer_bytes must be 256 to 1048576".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_engines_and_a_day() {
        let config = IdempotencyConfig::default();
        assert_eq!(config.policy(), IdempotencyPolicy::default());
        assert_eq!(config.retention_hours, 24);
        config.validate().unwrap();
        let tiny = IdempotencyConfig {
            max_answer_bytes: 10,
            ..config
        };
        assert!(tiny.validate().unwrap_err().contains("max_answer_bytes"));
    }
}
