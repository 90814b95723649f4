//! Rate limits: keyed GCRA limiters (governor) whose memory is bounded
//! (`rate.rs`) or shared by every node (`shared.rs`), the issuance policy that guards every code the engine sends
//! (`issuance.rs`), and the SMS tallies behind the pumping alarm
//! (`pumping.rs`).
//!
//! A [`Rate`] of `count` per `per` lets a burst of `count` through and then
//! one more every `per / count`: "5 per 10 minutes" is 5 at once, then one
//! every 2 minutes. A count of 0 turns a limit off.
//!
//! On the embedded store, limiter state lives in memory only: a restart
//! forgets it (the durable per-challenge and per-account failure counters
//! do not). On a cluster every limit keeps its buckets on the cluster
//! (`shared.rs`, `cluster::rate`): all nodes together get exactly one
//! node's allowance, a restart forgets nothing, and a check the cluster
//! cannot answer refuses its request. Each local keyed
//! limiter holds at most `max_keys` keys; when it is full, keys it has not
//! seen share one overflow bucket until pruning (every sweep) drops keys
//! whose bucket is full again. A spray of random keys therefore costs a
//! bounded amount of memory and cannot open a hole in the limit.

mod issuance;
mod pumping;
mod rate;
mod shared;

pub(crate) use self::issuance::IssueLimits;
pub use self::issuance::IssueLimitsConfig;
pub use self::pumping::SmsConversion;
pub use self::rate::{GlobalLimit, KeyedLimit, Limited, Rate, Subject};
pub use self::shared::SharedBuckets;
