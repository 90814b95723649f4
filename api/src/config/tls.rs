//! Settings of TLS and mutual TLS on the listeners (`[server.tls]`).
//!
//! Empty paths mean plain HTTP; the files themselves are read and checked
//! when the server starts (`crate::tls`), not here.

use serde::{Deserialize, Serialize};

/// TLS on the listeners; all empty (the default): plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM, leaf first). Empty: no TLS.
    pub cert: String,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Certificate authorities (PEM bundle) whose client certificates are
    /// accepted. Empty: no client certificates are asked for.
    pub client_ca: String,
    /// Clients identified by their client certificate.
    pub clients: Vec<CertificateClient>,
}

/// A client (by its otpd name) and the certificate name that identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateClient {
    /// The otpd client's name (`otpd client list`).
    pub name: String,
    /// A DNS subject alternative name of the client's certificate, matched
    /// exactly (URI names and the common name are not used: an authority's
    /// name constraints do not reach them).
    pub subject: String,
    /// What the certificate does for the client.
    pub mode: CertificateMode,
}

/// What a client certificate does for the client it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateMode {
    /// The certificate alone authenticates the client; its key still
    /// works too (with this certificate or none).
    Instead,
    /// The client must present both its certificate and its key.
    Also,
}

impl TlsConfig {
    /// Whether the listeners speak TLS.
    pub fn enabled(&self) -> bool {
        !self.cert.trim().is_empty()
    }

    /// The mapping for the client called `name`, if it has one.
    pub fn client(&self, name: &str) -> Option<&CertificateClient> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// Refuses a new client called `name` when a revoked client of that
    /// name is mapped to a client certificate: the mapping follows the
    /// name, so the new client would be authenticated by the revoked one's
    /// certificate (revoking it because its certificate was stolen, then
    /// adding a client of the same name, must not hand the thief the new one).
    /// `clients` are every client, revoked ones included.
    pub fn refuse_inherited_certificate(
        &self,
        name: &str,
        clients: &[engine::ClientInfo],
    ) -> Result<(), String> {
        let revoked = clients
            .iter()
            .any(|c| c.name == name && c.revoked_at.is_some());
        self.refuse_inherited(name, revoked)
    }

    /// [`TlsConfig::refuse_inherited_certificate`], told whether a client
    /// called `name` was revoked.
    fn refuse_inherited(&self, name: &str, revoked: bool) -> Result<(), String> {
        match self.client(name) {
            Some(mapping) if revoked => Err(format!(
                "a revoked client called {name:?} is mapped to the client certificate named \
                 {:?} (server.tls.clients): a new client of that name would be \
                 authenticated by that certificate. Change or remove the mapping and restart \
                 (and have the old certificate revoked by its authority), or choose another name",
                mapping.subject
            )),
            _ => Ok(()),
        }
    }

    /// Checks what serde cannot: the settings go together.
    pub fn validate(&self) -> Result<(), String> {
        let cert = !self.cert.trim().is_empty();
        let key = !self.key.trim().is_empty();
        if cert != key {
            return Err(
                "server.tls.cert and server.tls.key go together: set both (TLS) or neither (plain HTTP)"
                    .into(),
            );
        }
        if !cert && !self.client_ca.trim().is_empty() {
            return Err(
                "server.tls.client_ca needs server.tls.cert and server.tls.key: client \
                 certificates are only asked for over TLS"
                    .into(),
            );
        }
        if !self.clients.is_empty() && self.client_ca.trim().is_empty() {
            return Err(
                "server.tls.clients needs server.tls.client_ca: the authorities that sign \
                 the client certificates"
                    .into(),
            );
        }
        for (i, client) in self.clients.iter().enumerate() {
            if client.name.trim().is_empty() || client.subject.trim().is_empty() {
                return Err(format!(
                    "server.tls.clients[{i}]: name and subject must not be empty"
                ));
            }
            let earlier = &self.clients[..i];
            if earlier.iter().any(|c| c.name == client.name) {
                return Err(format!(
                    "server.tls.clients: client {:?} is named twice; give each client one entry",
                    client.name
                ));
            }
            if earlier.iter().any(|c| c.subject == client.subject) {
                return Err(format!(
                    "server.tls.clients: subject {:?} is mapped twice; a certificate name \
                     identifies one client",
                    client.subject
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(name: &str, subject: &str) -> CertificateClient {
        CertificateClient {
            name: name.into(),
            subject: subject.into(),
            mode: CertificateMode::Instead,
        }
    }

    fn with_files() -> TlsConfig {
        TlsConfig {
            cert: "/etc/otpd/tls/cert.pem".into(),
            key: "/etc/otpd/tls/key.pem".into(),
            client_ca: "/etc/otpd/tls/clients-ca.pem".into(),
            clients: vec![mapped("portal", "portal.example.gov.pt")],
        }
    }

    #[test]
    fn off_by_default_and_on_with_a_certificate_and_key() {
        assert!(!TlsConfig::default().enabled());
        TlsConfig::default().validate().unwrap();
        assert!(with_files().enabled());
        with_files().validate().unwrap();
    }

    #[test]
    fn settings_that_do_not_go_together_are_refused_by_name() {
        type Change = fn(&mut TlsConfig);
        let cases: [(Change, &str); 6] = [
            (|t| t.key.clear(), "server.tls.cert and server.tls.key"),
            (|t| t.cert.clear(), "server.tls.cert and server.tls.key"),
            (|t| t.client_ca.clear(), "needs server.tls.client_ca"),
            (
                |t| t.clients.push(mapped("portal", "other.example")),
                "named twice",
            ),
            (
                |t| t.clients.push(mapped("desk", "portal.example.gov.pt")),
                "mapped twice",
            ),
            (|t| t.clients[0].subject.clear(), "must not be empty"),
        ];
        for (change, named) in cases {
            let mut tls = with_files();
            change(&mut tls);
            let err = tls.validate().unwrap_err();
            assert!(err.contains(named), "{err}");
        }
        let ca_alone = TlsConfig {
            client_ca: "/ca.pem".into(),
            ..TlsConfig::default()
        };
        assert!(
            ca_alone.validate().unwrap_err().contains("client_ca needs"),
            "a CA without TLS is refused"
        );
    }

    #[test]
    fn a_mapped_name_of_a_revoked_client_is_not_given_again() {
        let tls = TlsConfig {
            clients: vec![CertificateClient {
                name: "portal".into(),
                subject: "portal.example.gov.pt".into(),
                mode: CertificateMode::Instead,
            }],
            ..TlsConfig::default()
        };
        let err = tls.refuse_inherited("portal", true).unwrap_err();
        assert!(err.contains("portal.example.gov.pt"), "{err}");
        // Mapped but never revoked: the first client of that name.
        assert!(tls.refuse_inherited("portal", false).is_ok());
        // Revoked but not mapped.
        assert!(tls.refuse_inherited("desk", true).is_ok());
    }
}
