//! Activation of a pre-registered account: a code by SMS, email or letter, then the code and a new PIN.

use std::sync::Arc;

use engine::ActivationTarget;
use engine::audit::acting;

use super::{Reply, blocking_durable, sent, verification};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire;

/// `POST /v1/activation/request`.
pub async fn request(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::ActivationRequestIn = input.json().await?;
    let identity = input.identity.parse()?;
    let birth = wire::birth_date(Some(&input.birth_date), state.engine.now())?
        .ok_or_else(|| ApiError::invalid("birth_date", "is required"))?;
    let channel = engine::Channel::parse(&input.channel)?;
    let locale = wire::locale(input.locale.as_deref())?;
    let issued = acting(&actor, || {
        state
            .engine
            .request_activation(&identity, birth, channel, locale)
    })?
    .wait_async()
    .await?;
    sent(state, &issued)
}

/// `POST /v1/activation/complete`: by challenge id, or by identity (as typed from a letter).
pub async fn complete(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::ActivationCompleteIn = input.json().await?;
    let birth_date = wire::birth_date(input.birth_date.as_deref(), state.engine.now())?;
    let target = match (input.challenge_id.as_deref(), &input.identity) {
        (Some(id), None) => ActivationTarget::Challenge {
            id: wire::challenge_id(id)?,
            birth_date,
        },
        (None, Some(identity)) => ActivationTarget::Identity {
            identity: identity.parse()?,
            birth_date,
        },
        _ => {
            return Err(ApiError::invalid(
                "challenge_id",
                "send exactly one of challenge_id or identity",
            ));
        }
    };
    let (code, pin) = (input.code, input.pin);
    let outcome = blocking_durable(state, &actor, move |engine| {
        engine.activate(&target, &code, &pin)
    })
    .await?;
    verification(outcome)
}
