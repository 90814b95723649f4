//! Security policy settings: PINs, Argon2id, lockout and codes per purpose.

use std::time::Duration;

use engine::{Alphabet, Argon2Params, CodePolicies, CodePolicy, LockoutPolicy, PinPolicy};
use serde::{Deserialize, Serialize};

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
    /// The engine's policy.
    pub fn policy(&self) -> CodePolicy {
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
    /// Account-less verification of a phone or email (`/v1/destinations`, `/v2`).
    pub destination: CodeConfig,
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
            destination: (&c.destination).into(),
        }
    }
}
