//! The unauthenticated operations endpoints: liveness, readiness and metrics.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::{Reply, ok};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire;

/// `GET /livez`.
pub fn livez() -> Reply {
    ok(wire::HealthOut { status: "ok" })
}

/// `GET /readyz`: not while draining, nor while the store cannot take writes.
pub fn readyz(state: &AppState) -> Reply {
    if state.draining.load(Ordering::SeqCst) {
        return Err(ApiError::Draining);
    }
    state.engine.writable().map_err(ApiError::NotReady)?;
    if let Some(health) = state
        .engine
        .cluster_health(state.config.store.redis.max_clock_skew())
    {
        let health = health.map_err(ApiError::NotReady)?;
        if !health.problems.is_empty() {
            return Err(ApiError::NotReady(engine::EngineError::Storage(format!(
                "the Redis Cluster: {}",
                health.problems.join("; ")
            ))));
        }
    }
    if !engine::audit::RECORDED {
        return Err(ApiError::NotReady(engine::EngineError::Storage(
            "built with --cfg otpd_no_audit: no audit trail is recorded (a build to \
             measure the trail's cost, never to serve)"
                .into(),
        )));
    }
    ok(wire::HealthOut { status: "ready" })
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

/// `GET /openapi.json`: the OpenAPI description of every endpoint.
pub fn openapi() -> Reply {
    let mut response = Response::new(Full::new(Bytes::from_static(
        crate::routes::openapi::document_json().as_bytes(),
    )));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}
