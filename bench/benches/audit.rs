//! Disk taken by the audit trail per login, measured: N whole login flows
//! (PIN, code issued, message reported sent, code verified) through the
//! engine on sled, with the events they write counted and sized.
//!
//! `cargo bench -p otp-bench --bench audit` (N = 100,000 flows over 10,000
//! accounts; `OTP_BENCH_AUDIT=N` to change)
//!
//! Two figures: the audit trail's own bytes (each stored event and its
//! per-account index entry, as encoded), which grow for as long as
//! `audit.retention_days` keeps them; and sled's whole growth over the
//! run, which also holds the flows' challenges and messages (space sled
//! reuses as they expire) and sled's own slack.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bench::{PIN, drain_outbox, engine_config, identity, open_with};
use engine::audit::EventKind;
use engine::*;

/// As in the otpd binary: the figures are those of the allocator it runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: u64 = 10_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("audit: bench");
        return;
    }
    let flows: u64 = std::env::var("OTP_BENCH_AUDIT")
        .map(|v| v.parse().unwrap())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let (engine, clock) = open_with(engine_config(&dir.path().join("data"))).unwrap();
    // A cheap PIN hash: this measures bytes, not Argon2.
    let cheap = Argon2Params {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let phc = hash_pin_phc(&Pin::new(PIN), cheap, [5; 16]).unwrap();
    let mut phones = Vec::new();
    for n in 0..ACCOUNTS {
        let phone = loadtest::seed::phone(n);
        let imported = engine
            .import(ImportAccount {
                identity: identity(n).unwrap(),
                phone: Some(Phone::parse(&phone).unwrap()),
                email: None,
                birth_date: None,
                postal_address: None,
                pin_hash: Some(phc.clone()),
                state: ImportState::Active,
            })
            .unwrap();
        if n % 1_000 == 999 {
            imported.wait().unwrap();
        }
        phones.push(LoginId::Phone(Phone::parse(&phone).unwrap()));
    }
    engine.flush().unwrap();
    let seq_before = engine.audit_durable_seq();
    let disk_before = engine.disk_bytes().unwrap();

    let started = Instant::now();
    for i in 0..flows {
        let login = &phones[usize::try_from(i % ACCOUNTS).unwrap()];
        let outcome = engine
            .login(login, &Pin::new(PIN), Some(Channel::Sms), None, None)
            .unwrap();
        let LoginOutcome::CodeSent(issued) = outcome.peek().clone() else {
            panic!("login {i}: {:?}", outcome.peek());
        };
        let verified = engine
            .verify(issued.challenge_id, Purpose::Login, &issued.code)
            .unwrap();
        assert!(matches!(verified.peek(), Verification::Approved(_)));
        if i % 1_000 == 999 {
            verified.wait().unwrap();
            drain_outbox(&engine).unwrap();
            // Time moves on, as over a day: codes expire, limits refill.
            clock.advance(Duration::from_secs(60));
            engine.sweep_expired().unwrap();
        }
    }
    drain_outbox(&engine).unwrap();
    engine.flush().unwrap();
    let elapsed = started.elapsed();
    let disk_after = engine.disk_bytes().unwrap();

    // The events the flows wrote, by kind, with their stored size.
    let mut kinds: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut events = 0u64;
    let mut bytes = 0u64;
    engine
        .scan_events(seq_before + 1, &mut |r| {
            let size = engine::internals::stored_audit_size(&r);
            let entry = kinds.entry(r.event.kind.as_str()).or_default();
            entry.0 += 1;
            entry.1 += size;
            events += 1;
            bytes += size;
            Ok(true)
        })
        .unwrap();
    let per_flow = |x: u64| x as f64 / flows as f64;
    let per_million = |x: u64| per_flow(x) * 1e6 / 1e9;
    println!(
        "audit/{flows} login flows over {ACCOUNTS} accounts in {elapsed:.1?} \
         (login, code issued, message sent, code verified)"
    );
    println!(
        "  events written       {events:>10}  {:>8.2} per login",
        per_flow(events)
    );
    for (kind, (n, size)) in &kinds {
        println!(
            "    {kind:22} {n:>8}  {:>6.0} bytes each",
            *size as f64 / *n as f64
        );
    }
    let checkpoints = kinds.get(EventKind::Checkpoint.as_str()).map_or(0, |k| k.0);
    println!(
        "    (checkpoints: one per {} events)",
        events / checkpoints.max(1)
    );
    println!(
        "  audit bytes (events + account index) {:>8.0} per login = {:.2} GB per million logins",
        per_flow(bytes),
        per_million(bytes)
    );
    println!(
        "  sled growth over the run             {:>8.0} per login = {:.2} GB per million logins \
         (includes the flows' challenges and messages)",
        per_flow(disk_after.saturating_sub(disk_before)),
        per_million(disk_after.saturating_sub(disk_before))
    );
}
