//! Real peers on loopback for delivery tests: an HTTP gateway and an SMTP server.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One request as the peer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How the HTTP peer answers the next requests.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Status(u16),
    StatusRetryAfter(u16, u64),
    /// Never answers (the sender must time out).
    Hang,
}

/// A local HTTP server that records requests and answers from a script
/// (then 200 when the script runs out).
#[derive(Clone)]
pub struct HttpPeer {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    arrived: Arc<Notify>,
}

impl HttpPeer {
    pub async fn start(script: &[Answer]) -> HttpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = HttpPeer {
            url: format!("http://{}", listener.local_addr().unwrap()),
            received: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            arrived: Arc::default(),
        };
        let serving = peer.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let peer = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| peer.clone().answer(request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        peer
    }

    async fn answer(self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = request.uri().path().to_owned();
        let headers = request.headers().clone();
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.received.lock().unwrap().push(Received {
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        self.arrived.notify_waiters();
        let next = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Status(200));
        let (status, retry_after) = match next {
            Answer::Status(s) => (s, None),
            Answer::StatusRetryAfter(s, after) => (s, Some(after)),
            Answer::Hang => {
                std::future::pending::<()>().await;
                unreachable!()
            }
        };
        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(after) = retry_after {
            response.headers_mut().insert("retry-after", after.into());
        }
        Ok(response)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until at least `n` requests arrived; `nudge` runs
    /// between checks (tests move the manual clock there so retries fall due).
    pub async fn wait_for(&self, n: usize, mut nudge: impl FnMut()) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            nudge();
            if tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                arrived,
            )
            .await
            .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                panic!("the peer received {} requests, expected {n}", got.len());
            }
        }
    }
}

/// One email as the SMTP sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server (no TLS, no auth) that stores what it is sent.
/// `rcpt_reply` lets a test make it refuse recipients (e.g. 450, 550).
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    rcpt_replies: Arc<Mutex<VecDeque<&'static str>>>,
    arrived: Arc<Notify>,
}

impl SmtpSink {
    pub async fn start(rcpt_replies: &[&'static str]) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = SmtpSink {
            port: listener.local_addr().unwrap().port(),
            mails: Arc::default(),
            rcpt_replies: Arc::new(Mutex::new(rcpt_replies.iter().copied().collect())),
            arrived: Arc::default(),
        };
        let serving = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let sink = serving.clone();
                tokio::spawn(async move {
                    let _ = sink.session(stream).await;
                });
            }
        });
        sink
    }

    async fn session(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink.test ESMTP\r\n").await?;
        let (mut from, mut to, mut data) = (String::new(), Vec::new(), String::new());
        while let Some(line) = lines.next_line().await? {
            let upper = line.to_ascii_uppercase();
            let reply: &str = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                "250-sink.test\r\n250 8BITMIME"
            } else if upper.starts_with("MAIL FROM:") {
                from = line[10..].trim().to_owned();
                "250 OK"
            } else if upper.starts_with("RCPT TO:") {
                let reply = self
                    .rcpt_replies
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or("250 OK");
                if reply.starts_with('2') {
                    to.push(line[8..].trim().to_owned());
                }
                reply
            } else if upper == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                while let Some(body_line) = lines.next_line().await? {
                    if body_line == "." {
                        break;
                    }
                    data.push_str(&body_line);
                    data.push('\n');
                }
                self.mails.lock().unwrap().push(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data: std::mem::take(&mut data),
                });
                self.arrived.notify_waiters();
                "250 queued"
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else if upper == "RSET" || upper == "NOOP" {
                "250 OK"
            } else {
                "502 not implemented"
            };
            write.write_all(format!("{reply}\r\n").as_bytes()).await?;
        }
        Ok(())
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize, mut nudge: impl FnMut()) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let arrived = self.arrived.notified();
            let got = self.mails();
            if got.len() >= n {
                return got;
            }
            nudge();
            let step = tokio::time::Instant::now() + Duration::from_millis(50);
            let _ = tokio::time::timeout_at(deadline.min(step), arrived).await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "the SMTP sink got {} mails, expected {n}",
                got.len()
            );
        }
    }
}
