//! A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback: a temp config and
//! storage, a free web port, alone or in a gossip cluster; killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, request, tool_or_skip, wait_until};

/// Debian's Alertmanager binary.
pub const BIN: &str = "/usr/bin/prometheus-alertmanager";

/// Whether Alertmanager tests can run (a failure under `LOOKOUT_REQUIRE_TOOLS=1`).
pub fn alertmanager_or_skip(test: &str) -> bool {
    tool_or_skip(test, BIN)
}

/// A running Alertmanager.
pub struct Alertmanager {
    /// `127.0.0.1:P`.
    pub addr: String,
    /// `http://127.0.0.1:P`.
    pub url: String,
    /// The gossip address (`127.0.0.1:Q`), when in a cluster.
    pub cluster_addr: Option<String>,
    pub child: Child,
    pub dir: tempfile::TempDir,
}

/// How a cluster member gossips.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Its own `--cluster.listen-address`.
    pub listen: String,
    /// `--cluster.peer`s.
    pub peers: Vec<String>,
    /// `--cluster.peer-timeout`: how long a member waits per position before it notifies.
    pub peer_timeout: Duration,
    /// `--cluster.gossip-interval` (the push-pull interval is 10 times it).
    pub gossip_interval: Duration,
}

fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl Alertmanager {
    /// A single Alertmanager (clustering off) with `config` (alertmanager.yml).
    pub fn start(config: &str) -> Alertmanager {
        Alertmanager::start_with(config, None, &[])
    }

    /// `n` Alertmanagers gossiping with one another on loopback, each with `config`.
    pub fn start_cluster(config: &str, n: usize, peer_timeout: Duration) -> Vec<Alertmanager> {
        let addrs: Vec<String> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        addrs
            .iter()
            .map(|me| {
                let cluster = Cluster {
                    listen: me.clone(),
                    peers: addrs.iter().filter(|a| *a != me).cloned().collect(),
                    peer_timeout,
                    gossip_interval: Duration::from_millis(100),
                };
                Alertmanager::start_with(config, Some(cluster), &[])
            })
            .collect()
    }

    /// An Alertmanager with `config`, clustered as `cluster` says (or alone), with extra
    /// command-line flags. Waits for `/-/ready`.
    pub fn start_with(config: &str, cluster: Option<Cluster>, extra: &[&str]) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg, config).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(BIN);
        cmd.arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg(format!("--web.external-url=http://{addr}"))
            .arg("--log.level=debug");
        match &cluster {
            None => {
                cmd.arg("--cluster.listen-address=");
            }
            Some(c) => {
                cmd.arg(format!("--cluster.listen-address={}", c.listen))
                    .arg(format!("--cluster.advertise-address={}", c.listen))
                    .arg(format!(
                        "--cluster.peer-timeout={}",
                        go_duration(c.peer_timeout)
                    ))
                    .arg(format!(
                        "--cluster.gossip-interval={}",
                        go_duration(c.gossip_interval)
                    ))
                    .arg(format!(
                        "--cluster.pushpull-interval={}",
                        go_duration(c.gossip_interval * 10)
                    ))
                    .arg("--cluster.settle-timeout=5s");
                for p in &c.peers {
                    cmd.arg(format!("--cluster.peer={p}"));
                }
            }
        }
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = cmd
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {BIN}: {e}"));
        let mut am = Alertmanager {
            url: format!("http://{addr}"),
            addr,
            cluster_addr: cluster.map(|c| c.listen),
            child,
            dir,
        };
        let ready = wait_until(Duration::from_secs(20), || {
            if let Ok(Some(status)) = am.child.try_wait() {
                return Some(Err(format!("exited with {status}")));
            }
            request(&am.addr, "GET", "/-/ready", &[])
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| Ok(()))
        });
        match ready {
            Some(Ok(())) => am,
            Some(Err(e)) => panic!("Alertmanager {e}; log:\n{}", am.log()),
            None => panic!("Alertmanager did not become ready; log:\n{}", am.log()),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `GET <path>` as JSON (`/api/v2/alerts`, `/api/v2/status`).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = request(&self.addr, "GET", path, &[("Accept", "application/json")])
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.text()))
    }

    /// The alerts Alertmanager holds (`GET /api/v2/alerts`: the active, silenced, inhibited
    /// and unprocessed ones; resolved alerts are not listed).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.get_json("/api/v2/alerts")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The cluster's state as this member sees it: `ready`, `settling` or `disabled`, and how
    /// many members it knows (itself included).
    pub fn cluster_status(&self) -> (String, usize) {
        let s = self.get_json("/api/v2/status");
        let c = &s["cluster"];
        (
            c["status"].as_str().unwrap_or("").to_string(),
            c["peers"].as_array().map(Vec::len).unwrap_or(0),
        )
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
