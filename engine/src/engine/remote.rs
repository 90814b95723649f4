//! The engine's accounts, challenges and index on a Redis Cluster: the
//! records the engine would otherwise hold in its maps, read from the
//! cluster for each operation and written back with a compare-and-set on
//! the account's version (`cluster::slot`), so any number of nodes share
//! them and no node remembers anything between requests.
//!
//! The engine is synchronous and the cluster client is not: the client runs
//! on a small runtime of its own, and each call here waits for its answer —
//! inside `block_in_place` when the caller is a worker of a multi-threaded
//! runtime (the server), so the worker's other tasks move elsewhere while
//! it waits; plainly otherwise (tests, tools, blocking threads).

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::account::Account;
use crate::challenge::Challenge;
use crate::client::Client;
use crate::cluster::index::Registration;
use crate::cluster::slot::{Change, Outcome, Snapshot};
use crate::cluster::{Cluster, ClusterConfig};
use crate::error::{EngineError, Result};
use crate::id::{AccountId, ChallengeId};
use crate::outbox::Message;
use crate::store::codec::{
    decode_account, decode_challenge, decode_client, decode_message, encode_account,
    encode_challenge, encode_client, encode_message,
};
use crate::terms::Purpose;

/// The version of the account record's envelope on the cluster.
const RECORD_V1: u8 = 1;

/// How much longer than the engine's own expiry a challenge stays on the
/// cluster: a node whose clock runs behind the others (within the skew
/// `/readyz` enforces) still finds it, and the engine's own expiry, not
/// Redis's, decides when it stops verifying.
pub(crate) const CHALLENGE_GRACE: Duration = Duration::from_secs(60);

/// An account as one atomic read of its slot saw it.
pub(super) struct Loaded {
    pub(super) version: u64,
    pub(super) account: Option<Account>,
    /// The challenges asked for, those that exist.
    pub(super) challenges: Vec<Challenge>,
}

/// A journal entry of this node's found on the cluster.
pub(super) struct Journaled {
    pub(super) key: String,
    pub(super) events: Vec<crate::audit::Event>,
    pub(super) messages: Vec<Message>,
}

/// One record of a cluster's export.
pub(super) enum Exported {
    Client(Client),
    Account(Box<Account>),
    Challenge(Box<Challenge>),
    Message(Box<Message>),
}

/// The cluster connection and the runtime its client runs on.
pub(super) struct Remote {
    cluster: Cluster,
    runtime: Option<Runtime>,
    /// This node's name in its journal entries (16 hex digits, kept in its
    /// data directory so a restarted node finds its own entries).
    node: String,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The node's name kept in `dir/cluster-node` (made on first use), or a
/// fresh one.
fn node_name(dir: Option<&std::path::Path>) -> Result<String> {
    let fresh = || {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes)
            .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
        Ok::<_, EngineError>(crate::hex::encode(bytes))
    };
    let Some(dir) = dir else {
        return fresh();
    };
    let path = dir.join("cluster-node");
    match std::fs::read_to_string(&path) {
        Ok(text)
            if text.trim().len() == 16 && text.trim().bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(text.trim().to_owned())
        }
        Ok(_) => Err(EngineError::Corrupt(format!(
            "{} is not a node name",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = fresh()?;
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, format!("{name}\n")))
                .map_err(|e| EngineError::Storage(format!("{}: {e}", path.display())))?;
            Ok(name)
        }
        Err(e) => Err(EngineError::Storage(format!("{}: {e}", path.display()))),
    }
}

/// Runs `future` on `handle`'s runtime and waits for it from synchronous code.
fn wait_on<T, F>(handle: &Handle, future: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = answer.send(future.await);
    });
    let wait = move || answered.recv();
    let got = match Handle::try_current() {
        Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    };
    got.unwrap_or_else(|_| {
        Err(EngineError::Internal(
            "a cluster call ended without an answer".into(),
        ))
    })
}

impl Remote {
    /// Connects to the cluster `config` names.
    pub(super) fn connect(config: ClusterConfig) -> Result<Remote> {
        Self::connect_as(config, None)
    }

