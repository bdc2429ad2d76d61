//! The rule engine: alert rules evaluated over each snapshot's targets, after every collection
//! and, for one container, on its Docker events.
//!
//! - [`rule`]: rule files, validated whole and compiled; [`expr`]: the compiled expressions;
//!   [`template`]: annotation templates; [`vars`]: the scope variables and the targets.
//! - [`state`]: the pure state machine of one (rule, target) instance.
//! - [`Engine`] (here): the rules, the instances that are pending or firing, evaluation, the
//!   view the API and `/metrics` read, persistence across restarts, and reload.
//! - [`testing`]: `lookout test-rules`.
//!
//! Transitions go out on a broadcast channel the engine owns; notification and actions
//! subscribe to it. The engine knows nothing of them.

pub mod expr;
pub mod rule;
pub mod state;
pub mod template;
pub mod testing;
pub mod vars;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use expr::Truth;
use rule::{Loaded, Rule};
use state::{Instance, Phase, Transition};
use vars::{Scope, Target};

use crate::snapshot::Snapshot;

/// The file alert state is kept in, inside `state_dir`.
pub const STATE_FILE: &str = "alerts.json";

/// Why state could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot write alert state to {path}: {source}")]
    Save {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read alert state from {path}: {message}")]
    Restore { path: String, message: String },
}

/// An alert: one (rule, target) instance that is pending or firing, or just resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// `alertname`, `severity`, the target's labels and the rule's labels.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `pending`, `firing`, or `inactive` once resolved.
    pub state: &'static str,
    /// Unix time the condition started to hold.
    pub active_at: f64,
    pub fired_at: Option<f64>,
    /// The value of the first variable the rule's expression reads (e.g. `cpu_percent`).
    pub value: Option<String>,
    pub group: String,
    pub alertname: String,
    pub severity: &'static str,
    /// The receivers the rule names.
    pub notify: Vec<String>,
}

/// A transition and the alert it happened to, as the notification and action issues get it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub transition: Transition,
    pub alert: Alert,
}

/// A rule's health, as `/api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatus {
    pub group: String,
    pub name: String,
    pub file: String,
    pub scope: &'static str,
    pub query: String,
    pub resolve: Option<String>,
    /// `for`, in seconds.
    pub duration: f64,
    pub keep_firing_for: f64,
    pub severity: &'static str,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub notify: Vec<String>,
    /// `ok`, `err`, or `unknown` before its first evaluation.
    pub health: &'static str,
    pub last_error: String,
    pub last_evaluation: Option<f64>,
    pub failures_total: u64,
    /// Alerts of this rule that are pending or firing.
    pub active: usize,
}

/// What the API, the status page and `/metrics` read: built after each evaluation.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Pending and firing alerts, sorted by name, then labels.
    pub alerts: Vec<Alert>,
    pub rules: Vec<RuleStatus>,
    /// Seconds the last full evaluation took.
    pub evaluation_seconds: f64,
}

#[derive(Debug, Clone, Default)]
struct Health {
    last_error: Option<String>,
    last_evaluation: Option<f64>,
    failures_total: u64,
}

#[derive(Debug, Clone)]
struct Active {
    inst: Instance,
    /// The target's labels when the instance started.
    target_labels: Vec<(String, String)>,
    annotations: BTreeMap<String, String>,
    value: Option<String>,
    /// The pass that last saw its target.
    seen: u64,
}

struct Slot {
    rule: Arc<Rule>,
    identity: String,
    instances: HashMap<String, Active>,
    health: Health,
}

/// The rules and their alerts.
pub struct Engine {
    slots: Vec<Slot>,
    /// Slot indices per scope.
    by_scope: [Vec<usize>; 4],
    hostname: String,
    pass: u64,
    tx: broadcast::Sender<AlertEvent>,
    state_path: Option<PathBuf>,
    dirty: bool,
    last_duration: f64,
}

fn scope_index(s: Scope) -> usize {
    match s {
        Scope::Container => 0,
        Scope::Host => 1,
        Scope::Filesystem => 2,
        Scope::Gpu => 3,
    }
}

impl Slot {
    fn new(rule: Rule) -> Slot {
        Slot {
            identity: rule.identity(),
            rule: Arc::new(rule),
            instances: HashMap::new(),
            health: Health::default(),
        }
    }

    fn labels(&self, a: &Active) -> BTreeMap<String, String> {
        let r = &self.rule;
        let mut l: BTreeMap<String, String> = a.target_labels.iter().cloned().collect();
        for (k, v) in &r.labels {
            l.insert(k.clone(), v.clone());
        }
        l.insert("alertname".into(), r.alert.clone());
        l.insert("severity".into(), r.severity.as_str().into());
        l
    }

