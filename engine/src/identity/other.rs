//! What else a citizen gives: a date of birth, a postal address (for
//! letters), and the push token of their app.

use std::fmt;

use crate::error::{EngineError, Result};

/// A calendar date of birth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BirthDate {
    year: u16,
    month: u8,
    day: u8,
}

impl BirthDate {
    /// Parses `YYYY-MM-DD`; the date must exist, be after 1900 and not after `today`.
    pub fn parse(input: &str, today: crate::Timestamp) -> Result<Self> {
        let invalid = |why: &str| Err(EngineError::invalid("birth_date", why));
        let parts: Vec<&str> = input.trim().split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return invalid("must be a date written YYYY-MM-DD");
        };
        let well_formed = y.len() == 4
            && m.len() == 2
            && d.len() == 2
            && [y, m, d]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_digit()));
        if !well_formed {
            return invalid("must be a date written YYYY-MM-DD");
        }
        let (Ok(year), Ok(month), Ok(day)) = (y.parse::<u16>(), m.parse::<u8>(), d.parse::<u8>())
        else {
            return invalid("must be a date written YYYY-MM-DD");
        };
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return invalid("is not a calendar date");
        }
        let date = BirthDate { year, month, day };
        if year < 1900 || date.days_since_epoch() > today.days_since_epoch() {
            return invalid("must be between 1900-01-01 and today");
        }
        Ok(date)
    }

    pub(crate) fn from_parts(year: u16, month: u8, day: u8) -> Self {
        BirthDate { year, month, day }
    }

    pub(crate) fn parts(self) -> (u16, u8, u8) {
        (self.year, self.month, self.day)
    }

    /// Days since 1970-01-01 (negative before), by Howard Hinnant's civil algorithm.
    fn days_since_epoch(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

impl fmt::Display for BirthDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A postal address on file, where activation letters are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostalAddress(String);

impl PostalAddress {
    /// Accepts 1 to 8 non-empty lines of printable text, 300 characters at most.
    pub fn parse(input: &str) -> Result<Self> {
        let lines: Vec<&str> = input
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let text = lines.join("\n");
        if lines.is_empty() || lines.len() > 8 || text.chars().count() > 300 {
            return Err(EngineError::invalid(
                "postal_address",
                "must be 1 to 8 lines and at most 300 characters",
            ));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(EngineError::invalid(
                "postal_address",
                "must not contain control characters",
            ));
        }
        Ok(PostalAddress(text))
    }

    /// The address, lines separated by `\n`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An opaque push token naming the citizen's app installation.
#[derive(Clone, PartialEq, Eq)]
pub struct PushToken(String);

impl PushToken {
    /// Accepts 16 to 4096 printable ASCII characters.
    pub fn parse(input: &str) -> Result<Self> {
        let token = input.trim();
        if !(16..=4096).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EngineError::invalid(
                "push_token",
                "must be 16 to 4096 printable ASCII characters",
            ));
        }
        Ok(PushToken(token.to_owned()))
    }

    /// The token, for the push relay.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PushToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::identity::field_of;

    /// 2026-11-23T00:00:00Z.
    const TODAY: Timestamp = Timestamp(1_795_392_000_000);

    #[test]
    fn birth_dates_must_exist_and_not_be_in_the_future() {
        let d = BirthDate::parse("2000-02-29", TODAY).unwrap();
        assert_eq!(d.to_string(), "2000-02-29");
        assert!(BirthDate::parse("2026-11-23", TODAY).is_ok());
        for bad in [
            "1900-02-29",
            "2001-02-29",
            "2026-11-24",
            "1899-12-31",
            "2000-13-01",
            "20000101",
            "2000-1-01",
        ] {
            assert_eq!(
                field_of(BirthDate::parse(bad, TODAY).unwrap_err()),
                "birth_date",
                "{bad}"
            );
        }
    }

    #[test]
    fn epoch_day_arithmetic_matches_known_dates() {
        assert_eq!(BirthDate::from_parts(1970, 1, 1).days_since_epoch(), 0);
        assert_eq!(BirthDate::from_parts(2000, 3, 1).days_since_epoch(), 11_017);
        assert_eq!(BirthDate::from_parts(1969, 12, 31).days_since_epoch(), -1);
        assert_eq!(
            BirthDate::from_parts(2026, 11, 23).days_since_epoch(),
            TODAY.days_since_epoch()
        );
    }

    #[test]
    fn postal_addresses_and_push_tokens_are_bounded() {
        let a = PostalAddress::parse("Rua Augusta 1\n\n1100-048 Lisboa\n").unwrap();
        assert_eq!(a.as_str(), "Rua Augusta 1\n1100-048 Lisboa");
        assert!(PostalAddress::parse("   ").is_err());
        assert!(PostalAddress::parse("Rua\u{7}1").is_err());
        assert!(PushToken::parse("device-token-0123456789").is_ok());
        assert!(PushToken::parse("short").is_err());
        assert!(PushToken::parse("has spaces in the token").is_err());
    }
}