    /// [`Remote::connect`] as the node whose name is kept in `dir` (made
    /// there on first use); `None`: a name for this process only.
    pub(super) fn connect_as(
        config: ClusterConfig,
        dir: Option<&std::path::Path>,
    ) -> Result<Remote> {
        config.validate()?;
        let node = node_name(dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("otpd-cluster")
            .enable_all()
            .build()
            .map_err(|e| EngineError::Internal(format!("the cluster client's runtime: {e}")))?;
        let cluster = match wait_on(runtime.handle(), Cluster::connect(config)) {
            Ok(cluster) => cluster,
            Err(e) => {
                // Dropping a runtime blocks, which a caller inside another
                // runtime (otpd's start) may not do: it would panic.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(Remote {
            cluster,
            runtime: Some(runtime),
            node,
        })
    }

    fn run<T, F>(&self, call: impl FnOnce(Cluster) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| EngineError::Internal("the cluster client's runtime is gone".into()))?;
        wait_on(runtime.handle(), call(self.cluster.clone()))
    }

    /// How long this node answers from its copy of the client registry.
    pub(super) fn client_refresh(&self) -> Duration {
        self.cluster.config().client_refresh
    }

    /// Where this node's records live on the cluster.
    pub(super) fn keys(&self) -> &crate::cluster::keys::KeySpace {
        self.cluster.keys()
    }

    /// Reads account `id` and the challenges `challenges` of its slot at once.
    pub(super) fn load(&self, id: AccountId, challenges: &[ChallengeId]) -> Result<Loaded> {
        let keys = self.cluster.keys();
        let others: Vec<String> = challenges.iter().map(|c| keys.challenge(*c)).collect();
        let account = keys.account(id);
        let snapshot: Snapshot =
            self.run(|cluster| async move { cluster.load(&account, &others).await })?;
        // A registration not yet finished (version 1) is not an account yet,
        // and a throw-away record (a decoy, version 1) is not one at all.
        let account = match &snapshot.record {
            Some(bytes) if snapshot.version >= 2 => Some(decode_record(bytes)?),
            _ => None,
        };
        let challenges = snapshot
            .others
            .iter()
            .flatten()
            .map(|bytes| decode_challenge(bytes))
            .collect::<Result<Vec<_>>>()?;
        Ok(Loaded {
            version: snapshot.version,
            account,
            challenges,
        })
    }

    /// Account `id`, if it exists.
    pub(super) fn account(&self, id: AccountId) -> Result<Option<Account>> {
        Ok(self.load(id, &[])?.account)
    }

    /// Challenge `id`, if it exists (expired ones go by themselves).
    pub(super) fn challenge(&self, id: ChallengeId) -> Result<Option<Challenge>> {
        let key = self.cluster.keys().challenge(id);
        let bytes = self.run(|cluster| async move { cluster.get(&key).await })?;
        bytes.as_deref().map(decode_challenge).transpose()
    }

