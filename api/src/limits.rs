//! Per-source-IP and per-client rate limits, applied before a request does
//! any work. Per-account, per-destination and SMS limits live in the engine,
//! which alone knows where a code goes.
//!
//! The source IP is the connection's peer, or, when the peer is a trusted
//! proxy, the right-most address in `X-Forwarded-For` that is not itself a
//! trusted proxy (the left part of that header is whatever the client
//! claimed). IPv6 sources are keyed by their /64, the block one subscriber
//! usually holds, so rotating addresses within it gains nothing.
//!
//! On a cluster the buckets are the cluster's (`engine::SharedBuckets`):
//! every node spends from the same ones, so an attacker spreading requests
//! over nodes gets one node's allowance, and a check the cluster cannot
//! answer refuses the request (503).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use engine::{ClientId, Clock, EngineError, KeyedLimit, Rate, SharedBuckets};
use hyper::HeaderMap;

use crate::cidr::{Cidr, bits, mask};
use crate::config::{LimitsConfig, parse_proxies};

/// What a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Nothing limited here (reads, admin, health).
    Free,
    /// It may send a code.
    Issue,
    /// It checks a PIN or a code.
    Attempt,
    /// Both (a login checks the PIN and sends a code).
    IssueAndAttempt,
}

/// The key a source address is limited under: IPv4 as is, IPv6 by its /64.
fn source_key(addr: IpAddr) -> u128 {
    let b = bits(addr);
    if Ipv6Addr::from(b).to_ipv4_mapped().is_some() {
        b
    } else {
        b & mask(64)
    }
}

/// The request-level limits, keyed by a source address (see
/// [`source_key`]) or by the client's id.
pub struct Gate {
    trusted: Vec<Cidr>,
    /// SipHash keys naming a source's bucket: the limits see a digest of
    /// the address (IPv6: of its /64), never the address itself.
    sources: (u64, u64),
    issue_ip: KeyedLimit<u128>,
    issue_client: KeyedLimit<ClientId>,
    attempt_ip: KeyedLimit<u128>,
    attempt_client: KeyedLimit<ClientId>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Builds the limits from configuration, their buckets on `shared`
    /// state when there is some (a cluster's), in this process otherwise.
    /// `subject_key` keys the digests of source addresses (the engine's
    /// `limit_subject_key`: the same on every node of a cluster).
    pub fn new(
        config: &LimitsConfig,
        clock: &Arc<dyn Clock>,
        shared: Option<&Arc<dyn SharedBuckets>>,
        subject_key: [u8; 16],
    ) -> Result<Gate, String> {
        let (k0, k1) = subject_key.split_at(8);
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        let max_keys = config.max_keys as usize;
        let ip = |reason, per_minute| {
            let rates = [Rate::per_minute(per_minute)];
            KeyedLimit::on(reason, &rates, max_keys, Arc::clone(clock), shared)
        };
        let client = |reason, per_minute| {
            let rates = [Rate::per_minute(per_minute)];
            KeyedLimit::on(reason, &rates, max_keys, Arc::clone(clock), shared)
        };
        Ok(Gate {
            trusted: parse_proxies(&config.trusted_proxies)?,
            sources: (word(k0), word(k1)),
            issue_ip: ip("ip_issue_rate", config.issue_per_ip_minute),
            issue_client: client("client_issue_rate", config.issue_per_client_minute),
            attempt_ip: ip("ip_attempt_rate", config.attempts_per_ip_minute),
            attempt_client: client("client_attempt_rate", config.attempts_per_client_minute),
        })
    }

