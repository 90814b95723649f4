//! The audit trail over HTTP (scope `admin`): an account's events, the feed
//! a SIEM follows (with long polling), the trailer that closes an export,
//! and the key that verifies checkpoints.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use engine::MAX_EVENTS_PER_READ;

use super::{Reply, ok};
use crate::error::ApiError;
use crate::routes::request::Input;
use crate::state::AppState;
use crate::wire;

const DEFAULT_LIMIT: u64 = 100;
const MAX: u64 = MAX_EVENTS_PER_READ as u64;

/// `GET /v1/admin/accounts/{id}/events?before=&limit=`: newest first.
pub fn account_events(state: &AppState, input: &Input) -> Reply {
    let account = input.account_id()?;
    state.engine.account(account)?;
    let before = input.query_number("before", 1..=u64::MAX)?;
    let limit = input
        .query_number("limit", 1..=MAX)?
        .unwrap_or(DEFAULT_LIMIT);
    let events = state
        .engine
        .account_events(account, before, limit as usize)?;
    let next = (events.len() as u64 == limit)
        .then(|| events.last().map(|r| r.seq))
        .flatten();
    ok(wire::AccountEventsOut {
        events: events.iter().map(crate::audit::event_out).collect(),
        next_before: next,
        node: state.engine.cluster_node(),
    })
}

/// `GET /v1/admin/events?after=&since=&limit=&wait=`: events in order,
/// from after sequence number `after` (or from the checkpoint that anchors
/// time `since`); with `wait`, holds the request up to that many seconds
/// until one arrives.
pub async fn feed(state: &Arc<AppState>, input: &Input) -> Reply {
    let limit = input
        .query_number("limit", 1..=MAX)?
        .unwrap_or(DEFAULT_LIMIT);
    let after = match (
        input.query_number("after", 0..=u64::MAX)?,
        input.query_time("since")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("since", "give after or since, not both"));
        }
        (Some(after), None) => after,
        (None, Some(since)) => state
            .engine
            .export_start(crate::audit::anchor_time(since))?
            .saturating_sub(1),
        (None, None) => 0,
    };
    // The request's own time limit bounds the wait.
    let most = (state.config.server.request_timeout_ms / 1_000).saturating_sub(1);
    let wait = input.query_number("wait", 0..=60)?.unwrap_or(0);
    if wait > most {
        return Err(ApiError::invalid(
            "wait",
            format!("must be at most {most} s here (server.request_timeout_ms)"),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let events = loop {
        let events = state.engine.events_after(after, limit as usize)?;
        // A stopping server answers now: a poll held through the drain would
        // delay the stop, then be cut off with no answer at its grace.
        let stopping = state.draining.load(Ordering::SeqCst);
        if !events.is_empty() || stopping || tokio::time::Instant::now() >= deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let next_after = events.last().map_or(after, |r| r.seq);
    ok(wire::EventFeedOut {
        events: events.iter().map(crate::audit::event_out).collect(),
        next_after,
        durable_seq: state.engine.audit_durable_seq(),
        node: state.engine.cluster_node(),
    })
}

/// `GET /v1/admin/events/{seq}/trailer`: event `seq`'s hash, signed, to
/// close an export that ends with it.
pub fn trailer(state: &AppState, input: &Input) -> Reply {
    let seq = input.seq()?;
    let mut found = None;
    state.engine.scan_events(seq, &mut |r| {
        if r.seq == seq {
            found = Some(r.hash);
        }
        Ok(false)
    })?;
    let hash = found.ok_or_else(|| {
        ApiError::invalid("seq", format!("no durable event has sequence number {seq}"))
    })?;
    let signature = state.engine.sign_audit_head(seq, &hash);
    ok(crate::audit::trailer(seq, &hash, &signature))
}

/// `GET /v1/admin/audit`: the key that verifies checkpoints, and where the chain stands.
pub fn about(state: &AppState) -> Reply {
    ok(wire::AuditInfoOut {
        public_key: state.engine.audit_public_key().to_string(),
        durable_seq: state.engine.audit_durable_seq(),
        checkpoint_every: state.config.audit.checkpoint_every,
        node: state.engine.cluster_node(),
    })
}
