//! The audit trail in sled: events stored in blocks, one per write round,
//! and read back one event at a time.
//!
//! Why blocks: sled 0.34 pays per key written, not per byte. Each insert
//! copies the leaf it lands in and a leaf splits past 16 keys, so an event
//! per key cost more on the writer thread than the change it described
//! (docs/CAPACITY.md, "The audit trail"). The events of one round are
//! consecutive in the chain, so they are stored together under the first
//! one's sequence number, in the same atomic batch as their changes.
//!
//! A checkpoint always begins a block. Pruning deletes whole keys before a
//! checkpoint, so the checkpoint it keeps as the new anchor, and what
//! follows it, are never in a deleted block.

use crate::audit::AuditRecord;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::store::codec;

/// Audit events by the sequence number of a block's first event (u64 BE);
/// a value holds one event, or a block of consecutive ones.
pub(super) const AUDIT_PREFIX: u8 = b'e';
/// Audit events by account, as record version 1 indexed them: account id ‖
/// sequence number, no value. Read for old events; no longer written.
pub(super) const AUDIT_INDEX_PREFIX: u8 = b'i';
/// Each account's newest audit event: account id → sequence number (u64
/// BE). Each event links to the one before it, so an account's events cost
/// one key rewritten in place instead of a new key per event; and none
/// when the event's batch writes the account's record, which then holds
/// the number itself (record version 3).
pub(super) const AUDIT_LAST_PREFIX: u8 = b'l';
/// The audit chain's head: sequence number (u64 BE) ‖ hash.
pub(super) const AUDIT_HEAD_KEY: &[u8] = b"m:audit-head";

/// The most events one block holds.
const MAX_BLOCK_EVENTS: usize = 256;
/// A block is closed once it holds this many bytes.
const MAX_BLOCK_BYTES: usize = 64 << 10;

