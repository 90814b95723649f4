//! The audit trail as JSON: one event per line (JSON Lines) for the admin
//! API, exports and a SIEM; the signed trailer that closes an export; and
//! checking an export offline.
//!
//! A line's `details` is an object whose keys are sorted, as the hash
//! covers them; `at_ms` is the exact time the hash covers (`at` is the same
//! instant for people).

use engine::audit::{
    Actor, AuditPublicKey, AuditRecord, Break, Event, EventKind, Outcome, Report, verify,
};
use engine::{AccountId, Timestamp};
use serde_json::{Map, Value, json};

/// The time whose checkpoint anchors an export from `since` on: the
/// millisecond before it. A checkpoint is written in the batch of the event
/// that fills its run, with that event's time; anchored at a checkpoint of
/// time `since` itself, an export would leave out the events of that same
/// millisecond before it.
pub fn anchor_time(since: Timestamp) -> Timestamp {
    Timestamp(since.0.saturating_sub(1))
}

/// An event as JSON.
pub fn to_json(r: &AuditRecord) -> Value {
    let e = &r.event;
    let details: Map<String, Value> = e
        .details
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "seq": r.seq,
        "at": crate::wire_time(r.at),
        "at_ms": r.at.0,
        "kind": e.kind.as_str(),
        "outcome": e.outcome.as_str(),
        "account_id": e.account.map(|a| a.to_string()),
        "client": e.actor.client,
        "request_id": e.actor.request_id,
        "source_ip": e.actor.source_ip,
        "details": details,
        "prev": hex::encode(r.prev),
        "hash": hex::encode(r.hash),
    })
}

/// An event read back from its JSON, or what is wrong with it.
pub fn from_json(v: &Value) -> Result<AuditRecord, String> {
    let text = |key: &str| v[key].as_str().map(str::to_owned);
    let seq = v["seq"].as_u64().ok_or("no seq")?;
    let fail = |what: &str| format!("event {seq}: {what}");
    let hash32 = |key: &str| -> Result<[u8; 32], String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(v[key].as_str().unwrap_or_default(), &mut out)
            .map_err(|_| fail(&format!("{key} is not 64 hex digits")))?;
        Ok(out)
    };
    let account = match v["account_id"].as_str() {
        None => None,
        Some(id) => Some(AccountId::parse("account_id", id).map_err(|_| fail("bad account_id"))?),
    };
    let mut details = Vec::new();
    for (key, value) in v["details"].as_object().ok_or_else(|| fail("no details"))? {
        let value = value.as_str().ok_or_else(|| fail("a detail is not text"))?;
        details.push((key.clone(), value.to_owned()));
    }
    // The hash covers the details sorted by key, whatever order a tool
    // that rewrote the line left them in.
    details.sort();
    Ok(AuditRecord {
        seq,
        at: Timestamp(v["at_ms"].as_u64().ok_or_else(|| fail("no at_ms"))?),
        event: Event {
            kind: text("kind")
                .and_then(|k| EventKind::parse(&k))
                .ok_or_else(|| fail("unknown kind"))?,
            outcome: text("outcome")
                .and_then(|o| Outcome::parse(&o))
                .ok_or_else(|| fail("unknown outcome"))?,
            account,
            actor: Actor {
                client: text("client"),
                request_id: text("request_id"),
                source_ip: text("source_ip"),
            },
            details,
        },
        prev: hash32("prev")?,
        hash: hash32("hash")?,
    })
}

/// The line that closes an export: the last event's place and hash, signed.
pub fn trailer(seq: u64, hash: &[u8; 32], signature: &[u8; 64]) -> Value {
    json!({ "trailer": { "seq": seq, "hash": hex::encode(hash), "signature": hex::encode(signature) } })
}

/// What checking an export found.
#[derive(Debug)]
pub enum ExportCheck {
    /// The chain and its trailer hold.
    Holds(Report),
    /// It does not, from this event on.
    Broken(Break),
}

/// Checks an export (JSON Lines, ending with its trailer) against `key`,
/// allowing at most `max_unsigned` events in a row between checkpoints.
pub fn check_export(
    text: &str,
    key: &AuditPublicKey,
    max_unsigned: u64,
) -> Result<ExportCheck, String> {
    let mut records = Vec::new();
    let mut trailer = None;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
        if trailer.is_some() {
            return Err(format!("line {}: data after the trailer", n + 1));
        }
        if let Some(t) = value.get("trailer") {
            trailer = Some(t.clone());
            continue;
        }
        records.push(from_json(&value).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    let Some(trailer) = trailer else {
        let last = records.last().map_or(0, |r| r.seq);
        return Ok(ExportCheck::Broken(Break {
            seq: last + 1,
            why: "the export has no signed trailer: it was cut short after event {last}"
                .replace("{last}", &last.to_string()),
        }));
    };
    let seq = trailer["seq"].as_u64().ok_or("the trailer has no seq")?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(trailer["hash"].as_str().unwrap_or_default(), &mut hash)
        .map_err(|_| "the trailer's hash is not 64 hex digits")?;
    let signature = hex::decode(trailer["signature"].as_str().unwrap_or_default())
        .map_err(|_| "the trailer's signature is not hex")?;
    if !key.verifies(seq, &hash, &signature) {
        return Ok(ExportCheck::Broken(Break {
            seq,
            why: "the trailer's signature does not hold (the export was altered, or this is \
                  not the key that signed it)"
                .into(),
        }));
    }
    Ok(
        match verify(records, key, max_unsigned, Some((seq, hash))) {
            Ok(report) => ExportCheck::Holds(report),
            Err(broken) => ExportCheck::Broken(broken),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_its_json() {
        let record = AuditRecord {
            seq: 9,
            at: Timestamp(1_795_392_000_123),
            event: Event {
                kind: EventKind::CodeWrong,
                outcome: Outcome::Failure,
                account: Some(AccountId::parse("a", &"ab".repeat(16)).unwrap()),
                actor: Actor {
                    client: Some("portal".into()),
                    request_id: None,
                    source_ip: Some("192.0.2.0/24".into()),
                },
                details: vec![
                    ("attempts_remaining".into(), "2".into()),
                    ("purpose".into(), "login".into()),
                ],
            },
            prev: [1; 32],
            hash: [2; 32],
        };
        let json = to_json(&record);
        assert_eq!(json["at"], "2026-11-23T00:00:00.123Z");
        assert_eq!(from_json(&json).unwrap(), record);
        let line = serde_json::to_string(&json).unwrap();
        assert_eq!(
            from_json(&serde_json::from_str(&line).unwrap()).unwrap(),
            record
        );
    }
}
