//! Idempotency keys on the cluster. A client's keys share one hash tag (its
//! shelf), so one script can keep them within the client's cap: a key's
//! record expires with the key's retention, and the shelf (a sorted set of
//! the client's keys by the time they were taken) lets a take forget the
//! client's oldest keys past the cap, as the embedded store does. A request
//! takes its key with one script that writes its record only where there is
//! none (and answers what is there otherwise), acknowledged like every
//! write (`WAIT`), so two nodes given the same key at once never both run
//! it.

use std::time::Duration;

use super::keys::IdempotencyKey;
use super::{Cluster, eval, slot::ttl_ms};
use crate::error::{EngineError, Result};

/// KEYS[1] the record, KEYS[2] the shelf. Unless the record exists (or it
/// equals ARGV[7], one past its retention: taken over), writes ARGV[1]
/// there with a TTL of ARGV[2] ms, puts member ARGV[3] on the shelf at
/// score ARGV[4] (when it was taken), drops from the shelf what was taken
/// before ARGV[6], and forgets the oldest keys past a cap of ARGV[5]
/// (their records are KEYS[1]'s tag followed by the member). Answers the
/// record there, or nil when this one was written.
const TAKE: &str = r"
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[7] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  local tag = string.match(KEYS[1], '^{[^}]*}')
  local oldest = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #oldest, 2 do
    redis.call('DEL', tag .. oldest[i])
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return false
";

/// Deletes KEYS[1] and its member ARGV[2] of the shelf KEYS[2] if the
/// record still is ARGV[1] (its taker's, not a later one's): 1 if deleted.
const DROP: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
";

/// Writes ARGV[1] at KEYS[1] with a TTL of ARGV[2] ms (replacing the record).
const PUT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// How a key is taken: the record to write, and the client's shelf.
#[derive(Debug, Clone)]
pub struct Take {
    /// The record to write.
    pub record: Vec<u8>,
    /// How long the key is kept.
    pub ttl: Duration,
    /// When it is taken (ms, the engine's clock): its place on the shelf.
    pub at: u64,
    /// Keys taken before this time (ms) are past their retention.
    pub expired_before: u64,
    /// The client's cap on keys.
    pub cap: usize,
    /// A record past its retention that may be written over.
    pub over: Option<Vec<u8>>,
}

impl Cluster {
    /// Takes `key` (see [`TAKE`]): `None` when `take.record` was written,
    /// else the record found.
    pub async fn take(&self, key: &IdempotencyKey, take: Take) -> Result<Option<Vec<u8>>> {
        let args = vec![
            take.record,
            ttl_ms(Some(take.ttl)).to_string().into_bytes(),
            key.member.clone().into_bytes(),
            take.at.to_string().into_bytes(),
            take.cap.max(1).to_string().into_bytes(),
            take.expired_before.to_string().into_bytes(),
            // Never a record's bytes (each starts with a version byte).
            take.over.unwrap_or_default(),
        ];
        let script = eval(TAKE, &[&key.record, &key.shelf], args);
        match self.write(script, &key.record).await? {
            redis::Value::Nil => Ok(None),
            redis::Value::BulkString(held) => Ok(Some(held)),
            other => Err(EngineError::Corrupt(format!(
                "an idempotency key's take answered {other:?}"
            ))),
        }
    }

    /// Deletes `key` if it still holds `record`.
    pub async fn drop_if(&self, key: &IdempotencyKey, record: Vec<u8>) -> Result<()> {
        let args = vec![record, key.member.clone().into_bytes()];
        let script = eval(DROP, &[&key.record, &key.shelf], args);
        self.write(script, &key.record).await.map(|_| ())
    }

    /// Writes `record` at `key` for `ttl`, whatever was there.
    pub async fn put(&self, key: &IdempotencyKey, record: Vec<u8>, ttl: Duration) -> Result<()> {
        let args = vec![record, ttl_ms(Some(ttl)).to_string().into_bytes()];
        let script = eval(PUT, &[&key.record], args);
        self.write(script, &key.record).await.map(|_| ())
    }
}
