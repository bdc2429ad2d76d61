//! The action task: a consumer of the seam that decides, under the guardrails, what to do
//! about alerts whose rules have `actions:`, does it through the [`Runtime`], records it in
//! the audit log and announces it through the rule's receivers.
//!
//! Guardrails: actions can be off (`actions.enabled`) or rehearsed (`dry_run`); a container
//! labelled `lookout.actions=off`, or without the `require_label`, is left alone, and so is
//! lookout's own container; one action at a time per container; at most
//! `max_per_minute` actions on the host (a refusal is counted `skipped` and announced once per
//! minute); restarts of one container back off exponentially from `cooldown` and stop after
//! `max_attempts` within `window` ("failover exhausted", announced once) until the window
//! passes or a person resets it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::audit::{Audit, Record};
use super::runtime::Runtime;
use super::spec::{ActionSpec, Restart, Scale, StartStandby};
use crate::collect::docker::DockerState;
use crate::config::{ActionsConfig, Config};
use crate::engine::seam::Delivery;
use crate::engine::state::Transition;
use crate::engine::{Alert, Sample};
use crate::notify::Announcement;
use crate::snapshot::ContainerInfo;

/// The label that keeps lookout's hands off a container.
pub const OPT_OUT: &str = "lookout.actions";
/// The label lookout puts on the replicas it creates (only those are ever removed).
pub const CLONE_LABEL: &str = "lookout.clone";

/// One container's restart history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestartState {
    /// Unix times of the attempts within the window.
    pub attempts: Vec<f64>,
    /// No attempt before this unix time (the backoff).
    pub next_allowed: f64,
    /// Given up on until this unix time (the window's end), if so.
    pub exhausted_until: Option<f64>,
    pub max_attempts: u32,
    pub window: f64,
}

#[derive(Default)]
struct State {
    restarts: BTreeMap<String, RestartState>,
    /// Containers with an action under way.
    busy: HashSet<String>,
    /// Times of the actions done in the last minute (the budget).
    budget: VecDeque<Instant>,
    /// When the budget's refusal was last announced.
    budget_announced: Option<Instant>,
    /// (rule, primary) → standby started, and the episode's firing time.
    standbys: HashMap<(String, String), f64>,
    /// Standby stops scheduled: (rule, primary) → not before this unix time.
    standby_stops: HashMap<(String, String), (f64, String, Duration)>,
    /// Service → last scaling step (unix s).
    scaled_at: HashMap<String, f64>,
    /// (rule, service) → since when every replica's reading has been under `scale_down_below`.
    calm_since: HashMap<(String, String), f64>,
}

/// What the HTTP API and the status page use.
pub struct Handle {
    pub audit: Arc<Audit>,
    state: Mutex<State>,
    config: Mutex<ActionsConfig>,
    runtime: Arc<dyn Runtime>,
    docker: Arc<DockerState>,
    announce: mpsc::UnboundedSender<Announcement>,
    /// lookout's own container id, if it runs in one.
    own_id: Option<String>,
}

/// A manual action's request (`POST /api/v1/containers/{name}/actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manual {
    Restart,
    Start,
    Stop,
}

impl Manual {
    pub fn parse(s: &str) -> Option<Manual> {
        match s {
            "restart" => Some(Manual::Restart),
            "start" => Some(Manual::Start),
            "stop" => Some(Manual::Stop),
            _ => None,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Manual::Restart => "restart",
            Manual::Start => "start",
            Manual::Stop => "stop",
        }
    }
}

impl Handle {
    pub fn new(
        config: &ActionsConfig,
        audit: Arc<Audit>,
        runtime: Arc<dyn Runtime>,
        docker: Arc<DockerState>,
        announce: mpsc::UnboundedSender<Announcement>,
        own_id: Option<String>,
    ) -> Arc<Handle> {
        Arc::new(Handle {
            audit,
            state: Mutex::default(),
            config: Mutex::new(config.clone()),
            runtime,
            docker,
            announce,
            own_id,
        })
    }

    fn cfg(&self) -> ActionsConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether actions run (`lookout_actions_enabled`).
    pub fn enabled(&self) -> bool {
        self.cfg().enabled
    }

    pub fn dry_run(&self) -> bool {
        self.cfg().dry_run
    }

    /// What `/metrics` shows.
    pub fn figures(&self) -> crate::exposition::ActionFigures {
        let now = crate::now_unix();
        crate::exposition::ActionFigures {
            enabled: self.enabled(),
            dry_run: self.dry_run(),
            counts: self.audit.counts(),
            durations: self.audit.durations(),
            exhausted: self
                .st()
                .restarts
                .values()
                .filter(|r| r.exhausted_until.is_some_and(|u| u > now))
                .count(),
        }
    }

