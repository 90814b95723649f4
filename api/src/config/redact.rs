//! Hiding secrets in settings before they are printed: inline credentials, and the secret
//! parts of URLs (a password in the userinfo, query values whose names look secret).

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Query parameter names (or parts of names) that carry secrets.
const SECRET_NAMES: [&str; 9] = [
    "key",
    "token",
    "secret",
    "pass",
    "pwd",
    "auth",
    "sig",
    "credential",
    "session",
];

/// Replaces an inline secret; keeps references (`env:NAME`, `file:/path`),
/// which reveal nothing, and empty values.
pub fn secret(value: &mut String) {
    let reference = value.starts_with("env:") || value.starts_with("file:");
    if !value.is_empty() && !reference {
        *value = REDACTED.into();
    }
}

/// Replaces the password of a URL's userinfo and the values of query
/// parameters whose names look secret (`api_key`, `token`, `sig`…).
pub fn url(value: &mut String) {
    let (before_query, query) = match value.split_once('?') {
        Some((before, after)) => (before, Some(after)),
        None => (value.as_str(), None),
    };
    let mut out = userinfo(before_query);
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        out.push('?');
        let pairs: Vec<String> = query.split('&').map(parameter).collect();
        out.push_str(&pairs.join("&"));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    *value = out;
}

/// `https://user:pass@host/path` → `https://user:<redacted>@host/path`.
fn userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((info, host)) => {
            let user = info.split_once(':').map_or(info, |(user, _)| user);
            let info = if info.contains(':') {
                format!("{user}:{REDACTED}")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{info}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// `api_key=s3cret` → `api_key=<redacted>`; other parameters as they are.
fn parameter(pair: &str) -> String {
    match pair.split_once('=') {
        Some((name, value)) if !value.is_empty() && looks_secret(name) => {
            format!("{name}={REDACTED}")
        }
        _ => pair.to_owned(),
    }
}

fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str) -> String {
        let mut value = text.to_owned();
        url(&mut value);
        value
    }

    #[test]
    fn url_passwords_and_secret_looking_query_values_are_hidden() {
        assert_eq!(
            redacted("https://u:s3cret@host/x"),
            "https://u:<redacted>@host/x"
        );
        assert_eq!(
            redacted("https://sms.example/send?api_key=s3cret&from=gov"),
            "https://sms.example/send?api_key=<redacted>&from=gov"
        );
        assert_eq!(
            redacted("https://h/x?Token=a&Signature=b&user=c#frag"),
            "https://h/x?Token=<redacted>&Signature=<redacted>&user=c#frag"
        );
        assert_eq!(
            redacted("http://u:p@h:8080?sig=1"),
            "http://u:<redacted>@h:8080?sig=<redacted>"
        );
    }

    #[test]
    fn urls_without_secrets_are_unchanged() {
        for plain in [
            "https://sms.example/send",
            "https://user@host/x",
            "http://127.0.0.1:9000/push?channel=a",
            "",
        ] {
            assert_eq!(redacted(plain), plain);
        }
    }

    #[test]
    fn inline_secrets_are_hidden_and_references_kept() {
        let mut value = "hunter2".to_owned();
        secret(&mut value);
        assert_eq!(value, REDACTED);
        let mut value = "env:SMTP_PASSWORD".to_owned();
        secret(&mut value);
        assert_eq!(value, "env:SMTP_PASSWORD");
    }
}
