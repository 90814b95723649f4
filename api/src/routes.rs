//! Routing, request checks (auth, content type, size, JSON) and the handlers.

use std::convert::Infallible;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::{
    AccountId, ActivationTarget, ChallengeId, Contact, ContactChangeStart, Durable, Engine,
    EngineError, ImportAccount, ImportState, Issued, LoginId, LoginOutcome, PinChange,
    PreRegistration, Purpose, PushToken, Scope, Verification,
};
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{ApiError, locked, rate_limited};
use crate::limits::Cost;
use crate::pin_workers::Lost;
use crate::startup::AppState;
use crate::wire;

type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// What a request asks for, once its method and path are understood.
#[derive(Debug)]
enum Route {
    Livez,
    Readyz,
    Metrics,
    Register,
    PreRegister,
    ReadAccount(String),
    CancelAccount(String),
    ChangePin(String),
    BeginContactChange(String),
    ConfirmContactChange,
    PushDevice(String),
    Login,
    Verify,
    StepUp,
    StepUpVerify,
    ChallengeStatus(String),
    Resend(String),
    ActivationRequest,
    ActivationComplete,
    Lock(String),
    Unlock(String),
    ResetPin(String),
    Import,
    Backup,
    /// A handler that panics, to test that a panic still gets an answer.
    #[cfg(test)]
    Panic,
}

/// Matches method and path; the label is the route's template, for logs and metrics.
fn route(method: &Method, path: &str) -> Result<(Route, &'static str), (ApiError, &'static str)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let id = |s: &str| s.to_owned();
    let (label, allowed): (&'static str, &[Method]) = match segments.as_slice() {
        ["livez"] => ("/livez", &[Method::GET]),
        ["readyz"] => ("/readyz", &[Method::GET]),
        ["metrics"] => ("/metrics", &[Method::GET]),
        ["v1", "accounts"] => ("/v1/accounts", &[Method::POST]),
        ["v1", "accounts", "pre-register"] => ("/v1/accounts/pre-register", &[Method::POST]),
        ["v1", "accounts", _] => ("/v1/accounts/{id}", &[Method::GET, Method::DELETE]),
        ["v1", "accounts", _, "pin"] => ("/v1/accounts/{id}/pin", &[Method::POST]),
        ["v1", "accounts", _, "contact"] => ("/v1/accounts/{id}/contact", &[Method::POST]),
        ["v1", "accounts", _, "push-device"] => ("/v1/accounts/{id}/push-device", &[Method::PUT]),
        ["v1", "contact-changes", "confirm"] => ("/v1/contact-changes/confirm", &[Method::POST]),
        ["v1", "login"] => ("/v1/login", &[Method::POST]),
        ["v1", "verify"] => ("/v1/verify", &[Method::POST]),
        ["v1", "step-up"] => ("/v1/step-up", &[Method::POST]),
        ["v1", "step-up", "verify"] => ("/v1/step-up/verify", &[Method::POST]),
        ["v1", "challenges", _] => ("/v1/challenges/{id}", &[Method::GET]),
        ["v1", "challenges", _, "resend"] => ("/v1/challenges/{id}/resend", &[Method::POST]),
        ["v1", "activation", "request"] => ("/v1/activation/request", &[Method::POST]),
        ["v1", "activation", "complete"] => ("/v1/activation/complete", &[Method::POST]),
        ["v1", "admin", "accounts", _, "lock"] => ("/v1/admin/accounts/{id}/lock", &[Method::POST]),
        ["v1", "admin", "accounts", _, "unlock"] => {
            ("/v1/admin/accounts/{id}/unlock", &[Method::POST])
        }
        ["v1", "admin", "accounts", _, "pin-reset"] => {
            ("/v1/admin/accounts/{id}/pin-reset", &[Method::POST])
        }
        ["v1", "admin", "import"] => ("/v1/admin/import", &[Method::POST]),
        ["v1", "admin", "backup"] => ("/v1/admin/backup", &[Method::POST]),
        #[cfg(test)]
        ["test", "panic"] => ("/test/panic", &[Method::GET]),
        _ => {
            let e = ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
            return Err((e, "unknown"));
        }
    };
    if !allowed.contains(method) {
        let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        let e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{label} accepts {}", names.join(", ")),
        );
        return Err((e, label));
    }
    let route = match (segments.as_slice(), method) {
        (["livez"], _) => Route::Livez,
        (["readyz"], _) => Route::Readyz,
        (["metrics"], _) => Route::Metrics,
        (["v1", "accounts"], _) => Route::Register,
        (["v1", "accounts", "pre-register"], _) => Route::PreRegister,
        (["v1", "accounts", a], &Method::GET) => Route::ReadAccount(id(a)),
        (["v1", "accounts", a], _) => Route::CancelAccount(id(a)),
        (["v1", "accounts", a, "pin"], _) => Route::ChangePin(id(a)),
        (["v1", "accounts", a, "contact"], _) => Route::BeginContactChange(id(a)),
        (["v1", "accounts", a, "push-device"], _) => Route::PushDevice(id(a)),
        (["v1", "contact-changes", "confirm"], _) => Route::ConfirmContactChange,
        (["v1", "login"], _) => Route::Login,
        (["v1", "verify"], _) => Route::Verify,
        (["v1", "step-up"], _) => Route::StepUp,
        (["v1", "step-up", "verify"], _) => Route::StepUpVerify,
        (["v1", "challenges", c], _) => Route::ChallengeStatus(id(c)),
        (["v1", "challenges", c, "resend"], _) => Route::Resend(id(c)),
        (["v1", "activation", "request"], _) => Route::ActivationRequest,
        (["v1", "activation", "complete"], _) => Route::ActivationComplete,
        (["v1", "admin", "accounts", a, "lock"], _) => Route::Lock(id(a)),
        (["v1", "admin", "accounts", a, "unlock"], _) => Route::Unlock(id(a)),
        (["v1", "admin", "accounts", a, "pin-reset"], _) => Route::ResetPin(id(a)),
        (["v1", "admin", "backup"], _) => Route::Backup,
        #[cfg(test)]
        (["test", "panic"], _) => Route::Panic,
        _ => Route::Import,
    };
    Ok((route, label))
}

