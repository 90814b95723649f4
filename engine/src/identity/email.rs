//! Email addresses: lower-cased, with an ASCII (or punycode) domain.

use std::fmt;

use crate::error::{EngineError, Result};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::field_of;

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
}
