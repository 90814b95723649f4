//! Stored audit events. The hash chain covers each event's canonical
//! encoding (`audit/chain.rs`), not these bytes, so this codec may change
//! version without breaking the chain.

use bincode::{Decode, Encode};

use super::{decode, encode};
use crate::audit::{Actor, AuditRecord, Detail, Event, EventKind, Key, Outcome};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::AccountId;

/// A stored audit event, by version. V2 adds the sequence number of the
/// same account's previous event: the stores chain an account's events
/// through it instead of adding an index key per event. V3 is a block:
/// consecutive events stored under one key, each a V1 or V2 record's
/// bytes (sled pays per key written, not per byte: docs/CAPACITY.md).
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbAudit {
    V1(DbAuditV1),
    V2(DbAuditV1, Option<u64>),
    V3(Vec<Vec<u8>>),
}

/// [`DbAudit::V3`] borrowed from the encoded events; its bytes are V3's.
#[derive(Encode)]
enum DbAuditBlockRef<'a> {
    #[allow(dead_code)]
    V1(DbAuditV1Ref<'a>),
    #[allow(dead_code)]
    V2(DbAuditV1Ref<'a>, Option<u64>),
    V3(&'a [&'a [u8]]),
}

#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) struct DbAuditV1 {
    seq: u64,
    at: u64,
    kind: String,
    outcome: String,
    account: Option<[u8; 16]>,
    client: Option<String>,
    request_id: Option<String>,
    source_ip: Option<String>,
    details: Vec<(String, String)>,
    prev: [u8; 32],
    hash: [u8; 32],
}

/// [`DbAuditV1`] borrowed from the record, so writing an event copies
/// nothing before encoding; its bytes are [`DbAudit::V1`]'s.
#[derive(Encode)]
enum DbAuditRef<'a> {
    // Never written; here so V2 has V2's tag.
    #[allow(dead_code)]
    V1(DbAuditV1Ref<'a>),
    V2(DbAuditV1Ref<'a>, Option<u64>),
}

#[derive(Encode)]
struct DbAuditV1Ref<'a> {
    seq: u64,
    at: u64,
    kind: &'a str,
    outcome: &'a str,
    account: Option<[u8; 16]>,
    client: Option<&'a str>,
    request_id: Option<&'a str>,
    source_ip: Option<&'a str>,
    details: &'a [(Key, Detail)],
    prev: [u8; 32],
    hash: [u8; 32],
}

/// Encodes `r`, with `account_prev`, its account's previous event.
pub(crate) fn encode_audit(r: &AuditRecord, account_prev: Option<u64>) -> Vec<u8> {
    let e = &r.event;
    encode(&DbAuditRef::V2(
        DbAuditV1Ref {
            seq: r.seq,
            at: r.at.0,
            kind: e.kind.as_str(),
            outcome: e.outcome.as_str(),
            account: e.account.map(|a| a.0),
            client: e.actor.client.as_deref(),
            request_id: e.actor.request_id.as_deref(),
            source_ip: e.actor.source_ip.as_deref(),
            details: e.details.as_slice(),
            prev: r.prev,
            hash: r.hash,
        },
        account_prev,
    ))
}

/// One block of events already encoded by [`encode_audit`], oldest first.
pub(crate) fn encode_audit_block(events: &[&[u8]]) -> Vec<u8> {
    encode(&DbAuditBlockRef::V3(events))
}

/// The events a stored value holds (one, or a block's), oldest first,
/// each with its account's previous event (`None` in V1 records, which the
/// per-event index keys find instead).
pub(crate) fn decode_audit_block(bytes: &[u8]) -> Result<Vec<(AuditRecord, Option<u64>)>> {
    match decode(bytes, "audit event")? {
        DbAudit::V3(events) => events
            .iter()
            .map(|event| match decode(event, "audit event")? {
                DbAudit::V3(_) => Err(EngineError::Corrupt(
                    "an audit block holds another block".into(),
                )),
                single => record(single),
            })
            .collect(),
        single => Ok(vec![record(single)?]),
    }
}

