//! Firing alerts stay firing across a restart of lookout, without being announced again: a
//! real CPU burner's ContainerHighCpu (whose CPU rate is unknown on the first cycle after the
//! restart), and a real container's ContainerRestartLoop after 3 restarts (whose count lives
//! in `state_dir`, not only in memory).

mod support;

use std::time::Duration;

use support::{get, sample, wait_until, Container, Lookout};

const RULES: &str = r#"groups:
  - name: restart
    rules:
      - alert: ContainerHighCpu
        scope: container
        expr: cpu_percent > 50
        for: 2s
        resolve: cpu_percent < 20
      - alert: ContainerRestartLoop
        scope: container
        expr: restarts_recent >= 3
"#;

/// (alertname, container name) → firedAt, of the firing alerts.
fn firing(addr: &str) -> Vec<(String, String, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&get(addr, "/api/v1/alerts").text()).unwrap_or_default();
    let mut out: Vec<(String, String, String)> = v["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["state"] == "firing")
                .map(|a| {
                    (
                        a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                        a["labels"]["name"].as_str().unwrap_or("").to_string(),
                        a["firedAt"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn cycle_time(l: &Lookout) -> f64 {
    sample(&l.metrics(), "lookout_collection_timestamp_seconds", &[]).unwrap_or(0.0)
}

#[test]
fn firing_alerts_stay_firing_across_a_restart_without_a_new_transition() {
    if !support::docker_or_skip("firing_alerts_stay_firing_across_a_restart") {
        return;
    }
    let burner = Container::run("lookout-rs-burn", &[], &["sh", "-c", "while :; do :; done"]);
    let looper = Container::run("lookout-rs-loop", &[], &["sleep", "3600"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let config = format!(
        "interval: 1s\nstate_dir: {}\ndocker:\n  include: [\"lookout-rs-*-{}-*\"]\nrule_files: [\"{}\"]\n",
        dir.path().join("state").display(),
        std::process::id(),
        dir.path().join("rules.yml").display(),
    );
    let mut first = Lookout::start(&config, &[]);
    // Three real restarts of the looper, seen by the running lookout.
    for _ in 0..3 {
        assert!(looper.docker(&["restart", "-t", "0"]).status.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    let before = wait_until(Duration::from_secs(30), || {
        let f = firing(&first.addr);
        (f.len() == 2).then_some(f)
    })
    .unwrap_or_else(|| {
        panic!(
            "both alerts should fire: {:?}\n{}",
            firing(&first.addr),
            first.log()
        )
    });
    assert!(before
        .iter()
        .any(|(a, n, _)| a == "ContainerHighCpu" && *n == burner.name));
    assert!(before
        .iter()
        .any(|(a, n, _)| a == "ContainerRestartLoop" && *n == looper.name));
    // Stop it as an orchestrator would, and start a new one on the same state_dir.
    let pid = first.child.id() as i32;
    // SAFETY: a signal to the lookout child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until(Duration::from_secs(5), || {
        first.child.try_wait().ok().flatten()
    })
    .expect("lookout exits within 5 s of SIGTERM");
    drop(first);

    let second = Lookout::start(&config, &[]);
    let start = cycle_time(&second);
    let mut cycles_seen = std::collections::BTreeSet::new();
    while cycles_seen.len() < 5 {
        let t = cycle_time(&second);
        assert!(
            t < start + 30.0,
            "5 cycles did not pass; log:\n{}",
            second.log()
        );
        assert_eq!(
            firing(&second.addr),
            before,
            "after the restart, at cycle {t}; log:\n{}",
            second.log()
        );
        cycles_seen.insert(t.to_bits());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = second.log();
    assert!(
        !log.contains("alert transition"),
        "no transition after the restart:\n{log}"
    );
    assert!(
        log.contains("alert state restored"),
        "the state came from state_dir:\n{log}"
    );
}
