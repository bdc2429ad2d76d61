//! A log line in another alphabet through string functions, end to end: a container prints
//! "ééééé FATAL", a rule takes `str::substring` of its `last_log_match`. evalexpr's own
//! substring sliced by byte and panicked under the engine lock, which ended the collection loop
//! for good; now the rule fires, an out-of-range substring is that rule's counted failure, and
//! the loop goes on.
//!
//! Needs Docker. Without it the test says so and passes, unless `LOOKOUT_REQUIRE_DOCKER=1`.

mod support;

use std::time::Duration;

use support::{get, sample, wait_until, Container, Lookout};

const RULES: &str = r#"groups:
  - name: logs
    rules:
      - alert: FatalLine
        scope: container
        expr: str::substring(last_log_match, 0, 3) == "ééé"
        annotations: {summary: "{{ last_log_match }}"}
      - alert: TailTooShort
        scope: container
        expr: str::substring(last_log_match, 6, 40) == "FATAL"
"#;

#[test]
fn a_non_ascii_log_line_in_string_functions_does_not_stop_the_loop() {
    if !support::docker_or_skip("a_non_ascii_log_line_in_string_functions_does_not_stop_the_loop") {
        return;
    }
    let printer = Container::run(
        "lookout-expr-utf8",
        &["--label", "lookout.logs=FATAL"],
        &[
            "sh",
            "-c",
            "while :; do echo 'ééééé FATAL'; sleep 0.2; done",
        ],
    );
    let rules = tempfile::tempdir().unwrap();
    let rules_file = rules.path().join("rules.yml");
    std::fs::write(&rules_file, RULES).unwrap();
    let lk = Lookout::start(
        &format!(
            "interval: 1s\ndocker:\n  include: [\"{}\"]\nrule_files: [\"{}\"]\n",
            printer.name,
            rules_file.display()
        ),
        &[],
    );

    let alerts = || -> serde_json::Value {
        serde_json::from_str(&get(&lk.addr, "/api/v1/alerts").text()).unwrap_or_default()
    };
    let fired = wait_until(Duration::from_secs(30), || {
        let a = alerts();
        a["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "FatalLine" && a["state"] == "firing")
            .cloned()
    });
    let fired = fired.unwrap_or_else(|| {
        panic!(
            "FatalLine never fired; alerts {}\nlog:\n{}",
            alerts(),
            lk.log()
        )
    });
    assert_eq!(fired["annotations"]["summary"], "ééééé FATAL");

    // The collection loop goes on for 3 more intervals (and more) after the line.
    let stamp = || sample(&lk.metrics(), "lookout_collection_timestamp_seconds", &[]);
    let first = stamp().unwrap();
    let mut last = first;
    for _ in 0..4 {
        let next = wait_until(Duration::from_secs(5), || stamp().filter(|t| *t > last));
        last = next.unwrap_or_else(|| panic!("collection stopped at {last}; log:\n{}", lk.log()));
    }
    assert!(last - first >= 3.0, "{first} -> {last}");

    // The rule whose substring is out of range fails every cycle, counted, without a panic;
    // FatalLine no longer fails (it did while the line was still "", before the first match).
    let failures = |rule: &str| {
        let label = format!("rule=\"{rule}\"");
        sample(
            &lk.metrics(),
            "lookout_rule_evaluation_failures_total",
            &[&label],
        )
        .unwrap_or(0.0)
    };
    let (tail, fatal) = (failures("TailTooShort"), failures("FatalLine"));
    let after = last;
    wait_until(Duration::from_secs(10), || {
        stamp().filter(|t| *t >= after + 2.0)
    })
    .expect("two more cycles");
    assert!(
        failures("TailTooShort") >= tail + 2.0,
        "TailTooShort {tail} -> {}",
        failures("TailTooShort")
    );
    assert_eq!(failures("FatalLine"), fatal);
    let log = lk.log();
    assert!(!log.contains("panicked"), "log:\n{log}");
}
