//! One request to a running otpd on a command's behalf (`otpd backup`,
//! `otpd keys`, `otpd client` while the server holds the data directory),
//! with the admin-scoped key from `OTPD_ADMIN_KEY`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::trust::Trust;
use crate::config::{self, Config};

/// The running server's base URL for its admin API: `server` if given,
/// else `http://` (`https://` when `server.tls` is on) and the operators'
/// listen address if there is one (the admin API is only there), else the
/// listen address (loopback when it listens on every address).
pub fn base_url(config: &Config, server: Option<&str>) -> Result<String, String> {
    match server {
        Some(url) => Ok(url.trim_end_matches('/').to_owned()),
        None => {
            let mut address = match config.ops_listen_addr()? {
                Some(ops) => ops,
                None => config.listen_addr()?,
            };
            if address.ip().is_unspecified() {
                address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let scheme = if config.server.tls.enabled() {
                "https"
            } else {
                "http"
            };
            Ok(format!("{scheme}://{address}"))
        }
    }
}

/// The admin key for asking a running server, or why there is none.
pub fn admin_key(config: &Config, doing: &str) -> Result<String, String> {
    std::env::var(config::ENV_ADMIN_KEY).map_err(|_| {
        format!(
            "otpd is running on {}: set {} to an admin-scoped client key so it can {doing} \
             (or stop it and run this again)",
            config.data_dir.display(),
            config::ENV_ADMIN_KEY
        )
    })
}

/// Sends `method url` with `key` (if any) as the bearer token, over HTTPS
/// trusting what `trust` says; returns the status and the JSON answer
/// (`null` if the body is not JSON).
pub fn call(
    method: Method,
    url: &str,
    key: Option<&str>,
    trust: &Trust,
) -> Result<(StatusCode, Value), String> {
    call_with(method, url, key, None, trust)
}

/// [`call`] with `body` sent as JSON, if given.
pub fn call_with(
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
    trust: &Trust,
) -> Result<(StatusCode, Value), String> {
    let tls = trust.client_config()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
        let mut request = Request::builder().method(method).uri(url);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let content = match body {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(value.to_string()))
            }
            None => Full::default(),
        };
        let request = request
            .body(content)
            .map_err(|e| format!("bad URL {url}: {e}"))?;
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("the answer from {url} broke off: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| format!("{url} did not answer within 30 s"))?
    })
}

/// The error message of a refused call.
pub fn refusal(status: StatusCode, answer: &Value) -> String {
    format!(
        "{status}: {}",
        answer["error"]["message"]
            .as_str()
            .unwrap_or("no reason given")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_ask_the_listener_that_serves_the_admin_api() {
        let mut config = Config {
            listen: "0.0.0.0:8080".into(),
            ..Config::default()
        };
        assert_eq!(base_url(&config, None).unwrap(), "http://127.0.0.1:8080");
        config.ops_listen = "127.0.0.1:9091".into();
        assert_eq!(base_url(&config, None).unwrap(), "http://127.0.0.1:9091");
        assert_eq!(
            base_url(&config, Some("http://otpd.internal:9/")).unwrap(),
            "http://otpd.internal:9"
        );
        config.server.tls.cert = "/etc/otpd/tls/cert.pem".into();
        config.server.tls.key = "/etc/otpd/tls/key.pem".into();
        assert_eq!(base_url(&config, None).unwrap(), "https://127.0.0.1:9091");
    }
}
