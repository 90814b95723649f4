//! Answers as typed JSON: masked contacts, never a PIN hash, a code or a
//! key. Each type is also its schema in the OpenAPI description
//! (`crate::openapi`), so the description cannot drift from what is sent.

use engine::{
    AccountView, Approval, ChallengeStatus, Channel, DmHandle, Document, Email, Identity, Issued,
    Phone, Timestamp,
};
use serde::Serialize;
use utoipa::ToSchema;

/// A direct-message handle as returned: the platform, and the handle masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct DmOut {
    pub platform: String,
    pub handle: String,
}

impl DmOut {
    pub fn new(dm: &DmHandle) -> Self {
        Self {
            platform: dm.platform().to_owned(),
            handle: dm.masked_handle(),
        }
    }
}

/// An identity as returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityOut {
    /// `civil_id`, `passport` or `social_security`.
    pub kind: &'static str,
    pub number: String,
    /// Issuing country, for passports.
    pub country: Option<String>,
}

impl IdentityOut {
    pub fn new(id: &Identity) -> Self {
        Self {
            kind: id.kind().as_str(),
            number: id.number().to_owned(),
            country: id.country().map(str::to_owned),
        }
    }
}

/// A document as returned: what the citizen is shown, fingerprint included.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentOut {
    pub name: String,
    /// SHA-256 of the document, 64 hexadecimal digits.
    pub sha256: String,
    /// Its size in bytes, when the client gave it.
    pub size: Option<u64>,
    /// A short form of the hash the citizen compares with what the app shows.
    pub fingerprint: String,
}

impl DocumentOut {
    pub fn new(d: &Document) -> Self {
        Self {
            name: d.name().to_owned(),
            sha256: d.sha256_hex(),
            size: d.size(),
            fingerprint: d.fingerprint(),
        }
    }
}

/// A just-issued challenge: never the code or the full destination.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedOut {
    pub challenge_id: String,
    /// `login`, `step_up`, `activation`, `contact_change` or `signature`.
    pub purpose: &'static str,
    /// `sms`, `email`, `push`, `letter` or `dm`.
    pub channel: &'static str,
    pub masked_destination: String,
    /// RFC 3339, UTC.
    pub expires_at: String,
    /// For a signature: the document to approve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentOut>,
}

impl IssuedOut {
    pub fn new(issued: &Issued) -> Self {
        Self {
            challenge_id: issued.challenge_id.to_string(),
            purpose: issued.purpose.as_str(),
            channel: issued.channel.as_str(),
            masked_destination: issued.masked_destination.clone(),
            expires_at: rfc3339(issued.expires_at),
            document: issued.document.as_deref().map(DocumentOut::new),
        }
    }
}

/// A challenge's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusOut {
    pub challenge_id: String,
    pub account_id: String,
    pub purpose: &'static str,
    pub channel: &'static str,
    pub masked_destination: String,
    pub created_at: String,
    pub expires_at: String,
    pub attempts_remaining: u32,
    /// `pending`, `approved`, `expired`, `superseded`, `exhausted` or `cancelled`.
    pub state: &'static str,
    /// Where its message is: `queued`, `sent`, `delivered`, `failed`, ...
    pub delivery: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentOut>,
}

impl StatusOut {
    pub fn new(s: &ChallengeStatus) -> Self {
        Self {
            challenge_id: s.id.to_string(),
            account_id: s.account.to_string(),
            purpose: s.purpose.as_str(),
            channel: s.channel.as_str(),
            masked_destination: s.masked_destination.clone(),
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            attempts_remaining: s.attempts_remaining,
            state: s.state.as_str(),
            delivery: s.delivery.as_str(),
            document: s.document.as_ref().map(DocumentOut::new),
        }
    }
}

/// Why and since when an account is locked.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockOut {
    /// `pin_failures`, `code_failures`, or `administrative: <reason>`.
    pub reason: String,
    pub since: String,
    /// When it unlocks by itself; `null`: only by an operator or a recovery.
    pub until: Option<String>,
}

/// An account: masked contacts, never the PIN hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOut {
    pub account_id: String,
    pub identity: IdentityOut,
    /// `active`, `pending_activation`, `locked` or `cancelled`.
    pub state: &'static str,
    pub lock: Option<LockOut>,
    /// Masked.
    pub phone: Option<String>,
    /// Masked.
    pub email: Option<String>,
    pub has_postal_address: bool,
    pub has_push_device: bool,
    pub dm: Option<DmOut>,
    /// `pt` or `en`; `null`: the server's default.
    pub locale: Option<&'static str>,
    pub pin_failures: u32,
    pub code_failures: u32,
    pub created_at: String,
    pub updated_at: String,
}

impl AccountOut {
    pub fn new(view: &AccountView) -> Self {
        let lock = match &view.state {
            engine::AccountState::Locked(lock) => Some(LockOut {
                reason: match &lock.reason {
                    engine::LockReason::PinFailures => "pin_failures".to_owned(),
                    engine::LockReason::CodeFailures => "code_failures".to_owned(),
                    engine::LockReason::Administrative(why) => format!("administrative: {why}"),
                },
                since: rfc3339(lock.since),
                until: lock.until.map(rfc3339),
            }),
            _ => None,
        };
        Self {
            account_id: view.id.to_string(),
            identity: IdentityOut::new(&view.identity),
            state: view.state.as_str(),
            lock,
            phone: view.phone.as_ref().map(Phone::masked),
            email: view.email.as_ref().map(Email::masked),
            has_postal_address: view.has_postal_address,
            has_push_device: view.has_push_device,
            dm: view.dm.as_ref().map(DmOut::new),
            locale: view.locale.map(engine::Locale::as_str),
            pin_failures: view.pin_failures,
            code_failures: view.code_failures,
            created_at: rfc3339(view.created_at),
            updated_at: rfc3339(view.updated_at),
        }
    }
}

