//! `Idempotency-Key`: a client's retry answered from its first request, never run twice.
//!
//! A keyed request (the table's `Retry::Keyed` rows) is fingerprinted by
//! its method, path and body (HMAC-SHA-256 under a subkey of the code key:
//! a body may hold a PIN). If the client's key is in flight,
//! the retry waits for the first request to end and looks again; if the
//! engine remembers the key, the retry gets the stored answer (or 422 for
//! another request, 409 for an answer not kept); otherwise the request runs
//! in a task of its own (a dropped connection does not cancel it), its
//! engine calls carry the key's claim so the first change writes it in the
//! same batch, and its answer is stored before it is sent. 5xx, 408 and 429
//! answers are not stored: a retry runs again unless the request changed
//! something first, in which case it is answered 409 `idempotent_answer_lost`.

use std::sync::Arc;

use bytes::Bytes;
use engine::{Claim, Engine, Remembered};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Method, Response, StatusCode};

use super::handlers::{self, Reply};
use super::in_flight::Entry;
use super::request::Input;
use super::table::{Endpoint, Retry};
use crate::error::ApiError;
use crate::state::AppState;

/// The request header naming a key.
pub const HEADER: &str = "idempotency-key";
/// The response header marking a stored answer given again.
pub const REPLAYED: &str = "idempotent-replayed";

/// How a request's key is written in a 400.
const FIELD: &str = "Idempotency-Key";

/// Stored answers: a tag, then the answer or why it was not kept.
const TAG_ANSWER: u8 = 1;
const TAG_NOT_KEPT: u8 = 2;
const TAG_WITHHELD: u8 = 3;

/// The key `headers` carry: `None` without the header, 400 for a malformed one.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::invalid(
            FIELD,
            "send one Idempotency-Key, not several",
        ));
    }
    match value.to_str() {
        Ok(text) if engine::is_valid_key(text) => Ok(Some(text.to_owned())),
        _ => Err(ApiError::invalid(
            FIELD,
            format!(
                "must be 1 to {} printable ASCII characters",
                engine::MAX_KEY_LENGTH
            ),
        )),
    }
}

/// `client`'s claim on `key` for a request: its fingerprint covers the
/// method, the path (with its query) and the body, keyed by the engine.
pub fn claim(
    engine: &Engine,
    client: &str,
    key: &str,
    (method, target): (&Method, &str),
    body: &[u8],
) -> Result<Claim, engine::EngineError> {
    engine.claim(
        client,
        key,
        &[method.as_str().as_bytes(), target.as_bytes(), body],
    )
}

/// Serves a request that sent `key`: replayed, refused, or run once.
pub async fn run(
    state: &Arc<AppState>,
    endpoint: &'static Endpoint,
    (method, target): (&Method, &str),
    client: &str,
    key: &str,
    mut input: Input,
) -> Reply {
    let body = input.buffered().await?;
    let claim = claim(&state.engine, client, key, (method, target), &body)
        .map_err(|e| ApiError::invalid(FIELD, e.to_string()))?;
    let holder = loop {
        match state.in_flight.enter(&state.engine, &claim) {
            Entry::Run(holder) => break holder,
            Entry::Wait(mut done) => {
                count("waited");
                // Err once the sender closes: the first request has ended.
                let _ = done.changed().await;
            }
            Entry::Replay(remembered) => return replay(&remembered),
            Entry::Reused => {
                count("reused");
                return Err(ApiError::IdempotencyKeyReused);
            }
            Entry::Elsewhere => {
                count("elsewhere");
                return Err(ApiError::IdempotencyKeyInFlight);
            }
            Entry::Failed(e) => return Err(e.into()),
        }
    };
    count("run");
    input.claim(claim.clone());
    let task_state = Arc::clone(state);
    let task_claim = claim.clone();
    // The Twilio surface's refusals are stored as it answers them.
    let twilio = crate::twilio::is_twilio(endpoint.path)
        .then(|| target.split('?').next().unwrap_or(target).to_owned());
    let task = tokio::spawn(async move {
        let _holder = holder;
        // Gives the key back if the handler panics, whether or not anyone
        // still waits for this task (a dropped connection does not cancel it).
        let unanswered = Unanswered {
            state: Arc::clone(&task_state),
            claim: Some(task_claim.clone()),
        };
        let reply = handlers::run(&task_state, endpoint.route, input).await;
        unanswered.disarm();
        let secret = endpoint.retry == Retry::KeyedSecret;
        keep(&task_state, &task_claim, secret, reply, twilio.as_deref()).await
    });
    match task.await {
        Ok(reply) => reply,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => Err(ApiError::Internal(format!(
                "the handler panicked: {}",
                super::panic_message(panic.as_ref())
            ))),
            Err(_) => Err(ApiError::Internal(
                "the request's task was cancelled".into(),
            )),
        },
    }
}

