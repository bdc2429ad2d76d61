//! lookout's status besides the snapshot: the rule engine's series (`lookout_alerts`, in
//! Prometheus's `ALERTS` shape, and rule evaluation facts), whether the last config reload
//! worked, and its tasks (encoded with the self-metrics).

use std::sync::Arc;

use super::{push_label, Encoder, Kind};
use crate::engine::View;

/// The engine's state, the reload outcome and the tasks' health, published with each snapshot.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub view: Arc<View>,
    /// Whether the last reload (SIGHUP or `POST /-/reload`) loaded; true at start.
    pub reload_successful: bool,
    /// Unix time of the last successful (re)load.
    pub reload_success_at: f64,
    /// lookout's supervised tasks.
    pub tasks: Vec<crate::supervise::TaskStatus>,
    /// The notifier's receivers.
    pub receivers: std::collections::BTreeMap<String, crate::notify::stats::ReceiverStats>,
    /// The failover actions' figures; None when actions do not run.
    pub actions: Option<ActionFigures>,
}

/// `lookout_actions_*`, as published with a snapshot.
#[derive(Debug, Clone, Default)]
pub struct ActionFigures {
    pub enabled: bool,
    pub dry_run: bool,
    /// (action, outcome) → count.
    pub counts: std::collections::BTreeMap<(String, String), u64>,
    /// action → (cumulative buckets, sum, count).
    pub durations: Vec<(String, Vec<u64>, f64, u64)>,
    /// Containers given up on now.
    pub exhausted: usize,
}

pub(super) fn encode(enc: &mut Encoder, s: &Status) {
    let v = &s.view;
    enc.family(
        "lookout_alerts",
        "Alerts that are pending or firing, one series per alert with its labels (Prometheus's ALERTS).",
        Kind::Gauge,
    );
    let mut labels = String::with_capacity(256);
    for a in &v.alerts {
        labels.clear();
        push_label(&mut labels, "alertname", &a.alertname);
        labels.push(',');
        push_label(&mut labels, "alertstate", a.state);
        for (k, val) in a.labels.iter().filter(|(k, _)| k.as_str() != "alertname") {
            labels.push(',');
            push_label(&mut labels, k, val);
        }
        enc.sample("lookout_alerts", &labels, &[], 1.0);
    }
    enc.single(
        "lookout_rules_loaded",
        "Alert rules loaded.",
        Kind::Gauge,
        v.rules.len() as f64,
    );
    enc.single(
        "lookout_rule_evaluation_duration_seconds",
        "How long the last evaluation of all rules took.",
        Kind::Gauge,
        v.evaluation_seconds,
    );
    enc.family(
        "lookout_rule_evaluation_failures_total",
        "Evaluations of a rule that failed on at least one target.",
        Kind::Counter,
    );
    for r in &v.rules {
        enc.sample(
            "lookout_rule_evaluation_failures_total",
            "",
            &[("group", &r.group), ("rule", &r.name)],
            r.failures_total as f64,
        );
    }
    enc.single(
        "lookout_config_last_reload_successful",
        "Whether the last configuration and rules reload succeeded (1) or kept the old set (0).",
        Kind::Gauge,
        if s.reload_successful { 1.0 } else { 0.0 },
    );
    enc.single(
        "lookout_config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful configuration and rules load.",
        Kind::Gauge,
        s.reload_success_at,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Alert, RuleStatus};
    use crate::exposition::Format;
    use std::collections::BTreeMap;

    #[test]
    fn alerts_in_the_alerts_shape() {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "ContainerDown".to_string());
        labels.insert("name".to_string(), "web \"1\"".to_string());
        labels.insert("severity".to_string(), "critical".to_string());
        let view = View {
            alerts: vec![Alert {
                labels: Arc::new(labels),
                annotations: Arc::default(),
                state: "firing",
                active_at: 1.0,
                fired_at: Some(1.0),
                value: None,
                group: "g".into(),
                alertname: "ContainerDown".into(),
                severity: "critical",
                notify: vec![],
                context_logs: 0,
                streak: 0,
                actions: Default::default(),
            }],
            rules: vec![RuleStatus {
                group: "g".into(),
                name: "ContainerDown".into(),
                file: "f".into(),
                scope: "container",
                query: "x".into(),
                resolve: None,
                duration: 0.0,
                keep_firing_for: 0.0,
                severity: "critical",
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                notify: vec![],
                context_logs: 0,
                health: "ok",
                last_error: String::new(),
                last_evaluation: Some(1.0),
                failures_total: 2,
                active: 1,
            }],
            evaluation_seconds: 0.25,
        };
        let s = Status {
            view: Arc::new(view),
            reload_successful: false,
            reload_success_at: 100.0,
            tasks: vec![],
            receivers: Default::default(),
            actions: None,
        };
        let mut enc = Encoder::new(0);
        encode(&mut enc, &s);
        let out = enc.into_string(Format::Text);
        assert!(out.contains(
            "lookout_alerts{alertname=\"ContainerDown\",alertstate=\"firing\",name=\"web \\\"1\\\"\",severity=\"critical\"} 1\n"
        ), "{out}");
        assert!(out.contains("lookout_rules_loaded 1\n"));
        assert!(out.contains("lookout_rule_evaluation_duration_seconds 0.25\n"));
        assert!(out.contains(
            "lookout_rule_evaluation_failures_total{group=\"g\",rule=\"ContainerDown\"} 2\n"
        ));
        assert!(out.contains("lookout_config_last_reload_successful 0\n"));
        assert!(out.contains("lookout_config_last_reload_success_timestamp_seconds 100\n"));
    }
}
