//! Settings of the audit trail: checkpoints, retention, what is kept of a
//! request's source address, and which changes the citizen is told of.

use std::time::Duration;

use engine::{AuditPolicy, NoticePolicy};
use serde::{Deserialize, Serialize};

/// The audit trail (`[audit]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A signed checkpoint after at most this many events (1 to 100,000).
    pub checkpoint_every: u64,
    /// A signed checkpoint at least this often while events arrive.
    pub checkpoint_interval_seconds: u64,
    /// Events older than this many days are pruned (0: kept for ever).
    pub retention_days: u64,
    /// What events keep of the caller's address: `full`, `truncated`
    /// (IPv4 /24, IPv6 /48) or `off`.
    pub source_ip: SourceIp,
}

/// What an event keeps of a request's source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceIp {
    /// The whole address.
    Full,
    /// Its network: IPv4 /24, IPv6 /48.
    Truncated,
    /// Nothing.
    Off,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let policy = AuditPolicy::default();
        Self {
            checkpoint_every: policy.checkpoint_every,
            checkpoint_interval_seconds: policy.checkpoint_interval.as_secs(),
            retention_days: policy.retention.map_or(0, |r| r.as_secs() / (24 * 3600)),
            source_ip: SourceIp::Truncated,
        }
    }
}

impl AuditConfig {
    /// The engine's part.
    pub fn policy(&self) -> AuditPolicy {
        AuditPolicy {
            checkpoint_every: self.checkpoint_every,
            checkpoint_interval: Duration::from_secs(self.checkpoint_interval_seconds),
            retention: (self.retention_days > 0)
                .then(|| Duration::from_secs(self.retention_days.saturating_mul(24 * 3600))),
        }
    }

    /// `ip` as events keep it.
    pub fn source(&self, ip: std::net::IpAddr) -> Option<String> {
        match self.source_ip {
            SourceIp::Off => None,
            SourceIp::Full => Some(ip.to_string()),
            SourceIp::Truncated => Some(match ip {
                std::net::IpAddr::V4(v4) => {
                    let [a, b, c, _] = v4.octets();
                    format!("{a}.{b}.{c}.0/24")
                }
                std::net::IpAddr::V6(v6) => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_whole_truncated_or_not_at_all() {
        let mut config = AuditConfig::default();
        let v4: std::net::IpAddr = "192.0.2.77".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8:1234:5678::1".parse().unwrap();
        assert_eq!(config.source(v4).as_deref(), Some("192.0.2.0/24"));
        assert_eq!(config.source(v6).as_deref(), Some("2001:db8:1234::/48"));
        config.source_ip = SourceIp::Full;
        assert_eq!(config.source(v4).as_deref(), Some("192.0.2.77"));
        config.source_ip = SourceIp::Off;
        assert_eq!(config.source(v4), None);
        assert_eq!(AuditConfig::default().policy(), AuditPolicy::default());
    }
}

/// Which changes the citizen is told of (`[notices]`): a short message with
/// no code to the account's phone and email (and, for a contact change, to
/// the contact it replaced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoticesConfig {
    /// When the citizen changes the PIN.
    pub pin_changed: bool,
    /// When an operator resets it.
    pub pin_reset: bool,
    /// When a phone or email is replaced.
    pub contact_changed: bool,
    /// When an app is registered for push codes.
    pub push_device_set: bool,
    /// When the account is locked.
    pub locked: bool,
}

impl Default for NoticesConfig {
    fn default() -> Self {
        let p = NoticePolicy::default();
        Self {
            pin_changed: p.pin_changed,
            pin_reset: p.pin_reset,
            contact_changed: p.contact_changed,
            push_device_set: p.push_device_set,
            locked: p.locked,
        }
    }
}

impl NoticesConfig {
    /// The engine's part.
    pub fn policy(&self) -> NoticePolicy {
        NoticePolicy {
            pin_changed: self.pin_changed,
            pin_reset: self.pin_reset,
            contact_changed: self.contact_changed,
            push_device_set: self.push_device_set,
            locked: self.locked,
        }
    }
}
