//! Stored records: versioned types apart from the domain, and the one place they are (de)coded.
//!
//! Each record is a bincode-encoded enum whose variant is its version, so a
//! later version can be added without rewriting old data. Decoding trusts the
//! shapes our own encoder wrote; anything else is reported as corruption.
//!
//! Over 600 lines on purpose: the house rule is one codec module, so every
//! version of every record, and the tests that old versions still decode,
//! sit side by side where a change to one is seen against the others.

mod audit;

use bincode::{Decode, Encode};

pub(crate) use audit::{decode_audit_block, encode_audit, encode_audit_block};

use crate::account::{Account, Status};
use crate::challenge::{Challenge, ChallengeState};
use crate::client::{
    ChannelSet, Client, ClientId, ClientInfo, ClientPolicy, KeyId, KeyInfo, PurposeSet, Scopes,
};
use crate::clock::Timestamp;
use crate::document::Document;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::idempotency::{IdempotencyRecord, Remembered};
use crate::identity::{BirthDate, DmHandle, Email, Identity, Phone, PostalAddress, PushToken};
use crate::keys::{MacKey, Seal};
use crate::limits::Rate;
use crate::lockout::{Lock, LockReason, Lockout};
use crate::outbox::{DeadLetter, Message};
use crate::secret::{CodeMac, PinHash};
use crate::terms::{Channel, DeliveryState, Locale, MessageId, Purpose};

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// A stored account, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbAccount {
    V1(DbAccountV1),
    V2(DbAccountV2),
}

/// V2 adds a direct-message handle and the citizen's chosen locale; a V1
/// account has neither (its messages follow the server's default locale).
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbAccountV2 {
    base: DbAccountV1,
    dm: Option<DbDmV1>,
    /// The locale's tag (0 pt, 1 en); `None` follows the server's default.
    locale: Option<u8>,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbDmV1 {
    platform: String,
    handle: String,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbAccountV1 {
    id: [u8; 16],
    identity: DbIdentityV1,
    phone: Option<String>,
    email: Option<String>,
    birth_date: Option<(u16, u8, u8)>,
    postal_address: Option<String>,
    push_token: Option<String>,
    pin_phc: Option<String>,
    status: DbStatusV1,
    pin_failures: u32,
    code_failures: u32,
    lockouts: u32,
    lock: Option<DbLockV1>,
    created_at: u64,
    updated_at: u64,
}

#[derive(Debug, Encode, Decode, PartialEq)]
enum DbIdentityV1 {
    CivilId(String),
    Passport { country: String, number: String },
    SocialSecurity(String),
}

#[derive(Debug, Encode, Decode, PartialEq)]
enum DbStatusV1 {
    PendingActivation,
    Active,
    Cancelled(u64),
}

#[derive(Debug, Encode, Decode, PartialEq)]
struct DbLockV1 {
    reason: DbLockReasonV1,
    since: u64,
    until: Option<u64>,
}

#[derive(Debug, Encode, Decode, PartialEq)]
enum DbLockReasonV1 {
    PinFailures,
    CodeFailures,
    Administrative(String),
}

/// A stored challenge, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbChallenge {
    V1(DbChallengeV1),
    V2(DbChallengeV2),
    V3(DbChallengeV3),
    V4(DbChallengeV4),
}

/// V4 names the client that asked for the code: no other client sees it.
/// Earlier versions have no owner, and any client may use them.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbChallengeV4 {
    base: DbChallengeV3,
    client: Option<[u8; 8]>,
}

/// V3 names the key that made the MAC: V1 and V2 were made by the root
/// code key itself, before keys had purposes.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbChallengeV3 {
    base: DbChallengeV2,
    /// 0 the root key, 1 the `code-mac` subkey.
    mac_key: u8,
    /// For a signature: the document its code is bound to.
    document: Option<DbDocumentV1>,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbDocumentV1 {
    name: String,
    sha256: [u8; 32],
    size: Option<u64>,
}

