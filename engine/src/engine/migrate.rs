//! Moving a population between the embedded store and a Redis Cluster
//! (`otpd migrate`): every account, client, live challenge and queued
//! message, then a check by counts and by a sample of records read back.
//! The audit trail stays where it was written (export it first: `otpd
//! audit export`).

use std::collections::HashMap;

use crate::account::Account;
use crate::challenge::Challenge;
use crate::cluster::ClusterConfig;
use crate::error::{EngineError, Result};
use crate::id::AccountId;
use crate::outbox::Message;
use crate::store::codec::{encode_account, encode_challenge};
use crate::store::{Change, Changes};

use super::Engine;
use super::remote::{CHALLENGE_GRACE, Exported, Remote, encode_record};

/// A margin for a challenge about to expire while it is counted.
const ONE_SECOND: std::time::Duration = std::time::Duration::from_secs(1);

/// How many accounts a migration reads back and compares, at most.
const SAMPLE: usize = 100;

/// The shortest erasure TTL a migrated cancelled account gets: longer than
/// any migration takes to read it back.
const ERASURE_FLOOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a migration moved, and how much of it was read back and compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Migration {
    /// Accounts, cancelled ones included.
    pub accounts: u64,
    /// Live challenges (expired ones are not moved).
    pub challenges: u64,
    /// Queued messages.
    pub messages: u64,
    /// Clients (relying parties), revoked ones included.
    pub clients: u64,
    /// Cancelled accounts past their erasure (the retention), not moved.
    pub erased: u64,
    /// Accounts read back from the target and compared byte for byte, with
    /// their challenges.
    pub sampled: u64,
}

impl Engine {
    /// Copies everything this engine holds on its embedded store to the
    /// cluster `target`, whose namespace must hold none of it yet (an
    /// account's phone, email or identity taken there, or a client
    /// registry, refuses the migration). Then counts the target's records
    /// and compares a sample with the source; any difference is an error.
    pub fn copy_to_cluster(&self, target: ClusterConfig) -> Result<Migration> {
        if self.remote.is_some() {
            return Err(EngineError::invalid(
                "--from",
                "must be a data directory: this store is a cluster already",
            ));
        }
        let remote = Remote::connect(target)?;
        let (version, existing) = remote.clients()?;
        let (accounts, challenges, messages) = remote.counts()?;
        if version != 0 || !existing.is_empty() || accounts + challenges + messages > 0 {
            return Err(EngineError::WrongState(
                "the cluster's namespace is not empty (a client registry, accounts, codes or \
                 messages): migrate into an empty namespace (store.redis.namespace)",
            ));
        }
        let now = self.now();
        let mut challenges: HashMap<AccountId, Vec<Challenge>> = HashMap::new();
        // A challenge whose account is gone (a destination's holder erased
        // once its code ended) goes nowhere: recovery would drop it too.
        for c in self
            .challenges
            .iter()
            .filter(|c| now < c.expires_at && self.accounts.contains_key(&c.account))
        {
            challenges
                .entry(c.account)
                .or_default()
                .push(Challenge::clone(&c));
        }
        let mut messages: HashMap<AccountId, Vec<Message>> = HashMap::new();
        for m in self.outbox.all() {
            messages.entry(m.account).or_default().push(m);
        }
        let mut moved = Migration::default();
        // Read in place, not copied first: the population is in memory once.
        for entry in self.accounts.iter() {
            let account: &Account = entry.value();
            if self.past_erasure(account, now) {
                // Cancelled longer ago than the retention: the embedded
                // sweep would erase it; it is not moved.
                moved.erased += 1;
                continue;
            }
            let keys: Vec<String> = if account.is_cancelled() {
                Vec::new()
            } else {
                account.index_keys().into_iter().map(|(k, _)| k).collect()
            };
            let its_challenges = challenges.get(&account.id).map_or(&[][..], Vec::as_slice);
            let its_messages = messages.get(&account.id).map_or(&[][..], Vec::as_slice);
            // Not before the migration's check has read it back.
            let erase = self
                .erasure_due(account, now)
                .map(|ttl| ttl.max(ERASURE_FLOOR));
            // Each message joins the cluster's send queue, due now (its
            // code is checked when it is taken, as everywhere): its entry
            // first, as everywhere, so no message is without one.
            let entries: Vec<_> = its_messages
                .iter()
                .map(|m| super::remote::Entry::of(account.id, m))
                .collect();
            remote.add_entries(&entries, now)?;
            remote.import(account, &keys, its_challenges, its_messages, now, erase)?;
            moved.accounts += 1;
            moved.challenges += its_challenges.len() as u64;
            moved.messages += its_messages.len() as u64;
        }
        let clients: Vec<_> = self.clients.iter().map(|c| c.clone()).collect();
        if let crate::cluster::slot::Outcome::Conflict(_) = remote.store_clients(0, &clients)? {
            return Err(EngineError::WrongState(
                "another client registry was written on the cluster during the migration",
            ));
        }
        moved.clients = clients.len() as u64;

        let (accounts_there, challenges_there, messages_there) = remote.counts()?;
        let clients_there = remote.clients()?.1.len() as u64;
        // A challenge moved early may have expired on the cluster by now
        // (its TTL is its life left plus a grace): those still alive must
        // all be there, and nothing more than was moved.
        let counted_at = self.now();
        let alive = |c: &Challenge| counted_at.until(c.expires_at) + CHALLENGE_GRACE > ONE_SECOND;
        let still_alive = challenges.values().flatten().filter(|c| alive(c)).count() as u64;
        let expected = (moved.accounts, moved.messages, moved.clients);
        let found = (accounts_there, messages_there, clients_there);
        if expected != found || !(still_alive..=moved.challenges).contains(&challenges_there) {
            return Err(mismatch(format!(
                "moved (accounts, messages, clients) {expected:?} and {} challenges \
                 ({still_alive} still alive), the cluster holds {found:?} and {challenges_there}",
                moved.challenges
            )));
        }
        let step = (self.accounts.len() / SAMPLE).max(1);
        for entry in self.accounts.iter().step_by(step) {
            let account: &Account = entry.value();
            if self.past_erasure(account, now) {
                continue;
            }
            let its: Vec<&Challenge> = challenges
                .get(&account.id)
                .into_iter()
                .flatten()
                .filter(|c| alive(c))
                .collect();
            let ids: Vec<_> = its.iter().map(|c| c.id).collect();
            let loaded = remote.load(account.id, &ids)?;
            let same_account = loaded
                .account
                .as_ref()
                .is_some_and(|a| encode_record(a) == encode_record(account));
            let same_challenges = loaded.challenges.len() == its.len()
                && its.iter().all(|c| {
                    loaded
                        .challenges
                        .iter()
                        .any(|l| encode_challenge(l) == encode_challenge(c))
                });
            if !(same_account && same_challenges) {
                return Err(mismatch(format!(
                    "account {} reads back different from the source",
                    account.id
                )));
            }
            moved.sampled += 1;
        }
        Ok(moved)
    }

