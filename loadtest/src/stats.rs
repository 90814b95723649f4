//! What a run measured: HdrHistograms per step and per flow (microseconds),
//! a per-second series for plots, and errors by status and reason.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, from 1 µs to 5 minutes, 3 digits.
fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 300_000_000, 3) {
        Ok(h) => h,
        Err(_) => unreachable!("constant bounds are valid"),
    }
}

/// One named series (a step such as `verify`, or a flow such as `step-up`).
#[derive(Debug, Clone)]
pub struct Series {
    /// Successful operations' latencies.
    pub latency: Histogram<u64>,
    /// Successes.
    pub ok: u64,
    /// Failures.
    pub errors: u64,
    /// Per second of the measured run: latencies of that second's operations.
    pub per_second: Vec<Histogram<u64>>,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            latency: histogram(),
            ok: 0,
            errors: 0,
            per_second: Vec::new(),
        }
    }
}

impl Series {
    fn record(&mut self, second: usize, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 300_000_000);
        self.latency.saturating_record(us);
        if self.per_second.len() <= second {
            self.per_second.resize_with(second + 1, histogram);
        }
        self.per_second[second].saturating_record(us);
        self.ok += 1;
    }
}

/// Everything recorded, behind one lock (a few tens of thousands of records
/// a second is far below what a mutex can take).
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<Recorded>,
}

/// The recorded data.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Per step.
    pub steps: BTreeMap<&'static str, Series>,
    /// Per flow.
    pub flows: BTreeMap<&'static str, Series>,
    /// Per target (the index of its URL), every flow sent there.
    pub nodes: BTreeMap<usize, Series>,
    /// Errors by "step status reason".
    pub errors: BTreeMap<String, u64>,
    /// Arrivals that started more than 10 ms after their intended time.
    pub late: u64,
    /// Arrivals not started because `max_in_flight` flows were running.
    pub dropped: u64,
}

impl Recorder {
    fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// A step succeeded in `latency`, in the run's `second`.
    pub fn step(&self, name: &'static str, second: usize, latency: Duration) {
        self.with(|r| r.steps.entry(name).or_default().record(second, latency));
    }

    /// A step failed; `what` is its status and reason.
    pub fn step_error(&self, name: &'static str, what: &str) {
        self.with(|r| {
            r.steps.entry(name).or_default().errors += 1;
            *r.errors.entry(format!("{name} {what}")).or_default() += 1;
        });
    }

    /// A whole flow finished: `ok` or not, `latency` from its intended start.
    pub fn flow(&self, name: &'static str, second: usize, latency: Duration, ok: bool) {
        self.with(|r| {
            let series = r.flows.entry(name).or_default();
            if ok {
                series.record(second, latency);
            } else {
                series.errors += 1;
            }
        });
    }

    /// A flow sent to target `node` finished (as [`Recorder::flow`]).
    pub fn node_flow(&self, node: usize, second: usize, latency: Duration, ok: bool) {
        self.with(|r| {
            let series = r.nodes.entry(node).or_default();
            if ok {
                series.record(second, latency);
            } else {
                series.errors += 1;
            }
        });
    }

    /// An arrival started late.
    pub fn late(&self) {
        self.with(|r| r.late += 1);
    }

    /// An arrival was dropped.
    pub fn dropped(&self) {
        self.with(|r| r.dropped += 1);
    }

    /// A copy of what was recorded.
    pub fn snapshot(&self) -> Recorded {
        self.with(|r| r.clone())
    }

    /// Totals for the progress line: (flows ok, flow errors).
    pub fn totals(&self) -> (u64, u64) {
        self.with(|r| {
            r.flows
                .values()
                .fold((0, 0), |(ok, err), s| (ok + s.ok, err + s.errors))
        })
    }
}