/// V2 adds the delivery state and the queued message.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbChallengeV2 {
    base: DbChallengeV1,
    /// 0 queued, 1 sent, 2 failed, 3 dropped.
    delivery: u8,
    message: Option<[u8; 16]>,
    locale: u8,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbChallengeV1 {
    id: [u8; 16],
    account: [u8; 16],
    purpose: u8,
    channel: u8,
    destination: String,
    mac: [u8; 32],
    created_at: u64,
    expires_at: u64,
    attempts: u8,
    max_attempts: u8,
    /// 0 live, 1 consumed, 2 superseded.
    state: u8,
}

pub(crate) fn encode_account(account: &Account) -> Vec<u8> {
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
    encode(&DbAccount::V2(DbAccountV2 {
        base,
        dm: a.dm.as_ref().map(|d| DbDmV1 {
            platform: d.platform().to_owned(),
            handle: d.handle().to_owned(),
        }),
        locale: a.locale.map(Locale::tag),
    }))
}

pub(crate) fn decode_account(bytes: &[u8]) -> Result<Account> {
    let corrupt = |what: &str| EngineError::Corrupt(format!("account record: invalid {what}"));
    let (r, dm, locale) = match decode(bytes, "account")? {
        DbAccount::V1(r) => (r, None, None),
        DbAccount::V2(v2) => (v2.base, v2.dm, v2.locale),
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
            lock: r.lock.map(|l| Lock {
                reason: match l.reason {
                    DbLockReasonV1::PinFailures => LockReason::PinFailures,
                    DbLockReasonV1::CodeFailures => LockReason::CodeFailures,
                    DbLockReasonV1::Administrative(r) => LockReason::Administrative(r),
                },
                since: Timestamp(l.since),
                until: l.until.map(Timestamp),
            }),
        },
        created_at: Timestamp(r.created_at),
        updated_at: Timestamp(r.updated_at),
        current: [None; 5],
    })
}

pub(crate) fn encode_challenge(c: &Challenge) -> Vec<u8> {
    encode(&DbChallenge::V4(DbChallengeV4 {
        client: c.client.map(|id| id.0),
        base: challenge_v3(c),
    }))
}

fn challenge_v3(c: &Challenge) -> DbChallengeV3 {
    DbChallengeV3 {
        mac_key: c.mac_key.tag(),
        document: c.document.as_ref().map(|d| DbDocumentV1 {
            name: d.name().to_owned(),
            sha256: d.sha256(),
            size: d.size(),
        }),
        base: DbChallengeV2 {
            base: DbChallengeV1 {
                id: c.id.0,
                account: c.account.0,
                purpose: u8::try_from(c.purpose.slot()).unwrap_or(u8::MAX),
                channel: c.channel.tag(),
                destination: c.destination.to_string(),
                mac: c.mac.0,
                created_at: c.created_at.0,
                expires_at: c.expires_at.0,
                attempts: c.attempts,
                max_attempts: c.max_attempts,
                state: match c.state {
                    ChallengeState::Live => 0,
                    ChallengeState::Consumed => 1,
                    ChallengeState::Superseded => 2,
                },
            },
            delivery: c.delivery.tag(),
            message: c.message.map(|m| m.0),
            locale: c.locale.tag(),
        },
    }
}

