//! Notifications: the second consumer of the engine's transition seam.
//!
//! ```text
//! seam ──► dispatch (route, group, inhibit, silence) ──► outbox (durable) ──► senders ──► notifiers
//! ```
//!
//! - [`Notifier`]: one trait, one file per kind of receiver ([`discord`], [`email`],
//!   [`alertmanager`], [`webhook`]). A notifier turns one [`Batch`] into one request and says
//!   whether the receiver acknowledged it; retries, ordering and durability are the sender's.
//! - [`reason`]: why a container died (exit code and its meaning, OOM, restarts, run time,
//!   image) and its last log lines, gathered at the moment of the transition.

pub mod alertmanager;
pub mod cli;
pub mod discord;
pub mod dispatch;
pub mod email;
pub mod matcher;
pub mod outbox;
pub mod reason;
pub mod route;
pub mod sender;
pub mod silence;
pub mod stats;
pub mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use reason::Reason;

/// Whether an alert fires or resolved, as a notification says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
    /// `[FIRING]` or `[RESOLVED]`: how titles and subjects start.
    pub fn tag(self) -> &'static str {
        match self {
            Status::Firing => "[FIRING]",
            Status::Resolved => "[RESOLVED]",
        }
    }
}

/// One alert transition as a notification carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Order in the outbox: later transitions have larger numbers.
    pub seq: u64,
    pub status: Status,
    /// The alert's labels: `alertname`, `severity`, the target's and the rule's labels.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unix seconds the alert started firing.
    pub starts_at: f64,
    /// Unix seconds it resolved (resolved items only).
    pub ends_at: Option<f64>,
    /// The value of the first variable the rule reads, as text (e.g. `93.2`).
    pub value: Option<String>,
    /// For container alerts: why the container is in this state.
    pub reason: Option<Reason>,
    /// The container's last log lines at the transition (the rule's `context: {logs: N}`),
    /// ANSI codes stripped, oldest first.
    pub logs: Vec<String>,
    /// A stable hash of the labels: the alert instance.
    pub fingerprint: String,
}

impl Item {
    pub fn alertname(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("")
    }
    /// `critical`, `warning` or `info`.
    pub fn severity(&self) -> &str {
        self.labels
            .get("severity")
            .map(String::as_str)
            .unwrap_or("warning")
    }
    /// The container name, or whatever names the target (`name`, `device`, `mountpoint`,
    /// `gpu`, `instance`).
    pub fn target(&self) -> Option<&str> {
        ["name", "mountpoint", "device", "gpu", "UUID", "instance"]
            .iter()
            .find_map(|k| self.labels.get(*k).map(String::as_str))
    }
    /// The `summary` annotation, else `alertname target`.
    pub fn summary(&self) -> String {
        match self.annotations.get("summary") {
            Some(s) if !s.trim().is_empty() => s.clone(),
            _ => match self.target() {
                Some(t) => format!("{} {t}", self.alertname()),
                None => self.alertname().to_string(),
            },
        }
    }
}

/// What one send carries: alerts of one group for one receiver, in outbox order, no alert
/// twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub receiver: String,
    /// The group: route and `group_by` values (Alertmanager's groupKey).
    pub group_key: String,
    /// The `group_by` labels and their values.
    pub group_labels: BTreeMap<String, String>,
    pub items: Vec<Item>,
    /// The host lookout runs on (Discord's footer, the mail's text).
    pub host: String,
    /// lookout's own URL (`http://host:9659`), for links (generatorURL, externalURL).
    pub external_url: String,
    /// Mail threading: the Message-ID of the group's first firing mail, if one was sent.
    pub thread: Option<String>,
    /// A test notification (`lookout notify-test`): notifiers mark it clearly.
    pub test: bool,
    /// A reminder of alerts still firing (`repeat_interval`), not a change.
    pub repeat: bool,
}

impl Batch {
    pub fn firing(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.status == Status::Firing)
            .count()
    }
}

