//! The handlers, one file per group of endpoints, and what they share: JSON
//! answers, the PIN workers, and the answers to a sent or checked code.

mod accounts;
mod activation;
mod admin;
mod audit;
mod auth;
mod clients;
mod contacts;
mod destinations;
mod keys;
mod ops;
mod recovery;
mod signatures;

use std::sync::Arc;

use bytes::Bytes;
use engine::audit::{Actor, acting};
use engine::{Approval, ChallengeId, Durable, Engine, EngineError, Issued, Verification};
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use super::request::Input;
use super::table::Route;
use crate::error::{ApiError, Rejection};
use crate::pin_workers::Lost;
use crate::state::AppState;
use crate::wire;

/// A handler's answer.
pub type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// Runs the handler of `route`.
pub async fn run(state: &Arc<AppState>, route: Route, input: Input) -> Reply {
    match route {
        Route::Livez => ops::livez(),
        Route::Readyz => ops::readyz(state),
        Route::Metrics => ops::metrics(state),
        Route::OpenApi => ops::openapi(),
        Route::Register => accounts::register(state, input).await,
        Route::PreRegister => accounts::pre_register(state, input).await,
        Route::ReadAccount => accounts::read(state, &input),
        Route::CancelAccount => accounts::cancel(state, &input).await,
        Route::ChangePin => accounts::change_pin(state, input).await,
        Route::PushDevice => accounts::push_device(state, input).await,
        Route::BeginContactChange => contacts::begin(state, input).await,
        Route::ConfirmContactChange => contacts::confirm(state, input).await,
        Route::RemoveContact => contacts::remove(state, input).await,
        Route::SetLocale => accounts::set_locale(state, input).await,
        Route::Login => auth::login(state, input).await,
        Route::Verify => auth::verify(state, input, engine::Purpose::Login).await,
        Route::SignatureRequest => signatures::request(state, input).await,
        Route::SignatureVerify => auth::verify(state, input, engine::Purpose::Signature).await,
        Route::KeySet => keys::key_set(state),
        Route::ListKeys => keys::list(state),
        Route::RotateKey => keys::rotate(state, &input).await,
        Route::RetireKey => keys::retire(state, &input).await,
        Route::AccountEvents => audit::account_events(state, &input),
        Route::EventFeed => audit::feed(state, &input).await,
        Route::EventTrailer => audit::trailer(state, &input),
        Route::AuditInfo => audit::about(state),
        Route::StepUp => auth::step_up(state, input).await,
        Route::StepUpVerify => auth::verify(state, input, engine::Purpose::StepUp).await,
        Route::ChallengeStatus => auth::challenge_status(state, &input),
        Route::DestinationVerify => destinations::verify(state, input).await,
        Route::DestinationCheck => destinations::check(state, input).await,
        Route::DestinationStatus => destinations::status(state, &input),
        Route::Twilio(operation) => crate::twilio::handlers::run(state, operation, input).await,
        Route::Resend => auth::resend(state, &input).await,
        Route::ActivationRequest => activation::request(state, input).await,
        Route::ActivationComplete => activation::complete(state, input).await,
        Route::Lock => admin::lock(state, input).await,
        Route::Unlock => admin::unlock(state, &input).await,
        Route::ResetPin => admin::reset_pin(state, input).await,
        Route::RecoveryUnlock => recovery::unlock(state, input).await,
        Route::RecoveryPin => recovery::pin(state, input).await,
        Route::FindAccounts => admin::find_accounts(state, &input),
        Route::Import => admin::import(state, input).await,
        Route::Backup => admin::backup(state, &input).await,
        Route::AddClient => clients::add(state, input).await,
        Route::ListClients => clients::list(state),
        Route::ReadClient => clients::read(state, &input),
        Route::UpdateClient => clients::update(state, input).await,
        Route::RevokeClient => clients::revoke(state, &input).await,
        Route::RotateClientKey => clients::rotate(state, input).await,
        Route::RevokeClientKey => clients::revoke_key(state, &input).await,
        #[cfg(test)]
        Route::Panic => panic!("a deliberate panic in a handler"),
    }
}

