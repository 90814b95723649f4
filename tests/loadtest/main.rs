//! otp-loadtest against an in-process otpd on loopback: short, bounded runs
//! that check the flows complete, the counts add up, thresholds pass and
//! fail as they should, and the JSON and SVG are written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bench::InProcess;
use engine::Argon2Params;
use loadtest::{Http, Mix, Model, Options, Report, Sink, Threshold, run, seed};

const TEST_ARGON2: Argon2Params = Argon2Params::INSECURE_FOR_TESTS;

/// An otpd whose SMS gateway is the sink.
async fn otpd_for(sink: &Sink) -> InProcess {
    InProcess::start(&sink.url(), TEST_ARGON2).await.unwrap()
}

fn options(server: &InProcess, mix: &str, model: Model) -> Options {
    Options {
        targets: vec![server.url.clone()],
        pick: loadtest::Pick::RoundRobin,
        key: server.key.clone(),
        mix: Mix::parse(mix).unwrap(),
        model,
        ramp: Duration::ZERO,
        warmup: Duration::ZERO,
        duration: Some(Duration::from_secs(20)),
        max_flows: Some(200),
        max_in_flight: 1000,
        pin: "4821".into(),
        timeout: Duration::from_secs(10),
        progress: false,
        ceiling: None,
        argon2_ceiling: None,
    }
}

async fn seeded(server: &InProcess, count: u64) -> Vec<loadtest::Account> {
    let http = Http::new(&server.url, &server.key, Duration::from_secs(30));
    seed::seed(&http, 0, count, "4821", TEST_ARGON2, seed::MAX_BATCH)
        .await
        .unwrap()
}

