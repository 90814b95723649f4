//! Client services (relying parties): the only callers the API accepts.
//!
//! A key reads `otpd_<id>_<secret>`: the 8-byte key id finds the client, and
//! only `SHA-256(secret)` is stored, compared in constant time. The secret is
//! 256 random bits, so a fast hash is enough: there is nothing to brute-force.
//! A client may hold several keys at once (rotation), each with an optional
//! expiry; a client's id never changes, and its challenges belong to it.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::hex;
use crate::limits::Rate;
use crate::terms::{Channel, Purpose};

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Login, verify, step-up, resend, challenge status, activation.
    Auth,
    /// Account registration, reads and self-service changes.
    Accounts,
    /// Lock, unlock, PIN reset, bulk import, backups, signing keys.
    Admin,
    /// Signature requests: a code bound to a document, and its attestation.
    Sign,
    /// Reading the audit trail (an account's events, the feed, exports):
    /// for a SIEM, which then cannot change anything. `admin` includes it.
    Audit,
    /// Unlocking an account or setting a new PIN after the citizen proved
    /// who they are elsewhere (Citizen Card, a Citizen Space): for the
    /// strong-authentication services only. `admin` does not include it.
    Recovery,
    /// Account-less verification: codes to any phone or email, with no
    /// account and no PIN (`/v1/destinations`, the Twilio surface). Its
    /// own scope, granted on purpose: `auth` does not include it.
    Verify,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 7] = [
        Scope::Auth,
        Scope::Accounts,
        Scope::Admin,
        Scope::Sign,
        Scope::Audit,
        Scope::Recovery,
        Scope::Verify,
    ];

    /// Parses the scope's name.
    pub fn parse(text: &str) -> Result<Scope> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auth" => Ok(Scope::Auth),
            "accounts" => Ok(Scope::Accounts),
            "admin" => Ok(Scope::Admin),
            "sign" => Ok(Scope::Sign),
            "audit" => Ok(Scope::Audit),
            "recovery" => Ok(Scope::Recovery),
            "verify" => Ok(Scope::Verify),
            other => Err(EngineError::invalid(
                "scopes",
                format!(
                    "unknown scope {other:?}: use auth, accounts, admin, sign, audit, recovery or verify"
                ),
            )),
        }
    }

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Auth => "auth",
            Scope::Accounts => "accounts",
            Scope::Admin => "admin",
            Scope::Sign => "sign",
            Scope::Audit => "audit",
            Scope::Recovery => "recovery",
            Scope::Verify => "verify",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Auth => 1,
            Scope::Accounts => 2,
            Scope::Admin => 4,
            Scope::Sign => 8,
            Scope::Audit => 16,
            Scope::Recovery => 32,
            Scope::Verify => 64,
        }
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(pub(crate) u8);

impl Scopes {
    /// The set of `scopes`.
    pub fn of(scopes: &[Scope]) -> Self {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set allows what `scope` guards: `scope` itself, or
    /// `admin`, which includes reading the audit trail.
    pub fn grants(self, scope: Scope) -> bool {
        self.contains(scope) || (scope == Scope::Audit && self.contains(Scope::Admin))
    }

    /// The scopes in the set.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

/// A client's id: fixed for its life, whatever keys it holds. Challenges
/// are owned by it (names may be reused once a client is revoked).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub(crate) [u8; 8]);

/// One API key's id: the `<id>` of `otpd_<id>_<secret>`, which finds its
/// client. A client's first key has the client's own id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub(crate) [u8; 8]);

macro_rules! short_id {
    ($name:ident) => {
        impl $name {
            /// Parses the 16-hex-digit form; `field` names the input in the error.
            pub fn parse(field: &'static str, text: &str) -> Result<Self> {
                hex::decode_array(text.trim())
                    .map(Self)
                    .ok_or_else(|| EngineError::invalid(field, "must be 16 hexadecimal digits"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                hex::write(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

short_id!(ClientId);
short_id!(KeyId);

/// A set of purposes (what a client may issue codes for).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PurposeSet(pub(crate) u8);

impl PurposeSet {
    /// The set of `purposes`.
    pub fn of(purposes: &[Purpose]) -> Self {
        PurposeSet(purposes.iter().fold(0, |bits, p| bits | 1 << p.slot()))
    }

    /// Whether `purpose` is in the set.
    pub fn contains(self, purpose: Purpose) -> bool {
        self.0 & (1 << purpose.slot()) != 0
    }

    /// The purposes in the set.
    pub fn iter(self) -> impl Iterator<Item = Purpose> {
        Purpose::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// Parses a purpose's API name (`login`, `step_up`, …).
    pub fn parse_one(text: &str) -> Result<Purpose> {
        let text = text.trim().to_ascii_lowercase();
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                EngineError::invalid(
                    "purposes",
                    format!(
                        "unknown purpose {text:?}: use {}",
                        Purpose::ALL.map(Purpose::as_str).join(", ")
                    ),
                )
            })
    }
}

impl fmt::Debug for PurposeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Purpose::as_str))
            .finish()
    }
}

/// A set of channels (how a client may have codes sent).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelSet(pub(crate) u16);

impl ChannelSet {
    /// The set of `channels`.
    pub fn of(channels: &[Channel]) -> Self {
        ChannelSet(channels.iter().fold(0, |bits, c| bits | 1 << c.tag()))
    }

    /// Whether `channel` is in the set.
    pub fn contains(self, channel: Channel) -> bool {
        self.0 & (1 << channel.tag()) != 0
    }

    /// The channels in the set.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        (0..16u8)
            .filter_map(Channel::from_tag)
            .filter(move |c| self.contains(*c))
    }
}

impl fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Channel::as_str))
            .finish()
    }
}

