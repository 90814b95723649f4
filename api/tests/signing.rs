//! Signing keys and attestations through the real `otpd` binary:
//! `otpd verify-attestation` with its exit codes, `otpd keys` against a
//! running server and offline, and keys that survive a restart and a
//! restore from backup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::{Api, OTPD, Server, cli, otpd};

const HASH: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443322";

fn signing_client(data: &Path) -> String {
    let (ok, key, err) = cli(
        data,
        &["client", "add", "portal", "--scopes", "accounts,admin,sign"],
    );
    assert!(ok, "{err}");
    key.trim().to_owned()
}

/// Registers a citizen and has them approve signing the document: the token.
async fn approve(api: &Api, phone: &str, number: &str) -> String {
    let (status, body) = api
        .post(
            "/v1/accounts",
            json!({
                "identity": { "kind": "civil_id", "number": number },
                "phone": phone, "pin": "4821",
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let document = json!({ "name": "contrato.pdf", "sha256": HASH });
    let (status, body) = api
        .post(
            "/v1/signatures",
            json!({ "phone": phone, "pin": "4821", "document": document }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let id = body["challenge_id"].as_str().unwrap();
    let code = api.codes.for_challenge(id).await.unwrap();
    let (status, body) = api
        .post(
            "/v1/signatures/verify",
            json!({ "challenge_id": id, "code": code }),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["attestation"].as_str().unwrap().to_owned()
}

/// `otpd verify-attestation`: (exit code, stdout, stderr).
fn verify_attestation(jwks: &str, token: &str, sha256: Option<&str>) -> (i32, String, String) {
    let mut command = Command::new(OTPD);
    command.args(["verify-attestation", "--jwks", jwks]);
    if let Some(sha256) = sha256 {
        command.args(["--sha256", sha256]);
    }
    let out = command.arg(token).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `otpd keys ARGS` asking the server at `server`.
fn keys(data: &Path, server: &Server, admin_key: &str, args: &[&str]) -> (bool, String, String) {
    let out = otpd(data)
        .env("OTPD_ADMIN_KEY", admin_key)
        .arg("keys")
        .args(args)
        .args(["--server", &format!("http://{}", server.address)])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn active_kid(listing: &str) -> String {
    listing
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.get(1) == Some(&"active"))
        .map(|words| words[0])
        .unwrap_or_else(|| panic!("no active key in:\n{listing}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestations_verify_offline_and_keys_rotate_retire_and_survive_restart_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = signing_client(&data);
    let server = Server::start(&data);
    let api = Api::new(&server, &key);
    let token = approve(&api, "+351912000001", "12345678").await;
    let jwks = format!("http://{}/.well-known/jwks.json", server.address);

    let (code, out, err) = verify_attestation(&jwks, &token, Some(HASH));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("valid: signature approved by account"),
        "{out}"
    );
    assert!(
        out.contains("through portal") && out.contains("contrato.pdf"),
        "{out}"
    );
    let (code, _, err) = verify_attestation(&jwks, &token, Some(&"0".repeat(64)));
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid attestation: the token approves document"),
        "{err}"
    );
    let (code, _, err) = verify_attestation(&jwks, "not.a.token", None);
    assert_eq!(code, 1);
    assert!(err.contains("not a JWS"), "{err}");
    let (code, _, err) = verify_attestation("/no/such/file.json", &token, None);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read the key set"), "{err}");

    // Rotation while the server runs goes through its admin API.
    let (ok, listing, err) = keys(&data, &server, &key, &["list"]);
    assert!(ok, "{err}");
    let first = active_kid(&listing);
    let (ok, out, err) = keys(&data, &server, &key, &["rotate"]);
    assert!(ok, "{err}");
    let second = active_kid(&out);
    assert_ne!(first, second);
    assert!(out.contains(&format!("{first}  previous")), "{out}");
    let (code, _, err) = verify_attestation(&jwks, &token, Some(HASH));
    assert_eq!(code, 0, "within the overlap: {err}");
    let (ok, _, err) = keys(&data, &server, &key, &["retire", &second]);
    assert!(!ok && err.contains("active key"), "{err}");
    let (ok, _, err) = keys(&data, &server, &key, &["retire", &first]);
    assert!(ok, "{err}");
    let (code, _, err) = verify_attestation(&jwks, &token, None);
    assert_eq!(code, 1);
    assert!(err.contains("not in the key set"), "{err}");
    let fresh = approve(&api, "+351912000002", "23456789").await;
    let saved = tempfile::NamedTempFile::new().unwrap();
    let (_, body) = api
        .call(hyper::Method::GET, "/.well-known/jwks.json", None)
        .await
        .unwrap();
    std::fs::write(saved.path(), body.to_string()).unwrap();
    let saved = saved.path().to_str().unwrap().to_owned();
    assert_eq!(verify_attestation(&saved, &fresh, Some(HASH)).0, 0);

    // A backup taken while it runs; then stop.
    let backup = dir.path().join("backup");
    let out = otpd(&data)
        .env("OTPD_ADMIN_KEY", &key)
        .args([
            "backup",
            "--server",
            &format!("http://{}", server.address),
            "--to",
        ])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = server.terminate();
    assert!(status.success());

    // Offline, the key files themselves.
    let (ok, listing, err) = cli(&data, &["keys", "list"]);
    assert!(ok, "{err}");
    assert_eq!(active_kid(&listing), second);
    assert!(listing.contains(&format!("{first}  retired")), "{listing}");

    // The keys are outside the store: a restore keeps them, and the same key set is served.
    let (ok, _, err) = cli(
        &data,
        &["restore", "--from", backup.to_str().unwrap(), "--replace"],
    );
    assert!(ok, "{err}");
    let server = Server::start(&data);
    let jwks = format!("http://{}/.well-known/jwks.json", server.address);
    let (code, _, err) = verify_attestation(&jwks, &fresh, Some(HASH));
    assert_eq!(code, 0, "after restart and restore: {err}");
    let api = Api::new(&server, &key);
    let (_, served) = api
        .call(hyper::Method::GET, "/.well-known/jwks.json", None)
        .await
        .unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(served, saved);
    server.kill();
}

#[test]
fn a_signing_key_from_the_environment_is_used_and_rotation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // PKCS#8 v1 of the RFC 8032 test key 1 (what `openssl genpkey -algorithm ed25519` writes).
    let pem = "-----BEGIN PRIVATE KEY-----\n\
               MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
               -----END PRIVATE KEY-----\n";
    let run = |args: &[&str]| {
        let out = otpd(&data)
            .env("OTPD_SIGNING_KEY", "env:SIGNING_PEM")
            .env("SIGNING_PEM", pem)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Before the first start there are no keys to list (a mistyped
    // --data-dir must not look like a key ring).
    let (ok, _, err) = run(&["keys", "list"]);
    assert!(!ok && err.contains("no signing keys"), "{err}");
    let mut first_start = otpd(&data);
    first_start
        .env("OTPD_SIGNING_KEY", "env:SIGNING_PEM")
        .env("SIGNING_PEM", pem);
    Server::spawn(first_start).kill();
    let (ok, listing, err) = run(&["keys", "list"]);
    assert!(ok, "{err}");
    // RFC 8037 A.3: this key's thumbprint.
    assert!(
        listing.contains("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k  active  (from signing.key)"),
        "{listing}"
    );
    assert!(
        !std::fs::read_dir(data.join("signing")).unwrap().any(|f| f
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("kPrK"))
    );
    let (ok, _, err) = run(&["keys", "rotate"]);
    assert!(!ok && err.contains("signing.key"), "{err}");
    let out = otpd(&data)
        .env("OTPD_SIGNING_KEY", "env:NOT_SET_ANYWHERE")
        .args(["keys", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NOT_SET_ANYWHERE"), "{err}");
}
