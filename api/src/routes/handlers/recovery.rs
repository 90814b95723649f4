//! Recovery: unlock or a new PIN for a citizen who proved who they are elsewhere (Citizen Card, a Citizen Space).

use std::sync::Arc;

use engine::audit::acting;

use super::{Reply, blocking_durable, ok};
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire;

/// `POST /v1/accounts/{id}/recovery/unlock`.
pub async fn unlock(state: &AppState, input: Input) -> Reply {
    let id = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::RecoveryIn = input.json().await?;
    let recovery = input.parse()?;
    let view = acting(&actor, || state.engine.recover_unlock(id, &recovery))?
        .wait_async()
        .await?;
    ok(wire::AccountOut::new(&view))
}

/// `POST /v1/accounts/{id}/recovery/pin`: also unlocks.
pub async fn pin(state: &Arc<AppState>, input: Input) -> Reply {
    let id = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::RecoveryPinIn = input.json().await?;
    let recovery = wire::RecoveryIn {
        method: input.method,
        reference: input.reference,
    }
    .parse()?;
    let new_pin = input.new_pin;
    let view = blocking_durable(state, &actor, move |engine| {
        engine.recover_pin(id, &recovery, &new_pin)
    })
    .await?;
    ok(wire::AccountOut::new(&view))
}
