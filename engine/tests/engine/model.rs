//! A model test: random operations, restarts included, against a plain in-memory model.
//!
//! Each seed drives the engine and a small model of the rules (one phone per
//! account, PIN and code counters, locks, supersede, expiry) side by side and
//! checks every answer and every account's visible state agree.

use std::time::Duration;

use engine::*;

use crate::helpers::*;

const PHONES: [&str; 4] = [
    "+351910000001",
    "+351910000002",
    "+351910000003",
    "+351910000004",
];
const PINS: [&str; 3] = ["4821", "9135", "7302"];
const PIN_THRESHOLD: u32 = 5;
const CODE_THRESHOLD: u32 = 10;
const ATTEMPTS: u32 = 3;
const LIFETIME_MS: u64 = 300_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum MState {
    Live,
    Consumed,
    Superseded,
}

#[derive(Debug)]
struct MChallenge {
    id: ChallengeId,
    code: Code,
    expires: u64,
    attempts: u32,
    state: MState,
}

#[derive(Debug)]
struct MAccount {
    id: AccountId,
    phone: usize,
    pin: &'static str,
    cancelled: bool,
    locked: bool,
    pin_failures: u32,
    code_failures: u32,
    challenges: Vec<MChallenge>,
}

struct Model {
    accounts: Vec<MAccount>,
    next_identity: u32,
}

impl Model {
    fn live_with_phone(&mut self, phone: usize) -> Option<&mut MAccount> {
        self.accounts
            .iter_mut()
            .find(|a| a.phone == phone && !a.cancelled)
    }
}

