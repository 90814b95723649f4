//! The SMS tallies behind the pumping alarm: codes sent and verified per
//! country calling code, this hour and the last, and the conversion each
//! country shows.

use dashmap::DashMap;

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

/// Tallies per calling code.
#[derive(Debug, Default)]
pub(crate) struct Tallies(DashMap<u16, Tally>);

impl Tallies {
    /// One SMS code sent to `code` in `hour`.
    pub(crate) fn sent(&self, code: u16, hour: u64) {
        self.update(code, hour, |t| {
            t.sent += 1;
            t.sent_now += 1;
        });
    }

    /// One SMS code to `code` verified in `hour`.
    pub(crate) fn verified(&self, code: u16, hour: u64) {
        self.update(code, hour, |t| {
            t.verified += 1;
            t.verified_now += 1;
        });
    }

    fn update(&self, code: u16, hour: u64, change: impl FnOnce(&mut Tally)) {
        let mut tally = self.0.entry(code).or_insert_with(|| Tally {
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
    ) -> Vec<SmsConversion> {
        let mut out: Vec<SmsConversion> = self
            .0
            .iter_mut()
            .map(|mut t| {
                t.roll(hour);
                let recent_sent = t.sent_now + t.sent_before;
                let recent_verified = t.verified_now + t.verified_before;
                let alarm = recent_sent >= min_sends.max(1)
                    && recent_verified.saturating_mul(100)
                        < recent_sent.saturating_mul(u64::from(alarm_percent));
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
}
