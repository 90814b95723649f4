//! One-time codes: their policies, uniform generation, and keyed hashing.
//!
//! A code is drawn from ChaCha20 with rejection sampling, so every symbol of
//! the alphabet is equally likely. Only `HMAC-SHA-256(key, challenge id || code)`
//! is kept; binding the challenge id means one code's hash says nothing
//! about another challenge.

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng;

use crate::error::{EngineError, Result};
use crate::secret::Code;
use crate::terms::{Channel, Purpose};

/// The symbols a code is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// `0-9`.
    Digits,
    /// Upper-case letters and digits without look-alikes (no 0/O, 1/I/L):
    /// easy to read off a printed letter and type back.
    Unambiguous,
}

impl Alphabet {
    fn symbols(self) -> &'static [u8] {
        match self {
            Alphabet::Digits => b"0123456789",
            Alphabet::Unambiguous => b"23456789ABCDEFGHJKMNPQRSTUVWXYZ",
        }
    }
}

/// How codes of one purpose are made and how long they live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePolicy {
    /// Number of symbols.
    pub length: usize,
    /// The symbols.
    pub alphabet: Alphabet,
    /// The longest a code may live; callers may ask for less, never more.
    pub lifetime: Duration,
    /// Wrong guesses allowed on one challenge before it is exhausted.
    pub max_attempts: u32,
}

impl CodePolicy {
    /// A numeric code policy.
    pub const fn digits(length: usize, lifetime: Duration, max_attempts: u32) -> Self {
        Self {
            length,
            alphabet: Alphabet::Digits,
            lifetime,
            max_attempts,
        }
    }

    /// Rejects policies that make weak or unusable codes.
    pub fn validate(&self, name: &'static str) -> Result<()> {
        if !(4..=32).contains(&self.length) {
            return Err(EngineError::invalid(name, "code length must be 4 to 32"));
        }
        if self.lifetime < Duration::from_secs(10) {
            return Err(EngineError::invalid(
                name,
                "code lifetime must be at least 10 s",
            ));
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err(EngineError::invalid(
                name,
                "attempts per code must be 1 to 100",
            ));
        }
        Ok(())
    }

    /// Bits of entropy in one code.
    pub fn entropy_bits(&self) -> f64 {
        self.length as f64 * (self.alphabet.symbols().len() as f64).log2()
    }

    /// Draws a fresh code, each symbol uniform over the alphabet.
    pub(crate) fn generate(&self, rng: &mut ChaCha20Rng) -> Code {
        let symbols = self.alphabet.symbols();
        let n = u32::try_from(symbols.len()).unwrap_or(u32::MAX);
        // Largest multiple of n that fits; draws at or above it are rejected.
        let zone = u32::MAX - (u32::MAX % n);
        let mut code = String::with_capacity(self.length);
        while code.len() < self.length {
            let draw = rng.next_u32();
            if draw < zone {
                code.push(char::from(symbols[(draw % n) as usize]));
            }
        }
        Code::new(code)
    }

    /// Normalises what a citizen typed (spacing, case) and checks its shape.
    pub(crate) fn normalise_input(&self, typed: &Code) -> Result<String> {
        let raw = typed.expose();
        if raw.len() > 64 {
            return Err(EngineError::invalid("code", "is too long"));
        }
        let cleaned: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let symbols = self.alphabet.symbols();
        if cleaned.len() != self.length || !cleaned.bytes().all(|b| symbols.contains(&b)) {
            let what = match self.alphabet {
                Alphabet::Digits => "digits",
                Alphabet::Unambiguous => "letters and digits",
            };
            return Err(EngineError::invalid(
                "code",
                format!("must be {} {what}", self.length),
            ));
        }
        Ok(cleaned)
    }
}

/// The code policy for every purpose and channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePolicies {
    /// Second factor at login.
    pub login: CodePolicy,
    /// Re-confirmation by an already authenticated citizen.
    pub step_up: CodePolicy,
    /// Activation of a pre-registered account by SMS.
    pub activation_sms: CodePolicy,
    /// Activation by email.
    pub activation_email: CodePolicy,
    /// Activation by postal letter, which takes days to arrive.
    pub activation_letter: CodePolicy,
    /// Proof of a new phone number or email address.
    pub contact_change: CodePolicy,
    /// Proof that someone controls a phone or email, with no account.
    pub destination: CodePolicy,
}

impl Default for CodePolicies {
    fn default() -> Self {
        const MINUTE: u64 = 60;
        Self {
            login: CodePolicy::digits(6, Duration::from_secs(5 * MINUTE), 3),
            step_up: CodePolicy::digits(6, Duration::from_secs(5 * MINUTE), 3),
            activation_sms: CodePolicy::digits(6, Duration::from_secs(10 * MINUTE), 3),
            activation_email: CodePolicy::digits(6, Duration::from_secs(24 * 60 * MINUTE), 3),
            activation_letter: CodePolicy {
                length: 10,
                alphabet: Alphabet::Unambiguous,
                lifetime: Duration::from_secs(30 * 24 * 60 * MINUTE),
                max_attempts: 5,
            },
            contact_change: CodePolicy::digits(6, Duration::from_secs(10 * MINUTE), 3),
            destination: CodePolicy::digits(6, Duration::from_secs(10 * MINUTE), 3),
        }
    }
}

