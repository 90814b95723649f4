//! `otpd client add|list|revoke|rotate`: through a running server's admin
//! API (`OTPD_ADMIN_KEY`), so a relying party is onboarded, rotated or
//! revoked with no restart; on the store directly when the server is stopped.
//!
//! Both ways take the same input (the API's JSON) and print the same lines:
//! a new key alone on standard output, everything else on standard error.

use engine::{Durable, Engine, KeyId, Timestamp};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::server;
use crate::config::Config;
use crate::failure::Failure;
use crate::wire;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// Add a client.
    Add(NewClientArgs),
    /// List every client.
    List,
    /// Revoke a client, or only one of its keys.
    Revoke {
        /// The client.
        name: String,
        /// Only this key.
        key: Option<String>,
    },
    /// Give a client another key.
    Rotate {
        /// The client.
        name: String,
        /// When the new key stops working.
        expires_at: Option<Timestamp>,
        /// When the client's other keys stop working.
        previous_expires_at: Option<Timestamp>,
    },
}

/// `otpd client add`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClientArgs {
    /// Unique name.
    pub name: String,
    /// Scopes by name.
    pub scopes: Vec<String>,
    /// Purposes by name; `None` for every one.
    pub purposes: Option<Vec<String>>,
    /// Channels by name; `None` for every one.
    pub channels: Option<Vec<String>>,
    /// `10/minute`, `2/second`, `500/hour`.
    pub rate: Option<String>,
    /// A test client.
    pub test: bool,
    /// When its key stops working.
    pub expires_at: Option<Timestamp>,
}

impl NewClientArgs {
    /// The body of `POST /v1/admin/clients`.
    pub fn body(&self) -> Result<Value, Failure> {
        let rate = match &self.rate {
            None => Value::Null,
            Some(text) => {
                let (codes, per) = text
                    .split_once('/')
                    .and_then(|(codes, per)| Some((codes.trim().parse::<u32>().ok()?, per.trim())))
                    .ok_or_else(|| {
                        Failure::Other(format!(
                            "--rate {text:?}: write it as codes/period, e.g. 10/minute \
                             (period: second, minute or hour)"
                        ))
                    })?;
                json!({ "codes": codes, "per": per })
            }
        };
        Ok(json!({
            "name": self.name,
            "scopes": self.scopes,
            "purposes": self.purposes,
            "channels": self.channels,
            "issue_rate": rate,
            "test": self.test,
            "expires_at": self.expires_at.map(wire::rfc3339),
        }))
    }
}

/// What the command printed.
#[derive(Debug, Default)]
pub struct Done {
    /// For standard output: a new key, or the list.
    pub lines: Vec<String>,
    /// For standard error: what was done.
    pub notes: Vec<String>,
}

/// Runs `command` through the running server's admin API.
pub fn online(
    config: &Config,
    server_url: Option<&str>,
    command: &ClientCommand,
) -> Result<Done, Failure> {
    let base = server::base_url(config, server_url)?;
    let trust = super::trust::Trust::of(config)?;
    let key = server::admin_key(config, "manage its clients")?;
    let ask = |method: Method, path: &str, body: Option<Value>, expected: StatusCode| {
        let url = format!("{base}{path}");
        let (status, answer) = server::call_with(method, &url, Some(&key), body.as_ref(), &trust)?;
        if status != expected {
            return Err(Failure::Other(format!(
                "the server refused ({})",
                server::refusal(status, &answer)
            )));
        }
        Ok(answer)
    };
    let done = match command {
        ClientCommand::Add(args) => {
            let answer = ask(
                Method::POST,
                "/v1/admin/clients",
                Some(args.body()?),
                StatusCode::CREATED,
            )?;
            made(&answer, "added")
        }
        ClientCommand::List => {
            let answer = ask(Method::GET, "/v1/admin/clients", None, StatusCode::OK)?;
            let clients = answer["clients"].as_array().cloned().unwrap_or_default();
            Done {
                lines: clients.iter().map(describe).collect(),
                notes: Vec::new(),
            }
        }
        ClientCommand::Revoke { name, key: None } => {
            let path = format!("/v1/admin/clients/{}", segment(name)?);
            ask(Method::DELETE, &path, None, StatusCode::OK)?;
            noted(format!(
                "client {name:?} revoked: every key of it is refused"
            ))
        }
        ClientCommand::Revoke {
            name,
            key: Some(key_id),
        } => {
            let key_id = KeyId::parse("key_id", key_id)
                .map_err(|e| Failure::Other(format!("--key: {e}")))?;
            let path = format!("/v1/admin/clients/{}/keys/{key_id}", segment(name)?);
            ask(Method::DELETE, &path, None, StatusCode::OK)?;
            noted(format!("key {key_id} of client {name:?} revoked"))
        }
        ClientCommand::Rotate {
            name,
            expires_at,
            previous_expires_at,
        } => {
            let path = format!("/v1/admin/clients/{}/keys", segment(name)?);
            let body = json!({
                "expires_at": expires_at.map(wire::rfc3339),
                "previous_expires_at": previous_expires_at.map(wire::rfc3339),
            });
            let answer = ask(Method::POST, &path, Some(body), StatusCode::CREATED)?;
            made(&answer, "given another key")
        }
    };
    Ok(done)
}

