//! A real Prometheus (Debian's) scrapes lookout, and promtool lints the exposition.

mod support;

use std::time::Duration;

use support::prometheus::Prometheus;
use support::{get, wait_until, Container, Lookout};

#[test]
fn promtool_finds_nothing_to_lint() {
    if !support::tool_or_skip("promtool_finds_nothing_to_lint", "/usr/bin/promtool") {
        return;
    }
    let docker = support::docker_or_skip("promtool_finds_nothing_to_lint");
    let _c =
        docker.then(|| Container::run("lookout-it-prom", &["--memory", "32m"], &["sleep", "3600"]));
    let lk = Lookout::start("interval: 1s\n", &[]);
    let problems = support::promtool_problems("promtool_finds_nothing_to_lint", &lk.metrics())
        .expect("promtool is there: checked above");
    assert!(problems.is_empty(), "promtool check metrics: {problems:#?}");
}

#[test]
fn prometheus_scrapes_lookout() {
    if !support::tool_or_skip("prometheus_scrapes_lookout", support::prometheus::BIN) {
        return;
    }
    if !support::docker_or_skip("prometheus_scrapes_lookout") {
        return;
    }
    let c = Container::run(
        "lookout-it-scraped",
        &["--memory", "48m"],
        &["sleep", "3600"],
    );
    // An alert on the container, to join with its series.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: it\n    rules:\n      - alert: ItRunning\n        scope: container\n        expr: state == \"running\"\n",
    )
    .unwrap();
    let lk = Lookout::start(
        &format!(
            "interval: 1s\ndocker:\n  include: [\"lookout-it-scraped-*\"]\nrule_files: [\"{}\"]\n",
            rules.display()
        ),
        &[],
    );
    let prom = Prometheus::start(&[&lk.addr]);
    let query = |q: &str| prom.query(q).ok().filter(|r| !r.is_empty());
    let up = wait_until(Duration::from_secs(40), || {
        query("up{job=\"lookout\"} == 1")
    });
    assert!(
        up.is_some(),
        "lookout never up in Prometheus:\n{}",
        prom.log()
    );
    let limit = wait_until(Duration::from_secs(20), || {
        query(&format!(
            "container_spec_memory_limit_bytes{{name=\"{}\"}}",
            c.name
        ))
    })
    .expect("container series in Prometheus");
    assert_eq!(limit[0]["value"][1], "50331648");
    // A rate over the counter works as on cAdvisor.
    let rate = wait_until(Duration::from_secs(20), || {
        query(&format!(
            "rate(container_cpu_usage_seconds_total{{name=\"{}\",cpu=\"total\"}}[5s])",
            c.name
        ))
    });
    assert!(
        rate.is_some(),
        "rate() over container_cpu_usage_seconds_total"
    );
    // lookout_alerts carries the container's identity labels, the cgroup path as `id`
    // included, so alerts join with the container's series as on cAdvisor.
    let joined = wait_until(Duration::from_secs(20), || {
        query(
            "lookout_alerts{alertname=\"ItRunning\",alertstate=\"firing\"} \
             * on(id) group_left container_memory_usage_bytes",
        )
    })
    .expect("lookout_alerts joins container_memory_usage_bytes on id");
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert_eq!(joined[0]["metric"]["name"], c.name.as_str(), "{joined:?}");
    let id = joined[0]["metric"]["id"].as_str().unwrap_or("");
    assert!(id.starts_with('/') && id.contains(&c.id), "{joined:?}");
    // The target has no scrape error (format and content type accepted).
    let targets = get(&prom.addr, "/api/v1/targets").text();
    let t: serde_json::Value = serde_json::from_str(&targets).unwrap();
    let active = &t["data"]["activeTargets"][0];
    assert_eq!(active["health"], "up", "{targets}");
    assert_eq!(active["lastError"], "", "{targets}");
}
