//! Mobile numbers: E.164, any country, Portuguese ones checked as mobiles;
//! and the country calling code of a number (for SMS budgets per country).

use std::fmt;

use crate::error::{EngineError, Result};

/// A mobile number in E.164 form (`+` and 7 to 15 digits), any country.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a number written with or without spacing; `00` stands for `+`.
    /// Portuguese numbers (+351) must be mobile numbers (nine digits from 9).
    pub fn parse(input: &str) -> Result<Self> {
        if input.len() > 32 {
            return Err(EngineError::invalid("phone", "is too long"));
        }
        let compacted: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = if let Some(rest) = compacted.strip_prefix('+') {
            rest
        } else if let Some(rest) = compacted.strip_prefix("00") {
            rest
        } else {
            return Err(EngineError::invalid(
                "phone",
                "must be in international form with its country code, e.g. +351912345678",
            ));
        };
        let valid = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !valid {
            return Err(EngineError::invalid(
                "phone",
                "must be + followed by 7 to 15 digits (E.164)",
            ));
        }
        if let Some(national) = digits.strip_prefix("351")
            && (national.len() != 9 || !national.starts_with('9'))
        {
            return Err(EngineError::invalid(
                "phone",
                "a Portuguese mobile number has 9 digits starting with 9",
            ));
        }
        Ok(Phone(format!("+{digits}")))
    }

    /// The number in E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the country prefix and last three digits hidden,
    /// e.g. `+351******678`.
    pub fn masked(&self) -> String {
        let digits = &self.0[1..];
        let shown_prefix = digits.len().min(3);
        let shown_suffix = 3.min(digits.len() - shown_prefix);
        let hidden = digits.len() - shown_prefix - shown_suffix;
        format!(
            "+{}{}{}",
            &digits[..shown_prefix],
            "*".repeat(hidden),
            &digits[digits.len() - shown_suffix..]
        )
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::field_of;

    #[test]
    fn phones_normalise_to_e164_for_any_country() {
        assert_eq!(
            Phone::parse("+351 912 345 678").unwrap().as_str(),
            "+351912345678"
        );
        assert_eq!(
            Phone::parse("0044 7700 900123").unwrap().as_str(),
            "+447700900123"
        );
        assert_eq!(
            Phone::parse("+1 (415) 555-0100").unwrap().as_str(),
            "+14155550100"
        );
        assert_eq!(
            Phone::parse("+55 11 91234-5678").unwrap().as_str(),
            "+5511912345678"
        );
    }

    #[test]
    fn phones_without_country_code_or_with_bad_digits_are_rejected() {
        for bad in [
            "912345678",
            "+0123456789",
            "+12345",
            "+1234567890123456",
            "+35191234567a",
            "+351212345678",
            "+35191234567",
            "+٣٥١٩١٢٣٤٥٦٧٨",
        ] {
            assert_eq!(field_of(Phone::parse(bad).unwrap_err()), "phone", "{bad}");
        }
        assert_eq!(
            field_of(Phone::parse(&"9".repeat(10_000)).unwrap_err()),
            "phone"
        );
    }

    #[test]
    fn phone_mask_keeps_country_prefix_and_last_three_digits() {
        assert_eq!(
            Phone::parse("+351912345678").unwrap().masked(),
            "+351******678"
        );
        assert_eq!(Phone::parse("+2901234567").unwrap().masked(), "+290****567");
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
}
