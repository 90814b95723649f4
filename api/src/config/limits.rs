//! Rate-limit and SMS-budget settings, and the trusted proxies whose `X-Forwarded-For` is believed.

use std::collections::BTreeMap;
use std::time::Duration;

use engine::{IssueLimitsConfig, Rate};
use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;

/// Rate limits and SMS budgets. Every count is per its window; 0 turns that
/// limit off. Limits are kept in memory: a restart forgets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Addresses (or CIDR ranges) of proxies whose `X-Forwarded-For` is
    /// believed; for any other peer the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Codes sent per account in 10 minutes (all purposes and channels).
    pub issue_per_account_10min: u32,
    /// Codes sent per account in a day.
    pub issue_per_account_day: u32,
    /// Codes sent per phone number, email, device or address in 10 minutes.
    pub issue_per_destination_10min: u32,
    /// Codes sent per destination in a day.
    pub issue_per_destination_day: u32,
    /// Requests that may send a code, per source IP per minute.
    pub issue_per_ip_minute: u32,
    /// Requests that may send a code, per client per minute.
    pub issue_per_client_minute: u32,
    /// Requests that check a PIN or code, per source IP per minute.
    pub attempts_per_ip_minute: u32,
    /// Requests that check a PIN or code, per client per minute.
    pub attempts_per_client_minute: u32,
    /// SMS per country calling code per hour, unless it has its own budget.
    pub sms_per_country_hour: u32,
    /// SMS per country calling code per day, unless it has its own budget.
    pub sms_per_country_day: u32,
    /// Budgets for particular calling codes, e.g. `[limits.sms_country_budgets.351]`.
    pub sms_country_budgets: BTreeMap<String, CountryBudget>,
    /// All SMS per hour.
    pub sms_global_hour: u32,
    /// If not empty, SMS only to numbers starting with one of these prefixes
    /// (e.g. `["+351", "+34"]`).
    pub sms_allowed_prefixes: Vec<String>,
    /// Never SMS to numbers starting with one of these prefixes (e.g. `["+1876"]`).
    pub sms_blocked_prefixes: Vec<String>,
    /// Pumping alarm: raised for a country when under this per cent of its
    /// recent SMS codes are verified...
    pub pumping_alarm_percent: u32,
    /// ...once at least this many were sent in the last hour or two.
    pub pumping_min_sends: u64,
    /// Keys each limiter holds at most; beyond it, unseen keys share one bucket.
    pub max_keys: u32,
}

/// One country's SMS budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountryBudget {
    /// SMS per hour (0: no limit).
    pub per_hour: u32,
    /// SMS per day (0: no limit).
    pub per_day: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            issue_per_account_10min: 5,
            issue_per_account_day: 20,
            issue_per_destination_10min: 5,
            issue_per_destination_day: 20,
            issue_per_ip_minute: 60,
            issue_per_client_minute: 60_000,
            attempts_per_ip_minute: 120,
            attempts_per_client_minute: 120_000,
            sms_per_country_hour: 200,
            sms_per_country_day: 2_000,
            sms_country_budgets: BTreeMap::from([(
                "351".to_owned(),
                CountryBudget {
                    per_hour: 50_000,
                    per_day: 500_000,
                },
            )]),
            sms_global_hour: 100_000,
            sms_allowed_prefixes: Vec::new(),
            sms_blocked_prefixes: Vec::new(),
            pumping_alarm_percent: 20,
            pumping_min_sends: 50,
            max_keys: 1_000_000,
        }
    }
}

impl LimitsConfig {
    /// Every limit off (load tests of the code path itself).
    pub fn off() -> Self {
        Self {
            issue_per_account_10min: 0,
            issue_per_account_day: 0,
            issue_per_destination_10min: 0,
            issue_per_destination_day: 0,
            issue_per_ip_minute: 0,
            issue_per_client_minute: 0,
            attempts_per_ip_minute: 0,
            attempts_per_client_minute: 0,
            sms_per_country_hour: 0,
            sms_per_country_day: 0,
            sms_country_budgets: BTreeMap::new(),
            sms_global_hour: 0,
            ..Self::default()
        }
    }

    /// The engine's part: per-account, per-destination and SMS limits.
    pub fn issue_limits(&self) -> Result<IssueLimitsConfig, String> {
        let ten_minutes = |count| Rate {
            count,
            per: Duration::from_secs(600),
        };
        let mut budgets = BTreeMap::new();
        for (code, budget) in &self.sms_country_budgets {
            let digits = code.trim_start_matches('+');
            let parsed = digits
                .parse::<u16>()
                .ok()
                .filter(|c| (1..=999).contains(c) && !digits.starts_with('0'));
            let Some(parsed) = parsed else {
                return Err(format!(
                    "limits.sms_country_budgets: {code:?} is not a country calling code such as 351"
                ));
            };
            budgets.insert(
                parsed,
                vec![
                    Rate::per_hour(budget.per_hour),
                    Rate::per_day(budget.per_day),
                ],
            );
        }
        Ok(IssueLimitsConfig {
            per_account: vec![
                ten_minutes(self.issue_per_account_10min),
                Rate::per_day(self.issue_per_account_day),
            ],
            per_destination: vec![
                ten_minutes(self.issue_per_destination_10min),
                Rate::per_day(self.issue_per_destination_day),
            ],
            sms_per_calling_code: vec![
                Rate::per_hour(self.sms_per_country_hour),
                Rate::per_day(self.sms_per_country_day),
            ],
            sms_calling_code_budgets: budgets,
            sms_global: vec![Rate::per_hour(self.sms_global_hour)],
            sms_allowed_prefixes: self.sms_allowed_prefixes.clone(),
            sms_blocked_prefixes: self.sms_blocked_prefixes.clone(),
            max_keys: self.max_keys as usize,
            pumping_alarm_percent: self.pumping_alarm_percent,
            pumping_min_sends: self.pumping_min_sends,
        })
    }
}

/// Parses `limits.trusted_proxies`. An error names the entry by its place
/// in the list, never by its text (configuration errors do not echo values).
pub fn parse_proxies(list: &[String]) -> Result<Vec<Cidr>, String> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            Cidr::parse(p).ok_or_else(|| {
                format!("limits.trusted_proxies[{i}] is not an address or CIDR range")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_proxy_entries_are_named() {
        let err = parse_proxies(&["127.0.0.1".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("trusted_proxies[1]"), "{err}");
        assert!(!err.contains("10.0.0.0/33"), "values are not echoed: {err}");
        assert!(parse_proxies(&["localhost".into()]).is_err());
        assert!(parse_proxies(&["2001:db8::/32".into(), "127.0.0.1".into()]).is_ok());
    }
}