/// What a client may have codes issued for, beyond its scopes. `None`
/// allows every purpose or channel, including any added later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientPolicy {
    /// The purposes it may issue codes for.
    pub purposes: Option<PurposeSet>,
    /// The channels its codes may go by.
    pub channels: Option<ChannelSet>,
    /// At most this many codes issued at its request (a burst of `count`,
    /// then one every `per / count`).
    pub issue_rate: Option<Rate>,
}

impl ClientPolicy {
    /// Refuses empty sets and rates outside 1 to 1,000,000 per second,
    /// minute or hour.
    pub fn validate(&self) -> Result<()> {
        if self.purposes == Some(PurposeSet::default()) {
            return Err(EngineError::invalid(
                "purposes",
                "must name at least one purpose (leave it out to allow every one)",
            ));
        }
        if self.channels == Some(ChannelSet::default()) {
            return Err(EngineError::invalid(
                "channels",
                "must name at least one channel (leave it out to allow every one)",
            ));
        }
        if let Some(rate) = self.issue_rate {
            let per = rate.per.as_secs();
            if !(1..=1_000_000).contains(&rate.count)
                || rate.per.subsec_nanos() != 0
                || ![1, 60, 3600].contains(&per)
            {
                return Err(EngineError::invalid(
                    "issue_rate",
                    "must be 1 to 1000000 codes per second, minute or hour",
                ));
            }
        }
        Ok(())
    }
}

/// One of a client's API keys, as callers see it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its id.
    pub id: KeyId,
    /// When made.
    pub created_at: Timestamp,
    /// When it stops working by itself, if ever.
    pub expires_at: Option<Timestamp>,
    /// When revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl KeyInfo {
    /// Whether the key works at `now`: not revoked, not expired.
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

/// A registered client, as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Its id (challenges belong to it).
    pub id: ClientId,
    /// Its unique name among unrevoked clients.
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// What codes it may have issued.
    pub policy: ClientPolicy,
    /// A test client: only accounts whose phone and email are test
    /// destinations, never in production.
    pub test: bool,
    /// Its keys, revoked and expired ones included, oldest first.
    pub keys: Vec<KeyInfo>,
    /// When added.
    pub created_at: Timestamp,
    /// When revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A client as stored: what callers see, and the hash of each key's secret.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) info: ClientInfo,
    /// `SHA-256(secret)` of each key in `info.keys`, by key id.
    pub(crate) secrets: Vec<(KeyId, [u8; 32])>,
    /// Its verification services (the Twilio Verify surface's
    /// configurations), oldest first.
    pub(crate) services: Vec<Service>,
}

/// A verification service: a named configuration of a client's
/// account-less codes, as the Twilio Verify API has them (`VA…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its id (the `VA` sid's 32 hex digits).
    pub id: ServiceId,
    /// The name its messages may carry.
    pub friendly_name: String,
    /// The length of its codes (the destination policy's).
    pub code_length: u8,
    /// When added.
    pub created_at: Timestamp,
}

