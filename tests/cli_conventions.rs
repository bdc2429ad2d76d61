//! The conventions node_exporter and Prometheus users type without thinking:
//! `--web.listen-address`, `--web.telemetry-path`, `/-/healthy` and `/-/ready`,
//! `--collector.<name>` / `--no-collector.<name>` / `--collector.disable-defaults`,
//! `lookout check config FILE` and `lookout check rules FILE...` (as promtool), with today's
//! names (`--listen`, `check -c`, `/healthz`) still working.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::{free_port, get, lookout_bin, request, sample, wait_until};

fn lookout(args: &[&str]) -> Output {
    Command::new(lookout_bin())
        .args(args)
        .env_remove("LOOKOUT_CONFIG")
        .output()
        .expect("run lookout")
}

/// A `lookout run` with these flags only (no config file), killed when dropped.
/// The process, its address, and its state directory (removed with it).
struct Run(
    std::process::Child,
    String,
    #[allow(dead_code)] tempfile::TempDir,
);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let state = format!("state_dir: {}\n", dir.path().display());
    let cfg = dir.path().join("c.yml");
    std::fs::write(&cfg, state).unwrap();
    let child = Command::new(lookout_bin())
        .arg("run")
        .arg("-c")
        .arg(&cfg)
        .arg(format!("--web.listen-address={addr}"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start lookout");
    let r = Run(child, addr, dir);
    wait_until(Duration::from_secs(20), || {
        request(&r.1, "GET", "/-/ready", &[])
            .ok()
            .filter(|x| x.status == 200)
    })
    .expect("ready on /-/ready");
    r
}

#[test]
fn web_flags_and_prometheus_style_endpoints() {
    let r = run(&[
        "--web.telemetry-path=/prom",
        "--collector.disable-defaults",
        "--collector.host",
    ]);
    let m = get(&r.1, "/prom");
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(text.contains("node_load1 "), "{text}");
    // Only the host collector runs.
    assert_eq!(
        sample(&text, "lookout_collector_success", &["collector=\"host\""]),
        Some(1.0)
    );
    for other in ["docker", "cgroup", "disk", "gpu"] {
        assert!(
            !text.contains(&format!("collector=\"{other}\"")),
            "{other} should be off"
        );
    }
    assert_eq!(get(&r.1, "/metrics").status, 404);
    for path in ["/-/healthy", "/health", "/healthz", "/-/ready", "/ready"] {
        assert_eq!(get(&r.1, path).status, 200, "{path}");
    }
    assert!(text.contains("process_resident_memory_bytes "));
    assert!(
        text.contains("lookout_task_up{task=\"engine\"} 1"),
        "{text}"
    );
}

#[test]
fn no_collector_flags_turn_collectors_off_and_listen_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("c.yml");
    std::fs::write(&cfg, format!("state_dir: {}\n", dir.path().display())).unwrap();
    let child = Command::new(lookout_bin())
        .args(["run", "-c"])
        .arg(&cfg)
        .arg("--listen")
        .arg(&addr)
        .args([
            "--no-collector.docker",
            "--no-collector.cgroup",
            "--no-collector.gpu",
            "--no-collector.disk",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let r = Run(child, addr, dir);
    let text = wait_until(Duration::from_secs(20), || {
        request(&r.1, "GET", "/metrics", &[])
            .ok()
            .filter(|x| x.status == 200)
            .map(|x| x.text())
    })
    .expect("metrics");
    assert!(text.contains("collector=\"host\""));
    assert!(!text.contains("collector=\"disk\""));
    assert!(!text.contains("collector=\"docker\""));
}

#[test]
fn check_config_and_check_rules_as_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(
        &good,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        scope: host\n        expr: load1 > 10\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: B\n        scope: host\n        expr: nosuch > 1\n",
    )
    .unwrap();
    let o = lookout(&["check", "rules", good.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("good.yml: OK; 1 rules"), "{out}");
    let o = lookout(&[
        "check",
        "rules",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("bad.yml:6:15: "), "{err}");
    assert!(err.contains("unknown variable `nosuch`"), "{err}");

    let cfg = dir.path().join("lookout.yml");
    std::fs::write(&cfg, "interval: 5s\nrule_files: [good.yml]\n").unwrap();
    let o = lookout(&["check", "config", cfg.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("OK; 1 rules from 1 files"), "{out}");
    // The old form still works.
    let o = lookout(&["check", "-c", cfg.to_str().unwrap()]);
    assert!(o.status.success());
    std::fs::write(&cfg, "interval: soon\n").unwrap();
    let o = lookout(&["check", "config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("lookout.yml:1:11: interval: invalid duration"),
        "{err}"
    );
}

#[test]
fn help_names_the_conventions() {
    let o = lookout(&["--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--web.enable-lifecycle",
        "--collector.disable-defaults",
        "--no-collector.docker",
        "--log.format",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}
