//! Recovery: the store read back into memory on open (accounts, then challenges, on one thread per CPU), expired and orphaned records removed.

use std::sync::{Mutex, PoisonError};

use crate::challenge::ChallengeState;
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::store::{Change, Changes};

use super::{Engine, lock};

impl Engine {
    /// Reads the store back into memory. Accounts, then challenges, are
    /// each scanned on one thread per CPU (key ranges split by id): every
    /// structure they fill is a concurrent map, and a challenge is placed
    /// while its account's entry is held.
    pub(super) fn recover(&self) -> Result<()> {
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let floor = self.store.clock_floor()?;
        let newest = std::sync::atomic::AtomicU64::new(floor.0);
        self.store.scan_accounts(parts, &|account| {
            newest.fetch_max(account.updated_at.0, std::sync::atomic::Ordering::Relaxed);
            if !account.is_cancelled() {
                for (key, field) in account.index_keys() {
                    if self.index.insert(&key, account.id).is_some() {
                        return Err(EngineError::Corrupt(format!(
                            "two live accounts share one {field}"
                        )));
                    }
                }
            }
            self.accounts.insert(account.id, Box::new(account));
            Ok(())
        })?;
        if self.remote.is_some() {
            self.refresh_clients()?;
        } else {
            self.store.scan_clients(&mut |client| {
                self.put_client(client);
                Ok(())
            })?;
        }
        self.clock
            .observe(Timestamp(newest.load(std::sync::atomic::Ordering::Relaxed)));
        let now = self.clock.now();
        let dead = Mutex::new(Vec::new());
        self.store.scan_challenges(parts, &|challenge| {
            let owner = self.accounts.get_mut(&challenge.account);
            let Some(mut owner) = owner.filter(|a| !a.is_cancelled()) else {
                lock(&dead).push(challenge.id);
                return Ok(());
            };
            if now >= challenge.expires_at {
                lock(&dead).push(challenge.id);
                return Ok(());
            }
            if challenge.state == ChallengeState::Live {
                let newer = owner
                    .current(challenge.purpose)
                    .and_then(|id| self.challenges.get(&id).map(|c| c.created_at))
                    .is_none_or(|t| t <= challenge.created_at);
                if newer {
                    owner.current.set(challenge.purpose, Some(challenge.id));
                }
            }
            // Inserted while the owner is held: a challenge in a slot is
            // always in the map when another thread compares with it.
            self.challenges.insert(challenge.id, Box::new(challenge));
            drop(owner);
            Ok(())
        })?;
        let dead_challenges = dead.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut dead_messages = Vec::new();
        let mut to_cluster = Vec::new();
        self.store.scan_messages(&mut |message| {
            // On a cluster, a message here was queued by an older otpd,
            // which kept the send queue in each node's store: the message
            // is on the cluster too (written with its change), and goes to
            // the cluster's send queue, which checks its code when it comes
            // due.
            if self.remote.is_some() {
                to_cluster.push(super::remote::Entry::of(message.account, &message));
                dead_messages.push(message.id);
                return Ok(());
            }
            let queued = message.notice.is_some()
                || self
                    .challenges
                    .get(&message.challenge)
                    .is_some_and(|c| c.message == Some(message.id));
            if queued {
                self.outbox.insert(message);
            } else {
                dead_messages.push(message.id);
            }
            Ok(())
        })?;
        let mut garbage = Changes::default();
        // A destination's holder whose code has ended goes (its ended
        // challenges are read without it; the sweeper takes them).
        let holders: Vec<_> = self
            .accounts
            .iter()
            .filter(|a| a.is_holder())
            .map(|a| (a.id, a.current == crate::account::Current::None))
            .collect();
        for (id, done) in holders {
            if done {
                self.accounts.remove(&id);
                garbage.push(Change::RemoveAccount(id));
            } else {
                self.holders
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        garbage
            .0
            .extend(dead_challenges.into_iter().map(Change::RemoveChallenge));
        garbage
            .0
            .extend(dead_messages.into_iter().map(Change::RemoveMessage));
        if let Some(remote) = &self.remote
            && !to_cluster.is_empty()
        {
            remote.add_entries(&to_cluster, self.now())?;
        }
        if !garbage.is_empty() {
            // Only garbage goes here; if the removal is lost (or refused on
            // a short disk) it is redone next start.
            let _ = self.store.write(garbage);
        }
        self.recover_idempotency()?;
        self.recover_audit()?;
        if let Some(remote) = &self.remote {
            self.replay_journal(remote)?;
        }
        Ok(())
    }

    /// On a cluster: records what this node's journal entries hold (a
    /// change written to the cluster, then a crash before this node's
    /// store had its events), once: an entry whose first
    /// event the account's trail already shows was recorded, and only its
    /// deletion was lost.
    fn replay_journal(&self, remote: &super::remote::Remote) -> Result<()> {
        for entry in remote.pending_journal()? {
            let recorded = match entry.events.first() {
                Some(first) => match first.account {
                    Some(account) => {
                        let (mut seen, mut looked) = (false, 0);
                        self.store.scan_account_audit(account, u64::MAX, &mut |r| {
                            looked += 1;
                            seen |= r.event == *first;
                            Ok(!seen && looked < 64)
                        })?;
                        seen
                    }
                    None => false,
                },
                None => false,
            };
            if recorded {
                remote.forget_after(entry.key, &self.commit, 0);
                continue;
            }
            // An older otpd's entry may hold messages: they are on the
            // cluster, written with the change; they join its send queue.
            let queued: Vec<_> = entry
                .messages
                .iter()
                .map(|m| super::remote::Entry::of(m.account, m))
                .collect();
            remote.add_entries(&queued, self.now())?;
            let ticket = self.write(Changes::default(), entry.events.into_iter().collect())?;
            self.commit.wait(ticket)?;
            remote.forget_after(entry.key, &self.commit, ticket);
        }
        Ok(())
    }
}
