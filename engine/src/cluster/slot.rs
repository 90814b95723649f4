//! One account's slot: an atomic read of its records, and a compare-and-set
//! on its version that writes the account and the other records of its slot
//! (challenges, messages) together or not at all.
//!
//! A change is read → computed in Rust → written back only if nobody wrote
//! in between ([`Cluster::update`] retries when somebody did), so two nodes
//! approving the same right code approve it once, and N wrong codes sent at
//! once through any nodes count N.

use std::time::Duration;

use redis::Script;
use redis::cluster_routing::Slot;

use super::{Cluster, unavailable};
use crate::error::{EngineError, Result};

/// Reads the account hash's version and record, then each other key.
const LOAD: &str = r"
local r = redis.call('HMGET', KEYS[1], 'v', 'r')
local out = {r[1] or '0', r[2] or false}
for i = 2, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) end
return out
";

/// KEYS[1] the account hash, KEYS[2..n-1] other keys of its slot, KEYS[n]
/// this write's receipt. ARGV[1] the expected version, ARGV[2] how long the
/// receipt lives (ms); then per key but the receipt an operation ('K' keep —
/// the account only: its version moves, its record and TTL stay —, 'P'
/// put, 'D' delete), a value and a TTL in ms ('0': none). Answers {1, new
/// version} or {0, current version}, changing nothing. The same write run
/// again (the client retries a dropped connection) finds its receipt and
/// answers {1, the version it wrote} without writing twice, whatever was
/// written since.
const COMPARE_AND_SET: &str = r"
local receipt = KEYS[#KEYS]
local done = redis.call('GET', receipt)
if done then return {1, tonumber(done)} end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return {0, v} end
local nv = v + 1
for i = 1, #KEYS - 1 do
  local op, value, ttl = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
  if op == 'D' then
    redis.call('DEL', KEYS[i])
    if i == 1 then nv = 0 end
  elseif i == 1 then
    if op == 'P' then
      redis.call('HSET', KEYS[1], 'v', nv, 'r', value)
      if ttl ~= '0' then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
    else
      redis.call('HSET', KEYS[1], 'v', nv)
    end
  elseif ttl ~= '0' then
    redis.call('SET', KEYS[i], value, 'PX', ttl)
  else
    redis.call('SET', KEYS[i], value)
  end
end
redis.call('SET', receipt, nv, 'PX', ARGV[2])
return {1, nv}
";

/// How many times [`Cluster::update`] recomputes a change that lost a race
/// before giving up: enough for every node of a large cluster to write the
/// same account at once.
pub const MAX_ATTEMPTS: usize = 256;

/// An account's slot as one atomic read saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The account's version: 0 when it does not exist.
    pub version: u64,
    /// The account's record.
    pub record: Option<Vec<u8>>,
    /// The other keys read, in the order asked.
    pub others: Vec<Option<Vec<u8>>>,
}

/// What happens to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// The account only: its version moves (a change to its other
    /// records); its record and its TTL stay as they are.
    Keep,
    /// Store this record; with a TTL it expires then, without one it is
    /// permanent (an account's TTL is removed).
    Put(Vec<u8>, Option<Duration>),
    /// Delete it.
    Delete,
}

/// A change to one account's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The account record (a TTL here is for a registration not yet finished).
    pub account: Write,
    /// Other records of the slot: (key, what happens to it).
    pub others: Vec<(String, Write)>,
}

impl Change {
    /// A change that writes the account's record.
    pub fn account(record: Vec<u8>) -> Change {
        Change {
            account: Write::Put(record, None),
            others: Vec::new(),
        }
    }

    /// A change that writes the account's record, which then expires after
    /// `ttl` (a cancelled account erased after the retention), or is
    /// permanent without one.
    pub fn account_expiring(record: Vec<u8>, ttl: Option<Duration>) -> Change {
        Change {
            account: Write::Put(record, ttl),
            others: Vec::new(),
        }
    }

    /// A change that leaves the account's record as it is.
    pub fn keep() -> Change {
        Change {
            account: Write::Keep,
            others: Vec::new(),
        }
    }

    /// Also puts `value` at `key` (expiring after `ttl`, if given).
    pub fn put(mut self, key: String, value: Vec<u8>, ttl: Option<Duration>) -> Change {
        self.others.push((key, Write::Put(value, ttl)));
        self
    }

    /// Also deletes `key`.
    pub fn delete(mut self, key: String) -> Change {
        self.others.push((key, Write::Delete));
        self
    }
}

/// How a compare-and-set ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written and acknowledged; the account's version is now this (0: deleted).
    Written(u64),
    /// Somebody else wrote first: the version is this now, nothing changed.
    Conflict(u64),
}

/// The longest TTL written: ~285 years, so every TTL is an exact number in
/// Lua and valid for `PX`.
const MAX_TTL_MS: u64 = 1 << 53;

pub(super) fn ttl_ms(ttl: Option<Duration>) -> u64 {
    // A TTL rounds up to the next millisecond, never down to "none".
    ttl.map_or(0, |t| {
        let ms = t.as_millis();
        u64::try_from(ms + u128::from(t.subsec_nanos() % 1_000_000 != 0))
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TTL_MS)
    })
}

fn same_slot(account: &str, others: impl Iterator<Item = impl AsRef<str>>) -> Result<()> {
    let slot = Slot::for_key(account);
    for key in others {
        if Slot::for_key(key.as_ref()) != slot {
            return Err(EngineError::Internal(format!(
                "{} is not in the slot of {account}",
                key.as_ref()
            )));
        }
    }
    Ok(())
}