pub(crate) fn decode_challenge(bytes: &[u8]) -> Result<Challenge> {
    let corrupt = |what: &str| EngineError::Corrupt(format!("challenge record: invalid {what}"));
    let (v3, client) = match decode(bytes, "challenge")? {
        DbChallenge::V4(v4) => (DbChallenge::V3(v4.base), v4.client.map(ClientId)),
        older => (older, None),
    };
    let (v2, mac_key, document) = match v3 {
        // V1 predates the outbox: its code went to the delivery sink at once.
        DbChallenge::V1(base) => (
            DbChallengeV2 {
                base,
                delivery: DeliveryState::Sent.tag(),
                message: None,
                locale: Locale::Pt.tag(),
            },
            MacKey::Root,
            None,
        ),
        DbChallenge::V2(v2) => (v2, MacKey::Root, None),
        DbChallenge::V3(v3) => (
            v3.base,
            MacKey::from_tag(v3.mac_key).ok_or_else(|| corrupt("MAC key"))?,
            v3.document
                .map(|d| Box::new(Document::from_parts(d.name, d.sha256, d.size))),
        ),
        DbChallenge::V4(_) => return Err(corrupt("nesting")),
    };
    let (r, delivery, message, locale) = (
        v2.base,
        DeliveryState::from_tag(v2.delivery).ok_or_else(|| corrupt("delivery"))?,
        v2.message.map(MessageId),
        Locale::from_tag(v2.locale).ok_or_else(|| corrupt("locale"))?,
    );
    Ok(Challenge {
        id: ChallengeId(r.id),
        account: AccountId(r.account),
        purpose: Purpose::from_slot(r.purpose).ok_or_else(|| corrupt("purpose"))?,
        channel: Channel::from_tag(r.channel).ok_or_else(|| corrupt("channel"))?,
        destination: r.destination.into_boxed_str(),
        mac: CodeMac(r.mac),
        mac_key,
        document,
        created_at: Timestamp(r.created_at),
        expires_at: Timestamp(r.expires_at),
        attempts: r.attempts,
        max_attempts: r.max_attempts,
        state: match r.state {
            0 => ChallengeState::Live,
            1 => ChallengeState::Consumed,
            2 => ChallengeState::Superseded,
            _ => return Err(corrupt("state")),
        },
        delivery,
        message,
        locale,
        client,
    })
}

/// A stored outbox message, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbMessage {
    V1(DbMessageV1),
    V2(DbMessageV2),
    V3(DbMessageV3),
}

/// V3 carries notices: messages with no code, about a change to the account.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbMessageV3 {
    base: DbMessageV2,
    /// The notice's tag, for a notice.
    notice: Option<u8>,
}

/// V2 names how the code is sealed: V1 used an HMAC pad of the root key.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbMessageV2 {
    base: DbMessageV1,
    /// 0 the HMAC pad, 1 ChaCha20-Poly1305.
    seal: u8,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbMessageV1 {
    id: [u8; 16],
    challenge: [u8; 16],
    account: [u8; 16],
    purpose: u8,
    channel: u8,
    destination: String,
    sealed_code: Vec<u8>,
    locale: u8,
    expires_at: u64,
    created_at: u64,
    attempts: u32,
    next_attempt_at: u64,
}

pub(crate) fn encode_message(m: &Message) -> Vec<u8> {
    encode(&DbMessage::V3(DbMessageV3 {
        notice: m.notice.map(crate::outbox::Notice::tag),
        base: DbMessageV2 {
            seal: m.seal.tag(),
            base: DbMessageV1 {
                id: m.id.0,
                challenge: m.challenge.0,
                account: m.account.0,
                purpose: u8::try_from(m.purpose.slot()).unwrap_or(u8::MAX),
                channel: m.channel.tag(),
                destination: m.destination.to_string(),
                sealed_code: m.sealed_code.clone(),
                locale: m.locale.tag(),
                expires_at: m.expires_at.0,
                created_at: m.created_at.0,
                attempts: m.attempts,
                next_attempt_at: m.next_attempt_at.0,
            },
        },
    }))
}

