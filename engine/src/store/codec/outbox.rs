//! Stored outbox messages and dead letters, by version.

use bincode::{Decode, Encode};

use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::keys::Seal;
use crate::outbox::{DeadLetter, Message};
use crate::terms::{Channel, Locale, MessageId, Purpose};

use super::{decode, encode};

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
    pub(super) base: DbMessageV2,
    /// The notice's tag, for a notice.
    pub(super) notice: Option<u8>,
}

/// V2 names how the code is sealed: V1 used an HMAC pad of the root key.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbMessageV2 {
    pub(super) base: DbMessageV1,
    /// 0 the HMAC pad, 1 ChaCha20-Poly1305.
    pub(super) seal: u8,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbMessageV1 {
    pub(super) id: [u8; 16],
    pub(super) challenge: [u8; 16],
    pub(super) account: [u8; 16],
    pub(super) purpose: u8,
    pub(super) channel: u8,
    pub(super) destination: String,
    pub(super) sealed_code: Vec<u8>,
    pub(super) locale: u8,
    pub(super) expires_at: u64,
    pub(super) created_at: u64,
    pub(super) attempts: u32,
    pub(super) next_attempt_at: u64,
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
    pub(super) id: [u8; 16],
    pub(super) challenge: [u8; 16],
    pub(super) channel: u8,
    pub(super) attempts: u32,
    pub(super) reason: String,
    pub(super) failed_at: u64,
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
