//! The engine's hot paths in memory: codes, verify, issue, lockout, limiter
//! checks, the sender's question "what is due?" and the record codec. Argon2 and sled have their own benchmarks.
//!
//! `cargo bench -p otp-bench --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::{START, drain_outbox, open_engine, populate};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use engine::internals::{CodeKeys, RecordKind, Samples, generate_code};
use engine::{
    AccountId, ChallengeId, Channel, Code, CodeKey, CodePolicy, Engine, Event, KeyedLimit,
    LockMode, Lockout, LockoutPolicy, ManualClock, Purpose, Rate, SendResult, Verification,
    seeded_rng,
};
use otpd::signing::{Attester, KeyRing};

/// As in the otpd binary: the figures are those of the allocator it runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn codes(c: &mut Criterion) {
    let mut group = c.benchmark_group("code");
    group.throughput(Throughput::Elements(1));
    let policy = CodePolicy::digits(6, Duration::from_secs(300), 3);
    let mut rng = seeded_rng([1; 32]);
    group.bench_function("generate_6_digits", |b| {
        b.iter(|| generate_code(&policy, &mut rng))
    });
    let keys = CodeKeys::derive(&CodeKey::new([2; 32]));
    let id = ChallengeId::parse("bench", &"03".repeat(16)).unwrap();
    group.bench_function("keyed_hash", |b| {
        b.iter(|| keys.code_mac(black_box(id), black_box("123456")))
    });
    group.finish();
}

/// An engine holding 10,000 accounts, and the next account to use.
struct Fixture {
    engine: Engine,
    accounts: Vec<AccountId>,
    next: std::cell::Cell<usize>,
    _populated: bench::Populated,
    _clock: ManualClock,
}

impl Fixture {
    fn new() -> Fixture {
        let populated = populate(10_000, false).unwrap();
        let (engine, clock) = open_engine(&populated.path()).unwrap();
        Fixture {
            engine,
            accounts: populated.accounts.clone(),
            next: std::cell::Cell::new(0),
            _populated: populated,
            _clock: clock,
        }
    }

    fn account(&self) -> AccountId {
        let next = (self.next.get() + 1) % self.accounts.len();
        self.next.set(next);
        self.accounts[next]
    }

    /// A fresh step-up code for `account` (not waiting for it to be durable:
    /// setup time is not measured, but it bounds how long a benchmark runs).
    fn issue_to(&self, account: AccountId) -> (ChallengeId, Code) {
        let issued = self
            .engine
            .issue_step_up(account, Some(Channel::Sms), None, None)
            .unwrap();
        let issued = issued.peek();
        (issued.challenge_id, issued.code.clone())
    }

    fn tidy(&self) {
        if self.engine.stats().outbox > 5_000 {
            drain_outbox(&self.engine).unwrap();
        }
    }
}

fn wrong(code: &Code) -> Code {
    let flipped: String = code
        .expose()
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                if c == '9' { '0' } else { '9' }
            } else {
                c
            }
        })
        .collect();
    Code::new(flipped)
}

/// Times `iters` verifies of codes made by `prepare`, in rounds of 1,000:
/// each round's codes are issued and made durable first, untimed, so the
/// writer thread is idle when the verifies start, as it is between bursts.
fn timed_verifies(
    fx: &Fixture,
    iters: u64,
    approved: bool,
    attester: Option<&Attester>,
    prepare: impl Fn(&Fixture) -> (ChallengeId, Code),
) -> Duration {
    let mut spent = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let round = left.min(1_000);
        left -= round;
        fx.tidy();
        let codes: Vec<_> = (0..round).map(|_| prepare(fx)).collect();
        fx.engine.flush().unwrap();
        let mut outcomes = Vec::with_capacity(codes.len());
        for (id, code) in &codes {
            let started = Instant::now();
            let outcome = fx.engine.verify(*id, Purpose::StepUp, code).unwrap();
            // As the API answers an approval: with a signed attestation.
            if let (Some(attester), Verification::Approved(approval)) = (attester, outcome.peek()) {
                black_box(attester.attest(approval, "bench", "bench", START).unwrap());
            }
            spent += started.elapsed();
            outcomes.push(outcome);
        }
        for outcome in outcomes {
            assert_eq!(
                matches!(outcome.peek(), Verification::Approved(_)),
                approved
            );
        }
    }
    spent
}

/// Verify as the API calls it, timed up to its return: the change is in
/// memory and queued for the writer thread; waiting for the group commit is
/// the storage benchmark's subject.
fn verify(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    // Each verified code needs an issued one, untimed: keep the run short.
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("right_code", |b| {
        b.iter_custom(|iters| {
            timed_verifies(&fx, iters, true, None, |fx| fx.issue_to(fx.account()))
        })
    });
    // The same, plus the Ed25519 attestation every approval now carries.
    let keys = tempfile::tempdir().unwrap();
    let ring = KeyRing::open(keys.path(), Duration::from_secs(3600), START, None).unwrap();
    let attester = Attester::new(ring, "otpd".into(), Duration::from_secs(300));
    group.bench_function("right_code_attested", |b| {
        b.iter_custom(|iters| {
            timed_verifies(&fx, iters, true, Some(&attester), |fx| {
                fx.issue_to(fx.account())
            })
        })
    });
    group.bench_function("wrong_code", |b| {
        b.iter_custom(|iters| {
            timed_verifies(&fx, iters, false, None, |fx| {
                // A right code first clears the account's failure count, so
                // the wrong code is counted rather than refused by a lock.
                let account = fx.account();
                let (id, code) = fx.issue_to(account);
                drop(fx.engine.verify(id, Purpose::StepUp, &code).unwrap());
                let (id, code) = fx.issue_to(account);
                (id, wrong(&code))
            })
        })
    });
    let unknown: Vec<ChallengeId> = (0..256u32)
        .map(|n| ChallengeId::parse("bench", &format!("{n:032x}")).unwrap())
        .collect();
    let mut n = 0usize;
    group.bench_function("unknown_challenge", |b| {
        b.iter(|| {
            n = (n + 1) % unknown.len();
            let id = unknown[n];
            fx.engine
                .verify(id, Purpose::StepUp, &Code::new("123456"))
                .unwrap_err()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("issue");
    group.throughput(Throughput::Elements(1));
    group.bench_function("step_up_superseding", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                fx.tidy();
                let account = fx.account();
                let started = Instant::now();
                let issued = fx
                    .engine
                    .issue_step_up(account, Some(Channel::Sms), None, None)
                    .unwrap();
                spent += started.elapsed();
                drop(black_box(issued));
            }
            spent
        })
    });
    group.finish();
}