    /// The address a request comes from (see the module documentation).
    pub fn source(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |a: IpAddr| self.trusted.iter().any(|c| c.contains(a));
        if !trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut source = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(addr) => {
                    source = addr;
                    if !trusted(addr) {
                        break;
                    }
                }
                // A malformed hop: the last good address is as far as we can trust.
                Err(_) => break,
            }
        }
        source
    }

    /// Spends what `cost` says for `source` and `client`, or says which limit refuses.
    /// Per-IP limits are checked first, so one noisy address does not spend
    /// its client's allowance.
    /// A limit the shared state cannot check refuses too
    /// ([`EngineError::Storage`]).
    pub fn check(&self, cost: Cost, source: IpAddr, client: ClientId) -> Result<(), EngineError> {
        let key = self.digest(source_key(source));
        if matches!(cost, Cost::Attempt | Cost::IssueAndAttempt) {
            self.attempt_ip.check(&key)?;
            self.attempt_client.check(&client)?;
        }
        if matches!(cost, Cost::Issue | Cost::IssueAndAttempt) {
            self.issue_ip.check(&key)?;
            self.issue_client.check(&client)?;
        }
        Ok(())
    }

    /// The keyed digest a source's bucket is named by.
    fn digest(&self, source: u128) -> u128 {
        use siphasher::sip128::{Hasher128, SipHasher13};
        use std::hash::Hasher;
        let mut hasher = SipHasher13::new_with_keys(self.sources.0, self.sources.1);
        hasher.write(&source.to_le_bytes());
        hasher.finish128().as_u128()
    }

    /// Forgets keys whose buckets have refilled.
    pub fn prune(&self) {
        self.issue_ip.prune();
        self.attempt_ip.prune();
        self.issue_client.prune();
        self.attempt_client.prune();
    }

    /// Keys held and overflow counts, per limit, for metrics (none on
    /// shared state: its buckets expire by themselves).
    pub fn usage(&self) -> Vec<(&'static str, usize, u64)> {
        if self.issue_ip.is_shared() {
            return Vec::new();
        }
        let usage = |keys, overflowed, reason| (reason, keys, overflowed);
        [
            usage(
                self.issue_ip.keys(),
                self.issue_ip.overflowed(),
                self.issue_ip.reason(),
            ),
            usage(
                self.attempt_ip.keys(),
                self.attempt_ip.overflowed(),
                self.attempt_ip.reason(),
            ),
            usage(
                self.issue_client.keys(),
                self.issue_client.overflowed(),
                self.issue_client.reason(),
            ),
            usage(
                self.attempt_client.keys(),
                self.attempt_client.overflowed(),
                self.attempt_client.reason(),
            ),
        ]
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{ManualClock, Timestamp};
    use hyper::header::HeaderValue;

    fn gate(trusted: &[&str]) -> Gate {
        let config = LimitsConfig {
            trusted_proxies: trusted.iter().map(|s| (*s).to_owned()).collect(),
            ..LimitsConfig::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(0)));
        Gate::new(&config, &clock, None, [9; 16]).unwrap()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let g = gate(&["10.0.0.0/8", "::1"]);
        let h = forwarded("6.6.6.6, 203.0.113.9, 10.1.1.1");
        // From a trusted proxy: skip trusted hops, take the first untrusted one.
        assert_eq!(g.source(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        assert_eq!(g.source(ip("::1"), &h), ip("203.0.113.9"));
        // From anyone else: the header is ignored.
        assert_eq!(g.source(ip("198.51.100.7"), &h), ip("198.51.100.7"));
        // Garbage stops the walk at the last good address.
        let h = forwarded("1.2.3.4, nonsense");
        assert_eq!(g.source(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        assert_eq!(g.source(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_sources_share_a_limit_per_64_and_ipv4_mapped_is_ipv4() {
        assert_eq!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_key(ip("::ffff:1.2.3.4")), source_key(ip("1.2.3.4")));
        assert_ne!(source_key(ip("1.2.3.4")), source_key(ip("1.2.3.5")));
    }

    /// Shared state that never answers (a cluster that is down).
    struct Unanswering;

    impl SharedBuckets for Unanswering {
        fn spend(
            &self,
            _: &str,
            _: &str,
            _: engine::Timestamp,
            _: &[Rate],
        ) -> Result<Option<(usize, std::time::Duration)>, EngineError> {
            Err(EngineError::Storage("the cluster did not answer".into()))
        }

        fn count_sms(&self, _: u64, _: &str) {}

        fn sms_tally(&self, _: Option<u64>) -> Result<Vec<(String, u64)>, EngineError> {
            Err(EngineError::Storage("the cluster did not answer".into()))
        }
    }

    #[test]
    fn limits_on_shared_state_that_does_not_answer_refuse_the_request() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(0)));
        let shared: Arc<dyn SharedBuckets> = Arc::new(Unanswering);
        let g = Gate::new(&LimitsConfig::default(), &clock, Some(&shared), [9; 16]).unwrap();
        let front = ClientId::parse("client", "00000000000000f1").unwrap();
        for cost in [Cost::Issue, Cost::Attempt, Cost::IssueAndAttempt] {
            match g.check(cost, ip("192.0.2.1"), front) {
                Err(EngineError::Storage(why)) => assert!(why.contains("ip_"), "{why}"),
                other => panic!("{cost:?}: expected a refusal (503), got {other:?}"),
            }
        }
        g.check(Cost::Free, ip("192.0.2.1"), front).unwrap();
        assert!(g.usage().is_empty(), "no keys held in the process");
    }

    #[test]
    fn each_cost_spends_its_own_limits() {
        let config = LimitsConfig {
            attempts_per_ip_minute: 2,
            issue_per_ip_minute: 1,
            ..LimitsConfig::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp(0)));
        let g = Gate::new(&config, &clock, None, [9; 16]).unwrap();
        let a = ip("192.0.2.1");
        let front = ClientId::parse("client", "00000000000000f1").unwrap();
        let reason = |e: EngineError| match e {
            EngineError::RateLimited { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        g.check(Cost::Attempt, a, front).unwrap();
        g.check(Cost::Attempt, a, front).unwrap();
        let refused = g.check(Cost::Attempt, a, front).unwrap_err();
        assert_eq!(reason(refused), "ip_attempt_rate");
        g.check(Cost::Issue, a, front).unwrap();
        assert_eq!(
            reason(g.check(Cost::Issue, a, front).unwrap_err()),
            "ip_issue_rate"
        );
        g.check(Cost::Free, a, front).unwrap();
        g.check(Cost::Attempt, ip("192.0.2.2"), front).unwrap();
    }
}