    /// Each container's restart history (for the status page and the API).
    pub fn restarts(&self) -> BTreeMap<String, RestartState> {
        let now = crate::now_unix();
        let mut m = self.st().restarts.clone();
        for r in m.values_mut() {
            r.attempts.retain(|t| *t > now - r.window);
            if r.exhausted_until.is_some_and(|u| u <= now) {
                r.exhausted_until = None;
            }
        }
        m
    }

    /// Forget the restart history of `container` (all when None): a person has looked.
    pub fn reset(&self, container: Option<&str>) -> usize {
        let mut st = self.st();
        match container {
            Some(c) => usize::from(st.restarts.remove(c).is_some()),
            None => {
                let n = st.restarts.len();
                st.restarts.clear();
                n
            }
        }
    }

    fn container(&self, name: &str) -> Option<ContainerInfo> {
        self.docker.view().iter().find(|c| c.name == name).cloned()
    }

    /// Why lookout may not touch this container, if it may not.
    fn refused(&self, c: &ContainerInfo) -> Option<String> {
        if self
            .own_id
            .as_deref()
            .is_some_and(|id| c.id.starts_with(id) || id.starts_with(&c.id))
        {
            return Some("it is lookout's own container".into());
        }
        if c.labels
            .get(OPT_OUT)
            .is_some_and(|v| v == "off" || v == "false")
        {
            return Some(format!("it is labelled {OPT_OUT}=off"));
        }
        let req = self.cfg().require_label;
        if !req.is_empty() {
            let ok = match req.split_once('=') {
                Some((k, v)) => c.labels.get(k).is_some_and(|x| x == v),
                None => c.labels.contains_key(&req),
            };
            if !ok {
                return Some(format!("it lacks the label {req} (actions.require_label)"));
            }
        }
        None
    }

