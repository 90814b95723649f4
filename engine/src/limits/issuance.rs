//! The issuance policy every code passes before it is made: per account,
//! per destination, SMS allow and block lists, SMS budgets per country and
//! overall, narrowest first; and the configuration of all of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::pumping::Tallies;
use super::rate::{GlobalLimit, KeyedLimit, Rate};
use super::{SharedBuckets, SmsConversion};
use crate::clock::Clock;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::identity::calling_code;
use crate::terms::Channel;

/// Turns a destination's bucket digest into its account-less bucket's
/// (keyed digests: another key in the same space, as unpredictable).
const ACCOUNTLESS: u64 = 0x5a17_c0de_d00d_f00d;

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

/// The issuance policy: every code passes [`IssueLimits::admit`] before it is made.
pub(crate) struct IssueLimits {
    config: IssueLimitsConfig,
    clock: Arc<dyn Clock>,
    account: KeyedLimit<AccountId>,
    destination: KeyedLimit<u64>,
    /// SipHash keys of destinations: a destination's bucket is named by a
    /// digest, the same on every node (the keys come from the code key),
    /// that says nothing of the number or address to whoever reads the
    /// shared state.
    destination_keys: (u64, u64),
    country: KeyedLimit<u16>,
    country_budgets: BTreeMap<u16, GlobalLimit>,
    global: GlobalLimit,
    tallies: Tallies,
}

impl std::fmt::Debug for IssueLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueLimits")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IssueLimits {
    /// The policy of `config`; its buckets and tallies on `shared` state
    /// when there is some (a cluster), in this process otherwise.
    /// `destination_key` keys the digests that name destinations.
    pub(crate) fn new(
        config: IssueLimitsConfig,
        clock: Arc<dyn Clock>,
        shared: Option<&Arc<dyn SharedBuckets>>,
        destination_key: [u8; 16],
    ) -> Self {
        let (k0, k1) = destination_key.split_at(8);
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        fn keyed<K: std::hash::Hash + Eq + Clone + super::Subject>(
            reason: &'static str,
            rates: &[Rate],
            config: &IssueLimitsConfig,
            clock: &Arc<dyn Clock>,
            shared: Option<&Arc<dyn SharedBuckets>>,
        ) -> KeyedLimit<K> {
            KeyedLimit::on(reason, rates, config.max_keys, Arc::clone(clock), shared)
        }
        Self {
            account: keyed(
                "account_issue_rate",
                &config.per_account,
                &config,
                &clock,
                shared,
            ),
            destination: keyed(
                "destination_issue_rate",
                &config.per_destination,
                &config,
                &clock,
                shared,
            ),
            destination_keys: (word(k0), word(k1)),
            country: keyed(
                "sms_country_budget",
                &config.sms_per_calling_code,
                &config,
                &clock,
                shared,
            ),
            country_budgets: config
                .sms_calling_code_budgets
                .iter()
                .map(|(code, rates)| {
                    let subject = format!("+{code}");
                    let limit = GlobalLimit::on(
                        "sms_country_budget",
                        &subject,
                        rates,
                        Arc::clone(&clock),
                        shared,
                    );
                    (*code, limit)
                })
                .collect(),
            global: GlobalLimit::on(
                "sms_global_budget",
                "all",
                &config.sms_global,
                Arc::clone(&clock),
                shared,
            ),
            tallies: Tallies::on(shared),
            clock: Arc::clone(&clock),
            config,
        }
    }

    /// The digest a destination's bucket is named by.
    /// (Account-less codes' buckets: the digest XOR [`ACCOUNTLESS`].)
    fn destination_digest(&self, destination: &str) -> u64 {
        use std::hash::Hasher;
        let mut hasher = siphasher::sip::SipHasher13::new_with_keys(
            self.destination_keys.0,
            self.destination_keys.1,
        );
        hasher.write(destination.as_bytes());
        hasher.finish()
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
        self.admit_to(
            account,
            channel,
            destination,
            self.destination_digest(destination),
        )
    }

    /// [`IssueLimits::admit`] for an account-less code (`account` is its
    /// holder): the destination's limit is a bucket of its own, the same
    /// size, so account-less codes (which anyone with the `verify` scope
    /// may ask for, no PIN needed) cannot spend the budget the number's
    /// logins draw on. The SMS budgets are shared.
    pub(crate) fn admit_accountless(
        &self,
        holder: AccountId,
        channel: Channel,
        destination: &str,
    ) -> Result<()> {
        let digest = self.destination_digest(destination) ^ ACCOUNTLESS;
        self.admit_to(holder, channel, destination, digest)
    }

    fn admit_to(
        &self,
        account: AccountId,
        channel: Channel,
        destination: &str,
        destination_subject: u64,
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
        self.account.check(&account)?;
        self.destination.check(&destination_subject)?;
        if let Some(code) = sms_code {
            match self.country_budgets.get(&code) {
                Some(budget) => budget.check()?,
                None => self.country.check(&code)?,
            }
            self.global.check()?;
            self.tallies.sent(code, self.hour());
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
            self.tallies.verified(code, self.hour());
        }
    }

    /// The hour (since the epoch) tallies count in: the wall clock, which
    /// every node of a cluster reads alike.
    fn hour(&self) -> u64 {
        self.clock.now().0 / 3_600_000
    }

    /// Conversion per calling code, with the pumping alarm.
    pub(crate) fn sms_conversion(&self) -> Result<Vec<SmsConversion>> {
        self.tallies.conversion(
            self.hour(),
            self.config.pumping_min_sends,
            self.config.pumping_alarm_percent,
        )
    }

    /// Drops keys whose buckets have refilled.
    pub(crate) fn prune(&self) {
        self.account.prune();
        self.destination.prune();
        self.country.prune();
    }

    /// Keys held by the account and destination limiters (in this process).
    pub(crate) fn keys(&self) -> usize {
        self.account.keys() + self.destination.keys()
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
        let limits = IssueLimits::new(config, clock, None, [0; 16]);
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
        let limits = IssueLimits::new(config, clock, None, [0; 16]);
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
        let limits = IssueLimits::new(config, clock, None, [0; 16]);
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
                .unwrap()
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
