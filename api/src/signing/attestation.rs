//! Attestations: compact JWS tokens (RFC 7515, EdDSA per RFC 8037) that
//! say this citizen was authenticated, or approved this document, at this
//! time, through this relying party; and checking one against a key set,
//! as a signing service would (`otpd verify-attestation`).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use engine::{Approval, Purpose, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SigningError;
use super::jwk::PublicKey;
use super::keyring::KeyRing;

/// The identity in a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaim {
    /// `civil_id`, `passport` or `social_security`.
    pub kind: String,
    /// The document number.
    pub number: String,
    /// The issuing country, for passports.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
}

/// The document a signature token approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentClaim {
    /// Its name as the citizen saw it.
    pub name: String,
    /// SHA-256 of its bytes, 64 lower-case hex digits.
    pub sha256: String,
    /// Its size in bytes, if the signing service gave it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who issued it (`signing.issuer`).
    pub iss: String,
    /// The account id.
    pub sub: String,
    /// The citizen's identity.
    pub identity: IdentityClaim,
    /// For a signature: the document approved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub doc: Option<DocumentClaim>,
    /// The challenge whose code was accepted.
    pub challenge_id: String,
    /// `login`, `step_up` or `signature`.
    pub purpose: String,
    /// The relying party that asked.
    pub client: String,
    /// How the citizen was authenticated: `pin` (login and signature),
    /// `otp`, and the channel the code went by.
    pub amr: Vec<String>,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
    /// A unique id for this token.
    pub jti: String,
}

impl Claims {
    /// The claims for `approval`, made through `client` at `now`.
    pub fn for_approval(
        approval: &Approval,
        issuer: &str,
        client: &str,
        now: Timestamp,
        ttl: Duration,
        jti: String,
    ) -> Claims {
        let mut amr = Vec::with_capacity(3);
        if matches!(approval.purpose, Purpose::Login | Purpose::Signature) {
            amr.push("pin".to_owned());
        }
        amr.push("otp".to_owned());
        amr.push(approval.channel.as_str().to_owned());
        let iat = now.0 / 1_000;
        Claims {
            iss: issuer.to_owned(),
            sub: approval.account_id.to_string(),
            identity: IdentityClaim {
                kind: approval.identity.kind().as_str().to_owned(),
                number: approval.identity.number().to_owned(),
                country: approval.identity.country().map(str::to_owned),
            },
            doc: approval.document.as_ref().map(|d| DocumentClaim {
                name: d.name().to_owned(),
                sha256: d.sha256_hex(),
                size: d.size(),
            }),
            challenge_id: String::new(),
            purpose: approval.purpose.as_str().to_owned(),
            client: client.to_owned(),
            amr,
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
            jti,
        }
    }
}

/// Signs claims with the key ring's active key.
#[derive(Debug)]
pub struct Attester {
    ring: KeyRing,
    issuer: String,
    ttl: Duration,
}

impl Attester {
    /// An attester over `ring`, naming itself `issuer`, its tokens valid for `ttl`.
    pub fn new(ring: KeyRing, issuer: String, ttl: Duration) -> Attester {
        Attester { ring, issuer, ttl }
    }

    /// The key ring (for rotation, listing and the published key set).
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// A compact JWS for `approval` of challenge `challenge_id`, through `client`.
    pub fn attest(
        &self,
        approval: &Approval,
        challenge_id: &str,
        client: &str,
        now: Timestamp,
    ) -> Result<String, SigningError> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| {
            SigningError::Damaged(format!("the system's random source failed: {e}"))
        })?;
        let mut claims = Claims::for_approval(
            approval,
            &self.issuer,
            client,
            now,
            self.ttl,
            hex::encode(jti),
        );
        challenge_id.clone_into(&mut claims.challenge_id);
        self.ring
            .with_signer(|signer| compact_jws(&signer.kid, &signer.pair, &claims))
    }
}

