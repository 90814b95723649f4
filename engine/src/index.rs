//! The login index: which live account holds each identity, phone, email
//! and direct-message handle.
//!
//! The index is rebuilt from the accounts on every start and never stored,
//! so its keys need not be the text: each is a 16-byte keyed digest
//! (SipHash-1-3, 128 bits, under a key drawn from the operating system at
//! start). A slot is then 32 bytes with nothing on the heap, where a
//! string key took a 24-byte slot part and a heap allocation (docs/
//! CAPACITY.md, memory per account). Two different texts share a digest
//! with probability 2^-128 per pair, and nobody outside the process knows
//! the key to aim for one; a clash would refuse a registration as taken,
//! never give one account's phone to another.

use std::hash::Hasher;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::error::{EngineError, Result};
use crate::id::{AccountId, IdHasher};

/// The digest of one index key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Digest([u8; 16]);

/// Index keys (`i:…`, `p:…`, `e:…`, `d:…`) to the live account holding each.
pub(crate) struct Index {
    keys: (u64, u64),
    map: DashMap<Digest, AccountId, IdHasher>,
}

impl Index {
    /// An empty index under a fresh key.
    pub(crate) fn new() -> Result<Self> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key)
            .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
        let (k0, k1) = key.split_at(8);
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        Ok(Self {
            keys: (word(k0), word(k1)),
            map: DashMap::with_hasher(IdHasher::default()),
        })
    }

    fn digest(&self, key: &str) -> Digest {
        let mut hasher = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        hasher.write(key.as_bytes());
        Digest(hasher.finish128().as_bytes())
    }

    /// The account holding `key`.
    pub(crate) fn get(&self, key: &str) -> Option<AccountId> {
        self.map.get(&self.digest(key)).map(|id| *id)
    }

    /// The slot of `key`, held (and its shard locked) until dropped.
    pub(crate) fn entry(&self, key: &str) -> Entry<'_, Digest, AccountId> {
        self.map.entry(self.digest(key))
    }

    /// Gives `key` to `owner`; the account that held it before, if any.
    pub(crate) fn insert(&self, key: &str, owner: AccountId) -> Option<AccountId> {
        self.map.insert(self.digest(key), owner)
    }

    /// Frees `key` if `owner` holds it.
    pub(crate) fn release(&self, key: &str, owner: AccountId) {
        self.map
            .remove_if(&self.digest(key), |_, held| *held == owner);
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("keys", &self.map.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_their_text_and_released_only_by_their_owner() {
        let index = Index::new().unwrap();
        let (ana, rui) = (AccountId([1; 16]), AccountId([2; 16]));
        assert_eq!(index.insert("p:+351912345678", ana), None);
        assert_eq!(index.get("p:+351912345678"), Some(ana));
        assert!(index.get("p:+351912345678").is_some());
        assert_eq!(index.get("p:+351912345679"), None, "one digit apart");
        assert_eq!(index.get("e:+351912345678"), None, "another kind of key");
        index.release("p:+351912345678", rui);
        assert_eq!(index.get("p:+351912345678"), Some(ana), "not rui's to free");
        index.release("p:+351912345678", ana);
        assert_eq!(index.get("p:+351912345678"), None);
        assert!(matches!(index.entry("i:cc:12345678"), Entry::Vacant(_)));
    }

    #[test]
    fn two_indexes_digest_under_different_keys() {
        let (a, b) = (Index::new().unwrap(), Index::new().unwrap());
        assert_ne!(a.digest("p:+351912345678"), b.digest("p:+351912345678"));
        assert_eq!(a.digest("p:+351912345678"), a.digest("p:+351912345678"));
    }
}
