//! The send queue on a cluster: every node sends what any node queued.
//!
//! A message's record is in its account's slot; its entry in one of the due
//! indexes (`cluster::due`) says when it is due. The node that queues a
//! message leases its entry before the change that queues it and hands the
//! message to its own sender at once (no claim, no poll); a message that
//! node does not send within the lease (it died, its sender is backed up)
//! falls due again, and the next node to poll the indexes claims it.
//! Retries are scheduled in the index, so any node sends them.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use dashmap::DashMap;

use crate::clock::Timestamp;
use crate::cluster::due::{BUCKETS, Claimed};
use crate::error::{EngineError, Result};
use crate::hex;
use crate::id::{AccountId, ChallengeId};
use crate::terms::MessageId;

use super::Remote;

/// Messages handed to this node's own sender that it has yet to take: past
/// this many, a queued message waits for a claim (any node's) instead.
const HANDOFF_MAX: usize = 4096;

/// How often a node busy with its own codes still polls the due indexes.
const CLAIM_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A queued message as the due index names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) struct Entry {
    pub(in crate::engine) account: AccountId,
    pub(in crate::engine) message: MessageId,
    /// Its challenge, when the node knows it (read with the account).
    pub(in crate::engine) challenge: Option<ChallengeId>,
}

impl Entry {
    /// The entry of `message`, queued for `account`.
    pub(in crate::engine) fn of(account: AccountId, message: &crate::outbox::Message) -> Entry {
        Entry {
            account,
            message: message.id,
            challenge: (message.challenge != ChallengeId::NONE).then_some(message.challenge),
        }
    }

    /// The entry of message `id` of `account`'s, removed.
    pub(in crate::engine) fn removed(account: AccountId, id: MessageId) -> Entry {
        Entry {
            account,
            message: id,
            challenge: None,
        }
    }

    /// Its member in the due index: the account's id and the message's, in hex.
    fn member(&self) -> String {
        let mut member = hex::encode(self.account.0);
        member.push_str(&hex::encode(self.message.0));
        member
    }

    fn from_member(member: &str) -> Option<Entry> {
        if member.len() != 64 {
            return None;
        }
        Some(Entry {
            account: AccountId(hex::decode_array::<16>(member.get(..32)?)?),
            message: MessageId(hex::decode_array::<16>(member.get(32..)?)?),
            challenge: None,
        })
    }

    /// The due index it is in (by the message's id: random, so the buckets fill evenly).
    fn bucket(&self) -> u16 {
        u16::from_le_bytes([self.message.0[0], self.message.0[1]]) % BUCKETS
    }
}

/// This node's part of the send queue: what it handed itself, and what its
/// sender holds (claimed, not yet reported).
#[derive(Default)]
pub(super) struct Sending {
    /// Messages this node queued, to send before polling, with their lease's end.
    handoff: Mutex<VecDeque<(Entry, Timestamp)>>,
    /// Messages with this node's sender, by id, with their lease's end.
    leased: DashMap<MessageId, (Entry, Timestamp)>,
    /// The queue's length as last read (shown while the cluster does not answer).
    last_queued: std::sync::atomic::AtomicU64,
    /// When this node last polled the due indexes, and whether that poll
    /// brought all it asked for (more may be waiting).
    last_claim: Mutex<Option<(std::time::Instant, bool)>>,
}

/// How a due message came to this node's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine) enum Came {
    /// Queued by this node, which sends it under the lease it took.
    HandedOff,
    /// Claimed from a due index; `expired`: another lease had run out.
    Claimed { expired: bool },
}

impl Remote {
    fn due_key(&self, entry: &Entry) -> String {
        self.keys().due(entry.bucket())
    }

    /// Leases the entries of `entries` until `until`, before the change
    /// that queues their messages is written (with `WAIT`): the messages
    /// never exist without their entries.
    pub(in crate::engine) fn lease_entries(
        &self,
        entries: &[Entry],
        until: Timestamp,
    ) -> Result<()> {
        let writes: Vec<(String, String)> = entries
            .iter()
            .map(|e| (self.due_key(e), e.member()))
            .collect();
        self.run(|cluster| async move {
            let mut set = tokio::task::JoinSet::new();
            for (key, member) in writes {
                let cluster = cluster.clone();
                set.spawn(async move { cluster.lease_entry(&key, &member, until.0).await });
            }
            while let Some(done) = set.join_next().await {
                done.map_err(|e| EngineError::Internal(format!("a lease's task: {e}")))??;
            }
            Ok(())
        })
    }

