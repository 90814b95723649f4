//! Which servers a command's HTTPS calls trust: the public authorities,
//! and the certificate the local server serves (`server.tls.cert`), pinned.
//!
//! A command run beside the server reads the same configuration, so it
//! can trust exactly the server's own certificate, whatever authority
//! signed it and whatever name it carries (the default URL is a loopback
//! address, which a public certificate does not name).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::Config;

/// The server certificates a command trusts beyond the public authorities.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pinned: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// The public authorities only (fetching a published key set, say).
    pub fn public() -> Trust {
        Trust::default()
    }

    /// The public authorities and the local server's certificate, when it
    /// serves TLS.
    pub fn of(config: &Config) -> Result<Trust, String> {
        let tls = &config.server.tls;
        if !tls.enabled() {
            return Ok(Trust::default());
        }
        let pinned = crate::tls::certificates(tls.cert.trim(), "server.tls.cert")?;
        // The leaf alone: an intermediate in the chain is no server.
        Ok(Trust {
            pinned: pinned.into_iter().take(1).collect(),
        })
    }

    /// A client configuration trusting these.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let public =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
        let verifier = Pinned {
            pinned: self.pinned.clone(),
            public,
        };
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth())
    }
}

/// Accepts a pinned certificate as it is, anything else as the public
/// authorities do; the handshake's signature is checked either way, so
/// the server must hold the certificate's key.
#[derive(Debug)]
struct Pinned {
    pinned: Vec<CertificateDer<'static>>,
    public: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|pinned| pinned.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.public
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.public.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.public.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.public.supported_verify_schemes()
    }
}
