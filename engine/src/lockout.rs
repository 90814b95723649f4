//! Failure counting and lockout: a small state machine kept per account.
//!
//! PIN failures and code failures are counted apart. Issuing codes never
//! touches the counters; a success resets only its own counter.
//!
//! ```text
//!            PinFailed / CodeFailed below the threshold: that counter + 1
//!            PinSucceeded: pin = 0      CodeSucceeded: code = 0, escalation = 0
//!                ┌─────┐
//!                │     ▼
//!        ┌────────────────────┐   a counter reaches its threshold   ┌──────────────────────┐
//!        │ Open               │ ──────────────────────────────────▶ │ Locked               │
//!        │ {pin: n, code: m}  │ ──────────── AdminLock ───────────▶ │ {reason, since,      │
//!        │                    │ ◀──── AdminUnlock (also PIN reset) ─ │  until: None | time} │
//!        └────────────────────┘ ◀──── a temporary lock's `until`  ── └──────────────────────┘
//!                 ▲                   passes: counters = 0              │  ▲ any attempt:
//!                 │                                                     └──┘ Refused, not counted
//! ```
//!
//! In the default mode a lock lasts until a privileged unlock, as the Digital
//! Mobile Key does. In temporary mode each lock lasts `first · 2^(k-1)` for
//! the k-th lock since the last completed login, capped at `max`.

use std::time::Duration;

use crate::clock::Timestamp;

/// When accounts lock and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive wrong PINs that lock the account.
    pub pin_threshold: u32,
    /// Consecutive wrong codes that lock the account.
    pub code_threshold: u32,
    /// How long a lock lasts.
    pub mode: LockMode,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            pin_threshold: 5,
            code_threshold: 10,
            mode: LockMode::UntilUnlocked,
        }
    }
}

/// How long a lock caused by failures lasts. Administrative locks always last until unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Until a privileged unlock or PIN reset.
    UntilUnlocked,
    /// For `first`, doubling with each further lock, never longer than `max`.
    Temporary {
        /// Length of the first lock.
        first: Duration,
        /// Longest lock.
        max: Duration,
    },
}

/// Why an account is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockReason {
    /// Too many wrong PINs.
    PinFailures,
    /// Too many wrong codes.
    CodeFailures,
    /// Locked by a privileged client, with its stated reason.
    Administrative(String),
}

/// A lock in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Why.
    pub reason: LockReason,
    /// Since when.
    pub since: Timestamp,
    /// Until when; `None` until a privileged unlock.
    pub until: Option<Timestamp>,
}

/// Something that happened to an account's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A wrong PIN was presented.
    PinFailed,
    /// The right PIN was presented.
    PinSucceeded,
    /// A wrong code was presented.
    CodeFailed,
    /// The right code was presented.
    CodeSucceeded,
    /// A privileged client locked the account.
    AdminLock(String),
    /// A privileged client unlocked the account or reset its PIN.
    AdminUnlock,
}

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A failure was counted; this many more lock the account.
    Counted {
        /// Failures left before the lock.
        remaining: u32,
    },
    /// The account is locked from now on.
    LockedNow,
    /// The account was already locked; nothing was counted or reset.
    Refused,
    /// A success reset its counter.
    Reset,
    /// The account was unlocked and its counters cleared.
    Unlocked,
}

/// The lockout state of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lockout {
    pub(crate) pin_failures: u32,
    pub(crate) code_failures: u32,
    /// Boxed: few accounts are locked, and every account holds this.
    pub(crate) lock: Option<Box<Lock>>,
    /// Locks since the last completed login, for escalating temporary locks.
    pub(crate) lockouts: u32,
}

impl Lockout {
    /// The lock in force at `now`, if any.
    pub fn lock_at(&self, now: Timestamp) -> Option<&Lock> {
        self.lock
            .as_deref()
            .filter(|lock| lock.until.is_none_or(|until| now < until))
    }

    /// Consecutive wrong PINs counted.
    pub fn pin_failures(&self) -> u32 {
        self.pin_failures
    }

    /// Consecutive wrong codes counted.
    pub fn code_failures(&self) -> u32 {
        self.code_failures
    }

