//! Results: the summary table, JSON, and an SVG plot of a run.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::options::{Model, Options};
use crate::stats::{Recorded, Series};

/// Percentiles reported for every series.
const PERCENTILES: [(&str, f64); 4] = [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9)];

/// A finished run.
#[derive(Debug, Clone)]
pub struct Report {
    /// What was measured.
    pub recorded: Recorded,
    /// Measured time (after warm-up).
    pub measured: Duration,
    /// `/livez` requests per second, if the ceiling was measured.
    pub ceiling: Option<f64>,
    /// The argon2 crate's own verifications per second on the server's
    /// cores, if measured: the ceiling of the login rate.
    pub argon2_ceiling: Option<f64>,
    /// Messages at the sink, and those nobody waited for.
    pub sink: (u64, u64),
    /// A one-line description of the load.
    pub load: String,
    /// Flows started per second, for the open model.
    pub offered: Option<f64>,
    /// The targets' URLs (the keys of `recorded.nodes` index them).
    pub targets: Vec<String>,
}

fn us(h: &Histogram<u64>, p: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_percentile(p)
    }
}

pub(crate) fn fmt_us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1}ms", v as f64 / 1000.0)
    } else if v >= 1000 {
        format!("{:.2}ms", v as f64 / 1000.0)
    } else {
        format!("{v}µs")
    }
}

impl Report {
    pub(crate) fn new(
        options: &Options,
        recorded: Recorded,
        measured: Duration,
        ceiling: Option<f64>,
        sink: (u64, u64),
    ) -> Report {
        let model = match options.model {
            Model::Open { rate } => format!("open model, {rate}/s"),
            Model::Closed { concurrency } => format!("closed model, {concurrency} workers"),
        };
        let mix: Vec<String> = options
            .mix
            .0
            .iter()
            .map(|(f, w)| format!("{}={w}", f.name()))
            .collect();
        Report {
            recorded,
            measured,
            ceiling,
            argon2_ceiling: None,
            sink,
            load: format!(
                "{model}, mix {}, ramp {:?}, warm-up {:?}{}",
                mix.join(","),
                options.ramp,
                options.warmup,
                if options.targets.len() > 1 {
                    format!(", {} targets ({:?})", options.targets.len(), options.pick)
                } else {
                    String::new()
                }
            ),
            offered: match options.model {
                Model::Open { rate } => Some(rate),
                Model::Closed { .. } => None,
            },
            targets: options.targets.clone(),
        }
    }