    /// Take one unit of the host-wide budget, if any is left.
    fn take_budget(&self) -> bool {
        let max = self.cfg().max_per_minute as usize;
        let mut st = self.st();
        let now = Instant::now();
        while st
            .budget
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            st.budget.pop_front();
        }
        if st.budget.len() >= max {
            return false;
        }
        st.budget.push_back(now);
        true
    }

    fn say(&self, rule: &Alert, container: &str, action: &str, severity: &str, summary: String) {
        let labels: BTreeMap<String, String> = [
            ("alertname", "LookoutAction"),
            ("severity", severity),
            ("name", container),
            ("action", action),
            ("rule", rule.alertname.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let annotations = [("summary".to_string(), summary)].into_iter().collect();
        let _ = self.announce.send(Announcement {
            labels,
            annotations,
            notify: rule.notify.clone(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        rule: &str,
        container: &str,
        action: &str,
        outcome: &str,
        attempt: u32,
        error: &str,
        detail: String,
        seconds: Option<f64>,
    ) {
        self.audit.record(
            Record {
                time: crate::notify::rfc3339(crate::now_unix()),
                rule: rule.to_string(),
                container: container.to_string(),
                action: action.to_string(),
                outcome: outcome.to_string(),
                attempt,
                error: error.to_string(),
                detail,
                evaluations: 0,
                decided_after_s: None,
            },
            seconds,
        );
    }

    /// The budget refused an action: counted, announced once a minute at most.
    fn over_budget(&self, alert: &Alert, container: &str, action: &str) {
        let max = self.cfg().max_per_minute;
        self.record(
            &rule_key(alert),
            container,
            action,
            "skipped",
            0,
            "host-wide action budget spent",
            format!("not {action} {container}: the budget of {max} actions a minute is spent"),
            None,
        );
        let announce = {
            let mut st = self.st();
            let now = Instant::now();
            let due = st
                .budget_announced
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60));
            if due {
                st.budget_announced = Some(now);
            }
            due
        };
        if announce {
            self.say(
                alert,
                container,
                action,
                "warning",
                format!(
                    "action budget spent ({max} a minute): {action} of {container} and others wait"
                ),
            );
        }
    }

    /// A restart, if due (the alert's streak reached `after`, the backoff passed, attempts
    /// left); the work itself runs in its own task.
    fn consider_restart(self: &Arc<Self>, alert: &Alert, spec: &Restart, now: f64) {
        if alert.streak < spec.after {
            return;
        }
        let Some(name) = alert.labels.get("name").cloned() else {
            return;
        };
        let Some(c) = self.container(&name) else {
            return;
        };
        if let Some(why) = self.refused(&c) {
            tracing::debug!(container = %name, reason = %why, "no action");
            return;
        }
        let attempt = {
            let mut st = self.st();
            if st.busy.contains(&name) {
                return;
            }
            let r = st.restarts.entry(name.clone()).or_default();
            r.max_attempts = spec.max_attempts;
            r.window = spec.window.as_secs_f64();
            r.attempts.retain(|t| *t > now - spec.window.as_secs_f64());
            if let Some(until) = r.exhausted_until {
                if until > now {
                    return;
                }
                r.exhausted_until = None;
            }
            if now < r.next_allowed {
                return;
            }
            if r.attempts.len() as u32 >= spec.max_attempts {
                let until = r.attempts.first().copied().unwrap_or(now) + spec.window.as_secs_f64();
                r.exhausted_until = Some(until);
                drop(st);
                let msg = format!(
                    "failover exhausted for {name}: {} restarts within {}; lookout leaves it alone until {} or POST /api/v1/actions/reset",
                    spec.max_attempts,
                    crate::config::format_duration(spec.window),
                    crate::notify::rfc3339(until)
                );
                self.record(
                    &rule_key(alert),
                    &name,
                    "restart",
                    "exhausted",
                    spec.max_attempts,
                    "",
                    msg.clone(),
                    None,
                );
                self.say(alert, &name, "restart", "critical", msg);
                return;
            }
            r.attempts.len() as u32 + 1
        };
        if !self.take_budget() {
            self.over_budget(alert, &name, "restart");
            return;
        }
        {
            let mut st = self.st();
            st.busy.insert(name.clone());
            let r = st.restarts.entry(name.clone()).or_default();
            r.attempts.push(now);
            let backoff = spec.cooldown.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
            r.next_allowed = now + backoff;
        }
        let me = self.clone();
        let alert = alert.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            me.do_restart(&alert, &c, &spec, attempt, now).await;
            me.st().busy.remove(&c.name);
        });
    }

    async fn do_restart(
        &self,
        alert: &Alert,
        c: &ContainerInfo,
        spec: &Restart,
        attempt: u32,
        decided: f64,
    ) {
        let rule = rule_key(alert);
        let of = format!("(attempt {attempt}/{})", spec.max_attempts);
        if self.dry_run() {
            let msg = format!("dry run: would restart {} {of}", c.name);
            self.record(
                &rule,
                &c.name,
                "restart",
                "dry_run",
                attempt,
                "",
                msg.clone(),
                None,
            );
            self.say(alert, &c.name, "restart", "warning", msg);
            return;
        }
        let decided_after = (crate::now_unix() - decided).max(0.0);
        let start = Instant::now();
        let r = self.runtime.restart(&c.id, spec.timeout).await;
        let took = start.elapsed().as_secs_f64();
        let (outcome, error, msg, severity) = match r {
            Ok(()) => (
                "success",
                String::new(),
                format!("restarted {} {of}", c.name),
                "warning",
            ),
            Err(e) => (
                "failure",
                e.to_string(),
                format!("could not restart {} {of}: {e}", c.name),
                "critical",
            ),
        };
        self.audit.record(
            Record {
                time: crate::notify::rfc3339(crate::now_unix()),
                rule,
                container: c.name.clone(),
                action: "restart".into(),
                outcome: outcome.into(),
                attempt,
                error,
                detail: msg.clone(),
                evaluations: alert.streak,
                decided_after_s: Some(decided_after),
            },
            Some(took),
        );
        self.say(alert, &c.name, "restart", severity, msg);
    }

    /// Start the standby once per firing episode of the primary.
    fn consider_standby(self: &Arc<Self>, alert: &Alert, spec: &StartStandby, now: f64) {
        if alert.streak < spec.after.saturating_sub(1) {
            return;
        }
        let primary = alert.labels.get("name").cloned().unwrap_or_default();
        let key = (rule_key(alert), primary.clone());
        let episode = alert.fired_at.unwrap_or(alert.active_at);
        {
            let mut st = self.st();
            if st.standbys.get(&key) == Some(&episode) {
                return;
            }
            st.standbys.insert(key.clone(), episode);
            st.standby_stops.remove(&key);
        }
        if let Some(c) = self.container(&spec.standby) {
            if let Some(why) = self.refused(&c) {
                self.record(
                    &key.0,
                    &spec.standby,
                    "start_standby",
                    "skipped",
                    0,
                    &why,
                    format!("not starting {}: {why}", spec.standby),
                    None,
                );
                return;
            }
        }
        if !self.take_budget() {
            self.over_budget(alert, &spec.standby, "start_standby");
            self.st().standbys.remove(&key);
            return;
        }
        let me = self.clone();
        let alert = alert.clone();
        let spec = spec.clone();
        let _ = now;
        tokio::spawn(async move {
            let rule = rule_key(&alert);
            if me.dry_run() {
                let msg = format!(
                    "dry run: would start the standby {} for {primary}",
                    spec.standby
                );
                me.record(
                    &rule,
                    &spec.standby,
                    "start_standby",
                    "dry_run",
                    0,
                    "",
                    msg.clone(),
                    None,
                );
                me.say(&alert, &spec.standby, "start_standby", "warning", msg);
                return;
            }
            let start = Instant::now();
            match me.runtime.start(&spec.standby).await {
                Ok(()) => {
                    let msg = format!("started the standby {} for {primary}", spec.standby);
                    me.record(
                        &rule,
                        &spec.standby,
                        "start_standby",
                        "success",
                        0,
                        "",
                        msg.clone(),
                        Some(start.elapsed().as_secs_f64()),
                    );
                    me.say(&alert, &spec.standby, "start_standby", "warning", msg);
                }
                Err(e) => {
                    let msg = format!(
                        "could not start the standby {} for {primary}: {e}",
                        spec.standby
                    );
                    me.record(
                        &rule,
                        &spec.standby,
                        "start_standby",
                        "failure",
                        0,
                        &e.to_string(),
                        msg.clone(),
                        Some(start.elapsed().as_secs_f64()),
                    );
                    me.say(&alert, &spec.standby, "start_standby", "critical", msg);
                }
            }
        });
    }

    /// The primary's alert resolved: stop the standby once it has stayed resolved for `for`.
    fn standby_resolved(&self, alert: &Alert, spec: &StartStandby, now: f64) {
        if !spec.stop_on_resolve {
            return;
        }
        let primary = alert.labels.get("name").cloned().unwrap_or_default();
        let key = (rule_key(alert), primary);
        let mut st = self.st();
        if st.standbys.remove(&key).is_some() {
            st.standby_stops.insert(
                key,
                (
                    now + spec.for_.as_secs_f64(),
                    spec.standby.clone(),
                    Duration::from_secs(10),
                ),
            );
        }
    }

    /// Stop the standbys whose primary has been healthy long enough.
    fn due_standby_stops(self: &Arc<Self>, alert_for: &HashMap<(String, String), Alert>, now: f64) {
        let due: Vec<((String, String), String)> = {
            let mut st = self.st();
            let keys: Vec<(String, String)> = st
                .standby_stops
                .iter()
                .filter(|(_, (at, ..))| *at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| st.standby_stops.remove(&k).map(|(_, s, _)| (k, s)))
                .collect()
        };
        for ((rule, primary), standby) in due {
            let me = self.clone();
            let alert = alert_for.get(&(rule.clone(), primary.clone())).cloned();
            tokio::spawn(async move {
                if me.dry_run() {
                    let msg = format!(
                        "dry run: would stop the standby {standby}: {primary} is healthy again"
                    );
                    me.record(&rule, &standby, "stop_standby", "dry_run", 0, "", msg, None);
                    return;
                }
                let start = Instant::now();
                let r = me.runtime.stop(&standby, Duration::from_secs(10)).await;
                let (outcome, err) = match &r {
                    Ok(()) => ("success", String::new()),
                    Err(e) => ("failure", e.to_string()),
                };
                let msg = match &r {
                    Ok(()) => format!("stopped the standby {standby}: {primary} is healthy again"),
                    Err(e) => format!("could not stop the standby {standby}: {e}"),
                };
                me.record(
                    &rule,
                    &standby,
                    "stop_standby",
                    outcome,
                    0,
                    &err,
                    msg.clone(),
                    Some(start.elapsed().as_secs_f64()),
                );
                if let Some(a) = alert {
                    me.say(&a, &standby, "stop_standby", "info", msg);
                }
            });
        }
    }

    /// Scale the service of a firing alert up one step (within max, after the cooldown).
    fn consider_scale_up(self: &Arc<Self>, alert: &Alert, spec: &Scale, now: f64) {
        if alert.streak < spec.after {
            return;
        }
        let Some(name) = alert.labels.get("name").cloned() else {
            return;
        };
        {
            let mut st = self.st();
            if st
                .scaled_at
                .get(&spec.service)
                .is_some_and(|t| now - t < spec.cooldown.as_secs_f64())
            {
                return;
            }
            if st.busy.contains(&format!("service:{}", spec.service)) {
                return;
            }
            st.busy.insert(format!("service:{}", spec.service));
            st.scaled_at.insert(spec.service.clone(), now);
        }
        let me = self.clone();
        let alert = alert.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            me.scale(&alert, &name, &spec, true).await;
            me.st().busy.remove(&format!("service:{}", spec.service));
        });
    }

    /// Scale down one step when every replica of the service has read under
    /// `scale_down_below` for `scale_down_for`.
    fn consider_scale_down(
        self: &Arc<Self>,
        rule: &str,
        spec: &Scale,
        samples: &[&Sample],
        now: f64,
    ) {
        let Some(below) = spec.scale_down_below else {
            return;
        };
        let replicas: Vec<&&Sample> = samples
            .iter()
            .filter(|s| {
                self.container(&s.target)
                    .is_some_and(|c| service_of(&c).as_deref() == Some(spec.service.as_str()))
            })
            .collect();
        let key = (rule.to_string(), spec.service.clone());
        let calm =
            !replicas.is_empty() && replicas.iter().all(|s| s.value.is_some_and(|v| v < below));
        let since = {
            let mut st = self.st();
            if !calm {
                st.calm_since.remove(&key);
                return;
            }
            *st.calm_since.entry(key.clone()).or_insert(now)
        };
        if now - since < spec.scale_down_for.as_secs_f64() {
            return;
        }
        let Some(any) = replicas.first().map(|s| s.target.clone()) else {
            return;
        };
        {
            let mut st = self.st();
            if st
                .scaled_at
                .get(&spec.service)
                .is_some_and(|t| now - t < spec.cooldown.as_secs_f64())
            {
                return;
            }
            if !st.busy.insert(format!("service:{}", spec.service)) {
                return;
            }
            st.scaled_at.insert(spec.service.clone(), now);
            // The calm has to last again before the next step.
            st.calm_since.insert(key, now);
        }
        let me = self.clone();
        let spec = spec.clone();
        let rule = rule.to_string();
        tokio::spawn(async move {
            let alert = pseudo_alert(&rule);
            me.scale(&alert, &any, &spec, false).await;
            me.st().busy.remove(&format!("service:{}", spec.service));
        });
    }

    /// One scaling step: a Swarm service through its replica count (on the leader only), a
    /// Compose or plain service by cloning its container, or removing lookout's newest clone.
    async fn scale(&self, alert: &Alert, member: &str, spec: &Scale, up: bool) {
        let rule = rule_key(alert);
        let action = if up { "scale_up" } else { "scale_down" };
        let start = Instant::now();
        // Swarm first: a service of that name.
        match self.runtime.service(&spec.service).await {
            Ok(Some(svc)) => {
                match self.runtime.swarm_leader().await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::debug!(service = %spec.service, "not the swarm leader: leaving service scaling to it");
                        return;
                    }
                    Err(e) => {
                        self.record(
                            &rule,
                            &spec.service,
                            action,
                            "failure",
                            0,
                            &e.to_string(),
                            format!("cannot tell the swarm leader: {e}"),
                            None,
                        );
                        return;
                    }
                }
                let Some(now_n) = svc.replicas else {
                    self.record(
                        &rule,
                        &spec.service,
                        action,
                        "skipped",
                        0,
                        "a global service has no replica count",
                        String::new(),
                        None,
                    );
                    return;
                };
                let target = if up {
                    (now_n + spec.step as u64).min(spec.max as u64)
                } else {
                    now_n.saturating_sub(spec.step as u64).max(spec.min as u64)
                };
                if target == now_n {
                    return;
                }
                let msg = format!(
                    "scaled the service {} from {now_n} to {target} replicas",
                    spec.service
                );
                if !self.may_scale(alert, &spec.service, action, &msg) {
                    return;
                }
                let r = self.runtime.scale_service(&svc, target).await;
                self.finish(alert, &spec.service, action, r.map(|_| msg), start);
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "no swarm service lookup"),
        }
        // Compose or plain Docker: the service's containers.
        let Some(m) = self.container(member) else {
            return;
        };
        let project = m.labels.get("com.docker.compose.project").cloned();
        let members: Vec<ContainerInfo> = self
            .docker
            .view()
            .iter()
            .filter(|c| service_of(c).as_deref() == Some(spec.service.as_str()))
            .filter(|c| c.labels.get("com.docker.compose.project") == project.as_ref())
            .filter(|c| c.is_running())
            .cloned()
            .collect();
        let n = members.len() as u32;
        if up {
            if n >= spec.max {
                return;
            }
            let Some(source) = members
                .iter()
                .find(|c| !c.labels.contains_key(CLONE_LABEL))
                .or(members.first())
            else {
                return;
            };
            let numbers: Vec<u32> = self
                .docker
                .view()
                .iter()
                .filter(|c| service_of(c).as_deref() == Some(spec.service.as_str()))
                .filter_map(|c| {
                    c.labels
                        .get("com.docker.compose.container-number")?
                        .parse()
                        .ok()
                })
                .collect();
            let next = numbers.iter().max().copied().unwrap_or(1) + 1;
            let name = clone_name(&source.name, project.as_deref(), &spec.service, next);
            let mut labels = BTreeMap::new();
            labels.insert(CLONE_LABEL.to_string(), "true".to_string());
            labels.insert(
                "com.docker.compose.container-number".into(),
                next.to_string(),
            );
            if source.labels.contains_key("com.docker.compose.project") {
                labels.insert("com.docker.compose.oneoff".into(), "False".into());
            }
            let msg = format!(
                "scaled {} up: started {name} ({} → {} replicas)",
                spec.service,
                n,
                n + 1
            );
            if !self.may_scale(alert, &name, action, &msg) {
                return;
            }
            let r = self
                .runtime
                .clone_container(&source.id, &name, &labels)
                .await;
            self.finish(alert, &name, action, r.map(|_| msg), start);
        } else {
            if n <= spec.min {
                return;
            }
            // Only lookout's clones, newest first.
            let mut clones: Vec<&ContainerInfo> = members
                .iter()
                .filter(|c| c.labels.contains_key(CLONE_LABEL))
                .collect();
            clones.sort_by(|a, b| {
                b.created_at
                    .unwrap_or(0.0)
                    .total_cmp(&a.created_at.unwrap_or(0.0))
            });
            let Some(victim) = clones.first() else {
                return;
            };
            let msg = format!(
                "scaled {} down: removed {} ({} → {} replicas)",
                spec.service,
                victim.name,
                n,
                n - 1
            );
            if !self.may_scale(alert, &victim.name, action, &msg) {
                return;
            }
            let r = self.runtime.remove(&victim.id).await;
            self.finish(alert, &victim.name, action, r.map(|_| msg), start);
        }
    }

    /// A scaling step may go ahead: not in a dry run (recorded and announced instead) and
    /// within the host-wide budget.
    fn may_scale(&self, alert: &Alert, target: &str, action: &str, msg: &str) -> bool {
        if self.dry_run() {
            let msg = format!("dry run: would have {msg}");
            self.record(
                &rule_key(alert),
                target,
                action,
                "dry_run",
                0,
                "",
                msg.clone(),
                None,
            );
            self.say(alert, target, action, "info", msg);
            return false;
        }
        if !self.take_budget() {
            self.over_budget(alert, target, action);
            return false;
        }
        true
    }

    fn finish(
        &self,
        alert: &Alert,
        target: &str,
        action: &str,
        r: Result<String, crate::docker_api::DockerError>,
        start: Instant,
    ) {
        let took = Some(start.elapsed().as_secs_f64());
        match r {
            Ok(msg) => {
                self.record(
                    &rule_key(alert),
                    target,
                    action,
                    "success",
                    0,
                    "",
                    msg.clone(),
                    took,
                );
                self.say(alert, target, action, "info", msg);
            }
            Err(e) => {
                let msg = format!("{action} of {target} failed: {e}");
                self.record(
                    &rule_key(alert),
                    target,
                    action,
                    "failure",
                    0,
                    &e.to_string(),
                    msg.clone(),
                    took,
                );
                self.say(alert, target, action, "critical", msg);
            }
        }
    }

    /// POST the action to the user's own automation.
    fn webhook(self: &Arc<Self>, alert: &Alert, url: &str, status: &str) {
        let me = self.clone();
        let alert = alert.clone();
        let url = url.to_string();
        let status = status.to_string();
        tokio::spawn(async move {
            let body = serde_json::json!({
                "rule": alert.alertname,
                "group": alert.group,
                "status": status,
                "labels": &*alert.labels,
                "annotations": &*alert.annotations,
                "container": alert.labels.get("name"),
                "dry_run": me.dry_run(),
                "time": crate::notify::rfc3339(crate::now_unix()),
            });
            let target = alert.labels.get("name").cloned().unwrap_or_default();
            if me.dry_run() {
                me.record(
                    &rule_key(&alert),
                    &target,
                    "webhook",
                    "dry_run",
                    0,
                    "",
                    "dry run: would call the action webhook".into(),
                    None,
                );
                return;
            }
            let start = Instant::now();
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default();
            let r = client.post(&url).json(&body).send().await;
            let (outcome, err) = match r {
                Ok(resp) if resp.status().is_success() => ("success", String::new()),
                Ok(resp) => ("failure", format!("the webhook answered {}", resp.status())),
                Err(e) => ("failure", e.without_url().to_string()),
            };
            me.record(
                &rule_key(&alert),
                &target,
                "webhook",
                outcome,
                0,
                &err,
                format!("action webhook for {target}: {outcome}"),
                Some(start.elapsed().as_secs_f64()),
            );
        });
    }

    /// A person asked for an action on a container (guardrails but the budget apply).
    pub async fn manual(&self, name: &str, what: Manual) -> Result<String, String> {
        let c = self
            .container(name)
            .ok_or_else(|| format!("no watched container named {name:?}"))?;
        if let Some(why) = self.refused(&c) {
            return Err(format!("lookout does not act on {name}: {why}"));
        }
        if !self.st().busy.insert(name.to_string()) {
            return Err(format!("an action on {name} is under way"));
        }
        let action = what.as_str();
        let start = Instant::now();
        let r = if self.dry_run() {
            Ok(())
        } else {
            match what {
                Manual::Restart => self.runtime.restart(&c.id, Duration::from_secs(10)).await,
                Manual::Start => self.runtime.start(&c.id).await,
                Manual::Stop => self.runtime.stop(&c.id, Duration::from_secs(10)).await,
            }
        };
        self.st().busy.remove(name);
        let took = Some(start.elapsed().as_secs_f64());
        match r {
            Ok(()) => {
                let (outcome, msg) = if self.dry_run() {
                    (
                        "dry_run",
                        format!("dry run: would {action} {name} (asked by a person)"),
                    )
                } else {
                    (
                        "success",
                        format!("{action} of {name} done (asked by a person)"),
                    )
                };
                self.record("manual", name, action, outcome, 0, "", msg.clone(), took);
                Ok(msg)
            }
            Err(e) => {
                let msg = format!("{action} of {name} failed: {e}");
                self.record(
                    "manual",
                    name,
                    action,
                    "failure",
                    0,
                    &e.to_string(),
                    msg.clone(),
                    took,
                );
                Err(msg)
            }
        }
    }
}

