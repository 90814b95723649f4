//! Sign-in endpoints: login, verify, step-up and its verify, challenge status, resend.

use std::sync::Arc;

use engine::{AccountId, LoginId, LoginOutcome, Purpose};

use super::{Reply, blocking_durable, ok, sent, verification};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire::{self, PhoneOrEmail};

/// `POST /v1/login`: phone or email and PIN; sends a code.
pub async fn login(state: &Arc<AppState>, input: Input) -> Reply {
    let input: wire::LoginIn = input.json().await?;
    let login = match wire::phone_or_email(input.phone.as_deref(), input.email.as_deref())? {
        PhoneOrEmail::Phone(phone) => LoginId::Phone(phone),
        PhoneOrEmail::Email(email) => LoginId::Email(email),
    };
    let channel = wire::channel(input.channel.as_deref())?;
    let lifetime = wire::lifetime(input.lifetime_seconds);
    let locale = wire::locale(input.locale.as_deref())?;
    let pin = input.pin;
    let outcome = blocking_durable(state, move |engine| {
        engine.login(&login, &pin, channel, lifetime, locale)
    })
    .await?;
    match outcome {
        LoginOutcome::CodeSent(issued) => sent(state, &issued),
        LoginOutcome::InvalidCredentials => Err(ApiError::InvalidCredentials),
        LoginOutcome::Locked => Err(ApiError::Locked),
    }
}

/// `POST /v1/verify` and `POST /v1/step-up/verify`: a code for `purpose`.
pub async fn verify(state: &Arc<AppState>, input: Input, purpose: Purpose) -> Reply {
    let input: wire::VerifyIn = input.json().await?;
    let challenge = wire::challenge_id(&input.challenge_id)?;
    let outcome = state
        .engine
        .verify(challenge, purpose, &input.code)?
        .wait_async()
        .await?;
    verification(outcome)
}

/// `POST /v1/step-up`: a code for a citizen the client has signed in.
pub async fn step_up(state: &Arc<AppState>, input: Input) -> Reply {
    let input: wire::StepUpIn = input.json().await?;
    let account = AccountId::parse("account_id", &input.account_id)?;
    let issued = state
        .engine
        .issue_step_up(
            account,
            wire::channel(input.channel.as_deref())?,
            wire::lifetime(input.lifetime_seconds),
            wire::locale(input.locale.as_deref())?,
        )?
        .wait_async()
        .await?;
    sent(state, &issued)
}

/// `GET /v1/challenges/{id}`.
pub fn challenge_status(state: &AppState, input: &Input) -> Reply {
    let status = state.engine.challenge_status(input.challenge_id()?)?;
    ok(wire::status(&status))
}

/// `POST /v1/challenges/{id}/resend`.
pub async fn resend(state: &AppState, input: &Input) -> Reply {
    let issued = state
        .engine
        .resend(input.challenge_id()?, None)?
        .wait_async()
        .await?;
    sent(state, &issued)
}
