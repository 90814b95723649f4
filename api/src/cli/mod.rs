//! What the `otpd` commands other than `serve` do, kept in the library so
//! tests can run them: managing signing keys (`keys.rs`), checking an
//! attestation offline (`attestation.rs`), and asking a running server to
//! act for a command (`server.rs`, trusting the server's certificate as
//! `trust.rs` says), and the commands on the store itself
//! (`store.rs`: opening it offline, backup, restore, check).

pub mod attestation;
pub mod audit;
pub mod clients;
pub mod keys;
pub mod server;
pub mod store;
pub mod trust;

/// Parses a time as commands and query strings take it: RFC 3339
/// (`2026-11-23T00:00:00Z`, fractions and offsets allowed) or a date
/// (`2026-11-23`, midnight UTC).
pub fn parse_time(text: &str) -> Result<engine::Timestamp, String> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    let at = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        "must be a time like 2026-11-23T00:00:00Z or a date like 2026-11-23".to_owned()
    })?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "must not be before 1970".to_owned())?
        .as_millis();
    Ok(engine::Timestamp(u64::try_from(ms).unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_rfc_3339_or_a_date() {
        assert_eq!(parse_time("2026-11-23").unwrap().0, 1_795_392_000_000);
        assert_eq!(
            parse_time("2026-11-23T00:00:00Z").unwrap().0,
            1_795_392_000_000
        );
        assert_eq!(
            parse_time("2026-11-23T00:00:00.250Z").unwrap().0,
            1_795_392_000_250
        );
        for bad in ["", "yesterday", "2026-13-01", "1795392000"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
