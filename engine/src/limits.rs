//! Rate limits: keyed GCRA limiters (governor) whose memory is bounded, and
//! the issuance policy that guards every code the engine sends.
//!
//! A [`Rate`] of `count` per `per` lets a burst of `count` through and then
//! one more every `per / count`: "5 per 10 minutes" is 5 at once, then one
//! every 2 minutes. A count of 0 turns a limit off.
//!
//! Limiter state lives in memory only: a restart forgets it (the durable
//! per-challenge and per-account failure counters do not). Each keyed
//! limiter holds at most `max_keys` keys; when it is full, keys it has not
//! seen share one overflow bucket until pruning (every sweep) drops keys
//! whose bucket is full again. A spray of random keys therefore costs a
//! bounded amount of memory and cannot open a hole in the limit.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::terms::Channel;

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

/// The ITU-T E.164 country calling code of a number in `+digits` form:
/// 1 and 7 are one digit, the two-digit codes are listed, all others have
/// three (the codes are prefix-free, so this is exact).
pub fn calling_code(e164: &str) -> Option<u16> {
    const TWO_DIGIT: [u16; 44] = [
        20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55,
        56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    ];
    let digits = e164.strip_prefix('+')?.as_bytes();
    if digits.len() < 4 || !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return None;
    }
    let number = |n: usize| {
        digits[..n]
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
    };
    Some(match digits[0] {
        b'1' | b'7' => number(1),
        _ if TWO_DIGIT.contains(&number(2)) => number(2),
        _ => number(3),
    })
}

/// How many codes may be sent, and where SMS may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueLimitsConfig {
    /// Codes per account (all purposes and channels).
    pub per_account: Vec<Rate>,
    /// Codes per destination (phone number, email, device or address).
    pub per_destination: Vec<Rate>,
    /// SMS per country calling code, unless the code has its own budget.
    pub sms_per_calling_code: Vec<Rate>,
    /// Budgets for particular calling codes (e.g. the home country's larger one).
    pub sms_calling_code_budgets: BTreeMap<u16, Vec<Rate>>,
    /// All SMS together.
    pub sms_global: Vec<Rate>,
    /// If not empty, SMS goes only to numbers starting with one of these
    /// digit prefixes (calling codes, or longer prefixes such as `1876`).
    pub sms_allowed_prefixes: Vec<String>,
    /// SMS never goes to numbers starting with one of these digit prefixes.
    pub sms_blocked_prefixes: Vec<String>,
    /// Keys each keyed limiter may hold before unseen keys share one bucket.
    pub max_keys: usize,
    /// When the share of SMS codes verified in a country falls below this
    /// (per cent), with at least `pumping_min_sends` sent in the last hour or
    /// two, the pumping alarm for that country is raised.
    pub pumping_alarm_percent: u32,
    /// Sends needed before the pumping ratio means anything.
    pub pumping_min_sends: u64,
}

impl Default for IssueLimitsConfig {
    fn default() -> Self {
        let ten_minutes = Duration::from_secs(600);
        Self {
            per_account: vec![
                Rate {
                    count: 5,
                    per: ten_minutes,
                },
                Rate::per_day(20),
            ],
            per_destination: vec![
                Rate {
                    count: 5,
                    per: ten_minutes,
                },
                Rate::per_day(20),
            ],
            sms_per_calling_code: vec![Rate::per_hour(200), Rate::per_day(2_000)],
            sms_calling_code_budgets: BTreeMap::from([(
                351,
                vec![Rate::per_hour(50_000), Rate::per_day(500_000)],
            )]),
            sms_global: vec![Rate::per_hour(100_000)],
            sms_allowed_prefixes: Vec::new(),
            sms_blocked_prefixes: Vec::new(),
            max_keys: 1_000_000,
            pumping_alarm_percent: 20,
            pumping_min_sends: 50,
        }
    }
}

