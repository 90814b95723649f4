//! The hash chain: each event's canonical encoding hashed with the hash
//! before it, checkpoints signing the head, and the check of a whole chain.
//!
//! The canonical encoding (what the hash covers) is fixed and independent
//! of how records are stored or exported:
//!
//! ```text
//! "otpd-audit-v1" 0x00 ‖ seq (u64 BE) ‖ at (u64 BE, ms) ‖ kind ‖ outcome
//! ‖ opt(account hex) ‖ opt(client) ‖ opt(request id) ‖ opt(source ip)
//! ‖ count of details (u32 BE) ‖ (key ‖ value)…
//! ```
//!
//! where each text is its length (u32 BE) and UTF-8 bytes, and `opt` is a
//! byte 0 (absent) or 1 and the text. `hash = SHA-256(prev ‖ encoding)`.

use sha2::{Digest, Sha256};

#[cfg(test)]
use super::Sealer;
use super::{Actor, AuditPublicKey, AuditRecord, Detail, Event, EventKind};
use crate::clock::Timestamp;

const DOMAIN: &[u8] = b"otpd-audit-v1\0";

/// The canonical encoding of `record` (its `prev` and `hash` excluded).
pub fn canonical(seq: u64, at: Timestamp, event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    encode(&mut out, seq, at, event);
    out
}

/// Where the canonical encoding goes: a buffer, or straight into the hash.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

fn encode(out: &mut impl Sink, seq: u64, at: Timestamp, event: &Event) {
    out.put(DOMAIN);
    out.put(&seq.to_be_bytes());
    out.put(&at.0.to_be_bytes());
    text(out, event.kind.as_str());
    text(out, event.outcome.as_str());
    // The account's id as its 32 hex digits, written without allocating.
    let mut account = [0u8; 32];
    let account = event
        .account
        .and_then(|a| ::hex::encode_to_slice(a.0, &mut account).ok())
        .and_then(|()| std::str::from_utf8(&account).ok());
    optional(out, account);
    optional(out, event.actor.client.as_deref());
    optional(out, event.actor.request_id.as_deref());
    optional(out, event.actor.source_ip.as_deref());
    let count = u32::try_from(event.details.len()).unwrap_or(u32::MAX);
    out.put(&count.to_be_bytes());
    for (key, value) in &event.details {
        text(out, key);
        text(out, value);
    }
}

fn text(out: &mut impl Sink, value: &str) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    out.put(&len.to_be_bytes());
    out.put(value.as_bytes());
}

fn optional(out: &mut impl Sink, value: Option<&str>) {
    match value {
        None => out.put(&[0]),
        Some(value) => {
            out.put(&[1]);
            text(out, value);
        }
    }
}

/// `SHA-256(prev ‖ canonical)`, the encoding streamed into the hash.
pub(super) fn link(prev: &[u8; 32], seq: u64, at: Timestamp, event: &Event) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    encode(&mut hasher, seq, at, event);
    hasher.finalize().into()
}

/// The head of the chain as the engine numbers it: the last place given,
/// and when the next checkpoint is due. The hashes are the
/// [`super::Sealer`]'s.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The last sequence number given (0 before the first event).
    pub seq: u64,
    /// Events since the last checkpoint.
    pub since_checkpoint: u64,
    /// When the last checkpoint was written.
    pub last_checkpoint_at: Timestamp,
}

impl Chain {
    /// The chain after `last` (or a new chain).
    pub fn resume(last: Option<&AuditRecord>, since_checkpoint: u64) -> Chain {
        match last {
            None => Chain {
                seq: 0,
                since_checkpoint: 0,
                last_checkpoint_at: Timestamp(0),
            },
            Some(r) => Chain {
                seq: r.seq,
                since_checkpoint,
                last_checkpoint_at: if r.event.kind == EventKind::Checkpoint {
                    r.at
                } else {
                    Timestamp(0)
                },
            },
        }
    }