pub(crate) fn decode_message(bytes: &[u8]) -> Result<Message> {
    let corrupt = |what: &str| EngineError::Corrupt(format!("outbox record: invalid {what}"));
    let (r, seal, notice) = match decode(bytes, "outbox")? {
        DbMessage::V1(r) => (r, Seal::Pad, None),
        DbMessage::V2(v2) => (
            v2.base,
            Seal::from_tag(v2.seal).ok_or_else(|| corrupt("seal"))?,
            None,
        ),
        DbMessage::V3(v3) => (
            v3.base.base,
            Seal::from_tag(v3.base.seal).ok_or_else(|| corrupt("seal"))?,
            match v3.notice {
                None => None,
                Some(tag) => {
                    Some(crate::outbox::Notice::from_tag(tag).ok_or_else(|| corrupt("notice"))?)
                }
            },
        ),
    };
    Ok(Message {
        id: MessageId(r.id),
        challenge: ChallengeId(r.challenge),
        account: AccountId(r.account),
        purpose: Purpose::from_slot(r.purpose).ok_or_else(|| corrupt("purpose"))?,
        channel: Channel::from_tag(r.channel).ok_or_else(|| corrupt("channel"))?,
        destination: r.destination.into_boxed_str(),
        sealed_code: r.sealed_code,
        seal,
        locale: Locale::from_tag(r.locale).ok_or_else(|| corrupt("locale"))?,
        expires_at: Timestamp(r.expires_at),
        created_at: Timestamp(r.created_at),
        attempts: r.attempts,
        next_attempt_at: Timestamp(r.next_attempt_at),
        in_flight: false,
        notice,
    })
}

/// A stored dead letter, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbDeadLetter {
    V1(DbDeadLetterV1),
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbDeadLetterV1 {
    id: [u8; 16],
    challenge: [u8; 16],
    channel: u8,
    attempts: u32,
    reason: String,
    failed_at: u64,
}

pub(crate) fn encode_dead_letter(d: &DeadLetter) -> Vec<u8> {
    encode(&DbDeadLetter::V1(DbDeadLetterV1 {
        id: d.id.0,
        challenge: d.challenge_id.0,
        channel: d.channel.tag(),
        attempts: d.attempts,
        reason: d.reason.clone(),
        failed_at: d.failed_at.0,
    }))
}

pub(crate) fn decode_dead_letter(bytes: &[u8]) -> Result<DeadLetter> {
    let DbDeadLetter::V1(r) = decode(bytes, "dead letter")?;
    Ok(DeadLetter {
        id: MessageId(r.id),
        challenge_id: ChallengeId(r.challenge),
        channel: Channel::from_tag(r.channel)
            .ok_or_else(|| EngineError::Corrupt("dead letter: invalid channel".into()))?,
        attempts: r.attempts,
        reason: r.reason,
        failed_at: Timestamp(r.failed_at),
    })
}

/// A stored client, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbClient {
    V1(DbClientV1),
    V2(DbClientV2),
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbClientV1 {
    id: [u8; 8],
    name: String,
    secret_hash: [u8; 32],
    scopes: u8,
    created_at: u64,
    revoked_at: Option<u64>,
}

/// V2 holds several keys (rotation, expiry) and the client's policy. A V1
/// client had one key whose id was the client's.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbClientV2 {
    id: [u8; 8],
    name: String,
    scopes: u8,
    created_at: u64,
    revoked_at: Option<u64>,
    keys: Vec<DbClientKeyV1>,
    /// Purpose slots as bits; `None` for every purpose.
    purposes: Option<u8>,
    /// Channel tags as bits; `None` for every channel.
    channels: Option<u16>,
    /// Codes per period (milliseconds).
    issue_rate: Option<(u32, u64)>,
    test: bool,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbClientKeyV1 {
    id: [u8; 8],
    secret_hash: [u8; 32],
    created_at: u64,
    expires_at: Option<u64>,
    revoked_at: Option<u64>,
}

