//! PIN policy and Argon2id hashing.
//!
//! PINs are only ever stored as Argon2id PHC strings. A login for an unknown
//! account verifies against a dummy hash made with the same parameters, so
//! the time taken does not reveal whether the account exists.

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::Rng;
use subtle::ConstantTimeEq;

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
///
/// Every run hashes into a block of Argon2 memory taken from a pool and put
/// back afterwards, so the ~19 MiB a run needs at the default cost is
/// allocated once per concurrent run, not once per run. Allocated per run
/// (as the crate's convenience methods do), the blocks fragmented the
/// allocator's heaps on tokio's blocking threads and resident memory grew
/// by up to ~20 MB per login, never returned (issue #14).
pub(crate) struct PinHasher {
    argon2: Argon2<'static>,
    dummy: PinHash,
    runs: std::sync::atomic::AtomicU64,
    memory: MemoryPool,
}

impl std::fmt::Debug for PinHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinHasher").finish_non_exhaustive()
    }
}

/// The largest Argon2 memory an imported PIN hash may ask for (256 MiB):
/// each verification of it takes that much for its duration.
const MAX_IMPORTED_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes an imported hash may ask for.
const MAX_IMPORTED_ITERATIONS: u32 = 16;
/// The most lanes an imported hash may ask for.
const MAX_IMPORTED_LANES: u32 = 16;