/// The JOSE header of every token, members in the order `jsonwebtoken` writes them.
#[derive(Serialize)]
struct JoseHeader<'a> {
    typ: &'static str,
    alg: &'static str,
    kid: &'a str,
}

/// `claims` as a compact JWS (RFC 7515) signed with EdDSA (RFC 8037) by
/// `pair`, named `kid`. Written here rather than by `jsonwebtoken`, which
/// takes the key as PKCS#8 bytes and parses them again on every token;
/// the bytes are the same as its (a test compares them).
fn compact_jws(kid: &str, pair: &Ed25519KeyPair, claims: &Claims) -> Result<String, SigningError> {
    let failed = |e: serde_json::Error| SigningError::Damaged(format!("cannot sign: {e}"));
    let header = serde_json::to_vec(&JoseHeader {
        typ: "JWT",
        alg: "EdDSA",
        kid,
    })
    .map_err(failed)?;
    let payload = serde_json::to_vec(claims).map_err(failed)?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = pair.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut token);
    Ok(token)
}

/// Checks `token` against the key set `jwks` (as `/.well-known/jwks.json`
/// serves it): a known `kid`, an EdDSA signature that holds, not expired;
/// and, when `sha256` is given, that it approves exactly that document.
/// The answer is the claims, or why the token does not hold.
pub fn verify(token: &str, jwks: &Value, sha256: Option<&str>) -> Result<Claims, String> {
    verify_issued_by(token, jwks, sha256, None)
}

