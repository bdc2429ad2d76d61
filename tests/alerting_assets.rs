//! The Alertmanager assets (`alertmanager/`): the PromQL twins of lookout's default rules pass
//! Debian's `promtool check rules` and their unit tests, each twin is tested firing and not
//! firing, every default rule of lookout has its twin, Debian's `amtool` accepts
//! `alertmanager.yml`, and each twin routes there to exactly the receivers its lookout rule
//! names in `notify:`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

const PROMTOOL: &str = "/usr/bin/promtool";
const AMTOOL: &str = "/usr/bin/amtool";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Run a tool; its status and stdout + stderr.
fn run(tool: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A rule of a rule file: its alert name and the rest of its mapping.
fn alerting_rules(file: &Value) -> Vec<(String, Value)> {
    file["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|r| Some((r["alert"].as_str()?.to_string(), r)))
        .collect()
}

/// The PromQL twins, by alert name.
fn twins() -> BTreeMap<String, Value> {
    alerting_rules(&yaml(&repo("alertmanager/prometheus-rules.yml")))
        .into_iter()
        .collect()
}

/// lookout's default rules (`rules/*.yml`), by alert name.
fn lookout_rules() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rules/*.yml");
    for f in files {
        for (name, rule) in alerting_rules(&yaml(&f)) {
            out.insert(name, rule);
        }
    }
    out
}

#[test]
fn promtool_checks_the_twins_and_passes_their_unit_tests() {
    if !support::tool_or_skip("promtool_checks_the_twins", PROMTOOL) {
        return;
    }
    let (ok, out) = run(
        PROMTOOL,
        &["check", "rules", "alertmanager/prometheus-rules.yml"],
    );
    assert!(ok, "promtool check rules:\n{out}");
    let n = twins().len();
    assert!(
        out.contains(&format!("SUCCESS: {n} rules found")),
        "promtool saw another number of rules than the {n} alerts in the file:\n{out}"
    );
    let (ok, out) = run(
        PROMTOOL,
        &["test", "rules", "alertmanager/prometheus-rules.test.yml"],
    );
    assert!(ok, "promtool test rules:\n{out}");
}

/// Each twin has a unit test where it fires and one where it does not.
#[test]
fn every_twin_is_tested_firing_and_not_firing() {
    let tests = yaml(&repo("alertmanager/prometheus-rules.test.yml"));
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in tests["tests"].as_sequence().expect("tests:") {
        for case in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap_or_default().to_string();
            match case["exp_alerts"].as_sequence() {
                Some(a) if !a.is_empty() => fires.insert(name),
                _ => quiet.insert(name),
            };
        }
    }
    let mut problems = Vec::new();
    for name in twins().keys() {
        if !fires.contains(name) {
            problems.push(format!("{name}: no test where it fires"));
        }
        if !quiet.contains(name) {
            problems.push(format!("{name}: no test where it does not fire"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every default rule of lookout has its PromQL twin, with the same severity.
#[test]
fn every_default_rule_has_a_twin() {
    let twins = twins();
    let mut problems = Vec::new();
    for (name, rule) in lookout_rules() {
        let severity = rule["severity"].as_str().unwrap_or("warning");
        match twins.get(&name) {
            None => problems.push(format!(
                "{name}: no twin in alertmanager/prometheus-rules.yml"
            )),
            Some(t) if t["labels"]["severity"].as_str() != Some(severity) => {
                problems.push(format!(
                    "{name}: severity {severity} in rules/, {:?} in the twin",
                    t["labels"]["severity"]
                ))
            }
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn amtool_accepts_the_alertmanager_config() {
    if !support::tool_or_skip("amtool_accepts_the_alertmanager_config", AMTOOL) {
        return;
    }
    let (ok, out) = run(AMTOOL, &["check-config", "alertmanager/alertmanager.yml"]);
    assert!(ok, "amtool check-config:\n{out}");
    assert!(out.contains("2 receivers"), "{out}");
    let am = yaml(&repo("alertmanager/alertmanager.yml"));
    let kinds: BTreeSet<&str> = am["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_mapping().unwrap().keys())
        .filter_map(|k| k.as_str())
        .filter(|k| k.ends_with("_configs"))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["discord_configs", "email_configs"]),
        "{am:?}"
    );
}

/// `amtool config routes test` sends each twin's alert to exactly the receivers its lookout
/// rule names (`notify:`), so alerting from Prometheus reaches the same people.
#[test]
fn each_twin_routes_to_the_receivers_its_lookout_rule_names() {
    if !support::tool_or_skip("each_twin_routes_to_the_receivers", AMTOOL) {
        return;
    }
    let twins = twins();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, rule) in lookout_rules() {
        let Some(twin) = twins.get(&name) else {
            continue; // every_default_rule_has_a_twin reports it
        };
        let severity = twin["labels"]["severity"].as_str().unwrap_or("warning");
        let want: BTreeSet<String> = rule["notify"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let (ok, out) = run(
            AMTOOL,
            &[
                "config",
                "routes",
                "test",
                "--config.file=alertmanager/alertmanager.yml",
                &format!("alertname={name}"),
                &format!("severity={severity}"),
            ],
        );
        assert!(ok, "amtool config routes test {name}:\n{out}");
        // The answer is the last line ("email,discord"); amtool warns on stderr before it.
        let got: BTreeSet<String> = out
            .lines()
            .rfind(|l| !l.trim().is_empty() && !l.starts_with("Warning"))
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if got != want {
            problems.push(format!(
                "{name} ({severity}): Alertmanager routes to {got:?}, rules/ notifies {want:?}"
            ));
        }
        checked += 1;
    }
    assert!(checked > 0, "no rule checked");
    assert!(problems.is_empty(), "{problems:#?}");
}
