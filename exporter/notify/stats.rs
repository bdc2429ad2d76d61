//! What the notifier reports: per receiver, the `lookout_notifications_*` and
//! `lookout_receiver_up` series, and the status page's last outcome. Shared by the senders
//! (writers) and the publisher and HTTP (readers).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// The histogram buckets of `lookout_notification_duration_seconds`.
pub const BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// One receiver's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceiverStats {
    pub kind: &'static str,
    /// Attempts by outcome: `success`, `failure` (retried), `rejected` (dropped).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Notifications dropped, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Waiting to be sent (not counting those held by a silence or inhibition).
    pub pending: u64,
    /// Held by a silence or an inhibition.
    pub held: u64,
    /// The last send succeeded (or none was tried yet), and the receiver is not disabled.
    pub up: bool,
    pub disabled: bool,
    /// `success`, `failure`, `rejected`, `disabled`, or empty before the first send.
    pub last_outcome: String,
    pub last_error: String,
    /// Unix seconds of the last attempt.
    pub last_attempt: Option<f64>,
    /// Cumulative counts per bucket of [`BUCKETS`], then the sum and count.
    pub duration_buckets: Vec<u64>,
    pub duration_sum: f64,
    pub duration_count: u64,
}

/// Every receiver's figures.
#[derive(Debug, Default)]
pub struct Stats {
    receivers: Mutex<BTreeMap<String, ReceiverStats>>,
}

impl Stats {
    fn with<R>(&self, receiver: &str, f: impl FnOnce(&mut ReceiverStats) -> R) -> R {
        let mut m = self.receivers.lock().unwrap_or_else(|p| p.into_inner());
        let r = m
            .entry(receiver.to_string())
            .or_insert_with(|| ReceiverStats {
                up: true,
                duration_buckets: vec![0; BUCKETS.len()],
                ..Default::default()
            });
        f(r)
    }

    /// Make the set of receivers `names` (with their kinds): others are forgotten.
    pub fn set_receivers(&self, names: &[(String, &'static str)]) {
        {
            let mut m = self.receivers.lock().unwrap_or_else(|p| p.into_inner());
            m.retain(|k, _| names.iter().any(|(n, _)| n == k));
        }
        for (n, kind) in names {
            self.with(n, |r| {
                r.kind = kind;
            });
        }
    }

    /// One attempt's outcome and how long it took.
    pub fn attempt(&self, receiver: &str, outcome: &'static str, seconds: f64, error: &str) {
        self.with(receiver, |r| {
            *r.outcomes.entry(outcome).or_default() += 1;
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    r.duration_buckets[i] += 1;
                }
            }
            r.duration_sum += seconds;
            r.duration_count += 1;
            r.last_outcome = outcome.to_string();
            r.last_error = error.to_string();
            r.last_attempt = Some(crate::now_unix());
            r.up = outcome != "failure" && !r.disabled;
        });
    }

    pub fn dropped(&self, receiver: &str, reason: &'static str, n: u64) {
        if n > 0 {
            self.with(receiver, |r| *r.dropped.entry(reason).or_default() += n);
        }
    }

    pub fn set_queue(&self, receiver: &str, pending: u64, held: u64) {
        self.with(receiver, |r| {
            r.pending = pending;
            r.held = held;
        });
    }

    /// `n` more wait.
    pub fn queued(&self, receiver: &str, n: u64) {
        self.with(receiver, |r| r.pending += n);
    }

    /// `n` left the queue (sent or dropped).
    pub fn unqueued(&self, receiver: &str, n: u64) {
        self.with(receiver, |r| r.pending = r.pending.saturating_sub(n));
    }

    /// How many are held by silences or inhibition.
    pub fn set_held(&self, receiver: &str, n: u64) {
        self.with(receiver, |r| r.held = n);
    }

    pub fn pending(&self, receiver: &str) -> u64 {
        self.with(receiver, |r| r.pending)
    }

    pub fn disable(&self, receiver: &str, error: &str) {
        self.with(receiver, |r| {
            r.disabled = true;
            r.up = false;
            r.last_outcome = "disabled".into();
            r.last_error = error.to_string();
        });
    }

    /// A copy of every receiver's figures.
    pub fn snapshot(&self) -> BTreeMap<String, ReceiverStats> {
        self.receivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
