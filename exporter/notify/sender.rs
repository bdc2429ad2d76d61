//! One receiver's sender: groups its entries (Alertmanager's `group_wait`, `group_interval`,
//! `repeat_interval`), holds those a silence or an inhibition mutes, sends each group's
//! entries in order through the receiver's [`Notifier`], retries what failed (the receiver's
//! `Retry-After`, else exponential backoff), and removes from the outbox what was
//! acknowledged. A receiver that is down delays only itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dispatch::Shared;
use super::outbox::{Entry, Timing};
use super::{Ack, Batch, Item, Notifier, SendError, Status};

/// The first retry waits this long; each next one twice as long, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often held entries are looked at again (a silence may have ended).
const RECHECK: Duration = Duration::from_secs(1);

pub struct Sender {
    pub name: String,
    pub notifier: Arc<dyn Notifier>,
    pub shared: Arc<Shared>,
    pub host: String,
    pub external_url: String,
}

#[derive(Default)]
struct Group {
    labels: BTreeMap<String, String>,
    timing: Option<Timing>,
    /// Waiting, in order.
    entries: Vec<Entry>,
    /// When the oldest waiting entry was queued.
    since: Option<Instant>,
    last_flush: Option<Instant>,
    /// The last notification of this group (for `repeat_interval`).
    last_notified: Option<Instant>,
    /// Alerts notified as firing and not yet as resolved.
    firing: BTreeMap<String, Item>,
}

enum Outcome {
    Sent(Ack),
    Dropped,
    Disabled,
    Cancelled,
}

