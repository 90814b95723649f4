//! The `otp-loadtest` command line. See docs/LOADTEST.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use engine::Argon2Params;
use loadtest::sweep::{SweepPoint, sweep_svg};
use loadtest::{Argon2Ceiling, Http, Mix, Model, Options, Sink, Threshold, codes, run, seed};

/// Load otpd with real flows; codes arrive at a built-in SMS sink.
#[derive(Debug, Parser)]
#[command(name = "otp-loadtest", version)]
struct Args {
    /// otpd's base URL; several (repeat the option, or separate by commas)
    /// for the nodes of one service on a cluster: each flow goes to one of
    /// them (see --pick) and the report shows each node's flows. Seeding,
    /// --codes and the /livez ceiling use the first.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    target: Vec<String>,
    /// How each flow's target is chosen among several: round-robin or random.
    #[arg(long, default_value = "round-robin")]
    pick: String,
    /// Client API key (scope auth; admin too for --seed). Or OTP_LOADTEST_KEY.
    #[arg(long, env = "OTP_LOADTEST_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Where the delivery sink listens; otpd's SMS gateway URL must point at it.
    #[arg(long, default_value = "127.0.0.1:9900")]
    sink: String,
    /// A flow (step-up, login, wrong-code, status, signature, destination) or a weighted mix, e.g. step-up=90,login=10.
    #[arg(long, default_value = "step-up")]
    flow: String,
    /// Open model: flows started per second.
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed model: workers, each starting a flow when its last one ends.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds to ramp up to --rate.
    #[arg(long, default_value_t = 0.0)]
    ramp: f64,
    /// Seconds at the start that are not counted.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to run after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many flows (whichever comes first with --duration).
    #[arg(long)]
    max_flows: Option<u64>,
    /// Open model: flows in flight at most; later arrivals are dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    max_in_flight: usize,
    /// Create this many accounts through the bulk import (needs the admin scope).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of the first seeded account (phones are +3519 and 8 digits).
    #[arg(long, default_value_t = 0)]
    seed_from: u64,
    /// Accounts per import request (1 to 10,000): fewer for a server that
    /// imports slowly (on a cluster, each account is a registration).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    seed_batch: u64,
    /// File of seeded accounts: written by --seed, read otherwise.
    #[arg(long, default_value = "loadtest-accounts.txt")]
    accounts_file: PathBuf,
    /// The test accounts' PIN.
    #[arg(long, default_value = "4821")]
    pin: String,
    /// Argon2 memory (KiB) for the seeded PIN hash: use the server's.
    #[arg(long, default_value_t = 19_456)]
    argon2_memory_kib: u32,
    /// Argon2 iterations for the seeded PIN hash.
    #[arg(long, default_value_t = 2)]
    argon2_iterations: u32,
    /// Seconds allowed for each request and each code's delivery.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// After the run, measure /livez with this many connections (the bare-HTTP ceiling).
    #[arg(long)]
    ceiling: Option<usize>,
    /// Seconds of the ceiling measurement.
    #[arg(long, default_value_t = 5.0)]
    ceiling_seconds: f64,
    /// Before and after the run, with otpd idle, measure the argon2 crate's
    /// own verification rate on this many threads at the seeded cost
    /// (--argon2-*), each for --ceiling-seconds: the login rate's ceiling
    /// on the same cores (the report gives the mean of the two).
    #[arg(long)]
    argon2_ceiling: Option<usize>,
    /// Fail (exit 1) unless this holds, e.g. 'verify.p99<5ms', 'errors<0.1%', 'throughput>1000'.
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
    /// Write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency over time and the percentile spectrum as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Instead of a run: draw latency against offered load from REPORTS
    /// (`--json` files of open-model runs at increasing rates) for the flow
    /// given by --flow, into this SVG.
    #[arg(long, value_name = "SVG", requires = "reports")]
    sweep_plot: Option<PathBuf>,
    /// Instead of a run: issue one step-up code to each account (the first
    /// --max-flows of them, --concurrency at a time, default 64), take each
    /// at the sink and write `challenge_id code` lines here, for a
    /// verify-only run by an outside generator (scripts/http-ratios.sh).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rate", "sink_only", "sweep_plot"])]
    codes: Option<PathBuf>,
    /// Instead of a run: keep the sink up for this many seconds (while an
    /// outside generator issues codes), then print how many messages it took.
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["rate", "concurrency", "sweep_plot"])]
    sink_only: Option<f64>,
    /// The reports for --sweep-plot.
    #[arg(value_name = "REPORTS", requires = "sweep_plot")]
    reports: Vec<PathBuf>,
}

