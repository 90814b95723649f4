//! Stored challenges, by version, with the document a signature code is bound to.

use bincode::{Decode, Encode};

use crate::challenge::{Challenge, ChallengeState};
use crate::client::ClientId;
use crate::clock::Timestamp;
use crate::document::Document;
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::keys::MacKey;
use crate::secret::CodeMac;
use crate::terms::{Channel, DeliveryState, Locale, MessageId, Purpose};

use super::{decode, encode};

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
    pub(super) base: DbChallengeV3,
    pub(super) client: Option<[u8; 8]>,
}

/// V3 names the key that made the MAC: V1 and V2 were made by the root
/// code key itself, before keys had purposes.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbChallengeV3 {
    pub(super) base: DbChallengeV2,
    /// 0 the root key, 1 the `code-mac` subkey.
    pub(super) mac_key: u8,
    /// For a signature: the document its code is bound to.
    pub(super) document: Option<DbDocumentV1>,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbDocumentV1 {
    pub(super) name: String,
    pub(super) sha256: [u8; 32],
    pub(super) size: Option<u64>,
}

/// V2 adds the delivery state and the queued message.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbChallengeV2 {
    pub(super) base: DbChallengeV1,
    /// 0 queued, 1 sent, 2 failed, 3 dropped.
    pub(super) delivery: u8,
    pub(super) message: Option<[u8; 16]>,
    pub(super) locale: u8,
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbChallengeV1 {
    pub(super) id: [u8; 16],
    pub(super) account: [u8; 16],
    pub(super) purpose: u8,
    pub(super) channel: u8,
    pub(super) destination: String,
    pub(super) mac: [u8; 32],
    pub(super) created_at: u64,
    pub(super) expires_at: u64,
    pub(super) attempts: u8,
    pub(super) max_attempts: u8,
    /// 0 live, 1 consumed, 2 superseded.
    pub(super) state: u8,
}

pub(crate) fn encode_challenge(c: &Challenge) -> Vec<u8> {
    encode(&DbChallenge::V4(DbChallengeV4 {
        client: c.client.map(|id| id.0),
        base: challenge_v3(c),
    }))
}

pub(super) fn challenge_v3(c: &Challenge) -> DbChallengeV3 {
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
                    ChallengeState::Cancelled => 3,
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
            3 => ChallengeState::Cancelled,
            _ => return Err(corrupt("state")),
        },
        delivery,
        message,
        locale,
        client,
    })
}
