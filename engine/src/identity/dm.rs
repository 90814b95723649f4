//! Direct-message handles: a platform and the citizen's handle on it, to
//! which a relay sends codes (the FAQ's "direct message on Twitter").
//!
//! Which platforms are accepted, and on which a handle's case matters, is
//! policy ([`DmPolicy`]); a stored handle is re-read with the charset rules
//! alone, so a platform later dropped from the policy still loads.

use std::fmt;

use crate::error::{EngineError, Result};

/// Longest platform name.
const PLATFORM_MAX: usize = 32;
/// Longest handle (a federated `user@instance` included).
const HANDLE_MAX: usize = 64;

/// Which direct-message platforms accounts may name, and how handles compare on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmPolicy {
    /// Accepted platform names, lower case. Empty: no handle is accepted.
    pub platforms: Vec<String>,
    /// Platforms whose handles are case-sensitive. On every other one a
    /// handle is lower-cased, so `@Ana` and `@ana` are one handle.
    pub case_sensitive: Vec<String>,
}

impl Default for DmPolicy {
    fn default() -> Self {
        Self {
            platforms: vec!["twitter".into()],
            case_sensitive: Vec::new(),
        }
    }
}

impl DmPolicy {
    /// Parses a handle on a platform this policy accepts, normalising the
    /// platform to lower case and, where handles are case-insensitive, the handle too.
    pub fn parse(&self, platform: &str, handle: &str) -> Result<DmHandle> {
        let platform = parse_platform(platform)?;
        if !self.platforms.contains(&platform) {
            let known = if self.platforms.is_empty() {
                "direct messages are not enabled on this server".to_owned()
            } else {
                format!("must be one of {}", self.platforms.join(", "))
            };
            return Err(EngineError::invalid("dm.platform", known));
        }
        let mut handle = parse_handle(handle)?;
        if !self.case_sensitive.contains(&platform) {
            handle.make_ascii_lowercase();
        }
        Ok(DmHandle { platform, handle })
    }

    /// Refuses a malformed platform name, a case-sensitive platform not in
    /// the list, or a name listed twice.
    pub fn validate(&self) -> Result<()> {
        for (i, name) in self.platforms.iter().enumerate() {
            if parse_platform(name).ok().as_deref() != Some(name.as_str()) {
                return Err(EngineError::invalid(
                    "delivery.dm.platforms",
                    format!(
                        "each must be 1 to {PLATFORM_MAX} lower-case letters, digits, '.', '_' or '-', starting with a letter"
                    ),
                ));
            }
            if self.platforms[..i].contains(name) {
                return Err(EngineError::invalid(
                    "delivery.dm.platforms",
                    "names a platform twice",
                ));
            }
        }
        if self
            .case_sensitive
            .iter()
            .any(|p| !self.platforms.contains(p))
        {
            return Err(EngineError::invalid(
                "delivery.dm.case_sensitive_platforms",
                "may only name platforms listed in delivery.dm.platforms",
            ));
        }
        Ok(())
    }
}

/// A platform name: trimmed and lower-cased, then 1 to 32 of `a-z 0-9 . _ -`, starting with a letter.
fn parse_platform(input: &str) -> Result<String> {
    let platform = input.trim().to_ascii_lowercase();
    let well_formed = (1..=PLATFORM_MAX).contains(&platform.len())
        && platform.starts_with(|c: char| c.is_ascii_lowercase())
        && platform
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !well_formed {
        return Err(EngineError::invalid(
            "dm.platform",
            format!(
                "must be 1 to {PLATFORM_MAX} letters, digits, '.', '_' or '-', starting with a letter"
            ),
        ));
    }
    Ok(platform)
}

/// A handle: trimmed, one leading `@` dropped, then 1 to 64 of
/// `A-Z a-z 0-9 . _ -` with at most one `@` inside (`user@instance`).
fn parse_handle(input: &str) -> Result<String> {
    let trimmed = input.trim();
    let handle = trimmed.strip_prefix('@').unwrap_or(trimmed);
    let ats = handle.bytes().filter(|b| *b == b'@').count();
    let well_formed = (1..=HANDLE_MAX).contains(&handle.len())
        && handle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        && ats <= 1
        && !handle.starts_with('@')
        && !handle.ends_with('@');
    if !well_formed {
        return Err(EngineError::invalid(
            "dm.handle",
            format!(
                "must be 1 to {HANDLE_MAX} letters, digits, '.', '_' or '-' (an optional leading @, and user@instance for federated platforms)"
            ),
        ));
    }
    Ok(handle.to_owned())
}

/// A handle on a direct-message platform, normalised by [`DmPolicy::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DmHandle {
    platform: String,
    handle: String,
}

impl DmHandle {
    /// The platform, lower case.
    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// The handle, without a leading `@`.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// For display: the platform, the handle's first character, and the
    /// instance of a federated handle (`twitter:a***`, `mastodon:a***@social.example`).
    pub fn masked(&self) -> String {
        format!("{}:{}", self.platform, self.masked_handle())
    }

