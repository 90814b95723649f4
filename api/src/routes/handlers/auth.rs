//! Sign-in endpoints: login, verify, step-up and its verify, challenge status, resend.

use std::sync::Arc;

use engine::audit::acting;
use engine::{AccountId, ChallengeId, ChallengeStatus, LoginId, LoginOutcome, Purpose, Scope};

use super::{Reply, attested_verification, blocking_durable, ok, sent};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire::{self, PhoneOrEmail};

/// `POST /v1/login`: phone or email and PIN; sends a code.
pub async fn login(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::LoginIn = input.json().await?;
    let login = login_id(input.phone.as_deref(), input.email.as_deref())?;
    let channel = wire::channel(input.channel.as_deref())?;
    let lifetime = wire::lifetime(input.lifetime_seconds);
    let locale = wire::locale(input.locale.as_deref())?;
    let pin = input.pin;
    let outcome = blocking_durable(state, &actor, move |engine| {
        engine.login(&login, &pin, channel, lifetime, locale)
    })
    .await?;
    first_factor(state, outcome)
}

/// The login id of a request naming exactly one of phone or email.
pub fn login_id(phone: Option<&str>, email: Option<&str>) -> Result<LoginId, ApiError> {
    Ok(match wire::phone_or_email(phone, email)? {
        PhoneOrEmail::Phone(phone) => LoginId::Phone(phone),
        PhoneOrEmail::Email(email) => LoginId::Email(email),
    })
}

/// Answers a PIN check that sends a code (login, signature request).
pub fn first_factor(state: &AppState, outcome: LoginOutcome) -> Reply {
    match outcome {
        LoginOutcome::CodeSent(issued) => sent(state, &issued),
        LoginOutcome::InvalidCredentials => Err(ApiError::InvalidCredentials),
        LoginOutcome::Locked => Err(ApiError::Locked),
    }
}

/// `POST /v1/verify`, `POST /v1/step-up/verify` and `POST
/// /v1/signatures/verify`: a code for `purpose`; an approval carries a
/// signed attestation naming the client that asked.
pub async fn verify(state: &Arc<AppState>, input: Input, purpose: Purpose) -> Reply {
    let client = input.client().to_owned();
    let actor = input.actor().clone();
    let body: wire::VerifyIn = input.json().await?;
    let challenge = wire::challenge_id(&body.challenge_id)?;
    let outcome = acting(&actor, || {
        state.engine.verify(challenge, purpose, &body.code)
    })?
    .wait_async()
    .await?;
    attested_verification(state, outcome, challenge, &client)
}

/// `POST /v1/step-up`: a code for a citizen the client has signed in.
pub async fn step_up(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let input: wire::StepUpIn = input.json().await?;
    let account = AccountId::parse("account_id", &input.account_id)?;
    let channel = wire::channel(input.channel.as_deref())?;
    let lifetime = wire::lifetime(input.lifetime_seconds);
    let locale = wire::locale(input.locale.as_deref())?;
    let issued = acting(&actor, || {
        state
            .engine
            .issue_step_up(account, channel, lifetime, locale)
    })?
    .wait_async()
    .await?;
    sent(state, &issued)
}

/// `GET /v1/challenges/{id}`.
pub fn challenge_status(state: &AppState, input: &Input) -> Reply {
    let status = visible_status(state, input, input.challenge_id()?)?;
    ok(wire::StatusOut::new(&status))
}

/// A challenge's status, if the client may see it: a signature challenge
/// only to clients with the `sign` scope (to the others it does not exist).
fn visible_status(
    state: &AppState,
    input: &Input,
    challenge: ChallengeId,
) -> Result<ChallengeStatus, ApiError> {
    // Acting as the client: another client's challenge does not exist for it.
    let status = acting(input.actor(), || state.engine.challenge_status(challenge))?;
    if status.purpose == Purpose::Signature && !input.may(Scope::Sign) {
        return Err(ApiError::Engine(engine::EngineError::ChallengeNotFound));
    }
    Ok(status)
}

/// `POST /v1/challenges/{id}/resend`.
pub async fn resend(state: &AppState, input: &Input) -> Reply {
    let challenge = input.challenge_id()?;
    visible_status(state, input, challenge)?;
    let issued = acting(input.actor(), || state.engine.resend(challenge, None))?
        .wait_async()
        .await?;
    sent(state, &issued)
}
