//! The engine through time: evaluation, vanishing targets, events, persistence and reload.

use super::*;
use crate::snapshot::{CollectorStatus, Container, ContainerInfo, Derived, State};
use crate::state_dir::StateDir;

const RULES: &str = r#"groups:
  - name: g
    rules:
      - alert: HighCpu
        scope: container
        expr: cpu_percent > 80
        for: 2m
        labels: {team: ops}
        annotations:
          summary: "{{ name }} at {{ cpu_percent | round(0) }}%"
        notify: [discord]
        context: {logs: 20}
      - alert: Down
        scope: container
        expr: state == "exited" && exit_code != 0
        severity: critical
      - alert: DiskFull
        scope: filesystem
        expr: used_percent > 80
"#;

fn rules(text: &str) -> Vec<Rule> {
    rule::load(&[rule::Source {
        name: "t.yml".into(),
        text: text.into(),
    }])
    .unwrap()
    .rules
}

fn container(name: &str, cpu: Option<f64>, state: State, exit_code: i64) -> Container {
    Container {
        info: ContainerInfo {
            id: format!("{name}-id"),
            name: name.into(),
            image: "img".into(),
            state,
            exit_code,
            ..Default::default()
        },
        stats: None,
        derived: Derived {
            cpu_percent: cpu,
            ..Default::default()
        },
    }
}

fn target(c: &Container) -> Target {
    vars::container_target(
        c,
        &crate::snapshot::LabelAllowlist::default(),
        &vars::LogFacts::default(),
        false,
    )
}

fn running(name: &str, cpu: f64) -> Target {
    target(&container(name, Some(cpu), State::Running, 0))
}

fn names(events: &[AlertEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{}:{}:{}",
                e.alert.alertname,
                e.alert.labels["name"],
                e.transition.as_str()
            )
        })
        .collect()
}

const C: &[Scope] = &[Scope::Container];

#[test]
fn fires_after_for_and_resolves() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    assert!(e
        .evaluate_targets(vec![running("web", 50.0)], C, 0.0)
        .is_empty());
    assert_eq!(
        names(&e.evaluate_targets(vec![running("web", 90.0)], C, 10.0)),
        ["HighCpu:web:pending"]
    );
    assert!(e
        .evaluate_targets(vec![running("web", 95.0)], C, 70.0)
        .is_empty());
    let ev = e.evaluate_targets(vec![running("web", 95.0)], C, 130.0);
    assert_eq!(names(&ev), ["HighCpu:web:firing"]);
    let a = &ev[0].alert;
    assert_eq!(a.state, "firing");
    assert_eq!(a.active_at, 10.0);
    assert_eq!(a.fired_at, Some(130.0));
    assert_eq!(a.value.as_deref(), Some("95"));
    assert_eq!(a.annotations["summary"], "web at 95%");
    assert_eq!(a.labels["alertname"], "HighCpu");
    assert_eq!(a.labels["severity"], "warning");
    assert_eq!(a.labels["team"], "ops");
    // The container's identity labels, as its series carry them: `id` is the cgroup path.
    assert_eq!(a.labels["id"], "/docker/web-id");
    assert_eq!(a.notify, ["discord"]);
    assert_eq!(a.context_logs, 20);

    let v = e.view();
    assert_eq!(v.alerts.len(), 1);
    assert_eq!(v.alerts[0].state, "firing");
    assert_eq!(v.rules[0].active, 1);
    assert_eq!(v.rules[0].health, "ok");
    assert_eq!(v.rules[0].context_logs, 20);
    assert_eq!(v.rules[1].context_logs, 0);

    let ev = e.evaluate_targets(vec![running("web", 20.0)], C, 140.0);
    assert_eq!(names(&ev), ["HighCpu:web:resolved"]);
    assert_eq!(ev[0].alert.state, "inactive");
    assert_eq!(ev[0].alert.fired_at, Some(130.0));
    assert!(e.view().alerts.is_empty());
}