    /// [`Chain::number`] and seal at once with `sealer`, which must be at
    /// this head: for tests, which need whole records.
    #[cfg(test)]
    pub(crate) fn seal(
        &self,
        events: impl IntoIterator<Item = Event>,
        at: Timestamp,
        sealer: &mut Sealer,
        every: u64,
    ) -> (Vec<AuditRecord>, Chain) {
        let (numbered, next) = self.number(events, at, every);
        let records = numbered
            .into_iter()
            .map(|u| sealer.seal(u))
            .collect::<crate::error::Result<Vec<_>>>()
            .expect("numbered in order from the sealer's head");
        (records, next)
    }

    /// Takes the head [`Chain::number`] returned, once its events are queued.
    pub(crate) fn advance(&mut self, next: Chain) {
        *self = next;
    }
}

/// The event a checkpoint is: `signature` over the head (`seq`, `hash`)
/// and `every`.
pub(super) fn checkpoint_event(
    seq: u64,
    hash: &[u8; 32],
    every: u64,
    signature: &[u8; 64],
) -> Event {
    Event {
        kind: EventKind::Checkpoint,
        outcome: EventKind::Checkpoint.outcome(),
        account: None,
        actor: Actor::default(),
        // Sorted by key, as every event's details are.
        details: smallvec::smallvec![
            ("covers_hash".into(), Detail::hex(hash)),
            ("covers_seq".into(), seq.into()),
            ("every".into(), every.into()),
            ("signature".into(), Detail::hex(signature)),
        ],
    }
}

/// What a check of a chain found, when nothing is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The first sequence number checked (0: none).
    pub first: u64,
    /// The last one.
    pub last: u64,
    /// Records checked, checkpoints included.
    pub records: u64,
    /// Checkpoints whose signatures hold.
    pub checkpoints: u64,
    /// Records after the last checkpoint: chained, not yet signed.
    pub unsigned_tail: u64,
    /// The last record's hash.
    pub last_hash: [u8; 32],
}

/// Where and why a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The first sequence number at fault.
    pub seq: u64,
    /// What is wrong there.
    pub why: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event {}: {}", self.seq, self.why)
    }
}

/// Checks `records` in order: consecutive sequence numbers, every hash
/// recomputed, every checkpoint's signature under `key`, and no more than
/// `max_unsigned` records in a row without a checkpoint. The first record
/// must be the chain's first (`seq` 1) or a checkpoint anchoring the part
/// kept after pruning. `head`, when given, is where the chain must end
/// (the store's own record of its head, or an export's signed trailer).
pub fn verify(
    records: impl IntoIterator<Item = AuditRecord>,
    key: &AuditPublicKey,
    max_unsigned: u64,
    head: Option<(u64, [u8; 32])>,
) -> Result<Report, Break> {
    let mut verifier = Verifier::new(key, max_unsigned);
    for r in records {
        verifier.check(&r)?;
    }
    verifier.finish(head)
}

/// [`verify`] one record at a time, so a chain of any length is checked
/// in constant memory.
#[derive(Debug)]
pub struct Verifier<'k> {
    key: &'k AuditPublicKey,
    max_unsigned: u64,
    report: Report,
    expected: Option<(u64, [u8; 32])>,
    /// A record the chain must contain, and whether it was seen.
    reaches: Option<((u64, [u8; 32]), bool)>,
}

impl<'k> Verifier<'k> {
    /// A check of a chain whose checkpoints `key` signed.
    pub fn new(key: &'k AuditPublicKey, max_unsigned: u64) -> Self {
        Verifier {
            key,
            max_unsigned,
            report: Report::default(),
            expected: None,
            reaches: None,
        }
    }

    /// The chain must contain `(seq, hash)` (a store's recorded head, which
    /// may be behind its last event); [`Verifier::finish`] checks it.
    pub fn expect_at_least(&mut self, head: Option<(u64, [u8; 32])>) {
        self.reaches = head.map(|h| (h, false));
    }