impl CodePolicies {
    /// The policy for codes of `purpose` sent by `channel`.
    pub fn for_code(&self, purpose: Purpose, channel: Channel) -> &CodePolicy {
        match (purpose, channel) {
            (Purpose::Login, _) => &self.login,
            (Purpose::StepUp, _) => &self.step_up,
            (Purpose::Activation, Channel::Letter) => &self.activation_letter,
            (Purpose::Activation, Channel::Email) => &self.activation_email,
            (Purpose::Activation, _) => &self.activation_sms,
            (Purpose::ContactChange, _) => &self.contact_change,
            // A signature code is a login code bound to a document.
            (Purpose::Signature, _) => &self.login,
            (Purpose::Destination, _) => &self.destination,
        }
    }

    /// Validates every policy.
    ///
    /// Bounds from NIST SP 800-63B §5.1.3 (out-of-band codes: about 20 bits,
    /// a 6-digit code, and at most 10 minutes) and SP 800-63A §4.4.1.6
    /// (enrollment codes: 10 minutes by phone, 24 hours by email, 30 days
    /// by post).
    pub fn validate(&self) -> Result<()> {
        const MINUTE: u64 = 60;
        let bounds = [
            ("codes.login", &self.login, 10 * MINUTE),
            ("codes.step_up", &self.step_up, 10 * MINUTE),
            ("codes.contact_change", &self.contact_change, 10 * MINUTE),
            ("codes.destination", &self.destination, 10 * MINUTE),
            ("codes.activation_sms", &self.activation_sms, 10 * MINUTE),
            (
                "codes.activation_email",
                &self.activation_email,
                24 * 60 * MINUTE,
            ),
            (
                "codes.activation_letter",
                &self.activation_letter,
                30 * 24 * 60 * MINUTE,
            ),
        ];
        for (name, policy, max_lifetime) in bounds {
            policy.validate(name)?;
            if policy.lifetime > Duration::from_secs(max_lifetime) {
                return Err(EngineError::invalid(
                    name,
                    format!("code lifetime must be at most {max_lifetime} s"),
                ));
            }
            // log2(10^6) = 19.93: NIST counts six digits as its 20 bits.
            if policy.entropy_bits() < 19.9 {
                return Err(EngineError::invalid(
                    name,
                    "codes need about 20 bits of entropy (6 digits or more)",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn generated_codes_have_the_policy_shape() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let policies = CodePolicies::default();
        let login = policies.login.generate(&mut rng);
        assert_eq!(login.expose().len(), 6);
        assert!(login.expose().bytes().all(|b| b.is_ascii_digit()));
        let letter = policies.activation_letter.generate(&mut rng);
        assert_eq!(letter.expose().len(), 10);
        assert!(!letter.expose().contains(['0', 'O', '1', 'I', 'L']));
    }

    #[test]
    fn policies_outside_the_nist_bounds_are_refused() {
        assert!(CodePolicies::default().validate().is_ok());
        let mut p = CodePolicies::default();
        p.login.lifetime = Duration::from_secs(601);
        let e = p.validate().unwrap_err().to_string();
        assert!(
            e.contains("codes.login") && e.contains("at most 600 s"),
            "{e}"
        );
        let mut p = CodePolicies::default();
        p.step_up.length = 5;
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("codes.step_up") && e.contains("20 bits"), "{e}");
        let mut p = CodePolicies::default();
        p.activation_letter.lifetime = Duration::from_secs(31 * 86_400);
        assert!(p.validate().is_err());
    }

    #[test]
    fn every_symbol_is_drawn_about_equally_often() {
        // 31 symbols do not divide 2^32, so a modulo draw would be biased;
        // with rejection each count stays within 5% of the mean.
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let policy = CodePolicies::default().activation_letter;
        let mut counts = [0u32; 256];
        for _ in 0..31_000 {
            for b in policy.generate(&mut rng).expose().bytes() {
                counts[b as usize] += 1;
            }
        }
        let used: Vec<u32> = counts.iter().copied().filter(|&c| c > 0).collect();
        assert_eq!(used.len(), 31);
        let mean = 310_000.0 / 31.0;
        for c in used {
            assert!((f64::from(c) - mean).abs() < mean * 0.05, "{c} vs {mean}");
        }
    }

    #[test]
    fn typed_codes_are_normalised_and_shape_checked() {
        let policies = CodePolicies::default();
        assert_eq!(
            policies
                .login
                .normalise_input(&Code::new("123 456"))
                .unwrap(),
            "123456"
        );
        assert_eq!(
            policies
                .activation_letter
                .normalise_input(&Code::new("abcd-efgh-jk"))
                .unwrap(),
            "ABCDEFGHJK"
        );
        for bad in ["12345", "1234567", "12a456", "١٢٣٤٥٦", "12345\u{0}"] {
            assert!(
                policies.login.normalise_input(&Code::new(bad)).is_err(),
                "{bad:?}"
            );
        }
        let huge = "1".repeat(10_000);
        assert!(policies.login.normalise_input(&Code::new(huge)).is_err());
    }

    #[test]
    fn default_policies_are_valid_and_strong_enough() {
        let policies = CodePolicies::default();
        policies.validate().unwrap();
        assert!(policies.login.entropy_bits() >= 19.9);
        assert!(policies.activation_letter.entropy_bits() > 49.0);
        let weak = CodePolicy::digits(3, Duration::from_secs(60), 3);
        assert!(weak.validate("codes.login").is_err());
    }
}