/// Serves one request: never panics, never lets an error escape as anything but JSON.
pub async fn handle(
    state: Arc<AppState>,
    peer: IpAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let request_id = request_id(&request);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (label, result) = match route(&method, &path) {
        Err((error, label)) => (label, Err(error)),
        Ok((route, label)) => {
            let timeout = Duration::from_millis(state.config.server.request_timeout_ms);
            // A panic in a handler is a bug; it still gets an answer (an
            // opaque 500 with the request id) and an ERROR line, not a
            // dropped connection.
            let guarded = AssertUnwindSafe(dispatch(&state, peer, route, request)).catch_unwind();
            let result = match tokio::time::timeout(timeout, guarded).await {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(ApiError::internal(format!(
                    "the handler panicked: {}",
                    panic_message(panic.as_ref())
                ))),
                Err(_) => Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long; it may or may not have taken effect",
                )),
            };
            (label, result)
        }
    };
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            if error.status.is_server_error() {
                tracing::error!(
                    request_id = %request_id,
                    route = label,
                    status = error.status.as_u16(),
                    cause = error.cause.as_deref().unwrap_or("-"),
                    "request failed"
                );
            }
            error.into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!("otpd_http_requests_total", "route" => label, "method" => method.to_string(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("otpd_http_request_duration_seconds", "route" => label)
        .record(elapsed.as_secs_f64());
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = label,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(response)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn request_id(request: &Request<Incoming>) -> String {
    let given = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    match given {
        Some(id) => id.to_owned(),
        None => {
            let mut bytes = [0u8; 8];
            let _ = getrandom::fill(&mut bytes);
            hex::encode(bytes)
        }
    }
}

impl Route {
    /// The scope a client needs, and what the request spends of the limits.
    fn policy(&self) -> (Option<Scope>, Cost) {
        use Cost::{Attempt, Free, Issue, IssueAndAttempt};
        match self {
            Route::Livez | Route::Readyz | Route::Metrics => (None, Free),
            #[cfg(test)]
            Route::Panic => (None, Free),
            Route::Register
            | Route::PreRegister
            | Route::ReadAccount(_)
            | Route::CancelAccount(_)
            | Route::PushDevice(_) => (Some(Scope::Accounts), Free),
            Route::ChangePin(_) | Route::ConfirmContactChange => (Some(Scope::Accounts), Attempt),
            Route::BeginContactChange(_) => (Some(Scope::Accounts), IssueAndAttempt),
            Route::Login => (Some(Scope::Auth), IssueAndAttempt),
            Route::Verify | Route::StepUpVerify | Route::ActivationComplete => {
                (Some(Scope::Auth), Attempt)
            }
            Route::StepUp | Route::Resend(_) | Route::ActivationRequest => {
                (Some(Scope::Auth), Issue)
            }
            Route::ChallengeStatus(_) => (Some(Scope::Auth), Free),
            Route::Lock(_)
            | Route::Unlock(_)
            | Route::ResetPin(_)
            | Route::Import
            | Route::Backup => (Some(Scope::Admin), Free),
        }
    }
}

async fn dispatch(
    state: &Arc<AppState>,
    peer: IpAddr,
    route: Route,
    request: Request<Incoming>,
) -> Reply {
    let (scope, cost) = route.policy();
    if let Some(scope) = scope {
        let client = authorize(state, &request, scope)?;
        if cost != Cost::Free {
            let source = state.gate.source(peer, request.headers());
            state
                .gate
                .check(cost, source, &client)
                .map_err(rate_limited)?;
        }
    }
    match route {
        Route::Livez => ok(json!({ "status": "ok" })),
        Route::Readyz => readyz(state),
        Route::Metrics => metrics(state),
        Route::Register => register(state, body(state, request).await?).await,
        Route::PreRegister => pre_register(state, body(state, request).await?).await,
        Route::ReadAccount(id) => {
            let view = state.engine.account(account_id(&id)?)?;
            ok(wire::account(&view))
        }
        Route::CancelAccount(id) => {
            let id = account_id(&id)?;
            state.engine.cancel(id)?.wait_async().await?;
            ok(json!({ "account_id": id.to_string(), "state": "cancelled" }))
        }
        Route::ChangePin(id) => {
            change_pin(state, account_id(&id)?, body(state, request).await?).await
        }
        Route::BeginContactChange(id) => {
            begin_contact_change(state, account_id(&id)?, body(state, request).await?).await
        }
        Route::ConfirmContactChange => {
            let input: wire::VerifyIn = body(state, request).await?;
            let challenge = challenge_id(&input.challenge_id)?;
            let outcome = state
                .engine
                .confirm_contact_change(challenge, &input.code)?
                .wait_async()
                .await?;
            verification(outcome)
        }
        Route::PushDevice(id) => {
            let id = account_id(&id)?;
            let input: wire::PushDeviceIn = body(state, request).await?;
            let token = PushToken::parse(&input.push_token)?;
            state
                .engine
                .register_push_device(id, token)?
                .wait_async()
                .await?;
            ok(json!({ "account_id": id.to_string(), "has_push_device": true }))
        }
        Route::Login => login(state, body(state, request).await?).await,
        Route::Verify | Route::StepUpVerify => {
            let purpose = if matches!(route, Route::Verify) {
                Purpose::Login
            } else {
                Purpose::StepUp
            };
            let input: wire::VerifyIn = body(state, request).await?;
            let challenge = challenge_id(&input.challenge_id)?;
            let outcome = state
                .engine
                .verify(challenge, purpose, &input.code)?
                .wait_async()
                .await?;
            verification(outcome)
        }
        Route::StepUp => {
            let input: wire::StepUpIn = body(state, request).await?;
            let account = AccountId::parse("account_id", &input.account_id)?;
            let issued = state
                .engine
                .issue_step_up(
                    account,
                    wire::channel(input.channel.as_deref())?,
                    lifetime(input.lifetime_seconds),
                    wire::locale(input.locale.as_deref())?,
                )?
                .wait_async()
                .await?;
            sent(state, &issued)
        }
        Route::ChallengeStatus(id) => {
            let status = state.engine.challenge_status(challenge_id(&id)?)?;
            ok(wire::status(&status))
        }
        Route::Resend(id) => {
            let issued = state
                .engine
                .resend(challenge_id(&id)?, None)?
                .wait_async()
                .await?;
            sent(state, &issued)
        }
        Route::ActivationRequest => {
            let input: wire::ActivationRequestIn = body(state, request).await?;
            let identity = input.identity.parse()?;
            let birth = wire::birth_date(Some(&input.birth_date), state.engine.now())?
                .ok_or_else(|| ApiError::invalid("birth_date", "is required"))?;
            let channel = engine::Channel::parse(&input.channel)?;
            let locale = wire::locale(input.locale.as_deref())?;
            let issued = state
                .engine
                .request_activation(&identity, birth, channel, locale)?
                .wait_async()
                .await?;
            sent(state, &issued)
        }
        Route::ActivationComplete => {
            let input: wire::ActivationCompleteIn = body(state, request).await?;
            let birth_date = wire::birth_date(input.birth_date.as_deref(), state.engine.now())?;
            let target = match (input.challenge_id.as_deref(), &input.identity) {
                (Some(id), None) => ActivationTarget::Challenge {
                    id: challenge_id(id)?,
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
            let outcome =
                blocking_durable(state, move |engine| engine.activate(&target, &code, &pin))
                    .await?;
            verification(outcome)
        }
        Route::Lock(id) => {
            let id = account_id(&id)?;
            let input: wire::LockIn = body(state, request).await?;
            let view = state.engine.lock(id, &input.reason)?.wait_async().await?;
            ok(wire::account(&view))
        }
        Route::Unlock(id) => {
            let id = account_id(&id)?;
            let view = state.engine.unlock(id)?.wait_async().await?;
            ok(wire::account(&view))
        }
        Route::ResetPin(id) => {
            let id = account_id(&id)?;
            let input: wire::ResetPinIn = body(state, request).await?;
            let pin = input.pin;
            let view = blocking_durable(state, move |engine| engine.reset_pin(id, &pin)).await?;
            ok(wire::account(&view))
        }
        Route::Import => import(state, body(state, request).await?).await,
        Route::Backup => backup(state).await,
        #[cfg(test)]
        Route::Panic => panic!("a deliberate panic in a handler"),
    }
}

/// Writes a consistent copy of the store under `<data_dir>/backups/`, for
/// `otpd backup` to move where the operator wants it.
async fn backup(state: &Arc<AppState>) -> Reply {
    if state.backing_up.swap(true, Ordering::SeqCst) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "backup_running",
            "a backup is already being written; wait for it to finish",
        ));
    }
    let now = state.engine.now();
    let name = format!(
        "{}-{:03}",
        crate::wire_time(now).replace(':', "-"),
        now.0 % 1_000
    );
    let backups = state.config.data_dir.join("backups");
    let mut dir = backups.join(&name);
    for n in 2.. {
        if !dir.exists() {
            break;
        }
        dir = backups.join(format!("{name}-{n}"));
    }
    let engine = Arc::clone(&state.engine);
    let written = tokio::task::spawn_blocking(move || engine.backup_to(&dir)).await;
    state.backing_up.store(false, Ordering::SeqCst);
    let summary = written
        .map_err(|e| ApiError::internal(format!("backup task failed: {e}")))?
        .map_err(|e| {
            // The cause (paths, disk errors) goes to the log with the request id, not to the caller.
            let short = matches!(e, EngineError::DiskFull(_));
            let mut error = ApiError::internal(format!("backup failed: {e}"));
            error.code = "backup_failed";
            if short {
                error.status = StatusCode::SERVICE_UNAVAILABLE;
                error.message = "the backup was refused (disk full: the store's file system is \
                                 below its free-space reserve); free space and retry"
                    .into();
                error.retry_after = Some(60);
            } else {
                error.message = "the backup failed; the cause is in the server's log".into();
            }
            error
        })?;
    tracing::info!(file = %summary.file.display(), records = summary.records, "backup written");
    ok(json!({
        "file": summary.file.display().to_string(),
        "records": summary.records,
        "round": summary.round,
        "bytes": summary.bytes,
        "sha256": summary.sha256,
    }))
}

fn ok(value: Value) -> Reply {
    Ok(json_response(StatusCode::OK, &value))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn readyz(state: &AppState) -> Reply {
    if state.draining.load(Ordering::SeqCst) {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the server is shutting down",
        );
        e.retry_after = Some(1);
        return Err(e);
    }
    if let Err(e) = state.engine.writable() {
        let mut e = ApiError::from(e);
        e.message = format!("not ready: {}", e.cause.take().unwrap_or_default());
        return Err(e);
    }
    ok(json!({ "status": "ready" }))
}

fn metrics(state: &AppState) -> Reply {
    let text = state.metrics.render();
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}

/// Checks the client's key and scope; returns the client's name.
fn authorize(
    state: &AppState,
    request: &Request<Incoming>,
    scope: Scope,
) -> Result<String, ApiError> {
    let unauthenticated = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid client API key is required: Authorization: Bearer <key>",
        )
    };
    let key = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthenticated)?;
    let client = state
        .engine
        .authenticate_client(key.trim())
        .ok_or_else(unauthenticated)?;
    if !client.scopes.contains(scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "client {:?} lacks the {:?} scope",
                client.name,
                scope.as_str()
            ),
        ));
    }
    Ok(client.name)
}

