//! The rule engine: alert rules evaluated over each snapshot's targets, after every collection
//! and, for one container, on its Docker events.
//!
//! - [`rule`]: rule files, validated whole and compiled; [`expr`]: the compiled expressions,
//!   and [`functions`]: the functions they may call (char-safe, never panicking);
//!   [`template`]: annotation templates; [`vars`]: the scope variables and the targets, with
//!   [`facts`]: the host facts read from the node_exporter-style collectors, and [`fill`]: the
//!   filesystems' free-space history behind `fill_eta_seconds`.
//! - [`state`]: the pure state machine of one (rule, target) instance.
//! - [`Engine`] (here): the rules, the instances that are pending or firing, evaluation, the
//!   view the API and `/metrics` read, persistence across restarts, and reload.
//! - [`testing`]: `lookout test-rules`.
//!
//! - [`task`]: the engine task, which owns the [`Engine`] (no lock), evaluates each snapshot
//!   and each Docker event in order, and hands transitions to the [`seam`].
//! - [`seam`]: where consumers (the transition log today; notification and actions later)
//!   receive every transition, in order, with backpressure. The engine knows nothing of them:
//!   evaluation returns transitions and never sends anything itself.

pub mod expr;
pub mod facts;
pub mod fill;
pub mod functions;
pub mod journal;
pub mod rule;
pub mod seam;
pub mod state;
pub mod task;
pub mod template;
pub mod testing;
pub mod vars;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use evalexpr::Value;
use serde::{Deserialize, Serialize};

use expr::Truth;
use rule::{Loaded, Rule};
use state::{Instance, Phase, Transition};
use vars::{Scope, Target};

use crate::snapshot::Snapshot;
use crate::state_dir::{StateDir, StateError};

/// The file alert state is kept in, inside `state_dir`.
pub const STATE_FILE: &str = "alerts.json";

/// Label or annotation names and values, shared between the engine, its view and events.
pub type Labels = Arc<BTreeMap<String, String>>;

fn ser_arc<S: serde::Serializer, T: Serialize>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
    (**v).serialize(s)
}

/// An alert: one (rule, target) instance that is pending or firing, or just resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// `alertname`, `severity`, the target's labels and the rule's labels.
    #[serde(serialize_with = "ser_arc")]
    pub labels: Labels,
    #[serde(serialize_with = "ser_arc")]
    pub annotations: Labels,
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
    /// How many of the container's last log lines its notifications carry (the rule's
    /// `context: {logs: N}`; 0: none).
    pub context_logs: usize,
    /// Consecutive scheduled evaluations (one per interval) with the condition true; those
    /// run on a Docker event do not count. Failover actions' `after: N` reads it.
    pub streak: u32,
    /// The rule's `actions:`.
    #[serde(skip)]
    pub actions: Arc<Vec<crate::act::spec::ActionSpec>>,
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
    /// `context: {logs: N}`; 0 without.
    pub context_logs: usize,
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
    /// The target's key (`container/<id>`, ...), for persistence.
    key: String,
    /// The target's labels when the instance started.
    target_labels: Vec<(String, String)>,
    /// The full label set (target, rule, alertname, severity), built once.
    labels: Labels,
    annotations: Labels,
    value: Option<String>,
    /// The values annotations and `value` were last rendered from (see `Slot::inputs`).
    inputs: Vec<Value>,
    /// The pass that last saw its target.
    seen: u64,
    /// Consecutive scheduled evaluations with the condition true.
    streak: u32,
}

/// A hasher for the engine's small integer ids (the std hasher is built for untrusted keys;
/// these are ours, and a (rule, target) lookup happens up to a million times a cycle).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type IdMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<IdHasher>>;

struct Slot {
    rule: Arc<Rule>,
    identity: String,
    /// Index into the engine's distinct matchers; None matches every target.
    matcher: Option<usize>,
    /// Pending and firing instances by target id.
    instances: IdMap<Active>,
    health: Health,
    /// The slots the annotations and the alert's `value` read: they are rendered again only
    /// when one of these changed.
    inputs: Vec<usize>,
}

/// The rules and their alerts.
pub struct Engine {
    slots: Vec<Slot>,
    /// Slot indices per scope.
    by_scope: [Vec<usize>; 4],
    /// The distinct `match` selectors of all rules, each tested once per target and pass.
    matchers: Vec<rule::Matcher>,
    /// Target key → small id, so instances are found by integer.
    ids: HashMap<String, u32>,
    next_id: u32,
    hostname: String,
    pass: u64,
    /// The inventory generation at which each container (by target id) was last evaluated on
    /// a Docker event: a snapshot taken at an older generation does not evaluate it again, so
    /// an older snapshot never reverts a newer, event-driven state.
    event_generations: IdMap<u64>,
    state: StateDir,
    dirty: bool,
    last_duration: f64,
    /// The last scheduled evaluation's readings for rules with a `scale` action.
    samples: Vec<Sample>,
    /// The filesystems' free space over the last hours, for `fill_eta_seconds`; kept across
    /// reloads.
    fill: fill::FillHistory,
}