#[test]
fn a_vanished_target_resolves_but_a_missing_scope_keeps_state() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    let dead = target(&container("job", None, State::Exited, 1));
    assert_eq!(
        names(&e.evaluate_targets(vec![dead.clone()], C, 0.0)),
        ["Down:job:firing"]
    );
    // The container scope is not complete this time (its collector failed): kept.
    assert!(e.evaluate_targets(vec![], &[], 10.0).is_empty());
    assert_eq!(e.view().alerts.len(), 1);
    // Complete and without the target: it vanished.
    assert_eq!(
        names(&e.evaluate_targets(vec![running("web", 1.0)], C, 20.0)),
        ["Down:job:resolved"]
    );
}

#[test]
fn a_missing_reading_does_not_breach_and_does_not_fail() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    let stopped = target(&container("web", None, State::Exited, 0));
    assert!(e.evaluate_targets(vec![stopped], C, 0.0).is_empty());
    assert_eq!(e.view().rules[0].health, "ok");
    assert_eq!(e.view().rules[0].failures_total, 0);
}

#[test]
fn evaluation_failures_are_counted_and_keep_state() {
    let text = r#"groups:
  - name: g
    rules:
      - alert: Weird
        scope: container
        expr: str::substring(name, 0, 3) == "web" && cpu_percent / restart_count > 10
"#;
    let mut e = Engine::new(rules(text), "box", StateDir::none());
    // restart_count 0: float division by zero is +inf, no failure; breached.
    let ev = e.evaluate_targets(vec![running("web", 50.0)], C, 0.0);
    assert_eq!(names(&ev), ["Weird:web:firing"]);
    // Renamed to something shorter than the substring: evaluation fails (out of bounds), and
    // the alert keeps firing rather than resolving.
    let mut t = running("web", 50.0);
    let slot = Scope::Container
        .names()
        .names
        .iter()
        .position(|n| *n == "name")
        .unwrap();
    t.values[slot] = evalexpr::Value::String("w".into());
    assert!(e.evaluate_targets(vec![t], C, 10.0).is_empty());
    let v = e.view();
    assert_eq!(v.alerts.len(), 1);
    assert_eq!(v.rules[0].health, "err");
    assert_eq!(v.rules[0].failures_total, 1);
    assert!(
        v.rules[0].last_error.starts_with("web: "),
        "{}",
        v.rules[0].last_error
    );
    // Healthy again at the next good evaluation.
    e.evaluate_targets(vec![running("web", 50.0)], C, 20.0);
    assert_eq!(e.view().rules[0].health, "ok");
    assert_eq!(e.view().rules[0].failures_total, 1);
}

/// A snapshot with one running container whose logs are followed, last matching `line`.
fn with_log_line(name: &str, line: &str, at: f64) -> Snapshot {
    let c = container(name, Some(1.0), State::Running, 0);
    let id = c.info.id.clone();
    Snapshot {
        taken_at: at,
        containers: vec![c],
        collectors: vec![CollectorStatus::succeeded("docker")],
        logs: crate::snapshot::LogPart {
            counts: vec![crate::snapshot::LogCounts {
                container_id: id.clone(),
                stream: "stderr",
                matches: 1,
                ..Default::default()
            }],
            last_matches: vec![crate::snapshot::LastMatch {
                container_id: id,
                line: line.into(),
                at,
            }],
            invalid_patterns: vec![],
        },
        ..Default::default()
    }
}