/// A running keyed request's key, given back if the request ends without
/// an answer (its handler panicked) unless disarmed first.
struct Unanswered {
    state: Arc<AppState>,
    claim: Option<Claim>,
}

impl Unanswered {
    fn disarm(mut self) {
        self.claim = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            give_back(&self.state, &claim);
        }
    }
}

/// Gives the key of a request whose answer is not kept back to the engine
/// (on a cluster: freed if the request changed nothing, else marked lost).
fn give_back(state: &AppState, claim: &Claim) {
    if let Err(e) = state.engine.give_back(claim) {
        // Left taken: a retry elsewhere waits for its lease, then is told
        // the answer is lost; never run twice.
        tracing::warn!(client = claim.client(), error = %e, "an idempotency key was not given back");
    }
}

/// Whether an answer with `status` is stored for retries: not a server
/// error, a body timeout or a rate limit, after which a retry should run.
fn storable(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

/// Stores the answer for retries (unless it is not to be kept), then gives
/// it back. An answer holding a `secret` is stored as withheld; a refusal
/// on the Twilio surface (`twilio`: the request's path) in Twilio's shape.
async fn keep(
    state: &AppState,
    claim: &Claim,
    secret: bool,
    reply: Reply,
    twilio: Option<&str>,
) -> Reply {
    let (status, content_type, body, reply) = match reply {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let content_type = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let response = Response::from_parts(parts, Full::new(body.clone()));
            (response.status(), content_type, body, Ok(response))
        }
        Err(error) => {
            let answer = error.answer();
            let status = answer.status;
            let body = match twilio {
                Some(path) => crate::twilio::errors::body(&answer, path),
                None => answer.body(),
            };
            (
                status,
                "application/json".to_owned(),
                Bytes::from(body),
                Err(error),
            )
        }
    };
    if !storable(status) {
        give_back(state, claim);
        return reply;
    }
    let limit = state.config.idempotency.max_answer_bytes;
    let stored = if secret {
        encode_withheld(status)
    } else if body.len() as u64 <= limit {
        encode_answer(status, &content_type, &body)
    } else {
        encode_not_kept(status, body.len())
    };
    let outcome = match state.engine.remember(claim, stored) {
        Ok(durable) => durable.wait_async().await,
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        // The answer still goes out. If the request changed anything, its
        // claim is stored with the change: a retry is answered 409, never run.
        tracing::warn!(client = claim.client(), error = %e, "an idempotent answer was not stored");
    }
    reply
}

/// The stored answer given again, or why it cannot be.
fn replay(remembered: &Remembered) -> Reply {
    let Some(stored) = &remembered.answer else {
        count("answer_lost");
        return Err(ApiError::IdempotentAnswerLost);
    };
    match decode(stored) {
        Some(Stored::Answer {
            status,
            content_type,
            body,
        }) => {
            count("replayed");
            let mut response = Response::new(Full::new(Bytes::copy_from_slice(body)));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(content_type) {
                headers.insert(CONTENT_TYPE, value);
            }
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(response)
        }
        Some(Stored::NotKept { status, size }) => {
            count("answer_not_kept");
            Err(ApiError::IdempotentAnswerNotKept {
                status,
                size: Some(size),
            })
        }
        Some(Stored::Withheld { status }) => {
            count("answer_not_kept");
            Err(ApiError::IdempotentAnswerNotKept { status, size: None })
        }
        None => Err(ApiError::Internal(
            "an idempotency record holds an answer this version cannot read".into(),
        )),
    }
}

fn count(outcome: &'static str) {
    metrics::counter!("otpd_idempotent_requests_total", "outcome" => outcome).increment(1);
}

/// A stored answer, decoded.
#[derive(Debug, PartialEq, Eq)]
enum Stored<'a> {
    Answer {
        status: StatusCode,
        content_type: &'a str,
        body: &'a [u8],
    },
    NotKept {
        status: StatusCode,
        size: u64,
    },
    Withheld {
        status: StatusCode,
    },
}

