//! Account endpoints: register, pre-register, read, cancel, change the PIN, register a push device, set the locale.

use std::sync::Arc;

use engine::audit::acting;
use engine::{PinChange, PreRegistration, PushToken};
use hyper::StatusCode;

use super::{Reply, blocking_durable, json_response, ok, verification};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire;

/// `POST /v1/accounts`.
pub async fn register(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::RegisterIn = input.json().await?;
    let new = engine::NewAccount {
        identity: input.identity.parse()?,
        phone: wire::phone(input.phone.as_deref())?,
        email: wire::email(input.email.as_deref())?,
        pin: input.pin,
        birth_date: wire::birth_date(input.birth_date.as_deref(), state.engine.now())?,
        postal_address: wire::address(input.postal_address.as_deref())?,
        dm: wire::dm(&state.engine, input.dm.as_deref())?,
        locale: wire::locale(input.locale.as_deref())?,
    };
    let view = blocking_durable(state, &actor, move |engine| engine.register(new)).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &wire::AccountOut::new(&view),
    ))
}

/// `POST /v1/accounts/pre-register`.
pub async fn pre_register(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::PreRegisterIn = input.json().await?;
    let pre = PreRegistration {
        identity: input.identity.parse()?,
        birth_date: wire::birth_date(Some(&input.birth_date), state.engine.now())?
            .ok_or_else(|| ApiError::invalid("birth_date", "is required"))?,
        phone: wire::phone(input.phone.as_deref())?,
        email: wire::email(input.email.as_deref())?,
        postal_address: wire::address(input.postal_address.as_deref())?,
        locale: wire::locale(input.locale.as_deref())?,
    };
    let view = acting(&actor, || state.engine.pre_register(pre))?
        .wait_async()
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &wire::AccountOut::new(&view),
    ))
}

/// `GET /v1/accounts/{id}`.
pub fn read(state: &AppState, input: &Input) -> Reply {
    let id = input.account_id()?;
    let view = acting(input.actor(), || state.engine.account(id))?;
    ok(wire::AccountOut::new(&view))
}

/// `DELETE /v1/accounts/{id}`.
pub async fn cancel(state: &AppState, input: &Input) -> Reply {
    let id = input.account_id()?;
    acting(input.actor(), || state.engine.cancel(id))?
        .wait_async()
        .await?;
    ok(wire::CancelledOut {
        account_id: id.to_string(),
        state: "cancelled",
    })
}

/// `POST /v1/accounts/{id}/pin`: the current PIN and a step-up code.
pub async fn change_pin(state: &Arc<AppState>, input: Input) -> Reply {
    let account = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::ChangePinIn = input.json().await?;
    let challenge = wire::challenge_id(&input.challenge_id)?;
    let (current, code, new) = (input.current_pin, input.code, input.new_pin);
    let outcome = blocking_durable(state, &actor, move |engine| {
        engine.change_pin(account, &current, challenge, &code, &new)
    })
    .await?;
    match outcome {
        PinChange::Changed => ok(wire::PinChangedOut {
            account_id: account.to_string(),
            pin_changed: true,
        }),
        PinChange::WrongPin => Err(ApiError::WrongCurrentPin),
        PinChange::Locked => Err(ApiError::Locked),
        PinChange::CodeRejected(v) => verification(v),
    }
}

/// `PUT /v1/accounts/{id}/push-device`.
pub async fn push_device(state: &AppState, input: Input) -> Reply {
    let id = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::PushDeviceIn = input.json().await?;
    let token = PushToken::parse(&input.push_token)?;
    acting(&actor, || state.engine.register_push_device(id, token))?
        .wait_async()
        .await?;
    ok(wire::PushDeviceOut {
        account_id: id.to_string(),
        has_push_device: true,
    })
}

/// `PUT /v1/accounts/{id}/locale`: the language of the citizen's messages.
pub async fn set_locale(state: &AppState, input: Input) -> Reply {
    let id = input.account_id()?;
    let actor = input.actor().clone();
    let input: wire::LocaleIn = input.json().await?;
    let Some(locale) = input.locale else {
        return Err(ApiError::invalid(
            "locale",
            "is required: pt, en, or null for the server's default",
        ));
    };
    let locale = wire::locale(locale.as_deref())?;
    let view = acting(&actor, || state.engine.set_locale(id, locale))?
        .wait_async()
        .await?;
    ok(wire::AccountOut::new(&view))
}
