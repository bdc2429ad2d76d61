//! The audit trail: every action (done, failed, skipped, dry run, given up) as one JSON line
//! appended to `state_dir/actions.log`, the last ones kept in memory for `GET /api/v1/actions`,
//! and the `lookout_actions_*` figures.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The file, in `state_dir`.
pub const ACTIONS_LOG: &str = "actions.log";
/// How many records `GET /api/v1/actions` shows.
const KEEP: usize = 1000;
/// The histogram buckets of `lookout_action_duration_seconds`.
pub const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// The outcomes, as `lookout_actions_total` labels them.
pub const OUTCOMES: &[&str] = &["success", "failure", "skipped", "dry_run", "exhausted"];

/// One action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339.
    pub time: String,
    /// `group/alert`, or `manual`.
    pub rule: String,
    pub container: String,
    /// `restart`, `start_standby`, `stop_standby`, `scale_up`, `scale_down`, `webhook`.
    pub action: String,
    /// `success`, `failure`, `skipped`, `dry_run`, `exhausted`.
    pub outcome: String,
    /// The attempt number (restarts), else 0.
    pub attempt: u32,
    pub error: String,
    /// What was done, in words ("restarted web-1 (attempt 2/5)").
    #[serde(default)]
    pub detail: String,
    /// The alert's streak of failing scheduled evaluations when lookout acted.
    #[serde(default)]
    pub evaluations: u32,
    /// Seconds from the evaluation that decided it to the call to Docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_after_s: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct Durations {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// The log and the counters.
pub struct Audit {
    file: Option<PathBuf>,
    recent: Mutex<VecDeque<Record>>,
    counts: Mutex<BTreeMap<(String, String), u64>>,
    durations: Mutex<BTreeMap<String, Durations>>,
}

impl Audit {
    /// The log in `dir` (none: memory only), with its last records read back.
    pub fn open(dir: Option<&std::path::Path>) -> Audit {
        let file = dir.map(|d| d.join(ACTIONS_LOG));
        let mut recent = VecDeque::new();
        if let Some(f) = &file {
            if let Ok(text) = std::fs::read_to_string(f) {
                for line in text.lines() {
                    if let Ok(r) = serde_json::from_str::<Record>(line) {
                        recent.push_back(r);
                        if recent.len() > KEEP {
                            recent.pop_front();
                        }
                    }
                }
            }
        }
        Audit {
            file,
            recent: Mutex::new(recent),
            counts: Mutex::default(),
            durations: Mutex::default(),
        }
    }

    /// Append one record (and count it).
    pub fn record(&self, r: Record, seconds: Option<f64>) {
        tracing::info!(
            rule = %r.rule,
            container = %r.container,
            action = %r.action,
            outcome = %r.outcome,
            attempt = r.attempt,
            error = %r.error,
            "{}",
            if r.detail.is_empty() { "action" } else { r.detail.as_str() }
        );
        if let Some(f) = &self.file {
            let line = serde_json::to_string(&r).unwrap_or_default();
            let written = std::fs::create_dir_all(f.parent().unwrap_or(std::path::Path::new(".")))
                .and_then(|()| {
                    let mut h = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(f)?;
                    h.write_all(format!("{line}\n").as_bytes())?;
                    h.sync_data()
                });
            if let Err(e) = written {
                tracing::error!(file = %f.display(), error = %e, "cannot append to the action log");
            }
        }
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((r.action.clone(), r.outcome.clone()))
            .or_default() += 1;
        if let Some(s) = seconds {
            let mut d = self.durations.lock().unwrap_or_else(|p| p.into_inner());
            let e = d.entry(r.action.clone()).or_insert_with(|| Durations {
                buckets: vec![0; BUCKETS.len()],
                ..Default::default()
            });
            for (i, b) in BUCKETS.iter().enumerate() {
                if s <= *b {
                    e.buckets[i] += 1;
                }
            }
            e.sum += s;
            e.count += 1;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back(r);
        if recent.len() > KEEP {
            recent.pop_front();
        }
    }

    /// The last records, oldest first.
    pub fn recent(&self) -> Vec<Record> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// `lookout_actions_total{action,outcome}` values.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Per action: cumulative bucket counts, sum, count.
    pub fn durations(&self) -> Vec<(String, Vec<u64>, f64, u64)> {
        self.durations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, d)| (k.clone(), d.buckets.clone(), d.sum, d.count))
            .collect()
    }
}