/// [`verify`], and when `issuer` is given, that the token's `iss` is it.
pub fn verify_issued_by(
    token: &str,
    jwks: &Value,
    sha256: Option<&str>,
    issuer: Option<&str>,
) -> Result<Claims, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("not a JWS: {e}"))?;
    if header.alg != Algorithm::EdDSA {
        return Err(format!("signed with {:?}, not EdDSA", header.alg));
    }
    let kid = header.kid.ok_or("the token names no key (kid)")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("the key set has no \"keys\" array")?
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| {
            format!("key {kid} is not in the key set (unknown, past its overlap, or retired)")
        })?;
    let key = PublicKey::from_jwk(jwk).ok_or_else(|| format!("key {kid} is not an Ed25519 key"))?;
    if key.thumbprint() != kid {
        return Err(format!("key {kid} in the key set does not match its id"));
    }
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 0;
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
    }
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
    let decoding = DecodingKey::from_ed_components(&key.x())
        .map_err(|e| format!("key {kid} is not usable: {e}"))?;
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                format!(
                    "the token was issued by another issuer than {}",
                    issuer.unwrap_or("?")
                )
            }
            jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                "the signature does not hold: the token was altered or signed by another key"
                    .to_owned()
            }
            _ => format!("the token does not hold: {e}"),
        })?
        .claims;
    if let Some(expected) = sha256 {
        let expected = expected.trim().to_ascii_lowercase();
        match &claims.doc {
            Some(doc) if doc.sha256 == expected => {}
            Some(doc) => {
                return Err(format!(
                    "the token approves document {} ({}), not {expected}",
                    doc.sha256, doc.name
                ));
            }
            None => return Err("the token approves no document (it is not a signature)".into()),
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{
        AccountId, AccountState, Channel, Clock, Document, Identity, IdentityKind, SystemClock,
    };

    const HASH: &str = "3a7f9c21d0e4b5a6978877665544332211ffeeddccbbaa009988776655443322";

    /// Ed25519 is deterministic: the token written here is byte for byte
    /// the one `jsonwebtoken` writes from the same key and claims.
    #[test]
    fn tokens_are_the_bytes_jsonwebtoken_would_write() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.as_ref()).unwrap();
        for document in [None, Some(Document::parse("a.pdf", HASH, Some(9)).unwrap())] {
            let claims = Claims::for_approval(
                &approval(document),
                "otpd",
                "bank",
                Timestamp(1_795_392_000_000),
                Duration::from_secs(300),
                "00".repeat(16),
            );
            let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
            header.kid = Some("kid-1".into());
            header.typ = Some("JWT".into());
            let theirs = jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
            )
            .unwrap();
            assert_eq!(compact_jws("kid-1", &pair, &claims).unwrap(), theirs);
        }
    }

    fn approval(document: Option<Document>) -> Approval {
        Approval {
            account_id: AccountId::parse("a", &"ab".repeat(16)).unwrap(),
            identity: Identity::parse(IdentityKind::CivilId, "12345678", None).unwrap(),
            purpose: if document.is_some() {
                Purpose::Signature
            } else {
                Purpose::StepUp
            },
            state: AccountState::Active,
            channel: Channel::Sms,
            document,
        }
    }

    fn attester(dir: &std::path::Path, now: Timestamp) -> Attester {
        let ring = KeyRing::open(dir, Duration::from_secs(3600), now, None).unwrap();
        Attester::new(
            ring,
            "https://otpd.example".into(),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn a_signature_token_names_who_what_when_and_through_whom_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemClock::new().now();
        let a = attester(dir.path(), now);
        let document = Document::parse("contrato.pdf", HASH, Some(10)).unwrap();
        let token = a
            .attest(&approval(Some(document)), "cid", "portal", now)
            .unwrap();
        let jwks = serde_json::to_value(super::super::key_set(&a.ring().published(now))).unwrap();
        let claims = verify(&token, &jwks, Some(HASH)).unwrap();
        assert_eq!(claims.iss, "https://otpd.example");
        assert_eq!(claims.sub, "ab".repeat(16));
        assert_eq!(claims.identity.number, "12345678");
        assert_eq!(claims.doc.as_ref().unwrap().name, "contrato.pdf");
        assert_eq!(
            (claims.client.as_str(), claims.challenge_id.as_str()),
            ("portal", "cid")
        );
        assert_eq!(claims.amr, ["pin", "otp", "sms"]);
        assert_eq!(claims.exp - claims.iat, 300);
        let other = HASH.replace('3', "4");
        assert!(
            verify(&token, &jwks, Some(&other))
                .unwrap_err()
                .contains("not")
        );
        assert!(verify_issued_by(&token, &jwks, None, Some("https://otpd.example")).is_ok());
        let err = verify_issued_by(&token, &jwks, None, Some("otpd")).unwrap_err();
        assert!(err.contains("another issuer"), "{err}");
    }

    #[test]
    fn altered_expired_or_unknown_key_tokens_do_not_hold() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemClock::new().now();
        let a = attester(dir.path(), now);
        let jwks = serde_json::to_value(super::super::key_set(&a.ring().published(now))).unwrap();
        let token = a.attest(&approval(None), "cid", "portal", now).unwrap();
        let claims = verify(&token, &jwks, None).unwrap();
        assert_eq!(claims.amr, ["otp", "sms"], "a step-up has no PIN");
        assert!(verify(&token, &jwks, Some(HASH)).is_err(), "no document");
        // One character of the payload changed.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload: Vec<char> = parts[1].chars().collect();
        payload[10] = if payload[10] == 'A' { 'B' } else { 'A' };
        parts[1] = payload.into_iter().collect();
        assert!(verify(&parts.join("."), &jwks, None).is_err());
        // Issued ten minutes ago, valid for five.
        let old = a
            .attest(&approval(None), "cid", "portal", Timestamp(now.0 - 600_000))
            .unwrap();
        assert!(verify(&old, &jwks, None).unwrap_err().contains("expired"));
        // A key set without the signer's key.
        let other_dir = tempfile::tempdir().unwrap();
        let other = attester(other_dir.path(), now);
        let foreign =
            serde_json::to_value(super::super::key_set(&other.ring().published(now))).unwrap();
        assert!(
            verify(&token, &foreign, None)
                .unwrap_err()
                .contains("not in the key set")
        );
    }
}
