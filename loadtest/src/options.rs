//! What a run is asked to do: the flows and their mix, the arrival model and the options.

use std::time::Duration;

use crate::argon2::Argon2Ceiling;

/// A flow: one citizen's whole interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flow {
    /// Step-up: issue a code, receive it at the sink, verify it.
    StepUp,
    /// Login: phone + PIN (Argon2), receive the code, verify it.
    Login,
    /// A step-up whose first code typed is wrong (401), then the right one.
    WrongCode,
    /// A status read of a recent challenge.
    Status,
    /// Signature: phone + PIN (Argon2) and a document, the code bound to
    /// it, its verify with the attestation signed (Ed25519).
    Signature,
    /// Account-less: a code to the account's phone with no account
    /// (`/v1/destinations/verify`), received at the sink, checked.
    Destination,
}

impl Flow {
    /// Its name in options and results.
    pub fn name(self) -> &'static str {
        match self {
            Flow::StepUp => "step-up",
            Flow::Login => "login",
            Flow::WrongCode => "wrong-code",
            Flow::Status => "status",
            Flow::Signature => "signature",
            Flow::Destination => "destination",
        }
    }

    fn parse(s: &str) -> Result<Flow, String> {
        Ok(match s.trim() {
            "step-up" => Flow::StepUp,
            "login" => Flow::Login,
            "wrong-code" => Flow::WrongCode,
            "status" => Flow::Status,
            "signature" => Flow::Signature,
            "destination" => Flow::Destination,
            other => {
                return Err(format!(
                    "unknown flow {other:?}: use step-up, login, wrong-code, status, signature or destination"
                ));
            }
        })
    }
}

/// Flows and their weights: `step-up` or `step-up=80,login=5,status=15`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(pub Vec<(Flow, u32)>);

impl Mix {
    /// Parses a flow name or a weighted list.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut out = Vec::new();
        for part in text.split(',') {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => (
                    n,
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("weight in {part:?} is not a whole number"))?,
                ),
                None => (part, 1),
            };
            if weight > 0 {
                out.push((Flow::parse(name)?, weight));
            }
        }
        if out.is_empty() {
            return Err("the mix has no flow with a weight above 0".into());
        }
        Ok(Mix(out))
    }

    /// The flow of arrival `n`: a deterministic interleaving by weight.
    pub(crate) fn pick(&self, n: u64) -> Flow {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        // Spread arrivals with a multiplicative hash so weights interleave.
        let mut slot = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % total;
        for (flow, weight) in &self.0 {
            if slot < u64::from(*weight) {
                return *flow;
            }
            slot -= u64::from(*weight);
        }
        self.0[0].0
    }
}

/// How each flow's target is chosen when there are several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Each kind of flow goes to the targets in turn (its own turns: one
    /// count for all flows would tie a flow of a mix to one target, the mix
    /// being picked from the same arrival number).
    RoundRobin,
    /// Each flow to a target drawn at random (a fixed sequence: runs repeat).
    Random,
}

impl Pick {
    /// Parses `round-robin` or `random`.
    pub fn parse(text: &str) -> Result<Pick, String> {
        match text.trim() {
            "round-robin" => Ok(Pick::RoundRobin),
            "random" => Ok(Pick::Random),
            other => Err(format!("--pick {other:?}: use round-robin or random")),
        }
    }

    /// The target among `targets` of arrival `n`, the `turn`-th flow of
    /// its kind.
    pub fn target(self, n: u64, turn: u64, targets: usize) -> usize {
        let targets = targets.max(1) as u64;
        let slot = match self {
            Pick::RoundRobin => turn % targets,
            // splitmix64 of n: uniform, and the same every run.
            Pick::Random => {
                let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) % targets
            }
        };
        usize::try_from(slot).unwrap_or(0)
    }
}

/// Each kind of flow's count of arrivals so far (its turns).
#[derive(Debug, Default)]
pub struct Turns([std::sync::atomic::AtomicU64; 6]);

