//! Where each record lives in the cluster.
//!
//! Everything one account owns shares the hash tag `{a:<tag>}`, where the
//! tag is the first 8 bytes of the account's id in hex, so it sits in one
//! slot and one Lua script changes it atomically. The account's challenges
//! carry that tag in their own ids (their first 8 bytes are the account's),
//! so a code can be verified from its challenge id alone, in one slot and
//! one round trip. Accounts whose ids share a tag share a slot, which costs
//! nothing but locality.
//!
//! | Key | Holds |
//! |---|---|
//! | `{a:TAG}REST` | hash: `v` version, `r` the account record |
//! | `{a:TAG}c:REST` | a challenge (expires by TTL) |
//! | `{a:TAG}m:REST` | a queued message |
//! | `{a:TAG}w:TOKEN` | a write's receipt, for a few seconds (a retried write is not applied twice) |
//! | `i:KIND:VALUE` | index: `P:<account>` claimed (expires), `A:<account>` held |
//! | `{a:TAG}j:NODE:TOKEN` | a node's journal entry: a change's events until that node's own store has them |
//! | `{c:}registry` | hash: `v` version, `r` every client (relying party) |
//! | `{k:CLIENT}KEY` | an idempotency key's record (expires with its retention); `CLIENT`, `KEY`: digests |
//! | `{k:CLIENT}z` | the client's shelf: its keys by when they were taken (for its cap) |
//! | `r:LIMIT:SUBJECT` | a rate limit's bucket for one subject (expires once refilled) |
//! | `s:HOUR`, `s:all` | SMS sent and verified per calling code, in one hour (kept 3 hours) and ever |
//! | `{o:BUCKET}due` | one of the send queue's due indexes: messages by their next attempt (`cluster::due`) |
//!
//! A [`KeySpace`] with a namespace `NS` (`store.redis.namespace`) puts it
//! in every key — `{a:NS/TAG}…`, `i:NS/KIND:VALUE` — so deployments (or
//! tests) that share one cluster never see each other's records. The free
//! functions are the empty namespace's.

use crate::hex;
use crate::id::{AccountId, ChallengeId};
use crate::terms::MessageId;

/// The keys of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpace {
    /// `""` or `NS/`.
    prefix: String,
}

impl KeySpace {
    /// The keys of `namespace` (`""`: the keys of the free functions).
    pub fn new(namespace: &str) -> KeySpace {
        KeySpace {
            prefix: if namespace.is_empty() {
                String::new()
            } else {
                format!("{namespace}/")
            },
        }
    }

    /// The hash tag of everything `account` owns.
    pub fn tag(&self, account: AccountId) -> String {
        format!("{{a:{}{}}}", self.prefix, hex::encode(&account.0[..8]))
    }

    /// The account's own record (a hash of its version and record).
    pub fn account(&self, id: AccountId) -> String {
        format!("{}{}", self.tag(id), hex::encode(&id.0[8..]))
    }

    /// A challenge's record, in its account's slot (its id carries the tag).
    pub fn challenge(&self, id: ChallengeId) -> String {
        format!(
            "{{a:{}{}}}c:{}",
            self.prefix,
            hex::encode(&id.0[..8]),
            hex::encode(&id.0[8..])
        )
    }

    /// A queued message of `account`'s.
    pub fn message(&self, account: AccountId, id: MessageId) -> String {
        format!("{}m:{}", self.tag(account), hex::encode(id.0))
    }

    /// An index entry for the engine's index key `key`.
    pub fn index(&self, key: &str) -> String {
        format!("i:{}{key}", self.prefix)
    }

    /// A journal entry of node `node` in `account`'s slot, written with a
    /// change (`token` makes it that change's own): what the node has yet
    /// to record in its own store (the change's audit events, its queued
    /// messages), deleted once it has.
    pub fn journal(&self, account: AccountId, node: &str, token: &str) -> String {
        format!("{}j:{node}:{token}", self.tag(account))
    }

    /// A `SCAN` pattern of every journal entry of node `node`.
    pub fn journal_pattern(&self, node: &str) -> String {
        format!("{{a:{}{}}}j:{node}:*", self.prefix, "?".repeat(16))
    }

