//! Rate primitives: a [`Rate`], the [`Limited`] refusal, and keyed and
//! global GCRA limiters over governor, driven by the engine's clock, with a
//! cap on the keys a limiter holds (see the module above).

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::error::EngineError;

/// At most `count` events per `per`; a count of 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed in a burst, and per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// `count` per minute.
    pub const fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `count` per hour.
    pub const fn per_hour(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(3600),
        }
    }

    /// `count` per day.
    pub const fn per_day(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(86_400),
        }
    }

    /// No limit.
    pub const OFF: Rate = Rate {
        count: 0,
        per: Duration::from_secs(1),
    };

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.count)?;
        let interval = (self.per / self.count).max(Duration::from_nanos(1));
        Quota::with_period(interval).map(|q| q.allow_burst(burst))
    }
}

/// A refusal by a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Which limit, machine-readable (e.g. `account_issue_rate`).
    pub reason: &'static str,
    /// The limit's rate.
    pub rate: Rate,
    /// When a retry can succeed.
    pub retry_after: Duration,
}

impl From<Limited> for EngineError {
    fn from(l: Limited) -> Self {
        EngineError::RateLimited {
            reason: l.reason,
            limit: l.rate.count,
            per: l.rate.per,
            retry_after: l.retry_after,
        }
    }
}

/// The engine's clock as governor sees it: the monotonic reading.
#[derive(Debug, Clone)]
struct LimiterClock(Arc<dyn Clock>);

impl GovernorClock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.monotonic()
    }
}

/// The refusal a limiter's "not until" answer amounts to.
fn refusal(
    reason: &'static str,
    rate: Rate,
    clock: &LimiterClock,
    not_until: &governor::NotUntil<Duration>,
) -> Limited {
    Limited {
        reason,
        rate,
        retry_after: not_until.wait_time_from(clock.now()),
    }
}

/// Keyed state with a cap: unseen keys share one bucket when full.
struct BoundedStore<K: Hash + Eq + Clone> {
    keys: DashMapStateStore<K>,
    overflow: InMemoryState,
    max_keys: usize,
    overflowed: Arc<AtomicU64>,
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> std::result::Result<T, E>
    where
        F: Fn(Option<Nanos>) -> std::result::Result<(T, Nanos), E>,
    {
        if !self.keys.contains_key(key) && self.keys.len() >= self.max_keys {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        self.keys.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.keys.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        self.keys.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

type Keyed<K> = RateLimiter<K, BoundedStore<K>, LimiterClock, NoOpMiddleware<Duration>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Duration>>;

/// One limit applied per key (per IP, per account, ...).
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    reason: &'static str,
    rate: Rate,
    clock: LimiterClock,
    limiter: Option<Keyed<K>>,
    overflowed: Arc<AtomicU64>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("reason", &self.reason)
            .field("rate", &self.rate)
            .field("keys", &self.keys())
            .finish()
    }
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// A limit named `reason` holding at most `max_keys` keys.
    pub fn new(reason: &'static str, rate: Rate, max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock);
        let overflowed = Arc::new(AtomicU64::new(0));
        let limiter = rate.quota().map(|quota| {
            let store = BoundedStore {
                keys: DashMapStateStore::default(),
                overflow: InMemoryState::default(),
                max_keys: max_keys.max(1),
                overflowed: Arc::clone(&overflowed),
            };
            RateLimiter::new(quota, store, clock.clone())
        });
        Self {
            reason,
            rate,
            clock,
            limiter,
            overflowed,
        }
    }

    /// Takes one event for `key`, or says when one will be allowed.
    pub fn check(&self, key: &K) -> std::result::Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(key)
            .map_err(|n| refusal(self.reason, self.rate, &self.clock, &n))
    }

    /// Forgets keys whose bucket has refilled (they are no different from new ones).
    pub fn prune(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys held now.
    pub fn keys(&self) -> usize {
        self.limiter.as_ref().map_or(0, RateLimiter::len)
    }

    /// Checks that went to the shared overflow bucket because the limiter was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The limit's name.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// One limit applied to everything (e.g. all SMS).
pub struct GlobalLimit {
    reason: &'static str,
    rate: Rate,
    clock: LimiterClock,
    limiter: Option<Direct>,
}

impl std::fmt::Debug for GlobalLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalLimit")
            .field("reason", &self.reason)
            .field("rate", &self.rate)
            .finish()
    }
}

impl GlobalLimit {
    /// A limit named `reason`.
    pub fn new(reason: &'static str, rate: Rate, clock: Arc<dyn Clock>) -> Self {
        let clock = LimiterClock(clock);
        let limiter = rate
            .quota()
            .map(|q| RateLimiter::new(q, InMemoryState::default(), clock.clone()));
        Self {
            reason,
            rate,
            clock,
            limiter,
        }
    }

    /// Takes one event, or says when one will be allowed.
    pub fn check(&self) -> std::result::Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|n| refusal(self.reason, self.rate, &self.clock, &n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, Timestamp};

    fn clock() -> (ManualClock, Arc<dyn Clock>) {
        let c = ManualClock::new(Timestamp(1_800_000_000_000));
        (c.clone(), Arc::new(c))
    }

    #[test]
    fn a_rate_allows_its_burst_then_one_per_interval() {
        let (manual, clock) = clock();
        let limit = KeyedLimit::new(
            "test",
            Rate {
                count: 5,
                per: Duration::from_secs(600),
            },
            100,
            clock,
        );
        for _ in 0..5 {
            limit.check(&1u32).unwrap();
        }
        let refused = limit.check(&1u32).unwrap_err();
        assert_eq!(refused.reason, "test");
        assert_eq!(refused.retry_after, Duration::from_secs(120));
        limit.check(&2u32).unwrap();
        manual.advance(Duration::from_secs(119));
        assert!(limit.check(&1u32).is_err());
        manual.advance(Duration::from_secs(1));
        limit.check(&1u32).unwrap();
        assert!(limit.check(&1u32).is_err());
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let (_, clock) = clock();
        let limit = KeyedLimit::new("off", Rate::OFF, 10, clock);
        for i in 0..1000u32 {
            limit.check(&i).unwrap();
        }
        assert_eq!(limit.keys(), 0);
    }

    #[test]
    fn a_full_limiter_sends_new_keys_to_one_shared_bucket_and_pruning_frees_it() {
        let (manual, clock) = clock();
        let limit = KeyedLimit::new("spray", Rate::per_minute(2), 100, clock);
        for key in 0..100u32 {
            limit.check(&key).unwrap();
        }
        assert_eq!(limit.keys(), 100);
        // Unseen keys now share one bucket of 2: the spray cannot grow the map
        // and cannot get past the limit either.
        limit.check(&1000).unwrap();
        limit.check(&1001).unwrap();
        assert!(limit.check(&1002).is_err());
        assert_eq!(limit.keys(), 100);
        assert_eq!(limit.overflowed(), 3);
        // Keys already held keep their own bucket.
        limit.check(&5).unwrap();
        assert!(limit.check(&5).is_err());
        manual.advance(Duration::from_secs(120));
        limit.prune();
        assert_eq!(limit.keys(), 0, "refilled buckets are forgotten");
        limit.check(&2000).unwrap();
        assert_eq!(limit.keys(), 1);
    }
}