/// Reads a JSON body: right content type, within the size limit, well formed.
async fn body<T: DeserializeOwned>(
    state: &AppState,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let limit = if request.uri().path().ends_with("/admin/import") {
        state.config.server.import_body_limit_bytes
    } else {
        state.config.server.body_limit_bytes
    } as usize;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body may be at most {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let patience = Duration::from_millis(state.config.server.body_read_timeout_ms);
    let collected =
        tokio::time::timeout(patience, Limited::new(request.into_body(), limit).collect())
            .await
            .map_err(|_| {
                // A client that announced more than it sent: its fault, not the server's.
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive within {} ms (is Content-Length right?); \
                     nothing was done",
                        patience.as_millis()
                    ),
                )
            })?;
    let bytes = collected
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::invalid("body", "the body could not be read")
            }
        })?
        .to_bytes();
    parse_json(&bytes)
}

/// Parses a JSON body; a 400 names the field at fault by its full path
/// (`identity.number`), or `body` when the JSON itself is broken.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| json_error(&e))
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    let text = inner.to_string();
    let path = e.path().to_string();
    let named = text.split('`').nth(1);
    let field = if inner.is_syntax() || inner.is_eof() {
        "body".to_owned()
    } else if text.starts_with("missing field") {
        // The path is the object missing it.
        match (path.as_str(), named) {
            (".", Some(name)) => name.to_owned(),
            (object, Some(name)) => format!("{object}.{name}"),
            (object, None) => object.to_owned(),
        }
    } else if path == "." || path.starts_with('[') {
        // The body as a whole is the wrong shape (e.g. an array).
        "body".to_owned()
    } else {
        path
    };
    let mut error = ApiError::invalid(field, format!("malformed JSON: {text}"));
    error.code = "malformed_json";
    error
}