    /// A `SCAN` pattern of every account's own key (no other record's).
    pub fn account_pattern(&self) -> String {
        format!("{{a:{}{q}}}{q}", self.prefix, q = "?".repeat(16))
    }

    /// A `SCAN` pattern of every challenge's key.
    pub fn challenge_pattern(&self) -> String {
        format!("{{a:{}{q}}}c:{q}", self.prefix, q = "?".repeat(16))
    }

    /// A `SCAN` pattern of every queued message's key.
    pub fn message_pattern(&self) -> String {
        format!(
            "{{a:{}{}}}m:{}",
            self.prefix,
            "?".repeat(16),
            "?".repeat(32)
        )
    }

    /// The account whose own key `key` is (from [`KeySpace::account`]).
    pub fn account_of(&self, key: &str) -> Option<AccountId> {
        let rest = key
            .strip_prefix("{a:")?
            .strip_prefix(self.prefix.as_str())?;
        let (tag, tail) = rest.split_once('}')?;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&hex::decode_array::<8>(tag)?);
        id[8..].copy_from_slice(&hex::decode_array::<8>(tail)?);
        Some(AccountId(id))
    }

    /// Where a client's idempotency key lives: `client` and `key` are hex
    /// digests (of the client, and of the client with the key); a client's
    /// keys share its tag, so its shelf is in their slot.
    pub fn idempotency(&self, client: &str, key: &str) -> IdempotencyKey {
        let tag = format!("{{k:{}{client}}}", self.prefix);
        IdempotencyKey {
            record: format!("{tag}{key}"),
            shelf: format!("{tag}z"),
            member: key.to_owned(),
        }
    }

    /// The bucket of rate limit `limit` for `subject` (`cluster::rate`).
    pub fn limit(&self, limit: &str, subject: &str) -> String {
        format!("r:{}{limit}:{subject}", self.prefix)
    }

    /// The SMS tallies of `hour` (hours since the epoch), or of all time.
    pub fn sms_tally(&self, hour: Option<u64>) -> String {
        match hour {
            Some(hour) => format!("s:{}{hour}", self.prefix),
            None => format!("s:{}all", self.prefix),
        }
    }

    /// Due index `bucket` of the send queue (`cluster::due`): each bucket
    /// has its own tag, so the buckets spread over the shards.
    pub fn due(&self, bucket: u16) -> String {
        format!("{{o:{}{bucket:02}}}due", self.prefix)
    }

    /// The registry of clients (relying parties): one record, versioned
    /// like an account's, small (a client is ~200 bytes).
    pub fn clients(&self) -> String {
        format!("{{c:{}}}registry", self.prefix)
    }
}

/// An idempotency key's record and its client's shelf (same slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key's record.
    pub record: String,
    /// The client's keys by when they were taken.
    pub shelf: String,
    /// The key's name on the shelf (the record's name after the tag).
    pub member: String,
}

/// The hash tag of everything `account` owns.
pub fn tag(account: AccountId) -> String {
    format!("{{a:{}}}", hex::encode(&account.0[..8]))
}

/// The account's own record (a hash of its version and record).
pub fn account(id: AccountId) -> String {
    format!("{}{}", tag(id), hex::encode(&id.0[8..]))
}

/// A challenge's record, in its account's slot (its id carries the tag).
pub fn challenge(id: ChallengeId) -> String {
    format!(
        "{{a:{}}}c:{}",
        hex::encode(&id.0[..8]),
        hex::encode(&id.0[8..])
    )
}

/// A queued message of `account`'s.
pub fn message(account: AccountId, id: MessageId) -> String {
    format!("{}m:{}", tag(account), hex::encode(id.0))
}

/// A challenge id for `account`: its first 8 bytes are the account's tag,
/// the other 8 are `random`.
pub fn challenge_id(account: AccountId, random: [u8; 8]) -> ChallengeId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&account.0[..8]);
    id[8..].copy_from_slice(&random);
    ChallengeId(id)
}