impl Cluster {
    /// Reads the account at `account` and the records at `others` (keys of
    /// its slot) in one atomic step.
    pub async fn load(&self, account: &str, others: &[String]) -> Result<Snapshot> {
        same_slot(account, others.iter())?;
        let script = Script::new(LOAD);
        let mut invocation = script.key(account);
        for key in others {
            invocation.key(key);
        }
        let mut conn = self.conn();
        let mut values: Vec<Option<Vec<u8>>> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable("reading an account", &e))?;
        if values.len() != others.len() + 2 {
            return Err(EngineError::Internal(format!(
                "the load script answered {} values for {} keys",
                values.len(),
                others.len() + 1
            )));
        }
        let rest = values.split_off(2);
        let version = values[0]
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| EngineError::Corrupt(format!("{account}: version is not a number")))?;
        Ok(Snapshot {
            version,
            record: values[1].take(),
            others: rest,
        })
    }

    /// Applies `change` to the slot of `account` if its version is still
    /// `expected`, then waits for the configured replicas. Nothing changes
    /// on [`Outcome::Conflict`]; an error means not acknowledged.
    pub async fn compare_and_set(
        &self,
        account: &str,
        expected: u64,
        change: &Change,
    ) -> Result<Outcome> {
        let mut token = [0u8; 16];
        getrandom::fill(&mut token)
            .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
        self.compare_and_set_as(account, expected, change, &crate::hex::encode(token))
            .await
    }

    /// [`Cluster::compare_and_set`] with the write's token given (a retry
    /// of the same write carries the same token). For tests.
    #[doc(hidden)]
    pub async fn compare_and_set_as(
        &self,
        account: &str,
        expected: u64,
        change: &Change,
        token: &str,
    ) -> Result<Outcome> {
        same_slot(account, change.others.iter().map(|(k, _)| k))?;
        if change.account == Write::Keep && expected == 0 {
            return Err(EngineError::Internal(format!(
                "{account}: a change to an account that does not exist"
            )));
        }
        for (key, write) in &change.others {
            if key == account || *write == Write::Keep {
                return Err(EngineError::Internal(format!(
                    "{key}: the account itself, or Keep, among the other records of a change"
                )));
            }
        }
        let receipt = super::keys::receipt(account, token)?;
        // A retry comes within the operation's timeout; the receipt
        // outlives it with room to spare.
        let receipt_ms = ttl_ms(Some((self.config.timeout * 4).max(Duration::from_secs(10))));
        let mut keys: Vec<&str> = vec![account];
        let mut args: Vec<Vec<u8>> = vec![
            expected.to_string().into_bytes(),
            receipt_ms.to_string().into_bytes(),
        ];
        for (key, write) in std::iter::once((account, &change.account))
            .chain(change.others.iter().map(|(k, w)| (k.as_str(), w)))
        {
            if key != account {
                keys.push(key);
            }
            let (op, value, ttl): (&[u8], &[u8], u64) = match write {
                Write::Keep => (b"K", b"", 0),
                Write::Put(value, ttl) => (b"P", value, ttl_ms(*ttl)),
                Write::Delete => (b"D", b"", 0),
            };
            args.extend([op.to_vec(), value.to_vec(), ttl.to_string().into_bytes()]);
        }
        keys.push(&receipt);
        let answer = self
            .write(super::eval(COMPARE_AND_SET, &keys, args), account)
            .await?;
        let (written, version): (u8, u64) = redis::from_redis_value(answer)
            .map_err(|e| EngineError::NotStored(format!("the compare-and-set answered {e}")))?;
        if written == 0 {
            return Ok(Outcome::Conflict(version));
        }
        Ok(Outcome::Written(version))
    }

    /// Read → compute → compare-and-set on `account`'s slot, recomputed from
    /// a fresh read whenever another writer got there first. `change` sees
    /// the slot (the account and the keys `others` names) and answers the
    /// change to write, or `None` to write nothing, with its result. Errors
    /// from `change` end it with nothing written.
    pub async fn update<T>(
        &self,
        account: &str,
        others: &[String],
        mut change: impl FnMut(&Snapshot) -> Result<(Option<Change>, T)>,
    ) -> Result<T> {
        for _ in 0..MAX_ATTEMPTS {
            let snapshot = self.load(account, others).await?;
            let (write, value) = change(&snapshot)?;
            let Some(write) = write else {
                return Ok(value);
            };
            match self
                .compare_and_set(account, snapshot.version, &write)
                .await?
            {
                Outcome::Written(_) => return Ok(value),
                Outcome::Conflict(_) => tokio::task::yield_now().await,
            }
        }
        Err(EngineError::Storage(format!(
            "{account} changed under this change {MAX_ATTEMPTS} times in a row; nothing was written"
        )))
    }

    /// The record at `key` (a read of one key, from its master).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn();
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable("reading a record", &e))
    }

    /// Deletes `key` (a record nothing else depends on: not waited for by
    /// replicas).
    pub async fn delete(&self, key: &str) -> Result<()> {
        let mut conn = self.conn();
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| unavailable("deleting a record", &e))
    }

    /// Whether the account at `account` exists.
    pub async fn exists(&self, account: &str) -> Result<bool> {
        Ok(self.load(account, &[]).await?.version != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_and_none_is_zero() {
        assert_eq!(ttl_ms(None), 0);
        assert_eq!(ttl_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(ttl_ms(Some(Duration::from_micros(5_001))), 6);
        assert_eq!(ttl_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(ttl_ms(Some(Duration::ZERO)), 1);
    }

    #[test]
    fn keys_of_other_slots_are_refused() {
        assert!(same_slot("{a:1}x", ["{a:1}c:y"].iter()).is_ok());
        assert!(matches!(
            same_slot("{a:1}x", ["{a:2}c:y"].iter()),
            Err(EngineError::Internal(_))
        ));
    }
}
