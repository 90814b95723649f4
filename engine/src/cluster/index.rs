//! The index (phone, email, identity → account) across slots, kept
//! consistent by reservations.
//!
//! An index key holds `P:<account>` while a registration (or contact
//! change) claims it — with a TTL, so a node that dies mid-way blocks the
//! value for at most [`super::ClusterConfig::reservation_ttl`] — and
//! `A:<account>` once the claim is committed. Every step is one Lua script
//! on one key that checks who holds it first, so:
//!
//! - a value is claimed by one account at a time (`SET NX` semantics);
//! - a claim is committed only by its claimant, and only while it lives;
//! - a held value whose account no longer exists (its registration died
//!   after committing, or a cancellation died before releasing) is free:
//!   account ids are never reused, so "no such account" cannot change back.
//!
//! [`Cluster::register`] runs the whole protocol for a new account.

use std::time::Duration;

use super::slot::{Change, Outcome, Write};
use super::{Cluster, unavailable};
use crate::error::{EngineError, Result};
use crate::id::AccountId;

/// Claims KEYS[1] for ARGV[1] ('P:<id>') for ARGV[2] ms unless somebody
/// else holds it: 1 when the claimant has it (its own claim or hold
/// included), else who has it.
const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], 'P:' .. ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == 'P:' .. ARGV[1] or cur == 'A:' .. ARGV[1] then return 1 end
return cur
";

/// Replaces KEYS[1]'s holder ARGV[1] (a dangling one) by a claim for
/// ARGV[2] for ARGV[3] ms, if it is still that holder.
const TAKE_OVER: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'P:' .. ARGV[2], 'PX', ARGV[3])
return 1
";

/// Turns ARGV[1]'s live claim on KEYS[1] into a hold (no TTL).
const COMMIT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == 'A:' .. ARGV[1] then return 1 end
if cur ~= 'P:' .. ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'A:' .. ARGV[1])
return 1
";

/// Removes KEYS[1] if ARGV[1] claims or holds it.
const RELEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == 'P:' .. ARGV[1] or cur == 'A:' .. ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Who has an index key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A registration or contact change under way claims it (until its TTL).
    Claimed(AccountId),
    /// The account holds it.
    Held(AccountId),
}

impl Holder {
    /// The account.
    pub fn account(self) -> AccountId {
        match self {
            Holder::Claimed(a) | Holder::Held(a) => a,
        }
    }

    fn parse(key: &str, value: &[u8]) -> Result<Holder> {
        let text = std::str::from_utf8(value).ok();
        let parsed = text.and_then(|t| {
            let (kind, id) = t.split_once(':')?;
            let id = AccountId::parse("index", id).ok()?;
            match kind {
                "P" => Some(Holder::Claimed(id)),
                "A" => Some(Holder::Held(id)),
                _ => None,
            }
        });
        parsed.ok_or_else(|| EngineError::Corrupt(format!("index key {key} holds {text:?}")))
    }

    fn value(self) -> String {
        match self {
            Holder::Claimed(a) => format!("P:{a}"),
            Holder::Held(a) => format!("A:{a}"),
        }
    }
}

/// How a claim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The claimant has it (claimed now, or already).
    Ours,
    /// Another live account has it (or is registering with it).
    Taken(Holder),
}

/// How a registration ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The account exists, holding every index key.
    Registered,
    /// This index key is another live account's: nothing was kept.
    Taken(String, Holder),
}

