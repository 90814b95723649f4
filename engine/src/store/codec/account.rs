//! Stored accounts, by version.

use bincode::{Decode, Encode};

use crate::account::{Account, Current, Status};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::identity::{BirthDate, DmHandle, Email, Identity, Phone, PostalAddress, PushToken};
use crate::lockout::{Lock, LockReason, Lockout};
use crate::secret::PinHash;
use crate::terms::Locale;

use super::{decode, encode};

/// A stored account, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbAccount {
    V1(DbAccountV1),
    V2(DbAccountV2),
    /// V2 after the sequence number of the account's newest audit event:
    /// written with the account, it saves the store a pointer key of its
    /// own per event (docs/CAPACITY.md, "The audit trail"). First, so a
    /// reader of the pointer alone decodes two numbers, not the account.
    V3(Option<u64>, DbAccountV2),
}

/// V2 adds a direct-message handle and the citizen's chosen locale; a V1
/// account has neither (its messages follow the server's default locale).
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbAccountV2 {
    pub(super) base: DbAccountV1,
    pub(super) dm: Option<DbDmV1>,
    /// The locale's tag (0 pt, 1 en); `None` follows the server's default.
    pub(super) locale: Option<u8>,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbDmV1 {
    pub(super) platform: String,
    pub(super) handle: String,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbAccountV1 {
    pub(super) id: [u8; 16],
    pub(super) identity: DbIdentityV1,
    pub(super) phone: Option<String>,
    pub(super) email: Option<String>,
    pub(super) birth_date: Option<(u16, u8, u8)>,
    pub(super) postal_address: Option<String>,
    pub(super) push_token: Option<String>,
    pub(super) pin_phc: Option<String>,
    pub(super) status: DbStatusV1,
    pub(super) pin_failures: u32,
    pub(super) code_failures: u32,
    pub(super) lockouts: u32,
    pub(super) lock: Option<DbLockV1>,
    pub(super) created_at: u64,
    pub(super) updated_at: u64,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(super) enum DbIdentityV1 {
    CivilId(String),
    Passport {
        country: String,
        number: String,
    },
    SocialSecurity(String),
    /// A destination verification's holder (appended: older records decode as before).
    Destination,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(super) enum DbStatusV1 {
    PendingActivation,
    Active,
    Cancelled(u64),
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(super) struct DbLockV1 {
    pub(super) reason: DbLockReasonV1,
    pub(super) since: u64,
    pub(super) until: Option<u64>,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(super) enum DbLockReasonV1 {
    PinFailures,
    CodeFailures,
    Administrative(String),
}

/// Encodes `account`, with the sequence number of its newest audit event
/// if it has one.
pub(crate) fn encode_account(account: &Account, audit_newest: Option<u64>) -> Vec<u8> {
    let a = account;
    let base = DbAccountV1 {
        id: a.id.0,
        identity: match &a.identity {
            Identity::CivilId(n) => DbIdentityV1::CivilId(n.clone()),
            Identity::Passport { country, number } => DbIdentityV1::Passport {
                country: country.clone(),
                number: number.clone(),
            },
            Identity::SocialSecurity(n) => DbIdentityV1::SocialSecurity(n.clone()),
            Identity::Destination => DbIdentityV1::Destination,
        },
        phone: a.phone.as_ref().map(|p| p.as_str().to_owned()),
        email: a.email.as_ref().map(|e| e.as_str().to_owned()),
        birth_date: a.birth_date.map(BirthDate::parts),
        postal_address: a.postal_address.as_ref().map(|p| p.as_str().to_owned()),
        push_token: a.push_token.as_ref().map(|t| t.as_str().to_owned()),
        pin_phc: a.pin.as_ref().map(|p| p.as_phc().to_owned()),
        status: match a.status {
            Status::PendingActivation => DbStatusV1::PendingActivation,
            Status::Active => DbStatusV1::Active,
            Status::Cancelled(at) => DbStatusV1::Cancelled(at.0),
        },
        pin_failures: a.lockout.pin_failures,
        code_failures: a.lockout.code_failures,
        lockouts: a.lockout.lockouts,
        lock: a.lockout.lock.as_ref().map(|l| DbLockV1 {
            reason: match &l.reason {
                LockReason::PinFailures => DbLockReasonV1::PinFailures,
                LockReason::CodeFailures => DbLockReasonV1::CodeFailures,
                LockReason::Administrative(r) => DbLockReasonV1::Administrative(r.clone()),
            },
            since: l.since.0,
            until: l.until.map(|t| t.0),
        }),
        created_at: a.created_at.0,
        updated_at: a.updated_at.0,
    };
    let v2 = DbAccountV2 {
        base,
        dm: a.dm.as_ref().map(|d| DbDmV1 {
            platform: d.platform().to_owned(),
            handle: d.handle().to_owned(),
        }),
        locale: a.locale.map(Locale::tag),
    };
    encode(&match audit_newest {
        None => DbAccount::V2(v2),
        Some(_) => DbAccount::V3(audit_newest, v2),
    })
}

/// The sequence number of the newest audit event an account's stored
/// record holds (V3), without decoding the account.
pub(crate) fn account_audit_newest(bytes: &[u8]) -> Result<Option<u64>> {
    // An enum's variant index, then (V3) its first field.
    match bincode::decode_from_slice::<(u32, Option<u64>), _>(bytes, super::CONFIG) {
        Ok(((2, newest), _)) => Ok(newest),
        Ok(((0 | 1, _), _)) => Ok(None),
        Ok(((version, _), _)) => Err(EngineError::Corrupt(format!(
            "account record: unknown version {version}"
        ))),
        // A V1 or V2 record too short to hold the pair.
        Err(_) => match bincode::decode_from_slice::<u32, _>(bytes, super::CONFIG) {
            Ok((0 | 1, _)) => Ok(None),
            _ => Err(EngineError::Corrupt("account record: unreadable".into())),
        },
    }
}

pub(crate) fn decode_account(bytes: &[u8]) -> Result<Account> {
    let corrupt = |what: &str| EngineError::Corrupt(format!("account record: invalid {what}"));
    let (r, dm, locale) = match decode(bytes, "account")? {
        DbAccount::V1(r) => (r, None, None),
        DbAccount::V2(v2) | DbAccount::V3(_, v2) => (v2.base, v2.dm, v2.locale),
    };
    let dm = dm
        .map(|d| DmHandle::from_parts(&d.platform, &d.handle).map(Box::new))
        .transpose()
        .map_err(|_| corrupt("direct-message handle"))?;
    let locale = locale
        .map(|tag| Locale::from_tag(tag).ok_or_else(|| corrupt("locale")))
        .transpose()?;
    // Stored values were validated on the way in; re-parsing catches damage.
    let phone = r
        .phone
        .as_deref()
        .map(Phone::parse)
        .transpose()
        .map_err(|_| corrupt("phone"))?;
    let email = r
        .email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|_| corrupt("email"))?;
    Ok(Account {
        id: AccountId(r.id),
        identity: match r.identity {
            DbIdentityV1::CivilId(n) => Identity::CivilId(n),
            DbIdentityV1::Passport { country, number } => Identity::Passport { country, number },
            DbIdentityV1::SocialSecurity(n) => Identity::SocialSecurity(n),
            DbIdentityV1::Destination => Identity::Destination,
        },
        phone,
        email,
        birth_date: r.birth_date.map(|(y, m, d)| BirthDate::from_parts(y, m, d)),
        postal_address: r
            .postal_address
            .as_deref()
            .map(PostalAddress::parse)
            .transpose()
            .map_err(|_| corrupt("postal address"))?,
        push_token: r
            .push_token
            .as_deref()
            .map(PushToken::parse)
            .transpose()
            .map_err(|_| corrupt("push token"))?,
        dm,
        locale,
        pin: r.pin_phc.map(PinHash::from_phc_unchecked),
        status: match r.status {
            DbStatusV1::PendingActivation => Status::PendingActivation,
            DbStatusV1::Active => Status::Active,
            DbStatusV1::Cancelled(at) => Status::Cancelled(Timestamp(at)),
        },
        lockout: Lockout {
            pin_failures: r.pin_failures,
            code_failures: r.code_failures,
            lockouts: r.lockouts,
            lock: r.lock.map(|l| {
                Box::new(Lock {
                    reason: match l.reason {
                        DbLockReasonV1::PinFailures => LockReason::PinFailures,
                        DbLockReasonV1::CodeFailures => LockReason::CodeFailures,
                        DbLockReasonV1::Administrative(r) => LockReason::Administrative(r),
                    },
                    since: Timestamp(l.since),
                    until: l.until.map(Timestamp),
                })
            }),
        },
        created_at: Timestamp(r.created_at),
        updated_at: Timestamp(r.updated_at),
        current: Current::None,
    })
}