/// `--sweep-plot`: reads the reports and writes the SVG.
fn sweep_plot(out: &PathBuf, reports: &[PathBuf], flow: &str) -> Result<(), String> {
    let points = reports
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a report: {e}", path.display()))?;
            SweepPoint::from_json(&json, flow).map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let title = format!("otp-loadtest sweep: {flow} flows, {} runs", points.len());
    std::fs::write(out, sweep_svg(&title, &points))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    for p in &points {
        println!(
            "offered {:>8.0}/s  completed {:>8.0}/s  p50 {:>9.2} ms  p99 {:>9.2} ms",
            p.offered, p.achieved, p.p50_ms, p.p99_ms
        );
    }
    Ok(())
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what} must be a number of seconds ≥ 0"))
}

async fn main_inner() -> Result<bool, String> {
    let args = Args::parse();
    if let Some(out) = &args.sweep_plot {
        sweep_plot(out, &args.reports, &args.flow)?;
        return Ok(true);
    }
    if let Some(s) = args.sink_only {
        let sink = Sink::bind(&args.sink).await?;
        let taken = codes::serve_sink(&sink, seconds(s, "sink-only")?).await;
        println!("sink at {} took {taken} messages", sink.url());
        return Ok(true);
    }
    let key = args
        .key
        .clone()
        .ok_or("give the client API key with --key or OTP_LOADTEST_KEY")?;
    let thresholds = args
        .thresholds
        .iter()
        .map(|t| Threshold::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let model = match (args.rate, args.concurrency) {
        (Some(rate), None) => Model::Open { rate },
        (None, Some(concurrency)) => Model::Closed { concurrency },
        (None, None) if args.codes.is_some() => Model::Closed { concurrency: 64 },
        (None, None) => return Err("give --rate (open model) or --concurrency (closed)".into()),
        (Some(_), Some(_)) => unreachable!("clap rejects both"),
    };
    let timeout = seconds(args.timeout, "timeout")?;
    let sink = Sink::bind(&args.sink).await?;
    let pick = loadtest::Pick::parse(&args.pick)?;
    let first = args.target.first().ok_or("give otpd's URL with --target")?;
    let http = Http::new(first, &key, timeout);
    let params = Argon2Params {
        memory_kib: args.argon2_memory_kib,
        iterations: args.argon2_iterations,
        parallelism: 1,
    };
    let accounts = match args.seed {
        Some(count) => {
            eprintln!("seeding {count} accounts through {first}/v1/admin/import ...");
            let accounts = seed::seed(
                &http,
                args.seed_from,
                count,
                &args.pin,
                params,
                args.seed_batch,
            )
            .await?;
            seed::save(&args.accounts_file, &accounts)?;
            eprintln!("seeded; accounts saved to {}", args.accounts_file.display());
            accounts
        }
        None => seed::load(&args.accounts_file)?,
    };
    if let Some(out) = &args.codes {
        let Model::Closed { concurrency } = model else {
            unreachable!("clap rejects --rate with --codes")
        };
        let count = args.max_flows.map_or(accounts.len(), |n| {
            accounts.len().min(usize::try_from(n).unwrap_or(usize::MAX))
        });
        let written =
            codes::prepare(&http, &sink, &accounts[..count], concurrency, timeout, out).await?;
        eprintln!("{written} codes written to {}", out.display());
        return Ok(true);
    }
    let options = Options {
        targets: args.target.clone(),
        pick,
        key,
        mix: Mix::parse(&args.flow)?,
        model,
        ramp: seconds(args.ramp, "ramp")?,
        warmup: seconds(args.warmup, "warmup")?,
        duration: Some(seconds(args.duration, "duration")?),
        max_flows: args.max_flows,
        max_in_flight: args.max_in_flight,
        pin: args.pin.clone(),
        timeout,
        progress: !args.quiet,
        ceiling: match args.ceiling {
            Some(c) => Some((c, seconds(args.ceiling_seconds, "ceiling-seconds")?)),
            None => None,
        },
        argon2_ceiling: match args.argon2_ceiling {
            Some(threads) => Some(Argon2Ceiling {
                params,
                threads,
                duration: seconds(args.ceiling_seconds, "ceiling-seconds")?,
            }),
            None => None,
        },
    };
    eprintln!(
        "sink at {} (otpd's SMS gateway url must be this)",
        sink.url()
    );
    let report = run(options, sink, accounts).await?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json()).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, report.svg())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let mut passed = true;
    for t in &thresholds {
        if let Err(why) = t.check(&report) {
            println!("FAIL {why}");
            passed = false;
        }
    }
    Ok(passed)
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("otp-loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(main_inner()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("otp-loadtest: {e}");
            ExitCode::from(2)
        }
    }
}
