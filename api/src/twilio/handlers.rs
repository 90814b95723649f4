//! The `/v2` operations: each parses Twilio's form parameters, runs the
//! engine's account-less verification as the calling client, and answers
//! in Twilio's shapes. otpd's own refusals (authentication, limits, a
//! resource not found) are translated in `errors.rs` on the way out.

use std::sync::Arc;

use bytes::Bytes;
use engine::audit::acting;
use engine::{
    ChallengeId, Channel, Code, Destination, DestinationRequest, DestinationTarget, Email, Ending,
    EngineError, Locale, Phone, ServiceId, Verification,
};
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use super::errors;
pub use super::operation::Operation;
use super::params::{Params, Refused};
use super::shapes::{Base, CheckOut, ServiceOut, VerificationOut};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;

type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// Runs `operation`.
pub async fn run(state: &Arc<AppState>, operation: Operation, input: Input) -> Reply {
    let (service, sid) = input.path_params();
    let (service, sid) = (service.to_owned(), sid.to_owned());
    let base = base(state, &input);
    let outcome = match operation {
        Operation::CreateService => create_service(state, input, &base).await,
        Operation::FetchService => fetch_service(state, &input, &service, &base),
        Operation::DeleteService => delete_service(state, &input, &service).await,
        Operation::CreateVerification => create_verification(state, input, &service, &base).await,
        Operation::FetchVerification => fetch_verification(state, &input, &service, &sid, &base),
        Operation::UpdateVerification => {
            update_verification(state, input, &service, &sid, &base).await
        }
        Operation::CheckVerification => check(state, input, &service, &base).await,
    };
    match outcome {
        Ok(response) => Ok(response),
        Err(Refused::Invalid { name, why }) => Ok(errors::invalid(&name, &why)),
        Err(Refused::Ended(why)) => {
            let path = match operation {
                Operation::CheckVerification => format!("/v2/Services/{service}/VerificationCheck"),
                _ => format!("/v2/Services/{service}/Verifications/{sid}"),
            };
            Ok(errors::not_found(&path, why))
        }
        Err(Refused::Api(e)) => Err(e),
    }
}

type Outcome = Result<Response<Full<Bytes>>, Refused>;

async fn create_service(state: &Arc<AppState>, input: Input, base: &Base) -> Outcome {
    let actor = input.actor().clone();
    let params = Params::parse(&input.form().await?, &["FriendlyName", "CodeLength"])?;
    let name = params.required("FriendlyName")?.to_owned();
    let length = match params.get("CodeLength") {
        None => None,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if (4..=10).contains(&n) => Some(n),
            _ => {
                return Err(Refused::invalid(
                    "CodeLength",
                    "must be a whole number from 4 to 10".into(),
                ));
            }
        },
    };
    let service = acting(&actor, || state.engine.add_service(&name, length))?
        .wait_async()
        .await
        .map_err(ApiError::from)?;
    Ok(json(StatusCode::CREATED, &ServiceOut::new(&service, base)))
}

fn fetch_service(state: &AppState, input: &Input, service: &str, base: &Base) -> Outcome {
    let id = service_id(service)?;
    let service = acting(input.actor(), || state.engine.service(id))?;
    Ok(json(StatusCode::OK, &ServiceOut::new(&service, base)))
}