    /// Writes entries for messages already in the cluster that may have
    /// none (queued by an older otpd, or migrated), due at `at`.
    pub(in crate::engine) fn add_entries(&self, entries: &[Entry], at: Timestamp) -> Result<()> {
        for entry in entries {
            let (key, member) = (self.due_key(entry), entry.member());
            self.run(|cluster| async move { cluster.add_entry(&key, &member, at.0).await })?;
        }
        Ok(())
    }

    /// After the change: `entry`'s message is next due at `at` (a retry).
    /// A failure is only counted: the entry stays leased and falls due when
    /// its lease ends.
    pub(in crate::engine) fn schedule_entry(&self, entry: Entry, at: Timestamp) {
        let (key, member) = (self.due_key(&entry), entry.member());
        let _ =
            self.run(|cluster| async move { cluster.schedule_entry(&key, &member, at.0).await });
    }

    /// After the change: `entry`'s message is gone (sent, dropped, failed).
    /// A failure is only counted: an entry left behind is removed by
    /// whoever claims it.
    pub(in crate::engine) fn remove_entry(&self, entry: Entry) {
        let (key, member) = (self.due_key(&entry), entry.member());
        let _ = self.run(|cluster| async move { cluster.remove_entry(&key, &member).await });
    }

    /// Hands `entry` (leased until `until`) to this node's own sender.
    /// False when the handoff is full: it waits for a claim.
    pub(in crate::engine) fn hand_off(&self, entry: Entry, until: Timestamp) -> bool {
        let mut handoff = self
            .sending
            .handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if handoff.len() >= HANDOFF_MAX {
            return false;
        }
        handoff.push_back((entry, until));
        true
    }

    /// The next message this node handed itself whose lease has at least
    /// `margin` to run (one nearer its end is left for a claim: sending it
    /// now could overlap another node's send), with its lease's end.
    pub(in crate::engine) fn next_handed_off(
        &self,
        now: Timestamp,
        margin: std::time::Duration,
    ) -> Option<(Entry, Timestamp)> {
        let mut handoff = self
            .sending
            .handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some((entry, until)) = handoff.pop_front() {
            if now.plus(margin) <= until {
                return Some((entry, until));
            }
        }
        None
    }

    /// Gives back the messages this node handed itself and has not taken
    /// (at shutdown): due at `now`, for any node, not a lease later.
    /// Those with its sender are not: whether they went out is unknown.
    pub(in crate::engine) fn give_back_unsent(&self, now: Timestamp) {
        let waiting: Vec<Entry> = self
            .sending
            .handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .map(|(entry, _)| entry)
            .collect();
        for entry in waiting {
            self.schedule_entry(entry, now);
        }
    }

