//! Failover actions end to end: the real lookout binary, the real daemon, real containers.
//! Each test prints the figures the issue asks for (decision-to-restart time, death-to-standby
//! time, gaps between restart attempts).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::http_sink::HttpSink;
use support::{docker, get, wait_until, Container, Lookout};

/// A rules file and a config watching `prefix-*` every second, with announcements going to
/// an HTTP sink.
fn start(prefix: &str, rules: &str, hook: &HttpSink, extra: &str) -> Lookout {
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, rules).unwrap();
    let cfg = format!(
        "interval: 1s\ndocker:\n  include: [\"{prefix}*\"]\nrule_files: [\"{}\"]\n\
         receivers:\n  - name: hook\n    webhook: {{url: \"{}/hook\"}}\n\
         route:\n  receiver: hook\n  group_by: [\"...\"]\n  group_wait: 0s\n  group_interval: 1s\n{extra}",
        rules_path.display(),
        hook.url
    );
    let lo = Lookout::start(&cfg, &[]);
    // Keep the rules file as long as the test (leaked on purpose: a few bytes in /tmp).
    std::mem::forget(dir);
    lo
}

fn actions(lo: &Lookout) -> Vec<Value> {
    serde_json::from_str::<Value>(&get(&lo.addr, "/api/v1/actions").text())
        .ok()
        .and_then(|v| v["actions"].as_array().cloned())
        .unwrap_or_default()
}

