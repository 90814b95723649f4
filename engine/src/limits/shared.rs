//! The port through which limits keep their state where every node shares
//! it (the cluster backend's `engine::remote::limits` implements it): a
//! limit built on it gives N nodes exactly one node's allowance, and a
//! restart forgets nothing.

use std::time::Duration;

use super::Rate;
use crate::clock::Timestamp;
use crate::error::Result;

/// Buckets and tallies shared by every node.
pub trait SharedBuckets: Send + Sync {
    /// Spends one event of each of `rates` (none of them off) on the bucket
    /// of `limit` for `subject` at `now`, all or none: `None` when spent,
    /// else the index of the first rate refusing and how long until it
    /// would allow. An error means the shared state did not answer.
    fn spend(
        &self,
        limit: &str,
        subject: &str,
        now: Timestamp,
        rates: &[Rate],
    ) -> Result<Option<(usize, Duration)>>;

    /// Adds one to `field` of the SMS tallies of `hour` and of all time,
    /// without waiting for the answer (a lost count only blurs the alarm).
    fn count_sms(&self, hour: u64, field: &str);

    /// The SMS tallies of `hour`, or of all time (`None`).
    fn sms_tally(&self, hour: Option<u64>) -> Result<Vec<(String, u64)>>;
}