    fn rate(&self, count: u64) -> f64 {
        count as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// Flows that ended well or badly, and the share that failed.
    pub fn error_rate(&self) -> f64 {
        let (ok, errors) = self
            .recorded
            .flows
            .values()
            .fold((0, 0), |(o, e), s| (o + s.ok, e + s.errors));
        if ok + errors == 0 {
            0.0
        } else {
            errors as f64 / (ok + errors) as f64
        }
    }

    /// Successful flows per second, all flows together.
    pub fn throughput(&self) -> f64 {
        self.rate(self.recorded.flows.values().map(|s| s.ok).sum())
    }

    /// Looks up a series by name: flows first, then steps.
    pub fn series(&self, name: &str) -> Option<&Series> {
        self.recorded
            .flows
            .get(name)
            .or_else(|| self.recorded.steps.get(name))
    }

    /// The human summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "load: {}; measured {:.1} s",
            self.load,
            self.measured.as_secs_f64()
        );
        let nodes: Vec<(String, &Series)> = if self.targets.len() > 1 {
            self.recorded
                .nodes
                .iter()
                .map(|(i, s)| (self.target_name(*i), s))
                .collect()
        } else {
            Vec::new()
        };
        fn named<'a>(
            map: &'a std::collections::BTreeMap<&'static str, Series>,
        ) -> Vec<(String, &'a Series)> {
            map.iter().map(|(n, s)| ((*n).to_owned(), s)).collect()
        }
        for (title, rows) in [
            ("flow", named(&self.recorded.flows)),
            ("step", named(&self.recorded.steps)),
            ("flows by node", nodes),
        ] {
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n{title:<14} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "ok", "errors", "per s", "p50", "p90", "p99", "p99.9", "max"
            );
            for (name, s) in rows {
                let _ = write!(
                    out,
                    "{name:<14} {:>9} {:>7} {:>9.0}",
                    s.ok,
                    s.errors,
                    self.rate(s.ok)
                );
                for (_, p) in PERCENTILES {
                    let _ = write!(out, " {:>9}", fmt_us(us(&s.latency, p)));
                }
                let _ = writeln!(out, " {:>9}", fmt_us(s.latency.max()));
            }
        }
        if !self.recorded.errors.is_empty() {
            let _ = writeln!(out, "\nerrors:");
            for (what, n) in &self.recorded.errors {
                let _ = writeln!(out, "  {n:>8}  {what}");
            }
        }
        let _ = writeln!(
            out,
            "\nflows: {:.0}/s ok, {:.3}% failed; late starts {}, dropped {}; sink received {} ({} unmatched)",
            self.throughput(),
            self.error_rate() * 100.0,
            self.recorded.late,
            self.recorded.dropped,
            self.sink.0,
            self.sink.1
        );
        if let Some(ceiling) = self.ceiling {
            let _ = writeln!(out, "ceiling: /livez {ceiling:.0} requests/s");
            for (name, s) in self.recorded.steps.iter().chain(self.recorded.flows.iter()) {
                let _ = writeln!(
                    out,
                    "  {name:<14} {:.0}/s = {:.1}% of the ceiling",
                    self.rate(s.ok),
                    100.0 * self.rate(s.ok) / ceiling.max(1e-9)
                );
            }
        }
        if let Some(raw) = self.argon2_ceiling {
            let _ = writeln!(
                out,
                "argon2 ceiling: the crate alone verifies {raw:.1}/s at the server's cost"
            );
            for (name, s) in &self.recorded.flows {
                let _ = writeln!(
                    out,
                    "  {name:<14} {:.1}/s = {:.2}x the raw Argon2 rate",
                    self.rate(s.ok),
                    self.rate(s.ok) / raw.max(1e-9)
                );
            }
        }
        out
    }

    /// Target `i`'s name in the table: its URL without the scheme.
    fn target_name(&self, i: usize) -> String {
        self.targets.get(i).map_or_else(
            || format!("target {i}"),
            |t| {
                t.split_once("://")
                    .map_or(t.as_str(), |(_, rest)| rest)
                    .to_owned()
            },
        )
    }

    /// Everything as JSON.
    pub fn json(&self) -> Value {
        let series = |map: &std::collections::BTreeMap<&'static str, Series>| -> Value {
            map.iter()
                .map(|(name, s)| ((*name).to_owned(), self.series_json(s)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let nodes: Vec<Value> = self
            .recorded
            .nodes
            .iter()
            .map(|(i, s)| {
                let mut v = self.series_json(s);
                v["target"] = json!(self.targets.get(*i));
                v
            })
            .collect();
        json!({
            "load": self.load,
            "targets": self.targets,
            "offered_per_second": self.offered,
            "measured_seconds": self.measured.as_secs_f64(),
            "throughput": self.throughput(),
            "error_rate": self.error_rate(),
            "late": self.recorded.late,
            "dropped": self.recorded.dropped,
            "sink": { "received": self.sink.0, "unmatched": self.sink.1 },
            "ceiling_per_second": self.ceiling,
            "argon2_ceiling_per_second": self.argon2_ceiling,
            "flows": series(&self.recorded.flows),
            "steps": series(&self.recorded.steps),
            "nodes": nodes,
            "errors": self.recorded.errors,
        })
    }

    /// One series as JSON.
    fn series_json(&self, s: &Series) -> Value {
        let mut v = json!({
            "ok": s.ok,
            "errors": s.errors,
            "per_second": self.rate(s.ok),
            "max_us": s.latency.max(),
            "mean_us": s.latency.mean(),
        });
        for (label, p) in PERCENTILES {
            v[format!("{label}_us")] = json!(us(&s.latency, p));
        }
        if let Some(c) = self.ceiling {
            v["ceiling_fraction"] = json!(self.rate(s.ok) / c.max(1e-9));
        }
        if let Some(raw) = self.argon2_ceiling {
            v["argon2_fraction"] = json!(self.rate(s.ok) / raw.max(1e-9));
        }
        v
    }

    /// An SVG: each flow's p50/p99 per second over the run (left), and each
    /// flow's percentile spectrum (right, log scale of 1/(1-p)).
    pub fn svg(&self) -> String {
        const W: f64 = 1000.0;
        const H: f64 = 420.0;
        const COLOURS: [&str; 6] = [
            "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
        ];
        let flows: Vec<(&str, &Series)> =
            self.recorded.flows.iter().map(|(n, s)| (*n, s)).collect();
        let max_ms = flows
            .iter()
            .map(|(_, s)| s.latency.value_at_percentile(99.9) as f64 / 1000.0)
            .fold(0.1f64, f64::max)
            * 1.1;
        let seconds = flows
            .iter()
            .map(|(_, s)| s.per_second.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="10" y="16" font-size="13">otp-loadtest: {}</text>"#,
            escape(&self.load)
        );
        // Panels: (x0, y0, width, height).
        let (lx, ly, lw, lh) = (60.0, 40.0, 400.0, 320.0);
        let (rx, ry, rw, rh) = (560.0, 40.0, 400.0, 320.0);
        for (x, y, w, h, title, xlabel) in [
            (
                lx,
                ly,
                lw,
                lh,
                "latency over time (solid p99, dashed p50)",
                "seconds",
            ),
            (rx, ry, rw, rh, "percentile spectrum", "percentile"),
        ] {
            let _ = write!(
                svg,
                r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="none" stroke="#888"/><text x="{}" y="{}">{title}</text><text x="{}" y="{}">{xlabel}</text>"##,
                x,
                y - 6.0,
                x + w / 2.0 - 20.0,
                y + h + 28.0
            );
            for i in 0..=4 {
                let v = max_ms * f64::from(i) / 4.0;
                let py = y + h - h * f64::from(i) / 4.0;
                let _ = write!(
                    svg,
                    r##"<line x1="{x}" x2="{}" y1="{py}" y2="{py}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.1} ms</text>"##,
                    x + w,
                    x - 4.0,
                    py + 4.0
                );
            }
        }
        for i in 0..=4 {
            let s = seconds as f64 * f64::from(i) / 4.0;
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{s:.0}</text>"#,
                lx + lw * f64::from(i) / 4.0,
                ly + lh + 14.0
            );
        }
        let spectrum = [0.0, 50.0, 90.0, 99.0, 99.9, 99.99];
        let xpos = |p: f64| {
            let v = (1.0 / (1.0 - p / 100.0)).log10(); // 0 .. 4
            rx + rw * v / 4.0
        };
        for p in &spectrum[1..] {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">{p}</text>"#,
                xpos(*p),
                ry + rh + 14.0
            );
        }
        for (i, (name, s)) in flows.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let y_of = |us: u64| ly + lh - lh * ((us as f64 / 1000.0) / max_ms).min(1.0);
            for (p, dash) in [(99.0, ""), (50.0, r#" stroke-dasharray="4 3""#)] {
                let points: Vec<String> = s
                    .per_second
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| !h.is_empty())
                    .map(|(t, h)| {
                        format!(
                            "{:.1},{:.1}",
                            lx + lw * (t as f64 + 0.5) / seconds as f64,
                            y_of(h.value_at_percentile(p))
                        )
                    })
                    .collect();
                let _ = write!(
                    svg,
                    r#"<polyline fill="none" stroke="{colour}"{dash} points="{}"/>"#,
                    points.join(" ")
                );
            }
            let points: Vec<String> = (0..=400)
                .map(|k| 100.0 * (1.0 - 10f64.powf(-4.0 * f64::from(k) / 400.0)))
                .filter(|_| !s.latency.is_empty())
                .map(|p| {
                    let y = ry + rh
                        - rh * ((s.latency.value_at_percentile(p) as f64 / 1000.0) / max_ms)
                            .min(1.0);
                    format!("{:.1},{y:.1}", xpos(p))
                })
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" points="{}"/>"#,
                points.join(" ")
            );
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" fill="{colour}">{name}</text>"#,
                rx + 10.0,
                ry + 16.0 + 14.0 * i as f64
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
