//! The audit trail as JSON: one event per line (JSON Lines) for the admin
//! API, exports and a SIEM; the signed trailer that closes an export; and
//! checking an export offline.
//!
//! A line's `details` is an object whose keys are sorted, as the hash
//! covers them; `at_ms` is the exact time the hash covers (`at` is the same
//! instant for people).

use engine::audit::{
    Actor, AuditPublicKey, AuditRecord, Break, Details, Event, EventKind, Outcome, Report, Verifier,
};
use engine::{AccountId, Timestamp};
use serde_json::Value;

use crate::wire::{EventOut, TrailerEnvelopeOut, TrailerOut};

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
    serde_json::to_value(event_out(r)).unwrap_or(Value::Null)
}

/// An event as answered.
pub fn event_out(r: &AuditRecord) -> EventOut {
    let e = &r.event;
    EventOut {
        seq: r.seq,
        at: crate::wire_time(r.at),
        at_ms: r.at.0,
        kind: e.kind.as_str(),
        outcome: e.outcome.as_str(),
        account_id: e.account.map(|a| a.to_string()),
        client: e.actor.client.as_deref().map(str::to_owned),
        request_id: e.actor.request_id.as_deref().map(str::to_owned),
        source_ip: e.actor.source_ip.as_deref().map(str::to_owned),
        details: e
            .details
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        prev: hex::encode(r.prev),
        hash: hex::encode(r.hash),
    }
}

/// The keys of an event's line: every one is covered by its hash (`at`
/// through `at_ms`), so a line with any other key was added to.
const KEYS: [&str; 12] = [
    "seq",
    "at",
    "at_ms",
    "kind",
    "outcome",
    "account_id",
    "client",
    "request_id",
    "source_ip",
    "details",
    "prev",
    "hash",
];

/// An event read back from its JSON, or what is wrong with it.
pub fn from_json(v: &Value) -> Result<AuditRecord, String> {
    parse_line(v).map_err(|(seq, why)| match seq {
        Some(seq) => format!("event {seq}: {why}"),
        None => why,
    })
}

/// [`from_json`], with the sequence number the line claims when it has one.
///
/// Strict, as an export is evidence: what a reader sees must be what the
/// hash covers, so a field the hash does not cover, an `at` that is not
/// `at_ms`, or a value of the wrong type (a number where text or null
/// belongs reads back as absent) is refused, not passed over.
fn parse_line(v: &Value) -> Result<AuditRecord, (Option<u64>, String)> {
    let object = v
        .as_object()
        .ok_or((None, "not a JSON object".to_owned()))?;
    let seq = v["seq"]
        .as_u64()
        .ok_or((None, "no sequence number (seq)".to_owned()))?;
    let fail = |what: String| (Some(seq), what);
    if let Some(extra) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(fail(format!("{extra:?} is not a field of an event")));
    }
    let optional = |key: &str| -> Result<Option<String>, (Option<u64>, String)> {
        match &v[key] {
            Value::Null if object.contains_key(key) => Ok(None),
            Value::String(text) => Ok(Some(text.clone())),
            _ => Err(fail(format!("{key} is neither text nor null"))),
        }
    };
    let required = |key: &str| optional(key)?.ok_or_else(|| fail(format!("no {key}")));
    let hash32 = |key: &str| -> Result<[u8; 32], (Option<u64>, String)> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(required(key)?, &mut out)
            .map_err(|_| fail(format!("{key} is not 64 hex digits")))?;
        Ok(out)
    };
    let account = match optional("account_id")? {
        None => None,
        Some(id) => {
            Some(AccountId::parse("account_id", &id).map_err(|_| fail("bad account_id".into()))?)
        }
    };
    let mut details = Details::new();
    let listed = v["details"]
        .as_object()
        .ok_or_else(|| fail("no details".into()))?;
    for (key, value) in listed {
        let value = value
            .as_str()
            .ok_or_else(|| fail(format!("detail {key:?} is not text")))?;
        details.push((key.clone().into(), value.to_owned().into()));
    }
    // The hash covers the details sorted by key, whatever order a tool
    // that rewrote the line left them in.
    details.sort_by(|(a, _), (b, _)| a.cmp(b));
    let at = Timestamp(v["at_ms"].as_u64().ok_or_else(|| fail("no at_ms".into()))?);
    if required("at")? != crate::wire_time(at) {
        return Err(fail(format!(
            "at does not say the time at_ms does ({})",
            crate::wire_time(at)
        )));
    }
    Ok(AuditRecord {
        seq,
        at,
        event: Event {
            kind: EventKind::parse(&required("kind")?)
                .ok_or_else(|| fail("unknown kind".into()))?,
            outcome: Outcome::parse(&required("outcome")?)
                .ok_or_else(|| fail("unknown outcome".into()))?,
            account,
            actor: Actor {
                client: optional("client")?.map(Into::into),
                request_id: optional("request_id")?.map(Into::into),
                source_ip: optional("source_ip")?.map(Into::into),
                idempotency: None,
                client_id: None,
            },
            details,
        },
        prev: hash32("prev")?,
        hash: hash32("hash")?,
    })
}

