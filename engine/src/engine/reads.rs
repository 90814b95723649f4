//! Reads of accounts, challenges and index keys wherever they live: the
//! engine's maps on the embedded store, the cluster otherwise. Every read
//! outside a change goes through here; changes read inside their `Tx`.

use crate::account::Account;
use crate::challenge::Challenge;
use crate::error::Result;
use crate::id::{AccountId, ChallengeId};

use super::Engine;

impl Engine {
    /// `read` of account `id`, if it exists.
    pub(super) fn with_account<R>(
        &self,
        id: AccountId,
        read: impl FnOnce(&Account) -> R,
    ) -> Result<Option<R>> {
        match &self.remote {
            Some(remote) => Ok(remote.account(id)?.as_ref().map(read)),
            None => Ok(self.accounts.get(&id).map(|a| read(&a))),
        }
    }

    /// `read` of challenge `id`, if it exists (on a cluster, until its
    /// record expires there, some time after the engine's own expiry).
    pub(super) fn with_challenge<R>(
        &self,
        id: ChallengeId,
        read: impl FnOnce(&Challenge) -> R,
    ) -> Result<Option<R>> {
        match &self.remote {
            Some(remote) => Ok(remote.challenge(id)?.as_ref().map(read)),
            None => Ok(self.challenges.get(&id).map(|c| read(&c))),
        }
    }

    /// The live account holding index key `key`, if any.
    pub(super) fn holder(&self, key: &str) -> Result<Option<AccountId>> {
        match &self.remote {
            Some(remote) => remote.lookup(key),
            None => Ok(self.index.get(key)),
        }
    }

    /// Whether a live account holds index key `key`.
    pub(super) fn is_held(&self, key: &str) -> Result<bool> {
        Ok(self.holder(key)?.is_some())
    }
}
