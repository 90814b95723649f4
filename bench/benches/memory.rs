//! Resident memory per account and per live challenge, disk bytes per each,
//! and recovery time, measured rather than estimated: stores with N
//! accounts, and with N accounts each holding a live challenge, are opened
//! in fresh child processes that report their resident memory after recovery.
//!
//! `cargo bench -p otp-bench --bench memory` (N = 1,000,000; `OTP_BENCH_MEMORY=N` to change)
//!
//! `OTP_BENCH_STORES=DIR` keeps the stores in DIR and reuses them when they
//! are already there: two builds then open the very same records, side by
//! side (the record format must be one both builds read).
//!
//! sled's page cache is held at 1 MiB in the children so the figures are
//! the engine's own; a deployment adds its `store.cache_mb` on top.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bench::{Opened, open_in_child, populate, run_as_child};

/// As in the otpd binary: the figures are those of the allocator it runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if run_as_child() {
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` asks every benchmark binary for its names.
        println!("memory: bench");
        return;
    }
    let n: u64 = std::env::var("OTP_BENCH_MEMORY")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let kept = std::env::var_os("OTP_BENCH_STORES").map(std::path::PathBuf::from);
    // Held until the end: a store written for this run only is removed then.
    let mut written = Vec::new();
    let mut store = |name: &str, accounts: u64, challenges: bool| -> std::path::PathBuf {
        let Some(dir) = &kept else {
            let populated = populate(accounts, challenges).unwrap();
            let path = populated.path();
            written.push(populated);
            return path;
        };
        let path = dir.join(format!("{name}-{n}"));
        if !path.exists() {
            std::fs::create_dir_all(dir).unwrap();
            populate(accounts, challenges)
                .unwrap()
                .keep_at(&path)
                .unwrap();
        }
        path
    };
    let empty = store("empty", 0, false);
    let accounts = store("accounts", n, false);
    let both = store("both", n, true);
    eprintln!("memory: stores ready in {:.1?}", started.elapsed());

    let measure = |path: std::path::PathBuf, accounts, challenges| -> Opened {
        let opened = open_in_child(&path, 1 << 20).unwrap();
        assert_eq!((opened.accounts, opened.challenges), (accounts, challenges));
        opened
    };
    let e = measure(empty, 0, 0);
    let a = measure(accounts, n, 0);
    let b = measure(both, n, n);
    let per = |more: u64, less: u64| more.saturating_sub(less) as f64 / n as f64;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!("memory/{n}: resident after recovery, each store opened in a fresh process");
    for (what, o) in [
        ("empty store", e),
        ("accounts", a),
        ("accounts + one live challenge each", b),
    ] {
        println!(
            "  {what:36} {:>9.1} MiB resident ({:.1} MiB before open), {:>9.1} MiB on disk, recovered in {:.2?}",
            mib(o.rss_after),
            mib(o.rss_before),
            mib(o.disk),
            o.recovery
        );
    }
    println!(
        "  per account:        {:>7.0} bytes resident",
        per(a.rss_after, e.rss_after)
    );
    println!(
        "  per live challenge: {:>7.0} bytes resident",
        per(b.rss_after, a.rss_after)
    );
    println!(
        "  per account:        {:>7.0} bytes on disk",
        per(a.disk, e.disk)
    );
    println!(
        "  per live challenge: {:>7.0} bytes on disk",
        per(b.disk, a.disk)
    );
}