/// An accepted code.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalOut {
    /// Always `approved`.
    pub result: &'static str,
    pub account_id: String,
    pub identity: IdentityOut,
    pub purpose: &'static str,
    /// The account's state once the code was accepted.
    pub state: &'static str,
    /// For a signature: the document the citizen approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentOut>,
    /// For login, step-up and signature codes: a signed JWT (EdDSA) of the
    /// approval naming the client that asked; keys at `/.well-known/jwks.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
}

impl ApprovalOut {
    pub fn new(approval: &Approval, attestation: Option<String>) -> Self {
        Self {
            result: "approved",
            account_id: approval.account_id.to_string(),
            identity: IdentityOut::new(&approval.identity),
            purpose: approval.purpose.as_str(),
            state: approval.state.as_str(),
            document: approval.document.as_ref().map(DocumentOut::new),
            attestation,
        }
    }
}

/// A client's key as listed: never the key or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientKeyOut {
    pub key_id: String,
    /// `live`, `expired` or `revoked`.
    pub state: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A client's issuance rate: `codes` per `per`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueRateOut {
    pub codes: u32,
    /// `second`, `minute` or `hour`.
    pub per: &'static str,
}

/// A client (relying party): never a key or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientOut {
    pub name: String,
    pub client_id: String,
    pub scopes: Vec<&'static str>,
    /// `null`: every purpose.
    pub purposes: Option<Vec<&'static str>>,
    /// `null`: every channel.
    pub channels: Option<Vec<&'static str>>,
    /// `null`: no rate of its own.
    pub issue_rate: Option<IssueRateOut>,
    pub test: bool,
    /// `active` or `revoked`.
    pub state: &'static str,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub keys: Vec<ClientKeyOut>,
}

impl ClientOut {
    pub fn new(info: &engine::ClientInfo, now: Timestamp) -> Self {
        let keys = info
            .keys
            .iter()
            .map(|k| ClientKeyOut {
                key_id: k.id.to_string(),
                state: if k.revoked_at.is_some() {
                    "revoked"
                } else if k.live_at(now) {
                    "live"
                } else {
                    "expired"
                },
                created_at: rfc3339(k.created_at),
                expires_at: k.expires_at.map(rfc3339),
                revoked_at: k.revoked_at.map(rfc3339),
            })
            .collect();
        let policy = &info.policy;
        Self {
            name: info.name.clone(),
            client_id: info.id.to_string(),
            scopes: info.scopes.iter().map(engine::Scope::as_str).collect(),
            purposes: policy
                .purposes
                .map(|p| p.iter().map(engine::Purpose::as_str).collect()),
            channels: policy
                .channels
                .map(|c| c.iter().map(Channel::as_str).collect()),
            issue_rate: policy.issue_rate.map(|r| IssueRateOut {
                codes: r.count,
                per: match r.per.as_secs() {
                    1 => "second",
                    60 => "minute",
                    _ => "hour",
                },
            }),
            test: info.test,
            state: if info.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            created_at: rfc3339(info.created_at),
            revoked_at: info.revoked_at.map(rfc3339),
            keys,
        }
    }
}

/// `2026-11-23T10:15:30.250Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let days = i64::try_from(t.0 / 86_400_000).unwrap_or(i64::MAX);
    let ms_of_day = t.0 % 86_400_000;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Timestamp(1_795_392_000_000)),
            "2026-11-23T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339(Timestamp(951_782_400_000 + 3_723_004)),
            "2000-02-29T01:02:03.004Z"
        );
    }
}

/// An account-less challenge as its client sees it: where it stands, and
/// the destination it proves (in full: the client gave it).
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationOut {
    pub challenge_id: String,
    /// `destination`.
    pub purpose: &'static str,
    /// `sms` or `email`.
    pub channel: &'static str,
    /// The phone (E.164) or email the code went to.
    #[schema(example = "+351910000000")]
    pub destination: String,
    pub masked_destination: String,
    pub created_at: String,
    pub expires_at: String,
    pub attempts_remaining: u32,
    /// `pending`, `verified`, `superseded`, `expired`, `exhausted` or `cancelled`.
    pub state: &'static str,
    /// `queued`, `sent`, `failed`, `dropped` or `withheld`.
    pub delivery: &'static str,
    /// True once its code was accepted: the destination is proven.
    pub verified: bool,
}

impl DestinationOut {
    pub fn new(d: &engine::DestinationStatus) -> Self {
        let s = &d.status;
        Self {
            challenge_id: s.id.to_string(),
            purpose: s.purpose.as_str(),
            channel: s.channel.as_str(),
            destination: d.destination.clone(),
            masked_destination: s.masked_destination.clone(),
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            attempts_remaining: s.attempts_remaining,
            state: s.state.as_str(),
            delivery: s.delivery.as_str(),
            verified: s.state == engine::ChallengeStatusKind::Verified,
        }
    }
}
