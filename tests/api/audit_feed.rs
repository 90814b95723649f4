//! The audit trail's feed over HTTP, as a SIEM follows it: pages in order,
//! long polls, exports assembled from the feed and checked against the
//! published key, `since`, and bad parameters.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;

use crate::audit::{feed_from, kind, seq};
use crate::helpers::*;

#[tokio::test]
async fn the_feed_pages_in_order_and_a_long_poll_returns_when_an_event_arrives() {
    let app = spawn_app().await;
    let ana = app.registered(PHONE, "12345678").await;
    app.registered("+351912000002", "23456789").await;
    let (id, code) = app.login_code(PHONE).await;
    assert_eq!(app.verify(&id, &code).await.status, 200);

    let all = app.events("after=0&limit=1000").await;
    assert_eq!(all.status, 200, "{}", all.text);
    let events = all.body["events"].as_array().unwrap().clone();
    let seqs: Vec<u64> = events.iter().map(seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "every event from the first, in order, no gaps"
    );
    let last = *seqs.last().unwrap();
    assert_eq!(all.body["next_after"], last);
    assert!(all.body["durable_seq"].as_u64().unwrap() >= last);
    let kinds: Vec<&str> = events.iter().map(kind).collect();
    for wanted in [
        "client_added",
        "registered",
        "login_accepted",
        "code_accepted",
    ] {
        assert!(kinds.contains(&wanted), "{wanted} not in {kinds:?}");
    }
    // The test's clients were added before the server ran: no caller.
    assert_eq!(events[0]["client"], Value::Null);
    assert_eq!(app.events("").await.body["events"], all.body["events"]);

    // Two at a time from the start, and from the middle.
    assert_eq!(feed_from(&app, 0, 2).await, events);
    assert_eq!(feed_from(&app, 3, 2).await, events[3..].to_vec());

    // Nothing new: a poll waits out its `wait`, then answers with nothing.
    let started = Instant::now();
    let r = app.events(&format!("after={last}&wait=1")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["events"], Value::Array(Vec::new()));
    assert_eq!(r.body["next_after"], last);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it did not wait"
    );

    // A poll waiting when an event arrives returns it without waiting out its time.
    let poller = (*app).clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move { poller.events(&format!("after={last}&wait=9")).await });
    // A round trip after the poll was sent: the poll is in, and still waiting.
    assert_eq!(app.livez().await.status, 200);
    assert!(!poll.is_finished(), "the poll answered before any event");
    assert_eq!(app.lock(&ana, "reported stolen phone").await.status, 200);
    let r = poll.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let got = r.body["events"].as_array().unwrap();
    assert!(!got.is_empty(), "{}", r.text);
    assert_eq!(seq(&got[0]), last + 1);
    assert!(got.iter().any(|e| kind(e) == "locked"), "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the poll waited out its time: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_long_poll_in_flight_answers_when_the_server_stops_instead_of_holding_the_drain() {
    let mut app = spawn_app().await;
    app.registered(PHONE, "12345678").await;
    let last = app.events("").await.body["next_after"].as_u64().unwrap();
    let poller = (*app).clone();
    let poll = tokio::spawn(async move { poller.events(&format!("after={last}&wait=9")).await });
    assert_eq!(app.livez().await.status, 200);
    assert!(!poll.is_finished(), "the poll answered before the stop");
    // The drain grace (2 s here) is shorter than the poll's wait: a poll
    // that held on would be cut off with no answer.
    assert!(app.config.server.shutdown_grace_ms < 9_000);
    let started = Instant::now();
    app.stop().await.unwrap();
    let r = poll.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["events"], Value::Array(Vec::new()));
    assert_eq!(
        r.body["next_after"], last,
        "the follower resumes where it was"
    );
    assert!(
        started.elapsed() < Duration::from_millis(app.config.server.shutdown_grace_ms),
        "the stop waited out the drain: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_export_assembled_from_the_feed_and_its_trailer_verifies_with_the_published_key() {
    let app = spawn_app_with(|c| c.audit.checkpoint_every = 3).await;
    app.registered(PHONE, "12345678").await;
    let (id, code) = app.login_code(PHONE).await;
    assert_eq!(app.verify(&id, &code).await.status, 200);
    let events = feed_from(&app, 0, 1000).await;
    assert!(events.iter().any(|e| kind(e) == "checkpoint"));
    let last = seq(events.last().unwrap());

    let info = app.audit_info().await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.body["checkpoint_every"], 3);
    let key = engine::audit::AuditPublicKey::parse(info.body["public_key"].as_str().unwrap())
        .expect("64 hex digits");
    let trailer = app.event_trailer(last).await;
    assert_eq!(trailer.status, 200, "{}", trailer.text);
    assert_eq!(trailer.body["trailer"]["seq"], last);
    assert_eq!(
        trailer.body["trailer"]["hash"],
        events.last().unwrap()["hash"]
    );

    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let export = format!("{}\n{}\n", lines.join("\n"), trailer.text);
    match otpd::audit::check_export(&export, &key, 3).unwrap() {
        otpd::audit::ExportCheck::Holds(report) => assert_eq!(report.last, last),
        otpd::audit::ExportCheck::Broken(b) => panic!("{b}"),
    }
    // A trailer for a different event does not close this export.
    let earlier = app.event_trailer(last - 1).await;
    let export = format!("{}\n{}\n", lines.join("\n"), earlier.text);
    let otpd::audit::ExportCheck::Broken(b) = otpd::audit::check_export(&export, &key, 3).unwrap()
    else {
        panic!("an export closed by another event's trailer verified");
    };
    assert_eq!(b.seq, last, "{b}");

    for (path, field) in [
        (format!("/v1/admin/events/{}/trailer", last + 100), "seq"),
        ("/v1/admin/events/abc/trailer".to_owned(), "seq"),
    ] {
        let r = app
            .request(Method::GET, &path, Some(&app.admin_key), None)
            .await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn since_starts_the_feed_at_the_checkpoint_before_that_time() {
    let app = spawn_app_with(|c| c.audit.checkpoint_every = 2).await;
    for n in 1..=4u64 {
        app.clock.advance(Duration::from_secs(3600));
        let phone = format!("+35191200000{n}");
        app.registered(&phone, &format!("1234567{n}")).await;
    }
    let all = feed_from(&app, 0, 1000).await;
    let at = |e: &Value| e["at_ms"].as_u64().unwrap();
    // The third registration's time, to the millisecond.
    let since_ms = START.0 + 3 * 3_600_000;
    let since = "2026-11-23T03:00:00Z";
    let r = app.events(&format!("since={since}&limit=1000")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let from_since = r.body["events"].as_array().unwrap();
    let first = &from_since[0];
    assert_eq!(kind(first), "checkpoint", "{}", r.text);
    assert!(at(first) <= since_ms, "{first}");
    assert!(seq(first) > 1, "it skipped what came before: {first}");
    // From that checkpoint on, everything.
    let tail: Vec<Value> = all
        .iter()
        .filter(|e| seq(e) >= seq(first))
        .cloned()
        .collect();
    assert_eq!(from_since, &tail);
    // Every event from that time on, the ones at that very millisecond too.
    let wanted: Vec<u64> = all.iter().filter(|e| at(e) >= since_ms).map(seq).collect();
    let got: Vec<u64> = from_since.iter().map(seq).collect();
    for s in &wanted {
        assert!(
            got.contains(s),
            "event {s} (at or after {since}) missing from {got:?}"
        );
    }
    assert_eq!(
        wanted
            .iter()
            .filter(|s| kind(&all[**s as usize - 1]) == "registered")
            .count(),
        2,
        "{all:?}"
    );
}

#[tokio::test]
async fn bad_audit_parameters_are_refused_naming_the_parameter() {
    let app = spawn_app().await;
    let account = app.registered(PHONE, "12345678").await;
    for (query, field) in [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=100000", "limit"),
        ("wait=61", "wait"),
        ("wait=10", "wait"),
        ("wait=soon", "wait"),
        ("after=0&since=2026-11-23T00:00:00Z", "since"),
        ("since=yesterday", "since"),
    ] {
        let r = app.events(query).await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (400, "invalid_field"),
            "{query}: {}",
            r.text
        );
        assert_eq!(r.body["error"]["field"], field, "{query}: {}", r.text);
    }
    // Above what the request's time limit allows, the message says why.
    let r = app.events("wait=10").await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request_timeout_ms"),
        "{}",
        r.text
    );
    for (query, field) in [
        ("before=abc", "before"),
        ("before=0", "before"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
    ] {
        let r = app.account_events(&account, query).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert_eq!(r.body["error"]["field"], field, "{query}: {}", r.text);
    }
    let r = app.account_events("not-an-id", "").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["field"], "account_id", "{}", r.text);
    let r = app.account_events(&"ab".repeat(16), "").await;
    assert_eq!(r.status, 404, "{}", r.text);
}