#[test]
fn non_ascii_text_in_string_functions_neither_panics_nor_stops_evaluation() {
    let text = r#"groups:
  - name: g
    rules:
      - alert: Fatal
        scope: container
        expr: str::substring(last_log_match, 0, 3) == "ééé"
        annotations:
          summary: "{{ last_log_match }}"
      - alert: Tail
        scope: container
        expr: str::substring(last_log_match, 6, 40) == "FATAL"
"#;
    let mut e = Engine::new(rules(text), "box", StateDir::none());
    let snap = with_log_line("web", "ééééé FATAL", 100.0);
    let ev = e.evaluate(&snap, None, 100.0);
    assert_eq!(names(&ev), ["Fatal:web:firing"]);
    assert_eq!(ev[0].alert.annotations["summary"], "ééééé FATAL");
    // The out-of-range substring failed for that rule and target only, and was counted.
    let v = e.view();
    let by = |n: &str| v.rules.iter().find(|r| r.name == n).unwrap();
    assert_eq!((by("Fatal").health, by("Fatal").failures_total), ("ok", 0));
    assert_eq!((by("Tail").health, by("Tail").failures_total), ("err", 1));
    assert!(
        by("Tail").last_error.contains("out of range"),
        "{}",
        by("Tail").last_error
    );
    // Evaluation goes on, cycle after cycle.
    let snap = with_log_line("web", "ééééé FATAL", 110.0);
    assert!(e.evaluate(&snap, None, 110.0).is_empty());
    assert_eq!(e.view().rules.len(), 2);
}

#[test]
fn a_panic_in_an_expression_is_that_rules_failure() {
    let text = r#"groups:
  - name: g
    rules:
      - alert: Panics
        scope: container
        expr: test::panic(cpu_percent)
      - alert: HighCpu
        scope: container
        expr: cpu_percent > 80
"#;
    let mut e = Engine::new(rules(text), "box", StateDir::none());
    let ev = e.evaluate_targets(vec![running("web", 90.0)], C, 0.0);
    assert_eq!(names(&ev), ["HighCpu:web:firing"]);
    let v = e.view();
    let panics = v.rules.iter().find(|r| r.name == "Panics").unwrap();
    assert_eq!((panics.health, panics.failures_total), ("err", 1));
    assert!(
        panics.last_error.contains("test::panic called"),
        "{}",
        panics.last_error
    );
}

#[test]
fn one_container_on_an_event() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    e.evaluate_targets(vec![running("web", 10.0), running("db", 10.0)], C, 0.0);
    let dead = target(&container("db", None, State::Exited, 137));
    assert_eq!(
        names(&e.evaluate_container("db-id", Some(&dead), 1, 1.0)),
        ["Down:db:firing"]
    );
    // Removed: its alerts resolve; the other container is not touched.
    assert_eq!(
        names(&e.evaluate_container("db-id", None, 2, 2.0)),
        ["Down:db:resolved"]
    );
    assert!(e.evaluate_container("db-id", None, 3, 3.0).is_empty());
}

#[test]
fn a_snapshot_is_evaluated_per_present_scope() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    let mut snap = Snapshot {
        taken_at: 100.0,
        containers: vec![container("job", None, State::Exited, 2)],
        collectors: vec![CollectorStatus::succeeded("docker")],
        ..Default::default()
    };
    assert_eq!(names(&e.evaluate(&snap, None, 100.0)), ["Down:job:firing"]);
    // The docker collector fails with nothing to show: state kept.
    snap.containers.clear();
    snap.collectors[0].success = false;
    assert!(e.evaluate(&snap, None, 110.0).is_empty());
    assert_eq!(e.view().alerts.len(), 1);
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut e = Engine::new(rules(RULES), "box", StateDir::at(dir.path()));
        e.evaluate_targets(vec![running("web", 90.0)], C, 0.0);
        e.evaluate_targets(vec![running("web", 90.0)], C, 120.0); // web fires
        e.evaluate_targets(vec![running("web", 90.0), running("api", 90.0)], C, 200.0); // api pending
        e.save().unwrap();
        assert!(dir.path().join(crate::state_dir::DB_FILE).exists());
        // Nothing changed: no rewrite needed.
        assert!(!e.dirty);
    }
    let mut e = Engine::new(rules(RULES), "box", StateDir::at(dir.path()));
    let v = e.view();
    let states: Vec<(&str, &str)> = v
        .alerts
        .iter()
        .map(|a| (a.labels["name"].as_str(), a.state))
        .collect();
    assert_eq!(states, [("api", "pending"), ("web", "firing")]);
    assert_eq!(v.alerts[1].fired_at, Some(120.0));
    assert_eq!(v.alerts[1].annotations["summary"], "web at 90%");
    // Still breached after the restart: web is not announced again; api fires 2m after it
    // became pending before the restart, not 2m after the restart.
    let both = [running("web", 90.0), running("api", 90.0)];
    assert!(e.evaluate_targets(both.to_vec(), C, 300.0).is_empty());
    assert_eq!(
        names(&e.evaluate_targets(both.to_vec(), C, 320.0)),
        ["HighCpu:api:firing"]
    );

    // Corrupt state: start clean rather than fail.
    drop(e);
    StateDir::at(dir.path())
        .save(STATE_FILE, "not alert state")
        .unwrap();
    let e = Engine::new(rules(RULES), "box", StateDir::at(dir.path()));
    assert!(e.view().alerts.is_empty());
}

