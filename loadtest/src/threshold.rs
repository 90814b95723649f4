//! Thresholds: pass/fail conditions on a report, for gating a pipeline
//! (`verify.p99<5ms`, `errors<0.1%`, `throughput>1000`).

use crate::report::{Report, fmt_us};

/// A pass/fail condition: `verify.p99<5ms`, `step-up.p50<2ms`,
/// `errors<0.1%`, `throughput>1000`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    what: Metric,
    below: bool,
    limit: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Metric {
    Latency {
        series: String,
        percentile: Option<f64>,
    },
    Errors,
    Throughput,
}

impl Threshold {
    /// Parses one threshold.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let bad = |why: &str| format!("threshold {text:?}: {why}");
        let (left, right, below) = if let Some((l, r)) = text.split_once('<') {
            (l.trim(), r.trim(), true)
        } else if let Some((l, r)) = text.split_once('>') {
            (l.trim(), r.trim(), false)
        } else {
            return Err(bad("use < or >, e.g. verify.p99<5ms"));
        };
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| bad("the limit is not a number"))
        };
        let (what, limit) = match left {
            "errors" => (
                Metric::Errors,
                number(
                    right
                        .strip_suffix('%')
                        .ok_or_else(|| bad("errors are a percentage, e.g. 0.1%"))?,
                )? / 100.0,
            ),
            "throughput" => (Metric::Throughput, number(right.trim_end_matches("/s"))?),
            _ => {
                let (series, stat) = left
                    .rsplit_once('.')
                    .ok_or_else(|| bad("name a series and a statistic, e.g. verify.p99"))?;
                let percentile = match stat {
                    "p50" => Some(50.0),
                    "p90" => Some(90.0),
                    "p99" => Some(99.0),
                    "p999" => Some(99.9),
                    "max" => None,
                    _ => return Err(bad("the statistic is p50, p90, p99, p999 or max")),
                };
                let (value, scale) = if let Some(v) = right.strip_suffix("ms") {
                    (v, 1000.0)
                } else if let Some(v) = right.strip_suffix("us").or(right.strip_suffix("µs")) {
                    (v, 1.0)
                } else if let Some(v) = right.strip_suffix('s') {
                    (v, 1_000_000.0)
                } else {
                    return Err(bad("give the latency a unit: us, ms or s"));
                };
                (
                    Metric::Latency {
                        series: series.to_owned(),
                        percentile,
                    },
                    number(value)? * scale,
                )
            }
        };
        Ok(Threshold {
            text: text.to_owned(),
            what,
            below,
            limit,
        })
    }

    /// `Err` with a message when the report violates it.
    pub fn check(&self, report: &Report) -> Result<(), String> {
        let value = match &self.what {
            Metric::Errors => report.error_rate(),
            Metric::Throughput => report.throughput(),
            Metric::Latency { series, percentile } => {
                let s = report.series(series).ok_or_else(|| {
                    format!("{}: no series named {series:?} in this run", self.text)
                })?;
                if s.latency.is_empty() {
                    return Err(format!("{}: {series} has no successful samples", self.text));
                }
                match percentile {
                    Some(p) => s.latency.value_at_percentile(*p) as f64,
                    None => s.latency.max() as f64,
                }
            }
        };
        let holds = if self.below {
            value < self.limit
        } else {
            value > self.limit
        };
        if holds {
            Ok(())
        } else {
            let shown = match self.what {
                Metric::Errors => format!("{:.3}%", value * 100.0),
                Metric::Throughput => format!("{value:.0}/s"),
                Metric::Latency { .. } => fmt_us(value as u64),
            };
            Err(format!(
                "threshold {} violated: measured {shown}",
                self.text
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_with_units_and_reject_nonsense() {
        let t = Threshold::parse("verify.p99<5ms").unwrap();
        assert_eq!(t.limit, 5000.0);
        assert_eq!(Threshold::parse("issue.max<250us").unwrap().limit, 250.0);
        assert_eq!(Threshold::parse("errors<0.1%").unwrap().limit, 0.001);
        assert_eq!(Threshold::parse("throughput>1000").unwrap().limit, 1000.0);
        assert!(Threshold::parse("verify.p99<5").is_err(), "unit required");
        assert!(Threshold::parse("verify.p42<5ms").is_err());
        assert!(Threshold::parse("errors<1").is_err());
        assert!(Threshold::parse("verify.p99=5ms").is_err());
    }
}
