//! Work for an outside generator (`wrk`): codes issued ahead of a verify
//! run, and the sink left running while it issues.
//!
//! `wrk` cannot read an SMS, so a verify-only run needs its codes in a
//! file: one step-up per account, issued here and taken from the sink,
//! written as `challenge_id code` lines (only the last code of an account
//! is valid, so each account gets exactly one). While `wrk` issues codes
//! itself, otpd still has to deliver them somewhere: `serve_sink` keeps
//! the sink up for a while and says how many messages it took.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::run::{Account, Http};
use crate::sink::Sink;

/// Issues one step-up code to each account, `concurrency` at a time, waits
/// for each at the sink and writes `challenge_id code` lines to `out`.
/// Returns how many were written; an account whose code does not arrive
/// within `timeout` is an error (the file would be short).
pub async fn prepare(
    http: &Http,
    sink: &Sink,
    accounts: &[Account],
    concurrency: usize,
    timeout: Duration,
    out: &Path,
) -> Result<usize, String> {
    let accounts: Arc<[Account]> = accounts.into();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(concurrency.max(1));
    for _ in 0..concurrency.max(1) {
        let (http, sink, accounts, next) = (
            http.clone(),
            sink.clone(),
            Arc::clone(&accounts),
            Arc::clone(&next),
        );
        workers.push(tokio::spawn(async move {
            let mut lines = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(account) = accounts.get(i) else {
                    return Ok::<_, String>(lines);
                };
                lines.push(one(&http, &sink, account, timeout).await?);
            }
        }));
    }
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?,
    );
    let mut written = 0;
    for worker in workers {
        let lines = worker.await.map_err(|e| e.to_string())??;
        for (challenge, code) in lines {
            writeln!(file, "{challenge} {code}")
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            written += 1;
        }
    }
    file.flush()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(written)
}

/// One account's step-up: its challenge id and the code the sink took.
async fn one(
    http: &Http,
    sink: &Sink,
    account: &Account,
    timeout: Duration,
) -> Result<(String, String), String> {
    let waiting = sink.expect(&account.phone);
    let body = json!({ "account_id": account.id });
    let issued = match http.call(Method::POST, "/v1/step-up", Some(&body)).await {
        Ok((StatusCode::CREATED, issued)) => issued,
        Ok((status, body)) => {
            sink.forget(&account.phone);
            return Err(format!("step-up for {}: {status} {body}", account.id));
        }
        Err(e) => {
            sink.forget(&account.phone);
            return Err(format!("step-up for {}: {e}", account.id));
        }
    };
    let challenge = issued["challenge_id"]
        .as_str()
        .ok_or_else(|| format!("step-up for {}: no challenge_id in {issued}", account.id))?
        .to_owned();
    match tokio::time::timeout(timeout, waiting).await {
        Ok(Ok(code)) => Ok((challenge, code)),
        _ => {
            sink.forget(&account.phone);
            Err(format!(
                "no code reached the sink for {} within {timeout:?}",
                account.phone
            ))
        }
    }
}

/// Keeps `sink` up for `how_long`; returns the messages it took meanwhile.
pub async fn serve_sink(sink: &Sink, how_long: Duration) -> u64 {
    let (before, _) = sink.counts();
    tokio::time::sleep(how_long).await;
    sink.counts().0 - before
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake otpd: answers each step-up with a challenge and "sends" its
    /// code to the sink, as otpd's SMS gateway would.
    async fn fake_otpd(sink_url: String) -> String {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Bytes;
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counter = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (sink_url, counter) = (sink_url.clone(), Arc::clone(&counter));
                tokio::spawn(async move {
                    let service = service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let (sink_url, counter) = (sink_url.clone(), Arc::clone(&counter));
                            async move {
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let asked: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap();
                                let n = counter.fetch_add(1, Ordering::Relaxed);
                                let account = asked["account_id"].as_str().unwrap().to_owned();
                                let code = format!("{:06}", 100_000 + n);
                                let gateway =
                                    Http::new(&sink_url, "unused", Duration::from_secs(5));
                                let message = json!({"to": format!("+{account}"), "text": format!("code {code}.")});
                                gateway
                                    .call(Method::POST, "", Some(&message))
                                    .await
                                    .unwrap();
                                let answer = json!({ "challenge_id": format!("c{account}") });
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(201)
                                        .body(Full::new(Bytes::from(answer.to_string())))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn each_account_gets_one_code_and_every_line_pairs_its_challenge_with_its_code() {
        let sink = Sink::bind("127.0.0.1:0").await.unwrap();
        let otpd = fake_otpd(sink.url()).await;
        let http = Http::new(&otpd, "key", Duration::from_secs(5));
        let accounts: Vec<Account> = (0..50)
            .map(|n| Account {
                id: format!("{n}"),
                phone: format!("+{n}"),
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("otp-codes-{}", std::process::id()));
        let written = prepare(&http, &sink, &accounts, 8, Duration::from_secs(5), &dir)
            .await
            .unwrap();
        assert_eq!(written, 50);
        let text = std::fs::read_to_string(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let mut challenges: Vec<&str> = Vec::new();
        for line in text.lines() {
            let (challenge, code) = line.split_once(' ').unwrap();
            assert_eq!(code.len(), 6, "{line}");
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{line}");
            challenges.push(challenge);
        }
        challenges.sort_unstable();
        challenges.dedup();
        assert_eq!(challenges.len(), 50, "one challenge per account");
        assert_eq!(sink.counts(), (50, 0), "every message was awaited");
    }

    #[tokio::test]
    async fn a_refused_step_up_is_an_error_naming_the_account_not_a_short_file() {
        // Something that answers 200 to everything, not 201 with a challenge.
        let sink = Sink::bind("127.0.0.1:0").await.unwrap();
        let not_otpd = Sink::bind("127.0.0.1:0").await.unwrap();
        let http = Http::new(&not_otpd.url(), "key", Duration::from_secs(5));
        let accounts = vec![Account {
            id: "acc1".into(),
            phone: "+1".into(),
        }];
        let path = std::env::temp_dir().join(format!("otp-codes-refused-{}", std::process::id()));
        let result = prepare(&http, &sink, &accounts, 1, Duration::from_secs(5), &path).await;
        let _ = std::fs::remove_file(&path);
        let err = result.unwrap_err();
        assert!(err.starts_with("step-up for acc1: 200"), "{err}");
    }
}