fn rule_key(a: &Alert) -> String {
    format!("{}/{}", a.group, a.alertname)
}

fn pseudo_alert(rule: &str) -> Alert {
    let (group, name) = rule.split_once('/').unwrap_or(("", rule));
    Alert {
        labels: Arc::default(),
        annotations: Arc::default(),
        state: "inactive",
        active_at: 0.0,
        fired_at: None,
        value: None,
        group: group.to_string(),
        alertname: name.to_string(),
        severity: "info",
        notify: Vec::new(),
        context_logs: 0,
        streak: 0,
        actions: Arc::default(),
    }
}

/// The service a container belongs to: Compose's label, or Swarm's.
fn service_of(c: &ContainerInfo) -> Option<String> {
    c.labels
        .get("com.docker.compose.service")
        .or_else(|| c.labels.get("com.docker.swarm.service.name"))
        .cloned()
}

/// A replica's name after the source's pattern: Compose v1 `project_service_N`, v2
/// `project-service-N`, else `service-N`.
pub fn clone_name(source: &str, project: Option<&str>, service: &str, n: u32) -> String {
    if let Some(p) = project {
        if source.starts_with(&format!("{p}-{service}-")) {
            return format!("{p}-{service}-{n}");
        }
        return format!("{p}_{service}_{n}");
    }
    format!("{service}-{n}")
}

