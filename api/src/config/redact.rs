//! Hiding secrets in settings before they are printed.

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// Replaces an inline secret; keeps references (`env:NAME`, `file:/path`),
/// which reveal nothing, and empty values.
pub fn secret(value: &mut String) {
    let reference = value.starts_with("env:") || value.starts_with("file:");
    if !value.is_empty() && !reference {
        *value = REDACTED.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
