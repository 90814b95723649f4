//! The code key: from `OTPD_CODE_KEY`, a configured file, or generated into the data directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use engine::CodeKey;

use crate::config::Config;

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `OTPD_CODE_KEY` variable.
    Environment,
    /// An existing file.
    File(PathBuf),
    /// A file generated now, on first start.
    Generated(PathBuf),
}

/// Loads the code key, generating one (mode 0600) on first start if none is configured.
pub fn load_code_key(
    config: &Config,
    from_env: Option<&str>,
) -> Result<(CodeKey, KeySource), String> {
    if let Some(text) = from_env {
        let key = parse_key(text.trim().as_bytes())
            .ok_or("OTPD_CODE_KEY must be 64 hexadecimal digits (32 bytes)")?;
        return Ok((key, KeySource::Environment));
    }
    if !config.code_key_file.is_empty() {
        let path = PathBuf::from(&config.code_key_file);
        return Ok((read_key(&path)?, KeySource::File(path)));
    }
    let path = config.data_dir.join("code.key");
    if path.exists() {
        return Ok((read_key(&path)?, KeySource::File(path)));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let key = CodeKey::generate().map_err(|e| format!("OS random source: {e}"))?;
    write_new_key(&path, &key)?;
    Ok((key, KeySource::Generated(path)))
}

pub use crate::secret_ref::resolve_secret;

fn read_key(path: &Path) -> Result<CodeKey, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read code key file {}: {e}", path.display()))?;
    parse_key(&bytes).ok_or_else(|| {
        format!(
            "code key file {} must hold 32 bytes, raw or as 64 hexadecimal digits",
            path.display()
        )
    })
}

fn parse_key(bytes: &[u8]) -> Option<CodeKey> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(CodeKey::new(raw));
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let mut key = [0u8; 32];
    hex::decode_to_slice(text, &mut key).ok()?;
    Some(CodeKey::new(key))
}

/// Writes `key` to a new file at `path` (mode 0600); an existing file is refused.
pub fn write_new_key(path: &Path, key: &CodeKey) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create code key file {}: {e}", path.display()))?;
    let text = hex::encode(key.to_bytes());
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write code key file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_generated_once_with_private_permissions_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let (first, source) = load_code_key(&config, None).unwrap();
        let path = dir.path().join("data/code.key");
        assert_eq!(source, KeySource::Generated(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (second, source) = load_code_key(&config, None).unwrap();
        assert_eq!(source, KeySource::File(path));
        assert_eq!(first.to_bytes(), second.to_bytes());
    }

    #[test]
    fn keys_from_the_environment_must_be_64_hex_digits() {
        let config = Config::default();
        let (key, source) = load_code_key(&config, Some(&"ab".repeat(32))).unwrap();
        assert_eq!(source, KeySource::Environment);
        assert_eq!(key.to_bytes(), [0xab; 32]);
        assert!(load_code_key(&config, Some("abc")).is_err());
    }

    #[test]
    fn a_configured_key_file_must_exist_and_be_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Config {
            code_key_file: dir.path().join("nope").display().to_string(),
            ..Config::default()
        };
        assert!(
            load_code_key(&missing, None)
                .unwrap_err()
                .contains("cannot read")
        );
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "short").unwrap();
        let config = Config {
            code_key_file: bad.display().to_string(),
            ..Config::default()
        };
        assert!(
            load_code_key(&config, None)
                .unwrap_err()
                .contains("32 bytes")
        );
    }
}
