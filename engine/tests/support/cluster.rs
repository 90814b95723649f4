//! A Redis Cluster for the tests: 3 masters, 3 replicas on loopback, started
//! by `scripts/redis-cluster.sh` (which installs redis-server when missing)
//! and stopped when the last test holding it lets go, panics included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use engine::cluster::{Cluster, ClusterConfig};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redis-cluster.sh")
}

/// A cluster for the whole test process: started on first use, stopped by
/// a watchdog (`tail --pid`) when the process ends, however it ends. For
/// suites whose many short tests would otherwise stop and start a shared
/// cluster between them.
pub fn for_process() -> &'static TestCluster {
    static CLUSTER: std::sync::OnceLock<TestCluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = TestCluster::start();
        let watch = format!(
            "tail --pid={} -f /dev/null; {} stop {dir}; rm -rf {dir}",
            std::process::id(),
            script().display(),
            dir = cluster.dir.path().display(),
        );
        // `setsid -f`: the watchdog runs on in a session of its own.
        let started = Command::new("setsid")
            .args(["-f", "sh", "-c", &watch])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("start the cluster's watchdog");
        assert!(started.success(), "setsid -f: {started}");
        cluster
    })
}

/// A running cluster; dropping it stops every node.
pub struct TestCluster {
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of each node.
    pub nodes: Vec<String>,
}

impl TestCluster {
    /// Starts a cluster of its own (for tests that break it).
    pub fn start() -> TestCluster {
        Self::start_with(&[])
    }

    /// Starts a cluster of its own that speaks only TLS; its CA's
    /// certificate is [`TestCluster::ca`].
    pub fn start_tls() -> TestCluster {
        Self::start_with(&["--tls"])
    }

    /// The CA certificate of a TLS cluster.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("tls/ca.crt")
    }

    fn start_with(options: &[&str]) -> TestCluster {
        // Under OTP_TEST_CLUSTER_DIR when set: .ci/run stops whatever is
        // left there when it ends, even if this process was killed.
        let dir = match std::env::var_os("OTP_TEST_CLUSTER_DIR") {
            Some(root) => tempfile::tempdir_in(root),
            None => tempfile::tempdir(),
        }
        .expect("temporary directory");
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .args(options)
            .output()
            .expect("run scripts/redis-cluster.sh");
        assert!(
            out.status.success(),
            "scripts/redis-cluster.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nodes = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>();
        assert_eq!(nodes.len(), 6, "nodes: {nodes:?}");
        TestCluster { dir, nodes }
    }

    /// The cluster every test of this binary shares (started on first use,
    /// stopped when no running test holds it).
    pub fn shared() -> Arc<TestCluster> {
        static SHARED: Mutex<Weak<TestCluster>> = Mutex::new(Weak::new());
        let mut held = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = held.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(TestCluster::start());
        *held = Arc::downgrade(&cluster);
        cluster
    }

    /// Settings for otpd on this cluster, one replica. WAIT gets 2 s, not
    /// the default 500 ms: six nodes fsyncing every write on a machine
    /// also building and testing can take a replica past 500 ms (seen once
    /// in a clean-clone run), and these tests are not about that limit.
    pub fn config(&self) -> ClusterConfig {
        ClusterConfig {
            nodes: self.nodes.clone(),
            wait_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            ..ClusterConfig::default()
        }
    }

    /// A connection, as one otpd node would have.
    pub async fn node(&self) -> Cluster {
        Cluster::connect(self.config()).await.expect("connect")
    }

    /// `redis-cli -p PORT args...` on every node; their answers.
    pub fn on_every_node(&self, args: &[&str]) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| {
                let port = node.rsplit(':').next().expect("port");
                let out = Command::new("redis-cli")
                    .args(["-p", port])
                    .args(args)
                    .output()
                    .expect("redis-cli");
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
            .collect()
    }

    /// How many keys match `pattern` on the masters (`SCAN`).
    pub fn count_keys(&self, pattern: &str) -> u64 {
        self.masters()
            .iter()
            .map(|port| {
                let out = Command::new("redis-cli")
                    .args(["-p", port, "--scan", "--pattern", pattern])
                    .output()
                    .expect("redis-cli --scan");
                assert!(out.status.success(), "redis-cli --scan on {port}");
                String::from_utf8_lossy(&out.stdout).lines().count() as u64
            })
            .sum()
    }

    /// The TTL (ms) of every key matching `pattern` on the masters.
    pub fn ttls(&self, pattern: &str) -> Vec<i64> {
        let mut ttls = Vec::new();
        for port in self.masters() {
            let out = Command::new("redis-cli")
                .args(["-p", &port, "--scan", "--pattern", pattern])
                .output()
                .expect("redis-cli --scan");
            for key in String::from_utf8_lossy(&out.stdout).lines() {
                let ttl = self.on_node(&port, &["pttl", key]);
                ttls.push(ttl.parse().expect("PTTL answers a number"));
            }
        }
        ttls
    }

    /// Ports of the nodes that are masters now.
    pub fn masters(&self) -> Vec<String> {
        let roles = self.on_every_node(&["role"]);
        self.nodes
            .iter()
            .zip(roles)
            .filter(|(_, role)| role.starts_with("master"))
            .map(|(node, _)| node.rsplit(':').next().expect("port").to_string())
            .collect()
    }

    /// The port of the master serving `key` now.
    pub fn master_of(&self, key: &str) -> String {
        self.masters()
            .into_iter()
            .find(|port| {
                let out = Command::new("redis-cli")
                    .args(["-p", port, "exists", key])
                    .output()
                    .expect("redis-cli");
                !String::from_utf8_lossy(&out.stdout).contains("MOVED")
            })
            .expect("a master serves every slot")
    }

    /// `redis-cli -p PORT args...` on the node on `port`; its answer.
    pub fn on_node(&self, port: &str, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", port])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to the node on `port`.
    pub fn signal(&self, port: &str, signal: &str) {
        let pidfile = self.dir.path().join(port).join("redis.pid");
        let pid = std::fs::read_to_string(&pidfile).expect("the node's pid file");
        let status = Command::new("kill")
            .args(["-s", signal, pid.trim()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -s {signal} {pid}");
    }

    /// The port of the replica of the master on `port`.
    pub fn replica_of(&self, port: &str) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", port, "info", "replication"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("slave0:"))
            .and_then(|l| l.split(',').find_map(|f| f.strip_prefix("port=")))
            .expect("the master has a replica")
            .to_string()
    }

    /// Starts the nodes on `ports` again (after a kill or a stop): each
    /// comes back from its AOF and rejoins the cluster.
    pub fn revive(&self, ports: &[String]) {
        let status = Command::new(script())
            .arg("revive")
            .arg(self.dir.path())
            .args(ports)
            .status()
            .expect("redis-cluster.sh revive");
        assert!(status.success(), "redis-cluster.sh revive {ports:?}");
    }

    /// Every node's port.
    pub fn ports(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.rsplit(':').next().expect("port").to_string())
            .collect()
    }

    /// Stops every node now.
    pub fn stop(&self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
