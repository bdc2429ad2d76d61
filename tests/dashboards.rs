//! lookout's Grafana dashboards (`dashboards/`) and their provisioning files: every dashboard
//! parses, has a unique uid and the shape Grafana provisions, and every panel and annotation
//! query returns data when a real Prometheus (Debian's) scrapes a real lookout that watches test
//! containers (one of them a Compose service), with the stub NVML library for GPUs, alerts
//! firing and pending, notifications sent and failing, and a failover action taken. The template
//! variables get their values as Grafana gets them, from `label_values()` against that
//! Prometheus, and "All" becomes what Grafana sends.
//!
//! The hardware panels (sensors, software RAID, EDAC, CPU frequency) read a second lookout whose
//! `--path.*` roots are the host fixture tree (tests/fixtures/host): the machines the tests run
//! on are VMs without that hardware, and the fixture has it.

mod support;

#[path = "support/nvml_stub.rs"]
mod nvml_stub;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use nvml_stub::NvmlStub;
use support::grafana;
use support::http_sink::HttpSink;
use support::prometheus::{self, Prometheus};
use support::{host_fixture, unique_name, Container, Lookout};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

fn yaml(path: &Path) -> serde_yaml::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The range selectors of the functions that need `$__rate_interval` (or `$__range`).
fn rate_windows(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["rate(", "irate(", "increase(", "changes("] {
        let mut rest = expr;
        while let Some(i) = rest.find(f) {
            // Not the tail of another name (`xrate(`).
            let before = rest[..i].chars().last();
            rest = &rest[i + f.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(open) = rest.find('[') {
                let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
                out.push(rest[open + 1..close].to_string());
            }
        }
    }
    out
}

#[test]
fn every_dashboard_is_well_formed() {
    let boards = grafana::dashboards(&dir());
    assert!(boards.len() >= 5, "dashboards: {}", boards.len());
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    let mut problems = Vec::new();
    for d in &boards {
        let name = d.name();
        let mut say = |m: String| problems.push(format!("{name}: {m}"));
        let uid = d.json["uid"].as_str().unwrap_or("");
        // Grafana: at most 40 letters, digits, '-' and '_'.
        if uid.is_empty()
            || uid.len() > 40
            || !uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            say(format!("uid {uid:?} is not a valid Grafana uid"));
        }
        if !uids.insert(uid.to_string()) {
            say(format!("uid {uid:?} is not unique"));
        }
        if d.title().is_empty() || !titles.insert(d.title().to_string()) {
            say(format!("title {:?} missing or not unique", d.title()));
        }
        // A current Grafana's classic model (12.x writes 41 and 42); no `id`, so that
        // provisioning and import assign one.
        let schema = d.json["schemaVersion"].as_u64().unwrap_or(0);
        if !(39..=42).contains(&schema) {
            say(format!("schemaVersion {schema}"));
        }
        if !d.json["id"].is_null() {
            say("has an id".into());
        }
        let vars = d.variables();
        match vars.iter().find(|v| v.name == "datasource") {
            Some(v) if v.kind == "datasource" => {}
            _ => say("no `datasource` variable of type datasource".into()),
        }
        if !vars.iter().any(|v| v.name == "instance") {
            say("no `instance` variable".into());
        }
        for v in vars.iter().filter(|v| v.kind == "query") {
            match v.query.as_deref().map(grafana::parse_label_values) {
                Some(Some(_)) => {}
                _ => say(format!("variable ${}: not a label_values() query", v.name)),
            }
            if !v.regex.is_empty() {
                say(format!(
                    "variable ${}: a regex the test does not apply",
                    v.name
                ));
            }
        }
        let mut ids = BTreeSet::new();
        for p in d.panels() {
            let title = p["title"].as_str().unwrap_or("");
            if !ids.insert(p["id"].as_u64().unwrap_or(0)) {
                say(format!("panel {title:?}: id {} not unique", p["id"]));
            }
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64(), g["w"].as_u64());
            if !matches!((x, w), (Some(x), Some(w)) if x + w <= 24) || g["h"].as_u64().is_none() {
                say(format!("panel {title:?}: gridPos {g}"));
            }
            if p["type"] == "row" {
                continue;
            }
            if title.is_empty() || p["description"].as_str().unwrap_or("").is_empty() {
                say(format!("panel {title:?}: needs a title and a description"));
            }
            if p["datasource"]["uid"] != "${datasource}" {
                say(format!(
                    "panel {title:?}: datasource {} (want the $datasource variable)",
                    p["datasource"]
                ));
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                say(format!("panel {title:?}: no query"));
            }
            let mut refs = BTreeSet::new();
            for t in &targets {
                if !refs.insert(t["refId"].as_str().unwrap_or("").to_string()) {
                    say(format!("panel {title:?}: refId {} not unique", t["refId"]));
                }
                if t["datasource"]["uid"] != "${datasource}" {
                    say(format!(
                        "panel {title:?}: target datasource {}",
                        t["datasource"]
                    ));
                }
            }
        }
        for q in d.queries() {
            if q.expr.trim().is_empty() {
                say(format!("{}: empty query", q.origin));
            }
            for w in rate_windows(&q.expr) {
                if w != "$__rate_interval" && w != "$__range" {
                    say(format!(
                        "{}: a rate over [{w}], not [$__rate_interval]: {}",
                        q.origin, q.expr
                    ));
                }
            }
        }
    }
    let containers = boards
        .iter()
        .find(|d| d.json["uid"] == "lookout-containers")
        .expect("the containers dashboard");
    let names: BTreeSet<String> = containers.variables().into_iter().map(|v| v.name).collect();
    for v in ["instance", "project", "service", "name"] {
        if !names.contains(v) {
            problems.push(format!("containers dashboard: no ${v} variable"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn provisioning_points_at_prometheus_and_the_dashboards_folder() {
    let ds = yaml(&dir().join("provisioning/datasources/lookout.yml"));
    assert_eq!(ds["apiVersion"], 1);
    let p = &ds["datasources"][0];
    assert_eq!(p["type"], "prometheus", "{ds:?}");
    assert_eq!(p["url"], "http://prometheus:9090", "{ds:?}");
    assert_eq!(p["access"], "proxy", "{ds:?}");
    assert_eq!(p["isDefault"], true, "{ds:?}");
    let dash = yaml(&dir().join("provisioning/dashboards/lookout.yml"));
    assert_eq!(dash["apiVersion"], 1);
    let provider = &dash["providers"][0];
    assert_eq!(provider["type"], "file", "{dash:?}");
    assert_eq!(
        provider["options"]["path"], "/var/lib/grafana/dashboards",
        "{dash:?}"
    );
    // Where deploy/docker-compose.yml exists, its Grafana mounts the dashboards there.
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/docker-compose.yml");
    if compose.exists() {
        let c = yaml(&compose);
        let mounts: Vec<String> = c["services"]["grafana"]["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        assert!(
            mounts
                .iter()
                .any(|m| m.contains("dashboards") && m.contains(":/var/lib/grafana/dashboards")),
            "deploy/docker-compose.yml's grafana does not mount the dashboards at /var/lib/grafana/dashboards: {mounts:?}"
        );
    }
}

#[test]
fn variables_are_interpolated_as_grafana_does() {
    let vars = BTreeMap::from([
        ("instance".to_string(), "(a\\\\.b|c)".to_string()),
        ("__rate_interval".to_string(), "1m".to_string()),
    ]);
    assert_eq!(
        grafana::interpolate("rate(x{instance=~\"$instance\"}[$__rate_interval])", &vars).unwrap(),
        "rate(x{instance=~\"(a\\\\.b|c)\"}[1m])"
    );
    assert_eq!(
        grafana::interpolate("${instance}[[instance]]", &vars).unwrap(),
        "(a\\\\.b|c)(a\\\\.b|c)"
    );
    assert!(grafana::interpolate("x{a=\"$nope\"}", &vars)
        .unwrap_err()
        .contains("$nope"));
    assert_eq!(grafana::interpolate("x[5m]", &vars).unwrap(), "x[5m]");
    // A value in a PromQL regex: the metacharacter escaped, the backslash doubled for the string.
    assert_eq!(
        grafana::regex_escape("127.0.0.1:9659"),
        "127\\\\.0\\\\.0\\\\.1:9659"
    );
    assert_eq!(
        grafana::parse_label_values("label_values(up{job=\"a,b\"}, instance)"),
        Some((Some("up{job=\"a,b\"}".to_string()), "instance".to_string()))
    );
    assert_eq!(
        rate_windows("rate(a[$__rate_interval]) + increase(b[5m]) + predict_linear(c[6h], 1)"),
        ["$__rate_interval", "5m"]
    );
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Bytes the kernel accounted to the block I/O of `pid`'s cgroup (cgroup v1 blkio or v2 io);
/// None where it has no such file.
fn block_io_accounted(pid: u32) -> Option<u64> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "blkio") {
            let f = format!("/sys/fs/cgroup/blkio{path}/blkio.throttle.io_service_bytes");
            let text = std::fs::read_to_string(f).ok()?;
            return text
                .lines()
                .find_map(|l| l.strip_prefix("Total "))
                .and_then(|n| n.trim().parse().ok());
        }
        if controllers.is_empty() {
            if let Ok(text) = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/io.stat")) {
                return Some(
                    text.split_whitespace()
                        .filter_map(|kv| {
                            let (k, v) = kv.split_once('=')?;
                            (k == "rbytes" || k == "wbytes").then(|| v.parse::<u64>().ok())?
                        })
                        .sum(),
                );
            }
        }
    }
    None
}

/// Whether a query result holds at least one finite sample.
fn has_data(result: &[Value]) -> bool {
    let finite = |v: &Value| {
        v[1].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    result.iter().any(|s| {
        s["values"].as_array().into_iter().flatten().any(finite)
            || (s["value"].is_array() && finite(&s["value"]))
    })
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

#[test]
fn every_panel_query_returns_data_from_lookout() {
    let test = "every_panel_query_returns_data_from_lookout";
    if !support::tool_or_skip(test, prometheus::BIN)
        || !support::tool_or_skip(test, "/usr/bin/gcc")
        || !support::docker_or_skip(test)
    {
        return;
    }
    let pid = std::process::id();
    let project = format!("lookout-dash-{pid}");
    // A Compose service: a memory and CPU limit, a passing HEALTHCHECK, an active probe
    // (busybox httpd), log lines to match, and direct writes to its disk.
    let web = Container::run_named(
        &unique_name("lookout-dash-web"),
        &[
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            "com.docker.compose.service=web",
            "--label",
            "lookout.probe=tcp://:8080",
            "--label",
            "lookout.logs=ERROR",
            "--memory",
            "48m",
            "--cpus",
            "0.5",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
        ],
        &[
            "sh",
            "-c",
            "httpd -p 8080 -h /; while :; do echo ERROR boom; \
             dd if=/dev/zero of=/io bs=64k count=16 oflag=direct 2>/dev/null; sleep 1; done",
        ],
    );
    let sick = Container::run(
        "lookout-dash-sick",
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        &["sleep", "3600"],
    );
    let crashed = Container::run("lookout-dash-crashed", &[], &["sh", "-c", "exit 3"]);
    web.wait_state("running", Duration::from_secs(20));
    crashed.wait_state("exited", Duration::from_secs(20));

    // The stub's GPU 0 runs the web container's process; GPU 1 this test process (a process
    // outside containers).
    let stub = NvmlStub::build();
    stub.configure(&format!(
        "compute 0 {} {GIB}\ncompute 1 {pid} {}\n",
        web.pid(),
        64 * MIB
    ));

    let hook = HttpSink::start();
    let broken = HttpSink::answering(500, "down");
    let work = tempfile::tempdir().unwrap();
    let rules = work.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: dash
    rules:
      - alert: DashWebRunning
        scope: container
        match: {name: "lookout-dash-web-*"}
        expr: state == "running"
        severity: warning
        notify: [hook]
      - alert: DashWebSlow
        scope: container
        match: {name: "lookout-dash-web-*"}
        expr: state == "running"
        for: 1h
        notify: [hook]
      - alert: DashCrashed
        scope: container
        expr: state == "exited" && exit_code != 0
        severity: critical
        notify: [hook, broken]
      - alert: DashFlaky
        scope: container
        match: {name: "lookout-dash-flaky-*"}
        expr: state == "running"
        notify: [hook]
        actions:
          - restart: {after: 1, cooldown: 1s, max_attempts: 1, window: 1h, timeout: 1s}
"#,
    )
    .unwrap();
    let config = format!(
        "interval: 1s\ndocker:\n  include: [\"lookout-dash-*-{pid}-*\"]\n\
         collectors:\n  gpu: true\n  probe_interval: 1s\n\
         rule_files: [\"{}\"]\n\
         receivers:\n  - name: hook\n    webhook: {{url: \"{}/hook\"}}\n  - name: broken\n    webhook: {{url: \"{}/broken\"}}\n\
         route:\n  group_wait: 0s\n  group_interval: 1s\n",
        rules.display(),
        hook.url,
        broken.url
    );
    let lib = stub.lib().display().to_string();
    let lookout = Lookout::start_with_env(&config, &[], &[("LOOKOUT_NVML_LIB", &lib)]);
    let root = host_fixture();
    let fixture = Lookout::start(
        "interval: 1s\nrule_files: []\ncollectors: {docker: false, cgroup: false, gpu: false, probe: false}\n",
        &[
            &format!("--path.procfs={}", root.join("proc").display()),
            &format!("--path.sysfs={}", root.join("sys").display()),
            &format!("--path.rootfs={}", root.display()),
        ],
    );
    let prom = Prometheus::start(&[&lookout.addr, &fixture.addr]);
    let started = now();
    let wait = |what: &str, q: &str| {
        if prom.wait_for(q, Duration::from_secs(60)).is_none() {
            panic!(
                "{what}: no result for {q}\nlookout log:\n{}\nPrometheus log:\n{}",
                lookout.log(),
                prom.log()
            );
        }
    };
    wait(
        "both lookouts scraped",
        "count(up{job=\"lookout\"} == 1) == 2",
    );
    // The action comes after the first scrapes, so that its counter's rise is seen.
    let _flaky = Container::run("lookout-dash-flaky", &[], &["sleep", "3600"]);
    wait(
        "a restart action",
        "lookout_actions_total{action=\"restart\",outcome=\"success\"} > 0",
    );
    wait(
        "a firing alert on the web container",
        "lookout_alerts{alertname=\"DashWebRunning\",alertstate=\"firing\"}",
    );
    wait("a pending alert", "lookout_alerts{alertstate=\"pending\"}");
    wait(
        "a delivered notification",
        "lookout_notifications_total{receiver=\"hook\",outcome=\"success\"} > 0",
    );
    wait(
        "a failed notification",
        "lookout_notifications_total{receiver=\"broken\",outcome=\"failure\"} > 0",
    );
    wait("an unhealthy container", "container_health_state == 0");
    wait("a probe", "lookout_probe_success == 1");
    wait("log matches", "lookout_container_log_matches_total > 0");
    wait(
        "GPU memory per container",
        "lookout_container_gpu_memory_used_bytes > 0",
    );
    wait("the fixture's sensors", "node_hwmon_temp_celsius");
    // Rates need two samples after the last of these.
    std::thread::sleep(Duration::from_secs(3));
    let io_accounted = block_io_accounted(web.pid()).unwrap_or(0) > 0;

    let end = now();
    let range = format!("{}s", (end - started).ceil() as u64 + 1);
    let mut failures = Vec::new();
    let mut unverifiable = Vec::new();
    let mut ran = 0;
    for d in grafana::dashboards(&dir()) {
        let mut vars = BTreeMap::from([
            ("__rate_interval".to_string(), "1m".to_string()),
            ("__interval".to_string(), "15s".to_string()),
            ("__range".to_string(), range.clone()),
        ]);
        for v in d.variables() {
            if v.kind == "datasource" {
                vars.insert(v.name.clone(), "prometheus".to_string());
                continue;
            }
            let q = v.query.clone().unwrap_or_default();
            let values = grafana::interpolate(&q, &vars).and_then(|q| {
                let (selector, label) = grafana::parse_label_values(&q)
                    .ok_or_else(|| format!("not label_values(): {q}"))?;
                prom.label_values(&label, selector.as_deref())
            });
            match values {
                Ok(values) if !values.is_empty() => {
                    if v.name == "project" && !values.contains(&project) {
                        failures.push(format!(
                            "{}: ${} lists {values:?}, not {project}",
                            d.name(),
                            v.name
                        ));
                    }
                    let text = if v.include_all || v.multi {
                        grafana::all_text(&v, &values)
                    } else {
                        values[0].clone()
                    };
                    vars.insert(v.name.clone(), text);
                }
                Ok(_) => failures.push(format!("{}: ${} has no values: {q}", d.name(), v.name)),
                Err(e) => failures.push(format!("{}: ${}: {e}", d.name(), v.name)),
            }
        }
        for q in d.queries() {
            let run = match grafana::interpolate(&q.expr, &vars) {
                Ok(run) => run,
                Err(e) => {
                    failures.push(format!(
                        "{} {}: {e}\n    query: {}",
                        d.name(),
                        q.origin,
                        q.expr
                    ));
                    continue;
                }
            };
            ran += 1;
            let result = if q.instant {
                prom.query(&run)
            } else {
                prom.query_range(&run, started, end, 2.0)
            };
            let problem = match result {
                Err(e) => Some(format!("Prometheus: {e}")),
                Ok(r) if !has_data(&r) => Some("no series with data".to_string()),
                Ok(_) => None,
            };
            let Some(problem) = problem else { continue };
            let line = format!(
                "{} {}: {problem}\n    query: {}\n    as run: {run}",
                d.name(),
                q.origin,
                q.expr
            );
            if !io_accounted && q.expr.contains("container_fs_") && problem.starts_with("no series")
            {
                unverifiable.push(line);
            } else {
                failures.push(line);
            }
        }
    }
    for u in &unverifiable {
        eprintln!(
            "NOT VERIFIABLE HERE (this kernel accounts no block I/O to the container's cgroup, so lookout has no container_fs_* series): {u}"
        );
    }
    println!("{ran} dashboard queries run, {} failed", failures.len());
    assert!(ran > 100, "only {ran} queries ran");
    assert!(
        failures.is_empty(),
        "{} dashboard queries returned nothing:\n{}",
        failures.len(),
        failures.join("\n")
    );
    drop(sick);
}
