//! `otpd keys list|rotate|retire`: on the key files when the server is
//! stopped, through the admin API when it runs (so its keys in memory and
//! on disk stay one).

use engine::audit::EventKind;
use hyper::Method;

use super::server;
use crate::config::Config;
use crate::failure::Failure;
use crate::signing::{KeyRing, KeyState};

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

/// What `otpd keys` did.
#[derive(Debug)]
pub struct Done {
    /// The lines to print.
    pub lines: Vec<String>,
    /// A change made on the files directly (the server stopped), for the
    /// caller to record in the audit trail: its kind and the key's id. A
    /// running server records its own.
    pub offline_change: Option<(EventKind, String)>,
}

/// Runs `action`.
pub fn run(
    config: &Config,
    action: &KeyAction,
    server_url: Option<&str>,
    now: engine::Timestamp,
) -> Result<Done, Failure> {
    if let KeyAction::Retire(kid) = action
        && !crate::signing::is_key_id(kid)
    {
        return Err(Failure::Other(format!(
            "{kid:?} is not a key id: one is 43 base64url characters (see `otpd keys list`)"
        )));
    }
    let store = config.data_dir.join("store");
    let running = engine::store_in_use(&store).map_err(|e| e.to_string())?;
    if running || server_url.is_some() {
        return Ok(Done {
            lines: online(config, action, server_url)?,
            offline_change: None,
        });
    }
    let dir = config.signing.key_dir(&config.data_dir);
    if !KeyRing::exists(&dir) {
        return Err(Failure::Other(format!(
            "no signing keys in {} (otpd makes the first on its first start; is --data-dir right?)",
            dir.display()
        )));
    }
    let attester = crate::startup::open_attester(config, now)?;
    let ring = attester.ring();
    let mut lines = Vec::new();
    let mut offline_change = None;
    match action {
        KeyAction::List => {}
        KeyAction::Rotate => {
            let kid = ring.rotate(now).map_err(|e| e.to_string())?;
            lines.push(format!("rotated: {kid} is the active key"));
            offline_change = Some((EventKind::KeyRotated, kid));
        }
        KeyAction::Retire(kid) => {
            ring.retire(kid, now).map_err(|e| e.to_string())?;
            lines.push(format!("retired: {kid}"));
            offline_change = Some((EventKind::KeyRetired, kid.clone()));
        }
    }
    for (info, state) in ring.list(now) {
        lines.push(line(&info.kid, state.as_str(), info.external));
    }
    Ok(Done {
        lines,
        offline_change,
    })
}

fn online(
    config: &Config,
    action: &KeyAction,
    server_url: Option<&str>,
) -> Result<Vec<String>, Failure> {
    let base = server::base_url(config, server_url)?;
    let trust = super::trust::Trust::of(config)?;
    let doing = match action {
        KeyAction::List => "list its signing keys",
        KeyAction::Rotate => "rotate its signing key",
        KeyAction::Retire(_) => "retire a signing key",
    };
    let key = server::admin_key(config, doing)?;
    let (method, path) = match action {
        KeyAction::List => (Method::GET, "/v1/admin/keys".to_owned()),
        KeyAction::Rotate => (Method::POST, "/v1/admin/keys/rotate".to_owned()),
        KeyAction::Retire(kid) => (Method::POST, format!("/v1/admin/keys/{kid}/retire")),
    };
    let (status, answer) = server::call(method, &format!("{base}{path}"), Some(&key), &trust)?;
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
