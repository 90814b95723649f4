//! The cluster's side of shared limits: [`SharedBuckets`] over
//! `cluster::rate`, so every rate limit, SMS budget and pumping tally is
//! the whole cluster's, not one node's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::runtime::Handle;

use super::{Remote, wait_on};
use crate::clock::Timestamp;
use crate::cluster::Cluster;
use crate::cluster::rate::{Pace, Spent};
use crate::error::{EngineError, Result};
use crate::limits::{Rate, SharedBuckets};

/// How long one hour's SMS tally is kept: the alarm reads this hour and
/// the last.
const HOUR_KEPT: Duration = Duration::from_secs(3 * 3600);

/// Buckets and tallies on the cluster.
pub(in crate::engine) struct ClusterBuckets {
    cluster: Cluster,
    runtime: Handle,
}

impl Remote {
    /// This node's view of the limits every node shares.
    pub(in crate::engine) fn buckets(&self) -> Result<Arc<dyn SharedBuckets>> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| EngineError::Internal("the cluster client's runtime is gone".into()))?;
        Ok(Arc::new(ClusterBuckets {
            cluster: self.cluster.clone(),
            runtime: runtime.handle().clone(),
        }))
    }
}

/// A rate as the cluster's buckets take it.
fn pace(rate: Rate) -> Pace {
    let per_us = u64::try_from(rate.per.as_micros()).unwrap_or(u64::MAX);
    Pace {
        interval_us: (per_us / u64::from(rate.count.max(1))).max(1),
        burst: rate.count.max(1),
    }
}

impl SharedBuckets for ClusterBuckets {
    fn spend(
        &self,
        limit: &str,
        subject: &str,
        now: Timestamp,
        rates: &[Rate],
    ) -> Result<Option<(usize, Duration)>> {
        let key = self.cluster.keys().limit(limit, subject);
        let paces: Vec<Pace> = rates.iter().copied().map(pace).collect();
        let cluster = self.cluster.clone();
        let now_us = now.0.saturating_mul(1000);
        let spent = wait_on(&self.runtime, async move {
            cluster.spend(&key, now_us, &paces).await
        });
        match spent {
            Ok(Spent::Allowed) => Ok(None),
            Ok(Spent::Refused { rate, wait }) => Ok(Some((rate, wait))),
            Err(e) => {
                let counters = self.cluster.counters();
                counters.limits_unanswered.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn count_sms(&self, hour: u64, field: &str) {
        let cluster = self.cluster.clone();
        let field = field.to_owned();
        self.runtime.spawn(async move {
            let keys = cluster.keys();
            let (this_hour, ever) = (keys.sms_tally(Some(hour)), keys.sms_tally(None));
            let counted = match cluster.count(&this_hour, &field, Some(HOUR_KEPT)).await {
                Ok(()) => cluster.count(&ever, &field, None).await,
                Err(e) => Err(e),
            };
            if counted.is_err() {
                cluster
                    .counters()
                    .tallies_lost
                    .fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    fn sms_tally(&self, hour: Option<u64>) -> Result<Vec<(String, u64)>> {
        let cluster = self.cluster.clone();
        wait_on(&self.runtime, async move {
            cluster.tally(&cluster.keys().sms_tally(hour)).await
        })
    }
}