    /// Applies `event` at `now` under `policy`.
    pub fn apply(&mut self, event: Event, now: Timestamp, policy: &LockoutPolicy) -> Transition {
        if self.lock.is_some() && self.lock_at(now).is_none() {
            // A temporary lock has run out: the account opens with clean counters.
            self.lock = None;
            self.pin_failures = 0;
            self.code_failures = 0;
        }
        match event {
            Event::AdminUnlock => {
                *self = Lockout::default();
                Transition::Unlocked
            }
            Event::AdminLock(reason) => {
                self.lock = Some(Box::new(Lock {
                    reason: LockReason::Administrative(reason),
                    since: now,
                    until: None,
                }));
                Transition::LockedNow
            }
            _ if self.lock.is_some() => Transition::Refused,
            Event::PinSucceeded => {
                self.pin_failures = 0;
                Transition::Reset
            }
            Event::CodeSucceeded => {
                self.code_failures = 0;
                self.lockouts = 0;
                Transition::Reset
            }
            Event::PinFailed => {
                self.pin_failures = self.pin_failures.saturating_add(1);
                self.count(
                    self.pin_failures,
                    policy.pin_threshold,
                    LockReason::PinFailures,
                    now,
                    policy,
                )
            }
            Event::CodeFailed => {
                self.code_failures = self.code_failures.saturating_add(1);
                self.count(
                    self.code_failures,
                    policy.code_threshold,
                    LockReason::CodeFailures,
                    now,
                    policy,
                )
            }
        }
    }

    fn count(
        &mut self,
        failures: u32,
        threshold: u32,
        reason: LockReason,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> Transition {
        if failures < threshold {
            return Transition::Counted {
                remaining: threshold - failures,
            };
        }
        self.lockouts = self.lockouts.saturating_add(1);
        let until = match policy.mode {
            LockMode::UntilUnlocked => None,
            LockMode::Temporary { first, max } => {
                let doublings = self.lockouts.saturating_sub(1).min(32);
                let wait = first.saturating_mul(1u32 << doublings.min(31)).min(max);
                Some(now.plus(wait))
            }
        };
        self.lock = Some(Box::new(Lock {
            reason,
            since: now,
            until,
        }));
        Transition::LockedNow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    fn temporary() -> LockoutPolicy {
        LockoutPolicy {
            pin_threshold: 3,
            code_threshold: 2,
            mode: LockMode::Temporary {
                first: Duration::from_secs(60),
                max: Duration::from_secs(200),
            },
        }
    }

    fn fail_pins(state: &mut Lockout, n: u32, policy: &LockoutPolicy) -> Transition {
        let mut last = Transition::Reset;
        for _ in 0..n {
            last = state.apply(Event::PinFailed, T0, policy);
        }
        last
    }

    #[test]
    fn open_pin_failure_below_threshold_is_counted() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        assert_eq!(
            s.apply(Event::PinFailed, T0, &policy),
            Transition::Counted { remaining: 4 }
        );
        assert_eq!(s.pin_failures(), 1);
        assert_eq!(s.code_failures(), 0, "counters are separate");
    }

    #[test]
    fn open_code_failure_below_threshold_is_counted() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        assert_eq!(
            s.apply(Event::CodeFailed, T0, &policy),
            Transition::Counted { remaining: 9 }
        );
        assert_eq!(s.code_failures(), 1);
        assert_eq!(s.pin_failures(), 0);
    }

