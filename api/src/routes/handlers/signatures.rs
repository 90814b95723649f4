//! Signature authorisation: the citizen's PIN, then a code bound to the
//! document's hash (its check is `/v1/signatures/verify`, in `auth.rs`).

use std::sync::Arc;

use super::auth::{first_factor, login_id};
use super::{Reply, blocking_durable};
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire;

/// `POST /v1/signatures`: phone or email, PIN and the document; sends a
/// code whose message names the document and that approves it alone.
pub async fn request(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::SignatureIn = input.json().await?;
    let login = login_id(input.phone.as_deref(), input.email.as_deref())?;
    let document = input.document.parse()?;
    let channel = wire::channel(input.channel.as_deref())?;
    let lifetime = wire::lifetime(input.lifetime_seconds);
    let locale = wire::locale(input.locale.as_deref())?;
    let pin = input.pin;
    let outcome = blocking_durable(state, &actor, move |engine| {
        engine.request_signature(&login, &pin, document, channel, lifetime, locale)
    })
    .await?;
    first_factor(state, outcome)
}
