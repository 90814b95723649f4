//! The files in deploy/ against a running server: the Grafana dashboard is a
//! dashboard, and every metric it and the Prometheus alert rules query is one
//! otpd exports.

use std::collections::BTreeSet;

use hyper::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const DASHBOARD: &str = include_str!("../../deploy/grafana/otpd.json");
const RULES: &str = include_str!("../../deploy/prometheus/otpd-rules.yml");

/// Series the queries may name that Prometheus makes, not otpd.
const FROM_PROMETHEUS: &[&str] = &["up"];

#[test]
fn the_dashboard_is_a_grafana_dashboard_whose_panels_all_query_prometheus() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("otpd.json is JSON");
    assert_eq!(dashboard["uid"], "otpd");
    assert!(dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].is_u64());
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| v["name"].as_str().expect("a variable's name"))
        .collect();
    assert_eq!(variables, ["datasource", "instance"]);

    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for panel in panels {
        let title = panel["title"]
            .as_str()
            .filter(|t| !t.is_empty())
            .expect("every panel has a title");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "{title}: id {id} is taken");
        let grid = &panel["gridPos"];
        let [x, _, w, h] = ["x", "y", "w", "h"].map(|k| {
            grid[k]
                .as_u64()
                .unwrap_or_else(|| panic!("{title}: gridPos.{k}"))
        });
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos {grid}");
        if panel["type"] == "row" {
            continue;
        }
        assert!(panel["type"].is_string(), "{title}: type");
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{title}: no targets"));
        let mut refs = BTreeSet::new();
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .filter(|e| !e.trim().is_empty())
                .unwrap_or_else(|| panic!("{title}: a target without an expr"));
            let id = target["refId"].as_str().expect("refId");
            assert!(refs.insert(id), "{title}: refId {id} is taken");
            assert!(
                !metric_names(expr).is_empty(),
                "{title}: {expr} names no metric"
            );
            queries += 1;
        }
    }
    assert!(queries >= 30, "only {queries} queries");
}

#[test]
fn metric_names_are_the_selectors_of_an_expression() {
    let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(otpd_http_request_duration_seconds_bucket{route!~"/metrics|x_y", instance=~"$instance"}[$__rate_interval]))) > 0.25
        and on (instance) sum without (job) (otpd_ready offset 5m) * 1e6 or vector(0) unless up{job="otpd"} == bool 1"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from([
            "otpd_http_request_duration_seconds_bucket".to_owned(),
            "otpd_ready".to_owned(),
            "up".to_owned(),
        ])
    );
    let rules = "      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: B\n        expr: |\n          a > 1\n          and\n          b\n        labels: {}\n";
    assert_eq!(rule_expressions(rules), ["up == 0", "a > 1\nand\nb"]);
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let app = spawn_app().await;
    // Traffic that makes otpd emit what is emitted only on an event: a code
    // issued and delivered by SMS, a refusal by a limit, a wrong and a right
    // code, the attestation of the approval, and a retry answered from an
    // idempotency key.
    let keyed = app.with_idempotency_key("deploy-register");
    keyed.registered(PHONE, "12345678").await;
    assert!(
        keyed
            .register(PHONE, "12345678")
            .await
            .headers
            .contains_key("idempotent-replayed")
    );
    let (challenge, code) = app.login_code(PHONE).await;
    let resend = app.resend(&challenge).await;
    assert_eq!(
        (resend.status.as_u16(), resend.error_code()),
        (429, "too_soon")
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        app.verify(&challenge, wrong).await.status,
        StatusCode::UNAUTHORIZED
    );
    let approved = app.verify(&challenge, &code).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    // The sender counts an attempt before it records the outcome that the
    // challenge's status reads.
    while app.challenge_status(&challenge).await.body["delivery"] != "sent" {
        tokio::task::yield_now().await;
    }
    // The gauges otherwise refresh every 5 s.
    otpd::startup::publish_metrics(&app.state);
    let scraped = app.metrics().await.text;
    let exported: BTreeSet<&str> = scraped
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or(""))
        .collect();

    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queried.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            let selector = query
                .strip_prefix("label_values(")
                .and_then(|q| q.split(',').next())
                .expect("a label_values(metric, label) query");
            queried.extend(metric_names(selector));
        }
    }
    let in_dashboard = queried.clone();
    let expressions = rule_expressions(RULES);
    assert!(expressions.len() >= 10, "{expressions:?}");
    for expr in &expressions {
        queried.extend(metric_names(expr));
    }

    // A cluster node leaves out the gauges of what only the cluster holds
    // (docs/OPERATIONS.md, "Metrics"): the dashboard's panels go empty there.
    // Limiter sizes are the embedded store's (a cluster's buckets expire by
    // themselves), and the cluster's health is a cluster node's.
    let not_on_a_cluster = [
        "otpd_accounts",
        "otpd_active_challenges",
        "otpd_limiter_keys",
        "otpd_limiter_overflow_total",
    ];
    let only_on_a_cluster = [
        "otpd_cluster_errors_total",
        "otpd_cluster_cas_retries_total",
        "otpd_cluster_wait_timeouts_total",
        "otpd_rate_limit_unanswered_total",
        "otpd_sms_tallies_lost_total",
        "otpd_outbox_handoffs_total",
        "otpd_outbox_claims_total",
        "otpd_outbox_leases_expired_total",
    ];
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !FROM_PROMETHEUS.contains(&name.as_str()))
        .filter(|name| !exported.contains(name.as_str()))
        .filter(|name| match crate::BACKEND {
            otpd::config::Backend::Sled => !only_on_a_cluster.contains(&name.as_str()),
            _ => !not_on_a_cluster.contains(&name.as_str()),
        })
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not in /metrics: {missing:?}\n{scraped}"
    );

    // And the other way: the dashboard shows every metric otpd exports.
    let families: BTreeSet<&str> = scraped
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let unshown: Vec<&&str> = families
        .iter()
        .filter(|family| {
            !in_dashboard.iter().any(|name| {
                name == *family
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| *name == format!("{family}{suffix}"))
            })
        })
        .collect();
    assert!(unshown.is_empty(), "exported but on no panel: {unshown:?}");
}

