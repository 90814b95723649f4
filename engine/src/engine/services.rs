//! Verification services: named configurations of a client's account-less
//! codes, as the Twilio Verify API has them. A service is part of its
//! client's record (the registry on a cluster), so every node knows it,
//! and it goes with its client.

use crate::audit::{Event as AuditEvent, EventKind, current_client_id};
use crate::client::{Service, ServiceId};
use crate::error::{EngineError, Result};
use crate::store::Durable;
use crate::terms::{Channel, Purpose};

use super::Engine;

/// The most services one client may hold.
pub const MAX_SERVICES: usize = 32;

impl Engine {
    /// Adds a verification service to the calling client. `code_length`,
    /// if given, must be the destination codes' length: otpd's policy, not
    /// the caller's, decides how strong a code is.
    pub fn add_service(
        &self,
        friendly_name: &str,
        code_length: Option<u32>,
    ) -> Result<Durable<Service>> {
        let name = check_friendly_name(friendly_name)?;
        let length = self
            .config
            .codes
            .for_code(Purpose::Destination, Channel::Sms)
            .length;
        if let Some(asked) = code_length
            && usize::try_from(asked).ok() != Some(length)
        {
            return Err(EngineError::invalid(
                "code_length",
                format!(
                    "codes here are {length} characters long (the server's codes.destination policy)"
                ),
            ));
        }
        let client = self.calling_client_name()?;
        let id = ServiceId(self.random());
        self.change_client(&client, |client, now| {
            if client.services.len() >= MAX_SERVICES {
                return Err(EngineError::WrongState(
                    "this client holds the most services allowed (32)",
                ));
            }
            let service = Service {
                id,
                friendly_name: name,
                code_length: u8::try_from(length).unwrap_or(u8::MAX),
                created_at: now,
            };
            client.services.push(service.clone());
            let event = AuditEvent::new(EventKind::ServiceAdded, None)
                .with("service_id", id.to_string())
                .with("friendly_name", service.friendly_name.clone());
            Ok((service, event))
        })
    }

    /// Removes one of the calling client's services. Its verifications are
    /// the client's and stay as they are.
    pub fn remove_service(&self, id: ServiceId) -> Result<Durable<Service>> {
        let client = self.calling_client_name()?;
        self.change_client(&client, |client, _| {
            let at = client
                .services
                .iter()
                .position(|s| s.id == id)
                .ok_or(EngineError::ServiceNotFound)?;
            let service = client.services.remove(at);
            let event =
                AuditEvent::new(EventKind::ServiceRemoved, None).with("service_id", id.to_string());
            Ok((service, event))
        })
    }

    /// One of the calling client's services.
    pub fn service(&self, id: ServiceId) -> Result<Service> {
        let caller = current_client_id().ok_or(EngineError::ServiceNotFound)?;
        self.refresh_clients_if_stale();
        self.clients
            .get(&caller)
            .and_then(|c| c.services.iter().find(|s| s.id == id).cloned())
            .ok_or(EngineError::ServiceNotFound)
    }

    /// The calling client's name (services belong to a client).
    fn calling_client_name(&self) -> Result<String> {
        let caller = current_client_id().ok_or_else(|| {
            EngineError::not_permitted("client", "services belong to a client: call as one")
        })?;
        self.clients
            .get(&caller)
            .map(|c| c.info.name.clone())
            .ok_or_else(|| {
                EngineError::not_permitted("client", "the calling client is not registered")
            })
    }
}

/// 1 to 64 characters, no control characters: it may appear in messages.
fn check_friendly_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            "friendly_name",
            "must be 1 to 64 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}
