//! `otpd verify-attestation`: what a signing service does with a token,
//! from the published key set alone.

use hyper::Method;
use serde_json::Value;

use super::server;
use crate::signing::{Claims, verify_issued_by};

/// Reads the key set from a file or an `http(s)://` URL.
pub fn load_key_set(source: &str) -> Result<Value, String> {
    let value = if source.starts_with("http://") || source.starts_with("https://") {
        let (status, body) =
            server::call(Method::GET, source, None, &super::trust::Trust::public())?;
        if !status.is_success() {
            return Err(format!("{source} answered {status}"));
        }
        body
    } else {
        let text =
            std::fs::read(source).map_err(|e| format!("cannot read the key set {source}: {e}"))?;
        serde_json::from_slice(&text).map_err(|e| format!("{source} is not JSON: {e}"))?
    };
    if !value["keys"].is_array() {
        return Err(format!("{source} is not a JWK set (no \"keys\" array)"));
    }
    Ok(value)
}

/// Checks `token` against the key set at `jwks`; `sha256`, when given, is
/// the document it must approve, and `issuer` who must have issued it.
pub fn check(
    jwks: &str,
    token: &str,
    sha256: Option<&str>,
    issuer: Option<&str>,
) -> Result<Claims, String> {
    let set = load_key_set(jwks)?;
    verify_issued_by(token.trim(), &set, sha256, issuer)
}

/// Parses `--sha256`: 64 hexadecimal digits.
pub fn parse_sha256(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("a SHA-256 is 64 hexadecimal digits".into())
    }
}

/// What the command prints for a token that holds.
pub fn describe(claims: &Claims) -> String {
    let mut text = format!(
        "valid: {} approved by account {} ({} {}) through {}, issued by {} at {}, expires {}",
        claims.purpose,
        claims.sub,
        claims.identity.kind,
        claims.identity.number,
        claims.client,
        claims.iss,
        crate::wire_time(engine::Timestamp(claims.iat.saturating_mul(1_000))),
        crate::wire_time(engine::Timestamp(claims.exp.saturating_mul(1_000)))
    );
    if let Some(doc) = &claims.doc {
        text.push_str(&format!("\ndocument: {} sha256 {}", doc.name, doc.sha256));
    }
    text
}

/// A warning for a signature token checked without `--sha256`: its
/// signature holds, but nothing says it approves the document at hand.
pub fn unchecked_document(claims: &Claims, sha256: Option<&str>) -> Option<String> {
    match (&claims.doc, sha256) {
        (Some(doc), None) => Some(format!(
            "warning: the document was not checked; pass --sha256 with the hash of the file \
             you are about to sign (this token approves {})",
            doc.sha256
        )),
        _ => None,
    }
}
