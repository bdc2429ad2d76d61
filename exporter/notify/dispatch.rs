//! The notifier task: the seam's consumer that turns transitions into outbox entries and
//! hands them to one sender per receiver ([`super::sender`]).
//!
//! For each firing or resolved transition it gathers the container's reason and log lines
//! (at that moment), finds the destinations (the routing tree and the rule's `notify`, each
//! receiver once), and stores one entry per receiver in the outbox in one transaction before
//! any sender sees it. A [`Delivery::Sync`] (sent whenever the engine starts) is reconciled
//! with what the outbox believes fires: a firing alert never queued is queued, and an alert
//! believed firing that the engine no longer has is resolved. Keys make both idempotent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::outbox::{Active, Change, Entry, Outbox};
use super::route::{destinations, Destination};
use super::sender::Sender;
use super::silence::Silences;
use super::stats::Stats;
use super::{fingerprint, Item, Notifier, Reason, Status};
use crate::collect::docker::DockerState;
use crate::config::receivers::{NotifyConfig, Receiver};
use crate::config::Config;
use crate::docker_api::DockerApi;
use crate::engine::seam::Delivery;
use crate::engine::state::Transition;
use crate::engine::Alert;

/// At most this many notifications wait per receiver; more are dropped and counted.
pub const MAX_PENDING: u64 = 10_000;
/// A log excerpt is read within this time, or left out.
const LOGS_TIMEOUT: Duration = Duration::from_secs(3);
/// At most this much of a container's log is read for an excerpt.
const LOGS_MAX_BYTES: usize = 256 * 1024;

/// What the notifier shares with HTTP and the publisher.
pub struct Shared {
    pub silences: Arc<Silences>,
    pub stats: Arc<Stats>,
    pub outbox: Arc<Outbox>,
    /// The labels of every alert firing now (for inhibition), by fingerprint.
    pub firing: RwLock<HashMap<String, BTreeMap<String, String>>>,
    /// The inhibition rules in force.
    pub inhibit: RwLock<Vec<crate::config::receivers::InhibitRule>>,
}

impl Shared {
    pub fn new(silences: Arc<Silences>, outbox: Arc<Outbox>, stats: Arc<Stats>) -> Arc<Shared> {
        Arc::new(Shared {
            silences,
            stats,
            outbox,
            firing: RwLock::default(),
            inhibit: RwLock::default(),
        })
    }

    /// Whether an alert with `labels` is inhibited now.
    pub fn inhibited(&self, labels: &BTreeMap<String, String>) -> bool {
        let rules = self.inhibit.read().unwrap_or_else(|p| p.into_inner());
        if rules.is_empty() {
            return false;
        }
        let firing = self.firing.read().unwrap_or_else(|p| p.into_inner());
        super::route::inhibited(&rules, labels, firing.values())
    }

    /// The silences that silence `labels` now, and whether it is inhibited.
    pub fn muted(&self, labels: &BTreeMap<String, String>, now: f64) -> (Vec<String>, bool) {
        (self.silences.silencing(labels, now), self.inhibited(labels))
    }
}

/// Builds a receiver's notifier (tests give their own).
pub type Build = dyn Fn(&Receiver) -> Result<Arc<dyn Notifier>, String> + Send + Sync;

/// The notifier task's parts.
pub struct NotifyTask {
    pub deliveries: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    /// What failover actions announce (each sent once, like a firing alert that never resolves).
    pub announcements: tokio::sync::Mutex<mpsc::UnboundedReceiver<super::Announcement>>,
    pub config: watch::Receiver<Arc<Config>>,
    pub shared: Arc<Shared>,
    /// The Docker API and inventory, for the reason and log lines of container alerts.
    pub docker: Option<(Arc<dyn DockerApi>, Arc<DockerState>)>,
    pub build: Arc<Build>,
    pub host: String,
    pub external_url: String,
}

struct Running {
    cfg: Arc<NotifyConfig>,
    senders: HashMap<String, mpsc::UnboundedSender<Entry>>,
    set: JoinSet<()>,
    token: CancellationToken,
}

