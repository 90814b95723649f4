//! The raw Argon2 rate: the argon2 crate's own `verify_password` on N
//! threads at the server's cost, the ceiling a login rate is compared with
//! (each login costs one Argon2 verification).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::PasswordVerifier;
use argon2::{Algorithm, Argon2, Params, Version};
use engine::{Argon2Params, Pin, hash_pin_phc};

/// What to measure: the cost, how many threads, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Argon2Ceiling {
    /// The server's Argon2 cost.
    pub params: Argon2Params,
    /// Threads verifying at once (the server's cores).
    pub threads: usize,
    /// How long to measure.
    pub duration: Duration,
}

/// Verifications per second by the crate alone, as a plain program would
/// call it (each call allocates its own memory), on `threads` threads.
pub fn raw_verify_rate(ceiling: Argon2Ceiling) -> Result<f64, String> {
    let Argon2Params {
        memory_kib,
        iterations,
        parallelism,
    } = ceiling.params;
    let params = Params::new(memory_kib, iterations, parallelism, None)
        .map_err(|e| format!("argon2 parameters: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash =
        hash_pin_phc(&Pin::new("4821"), ceiling.params, [7; 16]).map_err(|e| e.to_string())?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + ceiling.duration;
    std::thread::scope(|scope| {
        for _ in 0..ceiling.threads.max(1) {
            let (argon2, hash, done) = (&argon2, &hash, Arc::clone(&done));
            scope.spawn(move || {
                while Instant::now() < end {
                    if argon2.verify_password(b"4821", hash.as_str()).is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_rate_is_measured_at_the_given_cost() {
        let rate = raw_verify_rate(Argon2Ceiling {
            params: Argon2Params::INSECURE_FOR_TESTS,
            threads: 2,
            duration: Duration::from_millis(50),
        })
        .unwrap();
        assert!(rate > 0.0);
    }
}