impl Cluster {
    /// Who has the index key `key` (a key from [`KeySpace::index`](super::keys::KeySpace::index)).
    pub async fn holder(&self, key: &str) -> Result<Option<Holder>> {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("reading the index", &e))?;
        value.map(|v| Holder::parse(key, &v)).transpose()
    }

    /// The account holding `key`, if it holds it and exists; a claim under
    /// way is not a holder yet.
    pub async fn lookup(&self, key: &str) -> Result<Option<AccountId>> {
        match self.holder(key).await? {
            Some(Holder::Held(account)) if self.exists(&self.keys.account(account)).await? => {
                Ok(Some(account))
            }
            _ => Ok(None),
        }
    }

    async fn run(&self, script: &str, key: &str, args: &[&[u8]]) -> Result<redis::Value> {
        let args = args.iter().map(|a| a.to_vec()).collect();
        self.write(super::eval(script, &[key], args), key).await
    }

    /// Claims `key` for `owner` for the configured reservation TTL. A value
    /// held by an account that no longer exists is taken over.
    pub async fn claim(&self, key: &str, owner: AccountId) -> Result<Claim> {
        let owner_text = owner.to_string();
        let ttl = ttl_ms(self.config.reservation_ttl);
        let answer = self
            .run(CLAIM, key, &[owner_text.as_bytes(), ttl.as_bytes()])
            .await?;
        let redis::Value::BulkString(current) = answer else {
            return Ok(Claim::Ours);
        };
        let holder = Holder::parse(key, &current)?;
        if let Holder::Held(other) = holder
            && !self.exists(&self.keys.account(other)).await?
        {
            let stale = holder.value();
            let taken: u8 = redis::from_redis_value(
                self.run(
                    TAKE_OVER,
                    key,
                    &[stale.as_bytes(), owner_text.as_bytes(), ttl.as_bytes()],
                )
                .await?,
            )
            .map_err(|e| EngineError::Internal(e.to_string()))?;
            if taken == 1 {
                return Ok(Claim::Ours);
            }
            // Somebody else took it over first: theirs now.
            return match self.holder(key).await? {
                Some(h) if h.account() != owner => Ok(Claim::Taken(h)),
                _ => Ok(Claim::Ours),
            };
        }
        Ok(Claim::Taken(holder))
    }

    /// Makes `owner`'s claim on `key` a hold. `false`: the claim had expired
    /// (and may be somebody else's now); nothing changed.
    pub async fn commit_claim(&self, key: &str, owner: AccountId) -> Result<bool> {
        let owner_text = owner.to_string();
        let done: u8 =
            redis::from_redis_value(self.run(COMMIT, key, &[owner_text.as_bytes()]).await?)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(done == 1)
    }

    /// Gives up `owner`'s claim or hold on `key` (rollback, contact change,
    /// cancellation); somebody else's is left alone. `true` if it was ours.
    pub async fn release(&self, key: &str, owner: AccountId) -> Result<bool> {
        let owner_text = owner.to_string();
        let done: u8 =
            redis::from_redis_value(self.run(RELEASE, key, &[owner_text.as_bytes()]).await?)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(done == 1)
    }

    /// Registers account `id` with `record`, holding every key of
    /// `index_keys` (from [`KeySpace::index`](super::keys::KeySpace::index)): claim each (in sorted order),
    /// write the account with a TTL, commit each claim, then make the
    /// account permanent. A step that fails undoes the earlier ones; a node
    /// that dies between steps leaves claims and an account that expire,
    /// and committed keys that point to no account (free again).
    pub async fn register(
        &self,
        id: AccountId,
        record: Vec<u8>,
        index_keys: &[String],
    ) -> Result<Registration> {
        self.register_with(id, record, index_keys, Vec::new()).await
    }

    /// [`Cluster::register`], writing `also` (other records of the
    /// account's slot) with the last step, which makes the account
    /// permanent: they exist exactly when the registration is complete.
    pub async fn register_with(
        &self,
        id: AccountId,
        record: Vec<u8>,
        index_keys: &[String],
        also: Vec<(String, Write)>,
    ) -> Result<Registration> {
        let mut sorted: Vec<&String> = index_keys.iter().collect();
        sorted.sort();
        sorted.dedup();
        let outcome = self.register_steps(id, record, &sorted, also).await;
        if outcome.is_err() && self.is_permanent(id).await.unwrap_or(true) {
            // The last step ran (its answer or its WAIT failed), or whether
            // it ran is unknown: the registration may be complete, and
            // undoing it now would leave an account without its index
            // keys. Not acknowledged; nothing is undone.
            return outcome;
        }
        if !matches!(outcome, Ok(Registration::Registered)) {
            // Best effort: what is not undone here expires by itself.
            for key in &sorted {
                let _ = self.release(key, id).await;
            }
            let _ = self.remove_pending(id).await;
        }
        outcome
    }

    async fn register_steps(
        &self,
        id: AccountId,
        record: Vec<u8>,
        keys_sorted: &[&String],
        also: Vec<(String, Write)>,
    ) -> Result<Registration> {
        for key in keys_sorted {
            if let Claim::Taken(holder) = self.claim(key, id).await? {
                return Ok(Registration::Taken((*key).clone(), holder));
            }
        }
        let account = self.keys.account(id);
        // Outlives every claim, so it is there for as long as any of them is.
        let pending = Change {
            account: Write::Put(record.clone(), Some(self.config.reservation_ttl * 2)),
            others: Vec::new(),
        };
        if let Outcome::Conflict(_) = self.compare_and_set(&account, 0, &pending).await? {
            return Err(EngineError::Internal(format!(
                "account {id} exists already"
            )));
        }
        for key in keys_sorted {
            if !self.commit_claim(key, id).await? {
                let holder = self.holder(key).await?;
                return match holder {
                    Some(h) if h.account() != id => Ok(Registration::Taken((*key).clone(), h)),
                    _ => Err(EngineError::Storage(format!(
                        "the claim on {key} expired before the registration finished"
                    ))),
                };
            }
        }
        let permanent = Change {
            account: Write::Put(record, None),
            others: also,
        };
        match self.compare_and_set(&account, 1, &permanent).await? {
            Outcome::Written(_) => Ok(Registration::Registered),
            Outcome::Conflict(_) => Err(EngineError::Storage(format!(
                "account {id} changed or expired before its registration finished"
            ))),
        }
    }

    /// Whether `id`'s account exists past its registration (version 2 on).
    async fn is_permanent(&self, id: AccountId) -> Result<bool> {
        Ok(self.load(&self.keys.account(id), &[]).await?.version >= 2)
    }

    /// Deletes a registration's account if it is still the one being made.
    async fn remove_pending(&self, id: AccountId) -> Result<()> {
        let account = self.keys.account(id);
        let snapshot = self.load(&account, &[]).await?;
        if snapshot.version == 1 {
            let delete = Change {
                account: Write::Delete,
                others: Vec::new(),
            };
            self.compare_and_set(&account, 1, &delete).await?;
        }
        Ok(())
    }
}

fn ttl_ms(ttl: Duration) -> String {
    ttl.as_millis().max(1).to_string()
}