impl IssueLimitsConfig {
    /// No limits at all (benchmarks and load tests of the code path itself).
    pub fn off() -> Self {
        Self {
            per_account: Vec::new(),
            per_destination: Vec::new(),
            sms_per_calling_code: Vec::new(),
            sms_calling_code_budgets: BTreeMap::new(),
            sms_global: Vec::new(),
            ..Self::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        for (field, prefixes) in [
            ("limits.sms_allowed_prefixes", &self.sms_allowed_prefixes),
            ("limits.sms_blocked_prefixes", &self.sms_blocked_prefixes),
        ] {
            for p in prefixes {
                let digits = p.trim_start_matches('+');
                if digits.is_empty()
                    || digits.len() > 6
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(EngineError::invalid(
                        field,
                        format!("{p:?} is not a calling-code prefix such as +351 or +1876"),
                    ));
                }
            }
        }
        if self.pumping_alarm_percent > 100 {
            return Err(EngineError::invalid(
                "limits.pumping_alarm_percent",
                "must be 0 to 100",
            ));
        }
        Ok(())
    }
}

/// SMS sent and verified for one calling code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsConversion {
    /// The country calling code.
    pub calling_code: u16,
    /// SMS codes sent since start.
    pub sent: u64,
    /// SMS codes verified since start.
    pub verified: u64,
    /// Sent in this hour and the last.
    pub recent_sent: u64,
    /// Verified in this hour and the last.
    pub recent_verified: u64,
    /// Too few recent codes verified: the country looks pumped.
    pub alarm: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    hour: u64,
    sent: u64,
    verified: u64,
    sent_now: u64,
    verified_now: u64,
    sent_before: u64,
    verified_before: u64,
}

impl Tally {
    fn roll(&mut self, hour: u64) {
        if hour == self.hour {
            return;
        }
        if hour == self.hour + 1 {
            self.sent_before = self.sent_now;
            self.verified_before = self.verified_now;
        } else {
            self.sent_before = 0;
            self.verified_before = 0;
        }
        self.sent_now = 0;
        self.verified_now = 0;
        self.hour = hour;
    }
}

/// The issuance policy: every code passes [`IssueLimits::admit`] before it is made.
pub(crate) struct IssueLimits {
    config: IssueLimitsConfig,
    clock: Arc<dyn Clock>,
    account: Vec<KeyedLimit<AccountId>>,
    destination: Vec<KeyedLimit<u64>>,
    destination_hasher: std::collections::hash_map::RandomState,
    country: Vec<KeyedLimit<u16>>,
    country_budgets: BTreeMap<u16, Vec<GlobalLimit>>,
    global: Vec<GlobalLimit>,
    tallies: DashMap<u16, Tally>,
}