    fn alert(&self, a: &Active, phase: &Phase) -> Alert {
        let r = &self.rule;
        Alert {
            labels: self.labels(a),
            annotations: a.annotations.clone(),
            state: phase.as_str(),
            active_at: phase
                .active_at()
                .or(a.inst.phase.active_at())
                .unwrap_or(0.0),
            fired_at: phase.fired_at(),
            value: a.value.clone(),
            group: r.group.clone(),
            alertname: r.alert.clone(),
            severity: r.severity.as_str(),
            notify: r.notify.clone(),
        }
    }

    fn event(&self, a: &Active, t: Transition) -> AlertEvent {
        // The alert as of the transition: a resolved one carries its firing times.
        let phase = match t {
            Transition::Resolved {
                active_at,
                fired_at,
                ..
            } => Phase::Firing {
                active_at,
                fired_at,
                keep_firing_since: None,
            },
            _ => a.inst.phase,
        };
        let mut alert = self.alert(a, &phase);
        if matches!(t, Transition::Resolved { .. } | Transition::Inactive { .. }) {
            alert.state = "inactive";
        }
        AlertEvent {
            transition: t,
            alert,
        }
    }

    fn status(&self) -> RuleStatus {
        let r = &self.rule;
        RuleStatus {
            group: r.group.clone(),
            name: r.alert.clone(),
            file: r.file.clone(),
            scope: r.scope.as_str(),
            query: r.expr.source.clone(),
            resolve: r.resolve.as_ref().map(|c| c.source.clone()),
            duration: r.timing.for_secs,
            keep_firing_for: r.timing.keep_firing_for,
            severity: r.severity.as_str(),
            labels: r.labels.iter().cloned().collect(),
            annotations: r
                .annotations
                .iter()
                .map(|(k, src, _)| (k.clone(), src.clone()))
                .collect(),
            notify: r.notify.clone(),
            health: match (&self.health.last_evaluation, &self.health.last_error) {
                (None, _) => "unknown",
                (_, Some(_)) => "err",
                _ => "ok",
            },
            last_error: self.health.last_error.clone().unwrap_or_default(),
            last_evaluation: self.health.last_evaluation,
            failures_total: self.health.failures_total,
            active: self.instances.len(),
        }
    }
}

/// The default `state_dir`: `/var/lib/lookout` where it can be written, else
/// `$XDG_DATA_HOME/lookout`, else `$HOME/.local/share/lookout`.
pub fn default_state_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/var/lib/lookout")];
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(x).join("lookout"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(h).join(".local/share/lookout"));
    }
    candidates.into_iter().find(|d| writable(d))
}

fn writable(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".lookout-probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    saved_at: f64,
    alerts: Vec<SavedAlert>,
}

#[derive(Serialize, Deserialize)]
struct SavedAlert {
    /// The rule's identity (group, name, scope, expressions, match).
    rule: String,
    group: String,
    alertname: String,
    target: String,
    target_labels: Vec<(String, String)>,
    annotations: BTreeMap<String, String>,
    value: Option<String>,
    phase: Phase,
}

impl Engine {
    /// An engine over `rules`. With a `state_dir`, alert state is restored from and saved to
    /// `state_dir/alerts.json`.
    pub fn new(rules: Vec<Rule>, hostname: &str, state_dir: Option<&Path>) -> Engine {
        let mut e = Engine {
            slots: Vec::new(),
            by_scope: Default::default(),
            hostname: hostname.to_string(),
            pass: 0,
            tx: broadcast::channel(4096).0,
            state_path: state_dir.map(|d| d.join(STATE_FILE)),
            dirty: false,
            last_duration: 0.0,
        };
        e.install(rules.into_iter().map(Slot::new).collect());
        if let Err(err) = e.restore() {
            tracing::warn!(error = %err, "starting without the saved alert state");
        }
        e
    }