    /// Checks the next record.
    pub fn check(&mut self, r: &AuditRecord) -> Result<(), Break> {
        let fail = |why: String| Break { seq: r.seq, why };
        let report = &mut self.report;
        match self.expected {
            None => {
                report.first = r.seq;
                if r.seq == 1 {
                    if r.prev != [0; 32] {
                        return Err(fail("the first event does not start the chain".into()));
                    }
                } else if r.event.kind != EventKind::Checkpoint {
                    return Err(fail(format!(
                        "the chain starts at {} with no checkpoint to anchor it \
                         (events before it were removed)",
                        r.seq
                    )));
                }
            }
            Some((seq, hash)) => {
                if r.seq != seq + 1 {
                    return Err(Break {
                        seq: seq + 1,
                        why: format!(
                            "missing: the next event found is {} (events removed or reordered)",
                            r.seq
                        ),
                    });
                }
                if r.prev != hash {
                    return Err(fail(
                        "it does not follow the event before it (an event was changed, \
                         removed or reordered)"
                            .into(),
                    ));
                }
            }
        }
        if link(&r.prev, r.seq, r.at, &r.event) != r.hash {
            return Err(fail(
                "its hash does not match its content (it was changed)".into(),
            ));
        }
        if r.event.kind == EventKind::Checkpoint {
            // A checkpoint's signature covers how many unsigned events may
            // follow it, so the setting can change without breaking old runs.
            self.max_unsigned = check_checkpoint(r, self.key).map_err(fail)?;
            report.checkpoints += 1;
            report.unsigned_tail = 0;
        } else {
            report.unsigned_tail += 1;
            if report.unsigned_tail > self.max_unsigned {
                return Err(fail(format!(
                    "more than {} events in a row without a signed checkpoint \
                     (checkpoints were removed, or the log was rewritten)",
                    self.max_unsigned
                )));
            }
        }
        if let Some(((seq, hash), seen)) = &mut self.reaches
            && r.seq == *seq
        {
            if r.hash != *hash {
                return Err(fail("it differs from the chain's recorded head".into()));
            }
            *seen = true;
        }
        report.records += 1;
        report.last = r.seq;
        report.last_hash = r.hash;
        self.expected = Some((r.seq, r.hash));
        Ok(())
    }

    /// Ends the check: the chain must end at `head` when one is given.
    pub fn finish(self, head: Option<(u64, [u8; 32])>) -> Result<Report, Break> {
        let report = self.report;
        if let Some(((seq, _), false)) = self.reaches {
            return Err(Break {
                seq: report.last + 1,
                why: format!(
                    "missing: the chain ends at {} but its recorded head is {seq} \
                     (the tail was removed)",
                    report.last
                ),
            });
        }
        if let Some((seq, hash)) = head {
            if report.last < seq {
                return Err(Break {
                    seq: report.last + 1,
                    why: format!(
                        "missing: the chain ends at {} but its head is {seq} (the tail was removed)",
                        report.last
                    ),
                });
            }
            if report.last > seq || report.last_hash != hash {
                return Err(Break {
                    seq: report.last,
                    why: "the chain's end does not match its recorded head".into(),
                });
            }
        }
        Ok(report)
    }
}

