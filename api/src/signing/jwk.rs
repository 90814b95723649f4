//! Public keys as JSON Web Keys (RFC 7517, RFC 8037 for Ed25519), their
//! RFC 7638 thumbprints (a key's `kid`), and the key set `/.well-known/jwks.json` serves.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::wire::{JwkOut, JwksOut};

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key's `x` member: its 32 bytes, base64url without padding.
    pub fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in
    /// lexicographic order, without spaces, base64url. Used as the `kid`.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, self.x());
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The public JWK, as published.
    pub fn jwk(&self) -> Value {
        serde_json::to_value(self.jwk_out()).unwrap_or(Value::Null)
    }

    /// The public JWK, typed.
    pub fn jwk_out(&self) -> JwkOut {
        JwkOut {
            kty: "OKP",
            crv: "Ed25519",
            x: self.x(),
            kid: self.thumbprint(),
            alg: "EdDSA",
            use_: "sig",
        }
    }

    /// The key from a JWK's `x`, if it is an Ed25519 OKP key.
    pub fn from_jwk(jwk: &Value) -> Option<PublicKey> {
        if jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" {
            return None;
        }
        PublicKey::from_x(jwk["x"].as_str()?)
    }

    /// The key from its `x` member.
    pub fn from_x(x: &str) -> Option<PublicKey> {
        let bytes = URL_SAFE_NO_PAD.decode(x).ok()?;
        Some(PublicKey(bytes.try_into().ok()?))
    }
}

/// Whether `text` could be a key id: an RFC 7638 SHA-256 thumbprint is 43
/// base64url characters.
pub fn is_key_id(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A JWK Set of `keys`.
pub fn key_set(keys: &[PublicKey]) -> JwksOut {
    JwksOut {
        keys: keys.iter().map(PublicKey::jwk_out).collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// RFC 8037, Appendix A.2 and A.3: the example public key and its thumbprint.
    #[test]
    fn the_thumbprint_of_the_rfc_8037_example_key_is_the_rfcs() {
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = PublicKey(x.try_into().unwrap());
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let jwk = key.jwk();
        assert_eq!(jwk["kid"], "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert_eq!(PublicKey::from_jwk(&jwk), Some(key));
        assert_eq!(PublicKey::from_jwk(&json!({"kty": "RSA"})), None);
    }
}
