//! `otpd audit export|verify|public-key`: exports as JSON Lines closed by a
//! signed trailer (from the stopped store, or through a running server's
//! admin API), and checks of the stored chain or of an export.

use std::io::Write;

use engine::Timestamp;
use engine::audit::{AuditPublicKey, Break, Report};
use hyper::Method;

use super::server;
use crate::audit::{ExportCheck, check_export_from, from_json, to_json, trailer};
use crate::config::Config;
use crate::failure::Failure;

/// Which events to export.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// From this time (the export starts at the checkpoint anchoring it).
    pub since: Option<Timestamp>,
    /// Up to this time.
    pub until: Option<Timestamp>,
}

/// Writes the export from a stopped store; returns the number of events.
pub fn export_offline(
    engine: &engine::Engine,
    window: Window,
    out: &mut dyn Write,
) -> Result<u64, Failure> {
    let start = match window.since {
        Some(since) => engine.export_start(crate::audit::anchor_time(since))?,
        None => 0,
    };
    let mut last = None;
    let mut written = 0;
    let mut failed = None;
    engine.scan_events(start, &mut |r| {
        if window.until.is_some_and(|until| r.at > until) {
            return Ok(false);
        }
        if let Err(e) = writeln!(out, "{}", to_json(&r)) {
            failed = Some(e);
            return Ok(false);
        }
        written += 1;
        last = Some((r.seq, r.hash));
        Ok(true)
    })?;
    if let Some(e) = failed {
        return Err(Failure::Other(format!("cannot write the export: {e}")));
    }
    if let Some((seq, hash)) = last {
        let signature = engine.sign_audit_head(seq, &hash);
        writeln!(
            out,
            "{}",
            serde_json::json!(trailer(seq, &hash, &signature))
        )
        .map_err(|e| format!("cannot write the export: {e}"))?;
    }
    Ok(written)
}

/// Writes the export through a running server's admin API, page by page;
/// returns the number of events.
pub fn export_online(
    config: &Config,
    server_url: Option<&str>,
    window: Window,
    out: &mut dyn Write,
) -> Result<u64, Failure> {
    let base = server::base_url(config, server_url)?;
    let trust = super::trust::Trust::of(config)?;
    let key = server::admin_key(config, "export its audit trail")?;
    let mut query = match window.since {
        Some(since) => format!("since={}", crate::wire_time(since)),
        None => "after=0".to_owned(),
    };
    let mut last: Option<u64> = None;
    let mut written = 0;
    'pages: loop {
        let url = format!("{base}/v1/admin/events?limit=1000&{query}");
        let (status, answer) = server::call(Method::GET, &url, Some(&key), &trust)?;
        if !status.is_success() {
            return Err(Failure::Other(format!(
                "the server refused the export: {}",
                server::refusal(status, &answer)
            )));
        }
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for event in &events {
            let record = from_json(event).map_err(Failure::Other)?;
            if window.until.is_some_and(|until| record.at > until) {
                break 'pages;
            }
            writeln!(out, "{event}").map_err(|e| format!("cannot write the export: {e}"))?;
            written += 1;
            last = Some(record.seq);
        }
        query = format!("after={}", answer["next_after"].as_u64().unwrap_or(0));
    }
    if let Some(seq) = last {
        let url = format!("{base}/v1/admin/events/{seq}/trailer");
        let (status, answer) = server::call(Method::GET, &url, Some(&key), &trust)?;
        if !status.is_success() {
            return Err(Failure::Other(format!(
                "the server refused the trailer: {}",
                server::refusal(status, &answer)
            )));
        }
        writeln!(out, "{answer}").map_err(|e| format!("cannot write the export: {e}"))?;
    }
    Ok(written)
}

/// Checks an export file with `key`; the lines to print, or why it fails.
pub fn verify_export(
    path: &std::path::Path,
    key: &AuditPublicKey,
    max_unsigned: u64,
) -> Result<String, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Other(format!("cannot read {}: {e}", path.display())))?;
    let checked = check_export_from(std::io::BufReader::new(file), key, max_unsigned)
        .map_err(|e| Failure::Other(format!("{}: {e}", path.display())))?;
    match checked {
        ExportCheck::Holds(report) => Ok(describe(&report)),
        ExportCheck::Broken(broken) => Err(broken_at(&broken)),
    }
}

/// The outcome of a check of the stored chain.
pub fn verify_stored(outcome: Result<Report, Break>) -> Result<String, Failure> {
    match outcome {
        Ok(report) => Ok(describe(&report)),
        Err(broken) => Err(broken_at(&broken)),
    }
}

fn describe(report: &Report) -> String {
    if report.records == 0 {
        return "audit chain ok: no events".into();
    }
    format!(
        "audit chain ok: events {} to {}, {} signed checkpoints, {} events after the last one",
        report.first, report.last, report.checkpoints, report.unsigned_tail
    )
}

fn broken_at(broken: &Break) -> Failure {
    Failure::Other(format!(
        "audit chain broken at event {}: {}",
        broken.seq, broken.why
    ))
}