impl Sender {
    pub async fn run(
        self,
        entries: Vec<Entry>,
        firing: Vec<(String, Item)>,
        mut rx: mpsc::UnboundedReceiver<Entry>,
        token: CancellationToken,
    ) {
        let mut groups: HashMap<String, Group> = HashMap::new();
        for (g, item) in firing {
            groups
                .entry(g)
                .or_default()
                .firing
                .insert(item.fingerprint.clone(), item);
        }
        let now_unix = crate::now_unix();
        for e in entries {
            self.add(&mut groups, e, now_unix);
        }
        // Firing alerts whose firing still waits are not yet notified.
        for g in groups.values_mut() {
            let waiting: Vec<String> = g
                .entries
                .iter()
                .filter(|e| e.item.status == Status::Firing)
                .map(|e| e.item.fingerprint.clone())
                .collect();
            for fp in waiting {
                g.firing.remove(&fp);
            }
            if !g.firing.is_empty() {
                // Restarted: count the repeat interval from now.
                g.last_notified = Some(Instant::now());
            }
        }
        let mut disabled = false;
        loop {
            let now = Instant::now();
            let wake = groups
                .values()
                .filter_map(|g| self.due(g, now))
                .min()
                .unwrap_or(now + RECHECK)
                .min(now + RECHECK);
            tokio::select! {
                _ = token.cancelled() => return,
                e = rx.recv() => match e {
                    Some(e) => {
                        if disabled {
                            self.drop_entries(&[e], "receiver_disabled");
                        } else {
                            self.add(&mut groups, e, crate::now_unix());
                        }
                        // Take whatever else arrived before looking at the clocks.
                        while let Ok(e) = rx.try_recv() {
                            if disabled {
                                self.drop_entries(&[e], "receiver_disabled");
                            } else {
                                self.add(&mut groups, e, crate::now_unix());
                            }
                        }
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            if disabled {
                continue;
            }
            let now = Instant::now();
            let due: Vec<String> = groups
                .iter()
                .filter(|(_, g)| self.due(g, now).is_some_and(|d| d <= now))
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                match self.flush(&mut groups, &key, &token).await {
                    Some(Outcome::Disabled) => {
                        disabled = true;
                        let all: Vec<Entry> = groups
                            .values_mut()
                            .flat_map(|g| g.entries.drain(..))
                            .collect();
                        self.drop_entries(&all, "receiver_disabled");
                        break;
                    }
                    Some(Outcome::Cancelled) => return,
                    _ => {}
                }
            }
            groups.retain(|_, g| !g.entries.is_empty() || !g.firing.is_empty());
            self.report_held(&groups);
        }
    }

    fn add(&self, groups: &mut HashMap<String, Group>, e: Entry, now_unix: f64) {
        let g = groups.entry(e.group_key.clone()).or_default();
        if g.entries.is_empty() {
            // The entry's age counts (after a restart, group_wait has often passed).
            let age = Duration::from_secs_f64((now_unix - e.created).clamp(0.0, 86_400.0));
            g.since = Some(Instant::now().checked_sub(age).unwrap_or_else(Instant::now));
        }
        g.labels = e.group_labels.clone();
        g.timing = Some(e.timing);
        g.entries.push(e);
        g.entries.sort_by_key(|e| e.seq);
    }

    /// When the group should be looked at next, if ever.
    fn due(&self, g: &Group, now: Instant) -> Option<Instant> {
        let t = g.timing?;
        let secs = Duration::from_secs_f64;
        let mut due = None;
        if !g.entries.is_empty() {
            let at = if !self.notifier.groups() {
                now
            } else {
                match g.last_flush {
                    Some(l) => l + secs(t.group_interval),
                    None => g.since.unwrap_or(now) + secs(t.group_wait),
                }
            };
            due = Some(at);
        }
        if !g.firing.is_empty() {
            let every = self
                .notifier
                .resend_interval()
                .unwrap_or(secs(t.repeat_interval));
            let at = g.last_notified.unwrap_or(now) + every;
            due = Some(due.map_or(at, |d: Instant| d.min(at)));
        }
        due
    }

    /// Send what is due in one group. None when nothing was tried.
    async fn flush(
        &self,
        groups: &mut HashMap<String, Group>,
        key: &str,
        token: &CancellationToken,
    ) -> Option<Outcome> {
        let now_unix = crate::now_unix();
        let g = groups.get_mut(key)?;
        g.last_flush = Some(Instant::now());
        // Held entries stay; a resolve whose firing is still held cancels both (never told).
        let mut send: Vec<Entry> = Vec::new();
        let mut held_firing: HashMap<String, u64> = HashMap::new();
        let mut cancel: Vec<Entry> = Vec::new();
        let mut keep: Vec<Entry> = Vec::new();
        for e in std::mem::take(&mut g.entries) {
            let (silences, inhibited) = self.shared.muted(&e.item.labels, now_unix);
            let muted = !silences.is_empty() || inhibited;
            match (e.item.status, muted) {
                (Status::Resolved, _) if held_firing.contains_key(&e.item.fingerprint) => {
                    let seq = held_firing.remove(&e.item.fingerprint).unwrap_or_default();
                    if let Some(i) = keep.iter().position(|k| k.seq == seq) {
                        cancel.push(keep.remove(i));
                    }
                    cancel.push(e);
                }
                (Status::Firing, true) => {
                    held_firing.insert(e.item.fingerprint.clone(), e.seq);
                    keep.push(e);
                }
                (Status::Resolved, true) => keep.push(e),
                (_, false) => send.push(e),
            }
        }
        if !cancel.is_empty() {
            self.drop_entries(&cancel, "silenced");
        }
        g.entries = keep;
        if g.entries.is_empty() {
            g.since = None;
        }
        let group_labels = g.labels.clone();
        let timing = g.timing;
        if send.is_empty() {
            // A reminder of what still fires, when due.
            let every = self
                .notifier
                .resend_interval()
                .or_else(|| timing.map(|t| Duration::from_secs_f64(t.repeat_interval)))?;
            let due = g.last_notified.is_some_and(|l| l.elapsed() >= every);
            if g.firing.is_empty() || !due {
                return None;
            }
            let items: Vec<Item> = g
                .firing
                .values()
                .filter(|i| {
                    let (s, inh) = self.shared.muted(&i.labels, now_unix);
                    s.is_empty() && !inh
                })
                .cloned()
                .collect();
            g.last_notified = Some(Instant::now());
            if items.is_empty() {
                return None;
            }
            let thread = self.shared.outbox.thread(&self.name, key);
            let batch = self.batch(key, &group_labels, items, thread, true);
            return Some(self.send(&batch, token).await);
        }
        // Cut into batches with no alert twice (its firing and its resolve go in order), then
        // into the receiver's own chunks.
        let mut batches: Vec<Vec<Entry>> = vec![Vec::new()];
        for e in send {
            let last = batches.last_mut().expect("one batch at least");
            if last
                .iter()
                .any(|x| x.item.fingerprint == e.item.fingerprint)
            {
                batches.push(vec![e]);
            } else {
                last.push(e);
            }
        }
        let mut last = None;
        let mut rest: Vec<Entry> = Vec::new();
        for b in batches {
            if matches!(last, Some(Outcome::Disabled) | Some(Outcome::Cancelled)) {
                rest.extend(b);
                continue;
            }
            let items: Vec<Item> = b.iter().map(|e| e.item.clone()).collect();
            let mut start = 0;
            for n in self.notifier.split(&items) {
                let n = n.max(1).min(items.len() - start);
                if n == 0 {
                    break;
                }
                let chunk = &b[start..start + n];
                start += n;
                if matches!(last, Some(Outcome::Disabled) | Some(Outcome::Cancelled)) {
                    rest.extend(chunk.iter().cloned());
                    continue;
                }
                let g = groups.get_mut(key)?;
                let thread = self.shared.outbox.thread(&self.name, key);
                let batch = self.batch(
                    key,
                    &group_labels,
                    chunk.iter().map(|e| e.item.clone()).collect(),
                    thread.clone(),
                    false,
                );
                let outcome = self.send(&batch, token).await;
                match &outcome {
                    Outcome::Sent(ack) => {
                        self.remove(chunk);
                        g.last_notified = Some(Instant::now());
                        for e in chunk {
                            match e.item.status {
                                Status::Firing => {
                                    g.firing.insert(e.item.fingerprint.clone(), e.item.clone());
                                }
                                Status::Resolved => {
                                    g.firing.remove(&e.item.fingerprint);
                                }
                            }
                        }
                        if self.notifier.kind() == "email" {
                            if thread.is_none() && batch.firing() > 0 {
                                if let Some(id) = &ack.message_id {
                                    let _ =
                                        self.shared.outbox.set_thread(&self.name, key, Some(id));
                                }
                            } else if thread.is_some() && g.firing.is_empty() {
                                let _ = self.shared.outbox.set_thread(&self.name, key, None);
                            }
                        }
                    }
                    Outcome::Dropped => self.remove_counted(chunk, "rejected"),
                    Outcome::Disabled | Outcome::Cancelled => rest.extend(chunk.iter().cloned()),
                }
                last = Some(outcome);
            }
        }
        if let Some(g) = groups.get_mut(key) {
            // Not sent (cancelled): they wait again, in order, before what was held.
            if !rest.is_empty() {
                rest.append(&mut g.entries);
                g.entries = rest;
                g.entries.sort_by_key(|e| e.seq);
            }
        }
        last
    }

    fn batch(
        &self,
        key: &str,
        group_labels: &BTreeMap<String, String>,
        items: Vec<Item>,
        thread: Option<String>,
        repeat: bool,
    ) -> Batch {
        Batch {
            receiver: self.name.clone(),
            group_key: key.to_string(),
            group_labels: group_labels.clone(),
            items,
            host: self.host.clone(),
            external_url: self.external_url.clone(),
            thread,
            test: false,
            repeat,
        }
    }

    /// Send until acknowledged, rejected, disabled or cancelled.
    async fn send(&self, batch: &Batch, token: &CancellationToken) -> Outcome {
        let stats = &self.shared.stats;
        let mut backoff = BACKOFF_MIN;
        loop {
            let start = Instant::now();
            let r = self.notifier.send(batch).await;
            let took = start.elapsed().as_secs_f64();
            let wait = match r {
                Ok(ack) => {
                    stats.attempt(&self.name, "success", took, "");
                    tracing::debug!(receiver = %self.name, alerts = batch.items.len(), answer = %ack.detail, "notification sent");
                    return Outcome::Sent(ack);
                }
                Err(SendError::Rejected { reason }) => {
                    stats.attempt(&self.name, "rejected", took, &reason);
                    tracing::error!(receiver = %self.name, alerts = batch.items.len(), error = %reason, "the receiver rejected a notification; it is dropped");
                    return Outcome::Dropped;
                }
                Err(SendError::Disabled { reason }) => {
                    stats.attempt(&self.name, "failure", took, &reason);
                    stats.disable(&self.name, &reason);
                    tracing::error!(receiver = %self.name, error = %reason, "RECEIVER DISABLED: it answered that it is gone; its notifications are dropped until the config changes (reload)");
                    return Outcome::Disabled;
                }
                Err(SendError::Retry { after, reason }) => {
                    stats.attempt(&self.name, "failure", took, &reason);
                    let wait = after.unwrap_or(backoff).min(Duration::from_secs(3600));
                    tracing::warn!(receiver = %self.name, error = %reason, retry_in_s = wait.as_secs_f64(), "notification failed; retrying");
                    if after.is_none() {
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                    wait
                }
            };
            tokio::select! {
                _ = token.cancelled() => return Outcome::Cancelled,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn remove(&self, entries: &[Entry]) {
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        if let Err(e) = self.shared.outbox.remove(&seqs) {
            tracing::error!(error = %e, "cannot remove sent notifications from the outbox; they may be sent again after a restart");
        }
        self.shared.stats.unqueued(&self.name, seqs.len() as u64);
    }

    fn remove_counted(&self, entries: &[Entry], reason: &'static str) {
        self.remove(entries);
        self.shared
            .stats
            .dropped(&self.name, reason, entries.len() as u64);
    }

    fn drop_entries(&self, entries: &[Entry], reason: &'static str) {
        if !entries.is_empty() {
            self.remove_counted(entries, reason);
        }
    }

    fn report_held(&self, groups: &HashMap<String, Group>) {
        let held: usize = groups.values().map(|g| g.entries.len()).sum();
        // What waits in groups not yet due is pending too; held counts only what a silence or
        // an inhibition holds, which is what stays after a flush.
        let muted = groups
            .values()
            .filter(|g| g.last_flush.is_some())
            .map(|g| g.entries.len())
            .sum::<usize>()
            .min(held);
        self.shared.stats.set_held(&self.name, muted as u64);
    }
}
