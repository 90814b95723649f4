//! Secret settings given by reference (`env:NAME`, `file:PATH`), read when
//! used: a leaf, so configuration and the code key's loading can both use it.

/// Resolves a secret setting: `env:NAME` reads a variable, `file:PATH` a file
/// (trimmed), anything else is the value itself.
pub fn resolve_secret(reference: &str) -> Result<String, String> {
    if let Some(name) = reference.strip_prefix("env:") {
        return std::env::var(name).map_err(|_| format!("environment variable {name} is not set"));
    }
    if let Some(path) = reference.strip_prefix("file:") {
        return std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("cannot read {path}: {e}"));
    }
    Ok(reference.to_owned())
}
