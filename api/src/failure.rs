//! Why an `otpd` command failed, and the exit code each reason gets (from
//! sysexits.h), so a supervisor can tell a configuration to fix (do not
//! restart) from a store held by another process (retry later) from a
//! damaged store (restore a backup). docs/OPERATIONS.md lists them.

use std::fmt;

use engine::EngineError;

/// A command's failure.
#[derive(Debug)]
pub enum Failure {
    /// A setting, the configuration file or the code key is wrong.
    Config(String),
    /// The data directory is in use by another otpd.
    StoreInUse(String),
    /// The store is damaged or lost acknowledged writes.
    StoreDamaged(String),
    /// Anything else (I/O, the network, a refused request).
    Other(String),
}

impl Failure {
    /// `EX_CONFIG`: fix the configuration; restarting will not help.
    pub const CONFIG: u8 = 78;
    /// `EX_TEMPFAIL`: another process holds the store; retry once it stops.
    pub const STORE_IN_USE: u8 = 75;
    /// `EX_DATAERR`: the store is damaged; restore a backup.
    pub const STORE_DAMAGED: u8 = 65;
    /// Any other failure.
    pub const OTHER: u8 = 1;

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => Self::CONFIG,
            Failure::StoreInUse(_) => Self::STORE_IN_USE,
            Failure::StoreDamaged(_) => Self::STORE_DAMAGED,
            Failure::Other(_) => Self::OTHER,
        }
    }

    /// An engine error met while opening the store, as a failure with `context`.
    pub fn opening(context: &str, e: EngineError) -> Failure {
        let message = format!("{context}: {e}");
        match e {
            EngineError::Corrupt(_) => Failure::StoreDamaged(message),
            EngineError::StoreInUse(_) => Failure::StoreInUse(message),
            EngineError::Invalid { .. } => Failure::Config(message),
            _ => Failure::Other(message),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Config(m)
            | Failure::StoreInUse(m)
            | Failure::StoreDamaged(m)
            | Failure::Other(m) => f.write_str(m),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Other(message)
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::opening("the store", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_own_exit_code() {
        let codes = [
            Failure::opening("x", EngineError::Corrupt("lost round 3".into())).exit_code(),
            Failure::opening("x", EngineError::StoreInUse("held".into())).exit_code(),
            Failure::opening(
                "x",
                EngineError::Invalid {
                    field: "argon2",
                    message: "too small".into(),
                },
            )
            .exit_code(),
            Failure::opening("x", EngineError::Storage("disk".into())).exit_code(),
        ];
        assert_eq!(codes, [65, 75, 78, 1]);
    }
}
