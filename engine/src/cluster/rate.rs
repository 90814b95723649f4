//! Rate limits every node shares: one GCRA bucket per limit and subject (an
//! account, a destination, an address, a country, ...), checked and spent
//! in one script on the master holding it, and the SMS tallies behind the
//! pumping alarm.
//!
//! GCRA is the algorithm governor runs in each process: a bucket is its
//! "theoretical arrival time" (TAT); a rate of `count` per `per` has an
//! interval `per / count` and lets an event through when
//! `TAT + interval - count × interval <= now`, moving TAT on by one
//! interval. A bucket is a hash with one field per rate (named by its
//! interval and burst, so a changed configuration starts fresh fields) and
//! expires once every rate in it has refilled: an idle subject costs
//! nothing, and a spray of subjects costs memory only for as long as one
//! bucket takes to refill.
//!
//! Spends are not confirmed by `WAIT`: a failover may forget the last few
//! milliseconds of spends (docs/OPERATIONS.md says so), which the
//! per-challenge and per-account failure counters, written with `WAIT`,
//! never do.

use std::time::Duration;

use super::{Cluster, eval, unavailable};
use crate::error::{EngineError, Result};

/// KEYS[1] the bucket. ARGV[1] now (µs), then pairs: an interval (µs) and
/// a burst. Either every rate allows, and each is spent, or nothing is, and
/// the answer is `{i, wait}`: the first rate refusing and the µs until it
/// would allow. `{0, 0}`: spent.
const SPEND: &str = r"
local now = tonumber(ARGV[1])
local spent = {}
local longest = 0
for i = 1, (#ARGV - 1) / 2 do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local field = ARGV[2 * i] .. ':' .. ARGV[2 * i + 1]
  local tat = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if tat < now then tat = now end
  local wait = tat + interval - interval * burst - now
  if wait > 0 then return {i, wait} end
  spent[#spent + 1] = field
  spent[#spent + 1] = string.format('%d', tat + interval)
  if tat + interval - now > longest then longest = tat + interval - now end
end
if #spent == 0 then return {0, 0} end
redis.call('HSET', KEYS[1], unpack(spent))
local ttl = math.ceil(longest / 1000)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {0, 0}
";

/// KEYS[1] a tally: adds 1 to field ARGV[1]; ARGV[2] > 0: the tally
/// expires ARGV[2] ms from now.
const COUNT: &str = r"
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
";

/// One rate of a bucket: an event every `interval`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// The time one event takes to refill (µs, at least 1).
    pub interval_us: u64,
    /// Events allowed at once.
    pub burst: u32,
}

/// What a spend found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    /// Every rate allowed the event, and each was spent.
    Allowed,
    /// The rate at this index (of those asked) refused; nothing was spent.
    Refused {
        /// Which rate.
        rate: usize,
        /// How long until it would allow.
        wait: Duration,
    },
}

impl Cluster {
    /// Spends one event on every one of `paces` of the bucket `key` at
    /// `now_us` (µs), or none (see [`SPEND`]).
    pub async fn spend(&self, key: &str, now_us: u64, paces: &[Pace]) -> Result<Spent> {
        let mut args = Vec::with_capacity(1 + 2 * paces.len());
        args.push(now_us.to_string().into_bytes());
        for pace in paces {
            args.push(pace.interval_us.max(1).to_string().into_bytes());
            args.push(pace.burst.max(1).to_string().into_bytes());
        }
        let answer: (i64, i64) = eval(SPEND, &[key], args)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("spending a rate limit", &e))?;
        match answer {
            (0, _) => Ok(Spent::Allowed),
            (i, wait) if i >= 1 && (i as usize) <= paces.len() => Ok(Spent::Refused {
                rate: i as usize - 1,
                wait: Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
            }),
            other => Err(EngineError::Corrupt(format!(
                "a rate limit's spend answered {other:?}"
            ))),
        }
    }

    /// Adds one to `field` of the tally `key`; with `expire`, the tally
    /// goes that long after its last count.
    pub async fn count(&self, key: &str, field: &str, expire: Option<Duration>) -> Result<()> {
        let ms = expire.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let args = vec![field.as_bytes().to_vec(), ms.to_string().into_bytes()];
        let _: i64 = eval(COUNT, &[key], args)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("counting", &e))?;
        Ok(())
    }

    /// Every field of the tally `key` (none if it is gone).
    pub async fn tally(&self, key: &str) -> Result<Vec<(String, u64)>> {
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("reading a tally", &e))
    }
}