#[test]
fn reload_keeps_unchanged_rules_state() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    let dead = target(&container("job", None, State::Exited, 1));
    e.evaluate_targets(vec![running("web", 90.0), dead.clone()], C, 0.0);
    assert_eq!(e.view().alerts.len(), 2);
    // HighCpu gets a new `for` and annotation (same identity); Down gets a new expression.
    let changed = RULES
        .replace("for: 2m", "for: 1m")
        .replace("{{ name }} at", "{{ name }} is at")
        .replace("exit_code != 0", "exit_code > 0");
    e.reload(
        rule::load(&[rule::Source {
            name: "t.yml".into(),
            text: changed,
        }])
        .unwrap(),
    );
    let v = e.view();
    assert_eq!(v.alerts.len(), 1);
    assert_eq!(v.alerts[0].alertname, "HighCpu");
    assert_eq!(v.alerts[0].state, "pending");
    // The kept instance uses the new `for` (1m from its original start at 0).
    let ev = e.evaluate_targets(vec![running("web", 90.0), dead], C, 60.0);
    let mut n = names(&ev);
    n.sort();
    assert_eq!(n, ["Down:job:firing", "HighCpu:web:firing"]);
    let high = ev.iter().find(|x| x.alert.alertname == "HighCpu").unwrap();
    assert_eq!(high.alert.annotations["summary"], "web is at 90%");
}

#[test]
fn matchers_select_targets() {
    let text = r#"groups:
  - name: g
    rules:
      - alert: WebCpu
        scope: container
        match: {name: "web-*"}
        expr: cpu_percent > 80
"#;
    let mut e = Engine::new(rules(text), "box", StateDir::none());
    let ev = e.evaluate_targets(vec![running("web-1", 90.0), running("db-1", 90.0)], C, 0.0);
    assert_eq!(names(&ev), ["WebCpu:web-1:firing"]);
}

fn docker_ok() -> Vec<CollectorStatus> {
    vec![CollectorStatus::succeeded("docker")]
}

/// A snapshot taken at inventory generation `generation` with these containers.
fn snapshot_at(generation: u64, taken_at: f64, containers: Vec<Container>) -> Snapshot {
    Snapshot {
        taken_at,
        containers,
        collectors: docker_ok(),
        inventory_generation: generation,
        ..Default::default()
    }
}

/// The race of issue 7: a cycle's snapshot is taken with c1 running; a `die` (exit 137) is
/// evaluated through the event path, so Down fires; then that older snapshot is evaluated: it
/// must not resolve Down (and the next cycle must not fire it again).
#[test]
fn an_older_snapshot_never_reverts_an_event_driven_state() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    let before = snapshot_at(
        5,
        100.0,
        vec![container("c1", Some(10.0), State::Running, 0)],
    );
    assert!(e.evaluate(&before, None, 100.0).is_empty());
    // The die event, at inventory generation 6.
    let dead = container("c1", None, State::Exited, 137);
    assert_eq!(
        names(&e.evaluate_container("c1-id", Some(&target(&dead)), 6, 101.0)),
        ["Down:c1:firing"]
    );
    // The snapshot collected before the event is evaluated after it: no Resolved.
    assert!(e.evaluate(&before, None, 102.0).is_empty());
    assert_eq!(e.view().alerts.len(), 1);
    // The next cycle sees the exited container: still firing, no new transition.
    let after = snapshot_at(6, 110.0, vec![dead.clone()]);
    assert!(e.evaluate(&after, None, 110.0).is_empty());
    assert_eq!(e.view().alerts[0].state, "firing");
    // From then on snapshots count again: it starts and the alert resolves.
    let started = snapshot_at(
        7,
        120.0,
        vec![container("c1", Some(1.0), State::Running, 0)],
    );
    assert_eq!(
        names(&e.evaluate(&started, None, 120.0)),
        ["Down:c1:resolved"]
    );
}

