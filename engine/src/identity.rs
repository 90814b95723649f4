//! Identities and contacts, parsed once into types that can only hold valid values.
//!
//! Every parser normalises first (trims, drops spacing, fixes case), then
//! validates, and names the offending field in its error.

use std::fmt;

use crate::error::{EngineError, Result};

/// The identity document a citizen registers with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Portuguese civil identification number (NIC), 8 digits.
    CivilId(String),
    /// A passport: issuing country (ISO 3166-1 alpha-2) and document number.
    Passport {
        /// Issuing country, two upper-case letters.
        country: String,
        /// Document number, upper-case letters and digits.
        number: String,
    },
    /// Portuguese social-security number (NISS): 11 digits, the last a check digit.
    SocialSecurity(String),
}

/// Which kind of identity, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// `civil_id`
    CivilId,
    /// `passport`
    Passport,
    /// `social_security`
    SocialSecurity,
}

impl IdentityKind {
    /// Parses the API name of an identity kind.
    pub fn parse(kind: &str) -> Result<Self> {
        match kind.trim().to_ascii_lowercase().as_str() {
            "civil_id" => Ok(Self::CivilId),
            "passport" => Ok(Self::Passport),
            "social_security" | "niss" => Ok(Self::SocialSecurity),
            _ => Err(EngineError::invalid(
                "identity.kind",
                "must be one of civil_id, passport, social_security",
            )),
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CivilId => "civil_id",
            Self::Passport => "passport",
            Self::SocialSecurity => "social_security",
        }
    }
}

fn compact(input: &str) -> String {
    input
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.'))
        .flat_map(char::to_uppercase)
        .collect()
}

impl Identity {
    /// Parses an identity of `kind`. `country` is required for passports and refused for the others.
    pub fn parse(kind: IdentityKind, number: &str, country: Option<&str>) -> Result<Self> {
        if number.len() > 64 {
            return Err(EngineError::invalid("identity.number", "is too long"));
        }
        let number = compact(number);
        if country.is_some() && kind != IdentityKind::Passport {
            // Dropping it silently would store less than was sent.
            return Err(EngineError::invalid(
                "identity.country",
                "only passports have a country: a civil ID or a NISS is Portuguese",
            ));
        }
        match kind {
            IdentityKind::CivilId => parse_civil_id(&number).map(Identity::CivilId),
            IdentityKind::Passport => {
                let country = parse_country(country.unwrap_or_default())?;
                let valid = (5..=12).contains(&number.len())
                    && number
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if !valid {
                    return Err(EngineError::invalid(
                        "identity.number",
                        "a passport number is 5 to 12 letters and digits",
                    ));
                }
                Ok(Identity::Passport { country, number })
            }
            IdentityKind::SocialSecurity => {
                if number.len() != 11 || !number.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(EngineError::invalid(
                        "identity.number",
                        "a social-security number (NISS) is 11 digits",
                    ));
                }
                if !niss_check_digit_is_valid(&number) {
                    return Err(EngineError::invalid(
                        "identity.number",
                        "the social-security number's check digit is wrong",
                    ));
                }
                Ok(Identity::SocialSecurity(number))
            }
        }
    }

    /// The kind of this identity.
    pub fn kind(&self) -> IdentityKind {
        match self {
            Identity::CivilId(_) => IdentityKind::CivilId,
            Identity::Passport { .. } => IdentityKind::Passport,
            Identity::SocialSecurity(_) => IdentityKind::SocialSecurity,
        }
    }

    /// The document number (for passports, without the country).
    pub fn number(&self) -> &str {
        match self {
            Identity::CivilId(n) | Identity::SocialSecurity(n) => n,
            Identity::Passport { number, .. } => number,
        }
    }

    /// The issuing country, for passports.
    pub fn country(&self) -> Option<&str> {
        match self {
            Identity::Passport { country, .. } => Some(country),
            _ => None,
        }
    }

    /// A key that is equal for two identities exactly when they are the same document.
    pub(crate) fn index_key(&self) -> String {
        match self {
            Identity::CivilId(n) => format!("i:cc:{n}"),
            Identity::Passport { country, number } => format!("i:pp:{country}:{number}"),
            Identity::SocialSecurity(n) => format!("i:ss:{n}"),
        }
    }
}

