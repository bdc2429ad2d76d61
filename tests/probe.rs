//! Active probes against real containers: a busybox httpd that answers, a container whose probe
//! port has nothing listening, and one whose label is not a probe. Their
//! `lookout_probe_success`, a rule on `probe_ok` through `/api/v1/alerts`, promtool, and a
//! probed container that stops.
//!
//! Needs Docker. Without it the test says so and passes, unless `LOOKOUT_REQUIRE_DOCKER=1`.

mod support;

use std::time::Duration;

use support::{get, sample, wait_until, Container, Lookout};

const RULES: &str = r#"groups:
  - name: probes
    rules:
      - alert: ProbeFailing
        scope: container
        expr: probe_ok == false
        annotations: {summary: "{{ name }} does not answer its probe"}
"#;

/// `ProbeFailing` alerts on the container named `name`, as `/api/v1/alerts` lists them.
fn alerts(lk: &Lookout, name: &str) -> Vec<serde_json::Value> {
    let r = get(&lk.addr, "/api/v1/alerts");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "ProbeFailing" && a["labels"]["name"] == name)
        .cloned()
        .collect()
}

fn success(lk: &Lookout, c: &Container) -> Option<f64> {
    sample(
        &lk.metrics(),
        "lookout_probe_success",
        &[&format!("name=\"{}\"", c.name)],
    )
}

#[test]
fn probes_report_success_failure_and_feed_probe_ok() {
    if !support::docker_or_skip("probes_report_success_failure_and_feed_probe_ok") {
        return;
    }
    let web = Container::run(
        "lookout-probe-web",
        &["--label", "lookout.probe=http://:8080/"],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    let dead = Container::run(
        "lookout-probe-dead",
        &["--label", "lookout.probe=tcp://:5999"],
        &["sleep", "3600"],
    );
    let bad = Container::run(
        "lookout-probe-bad",
        &["--label", "lookout.probe=ftp://x"],
        &["sleep", "3600"],
    );
    let rules = tempfile::tempdir().unwrap();
    let rules_file = rules.path().join("probes.yml");
    std::fs::write(&rules_file, RULES).unwrap();
    let mut lk = Lookout::start(
        &format!(
            "interval: 1s\ndocker:\n  include: [\"lookout-probe-*-{}-*\"]\n\
             collectors:\n  probe_interval: 1s\nrule_files: [\"{}\"]\n",
            std::process::id(),
            rules_file.display()
        ),
        &[],
    );

    // The httpd answers 200: success, with the container's identity labels.
    wait_until(Duration::from_secs(30), || {
        (success(&lk, &web) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("no successful probe of {}:\n{}", web.name, lk.metrics()));
    let m = lk.metrics();
    let line = m
        .lines()
        .find(|l| l.starts_with("lookout_probe_success{") && l.contains(&web.name))
        .unwrap();
    assert!(
        line.starts_with("lookout_probe_success{id=\"") && line.contains(",image=\""),
        "{line}"
    );
    let took = sample(
        &m,
        "lookout_probe_duration_seconds",
        &[&format!("name=\"{}\"", web.name)],
    )
    .expect("duration series");
    assert!((0.0..1.0).contains(&took), "{took}");

    // Nothing listens on 5999: failure, and the rule on probe_ok fires for it alone.
    wait_until(Duration::from_secs(30), || {
        (success(&lk, &dead) == Some(0.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("no failed probe of {}:\n{}", dead.name, lk.metrics()));
    let alert = wait_until(Duration::from_secs(30), || {
        alerts(&lk, &dead.name)
            .into_iter()
            .find(|a| a["state"] == "firing")
    })
    .unwrap_or_else(|| panic!("ProbeFailing did not fire for {}", dead.name));
    assert_eq!(
        alert["annotations"]["summary"],
        format!("{} does not answer its probe", dead.name)
    );

    // The invalid label: no series, one warning, and lookout goes on. The web container's
    // probe succeeds, so its rule does not fire; `bad` has no probe, so its probe_ok is
    // unknown and its rule does not fire either.
    std::thread::sleep(Duration::from_secs(3));
    let m = lk.metrics();
    assert_eq!(success(&lk, &bad), None, "{m}");
    assert!(!m.contains(&format!(
        "lookout_probe_duration_seconds{{id=\"/docker/{}",
        bad.id
    )));
    assert!(alerts(&lk, &web.name).is_empty());
    assert!(alerts(&lk, &bad.name).is_empty());
    let log = lk.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("probe label is invalid") && l.contains(&bad.name))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(log.contains("unsupported scheme"), "{log}");
    assert!(lk.child.try_wait().unwrap().is_none(), "lookout exited");
    assert_eq!(get(&lk.addr, "/ready").status, 200);

    if let Some(problems) = support::promtool_problems("probe metrics", &m) {
        assert!(problems.is_empty(), "promtool: {problems:?}");
    }

    // A probed container that stops loses its series (its probe_ok is unknown, not false).
    let out = web.docker(&["kill"]);
    assert!(out.status.success());
    wait_until(Duration::from_secs(30), || {
        success(&lk, &web).is_none().then_some(())
    })
    .unwrap_or_else(|| panic!("{} still has a probe series", web.name));
    assert!(alerts(&lk, &web.name).is_empty());
}