impl PinHasher {
    pub(crate) fn new(params: Argon2Params, rng: &mut ChaCha20Rng) -> Result<Self> {
        let argon2 = argon2id(params)?;
        let blocks = argon2.params().block_count();
        let mut hasher = Self {
            argon2,
            dummy: PinHash::from_phc_unchecked(String::new()),
            runs: std::sync::atomic::AtomicU64::new(0),
            memory: MemoryPool::new(blocks),
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
        let failed = |e: &dyn std::fmt::Display| EngineError::Internal(format!("argon2 hash: {e}"));
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.memory
            .with(self.argon2.params().block_count(), |memory| {
                self.argon2.hash_password_into_with_memory(
                    pin.expose().as_bytes(),
                    &salt,
                    &mut output,
                    memory,
                )
            })
            .map_err(|e| failed(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params()).map_err(|e| failed(&e))?,
            salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
            hash: Some(Output::new(&output).map_err(|e| failed(&e))?),
        };
        Ok(PinHash::from_phc_unchecked(phc.to_string()))
    }

    /// True when `pin` matches `hash`. The hash's own parameters are used, so
    /// imported hashes with other costs still verify.
    pub(crate) fn verify(&self, pin: &Pin, hash: &PinHash) -> bool {
        self.count();
        let Ok(parsed) = PasswordHash::new(hash.as_phc()) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let blocks = params.block_count();
        let argon2 = Argon2::new(algorithm, version, params);
        let mut output = [0u8; Output::MAX_LENGTH];
        let Some(output) = output.get_mut(..expected.len()) else {
            return false;
        };
        let hashed = self.memory.with(blocks, |memory| {
            argon2.hash_password_into_with_memory(pin.expose().as_bytes(), salt, output, memory)
        });
        hashed.is_ok() && bool::from(output.ct_eq(expected.as_bytes()))
    }

    fn count(&self) {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hashes and verifications so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Spends the time of one verification on nothing, for unknown accounts.
    pub(crate) fn verify_dummy(&self, pin: &Pin) {
        let _ = self.verify(pin, &self.dummy);
    }

    /// Argon2 memory buffers allocated for reuse, and their size in bytes.
    pub(crate) fn pooled_memory(&self) -> (usize, u64) {
        self.memory.held()
    }

    /// Checks that `phc` is an Argon2 PHC string this engine can verify,
    /// at a cost it can afford (memory, passes and lanes are capped).
    pub(crate) fn parse_imported(phc: &str) -> Result<PinHash> {
        let parsed = PasswordHash::new(phc)
            .map_err(|e| EngineError::invalid("pin_hash", format!("not a PHC string: {e}")))?;
        let algorithm = parsed.algorithm.as_str();
        if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d")
            || parsed.hash.is_none()
            || parsed.salt.is_none()
        {
            return Err(EngineError::invalid(
                "pin_hash",
                "must be an Argon2 PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)",
            ));
        }
        let params = Params::try_from(&parsed)
            .map_err(|e| EngineError::invalid("pin_hash", format!("bad Argon2 parameters: {e}")))?;
        if params.m_cost() > MAX_IMPORTED_MEMORY_KIB
            || params.t_cost() > MAX_IMPORTED_ITERATIONS
            || params.p_cost() > MAX_IMPORTED_LANES
        {
            return Err(EngineError::invalid(
                "pin_hash",
                format!(
                    "Argon2 cost too high: at most m={MAX_IMPORTED_MEMORY_KIB}, \
                     t={MAX_IMPORTED_ITERATIONS}, p={MAX_IMPORTED_LANES}"
                ),
            ));
        }
        Ok(PinHash::from_phc_unchecked(phc.to_owned()))
    }
}

/// Argon2 memory blocks for reuse. A run takes one at least as large as it
/// needs (or allocates one) and gives it back; the pool keeps the blocks
/// of the configured size, so it holds as many as ran at once at the most
/// (bounded by `server.argon2_workers` in the server). A block sized for an
/// imported hash of another cost is used once and freed.
struct MemoryPool {
    /// Blocks per buffer at the configured cost.
    blocks: usize,
    idle: std::sync::Mutex<Vec<Box<[Block]>>>,
    /// Buffers of the configured size ever allocated.
    allocated: std::sync::atomic::AtomicUsize,
}

impl MemoryPool {
    fn new(blocks: usize) -> Self {
        Self {
            blocks,
            idle: std::sync::Mutex::new(Vec::new()),
            allocated: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<[Block]>>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` with a buffer of at least `blocks` blocks. Argon2 writes
    /// every block before it reads it, so a reused buffer needs no clearing.
    fn with<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        if blocks > self.blocks {
            let mut once = vec![Block::new(); blocks].into_boxed_slice();
            return work(&mut once);
        }
        let pooled = self.lock().pop();
        let mut buffer = pooled.unwrap_or_else(|| {
            self.allocated
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            vec![Block::new(); self.blocks].into_boxed_slice()
        });
        let result = work(&mut buffer[..blocks]);
        self.lock().push(buffer);
        result
    }

    /// Buffers allocated so far (all idle or in use) and their total bytes.
    fn held(&self) -> (usize, u64) {
        let n = self.allocated.load(std::sync::atomic::Ordering::Relaxed);
        (n, (n * self.blocks * Block::SIZE) as u64)
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
    fn hashes_match_the_crates_own_encoding_and_verify_both_ways() {
        let params = Argon2Params {
            memory_kib: 256,
            iterations: 2,
            parallelism: 1,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let ours = PinHasher::new(params, &mut rng).unwrap();
        let hash = ours.hash(&Pin::new("4821"), [5; 16]).unwrap();
        let theirs = hash_pin_phc(&Pin::new("4821"), params, [5; 16]).unwrap();
        assert_eq!(hash.as_phc(), theirs);
        use argon2::password_hash::PasswordVerifier;
        let crate_argon2 = argon2id(params).unwrap();
        assert!(crate_argon2.verify_password(b"4821", hash.as_phc()).is_ok());
        assert!(
            crate_argon2
                .verify_password(b"4822", hash.as_phc())
                .is_err()
        );
    }

    #[test]
    fn argon2_memory_is_reused_across_runs() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let hasher = PinHasher::new(Argon2Params::INSECURE_FOR_TESTS, &mut rng).unwrap();
        let hash = hasher.hash(&Pin::new("4821"), [7; 16]).unwrap();
        for _ in 0..20 {
            assert!(hasher.verify(&Pin::new("4821"), &hash));
            hasher.verify_dummy(&Pin::new("4821"));
        }
        assert_eq!(
            hasher.pooled_memory(),
            (1, 64 * 1024),
            "one run at a time: one buffer"
        );
        // A costlier imported hash gets a buffer of its own, used once.
        let bigger = hash_pin_phc(
            &Pin::new("4821"),
            Argon2Params {
                memory_kib: 512,
                iterations: 1,
                parallelism: 1,
            },
            [8; 16],
        )
        .unwrap();
        let imported = PinHasher::parse_imported(&bigger).unwrap();
        assert!(hasher.verify(&Pin::new("4821"), &imported));
        assert!(!hasher.verify(&Pin::new("4822"), &imported));
        assert_eq!(hasher.pooled_memory().0, 1);
    }

    #[test]
    fn concurrent_runs_hold_one_buffer_each_at_most() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let hasher = PinHasher::new(Argon2Params::INSECURE_FOR_TESTS, &mut rng).unwrap();
        let hash = hasher.hash(&Pin::new("4821"), [7; 16]).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        assert!(hasher.verify(&Pin::new("4821"), &hash));
                    }
                });
            }
        });
        let (buffers, _) = hasher.pooled_memory();
        assert!(
            (1..=4).contains(&buffers),
            "{buffers} buffers for 4 threads"
        );
    }

    #[test]
    fn imported_hashes_with_unaffordable_costs_are_refused() {
        for phc in [
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$8Q2Z3y2Qx0E5Yc4cQ6X3Yw",
            "$argon2id$v=19$m=19456,t=100,p=1$c2FsdHNhbHQ$8Q2Z3y2Qx0E5Yc4cQ6X3Yw",
        ] {
            match PinHasher::parse_imported(phc) {
                Err(EngineError::Invalid { field, message }) => {
                    assert_eq!(field, "pin_hash");
                    assert!(message.contains("cost"), "{message}");
                }
                other => panic!("{phc}: {other:?}"),
            }
        }
    }

    #[test]
    fn imported_hashes_must_be_argon2() {
        assert!(PinHasher::parse_imported("plaintext").is_err());
        assert!(PinHasher::parse_imported("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(PinHasher::parse_imported("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ").is_err());
    }
}