/// lookout's own container id, from its cgroup (none outside a container).
pub fn own_container_id(procfs: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(procfs.join("self/cgroup")).ok()?;
    for line in text.lines() {
        for part in line.rsplit(['/', '-', ':']) {
            let id = part.trim_end_matches(".scope");
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(id.to_string());
            }
        }
    }
    None
}

/// The task.
pub struct ActTask {
    pub deliveries: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    pub config: watch::Receiver<Arc<Config>>,
    pub handle: Arc<Handle>,
}

impl ActTask {
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut rx = self.deliveries.lock().await;
        let mut config = self.config.clone();
        let h = &self.handle;
        // The alerts of the last tick, by (rule, container), for announcing standby stops.
        let mut last: HashMap<(String, String), Alert> = HashMap::new();
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                c = config.changed() => {
                    if c.is_err() {
                        return;
                    }
                    let a = config.borrow_and_update().actions.clone();
                    *h.config.lock().unwrap_or_else(|p| p.into_inner()) = a;
                }
                d = rx.recv() => {
                    let Some(d) = d else { return };
                    if !h.enabled() {
                        continue;
                    }
                    let now = crate::now_unix();
                    match d {
                        Delivery::Sync { .. } => {}
                        Delivery::Transition(ev) => {
                            for spec in ev.alert.actions.iter() {
                                match (spec, &ev.transition) {
                                    (ActionSpec::StartStandby(s), Transition::Firing { .. }) => h.consider_standby(&ev.alert, s, now),
                                    (ActionSpec::StartStandby(s), Transition::Resolved { .. }) => h.standby_resolved(&ev.alert, s, now),
                                    (ActionSpec::Webhook(w), Transition::Firing { .. }) if w.after <= 1 => h.webhook(&ev.alert, &w.url, "firing"),
                                    (ActionSpec::Webhook(w), Transition::Resolved { .. }) => h.webhook(&ev.alert, &w.url, "resolved"),
                                    _ => {}
                                }
                            }
                        }
                        Delivery::Tick { at, alerts, samples } => {
                            // Decisions are dated by the evaluation that made them.
                            let now = if at > 0.0 { at.min(now) } else { now };
                            last.clear();
                            let mut scale_rules: BTreeMap<String, Vec<Scale>> = BTreeMap::new();
                            for a in &alerts {
                                last.insert((rule_key(a), a.labels.get("name").cloned().unwrap_or_default()), a.clone());
                                for spec in a.actions.iter() {
                                    if let ActionSpec::Scale(s) = spec {
                                        scale_rules.entry(rule_key(a)).or_default().push(s.clone());
                                    }
                                    if a.state != "firing" {
                                        continue;
                                    }
                                    match spec {
                                        ActionSpec::Restart(r) => h.consider_restart(a, r, now),
                                        ActionSpec::StartStandby(s) if s.after > 1 => h.consider_standby(a, s, now),
                                        ActionSpec::Scale(s) => h.consider_scale_up(a, s, now),
                                        _ => {}
                                    }
                                }
                            }
                            // Scale down: rules with a scale action, from their readings.
                            let mut by_rule: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
                            for s in &samples {
                                by_rule.entry(s.rule.as_str()).or_default().push(s);
                            }
                            let cfg = self.config.borrow().clone();
                            for (rule, ss) in by_rule {
                                let firing = alerts.iter().any(|a| rule_key(a) == rule && a.state == "firing");
                                if firing {
                                    continue;
                                }
                                for spec in scale_specs(&cfg, rule, &scale_rules) {
                                    h.consider_scale_down(rule, &spec, &ss, now);
                                }
                            }
                            h.due_standby_stops(&last, now);
                        }
                    }
                }
            }
        }
    }
}

