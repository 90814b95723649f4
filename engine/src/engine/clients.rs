//! Client services (relying parties): adding, listing, revoking, and authenticating their keys.

use std::sync::PoisonError;

use crate::audit::{Event as AuditEvent, EventKind};
use crate::client::{ApiKey, Client, ClientInfo, Scopes, check_name, hash_secret};

use crate::error::{EngineError, Result};
use crate::store::{Change, Changes, Durable};

use super::Engine;

impl Engine {
    /// Registers a client service and returns its API key, which is not stored
    /// and cannot be shown again. Names are unique among unrevoked clients.
    pub fn add_client(&self, name: &str, scopes: Scopes) -> Result<Durable<(ClientInfo, ApiKey)>> {
        let name = check_name(name)?;
        if scopes == Scopes::default() {
            return Err(EngineError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        let _serial = self
            .client_admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self
            .clients
            .iter()
            .any(|c| c.info.name == name && c.info.revoked_at.is_none())
        {
            return Err(EngineError::Conflict { field: "name" });
        }
        let id: [u8; 8] = self.random();
        let secret: [u8; 32] = self.random();
        let client = Client {
            id,
            info: ClientInfo {
                name,
                scopes,
                created_at: self.now(),
                revoked_at: None,
            },
            secret_hash: hash_secret(&secret),
        };
        let scope_names: Vec<&str> = scopes.iter().map(crate::client::Scope::as_str).collect();
        let event = AuditEvent::new(EventKind::ClientAdded, None)
            .with("name", client.info.name.clone())
            .with("scopes", scope_names.join(","));
        let ticket = self.write(Changes(vec![Change::Client(&client)]), vec![event])?;
        let info = client.info.clone();
        self.clients.insert(id, client);
        Ok(self.durable((info, ApiKey::new(id, &secret)), ticket))
    }

    /// Every client ever added, revoked ones included, by name.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut all: Vec<ClientInfo> = self.clients.iter().map(|c| c.info.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.created_at.cmp(&b.created_at)));
        all
    }

    /// Revokes the unrevoked client called `name`; its key stops working at once.
    pub fn revoke_client(&self, name: &str) -> Result<Durable<()>> {
        let _serial = self
            .client_admin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let id = self
            .clients
            .iter()
            .find(|c| c.info.name == name && c.info.revoked_at.is_none())
            .map(|c| c.id)
            .ok_or_else(|| EngineError::invalid("name", "no active client has this name"))?;
        let mut revoked = self
            .clients
            .get(&id)
            .map(|c| c.clone())
            .ok_or_else(|| EngineError::Internal("client vanished".into()))?;
        revoked.info.revoked_at = Some(self.now());
        let event = AuditEvent::new(EventKind::ClientRevoked, None).with("name", name);
        // A later client may take the name: it must not be answered from
        // this one's idempotency keys, which go with the revocation.
        let keys = self.client_keys(name);
        let mut changes = vec![Change::Client(&revoked)];
        changes.extend(keys.iter().map(|k| Change::RemoveIdempotency(name, k)));
        let ticket = self.write(Changes(changes), vec![event])?;
        self.forget_client_keys(name, &keys);
        self.clients.insert(id, revoked);
        Ok(self.durable((), ticket))
    }

    /// The client whose API key this is, if it is valid and not revoked.
    pub fn authenticate_client(&self, presented: &str) -> Option<ClientInfo> {
        let (id, secret) = ApiKey::split(presented)?;
        let client = self.clients.get(&id)?;
        client.accepts(&secret).then(|| client.info.clone())
    }
}
