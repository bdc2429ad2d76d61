//! cAdvisor's writable-layer series and Docker label globs, against the real daemon: containers
//! started here, read back through /metrics, /api/v1/containers and /api/v1/alerts.

mod support;

use std::time::Duration;

use support::{docker, get, sample, wait_until, Container, Lookout};

const MIB: f64 = 1048576.0;

fn inspect(id: &str, format: &str) -> String {
    let out = docker(&["inspect", "--format", format, id]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `df --output=FIELD` of a path: the filesystem holding it, as df sees it.
fn df(path: &str, field: &str) -> String {
    let out = std::process::Command::new("df")
        .args(["-B1", &format!("--output={field}"), path])
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// A container writes 5 MiB into its writable layer: within a few one-second passes,
/// container_fs_usage_bytes says so, with the filesystem's size as the limit and its device as
/// `device`; a rule on `fs_usage_bytes` fires; more data shows in a later pass; removing the
/// container drops its series.
#[test]
fn a_container_writing_5_mib_shows_in_container_fs_usage_bytes() {
    if !support::docker_or_skip("a_container_writing_5_mib_shows_in_container_fs_usage_bytes") {
        return;
    }
    let c = Container::run(
        "lookout-it-fsu",
        &[],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/fill bs=1048576 count=5 && sync && sleep 3600",
        ],
    );
    let driver = inspect(&c.id, "{{.GraphDriver.Name}}");
    if driver != "overlay2" {
        eprintln!("SKIP: the daemon's storage driver is {driver:?}, not overlay2");
        return;
    }
    let upper = inspect(&c.id, "{{.GraphDriver.Data.UpperDir}}");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: disk\n    rules:\n      - alert: LayerBig\n        scope: container\n        \
         expr: fs_usage_bytes > 4194304\n",
    )
    .unwrap();
    let cfg = format!(
        "interval: 1s\ndocker:\n  include: [\"lookout-it-fsu-*\"]\nrule_files: [\"{}\"]\n\
         collectors:\n  fs_usage_interval: 1s\n  fs_usage_budget: 1s\n",
        rules.display()
    );
    let lk = Lookout::start(&cfg, &[]);
    let n = format!("name=\"{}\"", c.name);
    let usage = |at_least: f64| {
        wait_until(Duration::from_secs(20), || {
            sample(&lk.metrics(), "container_fs_usage_bytes", &[&n]).filter(|v| *v >= at_least)
        })
    };
    let v = usage(5.0 * MIB).unwrap_or_else(|| {
        panic!(
            "container_fs_usage_bytes never reached 5 MiB:\n{}\nlog:\n{}",
            lk.metrics(),
            lk.log()
        )
    });
    // The file, its directory entry and the layer's few others: not much more.
    assert!(v < 6.0 * MIB, "usage {v}");

    let m = lk.metrics();
    // The filesystem holding the layer, as df names and sizes it.
    let device = df(&upper, "source");
    let dev = format!("device=\"{device}\"");
    assert_eq!(
        sample(&m, "container_fs_usage_bytes", &[&n, &dev]),
        Some(v),
        "{m}"
    );
    let size: f64 = df(&upper, "size").parse().unwrap();
    assert_eq!(
        sample(&m, "container_fs_limit_bytes", &[&n, &dev]),
        Some(size)
    );
    let itotal: f64 = df(&upper, "itotal").parse().unwrap();
    if itotal > 0.0 {
        assert_eq!(
            sample(&m, "container_fs_inodes_total", &[&n, &dev]),
            Some(itotal)
        );
        let ifree = sample(&m, "container_fs_inodes_free", &[&n, &dev]).unwrap();
        assert!(ifree > 0.0 && ifree <= itotal);
    }
    assert!(sample(&m, "lookout_fs_usage_containers", &["result=\"measured\""]).unwrap() >= 1.0);
    assert_eq!(
        sample(&m, "lookout_fs_usage_containers", &["result=\"unreached\""]),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "lookout_collector_success", &["collector=\"fs_usage\""]),
        Some(1.0)
    );
    if let Some(problems) = support::promtool_problems("fs_usage", &m) {
        assert!(problems.is_empty(), "promtool: {problems:?}");
    }

    // The rule variable: the alert fires for this container.
    let fired = wait_until(Duration::from_secs(10), || {
        let alerts = get(&lk.addr, "/api/v1/alerts").text();
        (alerts.contains("\"LayerBig\"") && alerts.contains(&c.name)).then_some(alerts)
    });
    assert!(fired.is_some(), "LayerBig did not fire:\n{}", lk.log());

    // 3 MiB more: a later pass sees it.
    let out = docker(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "dd if=/dev/zero of=/more bs=1048576 count=3 && sync",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    usage(8.0 * MIB).unwrap_or_else(|| panic!("the new data never showed:\n{}", lk.metrics()));

    // Removed: its series go.
    let out = c.docker(&["rm", "-f"]);
    assert!(out.status.success());
    let gone = wait_until(Duration::from_secs(15), || {
        let m = lk.metrics();
        (!m.contains(&n)).then_some(())
    });
    assert!(gone.is_some(), "series of the removed container stayed");
}

/// `docker.labels` globs export every matching label as container_label_<sanitized>, on
/// /metrics and in /api/v1/containers; labels the globs do not match stay out.
#[test]
fn label_globs_export_every_matching_docker_label() {
    if !support::docker_or_skip("label_globs_export_every_matching_docker_label") {
        return;
    }
    let c = Container::run(
        "lookout-it-lblglob",
        &[
            "--label",
            "com.example.team=ops",
            "--label",
            "com.example.tier-x=web",
            "--label",
            "com.example.tier.x=shadowed",
            "--label",
            "db.password=hunter2",
            "--label",
            "team=core",
        ],
        &["sleep", "3600"],
    );
    let cfg = "interval: 1s\ndocker:\n  include: [\"lookout-it-lblglob-*\"]\n  \
               labels: [team, \"com.example.*\"]\ncollectors:\n  fs_usage: false\n";
    let lk = Lookout::start(cfg, &[]);
    let n = format!("name=\"{}\"", c.name);
    let line = wait_until(Duration::from_secs(15), || {
        lk.metrics()
            .lines()
            .find(|l| l.starts_with("lookout_container_info{") && l.contains(&n))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no series for the container:\n{}", lk.metrics()));
    // Listed key first, then the glob's matches in key order; tier.x shares tier-x's name
    // and comes later in key order ('-' < '.'), so it is left out.
    let labels = format!(
        "{n},container_label_team=\"core\",container_label_com_example_team=\"ops\",\
         container_label_com_example_tier_x=\"web\","
    );
    assert!(line.contains(&labels), "{line}");
    assert!(
        !line.contains("shadowed") && !line.contains("hunter2"),
        "{line}"
    );
    let m = lk.metrics();
    if let Some(problems) = support::promtool_problems("label_globs", &m) {
        assert!(problems.is_empty(), "promtool: {problems:?}");
    }
    // The JSON API lists the exported labels by their Docker keys, and no others.
    let api: serde_json::Value =
        serde_json::from_str(&get(&lk.addr, "/api/v1/containers").text()).unwrap();
    let me = api["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == c.name.as_str())
        .unwrap()
        .clone();
    let mut keys: Vec<&str> = me["labels"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "com.example.team",
            "com.example.tier-x",
            "com.example.tier.x",
            "team"
        ]
    );
    // The fs_usage collector is off: no fs series, no pass figures.
    assert!(!m.contains("container_fs_usage_bytes{"), "{m}");
    assert!(!m.contains("lookout_fs_usage_containers"));
}

/// The flags reach the config: `--collector.fs_usage.interval` and `--collector.fs_usage.budget`
/// override the file, and a budget past the interval is refused, naming the flag.
#[test]
fn fs_usage_flags_override_the_config() {
    let check = |args: &[&str]| {
        let out = std::process::Command::new(support::lookout_bin())
            .arg("check")
            .args(args)
            .output()
            .expect("run lookout check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check(&["--collector.fs_usage.interval", "10s"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "--collector.fs_usage.interval: the fs_usage budget (30s) may not exceed its \
             interval (10s)"
        ),
        "{err}"
    );
    let (code, err) = check(&[
        "--collector.fs_usage.interval",
        "10s",
        "--collector.fs_usage.budget",
        "5s",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check(&["--collector.fs_usage.budget", "0s"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--collector.fs_usage.budget \"0s\": must be more than 0s"),
        "{err}"
    );
}
