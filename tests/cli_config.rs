//! `lookout check -c FILE` on config and rule files with values that used to panic or to be
//! accepted and then fail at run time: each is refused with exit code 1 and a
//! FILE:LINE:COL: message, and nothing panics.

use std::path::Path;
use std::process::Command;

/// Write `body` to `dir/name`, run `lookout check -c` on `config` (a name in `dir`), and return
/// the exit code and stderr.
fn check(dir: &Path, config: &str) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check", "-c"])
        .arg(dir.join(config))
        .env_remove("LOOKOUT_CONFIG")
        .env_remove("LOOKOUT_LISTEN")
        .env_remove("LOOKOUT_INTERVAL")
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run lookout");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        !err.contains("panicked") && !out.contains("panicked"),
        "lookout panicked:\n{out}{err}"
    );
    (o.status.code(), err)
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// `lookout check` refuses the config `body` with exactly one problem, `want` at `line:col`.
fn refused(body: &str, line: usize, col: usize, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "lookout.yml", body);
    let (code, err) = check(dir.path(), "lookout.yml");
    assert_eq!(code, Some(1), "{body:?}:\n{err}");
    let prefix = format!("{cfg}:{line}:{col}: {want}");
    assert!(err.starts_with(&prefix), "want {prefix:?}, got:\n{err}");
    assert_eq!(err.lines().count(), 1, "one problem:\n{err}");
}

#[test]
fn a_huge_interval_is_located() {
    refused(
        "interval: 99999999999999999999s\n",
        1,
        11,
        "interval: duration \"99999999999999999999s\" is too large: at most 15250w",
    );
}

#[test]
fn a_zero_collector_timeout_is_located() {
    refused(
        "interval: 10s\ncollector_timeout: 0s\n",
        2,
        20,
        "collector_timeout: must be more than 0s (e.g. 5s)",
    );
}

#[test]
fn a_zero_statfs_timeout_is_located() {
    refused(
        "collectors:\n  disk:\n    statfs_timeout: 0s\n",
        3,
        21,
        "collectors.disk.statfs_timeout: must be more than 0s (e.g. 1s)",
    );
}

#[test]
fn a_zero_docker_resync_is_located() {
    refused(
        "docker:\n  resync: 0s\n",
        2,
        11,
        "docker.resync: must be at least 1s (e.g. 60s), got 0s",
    );
}

#[test]
fn labels_that_sanitise_alike_are_located_at_the_later_one() {
    refused(
        "docker:\n  labels: [a.b, a-b]\n",
        2,
        17,
        "docker.labels[1]: \"a-b\" and docker.labels[0] \"a.b\" both become the label \
         container_label_a_b",
    );
    refused(
        "docker:\n  labels:\n    - com.example.team\n    - com.example.team\n",
        4,
        7,
        "docker.labels[1]: \"com.example.team\" is already listed as docker.labels[0]",
    );
}

#[test]
fn a_huge_for_in_a_rule_file_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write(
        dir.path(),
        "rules.yml",
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        scope: host\n        \
         expr: load1 > 1\n        for: 99999999999999999999s\n",
    );
    write(dir.path(), "lookout.yml", "rule_files: [rules.yml]\n");
    let (code, err) = check(dir.path(), "lookout.yml");
    assert_eq!(code, Some(1), "{err}");
    let want = format!(
        "{rules}:7:14: groups[0].rules[0].for: duration \"99999999999999999999s\" is too large"
    );
    assert!(err.starts_with(&want), "want {want:?}, got:\n{err}");
    assert!(err.contains("1 problems in the rule files"), "{err}");
}

#[test]
fn web_settings_and_rule_file_globs_are_located() {
    refused(
        "web:\n  telemetry_path: /healthz\n",
        2,
        19,
        "web.telemetry_path: \"/healthz\" is one of lookout's own paths",
    );
    refused(
        "web:\n  idle_timeout: 0s\n",
        2,
        17,
        "web.idle_timeout: must be more than 0s (e.g. 60s)",
    );
    refused(
        "rule_files:\n  - rules/*.yml\n  - \"rules/**.yml\"\n",
        3,
        5,
        "rule_files[1]: invalid glob \"rules/**.yml\": recursive wildcards must form a single \
         path component",
    );
}