fn lockout(c: &mut Criterion) {
    let mut group = c.benchmark_group("lockout");
    group.throughput(Throughput::Elements(1));
    let policy = LockoutPolicy::default();
    group.bench_function("count_failure", |b| {
        b.iter_batched_ref(
            Lockout::default,
            |l| l.apply(Event::PinFailed, START, &policy),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("lock_at_threshold", |b| {
        b.iter_batched_ref(
            || {
                let mut l = Lockout::default();
                for _ in 1..policy.pin_threshold {
                    l.apply(Event::PinFailed, START, &policy);
                }
                l
            },
            |l| l.apply(Event::PinFailed, START, &policy),
            BatchSize::SmallInput,
        )
    });
    let temporary = LockoutPolicy {
        mode: LockMode::Temporary {
            first: Duration::from_secs(900),
            max: Duration::from_secs(86_400),
        },
        ..LockoutPolicy::default()
    };
    let mut locked = Lockout::default();
    for _ in 0..temporary.pin_threshold {
        locked.apply(Event::PinFailed, START, &temporary);
    }
    group.bench_function("refused_while_locked", |b| {
        b.iter(|| locked.clone().apply(Event::PinFailed, START, &temporary))
    });
    group.finish();
}

fn limiter(c: &mut Criterion) {
    let mut group = c.benchmark_group("limiter");
    group.throughput(Throughput::Elements(1));
    let clock = Arc::new(ManualClock::new(START));
    let open = KeyedLimit::<u128>::new(
        "bench",
        &[Rate::per_minute(u32::MAX / 2)],
        1_000_000,
        clock.clone(),
    );
    let mut key = 0u128;
    group.bench_function("keyed_hit", |b| {
        b.iter(|| {
            key = (key + 1) % 10_000;
            open.check(&key).unwrap()
        })
    });
    let shut = KeyedLimit::<u128>::new("bench", &[Rate::per_day(1)], 1_000_000, clock);
    shut.check(&7).unwrap();
    group.bench_function("keyed_refused", |b| b.iter(|| shut.check(&7).unwrap_err()));
    group.finish();
}

fn codec(c: &mut Criterion) {
    let samples = Samples::new();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    for kind in RecordKind::ALL {
        let bytes = samples.encode(kind);
        group.bench_function(format!("encode_{}", kind.name()), |b| {
            b.iter(|| samples.encode(black_box(kind)))
        });
        group.bench_function(format!("decode_{}", kind.name()), |b| {
            b.iter(|| Samples::decode(kind, black_box(&bytes)).unwrap())
        });
    }
    group.finish();
}

/// The sender asks "what is due?" each time a code is queued. Here 10,000
/// codes wait for a retry an hour away (a gateway outage) and one fresh
/// code is due: the answer should cost what it returns, not what waits.
fn outbox(c: &mut Criterion) {
    const WAITING: usize = 10_000;
    let populated = populate(WAITING as u64 + 10_000, false).unwrap();
    let (engine, _clock) = open_engine(&populated.path()).unwrap();
    let (waiting, fresh) = populated.accounts.split_at(WAITING);
    let mut issued = None;
    for account in waiting {
        issued = Some(
            engine
                .issue_step_up(*account, Some(Channel::Sms), None, None)
                .unwrap(),
        );
    }
    issued.unwrap().wait().unwrap();
    let mut last = None;
    for message in engine.outbox_due(WAITING) {
        let retry = SendResult::Retry {
            after: Some(Duration::from_secs(3600)),
            reason: "gateway down".into(),
        };
        last = Some(engine.outbox_report(message.id, retry).unwrap());
    }
    last.unwrap().wait().unwrap();
    assert_eq!(engine.stats().outbox, WAITING as u64);
    assert!(engine.outbox_due(64).is_empty());
    let mut group = c.benchmark_group("outbox");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("due_one_among_10k_waiting", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                next = (next + 1) % fresh.len();
                // Not waited for, as in `Fixture::issue_to`: untimed set-up.
                drop(
                    engine
                        .issue_step_up(fresh[next], Some(Channel::Sms), None, None)
                        .unwrap(),
                );
                let started = Instant::now();
                let due = engine.outbox_due(64);
                spent += started.elapsed();
                assert_eq!(due.len(), 1);
                for message in due {
                    drop(engine.outbox_report(message.id, SendResult::Sent).unwrap());
                }
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, codes, verify, outbox, lockout, limiter, codec);
criterion_main!(benches);