fn ok(report: &Report, name: &str) -> u64 {
    report.series(name).map_or(0, |s| s.ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_targets_share_the_flows_and_each_is_reported() {
    let sink = Sink::bind("127.0.0.1:0").await.unwrap();
    let server = otpd_for(&sink).await;
    let accounts = seeded(&server, 100).await;
    // Two names for one server (this machine runs one embedded otpd; two
    // cluster nodes are scripts/loadtest-cluster.sh's).
    let port = server.url.rsplit(':').next().unwrap();
    let other = format!("http://localhost:{port}");
    let mut opts = options(&server, "step-up", Model::Closed { concurrency: 8 });
    opts.targets.push(other.clone());
    let report = run(opts, sink, accounts).await.unwrap();
    let table = report.table();
    assert_eq!(report.error_rate(), 0.0, "{table}");
    assert_eq!(report.recorded.nodes.len(), 2, "{table}");
    // Round-robin: 100 flows each.
    for series in report.recorded.nodes.values() {
        assert_eq!(series.ok, 100, "{table}");
    }
    assert!(table.contains("flows by node"), "{table}");
    assert!(table.contains(&format!("localhost:{port}")), "{table}");
    let json = report.json();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1]["target"], other);
    assert_eq!(
        nodes[0]["ok"].as_u64().unwrap() + nodes[1]["ok"].as_u64().unwrap(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_model_mix_completes_and_its_counts_add_up() {
    let sink = Sink::bind("127.0.0.1:0").await.unwrap();
    let server = otpd_for(&sink).await;
    let accounts = seeded(&server, 300).await;
    assert_eq!(accounts.len(), 300);
    let mix = "step-up=5,login=2,wrong-code=2,status=1";
    let report = run(
        options(&server, mix, Model::Open { rate: 400.0 }),
        sink,
        accounts,
    )
    .await
    .unwrap();
    let table = report.table();
    assert_eq!(report.error_rate(), 0.0, "{table}");
    let flows: u64 = report.recorded.flows.values().map(|s| s.ok).sum();
    assert_eq!(flows, 200, "every arrival is a recorded flow: {table}");
    // Every code issued was delivered to the sink and matched to its flow,
    // and every delivered code was verified.
    let issued = ok(&report, "issue") + ok(&report, "login");
    assert_eq!(ok(&report, "deliver"), issued, "{table}");
    assert_eq!(report.sink.0, issued, "{table}");
    assert_eq!(report.sink.1, 0, "no unmatched messages: {table}");
    // A status read that finds no challenge yet issues one and reads it
    // instead; only those issued codes go unverified.
    let verified = ok(&report, "verify") + ok(&report, "verify-login");
    assert!(
        verified <= issued && issued - verified <= ok(&report, "status"),
        "{table}"
    );
    assert_eq!(ok(&report, "wrong"), ok(&report, "wrong-code"), "{table}");
    for flow in ["step-up", "login", "wrong-code", "status"] {
        assert!(ok(&report, flow) > 0, "{flow} ran: {table}");
    }
    assert!(
        Threshold::parse("errors<0.1%")
            .unwrap()
            .check(&report)
            .is_ok()
    );
    assert!(
        Threshold::parse("verify.p99<60s")
            .unwrap()
            .check(&report)
            .is_ok()
    );
    let failed = Threshold::parse("verify.p50<1us").unwrap().check(&report);
    assert!(failed.unwrap_err().contains("violated"));
    assert!(
        Threshold::parse("throughput>1000000")
            .unwrap()
            .check(&report)
            .is_err()
    );
    assert!(
        Threshold::parse("nothing.p99<1s")
            .unwrap()
            .check(&report)
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_model_run_writes_json_and_svg_and_measures_the_ceiling() {
    let sink = Sink::bind("127.0.0.1:0").await.unwrap();
    let server = otpd_for(&sink).await;
    let accounts = seeded(&server, 50).await;
    let mut opts = options(&server, "step-up", Model::Closed { concurrency: 8 });
    opts.max_flows = Some(100);
    opts.ceiling = Some((4, Duration::from_millis(300)));
    let report = run(opts, sink, accounts).await.unwrap();
    assert_eq!(ok(&report, "step-up"), 100, "{}", report.table());
    let ceiling = report.ceiling.unwrap();
    assert!(ceiling > 0.0);
    let json = report.json();
    assert_eq!(json["flows"]["step-up"]["ok"], 100);
    assert!(json["steps"]["verify"]["p99_us"].as_u64().unwrap() > 0);
    assert!(
        json["steps"]["verify"]["ceiling_fraction"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let svg = report.svg();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(report.argon2_ceiling.is_none());
    assert!(
        svg.matches("<polyline").count() >= 3,
        "p50, p99 and spectrum lines"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(back["flows"]["step-up"]["ok"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_run_is_compared_with_the_raw_argon2_rate() {
    let sink = Sink::bind("127.0.0.1:0").await.unwrap();
    let server = otpd_for(&sink).await;
    let accounts = seeded(&server, 20).await;
    let mut opts = options(&server, "login", Model::Closed { concurrency: 4 });
    opts.max_flows = Some(40);
    opts.argon2_ceiling = Some(loadtest::Argon2Ceiling {
        params: TEST_ARGON2,
        threads: 2,
        duration: Duration::from_millis(200),
    });
    let report = run(opts, sink, accounts).await.unwrap();
    assert_eq!(ok(&report, "login"), 40, "{}", report.table());
    assert!(report.argon2_ceiling.unwrap() > 0.0);
    let json = report.json();
    assert!(json["argon2_ceiling_per_second"].as_f64().unwrap() > 0.0);
    assert!(json["flows"]["login"]["argon2_fraction"].as_f64().unwrap() > 0.0);
    assert!(
        report.table().contains("the raw Argon2 rate"),
        "{}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_refuses_accounts_that_already_exist() {
    let sink = Sink::bind("127.0.0.1:0").await.unwrap();
    let server = otpd_for(&sink).await;
    seeded(&server, 5).await;
    let http = Http::new(&server.url, &server.key, Duration::from_secs(30));
    let err = seed::seed(&http, 0, 5, "4821", TEST_ARGON2, seed::MAX_BATCH)
        .await
        .unwrap_err();
    assert!(err.contains("reuse the accounts file"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accounts.txt");
    // Two per request: two requests, every account in order.
    let accounts = seed::seed(&http, 100, 3, "4821", TEST_ARGON2, 2)
        .await
        .unwrap();
    assert_eq!(accounts.len(), 3);
    seed::save(&file, &accounts).unwrap();
    assert_eq!(seed::load(&file).unwrap(), accounts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_flow_proves_phones_with_no_account() {
    let sink = Sink::bind("127.0.0.1:0").await.unwrap();
    let server = otpd_for(&sink).await;
    let accounts = seeded(&server, 50).await;
    let report = run(
        options(&server, "destination", Model::Closed { concurrency: 8 }),
        sink,
        accounts,
    )
    .await
    .unwrap();
    let table = report.table();
    assert_eq!(report.error_rate(), 0.0, "{table}");
    assert_eq!(ok(&report, "destination"), 200, "{table}");
    // Each code sent reached the sink and was proven.
    assert_eq!(ok(&report, "send"), 200, "{table}");
    assert_eq!(ok(&report, "deliver"), 200, "{table}");
    assert_eq!(ok(&report, "check"), 200, "{table}");
    assert_eq!(report.sink, (200, 0), "{table}");
}