    #[test]
    fn open_pin_failure_at_threshold_locks_until_unlocked_by_default() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        assert_eq!(fail_pins(&mut s, 5, &policy), Transition::LockedNow);
        let lock = s
            .lock_at(T0.plus(Duration::from_secs(86_400 * 365)))
            .unwrap();
        assert_eq!(lock.reason, LockReason::PinFailures);
        assert_eq!(lock.until, None);
    }

    #[test]
    fn open_code_failure_at_threshold_locks() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        for _ in 0..9 {
            s.apply(Event::CodeFailed, T0, &policy);
        }
        assert!(s.lock_at(T0).is_none());
        assert_eq!(
            s.apply(Event::CodeFailed, T0, &policy),
            Transition::LockedNow
        );
        assert_eq!(s.lock_at(T0).unwrap().reason, LockReason::CodeFailures);
    }

    #[test]
    fn open_pin_success_resets_only_the_pin_counter() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        s.apply(Event::PinFailed, T0, &policy);
        s.apply(Event::CodeFailed, T0, &policy);
        assert_eq!(s.apply(Event::PinSucceeded, T0, &policy), Transition::Reset);
        assert_eq!((s.pin_failures(), s.code_failures()), (0, 1));
    }

    #[test]
    fn open_code_success_resets_only_the_code_counter() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        s.apply(Event::PinFailed, T0, &policy);
        s.apply(Event::CodeFailed, T0, &policy);
        assert_eq!(
            s.apply(Event::CodeSucceeded, T0, &policy),
            Transition::Reset
        );
        assert_eq!((s.pin_failures(), s.code_failures()), (1, 0));
    }

    #[test]
    fn open_admin_lock_locks_with_the_reason_given() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        assert_eq!(
            s.apply(Event::AdminLock("lost phone".into()), T0, &policy),
            Transition::LockedNow
        );
        assert_eq!(
            s.lock_at(T0).unwrap().reason,
            LockReason::Administrative("lost phone".into())
        );
    }

    #[test]
    fn locked_attempts_are_refused_and_not_counted_even_when_right() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        fail_pins(&mut s, 5, &policy);
        let before = s.clone();
        for event in [
            Event::PinFailed,
            Event::PinSucceeded,
            Event::CodeFailed,
            Event::CodeSucceeded,
        ] {
            assert_eq!(s.apply(event, T0, &policy), Transition::Refused);
        }
        assert_eq!(s, before);
    }

    #[test]
    fn locked_admin_unlock_opens_with_clean_counters() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        fail_pins(&mut s, 5, &policy);
        s.apply(Event::CodeFailed, T0, &policy);
        assert_eq!(
            s.apply(Event::AdminUnlock, T0, &policy),
            Transition::Unlocked
        );
        assert_eq!(s, Lockout::default());
    }

    #[test]
    fn locked_admin_lock_replaces_the_reason() {
        let policy = LockoutPolicy::default();
        let mut s = Lockout::default();
        fail_pins(&mut s, 5, &policy);
        s.apply(Event::AdminLock("fraud review".into()), T0, &policy);
        assert_eq!(
            s.lock_at(T0).unwrap().reason,
            LockReason::Administrative("fraud review".into())
        );
    }

    #[test]
    fn temporary_lock_ends_by_itself_with_clean_counters() {
        let policy = temporary();
        let mut s = Lockout::default();
        assert_eq!(fail_pins(&mut s, 3, &policy), Transition::LockedNow);
        let until = s.lock_at(T0).unwrap().until.unwrap();
        assert_eq!(until, T0.plus(Duration::from_secs(60)));
        assert!(s.lock_at(until.plus(Duration::from_millis(0))).is_none());
        assert_eq!(
            s.apply(Event::PinFailed, until, &policy),
            Transition::Counted { remaining: 2 },
            "counting starts afresh after the lock"
        );
    }

    #[test]
    fn temporary_locks_escalate_and_are_capped() {
        let policy = temporary();
        let mut s = Lockout::default();
        let mut now = T0;
        let mut waits = Vec::new();
        for _ in 0..4 {
            for _ in 0..3 {
                s.apply(Event::PinFailed, now, &policy);
            }
            let until = s.lock_at(now).unwrap().until.unwrap();
            waits.push(now.until(until).as_secs());
            now = until;
        }
        assert_eq!(waits, vec![60, 120, 200, 200]);
    }

    #[test]
    fn completed_login_resets_the_escalation() {
        let policy = temporary();
        let mut s = Lockout::default();
        fail_pins(&mut s, 3, &policy);
        let after = s.lock_at(T0).unwrap().until.unwrap();
        s.apply(Event::CodeSucceeded, after, &policy);
        for _ in 0..3 {
            s.apply(Event::PinFailed, after, &policy);
        }
        assert_eq!(
            s.lock_at(after).unwrap().until,
            Some(after.plus(Duration::from_secs(60)))
        );
    }

    #[test]
    fn admin_lock_in_temporary_mode_never_ends_by_itself() {
        let policy = temporary();
        let mut s = Lockout::default();
        s.apply(Event::AdminLock("court order".into()), T0, &policy);
        assert!(
            s.lock_at(T0.plus(Duration::from_secs(10 * 365 * 86_400)))
                .is_some()
        );
    }
}
