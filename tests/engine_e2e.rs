//! The rule engine end to end, with real containers: a CPU burner's alert goes pending, then
//! fires after `for`; a killed container's ContainerDown fires within a second of the kill;
//! both show in `/api/v1/alerts`, `lookout_alerts` on `/metrics` and the status page.
//!
//! Needs Docker. Without it the test says so and passes, unless `LOOKOUT_REQUIRE_DOCKER=1`
//! (CI), where it fails.

mod support;

use std::time::{Duration, Instant};

use support::Container;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RULES: &str = r#"groups:
  - name: e2e
    rules:
      - alert: BurnerHot
        scope: container
        match: {name: "lookout-e2e-burn-*"}
        expr: cpu_percent > 30
        for: 3s
        annotations: {summary: "{{ name }} at {{ cpu_percent | round(0) }}%"}
      - alert: ContainerDown
        scope: container
        expr: (state == "exited" || state == "dead") && (exit_code != 0 || oom_killed)
        severity: critical
"#;

const EXTRA_RULE: &str = r#"      - alert: TooManyPids
        scope: container
        expr: pids > 100000
"#;

/// A GET or POST over plain HTTP/1.1; the body (chunked encoding undone).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: lookout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// The alerts of `/api/v1/alerts` whose alertname and `name` label match.
async fn alerts(addr: std::net::SocketAddr, alertname: &str, name: &str) -> Vec<serde_json::Value> {
    let (status, body) = http(addr, "GET", "/api/v1/alerts").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname && a["labels"]["name"] == name)
        .cloned()
        .collect()
}

