//! A namespace read whole or written whole: `otpd migrate` (both ways),
//! and `otpd check` and `otpd backup` on a cluster.

use crate::account::Account;
use crate::challenge::Challenge;
use crate::client::Client;
use crate::cluster::index::Registration;
use crate::cluster::slot::{Change, Outcome};
use crate::error::{EngineError, Result};
use crate::outbox::Message;
use crate::store::codec::{decode_challenge, decode_message, encode_challenge, encode_message};

use super::{Remote, challenge_ttl};

/// One record of a cluster's export.
pub(in crate::engine) enum Exported {
    Client(Client),
    Account(Box<Account>),
    Challenge(Box<Challenge>),
    Message(Box<Message>),
}

impl Remote {
    /// Every record of this namespace on the cluster, kind after kind:
    /// the clients, the accounts, the challenges, the queued messages. A
    /// scan, not a cut in time: each record is as one read saw it, and a
    /// record written or deleted meanwhile may or may not be there (stop
    /// the nodes first for an exact copy).
    pub(in crate::engine) fn export(
        &self,
        each: &mut dyn FnMut(Exported) -> Result<()>,
    ) -> Result<()> {
        for client in self.clients()?.1 {
            each(Exported::Client(client))?;
        }
        let keys = self.cluster.keys().clone();
        let pattern = keys.account_pattern();
        let found = self.run(|cluster| async move { cluster.scan(&pattern).await })?;
        for key in found {
            let id = keys
                .account_of(&key)
                .ok_or_else(|| EngineError::Corrupt(format!("an account key {key:?}")))?;
            if let Some(account) = self.account(id)? {
                each(Exported::Account(Box::new(account)))?;
            }
        }
        for (pattern, message) in [
            (keys.challenge_pattern(), false),
            (keys.message_pattern(), true),
        ] {
            let found = self.run(|cluster| async move { cluster.scan(&pattern).await })?;
            for key in found {
                let bytes = self.run(|cluster| async move { cluster.get(&key).await })?;
                let Some(bytes) = bytes else {
                    continue; // expired or deleted since the scan
                };
                each(if message {
                    Exported::Message(Box::new(decode_message(&bytes)?))
                } else {
                    Exported::Challenge(Box::new(decode_challenge(&bytes)?))
                })?;
            }
        }
        Ok(())
    }

    /// How many keys of each kind the namespace holds: (accounts, challenges, messages).
    pub(in crate::engine) fn counts(&self) -> Result<(u64, u64, u64)> {
        let keys = self.cluster.keys().clone();
        let mut counts = [0u64; 3];
        let patterns = [
            keys.account_pattern(),
            keys.challenge_pattern(),
            keys.message_pattern(),
        ];
        for (count, pattern) in counts.iter_mut().zip(patterns) {
            let found = self.run(|cluster| async move { cluster.scan(&pattern).await })?;
            *count = found.len() as u64;
        }
        Ok((counts[0], counts[1], counts[2]))
    }

    /// Writes `account` (registered under `index_keys`) with its challenges
    /// and messages, as `otpd migrate` moves it: fails if any of it is taken.
    pub(in crate::engine) fn import(
        &self,
        account: &Account,
        index_keys: &[String],
        challenges: &[Challenge],
        messages: &[Message],
        now: crate::clock::Timestamp,
        erase: Option<std::time::Duration>,
    ) -> Result<()> {
        match self.register(account, index_keys)? {
            Registration::Registered => {}
            Registration::Taken(..) => {
                return Err(EngineError::WrongState(
                    "the cluster already holds a phone, email or identity of this population: \
                     migrate into an empty namespace (store.redis.namespace)",
                ));
            }
        }
        if challenges.is_empty() && messages.is_empty() && erase.is_none() {
            return Ok(());
        }
        let keys = self.cluster.keys();
        // A cancelled account is erased when the embedded sweep would have.
        let mut write = match erase {
            Some(ttl) => Change::account_expiring(super::encode_record(account), Some(ttl)),
            None => Change::keep(),
        };
        for c in challenges {
            write = write.put(
                keys.challenge(c.id),
                encode_challenge(c),
                Some(challenge_ttl(c, now)),
            );
        }
        for m in messages {
            write = write.put(keys.message(account.id, m.id), encode_message(m), None);
        }
        match self.compare_and_set(account.id, 2, write)? {
            Outcome::Written(_) => Ok(()),
            Outcome::Conflict(_) => Err(EngineError::Storage(format!(
                "account {} changed on the cluster while it was being migrated",
                account.id
            ))),
        }
    }
}
