//! Settings of the signing keys and the attestations they sign.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Signed attestations (`[signing]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// The `iss` claim of every token: usually the service's public URL.
    pub issuer: String,
    /// How long a token holds after it is issued (`exp - iat`), 10 to 3600 seconds.
    pub token_ttl_seconds: u64,
    /// How long a replaced key stays published, so tokens it signed still
    /// verify: at least the token lifetime.
    pub key_overlap_seconds: u64,
    /// The key ring's directory. Empty: `<data_dir>/signing`.
    pub key_dir: String,
    /// The active private key from outside the data directory: `env:NAME`
    /// or `file:PATH`, holding a PKCS#8 Ed25519 key (PEM, or base64 DER).
    /// Empty: keys are made and kept in `key_dir`. With a key given here,
    /// rotation is changing it and restarting; the key it replaces stays
    /// published for the overlap.
    pub key: String,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            issuer: "otpd".into(),
            token_ttl_seconds: 300,
            key_overlap_seconds: 7 * 24 * 3600,
            key_dir: String::new(),
            key: String::new(),
        }
    }
}

impl SigningConfig {
    /// The key ring's directory.
    pub fn key_dir(&self, data_dir: &Path) -> PathBuf {
        if self.key_dir.is_empty() {
            data_dir.join("signing")
        } else {
            PathBuf::from(&self.key_dir)
        }
    }

    /// A token's lifetime.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_seconds)
    }

    /// How long a replaced key stays published.
    pub fn overlap(&self) -> Duration {
        Duration::from_secs(self.key_overlap_seconds)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        let issuer = self.issuer.trim();
        if issuer.is_empty() || issuer.len() > 256 || issuer.chars().any(char::is_control) {
            return Err("signing.issuer must be 1 to 256 printable characters".into());
        }
        if !(10..=3600).contains(&self.token_ttl_seconds) {
            return Err("signing.token_ttl_seconds must be 10 to 3600".into());
        }
        if self.key_overlap_seconds < self.token_ttl_seconds {
            return Err(
                "signing.key_overlap_seconds must be at least signing.token_ttl_seconds, \
                 or tokens signed just before a rotation stop verifying before they expire"
                    .into(),
            );
        }
        if !(self.key.is_empty() || self.key.starts_with("env:") || self.key.starts_with("file:")) {
            return Err(
                "signing.key must be env:NAME or file:PATH (a private key is never written inline)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_hold_and_each_bound_is_named() {
        SigningConfig::default().validate().unwrap();
        type Change = fn(&mut SigningConfig);
        let cases: [(Change, &str); 5] = [
            (|c| c.issuer = " ".into(), "signing.issuer"),
            (|c| c.token_ttl_seconds = 5, "signing.token_ttl_seconds"),
            (|c| c.token_ttl_seconds = 3601, "signing.token_ttl_seconds"),
            (
                |c| c.key_overlap_seconds = 60,
                "signing.key_overlap_seconds",
            ),
            (|c| c.key = "MC4CAQAwBQYDK2VwBCIEI".into(), "signing.key"),
        ];
        for (change, named) in cases {
            let mut config = SigningConfig::default();
            change(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.starts_with(named), "{error}");
        }
    }
}
