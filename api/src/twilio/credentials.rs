//! Twilio credentials are an otpd client key in another form: the account
//! SID (`AC`, or an API key SID `SK`) carries the key's id, the auth token
//! is the key's secret. otpd stores neither: the key it rebuilds is checked
//! as any key is (its hash, its expiry, its client's scopes).
//!
//! ```text
//! otpd_<key id: 16 hex>_<secret: 64 hex>
//!   account SID  AC<key id>0000000000000000   (or SK<key id>0000000000000000)
//!   auth token   <secret>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The 16 hex digits that pad a key id to a 32-digit SID.
const PAD: &str = "0000000000000000";

/// The Twilio credentials of an otpd key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AC` + the key id + 16 zeros.
    pub account_sid: String,
    /// The key's secret.
    pub auth_token: String,
}

/// The Twilio form of `key` (`otpd_<id>_<secret>`), if it is one.
pub fn of_key(key: &str) -> Option<Credentials> {
    let rest = key.strip_prefix("otpd_")?;
    let (id, secret) = rest.split_once('_')?;
    Some(Credentials {
        account_sid: format!("AC{id}{PAD}"),
        auth_token: secret.to_owned(),
    })
}

/// The account SID answers carry for a client: `AC` + its id + 16 zeros.
pub fn account_sid(client: engine::ClientId) -> String {
    format!("AC{client}{PAD}")
}

/// The otpd key an `Authorization: Basic …` value stands for, if it holds
/// a SID of the right form (`AC`/`SK` + 16 hex + 16 zeros) and a token.
pub fn key_of_basic(header: &str) -> Option<String> {
    // The scheme's name is case-insensitive (RFC 9110, 11.1).
    let (scheme, encoded) = header.trim_start().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    let decoded = STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, token) = text.split_once(':')?;
    let sid = user
        .strip_prefix("AC")
        .or_else(|| user.strip_prefix("SK"))?;
    if sid.len() != 32 || !sid.ends_with(PAD) {
        return None;
    }
    let id = &sid[..16];
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(id) || token.len() != 64 || !hex(token) {
        return None;
    }
    Some(format!(
        "otpd_{}_{}",
        id.to_ascii_lowercase(),
        token.to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "otpd_0123456789abcdef_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn basic(user: &str, token: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{token}")))
    }

    #[test]
    fn a_key_and_its_twilio_credentials_are_one_another() {
        let c = of_key(KEY).unwrap();
        assert_eq!(c.account_sid, "AC0123456789abcdef0000000000000000");
        assert_eq!(c.account_sid.len(), 34);
        assert_eq!(
            key_of_basic(&basic(&c.account_sid, &c.auth_token)).unwrap(),
            KEY
        );
        // An API key SID works the same way; case does not matter.
        let sk = format!("SK{}", c.account_sid[2..].to_ascii_uppercase());
        assert_eq!(
            key_of_basic(&basic(&sk, &c.auth_token.to_ascii_uppercase())).unwrap(),
            KEY
        );
    }

    #[test]
    fn anything_else_is_no_key() {
        let c = of_key(KEY).unwrap();
        for header in [
            "Bearer x".to_owned(),
            "Basic !!!".to_owned(),
            basic("AC0123456789abcdef0000000000000001", &c.auth_token),
            basic("XX0123456789abcdef0000000000000000", &c.auth_token),
            basic("AC0123456789abcdef00000000000000", &c.auth_token),
            basic(&c.account_sid, "short"),
            basic(&c.account_sid, &"g".repeat(64)),
            format!("Basic {}", STANDARD.encode(&c.account_sid)),
        ] {
            assert_eq!(key_of_basic(&header), None, "{header}");
        }
        assert_eq!(of_key("not-a-key"), None);
    }
}