    /// Transitions as they happen. Lagging receivers lose the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.tx.subscribe()
    }

    pub fn rules_loaded(&self) -> usize {
        self.slots.len()
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    fn install(&mut self, slots: Vec<Slot>) {
        self.slots = slots;
        self.by_scope = Default::default();
        for (i, s) in self.slots.iter().enumerate() {
            self.by_scope[scope_index(s.rule.scope)].push(i);
        }
    }

    /// Replace the rules. A rule whose group, name, scope, expressions and match are unchanged
    /// keeps its alerts (with the new rule's timing, labels and annotations) and its counters.
    pub fn reload(&mut self, loaded: Loaded) {
        let mut old: HashMap<String, Slot> = self
            .slots
            .drain(..)
            .map(|s| (s.identity.clone(), s))
            .collect();
        let mut kept = 0;
        let slots = loaded
            .rules
            .into_iter()
            .map(|r| {
                let mut s = Slot::new(r);
                if let Some(o) = old.remove(&s.identity) {
                    kept += o.instances.len();
                    s.instances = o.instances;
                    s.health = o.health;
                    for a in s.instances.values_mut() {
                        a.inst.timing = s.rule.timing;
                    }
                }
                s
            })
            .collect();
        let dropped: usize = old.values().map(|s| s.instances.len()).sum();
        self.install(slots);
        self.dirty = true;
        tracing::info!(
            rules = self.slots.len(),
            alerts_kept = kept,
            alerts_dropped = dropped,
            "rules reloaded"
        );
    }

    /// Evaluate every rule over a snapshot's targets. Scopes whose collector failed are skipped
    /// (their alerts keep their state); in the others, a target that is gone resolves.
    pub fn evaluate(
        &mut self,
        snap: &Snapshot,
        prev: Option<&Snapshot>,
        now: f64,
    ) -> Vec<AlertEvent> {
        let start = Instant::now();
        let targets = vars::targets(snap, prev, &self.hostname);
        let scopes: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| vars::present(snap, *s))
            .collect();
        let events = self.evaluate_targets(&targets, &scopes, now);
        self.last_duration = start.elapsed().as_secs_f64();
        events
    }

    /// Evaluate the rules of `complete` scopes over `targets` (all of those scopes' targets).
    pub fn evaluate_targets(
        &mut self,
        targets: &[Target],
        complete: &[Scope],
        now: f64,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for scope in complete {
            let of_scope: Vec<&Target> = targets.iter().filter(|t| t.scope == *scope).collect();
            self.eval_scope(*scope, &of_scope, true, now, &mut events);
        }
        self.send(&events);
        events
    }

    /// Evaluate one container's rules at once (on its Docker event): `target` is its current
    /// target, None when it no longer exists (its alerts resolve).
    pub fn evaluate_container(
        &mut self,
        id: &str,
        target: Option<&Target>,
        now: f64,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        match target {
            Some(t) => self.eval_scope(Scope::Container, &[t], false, now, &mut events),
            None => {
                let key = format!("container/{id}");
                for &si in &self.by_scope[0] {
                    let slot = &mut self.slots[si];
                    if let Some(mut a) = slot.instances.remove(&key) {
                        if let Some(t) = a.inst.vanish(now) {
                            events.push(slot.event(&a, t));
                        }
                        self.dirty = true;
                    }
                }
            }
        }
        self.send(&events);
        events
    }

    fn send(&self, events: &[AlertEvent]) {
        for e in events {
            let _ = self.tx.send(e.clone());
        }
    }

    fn eval_scope(
        &mut self,
        scope: Scope,
        targets: &[&Target],
        complete: bool,
        now: f64,
        events: &mut Vec<AlertEvent>,
    ) {
        self.pass += 1;
        let pass = self.pass;
        for &si in &self.by_scope[scope_index(scope)] {
            let slot = &mut self.slots[si];
            let rule = slot.rule.clone();
            let mut error: Option<String> = None;
            for t in targets {
                if !rule.matcher.is_all() && !rule.matcher.matches(t) {
                    continue;
                }
                let breached = match rule.expr.truth(&t.values) {
                    Ok(truth) => truth == Truth::True,
                    Err(e) => {
                        error.get_or_insert_with(|| format!("{}: {e}", t.name));
                        if let Some(a) = slot.instances.get_mut(&t.key) {
                            a.seen = pass;
                        }
                        continue;
                    }
                };
                if !breached && slot.instances.is_empty() {
                    continue;
                }
                let exists = slot.instances.contains_key(&t.key);
                if !exists && !breached {
                    continue;
                }
                let resolved = match &rule.resolve {
                    None => !breached,
                    // Unknown (a missing reading) counts as resolved: nothing holds it.
                    Some(r) => match r.truth(&t.values) {
                        Ok(truth) => truth != Truth::False,
                        Err(e) => {
                            error.get_or_insert_with(|| format!("{}: resolve: {e}", t.name));
                            false
                        }
                    },
                };
                let a = slot
                    .instances
                    .entry(t.key.clone())
                    .or_insert_with(|| Active {
                        inst: Instance::new(rule.timing),
                        target_labels: t.labels.clone(),
                        annotations: BTreeMap::new(),
                        value: None,
                        seen: pass,
                    });
                a.seen = pass;
                let before = a.inst.phase;
                let transition = a.inst.step(breached, resolved, now);
                if a.inst.phase.is_active() || transition.is_some() {
                    a.annotations = rule
                        .annotations
                        .iter()
                        .map(|(k, _, tpl)| (k.clone(), tpl.render(&t.values)))
                        .collect();
                    a.value = rule
                        .expr
                        .reads
                        .first()
                        .and_then(|s| t.values.get(*s))
                        .map(template::plain);
                }
                if a.inst.phase != before {
                    self.dirty = true;
                }
                let active = a.inst.phase.is_active();
                if let Some(tr) = transition {
                    let a = &slot.instances[&t.key];
                    events.push(slot.event(a, tr));
                }
                if !active {
                    slot.instances.remove(&t.key);
                }
            }
            if complete {
                let gone: Vec<String> = slot
                    .instances
                    .iter()
                    .filter(|(_, a)| a.seen != pass)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in gone {
                    if let Some(mut a) = slot.instances.remove(&k) {
                        if let Some(tr) = a.inst.vanish(now) {
                            events.push(slot.event(&a, tr));
                        }
                        self.dirty = true;
                    }
                }
            }
            if error.is_some() {
                slot.health.failures_total += 1;
            }
            if complete || error.is_some() {
                slot.health.last_error = error;
            }
            slot.health.last_evaluation = Some(now);
        }
    }

    /// The alerts and rules, for the API, the status page and `/metrics`.
    pub fn view(&self) -> View {
        let mut alerts: Vec<Alert> = self
            .slots
            .iter()
            .flat_map(|s| {
                s.instances
                    .values()
                    .filter(|a| a.inst.phase.is_active())
                    .map(move |a| s.alert(a, &a.inst.phase))
            })
            .collect();
        alerts.sort_by(|a, b| {
            (&a.alertname, &a.labels, a.state).cmp(&(&b.alertname, &b.labels, b.state))
        });
        View {
            alerts,
            rules: self.slots.iter().map(Slot::status).collect(),
            evaluation_seconds: self.last_duration,
        }
    }

    /// Save the alert state if it changed since the last save (atomically: a temporary file
    /// renamed over the old one).
    pub fn save(&mut self) -> Result<(), EngineError> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let saved = Saved {
            version: 1,
            saved_at: crate::now_unix(),
            alerts: self
                .slots
                .iter()
                .flat_map(|s| {
                    s.instances.iter().map(move |(k, a)| SavedAlert {
                        rule: s.identity.clone(),
                        group: s.rule.group.clone(),
                        alertname: s.rule.alert.clone(),
                        target: k.clone(),
                        target_labels: a.target_labels.clone(),
                        annotations: a.annotations.clone(),
                        value: a.value.clone(),
                        phase: a.inst.phase,
                    })
                })
                .collect(),
        };
        let err = |source| EngineError::Save {
            path: path.display().to_string(),
            source,
        };
        let body = serde_json::to_vec_pretty(&saved).map_err(|e| err(e.into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        std::fs::write(&tmp, &body).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })?;
        self.dirty = false;
        Ok(())
    }

    /// Take the saved state back: firing alerts stay firing (no new transition), pending ones
    /// keep the time they became active. Alerts of rules that no longer exist are dropped.
    fn restore(&mut self) -> Result<(), EngineError> {
        let Some(path) = &self.state_path else {
            return Ok(());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(EngineError::Restore {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        let saved: Saved = serde_json::from_str(&text).map_err(|e| EngineError::Restore {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let by_id: HashMap<String, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.identity.clone(), i))
            .collect();
        let (mut restored, mut dropped) = (0, 0);
        for s in saved.alerts {
            let Some(&i) = by_id.get(&s.rule) else {
                dropped += 1;
                continue;
            };
            if !s.phase.is_active() {
                continue;
            }
            let slot = &mut self.slots[i];
            slot.instances.insert(
                s.target,
                Active {
                    inst: Instance {
                        phase: s.phase,
                        timing: slot.rule.timing,
                    },
                    target_labels: s.target_labels,
                    annotations: s.annotations,
                    value: s.value,
                    seen: 0,
                },
            );
            restored += 1;
        }
        if restored + dropped > 0 {
            tracing::info!(
                restored,
                dropped,
                path = %path.display(),
                "alert state restored"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