/// The line that closes an export: the last event's place and hash, signed.
pub fn trailer(seq: u64, hash: &[u8; 32], signature: &[u8; 64]) -> TrailerEnvelopeOut {
    TrailerEnvelopeOut {
        trailer: TrailerOut {
            seq,
            hash: hex::encode(hash),
            signature: hex::encode(signature),
        },
    }
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
///
/// Lines are checked in order and the first fault is the one reported: a
/// forger who re-links the chain and rewrites the trailer's hash is named
/// at the first checkpoint whose signature fails, not at the trailer. A
/// line that is not JSON or not an event (a tail cut mid-line, an edited
/// line) is a break at the event it should have been.
pub fn check_export(
    text: &str,
    key: &AuditPublicKey,
    max_unsigned: u64,
) -> Result<ExportCheck, String> {
    check_export_from(text.as_bytes(), key, max_unsigned)
}

/// [`check_export`] reading the export a line at a time, so an export of
/// any length is checked in constant memory. `Err` only when it cannot be
/// read; whatever it holds, it is checked.
pub fn check_export_from(
    mut export: impl std::io::BufRead,
    key: &AuditPublicKey,
    max_unsigned: u64,
) -> Result<ExportCheck, String> {
    let mut verifier = Verifier::new(key, max_unsigned);
    // The last event checked, if any.
    let mut last: Option<u64> = None;
    let mut trailer = None;
    let broken = |seq: u64, why: String| Ok(ExportCheck::Broken(Break { seq, why }));
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = export
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read line {n}: {e}"))?;
        if read == 0 {
            break;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let next = last.map_or(1, |l| l + 1);
        if trailer.is_some() {
            return broken(next, format!("line {n}: data after the trailer"));
        }
        // Not UTF-8 is not JSON either: a break, like any altered line.
        let value: Value = match serde_json::from_slice(&line) {
            Ok(value) => value,
            Err(e) => {
                return broken(
                    next,
                    format!("line {n} is not JSON ({e}): the export was cut or altered"),
                );
            }
        };
        if let Some(t) = value.get("trailer") {
            trailer = Some(t.clone());
            continue;
        }
        let record = match parse_line(&value) {
            Ok(record) => record,
            Err((claimed, why)) => {
                // Before the first event, the line's own number is the best guess.
                let seq = last.map_or(claimed.unwrap_or(1), |l| l + 1);
                return broken(seq, format!("line {n} is not an event as exported: {why}"));
            }
        };
        if let Err(b) = verifier.check(&record) {
            return Ok(ExportCheck::Broken(b));
        }
        last = Some(record.seq);
    }
    let last = last.unwrap_or(0);
    let Some(trailer) = trailer else {
        return broken(
            last + 1,
            format!("the export has no signed trailer: it was cut short after event {last}"),
        );
    };
    let mut hash = [0u8; 32];
    let parsed = trailer["seq"].as_u64().filter(|_| {
        hex::decode_to_slice(trailer["hash"].as_str().unwrap_or_default(), &mut hash).is_ok()
    });
    let signature = hex::decode(trailer["signature"].as_str().unwrap_or_default());
    let (Some(seq), Ok(signature)) = (parsed, signature) else {
        return broken(
            last + 1,
            "the trailer is not a seq, a 64-hex-digit hash and a hex signature".into(),
        );
    };
    if !key.verifies(seq, &hash, &signature) {
        return broken(
            seq,
            "the trailer's signature does not hold (the export was altered, or this is \
             not the key that signed it)"
                .into(),
        );
    }
    Ok(match verifier.finish(Some((seq, hash))) {
        Ok(report) => ExportCheck::Holds(report),
        Err(broken) => ExportCheck::Broken(broken),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
                    idempotency: None,
                    client_id: None,
                },
                details: [
                    ("attempts_remaining".into(), "2".into()),
                    ("purpose".into(), "login".into()),
                ]
                .into_iter()
                .collect(),
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

    #[test]
    fn a_line_showing_what_its_hash_does_not_cover_is_refused() {
        let record = AuditRecord {
            seq: 3,
            at: Timestamp(1_795_392_000_123),
            event: Event {
                kind: EventKind::Unlocked,
                outcome: Outcome::Success,
                account: None,
                actor: Actor::default(),
                details: Details::new(),
            },
            prev: [1; 32],
            hash: [2; 32],
        };
        let json = to_json(&record);
        for (key, value) in [
            ("account_id", json!(42)),
            ("client", json!(["admin"])),
            ("at", json!("2020-01-01T00:00:00.000Z")),
            ("by", json!("the minister")),
        ] {
            let mut changed = json.clone();
            changed[key] = value;
            let why = from_json(&changed).unwrap_err();
            assert!(why.starts_with("event 3: "), "{key}: {why}");
        }
        let mut missing = json.clone();
        missing.as_object_mut().unwrap().remove("client");
        assert!(from_json(&missing).is_err());
    }
}