fn record(stored: DbAudit) -> Result<(AuditRecord, Option<u64>)> {
    let (r, account_prev) = match stored {
        DbAudit::V1(r) => (r, None),
        DbAudit::V2(r, account_prev) => (r, account_prev),
        DbAudit::V3(_) => {
            return Err(EngineError::Corrupt(
                "an audit block where one event was expected".into(),
            ));
        }
    };
    let corrupt = |what: &str| EngineError::Corrupt(format!("audit event {}: {what}", r.seq));
    let record = AuditRecord {
        seq: r.seq,
        at: Timestamp(r.at),
        event: Event {
            kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt("unknown kind"))?,
            outcome: Outcome::parse(&r.outcome).ok_or_else(|| corrupt("unknown outcome"))?,
            account: r.account.map(AccountId),
            actor: Actor {
                client: r.client.map(Into::into),
                request_id: r.request_id.map(Into::into),
                source_ip: r.source_ip.map(Into::into),
                idempotency: None,
                client_id: None,
            },
            details: r
                .details
                .into_iter()
                .map(|(k, v)| (Key::Owned(k), Detail::from(v)))
                .collect(),
        },
        prev: r.prev,
        hash: r.hash,
    };
    Ok((record, account_prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditRecord {
        AuditRecord {
            seq: 42,
            at: Timestamp(1_795_392_000_000),
            event: Event {
                kind: EventKind::Locked,
                outcome: Outcome::Success,
                account: Some(AccountId([3; 16])),
                actor: Actor {
                    client: Some("helpdesk".into()),
                    request_id: Some("r1".into()),
                    source_ip: Some("192.0.2.0".into()),
                    idempotency: None,
                    client_id: None,
                },
                details: smallvec::smallvec![("reason".into(), "administrative: fraud".into())],
            },
            prev: [1; 32],
            hash: [2; 32],
        }
    }

    #[test]
    fn an_audit_record_survives_its_codec() {
        let record = sample();
        let bytes = encode_audit(&record, Some(7));
        assert_eq!(
            decode_audit_block(&bytes).unwrap(),
            vec![(record.clone(), Some(7))]
        );
        assert!(decode_audit_block(&[0xff]).is_err());
        // The borrowed form writes exactly the owned record's bytes.
        let e = &record.event;
        let v1 = DbAuditV1 {
            seq: record.seq,
            at: record.at.0,
            kind: e.kind.as_str().to_owned(),
            outcome: e.outcome.as_str().to_owned(),
            account: e.account.map(|a| a.0),
            client: e.actor.client.as_deref().map(str::to_owned),
            request_id: e.actor.request_id.as_deref().map(str::to_owned),
            source_ip: e.actor.source_ip.as_deref().map(str::to_owned),
            details: e
                .details
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            prev: record.prev,
            hash: record.hash,
        };
        let owned = DbAudit::V2(v1, Some(7));
        assert_eq!(encode(&owned), bytes);
        // A record from before V2 still reads, with no link.
        let DbAudit::V2(v1, _) = owned else {
            unreachable!()
        };
        let old = encode(&DbAudit::V1(v1));
        assert_eq!(decode_audit_block(&old).unwrap(), vec![(record, None)]);
    }

    #[test]
    fn a_block_holds_its_events_in_order_and_nothing_else() {
        let mut first = sample();
        first.seq = 10;
        let mut second = sample();
        second.seq = 11;
        second.event.account = None;
        let one = encode_audit(&first, None);
        let two = encode_audit(&second, Some(3));
        let block = encode_audit_block(&[&one, &two]);
        assert_eq!(
            decode_audit_block(&block).unwrap(),
            vec![(first, None), (second, Some(3))]
        );
        // The borrowed form writes exactly the owned block's bytes.
        assert_eq!(encode(&DbAudit::V3(vec![one.clone(), two])), block);
        // A block inside a block, or trailing bytes, is corruption.
        let nested = encode_audit_block(&[&block]);
        assert!(decode_audit_block(&nested).is_err());
        let mut trailing = encode_audit_block(&[&one]);
        trailing.push(0);
        assert!(decode_audit_block(&trailing).is_err());
    }
}
