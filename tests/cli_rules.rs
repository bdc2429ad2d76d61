//! `lookout check` and `lookout test-rules` on good and bad files, through the binary: every
//! problem listed at once as FILE:LINE:COL, the right exit codes, readable diffs.

use std::path::Path;
use std::process::{Command, Output};

fn lookout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env_remove("LOOKOUT_CONFIG")
        .output()
        .expect("run lookout")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const GOOD: &str = r#"groups:
  - name: containers
    rules:
      - alert: WebHighCpu
        scope: container
        match: {name: "web-*"}
        expr: cpu_percent > 80
        for: 2m
        notify: [ops-discord]
      - alert: DataDiskFull
        scope: filesystem
        expr: used_percent > 90
"#;

#[test]
fn check_accepts_good_rules_and_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules/good.yml", GOOD);
    let cfg = write(dir.path(), "lookout.yml", "rule_files: [\"rules/*.yml\"]\n");
    let o = lookout(&["check", "-c", &cfg]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains(": OK; 2 rules from 1 files"), "{out}");
    // Receiver names are listed; with no receivers configured at all, one warning says the
    // alerts reach no one.
    assert!(
        out.contains("\nnotify receivers used: ops-discord\n"),
        "{out}"
    );
    assert!(
        err.contains("warning: the rules name the receivers ops-discord but the config defines no `receivers:`"),
        "{err}"
    );

    // With receivers configured, a rule naming an unknown one is an error.
    let cfg = write(
        dir.path(),
        "lookout.yml",
        "rule_files: [\"rules/*.yml\"]\nreceivers:\n  - name: mail\n    webhook: {url: \"http://127.0.0.1:9/x\"}\n",
    );
    let o = lookout(&["check", "-c", &cfg]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}{err}");
    assert!(
        err.contains("notify: unknown receiver `ops-discord` (named by rule WebHighCpu)"),
        "{err}"
    );
    assert!(err.contains("receivers: mail"), "{err}");
    // Defined: accepted.
    let cfg = write(
        dir.path(),
        "lookout.yml",
        "rule_files: [\"rules/*.yml\"]\nreceivers:\n  - name: ops-discord\n    webhook: {url: \"http://127.0.0.1:9/x\"}\n",
    );
    let o = lookout(&["check", "-c", &cfg]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(out.contains("receivers: ops-discord (webhook)"), "{out}");

    let o = lookout(&["check"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("rules from the embedded defaults"), "{out}");
}

#[test]
fn check_lists_every_rule_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let syntax = write(dir.path(), "rules/a_syntax.yml", "groups:\n  - name: [\n");
    let bad = write(
        dir.path(),
        "rules/b_bad.yml",
        r#"groups:
  - name: g
    rules:
      - alert: A
        scope: containr
        expr: cpu_percent > 1
      - alert: B
        scope: container
        expr: cpu_percnt > 1
      - alert: C
        scope: host
        expr: load1 > 1
        for: 5x
        context: {logs: 5}
      - alert: D
        scope: container
        match: {name: "web-["}
        expr: cpu_percent > 1
      - alert: D
        scope: container
        expr: cpu_percent > 2
        notify: [mail]
"#,
    );
    let cfg = write(dir.path(), "lookout.yml", "rule_files: [\"rules/*.yml\"]\n");
    let o = lookout(&["check", "-c", &cfg]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    for want in [
        format!("{syntax}:3:1: "),
        format!("{bad}:5:16: groups[0].rules[0].scope: unknown scope \"containr\""),
        format!("{bad}:9:15: groups[0].rules[1].expr: unknown variable `cpu_percnt`"),
        format!("{bad}:13:14: groups[0].rules[2].for: invalid duration \"5x\""),
        format!(
            "{bad}:14:25: groups[0].rules[2].context.logs: log lines exist only for containers"
        ),
        format!("{bad}:17:23: groups[0].rules[3].match.name: invalid glob \"web-[\""),
        format!("{bad}:19:16: groups[0].rules[4].alert: duplicate alert name \"D\" in group \"g\""),
        "7 problems in the rule files".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn test_rules_passes_the_default_rules_and_fails_with_a_diff() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(root.join("rules/tests"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yml"))
        .collect();
    files.sort();
    let args: Vec<&str> = std::iter::once("test-rules")
        .chain(files.iter().map(String::as_str))
        .collect();
    let o = lookout(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains(", 0 failed"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rules.yml", GOOD);
    let t = write(
        dir.path(),
        "t.yml",
        r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - name: the disk fills
    targets:
      - {scope: filesystem, name: /data, series: {used_percent: "50 95"}}
    alerts:
      - at: 1m
        firing: [{alertname: DataDiskFull, labels: {mountpoint: /srv}}]
"#,
    );
    let o = lookout(&["test-rules", &t]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("  FAIL  the disk fills\n"), "{out}");
    assert!(
        out.contains("- missing     DataDiskFull{mountpoint=\"/srv\"}"),
        "{out}"
    );
    assert!(
        out.contains("+ unexpected  DataDiskFull{device=\"\", fstype=\"\", mountpoint=\"/data\", severity=\"warning\"}"),
        "{out}"
    );
    assert!(out.ends_with("1 tests, 1 failed\n"), "{out}");
}