/// A reading of a rule's first variable on one target, in a scheduled evaluation (for
/// scaling down, which needs the readings of replicas that do not alert).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `group/alert`.
    pub rule: String,
    /// The target's name (the container's).
    pub target: String,
    pub value: Option<f64>,
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
        let mut inputs: Vec<usize> = rule.expr.reads.first().copied().into_iter().collect();
        for (_, _, t) in &rule.annotations {
            for s in t.reads() {
                if !inputs.contains(&s) {
                    inputs.push(s);
                }
            }
        }
        Slot {
            inputs,
            identity: rule.identity(),
            rule: Arc::new(rule),
            matcher: None,
            instances: IdMap::default(),
            health: Health::default(),
        }
    }

    fn labels(&self, target_labels: &[(String, String)]) -> Labels {
        labels_for(&self.rule, target_labels)
    }

    fn alert(&self, a: &Active, phase: &Phase) -> Alert {
        alert_of(&self.rule, a, phase)
    }

    fn event(&self, a: &Active, t: Transition) -> AlertEvent {
        event_of(&self.rule, a, t)
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
            context_logs: r.context_logs,
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

/// Target labels, then the rule's labels, then `alertname` and `severity`.
fn labels_for(r: &Rule, target_labels: &[(String, String)]) -> Labels {
    let mut l: BTreeMap<String, String> = target_labels.iter().cloned().collect();
    for (k, v) in &r.labels {
        l.insert(k.clone(), v.clone());
    }
    l.insert("alertname".into(), r.alert.clone());
    l.insert("severity".into(), r.severity.as_str().into());
    Arc::new(l)
}

fn alert_of(r: &Rule, a: &Active, phase: &Phase) -> Alert {
    Alert {
        labels: a.labels.clone(),
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
        context_logs: r.context_logs,
        streak: a.streak,
        actions: r.actions.clone(),
    }
}

/// The alert as of a transition: a resolved one carries its firing times, in state `inactive`.
fn event_of(r: &Rule, a: &Active, t: Transition) -> AlertEvent {
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
    let mut alert = alert_of(r, a, &phase);
    if matches!(t, Transition::Resolved { .. } | Transition::Inactive { .. }) {
        alert.state = "inactive";
    }
    AlertEvent {
        transition: t,
        alert,
    }
}

/// One (rule, target) evaluation: step the instance, start or drop it, render what changed.
#[allow(clippy::too_many_arguments)]
fn step_one(
    rule: &Rule,
    inputs: &[usize],
    instances: &mut IdMap<Active>,
    error: &mut Option<String>,
    t: &Target,
    row: &[Value],
    tid: u32,
    pass: u64,
    complete: bool,
    now: f64,
    events: &mut Vec<AlertEvent>,
) -> bool {
    // An instance that is pending or firing holds its state while its reading is unknown (the
    // first cycle after a restart has no rate yet; a cgroup read failed once): unknown is not
    // resolved.
    let hold = |instances: &mut IdMap<Active>| {
        if let Some(a) = instances.get_mut(&tid) {
            a.seen = pass;
        }
        false
    };
    let breached = match rule.expr.truth(row) {
        Ok(Truth::True) => true,
        Ok(Truth::False) => false,
        Ok(Truth::Unknown) => return hold(instances),
        Err(e) => {
            error.get_or_insert_with(|| format!("{}: {e}", t.name));
            return hold(instances);
        }
    };
    if !breached && (instances.is_empty() || !instances.contains_key(&tid)) {
        return false;
    }
    let resolved = match &rule.resolve {
        None => !breached,
        Some(r) => match r.truth(row) {
            Ok(Truth::True) => true,
            Ok(Truth::False) => false,
            Ok(Truth::Unknown) if !breached => return hold(instances),
            Ok(Truth::Unknown) => false,
            Err(e) => {
                error.get_or_insert_with(|| format!("{}: resolve: {e}", t.name));
                if !breached {
                    return hold(instances);
                }
                false
            }
        },
    };
    let a = instances.entry(tid).or_insert_with(|| Active {
        inst: Instance::new(rule.timing),
        key: t.key.clone(),
        target_labels: t.labels.clone(),
        labels: labels_for(rule, &t.labels),
        annotations: Labels::default(),
        value: None,
        inputs: Vec::new(),
        seen: pass,
        streak: 0,
    });
    a.seen = pass;
    if complete {
        a.streak = if breached {
            a.streak.saturating_add(1)
        } else {
            0
        };
    }
    let before = a.inst.phase;
    let transition = a.inst.step(breached, resolved, now);
    let stale = transition.is_some()
        || a.inputs.len() != inputs.len()
        || inputs
            .iter()
            .zip(&a.inputs)
            .any(|(s, v)| row.get(*s) != Some(v));
    if stale && (a.inst.phase.is_active() || transition.is_some()) {
        a.inputs = inputs
            .iter()
            .map(|s| row.get(*s).cloned().unwrap_or(Value::Empty))
            .collect();
        // A template that fails is that rule's failure on this target, like an expression.
        a.annotations = Arc::new(
            rule.annotations
                .iter()
                .map(|(k, _, tpl)| {
                    let text = tpl.try_render(row).unwrap_or_else(|e| {
                        error.get_or_insert_with(|| format!("{}: annotations.{k}: {e}", t.name));
                        format!("(template failed: {e})")
                    });
                    (k.clone(), text)
                })
                .collect(),
        );
        a.value = rule
            .expr
            .reads
            .first()
            .and_then(|s| row.get(*s))
            .map(template::plain);
    }
    let changed = a.inst.phase != before;
    if let Some(tr) = transition {
        events.push(event_of(rule, a, tr));
    }
    if !a.inst.phase.is_active() {
        instances.remove(&tid);
    }
    changed
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
    /// An engine over `rules`. Alert state is restored from and saved to `alerts.json` in
    /// `state` (with [`StateDir::none`], it is not kept).
    pub fn new(rules: Vec<Rule>, hostname: &str, state: StateDir) -> Engine {
        let mut e = Engine {
            slots: Vec::new(),
            by_scope: Default::default(),
            matchers: Vec::new(),
            ids: HashMap::new(),
            next_id: 0,
            hostname: hostname.to_string(),
            pass: 0,
            event_generations: IdMap::default(),
            state,
            dirty: false,
            last_duration: 0.0,
            samples: Vec::new(),
            fill: fill::FillHistory::default(),
        };
        e.install(rules.into_iter().map(Slot::new).collect());
        if let Err(err) = e.restore() {
            tracing::warn!(error = %err, "starting without the saved alert state");
        }
        e
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
        self.matchers.clear();
        let mut distinct: HashMap<String, usize> = HashMap::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            self.by_scope[scope_index(s.rule.scope)].push(i);
            s.matcher = (!s.rule.matcher.is_all()).then(|| {
                *distinct
                    .entry(format!(
                        "{}|{}",
                        s.rule.scope.as_str(),
                        s.rule.matcher.describe()
                    ))
                    .or_insert_with(|| {
                        self.matchers.push(s.rule.matcher.clone());
                        self.matchers.len() - 1
                    })
            });
        }
    }

    /// The small id of a target key.
    fn id(&mut self, key: &str) -> u32 {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.ids.insert(key.to_string(), id);
        id
    }

    /// Forget the ids of keys that are neither current targets nor held by an instance, once
    /// the table has grown well past what is in use (containers come and go).
    fn collect_ids(&mut self, current: &[Target]) {
        let held: usize = self.slots.iter().map(|s| s.instances.len()).sum();
        if self.ids.len() <= 2 * (current.len() + held) + 1024 {
            return;
        }
        let mut keep: std::collections::HashSet<&str> =
            current.iter().map(|t| t.key.as_str()).collect();
        for s in &self.slots {
            keep.extend(s.instances.values().map(|a| a.key.as_str()));
        }
        let keep: std::collections::HashSet<String> = keep.into_iter().map(String::from).collect();
        self.ids.retain(|k, _| keep.contains(k));
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
                    let rule_labels: Vec<Labels> = s
                        .instances
                        .values()
                        .map(|a| s.labels(&a.target_labels))
                        .collect();
                    for (a, l) in s.instances.values_mut().zip(rule_labels) {
                        a.inst.timing = s.rule.timing;
                        a.labels = l;
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
    /// (their alerts keep their state); in the others, a target that is gone resolves. A
    /// container evaluated on a Docker event at a newer inventory generation than the
    /// snapshot's keeps the state that event gave it.
    pub fn evaluate(
        &mut self,
        snap: &Snapshot,
        prev: Option<&Snapshot>,
        now: f64,
    ) -> Vec<AlertEvent> {
        let start = Instant::now();
        if vars::present(snap, Scope::Filesystem) {
            self.fill.observe(&snap.filesystems, snap.taken_at);
        }
        let targets = vars::targets(snap, prev, &self.hostname, &self.fill);
        let scopes: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| vars::present(snap, *s))
            .collect();
        let events = self.evaluate_at(targets, &scopes, Some(snap.inventory_generation), now);
        self.last_duration = start.elapsed().as_secs_f64();
        events
    }

    /// Evaluate the rules of `complete` scopes over `targets` (all of those scopes' targets).
    /// The targets' values are moved out, into one block per scope.
    pub fn evaluate_targets(
        &mut self,
        targets: Vec<Target>,
        complete: &[Scope],
        now: f64,
    ) -> Vec<AlertEvent> {
        self.evaluate_at(targets, complete, None, now)
    }

    fn evaluate_at(
        &mut self,
        mut targets: Vec<Target>,
        complete: &[Scope],
        generation: Option<u64>,
        now: f64,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for scope in complete {
            let mut of_scope: Vec<&mut Target> =
                targets.iter_mut().filter(|t| t.scope == *scope).collect();
            let generation = generation.filter(|_| *scope == Scope::Container);
            self.eval_scope(*scope, &mut of_scope, true, generation, now, &mut events);
        }
        if let Some(g) = generation {
            if complete.contains(&Scope::Container) {
                // This snapshot has caught up with those events.
                self.event_generations.retain(|_, e| *e > g);
            }
        }
        self.collect_ids(&targets);
        events
    }

    /// Evaluate one container's rules at once (on its Docker event), with the inventory as of
    /// `generation`: `target` is its current target, None when it no longer exists (its alerts
    /// resolve).
    pub fn evaluate_container(
        &mut self,
        id: &str,
        target: Option<&Target>,
        generation: u64,
        now: f64,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let key = format!("container/{id}");
        let tid = self.id(&key);
        let e = self.event_generations.entry(tid).or_insert(generation);
        *e = (*e).max(generation);
        match target {
            Some(t) => {
                let mut t = t.clone();
                self.eval_scope(
                    Scope::Container,
                    &mut [&mut t],
                    false,
                    None,
                    now,
                    &mut events,
                )
            }
            None => {
                for &si in &self.by_scope[0] {
                    let slot = &mut self.slots[si];
                    if let Some(mut a) = slot.instances.remove(&tid) {
                        if let Some(t) = a.inst.vanish(now) {
                            events.push(slot.event(&a, t));
                        }
                        self.dirty = true;
                    }
                }
            }
        }
        events
    }

    /// Whether any rule has `actions:` (the engine task then hands each scheduled evaluation's
    /// alerts to the seam).
    pub fn has_actions(&self) -> bool {
        self.slots.iter().any(|s| !s.rule.actions.is_empty())
    }

    /// The readings the last scheduled evaluations took for `scale` actions.
    pub fn take_samples(&mut self) -> Vec<Sample> {
        std::mem::take(&mut self.samples)
    }

    /// The alerts that are pending or firing now, as transitions' consumers reconcile with
    /// them (at start, after a restart of the engine task).
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.view().alerts
    }

    /// `generation`: the snapshot's inventory generation (container scope of a complete pass);
    /// targets evaluated on a newer Docker event are left as that event left them.
    fn eval_scope(
        &mut self,
        scope: Scope,
        targets: &mut [&mut Target],
        complete: bool,
        generation: Option<u64>,
        now: f64,
        events: &mut Vec<AlertEvent>,
    ) {
        self.pass += 1;
        let pass = self.pass;
        let ids: Vec<u32> = targets.iter().map(|t| self.id(&t.key)).collect();
        let newer = |gens: &IdMap<u64>, tid: u32| {
            generation.is_some_and(|g| gens.get(&tid).is_some_and(|e| *e > g))
        };
        let skip: Vec<bool> = if self.event_generations.is_empty() {
            Vec::new()
        } else {
            ids.iter()
                .map(|tid| newer(&self.event_generations, *tid))
                .collect()
        };
        let scope_slots = &self.by_scope[scope_index(scope)];
        // Each distinct matcher this scope's rules use, tested once per target.
        let mut matched: Vec<Vec<bool>> = vec![Vec::new(); self.matchers.len()];
        for &si in scope_slots {
            if let Some(m) = self.slots[si].matcher {
                if matched[m].is_empty() {
                    matched[m] = targets
                        .iter()
                        .map(|t| self.matchers[m].matches(t))
                        .collect();
                }
            }
        }
        let mut errors: Vec<Option<String>> = vec![None; scope_slots.len()];
        // The targets' values side by side in one block, so that running a rule over every
        // target reads memory in order (1,000 containers' values fit in a core's L2 cache).
        let nv = scope.names().names.len();
        let mut flat: Vec<Value> = Vec::with_capacity(targets.len() * nv);
        for t in targets.iter_mut() {
            let mut v = std::mem::take(&mut t.values);
            v.resize(nv, Value::Empty);
            flat.extend(v);
        }
        let targets: &[&mut Target] = targets;
        for (k, &si) in scope_slots.iter().enumerate() {
            let Slot {
                rule,
                matcher,
                instances,
                inputs,
                ..
            } = &mut self.slots[si];
            let selected = matcher.map(|m| &matched[m]);
            let sampled = complete
                && rule
                    .actions
                    .iter()
                    .any(|a| matches!(a, crate::act::spec::ActionSpec::Scale(_)));
            for (ti, t) in targets.iter().enumerate() {
                if selected.is_some_and(|sel| !sel[ti]) {
                    continue;
                }
                if sampled {
                    let v = rule
                        .expr
                        .reads
                        .first()
                        .and_then(|s| flat.get(ti * nv + *s))
                        .and_then(|v| match v {
                            Value::Float(f) => Some(*f),
                            Value::Int(i) => Some(*i as f64),
                            _ => None,
                        });
                    self.samples.push(Sample {
                        rule: format!("{}/{}", rule.group, rule.alert),
                        target: t.name.clone(),
                        value: v,
                    });
                }
                if skip.get(ti).copied().unwrap_or(false) {
                    if let Some(a) = instances.get_mut(&ids[ti]) {
                        a.seen = pass;
                    }
                    continue;
                }
                if step_one(
                    rule,
                    inputs,
                    instances,
                    &mut errors[k],
                    t,
                    &flat[ti * nv..(ti + 1) * nv],
                    ids[ti],
                    pass,
                    complete,
                    now,
                    events,
                ) {
                    self.dirty = true;
                }
            }
        }
        for (k, &si) in scope_slots.iter().enumerate() {
            let slot = &mut self.slots[si];
            if complete && !slot.instances.is_empty() {
                let gone: Vec<u32> = slot
                    .instances
                    .iter()
                    .filter(|(tid, a)| a.seen != pass && !newer(&self.event_generations, **tid))
                    .map(|(k, _)| *k)
                    .collect();
                for id in gone {
                    if let Some(mut a) = slot.instances.remove(&id) {
                        if let Some(tr) = a.inst.vanish(now) {
                            events.push(slot.event(&a, tr));
                        }
                        self.dirty = true;
                    }
                }
            }
            let error = errors[k].take();
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

    /// Save the alert state if it changed since the last save (atomically).
    pub fn save(&mut self) -> Result<(), StateError> {
        if !self.dirty || self.state.dir().is_none() {
            return Ok(());
        }
        let saved = Saved {
            version: 1,
            saved_at: crate::now_unix(),
            alerts: self
                .slots
                .iter()
                .flat_map(|s| {
                    s.instances.values().map(move |a| SavedAlert {
                        rule: s.identity.clone(),
                        group: s.rule.group.clone(),
                        alertname: s.rule.alert.clone(),
                        target: a.key.clone(),
                        target_labels: a.target_labels.clone(),
                        annotations: (*a.annotations).clone(),
                        value: a.value.clone(),
                        phase: a.inst.phase,
                    })
                })
                .collect(),
        };
        self.state.save(STATE_FILE, &saved)?;
        self.dirty = false;
        Ok(())
    }

    /// Take the saved state back: firing alerts stay firing (no new transition), pending ones
    /// keep the time they became active. Alerts of rules that no longer exist are dropped.
    fn restore(&mut self) -> Result<(), StateError> {
        let Some(saved) = self.state.load::<Saved>(STATE_FILE)? else {
            return Ok(());
        };
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
            let tid = self.id(&s.target);
            let slot = &mut self.slots[i];
            let labels = slot.labels(&s.target_labels);
            slot.instances.insert(
                tid,
                Active {
                    inst: Instance {
                        phase: s.phase,
                        timing: slot.rule.timing,
                    },
                    key: s.target,
                    target_labels: s.target_labels,
                    labels,
                    annotations: Arc::new(s.annotations),
                    value: s.value,
                    inputs: Vec::new(),
                    seen: 0,
                    streak: 0,
                },
            );
            restored += 1;
        }
        if restored + dropped > 0 {
            tracing::info!(
                restored,
                dropped,
                path = %self.state.describe(STATE_FILE),
                "alert state restored"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
