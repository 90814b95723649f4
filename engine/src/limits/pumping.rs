//! The SMS tallies behind the pumping alarm: codes sent and verified per
//! country calling code, this hour and the last, and the conversion each
//! country shows; kept in this process, or on state every node shares (a
//! cluster's alarm then sees every node's sends).

use std::sync::Arc;

use dashmap::DashMap;

use super::SharedBuckets;
use crate::error::Result;

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
pub(crate) struct Tally {
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

/// Tallies per calling code.
pub(crate) enum Tallies {
    /// In this process.
    Local(DashMap<u16, Tally>),
    /// Shared by every node: fields `s<code>` (sent) and `v<code>`
    /// (verified) of one tally per hour and one of all time.
    Shared(Arc<dyn SharedBuckets>),
}

impl std::fmt::Debug for Tallies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tallies::Local(map) => f.debug_tuple("Local").field(&map.len()).finish(),
            Tallies::Shared(_) => f.write_str("Shared"),
        }
    }
}

impl Tallies {
    /// Tallies in this process, or on `shared` state when there is some.
    pub(crate) fn on(shared: Option<&Arc<dyn SharedBuckets>>) -> Tallies {
        match shared {
            Some(shared) => Tallies::Shared(Arc::clone(shared)),
            None => Tallies::Local(DashMap::new()),
        }
    }

    /// One SMS code sent to `code` in `hour`.
    pub(crate) fn sent(&self, code: u16, hour: u64) {
        match self {
            Tallies::Local(map) => Self::update(map, code, hour, |t| {
                t.sent += 1;
                t.sent_now += 1;
            }),
            Tallies::Shared(shared) => shared.count_sms(hour, &format!("s{code}")),
        }
    }

    /// One SMS code to `code` verified in `hour`.
    pub(crate) fn verified(&self, code: u16, hour: u64) {
        match self {
            Tallies::Local(map) => Self::update(map, code, hour, |t| {
                t.verified += 1;
                t.verified_now += 1;
            }),
            Tallies::Shared(shared) => shared.count_sms(hour, &format!("v{code}")),
        }
    }

    fn update(map: &DashMap<u16, Tally>, code: u16, hour: u64, change: impl FnOnce(&mut Tally)) {
        let mut tally = map.entry(code).or_insert_with(|| Tally {
            hour,
            ..Tally::default()
        });
        tally.roll(hour);
        change(&mut tally);
    }

    /// Conversion per calling code in `hour`: the alarm is up where at
    /// least `min_sends` codes went out over this hour and the last and
    /// fewer than `alarm_percent` of them were verified.
    pub(crate) fn conversion(
        &self,
        hour: u64,
        min_sends: u64,
        alarm_percent: u32,
    ) -> Result<Vec<SmsConversion>> {
        let counts: Vec<Counts> = match self {
            Tallies::Local(map) => map
                .iter_mut()
                .map(|mut t| {
                    t.roll(hour);
                    Counts {
                        code: *t.key(),
                        sent: t.sent,
                        verified: t.verified,
                        recent_sent: t.sent_now + t.sent_before,
                        recent_verified: t.verified_now + t.verified_before,
                    }
                })
                .collect(),
            Tallies::Shared(shared) => {
                let mut by_code = std::collections::BTreeMap::<u16, Counts>::new();
                let hours = [None, Some(hour), hour.checked_sub(1)];
                for (i, which) in hours.into_iter().enumerate() {
                    if i > 0 && which.is_none() {
                        continue;
                    }
                    for (field, n) in shared.sms_tally(which)? {
                        // `s<code>` or `v<code>`; anything else is not ours.
                        let (kind, code) = match (field.strip_prefix('s'), field.strip_prefix('v'))
                        {
                            (Some(code), _) => ("s", code),
                            (_, Some(code)) => ("v", code),
                            _ => continue,
                        };
                        let Ok(code) = code.parse::<u16>() else {
                            continue;
                        };
                        let c = by_code.entry(code).or_insert(Counts {
                            code,
                            ..Counts::default()
                        });
                        match (i, kind) {
                            (0, "s") => c.sent += n,
                            (0, "v") => c.verified += n,
                            (_, "s") => c.recent_sent += n,
                            (_, "v") => c.recent_verified += n,
                            _ => {}
                        }
                    }
                }
                by_code.into_values().collect()
            }
        };
        let mut out: Vec<SmsConversion> = counts
            .into_iter()
            .map(|c| SmsConversion {
                calling_code: c.code,
                sent: c.sent,
                verified: c.verified,
                recent_sent: c.recent_sent,
                recent_verified: c.recent_verified,
                alarm: c.recent_sent >= min_sends.max(1)
                    && c.recent_verified.saturating_mul(100)
                        < c.recent_sent.saturating_mul(u64::from(alarm_percent)),
            })
            .collect();
        out.sort_by_key(|c| c.calling_code);
        Ok(out)
    }
}

/// One calling code's counts, before the alarm is worked out.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    code: u16,
    sent: u64,
    verified: u64,
    recent_sent: u64,
    recent_verified: u64,
}
