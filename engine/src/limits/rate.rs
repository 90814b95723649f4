//! Rate primitives: a [`Rate`], the [`Limited`] refusal, and keyed and
//! global GCRA limiters over governor, driven by the engine's clock, with a
//! cap on the keys a limiter holds (see the module above), or over buckets
//! every node shares (`SharedBuckets`, on a cluster).

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

use super::SharedBuckets;
use crate::client::ClientId;
use crate::clock::Clock;
use crate::error::EngineError;
use crate::id::AccountId;

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

/// How a key names its bucket on shared state (`SharedBuckets`): the same
/// text on every node.
pub trait Subject {
    /// The key as text (hex digits, or a number).
    fn subject(&self) -> String;
}

impl Subject for u128 {
    fn subject(&self) -> String {
        format!("{self:032x}")
    }
}

impl Subject for u64 {
    fn subject(&self) -> String {
        format!("{self:016x}")
    }
}

impl Subject for u16 {
    fn subject(&self) -> String {
        self.to_string()
    }
}

impl Subject for AccountId {
    fn subject(&self) -> String {
        self.to_string()
    }
}

impl Subject for ClientId {
    fn subject(&self) -> String {
        self.to_string()
    }
}

/// Where a limit keeps its buckets.
enum Buckets<K: Hash + Eq + Clone> {
    /// In this process (governor), one limiter per rate.
    Local(Vec<Keyed<K>>),
    /// On state every node shares.
    Shared(Arc<dyn SharedBuckets>),
}

/// One limit (one or more rates, all spent together) applied per key (per
/// IP, per account, ...).
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    reason: &'static str,
    /// The rates that are on (a count of 0 is none).
    rates: Vec<Rate>,
    clock: LimiterClock,
    buckets: Buckets<K>,
    overflowed: Arc<AtomicU64>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyedLimit<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("reason", &self.reason)
            .field("rates", &self.rates)
            .field("keys", &self.keys())
            .finish()
    }
}

impl<K: Hash + Eq + Clone + Subject> KeyedLimit<K> {
    /// A limit named `reason` of every one of `rates`, kept in this
    /// process, holding at most `max_keys` keys.
    pub fn new(
        reason: &'static str,
        rates: &[Rate],
        max_keys: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::on(reason, rates, max_keys, clock, None)
    }

    /// A limit named `reason` of every one of `rates`, kept on `shared`
    /// state, or in this process when there is none.
    pub fn on(
        reason: &'static str,
        rates: &[Rate],
        max_keys: usize,
        clock: Arc<dyn Clock>,
        shared: Option<&Arc<dyn SharedBuckets>>,
    ) -> Self {
        let clock = LimiterClock(clock);
        let overflowed = Arc::new(AtomicU64::new(0));
        let rates: Vec<Rate> = rates.iter().copied().filter(|r| r.count > 0).collect();
        // Shared state holds the buckets: no limiter is built here.
        let buckets = match shared {
            Some(shared) => Buckets::Shared(Arc::clone(shared)),
            None => Buckets::Local(
                rates
                    .iter()
                    .filter_map(|rate| rate.quota())
                    .map(|quota| {
                        let store = BoundedStore {
                            keys: DashMapStateStore::default(),
                            overflow: InMemoryState::default(),
                            max_keys: max_keys.max(1),
                            overflowed: Arc::clone(&overflowed),
                        };
                        RateLimiter::new(quota, store, clock.clone())
                    })
                    .collect(),
            ),
        };
        Self {
            reason,
            rates,
            clock,
            buckets,
            overflowed,
        }
    }

    /// Takes one event for `key` from every rate, or says which refuses and
    /// when it will allow. On shared state that does not answer, the check
    /// fails closed: [`EngineError::Storage`], and the request is refused.
    pub fn check(&self, key: &K) -> Result<(), EngineError> {
        self.check_as(key, || key.subject())
    }