/// Accepts the bare 8-digit NIC, or the 12-character Citizen Card document
/// number (`NNNNNNNN C AAV`), whose checksum is verified and whose first eight
/// digits are the NIC. Both normalise to the NIC, so one citizen cannot
/// register twice by typing the number two ways.
fn parse_civil_id(number: &str) -> Result<String> {
    let digits_only = number.bytes().all(|b| b.is_ascii_digit());
    if number.len() == 8 && digits_only {
        return Ok(number.to_owned());
    }
    if number.len() == 12 {
        let shape_ok = number.bytes().take(9).all(|b| b.is_ascii_digit())
            && number
                .bytes()
                .skip(9)
                .take(2)
                .all(|b| b.is_ascii_alphanumeric())
            && number.as_bytes().get(11).is_some_and(u8::is_ascii_digit);
        if shape_ok {
            if !citizen_card_checksum_is_valid(number) {
                return Err(EngineError::invalid(
                    "identity.number",
                    "the Citizen Card document number's check digit is wrong",
                ));
            }
            return Ok(number[..8].to_owned());
        }
    }
    Err(EngineError::invalid(
        "identity.number",
        "a civil ID number is 8 digits, or the 12-character Citizen Card number",
    ))
}

/// The Citizen Card document-number checksum: letters count 10..35, every
/// second value from the right is doubled (less 9 when over 9), sum ≡ 0 mod 10.
fn citizen_card_checksum_is_valid(number: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in number.chars().rev().enumerate() {
        let Some(mut value) = c.to_digit(36) else {
            return false;
        };
        if i % 2 == 1 {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        sum += value;
    }
    sum.is_multiple_of(10)
}

/// NISS: first digit 1 (person) or 2 (company); check digit is
/// `9 - (Σ dᵢ·wᵢ mod 10)` with weights 29, 23, 19, 17, 13, 11, 7, 5, 3, 2.
fn niss_check_digit_is_valid(number: &str) -> bool {
    const WEIGHTS: [u32; 10] = [29, 23, 19, 17, 13, 11, 7, 5, 3, 2];
    let digits: Vec<u32> = number.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 11 || !matches!(digits[0], 1 | 2) {
        return false;
    }
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
    9 - (sum % 10) == digits[10]
}

/// ISO 3166-1 alpha-2 codes currently assigned.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ \
EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU \
ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ \
LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA \
RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

fn parse_country(country: &str) -> Result<String> {
    let code = country.trim().to_ascii_uppercase();
    if code.len() == 2 && ISO_3166_ALPHA2.split(' ').any(|c| c == code) {
        Ok(code)
    } else {
        Err(EngineError::invalid(
            "identity.country",
            "must be an ISO 3166-1 alpha-2 country code such as PT or BR",
        ))
    }
}

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

/// An email address, lower-cased, with an ASCII (or punycode) domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and normalises an address.
    pub fn parse(input: &str) -> Result<Self> {
        let address = input.trim().to_ascii_lowercase();
        let invalid = |why: &str| Err(EngineError::invalid("email", why));
        if address.len() > 254 {
            return invalid("is longer than 254 characters");
        }
        let Some((local, domain)) = address.rsplit_once('@') else {
            return invalid("must contain @");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
        if !local_ok {
            return invalid("the part before @ is not a valid mailbox name");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let labels_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let tld_ok = labels.last().is_some_and(|tld| {
            tld.len() >= 2
                && (tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--"))
        });
        if !labels_ok || !tld_ok {
            return invalid("the domain after @ is not a valid domain name");
        }
        Ok(Email(address))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with the mailbox hidden but its first letter, e.g. `j***@example.pt`.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or(("", &self.0));
        let first = local.chars().next().map(String::from).unwrap_or_default();
        format!("{first}***@{domain}")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

    /// 2026-11-23T00:00:00Z.
    const TODAY: Timestamp = Timestamp(1_795_392_000_000);

    fn field_of(e: EngineError) -> &'static str {
        match e {
            EngineError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn country_list_has_every_assigned_code_once() {
        let codes: Vec<&str> = ISO_3166_ALPHA2.split(' ').collect();
        assert_eq!(codes.len(), 249);
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, codes, "the list is sorted and has no duplicates");
    }

    #[test]
    fn only_passports_take_a_country() {
        for kind in [IdentityKind::CivilId, IdentityKind::SocialSecurity] {
            let number = if kind == IdentityKind::CivilId {
                "12345678"
            } else {
                "11234567892"
            };
            let err = Identity::parse(kind, number, Some("PT")).unwrap_err();
            assert_eq!(field_of(err), "identity.country");
            assert!(Identity::parse(kind, number, None).is_ok());
        }
        assert!(Identity::parse(IdentityKind::Passport, "AB123456", Some("PT")).is_ok());
    }

    #[test]
    fn civil_id_accepts_eight_digits_after_trimming() {
        let id = Identity::parse(IdentityKind::CivilId, " 1234 5678 ", None).unwrap();
        assert_eq!(id, Identity::CivilId("12345678".into()));
    }

    #[test]
    fn citizen_card_number_normalises_to_its_civil_id() {
        // A number built to satisfy the published checksum.
        let id = Identity::parse(IdentityKind::CivilId, "00000000 0 zz4", None).unwrap();
        assert_eq!(id, Identity::CivilId("00000000".into()));
        let err = Identity::parse(IdentityKind::CivilId, "00000000 0 ZZ5", None).unwrap_err();
        assert_eq!(field_of(err), "identity.number");
    }

    #[test]
    fn civil_id_rejects_other_shapes() {
        for bad in ["1234567", "123456789", "1234567A", ""] {
            let err = Identity::parse(IdentityKind::CivilId, bad, None).unwrap_err();
            assert_eq!(field_of(err), "identity.number", "{bad}");
        }
    }

    #[test]
    fn niss_check_digit_is_enforced() {
        // 1123456789x: the weighted sum is 367, so x = 9 - 7 = 2.
        assert!(Identity::parse(IdentityKind::SocialSecurity, "11234567892", None).is_ok());
        let err = Identity::parse(IdentityKind::SocialSecurity, "11234567894", None).unwrap_err();
        assert_eq!(field_of(err), "identity.number");
        let err = Identity::parse(IdentityKind::SocialSecurity, "31234567892", None).unwrap_err();
        assert_eq!(field_of(err), "identity.number");
        let err = Identity::parse(IdentityKind::SocialSecurity, "1234", None).unwrap_err();
        assert_eq!(field_of(err), "identity.number");
    }

    #[test]
    fn passport_needs_a_real_country_and_upper_cases_its_number() {
        let id = Identity::parse(IdentityKind::Passport, "ab 123456", Some("br")).unwrap();
        assert_eq!(
            id,
            Identity::Passport {
                country: "BR".into(),
                number: "AB123456".into()
            }
        );
        let err = Identity::parse(IdentityKind::Passport, "AB123456", Some("XX")).unwrap_err();
        assert_eq!(field_of(err), "identity.country");
        let err = Identity::parse(IdentityKind::Passport, "AB123456", None).unwrap_err();
        assert_eq!(field_of(err), "identity.country");
        let err = Identity::parse(IdentityKind::Passport, "AB#12345", Some("PT")).unwrap_err();
        assert_eq!(field_of(err), "identity.number");
    }

    #[test]
    fn same_document_typed_two_ways_has_one_index_key() {
        let a = Identity::parse(IdentityKind::Passport, "ab123456", Some("fr")).unwrap();
        let b = Identity::parse(IdentityKind::Passport, "AB-123-456", Some("FR")).unwrap();
        assert_eq!(a.index_key(), b.index_key());
        let c = Identity::parse(IdentityKind::Passport, "AB123456", Some("DE")).unwrap();
        assert_ne!(a.index_key(), c.index_key());
    }

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
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse("  Joana.Silva@Example.PT ").unwrap().as_str(),
            "joana.silva@example.pt"
        );
        assert_eq!(
            Email::parse("joana@example.pt").unwrap().masked(),
            "j***@example.pt"
        );
        for bad in [
            "joana",
            "@example.pt",
            "joana@",
            "joana@example",
            "jo..ana@example.pt",
            "joana@-example.pt",
            "joana@exa mple.pt",
            "jo\0ana@example.pt",
            "joana@example.p1",
        ] {
            assert_eq!(field_of(Email::parse(bad).unwrap_err()), "email", "{bad}");
        }
    }

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
