//! The send queue's due indexes: which queued messages are due when, for
//! every node to take from.
//!
//! A queued message's record lives in its account's slot (`{a:TAG}m:ID`,
//! written with the change that queued it). Beside it, in one of
//! [`BUCKETS`] sorted sets of its own slot (`{o:BUCKET}due`, the bucket
//! chosen by the message id), an entry names it (its account and its
//! id) under the time of its next attempt in milliseconds: "what is
//! due now" is a range read, O(log n) in the queue's length, on each
//! bucket.
//!
//! A node **claims** due entries with one script per bucket that reads
//! them and moves each to `now + lease` (a **lease**: a score half a
//! millisecond short of it, so a later claim can tell a lease that ran out from a
//! retry that fell due). Two nodes never claim one entry within a lease; a
//! node that dies mid-send simply lets its lease run out, and another node
//! claims the message then, sending it with the same message id (the
//! gateways' idempotency key). A report moves the entry to the retry's time
//! or removes it.
//!
//! An entry is written **before** the change that queues its message (with
//! `WAIT`, under a lease of the queuing node's), so no message can exist
//! without one; an entry whose message is gone (sent, superseded, its
//! change refused) is removed by whoever claims it.

use super::{Cluster, eval, not_stored, unavailable};
use crate::error::{EngineError, Result};

/// Due indexes per namespace: enough to spread the queue over the shards of
/// a large cluster, few enough that a node polls them all in one go.
pub const BUCKETS: u16 = 16;

/// KEYS[1] a due index. ARGV[1] now (ms), ARGV[2] the lease's end (ms),
/// ARGV[3] at most this many. Each entry due by now moves to the lease's
/// end (less a half: a lease, due at its end); the answer is member, old score, member, ...
const CLAIM: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local lease = tonumber(ARGV[2]) - 0.5
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], lease, due[i])
end
return due
";

/// An entry taken by a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The entry's member.
    pub member: String,
    /// The lease of another claim (or of the node that queued it) ran out:
    /// that node did not report on it in time.
    pub lease_expired: bool,
}

impl Cluster {
    /// Writes the entry `member` in the due index `key` at `until_ms` (a
    /// lease: the queuing node sends it, or another after then), unless it
    /// is already there with a later score; acknowledged like every write
    /// (`WAIT`): the message it names is written only after it.
    pub async fn lease_entry(&self, key: &str, member: &str, until_ms: u64) -> Result<()> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key)
            .arg("GT")
            .arg(until_ms as f64 - 0.5)
            .arg(member);
        self.write(cmd, key).await.map(drop)
    }

    /// Moves the entry `member` of `key` to `at_ms` (a retry's time).
    pub async fn schedule_entry(&self, key: &str, member: &str, at_ms: u64) -> Result<()> {
        let _: i64 = redis::cmd("ZADD")
            .arg(key)
            .arg(at_ms)
            .arg(member)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| not_stored("scheduling a message", &e))?;
        Ok(())
    }

    /// Writes the entry `member` of `key` at `at_ms` unless it exists.
    pub async fn add_entry(&self, key: &str, member: &str, at_ms: u64) -> Result<()> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key).arg("NX").arg(at_ms).arg(member);
        self.write(cmd, key).await.map(drop)
    }

    /// Removes the entry `member` of `key`.
    pub async fn remove_entry(&self, key: &str, member: &str) -> Result<()> {
        let _: i64 = redis::cmd("ZREM")
            .arg(key)
            .arg(member)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| not_stored("removing a message's entry", &e))?;
        Ok(())
    }

    /// Claims up to `n` entries of `key` due at `now_ms`, leased until
    /// `until_ms` (see [`CLAIM`]).
    pub async fn claim_entries(
        &self,
        key: &str,
        now_ms: u64,
        until_ms: u64,
        n: usize,
    ) -> Result<Vec<Claimed>> {
        let args = vec![
            now_ms.to_string().into_bytes(),
            until_ms.to_string().into_bytes(),
            n.max(1).to_string().into_bytes(),
        ];
        let answer: Vec<(String, String)> = eval(CLAIM, &[key], args)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("claiming due messages", &e))?;
        answer
            .into_iter()
            .map(|(member, score)| {
                let score: f64 = score.parse().map_err(|_| {
                    EngineError::Corrupt(format!("{key}: the score {score:?} is not a number"))
                })?;
                Ok(Claimed {
                    member,
                    lease_expired: score.fract() != 0.0,
                })
            })
            .collect()
    }

    /// Entries in `key` (queued messages of one bucket, leased or not).
    pub async fn entries(&self, key: &str) -> Result<u64> {
        redis::cmd("ZCARD")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("counting queued messages", &e))
    }
}