    /// Counts a message that reached this node's sender, by how it came.
    pub(in crate::engine) fn count_taken(&self, came: Came) {
        let counters = self.counters();
        match came {
            Came::HandedOff => counters.outbox_handed_off.fetch_add(1, Ordering::Relaxed),
            Came::Claimed { expired } => {
                if expired {
                    counters
                        .outbox_leases_expired
                        .fetch_add(1, Ordering::Relaxed);
                }
                counters.outbox_claimed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    /// Claims up to `n` due messages from the due indexes, leased until
    /// `until` (each bucket is asked for its share, all at once; what the
    /// shares bring beyond `n` is given back, due at `now`), each with
    /// whether it took over a lease that had run out.
    pub(in crate::engine) fn claim_due(
        &self,
        now: Timestamp,
        until: Timestamp,
        n: usize,
    ) -> Result<Vec<(Entry, bool)>> {
        let share = n.div_ceil(usize::from(BUCKETS)).max(1);
        let keys: Vec<String> = (0..BUCKETS).map(|b| self.keys().due(b)).collect();
        let claimed: Vec<(String, Claimed)> = self.run(|cluster| async move {
            let mut set = tokio::task::JoinSet::new();
            for key in keys {
                let cluster = cluster.clone();
                set.spawn(async move {
                    let claimed = cluster.claim_entries(&key, now.0, until.0, share).await;
                    (key, claimed)
                });
            }
            let mut all = Vec::new();
            let mut failed = None;
            while let Some(done) = set.join_next().await {
                let (key, claimed) =
                    done.map_err(|e| EngineError::Internal(format!("a claim's task: {e}")))?;
                match claimed {
                    Ok(claimed) => all.extend(claimed.into_iter().map(|c| (key.clone(), c))),
                    Err(e) => failed = Some(e),
                }
            }
            // What the buckets that answered gave is leased: send it.
            match failed {
                Some(e) if all.is_empty() => Err(e),
                _ => Ok(all),
            }
        })?;
        let mut entries = Vec::with_capacity(claimed.len());
        for (key, c) in claimed {
            if let Some(entry) = Entry::from_member(&c.member) {
                if entries.len() < n {
                    entries.push((entry, c.lease_expired));
                } else {
                    self.schedule_entry(entry, now);
                }
                continue;
            }
            // Not otpd's: removed, so it is not claimed again and again.
            let member = c.member;
            let _ = self.run(|cluster| async move { cluster.remove_entry(&key, &member).await });
        }
        Ok(entries)
    }

    /// Whether to poll the due indexes now: always when this node has
    /// none of its own codes to send or the last poll came back full;
    /// otherwise at most every [`CLAIM_EVERY`] (a busy node is woken for
    /// each code it queues, and each poll asks all 16 indexes; what a poll
    /// finds, retries and other nodes' codes, can wait that long).
    pub(in crate::engine) fn time_to_claim(&self, busy: bool) -> bool {
        let last = *self
            .sending
            .last_claim
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match last {
            Some((at, full)) => !busy || full || at.elapsed() >= CLAIM_EVERY,
            None => true,
        }
    }

    /// Notes a poll of the due indexes that brought `got` of `asked`.
    pub(in crate::engine) fn claimed(&self, got: usize, asked: usize) {
        *self
            .sending
            .last_claim
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((std::time::Instant::now(), got >= asked));
    }

    /// Notes that this node's sender holds `entry`'s message, leased until `until`.
    pub(in crate::engine) fn note_sending(&self, entry: Entry, until: Timestamp) {
        self.sending.leased.insert(entry.message, (entry, until));
    }

    /// The message `id` this node's sender held, now reported on, with its
    /// lease's end (`None`: not this node's, or claimed before a restart).
    pub(in crate::engine) fn reported(&self, id: MessageId) -> Option<(Entry, Timestamp)> {
        self.sending.leased.remove(&id).map(|(_, held)| held)
    }

    /// Messages queued on the cluster (every node's, leased or not).
    pub(in crate::engine) fn queued(&self) -> Result<u64> {
        let keys: Vec<String> = (0..BUCKETS).map(|b| self.keys().due(b)).collect();
        let total = self.run(|cluster| async move {
            let mut total = 0;
            for key in keys {
                total += cluster.entries(&key).await?;
            }
            Ok(total)
        })?;
        self.sending.last_queued.store(total, Ordering::Relaxed);
        Ok(total)
    }

    /// [`Remote::queued`], or what it last read if the cluster does not answer.
    pub(in crate::engine) fn queued_or_last(&self) -> u64 {
        self.queued()
            .unwrap_or_else(|_| self.sending.last_queued.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_names_its_account_and_message_and_nothing_else_parses() {
        let entry = Entry {
            account: AccountId([7; 16]),
            message: MessageId([0xab; 16]),
            challenge: Some(ChallengeId([1; 16])),
        };
        let back = Entry::from_member(&entry.member()).unwrap();
        assert_eq!((back.account, back.message), (entry.account, entry.message));
        assert_eq!(back.challenge, None, "the member does not carry it");
        assert!(Entry::from_member("").is_none());
        assert!(Entry::from_member(&"z".repeat(64)).is_none());
        assert!(Entry::from_member(&entry.member()[..63]).is_none());
        assert!(Entry::from_member("é".repeat(32).as_str()).is_none());
    }

    #[test]
    fn messages_spread_over_every_bucket() {
        let mut seen = [0u32; BUCKETS as usize];
        for n in 0..4096u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_le_bytes());
            let entry = Entry {
                account: AccountId([0; 16]),
                message: MessageId(id),
                challenge: None,
            };
            seen[usize::from(entry.bucket())] += 1;
        }
        assert!(seen.iter().all(|&n| n == 4096 / u32::from(BUCKETS)));
    }
}
