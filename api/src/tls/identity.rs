//! The names a verified client certificate carries, and the otpd client they map to.

use x509_parser::extensions::GeneralName;

use crate::config::{CertificateClient, TlsConfig};

/// A client certificate the TLS handshake verified, by its DNS subject
/// alternative names: the only names the verifier checks against an
/// authority's name constraints. URI names and the common name are not
/// used (a constrained sub-CA could put any of them in a certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertificate {
    names: Vec<String>,
}

impl ClientCertificate {
    /// The names of the leaf certificate `der`. One that does not parse (the
    /// handshake verified it, so it should) names nobody.
    pub fn from_der(der: &[u8]) -> ClientCertificate {
        let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der) else {
            return ClientCertificate::default();
        };
        let names = match certificate.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(name) => Some((*name).to_owned()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            // A malformed or repeated extension: no name is trusted.
            Err(_) => return ClientCertificate::default(),
        };
        ClientCertificate { names }
    }

    /// The names, in the certificate's order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The mapping in `tls` this certificate matches, if any; an error if
    /// it matches more than one (it names several clients).
    pub fn client<'a>(&self, tls: &'a TlsConfig) -> Result<Option<&'a CertificateClient>, String> {
        let mut matched = tls
            .clients
            .iter()
            .filter(|mapping| self.names.contains(&mapping.subject));
        let first = matched.next();
        if let (Some(first), Some(second)) = (first, matched.next()) {
            return Err(format!(
                "the client certificate names more than one client ({:?} and {:?}); \
                 a certificate may identify one client only",
                first.name, second.name
            ));
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CertificateMode;

    fn certificate(params: rcgen::CertificateParams) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn named(common_name: &str, sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.subject_alt_names = sans;
        certificate(params)
    }

    fn mapping(name: &str, subject: &str) -> CertificateClient {
        CertificateClient {
            name: name.into(),
            subject: subject.into(),
            mode: CertificateMode::Instead,
        }
    }

    #[test]
    fn only_dns_names_identify_the_holder() {
        let der = named(
            "ignored.example",
            vec![
                rcgen::SanType::DnsName("portal.example.gov.pt".try_into().unwrap()),
                rcgen::SanType::URI("spiffe://gov.pt/portal".try_into().unwrap()),
                rcgen::SanType::IpAddress([127, 0, 0, 1].into()),
            ],
        );
        assert_eq!(
            ClientCertificate::from_der(&der).names(),
            ["portal.example.gov.pt"]
        );
        // Name constraints do not reach a common name or a URI name: a
        // certificate with only those names nobody.
        let der = named("portal.example.gov.pt", Vec::new());
        assert!(ClientCertificate::from_der(&der).names().is_empty());
        let der = named(
            "portal.example.gov.pt",
            vec![rcgen::SanType::URI(
                "portal.example.gov.pt".try_into().unwrap(),
            )],
        );
        assert!(ClientCertificate::from_der(&der).names().is_empty());
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let der = certificate(params);
        assert!(ClientCertificate::from_der(&der).names().is_empty());
        assert!(ClientCertificate::from_der(b"garbage").names().is_empty());
    }

    #[test]
    fn a_certificate_maps_to_at_most_one_client() {
        let tls = TlsConfig {
            clients: vec![
                mapping("portal", "portal.example"),
                mapping("desk", "desk.example"),
            ],
            ..TlsConfig::default()
        };
        let portal = ClientCertificate {
            names: vec!["portal.example".into()],
        };
        assert_eq!(portal.client(&tls).unwrap().unwrap().name, "portal");
        let nobody = ClientCertificate {
            names: vec!["portal.example.evil".into()],
        };
        assert_eq!(nobody.client(&tls).unwrap(), None);
        let both = ClientCertificate {
            names: vec!["portal.example".into(), "desk.example".into()],
        };
        let err = both.client(&tls).unwrap_err();
        assert!(err.contains("more than one client"), "{err}");
    }
}
