//! Idempotency keys: a client's name for one request, so that a retry is answered from the first.
//!
//! A request that carries a key runs with a [`Claim`] (client, key, and a
//! fingerprint of the request the caller computed). The first batch the
//! request writes carries the claim's record, so a crash can never keep
//! the change and lose the key; the caller then stores the answer (opaque
//! bytes) with [`crate::Engine::remember`]. A record is kept for the
//! retention (24 h by default) and each client holds at most a set number,
//! the oldest going first. The engine knows nothing of HTTP: what the
//! fingerprint covers and what the answer holds are the caller's.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::clock::Timestamp;
use crate::error::{EngineError, Result};

/// The longest key, in bytes.
pub const MAX_KEY_LENGTH: usize = 255;

/// A request's claim on a key: written with the first change the request makes.
#[derive(Clone, PartialEq, Eq)]
pub struct Claim {
    client: String,
    key: String,
    fingerprint: [u8; 32],
}

impl Claim {
    /// A claim by `client` on `key` (1 to 255 printable ASCII characters)
    /// for the request whose fingerprint is `fingerprint`. Callers make
    /// one with [`crate::Engine::claim`], which keys the fingerprint.
    pub fn new(client: &str, key: &str, fingerprint: [u8; 32]) -> Result<Claim> {
        if !is_valid_key(key) {
            return Err(EngineError::invalid(
                "idempotency_key",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        Ok(Claim {
            client: client.to_owned(),
            key: key.to_owned(),
            fingerprint,
        })
    }

    /// The client whose key it is.
    pub fn client(&self) -> &str {
        &self.client
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The request's fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Whether `fingerprint` is this request's (compared in constant time).
    pub fn fits(&self, fingerprint: &[u8; 32]) -> bool {
        bool::from(self.fingerprint.ct_eq(fingerprint))
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("client", &self.client)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Whether `key` is 1 to 255 printable ASCII characters (space to `~`).
pub fn is_valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LENGTH).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// What the engine remembers of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The fingerprint of the request that claimed it.
    pub fingerprint: [u8; 32],
    /// When it was claimed; it is forgotten a retention after.
    pub created_at: Timestamp,
    /// The first request's answer as the caller stored it. `None`: the
    /// request changed state, but its answer was never stored (the process
    /// stopped in between, or the caller chose not to keep it).
    pub answer: Option<Arc<[u8]>>,
}

/// What a request with a key found when it took the key ([`crate::Engine::take`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The key was free: this request runs, and ends by storing its answer
    /// ([`crate::Engine::remember`]) or giving the key back
    /// ([`crate::Engine::give_back`]).
    Run,
    /// The key is remembered: answered, or changed state without an
    /// answer kept (`answer` is `None`). The caller compares fingerprints.
    Remembered(Remembered),
    /// Another node of the cluster runs a request with this key now.
    Elsewhere,
}

/// How long keys are kept and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyPolicy {
    /// A key is forgotten this long after its first request.
    pub retention: Duration,
    /// Keys kept per client; past it the oldest is forgotten first.
    pub max_keys_per_client: usize,
}

impl Default for IdempotencyPolicy {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_keys_per_client: 50_000,
        }
    }
}

impl IdempotencyPolicy {
    /// Refuses a retention outside 1 hour to 30 days, or a cap of 0 or above 10 million.
    pub fn validate(&self) -> Result<()> {
        if self.retention < Duration::from_secs(3600)
            || self.retention > Duration::from_secs(30 * 24 * 3600)
        {
            return Err(EngineError::invalid(
                "idempotency.retention_hours",
                "must be from 1 hour to 30 days",
            ));
        }
        if !(1..=10_000_000).contains(&self.max_keys_per_client) {
            return Err(EngineError::invalid(
                "idempotency.max_keys_per_client",
                "must be 1 to 10000000",
            ));
        }
        Ok(())
    }

    /// Whether a key claimed at `created_at` is still kept at `now`.
    pub(crate) fn kept(&self, created_at: Timestamp, now: Timestamp) -> bool {
        now < created_at.plus(self.retention)
    }
}

/// A key's record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdempotencyRecord {
    pub(crate) client: String,
    pub(crate) key: String,
    pub(crate) remembered: Remembered,
}

/// Every client's keys in memory, and each client's in the order they were claimed.
#[derive(Debug, Default)]
pub(crate) struct Book {
    clients: HashMap<String, Shelf>,
}

#[derive(Debug, Default)]
struct Shelf {
    keys: HashMap<String, Remembered>,
    /// Keys by claim time, oldest first. An entry whose time is not its
    /// key's (the key was forgotten, or claimed again) is stale: skipped.
    order: VecDeque<(Timestamp, String)>,
}

impl Shelf {
    fn is_current(&self, (at, key): &(Timestamp, String)) -> bool {
        self.keys.get(key).is_some_and(|r| r.created_at == *at)
    }

    fn drop_stale_front(&mut self) {
        while let Some(front) = self.order.front() {
            if self.is_current(front) {
                break;
            }
            self.order.pop_front();
        }
    }
}

impl Book {
    pub(crate) fn get(&self, client: &str, key: &str) -> Option<&Remembered> {
        self.clients.get(client)?.keys.get(key)
    }

    /// The keys to forget so that `client` stays within `cap` once `key` is
    /// put: none when `key` is already held, else the oldest ones.
    pub(crate) fn evictions(&self, client: &str, key: &str, cap: usize) -> Vec<String> {
        let Some(shelf) = self.clients.get(client) else {
            return Vec::new();
        };
        if shelf.keys.contains_key(key) {
            return Vec::new();
        }
        let excess = (shelf.keys.len() + 1).saturating_sub(cap);
        shelf
            .order
            .iter()
            .filter(|entry| shelf.is_current(entry))
            .map(|(_, k)| k.clone())
            .take(excess)
            .collect()
    }

