//! Client services (relying parties): adding, listing, updating and revoking
//! them and their keys while the engine runs, and authenticating a key.
//!
//! Every change is one client record written with its audit event
//! (`Engine::write`), under `client_admin` so two changes to clients never
//! interleave; memory (the client and its key index) is updated once the
//! store has taken the batch, so the very next request sees it.

use smallvec::smallvec;

use std::sync::PoisonError;

use crate::audit::{Event as AuditEvent, EventKind};
use crate::client::{
    ApiKey, ChannelSet, Client, ClientId, ClientInfo, ClientPolicy, KeyId, KeyInfo, PurposeSet,
    Scope, Scopes, check_name, hash_secret,
};
use crate::clock::Timestamp;
use crate::error::{EngineError, Result};
use crate::limits::{GlobalLimit, Rate};
use crate::store::codec::encode_client;
use crate::store::{Change, Changes, Durable};

use super::Engine;

/// Keys a client may hold that still work: enough to rotate without
/// downtime, few enough that forgotten keys are noticed.
pub const MAX_LIVE_KEYS: usize = 4;

/// A client to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    /// Unique among unrevoked clients: 1 to 64 letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// What codes it may have issued.
    pub policy: ClientPolicy,
    /// A test client (refused where test clients are not allowed).
    pub test: bool,
    /// When its first key stops working by itself, if ever.
    pub key_expires_at: Option<Timestamp>,
}

impl NewClient {
    /// A client with `scopes`, every purpose and channel, no rate of its
    /// own, not a test client, a key that does not expire.
    pub fn new(name: &str, scopes: Scopes) -> Self {
        NewClient {
            name: name.to_owned(),
            scopes,
            policy: ClientPolicy::default(),
            test: false,
            key_expires_at: None,
        }
    }
}

/// A change to a client's scopes or policy; `None` leaves a part as it
/// is, `Some(None)` lifts a restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientUpdate {
    /// New scopes.
    pub scopes: Option<Scopes>,
    /// New purposes (`Some(None)`: every one).
    pub purposes: Option<Option<PurposeSet>>,
    /// New channels (`Some(None)`: every one).
    pub channels: Option<Option<ChannelSet>>,
    /// New issuance rate (`Some(None)`: none of its own).
    pub issue_rate: Option<Option<Rate>>,
}

/// A key just made: its description, and the key itself (shown once).
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key's id and times.
    pub info: KeyInfo,
    /// The key, not stored: hand it to the client's operator.
    pub key: ApiKey,
}

