//! The unauthenticated operations endpoints: liveness, readiness and metrics.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::json;

use super::{Reply, ok};
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /livez`.
pub fn livez() -> Reply {
    ok(json!({ "status": "ok" }))
}

/// `GET /readyz`: not while draining, nor while the store cannot take writes.
pub fn readyz(state: &AppState) -> Reply {
    if state.draining.load(Ordering::SeqCst) {
        return Err(ApiError::Draining);
    }
    state.engine.writable().map_err(ApiError::NotReady)?;
    if !engine::audit::RECORDED {
        return Err(ApiError::NotReady(engine::EngineError::Storage(
            "built with --cfg otpd_no_audit: no audit trail is recorded (a build to \
             measure the trail's cost, never to serve)"
                .into(),
        )));
    }
    ok(json!({ "status": "ready" }))
}

/// `GET /metrics`: Prometheus text.
pub fn metrics(state: &AppState) -> Reply {
    let text = state.metrics.render();
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}
