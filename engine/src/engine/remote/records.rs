//! An account's slot on the cluster: its record (with its live challenges'
//! ids), its challenges, the index keys it holds, its registration, and
//! the decoy an unknown login spends the same round trips on.

use std::time::Duration;

use crate::account::Account;
use crate::challenge::Challenge;
use crate::cluster::index::{Claim, Registration};
use crate::cluster::slot::{Change, Outcome, Snapshot, Write};
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::outbox::Message;
use crate::store::codec::{decode_account, decode_challenge, decode_message, encode_account};
use crate::terms::{MessageId, Purpose};

use super::{RECORD_V1, Remote};

/// How much longer than the engine's own expiry a challenge stays on the
/// cluster: a node whose clock runs behind the others (within the skew
/// `/readyz` enforces) still finds it, and the engine's own expiry, not
/// Redis's, decides when it stops verifying.
pub(crate) const CHALLENGE_GRACE: Duration = Duration::from_secs(60);

/// An account as one atomic read of its slot saw it.
pub(in crate::engine) struct Loaded {
    pub(in crate::engine) version: u64,
    pub(in crate::engine) account: Option<Account>,
    /// The challenges asked for, those that exist.
    pub(in crate::engine) challenges: Vec<Challenge>,
    /// The queued messages asked for, those that exist.
    pub(in crate::engine) messages: Vec<Message>,
}

impl Remote {
    /// Reads account `id` and the challenges `challenges` of its slot at once.
    pub(in crate::engine) fn load(
        &self,
        id: AccountId,
        challenges: &[ChallengeId],
    ) -> Result<Loaded> {
        self.load_with(id, challenges, &[])
    }

    /// Reads account `id`, the challenges `challenges` and the queued
    /// messages `messages` of its slot at once.
    pub(in crate::engine) fn load_with(
        &self,
        id: AccountId,
        challenges: &[ChallengeId],
        messages: &[MessageId],
    ) -> Result<Loaded> {
        let keys = self.cluster.keys();
        let others: Vec<String> = challenges
            .iter()
            .map(|c| keys.challenge(*c))
            .chain(messages.iter().map(|m| keys.message(id, *m)))
            .collect();
        let account = keys.account(id);
        let snapshot: Snapshot =
            self.run(|cluster| async move { cluster.load(&account, &others).await })?;
        // A registration not yet finished (version 1) is not an account yet,
        // and a throw-away record (a decoy, version 1) is not one at all.
        let account = match &snapshot.record {
            Some(bytes) if snapshot.version >= 2 => Some(decode_record(bytes)?),
            // A destination's holder is made by its first compare-and-set
            // (version 1), not by a registration: it is one at once.
            Some(bytes) if snapshot.version == 1 => {
                decode_record(bytes).ok().filter(Account::is_holder)
            }
            _ => None,
        };
        let (challenge_records, message_records) = snapshot
            .others
            .split_at(challenges.len().min(snapshot.others.len()));
        let challenges = challenge_records
            .iter()
            .flatten()
            .map(|bytes| decode_challenge(bytes))
            .collect::<Result<Vec<_>>>()?;
        let messages = message_records
            .iter()
            .flatten()
            .map(|bytes| decode_message(bytes))
            .collect::<Result<Vec<_>>>()?;
        Ok(Loaded {
            version: snapshot.version,
            account,
            challenges,
            messages,
        })
    }

    /// Account `id`, if it exists.
    pub(in crate::engine) fn account(&self, id: AccountId) -> Result<Option<Account>> {
        Ok(self.load(id, &[])?.account)
    }

    /// Challenge `id`, if it exists (expired ones go by themselves).
    pub(in crate::engine) fn challenge(&self, id: ChallengeId) -> Result<Option<Challenge>> {
        let key = self.cluster.keys().challenge(id);
        let bytes = self.run(|cluster| async move { cluster.get(&key).await })?;
        bytes.as_deref().map(decode_challenge).transpose()
    }