/// `1 ‖ status (u16 BE) ‖ content-type length (u8) ‖ content type ‖ body`.
fn encode_answer(status: StatusCode, content_type: &str, body: &[u8]) -> Vec<u8> {
    let content_type = if content_type.len() <= usize::from(u8::MAX) {
        content_type
    } else {
        "application/octet-stream"
    };
    let mut out = Vec::with_capacity(4 + content_type.len() + body.len());
    out.push(TAG_ANSWER);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out.push(u8::try_from(content_type.len()).unwrap_or(0));
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(body);
    out
}

/// `2 ‖ status (u16 BE) ‖ the answer's size (u64 BE)`.
fn encode_not_kept(status: StatusCode, size: usize) -> Vec<u8> {
    let mut out = vec![TAG_NOT_KEPT];
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out.extend_from_slice(&(size as u64).to_be_bytes());
    out
}

/// `3 ‖ status (u16 BE)`: an answer holding a secret, never stored.
fn encode_withheld(status: StatusCode) -> Vec<u8> {
    let mut out = vec![TAG_WITHHELD];
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Stored<'_>> {
    let (&tag, rest) = bytes.split_first()?;
    let (status, rest) = rest.split_at_checked(2)?;
    let status = StatusCode::from_u16(u16::from_be_bytes([status[0], status[1]])).ok()?;
    match tag {
        TAG_ANSWER => {
            let (&length, rest) = rest.split_first()?;
            let (content_type, body) = rest.split_at_checked(usize::from(length))?;
            Some(Stored::Answer {
                status,
                content_type: std::str::from_utf8(content_type).ok()?,
                body,
            })
        }
        TAG_WITHHELD if rest.is_empty() => Some(Stored::Withheld { status }),
        TAG_NOT_KEPT => {
            let size: [u8; 8] = rest.try_into().ok()?;
            Some(Stored::NotKept {
                status,
                size: u64::from_be_bytes(size),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_answers_decode_to_what_was_stored() {
        let bytes = encode_answer(StatusCode::CREATED, "application/json", b"{\"a\":1}");
        assert_eq!(
            decode(&bytes),
            Some(Stored::Answer {
                status: StatusCode::CREATED,
                content_type: "application/json",
                body: b"{\"a\":1}",
            })
        );
        let bytes = encode_not_kept(StatusCode::OK, 70_000);
        assert_eq!(
            decode(&bytes),
            Some(Stored::NotKept {
                status: StatusCode::OK,
                size: 70_000
            })
        );
        for damaged in [
            &b""[..],
            &[1, 0],
            &[3, 0, 200, 0],
            &[2, 0, 200, 1],
            &[1, 0, 200, 9, b'x'],
        ] {
            assert_eq!(decode(damaged), None, "{damaged:?}");
        }
    }

    #[test]
    fn keys_are_one_printable_ascii_value_of_at_most_255_characters() {
        let headers = |values: &[&[u8]]| {
            let mut map = HeaderMap::new();
            for v in values {
                map.append(HEADER, HeaderValue::from_bytes(v).unwrap());
            }
            map
        };
        assert_eq!(key(&headers(&[])).unwrap(), None);
        assert_eq!(
            key(&headers(&[b"order 42"])).unwrap().as_deref(),
            Some("order 42")
        );
        let long = "k".repeat(255);
        assert_eq!(
            key(&headers(&[long.as_bytes()])).unwrap().as_deref(),
            Some(long.as_str())
        );
        let longer = "k".repeat(256);
        for bad in [
            headers(&[b""]),
            headers(&[longer.as_bytes()]),
            headers(&[b"caf\xc3\xa9"]),
            headers(&[b"tab\there"]),
            headers(&[b"a", b"b"]),
        ] {
            let Err(ApiError::InvalidField { field, .. }) = key(&bad) else {
                panic!("accepted {bad:?}");
            };
            assert_eq!(field, "Idempotency-Key");
        }
    }

    #[test]
    fn server_errors_timeouts_and_rate_limits_are_not_stored() {
        for status in [500, 503, 408, 429] {
            assert!(!storable(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [200, 201, 400, 401, 404, 409, 410, 422, 423] {
            assert!(storable(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }
}