/// The metric names a PromQL expression selects: every identifier that is
/// not a function, operator, keyword, label matcher, grouping label, range,
/// number, string or Grafana variable.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Operators, keywords and aggregations: never metrics, called or not.
    const KEYWORDS: &str = "and or unless bool offset group_left group_right inf nan \
        sum min max avg count group stddev stdvar topk bottomk quantile count_values";
    const GROUPING: &str = "by without on ignoring group_left group_right";
    let listed = |list: &str, word: &str| list.split_whitespace().any(|w| w == word);
    let chars: Vec<char> = expr.chars().collect();
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    // From an opening bracket to just past its closing one, strings inside skipped.
    let past_bracket = |mut i: usize| {
        let (open, close) = match chars[i] {
            '{' => ('{', '}'),
            '[' => ('[', ']'),
            _ => ('(', ')'),
        };
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => i = past_string(&chars, i) - 1,
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' || c == '[' {
            i = past_bracket(i);
        } else if c == '"' || c == '\'' || c == '`' {
            i = past_string(&chars, i);
        } else if c == '$' || c == '.' || c.is_ascii_digit() {
            i += 1;
            while i < chars.len() && (word_char(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if word_char(c) {
            let start = i;
            while i < chars.len() && word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = (i..chars.len()).find(|&j| !chars[j].is_whitespace());
            let called = next.is_some_and(|j| chars[j] == '(');
            match next {
                Some(j) if called && listed(GROUPING, &word) => i = past_bracket(j),
                _ if called || listed(KEYWORDS, &word) => {}
                _ => {
                    names.insert(word);
                }
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Just past the string literal that opens at `i` (escapes honoured).
fn past_string(chars: &[char], i: usize) -> usize {
    let quote = chars[i];
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        j += if chars[j] == '\\' { 2 } else { 1 };
    }
    j + 1
}

/// The `expr:` of every rule in a rules file: one line, or a `|` block of
/// more-indented lines.
fn rule_expressions(rules: &str) -> Vec<String> {
    let mut expressions = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let key_indent = line.len() - line.trim_start().len();
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if !["|", "|-", ">", ">-"].contains(&value) {
            expressions.push(value.to_owned());
            continue;
        }
        let mut block = Vec::new();
        while let Some(next) = lines.peek() {
            let indent = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && indent <= key_indent {
                break;
            }
            block.push(next.trim());
            lines.next();
        }
        expressions.push(block.join("\n").trim().to_owned());
    }
    expressions
}
