//! Reading every key of a kind, for the tools that must (`otpd migrate`
//! from a cluster, `otpd check` and `otpd backup` on one): `SCAN` on every
//! master in turn. Never on a request's path: it is O(keys).

use redis::Value;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};

use super::{Cluster, unavailable};
use crate::error::{EngineError, Result};

impl Cluster {
    /// The masters serving slots now, as `host:port`.
    pub async fn masters(&self) -> Result<Vec<String>> {
        let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let answers = self
            .conn()
            .route_command(redis::cmd("PING"), routing)
            .await
            .map_err(|e| unavailable("asking every master", &e))?;
        let Value::Map(per_node) = answers else {
            return Err(EngineError::Storage(format!(
                "PING on every master answered {answers:?}"
            )));
        };
        let mut masters: Vec<String> = per_node
            .into_iter()
            .filter_map(|(node, _)| match node {
                Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                Value::SimpleString(text) => Some(text),
                _ => None,
            })
            .collect();
        masters.sort();
        Ok(masters)
    }

    /// Every key matching `pattern` (a `SCAN` glob), on every master. A
    /// key written or deleted during the scan may or may not be in it.
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for master in self.masters().await? {
            let (host, port) = master
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| EngineError::Storage(format!("a master named {master:?}")))?;
            let mut cursor = 0u64;
            loop {
                let mut command = redis::cmd("SCAN");
                command
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(10_000);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port,
                });
                let answer = self
                    .conn()
                    .route_command(command, routing)
                    .await
                    .map_err(|e| unavailable("scanning the keys", &e))?;
                let (next, found): (u64, Vec<String>) = redis::from_redis_value(answer)
                    .map_err(|e| EngineError::Storage(format!("SCAN answered: {e}")))?;
                keys.extend(found);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}