    /// Copies everything the cluster `source` holds in its namespace into
    /// this engine's embedded store, which must be empty (a new data
    /// directory). Stop the nodes first: the cluster is read by a scan,
    /// record by record, not as one cut in time. Then counts this store's
    /// records and compares a sample with the cluster.
    pub fn copy_from_cluster(&self, source: ClusterConfig) -> Result<Migration> {
        if self.remote.is_some() {
            return Err(EngineError::invalid(
                "--to",
                "must be a data directory, not a cluster",
            ));
        }
        if !self.accounts.is_empty() || !self.clients.is_empty() {
            return Err(EngineError::invalid(
                "--to",
                "must be a new data directory: this store holds accounts or clients already",
            ));
        }
        let remote = Remote::connect(source)?;
        let mut moved = Migration::default();
        let mut sample: Vec<(AccountId, Vec<u8>)> = Vec::new();
        let mut last = None;
        remote.export(&mut |record| {
            let ticket = match &record {
                Exported::Client(c) => {
                    moved.clients += 1;
                    self.store.write(Changes(vec![Change::Client(c)]))?
                }
                Exported::Account(a) => {
                    moved.accounts += 1;
                    if sample.len() < SAMPLE {
                        // The store's own encoding: the embedded store
                        // keeps no live-challenge pointers (rebuilt at start).
                        sample.push((a.id, encode_account(a, None)));
                    }
                    self.store.write(Changes(vec![Change::Account(a, None)]))?
                }
                Exported::Challenge(c) => {
                    moved.challenges += 1;
                    self.store.write(Changes(vec![Change::Challenge(c)]))?
                }
                Exported::Message(m) => {
                    moved.messages += 1;
                    self.store.write(Changes(vec![Change::Message(m)]))?
                }
            };
            last = Some(ticket);
            Ok(())
        })?;
        if let Some(ticket) = last {
            self.commit.wait(ticket)?;
        }

        let counted = std::sync::atomic::AtomicU64::new(0);
        let sampled: std::sync::Mutex<HashMap<AccountId, Vec<u8>>> = Default::default();
        let wanted: HashMap<AccountId, ()> = sample.iter().map(|(id, _)| (*id, ())).collect();
        self.store.scan_accounts(1, &|a| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if wanted.contains_key(&a.id) {
                super::lock(&sampled).insert(a.id, encode_account(&a, None));
            }
            Ok(())
        })?;
        let challenges = std::sync::atomic::AtomicU64::new(0);
        self.store.scan_challenges(1, &|_| {
            challenges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })?;
        let (mut messages, mut clients) = (0u64, 0u64);
        self.store.scan_messages(&mut |_| {
            messages += 1;
            Ok(())
        })?;
        self.store.scan_clients(&mut |_| {
            clients += 1;
            Ok(())
        })?;
        let found = (
            counted.into_inner(),
            challenges.into_inner(),
            messages,
            clients,
        );
        let expected = (
            moved.accounts,
            moved.challenges,
            moved.messages,
            moved.clients,
        );
        if expected != found {
            return Err(mismatch(format!(
                "read (accounts, challenges, messages, clients) {expected:?} from the cluster, \
                 the store holds {found:?}"
            )));
        }
        let sampled = sampled
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, bytes) in &sample {
            if sampled.get(id) != Some(bytes) {
                return Err(mismatch(format!(
                    "account {id} reads back different from the cluster"
                )));
            }
            moved.sampled += 1;
        }
        Ok(moved)
    }
}

fn mismatch(what: String) -> EngineError {
    EngineError::Corrupt(format!("the migration does not check out: {what}"))
}
