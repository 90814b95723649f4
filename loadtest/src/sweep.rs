//! Sweeps: the latency of one flow against offered load, read from the
//! JSON reports of runs at increasing rates and drawn as SVG.

use std::fmt::Write as _;

use serde_json::Value;

use crate::report::escape;

/// One run of a sweep, read from a report's JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepPoint {
    /// Flows started per second.
    pub offered: f64,
    /// Flows completed per second.
    pub achieved: f64,
    /// Median flow latency, ms.
    pub p50_ms: f64,
    /// 99th percentile flow latency, ms.
    pub p99_ms: f64,
}

impl SweepPoint {
    /// Reads `flow`'s figures from an open-model report's JSON.
    pub fn from_json(report: &Value, flow: &str) -> Result<SweepPoint, String> {
        let offered = report["offered_per_second"]
            .as_f64()
            .ok_or("not an open-model report (no offered_per_second)")?;
        let series = &report["flows"][flow];
        let field = |name: &str| {
            series[name]
                .as_f64()
                .ok_or_else(|| format!("no {name} for flow {flow:?} in the report"))
        };
        Ok(SweepPoint {
            offered,
            achieved: field("per_second")?,
            p50_ms: field("p50_us")? / 1000.0,
            p99_ms: field("p99_us")? / 1000.0,
        })
    }
}

/// An SVG of a sweep: latency (p50, p99; log scale) against offered load on
/// the left, completed against offered flows/s on the right. Where p99
/// turns up and completions fall below the diagonal is the knee.
pub fn sweep_svg(title: &str, points: &[SweepPoint]) -> String {
    let mut points = points.to_vec();
    points.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let max_x = points
        .iter()
        .map(|p| p.offered.max(p.achieved))
        .fold(1.0, f64::max)
        * 1.05;
    let max_ms = points.iter().map(|p| p.p99_ms).fold(1.0, f64::max);
    // Log scale from 0.1 ms to the next power of ten above the worst p99.
    let decades = (max_ms / 0.1).log10().ceil().max(1.0);
    let (lx, ly, w, h) = (70.0, 40.0, 380.0, 300.0);
    let rx = 570.0;
    let x_of = |x0: f64, v: f64| x0 + w * v / max_x;
    let y_ms = |ms: f64| ly + h - h * ((ms.max(0.1) / 0.1).log10() / decades).min(1.0);
    let y_rate = |v: f64| ly + h - h * v / max_x;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="400" font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/><text x="10" y="16" font-size="13">{}</text>"##,
        escape(title)
    );
    for (x0, label, ylabel) in [
        (lx, "flow latency (solid p99, dashed p50)", "ms"),
        (
            rx,
            "completed against offered (dotted: all completed)",
            "flows/s",
        ),
    ] {
        let _ = write!(
            svg,
            r##"<rect x="{x0}" y="{ly}" width="{w}" height="{h}" fill="none" stroke="#888"/><text x="{x0}" y="{}">{label}</text><text x="{}" y="{}" text-anchor="middle">offered flows/s</text><text x="{}" y="{}" text-anchor="end">{ylabel}</text>"##,
            ly - 6.0,
            x0 + w / 2.0,
            ly + h + 30.0,
            x0 - 8.0,
            ly - 6.0
        );
        for i in 0..=4 {
            let v = max_x * f64::from(i) / 4.0;
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="middle">{v:.0}</text>"##,
                x_of(x0, v),
                ly + h + 14.0
            );
        }
    }
    for d in 0..=decades as i32 {
        let ms = 0.1 * 10f64.powi(d);
        let y = y_ms(ms);
        let _ = write!(
            svg,
            r##"<line x1="{lx}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{ms}</text>"##,
            lx + w,
            lx - 4.0,
            y + 4.0
        );
    }
    for i in 0..=4 {
        let v = max_x * f64::from(i) / 4.0;
        let y = y_rate(v);
        let _ = write!(
            svg,
            r##"<line x1="{rx}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.0}</text>"##,
            rx + w,
            rx - 4.0,
            y + 4.0
        );
    }
    let line = |svg: &mut String, pts: Vec<(f64, f64)>, style: &str| {
        let text: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" {style} points="{}"/>"##,
            text.join(" ")
        );
        for (x, y) in pts {
            let _ = write!(
                svg,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="#333"/>"##
            );
        }
    };
    line(
        &mut svg,
        points
            .iter()
            .map(|p| (x_of(lx, p.offered), y_ms(p.p99_ms)))
            .collect(),
        r##"stroke="#d62728""##,
    );
    line(
        &mut svg,
        points
            .iter()
            .map(|p| (x_of(lx, p.offered), y_ms(p.p50_ms)))
            .collect(),
        r##"stroke="#1f77b4" stroke-dasharray="4 3""##,
    );
    let _ = write!(
        svg,
        r##"<line x1="{rx}" y1="{}" x2="{}" y2="{ly}" stroke="#aaa" stroke-dasharray="2 3"/>"##,
        ly + h,
        rx + w
    );
    line(
        &mut svg,
        points
            .iter()
            .map(|p| (x_of(rx, p.offered), y_rate(p.achieved)))
            .collect(),
        r##"stroke="#2ca02c""##,
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn sweep_points_are_read_from_reports_and_drawn_in_offered_order() {
        let report = |offered: f64, p99: u64| {
            json!({
                "offered_per_second": offered,
                "flows": { "step-up": { "per_second": offered * 0.9, "p50_us": 800, "p99_us": p99 } }
            })
        };
        let fast = SweepPoint::from_json(&report(300.0, 4_000), "step-up").unwrap();
        assert_eq!(
            fast,
            SweepPoint {
                offered: 300.0,
                achieved: 270.0,
                p50_ms: 0.8,
                p99_ms: 4.0
            }
        );
        let slow = SweepPoint::from_json(&report(1500.0, 900_000), "step-up").unwrap();
        let closed = json!({ "offered_per_second": null, "flows": {} });
        let err = SweepPoint::from_json(&closed, "step-up").unwrap_err();
        assert!(err.contains("open-model"), "{err}");
        let err = SweepPoint::from_json(&report(1.0, 1), "login").unwrap_err();
        assert!(err.contains("login"), "{err}");

        let svg = sweep_svg("sweep", &[slow, fast]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // p99, p50 and completions: three lines of two points each, drawn left to right.
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 6);
        let first = svg.find("<polyline").unwrap();
        let points = &svg[first..];
        let points = &points[points.find("points=\"").unwrap() + 8..];
        let xs: Vec<f64> = points
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(xs[0] < xs[1], "{xs:?}");
        // The log scale reaches the worst p99 (900 ms → up to 1,000 ms).
        assert!(svg.contains(">1000<"), "no 1000 ms gridline");
    }
}