impl std::fmt::Debug for IssueLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueLimits")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IssueLimits {
    pub(crate) fn new(config: IssueLimitsConfig, clock: Arc<dyn Clock>) -> Self {
        fn keyed<K: Hash + Eq + Clone>(
            reason: &'static str,
            rates: &[Rate],
            config: &IssueLimitsConfig,
            clock: &Arc<dyn Clock>,
        ) -> Vec<KeyedLimit<K>> {
            rates
                .iter()
                .map(|r| KeyedLimit::new(reason, *r, config.max_keys, Arc::clone(clock)))
                .collect()
        }
        let global = |reason, rates: &[Rate]| -> Vec<_> {
            rates
                .iter()
                .map(|r| GlobalLimit::new(reason, *r, Arc::clone(&clock)))
                .collect()
        };
        Self {
            account: keyed("account_issue_rate", &config.per_account, &config, &clock),
            destination: keyed(
                "destination_issue_rate",
                &config.per_destination,
                &config,
                &clock,
            ),
            destination_hasher: std::collections::hash_map::RandomState::new(),
            country: keyed(
                "sms_country_budget",
                &config.sms_per_calling_code,
                &config,
                &clock,
            ),
            country_budgets: config
                .sms_calling_code_budgets
                .iter()
                .map(|(code, rates)| (*code, global("sms_country_budget", rates)))
                .collect(),
            global: global("sms_global_budget", &config.sms_global),
            tallies: DashMap::new(),
            clock: Arc::clone(&clock),
            config,
        }
    }

    /// Lets one code go to `destination` by `channel` for `account`, or says
    /// why not. Narrow limits are checked before wide ones, so a refusal by a
    /// per-account limit does not spend the country's or the global budget.
    pub(crate) fn admit(
        &self,
        account: AccountId,
        channel: Channel,
        destination: &str,
    ) -> Result<()> {
        let sms_code = if channel == Channel::Sms {
            if !self.sms_allowed(destination) {
                return Err(EngineError::DestinationNotAllowed(
                    "SMS to this country is not offered by this service",
                ));
            }
            calling_code(destination)
        } else {
            None
        };
        for limit in &self.account {
            limit.check(&account)?;
        }
        if !self.destination.is_empty() {
            let key = std::hash::BuildHasher::hash_one(&self.destination_hasher, destination);
            for limit in &self.destination {
                limit.check(&key)?;
            }
        }
        if let Some(code) = sms_code {
            match self.country_budgets.get(&code) {
                Some(budget) => budget.iter().try_for_each(GlobalLimit::check)?,
                None => self.country.iter().try_for_each(|l| l.check(&code))?,
            }
            self.global.iter().try_for_each(GlobalLimit::check)?;
            self.tally(code, |t| {
                t.sent += 1;
                t.sent_now += 1;
            });
        }
        Ok(())
    }

    fn sms_allowed(&self, destination: &str) -> bool {
        let digits = destination.trim_start_matches('+');
        let matches = |p: &String| digits.starts_with(p.trim_start_matches('+'));
        (self.config.sms_allowed_prefixes.is_empty()
            || self.config.sms_allowed_prefixes.iter().any(matches))
            && !self.config.sms_blocked_prefixes.iter().any(matches)
    }

    /// Counts a verified SMS code towards its country's conversion.
    pub(crate) fn verified_sms(&self, destination: &str) {
        if let Some(code) = calling_code(destination) {
            self.tally(code, |t| {
                t.verified += 1;
                t.verified_now += 1;
            });
        }
    }

    fn hour(&self) -> u64 {
        self.clock.monotonic().as_secs() / 3600
    }

    fn tally(&self, code: u16, update: impl FnOnce(&mut Tally)) {
        let hour = self.hour();
        let mut tally = self.tallies.entry(code).or_insert_with(|| Tally {
            hour,
            ..Tally::default()
        });
        tally.roll(hour);
        update(&mut tally);
    }

    /// Conversion per calling code, with the pumping alarm.
    pub(crate) fn sms_conversion(&self) -> Vec<SmsConversion> {
        let hour = self.hour();
        let mut out: Vec<SmsConversion> = self
            .tallies
            .iter_mut()
            .map(|mut t| {
                t.roll(hour);
                let recent_sent = t.sent_now + t.sent_before;
                let recent_verified = t.verified_now + t.verified_before;
                let alarm = recent_sent >= self.config.pumping_min_sends.max(1)
                    && recent_verified.saturating_mul(100)
                        < recent_sent.saturating_mul(u64::from(self.config.pumping_alarm_percent));
                SmsConversion {
                    calling_code: *t.key(),
                    sent: t.sent,
                    verified: t.verified,
                    recent_sent,
                    recent_verified,
                    alarm,
                }
            })
            .collect();
        out.sort_by_key(|c| c.calling_code);
        out
    }

    /// Drops keys whose buckets have refilled.
    pub(crate) fn prune(&self) {
        for l in &self.account {
            l.prune();
        }
        for l in &self.destination {
            l.prune();
        }
        for l in &self.country {
            l.prune();
        }
    }

    /// Keys held by the account and destination limiters.
    pub(crate) fn keys(&self) -> usize {
        self.account.iter().map(KeyedLimit::keys).sum::<usize>()
            + self.destination.iter().map(KeyedLimit::keys).sum::<usize>()
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
    fn calling_codes_follow_e164() {
        for (number, code) in [
            ("+351912345678", 351),
            ("+14155550100", 1),
            ("+18765550100", 1),
            ("+447700900123", 44),
            ("+5511987654321", 55),
            ("+79161234567", 7),
            ("+2348031234567", 234),
            ("+8613800138000", 86),
            ("+88212345678", 882),
        ] {
            assert_eq!(calling_code(number), Some(code), "{number}");
        }
        assert_eq!(calling_code("351912345678"), None);
        assert_eq!(calling_code("+0123456"), None);
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

    fn account(n: u8) -> AccountId {
        AccountId([n; 16])
    }

    #[test]
    fn narrow_refusals_do_not_spend_the_global_budget() {
        let (_, clock) = clock();
        let config = IssueLimitsConfig {
            per_account: vec![Rate::per_hour(1)],
            per_destination: Vec::new(),
            sms_per_calling_code: Vec::new(),
            sms_calling_code_budgets: BTreeMap::new(),
            sms_global: vec![Rate::per_hour(2)],
            ..IssueLimitsConfig::default()
        };
        let limits = IssueLimits::new(config, clock);
        limits
            .admit(account(1), Channel::Sms, "+351911111111")
            .unwrap();
        for _ in 0..5 {
            let e = limits
                .admit(account(1), Channel::Sms, "+351911111111")
                .unwrap_err();
            assert!(matches!(
                e,
                EngineError::RateLimited {
                    reason: "account_issue_rate",
                    ..
                }
            ));
        }
        limits
            .admit(account(2), Channel::Sms, "+351922222222")
            .unwrap();
        let e = limits
            .admit(account(3), Channel::Sms, "+351933333333")
            .unwrap_err();
        assert!(matches!(
            e,
            EngineError::RateLimited {
                reason: "sms_global_budget",
                ..
            }
        ));
        // Email is outside the SMS budgets.
        limits
            .admit(account(4), Channel::Email, "a@example.org")
            .unwrap();
    }

    #[test]
    fn countries_have_budgets_allow_lists_and_block_lists() {
        let (_, clock) = clock();
        let config = IssueLimitsConfig {
            per_account: Vec::new(),
            per_destination: Vec::new(),
            sms_per_calling_code: vec![Rate::per_hour(2)],
            sms_calling_code_budgets: BTreeMap::from([(351, vec![Rate::per_hour(3)])]),
            sms_global: Vec::new(),
            sms_allowed_prefixes: vec!["+351".into(), "44".into(), "1".into()],
            sms_blocked_prefixes: vec!["1876".into()],
            ..IssueLimitsConfig::default()
        };
        let limits = IssueLimits::new(config, clock);
        let refused = |d: &str| limits.admit(account(1), Channel::Sms, d).unwrap_err();
        assert!(matches!(
            refused("+2348031234567"),
            EngineError::DestinationNotAllowed(_)
        ));
        assert!(matches!(
            refused("+18765550100"),
            EngineError::DestinationNotAllowed(_)
        ));
        limits
            .admit(account(1), Channel::Sms, "+447700900001")
            .unwrap();
        limits
            .admit(account(1), Channel::Sms, "+447700900002")
            .unwrap();
        assert!(matches!(
            refused("+447700900003"),
            EngineError::RateLimited {
                reason: "sms_country_budget",
                ..
            }
        ));
        for n in 0..3 {
            limits
                .admit(account(1), Channel::Sms, &format!("+35191000000{n}"))
                .unwrap();
        }
        assert!(matches!(
            refused("+351910000009"),
            EngineError::RateLimited {
                reason: "sms_country_budget",
                ..
            }
        ));
        limits
            .admit(account(1), Channel::Sms, "+14155550100")
            .unwrap();
    }

    #[test]
    fn the_pumping_alarm_fires_when_sends_are_not_verified() {
        let (manual, clock) = clock();
        let config = IssueLimitsConfig {
            pumping_min_sends: 10,
            pumping_alarm_percent: 20,
            ..IssueLimitsConfig::off()
        };
        let limits = IssueLimits::new(config, clock);
        for n in 0..10 {
            let pt = format!("+3519100000{n:02}");
            limits.admit(account(1), Channel::Sms, &pt).unwrap();
            limits.verified_sms(&pt);
            limits
                .admit(account(1), Channel::Sms, &format!("+2348031234{n:03}"))
                .unwrap();
        }
        limits.verified_sms("+2348031234000");
        let by_code = |code| {
            limits
                .sms_conversion()
                .into_iter()
                .find(|c| c.calling_code == code)
                .unwrap()
        };
        assert!(!by_code(351).alarm);
        let ng = by_code(234);
        assert_eq!(
            (ng.recent_sent, ng.recent_verified, ng.alarm),
            (10, 1, true)
        );
        // Two hours on, the window is empty and the alarm clears; totals remain.
        manual.advance(Duration::from_secs(7200));
        let ng = by_code(234);
        assert_eq!((ng.sent, ng.recent_sent, ng.alarm), (10, 0, false));
    }
}
