//! The Alertmanager assets (`alertmanager/`): the PromQL twins of lookout's default rules pass
//! Debian's `promtool check rules` and their unit tests, each twin is tested firing and not
//! firing, every default rule of lookout has its twin, Debian's `amtool` accepts
//! `alertmanager.yml`, and each twin routes there to exactly the receivers its lookout rule
//! names in `notify:`; and, end to end, Prometheus evaluates the twins over a real lookout and
//! Alertmanager delivers them to Discord and mail.

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

/// `alertmanager.yml` with only what a test machine needs changed: the Discord webhook and the
/// SMTP server are the test's (plain SMTP, no AUTH), and groups are sent after 1 s. The route
/// tree, receivers and inhibitions stay as shipped.
fn alertmanager_config_for_test(discord_url: &str, smtp_port: u16) -> String {
    let mut am = yaml(&repo("alertmanager/alertmanager.yml"));
    let g = am["global"].as_mapping_mut().expect("global:");
    g.insert(
        "smtp_smarthost".into(),
        format!("127.0.0.1:{smtp_port}").into(),
    );
    g.insert("smtp_require_tls".into(), false.into());
    g.remove("smtp_auth_username");
    g.remove("smtp_auth_password_file");
    am["route"]["group_wait"] = "1s".into();
    am["route"]["group_interval"] = "1s".into();
    for r in am["receivers"].as_sequence_mut().unwrap() {
        if let Some(d) = r.get_mut("discord_configs") {
            d[0]["webhook_url"] = discord_url.into();
        }
    }
    serde_yaml::to_string(&am).unwrap()
}

/// Alerting from Prometheus, end to end: Debian's Prometheus evaluates the twins over a real
/// lookout's series, and Debian's Alertmanager 0.25 delivers through the shipped route tree, by
/// `discord_configs` to a strict fake Discord and by `email_configs` to a real SMTP server: a
/// crashed container and the kernel's OOM kill to Discord only, a container's OOM kill to
/// Discord and mail.
#[test]
fn prometheus_and_alertmanager_deliver_the_twins_alerts() {
    let test = "prometheus_and_alertmanager_deliver_the_twins_alerts";
    if !support::tool_or_skip(test, support::prometheus::BIN)
        || !support::alertmanager::alertmanager_or_skip(test)
        || !support::smtp::smtp_tools_or_skip(test)
        || !support::docker_or_skip(test)
    {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let discord = rt.block_on(support::discord::FakeDiscord::start());
    let smtp = support::smtp::SmtpSink::start(&support::smtp::SinkOptions::default());
    let am = support::alertmanager::Alertmanager::start(&alertmanager_config_for_test(
        &discord.webhook_url(),
        smtp.port(),
    ));
    let pid = std::process::id();
    let lookout = support::Lookout::start(
        &format!(
            "interval: 1s\nrule_files: []\ndocker:\n  include: [\"lookout-amit-*-{pid}-*\"]\n"
        ),
        &[],
    );
    let prom = support::prometheus::Prometheus::start_with(
        &[&lookout.addr],
        &format!(
            "rule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n",
            repo("alertmanager/prometheus-rules.yml").display(),
            am.addr
        ),
    );
    assert!(
        prom.wait_for(
            "up{job=\"lookout\"} == 1",
            std::time::Duration::from_secs(40)
        )
        .is_some(),
        "lookout never up:\n{}",
        prom.log()
    );
    let crashed = support::Container::run("lookout-amit-crashed", &[], &["sh", "-c", "exit 3"]);
    // Writes past its 16 MiB limit into tmpfs: the kernel OOM-kills it (exit 137).
    let oomed = support::Container::run(
        "lookout-amit-oom",
        &[
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
            "--shm-size",
            "64m",
        ],
        &[
            "sh",
            "-c",
            "sleep 1; head -c 60000000 /dev/zero > /dev/shm/x; sleep 3600",
        ],
    );
    let timeout = std::time::Duration::from_secs(90);
    let titles = |d: &support::discord::FakeDiscord| -> Vec<String> {
        d.messages()
            .iter()
            .flat_map(|m| m.embeds())
            .filter_map(|e| e["title"].as_str().map(str::to_string))
            .collect()
    };
    let in_discord = |alert: &str, name: &str| {
        support::wait_until(timeout, || {
            titles(&discord)
                .into_iter()
                .find(|t| t.contains(alert))
                .filter(|_| {
                    discord
                        .messages()
                        .iter()
                        .any(|m| m.body.to_string().contains(name))
                })
        })
        .unwrap_or_else(|| {
            panic!(
                "no {alert} for {name} in Discord: {:?}\nAlertmanager:\n{}\nPrometheus alerts: {:?}",
                titles(&discord),
                am.log(),
                prom.query("ALERTS")
            )
        })
    };
    let subjects = |s: &support::smtp::SmtpSink| -> Vec<String> {
        s.messages()
            .iter()
            .filter_map(|m| m.header("Subject").map(str::to_string))
            .collect()
    };
    in_discord("ContainerDown", &crashed.name);
    in_discord("ContainerOomKilled", &oomed.name);
    // The kernel's OOM kill is a host alert too, to Discord.
    in_discord("HostOomKillDetected", "HostOomKillDetected");
    let mailed = support::wait_until(timeout, || {
        subjects(&smtp)
            .into_iter()
            .find(|s| s.contains("ContainerOomKilled"))
    });
    assert!(
        mailed.is_some(),
        "no ContainerOomKilled mail: {:?}\nAlertmanager:\n{}",
        subjects(&smtp),
        am.log()
    );
    // A container that is down and the kernel's OOM kill go to Discord only: give a mail time
    // to arrive, then none.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mails = subjects(&smtp);
    for alert in ["ContainerDown", "HostOomKillDetected"] {
        assert!(
            !mails.iter().any(|s| s.contains(alert)),
            "{alert} went by mail: {mails:?}"
        );
    }
    // Every post was a valid Discord webhook call (the fake answers 4xx to anything else).
    assert!(
        discord.statuses().keys().all(|s| *s < 300),
        "{:?}",
        discord.statuses()
    );
}