/// `start` and `destroy` the other way: an older snapshot neither fires again what a start
/// resolved, nor brings back a destroyed container's alert.
#[test]
fn an_older_snapshot_does_not_flap_start_or_destroy() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    let dead = container("c1", None, State::Exited, 1);
    let old = snapshot_at(3, 100.0, vec![dead.clone()]);
    assert_eq!(names(&e.evaluate(&old, None, 100.0)), ["Down:c1:firing"]);
    // start at generation 4 resolves it...
    let up = container("c1", Some(1.0), State::Running, 0);
    assert_eq!(
        names(&e.evaluate_container("c1-id", Some(&target(&up)), 4, 101.0)),
        ["Down:c1:resolved"]
    );
    // ...and the snapshot from before the start does not fire it again.
    assert!(e.evaluate(&old, None, 102.0).is_empty());
    assert!(e.view().alerts.is_empty());

    // destroy: a dead container's alert resolves through the event and stays resolved.
    let gone = container("c2", None, State::Exited, 2);
    let s = snapshot_at(10, 200.0, vec![gone.clone()]);
    assert_eq!(names(&e.evaluate(&s, None, 200.0)), ["Down:c2:firing"]);
    assert_eq!(
        names(&e.evaluate_container("c2-id", None, 11, 201.0)),
        ["Down:c2:resolved"]
    );
    assert!(e.evaluate(&s, None, 202.0).is_empty());
    assert!(e.view().alerts.is_empty());
}

/// A firing alert whose reading is unknown holds its state: the first cycle after a restart
/// has no rate yet, and a failed cgroup read leaves one cycle without figures.
#[test]
fn an_unknown_reading_holds_a_firing_or_pending_alert() {
    let text = r#"groups:
  - name: g
    rules:
      - alert: HighCpu
        scope: container
        expr: cpu_percent > 80
        for: 1m
      - alert: Hysteresis
        scope: container
        expr: cpu_percent > 80
        resolve: cpu_percent < 70
"#;
    let mut e = Engine::new(rules(text), "box", StateDir::none());
    let unknown = || target(&container("web", None, State::Running, 0));
    e.evaluate_targets(vec![running("web", 90.0)], C, 0.0);
    e.evaluate_targets(vec![running("web", 90.0)], C, 60.0);
    let states = |e: &Engine| -> Vec<(String, &'static str)> {
        e.view()
            .alerts
            .iter()
            .map(|a| (a.alertname.clone(), a.state))
            .collect()
    };
    let firing = vec![
        ("HighCpu".to_string(), "firing"),
        ("Hysteresis".to_string(), "firing"),
    ];
    assert_eq!(states(&e), firing);
    for t in [70.0, 80.0, 90.0] {
        assert!(e.evaluate_targets(vec![unknown()], C, t).is_empty());
    }
    assert_eq!(states(&e), firing);
    // Known again and still high: nothing new; known and low: resolved.
    assert!(e
        .evaluate_targets(vec![running("web", 95.0)], C, 100.0)
        .is_empty());
    assert_eq!(
        names(&e.evaluate_targets(vec![running("web", 10.0)], C, 110.0)),
        ["HighCpu:web:resolved", "Hysteresis:web:resolved"]
    );
    // A pending one holds too, and fires once its reading is back, counted from its start.
    e.evaluate_targets(vec![running("web", 90.0)], C, 200.0);
    assert!(e.evaluate_targets(vec![unknown()], C, 230.0).is_empty());
    assert_eq!(e.view().alerts.len(), 2);
    assert_eq!(
        names(&e.evaluate_targets(vec![running("web", 90.0)], C, 260.0)),
        ["HighCpu:web:firing"]
    );
}

