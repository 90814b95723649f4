//! The delivery sink: an HTTP server otpd's SMS gateway (or push relay) is
//! pointed at. It takes each message as a gateway would, finds the code in
//! it, and hands it to the flow waiting on that phone number.
//!
//! otpd is configured with, for example:
//!
//! ```toml
//! [[delivery.sms]]
//! name = "loadtest"
//! url = "http://127.0.0.1:9900/sms"
//! template = '{"to":"{to}","text":"{message}"}'
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use dashmap::DashMap;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running sink.
#[derive(Clone)]
pub struct Sink {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("addr", &self.addr).finish()
    }
}

#[derive(Default)]
struct Inner {
    waiting: DashMap<String, oneshot::Sender<String>>,
    received: AtomicU64,
    unmatched: AtomicU64,
}

impl Sink {
    /// Binds `addr` (port 0 for any) and serves until the process ends.
    pub async fn bind(addr: &str) -> Result<Sink, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot bind the sink on {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let inner = Arc::new(Inner::default());
        let serving = Arc::clone(&inner);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let inner = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |request| take(Arc::clone(&inner), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Sink { addr, inner })
    }

    /// The URL to configure as otpd's SMS gateway.
    pub fn url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    /// Waits for the next code sent to `phone`. Register before asking for it.
    pub fn expect(&self, phone: &str) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.inner.waiting.insert(phone.to_owned(), tx);
        rx
    }

    /// Stops waiting for `phone` (the flow gave up).
    pub fn forget(&self, phone: &str) {
        self.inner.waiting.remove(phone);
    }

    /// Messages received, and those no flow was waiting for.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.inner.received.load(Ordering::Relaxed),
            self.inner.unmatched.load(Ordering::Relaxed),
        )
    }
}

async fn take(
    inner: Arc<Inner>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    inner.received.fetch_add(1, Ordering::Relaxed);
    let parsed: Option<(String, String)> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let to = v["to"].as_str()?.to_owned();
            let code = code_in(v["text"].as_str().or(v["code"].as_str())?)?;
            Some((to, code))
        });
    let delivered = parsed
        .and_then(|(to, code)| inner.waiting.remove(&to).map(|(_, tx)| tx.send(code)))
        .is_some_and(|sent| sent.is_ok());
    if !delivered {
        inner.unmatched.fetch_add(1, Ordering::Relaxed);
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// The first run of exactly six digits in a message.
pub fn code_in(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(text[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::code_in;

    #[test]
    fn finds_the_six_digit_code_in_both_languages() {
        assert_eq!(
            code_in("otpd: código de confirmação 042917. Válido 5 min.").as_deref(),
            Some("042917")
        );
        assert_eq!(
            code_in("gov 2026: sign-in code 123456. Valid 10 min.").as_deref(),
            Some("123456")
        );
        assert_eq!(code_in("no code 12345 or 1234567"), None);
    }
}