/// 200 with `value`.
fn ok(value: impl Serialize) -> Reply {
    Ok(json_response(StatusCode::OK, &value))
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(e) => {
            return ApiError::Internal(format!("cannot encode the answer: {e}"))
                .answer()
                .into_response();
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Runs Argon2-heavy engine work on a PIN worker (`server.argon2_workers`
/// threads). The worker is freed as the work ends: the caller waits for
/// durability afterwards, so a worker never sits idle through a flush.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    actor: &Actor,
    work: impl FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = Arc::clone(&state.engine);
    let actor = actor.clone();
    match state
        .pin_workers
        .run(move || acting(&actor, || work(&engine)))
        .await
    {
        Ok(result) => result.map_err(ApiError::from),
        Err(Lost::Panicked) => Err(ApiError::Internal("a PIN worker's job panicked".into())),
        Err(Lost::Stopped) => Err(ApiError::ShuttingDown),
    }
}

/// [`blocking`] for work that changes state, then the wait until it is durable.
async fn blocking_durable<T: Send + Unpin + 'static>(
    state: &Arc<AppState>,
    actor: &Actor,
    work: impl FnOnce(&Engine) -> Result<Durable<T>, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(blocking(state, actor, work).await?.wait_async().await?)
}

/// Wakes the sender for the new code (already in the outbox) and answers
/// with the challenge, never the code.
fn sent(state: &AppState, issued: &Issued) -> Reply {
    state.code_issued(issued);
    Ok(json_response(
        StatusCode::CREATED,
        &wire::IssuedOut::new(issued),
    ))
}

/// Answers a code check: 200 approved, or why not.
fn verification(outcome: Verification) -> Reply {
    answer_check(outcome, |_| Ok(None))
}

/// Answers a login, step-up or signature code check: an approval also
/// carries a signed `attestation` of it, naming `client` as the relying party.
fn attested_verification(
    state: &AppState,
    outcome: Verification,
    challenge: ChallengeId,
    client: &str,
) -> Reply {
    answer_check(outcome, |approval| {
        let token = state
            .attester
            .attest(approval, &challenge.to_string(), client, state.engine.now())
            .map_err(|e| ApiError::Internal(format!("cannot sign the attestation: {e}")))?;
        metrics::counter!("otpd_attestations_total", "purpose" => approval.purpose.as_str())
            .increment(1);
        Ok(Some(token))
    })
}

fn answer_check(
    outcome: Verification,
    attest: impl FnOnce(&Approval) -> Result<Option<String>, ApiError>,
) -> Reply {
    let (label, result) = match outcome {
        Verification::Approved(approval) => match attest(&approval) {
            Ok(token) => (
                "approved",
                Ok(json_response(
                    StatusCode::OK,
                    &wire::ApprovalOut::new(&approval, token),
                )),
            ),
            Err(e) => ("approved", Err(e)),
        },
        Verification::WrongCode { attempts_remaining } => (
            "wrong_code",
            Err(ApiError::CodeRejected(Rejection::WrongCode {
                attempts_remaining,
            })),
        ),
        Verification::Expired => ("expired", Err(ApiError::CodeRejected(Rejection::Expired))),
        Verification::Superseded => (
            "superseded",
            Err(ApiError::CodeRejected(Rejection::Superseded)),
        ),
        Verification::Exhausted => (
            "exhausted",
            Err(ApiError::CodeRejected(Rejection::Exhausted)),
        ),
        Verification::AlreadyUsed => (
            "already_used",
            Err(ApiError::CodeRejected(Rejection::AlreadyUsed)),
        ),
        Verification::Cancelled => (
            "cancelled",
            Err(ApiError::CodeRejected(Rejection::Cancelled)),
        ),
        Verification::Locked => ("locked", Err(ApiError::Locked)),
    };
    metrics::counter!("otpd_verify_results_total", "outcome" => label).increment(1);
    result
}