fn account_id(text: &str) -> Result<AccountId, ApiError> {
    Ok(AccountId::parse("account_id", text)?)
}

fn challenge_id(text: &str) -> Result<ChallengeId, ApiError> {
    Ok(ChallengeId::parse("challenge_id", text)?)
}

fn lifetime(seconds: Option<u64>) -> Option<Duration> {
    seconds.map(Duration::from_secs)
}

/// Runs Argon2-heavy engine work on a PIN worker (`server.argon2_workers`
/// threads). The worker is freed as the work ends: the caller waits for
/// durability afterwards, so a worker never sits idle through a flush.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&Engine) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = Arc::clone(&state.engine);
    match state.pin_workers.run(move || work(&engine)).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(Lost::Panicked) => Err(ApiError::internal("a PIN worker's job panicked")),
        Err(Lost::Stopped) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "the server is shutting down",
        )),
    }
}

/// [`blocking`] for work that changes state, then the wait until it is durable.
async fn blocking_durable<T: Send + Unpin + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&Engine) -> Result<Durable<T>, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(blocking(state, work).await?.wait_async().await?)
}

/// Wakes the sender for the new code (already in the outbox) and answers
/// with the challenge, never the code.
fn sent(state: &AppState, issued: &Issued) -> Reply {
    state.wakeup.ring();
    metrics::counter!(
        "otpd_codes_issued_total",
        "purpose" => issued.purpose.as_str(),
        "channel" => issued.channel.as_str()
    )
    .increment(1);
    Ok(json_response(StatusCode::CREATED, &wire::issued(issued)))
}