pub(super) fn audit_key(seq: u64) -> [u8; 9] {
    let mut key = [AUDIT_PREFIX; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(super) fn audit_index_key(account: AccountId, seq: u64) -> [u8; 25] {
    let mut key = [AUDIT_INDEX_PREFIX; 25];
    key[1..17].copy_from_slice(&account.0);
    key[17..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// One event encoded by the caller, waiting for its round's block.
#[derive(Debug)]
pub(crate) struct PendingEvent {
    pub(super) seq: u64,
    pub(super) checkpoint: bool,
    pub(super) bytes: Vec<u8>,
}

/// Gathers a round's events, in sequence order, into blocks.
#[derive(Debug, Default)]
pub(super) struct Blocks {
    done: Vec<([u8; 9], Vec<u8>)>,
    first: u64,
    open: Vec<Vec<u8>>,
    bytes: usize,
}

impl Blocks {
    pub(super) fn push(&mut self, event: PendingEvent) {
        if event.checkpoint
            || self.open.len() >= MAX_BLOCK_EVENTS
            || self.bytes + event.bytes.len() > MAX_BLOCK_BYTES
        {
            self.close();
        }
        if self.open.is_empty() {
            self.first = event.seq;
        }
        self.bytes += event.bytes.len();
        self.open.push(event.bytes);
    }

    fn close(&mut self) {
        let value = match self.open.len() {
            0 => return,
            // One event alone is stored as itself, as before blocks.
            1 => self.open.pop().unwrap_or_default(),
            _ => {
                let events: Vec<&[u8]> = self.open.iter().map(Vec::as_slice).collect();
                codec::encode_audit_block(&events)
            }
        };
        self.open.clear();
        self.bytes = 0;
        self.done.push((audit_key(self.first), value));
    }

    pub(super) fn add_to(mut self, batch: &mut ::sled::Batch) {
        self.close();
        for (key, value) in self.done {
            batch.insert(&key, value);
        }
    }
}

pub(super) fn head(db: &::sled::Db) -> Result<Option<(u64, [u8; 32])>> {
    let Some(bytes) = db.get(AUDIT_HEAD_KEY)? else {
        return Ok(None);
    };
    if bytes.len() != 40 {
        return Err(EngineError::Corrupt(
            "the audit head is not 40 bytes".into(),
        ));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[..8]);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&bytes[8..]);
    Ok(Some((u64::from_be_bytes(seq), hash)))
}

/// The key of the block that holds `seq`, if any: the last key at or before it.
fn block_key(db: &::sled::Db, seq: u64) -> Result<Option<::sled::IVec>> {
    let start = audit_key(0);
    let end = audit_key(seq);
    Ok(match db.range(start..=end).next_back() {
        Some(item) => Some(item?.0),
        None => None,
    })
}

/// Events from sequence number `from` on, oldest first, while `each` says so.
pub(super) fn scan(
    db: &::sled::Db,
    from: u64,
    each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
) -> Result<()> {
    let start = match block_key(db, from)? {
        Some(key) => key.to_vec(),
        None => audit_key(from).to_vec(),
    };
    let end = [AUDIT_PREFIX + 1];
    for item in db.range(start.as_slice()..end.as_slice()) {
        for (record, _) in codec::decode_audit_block(&item?.1)? {
            if record.seq >= from && !each(record)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// `account`'s newest event: the later of the one its record holds
/// (written with the record) and its pointer (written with an event whose
/// batch did not write the record).
pub(super) fn last(db: &::sled::Db, account: AccountId) -> Result<Option<u64>> {
    let pointer = db
        .get(super::prefixed(AUDIT_LAST_PREFIX, account.0))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes);
    let recorded = match db.get(super::prefixed(super::ACCOUNT_PREFIX, account.0))? {
        Some(bytes) => codec::account_audit_newest(&bytes)?,
        None => None,
    };
    Ok(pointer.max(recorded))
}

/// `account`'s events before `before`, newest first, while `each` says so:
/// along the links from its newest event, then (for events written before
/// the links) through version 1's index keys.
pub(super) fn scan_account(
    db: &::sled::Db,
    account: AccountId,
    before: u64,
    each: &mut dyn FnMut(AuditRecord) -> Result<bool>,
) -> Result<()> {
    let mut next = last(db, account)?;
    let mut oldest = before;
    // The block read last: an account's events are often in the same one.
    let mut block: Vec<(AuditRecord, Option<u64>)> = Vec::new();
    while let Some(seq) = next {
        let held = block
            .first()
            .zip(block.last())
            .is_some_and(|(a, z)| (a.0.seq..=z.0.seq).contains(&seq));
        if !held {
            block = match block_key(db, seq)? {
                Some(key) => match db.get(key)? {
                    Some(bytes) => codec::decode_audit_block(&bytes)?,
                    None => Vec::new(),
                },
                None => Vec::new(),
            };
        }
        let Some((record, account_prev)) = block.iter().find(|(r, _)| r.seq == seq).cloned() else {
            // Pruned: nothing older is kept.
            return Ok(());
        };
        if record.event.account != Some(account) {
            return Err(EngineError::Corrupt(format!(
                "audit event {seq} is linked from another account's events"
            )));
        }
        oldest = oldest.min(seq);
        if seq < before && !each(record)? {
            return Ok(());
        }
        // Links only go back: one that does not would walk forever.
        if let Some(prev) = account_prev
            && prev >= seq
        {
            return Err(EngineError::Corrupt(format!(
                "audit event {seq} links to {prev}, not to an earlier event"
            )));
        }
        next = account_prev;
    }
    // Events from before the links, through their index keys (each one an
    // event of its own key: they were written before blocks).
    let start = audit_index_key(account, 0);
    let end = audit_index_key(account, oldest);
    for item in db.range(start..end).rev() {
        let (key, _) = item?;
        let Some(seq) = key.get(17..25).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
            return Err(EngineError::Corrupt(
                "an audit index key is not 25 bytes".into(),
            ));
        };
        let Some(bytes) = db.get(audit_key(u64::from_be_bytes(seq)))? else {
            // Pruned between the index and the event: skip it.
            continue;
        };
        for (record, _) in codec::decode_audit_block(&bytes)? {
            if !each(record)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::audit::{AuditKey, Chain, Event, EventKind, Sealer, Sealing, Unsealed};
    use crate::clock::Timestamp;
    use crate::secret::CodeKey;
    use crate::store::sled::{SledStore, Writes};
    use crate::store::{Change, Changes, Commit, Store, StoreConfig};

    const A: AccountId = AccountId([1; 16]);
    const B: AccountId = AccountId([2; 16]);

    /// `n` events, alternating between accounts A and B, sealed with a
    /// checkpoint after every `every`; with each one's link to its
    /// account's previous event.
    fn sealed(n: usize, every: u64) -> Vec<(AuditRecord, Option<u64>)> {
        let mut sealer = Sealer::new(key(), (0, [0; 32]));
        let events =
            (0..n).map(|i| Event::new(EventKind::CodeIssued, Some(if i % 2 == 0 { A } else { B })));
        let (records, _) =
            Chain::resume(None, 0).seal(events, Timestamp(1_000), &mut sealer, every);
        let mut last: Vec<(AccountId, u64)> = Vec::new();
        records
            .into_iter()
            .map(|r| {
                let link = r.event.account.and_then(|account| {
                    let before = last.iter().rev().find(|(a, _)| *a == account).map(|l| l.1);
                    last.push((account, r.seq));
                    before
                });
                (r, link)
            })
            .collect()
    }

    fn key() -> Arc<AuditKey> {
        Arc::new(AuditKey::derive(&CodeKey::new([7; 32])).unwrap())
    }

    /// `record` as the engine hands it to the store: numbered, not sealed.
    fn unsealed((r, link): &(AuditRecord, Option<u64>)) -> Unsealed {
        Unsealed {
            seq: r.seq,
            at: r.at,
            link: *link,
            what: match r.event.kind {
                EventKind::Checkpoint => Sealing::Checkpoint {
                    every: r.event.detail("every").unwrap().parse().unwrap(),
                },
                _ => Sealing::Event(r.event.clone()),
            },
        }
    }

    /// Writes `records` as the engine does, unsealed: the store seals them
    /// again from the head before the first, into the same records.
    fn write(store: &SledStore, records: &[(AuditRecord, Option<u64>)]) {
        let first = &records[0].0;
        store.start_audit(Sealer::new(key(), (first.seq - 1, first.prev)));
        let events = records.iter().map(unsealed).collect();
        let ticket = store.write_audited(Changes::default(), events).unwrap();
        store.commit.wait(ticket).unwrap();
        let mut stored = Vec::new();
        store
            .scan_audit(first.seq, &mut |r| {
                stored.push(r);
                Ok(stored.len() < records.len())
            })
            .unwrap();
        let expected: Vec<AuditRecord> = records.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(stored, expected, "sealed by the store as by the test");
    }

    fn keys(store: &SledStore) -> usize {
        store.db.scan_prefix([AUDIT_PREFIX]).count()
    }

    fn seqs_from(store: &SledStore, from: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        store
            .scan_audit(from, &mut |r| {
                seqs.push(r.seq);
                Ok(true)
            })
            .unwrap();
        seqs
    }

    fn account_seqs(store: &SledStore, account: AccountId, before: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        store
            .scan_account_audit(account, before, &mut |r| {
                seqs.push(r.seq);
                Ok(true)
            })
            .unwrap();
        seqs
    }

    #[test]
    fn a_rounds_events_share_keys_and_read_back_one_at_a_time() {
        let store = SledStore::open(&StoreConfig::temporary()).unwrap();
        // 300 events and a checkpoint after each 100: records 1..=303, the
        // checkpoints at 101, 202 and 303, each beginning a block.
        let records = sealed(300, 100);
        assert_eq!(records.len(), 303);
        write(&store, &records);
        assert_eq!(keys(&store), 4, "blocks 1-100, 101-201, 202-302, 303");
        assert_eq!(seqs_from(&store, 0), (1..=303).collect::<Vec<_>>());
        assert_eq!(seqs_from(&store, 150), (150..=303).collect::<Vec<_>>());
        assert_eq!(seqs_from(&store, 304), Vec::<u64>::new());
        // An account's events, newest first, along links across blocks.
        let a: Vec<u64> = records
            .iter()
            .filter(|(r, _)| r.event.account == Some(A))
            .map(|(r, _)| r.seq)
            .rev()
            .collect();
        assert_eq!(account_seqs(&store, A, u64::MAX), a);
        assert_eq!(store.audit_last(A).unwrap(), a.first().copied());
        let older: Vec<u64> = a.iter().copied().filter(|s| *s < 150).collect();
        assert_eq!(account_seqs(&store, A, 150), older);
    }

    #[test]
    fn a_block_is_closed_at_its_size_limit() {
        let store = SledStore::open(&StoreConfig::temporary()).unwrap();
        let records = sealed(MAX_BLOCK_EVENTS * 2 + 1, 0);
        write(&store, &records);
        assert_eq!(keys(&store), 3);
        assert_eq!(seqs_from(&store, 0).len(), records.len());
    }

    #[test]
    fn a_round_with_a_checkpoint_records_the_head_it_leaves() {
        let store = SledStore::open(&StoreConfig::temporary()).unwrap();
        // Events 1-3, the checkpoint 4, then 5: one batch.
        let records = sealed(4, 3);
        assert_eq!(records.len(), 5);
        write(&store, &records);
        assert_eq!(store.audit_head().unwrap(), Some((5, records[4].0.hash)));
    }

    #[test]
    fn after_a_failed_round_later_events_fail_rather_than_follow_a_gap() {
        let store = SledStore::open(&StoreConfig::temporary()).unwrap();
        let records = sealed(3, 0);
        store.start_audit(Sealer::new(key(), (0, [0; 32])));
        // The writer is held between building a round and applying it.
        let held = store.commit.rounds.lock().unwrap();
        // Event 2 before event 1: that round fails, nothing of it stored.
        let failing = store
            .write_audited(
                Changes::default(),
                smallvec::smallvec![unsealed(&records[1])],
            )
            .unwrap();
        while !store.commit.lock().queued.is_empty() {
            std::thread::yield_now();
        }
        // Event 1, queued while that round is in flight and before its
        // failure is known: refused at the writer, which let the sealer go,
        // not chained after a hash that was never stored.
        let queued = store
            .write_audited(
                Changes::default(),
                smallvec::smallvec![unsealed(&records[0])],
            )
            .unwrap();
        drop(held);
        assert!(store.commit.wait(failing).is_err());
        assert!(store.commit.wait(queued).is_err());
        assert_eq!(seqs_from(&store, 0), Vec::<u64>::new());
        assert!(store.writable().is_err(), "refused until a restart");
    }

    #[test]
    fn pruning_before_a_checkpoint_keeps_it_and_what_follows() {
        let store = SledStore::open(&StoreConfig::temporary()).unwrap();
        let records = sealed(300, 100);
        write(&store, &records);
        // As the engine prunes: every event before the anchor, one by one.
        let anchor = 202;
        let removals = (1..anchor)
            .map(|seq| Change::RemoveAudit(seq, None))
            .collect();
        let ticket = store.write(Changes(removals)).unwrap();
        store.commit.wait(ticket).unwrap();
        assert_eq!(seqs_from(&store, 0), (anchor..=303).collect::<Vec<_>>());
        // An account's walk stops where its pruned events begin.
        assert!(
            account_seqs(&store, B, u64::MAX)
                .iter()
                .all(|s| *s > anchor)
        );
    }

    #[test]
    fn a_link_that_does_not_go_back_is_corruption_not_an_endless_walk() {
        let store = SledStore::open(&StoreConfig::temporary()).unwrap();
        // Account A's only event, linked to itself.
        let mut records = sealed(1, 0);
        records[0].1 = Some(records[0].0.seq);
        write(&store, &records);
        // Bounded: without the check the walk would go round for ever.
        let mut seen = 0;
        let walked = store.scan_account_audit(A, u64::MAX, &mut |_| {
            seen += 1;
            Ok(seen < 10)
        });
        assert!(matches!(walked, Err(EngineError::Corrupt(_))), "{walked:?}");
        assert_eq!(seen, 1);
    }

    #[test]
    fn events_stored_one_per_key_before_blocks_still_read() {
        let store = SledStore::open(&StoreConfig::temporary()).unwrap();
        let records = sealed(10, 0);
        // The first six as an older otpd wrote them, a key each.
        let mut writes = Writes::default();
        for (r, link) in &records[..6] {
            writes.insert(&audit_key(r.seq), codec::encode_audit(r, *link));
        }
        let ticket = store.write_raw(writes).unwrap();
        store.commit.wait(ticket).unwrap();
        write(&store, &records[6..]);
        assert_eq!(keys(&store), 7);
        assert_eq!(seqs_from(&store, 0), (1..=10).collect::<Vec<_>>());
        assert_eq!(seqs_from(&store, 5), (5..=10).collect::<Vec<_>>());
        assert_eq!(account_seqs(&store, A, u64::MAX), vec![9, 7, 5, 3, 1]);
    }
}