    /// Puts (or replaces) `client`'s `key`.
    pub(crate) fn put(&mut self, client: &str, key: &str, remembered: Remembered) {
        let shelf = self.clients.entry(client.to_owned()).or_default();
        let at = remembered.created_at;
        let previous = shelf.keys.insert(key.to_owned(), remembered);
        if previous.is_none_or(|p| p.created_at != at) {
            // Times never run backwards, so the queue stays in order.
            shelf.order.push_back((at, key.to_owned()));
        }
        shelf.drop_stale_front();
    }

    /// Forgets `client`'s `key`.
    pub(crate) fn remove(&mut self, client: &str, key: &str) {
        if let Some(shelf) = self.clients.get_mut(client) {
            shelf.keys.remove(key);
            shelf.drop_stale_front();
            if shelf.keys.is_empty() {
                self.clients.remove(client);
            }
        }
    }

    /// Every key `client` holds.
    pub(crate) fn keys_of(&self, client: &str) -> Vec<String> {
        self.clients
            .get(client)
            .map(|shelf| shelf.keys.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Keys claimed before `cutoff`, as (client, key), oldest first per client.
    pub(crate) fn older_than(&self, cutoff: Timestamp) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (client, shelf) in &self.clients {
            for entry in &shelf.order {
                if entry.0 >= cutoff {
                    break;
                }
                if shelf.is_current(entry) {
                    out.push((client.clone(), entry.1.clone()));
                }
            }
        }
        out
    }

    /// Sorts every client's keys by claim time (after loading them in any order).
    pub(crate) fn sort(&mut self) {
        for shelf in self.clients.values_mut() {
            let mut order: Vec<(Timestamp, String)> = shelf
                .keys
                .iter()
                .map(|(k, r)| (r.created_at, k.clone()))
                .collect();
            order.sort();
            shelf.order = order.into();
        }
    }

    /// Keys beyond `cap` per client, oldest first, as (client, key).
    pub(crate) fn over(&self, cap: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (client, shelf) in &self.clients {
            let excess = shelf.keys.len().saturating_sub(cap);
            out.extend(
                shelf
                    .order
                    .iter()
                    .filter(|entry| shelf.is_current(entry))
                    .take(excess)
                    .map(|(_, k)| (client.clone(), k.clone())),
            );
        }
        out
    }

    /// Keys held, all clients together.
    pub(crate) fn len(&self) -> usize {
        self.clients.values().map(|s| s.keys.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Remembered {
        Remembered {
            fingerprint: [0; 32],
            created_at: Timestamp(ms),
            answer: None,
        }
    }

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        for good in [
            "a",
            "order-42 retry",
            &"k".repeat(255),
            "~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}",
        ] {
            assert!(is_valid_key(good), "{good:?}");
        }
        for bad in [
            "",
            &"k".repeat(256),
            "tab\there",
            "new\nline",
            "é",
            "\u{7f}",
        ] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
        assert!(Claim::new("c", "", [0; 32]).is_err());
    }

    #[test]
    fn the_oldest_keys_are_evicted_first_and_only_past_the_cap() {
        let mut book = Book::default();
        for (i, key) in ["a", "b", "c"].iter().enumerate() {
            book.put("client", key, at(i as u64));
        }
        assert!(book.evictions("client", "d", 4).is_empty());
        assert_eq!(book.evictions("client", "d", 3), ["a"]);
        assert_eq!(book.evictions("client", "d", 2), ["a", "b"]);
        assert!(book.evictions("client", "b", 3).is_empty(), "already held");
        assert!(book.evictions("other", "a", 1).is_empty());
        book.remove("client", "a");
        assert_eq!(
            book.evictions("client", "d", 2),
            ["b"],
            "a removed key is skipped"
        );
        // Claimed again later: it moves to the back of the queue.
        book.put("client", "b", at(10));
        assert_eq!(book.evictions("client", "d", 2), ["c"]);
        assert_eq!(
            book.older_than(Timestamp(10)),
            [("client".into(), "c".into())]
        );
        assert_eq!(book.len(), 2);
    }

    #[test]
    fn answering_a_claim_keeps_its_place_and_clients_are_apart() {
        let mut book = Book::default();
        book.put("one", "k", at(1));
        book.put("two", "k", at(2));
        let mut answered = at(1);
        answered.answer = Some(Arc::from(&b"201"[..]));
        book.put("one", "k", answered.clone());
        assert_eq!(book.get("one", "k"), Some(&answered));
        assert_eq!(book.get("two", "k"), Some(&at(2)));
        assert_eq!(book.over(0).len(), 2);
        assert_eq!(book.keys_of("one"), ["k"]);
        book.remove("one", "k");
        assert_eq!(book.get("one", "k"), None);
        assert!(book.keys_of("one").is_empty());
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn loaded_keys_are_sorted_and_trimmed_to_the_cap_oldest_first() {
        let mut book = Book::default();
        for (key, ms) in [("late", 9), ("early", 1), ("middle", 5)] {
            book.put("client", key, at(ms));
        }
        book.sort();
        assert_eq!(
            book.over(1),
            [
                ("client".into(), "early".into()),
                ("client".into(), "middle".into())
            ]
        );
    }

    #[test]
    fn the_default_policy_keeps_keys_a_day_and_validates() {
        let policy = IdempotencyPolicy::default();
        policy.validate().unwrap();
        assert!(policy.kept(Timestamp(0), Timestamp(86_399_999)));
        assert!(!policy.kept(Timestamp(0), Timestamp(86_400_000)));
        let bad = IdempotencyPolicy {
            max_keys_per_client: 0,
            ..policy
        };
        assert!(bad.validate().is_err());
    }
}
