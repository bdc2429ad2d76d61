//! A real Prometheus (Debian's `/usr/bin/prometheus`) on a free loopback port, scraping the
//! given targets every second from a config in its own temporary directory, killed when
//! dropped; and the parts of its HTTP API the tests ask (instant and range queries, label
//! values), each answering the result or Prometheus's error.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{free_port, request, wait_until};

pub const BIN: &str = "/usr/bin/prometheus";

pub struct Prometheus {
    /// `127.0.0.1:P`.
    pub addr: String,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Start Prometheus scraping `targets` (`host:port`) as job `lookout`, scrape and rule
    /// evaluation every second.
    pub fn start(targets: &[&str]) -> Prometheus {
        Prometheus::start_with(targets, "")
    }

    /// [`Prometheus::start`] with more top-level config (`rule_files:`, `alerting:`) appended.
    pub fn start_with(targets: &[&str], extra: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: lookout\n    static_configs:\n      - targets: [{list}]\n{extra}"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus { addr, child, dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; `data`, or Prometheus's error (or the transport's).
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let r = request(&self.addr, "GET", path, &[]).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("HTTP {} {e}: {}", r.status, r.text()))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result (a vector's samples, or a scalar as one element).
    pub fn query(&self, q: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(q)))?;
        Ok(match data["result"].as_array() {
            Some(a) if data["resultType"] != "scalar" => a.clone(),
            _ => vec![data["result"].clone()],
        })
    }

    /// A range query's series, from `start` to `end` (unix s) every `step` seconds.
    pub fn query_range(
        &self,
        q: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<Value>, String> {
        let data = self.api(&format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
            urlencode(q)
        ))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The values of `label` on the series `selector` selects (every series when None),
    /// as Grafana's `label_values(selector, label)` asks for them.
    pub fn label_values(&self, label: &str, selector: Option<&str>) -> Result<Vec<String>, String> {
        let mut path = format!("/api/v1/label/{label}/values");
        if let Some(s) = selector {
            path.push_str(&format!("?match[]={}", urlencode(s)));
        }
        let data = self.api(&path)?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }

    /// Poll an instant query until it has a result (at most `timeout`).
    pub fn wait_for(&self, q: &str, timeout: Duration) -> Option<Vec<Value>> {
        wait_until(timeout, || self.query(q).ok().filter(|r| !r.is_empty()))
    }
}

/// Percent-encode a query parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