impl Turns {
    /// The turn of the next `flow`.
    pub fn next(&self, flow: Flow) -> u64 {
        let i = match flow {
            Flow::StepUp => 0,
            Flow::Login => 1,
            Flow::WrongCode => 2,
            Flow::Status => 3,
            Flow::Signature => 4,
            Flow::Destination => 5,
        };
        self.0[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// How arrivals come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// Open: `rate` flows a second at fixed intended times, whatever the
    /// server does (latency counts from the intended time).
    Open {
        /// Flows per second (after the ramp).
        rate: f64,
    },
    /// Closed: `concurrency` workers, each starting a flow when its last ends.
    Closed {
        /// Workers.
        concurrency: usize,
    },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// otpd's base URLs, e.g. `http://127.0.0.1:8080`: one, or several
    /// nodes of one service (on a cluster), each flow sent to one of them.
    pub targets: Vec<String>,
    /// How a flow's target is chosen among several.
    pub pick: Pick,
    /// A client key with the `auth` scope (and `admin` to seed).
    pub key: String,
    /// The flows.
    pub mix: Mix,
    /// Open or closed.
    pub model: Model,
    /// Time to reach the full rate (open model).
    pub ramp: Duration,
    /// Time at the start whose flows are not counted.
    pub warmup: Duration,
    /// How long to send (after warm-up); `None`: until `max_flows`.
    pub duration: Option<Duration>,
    /// Flows to start at most.
    pub max_flows: Option<u64>,
    /// Open model: flows in flight at most; arrivals beyond are dropped.
    pub max_in_flight: usize,
    /// The PIN of the test accounts.
    pub pin: String,
    /// Time allowed for each request and for each code to arrive.
    pub timeout: Duration,
    /// Print a progress line every second.
    pub progress: bool,
    /// After the run, measure `/livez` with this many connections for this long.
    pub ceiling: Option<(usize, Duration)>,
    /// After the run, measure the argon2 crate's raw verification rate.
    pub argon2_ceiling: Option<Argon2Ceiling>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_interleave_by_weight() {
        let mix = Mix::parse("step-up=3,login=1").unwrap();
        let picks: Vec<Flow> = (0..4000).map(|n| mix.pick(n)).collect();
        let logins = picks.iter().filter(|f| **f == Flow::Login).count();
        assert!((900..1100).contains(&logins), "{logins}");
        assert!(Mix::parse("teleport").is_err());
        assert!(Mix::parse("login=0").is_err());
        assert_eq!(Mix::parse("status").unwrap().0, vec![(Flow::Status, 1)]);
    }

    #[test]
    fn targets_are_picked_in_turn_or_at_random_and_evenly() {
        let turns: Vec<usize> = (0..6).map(|n| Pick::RoundRobin.target(n, n, 3)).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2]);
        let mut counts = [0u32; 2];
        for n in 0..10_000 {
            counts[Pick::Random.target(n, 0, 2)] += 1;
        }
        assert!((4_800..5_200).contains(&counts[0]), "{counts:?}");
        assert_ne!(
            (0..8)
                .map(|n| Pick::Random.target(n, 0, 2))
                .collect::<Vec<_>>(),
            [0, 1, 0, 1, 0, 1, 0, 1],
            "not round-robin in disguise"
        );
        assert_eq!(Pick::RoundRobin.target(7, 7, 1), 0);
        assert!(Pick::parse("sticky").is_err());
    }

    #[test]
    fn every_flow_of_a_mix_reaches_every_target() {
        for mix in [
            "step-up=1,login=1",
            "step-up=3,login=1",
            "step-up=80,login=5,status=15",
        ] {
            let mix = Mix::parse(mix).unwrap();
            for pick in [Pick::RoundRobin, Pick::Random] {
                let turns = Turns::default();
                let mut seen = std::collections::BTreeMap::<(Flow, usize), u32>::new();
                for n in 0..4_000 {
                    let flow = mix.pick(n);
                    let target = pick.target(n, turns.next(flow), 2);
                    *seen.entry((flow, target)).or_default() += 1;
                }
                for (flow, _) in &mix.0 {
                    let count = |t| f64::from(seen.get(&(*flow, t)).copied().unwrap_or(0));
                    let (a, b) = (count(0), count(1));
                    assert!(
                        a > 0.0 && b > 0.0 && (a / b - 1.0).abs() < 0.2,
                        "{mix:?} {pick:?} {seen:?}"
                    );
                }
            }
        }
    }
}
