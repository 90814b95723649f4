//! `otpd keys list|rotate|retire`: on the key files when the server is
//! stopped, through the admin API when it runs (so its keys in memory and
//! on disk stay one).

use hyper::Method;

use super::server;
use crate::config::Config;
use crate::failure::Failure;
use crate::signing::KeyState;

/// What to do with the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// Every key and where it stands.
    List,
    /// A new active key.
    Rotate,
    /// No longer publish `kid`.
    Retire(String),
}

/// Runs `action`; returns the lines to print.
pub fn run(
    config: &Config,
    action: &KeyAction,
    server_url: Option<&str>,
    now: engine::Timestamp,
) -> Result<Vec<String>, Failure> {
    let store = config.data_dir.join("store");
    let running = engine::store_in_use(&store).map_err(|e| e.to_string())?;
    if running || server_url.is_some() {
        return online(config, action, server_url);
    }
    let attester = crate::startup::open_attester(config, now)?;
    let ring = attester.ring();
    let mut lines = Vec::new();
    match action {
        KeyAction::List => {}
        KeyAction::Rotate => {
            let kid = ring.rotate(now).map_err(|e| e.to_string())?;
            lines.push(format!("rotated: {kid} is the active key"));
        }
        KeyAction::Retire(kid) => {
            ring.retire(kid, now).map_err(|e| e.to_string())?;
            lines.push(format!("retired: {kid}"));
        }
    }
    for (info, state) in ring.list(now) {
        lines.push(line(&info.kid, state.as_str(), info.external));
    }
    Ok(lines)
}

fn online(
    config: &Config,
    action: &KeyAction,
    server_url: Option<&str>,
) -> Result<Vec<String>, Failure> {
    let base = server::base_url(config, server_url)?;
    let key = server::admin_key(config, "change its signing keys")?;
    let (method, path) = match action {
        KeyAction::List => (Method::GET, "/v1/admin/keys".to_owned()),
        KeyAction::Rotate => (Method::POST, "/v1/admin/keys/rotate".to_owned()),
        KeyAction::Retire(kid) => (Method::POST, format!("/v1/admin/keys/{kid}/retire")),
    };
    let (status, answer) = server::call(method, &format!("{base}{path}"), Some(&key))?;
    if !status.is_success() {
        return Err(Failure::Other(format!(
            "the server refused: {}",
            server::refusal(status, &answer)
        )));
    }
    let keys = answer["keys"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    match action {
        KeyAction::List => {}
        KeyAction::Rotate => {
            let active = keys
                .iter()
                .find(|k| k["state"] == KeyState::Active.as_str())
                .and_then(|k| k["kid"].as_str())
                .unwrap_or("?");
            lines.push(format!("rotated: {active} is the active key"));
        }
        KeyAction::Retire(kid) => lines.push(format!("retired: {kid}")),
    }
    for k in &keys {
        lines.push(line(
            k["kid"].as_str().unwrap_or("?"),
            k["state"].as_str().unwrap_or("?"),
            k["source"] == "signing.key",
        ));
    }
    Ok(lines)
}

fn line(kid: &str, state: &str, external: bool) -> String {
    let source = if external { "  (from signing.key)" } else { "" };
    format!("{kid}  {state}{source}")
}