/// Answers a code check: 200 approved, or a typed failure.
fn verification(outcome: Verification) -> Reply {
    let (label, result) = match outcome {
        Verification::Approved(approval) => {
            let body = json!({
                "result": "approved",
                "account_id": approval.account_id.to_string(),
                "identity": wire::identity(&approval.identity),
                "purpose": approval.purpose.as_str(),
                "state": approval.state.as_str(),
            });
            ("approved", Ok(json_response(StatusCode::OK, &body)))
        }
        Verification::WrongCode { attempts_remaining } => (
            "wrong_code",
            Err(
                ApiError::new(StatusCode::UNAUTHORIZED, "wrong_code", "the code is wrong")
                    .with("attempts_remaining", json!(attempts_remaining)),
            ),
        ),
        Verification::Expired => (
            "expired",
            Err(gone("expired", "the code has expired; ask for a new one")),
        ),
        Verification::Superseded => (
            "superseded",
            Err(gone(
                "superseded",
                "a newer code was sent; only the last one is valid",
            )),
        ),
        Verification::Exhausted => (
            "exhausted",
            Err(gone(
                "exhausted",
                "too many wrong attempts on this code; ask for a new one",
            )),
        ),
        Verification::AlreadyUsed => (
            "already_used",
            Err(gone("already_used", "the code was already used")),
        ),
        Verification::Locked => ("locked", Err(locked())),
    };
    metrics::counter!("otpd_verify_results_total", "outcome" => label).increment(1);
    result
}