/// A stopped container uses no CPU: that is known (0), so its CPU alert resolves rather than
/// holding forever.
#[test]
fn a_stopped_container_reads_zero_usage() {
    let mut e = Engine::new(rules(RULES), "box", StateDir::none());
    e.evaluate_targets(vec![running("web", 90.0)], C, 0.0);
    e.evaluate_targets(vec![running("web", 90.0)], C, 120.0);
    let stopped = target(&container("web", None, State::Exited, 0));
    assert_eq!(
        stopped.get("cpu_percent"),
        Some(&evalexpr::Value::Float(0.0))
    );
    assert_eq!(
        names(&e.evaluate_targets(vec![stopped], C, 130.0)),
        ["HighCpu:web:resolved"]
    );
}

/// After a restart of lookout the first cycle has no CPU rate: the restored firing alert stays
/// firing with the same firedAt, and no transition is made.
#[test]
fn a_restored_firing_alert_holds_through_the_first_unknown_cycles() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut e = Engine::new(rules(RULES), "box", StateDir::at(dir.path()));
        e.evaluate_targets(vec![running("web", 90.0)], C, 0.0);
        e.evaluate_targets(vec![running("web", 90.0)], C, 120.0);
        e.save().unwrap();
    }
    let mut e = Engine::new(rules(RULES), "box", StateDir::at(dir.path()));
    let unknown = target(&container("web", None, State::Running, 0));
    for t in [200.0, 210.0] {
        assert!(e.evaluate_targets(vec![unknown.clone()], C, t).is_empty());
    }
    assert!(e
        .evaluate_targets(vec![running("web", 90.0)], C, 220.0)
        .is_empty());
    let v = e.view();
    assert_eq!(v.alerts.len(), 1);
    assert_eq!(v.alerts[0].fired_at, Some(120.0));
}

#[test]
fn fill_eta_comes_from_the_engines_history_which_survives_a_reload() {
    let text = |name: &str| {
        format!(
            "groups:\n  - name: d\n    rules:\n      - alert: {name}\n        scope: filesystem\n        expr: fill_eta_seconds < 86400\n"
        )
    };
    let load = |t: String| {
        rule::load(&[rule::Source {
            name: "t.yml".into(),
            text: t,
        }])
        .unwrap()
    };
    let mut e = Engine::new(load(text("Filling")).rules, "box", StateDir::none());
    let snap = |t: f64, collected: bool| Snapshot {
        taken_at: t,
        collectors: vec![CollectorStatus {
            success: collected,
            ..CollectorStatus::succeeded("disk")
        }],
        // 50 GB free, losing 1 MB/s: full in under 14 hours.
        filesystems: vec![crate::snapshot::Filesystem {
            mountpoint: "/data".into(),
            device: "/dev/sdb1".into(),
            size_bytes: 100_000_000_000,
            avail_bytes: 50_000_000_000 - t as u64 * 1_000_000,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut fired = None;
    for minute in 0..=70u32 {
        let t = f64::from(minute) * 60.0;
        if minute == 30 {
            // Another rule set: the history is the engine's, not the rules'.
            e.reload(load(text("WillFill")));
        }
        let ev = e.evaluate(&snap(t, true), None, t);
        if !ev.is_empty() && fired.is_none() {
            fired = Some((
                minute,
                ev[0].alert.alertname.clone(),
                ev[0].alert.value.clone(),
            ));
        }
        // A failed disk collection adds nothing and forgets nothing.
        e.evaluate(&snap(t + 30.0, false), None, t + 30.0);
    }
    // An hour of history is needed; the reload at 30 minutes lost none of it.
    let (minute, name, value) = fired.expect("fired");
    assert_eq!((minute, name.as_str()), (60, "WillFill"));
    // 50 000 s from t = 0, read at t = 3600.
    let eta: f64 = value.unwrap().parse().unwrap();
    assert!((eta - 46_400.0).abs() < 1.0, "{eta}");
}
