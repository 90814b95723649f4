//! Test mode: test destinations, whose codes are fixed and never sent, and
//! whether test clients may exist, so front-end teams can run their suites
//! against a real otpd without a gateway.
//!
//! A destination is a mobile number or an email address. A code of any
//! purpose sent by SMS or email to one of them is its configured code, and
//! nothing is queued for a gateway. A test client (`ClientInfo::test`) may
//! only touch accounts whose phone and email are all test destinations.

use std::collections::{BTreeMap, HashMap};

use crate::code::CodePolicies;
use crate::error::{EngineError, Result};
use crate::identity::{Email, Phone};
use crate::secret::Code;
use crate::terms::{Channel, Purpose};

/// Test mode's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestMode {
    /// Whether test clients may be added and used (never in production).
    pub clients_allowed: bool,
    /// Each test destination (`+351910000000`, `dev@example.pt`, written
    /// as a citizen would) and the code every message to it carries.
    pub destinations: BTreeMap<String, String>,
}

impl TestMode {
    /// Checks every destination and code: a destination is a phone or an
    /// email, listed once, and its code is one the code policy of every
    /// purpose sent by SMS and email accepts as typed.
    pub fn validate(&self, codes: &CodePolicies) -> Result<()> {
        self.prepared(codes).map(|_| ())
    }

    /// The destinations in the form challenges hold them, with their codes.
    pub(crate) fn prepared(&self, codes: &CodePolicies) -> Result<TestDestinations> {
        let field = "test_mode.destinations";
        let mut fixed = HashMap::new();
        for (written, code) in &self.destinations {
            let destination = normalise(written).ok_or_else(|| {
                EngineError::invalid(
                    field,
                    format!("{written:?} is neither a mobile number (+351…) nor an email address"),
                )
            })?;
            for purpose in Purpose::ALL {
                for channel in [Channel::Sms, Channel::Email] {
                    let policy = codes.for_code(purpose, channel);
                    let typed = policy.normalise_input(&Code::new(code.as_str())).ok();
                    if typed.as_deref() != Some(code.as_str()) {
                        return Err(EngineError::invalid(
                            field,
                            format!(
                                "the code for {written:?} must be what the code policies make: \
                                 {} {} (codes.{} for {} by {})",
                                policy.length,
                                match policy.alphabet {
                                    crate::code::Alphabet::Digits => "digits",
                                    crate::code::Alphabet::Unambiguous => "letters and digits",
                                },
                                purpose.as_str(),
                                purpose.as_str(),
                                channel.as_str()
                            ),
                        ));
                    }
                }
            }
            if fixed.insert(destination, code.clone()).is_some() {
                return Err(EngineError::invalid(
                    field,
                    format!("{written:?} is listed twice (once in another spelling)"),
                ));
            }
        }
        Ok(TestDestinations(fixed))
    }
}

/// `written` as an account or a challenge holds it: a phone in E.164, an
/// email normalised.
fn normalise(written: &str) -> Option<String> {
    if written.contains('@') {
        Email::parse(written).ok().map(|e| e.as_str().to_owned())
    } else {
        Phone::parse(written).ok().map(|p| p.as_str().to_owned())
    }
}

/// The test destinations, ready to look up.
#[derive(Debug, Default)]
pub(crate) struct TestDestinations(HashMap<String, String>);

impl TestDestinations {
    /// The fixed code of a message by `channel` to `destination`, if it is a test destination.
    pub(crate) fn code_for(&self, channel: Channel, destination: &str) -> Option<Code> {
        if !matches!(channel, Channel::Sms | Channel::Email) {
            return None;
        }
        self.0.get(destination).map(|c| Code::new(c.as_str()))
    }

    /// Whether `destination` (a phone or an email as accounts hold them) is a test destination.
    pub(crate) fn contains(&self, destination: &str) -> bool {
        self.0.contains_key(destination)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(pairs: &[(&str, &str)]) -> TestMode {
        TestMode {
            clients_allowed: true,
            destinations: pairs
                .iter()
                .map(|(d, c)| ((*d).to_owned(), (*c).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn destinations_are_held_as_accounts_hold_them() {
        let ready = mode(&[
            ("00351 910 000 000", "123456"),
            ("Dev@Example.PT", "654321"),
        ])
        .prepared(&CodePolicies::default())
        .unwrap();
        assert_eq!(
            ready
                .code_for(Channel::Sms, "+351910000000")
                .unwrap()
                .expose(),
            "123456"
        );
        assert_eq!(
            ready
                .code_for(Channel::Email, "dev@example.pt")
                .unwrap()
                .expose(),
            "654321"
        );
        assert!(ready.code_for(Channel::Push, "+351910000000").is_none());
        assert!(ready.code_for(Channel::Sms, "+351910000001").is_none());
        assert!(ready.contains("dev@example.pt"));
    }

    #[test]
    fn bad_destinations_and_codes_are_refused_naming_them() {
        let codes = CodePolicies::default();
        for (pairs, needle) in [
            (vec![("not a contact", "123456")], "neither"),
            (vec![("+351910000000", "12345")], "6 digits"),
            (vec![("+351910000000", "12345a")], "6 digits"),
            (vec![("+351910000000", "12 34 56")], "6 digits"),
            (
                vec![("+351910000000", "123456"), ("00351910000000", "123456")],
                "twice",
            ),
        ] {
            let err = mode(&pairs).validate(&codes).unwrap_err().to_string();
            assert!(err.contains("test_mode.destinations"), "{err}");
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
        assert!(TestMode::default().validate(&codes).is_ok());
    }
}
