//! An independent implementation to check otpd against: the pinned Python
//! tools (`scripts/python-requirements.txt`), installed on first use by
//! `scripts/python-env.sh` into `target/python-env`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The virtual environment's python, made once (pip, from the package index).
pub fn python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = repository().join("scripts/python-env.sh");
            let out = Command::new("bash").arg(&script).output().unwrap();
            assert!(
                out.status.success(),
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        })
        .clone()
}

/// Runs a Python script of the repository with `args`: (exit code, stdout, stderr).
pub fn run_python(script: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(python())
        .arg(repository().join(script))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