/// The scale actions of a rule (from the tick's alerts, else from the loaded rules).
fn scale_specs(cfg: &Config, rule: &str, seen: &BTreeMap<String, Vec<Scale>>) -> Vec<Scale> {
    if let Some(s) = seen.get(rule) {
        return s.clone();
    }
    crate::engine::rule::load_for(cfg)
        .map(|l| {
            l.rules
                .iter()
                .filter(|r| format!("{}/{}", r.group, r.alert) == rule)
                .flat_map(|r| r.actions.iter())
                .filter_map(|a| match a {
                    ActionSpec::Scale(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_names_follow_the_source() {
        assert_eq!(
            clone_name("proj_web_1", Some("proj"), "web", 2),
            "proj_web_2"
        );
        assert_eq!(
            clone_name("proj-web-1", Some("proj"), "web", 3),
            "proj-web-3"
        );
        assert_eq!(clone_name("web", None, "web", 2), "web-2");
    }

    #[test]
    fn finds_its_own_container_in_its_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        let id = "a".repeat(64);
        std::fs::write(
            dir.path().join("self/cgroup"),
            format!("12:memory:/docker/{id}\n"),
        )
        .unwrap();
        assert_eq!(own_container_id(dir.path()), Some(id.clone()));
        std::fs::write(
            dir.path().join("self/cgroup"),
            format!("0::/system.slice/docker-{id}.scope\n"),
        )
        .unwrap();
        assert_eq!(own_container_id(dir.path()), Some(id));
        std::fs::write(
            dir.path().join("self/cgroup"),
            "0::/user.slice/session-2.scope\n",
        )
        .unwrap();
        assert_eq!(own_container_id(dir.path()), None);
    }
}
