//! Whether the cluster can serve otpd: what startup and `/readyz` ask.
//!
//! - The cluster is up (`cluster_state:ok`) and serves all 16,384 slots.
//! - Every master persists as an acknowledgement promises: `appendonly
//!   yes`, `appendfsync always`, `maxmemory-policy noeviction` (an evicted
//!   account would be a lost one) and `cluster-require-full-coverage yes`.
//!   Read with `CONFIG GET`; an ACL user without it gets a warning instead
//!   (docs/OPERATIONS.md says how to check the settings by hand then).
//! - The cluster's clock and this node's are within the allowed skew:
//!   every node times codes and locks by its own clock, so a node whose
//!   clock strays is taken out of service rather than let it decide.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::Value;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};

use super::{Cluster, unavailable};
use crate::error::{EngineError, Result};

/// Every slot of a Redis Cluster.
pub const SLOTS: u32 = 16_384;

/// The settings every master must have: (name, required value).
pub const REQUIRED_SETTINGS: [(&str, &str); 4] = [
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("maxmemory-policy", "noeviction"),
    ("cluster-require-full-coverage", "yes"),
];

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Masters that answered.
    pub masters: usize,
    /// Slots served.
    pub slots_ok: u32,
    /// Whether the persistence settings could be read (`CONFIG GET`).
    pub settings_checked: bool,
    /// The cluster's clock minus this node's, in milliseconds (from the
    /// middle of the round trip).
    pub clock_offset_ms: i64,
    /// What is wrong, each in words naming the node and the setting; empty
    /// when the cluster can serve.
    pub problems: Vec<String>,
    /// What could not be checked.
    pub warnings: Vec<String>,
}

impl Health {
    /// Whether otpd may serve on this cluster.
    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A `CONFIG GET` answer (a map in RESP3, pairs in RESP2) as name → value.
fn settings(value: &Value) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    match value {
        Value::Map(pairs) => {
            for (k, v) in pairs {
                out.insert(text(k)?, text(v)?);
            }
        }
        Value::Array(items) => {
            for pair in items.chunks(2) {
                let [k, v] = pair else { return None };
                out.insert(text(k)?, text(v)?);
            }
        }
        _ => return None,
    }
    Some(out)
}

impl Cluster {
    /// The cluster's time (`TIME`), in milliseconds since the Unix epoch.
    pub async fn time_ms(&self) -> Result<u64> {
        let (seconds, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("reading the cluster's clock", &e))?;
        Ok(seconds.saturating_mul(1000).saturating_add(micros / 1000))
    }

    /// Checks the cluster as startup and `/readyz` do. `local_now_ms` reads
    /// this node's clock (ms since the Unix epoch); a clock further than
    /// `max_skew` from the cluster's is a problem. An unreachable cluster
    /// is an error, not a report.
    pub async fn health(
        &self,
        local_now_ms: impl Fn() -> u64,
        max_skew: Duration,
    ) -> Result<Health> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("asking for the cluster's state", &e))?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                .map(str::to_string)
        };
        if field("cluster_state").as_deref() != Some("ok") {
            problems.push(format!(
                "cluster_state is {}, not ok",
                field("cluster_state").unwrap_or_else(|| "missing".into())
            ));
        }
        let slots_ok = field("cluster_slots_ok")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if slots_ok != SLOTS {
            problems.push(format!("{slots_ok} of the {SLOTS} slots are served"));
        }

        let mut config = redis::cmd("CONFIG");
        config.arg("GET");
        for (name, _) in REQUIRED_SETTINGS {
            config.arg(name);
        }
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let answers = self
            .conn()
            .route_command(config, routing)
            .await
            .map_err(|e| unavailable("reading the masters' settings", &e))?;
        let Value::Map(per_node) = answers else {
            return Err(EngineError::Storage(format!(
                "CONFIG GET on every master answered {answers:?}"
            )));
        };
        let masters = per_node.len();
        let mut settings_checked = true;
        for (node, answer) in &per_node {
            let node = text(node).unwrap_or_else(|| "a master".into());
            if let Value::ServerError(e) = answer {
                if e.code() != "NOPERM" {
                    problems.push(format!(
                        "{node}: CONFIG GET failed ({} {}): persistence settings unknown",
                        e.code(),
                        e.details().unwrap_or_default()
                    ));
                    continue;
                }
                settings_checked = false;
                warnings.push(format!(
                    "{node}: CONFIG GET refused ({}): persistence settings not checked",
                    e.details().unwrap_or(e.code())
                ));
                continue;
            }
            let Some(found) = settings(answer) else {
                return Err(EngineError::Storage(format!(
                    "{node}: CONFIG GET answered {answer:?}"
                )));
            };
            for (name, wanted) in REQUIRED_SETTINGS {
                let value = found.get(name).map(String::as_str).unwrap_or("unset");
                if value != wanted {
                    problems.push(format!("{node}: {name} is {value}, otpd needs {wanted}"));
                }
            }
        }

        let before = local_now_ms();
        let cluster = self.time_ms().await?;
        let after = local_now_ms();
        let local = before / 2 + after / 2 + (before % 2 + after % 2) / 2;
        let clock_offset_ms =
            i64::try_from(cluster).unwrap_or(i64::MAX) - i64::try_from(local).unwrap_or(i64::MAX);
        let allowed = i64::try_from(max_skew.as_millis()).unwrap_or(i64::MAX);
        if clock_offset_ms.abs() > allowed {
            problems.push(format!(
                "this node's clock is {clock_offset_ms} ms from the cluster's (TIME); \
                 at most {allowed} ms is allowed"
            ));
        }
        Ok(Health {
            masters,
            slots_ok,
            settings_checked,
            clock_offset_ms,
            problems,
            warnings,
        })
    }

    /// Sends `command` to the master serving `key` (operations and tests).
    pub async fn command_on_key(&self, command: redis::Cmd, key: &str) -> Result<Value> {
        let route =
            redis::cluster_routing::Route::with_key(key, redis::cluster_routing::SlotAddr::Master);
        self.conn()
            .route_command(
                command,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
            )
            .await
            .map_err(|e| unavailable("sending a command", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_answers_read_in_both_protocols() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let resp2 = Value::Array(vec![bulk("appendfsync"), bulk("always")]);
        let resp3 = Value::Map(vec![(bulk("appendfsync"), bulk("always"))]);
        for answer in [resp2, resp3] {
            let found = settings(&answer).expect("read");
            assert_eq!(found.get("appendfsync").map(String::as_str), Some("always"));
        }
        assert_eq!(settings(&Value::Array(vec![bulk("odd")])), None);
    }
}