/// A receiver's acknowledgement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ack {
    /// What the receiver answered, for `notify-test` and debug logs (never a secret).
    pub detail: String,
    /// The id the message got (mail: its Message-ID, Discord: the message id).
    pub message_id: Option<String>,
}

/// Why a send failed, and what the sender should do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Try again: after `after` when the receiver said so (429 `Retry-After`), else with
    /// exponential backoff (a 5xx, a timeout, a refused connection).
    #[error("{reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The receiver is gone (Discord's 404 for a deleted webhook): stop sending to it until
    /// the config changes.
    #[error("{reason}")]
    Disabled { reason: String },
    /// This batch can never be accepted (a 400 for a payload): drop it, counted.
    #[error("{reason}")]
    Rejected { reason: String },
}

/// One kind of receiver.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// `discord`, `email`, `alertmanager`, `webhook`.
    fn kind(&self) -> &'static str;

    /// How `items` (all of one group, in order) are cut into sends: the sizes of consecutive
    /// chunks, each within the receiver's limits. The default is one send for all.
    fn split(&self, items: &[Item]) -> Vec<usize> {
        vec![items.len()]
    }

    /// Whether the sender groups for this receiver (`group_wait`, `group_interval`). An
    /// Alertmanager groups itself, so lookout sends to it at once.
    fn groups(&self) -> bool {
        true
    }

    /// For a receiver that does not group: how often the alerts still firing are sent again
    /// (Alertmanager: Prometheus's resend delay, so that it keeps them alive).
    fn resend_interval(&self) -> Option<Duration> {
        None
    }

    /// Send one batch; `Ok` only once the receiver has acknowledged it.
    async fn send(&self, batch: &Batch) -> Result<Ack, SendError>;
}

/// Cut `s` to at most `max` characters (not bytes), ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Format unix seconds as RFC 3339 UTC with milliseconds (`2026-11-30T14:23:50.123Z`).
pub fn rfc3339(t: f64) -> String {
    let ms = (t * 1000.0).round() as i64;
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// FNV-1a over byte strings, each followed by 0xff: stable across runs and builds (unlike
/// std's hasher), for fingerprints and ids.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// An alert instance's fingerprint: a hash of its labels, as 16 hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(labels.len() * 2);
    for (k, v) in labels {
        parts.push(k.as_bytes());
        parts.push(v.as_bytes());
    }
    format!("{:016x}", fnv(&parts))
}

/// The notifier of a configured receiver.
pub fn build(
    r: &crate::config::receivers::Receiver,
) -> Result<std::sync::Arc<dyn Notifier>, String> {
    use crate::config::receivers::ReceiverKind;
    use std::sync::Arc;
    Ok(match &r.kind {
        ReceiverKind::Discord(c) => {
            Arc::new(discord::DiscordNotifier::new(c, Duration::from_secs(15)))
        }
        ReceiverKind::Email(c) => Arc::new(email::EmailNotifier::new(c)?),
        ReceiverKind::Alertmanager(c) => Arc::new(alertmanager::AlertmanagerNotifier::new(c)),
        ReceiverKind::Webhook(c) => Arc::new(webhook::WebhookNotifier::new(c, &r.name)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_characters_with_an_ellipsis() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4).chars().count(), 4);
        assert_eq!(truncate("x", 0), "");
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_048_630.5), "2026-11-30T14:23:50.500Z");
    }
}

/// Something lookout did (a failover action), told to people like an alert that fires once.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// `alertname` (`LookoutAction`), `severity`, `name` (the container), `action`, `rule`.
    pub labels: BTreeMap<String, String>,
    /// `summary` ("restarted web-1 (attempt 2/5)") and `description`.
    pub annotations: BTreeMap<String, String>,
    /// The rule's receivers, besides the routes.
    pub notify: Vec<String>,
}

#[cfg(test)]
mod pipeline_tests;

/// A label set from pairs (tests).
#[cfg(test)]
pub(crate) fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