fn gone(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::GONE, code, message)
}

async fn register(state: &Arc<AppState>, input: wire::RegisterIn) -> Reply {
    let new = engine::NewAccount {
        identity: input.identity.parse()?,
        phone: wire::phone(input.phone.as_deref())?,
        email: wire::email(input.email.as_deref())?,
        pin: input.pin,
        birth_date: wire::birth_date(input.birth_date.as_deref(), state.engine.now())?,
        postal_address: wire::address(input.postal_address.as_deref())?,
    };
    let view = blocking_durable(state, move |engine| engine.register(new)).await?;
    Ok(json_response(StatusCode::CREATED, &wire::account(&view)))
}

async fn pre_register(state: &Arc<AppState>, input: wire::PreRegisterIn) -> Reply {
    let pre = PreRegistration {
        identity: input.identity.parse()?,
        birth_date: wire::birth_date(Some(&input.birth_date), state.engine.now())?
            .ok_or_else(|| ApiError::invalid("birth_date", "is required"))?,
        phone: wire::phone(input.phone.as_deref())?,
        email: wire::email(input.email.as_deref())?,
        postal_address: wire::address(input.postal_address.as_deref())?,
    };
    let view = state.engine.pre_register(pre)?.wait_async().await?;
    Ok(json_response(StatusCode::CREATED, &wire::account(&view)))
}

