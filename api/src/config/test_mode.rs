//! Test mode (`[test_mode]`): test destinations and their fixed codes, for
//! front-end teams running their suites against a real otpd without a
//! gateway. Refused in production, as test clients are.

use std::collections::BTreeMap;

use engine::TestMode;
use serde::{Deserialize, Serialize};

use super::Environment;

/// Test mode's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestModeConfig {
    /// Each test destination (a mobile number or an email address) and the
    /// code every message to it carries, e.g. `{ "+351910000000" =
    /// "123456", "dev@example.pt" = "654321" }`. Codes to these are never
    /// sent. Empty (the default) in production.
    pub destinations: BTreeMap<String, String>,
}

impl TestModeConfig {
    /// Refuses test destinations in production: a fixed code is a way into
    /// whichever account holds the destination.
    pub fn validate(&self, environment: Environment) -> Result<(), String> {
        if environment == Environment::Production && !self.destinations.is_empty() {
            return Err(
                "test_mode.destinations must be empty when environment = \"production\": \
                 their codes are fixed and never sent"
                    .into(),
            );
        }
        Ok(())
    }

    /// The engine's part: test clients are allowed anywhere but production.
    pub fn policy(&self, environment: Environment) -> TestMode {
        TestMode {
            clients_allowed: environment != Environment::Production,
            destinations: self.destinations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_has_no_test_destinations_and_no_test_clients() {
        let config = TestModeConfig {
            destinations: BTreeMap::from([("+351910000000".into(), "123456".into())]),
        };
        assert!(config.validate(Environment::Development).is_ok());
        let err = config.validate(Environment::Production).unwrap_err();
        assert!(err.contains("test_mode.destinations"), "{err}");
        assert!(!config.policy(Environment::Production).clients_allowed);
        assert!(
            TestModeConfig::default()
                .validate(Environment::Production)
                .is_ok()
        );
        assert!(
            TestModeConfig::default()
                .policy(Environment::Development)
                .clients_allowed
        );
    }
}