fn time_of(v: &serde_json::Value) -> f64 {
    lookout::docker_api::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_alert_fires_after_for_and_container_down_within_a_second() {
    if !support::docker_or_skip("cpu_alert_fires_after_for_and_container_down_within_a_second") {
        return;
    }
    let tag = std::process::id();
    let burner = Container::run(
        "lookout-e2e-burn",
        &["--cpus", "0.5"],
        &["sh", "-c", "while :; do :; done"],
    );
    let sleeper = Container::run("lookout-e2e-sleep", &[], &["sleep", "3600"]);
    // A job that finishes with 0 must not count as down.
    let finished = Container::run("lookout-e2e-done", &[], &["true"]);
    let (burn, sleep, done) = (
        burner.name.clone(),
        sleeper.name.clone(),
        finished.name.clone(),
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let cfg_path = dir.path().join("lookout.yml");
    std::fs::write(
        &cfg_path,
        format!(
            "interval: 2s\ndocker:\n  include: [\"lookout-e2e-*-{tag}-*\"]\nrule_files: [rules.yml]\nstate_dir: {}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    // --web.enable-lifecycle: POST /-/reload is allowed.
    let flags = lookout::config::Overrides {
        enable_lifecycle: true,
        ..Default::default()
    };
    let config = lookout::config::Config::load(
        Some(&cfg_path),
        &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        &flags,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let reload = lookout::reload::Channel::new();
    // What main's SIGHUP handler holds.
    let sighup = reload.handle.clone();
    let io = lookout::Io {
        listener,
        docker: lookout::app::docker_client(&config).unwrap(),
        reload,
        runtime: None,
    };
    let server = tokio::spawn(lookout::run(config, io, async {
        let _ = stopped.await;
    }));

    // The burner: pending first, firing once it has held for 3 s.
    let start = Instant::now();
    let mut pending_seen = false;
    let firing = loop {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "BurnerHot did not fire (pending seen: {pending_seen})"
        );
        let a = alerts(addr, "BurnerHot", &burn).await;
        if let Some(a) = a.first() {
            match a["state"].as_str() {
                Some("pending") => pending_seen = true,
                Some("firing") => break a.clone(),
                s => panic!("unexpected state {s:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(pending_seen, "BurnerHot fired without being pending first");
    let held = time_of(&firing["firedAt"]) - time_of(&firing["activeAt"]);
    assert!(
        held >= 2.99,
        "fired {held:.3} s after it became active, before `for`"
    );
    assert!(firing["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{burn} at ")));
    assert_eq!(firing["silenced"], false);

    // Kill the sleeper: ContainerDown within a second, measured from just before the kill.
    // The kill comes right after a cycle was published, so the next cycle is nearly 2 s away
    // (interval 2s): only the Docker event path can make it in time.
    assert!(alerts(addr, "ContainerDown", &sleep).await.is_empty());
    let cycle_at = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("lookout_collection_timestamp_seconds "))
            .map(str::to_string)
    };
    let before = cycle_at(&http(addr, "GET", "/metrics").await.1);
    let wait = Instant::now();
    loop {
        assert!(wait.elapsed() < Duration::from_secs(10), "no new cycle");
        tokio::time::sleep(Duration::from_millis(20)).await;
        if cycle_at(&http(addr, "GET", "/metrics").await.1) != before {
            break;
        }
    }
    let killed = Instant::now();
    assert!(sleeper.docker(&["kill"]).status.success());
    let down = loop {
        let a = alerts(addr, "ContainerDown", &sleep).await;
        if let Some(a) = a.iter().find(|a| a["state"] == "firing") {
            break a.clone();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "ContainerDown did not fire within 5 s of the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = killed.elapsed();
    eprintln!("ContainerDown firing {took:?} after the kill");
    assert!(
        took < Duration::from_secs(1),
        "ContainerDown took {took:?} (not well under a second)"
    );
    assert_eq!(down["labels"]["severity"], "critical");
    assert!(alerts(addr, "ContainerDown", &done).await.is_empty());

    // /metrics carries it in the ALERTS shape (republished with the event's evaluation).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = http(addr, "GET", "/metrics").await;
        let line = metrics.lines().find(|l| {
            l.starts_with("lookout_alerts{alertname=\"ContainerDown\",alertstate=\"firing\",")
                && l.contains(&format!("name=\"{sleep}\""))
        });
        if let Some(l) = line {
            assert!(l.ends_with(" 1"), "{l}");
            assert!(
                metrics.contains("lookout_alerts{alertname=\"BurnerHot\",alertstate=\"firing\",")
            );
            assert!(metrics.contains("lookout_rules_loaded 2\n"));
            assert!(metrics.contains("lookout_config_last_reload_successful 1\n"));
            break;
        }
        assert!(Instant::now() < deadline, "no ContainerDown in /metrics");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, page) = http(addr, "GET", "/").await;
    assert!(
        page.contains("ContainerDown"),
        "status page lacks the alert"
    );
    let (_, rules) = http(addr, "GET", "/api/v1/rules").await;
    let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
    assert_eq!(rules["groups"][0]["rules"][0]["health"], "ok");

    // A reload that breaks the rules keeps the running set and says so.
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups: [{name: x, rules: [{alert: A}]}]\n",
    )
    .unwrap();
    let (status, body) = http(addr, "POST", "/-/reload").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("missing field `scope`"), "{body}");
    let (_, metrics) = http(addr, "GET", "/metrics").await;
    assert!(metrics.contains("lookout_config_last_reload_successful 0\n"));
    assert!(metrics.contains("lookout_rules_loaded 2\n"));
    let before_reload = alerts(addr, "ContainerDown", &sleep).await;
    assert_eq!(before_reload.len(), 1);

    // SIGHUP with a good set: a rule more, the others unchanged and keeping their alerts.
    // (main turns SIGHUP into this request; tests/faults.rs sends the real signal.)
    std::fs::write(dir.path().join("rules.yml"), RULES.to_string() + EXTRA_RULE).unwrap();
    sighup.request(lookout::reload::Origin::Signal);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = http(addr, "GET", "/metrics").await;
        if metrics.contains("lookout_rules_loaded 3\n") {
            assert!(metrics.contains("lookout_config_last_reload_successful 1\n"));
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload the rules");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after_reload = alerts(addr, "ContainerDown", &sleep).await;
    assert_eq!(after_reload.len(), 1);
    assert_eq!(after_reload[0]["activeAt"], before_reload[0]["activeAt"]);
    assert_eq!(after_reload[0]["state"], "firing");

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    // The state survived on disk for the next start.
    let saved = lookout::state_dir::StateDir::at(dir.path().join("state"))
        .load::<serde_json::Value>("alerts.json")
        .unwrap()
        .unwrap()
        .to_string();
    assert!(saved.contains("ContainerDown"), "{saved}");
}