pub(crate) fn encode_client(c: &Client) -> Vec<u8> {
    let info = &c.info;
    let keys = info
        .keys
        .iter()
        .filter_map(|k| {
            let (_, hash) = c.secrets.iter().find(|(id, _)| *id == k.id)?;
            Some(DbClientKeyV1 {
                id: k.id.0,
                secret_hash: *hash,
                created_at: k.created_at.0,
                expires_at: k.expires_at.map(|t| t.0),
                revoked_at: k.revoked_at.map(|t| t.0),
            })
        })
        .collect();
    encode(&DbClient::V2(DbClientV2 {
        id: info.id.0,
        name: info.name.clone(),
        scopes: info.scopes.0,
        created_at: info.created_at.0,
        revoked_at: info.revoked_at.map(|t| t.0),
        keys,
        purposes: info.policy.purposes.map(|p| p.0),
        channels: info.policy.channels.map(|c| c.0),
        issue_rate: info.policy.issue_rate.map(|r| {
            (
                r.count,
                u64::try_from(r.per.as_millis()).unwrap_or(u64::MAX),
            )
        }),
        test: info.test,
    }))
}

pub(crate) fn decode_client(bytes: &[u8]) -> Result<Client> {
    let r = match decode(bytes, "client")? {
        DbClient::V2(r) => r,
        DbClient::V1(r) => DbClientV2 {
            id: r.id,
            name: r.name,
            scopes: r.scopes,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            keys: vec![DbClientKeyV1 {
                id: r.id,
                secret_hash: r.secret_hash,
                created_at: r.created_at,
                expires_at: None,
                revoked_at: None,
            }],
            purposes: None,
            channels: None,
            issue_rate: None,
            test: false,
        },
    };
    let keys = r
        .keys
        .iter()
        .map(|k| KeyInfo {
            id: KeyId(k.id),
            created_at: Timestamp(k.created_at),
            expires_at: k.expires_at.map(Timestamp),
            revoked_at: k.revoked_at.map(Timestamp),
        })
        .collect();
    Ok(Client {
        info: ClientInfo {
            id: ClientId(r.id),
            name: r.name,
            scopes: Scopes(r.scopes),
            policy: ClientPolicy {
                purposes: r.purposes.map(PurposeSet),
                channels: r.channels.map(ChannelSet),
                issue_rate: r.issue_rate.map(|(count, per_ms)| Rate {
                    count,
                    per: std::time::Duration::from_millis(per_ms),
                }),
            },
            test: r.test,
            keys,
            created_at: Timestamp(r.created_at),
            revoked_at: r.revoked_at.map(Timestamp),
        },
        secrets: r
            .keys
            .iter()
            .map(|k| (KeyId(k.id), k.secret_hash))
            .collect(),
    })
}

/// A stored idempotency key, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbIdempotency {
    V1(DbIdempotencyV1),
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbIdempotencyV1 {
    client: String,
    key: String,
    fingerprint: [u8; 32],
    created_at: u64,
    /// The answer as the caller stored it; `None` for a claim not yet answered.
    answer: Option<Vec<u8>>,
}

pub(crate) fn encode_idempotency(r: &IdempotencyRecord) -> Vec<u8> {
    encode(&DbIdempotency::V1(DbIdempotencyV1 {
        client: r.client.clone(),
        key: r.key.clone(),
        fingerprint: r.remembered.fingerprint,
        created_at: r.remembered.created_at.0,
        answer: r.remembered.answer.as_deref().map(<[u8]>::to_vec),
    }))
}

pub(crate) fn decode_idempotency(bytes: &[u8]) -> Result<IdempotencyRecord> {
    let DbIdempotency::V1(r) = decode(bytes, "idempotency")?;
    if !crate::idempotency::is_valid_key(&r.key) {
        return Err(EngineError::Corrupt(
            "idempotency record: invalid key".into(),
        ));
    }
    Ok(IdempotencyRecord {
        client: r.client,
        key: r.key,
        remembered: Remembered {
            fingerprint: r.fingerprint,
            created_at: Timestamp(r.created_at),
            answer: r.answer.map(Into::into),
        },
    })
}

fn encode<T: Encode>(record: &T) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail.
    bincode::encode_to_vec(record, CONFIG).unwrap_or_default()
}

