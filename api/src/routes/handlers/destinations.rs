//! Account-less verification: proof that someone controls a phone number
//! or an email address, with no account (`/v1/destinations/verify`).

use std::sync::Arc;

use engine::audit::acting;
use engine::{Destination, DestinationRequest, DestinationTarget, Verification};

use super::{Reply, ok, sent, verification};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire::{self, PhoneOrEmail};

/// `POST /v1/destinations/verify`: a new code to a phone or an email; the
/// client's previous code to it dies.
pub async fn verify(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let body: wire::DestinationVerifyIn = input.json().await?;
    let request = DestinationRequest {
        destination: destination(body.phone.as_deref(), body.email.as_deref())?,
        channel: wire::channel(body.channel.as_deref())?,
        locale: wire::locale(body.locale.as_deref())?,
        lifetime: wire::lifetime(body.lifetime_seconds),
    };
    let (issued, _) = acting(&actor, || state.engine.verify_destination(request))?
        .wait_async()
        .await?;
    sent(state, &issued)
}

/// `POST /v1/destinations/verify/check`: 200 naming the destination
/// proven, or why the code was refused.
pub async fn check(state: &Arc<AppState>, input: Input) -> Reply {
    let actor = input.actor().clone();
    let body: wire::VerifyIn = input.json().await?;
    let challenge = wire::challenge_id(&body.challenge_id)?;
    let checked = acting(&actor, || {
        state
            .engine
            .check_destination(DestinationTarget::Challenge(challenge), &body.code)
    })?
    .wait_async()
    .await?;
    match checked.outcome {
        Verification::Approved(_) => {
            metrics::counter!("otpd_verify_results_total", "outcome" => "approved").increment(1);
            ok(wire::DestinationOut::new(&checked.status))
        }
        refused => verification(refused),
    }
}

/// `GET /v1/destinations/verify/{id}`.
pub fn status(state: &AppState, input: &Input) -> Reply {
    let challenge = input.challenge_id()?;
    let status = acting(input.actor(), || state.engine.destination_status(challenge))?;
    ok(wire::DestinationOut::new(&status))
}

/// The destination of a request naming exactly one of phone or email.
pub fn destination(phone: Option<&str>, email: Option<&str>) -> Result<Destination, ApiError> {
    Ok(match wire::phone_or_email(phone, email)? {
        PhoneOrEmail::Phone(phone) => Destination::Phone(phone),
        PhoneOrEmail::Email(email) => Destination::Email(email),
    })
}
