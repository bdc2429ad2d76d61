//! node_exporter's textfile collector in the real binary: a textfile directory served on
//! /metrics (promtool clean), a broken file and a file that takes one of lookout's own names
//! costing only themselves, and the same directory read by Debian's node_exporter.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{sample, wait_until, Lookout};

/// Counters, gauges with labels across two files, a histogram, a summary, an untyped family
/// whose series lack a label the others have.
const A_PROM: &str = "\
# HELP backup_age_seconds Age of the last backup.
# TYPE backup_age_seconds gauge
backup_age_seconds{job=\"db\"} 3600
# HELP jobs_total Jobs run.
# TYPE jobs_total counter
jobs_total{queue=\"mail\"} 1234567
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le=\"0.25\"} 1
rpc_seconds_bucket{le=\"1000000\"} 4
rpc_seconds_sum 2.5
rpc_seconds_count 5
# TYPE gc_seconds summary
gc_seconds{quantile=\"0.5\"} 0.01
gc_seconds{quantile=\"0.99\"} 0.3
gc_seconds_sum 4
gc_seconds_count 100
apt_upgrades_pending{origin=\"security\"} 4
apt_upgrades_pending 2
";

const B_PROM: &str = "\
# HELP backup_age_seconds Age of the last backup.
# TYPE backup_age_seconds gauge
backup_age_seconds{job=\"www\"} 60
";

fn write(dir: &Path, name: &str, text: &str) {
    // Written aside and renamed, as a cron job should, so that no cycle reads half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn start(dir: &Path) -> Lookout {
    Lookout::start(
        "interval: 200ms\n",
        &[
            "--collector.disable-defaults",
            "--collector.textfile",
            "--collector.stat",
            "--collector.textfile.directory",
            dir.to_str().unwrap(),
        ],
    )
}

/// The first exposition for which `ok` holds (within 10 s).
fn metrics_until(l: &Lookout, what: &str, ok: impl Fn(&str) -> bool) -> String {
    wait_until(Duration::from_secs(10), || {
        Some(l.metrics()).filter(|m| ok(m))
    })
    .unwrap_or_else(|| panic!("{what}; /metrics:\n{}\nlog:\n{}", l.metrics(), l.log()))
}

fn scrape_error(m: &str) -> Option<f64> {
    sample(m, "node_textfile_scrape_error", &[])
}

fn assert_promtool_clean(test: &str, m: &str) {
    if let Some(problems) = support::promtool_problems(test, m) {
        assert!(problems.is_empty(), "promtool: {problems:#?}\n{m}");
    }
}

/// The series of the files, as both lookout and node_exporter must give them.
fn assert_files_series(m: &str) {
    for (line, value) in [
        (r#"backup_age_seconds{job="db"}"#, 3600.0),
        (r#"backup_age_seconds{job="www"}"#, 60.0),
        (r#"jobs_total{queue="mail"}"#, 1234567.0),
        (r#"rpc_seconds_bucket{le="0.25"}"#, 1.0),
        (r#"rpc_seconds_bucket{le="1e+06"}"#, 4.0),
        (r#"rpc_seconds_bucket{le="+Inf"}"#, 5.0),
        ("rpc_seconds_sum", 2.5),
        ("rpc_seconds_count", 5.0),
        (r#"gc_seconds{quantile="0.99"}"#, 0.3),
        ("gc_seconds_count", 100.0),
        (r#"apt_upgrades_pending{origin=""}"#, 2.0),
        (r#"apt_upgrades_pending{origin="security"}"#, 4.0),
    ] {
        let got = m
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(got, Some(value), "{line} in:\n{m}");
    }
    for header in [
        "# TYPE backup_age_seconds gauge",
        "# HELP backup_age_seconds Age of the last backup.",
        "# TYPE jobs_total counter",
        "# TYPE rpc_seconds histogram",
        "# TYPE gc_seconds summary",
        "# TYPE apt_upgrades_pending untyped",
    ] {
        assert_eq!(
            m.lines().filter(|l| *l == header).count(),
            1,
            "{header} in:\n{m}"
        );
    }
}

#[test]
fn lookout_serves_a_textfile_directory_and_a_bad_file_costs_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a.prom", A_PROM);
    write(d, "b.prom", B_PROM);
    write(d, "notes.txt", "not a textfile\n");
    let l = start(d);
    let file = |name: &str| format!("file=\"{}\"", d.join(name).display());

    // Every file read, no error, the exposition clean.
    let m = metrics_until(&l, "the textfiles were not served", |m| {
        scrape_error(m) == Some(0.0) && m.contains("backup_age_seconds{job=\"www\"}")
    });
    assert_files_series(&m);
    for name in ["a.prom", "b.prom"] {
        let mtime = sample(&m, "node_textfile_mtime_seconds", &[&file(name)]).unwrap();
        let now = lookout::now_unix();
        assert!(mtime <= now && mtime > now - 600.0, "{name}: {mtime}");
    }
    assert!(!m.contains("notes.txt"), "{m}");
    assert_eq!(
        sample(&m, "lookout_collector_success", &["collector=\"textfile\""]),
        Some(1.0)
    );
    assert_promtool_clean("textfile_served", &m);
    let om = support::request(
        &l.addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .unwrap()
    .text();
    for line in [
        "# TYPE jobs counter",
        "# TYPE apt_upgrades_pending unknown",
        "# TYPE gc_seconds summary",
        "rpc_seconds_bucket{le=\"+Inf\"} 5",
        "# EOF",
    ] {
        assert!(om.lines().any(|l| l == line), "{line} in:\n{om}");
    }

    // A broken file: skipped whole, the error set, the other files' series stay.
    write(d, "broken.prom", "broken_ok 1\nbroken_bad{x=\"1\"} one\n");
    let m = metrics_until(&l, "the broken file did not set the error", |m| {
        scrape_error(m) == Some(1.0)
    });
    assert_files_series(&m);
    assert!(!m.contains("broken_ok"), "nothing of a broken file:\n{m}");
    assert!(sample(&m, "node_textfile_mtime_seconds", &[&file("a.prom")]).is_some());
    assert!(sample(&m, "node_textfile_mtime_seconds", &[&file("broken.prom")]).is_none());
    assert_promtool_clean("textfile_broken", &m);
    // Logged once, naming the file, the line and the column, however many cycles pass.
    std::thread::sleep(Duration::from_millis(1200));
    let needle = format!(
        "{}:2:19: expected a number as the sample's value",
        d.join("broken.prom").display()
    );
    assert_eq!(l.log().matches(&needle).count(), 1, "log:\n{}", l.log());

    // A family named like one of lookout's own: dropped, counted, logged with file and metric.
    std::fs::remove_file(d.join("broken.prom")).unwrap();
    write(
        d,
        "own.prom",
        "# TYPE node_forks_total counter\nnode_forks_total 424242\n",
    );
    let m = metrics_until(&l, "the own family was not dropped", |m| {
        m.contains(&file("own.prom")) && !m.contains(&file("broken.prom"))
    });
    assert_eq!(scrape_error(&m), Some(1.0), "{m}");
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("# TYPE node_forks_total "))
            .count(),
        1,
        "{m}"
    );
    assert!(!m.contains("424242"), "{m}");
    assert!(sample(&m, "node_forks_total", &[]).is_some(), "{m}");
    assert_files_series(&m);
    assert_promtool_clean("textfile_own_name", &m);
    let needle = format!(
        "{}: node_forks_total is dropped: lookout exports node_forks_total itself",
        d.join("own.prom").display()
    );
    wait_until(Duration::from_secs(5), || {
        l.log().contains(&needle).then_some(())
    })
    .unwrap_or_else(|| panic!("{needle} not logged:\n{}", l.log()));

    // All well again.
    std::fs::remove_file(d.join("own.prom")).unwrap();
    metrics_until(&l, "the error did not clear", |m| {
        scrape_error(m) == Some(0.0)
    });
}

#[test]
fn without_a_directory_only_the_error_gauge_at_zero() {
    let out = Command::new(support::lookout_bin())
        .args([
            "once",
            "--collector.disable-defaults",
            "--collector.textfile",
        ])
        .env("LOOKOUT_LOG", "warn")
        .output()
        .expect("lookout once");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(scrape_error(&text), Some(0.0), "{text}");
    assert!(!text.contains("node_textfile_mtime_seconds"), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills and reaps the child when dropped, on panic too.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An exposition as family → (`# TYPE`, `# HELP`, series line → value).
type Families = BTreeMap<String, (String, String, BTreeMap<String, f64>)>;

/// Group the text format by family (each family's samples follow its header).
fn families(text: &str) -> Families {
    let mut out = Families::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            current = name.to_string();
            out.entry(current.clone()).or_default().1 = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            current = name.to_string();
            out.entry(current.clone()).or_default().0 = kind.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
            out.entry(current.clone())
                .or_default()
                .2
                .insert(series.to_string(), value);
        }
    }
    out
}

#[test]
fn agrees_with_node_exporter_on_the_same_directory() {
    let bin = "/usr/bin/prometheus-node-exporter";
    if !support::tool_or_skip("agrees_with_node_exporter_on_the_same_directory", bin) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "a.prom", A_PROM);
    write(d, "b.prom", B_PROM);
    // Refused by both: a timestamp, and a line that does not parse.
    write(d, "c.prom", "stamped 1 1700000000000\n");
    write(d, "d.prom", "unparsed{ 1\n");
    let dir_flag = format!("--collector.textfile.directory={}", d.display());

    let addr = format!("127.0.0.1:{}", support::free_port());
    let _guard = KillOnDrop(
        Command::new(bin)
            .arg(format!("--web.listen-address={addr}"))
            .args([
                "--collector.disable-defaults",
                "--collector.textfile",
                &dir_flag,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter"),
    );
    let theirs = wait_until(Duration::from_secs(10), || {
        support::request(&addr, "GET", "/metrics", &[])
            .ok()
            .map(|r| r.text())
            .filter(|body| body.contains("node_textfile_scrape_error"))
    })
    .unwrap_or_else(|| panic!("node_exporter did not answer on {addr}"));
    let ours = support::lookout_once(&[
        "--collector.disable-defaults",
        "--collector.textfile",
        &dir_flag,
    ]);
    assert_files_series(&ours);
    assert_files_series(&theirs);

    let (theirs, ours) = (families(&theirs), families(&ours));
    let mut problems = Vec::new();
    let mut compared = 0;
    for (name, (kind, help, series)) in &theirs {
        let exporter_own = [
            "node_exporter_",
            "node_scrape_",
            "go_",
            "process_",
            "promhttp_",
        ]
        .iter()
        .any(|p| name.starts_with(p));
        if exporter_own {
            continue;
        }
        compared += 1;
        match ours.get(name) {
            None => problems.push(format!("{name}: node_exporter has it, lookout does not")),
            Some((k, h, s)) => {
                if (k, h) != (kind, help) {
                    problems.push(format!(
                        "{name}: {k} {h:?}, node_exporter's {kind} {help:?}"
                    ));
                }
                if s != series {
                    problems.push(format!("{name}: {s:?}, node_exporter's {series:?}"));
                }
            }
        }
    }
    for (name, (_, _, series)) in &ours {
        let lookout_own = name.starts_with("lookout_") || name.starts_with("process_");
        if !lookout_own && !series.is_empty() && !theirs.contains_key(name) {
            problems.push(format!("{name}: lookout has it, node_exporter does not"));
        }
    }
    assert!(compared >= 7, "too few families compared: {compared}");
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        ours["node_textfile_scrape_error"].2["node_textfile_scrape_error"],
        1.0
    );
}