async fn delete_service(state: &AppState, input: &Input, service: &str) -> Outcome {
    let id = service_id(service)?;
    acting(input.actor(), || state.engine.remove_service(id))?
        .wait_async()
        .await
        .map_err(ApiError::from)?;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn create_verification(
    state: &Arc<AppState>,
    input: Input,
    service: &str,
    base: &Base,
) -> Outcome {
    let actor = input.actor().clone();
    let id = service_id(service)?;
    acting(&actor, || state.engine.service(id))?;
    let params = Params::parse(
        &input.form().await?,
        &["To", "Channel", "Locale", "CustomFriendlyName"],
    )?;
    let channel = channel(params.required("Channel")?)?;
    let to = params.required("To")?;
    let destination = match channel {
        Channel::Email => {
            Destination::Email(Email::parse(to).map_err(|e| Refused::invalid("To", why(&e)))?)
        }
        _ => Destination::Phone(Phone::parse(to).map_err(|e| Refused::invalid("To", why(&e)))?),
    };
    let locale = params
        .get("Locale")
        .map(|l| {
            Locale::parse(l).map_err(|_| {
                Refused::invalid("Locale", "otpd writes its messages in pt or en".into())
            })
        })
        .transpose()?;
    if let Some(custom) = params.get("CustomFriendlyName")
        && (custom.chars().count() > 30 || custom.chars().any(char::is_control))
    {
        return Err(Refused::invalid(
            "CustomFriendlyName",
            "must be at most 30 characters, without control characters".into(),
        ));
    }
    let request = DestinationRequest {
        destination,
        channel: Some(channel),
        locale,
        lifetime: None,
    };
    let (issued, status) = acting(&actor, || state.engine.verify_destination(request))?
        .wait_async()
        .await
        .map_err(ApiError::from)?;
    state.code_issued(&issued);
    Ok(json(
        StatusCode::CREATED,
        &VerificationOut::new(&status, service, base, status.status.created_at),
    ))
}

fn fetch_verification(
    state: &AppState,
    input: &Input,
    service: &str,
    sid: &str,
    base: &Base,
) -> Outcome {
    let id = service_id(service)?;
    acting(input.actor(), || state.engine.service(id))?;
    let challenge = verification_id(sid)?;
    let status = acting(input.actor(), || state.engine.destination_status(challenge))?;
    let created = status.status.created_at;
    Ok(json(
        StatusCode::OK,
        &VerificationOut::new(&status, service, base, created),
    ))
}

async fn update_verification(
    state: &Arc<AppState>,
    input: Input,
    service: &str,
    sid: &str,
    base: &Base,
) -> Outcome {
    let actor = input.actor().clone();
    let id = service_id(service)?;
    acting(&actor, || state.engine.service(id))?;
    let challenge = verification_id(sid)?;
    let params = Params::parse(&input.form().await?, &["Status"])?;
    let ending = match params.required("Status")? {
        "canceled" => Ending::Cancel,
        "approved" => Ending::Approve,
        _ => {
            return Err(Refused::invalid(
                "Status",
                "must be canceled or approved".into(),
            ));
        }
    };
    let ended = acting(&actor, || {
        state
            .engine
            .end_destination(DestinationTarget::Challenge(challenge), ending)
    });
    let status = match ended {
        // Twilio keeps only pending Verifications: one that has ended is
        // not there to update.
        Err(EngineError::WrongState(_)) => return Err(Refused::Ended(ENDED)),
        other => other?.wait_async().await.map_err(ApiError::from)?,
    };
    Ok(json(
        StatusCode::OK,
        &VerificationOut::new(&status, service, base, state.engine.now()),
    ))
}

async fn check(state: &Arc<AppState>, input: Input, service: &str, base: &Base) -> Outcome {
    let actor = input.actor().clone();
    let id = service_id(service)?;
    acting(&actor, || state.engine.service(id))?;
    let params = Params::parse(&input.form().await?, &["Code", "To", "VerificationSid"])?;
    let code = Code::new(params.required("Code")?);
    let target = match (params.get("To"), params.get("VerificationSid")) {
        (Some(to), None) => DestinationTarget::To(destination(to)?),
        (None, Some(sid)) => {
            DestinationTarget::Challenge(parse_verification_sid(sid).ok_or_else(|| {
                Refused::invalid(
                    "VerificationSid",
                    "is VE followed by 32 hexadecimal digits".into(),
                )
            })?)
        }
        (Some(_), Some(_)) => {
            return Err(Refused::invalid(
                "VerificationSid",
                "give To or VerificationSid, not both".into(),
            ));
        }
        (None, None) => {
            return Err(Refused::invalid("To", "give To or VerificationSid".into()));
        }
    };
    let checked = acting(&actor, || state.engine.check_destination(target, &code))?
        .wait_async()
        .await
        .map_err(ApiError::from)?;
    let label = match &checked.outcome {
        Verification::Approved(_) => "approved",
        Verification::WrongCode { .. } => "wrong_code",
        Verification::Exhausted => "exhausted",
        Verification::Expired => "expired",
        Verification::Superseded => "superseded",
        Verification::AlreadyUsed => "already_used",
        Verification::Cancelled => "cancelled",
        Verification::Locked => "locked",
    };
    metrics::counter!("otpd_verify_results_total", "outcome" => label).increment(1);
    match checked.outcome {
        Verification::Approved(_) | Verification::WrongCode { .. } => Ok(json(
            StatusCode::OK,
            &CheckOut::new(&checked.status, service, base, state.engine.now()),
        )),
        Verification::Exhausted => Ok(errors::max_checks()),
        // Twilio keeps only pending Verifications: a check of one that has
        // ended (used, expired, replaced, cancelled) finds nothing.
        _ => Err(Refused::Ended(ENDED)),
    }
}

/// Why a Verification that has ended is not found.
const ENDED: &str = "this verification is no longer pending: approved, expired, replaced by a \
                     newer one, cancelled or out of attempts (start a new one)";

/// `VA` + 32 hex digits; anything else names no Service (404).
fn service_id(sid: &str) -> Result<ServiceId, Refused> {
    sid.strip_prefix("VA")
        .and_then(|hex| ServiceId::parse("service_sid", hex).ok())
        .ok_or(Refused::Api(ApiError::Engine(EngineError::ServiceNotFound)))
}

/// A Verification SID in the path: `VE` + 32 hex digits; anything else
/// names no Verification (404).
fn verification_id(sid: &str) -> Result<ChallengeId, Refused> {
    parse_verification_sid(sid).ok_or(Refused::Api(ApiError::Engine(
        EngineError::ChallengeNotFound,
    )))
}

fn parse_verification_sid(sid: &str) -> Option<ChallengeId> {
    sid.strip_prefix("VE")
        .and_then(|hex| ChallengeId::parse("verification_sid", hex).ok())
}

/// The channels otpd sends by; Twilio's others are refused by name.
fn channel(name: &str) -> Result<Channel, Refused> {
    match name {
        "sms" => Ok(Channel::Sms),
        "email" => Ok(Channel::Email),
        "call" | "whatsapp" | "sna" | "auto" | "rcs" => Err(Refused::invalid(
            "Channel",
            format!("otpd sends codes by sms or email; {name} is not offered"),
        )),
        _ => Err(Refused::invalid("Channel", "must be sms or email".into())),
    }
}

/// A `To` as a check names it: an email if it has an `@`, else a phone.
fn destination(to: &str) -> Result<Destination, Refused> {
    if to.contains('@') {
        Email::parse(to)
            .map(Destination::Email)
            .map_err(|e| Refused::invalid("To", why(&e)))
    } else {
        Phone::parse(to)
            .map(Destination::Phone)
            .map_err(|e| Refused::invalid("To", why(&e)))
    }
}

/// What the engine said was wrong with an input.
fn why(e: &EngineError) -> String {
    match e {
        EngineError::Invalid { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// The scheme and host the request came to, and the caller's account SID.
fn base(state: &AppState, input: &Input) -> Base {
    let scheme = if state.config.server.tls.cert.is_empty() {
        "http"
    } else {
        "https"
    };
    let host = input
        .header("host")
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    Base {
        origin: format!("{scheme}://{host}"),
        account_sid: input
            .client_id()
            .map(super::credentials::account_sid)
            .unwrap_or_default(),
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