async fn login(state: &Arc<AppState>, input: wire::LoginIn) -> Reply {
    let login = match (input.phone.as_deref(), input.email.as_deref()) {
        (Some(phone), None) => LoginId::Phone(engine::Phone::parse(phone)?),
        (None, Some(email)) => LoginId::Email(engine::Email::parse(email)?),
        _ => {
            return Err(ApiError::invalid(
                "phone",
                "send exactly one of phone or email",
            ));
        }
    };
    let channel = wire::channel(input.channel.as_deref())?;
    let lifetime = lifetime(input.lifetime_seconds);
    let locale = wire::locale(input.locale.as_deref())?;
    let pin = input.pin;
    let outcome = blocking_durable(state, move |engine| {
        engine.login(&login, &pin, channel, lifetime, locale)
    })
    .await?;
    match outcome {
        LoginOutcome::CodeSent(issued) => sent(state, &issued),
        LoginOutcome::InvalidCredentials => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the phone number, email or PIN is not right",
        )),
        LoginOutcome::Locked => Err(locked()),
    }
}

async fn change_pin(state: &Arc<AppState>, account: AccountId, input: wire::ChangePinIn) -> Reply {
    let challenge = challenge_id(&input.challenge_id)?;
    let (current, code, new) = (input.current_pin, input.code, input.new_pin);
    let outcome = blocking_durable(state, move |engine| {
        engine.change_pin(account, &current, challenge, &code, &new)
    })
    .await?;
    match outcome {
        PinChange::Changed => ok(json!({ "account_id": account.to_string(), "pin_changed": true })),
        PinChange::WrongPin => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the current PIN is not right",
        )),
        PinChange::Locked => Err(locked()),
        PinChange::CodeRejected(v) => verification(v),
    }
}

async fn begin_contact_change(
    state: &Arc<AppState>,
    account: AccountId,
    input: wire::ContactChangeIn,
) -> Reply {
    let contact = match (input.phone.as_deref(), input.email.as_deref()) {
        (Some(phone), None) => Contact::Phone(engine::Phone::parse(phone)?),
        (None, Some(email)) => Contact::Email(engine::Email::parse(email)?),
        _ => {
            return Err(ApiError::invalid(
                "phone",
                "send exactly one of phone or email",
            ));
        }
    };
    let proof = challenge_id(&input.proof_challenge_id)?;
    let started = state
        .engine
        .begin_contact_change(
            account,
            proof,
            &input.proof_code,
            contact,
            wire::locale(input.locale.as_deref())?,
        )?
        .wait_async()
        .await?;
    match started {
        ContactChangeStart::CodeSent(issued) => sent(state, &issued),
        ContactChangeStart::ProofRejected(v) => verification(v),
    }
}

async fn import(state: &Arc<AppState>, input: wire::ImportIn) -> Reply {
    const MAX: usize = 10_000;
    if input.accounts.is_empty() || input.accounts.len() > MAX {
        return Err(ApiError::invalid(
            "accounts",
            format!("send 1 to {MAX} accounts per request"),
        ));
    }
    let today = state.engine.now();
    let mut parsed = Vec::with_capacity(input.accounts.len());
    for a in input.accounts {
        parsed.push(parse_import(a, today));
    }
    let pending = blocking(state, move |engine| {
        Ok(parsed
            .into_iter()
            .map(|p| p.and_then(|a| engine.import(a).map_err(ApiError::from)))
            .collect::<Vec<Result<Durable<AccountId>, ApiError>>>())
    })
    .await?;
    // Waiting after all writes lets one flush cover the whole batch.
    let mut results = Vec::with_capacity(pending.len());
    for p in pending {
        results.push(match p {
            Ok(durable) => durable.wait_async().await.map_err(ApiError::from),
            Err(e) => Err(e),
        });
    }
    let imported = results.iter().filter(|r| r.is_ok()).count();
    let items: Vec<Value> = results
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(id) => json!({ "index": index, "account_id": id.to_string() }),
            Err(e) => json!({
                "index": index,
                "error": { "code": e.code, "message": &e.message, "field": &e.field },
            }),
        })
        .collect();
    ok(json!({ "imported": imported, "failed": items.len() - imported, "results": items }))
}