/// A verification service's id: random, 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub(crate) [u8; 16]);

impl ServiceId {
    /// Parses the 32-hex-digit form; `field` names the input in the error.
    pub fn parse(field: &'static str, text: &str) -> Result<Self> {
        hex::decode_array(text.trim())
            .map(Self)
            .ok_or_else(|| EngineError::invalid(field, "must be 32 hexadecimal digits"))
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write(f, &self.0)
    }
}

impl fmt::Debug for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceId({self})")
    }
}

impl Client {
    /// Whether `secret` is key `key`'s, and that key and the client work at `now`.
    pub(crate) fn accepts(&self, key: KeyId, secret: &[u8], now: Timestamp) -> bool {
        let Some((_, stored)) = self.secrets.iter().find(|(id, _)| *id == key) else {
            return false;
        };
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let matches: bool = hash.ct_eq(stored).into();
        let live = self.info.keys.iter().any(|k| k.id == key && k.live_at(now));
        matches && live && self.info.revoked_at.is_none()
    }
}

/// An API key, shown once when it is made.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ApiKey(String);

impl ApiKey {
    pub(crate) fn new(id: KeyId, secret: &[u8; 32]) -> Self {
        ApiKey(format!(
            "otpd_{}_{}",
            hex::encode(id.0),
            hex::encode(secret)
        ))
    }