    /// [`KeyedLimit::check`] with the bucket's name on shared state given.
    fn check_as(&self, key: &K, subject: impl FnOnce() -> String) -> Result<(), EngineError> {
        match &self.buckets {
            Buckets::Local(limiters) => {
                for (limiter, rate) in limiters.iter().zip(&self.rates) {
                    limiter
                        .check_key(key)
                        .map_err(|n| refusal(self.reason, *rate, &self.clock, &n))?;
                }
                Ok(())
            }
            Buckets::Shared(_) if self.rates.is_empty() => Ok(()),
            Buckets::Shared(shared) => {
                let now = self.clock.0.now();
                match shared.spend(self.reason, &subject(), now, &self.rates) {
                    Ok(None) => Ok(()),
                    Ok(Some((index, wait))) => Err(Limited {
                        reason: self.reason,
                        rate: self.rates.get(index).copied().unwrap_or(Rate::OFF),
                        retry_after: wait,
                    }
                    .into()),
                    Err(e) => Err(EngineError::Storage(format!(
                        "the rate limit {} could not be checked (the request is refused): {e}",
                        self.reason
                    ))),
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// Forgets keys whose bucket has refilled (they are no different from
    /// new ones). Shared buckets expire by themselves.
    pub fn prune(&self) {
        if let Buckets::Local(limiters) = &self.buckets {
            for limiter in limiters {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }

    /// Checks that went to the shared overflow bucket because the limiter was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The limit's name.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Whether the limit keeps its buckets on shared state.
    pub fn is_shared(&self) -> bool {
        matches!(self.buckets, Buckets::Shared(_))
    }

    /// Keys held now in this process (0 on shared state).
    pub fn keys(&self) -> usize {
        match &self.buckets {
            Buckets::Local(limiters) => limiters.iter().map(RateLimiter::len).max().unwrap_or(0),
            Buckets::Shared(_) => 0,
        }
    }
}

/// One limit applied to everything (e.g. all SMS) or to one named thing
/// (a country's budget, one client's own rate).
pub struct GlobalLimit {
    limit: KeyedLimit<u16>,
    /// Its bucket's name on shared state.
    subject: String,
}

impl std::fmt::Debug for GlobalLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalLimit")
            .field("reason", &self.limit.reason)
            .field("rates", &self.limit.rates)
            .field("subject", &self.subject)
            .finish()
    }
}

impl GlobalLimit {
    /// A limit named `reason` of every one of `rates`, in this process.
    pub fn new(reason: &'static str, rates: &[Rate], clock: Arc<dyn Clock>) -> Self {
        Self::on(reason, "all", rates, clock, None)
    }

    /// A limit named `reason` of every one of `rates`, its bucket called
    /// `subject` on `shared` state (or in this process when there is none).
    pub fn on(
        reason: &'static str,
        subject: &str,
        rates: &[Rate],
        clock: Arc<dyn Clock>,
        shared: Option<&Arc<dyn SharedBuckets>>,
    ) -> Self {
        Self {
            limit: KeyedLimit::on(reason, rates, 1, clock, shared),
            subject: subject.to_owned(),
        }
    }

    /// Takes one event, or says when one will be allowed (see [`KeyedLimit::check`]).
    pub fn check(&self) -> Result<(), EngineError> {
        self.limit.check_as(&0, || self.subject.clone())
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

    /// The limit and the wait a refusal names.
    fn refused(e: EngineError) -> (&'static str, Duration) {
        match e {
            EngineError::RateLimited {
                reason,
                retry_after,
                ..
            } => (reason, retry_after),
            other => panic!("not a refusal by a limit: {other:?}"),
        }
    }

    #[test]
    fn a_rate_allows_its_burst_then_one_per_interval() {
        let (manual, clock) = clock();
        let limit = KeyedLimit::new(
            "test",
            &[Rate {
                count: 5,
                per: Duration::from_secs(600),
            }],
            100,
            clock,
        );
        for _ in 0..5 {
            limit.check(&1u64).unwrap();
        }
        let (reason, wait) = refused(limit.check(&1u64).unwrap_err());
        assert_eq!(reason, "test");
        assert_eq!(wait, Duration::from_secs(120));
        limit.check(&2u64).unwrap();
        manual.advance(Duration::from_secs(119));
        assert!(limit.check(&1u64).is_err());
        manual.advance(Duration::from_secs(1));
        limit.check(&1u64).unwrap();
        assert!(limit.check(&1u64).is_err());
    }

    #[test]
    fn rates_of_one_limit_are_all_spent_and_the_narrowest_refuses() {
        let (manual, clock) = clock();
        let limit = KeyedLimit::new("two", &[Rate::per_minute(2), Rate::per_hour(3)], 10, clock);
        limit.check(&1u64).unwrap();
        limit.check(&1u64).unwrap();
        let (_, wait) = refused(limit.check(&1u64).unwrap_err());
        assert_eq!(wait, Duration::from_secs(30));
        manual.advance(Duration::from_secs(60));
        limit.check(&1u64).unwrap();
        let (_, wait) = refused(limit.check(&1u64).unwrap_err());
        assert!(
            wait > Duration::from_secs(60),
            "the hourly rate refuses: {wait:?}"
        );
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        let (_, clock) = clock();
        let limit = KeyedLimit::new("off", &[Rate::OFF], 10, clock);
        for i in 0..1000u64 {
            limit.check(&i).unwrap();
        }
        assert_eq!(limit.keys(), 0);
    }

    #[test]
    fn a_full_limiter_sends_new_keys_to_one_shared_bucket_and_pruning_frees_it() {
        let (manual, clock) = clock();
        let limit = KeyedLimit::new("spray", &[Rate::per_minute(2)], 100, clock);
        for key in 0..100u64 {
            limit.check(&key).unwrap();
        }
        assert_eq!(limit.keys(), 100);
        // Unseen keys now share one bucket of 2: the spray cannot grow the map
        // and cannot get past the limit either.
        limit.check(&1000u64).unwrap();
        limit.check(&1001u64).unwrap();
        assert!(limit.check(&1002u64).is_err());
        assert_eq!(limit.keys(), 100);
        assert_eq!(limit.overflowed(), 3);
        // Keys already held keep their own bucket.
        limit.check(&5u64).unwrap();
        assert!(limit.check(&5u64).is_err());
        manual.advance(Duration::from_secs(120));
        limit.prune();
        assert_eq!(limit.keys(), 0, "refilled buckets are forgotten");
        limit.check(&2000u64).unwrap();
        assert_eq!(limit.keys(), 1);
    }
}