fn parse_import(
    a: wire::ImportAccountIn,
    today: engine::Timestamp,
) -> Result<ImportAccount, ApiError> {
    let state = match (a.state.as_deref().unwrap_or("active"), a.lock_reason) {
        ("active", None) => ImportState::Active,
        ("pending_activation", None) => ImportState::PendingActivation,
        ("locked", Some(reason)) => ImportState::Locked(reason),
        ("locked", None) => {
            return Err(ApiError::invalid(
                "lock_reason",
                "is required for a locked account",
            ));
        }
        ("active" | "pending_activation", Some(_)) => {
            return Err(ApiError::invalid(
                "lock_reason",
                "is only for locked accounts",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "state",
                "must be active, pending_activation or locked",
            ));
        }
    };
    Ok(ImportAccount {
        identity: a.identity.parse()?,
        phone: wire::phone(a.phone.as_deref())?,
        email: wire::email(a.email.as_deref())?,
        birth_date: wire::birth_date(a.birth_date.as_deref(), today)?,
        postal_address: wire::address(a.postal_address.as_deref())?,
        pin_hash: a.pin_hash,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_map_to_routes_or_clear_errors() {
        assert!(matches!(
            route(&Method::GET, "/livez"),
            Ok((Route::Livez, "/livez"))
        ));
        assert!(matches!(
            route(&Method::GET, "/v1/accounts/abc"),
            Ok((Route::ReadAccount(_), "/v1/accounts/{id}"))
        ));
        assert!(matches!(
            route(&Method::DELETE, "/v1/accounts/abc/"),
            Ok((Route::CancelAccount(_), _))
        ));
        let (e, _) = route(&Method::GET, "/v1/login").unwrap_err();
        assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
        let (e, label) = route(&Method::GET, "/v2/nothing").unwrap_err();
        assert_eq!((e.status, label), (StatusCode::NOT_FOUND, "unknown"));
    }

    /// Log lines written on this thread while the guard lives.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_handler_answers_500_with_the_request_id_and_logs_an_error() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            ..crate::config::Config::default()
        };
        config.argon2.memory_kib = 64;
        config.argon2.iterations = 1;
        let deps = crate::Dependencies {
            clock: Arc::new(engine::ManualClock::new(engine::Timestamp(
                1_795_392_000_000,
            ))),
            rng: engine::seeded_rng([3; 32]),
            code_key: engine::CodeKey::new([4; 32]),
            delivery: None,
        };
        let app = crate::App::build(config, deps).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let request = Request::get(format!("http://{address}/test/panic"))
            .header("x-request-id", "panic-test-1")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-request-id"], "panic-test-1");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal", "{body}");
        assert!(
            !body.to_string().contains("deliberate"),
            "5xx bodies stay opaque: {body}"
        );
        // The server still serves.
        let again = client
            .request(
                Request::get(format!("http://{address}/livez"))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let line = logs
            .lines()
            .find(|l| l.contains("ERROR") && l.contains("panic-test-1"))
            .unwrap_or_else(|| panic!("no ERROR line with the request id in:\n{logs}"));
        assert!(line.contains("deliberate panic"), "{line}");
    }

    #[test]
    fn json_errors_name_the_unknown_or_missing_field_by_its_path() {
        let field = |json: &str| {
            parse_json::<wire::RegisterIn>(json.as_bytes())
                .unwrap_err()
                .field
                .clone()
                .unwrap_or_default()
        };
        let identity = r#""identity":{"kind":"civil_id","number":"12345678"}"#;
        assert_eq!(
            field(&format!(r#"{{{identity},"pin":"1","extra":1}}"#)),
            "extra"
        );
        assert_eq!(field(&format!(r#"{{{identity}}}"#)), "pin");
        assert_eq!(
            field(r#"{"identity":{"kind":"civil_id"},"pin":"4821"}"#),
            "identity.number"
        );
        assert_eq!(
            field(r#"{"identity":{"kind":"civil_id","number":"1","colour":"red"},"pin":"4821"}"#),
            "identity.colour"
        );
        assert_eq!(
            field(r#"{"identity":{"kind":"civil_id","number":12},"pin":"4821"}"#),
            "identity.number"
        );
        assert_eq!(field("["), "body");
        assert_eq!(field("[1]"), "body");
        assert_eq!(field(r#"{"identity":"#), "body");
    }
}
