//! Argon2id, which dominates every PIN operation: hash (registration, PIN
//! change) and verify (login) at the default parameters and at a cheaper and
//! a costlier setting. One hash per iteration on one thread, so the
//! throughput criterion prints is PIN operations per second per core.
//!
//! `crate-verify/...` times the argon2 crate alone (`verify_password`, which
//! allocates and zeroes its memory on every call) beside otpd's hasher
//! (which reuses one block of memory per worker), in the same run: the raw
//! rate a login rate is compared with (docs/CAPACITY.md).
//!
//! `cargo bench -p otp-bench --bench argon2`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::internals::Pins;
use engine::{Argon2Params, Pin, hash_pin_phc, seeded_rng};

/// As in the otpd binary: the figures are those of the allocator it runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The parameter sets compared, named as in `docs/CAPACITY.md`.
const SETTINGS: [(&str, Argon2Params); 3] = [
    (
        "m9216_t1",
        Argon2Params {
            memory_kib: 9_216,
            iterations: 1,
            parallelism: 1,
        },
    ),
    (
        "m19456_t2_default",
        Argon2Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        },
    ),
    (
        "m65536_t3",
        Argon2Params {
            memory_kib: 65_536,
            iterations: 3,
            parallelism: 1,
        },
    ),
];

fn argon2(c: &mut Criterion) {
    assert_eq!(
        SETTINGS[1].1,
        Argon2Params::default(),
        "the default is benchmarked"
    );
    let mut group = c.benchmark_group("argon2id");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let mut rng = seeded_rng([1; 32]);
    let pin = Pin::new("4821");
    for (name, params) in SETTINGS {
        let pins = Pins::new(params, &mut rng).unwrap();
        let hash = pins.hash(&pin, [9; 16]).unwrap();
        group.bench_function(format!("hash/{name}"), |b| {
            b.iter(|| pins.hash(black_box(&pin), [9; 16]).unwrap())
        });
        group.bench_function(format!("verify/{name}"), |b| {
            b.iter(|| assert!(pins.verify(black_box(&pin), &hash)))
        });
        let raw = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(
                params.memory_kib,
                params.iterations,
                params.parallelism,
                None,
            )
            .unwrap(),
        );
        let phc = hash_pin_phc(&pin, params, [9; 16]).unwrap();
        group.bench_function(format!("crate-verify/{name}"), |b| {
            b.iter(|| {
                use argon2::password_hash::PasswordVerifier;
                assert!(
                    raw.verify_password(black_box(b"4821"), phc.as_str())
                        .is_ok()
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, argon2);
criterion_main!(benches);