    /// The live account holding index key `key` (the engine's form).
    pub(super) fn lookup(&self, key: &str) -> Result<Option<AccountId>> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.lookup(&key).await })
    }

    /// Writes `change` to `id`'s slot if its version is still `version`.
    pub(super) fn compare_and_set(
        &self,
        id: AccountId,
        version: u64,
        change: Change,
    ) -> Result<Outcome> {
        let account = self.cluster.keys().account(id);
        self.run(|cluster| async move { cluster.compare_and_set(&account, version, &change).await })
    }

    /// Registers `account` holding every index key of `index_keys` (the
    /// engine's form), or says which is taken.
    pub(super) fn register(
        &self,
        account: &Account,
        index_keys: &[String],
    ) -> Result<Registration> {
        self.register_with(account, index_keys, None)
    }

    /// [`Remote::register`], writing `journal` (key, record) with its last step.
    pub(super) fn register_with(
        &self,
        account: &Account,
        index_keys: &[String],
        journal: Option<(String, Vec<u8>)>,
    ) -> Result<Registration> {
        let id = account.id;
        let record = encode_record(account);
        let also: Vec<(String, crate::cluster::slot::Write)> = journal
            .into_iter()
            .map(|(key, bytes)| (key, crate::cluster::slot::Write::Put(bytes, None)))
            .collect();
        let keys: Vec<String> = index_keys
            .iter()
            .map(|k| self.cluster.keys().index(k))
            .collect();
        self.run(|cluster| async move { cluster.register_with(id, record, &keys, also).await })
    }

    /// Claims index key `key` for `owner` (a contact change): see `cluster::index`.
    pub(super) fn claim(
        &self,
        key: &str,
        owner: AccountId,
    ) -> Result<crate::cluster::index::Claim> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.claim(&key, owner).await })
    }

    /// Makes `owner`'s claim on `key` its hold.
    pub(super) fn commit_claim(&self, key: &str, owner: AccountId) -> Result<bool> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.commit_claim(&key, owner).await })
    }

    /// Frees `key` if `owner` holds or claims it.
    pub(super) fn release(&self, key: &str, owner: AccountId) -> Result<bool> {
        let key = self.cluster.keys().index(key);
        self.run(|cluster| async move { cluster.release(&key, owner).await })
    }

    /// The registry of clients and its version (0: none yet).
    pub(super) fn clients(&self) -> Result<(u64, Vec<Client>)> {
        let key = self.cluster.keys().clients();
        let snapshot: Snapshot =
            self.run(|cluster| async move { cluster.load(&key, &[]).await })?;
        let clients = match &snapshot.record {
            Some(bytes) => decode_registry(bytes)?,
            None => Vec::new(),
        };
        Ok((snapshot.version, clients))
    }

    /// Writes the registry `clients` if its version is still `version`.
    pub(super) fn store_clients(&self, version: u64, clients: &[Client]) -> Result<Outcome> {
        let key = self.cluster.keys().clients();
        let change = Change::account(encode_registry(clients));
        self.run(|cluster| async move { cluster.compare_and_set(&key, version, &change).await })
    }

    /// Every record of this namespace on the cluster, kind after kind:
    /// the clients, the accounts, the challenges, the queued messages. A
    /// scan, not a cut in time: each record is as one read saw it, and a
    /// record written or deleted meanwhile may or may not be there (stop
    /// the nodes first for an exact copy).
    pub(super) fn export(&self, each: &mut dyn FnMut(Exported) -> Result<()>) -> Result<()> {
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
    pub(super) fn counts(&self) -> Result<(u64, u64, u64)> {
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
    pub(super) fn import(
        &self,
        account: &Account,
        index_keys: &[String],
        challenges: &[Challenge],
        messages: &[Message],
        now: crate::clock::Timestamp,
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
        if challenges.is_empty() && messages.is_empty() {
            return Ok(());
        }
        let keys = self.cluster.keys();
        let mut write = Change::keep();
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

    /// A journal entry for a change of `account` made now: its key (a
    /// fresh token) and the record to put there with the change.
    pub(super) fn journal(
        &self,
        account: AccountId,
        events: &[crate::audit::Event],
        messages: &[Message],
        now: crate::clock::Timestamp,
    ) -> Result<(String, Vec<u8>)> {
        let mut token = [0u8; 8];
        getrandom::fill(&mut token)
            .map_err(|e| EngineError::Internal(format!("OS random source: {e}")))?;
        let key = self
            .cluster
            .keys()
            .journal(account, &self.node, &crate::hex::encode(token));
        Ok((key, encode_journal(events, messages, now)))
    }

    /// Deletes a journal entry once this node's store has what it holds
    /// (once `ticket` is durable); not waited for: an entry left is
    /// recorded at the node's next start, once.
    pub(super) fn forget_after(
        &self,
        key: String,
        commit: std::sync::Arc<dyn crate::store::Commit>,
        ticket: crate::store::Ticket,
    ) {
        if let Some(runtime) = &self.runtime {
            let cluster = self.cluster.clone();
            runtime.spawn(async move {
                let durable = tokio::task::spawn_blocking(move || commit.wait(ticket)).await;
                if matches!(durable, Ok(Ok(()))) {
                    let _ = cluster.delete(&key).await;
                }
            });
        }
    }

    /// This node's journal entries left on the cluster (by a crash between
    /// a change and its record here): (key, events, messages).
    pub(super) fn pending_journal(&self) -> Result<Vec<Journaled>> {
        let pattern = self.cluster.keys().journal_pattern(&self.node);
        let found = self.run(|cluster| async move { cluster.scan(&pattern).await })?;
        let mut entries = Vec::new();
        for key in found {
            let read = key.clone();
            let bytes = self.run(|cluster| async move { cluster.get(&read).await })?;
            if let Some(bytes) = bytes {
                let (events, messages) = decode_journal(&bytes)?;
                entries.push(Journaled {
                    key,
                    events,
                    messages,
                });
            }
        }
        Ok(entries)
    }

    /// What a wrong PIN for a known account costs on the cluster — the
    /// index's check that its account exists, the account read before
    /// Argon2, the change's read and its compare-and-set with its `WAIT` —
    /// spent on a throw-away record (`decoy`, expiring at once) that no
    /// account has: an unknown login takes as long as a known one.
    pub(super) fn decoy(&self, decoy: AccountId) -> Result<()> {
        for _ in 0..3 {
            self.load(decoy, &[])?;
        }
        let record = vec![0u8; 160];
        let change = Change {
            account: crate::cluster::slot::Write::Put(record, Some(Duration::from_secs(1))),
            others: Vec::new(),
        };
        self.compare_and_set(decoy, 0, change).map(drop)
    }

    /// The cluster's health (see `cluster::health`).
    pub(super) fn health(
        &self,
        local_now_ms: impl Fn() -> u64 + Send + 'static,
        max_skew: Duration,
    ) -> Result<crate::cluster::health::Health> {
        self.run(|cluster| async move { cluster.health(local_now_ms, max_skew).await })
    }
}

/// Connects to the cluster `config` names and asks its health (as a node's
/// start and `/readyz` do), with this machine's clock; for `otpd check`.
pub fn check_cluster(
    config: ClusterConfig,
    max_skew: Duration,
) -> Result<crate::cluster::health::Health> {
    let remote = Remote::connect(config)?;
    let now = crate::clock::Clock::now(&crate::clock::SystemClock::new()).0;
    remote.health(move || now, max_skew)
}

/// An account's record on the cluster: the store's encoding of the account
/// (versioned itself), then the live challenge of each purpose, which the
/// embedded store rebuilds at start from its challenges and a cluster node
/// cannot (it never scans).
pub(super) fn encode_record(account: &Account) -> Vec<u8> {
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

pub(super) fn decode_record(bytes: &[u8]) -> Result<Account> {
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

/// The registry of clients: a version byte, then each client's record
/// (the store's versioned encoding), each with its length.
fn encode_registry(clients: &[Client]) -> Vec<u8> {
    let mut out = vec![RECORD_V1];
    for client in clients {
        let bytes = encode_client(client);
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode_registry(bytes: &[u8]) -> Result<Vec<Client>> {
    let corrupt = |why: &str| EngineError::Corrupt(format!("the cluster's client registry: {why}"));
    let (&version, mut rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if version != RECORD_V1 {
        return Err(corrupt(&format!("unknown version {version}")));
    }
    let mut clients = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt("truncated"));
        }
        let (record, tail) = tail.split_at(len);
        clients.push(decode_client(record)?);
        rest = tail;
    }
    Ok(clients)
}

/// A journal entry: a version byte, the events (as the store encodes audit
/// records, unnumbered), then the messages, each part with its length.
fn encode_journal(
    events: &[crate::audit::Event],
    messages: &[Message],
    now: crate::clock::Timestamp,
) -> Vec<u8> {
    let records: Vec<Vec<u8>> = events
        .iter()
        .map(|event| {
            let record = crate::audit::AuditRecord {
                seq: 0,
                at: now,
                event: event.clone(),
                prev: [0; 32],
                hash: [0; 32],
            };
            crate::store::codec::encode_audit(&record, None)
        })
        .collect();
    let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let block = crate::store::codec::encode_audit_block(&refs);
    let mut out = vec![RECORD_V1];
    let mut part = |bytes: &[u8]| {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    part(&block);
    for m in messages {
        part(&encode_message(m));
    }
    out
}

type JournalParts = (Vec<crate::audit::Event>, Vec<Message>);

fn decode_journal(bytes: &[u8]) -> Result<JournalParts> {
    let corrupt = |why: &str| EngineError::Corrupt(format!("a journal entry: {why}"));
    let (&version, mut rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
    if version != RECORD_V1 {
        return Err(corrupt(&format!("unknown version {version}")));
    }
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt("truncated"));
        }
        let (part, tail) = tail.split_at(len);
        parts.push(part);
        rest = tail;
    }
    let (block, messages) = parts.split_first().ok_or_else(|| corrupt("no events"))?;
    let events = crate::store::codec::decode_audit_block(block)?
        .into_iter()
        .map(|(record, _)| record.event)
        .collect();
    let messages = messages
        .iter()
        .map(|m| decode_message(m))
        .collect::<Result<Vec<_>>>()?;
    Ok((events, messages))
}

/// How long a challenge lives on the cluster from `now`.
pub(super) fn challenge_ttl(challenge: &Challenge, now: crate::clock::Timestamp) -> Duration {
    now.until(challenge.expires_at) + CHALLENGE_GRACE
}