fn inspect(id: &str, format: &str) -> String {
    let out = docker(&["inspect", "--format", format, id]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The summaries announced at the sink.
fn announced(hook: &HttpSink) -> Vec<String> {
    hook.posts()
        .iter()
        .flat_map(|p| {
            p.json()["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["labels"]["alertname"] == "LookoutAction")
                .map(|a| {
                    a["annotations"]["summary"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A container whose HEALTHCHECK fails is restarted after exactly 3 failing scheduled
/// evaluations, and comes back healthy (its command makes it healthy on its second run).
#[test]
fn an_unhealthy_container_is_restarted_after_three_failing_evaluations() {
    if !support::docker_or_skip(
        "an_unhealthy_container_is_restarted_after_three_failing_evaluations",
    ) {
        return;
    }
    let hook = HttpSink::start();
    let rules = r#"groups:
  - name: failover
    rules:
      - alert: WebUnhealthy
        scope: container
        expr: health == "unhealthy"
        severity: critical
        actions:
          - restart: {after: 3, cooldown: 30s, max_attempts: 5, window: 1h, timeout: 2s}
"#;
    let lo = start("lookout-act-hc", rules, &hook, "");
    let c = Container::run(
        "lookout-act-hc",
        &[
            "--health-cmd",
            "test -f /ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-timeout",
            "1s",
        ],
        &[
            "sh",
            "-c",
            "if [ -f /marker ]; then touch /ok; else touch /marker; fi; exec sleep 3600",
        ],
    );
    let first_start = inspect(&c.id, "{{.State.StartedAt}}");
    let done = wait_until(Duration::from_secs(60), || {
        actions(&lo)
            .into_iter()
            .find(|a| a["container"] == c.name.as_str() && a["action"] == "restart")
    })
    .unwrap_or_else(|| panic!("no restart: {}", lo.log()));
    assert_eq!(done["outcome"], "success", "{done}");
    assert_eq!(done["attempt"], 1);
    assert_eq!(
        done["evaluations"], 3,
        "after exactly 3 failing evaluations: {done}"
    );
    let decided = done["decided_after_s"].as_f64().unwrap();
    println!(
        "FIGURE third failing evaluation -> restart call: {:.0} ms",
        decided * 1000.0
    );
    assert_ne!(
        inspect(&c.id, "{{.State.StartedAt}}"),
        first_start,
        "restarted"
    );
    let healthy = wait_until(Duration::from_secs(20), || {
        (inspect(&c.id, "{{.State.Health.Status}}") == "healthy").then_some(())
    });
    assert!(healthy.is_some(), "healthy after the restart");
    // Announced through the receivers.
    let said = wait_until(Duration::from_secs(10), || {
        announced(&hook)
            .into_iter()
            .find(|s| s.contains(&format!("restarted {} (attempt 1/5)", c.name)))
    });
    assert!(said.is_some(), "{:?}", announced(&hook));
    // Counted.
    let m = lo.metrics();
    assert!(
        support::sample(
            &m,
            "lookout_actions_total",
            &["action=\"restart\"", "outcome=\"success\""]
        ) >= Some(1.0),
        "{m}"
    );
    assert_eq!(
        support::sample(&m, "lookout_actions_enabled", &[]),
        Some(1.0)
    );
    // And in state_dir/actions.log.
    let log = std::fs::read_to_string(lo.dir.path().join("state/actions.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(&c.name) && l.contains("\"success\"")),
        "{log}"
    );
}

/// A container that always crashes is retried with growing gaps and given up on after
/// max_attempts, with one "failover exhausted" notification and no more restarts.
#[test]
fn a_crash_loop_backs_off_and_is_given_up_on_once() {
    if !support::docker_or_skip("a_crash_loop_backs_off_and_is_given_up_on_once") {
        return;
    }
    let hook = HttpSink::start();
    let rules = r#"groups:
  - name: failover
    rules:
      - alert: WebExited
        scope: container
        expr: state == "exited"
        severity: critical
        actions:
          - restart: {after: 1, cooldown: 2s, max_attempts: 3, window: 1h, timeout: 1s}
"#;
    let lo = start("lookout-act-crash", rules, &hook, "");
    let c = Container::run("lookout-act-crash", &[], &["sh", "-c", "sleep 0.3; exit 1"]);
    let exhausted = wait_until(Duration::from_secs(60), || {
        actions(&lo)
            .into_iter()
            .find(|a| a["container"] == c.name.as_str() && a["outcome"] == "exhausted")
    });
    assert!(exhausted.is_some(), "{}\n{:?}", lo.log(), actions(&lo));
    let restarts: Vec<Value> = actions(&lo)
        .into_iter()
        .filter(|a| a["container"] == c.name.as_str() && a["outcome"] == "success")
        .collect();
    assert_eq!(restarts.len(), 3);
    let times: Vec<f64> = restarts
        .iter()
        .map(|a| lookout::docker_api::parse_rfc3339(a["time"].as_str().unwrap()).unwrap())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    println!("FIGURE gaps between restart attempts: {gaps:.1?} s (configured backoff: 2 s, 4 s)");
    assert!(gaps[0] >= 1.9 && gaps[1] >= 3.9, "{gaps:?}");
    assert!(gaps[1] > gaps[0]);
    // No more restarts in the window, and one announcement.
    std::thread::sleep(Duration::from_secs(6));
    let after: usize = actions(&lo)
        .iter()
        .filter(|a| {
            a["container"] == c.name.as_str()
                && a["action"] == "restart"
                && a["outcome"] == "success"
        })
        .count();
    assert_eq!(after, 3);
    let said: Vec<String> = announced(&hook)
        .into_iter()
        .filter(|s| s.contains("failover exhausted"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    let page = get(&lo.addr, "/").text();
    assert!(page.contains("given up until"), "the status page shows it");
    // A person resets it, with the CLI: lookout acts again.
    let out = std::process::Command::new(support::lookout_bin())
        .args([
            "action",
            "reset",
            &c.name,
            "--url",
            &format!("http://{}", lo.addr),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = wait_until(Duration::from_secs(20), || {
        (actions(&lo)
            .iter()
            .filter(|a| a["container"] == c.name.as_str() && a["outcome"] == "success")
            .count()
            > 3)
        .then_some(())
    });
    assert!(again.is_some());
}

/// The standby starts when the primary dies, and stops once the primary has been back for
/// `for`.
#[test]
fn the_standby_takes_over_and_steps_back() {
    if !support::docker_or_skip("the_standby_takes_over_and_steps_back") {
        return;
    }
    let hook = HttpSink::start();
    let standby = support::unique_name("lookout-act-sb-standby");
    let rules = format!(
        r#"groups:
  - name: failover
    rules:
      - alert: PrimaryDown
        scope: container
        match: {{name: "lookout-act-sb-primary*"}}
        expr: state == "exited"
        severity: critical
        actions:
          - start_standby: {{standby: {standby}, stop_on_resolve: true, for: 2s}}
"#
    );
    let lo = start("lookout-act-sb", &rules, &hook, "");
    let primary = Container::run("lookout-act-sb-primary", &[], &["sleep", "3600"]);
    let out = docker(&[
        "create",
        "--name",
        &standby,
        support::IMAGE,
        "sleep",
        "3600",
    ]);
    assert!(out.status.success());
    let sb = Container {
        id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        name: standby.clone(),
    };
    wait_until(Duration::from_secs(15), || {
        get(&lo.addr, "/api/v1/containers")
            .text()
            .contains(&primary.name)
            .then_some(())
    })
    .unwrap();
    let killed = lookout::now_unix();
    primary.docker(&["kill"]);
    let started = wait_until(Duration::from_secs(20), || {
        (inspect(&sb.id, "{{.State.Running}}") == "true").then_some(())
    });
    assert!(started.is_some(), "{}", lo.log());
    let at = lookout::docker_api::parse_rfc3339(&inspect(&sb.id, "{{.State.StartedAt}}")).unwrap();
    println!(
        "FIGURE primary's death -> standby's start: {:.0} ms",
        (at - killed) * 1000.0
    );
    // The primary comes back: the standby stops after `for`.
    primary.docker(&["start"]);
    let t0 = Instant::now();
    let stopped = wait_until(Duration::from_secs(30), || {
        (inspect(&sb.id, "{{.State.Running}}") == "false").then_some(())
    });
    assert!(stopped.is_some(), "{}", lo.log());
    assert!(t0.elapsed() >= Duration::from_secs(2), "not before `for`");
    // The record is written once `docker stop` has returned, a moment after the state.
    let kinds = || -> Vec<String> {
        actions(&lo)
            .iter()
            .map(|a| format!("{}:{}", a["action"], a["outcome"]))
            .collect()
    };
    let both = wait_until(Duration::from_secs(10), || {
        let k = kinds();
        (k.contains(&"\"start_standby\":\"success\"".to_string())
            && k.contains(&"\"stop_standby\":\"success\"".to_string()))
        .then_some(())
    });
    assert!(both.is_some(), "{:?}", kinds());
}

/// Dry-run changes nothing and logs everything; the opt-out label is respected.
#[test]
fn dry_run_and_the_opt_out_label_change_nothing() {
    if !support::docker_or_skip("dry_run_and_the_opt_out_label_change_nothing") {
        return;
    }
    let rules = r#"groups:
  - name: failover
    rules:
      - alert: Exited
        scope: container
        expr: state == "exited"
        actions:
          - restart: {after: 1, cooldown: 1s}
"#;
    // Opt-out, actions on.
    let hook = HttpSink::start();
    let lo = start("lookout-act-opt", rules, &hook, "");
    let c = Container::run(
        "lookout-act-opt",
        &["--label", "lookout.actions=off"],
        &["sh", "-c", "exit 2"],
    );
    c.wait_state("exited", Duration::from_secs(10));
    let first = inspect(&c.id, "{{.State.StartedAt}}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        inspect(&c.id, "{{.State.StartedAt}}"),
        first,
        "opted out: never restarted"
    );
    assert!(actions(&lo)
        .iter()
        .all(|a| a["container"] != c.name.as_str()));
    drop(lo);

    // Dry run.
    let hook = HttpSink::start();
    let lo = start(
        "lookout-act-dry",
        rules,
        &hook,
        "actions: {dry_run: true}\n",
    );
    let c = Container::run("lookout-act-dry", &[], &["sh", "-c", "exit 2"]);
    c.wait_state("exited", Duration::from_secs(10));
    let first = inspect(&c.id, "{{.State.StartedAt}}");
    let logged = wait_until(Duration::from_secs(20), || {
        actions(&lo)
            .into_iter()
            .find(|a| a["container"] == c.name.as_str() && a["outcome"] == "dry_run")
    });
    assert!(logged.is_some(), "{}", lo.log());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        inspect(&c.id, "{{.State.StartedAt}}"),
        first,
        "a dry run changes nothing"
    );
    let said = wait_until(Duration::from_secs(10), || {
        announced(&hook)
            .into_iter()
            .find(|s| s.contains("dry run: would restart"))
    });
    assert!(said.is_some());
    assert_eq!(
        support::sample(&lo.metrics(), "lookout_actions_enabled", &[]),
        Some(0.0)
    );
}

/// A restart storm: 8 containers fail at once with a budget of 5 a minute: 5 are restarted
/// in the first minute, the rest after.
#[test]
fn a_restart_storm_is_held_to_the_budget() {
    if !support::docker_or_skip("a_restart_storm_is_held_to_the_budget") {
        return;
    }
    let hook = HttpSink::start();
    let rules = r#"groups:
  - name: failover
    rules:
      - alert: Exited
        scope: container
        expr: state == "exited" && exit_code == 3
        actions:
          - restart: {after: 1, cooldown: 5m}
"#;
    let lo = start(
        "lookout-act-storm",
        rules,
        &hook,
        "actions: {max_per_minute: 5}\n",
    );
    let cs: Vec<Container> = (0..8)
        .map(|_| {
            Container::run(
                "lookout-act-storm",
                &[],
                &[
                    "sh",
                    "-c",
                    "if [ -f /again ]; then exec sleep 3600; fi; touch /again; exit 3",
                ],
            )
        })
        .collect();
    let t0 = Instant::now();
    let restarted = |lo: &Lookout| {
        actions(lo)
            .iter()
            .filter(|a| a["action"] == "restart" && a["outcome"] == "success")
            .count()
    };
    wait_until(Duration::from_secs(30), || {
        (restarted(&lo) >= 5).then_some(())
    })
    .expect("5 restarts");
    std::thread::sleep(Duration::from_secs(5));
    assert!(t0.elapsed() < Duration::from_secs(55));
    assert_eq!(
        restarted(&lo),
        5,
        "no more than the budget in the first minute"
    );
    assert!(actions(&lo).iter().any(|a| a["outcome"] == "skipped"));
    let all = wait_until(Duration::from_secs(90), || {
        (restarted(&lo) == 8).then_some(())
    });
    assert!(all.is_some(), "the rest follow: {:?}", actions(&lo));
    let budget: Vec<String> = announced(&hook)
        .into_iter()
        .filter(|s| s.contains("budget"))
        .collect();
    assert!(!budget.is_empty() && budget.len() <= 2, "{budget:?}");
    drop(cs);
}

fn compose(dir: &std::path::Path, project: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker-compose")
        .arg("-p")
        .arg(project)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("docker-compose")
}

/// The replicas of a Compose service that run (by label).
fn replicas(project: &str, service: &str) -> Vec<(String, bool)> {
    let out = docker(&[
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
        "--format",
        "{{.Names}} {{.Label \"lookout.clone\"}}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut p = l.split_whitespace();
            (p.next().unwrap_or("").to_string(), p.next() == Some("true"))
        })
        .collect()
}

/// Scale up creates labelled clones up to max and not beyond, and `docker-compose ps` lists
/// them; scale down removes only clones, never below min.
#[test]
fn a_compose_service_scales_up_to_max_and_down_to_min() {
    if !support::docker_or_skip("a_compose_service_scales_up_to_max_and_down_to_min")
        || !support::tool_or_skip(
            "a_compose_service_scales_up_to_max_and_down_to_min",
            "/usr/bin/docker-compose",
        )
    {
        return;
    }
    support::ensure_image();
    let project = support::unique_name("lookout-act-cmp").replace('_', "-");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {}\n    command: [\"sh\", \"-c\", \"while [ ! -f /shared/calm ]; do :; done; exec sleep 3600\"]\n    volumes: [\"calm:/shared\"]\n    cpus: 0.5\nvolumes:\n  calm: {{}}\n",
            support::IMAGE
        ),
    )
    .unwrap();
    struct Down<'a>(&'a std::path::Path, &'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            for (name, _) in replicas(self.1, "web") {
                let _ = docker(&["rm", "-f", &name]);
            }
            let _ = compose(self.0, self.1, &["down", "-v", "--remove-orphans"]);
        }
    }
    let _down = Down(dir.path(), &project);
    let up = compose(dir.path(), &project, &["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let hook = HttpSink::start();
    let rules = r#"groups:
  - name: scaling
    rules:
      - alert: WebBusy
        scope: container
        match: {labels: {com.docker.compose.service: web}}
        expr: cpu_limit_percent > 60
        actions:
          - scale: {service: web, step: 1, min: 1, max: 3, scale_down_below: 20, scale_down_for: 3s, cooldown: 3s}
"#;
    let lo = start(&project, rules, &hook, "");
    let max = wait_until(Duration::from_secs(90), || {
        (replicas(&project, "web").len() == 3).then_some(())
    });
    assert!(
        max.is_some(),
        "{:?}\n{}",
        replicas(&project, "web"),
        lo.log()
    );
    // Never beyond max.
    std::thread::sleep(Duration::from_secs(8));
    let r = replicas(&project, "web");
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r.iter().filter(|(_, clone)| *clone).count(), 2, "{r:?}");
    let ps = compose(dir.path(), &project, &["ps"]);
    let listed = String::from_utf8_lossy(&ps.stdout);
    for (name, _) in &r {
        assert!(
            listed.contains(name.as_str()),
            "docker-compose ps lists {name}:\n{listed}"
        );
    }
    // Calm: every replica idles; scale down one step at a time to min, clones only.
    let original = r.iter().find(|(_, c)| !c).unwrap().0.clone();
    let calm = docker(&["exec", &original, "touch", "/shared/calm"]);
    assert!(calm.status.success());
    let min = wait_until(Duration::from_secs(90), || {
        (replicas(&project, "web").len() == 1).then_some(())
    });
    assert!(
        min.is_some(),
        "{:?}\n{:?}",
        replicas(&project, "web"),
        actions(&lo)
    );
    std::thread::sleep(Duration::from_secs(8));
    let r = replicas(&project, "web");
    assert_eq!(
        r,
        vec![(original, false)],
        "only clones removed, never below min"
    );
    let kinds: Vec<String> = actions(&lo)
        .iter()
        .map(|a| format!("{}", a["action"]))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| k.contains("scale_up")).count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| k.contains("scale_down")).count(),
        2,
        "{kinds:?}"
    );
}

/// On Swarm, the service's replica count changes within min and max.
#[test]
fn a_swarm_service_scales_within_max() {
    if !support::docker_or_skip("a_swarm_service_scales_within_max") {
        return;
    }
    support::ensure_image();
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    if String::from_utf8_lossy(&state.stdout).trim() != "inactive" {
        eprintln!("skipping: this daemon is already in a swarm this test did not create");
        return;
    }
    // Leave the swarm, and remove the bridge network joining it made (it stays in use for a
    // moment after leaving: retry).
    struct Leave(bool);
    impl Drop for Leave {
        fn drop(&mut self) {
            let _ = docker(&["swarm", "leave", "--force"]);
            if self.0 {
                for _ in 0..20 {
                    if docker(&["network", "rm", "docker_gwbridge"])
                        .status
                        .success()
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
    }
    let had_bridge = docker(&["network", "inspect", "docker_gwbridge"])
        .status
        .success();
    let init = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let _leave = Leave(!had_bridge);
    let svc = support::unique_name("lookout-act-swarm").replace('_', "-");
    let out = docker(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        &svc,
        "--replicas",
        "1",
        "--limit-cpu",
        "0.3",
        support::IMAGE,
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = docker(&["service", "rm", &self.0]);
        }
    }
    let _rm = Rm(svc.clone());
    let hook = HttpSink::start();
    let rules = format!(
        r#"groups:
  - name: scaling
    rules:
      - alert: SvcBusy
        scope: container
        match: {{labels: {{com.docker.swarm.service.name: {svc}}}}}
        expr: cpu_limit_percent > 60
        actions:
          - scale: {{service: {svc}, step: 1, min: 1, max: 2, cooldown: 2s}}
"#
    );
    let lo = start(&svc, &rules, &hook, "");
    let replicas = || {
        let out = docker(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}",
            &svc,
        ]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    let two = wait_until(Duration::from_secs(90), || (replicas() == 2).then_some(()));
    assert!(two.is_some(), "{}\n{:?}", lo.log(), actions(&lo));
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(replicas(), 2, "not beyond max");
    let scaled = actions(&lo)
        .into_iter()
        .filter(|a| a["action"] == "scale_up" && a["outcome"] == "success")
        .count();
    assert_eq!(scaled, 1);
}

/// A person restarts a container through lookout (`lookout action restart NAME`, over
/// loopback); the action webhook gets the rule's transitions.
#[test]
fn a_manual_restart_and_the_action_webhook() {
    if !support::docker_or_skip("a_manual_restart_and_the_action_webhook") {
        return;
    }
    let hook = HttpSink::start();
    let automation = HttpSink::start();
    let rules = format!(
        r#"groups:
  - name: failover
    rules:
      - alert: Exited
        scope: container
        expr: state == "exited"
        actions:
          - webhook: {{url: "{}/auto"}}
"#,
        automation.url
    );
    let lo = start("lookout-act-man", &rules, &hook, "");
    let c = Container::run("lookout-act-man", &[], &["sleep", "3600"]);
    wait_until(Duration::from_secs(15), || {
        get(&lo.addr, "/api/v1/containers")
            .text()
            .contains(&c.name)
            .then_some(())
    })
    .unwrap();
    let before = inspect(&c.id, "{{.State.StartedAt}}");
    let out = std::process::Command::new(support::lookout_bin())
        .args([
            "action",
            "restart",
            &c.name,
            "--url",
            &format!("http://{}", lo.addr),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(inspect(&c.id, "{{.State.StartedAt}}"), before);
    let rec = actions(&lo);
    let manual = rec.iter().find(|a| a["rule"] == "manual");
    let m = manual.unwrap_or_else(|| panic!("{rec:?}"));
    assert_eq!(
        (m["action"].as_str(), m["outcome"].as_str()),
        (Some("restart"), Some("success"))
    );
    // An unknown container: refused, exit 1.
    let out = std::process::Command::new(support::lookout_bin())
        .args([
            "action",
            "restart",
            "no-such-container",
            "--url",
            &format!("http://{}", lo.addr),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The webhook action: the firing transition is POSTed.
    c.docker(&["kill"]);
    let got = automation.wait_for(Duration::from_secs(20), |p| {
        p.iter().find(|p| p.path == "/auto").map(|p| p.json())
    });
    let body = got.unwrap_or_else(|| panic!("{}", lo.log()));
    assert_eq!(body["status"], "firing");
    assert_eq!(body["container"], c.name.as_str());
}