/// Checks a checkpoint; the run of unsigned events it allows after it.
fn check_checkpoint(r: &AuditRecord, key: &AuditPublicKey) -> Result<u64, String> {
    let covers: u64 = r
        .event
        .detail("covers_seq")
        .and_then(|s| s.parse().ok())
        .ok_or("a checkpoint without covers_seq")?;
    let hash: [u8; 32] = r
        .event
        .detail("covers_hash")
        .and_then(crate::hex::decode_array)
        .ok_or("a checkpoint without covers_hash")?;
    let signature: [u8; 64] = r
        .event
        .detail("signature")
        .and_then(crate::hex::decode_array)
        .ok_or("a checkpoint without a signature")?;
    let every: u64 = r
        .event
        .detail("every")
        .and_then(|s| s.parse().ok())
        .ok_or("a checkpoint without every")?;
    if covers + 1 != r.seq || hash != r.prev {
        return Err("a checkpoint that does not sign the event before it".into());
    }
    if !key.verifies_checkpoint(covers, &hash, every, &signature) {
        return Err(
            "a checkpoint whose signature does not hold (forged, or another audit key)".into(),
        );
    }
    Ok(every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditKey;
    use crate::secret::CodeKey;
    use std::sync::Arc;

    fn event(n: u32) -> Event {
        Event {
            kind: EventKind::CodeWrong,
            outcome: EventKind::CodeWrong.outcome(),
            account: None,
            actor: Actor {
                client: Some("portal".into()),
                request_id: Some(format!("r{n}").into()),
                source_ip: None,
                idempotency: None,
                client_id: None,
            },
            details: smallvec::smallvec![("attempts_remaining".into(), n.into())],
        }
    }

    /// Ten events, a checkpoint every four.
    fn chain() -> (Vec<AuditRecord>, Arc<AuditKey>) {
        let key = Arc::new(AuditKey::derive(&CodeKey::new([1; 32])).unwrap());
        let mut sealer = Sealer::new(Arc::clone(&key), (0, [0; 32]));
        let mut head = Chain::resume(None, 0);
        let mut all = Vec::new();
        for n in 0..10 {
            let (records, next) = head.seal(
                vec![event(n)],
                Timestamp(1_000 + u64::from(n)),
                &mut sealer,
                4,
            );
            head.advance(next);
            all.extend(records);
        }
        (all, key)
    }

    fn check(records: &[AuditRecord], key: &AuditKey) -> Result<Report, Break> {
        verify(records.iter().cloned(), &key.public(), 4, None)
    }

    #[test]
    fn the_canonical_encoding_is_the_documented_one_and_is_what_is_hashed() {
        let event = Event {
            kind: EventKind::Locked,
            outcome: EventKind::Locked.outcome(),
            account: Some(crate::id::AccountId([0xab; 16])),
            actor: Actor {
                client: Some("helpdesk".into()),
                request_id: None,
                source_ip: Some("192.0.2.0".into()),
                idempotency: None,
                client_id: None,
            },
            details: smallvec::smallvec![
                ("by".into(), "admin".into()),
                ("reason".into(), "fraud".into()),
            ],
        };
        // By hand, from the module documentation.
        let text = |out: &mut Vec<u8>, t: &str| {
            out.extend_from_slice(&(t.len() as u32).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        };
        let mut want = b"otpd-audit-v1\0".to_vec();
        want.extend_from_slice(&7u64.to_be_bytes());
        want.extend_from_slice(&1_234u64.to_be_bytes());
        text(&mut want, "locked");
        text(&mut want, event.outcome.as_str());
        want.push(1);
        text(&mut want, &"ab".repeat(16));
        want.push(1);
        text(&mut want, "helpdesk");
        want.push(0);
        want.push(1);
        text(&mut want, "192.0.2.0");
        want.extend_from_slice(&2u32.to_be_bytes());
        for (k, v) in [("by", "admin"), ("reason", "fraud")] {
            text(&mut want, k);
            text(&mut want, v);
        }
        assert_eq!(canonical(7, Timestamp(1_234), &event), want);
        let prev = [9u8; 32];
        let mut hasher = Sha256::new();
        hasher.update(prev);
        hasher.update(&want);
        let expected: [u8; 32] = hasher.finalize().into();
        assert_eq!(link(&prev, 7, Timestamp(1_234), &event), expected);
    }

    #[test]
    fn an_intact_chain_verifies_with_its_checkpoints() {
        let (records, key) = chain();
        assert_eq!(records.len(), 12, "ten events and two checkpoints");
        let report = check(&records, &key).unwrap();
        assert_eq!((report.first, report.last), (1, 12));
        assert_eq!((report.checkpoints, report.unsigned_tail), (2, 2));
        let head = Some((12, records[11].hash));
        assert!(verify(records.clone(), &key.public(), 4, head).is_ok());
    }

    #[test]
    fn a_batch_longer_than_the_run_gets_checkpoints_inside_it() {
        let key = Arc::new(AuditKey::derive(&CodeKey::new([1; 32])).unwrap());
        let mut sealer = Sealer::new(Arc::clone(&key), (0, [0; 32]));
        let head = Chain::resume(None, 0);
        let (records, next) = head.seal((0..9).map(event), Timestamp(1), &mut sealer, 4);
        let kinds: Vec<bool> = records
            .iter()
            .map(|r| r.event.kind == EventKind::Checkpoint)
            .collect();
        assert_eq!(
            kinds,
            [
                false, false, false, false, true, false, false, false, false, true, false
            ]
        );
        assert_eq!(next.since_checkpoint, 1);
        assert!(check(&records, &key).is_ok());
    }

    #[test]
    fn a_store_chain_must_reach_its_recorded_head_and_may_go_beyond() {
        let (records, key) = chain();
        let public = key.public();
        let run = |upto: usize, head: (u64, [u8; 32])| {
            let mut v = Verifier::new(&public, 4);
            v.expect_at_least(Some(head));
            for r in &records[..upto] {
                v.check(r)?;
            }
            v.finish(None)
        };
        let head = (5, records[4].hash);
        assert!(run(12, head).is_ok(), "events after the head are fine");
        assert!(run(5, head).is_ok());
        assert_eq!(run(4, head).unwrap_err().seq, 5, "cut below the head");
        assert_eq!(
            run(12, (5, [9; 32])).unwrap_err().seq,
            5,
            "a head that differs"
        );
    }

    #[test]
    fn an_edited_removed_or_reordered_event_names_the_first_bad_one() {
        let (records, key) = chain();
        let mut edited = records.clone();
        edited[2].event.details[0].1 = "99".into();
        assert_eq!(check(&edited, &key).unwrap_err().seq, 3);
        let mut removed = records.clone();
        removed.remove(6);
        assert_eq!(check(&removed, &key).unwrap_err().seq, 7);
        let mut reordered = records.clone();
        reordered.swap(7, 8);
        assert_eq!(check(&reordered, &key).unwrap_err().seq, 8);
        // Renumbered to hide the gap: the hashes no longer link.
        let mut renumbered = records.clone();
        renumbered.remove(6);
        for r in &mut renumbered[6..] {
            r.seq -= 1;
        }
        assert!(check(&renumbered, &key).is_err());
    }

    #[test]
    fn a_truncated_tail_is_caught_by_the_head_and_a_rehashed_forgery_by_the_signatures() {
        let (records, key) = chain();
        let head = Some((12, records[11].hash));
        let truncated = records[..9].to_vec();
        let err = verify(truncated, &key.public(), 4, head).unwrap_err();
        assert_eq!(err.seq, 10);
        // A forger without the key rewrites an event and re-hashes everything after it.
        let mut forged = records.clone();
        forged[1].event.details[0].1 = "forged".into();
        let mut prev = forged[0].hash;
        for r in &mut forged[1..] {
            r.prev = prev;
            r.hash = link(&prev, r.seq, r.at, &r.event);
            prev = r.hash;
        }
        let err = check(&forged, &key).unwrap_err();
        assert_eq!(err.seq, 5, "the first checkpoint after the change: {err}");
        assert!(err.why.contains("checkpoint"), "{err}");
        // ...or drops the checkpoints too: then too many events go unsigned.
        let mut unsigned: Vec<AuditRecord> = forged
            .into_iter()
            .filter(|r| r.event.kind != EventKind::Checkpoint)
            .collect();
        let mut prev = [0; 32];
        for (i, r) in unsigned.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
            r.prev = prev;
            r.hash = link(&prev, r.seq, r.at, &r.event);
            prev = r.hash;
        }
        let err = check(&unsigned, &key).unwrap_err();
        assert!(err.why.contains("without a signed checkpoint"), "{err}");
        // A checkpoint signed by another key.
        let other = AuditKey::derive(&CodeKey::new([2; 32])).unwrap();
        assert!(check(&records, &other).is_err());
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_oldest_checkpoint() {
        let (records, key) = chain();
        let kept: Vec<AuditRecord> = records[4..].to_vec();
        assert_eq!(kept[0].event.kind, EventKind::Checkpoint);
        assert!(check(&kept, &key).is_ok());
        let err = check(&records[5..], &key).unwrap_err();
        assert!(err.why.contains("no checkpoint to anchor"), "{err}");
    }
}