    /// The key, to hand to the client's operator.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Splits a presented key into key id and secret bytes.
    pub(crate) fn split(presented: &str) -> Option<(KeyId, Vec<u8>)> {
        let rest = presented.strip_prefix("otpd_")?;
        let (id_hex, secret_hex) = rest.split_once('_')?;
        let id: [u8; 8] = hex::decode_array(id_hex)?;
        let secret: [u8; 32] = hex::decode_array(secret_hex)?;
        Some((KeyId(id), secret.to_vec()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

pub(crate) fn hash_secret(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

pub(crate) fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Err(EngineError::invalid(
            "name",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back_into_id_and_secret() {
        let key = ApiKey::new(KeyId([1; 8]), &[2; 32]);
        let (id, secret) = ApiKey::split(key.expose()).unwrap();
        assert_eq!(id, KeyId([1; 8]));
        assert_eq!(secret, vec![2; 32]);
        for bad in [
            "",
            "otpd_",
            "otpd_0101_02",
            "bearer",
            "otpd_zz01010101010101_00",
        ] {
            assert!(ApiKey::split(bad).is_none(), "{bad}");
        }
        assert!(!format!("{key:?}").contains("0202"));
    }

    fn key(id: u8, expires_at: Option<u64>) -> KeyInfo {
        KeyInfo {
            id: KeyId([id; 8]),
            created_at: Timestamp(0),
            expires_at: expires_at.map(Timestamp),
            revoked_at: None,
        }
    }

    fn portal() -> Client {
        Client {
            info: ClientInfo {
                id: ClientId([1; 8]),
                name: "portal".into(),
                scopes: Scopes::of(&[Scope::Auth]),
                policy: ClientPolicy::default(),
                test: false,
                keys: vec![key(1, None), key(5, Some(100))],
                created_at: Timestamp(0),
                revoked_at: None,
            },
            services: Vec::new(),
            secrets: vec![
                (KeyId([1; 8]), hash_secret(&[2; 32])),
                (KeyId([5; 8]), hash_secret(&[6; 32])),
            ],
        }
    }

    #[test]
    fn a_client_accepts_only_its_own_secret_until_revoked() {
        let mut client = portal();
        let first = KeyId([1; 8]);
        assert!(client.accepts(first, &[2; 32], Timestamp(1)));
        assert!(!client.accepts(first, &[3; 32], Timestamp(1)));
        assert!(
            !client.accepts(first, &[6; 32], Timestamp(1)),
            "another key's secret"
        );
        client.info.revoked_at = Some(Timestamp(1));
        assert!(!client.accepts(first, &[2; 32], Timestamp(1)));
    }

    #[test]
    fn a_key_works_until_it_expires_or_is_revoked_and_the_others_go_on() {
        let mut client = portal();
        let (first, second) = (KeyId([1; 8]), KeyId([5; 8]));
        assert!(client.accepts(second, &[6; 32], Timestamp(99)));
        assert!(!client.accepts(second, &[6; 32], Timestamp(100)), "expired");
        assert!(client.accepts(first, &[2; 32], Timestamp(100)));
        client.info.keys[0].revoked_at = Some(Timestamp(50));
        assert!(!client.accepts(first, &[2; 32], Timestamp(60)));
        assert!(
            !client.accepts(KeyId([9; 8]), &[2; 32], Timestamp(1)),
            "no such key"
        );
    }

    #[test]
    fn policies_refuse_empty_sets_and_odd_rates() {
        assert!(ClientPolicy::default().validate().is_ok());
        let only_sms = ClientPolicy {
            purposes: Some(PurposeSet::of(&[Purpose::Login, Purpose::StepUp])),
            channels: Some(ChannelSet::of(&[Channel::Sms])),
            issue_rate: Some(Rate::per_minute(30)),
        };
        assert!(only_sms.validate().is_ok());
        assert_eq!(
            format!("{:?}", only_sms.purposes.unwrap()),
            r#"["login", "step_up"]"#
        );
        assert_eq!(format!("{:?}", only_sms.channels.unwrap()), r#"["sms"]"#);
        for (bad, field) in [
            (
                ClientPolicy {
                    purposes: Some(PurposeSet::default()),
                    ..ClientPolicy::default()
                },
                "purposes",
            ),
            (
                ClientPolicy {
                    channels: Some(ChannelSet::default()),
                    ..ClientPolicy::default()
                },
                "channels",
            ),
            (
                ClientPolicy {
                    issue_rate: Some(Rate::per_day(10)),
                    ..ClientPolicy::default()
                },
                "issue_rate",
            ),
            (
                ClientPolicy {
                    issue_rate: Some(Rate::per_minute(0)),
                    ..ClientPolicy::default()
                },
                "issue_rate",
            ),
        ] {
            match bad.validate() {
                Err(EngineError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(PurposeSet::parse_one(" Step_Up ").unwrap(), Purpose::StepUp);
        assert!(PurposeSet::parse_one("everything").is_err());
    }

    #[test]
    fn short_ids_round_trip_through_text() {
        let id = KeyId([0xab; 8]);
        assert_eq!(id.to_string(), "ab".repeat(8));
        assert_eq!(KeyId::parse("key_id", &"AB".repeat(8)).unwrap(), id);
        assert!(KeyId::parse("key_id", "abc").is_err());
        assert!(ClientId::parse("client_id", &"zz".repeat(8)).is_err());
    }

    #[test]
    fn scopes_parse_and_combine() {
        let scopes = Scopes::of(&[
            Scope::parse("AUTH").unwrap(),
            Scope::parse("admin").unwrap(),
        ]);
        assert!(scopes.contains(Scope::Auth) && scopes.contains(Scope::Admin));
        assert!(!scopes.contains(Scope::Accounts));
        assert!(Scope::parse("root").is_err());
        assert_eq!(format!("{scopes:?}"), r#"["auth", "admin"]"#);
    }

    #[test]
    fn admin_reads_the_audit_trail_and_audit_alone_changes_nothing() {
        let admin = Scopes::of(&[Scope::Admin]);
        assert!(admin.grants(Scope::Audit) && admin.grants(Scope::Admin));
        assert!(!admin.contains(Scope::Audit), "granted, not held");
        let siem = Scopes::of(&[Scope::parse("audit").unwrap()]);
        assert!(siem.grants(Scope::Audit));
        for other in [Scope::Auth, Scope::Accounts, Scope::Admin, Scope::Sign] {
            assert!(!siem.grants(other), "{other:?}");
        }
        assert_eq!(format!("{siem:?}"), r#"["audit"]"#);
    }

    #[test]
    fn recovery_is_its_own_scope_that_admin_does_not_grant() {
        let admin = Scopes::of(&[Scope::Admin]);
        assert!(!admin.grants(Scope::Recovery));
        let desk = Scopes::of(&[Scope::parse("recovery").unwrap()]);
        assert!(desk.grants(Scope::Recovery));
        for other in [Scope::Auth, Scope::Accounts, Scope::Admin, Scope::Audit] {
            assert!(!desk.grants(other), "{other:?}");
        }
        let bits: Vec<u8> = Scope::ALL.iter().map(|s| s.bit()).collect();
        assert_eq!(bits, [1, 2, 4, 8, 16, 32, 64], "stored bits never move");
        assert_eq!(Scope::parse("Recovery").unwrap().as_str(), "recovery");
    }
}
