//! `otpd audit` through the real binary: exports through a running server
//! and from the stopped store verify offline (with the code key, or with
//! only the public key), and each way of tampering with an export exits 1
//! naming the first event at fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::audit::{AuditRecord, EventKind, canonical};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Api, OTPD, Server, add_client, otpd_with, settings};

/// The test settings with a checkpoint every four events, so a short trail has several.
fn audit_settings() -> Vec<(&'static str, &'static str)> {
    let mut all = settings();
    all.push(("OTPD_AUDIT_CHECKPOINT_EVERY", "4"));
    all
}

/// `otpd audit ARGS` on `data`: (exit code, stdout, stderr).
fn audit(data: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = otpd_with(data, &audit_settings())
        .envs(env.iter().copied())
        .arg("audit")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `otpd audit verify --export FILE` with the code key: (exit code, stdout, stderr).
fn verify_export(data: &Path, file: &Path) -> (i32, String, String) {
    audit(data, &[], &["verify", "--export", file.to_str().unwrap()])
}

/// A store on which a citizen registered, failed a PIN, logged in, and was
/// locked and unlocked by an operator; its server still running.
struct Trail {
    dir: tempfile::TempDir,
    data: PathBuf,
    key: String,
    server: Server,
}

impl Trail {
    async fn new() -> Trail {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key = add_client(&data);
        let server = Server::spawn(otpd_with(&data, &audit_settings()));
        let api = Api::new(&server, &key);
        let (status, body) = api
            .post(
                "/v1/accounts",
                json!({ "identity": { "kind": "civil_id", "number": "12345678" },
                    "phone": "+351912000001", "pin": "4821" }),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let account = body["account_id"].as_str().unwrap().to_owned();
        let login = |pin: &str| json!({ "phone": "+351912000001", "pin": pin });
        let (status, _) = api.post("/v1/login", login("9135")).await.unwrap();
        assert_eq!(status, 401);
        let (status, body) = api.post("/v1/login", login("4821")).await.unwrap();
        assert_eq!(status, 201, "{body}");
        let id = body["challenge_id"].as_str().unwrap();
        let code = api.codes.for_challenge(id).await.unwrap();
        let answer = json!({ "challenge_id": id, "code": code });
        let (status, body) = api.post("/v1/verify", answer).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let admin = format!("/v1/admin/accounts/{account}");
        let reason = json!({ "reason": "reported stolen" });
        let (status, body) = api.post(&format!("{admin}/lock"), reason).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, body) = api
            .post(&format!("{admin}/unlock"), json!({}))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        Trail {
            dir,
            data,
            key,
            server,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `otpd audit export ARGS --to FILE` through the running server.
    fn export_online(&self, name: &str, args: &[&str]) -> PathBuf {
        let to = self.file(name);
        let server = format!("http://{}", self.server.address);
        let mut all = vec!["export", "--server", &server, "--to", to.to_str().unwrap()];
        all.extend_from_slice(args);
        let (code, _, err) = audit(&self.data, &[("OTPD_ADMIN_KEY", &self.key)], &all);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("events exported"), "{err}");
        to
    }

    /// Stops the server (SIGTERM: a clean stop).
    fn stop(self) -> Stopped {
        assert!(self.server.terminate().success());
        Stopped {
            dir: self.dir,
            data: self.data,
        }
    }
}

/// The same store with its server stopped.
struct Stopped {
    dir: tempfile::TempDir,
    data: PathBuf,
}

impl Stopped {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `otpd audit export ARGS --to FILE` from the stopped store.
    fn export_offline(&self, name: &str, args: &[&str]) -> PathBuf {
        let to = self.file(name);
        let mut all = vec!["export", "--to", to.to_str().unwrap()];
        all.extend_from_slice(args);
        let (code, _, err) = audit(&self.data, &[], &all);
        assert_eq!(code, 0, "{err}");
        to
    }
}

/// An export's lines: the events, then the trailer.
fn read_lines(file: &Path) -> (Vec<Value>, Value) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trailer = lines.pop().unwrap();
    assert!(trailer.get("trailer").is_some(), "no trailer: {text}");
    (lines, trailer)
}

fn write_lines(file: &Path, events: &[Value], trailer: Option<&Value>) {
    let mut text = String::new();
    for line in events.iter().chain(trailer) {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(file, text).unwrap();
}

fn seq(event: &Value) -> u64 {
    event["seq"].as_u64().unwrap()
}

fn at_ms(event: &Value) -> u64 {
    event["at_ms"].as_u64().unwrap()
}

/// Re-links `records` from index `from` on as a forger without the key
/// would: every `prev` and `hash` recomputed, signatures left as they were.
fn rehash(records: &mut [AuditRecord], from: usize) {
    for i in from..records.len() {
        let prev = if i == 0 { [0; 32] } else { records[i - 1].hash };
        let r = &mut records[i];
        r.prev = prev;
        let mut hasher = Sha256::new();
        hasher.update(prev);
        hasher.update(canonical(r.seq, r.at, &r.event));
        r.hash = hasher.finalize().into();
    }
}

fn records_of(events: &[Value]) -> Vec<AuditRecord> {
    events
        .iter()
        .map(|e| otpd::audit::from_json(e).unwrap())
        .collect()
}

fn lines_of(records: &[AuditRecord]) -> Vec<Value> {
    records.iter().map(otpd::audit::to_json).collect()
}

/// `trailer` claiming `hash` as the last event's (its signature left alone).
fn trailer_claiming(trailer: &Value, last: &AuditRecord) -> Value {
    let mut forged = trailer.clone();
    forged["trailer"]["seq"] = last.seq.into();
    forged["trailer"]["hash"] = hex::encode(last.hash).into();
    forged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_through_the_running_server_and_from_the_stopped_store_verify() {
    let trail = Trail::new().await;
    let online = trail.export_online("online.jsonl", &[]);
    let (code, out, err) = verify_export(&trail.data, &online);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("audit chain ok: events 1 to "), "{out}");
    let (events, _) = read_lines(&online);
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in [
        "client_added",
        "registered",
        "login_wrong_pin",
        "login_accepted",
        "code_accepted",
        "locked",
        "unlocked",
        "checkpoint",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    let by = |kind: &str| events.iter().find(|e| e["kind"] == kind).unwrap();
    assert_eq!(by("locked")["client"], "crash-test");
    assert!(by("locked")["request_id"].is_string());

    // The store cannot be checked under a running server; an export can.
    let (code, _, err) = audit(&trail.data, &[], &["verify"]);
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("--export"), "{err}");

    // From the time of the lock: from the checkpoint before it, verifying alone.
    let locked = by("locked");
    let since = locked["at"].as_str().unwrap().to_owned();
    let since_online = trail.export_online("since-online.jsonl", &["--since", &since]);
    let (code, _, err) = verify_export(&trail.data, &since_online);
    assert_eq!(code, 0, "{err}");
    let (from_since, _) = read_lines(&since_online);
    assert_eq!(from_since[0]["kind"], "checkpoint");
    assert!(seq(&from_since[0]) > 1 && at_ms(&from_since[0]) < at_ms(locked));
    let wanted: Vec<u64> = events
        .iter()
        .filter(|e| at_ms(e) >= at_ms(locked))
        .map(seq)
        .collect();
    let got: Vec<u64> = from_since.iter().map(seq).collect();
    assert!(
        wanted.iter().all(|s| got.contains(s)),
        "{wanted:?} in {got:?}"
    );

    let stopped = trail.stop();
    let (code, out, err) = audit(&stopped.data, &[], &["verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("audit chain ok: events 1 to "), "{out}");
    let offline = stopped.export_offline("offline.jsonl", &[]);
    let (code, _, err) = verify_export(&stopped.data, &offline);
    assert_eq!(code, 0, "{err}");
    // What the server exported is where the store's trail starts.
    let (all, _) = read_lines(&offline);
    assert!(all.len() >= events.len());
    assert_eq!(all[..events.len()], events[..]);

    let since_offline = stopped.export_offline("since-offline.jsonl", &["--since", &since]);
    let (code, _, err) = verify_export(&stopped.data, &since_offline);
    assert_eq!(code, 0, "{err}");
    let (offline_since, _) = read_lines(&since_offline);
    assert_eq!(offline_since[..from_since.len()], from_since[..]);

    // Up to the time of the wrong PIN: it ends there, signed.
    let wrong_pin = all.iter().find(|e| e["kind"] == "login_wrong_pin").unwrap();
    let until = wrong_pin["at"].as_str().unwrap();
    let early = stopped.export_offline("until.jsonl", &["--until", until]);
    let (code, _, err) = verify_export(&stopped.data, &early);
    assert_eq!(code, 0, "{err}");
    let (upto, trailer) = read_lines(&early);
    assert!(upto.iter().all(|e| at_ms(e) <= at_ms(wrong_pin)));
    assert!(upto.contains(wrong_pin));
    assert!(upto.len() < all.len());
    assert_eq!(trailer["trailer"]["seq"], seq(upto.last().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_way_of_tampering_with_an_export_exits_1_naming_the_first_bad_event() {
    let stopped = Trail::new().await.stop();
    let export = stopped.export_offline("export.jsonl", &[]);
    let (events, trailer) = read_lines(&export);
    let checkpoints: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "checkpoint")
        .map(seq)
        .collect();
    assert!(checkpoints.len() >= 2, "{checkpoints:?}");
    let index = |kind: &str| events.iter().position(|e| e["kind"] == kind).unwrap();
    let (wrong_pin, locked) = (index("login_wrong_pin"), index("locked"));
    let seq_at = |i: usize| seq(&events[i]);
    let last = events.len() - 1;

    let mut cases: Vec<(&str, Vec<Value>, Option<Value>, u64)> = Vec::new();
    let edit = |i: usize, change: &dyn Fn(&mut Value)| {
        let mut edited = events.clone();
        change(&mut edited[i]);
        edited
    };
    cases.push((
        "an event's detail edited",
        edit(locked, &|e| e["details"]["reason"] = "routine check".into()),
        Some(trailer.clone()),
        seq_at(locked),
    ));
    cases.push((
        "an event's client edited",
        edit(wrong_pin, &|e| e["client"] = "someone-else".into()),
        Some(trailer.clone()),
        seq_at(wrong_pin),
    ));
    cases.push((
        "an event's outcome edited",
        edit(wrong_pin, &|e| e["outcome"] = "success".into()),
        Some(trailer.clone()),
        seq_at(wrong_pin),
    ));
    cases.push((
        "an event's shown time edited",
        edit(locked, &|e| e["at"] = "2020-01-01T00:00:00.000Z".into()),
        Some(trailer.clone()),
        seq_at(locked),
    ));
    cases.push((
        "a field the hash does not cover added",
        edit(locked, &|e| e["approved_by"] = "the minister".into()),
        Some(trailer.clone()),
        seq_at(locked),
    ));
    let mut deleted = events.clone();
    deleted.remove(wrong_pin);
    cases.push((
        "an event deleted",
        deleted,
        Some(trailer.clone()),
        seq_at(wrong_pin),
    ));
    let mut swapped = events.clone();
    swapped.swap(locked, locked + 1);
    cases.push((
        "two events swapped",
        swapped,
        Some(trailer.clone()),
        seq_at(locked),
    ));
    cases.push((
        "the tail and the trailer cut off",
        events[..last - 1].to_vec(),
        None,
        seq_at(last - 1),
    ));
    cases.push((
        "the tail cut off under its trailer",
        events[..last - 1].to_vec(),
        Some(trailer.clone()),
        seq_at(last - 1),
    ));

    // Cut just before a checkpoint, closed with that checkpoint's signature
    // as the trailer: a checkpoint does not sign as a trailer does.
    let checkpoint = events
        .iter()
        .position(|e| e["kind"] == "checkpoint")
        .unwrap();
    let details = &events[checkpoint]["details"];
    let borrowed = json!({ "trailer": {
        "seq": seq_at(checkpoint - 1),
        "hash": details["covers_hash"],
        "signature": details["signature"],
    } });
    assert_eq!(details["covers_hash"], events[checkpoint - 1]["hash"]);
    cases.push((
        "the tail cut under a checkpoint's signature",
        events[..checkpoint].to_vec(),
        Some(borrowed),
        seq_at(checkpoint - 1),
    ));

    // A forger without the key changes the wrong PIN into a success and
    // re-links every event after it: the first checkpoint after it fails.
    let first_checkpoint_after = *checkpoints
        .iter()
        .find(|c| **c > seq_at(wrong_pin))
        .unwrap();
    let mut forged = records_of(&events);
    forged[wrong_pin].event.kind = EventKind::LoginAccepted;
    forged[wrong_pin].event.outcome = EventKind::LoginAccepted.outcome();
    rehash(&mut forged, wrong_pin);
    cases.push((
        "a re-hashed forgery under the old trailer",
        lines_of(&forged),
        Some(trailer.clone()),
        first_checkpoint_after,
    ));
    cases.push((
        "a re-hashed forgery with the trailer's hash rewritten",
        lines_of(&forged),
        Some(trailer_claiming(&trailer, forged.last().unwrap())),
        first_checkpoint_after,
    ));
    // ...or drops the checkpoints and renumbers: too many events unsigned.
    let mut unsigned: Vec<AuditRecord> = records_of(&events)
        .into_iter()
        .filter(|r| r.event.kind != EventKind::Checkpoint)
        .collect();
    for (i, r) in unsigned.iter_mut().enumerate() {
        r.seq = i as u64 + 1;
    }
    rehash(&mut unsigned, 0);
    cases.push((
        "a forgery with no checkpoints",
        lines_of(&unsigned),
        Some(trailer_claiming(&trailer, unsigned.last().unwrap())),
        5,
    ));

    for (what, lines, trailer, bad) in cases {
        let file = stopped.file("tampered.jsonl");
        write_lines(&file, &lines, trailer.as_ref());
        let (code, out, err) = verify_export(&stopped.data, &file);
        assert_eq!(code, 1, "{what}: not caught: {out}{err}");
        assert!(
            err.contains(&format!("audit chain broken at event {bad}:")),
            "{what}: expected event {bad}: {err}"
        );
    }
    // Bytes, not lines: a copy cut mid-line, a byte that is not UTF-8.
    let text = std::fs::read(&export).unwrap();
    let line_start = |i: usize| {
        let mut at = 0;
        for _ in 0..i {
            at += text[at..].iter().position(|b| *b == b'\n').unwrap() + 1;
        }
        at
    };
    let cut = text[..line_start(locked) + 40].to_vec();
    let mut garbled = text.clone();
    garbled[line_start(locked) + 20] = 0xff;
    for (what, bytes, bad) in [
        ("cut mid-line", cut, seq_at(locked)),
        ("a byte not UTF-8", garbled, seq_at(locked)),
    ] {
        let file = stopped.file("tampered.jsonl");
        std::fs::write(&file, bytes).unwrap();
        let (code, out, err) = verify_export(&stopped.data, &file);
        assert_eq!(code, 1, "{what}: not caught: {out}{err}");
        assert!(
            err.contains(&format!("audit chain broken at event {bad}:")),
            "{what}: expected event {bad}: {err}"
        );
    }
    // The untouched export still verifies.
    assert_eq!(verify_export(&stopped.data, &export).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_verifies_with_the_public_key_alone_and_another_key_fails() {
    let trail = Trail::new().await;
    let api = Api::new(&trail.server, &trail.key);
    let (status, about) = api
        .call(hyper::Method::GET, "/v1/admin/audit", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{about}");
    let stopped = trail.stop();
    let (code, out, err) = audit(&stopped.data, &[], &["public-key"]);
    assert_eq!(code, 0, "{err}");
    let public_key = out.trim().to_owned();
    assert_eq!(public_key.len(), 64, "{out}");
    assert_eq!(about["public_key"], public_key.as_str());
    let export = stopped.export_offline("export.jsonl", &[]);

    // No code key and no store: only the export and the public key.
    let auditor = |key: &str| {
        let out = Command::new(OTPD)
            .env_clear()
            .args(["--data-dir", "/nonexistent/otpd"])
            .args(["audit", "verify", "--export", export.to_str().unwrap()])
            .args(["--public-key", key])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = auditor(&public_key);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("audit chain ok"), "{out}");

    // The key of another code key.
    let elsewhere = stopped.file("elsewhere");
    let out = otpd_with(&elsewhere, &settings())
        .env("OTPD_CODE_KEY", "3b".repeat(32))
        .args(["audit", "public-key"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let other = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_ne!(other, public_key);
    let (events, _) = read_lines(&export);
    let first_checkpoint = events.iter().find(|e| e["kind"] == "checkpoint").unwrap();
    let (code, _, err) = auditor(&other);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "audit chain broken at event {}:",
            seq(first_checkpoint)
        )),
        "{err}"
    );
    let (code, _, err) = auditor("not-a-key");
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("--public-key"), "{err}");
}