/// The receipt of one write (token) to the slot of the account at
/// `account` (a key from [`account`]): kept briefly, so the same write
/// retried is recognised as done.
pub fn receipt(account: &str, token: &str) -> crate::error::Result<String> {
    let end = account
        .find('}')
        .filter(|_| account.starts_with("{a:") || account.starts_with("{c:"));
    let end = end.ok_or_else(|| {
        crate::error::EngineError::Internal(format!("{account} is not an account key"))
    })?;
    Ok(format!("{}w:{token}", &account[..=end]))
}

/// An index entry: `kind` (`phone`, `email`, `id`, ...) and the normalised
/// value the engine's index keys already are.
pub fn index(key: &str) -> String {
    format!("i:{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(key: &str) -> redis::cluster_routing::Slot {
        redis::cluster_routing::Slot::for_key(key)
    }

    #[test]
    fn an_accounts_records_share_one_slot() {
        let a = AccountId([0xab; 16]);
        let c = challenge_id(a, [7; 8]);
        let m = MessageId([9; 16]);
        assert_eq!(slot(&account(a)), slot(&challenge(c)));
        assert_eq!(slot(&account(a)), slot(&message(a, m)));
        assert_eq!(account(a), "{a:abababababababab}abababababababab");
        assert_eq!(challenge(c), "{a:abababababababab}c:0707070707070707");
        let r = receipt(&account(a), "t0k").unwrap();
        assert_eq!(r, "{a:abababababababab}w:t0k");
        assert_eq!(slot(&r), slot(&account(a)));
        assert!(receipt("i:phone:+351", "t").is_err());
    }

    #[test]
    fn a_namespace_is_in_every_key_and_keeps_the_slots_together() {
        let a = AccountId([0xab; 16]);
        let c = challenge_id(a, [7; 8]);
        let ns = KeySpace::new("t1");
        assert_eq!(ns.account(a), "{a:t1/abababababababab}abababababababab");
        assert_eq!(ns.challenge(c), "{a:t1/abababababababab}c:0707070707070707");
        assert_eq!(ns.index("p:+351912345678"), "i:t1/p:+351912345678");
        assert_eq!(ns.limit("ip_issue_rate", "7f"), "r:t1/ip_issue_rate:7f");
        assert_eq!(ns.sms_tally(Some(12)), "s:t1/12");
        assert_eq!(KeySpace::new("").sms_tally(None), "s:all");
        assert_eq!(slot(&ns.account(a)), slot(&ns.challenge(c)));
        assert_eq!(
            slot(&ns.account(a)),
            slot(&ns.message(a, MessageId([1; 16])))
        );
        assert!(receipt(&ns.account(a), "t").is_ok());
        let plain = KeySpace::new("");
        assert_eq!(plain.account(a), account(a));
        assert_eq!(plain.challenge(c), challenge(c));
        assert_eq!(plain.index("e:x"), index("e:x"));
        assert_eq!(ns.account_of(&ns.account(a)), Some(a));
        assert_eq!(plain.account_of(&plain.account(a)), Some(a));
        assert_eq!(plain.account_of(&ns.account(a)), None);
        assert_eq!(ns.account_of(&ns.challenge(c)), None);
        let glob = |pattern: &str, key: &str| {
            pattern.len() == key.len()
                && pattern
                    .chars()
                    .zip(key.chars())
                    .all(|(p, k)| p == '?' || p == k)
        };
        assert!(glob(&ns.account_pattern(), &ns.account(a)));
        assert!(!glob(&ns.account_pattern(), &ns.challenge(c)));
        assert!(glob(&ns.challenge_pattern(), &ns.challenge(c)));
        assert!(glob(
            &ns.message_pattern(),
            &ns.message(a, MessageId([3; 16]))
        ));
        assert!(!glob(&plain.account_pattern(), &ns.account(a)));
    }

    #[test]
    fn different_accounts_spread_over_slots() {
        let slots: std::collections::HashSet<_> = (0u8..64)
            .map(|n| slot(&account(AccountId([n; 16]))))
            .collect();
        assert!(slots.len() > 50, "{} slots for 64 accounts", slots.len());
    }
}
