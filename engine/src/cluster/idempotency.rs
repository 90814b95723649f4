//! Idempotency keys on the cluster: one key per (client, key), in a slot of
//! its own (the key's digest is its hash tag), expiring with the key's
//! retention. A request takes the key with one script that writes its
//! record only where there is none (and answers what is there otherwise),
//! acknowledged like every write (`WAIT`), so two nodes given the same key
//! at once never both run it.

use std::time::Duration;

use super::{Cluster, eval, slot::ttl_ms};
use crate::error::{EngineError, Result};

/// Writes `ARGV[1]` with a TTL of `ARGV[2]` ms unless the key exists;
/// answers the record already there, or nil when this one was written.
const TAKE: &str = r"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// As [`TAKE`], but also over a record equal to `ARGV[3]` (one expired by
/// the engine's clock, which the cluster's TTL may not have caught up with).
const TAKE_OVER: &str = r"
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[3] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
";

/// Writes `ARGV[1]` with a TTL of `ARGV[2]` ms (replacing the record).
const PUT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

impl Cluster {
    /// Writes `record` at `key` for `ttl` unless a record is there; `None`
    /// when written, else the record found.
    pub async fn take(&self, key: &str, record: Vec<u8>, ttl: Duration) -> Result<Option<Vec<u8>>> {
        let script = eval(
            TAKE,
            &[key],
            vec![record, ttl_ms(Some(ttl)).to_string().into_bytes()],
        );
        self.taken(script, key).await
    }

    /// [`Cluster::take`], writing over `expired` too if it is what is there.
    pub async fn take_over(
        &self,
        key: &str,
        expired: Vec<u8>,
        record: Vec<u8>,
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>> {
        let ttl = ttl_ms(Some(ttl)).to_string().into_bytes();
        let script = eval(TAKE_OVER, &[key], vec![record, ttl, expired]);
        self.taken(script, key).await
    }

    async fn taken(&self, script: redis::Cmd, key: &str) -> Result<Option<Vec<u8>>> {
        match self.write(script, key).await? {
            redis::Value::Nil => Ok(None),
            redis::Value::BulkString(held) => Ok(Some(held)),
            other => Err(EngineError::Corrupt(format!(
                "an idempotency key's take answered {other:?}"
            ))),
        }
    }

    /// Writes `record` at `key` for `ttl`, whatever was there.
    pub async fn put(&self, key: &str, record: Vec<u8>, ttl: Duration) -> Result<()> {
        let script = eval(
            PUT,
            &[key],
            vec![record, ttl_ms(Some(ttl)).to_string().into_bytes()],
        );
        self.write(script, key).await.map(|_| ())
    }
}
