//! Stored audit events. The hash chain covers each event's canonical
//! encoding (`audit/chain.rs`), not these bytes, so this codec may change
//! version without breaking the chain.

use bincode::{Decode, Encode};

use super::{decode, encode};
use crate::audit::{Actor, AuditRecord, Event, EventKind, Outcome};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::id::AccountId;

/// A stored audit event, by version.
#[derive(Debug, Encode, Decode, PartialEq)]
pub(crate) enum DbAudit {
    V1(DbAuditV1),
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

pub(crate) fn encode_audit(r: &AuditRecord) -> Vec<u8> {
    let e = &r.event;
    encode(&DbAudit::V1(DbAuditV1 {
        seq: r.seq,
        at: r.at.0,
        kind: e.kind.as_str().to_owned(),
        outcome: e.outcome.as_str().to_owned(),
        account: e.account.map(|a| a.0),
        client: e.actor.client.clone(),
        request_id: e.actor.request_id.clone(),
        source_ip: e.actor.source_ip.clone(),
        details: e.details.clone(),
        prev: r.prev,
        hash: r.hash,
    }))
}

pub(crate) fn decode_audit(bytes: &[u8]) -> Result<AuditRecord> {
    let DbAudit::V1(r) = decode(bytes, "audit event")?;
    let corrupt = |what: &str| EngineError::Corrupt(format!("audit event {}: {what}", r.seq));
    Ok(AuditRecord {
        seq: r.seq,
        at: Timestamp(r.at),
        event: Event {
            kind: EventKind::parse(&r.kind).ok_or_else(|| corrupt("unknown kind"))?,
            outcome: Outcome::parse(&r.outcome).ok_or_else(|| corrupt("unknown outcome"))?,
            account: r.account.map(AccountId),
            actor: Actor {
                client: r.client,
                request_id: r.request_id,
                source_ip: r.source_ip,
                client_id: None,
            },
            details: r.details,
        },
        prev: r.prev,
        hash: r.hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_record_survives_its_codec() {
        let record = AuditRecord {
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
                    client_id: None,
                },
                details: vec![("reason".into(), "administrative: fraud".into())],
            },
            prev: [1; 32],
            hash: [2; 32],
        };
        assert_eq!(decode_audit(&encode_audit(&record)).unwrap(), record);
        assert!(decode_audit(&[0xff]).is_err());
    }
}