impl NotifyTask {
    /// Run until `token` is cancelled or the seam closes.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut deliveries = self.deliveries.lock().await;
        let mut announcements = self.announcements.lock().await;
        let mut config = self.config.clone();
        loop {
            let cfg = Arc::new(config.borrow_and_update().notify.clone());
            let mut running = self.start(cfg.clone(), &token);
            let reconfigured = loop {
                tokio::select! {
                    _ = token.cancelled() => break false,
                    changed = config.changed() => {
                        if changed.is_err() {
                            break false;
                        }
                        if config.borrow().notify != *cfg {
                            tracing::info!("receivers or routes changed: restarting the senders");
                            break true;
                        }
                    }
                    d = deliveries.recv() => match d {
                        Some(d) => self.handle(d, &running).await,
                        None => break false,
                    },
                    Some(a) = announcements.recv() => self.announce(a, &running),
                    Some(done) = running.set.join_next() => {
                        // A sender only ends when told to: anything else is a fault, and the
                        // supervisor restarts this task (which reloads the outbox).
                        if let Err(e) = done {
                            if e.is_panic() {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                        tracing::error!("a notification sender stopped; restarting the notifier");
                        running.token.cancel();
                        return;
                    }
                }
            };
            running.token.cancel();
            while running.set.join_next().await.is_some() {}
            if !reconfigured {
                return;
            }
        }
    }

    /// Start one sender per receiver, each with its pending entries.
    fn start(&self, cfg: Arc<NotifyConfig>, parent: &CancellationToken) -> Running {
        let token = parent.child_token();
        *self
            .shared
            .inhibit
            .write()
            .unwrap_or_else(|p| p.into_inner()) = cfg.inhibit_rules.clone();
        let pending = self.shared.outbox.pending().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the outbox");
            Vec::new()
        });
        let mut by_receiver: HashMap<String, Vec<Entry>> = HashMap::new();
        for e in pending {
            by_receiver.entry(e.receiver.clone()).or_default().push(e);
        }
        let stats = &self.shared.stats;
        stats.set_receivers(
            &cfg.receivers
                .iter()
                .map(|r| (r.name.clone(), r.kind.as_str()))
                .collect::<Vec<_>>(),
        );
        // Entries for receivers no longer configured cannot be sent: dropped, counted.
        for (name, entries) in &by_receiver {
            if cfg.receiver(name).is_none() {
                tracing::warn!(receiver = %name, count = entries.len(), "dropping notifications for a receiver no longer configured");
                let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
                let _ = self.shared.outbox.remove(&seqs);
                stats.dropped(name, "receiver_removed", seqs.len() as u64);
            }
        }
        let active = self.shared.outbox.active().unwrap_or_default();
        let mut senders = HashMap::new();
        let mut set = JoinSet::new();
        for r in &cfg.receivers {
            let entries = by_receiver.remove(&r.name).unwrap_or_default();
            stats.set_queue(&r.name, entries.len() as u64, 0);
            let notifier = match (self.build)(r) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(receiver = %r.name, error = %e, "cannot build the receiver; its notifications are dropped");
                    stats.disable(&r.name, &e);
                    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
                    let _ = self.shared.outbox.remove(&seqs);
                    stats.dropped(&r.name, "receiver_disabled", seqs.len() as u64);
                    continue;
                }
            };
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(r.name.clone(), tx);
            let firing: Vec<(String, Item)> = active
                .iter()
                .flat_map(|a| {
                    a.routes
                        .iter()
                        .filter(|(rc, ..)| rc == &r.name)
                        .map(|(_, g, ..)| (g.clone(), a.item.clone()))
                })
                .collect();
            let sender = Sender {
                name: r.name.clone(),
                notifier,
                shared: self.shared.clone(),
                host: self.host.clone(),
                external_url: self.external_url.clone(),
            };
            set.spawn(sender.run(entries, firing, rx, token.clone()));
        }
        Running {
            cfg,
            senders,
            set,
            token,
        }
    }

    async fn handle(&self, d: Delivery, run: &Running) {
        match d {
            Delivery::Transition(ev) => {
                let (status, fired_at, ends_at) = match ev.transition {
                    Transition::Firing { fired_at, .. } => (Status::Firing, fired_at, None),
                    Transition::Resolved {
                        fired_at,
                        resolved_at,
                        ..
                    } => (Status::Resolved, fired_at, Some(resolved_at)),
                    _ => return,
                };
                self.transition(&ev.alert, status, fired_at, ends_at, run)
                    .await;
            }
            Delivery::Sync { alerts } => self.sync(alerts, run).await,
            Delivery::Tick { .. } => {}
        }
    }

    /// An action's announcement: to the rule's receivers and the routes, once.
    fn announce(&self, a: super::Announcement, run: &Running) {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = crate::now_unix();
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut labels = a.labels;
        // Unique: an announcement is never the same alert as another.
        let fp = fingerprint(&labels);
        labels.retain(|_, v| !v.is_empty());
        let item = Item {
            seq: 0,
            status: Status::Firing,
            fingerprint: format!("{fp}-{}-{n}", (now * 1000.0) as i64),
            labels,
            annotations: a.annotations,
            starts_at: now,
            ends_at: None,
            value: None,
            reason: None,
            logs: Vec::new(),
        };
        self.enqueue(item, None, &a.notify, run, false);
    }

    /// Reconcile with the alerts the engine has when it starts.
    async fn sync(&self, alerts: Vec<Alert>, run: &Running) {
        let firing: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.state == "firing" && a.fired_at.is_some())
            .collect();
        let mut now_firing = HashSet::new();
        for a in &firing {
            let labels: BTreeMap<String, String> = (*a.labels).clone();
            let fp = fingerprint(&labels);
            now_firing.insert(fp.clone());
            let fired_at = a.fired_at.unwrap_or(a.active_at);
            // Already queued (and maybe sent) for every destination: nothing to do.
            let dests = destinations(&run.cfg, &labels, &a.notify);
            let all_seen = dests.iter().all(|d| {
                self.shared
                    .outbox
                    .seen(&key(&fp, Status::Firing, fired_at, &d.receiver))
                    .unwrap_or(false)
            });
            if all_seen {
                self.set_firing(&fp, Some(labels));
                continue;
            }
            self.transition(a, Status::Firing, fired_at, None, run)
                .await;
        }
        let believed = self.shared.outbox.active().unwrap_or_default();
        let now = crate::now_unix();
        for a in believed {
            if now_firing.contains(&a.item.fingerprint) {
                continue;
            }
            tracing::info!(alert = %a.item.alertname(), "an alert notified as firing is no longer active: notifying it resolved");
            let mut item = a.item.clone();
            item.status = Status::Resolved;
            item.ends_at = Some(now);
            item.logs.clear();
            self.enqueue(item, Some(&a.routes), &[], run, true);
        }
    }

    fn set_firing(&self, fp: &str, labels: Option<BTreeMap<String, String>>) {
        let mut f = self
            .shared
            .firing
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match labels {
            Some(l) => {
                f.insert(fp.to_string(), l);
            }
            None => {
                f.remove(fp);
            }
        }
    }

    async fn transition(
        &self,
        alert: &Alert,
        status: Status,
        fired_at: f64,
        ends_at: Option<f64>,
        run: &Running,
    ) {
        let labels: BTreeMap<String, String> = (*alert.labels).clone();
        let fp = fingerprint(&labels);
        let (reason, logs) = self.context(alert, status).await;
        let item = Item {
            seq: 0,
            status,
            labels,
            annotations: (*alert.annotations).clone(),
            starts_at: fired_at,
            ends_at,
            value: alert.value.clone(),
            reason,
            logs,
            fingerprint: fp,
        };
        // A resolve goes where the firing went, even if the routes changed since.
        let routes = if status == Status::Resolved {
            self.shared
                .outbox
                .active()
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.item.fingerprint == item.fingerprint)
                .map(|a| a.routes)
        } else {
            None
        };
        self.enqueue(item, routes.as_ref(), &alert.notify, run, true);
    }

    /// Store the entries of one transition and hand them to their senders.
    fn enqueue(
        &self,
        item: Item,
        routes: Option<&Vec<super::outbox::RouteOf>>,
        notify: &[String],
        run: &Running,
        track: bool,
    ) {
        let dests: Vec<Destination> = match routes {
            Some(r) => r
                .iter()
                .map(|(receiver, group_key, group_labels, timing)| {
                    let send_resolved = destinations(&run.cfg, &item.labels, notify)
                        .iter()
                        .find(|d| &d.receiver == receiver)
                        .map(|d| d.send_resolved)
                        .unwrap_or(run.cfg.route.send_resolved);
                    Destination {
                        receiver: receiver.clone(),
                        group_key: group_key.clone(),
                        group_labels: group_labels.clone(),
                        timing: *timing,
                        send_resolved,
                    }
                })
                .collect(),
            None => destinations(&run.cfg, &item.labels, notify),
        };
        let fp = item.fingerprint.clone();
        let now = crate::now_unix();
        let mut change = Change::default();
        for d in &dests {
            if item.status == Status::Resolved && !d.send_resolved {
                continue;
            }
            if run.senders.contains_key(&d.receiver)
                && self.shared.stats.pending(&d.receiver) >= MAX_PENDING
            {
                tracing::warn!(receiver = %d.receiver, "too many notifications wait for this receiver: dropping one");
                self.shared.stats.dropped(&d.receiver, "backlog_full", 1);
                continue;
            }
            change.entries.push(Entry {
                seq: 0,
                key: key(&fp, item.status, item.starts_at, &d.receiver),
                receiver: d.receiver.clone(),
                group_key: d.group_key.clone(),
                group_labels: d.group_labels.clone(),
                timing: d.timing,
                created: now,
                item: item.clone(),
            });
        }
        change.active = (track).then(|| match item.status {
            Status::Firing => {
                self.set_firing(&fp, Some(item.labels.clone()));
                (
                    fp.clone(),
                    Some(Active {
                        item: Item {
                            logs: Vec::new(),
                            ..item.clone()
                        },
                        routes: dests
                            .iter()
                            .map(|d| {
                                (
                                    d.receiver.clone(),
                                    d.group_key.clone(),
                                    d.group_labels.clone(),
                                    d.timing,
                                )
                            })
                            .collect(),
                    }),
                )
            }
            Status::Resolved => {
                self.set_firing(&fp, None);
                (fp.clone(), None)
            }
        });
        let added = match self.shared.outbox.commit(change, now) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, alert = %item.alertname(), "cannot store notifications in the outbox: they are lost");
                for d in &dests {
                    self.shared.stats.dropped(&d.receiver, "store_error", 1);
                }
                return;
            }
        };
        for e in added {
            match run.senders.get(&e.receiver) {
                Some(tx) => {
                    let r = e.receiver.clone();
                    if tx.send(e).is_ok() {
                        self.shared.stats.queued(&r, 1);
                    }
                }
                None => {
                    // A receiver that could not be built: dropped, counted.
                    let _ = self.shared.outbox.remove(&[e.seq]);
                    self.shared
                        .stats
                        .dropped(&e.receiver, "receiver_disabled", 1);
                }
            }
        }
    }

    /// A container alert's reason, and its last log lines when the rule asks for them.
    async fn context(&self, alert: &Alert, status: Status) -> (Option<Reason>, Vec<String>) {
        let Some((api, docker)) = &self.docker else {
            return (None, Vec::new());
        };
        let (Some(name), true) = (alert.labels.get("name"), alert.labels.contains_key("id")) else {
            return (None, Vec::new());
        };
        let view = docker.view();
        let Some(c) = view.iter().find(|c| &c.name == name) else {
            return (None, Vec::new());
        };
        let reason = Reason::of(c, crate::now_unix());
        let mut logs = Vec::new();
        if alert.context_logs > 0 && status == Status::Firing {
            match tokio::time::timeout(
                LOGS_TIMEOUT,
                api.logs_tail(&c.id, alert.context_logs, LOGS_MAX_BYTES),
            )
            .await
            {
                Ok(Ok(l)) => logs = l,
                Ok(Err(e)) => {
                    tracing::warn!(container = %c.name, error = %e, "cannot read the container's last log lines for the notification")
                }
                Err(_) => {
                    tracing::warn!(container = %c.name, "the container's log lines took too long; sent without them")
                }
            }
        }
        (Some(reason), logs)
    }
}

/// The stable key of one transition of one alert instance for one receiver.
pub fn key(fingerprint: &str, status: Status, fired_at: f64, receiver: &str) -> String {
    format!(
        "{fingerprint}:{}:{}:{receiver}",
        status.as_str(),
        (fired_at * 1000.0).round() as i64
    )
}
