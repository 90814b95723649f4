//! Stored idempotency keys, by version.

use bincode::{Decode, Encode};

use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::idempotency::{IdempotencyRecord, Remembered};

use super::{decode, encode};

/// A stored idempotency key, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbIdempotency {
    V1(DbIdempotencyV1),
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbIdempotencyV1 {
    pub(super) client: String,
    pub(super) key: String,
    pub(super) fingerprint: [u8; 32],
    pub(super) created_at: u64,
    /// The answer as the caller stored it; `None` for a claim not yet answered.
    pub(super) answer: Option<Vec<u8>>,
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
