//! Identities and contacts, parsed once into types that can only hold valid values.
//!
//! Every parser normalises first (trims, drops spacing, fixes case), then
//! validates, and names the offending field in its error. Identities are
//! here; phones (with their E.164 calling codes), emails, direct-message
//! handles, and the other things a citizen gives (birth date, postal
//! address, push token) have a file each.

mod dm;
mod email;
mod other;
mod phone;

pub use self::dm::{DmHandle, DmPolicy};
pub use self::email::Email;
pub use self::other::{BirthDate, PostalAddress, PushToken};
pub use self::phone::{Phone, calling_code};

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
    /// No identity document: the holder of one client's account-less codes
    /// to one phone or email (a destination verification). Never parsed
    /// from a request, never indexed, never shown as an account.
    Destination,
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
    /// `destination`: a destination verification's holder (never parsed).
    Destination,
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
            Self::Destination => "destination",
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
            IdentityKind::Destination => Err(EngineError::invalid(
                "identity.kind",
                "must be one of civil_id, passport, social_security",
            )),
        }
    }

    /// The kind of this identity.
    pub fn kind(&self) -> IdentityKind {
        match self {
            Identity::CivilId(_) => IdentityKind::CivilId,
            Identity::Passport { .. } => IdentityKind::Passport,
            Identity::SocialSecurity(_) => IdentityKind::SocialSecurity,
            Identity::Destination => IdentityKind::Destination,
        }
    }

    /// The document number (for passports, without the country).
    pub fn number(&self) -> &str {
        match self {
            Identity::CivilId(n) | Identity::SocialSecurity(n) => n,
            Identity::Passport { number, .. } => number,
            Identity::Destination => "",
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
            // Never held: a holder has no index keys (`Account::index_keys`).
            Identity::Destination => "i:none".to_owned(),
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

/// The field an `Invalid` error names (tests of the parsers).
#[cfg(test)]
pub(crate) fn field_of(e: EngineError) -> &'static str {
    match e {
        EngineError::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