fn decode<T: Decode<()>>(bytes: &[u8], what: &str) -> Result<T> {
    match bincode::decode_from_slice::<T, _>(bytes, CONFIG) {
        Ok((value, read)) if read == bytes.len() => Ok(value),
        Ok(_) => Err(EngineError::Corrupt(format!(
            "{what} record has trailing bytes"
        ))),
        Err(e) => Err(EngineError::Corrupt(format!("{what} record: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockout::LockReason;

    fn sample_account() -> Account {
        Account {
            id: AccountId([3; 16]),
            identity: Identity::Passport {
                country: "BR".into(),
                number: "AB123456".into(),
            },
            phone: Some(Phone::parse("+5511912345678").unwrap()),
            email: Some(Email::parse("ana@example.com").unwrap()),
            birth_date: Some(BirthDate::from_parts(1990, 5, 17)),
            postal_address: Some(PostalAddress::parse("Rua A 1\nLisboa").unwrap()),
            push_token: Some(PushToken::parse("token-0123456789abcdef").unwrap()),
            dm: Some(Box::new(
                DmHandle::from_parts("mastodon", "ana@social.example").unwrap(),
            )),
            locale: Some(Locale::En),
            pin: Some(PinHash::from_phc_unchecked(
                "$argon2id$v=19$m=64,t=1,p=1$x$y".into(),
            )),
            status: Status::Active,
            lockout: Lockout {
                pin_failures: 2,
                code_failures: 1,
                lockouts: 1,
                lock: Some(Lock {
                    reason: LockReason::Administrative("review".into()),
                    since: Timestamp(5),
                    until: Some(Timestamp(9)),
                }),
            },
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            current: [None; 5],
        }
    }

    #[test]
    fn accounts_round_trip() {
        let account = sample_account();
        let back = decode_account(&encode_account(&account)).unwrap();
        assert_eq!(format!("{account:?}"), format!("{back:?}"));
        assert_eq!(back.pin, account.pin);
    }

    #[test]
    fn challenges_round_trip() {
        let c = Challenge {
            id: ChallengeId([1; 16]),
            account: AccountId([2; 16]),
            purpose: Purpose::Activation,
            channel: Channel::Letter,
            destination: "Rua A 1".into(),
            mac: CodeMac([4; 32]),
            mac_key: MacKey::Derived,
            document: Some(Box::new(Document::from_parts(
                "contrato.pdf".into(),
                [8; 32],
                Some(1024),
            ))),
            created_at: Timestamp(10),
            expires_at: Timestamp(20),
            attempts: 2,
            max_attempts: 5,
            state: ChallengeState::Superseded,
            delivery: DeliveryState::Queued,
            message: Some(MessageId([5; 16])),
            locale: Locale::En,
            client: Some(ClientId([7; 8])),
        };
        let back = decode_challenge(&encode_challenge(&c)).unwrap();
        assert_eq!(format!("{c:?}"), format!("{back:?}"));
        assert_eq!(back.mac.0, [4; 32]);
    }

    #[test]
    fn version_1_challenges_still_decode_as_already_sent() {
        let v1 = DbChallenge::V1(DbChallengeV1 {
            id: [1; 16],
            account: [2; 16],
            purpose: 0,
            channel: 0,
            destination: "+351912345678".into(),
            mac: [3; 32],
            created_at: 1,
            expires_at: 2,
            attempts: 0,
            max_attempts: 3,
            state: 0,
        });
        let c = decode_challenge(&encode(&v1)).unwrap();
        assert_eq!(c.delivery, DeliveryState::Sent);
        assert_eq!(c.message, None);
        assert_eq!(c.mac_key, MacKey::Root, "made before keys had purposes");
    }

    #[test]
    fn challenges_and_messages_record_which_key_and_seal_they_use() {
        let mut c = decode_challenge(&encode(&DbChallenge::V1(DbChallengeV1 {
            id: [1; 16],
            account: [2; 16],
            purpose: 1,
            channel: 0,
            destination: "+351912345678".into(),
            mac: [3; 32],
            created_at: 1,
            expires_at: 2,
            attempts: 0,
            max_attempts: 3,
            state: 0,
        })))
        .unwrap();
        c.mac_key = MacKey::Derived;
        let bytes = encode_challenge(&c);
        assert_eq!(bytes[0], 3, "written as V4");
        assert_eq!(decode_challenge(&bytes).unwrap().mac_key, MacKey::Derived);
        let v1 = DbMessage::V1(DbMessageV1 {
            id: [1; 16],
            challenge: [2; 16],
            account: [3; 16],
            purpose: 1,
            channel: 0,
            destination: "+351912345678".into(),
            sealed_code: vec![9; 6],
            locale: 0,
            expires_at: 2,
            created_at: 1,
            attempts: 0,
            next_attempt_at: 1,
        });
        let mut m = decode_message(&encode(&v1)).unwrap();
        assert_eq!(m.seal, Seal::Pad, "V1 messages were sealed with the pad");
        m.seal = Seal::Aead;
        let bytes = encode_message(&m);
        assert_eq!(bytes[0], 2, "written as V3");
        assert_eq!(decode_message(&bytes).unwrap().seal, Seal::Aead);
        assert_eq!(decode_message(&bytes).unwrap().notice, None);
        m.notice = Some(crate::outbox::Notice::ContactChanged);
        let notice = decode_message(&encode_message(&m)).unwrap();
        assert_eq!(notice.notice, Some(crate::outbox::Notice::ContactChanged));
    }

    #[test]
    fn damaged_records_are_reported_as_corrupt() {
        let bytes = encode_account(&sample_account());
        for damaged in [&bytes[..bytes.len() / 2], &[0xff, 0xff, 0xff][..], &[][..]] {
            assert!(matches!(
                decode_account(damaged),
                Err(EngineError::Corrupt(_))
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_account(&longer),
            Err(EngineError::Corrupt(_))
        ));
    }

    #[test]
    fn idempotency_records_round_trip_with_and_without_an_answer() {
        let mut record = IdempotencyRecord {
            client: "portal".into(),
            key: "order-42".into(),
            remembered: Remembered {
                fingerprint: [7; 32],
                created_at: Timestamp(5),
                answer: None,
            },
        };
        let bytes = encode_idempotency(&record);
        assert_eq!(bytes[0], 0, "V1 is variant 0");
        assert_eq!(decode_idempotency(&bytes).unwrap(), record);
        record.remembered.answer = Some(std::sync::Arc::from(&b"\x01\x00\xc9{}"[..]));
        assert_eq!(
            decode_idempotency(&encode_idempotency(&record)).unwrap(),
            record
        );
        record.key = String::new();
        assert!(matches!(
            decode_idempotency(&encode_idempotency(&record)),
            Err(EngineError::Corrupt(_))
        ));
    }

    #[test]
    fn version_3_challenges_still_decode_and_belong_to_no_client() {
        let mut c = decode_challenge(&encode(&DbChallenge::V1(DbChallengeV1 {
            id: [1; 16],
            account: [2; 16],
            purpose: 0,
            channel: 0,
            destination: "+351912345678".into(),
            mac: [3; 32],
            created_at: 1,
            expires_at: 2,
            attempts: 0,
            max_attempts: 3,
            state: 0,
        })))
        .unwrap();
        c.client = Some(ClientId([9; 8]));
        let v3 = encode(&DbChallenge::V3(challenge_v3(&c)));
        assert_eq!(v3[0], 2);
        assert_eq!(decode_challenge(&v3).unwrap().client, None);
        let v4 = encode_challenge(&c);
        assert_eq!(
            decode_challenge(&v4).unwrap().client,
            Some(ClientId([9; 8]))
        );
        c.client = None;
        assert_eq!(
            decode_challenge(&encode_challenge(&c)).unwrap().client,
            None
        );
    }

    #[test]
    fn version_1_clients_decode_with_one_key_whose_id_is_theirs() {
        let v1 = DbClient::V1(DbClientV1 {
            id: [3; 8],
            name: "portal".into(),
            secret_hash: [4; 32],
            scopes: Scopes::of(&[crate::client::Scope::Auth]).0,
            created_at: 10,
            revoked_at: None,
        });
        let client = decode_client(&encode(&v1)).unwrap();
        assert_eq!(client.info.id, ClientId([3; 8]));
        assert_eq!(client.info.policy, ClientPolicy::default());
        assert!(!client.info.test);
        assert_eq!(client.info.keys.len(), 1);
        assert_eq!(client.info.keys[0].id, KeyId([3; 8]));
        assert_eq!(client.info.keys[0].created_at, Timestamp(10));
        assert_eq!(client.secrets, vec![(KeyId([3; 8]), [4; 32])]);
        let bytes = encode_client(&client);
        assert_eq!(bytes[0], 1, "written as V2");
        let again = decode_client(&bytes).unwrap();
        assert_eq!(again.info, client.info);
        assert_eq!(again.secrets, client.secrets);
    }

    #[test]
    fn clients_round_trip_with_their_keys_and_policy() {
        let client = Client {
            info: ClientInfo {
                id: ClientId([1; 8]),
                name: "fe-dev".into(),
                scopes: Scopes::of(&[crate::client::Scope::Auth]),
                policy: ClientPolicy {
                    purposes: Some(PurposeSet::of(&[Purpose::Login])),
                    channels: Some(ChannelSet::of(&[Channel::Sms, Channel::Email])),
                    issue_rate: Some(Rate::per_minute(30)),
                },
                test: true,
                keys: vec![
                    KeyInfo {
                        id: KeyId([1; 8]),
                        created_at: Timestamp(1),
                        expires_at: Some(Timestamp(5)),
                        revoked_at: Some(Timestamp(3)),
                    },
                    KeyInfo {
                        id: KeyId([2; 8]),
                        created_at: Timestamp(2),
                        expires_at: None,
                        revoked_at: None,
                    },
                ],
                created_at: Timestamp(1),
                revoked_at: None,
            },
            secrets: vec![(KeyId([1; 8]), [5; 32]), (KeyId([2; 8]), [6; 32])],
        };
        let back = decode_client(&encode_client(&client)).unwrap();
        assert_eq!(back.info, client.info);
        assert_eq!(back.secrets, client.secrets);
    }

    #[test]
    fn records_start_with_their_version() {
        assert_eq!(encode_account(&sample_account())[0], 1, "V2 is variant 1");
    }

    #[test]
    fn version_1_accounts_still_decode_with_no_handle_and_the_default_locale() {
        let mut account = sample_account();
        account.dm = None;
        account.locale = None;
        let DbAccount::V2(v2) = decode::<DbAccount>(&encode_account(&account), "account").unwrap()
        else {
            panic!("written as V2");
        };
        let v1 = encode(&DbAccount::V1(v2.base));
        assert_eq!(v1[0], 0, "V1 is variant 0");
        let back = decode_account(&v1).unwrap();
        assert_eq!(format!("{account:?}"), format!("{back:?}"));
    }

    #[test]
    fn a_damaged_handle_or_locale_is_reported_as_corrupt() {
        let bad_handle = DbAccount::V2(DbAccountV2 {
            base: match decode::<DbAccount>(&encode_account(&sample_account()), "account") {
                Ok(DbAccount::V2(v2)) => v2.base,
                other => panic!("{other:?}"),
            },
            dm: Some(DbDmV1 {
                platform: "twitter".into(),
                handle: "has space".into(),
            }),
            locale: None,
        });
        assert!(matches!(
            decode_account(&encode(&bad_handle)),
            Err(EngineError::Corrupt(_))
        ));
        let DbAccount::V2(mut v2) = bad_handle else {
            unreachable!()
        };
        v2.dm = None;
        v2.locale = Some(9);
        assert!(matches!(
            decode_account(&encode(&DbAccount::V2(v2))),
            Err(EngineError::Corrupt(_))
        ));
    }
}