    /// The handle alone, masked as [`DmHandle::masked`] shows it (`a***`).
    pub fn masked_handle(&self) -> String {
        let (user, instance) = match self.handle.split_once('@') {
            Some((user, instance)) => (user, Some(instance)),
            None => (self.handle.as_str(), None),
        };
        let first = user.chars().next().map(String::from).unwrap_or_default();
        match instance {
            Some(instance) => format!("{first}***@{instance}"),
            None => format!("{first}***"),
        }
    }

    /// `platform:handle`: how a challenge or message names where it goes
    /// (a platform has no `:`, so the split is unambiguous).
    pub fn destination(&self) -> String {
        format!("{}:{}", self.platform, self.handle)
    }

    /// Reads back a [`DmHandle::destination`] or a stored handle, with the
    /// charset rules only: the policy may have changed since it was accepted.
    pub(crate) fn from_destination(destination: &str) -> Result<DmHandle> {
        let (platform, handle) = destination
            .split_once(':')
            .ok_or_else(|| EngineError::invalid("dm", "must be platform:handle"))?;
        Self::from_parts(platform, handle)
    }

    /// A stored handle, re-checked with the charset rules only.
    pub(crate) fn from_parts(platform: &str, handle: &str) -> Result<DmHandle> {
        let platform_ok = parse_platform(platform).ok().as_deref() == Some(platform);
        let handle_ok = parse_handle(handle).ok().as_deref() == Some(handle);
        if !platform_ok || !handle_ok {
            return Err(EngineError::invalid("dm", "is not a stored handle"));
        }
        Ok(DmHandle {
            platform: platform.to_owned(),
            handle: handle.to_owned(),
        })
    }
}

impl fmt::Display for DmHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:@{}", self.platform, self.handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::field_of;

    fn policy() -> DmPolicy {
        DmPolicy {
            platforms: vec!["twitter".into(), "mastodon".into(), "signal".into()],
            case_sensitive: vec!["signal".into()],
        }
    }

    #[test]
    fn handles_are_normalised_where_their_platform_ignores_case() {
        let h = policy().parse(" Twitter ", " @Ana_Silva ").unwrap();
        assert_eq!((h.platform(), h.handle()), ("twitter", "ana_silva"));
        assert_eq!(h, policy().parse("twitter", "ana_silva").unwrap());
        let h = policy().parse("signal", "Ana.Silva").unwrap();
        assert_eq!(h.handle(), "Ana.Silva", "signal's handles keep their case");
        let h = policy().parse("mastodon", "@Ana@Social.Example").unwrap();
        assert_eq!(h.handle(), "ana@social.example");
    }

    #[test]
    fn bad_platforms_and_handles_name_their_field() {
        for (platform, handle, field) in [
            ("facebook", "ana", "dm.platform"),
            ("", "ana", "dm.platform"),
            ("9gag", "ana", "dm.platform"),
            ("twit:ter", "ana", "dm.platform"),
            ("twitter", "", "dm.handle"),
            ("twitter", "@", "dm.handle"),
            ("twitter", "ana silva", "dm.handle"),
            ("twitter", "ana@", "dm.handle"),
            ("twitter", "a@b@c", "dm.handle"),
            ("twitter", "@@ana", "dm.handle"),
            ("twitter", "ana\u{202e}", "dm.handle"),
            ("twitter", "ãna", "dm.handle"),
            ("twitter", &"a".repeat(65), "dm.handle"),
        ] {
            assert_eq!(
                field_of(policy().parse(platform, handle).unwrap_err()),
                field,
                "{platform:?} {handle:?}"
            );
        }
        assert!(policy().parse("twitter", &"a".repeat(64)).is_ok());
        let none = DmPolicy {
            platforms: Vec::new(),
            case_sensitive: Vec::new(),
        };
        assert_eq!(
            field_of(none.parse("twitter", "ana").unwrap_err()),
            "dm.platform"
        );
    }

    #[test]
    fn masks_show_the_platform_and_the_first_character_only() {
        let h = policy().parse("twitter", "ana_silva").unwrap();
        assert_eq!(h.masked(), "twitter:a***");
        let h = policy().parse("mastodon", "ana@social.example").unwrap();
        assert_eq!(h.masked(), "mastodon:a***@social.example");
    }

    #[test]
    fn destinations_read_back_whatever_the_policy_says_now() {
        let h = policy().parse("mastodon", "ana@social.example").unwrap();
        assert_eq!(h.destination(), "mastodon:ana@social.example");
        assert_eq!(DmHandle::from_destination(&h.destination()).unwrap(), h);
        assert!(DmHandle::from_destination("twitter").is_err());
        assert!(DmHandle::from_destination("Twitter:ana").is_err());
        assert!(DmHandle::from_destination("twitter:ana silva").is_err());
    }

    #[test]
    fn a_policy_names_each_platform_once_and_well() {
        assert!(DmPolicy::default().validate().is_ok());
        assert!(policy().validate().is_ok());
        let mut p = policy();
        p.platforms.push("Twitter".into());
        assert_eq!(field_of(p.validate().unwrap_err()), "delivery.dm.platforms");
        let mut p = policy();
        p.platforms.push("twitter".into());
        assert_eq!(field_of(p.validate().unwrap_err()), "delivery.dm.platforms");
        let mut p = policy();
        p.case_sensitive.push("telegram".into());
        assert_eq!(
            field_of(p.validate().unwrap_err()),
            "delivery.dm.case_sensitive_platforms"
        );
    }
}