/// Runs `command` on the stopped server's store.
pub fn offline(
    engine: &Engine,
    tls: &crate::config::TlsConfig,
    command: &ClientCommand,
) -> Result<Done, Failure> {
    let now = engine.now();
    let refused = |e: engine::EngineError| Failure::Other(e.to_string());
    let done = match command {
        ClientCommand::Add(args) => {
            let input: wire::AddClientIn = serde_json::from_value(args.body()?)
                .map_err(|e| Failure::Other(format!("client add: {e}")))?;
            let new = input.parse().map_err(|e| {
                let answer = e.answer();
                Failure::Other(match answer.field {
                    Some(field) => format!("{field}: {}", answer.message),
                    None => answer.message,
                })
            })?;
            tls.refuse_inherited_certificate(&new.name, &engine.clients())
                .map_err(|why| Failure::Other(format!("name: {why}")))?;
            let (info, key) = engine
                .add_client_with(new)
                .and_then(Durable::wait)
                .map_err(refused)?;
            made(
                &json!({
                    "client": wire::ClientOut::new(&info, now),
                    "key_id": key.info.id.to_string(),
                    "key": key.key.expose(),
                    "twilio": wire::TwilioCredentialsOut::of_key(key.key.expose()),
                }),
                "added",
            )
        }
        ClientCommand::List => Done {
            lines: engine
                .clients()
                .iter()
                .map(|c| describe(&json!(wire::ClientOut::new(c, now))))
                .collect(),
            notes: Vec::new(),
        },
        ClientCommand::Revoke { name, key: None } => {
            engine
                .revoke_client(name)
                .and_then(Durable::wait)
                .map_err(refused)?;
            noted(format!(
                "client {name:?} revoked: every key of it is refused"
            ))
        }
        ClientCommand::Revoke {
            name,
            key: Some(key_id),
        } => {
            let key_id = KeyId::parse("key_id", key_id)
                .map_err(|e| Failure::Other(format!("--key: {e}")))?;
            engine
                .revoke_client_key(name, key_id)
                .and_then(Durable::wait)
                .map_err(refused)?;
            noted(format!("key {key_id} of client {name:?} revoked"))
        }
        ClientCommand::Rotate {
            name,
            expires_at,
            previous_expires_at,
        } => {
            let key = engine
                .rotate_client_key(name, *expires_at, *previous_expires_at)
                .and_then(Durable::wait)
                .map_err(refused)?;
            let info = engine.client(name).map_err(refused)?;
            made(
                &json!({
                    "client": wire::ClientOut::new(&info, now),
                    "key_id": key.info.id.to_string(),
                    "key": key.key.expose(),
                    "twilio": wire::TwilioCredentialsOut::of_key(key.key.expose()),
                }),
                "given another key",
            )
        }
    };
    Ok(done)
}

/// A client's name as a path segment: the names otpd gives need no escaping.
fn segment(name: &str) -> Result<&str, Failure> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok && name != "." && name != ".." {
        Ok(name)
    } else {
        Err(Failure::Other(format!(
            "{name:?} is not a client name (letters, digits, '-', '_' or '.')"
        )))
    }
}

fn noted(note: String) -> Done {
    Done {
        lines: Vec::new(),
        notes: vec![note],
    }
}

/// The answer to a new key: the key alone on standard output.
fn made(answer: &Value, what: &str) -> Done {
    let client = &answer["client"];
    Done {
        lines: vec![answer["key"].as_str().unwrap_or_default().to_owned()],
        notes: vec![
            format!(
                "client {} {what}; key {} (shown only now):",
                client["name"], answer["key_id"]
            ),
            describe(client),
            // The secret is on stdout only; its Twilio form needs just the SID.
            format!(
                "as Twilio credentials (docs/TWILIO.md): account SID {}, auth token = the key's secret (its part after the last '_')",
                answer["twilio"]["account_sid"].as_str().unwrap_or("-")
            ),
        ],
    }
}

/// One line about a client (as the API describes it).
pub fn describe(client: &Value) -> String {
    let list = |v: &Value| match v.as_array() {
        None => "all".to_owned(),
        Some(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
    };
    let rate = match &client["issue_rate"] {
        Value::Null => "none".to_owned(),
        r => format!("{}/{}", r["codes"], r["per"].as_str().unwrap_or("?")),
    };
    let keys: Vec<String> = client["keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|k| {
            let state = k["state"].as_str().unwrap_or("?");
            match k["expires_at"].as_str() {
                Some(at) if state == "live" => {
                    format!("{} (live until {at})", k["key_id"].as_str().unwrap_or("?"))
                }
                _ => format!("{} ({state})", k["key_id"].as_str().unwrap_or("?")),
            }
        })
        .collect();
    format!(
        "{:30} {:8} scopes={} purposes={} channels={} rate={}{} keys: {}",
        client["name"].as_str().unwrap_or("?"),
        client["state"].as_str().unwrap_or("?"),
        list(&client["scopes"]),
        list(&client["purposes"]),
        list(&client["channels"]),
        rate,
        if client["test"] == Value::Bool(true) {
            " test"
        } else {
            ""
        },
        keys.join(", ")
    )
}
