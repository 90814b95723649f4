//! End to end in one process: a step-up issue and a step-up verify over
//! loopback HTTP against an in-process otpd, one request at a time, timed
//! at the client. The code reaches the verify through the SMS gateway (a
//! load-test sink), outside the timed part. `http/livez`, on the same
//! server and client, is the bare-HTTP cost they are read against (issue
//! #19's ratios; under concurrency, `scripts/http-ratios.sh` measures them
//! with wrk).
//!
//! `cargo bench -p otp-bench --bench http`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bench::InProcess;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::Argon2Params;
use hyper::{Method, StatusCode};
use loadtest::{Account, Http, Sink, seed};
use serde_json::json;

/// As in the otpd binary: the figures are those of the allocator it runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACCOUNTS: u64 = 1_000;

async fn issue(http: &Http, account: &Account) -> String {
    let body = json!({ "account_id": account.id });
    let (status, answer) = http
        .call(Method::POST, "/v1/step-up", Some(&body))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["challenge_id"].as_str().unwrap().to_owned()
}

fn http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sink, server, http, accounts) = rt.block_on(async {
        let sink = Sink::bind("127.0.0.1:0").await.unwrap();
        let server = InProcess::start(&sink.url(), Argon2Params::INSECURE_FOR_TESTS)
            .await
            .unwrap();
        let http = Http::new(&server.url, &server.key, Duration::from_secs(10));
        let accounts = seed::seed(
            &http,
            0,
            ACCOUNTS,
            bench::PIN,
            Argon2Params::INSECURE_FOR_TESTS,
            seed::MAX_BATCH,
        )
        .await
        .unwrap();
        (sink, server, http, accounts)
    });
    let mut next = 0usize;
    let mut account = || {
        next = (next + 1) % accounts.len();
        &accounts[next]
    };

    let mut group = c.benchmark_group("http");
    group.throughput(Throughput::Elements(1));
    group.bench_function("livez", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let (status, _) = http.call(Method::GET, "/livez", None).await.unwrap();
                    assert_eq!(status, StatusCode::OK);
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("step_up_issue", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let account = account();
                    let started = Instant::now();
                    issue(&http, account).await;
                    spent += started.elapsed();
                }
                spent
            })
        })
    });
    group.bench_function("step_up_verify", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let account = account();
                    let waiting = sink.expect(&account.phone);
                    let challenge = issue(&http, account).await;
                    let code = tokio::time::timeout(Duration::from_secs(10), waiting)
                        .await
                        .expect("the code reaches the sink")
                        .unwrap();
                    let body = json!({ "challenge_id": challenge, "code": code });
                    let started = Instant::now();
                    let (status, answer) = http
                        .call(Method::POST, "/v1/step-up/verify", Some(&body))
                        .await
                        .unwrap();
                    spent += started.elapsed();
                    assert_eq!(status, StatusCode::OK, "{answer}");
                }
                spent
            })
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, http);
criterion_main!(benches);
