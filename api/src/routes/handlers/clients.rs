//! Client services (relying parties) while the server runs: add, list,
//! read, update and revoke them, and rotate and revoke their keys. A key is
//! in an answer only when it is made; a change applies from the next request.

use engine::ClientUpdate;
use engine::audit::acting;
use hyper::StatusCode;

use super::{Reply, json_response, ok};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire::{self, channels, issue_rate, purposes, scopes, time};

/// `POST /v1/admin/clients`: 201 with the client and its key (shown once).
pub async fn add(state: &AppState, input: Input) -> Reply {
    let actor = input.actor().clone();
    let new = input.json::<wire::AddClientIn>().await?.parse()?;
    state
        .config
        .server
        .tls
        .refuse_inherited_certificate(&new.name, &state.engine.clients())
        .map_err(|why| ApiError::invalid("name", why))?;
    let (info, key) = acting(&actor, || state.engine.add_client_with(new))?
        .wait_async()
        .await?;
    tracing::warn!(client = %info.name, key_id = %key.info.id, "client added");
    Ok(json_response(
        StatusCode::CREATED,
        &wire::NewClientKeyOut {
            client: wire::ClientOut::new(&info, state.engine.now()),
            key_id: key.info.id.to_string(),
            key: key.key.expose().to_owned(),
            twilio: wire::TwilioCredentialsOut::of_key(key.key.expose()),
        },
    ))
}

/// `GET /v1/admin/clients`: every client, revoked ones included; never a key.
pub fn list(state: &AppState) -> Reply {
    let now = state.engine.now();
    let clients: Vec<_> = state
        .engine
        .clients()
        .iter()
        .map(|c| wire::ClientOut::new(c, now))
        .collect();
    ok(wire::ClientsOut { clients })
}

/// `GET /v1/admin/clients/{name}`: the active client of that name.
pub fn read(state: &AppState, input: &Input) -> Reply {
    let info = state.engine.client(input.client_name())?;
    ok(wire::OneClientOut {
        client: wire::ClientOut::new(&info, state.engine.now()),
    })
}

/// `PATCH /v1/admin/clients/{name}`: new scopes or policy.
pub async fn update(state: &AppState, input: Input) -> Reply {
    let actor = input.actor().clone();
    let name = input.client_name().to_owned();
    let body: wire::UpdateClientIn = input.json().await?;
    let update = ClientUpdate {
        scopes: body.scopes.as_deref().map(scopes).transpose()?,
        purposes: body
            .purposes
            .map(|p| p.as_deref().map(purposes).transpose())
            .transpose()?,
        channels: body
            .channels
            .map(|c| c.as_deref().map(channels).transpose())
            .transpose()?,
        issue_rate: body
            .issue_rate
            .map(|r| r.as_ref().map(issue_rate).transpose())
            .transpose()?,
    };
    if update == ClientUpdate::default() {
        return Err(ApiError::invalid(
            "body",
            "send at least one of scopes, purposes, channels or issue_rate",
        ));
    }
    let info = acting(&actor, || state.engine.update_client(&name, update))?
        .wait_async()
        .await?;
    tracing::warn!(client = %info.name, "client updated");
    ok(wire::OneClientOut {
        client: wire::ClientOut::new(&info, state.engine.now()),
    })
}

/// `DELETE /v1/admin/clients/{name}`: every key of the client stops at once.
pub async fn revoke(state: &AppState, input: &Input) -> Reply {
    let name = input.client_name();
    let info = acting(input.actor(), || state.engine.revoke_client(name))?
        .wait_async()
        .await?;
    tracing::warn!(client = %info.name, "client revoked");
    ok(wire::OneClientOut {
        client: wire::ClientOut::new(&info, state.engine.now()),
    })
}

/// `POST /v1/admin/clients/{name}/keys`: another key, working alongside the
/// others; 201 with it (shown once).
pub async fn rotate(state: &AppState, input: Input) -> Reply {
    let actor = input.actor().clone();
    let name = input.client_name().to_owned();
    let body: wire::RotateKeyIn = input.json_or_default().await?;
    let expires_at = time("expires_at", body.expires_at.as_deref())?;
    let previous = time("previous_expires_at", body.previous_expires_at.as_deref())?;
    let key = acting(&actor, || {
        state.engine.rotate_client_key(&name, expires_at, previous)
    })?
    .wait_async()
    .await?;
    tracing::warn!(client = %name, key_id = %key.info.id, "client key made");
    let info = state.engine.client(&name)?;
    Ok(json_response(
        StatusCode::CREATED,
        &wire::NewClientKeyOut {
            client: wire::ClientOut::new(&info, state.engine.now()),
            key_id: key.info.id.to_string(),
            key: key.key.expose().to_owned(),
            twilio: wire::TwilioCredentialsOut::of_key(key.key.expose()),
        },
    ))
}

/// `DELETE /v1/admin/clients/{name}/keys/{key_id}`: that key stops at once.
pub async fn revoke_key(state: &AppState, input: &Input) -> Reply {
    let name = input.client_name();
    let key = input.client_key_id()?;
    let info = acting(input.actor(), || state.engine.revoke_client_key(name, key))?
        .wait_async()
        .await?;
    tracing::warn!(client = %name, key_id = %key, "client key revoked");
    ok(wire::OneClientOut {
        client: wire::ClientOut::new(&info, state.engine.now()),
    })
}
