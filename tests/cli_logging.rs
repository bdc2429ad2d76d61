//! `--log.format` end to end: the built binary's stderr, line by line, as a log pipeline would
//! parse it.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{lookout_bin, wait_until, Lookout};

/// No Docker, no cgroups, no GPU: the host and disk collectors alone, on any machine.
const CONFIG: &str = "collectors:\n  docker: false\n  cgroup: false\n  gpu: false\n";

/// The log of a lookout started with `args` and `env`, once it serves /metrics.
fn log_of_run(args: &[&str], env: &[(&str, &str)]) -> String {
    let l = Lookout::start_with_env(CONFIG, args, env);
    wait_until(Duration::from_secs(10), || {
        Some(l.log()).filter(|t| t.contains("serving /metrics"))
    })
    .unwrap_or_else(|| panic!("no `serving /metrics` line; log:\n{}", l.log()))
}

fn assert_json_lines(log: &str) {
    let mut lines = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nlog:\n{log}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        // serde_json's map sorts keys; the order on the line is checked on the text.
        assert!(line.starts_with(r#"{"timestamp":""#), "{line}");
        let level = line
            .find(r#","level":""#)
            .unwrap_or_else(|| panic!("{line}"));
        let message = line
            .find(r#","message":""#)
            .unwrap_or_else(|| panic!("{line}"));
        assert!(level < message, "level before message: {line}");
        assert!(
            ["ERROR", "WARN", "INFO"].contains(&obj["level"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(
            obj["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines >= 2, "expected several lines; log:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(r#""message":"serving /metrics","addr":"127.0.0.1:"#)),
        "{log}"
    );
}

#[test]
fn json_format_writes_one_object_a_line() {
    assert_json_lines(&log_of_run(&["--log.format", "json"], &[]));
}

#[test]
fn json_format_from_the_environment() {
    assert_json_lines(&log_of_run(&[], &[("LOOKOUT_LOG_FORMAT", "json")]));
}

#[test]
fn logfmt_is_the_default_when_stderr_is_not_a_terminal() {
    let log = log_of_run(&[], &[]);
    let mut lines = 0;
    for line in log.lines() {
        assert!(line.starts_with("ts=20"), "ts= first: {line}");
        let level = line.split(' ').nth(1).unwrap_or("");
        assert!(
            ["level=error", "level=warn", "level=info"].contains(&level),
            "level= second: {line}"
        );
        assert!(
            line.split(' ')
                .nth(2)
                .is_some_and(|m| m.starts_with("msg=")),
            "msg= third: {line}"
        );
        assert!(
            !line.contains('\u{1b}'),
            "no colours off a terminal: {line}"
        );
        lines += 1;
    }
    assert!(lines >= 2, "expected several lines; log:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(r#" msg="serving /metrics" addr=127.0.0.1:"#)),
        "{log}"
    );
    let explicit = log_of_run(&["--log.format=logfmt"], &[]);
    assert!(explicit.lines().all(|l| l.starts_with("ts=")), "{explicit}");
}

#[test]
fn an_unknown_format_is_refused_with_the_choices() {
    let out = Command::new(lookout_bin())
        .args(["once", "--log.format", "xml"])
        .output()
        .expect("run lookout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--log.format")
            && stderr.contains("`xml`")
            && stderr.contains("logfmt, json"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing collected");
}
