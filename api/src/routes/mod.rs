//! Serving one request: its id, the route table, auth and limits, the time limit, a caught
//! panic, and the log line and metrics every request gets.

mod handlers;
pub mod idempotency;
pub mod in_flight;
pub mod openapi;
pub(crate) mod request;
mod table;

use std::convert::Infallible;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderValue};
use hyper::{Method, Request, Response};

use engine::audit::Actor;

use crate::error::ApiError;
use crate::limits::Cost;
use crate::state::AppState;
use crate::tls::ClientCertificate;
use handlers::Reply;
use request::Input;
use table::{Found, Retry};

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Every route: the only listener when `ops_listen` is not set.
    All,
    /// What relying parties call: everything but the operators' routes.
    Public,
    /// The operators' routes only: health, metrics and `/v1/admin/*`.
    Ops,
}

impl Listener {
    /// Whether a route of `path` (as the table spells it) is served here.
    /// A route served on the other listener is unknown here (404), as if
    /// it did not exist.
    pub(crate) fn serves(self, path: &str) -> bool {
        // Asked for every row of the table on every request: the one
        // listener of the default setup answers without looking.
        if self == Listener::All {
            return true;
        }
        let ops =
            matches!(path, "/livez" | "/readyz" | "/metrics") || path.starts_with("/v1/admin/");
        ops == (self == Listener::Ops)
    }
}

/// What a request's connection tells about its sender.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The peer's address.
    pub peer: IpAddr,
    /// The listener it came in on.
    pub listener: Listener,
    /// The client certificate the TLS handshake verified, if one was presented.
    pub certificate: Option<ClientCertificate>,
}

/// Serves one request: never panics, never lets an error escape as anything but JSON.
pub async fn handle(
    state: Arc<AppState>,
    connection: Arc<Connection>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let listener = connection.listener;
    let started = Instant::now();
    let request_id = request_id(&request);
    let method = request.method().clone();
    // The Twilio surface answers errors in Twilio's shape, naming the path.
    let twilio =
        crate::twilio::is_twilio(request.uri().path()).then(|| request.uri().path().to_owned());
    let (label, result) = match table::find(&method, request.uri().path(), listener) {
        Err((error, label)) => (label, Err(error)),
        Ok(found) => {
            let label = found.endpoint.path;
            let timeout = Duration::from_millis(state.config.server.request_timeout_ms);
            // A panic in a handler is a bug; it still gets an answer (an
            // opaque 500 with the request id) and an ERROR line, not a
            // dropped connection.
            let guarded =
                AssertUnwindSafe(dispatch(&state, &connection, &request_id, found, request))
                    .catch_unwind();
            let result = match tokio::time::timeout(timeout, guarded).await {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(ApiError::Internal(format!(
                    "the handler panicked: {}",
                    panic_message(panic.as_ref())
                ))),
                Err(_) => Err(ApiError::Timeout),
            };
            (label, result)
        }
    };
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            let answer = error.into_answer();
            if answer.status.is_server_error() {
                tracing::error!(
                    request_id = %request_id,
                    route = label,
                    status = answer.status.as_u16(),
                    cause = answer.cause.as_deref().unwrap_or("-"),
                    "request failed"
                );
            }
            match &twilio {
                Some(path) => crate::twilio::errors::translate(answer, path),
                None => answer.into_response(),
            }
        }
    };
    if method == Method::HEAD {
        response = without_body(response);
    }
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

/// Checks the client and spends the limits the route's row names, then runs its handler.
async fn dispatch(
    state: &Arc<AppState>,
    connection: &Connection,
    request_id: &str,
    found: Found,
    request: Request<Incoming>,
) -> Reply {
    let endpoint = found.endpoint;
    let source = state.gate.source(connection.peer, request.headers());
    let mut client = None;
    if let Some(scope) = endpoint.scope {
        let certificate = connection.certificate.as_ref();
        let basic = crate::twilio::is_twilio(endpoint.path);
        let info = request::authorize(state, request.headers(), scope, certificate, basic)?;
        if endpoint.cost != Cost::Free {
            state.gate.check(endpoint.cost, source, info.id)?;
        }
        client = Some(info);
    }
    // Checked before the body is read: a malformed key is refused at once.
    let key = match endpoint.retry {
        Retry::Keyed | Retry::KeyedSecret => idempotency::key(request.headers())?,
        Retry::Unkeyed => None,
    };
    let (method, target) = (
        request.method().clone(),
        request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
    );
    let actor = Actor {
        client: client.as_ref().map(|c| c.name.as_str().into()),
        client_id: client.as_ref().map(|c| c.id),
        request_id: Some(request_id.into()),
        source_ip: state.config.audit.source(source).map(Into::into),
        idempotency: None,
    };
    let client_name = client.as_ref().map(|c| c.name.clone());
    let input = Input::new(state, found, client, actor, request).await?;
    match (key, client_name) {
        (Some(key), Some(client)) => {
            let request = (&method, target.as_str());
            idempotency::run(state, endpoint, request, &client, &key, input).await
        }
        _ => handlers::run(state, endpoint.route, input).await,
    }
}

/// A `HEAD` answer: the `GET` answer's status and headers, its length, no body.
fn without_body(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let length = hyper::body::Body::size_hint(response.body()).exact();
    let (mut parts, _) = response.into_parts();
    if let Some(length) = length {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
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

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use hyper::StatusCode;
    use serde_json::Value;

    use super::*;

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
    fn a_head_answer_keeps_the_length_and_drops_the_body() {
        let response = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"ok\"}")));
        let head = without_body(response);
        assert_eq!(head.headers()[CONTENT_LENGTH], "15");
        assert!(hyper::body::Body::is_end_stream(head.body()));
    }
}
