//! A node's journal on the cluster: a change's audit events, written with
//! the change in the account's slot, deleted once the node's own store has
//! them, and found again by the node after a crash (docs/ARCHITECTURE.md,
//! "A node's own records, and its journal"). Entries written by an older
//! otpd may also hold the change's queued messages (which the cluster's
//! send queue now keeps): they are read, and their messages queued there.

use crate::audit::{AuditRecord, Event};
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::outbox::Message;
use crate::store::codec::{
    decode_audit_block, decode_message, encode_audit, encode_audit_block, encode_message,
};

use super::{RECORD_V1, Remote, push_part, split_parts};

/// A journal entry of this node's found on the cluster.
pub(in crate::engine) struct Journaled {
    pub(in crate::engine) key: String,
    pub(in crate::engine) events: Vec<Event>,
    pub(in crate::engine) messages: Vec<Message>,
}

impl Remote {
    /// A journal entry for a change of `account` made now: its key (a
    /// fresh token) and the record to put there with the change.
    pub(in crate::engine) fn journal(
        &self,
        account: AccountId,
        events: &[crate::audit::Event],
        now: crate::clock::Timestamp,
    ) -> Result<(String, Vec<u8>)> {
        let mut token = [0u8; 8];
        getrandom::fill(&mut token)
            .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
        let key = self
            .cluster
            .keys()
            .journal(account, &self.node, &crate::hex::encode(token));
        Ok((key, encode_journal(events, &[], now)))
    }

    /// Deletes a journal entry once this node's store has what it holds
    /// (once `ticket` is durable); not waited for: an entry left is
    /// recorded at the node's next start, once. One thread of the node's
    /// (started on first use) does every deletion, in batches, waiting once
    /// per batch for its newest ticket: a write costs no thread of its own.
    pub(in crate::engine) fn forget_after(
        &self,
        key: String,
        commit: &std::sync::Arc<dyn crate::store::Commit>,
        ticket: crate::store::Ticket,
    ) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let queue = self.forgetter.get_or_init(|| {
            let (queue, entries) = std::sync::mpsc::sync_channel(FORGET_QUEUE);
            let forgetter = Forgetter {
                entries,
                commit: std::sync::Arc::clone(commit),
                cluster: self.cluster.clone(),
                runtime: runtime.handle().clone(),
            };
            // Without the thread, entries stay: recorded at the next start.
            let _ = std::thread::Builder::new()
                .name("otpd-journal".into())
                .spawn(move || forgetter.run());
            queue
        });
        // A full queue (the cluster slower than this node's writes) leaves
        // the entry: recorded again, once, at the node's next start.
        let _ = queue.try_send((key, ticket));
    }

    /// Whether the journal entry at `key` is on the cluster: written with
    /// its change, so the change was made.
    pub(in crate::engine) fn holds(&self, key: &str) -> Result<bool> {
        let key = key.to_owned();
        self.run(|cluster| async move { cluster.get(&key).await })
            .map(|found| found.is_some())
    }

    /// This node's journal entries left on the cluster (by a crash between
    /// a change and its record here): (key, events, messages).
    pub(in crate::engine) fn pending_journal(&self) -> Result<Vec<Journaled>> {
        let pattern = self.cluster.keys().journal_pattern(&self.node);
        let found = self.run(|cluster| async move { cluster.scan(&pattern).await })?;
        let mut entries = Vec::new();
        for key in found {
            let read = key.clone();
            let bytes = self.run(|cluster| async move { cluster.get(&read).await })?;
            if let Some(bytes) = bytes {
                let (events, messages) = decode_journal(&bytes)?;
                entries.push(Journaled {
                    key,
                    events,
                    messages,
                });
            }
        }
        Ok(entries)
    }
}

/// Journal entries waiting for their deletion, at most.
const FORGET_QUEUE: usize = 65_536;

/// Deletions one batch holds, at most (sent to the cluster at once).
const FORGET_BATCH: usize = 256;

/// The thread that deletes the node's journal entries once its store has them.
pub(super) type ForgetQueue = std::sync::mpsc::SyncSender<(String, crate::store::Ticket)>;

struct Forgetter {
    entries: std::sync::mpsc::Receiver<(String, crate::store::Ticket)>,
    commit: std::sync::Arc<dyn crate::store::Commit>,
    cluster: crate::cluster::Cluster,
    runtime: tokio::runtime::Handle,
}

impl Forgetter {
    /// Until the node's connection (and with it the queue's sender) goes:
    /// take what is queued, wait for the newest ticket among it (tickets
    /// become durable in order), delete the entries together.
    fn run(self) {
        while let Ok(first) = self.entries.recv() {
            let mut batch = vec![first];
            while batch.len() < FORGET_BATCH {
                match self.entries.try_recv() {
                    Ok(entry) => batch.push(entry),
                    Err(_) => break,
                }
            }
            let newest = batch.iter().map(|(_, t)| *t).max().unwrap_or(0);
            if self.commit.wait(newest).is_err() {
                // Not durable here: the entries stay for the next start.
                continue;
            }
            let cluster = self.cluster.clone();
            let keys: Vec<String> = batch.into_iter().map(|(key, _)| key).collect();
            // Failures leave entries, recorded again (once) at the next start.
            let _ = super::wait_on(&self.runtime, async move {
                let mut deletions = tokio::task::JoinSet::new();
                for key in keys {
                    let cluster = cluster.clone();
                    deletions.spawn(async move { cluster.delete(&key).await });
                }
                deletions.join_all().await;
                Ok(())
            });
        }
    }
}

/// A journal entry: a version byte, then as parts the events (as the store
/// encodes audit records, unnumbered) and each message.
fn encode_journal(events: &[Event], messages: &[Message], now: crate::clock::Timestamp) -> Vec<u8> {
    let records: Vec<Vec<u8>> = events
        .iter()
        .map(|event| {
            let record = AuditRecord {
                seq: 0,
                at: now,
                event: event.clone(),
                prev: [0; 32],
                hash: [0; 32],
            };
            encode_audit(&record, None)
        })
        .collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let mut out = vec![RECORD_V1];
    push_part(&mut out, &encode_audit_block(&refs));
    for m in messages {
        push_part(&mut out, &encode_message(m));
    }
    out
}

fn decode_journal(bytes: &[u8]) -> Result<(Vec<Event>, Vec<Message>)> {
    let parts = split_parts(bytes, "a journal entry")?;
    let Some((block, messages)) = parts.split_first() else {
        return Err(EngineError::Corrupt("a journal entry: no events".into()));
    };
    let events = decode_audit_block(block)?
        .into_iter()
        .map(|(record, _)| record.event)
        .collect();
    let messages = messages
        .iter()
        .map(|m| decode_message(m))
        .collect::<Result<Vec<_>>>()?;
    Ok((events, messages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_and_damage_is_an_error_not_a_panic() {
        let event = Event::new(
            crate::audit::EventKind::Registered,
            Some(AccountId([7; 16])),
        );
        let bytes = encode_journal(
            std::slice::from_ref(&event),
            &[],
            crate::clock::Timestamp(5),
        );
        let (events, messages) = decode_journal(&bytes).unwrap();
        assert_eq!(events, vec![event]);
        assert!(messages.is_empty());
        for cut in 0..bytes.len() {
            assert!(decode_journal(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(decode_journal(&other).is_err());
    }
}
