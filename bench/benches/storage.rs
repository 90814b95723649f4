//! sled and the group commit: a record write without a flush, with its own
//! flush, and through the group commit with 1, 16 and 64 concurrent writers;
//! then recovery (opening an engine, in a fresh process each time, as after a
//! restart, with the deployment's default sled cache) with 100,000 and
//! 1,000,000 live challenges.
//!
//! `cargo bench -p otp-bench --bench storage`
//! (`OTP_BENCH_RECOVERY=100000` limits recovery to the sizes listed.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench::{open_in_child, populate};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use engine::StoreConfig;
use engine::internals::{RawStore, RecordKind, Samples};

/// As in the otpd binary: the figures are those of the allocator it runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn store() -> (tempfile::TempDir, RawStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RawStore::open(&StoreConfig {
        path: Some(dir.path().join("data")),
        ..StoreConfig::default()
    })
    .unwrap();
    (dir, store)
}

/// A fresh 17-byte key like the engine's (prefix and 16-byte id).
fn key(n: u64) -> [u8; 17] {
    let mut key = [b'a'; 17];
    key[1..9].copy_from_slice(&n.to_be_bytes());
    key
}

fn writes(c: &mut Criterion) {
    let record = Samples::new().encode(RecordKind::Account);
    let counter = AtomicU64::new(0);
    let next = || key(counter.fetch_add(1, Ordering::Relaxed));
    let mut group = c.benchmark_group("sled_write");
    group.throughput(Throughput::Elements(1));
    let (_dir, raw) = store();
    group.bench_function("no_flush", |b| {
        b.iter(|| raw.put(&next(), &record).unwrap())
    });
    group.bench_function("own_flush", |b| {
        b.iter(|| raw.put_flushed(&next(), &record).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("group_commit");
    group.throughput(Throughput::Elements(1));
    let raw = Arc::new(raw);
    for writers in [1u64, 16, 64] {
        group.bench_with_input(BenchmarkId::new("writers", writers), &writers, |b, &n| {
            b.iter_custom(|iters| {
                let each = iters.div_ceil(n);
                let started = Instant::now();
                std::thread::scope(|scope| {
                    for _ in 0..n {
                        scope.spawn(|| {
                            for _ in 0..each {
                                raw.put_durable(&next(), &record).unwrap();
                            }
                        });
                    }
                });
                // Every writer did `each` writes: scale to the `iters` asked for.
                started.elapsed().mul_f64(iters as f64 / (each * n) as f64)
            })
        });
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let sizes: Vec<u64> = std::env::var("OTP_BENCH_RECOVERY")
        .ok()
        .map(|v| v.split(',').map(|n| n.trim().parse().unwrap()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000]);
    let mut group = c.benchmark_group("recovery");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(20));
    for live in sizes {
        let started = Instant::now();
        let populated = populate(live, true).unwrap();
        eprintln!(
            "recovery: {live} accounts with a live challenge each written in {:.1?}",
            started.elapsed()
        );
        group.throughput(Throughput::Elements(live));
        group.bench_with_input(
            BenchmarkId::new("live_challenges", live),
            &live,
            |b, &live| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let opened = open_in_child(
                                &populated.path(),
                                StoreConfig::default().cache_bytes,
                            )
                            .unwrap();
                            assert_eq!((opened.accounts, opened.challenges), (live, live));
                            opened.recovery
                        })
                        .sum()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, writes, recovery);

fn main() {
    if bench::run_as_child() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
