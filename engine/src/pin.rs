//! PIN policy and Argon2id hashing.
//!
//! PINs are only ever stored as Argon2id PHC strings. A login for an unknown
//! account verifies against a dummy hash made with the same parameters, so
//! the time taken does not reveal whether the account exists.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng;

use crate::error::{EngineError, Result};
use crate::secret::{Pin, PinHash};

/// What a PIN must look like. All of it is configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinPolicy {
    /// Fewest characters.
    pub min_length: usize,
    /// Most characters.
    pub max_length: usize,
    /// Only ASCII digits 0-9 (the default, as the citizen's PIN is numeric).
    pub digits_only: bool,
    /// Refuse one character repeated (`0000`) and straight runs (`1234`, `9876`).
    pub reject_trivial: bool,
    /// PINs refused outright, for being the first ones an attacker tries.
    pub blocklist: Vec<String>,
}

impl Default for PinPolicy {
    fn default() -> Self {
        Self {
            min_length: 4,
            max_length: 8,
            digits_only: true,
            reject_trivial: true,
            blocklist: [
                "0000", "1111", "1234", "1212", "1004", "2000", "2580", "6969", "1122", "4321",
                "123456", "654321", "121212", "123123", "112233", "159753", "147258", "696969",
                "12345678", "87654321",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl PinPolicy {
    /// Checks `pin` against the policy; the error names the `field`.
    pub fn check(&self, field: &'static str, pin: &Pin) -> Result<()> {
        let pin = pin.expose();
        let length = pin.chars().count();
        if length < self.min_length || length > self.max_length {
            return Err(EngineError::invalid(
                field,
                format!(
                    "must be {} to {} characters long",
                    self.min_length, self.max_length
                ),
            ));
        }
        if self.digits_only && !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EngineError::invalid(
                field,
                "must contain only the digits 0-9",
            ));
        }
        if pin.chars().any(char::is_control) {
            return Err(EngineError::invalid(
                field,
                "must not contain control characters",
            ));
        }
        if self.blocklist.iter().any(|b| b == pin) || (self.reject_trivial && is_trivial(pin)) {
            return Err(EngineError::invalid(
                field,
                "is too easy to guess; avoid repeated digits and runs like 1234",
            ));
        }
        Ok(())
    }
}

fn is_trivial(pin: &str) -> bool {
    let bytes = pin.as_bytes();
    if bytes.len() < 2 {
        return false;
    }
    let steps: Vec<i16> = bytes
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    steps.iter().all(|&s| s == 0) || steps.iter().all(|&s| s == 1) || steps.iter().all(|&s| s == -1)
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommended minimum for Argon2id: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// Deliberately weak parameters for tests; never for real PINs.
    pub const INSECURE_FOR_TESTS: Argon2Params = Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

/// An Argon2id PHC string for `pin` at `params`, for bulk imports from
/// another system or seeding test accounts. `salt` must be random.
pub fn hash_pin_phc(pin: &Pin, params: Argon2Params, salt: [u8; 16]) -> Result<String> {
    argon2id(params)?
        .hash_password_with_salt(pin.expose().as_bytes(), &salt)
        .map(|phc| phc.to_string())
        .map_err(|e| EngineError::Internal(format!("argon2 hash: {e}")))
}

/// Argon2id (version 0x13) at `params`; bad parameters are an `argon2` field error.
fn argon2id(params: Argon2Params) -> Result<Argon2<'static>> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|e| EngineError::invalid("argon2", e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes and verifies PINs with the configured parameters.
pub(crate) struct PinHasher {
    argon2: Argon2<'static>,
    dummy: PinHash,
    runs: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PinHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinHasher").finish_non_exhaustive()
    }
}

impl PinHasher {
    pub(crate) fn new(params: Argon2Params, rng: &mut ChaCha20Rng) -> Result<Self> {
        let argon2 = argon2id(params)?;
        let mut hasher = Self {
            argon2,
            dummy: PinHash::from_phc_unchecked(String::new()),
            runs: std::sync::atomic::AtomicU64::new(0),
        };
        let mut filler = [0u8; 16];
        rng.fill_bytes(&mut filler);
        let dummy_pin = Pin::new(
            filler
                .iter()
                .map(|b| char::from(b'0' + b % 10))
                .collect::<String>(),
        );
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        hasher.dummy = hasher.hash(&dummy_pin, salt)?;
        Ok(hasher)
    }

    /// Hashes `pin` with `salt`, which must be fresh and random.
    pub(crate) fn hash(&self, pin: &Pin, salt: [u8; 16]) -> Result<PinHash> {
        self.count();
        let phc = self
            .argon2
            .hash_password_with_salt(pin.expose().as_bytes(), &salt)
            .map_err(|e| EngineError::Internal(format!("argon2 hash: {e}")))?;
        Ok(PinHash::from_phc_unchecked(phc.to_string()))
    }

    /// True when `pin` matches `hash`. The hash's own parameters are used, so
    /// imported hashes with other costs still verify.
    pub(crate) fn verify(&self, pin: &Pin, hash: &PinHash) -> bool {
        self.count();
        self.argon2
            .verify_password(pin.expose().as_bytes(), hash.as_phc())
            .is_ok()
    }

    /// Spends the time of one verification on nothing, for unknown accounts.
    fn count(&self) {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hashes and verifications so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn verify_dummy(&self, pin: &Pin) {
        let _ = self.verify(pin, &self.dummy);
    }

    /// Checks that `phc` is an Argon2 PHC string this engine can verify.
    pub(crate) fn parse_imported(phc: &str) -> Result<PinHash> {
        let parsed = argon2::password_hash::phc::PasswordHash::new(phc)
            .map_err(|e| EngineError::invalid("pin_hash", format!("not a PHC string: {e}")))?;
        let algorithm = parsed.algorithm.as_str();
        if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d") || parsed.hash.is_none() {
            return Err(EngineError::invalid(
                "pin_hash",
                "must be an Argon2 PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)",
            ));
        }
        Ok(PinHash::from_phc_unchecked(phc.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn check(pin: &str) -> Result<()> {
        PinPolicy::default().check("pin", &Pin::new(pin))
    }

    #[test]
    fn default_policy_accepts_four_to_eight_digits() {
        assert!(check("4821").is_ok());
        assert!(check("48213907").is_ok());
        assert!(check("482").is_err());
        assert!(check("482139071").is_err());
    }

    #[test]
    fn default_policy_refuses_letters_unicode_digits_and_nul() {
        for bad in ["48a1", "٤٨٢١", "48\u{0}1", " 4821"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn trivial_and_blocklisted_pins_are_refused() {
        for bad in [
            "0000", "7777", "1234", "3456", "9876", "123456", "1212", "2580",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check("1357").is_ok());
    }

    #[test]
    fn policy_is_configuration() {
        let policy = PinPolicy {
            min_length: 6,
            max_length: 12,
            digits_only: false,
            reject_trivial: false,
            blocklist: vec!["secret1".into()],
        };
        assert!(policy.check("pin", &Pin::new("abc-123")).is_ok());
        assert!(policy.check("pin", &Pin::new("111111")).is_ok());
        assert!(policy.check("pin", &Pin::new("secret1")).is_err());
        assert!(policy.check("pin", &Pin::new("4821")).is_err());
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify_only_the_right_pin() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let hasher = PinHasher::new(Argon2Params::INSECURE_FOR_TESTS, &mut rng).unwrap();
        let hash = hasher.hash(&Pin::new("4821"), [1; 16]).unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!hash.as_phc().contains("4821"));
        assert!(hasher.verify(&Pin::new("4821"), &hash));
        assert!(!hasher.verify(&Pin::new("4822"), &hash));
        let again = hasher.hash(&Pin::new("4821"), [2; 16]).unwrap();
        assert_ne!(hash, again, "each hash has its own salt");
    }

    #[test]
    fn imported_hashes_with_other_parameters_verify() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let other = PinHasher::new(
            Argon2Params {
                memory_kib: 128,
                iterations: 2,
                parallelism: 1,
            },
            &mut rng,
        )
        .unwrap();
        let phc = other.hash(&Pin::new("4821"), [3; 16]).unwrap();
        let imported = PinHasher::parse_imported(phc.as_phc()).unwrap();
        let ours = PinHasher::new(Argon2Params::INSECURE_FOR_TESTS, &mut rng).unwrap();
        assert!(ours.verify(&Pin::new("4821"), &imported));
    }

    #[test]
    fn imported_hashes_must_be_argon2() {
        assert!(PinHasher::parse_imported("plaintext").is_err());
        assert!(PinHasher::parse_imported("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(PinHasher::parse_imported("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ").is_err());
    }
}
