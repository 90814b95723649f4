//! Time as an input: the engine never reads the system clock itself.
//!
//! Every rule that depends on time (expiry, temporary locks, cooldowns) asks a
//! [`Clock`]. Production uses [`SystemClock`]; tests use [`ManualClock`] and
//! move time by hand, so no test sleeps. The engine wraps whichever clock it
//! is given in [`Monotonic`], so a clock stepped backwards never lengthens the
//! life of a code or a lock.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This instant plus `d`, saturating instead of overflowing.
    pub fn plus(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// How long from `self` until `later`; zero if `later` is not later.
    pub fn until(self, later: Timestamp) -> Duration {
        Duration::from_millis(later.0.saturating_sub(self.0))
    }

    /// Whole days since 1970-01-01 (for comparing with calendar dates).
    pub fn days_since_epoch(self) -> i64 {
        i64::try_from(self.0 / 86_400_000).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time. May jump either way when the system clock is stepped.
    fn now(&self) -> Timestamp;

    /// Time since an arbitrary fixed origin; never goes backwards and is not
    /// moved by steps of the wall clock.
    fn monotonic(&self) -> Duration;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl SystemClock {
    /// The system clocks, with the monotonic origin at this call.
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // The one place the wall clock is read.
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    wall: Arc<AtomicU64>,
    monotonic: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            wall: Arc::new(AtomicU64::new(start.0)),
            monotonic: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Lets `d` pass: both the wall clock and the monotonic clock move.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.wall.fetch_add(ms, Ordering::SeqCst);
        self.monotonic.fetch_add(ms, Ordering::SeqCst);
    }

    /// Steps the wall clock to `t`, which may be in the past; no time passes.
    pub fn set(&self, t: Timestamp) {
        self.wall.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.wall.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.monotonic.load(Ordering::SeqCst))
    }
}

/// Wraps a clock so the time it reports never goes backwards.
///
/// `now = max(wall, wall at start + monotonic time since start, floor)`: a
/// forward step of the wall clock is taken, a backward step is ignored, and
/// time keeps running underneath it, so no code or lock lives longer than
/// its lifetime of real time.
#[derive(Debug)]
pub(crate) struct Monotonic {
    inner: Arc<dyn Clock>,
    /// Wall time at start, raised to any observed floor: time runs on from it.
    anchor_wall: AtomicU64,
    anchor_monotonic: Duration,
    high_water: AtomicU64,
}

impl Monotonic {
    /// The clock it reads (for limiters, which keep their own time).
    pub(crate) fn source(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner)
    }

    pub(crate) fn new(inner: Arc<dyn Clock>) -> Self {
        let anchor_wall = inner.now();
        let anchor_monotonic = inner.monotonic();
        Self {
            inner,
            anchor_wall: AtomicU64::new(anchor_wall.0),
            anchor_monotonic,
            high_water: AtomicU64::new(anchor_wall.0),
        }
    }

    /// Raises the floor, e.g. to the newest time found in the store on start.
    ///
    /// Time then runs on *from* the floor at the monotonic clock's pace: a
    /// wall clock that went back while otpd was stopped must not freeze time
    /// at the floor until it catches up, which would stretch every code and
    /// lock recovered from the store by the size of the step.
    pub(crate) fn observe(&self, t: Timestamp) {
        self.high_water.fetch_max(t.0, Ordering::SeqCst);
        self.anchor_wall.fetch_max(t.0, Ordering::SeqCst);
    }

    pub(crate) fn now(&self) -> Timestamp {
        let elapsed = self.inner.monotonic().saturating_sub(self.anchor_monotonic);
        let anchor = Timestamp(self.anchor_wall.load(Ordering::SeqCst));
        let t = self.inner.now().max(anchor.plus(elapsed)).0;
        let previous = self.high_water.fetch_max(t, Ordering::SeqCst);
        Timestamp(t.max(previous))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), Timestamp(3_000));
    }

    #[test]
    fn monotonic_clock_ignores_backward_steps_and_keeps_running() {
        let manual = ManualClock::new(Timestamp(10_000));
        let clock = Monotonic::new(Arc::new(manual.clone()));
        manual.advance(Duration::from_secs(5));
        manual.set(Timestamp(4_000));
        assert_eq!(clock.now(), Timestamp(15_000), "unread time still counts");
        manual.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Timestamp(16_000));
    }

    #[test]
    fn monotonic_clock_takes_forward_steps() {
        let manual = ManualClock::new(Timestamp(10_000));
        let clock = Monotonic::new(Arc::new(manual.clone()));
        manual.set(Timestamp(99_000));
        assert_eq!(clock.now(), Timestamp(99_000));
        manual.set(Timestamp(10_000));
        assert_eq!(clock.now(), Timestamp(99_000));
    }

    #[test]
    fn monotonic_clock_respects_an_observed_floor() {
        let manual = ManualClock::new(Timestamp(5));
        let clock = Monotonic::new(Arc::new(manual));
        clock.observe(Timestamp(99));
        assert_eq!(clock.now(), Timestamp(99));
    }

    #[test]
    fn time_runs_on_from_an_observed_floor_ahead_of_the_wall_clock() {
        let manual = ManualClock::new(Timestamp(5_000));
        let clock = Monotonic::new(Arc::new(manual.clone()));
        clock.observe(Timestamp(60_000));
        manual.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), Timestamp(62_000), "not frozen at the floor");
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        assert_eq!(
            Timestamp(u64::MAX).plus(Duration::from_secs(1)),
            Timestamp(u64::MAX)
        );
        assert_eq!(Timestamp(10).until(Timestamp(5)), Duration::ZERO);
        assert_eq!(Timestamp(86_400_000 * 3 + 5).days_since_epoch(), 3);
    }
}
