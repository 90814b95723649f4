//! What the cluster backend's records cost in a Redis Cluster, and how long
//! its primitives take, on a fresh local 3+3 cluster
//! (`scripts/redis-cluster.sh`, stopped at the end):
//!
//! - memory: N accounts as the backend stores them (the account hash with a
//!   real encoded account record, and its identity, phone and email index
//!   keys), then N/10 live challenges; `used_memory` summed over the
//!   masters before and after, per account and per challenge (each
//!   replica holds as much again);
//! - latency: one operation at a time (p50/p99 of 2,000): the slot read,
//!   the compare-and-set with `WAIT 1`, read-compute-write, and a whole
//!   registration (2 index keys); then read-compute-write from 64 tasks at
//!   once, in operations per second.
//!
//! `cargo run --release -p otp-bench --example cluster -- [ACCOUNTS]`
//! (1,000,000 by default: ~2 GiB of Redis memory with the replicas).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::AccountId;
use engine::cluster::slot::Change;
use engine::cluster::{Cluster, ClusterConfig, keys};
use engine::internals::{RecordKind, Samples};

fn random_id() -> AccountId {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    AccountId::parse("id", &format!("{:032x}", u128::from_le_bytes(bytes))).unwrap()
}

struct LocalCluster {
    dir: tempfile::TempDir,
    nodes: Vec<String>,
}

impl LocalCluster {
    fn start() -> LocalCluster {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-cluster.sh");
        let out = Command::new(script)
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nodes = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(',')
            .map(String::from)
            .collect();
        LocalCluster { dir, nodes }
    }

    /// `used_memory` summed over the masters.
    fn used_memory(&self) -> u64 {
        let mut total = 0;
        for node in &self.nodes {
            let port = node.rsplit(':').next().unwrap();
            let cli = |args: &[&str]| {
                let out = Command::new("redis-cli")
                    .args(["-p", port])
                    .args(args)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            if !cli(&["role"]).starts_with("master") {
                continue;
            }
            total += cli(&["info", "memory"])
                .lines()
                .find_map(|l| l.trim().strip_prefix("used_memory:")?.parse::<u64>().ok())
                .unwrap();
        }
        total
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-cluster.sh");
        let _ = Command::new(script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

async fn put(cluster: &Cluster, key: String, args: &[&[u8]], command: &str) {
    let mut cmd = redis::cmd(command);
    cmd.arg(&key);
    for a in args {
        cmd.arg(*a);
    }
    cluster.command_on_key(cmd, &key).await.unwrap();
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    format!(
        "p50 {:>7.1} µs   p99 {:>7.1} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let accounts: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let local = LocalCluster::start();
    let config = ClusterConfig {
        nodes: local.nodes.clone(),
        timeout: Duration::from_secs(10),
        ..ClusterConfig::default()
    };
    let cluster = Cluster::connect(config.clone()).await.unwrap();
    // The loader writes the same shapes without waiting on replicas.
    let loader = Arc::new(
        Cluster::connect(ClusterConfig {
            replicas: 0,
            ..config
        })
        .await
        .unwrap(),
    );
    let samples = Samples::new();
    let account_record = Arc::new(samples.encode(RecordKind::Account));
    let challenge_record = Arc::new(samples.encode(RecordKind::Challenge));

    let before = local.used_memory();
    let started = Instant::now();
    let ids: Arc<Vec<AccountId>> = Arc::new((0..accounts).map(|_| random_id()).collect());
    let tasks = 64;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (loader, ids, record) = (
            Arc::clone(&loader),
            Arc::clone(&ids),
            Arc::clone(&account_record),
        );
        handles.push(tokio::spawn(async move {
            for (n, id) in ids.iter().enumerate().skip(t).step_by(tasks) {
                let held = format!("A:{id}");
                put(
                    &loader,
                    keys::account(*id),
                    &[b"v", b"1", b"r", &record],
                    "HSET",
                )
                .await;
                put(
                    &loader,
                    keys::index(&format!("id:cc:{:08}", n)),
                    &[held.as_bytes()],
                    "SET",
                )
                .await;
                put(
                    &loader,
                    keys::index(&format!("phone:+3519{:08}", n)),
                    &[held.as_bytes()],
                    "SET",
                )
                .await;
                put(
                    &loader,
                    keys::index(&format!("email:citizen{n}@example.pt")),
                    &[held.as_bytes()],
                    "SET",
                )
                .await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let after_accounts = local.used_memory();
    println!(
        "{accounts} accounts ({} B record, 3 index keys each) in {:.1} s: {:.0} B per account on the masters ({} MiB in all; replicas as much again)",
        account_record.len(),
        started.elapsed().as_secs_f64(),
        (after_accounts - before) as f64 / accounts as f64,
        (after_accounts - before) >> 20
    );
    let challenges = accounts / 10;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (loader, ids, record) = (
            Arc::clone(&loader),
            Arc::clone(&ids),
            Arc::clone(&challenge_record),
        );
        handles.push(tokio::spawn(async move {
            for id in ids.iter().take(challenges).skip(t).step_by(tasks) {
                let key = keys::challenge(keys::challenge_id(*id, [7; 8]));
                put(&loader, key, &[&record, b"PX", b"300000"], "SET").await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let after_challenges = local.used_memory();
    println!(
        "{challenges} live challenges ({} B record, TTL): {:.0} B per challenge on the masters",
        challenge_record.len(),
        (after_challenges - after_accounts) as f64 / challenges as f64
    );

    // One at a time, on the populated cluster.
    let n = 2_000;
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut updates = Vec::new();
    let mut registrations = Vec::new();
    for i in 0..n {
        let id = ids[i * 7 % ids.len()];
        let account = keys::account(id);
        let t = Instant::now();
        let snapshot = cluster.load(&account, &[]).await.unwrap();
        reads.push(t.elapsed());
        let t = Instant::now();
        cluster
            .compare_and_set(&account, snapshot.version, &Change::keep())
            .await
            .unwrap();
        writes.push(t.elapsed());
        let t = Instant::now();
        cluster
            .update(&account, &[], |s| {
                Ok((Some(Change::account(s.record.clone().unwrap())), ()))
            })
            .await
            .unwrap();
        updates.push(t.elapsed());
        let new = random_id();
        let index = [
            keys::index(&format!("phone:+3512{i:08}")),
            keys::index(&format!("id:cc:new{i}")),
        ];
        let t = Instant::now();
        cluster
            .register(new, account_record.to_vec(), &index)
            .await
            .unwrap();
        registrations.push(t.elapsed());
    }
    println!("slot read (1 key)                  {}", percentiles(reads));
    println!("compare-and-set + WAIT 1           {}", percentiles(writes));
    println!(
        "read-compute-write (update)        {}",
        percentiles(updates)
    );
    println!(
        "registration (2 index keys)        {}",
        percentiles(registrations)
    );

    let cluster = Arc::new(cluster);
    let per_task = 500;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..64 {
        let (cluster, ids) = (Arc::clone(&cluster), Arc::clone(&ids));
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let account = keys::account(ids[(t * per_task + i) * 13 % ids.len()]);
                cluster
                    .update(&account, &[], |_| Ok((Some(Change::keep()), ())))
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let ops = 64 * per_task;
    println!(
        "read-compute-write, 64 tasks: {:.0} ops/s ({ops} in {:.2} s)",
        ops as f64 / started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