fn scope_names(scopes: Scopes) -> String {
    scopes
        .iter()
        .map(Scope::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The policy's parts as audit details: `all` where nothing is restricted.
fn policy_details(event: AuditEvent, policy: &ClientPolicy) -> AuditEvent {
    let purposes = policy.purposes.map_or_else(
        || "all".to_owned(),
        |p| p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
    );
    let channels = policy.channels.map_or_else(
        || "all".to_owned(),
        |c| c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","),
    );
    let rate = policy.issue_rate.map_or_else(
        || "none".to_owned(),
        |r| format!("{}/{}s", r.count, r.per.as_secs()),
    );
    event
        .with("purposes", purposes)
        .with("channels", channels)
        .with("issue_rate", rate)
}

impl Engine {
    /// Registers a client service with `scopes` (every purpose and channel)
    /// and returns its API key, which is not stored and cannot be shown
    /// again. Names are unique among unrevoked clients.
    pub fn add_client(&self, name: &str, scopes: Scopes) -> Result<Durable<(ClientInfo, ApiKey)>> {
        self.add_client_with(NewClient::new(name, scopes))
            .map(|d| d.map(|(info, key)| (info, key.key)))
    }

    /// Registers a client service as `new` describes it; returns it and its
    /// first key (shown once).
    pub fn add_client_with(&self, new: NewClient) -> Result<Durable<(ClientInfo, NewKey)>> {
        let name = check_name(&new.name)?;
        if new.scopes == Scopes::default() {
            return Err(EngineError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        new.policy.validate()?;
        let now = self.now();
        check_expiry("expires_at", new.key_expires_at, now)?;
        if new.test {
            self.check_test_client(new.scopes)?;
        }
        let _serial = self
            .client_admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.refresh_clients()?;
        if self.active_client(&name).is_some() {
            return Err(EngineError::Conflict { field: "name" });
        }
        let id = self.fresh_key_id();
        let secret: [u8; 32] = self.random();
        let key = KeyInfo {
            id,
            created_at: now,
            expires_at: new.key_expires_at,
            revoked_at: None,
        };
        let client = Client {
            info: ClientInfo {
                // The first key's id is the client's: keys of clients
                // added before rotation existed had only that one id.
                id: ClientId(id.0),
                name,
                scopes: new.scopes,
                policy: new.policy,
                test: new.test,
                keys: vec![key.clone()],
                created_at: now,
                revoked_at: None,
            },
            secrets: vec![(id, hash_secret(&secret))],
            services: Vec::new(),
        };
        let mut event = AuditEvent::new(EventKind::ClientAdded, None)
            .with("name", client.info.name.clone())
            .with("scopes", scope_names(new.scopes))
            .with("key_id", id.to_string());
        event = policy_details(event, &new.policy);
        if new.test {
            event = event.with("test", "true");
        }
        if let Some(at) = new.key_expires_at {
            event = event.with("expires_at_ms", at.0);
        }
        self.publish_client(&client, None)?;
        let ticket = self.write(self.client_change(&client), smallvec![event])?;
        let info = client.info.clone();
        self.put_client(client);
        let key = NewKey {
            info: key,
            key: ApiKey::new(id, &secret),
        };
        Ok(self.durable((info, key), ticket))
    }

    /// Every client ever added, revoked ones included, by name.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.refresh_clients_if_stale();
        let mut all: Vec<ClientInfo> = self.clients.iter().map(|c| c.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.created_at.cmp(&b.created_at)));
        all
    }

    /// The unrevoked client called `name`.
    pub fn client(&self, name: &str) -> Result<ClientInfo> {
        self.refresh_clients_if_stale();
        self.active_client(name)
            .and_then(|id| self.clients.get(&id).map(|c| c.info.clone()))
            .ok_or(EngineError::ClientNotFound)
    }

    /// Revokes the unrevoked client called `name`; its keys stop working
    /// at once. Answers with the client as revoked.
    pub fn revoke_client(&self, name: &str) -> Result<Durable<ClientInfo>> {
        self.change_client(name, |client, now| {
            client.info.revoked_at = Some(now);
            Ok((
                client.info.clone(),
                AuditEvent::new(EventKind::ClientRevoked, None),
            ))
        })
    }

    /// Gives the client called `name` another key, which works alongside
    /// its others until they are revoked or expire. `expires_at` bounds the
    /// new key; `others_expire_at` brings forward the expiry of every other
    /// live key (never postpones it), so the old key retires by itself once
    /// the relying party has switched.
    pub fn rotate_client_key(
        &self,
        name: &str,
        expires_at: Option<Timestamp>,
        others_expire_at: Option<Timestamp>,
    ) -> Result<Durable<NewKey>> {
        let now = self.now();
        check_expiry("expires_at", expires_at, now)?;
        check_expiry("previous_expires_at", others_expire_at, now)?;
        let secret: [u8; 32] = self.random();
        self.change_client(name, |client, now| {
            let live = client.info.keys.iter().filter(|k| k.live_at(now)).count();
            if live >= MAX_LIVE_KEYS {
                return Err(EngineError::WrongState(
                    "the client already has 4 live keys: revoke one before making another",
                ));
            }
            if let Some(at) = others_expire_at {
                for key in client.info.keys.iter_mut().filter(|k| k.live_at(now)) {
                    key.expires_at = Some(key.expires_at.map_or(at, |t| t.min(at)));
                }
            }
            let id = self.fresh_key_id();
            let info = KeyInfo {
                id,
                created_at: now,
                expires_at,
                revoked_at: None,
            };
            client.info.keys.push(info.clone());
            client.secrets.push((id, hash_secret(&secret)));
            let mut event =
                AuditEvent::new(EventKind::ClientKeyRotated, None).with("key_id", id.to_string());
            if let Some(at) = expires_at {
                event = event.with("expires_at_ms", at.0);
            }
            if let Some(at) = others_expire_at {
                event = event.with("previous_expires_at_ms", at.0);
            }
            let key = NewKey {
                info,
                key: ApiKey::new(id, &secret),
            };
            Ok((key, event))
        })
    }

    /// Revokes one key of the client called `name`; it stops working at
    /// once, the client's other keys go on. Answers with the client.
    pub fn revoke_client_key(&self, name: &str, key: KeyId) -> Result<Durable<ClientInfo>> {
        self.change_client(name, |client, now| {
            let found = client
                .info
                .keys
                .iter_mut()
                .find(|k| k.id == key)
                .ok_or(EngineError::ClientKeyNotFound)?;
            if found.revoked_at.is_some() {
                return Err(EngineError::WrongState("this key is already revoked"));
            }
            found.revoked_at = Some(now);
            let event =
                AuditEvent::new(EventKind::ClientKeyRevoked, None).with("key_id", key.to_string());
            Ok((client.info.clone(), event))
        })
    }

    /// Changes the scopes or policy of the client called `name`; the next
    /// request is held to the new ones. Whether it is a test client never changes.
    pub fn update_client(&self, name: &str, update: ClientUpdate) -> Result<Durable<ClientInfo>> {
        if update.scopes == Some(Scopes::default()) {
            return Err(EngineError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        self.change_client(name, |client, _| {
            let mut event = AuditEvent::new(EventKind::ClientUpdated, None);
            if let Some(scopes) = update.scopes {
                if client.info.test {
                    self.check_test_client(scopes)?;
                }
                client.info.scopes = scopes;
                event = event.with("scopes", scope_names(scopes));
            }
            let policy = &mut client.info.policy;
            if let Some(purposes) = update.purposes {
                policy.purposes = purposes;
            }
            if let Some(channels) = update.channels {
                policy.channels = channels;
            }
            if let Some(rate) = update.issue_rate {
                policy.issue_rate = rate;
            }
            policy.validate()?;
            if update.purposes.is_some() || update.channels.is_some() || update.issue_rate.is_some()
            {
                event = policy_details(event, policy);
            }
            Ok((client.info.clone(), event))
        })
    }

    /// The client whose API key this is, if the key is valid, live, and its
    /// client not revoked.
    pub fn authenticate_client(&self, presented: &str) -> Option<ClientInfo> {
        let (key, secret) = ApiKey::split(presented)?;
        self.refresh_clients_if_stale();
        let client_id = *self.client_keys.get(&key)?;
        let client = self.clients.get(&client_id)?;
        client
            .accepts(key, &secret, self.now())
            .then(|| client.info.clone())
    }

    /// Whether an unrevoked test client exists (a production server refuses to start then).
    pub fn test_clients(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter(|c| c.info.test && c.info.revoked_at.is_none())
            .map(|c| c.info.name.clone())
            .collect()
    }

    /// Runs `change` on a copy of the unrevoked client called `name`, then
    /// writes it with the event `change` returns (named after the client)
    /// and puts it in memory.
    pub(super) fn change_client<T>(
        &self,
        name: &str,
        change: impl FnOnce(&mut Client, Timestamp) -> Result<(T, AuditEvent)>,
    ) -> Result<Durable<T>> {
        let _serial = self
            .client_admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.refresh_clients()?;
        let mut client = self
            .active_client(name)
            .and_then(|id| self.clients.get(&id).map(|c| c.clone()))
            .ok_or(EngineError::ClientNotFound)?;
        let before = client.clone();
        let was_revoked = client.info.revoked_at.is_some();
        let (value, event) = change(&mut client, self.now())?;
        let name = client.info.name.clone();
        let event = event.with("name", name.clone());
        // A later client may take a revoked client's name: it must not be
        // answered from this one's idempotency keys, which go with the
        // revocation, in its batch.
        let keys = if !was_revoked && client.info.revoked_at.is_some() {
            self.client_keys(&name)
        } else {
            Vec::new()
        };
        self.publish_client(&client, Some(&before))?;
        let mut changes = self.client_change(&client);
        changes
            .0
            .extend(keys.iter().map(|k| Change::RemoveIdempotency(&name, k)));
        let ticket = self.write(changes, smallvec![event])?;
        self.forget_client_keys(&name, &keys);
        self.put_client(client);
        Ok(self.durable(value, ticket))
    }

    /// The embedded store's part of a change to `client`: the record
    /// itself, unless the cluster's registry keeps it.
    fn client_change<'a>(&self, client: &'a Client) -> Changes<'a> {
        if self.remote.is_some() {
            Changes::default()
        } else {
            Changes(vec![Change::Client(client)])
        }
    }

    /// On a cluster: writes `client` into the registry, replacing
    /// `before` (`None`: a new client, whose name no unrevoked client may
    /// have), or refuses if another node changed it meanwhile.
    fn publish_client(&self, client: &Client, before: Option<&Client>) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        for _ in 0..crate::cluster::slot::MAX_ATTEMPTS {
            let (version, mut all) = remote.clients()?;
            let held = all.iter().position(|c| c.info.id == client.info.id);
            match (before, held) {
                (None, Some(_)) => return Err(EngineError::Internal("client id collision".into())),
                (None, None) => {
                    let taken = all
                        .iter()
                        .any(|c| c.info.name == client.info.name && c.info.revoked_at.is_none());
                    if taken {
                        return Err(EngineError::Conflict { field: "name" });
                    }
                    all.push(client.clone());
                }
                (Some(before), Some(i)) => {
                    if encode_client(&all[i]) != encode_client(before) {
                        return Err(EngineError::WrongState(
                            "the client was changed by another request meanwhile: read it again",
                        ));
                    }
                    all[i] = client.clone();
                }
                (Some(_), None) => return Err(EngineError::ClientNotFound),
            }
            if let crate::cluster::slot::Outcome::Written(_) =
                remote.store_clients(version, &all)?
            {
                return Ok(());
            }
        }
        Err(EngineError::Storage(
            "the client registry kept changing under this change; nothing was written".into(),
        ))
    }

    /// On a cluster: reads the client registry into memory.
    pub(super) fn refresh_clients(&self) -> Result<()> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        let (_, all) = remote.clients()?;
        for client in all {
            self.put_client(client);
        }
        self.clients_read_at
            .store(self.now().0, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// On a cluster: reads the registry again if this node's copy is older
    /// than `store.redis.client_refresh` (a cluster that does not answer
    /// leaves the copy as it is; the request then fails on its own reads).
    pub(super) fn refresh_clients_if_stale(&self) {
        let Some(remote) = &self.remote else {
            return;
        };
        let bound = u64::try_from(remote.client_refresh().as_millis()).unwrap_or(u64::MAX);
        let read_at = self
            .clients_read_at
            .load(std::sync::atomic::Ordering::Relaxed);
        if self.now().0.saturating_sub(read_at) >= bound {
            let _ = self.refresh_clients();
        }
    }

    /// Puts `client` in memory: its record, its keys' index, its rate.
    pub(super) fn put_client(&self, client: Client) {
        let id = client.info.id;
        for key in &client.info.keys {
            self.client_keys.insert(key.id, id);
        }
        match client.info.policy.issue_rate {
            Some(rate) => {
                let unchanged = self
                    .clients
                    .get(&id)
                    .is_some_and(|old| old.info.policy.issue_rate == Some(rate));
                if !unchanged {
                    // Its own bucket: the server's per-client limit has
                    // the same name and the client's id as its subject.
                    let limit = GlobalLimit::on(
                        "client_issue_rate",
                        &format!("{id}/own"),
                        &[rate],
                        self.clock.source(),
                        self.buckets.as_ref(),
                    );
                    self.client_rates.insert(id, limit);
                }
            }
            None => {
                self.client_rates.remove(&id);
            }
        }
        self.clients.insert(id, client);
    }

    pub(super) fn active_client(&self, name: &str) -> Option<ClientId> {
        self.clients
            .iter()
            .find(|c| c.info.name == name && c.info.revoked_at.is_none())
            .map(|c| c.info.id)
    }

    /// A key id no key has.
    fn fresh_key_id(&self) -> KeyId {
        loop {
            let id = KeyId(self.random());
            if !self.client_keys.contains_key(&id) && !self.clients.contains_key(&ClientId(id.0)) {
                return id;
            }
        }
    }

    /// A test client may be made here, and with these scopes.
    fn check_test_client(&self, scopes: Scopes) -> Result<()> {
        if !self.config.test_mode.clients_allowed {
            return Err(EngineError::not_permitted(
                "test",
                "test clients are refused here (environment = \"production\")",
            ));
        }
        if scopes.contains(Scope::Admin) || scopes.contains(Scope::Audit) {
            return Err(EngineError::invalid(
                "scopes",
                "a test client may hold only auth, accounts and sign: admin and audit reach \
                 every account",
            ));
        }
        Ok(())
    }
}

fn check_expiry(field: &'static str, at: Option<Timestamp>, now: Timestamp) -> Result<()> {
    match at {
        Some(at) if at <= now => Err(EngineError::invalid(field, "must be in the future")),
        _ => Ok(()),
    }
}
