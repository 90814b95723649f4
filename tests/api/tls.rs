//! TLS and mutual TLS (`[server.tls]`): HTTPS with a key, client
//! certificates that stand in for a key or are needed with it, refusals
//! of the wrong, expired and foreign certificates, and reloading the
//! server's certificate without dropping connections. Every certificate
//! is made here, at test time.

use std::sync::Arc;

use bytes::Bytes;
use engine::{Durable, Scope, Scopes};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use otpd::config::{CertificateClient, CertificateMode, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::Value;

use crate::helpers::*;

/// A certificate chain and its key, as a client presents them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// The authorities of a test: one for the server, one for the clients,
/// and a stranger's; the server's files in a directory of their own.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: CertifiedIssuer<'static, KeyPair>,
    client_ca: CertifiedIssuer<'static, KeyPair>,
    stranger_ca: CertifiedIssuer<'static, KeyPair>,
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            server_ca: authority("otpd test server CA"),
            client_ca: authority("otpd test client CA"),
            stranger_ca: authority("someone else's CA"),
        };
        std::fs::write(pki.path("clients-ca.pem"), pki.client_ca.pem()).unwrap();
        pki.write_server_certificate(1);
        pki
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A server certificate for localhost and 127.0.0.1 with this serial,
    /// written over the server's files; returns it.
    fn write_server_certificate(&self, serial: u64) -> CertificateDer<'static> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.serial_number = Some(serial.into());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.server_ca).unwrap();
        std::fs::write(self.path("server.pem"), certificate.pem()).unwrap();
        std::fs::write(self.path("server.key"), key.serialize_pem()).unwrap();
        certificate.der().clone()
    }

    fn tls(&self, clients: &[(&str, &str, CertificateMode)]) -> TlsConfig {
        TlsConfig {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: self.path("clients-ca.pem"),
            clients: clients
                .iter()
                .map(|(name, subject, mode)| CertificateClient {
                    name: (*name).to_owned(),
                    subject: (*subject).to_owned(),
                    mode: *mode,
                })
                .collect(),
        }
    }

    /// A client certificate for `subject` (a DNS name) from the clients' authority.
    fn client(&self, subject: &str) -> Identity {
        self.issue(subject, &self.client_ca, |_| {})
    }

    fn issue(
        &self,
        subject: &str,
        by: &CertifiedIssuer<'static, KeyPair>,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Identity {
        let mut params = CertificateParams::new(vec![subject.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, subject);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, by).unwrap();
        Identity {
            chain: vec![certificate.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// Trusts the server's authority, presents `identity` if given.
    fn connector(&self, identity: Option<&Identity>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.server_ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// An open HTTPS connection, and the certificate the server showed on it.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    server_certificate: CertificateDer<'static>,
}

impl Connection {
    async fn open(
        app: &TestApp,
        pki: &Pki,
        identity: Option<&Identity>,
    ) -> Result<Connection, String> {
        let address = app.address.trim_start_matches("http://");
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = pki
            .connector(identity)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let server_certificate = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Connection {
            sender,
            server_certificate,
        })
    }

    /// `GET path` with `key` as the bearer token, if given.
    async fn get(&mut self, path: &str, key: Option<&str>) -> Result<(StatusCode, Value), String> {
        self.send(hyper::Method::GET, path, key, None).await
    }

    /// `method path` with `key` as the bearer token, if given, and a JSON body.
    async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let response = self
            .sender
            .send_request(request.body(Full::new(body)).unwrap())
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// `GET path` on a new connection presenting `identity`, with `key`.
async fn get(
    app: &TestApp,
    pki: &Pki,
    identity: Option<&Identity>,
    path: &str,
    key: Option<&str>,
) -> Result<(StatusCode, Value), String> {
    Connection::open(app, pki, identity)
        .await?
        .get(path, key)
        .await
}

/// Adds an admin-scoped client `name` and returns its key.
fn add_admin(app: &TestApp, name: &str) -> String {
    let (_, key) = app
        .state
        .engine
        .add_client(name, Scopes::of(&[Scope::Admin]))
        .and_then(Durable::wait)
        .unwrap();
    key.expose().to_owned()
}

const CLIENTS: &str = "/v1/admin/clients";

/// A server with "portal" mapped `instead` and "desk" mapped `also`.
async fn spawn_mutual_tls(pki: &Pki) -> (TestApp, String, String) {
    let tls = pki.tls(&[
        ("portal", "portal.example.gov.pt", CertificateMode::Instead),
        ("desk", "desk.example.gov.pt", CertificateMode::Also),
    ]);
    let app = spawn_app_with(|c| c.server.tls = tls).await;
    let portal = add_admin(&app, "portal");
    let desk = add_admin(&app, "desk");
    (app, portal, desk)
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Refused: at the handshake, on the first request, or with 401.
fn assert_refused(outcome: Result<(StatusCode, Value), String>, what: &str) {
    if let Ok((status, body)) = outcome {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }
}

#[tokio::test]
async fn plain_http_stays_the_default_and_tls_is_not_spoken_there() {
    let app = spawn_app().await;
    assert!(app.state.tls.is_none());
    assert_eq!(app.livez().await.status, StatusCode::OK);
    let pki = Pki::new();
    assert!(Connection::open(&app, &pki, None).await.is_err());
}

#[tokio::test]
async fn https_serves_a_client_with_its_key_alone_and_plain_http_is_refused() {
    let pki = Pki::new();
    let app = spawn_app_with(|c| c.server.tls = pki.tls(&[])).await;
    let (status, body) = get(&app, &pki, None, CLIENTS, Some(&app.admin_key))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // A client certificate nobody is mapped to changes nothing.
    let stranger = pki.client("nobody.example");
    let (status, _) = get(&app, &pki, Some(&stranger), CLIENTS, Some(&app.admin_key))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&app, &pki, Some(&stranger), CLIENTS, None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Plain HTTP on the TLS port gets no answer.
    let request = Request::get(format!("{}/livez", app.address))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    assert!(client.request(request).await.is_err());
}

#[tokio::test]
async fn a_certificate_mapped_instead_of_a_key_authenticates_its_client_alone() {
    let pki = Pki::new();
    let (app, portal_key, _) = spawn_mutual_tls(&pki).await;
    let portal = pki.client("portal.example.gov.pt");
    let (status, body) = get(&app, &pki, Some(&portal), CLIENTS, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // The key still works, with the certificate or without.
    for identity in [Some(&portal), None] {
        let (status, body) = get(&app, &pki, identity, CLIENTS, Some(&portal_key))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The client's scopes still apply.
    let (status, body) = get(&app, &pki, Some(&portal), "/v1/accounts/someone", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn a_client_that_must_also_present_its_certificate_is_refused_without_it() {
    let pki = Pki::new();
    let (app, _, desk_key) = spawn_mutual_tls(&pki).await;
    let (status, body) = get(&app, &pki, None, CLIENTS, Some(&desk_key))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(message(&body).contains("client certificate"), "{body}");
    assert!(message(&body).contains("desk"), "{body}");
    let desk = pki.client("desk.example.gov.pt");
    // The certificate alone is not enough either.
    let (status, body) = get(&app, &pki, Some(&desk), CLIENTS, None).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = get(&app, &pki, Some(&desk), CLIENTS, Some(&desk_key))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_certificate_for_one_client_cannot_act_as_another() {
    let pki = Pki::new();
    let (app, portal_key, desk_key) = spawn_mutual_tls(&pki).await;
    let portal = pki.client("portal.example.gov.pt");
    let desk = pki.client("desk.example.gov.pt");
    for (identity, key, certificate_for, key_for) in [
        (&portal, desk_key.as_str(), "portal", "desk"),
        (&desk, portal_key.as_str(), "desk", "portal"),
        (&portal, app.admin_key.as_str(), "portal", "admin-only"),
    ] {
        let (status, body) = get(&app, &pki, Some(identity), CLIENTS, Some(key))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let expected = format!(
            "the client certificate is for client {certificate_for:?}, the key is for client {key_for:?}"
        );
        assert_eq!(message(&body), expected, "{body}");
    }
}

#[tokio::test]
async fn expired_and_foreign_certificates_are_refused_and_the_server_keeps_serving() {
    let pki = Pki::new();
    let (app, portal_key, _) = spawn_mutual_tls(&pki).await;
    let expired = pki.issue("portal.example.gov.pt", &pki.client_ca, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let foreign = pki.issue("portal.example.gov.pt", &pki.stranger_ca, |_| {});
    for (identity, what) in [(&expired, "expired"), (&foreign, "foreign")] {
        assert_refused(get(&app, &pki, Some(identity), CLIENTS, None).await, what);
        // Not even with the client's own key.
        assert_refused(
            get(&app, &pki, Some(identity), CLIENTS, Some(&portal_key)).await,
            what,
        );
    }
    // Garbage instead of a handshake, and a handshake left unfinished.
    let address = app.address.trim_start_matches("http://");
    let mut garbage = tokio::net::TcpStream::connect(address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut garbage, b"\x16\x03\x01\xff\xffnot TLS at all")
        .await
        .unwrap();
    let _idle = tokio::net::TcpStream::connect(address).await.unwrap();
    let portal = pki.client("portal.example.gov.pt");
    let (status, body) = get(&app, &pki, Some(&portal), CLIENTS, None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_reload_puts_a_new_certificate_in_force_for_new_connections_only() {
    let pki = Pki::new();
    let app = spawn_app_with(|c| c.server.tls = pki.tls(&[])).await;
    let tls = app.state.tls.clone().unwrap();
    let mut before = Connection::open(&app, &pki, None).await.unwrap();
    let (status, _) = before.get(CLIENTS, Some(&app.admin_key)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tls.reload_if_changed(), None, "nothing changed yet");

    let renewed = pki.write_server_certificate(2);
    assert_ne!(before.server_certificate, renewed);
    // What the watcher does on each look at the files.
    assert_eq!(
        tls.reload_if_changed(),
        Some(Ok(())),
        "the new file is seen"
    );
    assert_eq!(tls.reload_if_changed(), None, "and loaded once");
    assert_eq!(tls.reloads(), (1, 0));
    let mut after = Connection::open(&app, &pki, None).await.unwrap();
    assert_eq!(after.server_certificate, renewed);
    let (status, _) = after.get(CLIENTS, Some(&app.admin_key)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    // The connection opened before the reload goes on as it was.
    let (status, _) = before.get(CLIENTS, Some(&app.admin_key)).await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // A broken file is refused and the certificate in force stays.
    std::fs::write(pki.path("server.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.contains("server.tls.cert"), "{err}");
    assert!(err.contains(&pki.path("server.pem")), "{err}");
    assert_eq!(tls.reloads(), (1, 1));
    assert_eq!(
        tls.reload_if_changed(),
        None,
        "a failed load is not retried"
    );
    let latest = Connection::open(&app, &pki, None).await.unwrap();
    assert_eq!(latest.server_certificate, renewed);
}

#[tokio::test]
async fn the_server_does_not_start_with_tls_files_it_cannot_use() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.server.tls = pki.tls(&[]);
    config.server.tls.key = pki.path("missing.key");
    let deps = otpd::Dependencies {
        clock: Arc::new(engine::ManualClock::new(START)),
        rng: engine::seeded_rng([9; 32]),
        code_key: engine::CodeKey::new([42; 32]),
        delivery: None,
    };
    let err = otpd::App::build(config, deps).unwrap_err();
    assert_eq!(err.exit_code(), otpd::failure::Failure::CONFIG);
    let err = err.to_string();
    assert!(err.contains("server.tls.key"), "{err}");
    assert!(err.contains(&pki.path("missing.key")), "{err}");
}

#[tokio::test]
async fn commands_beside_the_server_trust_its_own_certificate_and_no_other() {
    let pki = Pki::new();
    let app = spawn_app_with(|c| c.server.tls = pki.tls(&[])).await;
    let url = format!("{}{CLIENTS}", app.address.replace("http://", "https://"));
    let (config, key) = (app.config.clone(), app.admin_key.clone());
    let (pinned, public) = tokio::task::spawn_blocking(move || {
        let trust = otpd::cli::trust::Trust::of(&config).unwrap();
        let pinned = otpd::cli::server::call(hyper::Method::GET, &url, Some(&key), &trust);
        let public = otpd::cli::trust::Trust::public();
        let public = otpd::cli::server::call(hyper::Method::GET, &url, Some(&key), &public);
        (pinned, public)
    })
    .await
    .unwrap();
    let (status, body) = pinned.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        public.is_err(),
        "a private certificate is not publicly trusted"
    );
}

/// Name constraints on an authority reach only DNS names: a certificate
/// whose common name or URI name is a mapped subject identifies nobody.
#[tokio::test]
async fn only_a_dns_name_maps_a_certificate_to_a_client() {
    let pki = Pki::new();
    let (app, _, _) = spawn_mutual_tls(&pki).await;
    let common_name_only = pki.issue("portal.example.gov.pt", &pki.client_ca, |p| {
        p.subject_alt_names = Vec::new();
    });
    let uri_only = pki.issue("portal.example.gov.pt", &pki.client_ca, |p| {
        p.subject_alt_names = vec![rcgen::SanType::URI(
            "portal.example.gov.pt".try_into().unwrap(),
        )];
    });
    for (identity, what) in [(&common_name_only, "common name"), (&uri_only, "URI name")] {
        let (status, body) = get(&app, &pki, Some(identity), CLIENTS, None)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }
    let portal = pki.client("portal.example.gov.pt");
    let (status, _) = get(&app, &pki, Some(&portal), CLIENTS, None).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

/// Revoking a client whose certificate was stolen, then adding a client of
/// the same name, must not let the stolen certificate in: the name is
/// refused while the mapping stands.
#[tokio::test]
async fn a_mapped_name_is_not_reused_while_its_revoked_client_keeps_the_mapping() {
    let pki = Pki::new();
    let (app, _, _) = spawn_mutual_tls(&pki).await;
    let portal = pki.client("portal.example.gov.pt");
    let admin = Some(app.admin_key.as_str());
    let mut operator = Connection::open(&app, &pki, None).await.unwrap();
    let (status, _) = operator
        .send(
            hyper::Method::DELETE,
            "/v1/admin/clients/portal",
            admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&app, &pki, Some(&portal), CLIENTS, None).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    let add = |name: &str| serde_json::json!({ "name": name, "scopes": ["admin"] });
    let (status, body) = operator
        .send(hyper::Method::POST, CLIENTS, admin, Some(add("portal")))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "name");
    assert!(message(&body).contains("server.tls.clients"), "{body}");
    // The certificate still names nobody.
    let (status, _) = get(&app, &pki, Some(&portal), CLIENTS, None).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A name no certificate is mapped to is given again as before.
    for step in ["add", "revoke", "add again"] {
        let (status, body) = if step == "revoke" {
            operator
                .send(
                    hyper::Method::DELETE,
                    "/v1/admin/clients/kiosk",
                    admin,
                    None,
                )
                .await
                .unwrap()
        } else {
            operator
                .send(hyper::Method::POST, CLIENTS, admin, Some(add("kiosk")))
                .await
                .unwrap()
        };
        assert!(status.is_success(), "{step}: {body}");
    }
}