    /// The live account holding index key `key` (the engine's form).
    pub(in crate::engine) fn lookup(&self, key: &str) -> Result<Option<AccountId>> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.lookup(&key).await })
    }

    /// Writes `change` to `id`'s slot if its version is still `version`.
    pub(in crate::engine) fn compare_and_set(
        &self,
        id: AccountId,
        version: u64,
        change: Change,
    ) -> Result<Outcome> {
        let account = self.cluster.keys().account(id);
        let outcome =
            self.run(
                |cluster| async move { cluster.compare_and_set(&account, version, &change).await },
            );
        if !matches!(outcome, Ok(Outcome::Conflict(_))) {
            self.note_change(&outcome);
        }
        outcome
    }

    /// Registers `account` holding every index key of `index_keys` (the
    /// engine's form), or says which is taken.
    pub(in crate::engine) fn register(
        &self,
        account: &Account,
        index_keys: &[String],
    ) -> Result<Registration> {
        self.register_with(account, index_keys, None)
    }

    /// [`Remote::register`], writing `journal` (key, record) with its last step.
    pub(in crate::engine) fn register_with(
        &self,
        account: &Account,
        index_keys: &[String],
        journal: Option<(String, Vec<u8>)>,
    ) -> Result<Registration> {
        let id = account.id;
        let record = encode_record(account);
        let also: Vec<(String, Write)> = journal
            .into_iter()
            .map(|(key, bytes)| (key, Write::Put(bytes, None)))
            .collect();
        let keys: Vec<String> = index_keys
            .iter()
            .map(|k| self.cluster.keys().index(k))
            .collect();
        let outcome =
            self.run(|cluster| async move { cluster.register_with(id, record, &keys, also).await });
        if !matches!(outcome, Ok(Registration::Taken(..))) {
            self.note_change(&outcome);
        }
        outcome
    }

    /// Claims index key `key` for `owner` (a contact change): see `cluster::index`.
    pub(in crate::engine) fn claim(&self, key: &str, owner: AccountId) -> Result<Claim> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.claim(&key, owner).await })
    }

    /// Makes `owner`'s claim on `key` its hold.
    pub(in crate::engine) fn commit_claim(&self, key: &str, owner: AccountId) -> Result<bool> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.commit_claim(&key, owner).await })
    }

    /// Frees `key` if `owner` holds or claims it.
    pub(in crate::engine) fn release(&self, key: &str, owner: AccountId) -> Result<bool> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.release(&key, owner).await })
    }

    /// What a wrong PIN for a known account costs on the cluster — the
    /// index's check that its account exists, the account read before
    /// Argon2, the change's read and its compare-and-set with its `WAIT` —
    /// spent on a throw-away record (`decoy`, expiring at once) that no
    /// account has: an unknown login takes as long as a known one.
    pub(in crate::engine) fn decoy(&self, decoy: AccountId) -> Result<()> {
        for _ in 0..3 {
            self.load(decoy, &[])?;
        }
        let record = vec![0u8; 160];
        let change = Change {
            account: Write::Put(record, Some(Duration::from_secs(1))),
            others: Vec::new(),
        };
        // Straight to the cluster: a decoy changes nothing a request's
        // idempotency key must answer for.
        let account = self.cluster.keys().account(decoy);
        self.run(|cluster| async move { cluster.compare_and_set(&account, 0, &change).await })
            .map(drop)
    }
}

/// An account's record on the cluster: the store's encoding of the account
/// (versioned itself), then the live challenge of each purpose, which the
/// embedded store rebuilds at start from its challenges and a cluster node
/// cannot (it never scans).
pub(in crate::engine) fn encode_record(account: &Account) -> Vec<u8> {
    let inner = encode_account(account, None);
    let mut out = Vec::with_capacity(inner.len() + 8 + 17);
    out.push(RECORD_V1);
    out.extend_from_slice(&u32::try_from(inner.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&inner);
    for purpose in Purpose::ALL {
        if let Some(id) = account.current(purpose) {
            out.push(u8::try_from(purpose.slot()).unwrap_or(u8::MAX));
            out.extend_from_slice(&id.to_bytes());
        }
    }
    out
}

pub(in crate::engine) fn decode_record(bytes: &[u8]) -> Result<Account> {
    let corrupt = |why: &str| EngineError::Corrupt(format!("a cluster account record: {why}"));
    let (&version, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if version != RECORD_V1 {
        return Err(corrupt(&format!("unknown version {version}")));
    }
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("truncated"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt("truncated"));
    }
    let (inner, mut current) = rest.split_at(len);
    let mut account = decode_account(inner)?;
    while let Some((&slot, rest)) = current.split_first() {
        let (id, rest) = rest
            .split_first_chunk::<16>()
            .ok_or_else(|| corrupt("a truncated live challenge"))?;
        let purpose = Purpose::from_slot(slot).ok_or_else(|| corrupt("an unknown purpose"))?;
        account.current.set(purpose, Some(ChallengeId(*id)));
        current = rest;
    }
    Ok(account)
}

/// How long a challenge lives on the cluster from `now`.
pub(in crate::engine) fn challenge_ttl(
    challenge: &Challenge,
    now: crate::clock::Timestamp,
) -> Duration {
    now.until(challenge.expires_at) + CHALLENGE_GRACE
}
