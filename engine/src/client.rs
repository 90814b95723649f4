//! Client services (relying parties): the only callers the API accepts.
//!
//! A key reads `otpd_<id>_<secret>`: the 8-byte id finds the client, and only
//! `SHA-256(secret)` is stored, compared in constant time. The secret is 256
//! random bits, so a fast hash is enough: there is nothing to brute-force.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::hex;

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
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 6] = [
        Scope::Auth,
        Scope::Accounts,
        Scope::Admin,
        Scope::Sign,
        Scope::Audit,
        Scope::Recovery,
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
            other => Err(EngineError::invalid(
                "scopes",
                format!(
                    "unknown scope {other:?}: use auth, accounts, admin, sign, audit or recovery"
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

/// A registered client, as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Its unique name.
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// When added.
    pub created_at: Timestamp,
    /// When revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A client as stored.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) id: [u8; 8],
    pub(crate) info: ClientInfo,
    pub(crate) secret_hash: [u8; 32],
}

impl Client {
    pub(crate) fn accepts(&self, secret: &[u8]) -> bool {
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let matches: bool = hash.ct_eq(&self.secret_hash).into();
        matches && self.info.revoked_at.is_none()
    }
}

/// An API key, shown once when its client is added.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ApiKey(String);

impl ApiKey {
    pub(crate) fn new(id: [u8; 8], secret: &[u8; 32]) -> Self {
        ApiKey(format!("otpd_{}_{}", hex::encode(id), hex::encode(secret)))
    }

    /// The key, to hand to the client's operator.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Splits a presented key into id and secret bytes.
    pub(crate) fn split(presented: &str) -> Option<([u8; 8], Vec<u8>)> {
        let rest = presented.strip_prefix("otpd_")?;
        let (id_hex, secret_hex) = rest.split_once('_')?;
        let id: [u8; 8] = hex::decode_array(id_hex)?;
        let secret: [u8; 32] = hex::decode_array(secret_hex)?;
        Some((id, secret.to_vec()))
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
        let key = ApiKey::new([1; 8], &[2; 32]);
        let (id, secret) = ApiKey::split(key.expose()).unwrap();
        assert_eq!(id, [1; 8]);
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

    #[test]
    fn a_client_accepts_only_its_own_secret_until_revoked() {
        let mut client = Client {
            id: [1; 8],
            info: ClientInfo {
                name: "portal".into(),
                scopes: Scopes::of(&[Scope::Auth]),
                created_at: Timestamp(0),
                revoked_at: None,
            },
            secret_hash: hash_secret(&[2; 32]),
        };
        assert!(client.accepts(&[2; 32]));
        assert!(!client.accepts(&[3; 32]));
        client.info.revoked_at = Some(Timestamp(1));
        assert!(!client.accepts(&[2; 32]));
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
        assert_eq!(bits, [1, 2, 4, 8, 16, 32], "stored bits never move");
        assert_eq!(Scope::parse("Recovery").unwrap().as_str(), "recovery");
    }
}