/// A tiny deterministic generator (SplitMix64), so a failing seed replays exactly.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn run(backend: Backend, seed: u64, steps: usize) {
    let mut t = TestEngine::on(backend, |_| {});
    let mut m = Model {
        accounts: Vec::new(),
        next_identity: 0,
    };
    let mut dice = Dice(seed);
    for step in 0..steps {
        let now = t.clock.now().0;
        let op = dice.below(100);
        let context = format!("{backend:?} seed {seed} step {step} op {op}");
        match op {
            0..=9 => {
                let phone = dice.below(PHONES.len());
                let pin = PINS[dice.below(PINS.len())];
                m.next_identity += 1;
                let identity = Identity::parse(
                    IdentityKind::CivilId,
                    &format!("{:08}", m.next_identity),
                    None,
                )
                .unwrap();
                let result = t
                    .engine
                    .register(NewAccount {
                        identity,
                        phone: Some(Phone::parse(PHONES[phone]).unwrap()),
                        email: None,
                        pin: Pin::new(pin),
                        birth_date: None,
                        postal_address: None,
                        dm: None,
                        locale: None,
                    })
                    .and_then(Durable::wait);
                if m.live_with_phone(phone).is_some() {
                    assert!(
                        matches!(result, Err(EngineError::Conflict { field: "phone" })),
                        "{context}"
                    );
                } else {
                    m.accounts.push(MAccount {
                        id: result.expect(&context).id,
                        phone,
                        pin,
                        cancelled: false,
                        locked: false,
                        pin_failures: 0,
                        code_failures: 0,
                        challenges: Vec::new(),
                    });
                }
            }
            10..=34 => {
                let phone = dice.below(PHONES.len());
                let pin = PINS[dice.below(PINS.len())];
                let outcome = t.login(PHONES[phone], pin);
                let Some(a) = m.live_with_phone(phone) else {
                    assert!(
                        matches!(outcome, LoginOutcome::InvalidCredentials),
                        "{context}"
                    );
                    continue;
                };
                if a.locked {
                    assert!(matches!(outcome, LoginOutcome::Locked), "{context}");
                } else if pin != a.pin {
                    a.pin_failures += 1;
                    if a.pin_failures >= PIN_THRESHOLD {
                        a.locked = true;
                        assert!(matches!(outcome, LoginOutcome::Locked), "{context}");
                    } else {
                        assert!(
                            matches!(outcome, LoginOutcome::InvalidCredentials),
                            "{context}"
                        );
                    }
                } else {
                    let LoginOutcome::CodeSent(issued) = outcome else {
                        panic!("{context}: expected a code, got {outcome:?}")
                    };
                    a.pin_failures = 0;
                    for c in a.challenges.iter_mut().filter(|c| c.state == MState::Live) {
                        c.state = MState::Superseded;
                    }
                    a.challenges.push(MChallenge {
                        id: issued.challenge_id,
                        code: issued.code,
                        expires: now + LIFETIME_MS,
                        attempts: 0,
                        state: MState::Live,
                    });
                }
            }
            35..=69 => {
                let candidates: Vec<(usize, usize)> = m
                    .accounts
                    .iter()
                    .enumerate()
                    .flat_map(|(ai, a)| (0..a.challenges.len()).map(move |ci| (ai, ci)))
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                let (ai, ci) = candidates[dice.below(candidates.len())];
                let right = dice.below(2) == 0;
                let a = &mut m.accounts[ai];
                let c = &mut a.challenges[ci];
                let typed = if right {
                    c.code.expose().to_owned()
                } else {
                    wrong(&c.code)
                };
                let got = t.verify(c.id, &typed);
                let expected = if a.locked {
                    Verification::Locked
                } else if c.state == MState::Consumed {
                    Verification::AlreadyUsed
                } else if c.state == MState::Superseded {
                    Verification::Superseded
                } else if now >= c.expires {
                    Verification::Expired
                } else if c.attempts >= ATTEMPTS {
                    Verification::Exhausted
                } else if right {
                    c.state = MState::Consumed;
                    a.code_failures = 0;
                    Verification::Approved(Approval {
                        account_id: a.id,
                        identity: t.view(a.id).identity,
                        purpose: Purpose::Login,
                        state: AccountState::Active,
                        channel: Channel::Sms,
                        document: None,
                    })
                } else {
                    c.attempts += 1;
                    a.code_failures += 1;
                    if a.code_failures >= CODE_THRESHOLD {
                        a.locked = true;
                        Verification::Locked
                    } else {
                        Verification::WrongCode {
                            attempts_remaining: ATTEMPTS - c.attempts,
                        }
                    }
                };
                assert_eq!(got, expected, "{context}");
            }
            70..=75 => {
                let Some(a) = pick(&mut m, &mut dice) else {
                    continue;
                };
                let result = t.engine.lock(a.id, "model").and_then(Durable::wait);
                if a.cancelled {
                    assert!(
                        matches!(result, Err(EngineError::WrongState(_))),
                        "{context}"
                    );
                } else {
                    result.expect(&context);
                    a.locked = true;
                }
            }
            76..=81 => {
                let Some(a) = pick(&mut m, &mut dice) else {
                    continue;
                };
                let reset = dice.below(2) == 0;
                let new_pin = PINS[dice.below(PINS.len())];
                let result = if reset {
                    t.engine
                        .reset_pin(a.id, &Pin::new(new_pin))
                        .and_then(Durable::wait)
                } else {
                    t.engine.unlock(a.id).and_then(Durable::wait)
                };
                if a.cancelled {
                    assert!(
                        matches!(result, Err(EngineError::WrongState(_))),
                        "{context}"
                    );
                } else {
                    result.expect(&context);
                    a.locked = false;
                    a.pin_failures = 0;
                    a.code_failures = 0;
                    if reset {
                        a.pin = new_pin;
                    }
                    for c in a.challenges.iter_mut().filter(|c| c.state == MState::Live) {
                        c.state = MState::Superseded;
                    }
                }
            }
            82..=84 => {
                let Some(a) = pick(&mut m, &mut dice) else {
                    continue;
                };
                let result = t.engine.cancel(a.id).and_then(Durable::wait);
                if a.cancelled {
                    assert!(
                        matches!(result, Err(EngineError::WrongState(_))),
                        "{context}"
                    );
                } else {
                    result.expect(&context);
                    a.cancelled = true;
                    a.challenges.clear();
                }
            }
            85..=91 => {
                let secs = [1, 30, 120, 299, 301][dice.below(5)];
                t.clock.advance(Duration::from_secs(secs));
            }
            92..=94 => {
                // The sender delivers everything due. A "sent" report is
                // kept in memory until the challenge's next write: nothing
                // the model predicts may depend on it.
                for message in t.engine.outbox_due(1_000) {
                    drop(t.engine.outbox_report(message.id, SendResult::Sent));
                }
            }
            _ if backend == Backend::Memory && dice.below(2) == 0 => {
                // Killed: what the engine writes on its way out is lost
                // (every operation above waited for its own write).
                t = t.crash();
                let now = t.clock.now().0;
                for a in &mut m.accounts {
                    a.challenges.retain(|c| now < c.expires);
                }
            }
            _ => {
                t = t.restart();
                let now = t.clock.now().0;
                for a in &mut m.accounts {
                    a.challenges.retain(|c| now < c.expires);
                }
            }
        }
        for a in &m.accounts {
            let view = t.view(a.id);
            let state_ok = match view.state {
                AccountState::Cancelled { .. } => a.cancelled,
                AccountState::Locked(_) => a.locked && !a.cancelled,
                AccountState::Active => !a.locked && !a.cancelled,
                AccountState::PendingActivation => false,
            };
            assert!(
                state_ok,
                "{context}: engine says {:?}, model {a:?}",
                view.state
            );
            assert_eq!(
                (view.pin_failures, view.code_failures),
                (a.pin_failures, a.code_failures),
                "{context}: counters of {a:?}"
            );
        }
    }
}

fn pick<'m>(m: &'m mut Model, dice: &mut Dice) -> Option<&'m mut MAccount> {
    if m.accounts.is_empty() {
        return None;
    }
    let i = dice.below(m.accounts.len());
    m.accounts.get_mut(i)
}

fn seeds() -> u64 {
    std::env::var("OTPD_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

#[test]
fn random_operations_with_restarts_agree_with_the_model() {
    for seed in 0..seeds() {
        run(Backend::Sled, seed, 300);
    }
}

/// The same operations on the in-memory store: both implementations of the
/// storage port must give what the model predicts, restarts included.
#[test]
fn the_in_memory_store_keeps_the_same_contract_under_the_model() {
    for seed in 0..seeds() {
        run(Backend::Memory, seed, 300);
    }
}
