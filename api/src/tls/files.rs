//! Reading the PEM files `[server.tls]` names into a rustls server configuration.
//!
//! Every error names the setting and the file; none quotes what the file
//! holds (it may be a private key).

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// The server configuration the files of `tls` describe, with client
/// certificates asked for (and verified, never required) when
/// `client_ca` is set.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = certificates(tls.cert.trim(), "server.tls.cert")?;
    let key = private_key(tls.key.trim())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let client_ca = tls.client_ca.trim();
    let builder = if client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for certificate in certificates(client_ca, "server.tls.client_ca")? {
            roots.add(certificate).map_err(|e| {
                format!("server.tls.client_ca: {client_ca} holds a certificate that is not a usable authority: {e}")
            })?;
        }
        // Unauthenticated connections are let through: a client whose
        // mapping does not ask for a certificate still calls with its key
        // alone, and the routes refuse the ones that must present one.
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("server.tls.client_ca: {client_ca}: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "server.tls.key: {} does not go with the certificate in {} ({e})",
            tls.key.trim(),
            tls.cert.trim()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What identifies the present contents of the files (modification time
/// and size of each; `None` for one that cannot be read), to notice a change.
pub fn fingerprint(tls: &TlsConfig) -> Vec<Option<(SystemTime, u64)>> {
    [&tls.cert, &tls.key, &tls.client_ca]
        .into_iter()
        .map(|path| path.trim())
        .filter(|path| !path.is_empty())
        .map(|path| {
            std::fs::metadata(path)
                .and_then(|m| Ok((m.modified()?, m.len())))
                .ok()
        })
        .collect()
}

fn read(path: &str, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(path)).map_err(|e| format!("{setting}: cannot read {path}: {e}"))
}

/// Why a PEM file did not parse, without quoting any of it.
fn pem_problem(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "it is not PEM",
    }
}

/// The certificates of the PEM file at `path` (`setting` names it in errors).
pub(crate) fn certificates(
    path: &str,
    setting: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, setting)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{setting}: {path} does not parse: {}", pem_problem(&e)))?;
    if certificates.is_empty() {
        return Err(format!(
            "{setting}: {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certificates)
}

fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let setting = "server.tls.key";
    let bytes = read(path, setting)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            format!("{setting}: {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")
        }
        e => format!("{setting}: {path} does not parse: {}", pem_problem(&e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
            std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
            Files { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn config(&self) -> TlsConfig {
            TlsConfig {
                cert: self.path("cert.pem"),
                key: self.path("key.pem"),
                client_ca: self.path("ca.pem"),
                clients: Vec::new(),
            }
        }
    }

    #[test]
    fn a_certificate_key_and_authority_make_a_configuration() {
        let files = Files::new();
        let config = server_config(&files.config()).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert_eq!(fingerprint(&files.config()).len(), 3);
        assert!(fingerprint(&files.config()).iter().all(Option::is_some));
    }

    #[test]
    fn unusable_files_are_refused_naming_the_setting_and_file_but_not_the_contents() {
        let files = Files::new();
        let cases: [(&str, &str, &str); 5] = [
            ("missing.pem", "key", "cannot read"),
            ("missing.pem", "cert", "cannot read"),
            ("empty.pem", "cert", "holds no PEM certificate"),
            ("empty.pem", "key", "holds no PEM private key"),
            ("cert.pem", "key", "holds no PEM private key"),
        ];
        std::fs::write(files.path("empty.pem"), "hunter2\n").unwrap();
        for (file, setting, why) in cases {
            let mut tls = files.config();
            match setting {
                "key" => tls.key = files.path(file),
                _ => tls.cert = files.path(file),
            }
            let err = server_config(&tls).unwrap_err();
            assert!(err.starts_with(&format!("server.tls.{setting}: ")), "{err}");
            assert!(err.contains(&files.path(file)), "{err}");
            assert!(err.contains(why), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        // A key of another certificate.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(files.path("other.pem"), other.serialize_pem()).unwrap();
        let mut tls = files.config();
        tls.key = files.path("other.pem");
        let err = server_config(&tls).unwrap_err();
        assert!(err.contains("does not go with the certificate"), "{err}");
        // A broken authority bundle.
        std::fs::write(
            files.path("broken.pem"),
            "-----BEGIN CERTIFICATE-----\nnot base64!\n",
        )
        .unwrap();
        let mut tls = files.config();
        tls.client_ca = files.path("broken.pem");
        let err = server_config(&tls).unwrap_err();
        assert!(err.starts_with("server.tls.client_ca: "), "{err}");
    }
}
