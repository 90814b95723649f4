//! The signing keys: the published key set, and the admin endpoints that
//! list, rotate and retire keys while the server runs.

use std::sync::Arc;

use engine::audit::{EventKind, acting};
use hyper::StatusCode;

use super::{Reply, json_response, ok};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::signing::{KeyInfo, KeyState, key_set as jwks};
use crate::state::AppState;
use crate::wire;

/// `GET /.well-known/jwks.json`: the active key and those still in their
/// overlap. Verifiers may cache it for five minutes (and refetch at once on
/// an unknown `kid`).
pub fn key_set(state: &AppState) -> Reply {
    let now = state.engine.now();
    let mut response = json_response(StatusCode::OK, &jwks(&state.attester.ring().published(now)));
    response.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

/// `GET /v1/admin/keys`: every key and where it stands.
pub fn list(state: &AppState) -> Reply {
    let now = state.engine.now();
    let keys = state
        .attester
        .ring()
        .list(now)
        .iter()
        .map(|(info, key_state)| key(info, *key_state))
        .collect();
    ok(wire::SigningKeysOut { keys })
}

/// `POST /v1/admin/keys/rotate`: a new active key; the old one stays
/// published for `signing.key_overlap_seconds`.
pub async fn rotate(state: &Arc<AppState>, input: &Input) -> Reply {
    let worker = Arc::clone(state);
    let kid =
        tokio::task::spawn_blocking(move || worker.attester.ring().rotate(worker.engine.now()))
            .await
            .map_err(|e| ApiError::Internal(format!("key rotation task: {e}")))??;
    tracing::warn!(kid = %kid, "signing key rotated");
    acting(input.actor(), || {
        state
            .engine
            .record_event(EventKind::KeyRotated, None, &[("kid", &kid)])
    })?
    .wait_async()
    .await?;
    list(state)
}

/// `POST /v1/admin/keys/{id}/retire`: the key is no longer published and
/// tokens it signed no longer verify.
pub async fn retire(state: &Arc<AppState>, input: &Input) -> Reply {
    let kid = input.key_id()?;
    let worker = Arc::clone(state);
    let retired = kid.clone();
    tokio::task::spawn_blocking(move || {
        worker.attester.ring().retire(&retired, worker.engine.now())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("key retirement task: {e}")))??;
    tracing::warn!(kid = %kid, "signing key retired");
    acting(input.actor(), || {
        state
            .engine
            .record_event(EventKind::KeyRetired, None, &[("kid", &kid)])
    })?
    .wait_async()
    .await?;
    list(state)
}

fn key(info: &KeyInfo, state: KeyState) -> wire::SigningKeyOut {
    let time = |t| wire::rfc3339(engine::Timestamp(t));
    wire::SigningKeyOut {
        kid: info.kid.clone(),
        state: state.as_str(),
        source: if info.external {
            "signing.key"
        } else {
            "key_dir"
        },
        created_at: time(info.created_at),
        superseded_at: info.superseded_at.map(time),
        retired_at: info.retired_at.map(time),
    }
}
