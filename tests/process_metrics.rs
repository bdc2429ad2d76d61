//! The `process_*` self-metrics: what `lookout once` prints for its own process, typed and
//! named as client_golang's process collector does, and accepted by `promtool check metrics`.

mod support;

use std::process::Command;

use lookout::exposition::{render, Format};
use lookout::snapshot::Snapshot;
use support::{lookout_bin, promtool_problems, sample};

/// No Docker, no cgroups, no GPU: the host and disk collectors alone, on any machine.
const CONFIG: &str = "collectors:\n  docker: false\n  cgroup: false\n  gpu: false\n";

const GAUGES: [&str; 6] = [
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
];

/// The `process_*` lines of an exposition (headers and samples).
fn process_lines(exposition: &str) -> String {
    exposition
        .lines()
        .filter(|l| {
            l.starts_with("process_")
                || l.starts_with("# HELP process_")
                || l.starts_with("# TYPE process_")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn assert_types(text: &str) {
    assert!(
        text.contains("# TYPE process_cpu_seconds_total counter\n"),
        "{text}"
    );
    for g in GAUGES {
        assert!(text.contains(&format!("# TYPE {g} gauge\n")), "{g}: {text}");
    }
}

#[test]
fn process_families_have_client_golangs_types_and_pass_promtool() {
    let snap = Snapshot {
        process: Some(lookout::collect::process::read_self().expect("read /proc/self")),
        ..Default::default()
    };
    let text = render(&snap, Format::Text);
    assert_types(&text);
    if let Some(problems) = promtool_problems("process_families_pass_promtool", &text) {
        assert!(problems.is_empty(), "{problems:?}\n{text}");
    }
}

#[test]
fn once_reports_its_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lookout.yml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let before = lookout::now_unix();
    let out = Command::new(lookout_bin())
        .arg("once")
        .arg("-c")
        .arg(&cfg)
        .output()
        .expect("run lookout once");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let process = process_lines(&stdout);
    assert_types(&process);

    let rss = sample(&stdout, "process_resident_memory_bytes", &[]).expect("rss");
    assert!(rss > 1e6, "resident memory {rss} is implausibly small");
    let vsize = sample(&stdout, "process_virtual_memory_bytes", &[]).expect("vsize");
    assert!(vsize >= rss, "{process}");
    let start = sample(&stdout, "process_start_time_seconds", &[]).expect("start time");
    assert!(
        (start - before).abs() < 60.0,
        "started at {start}, the test ran it at {before}"
    );
    let fds = sample(&stdout, "process_open_fds", &[]).expect("open fds");
    let max_fds = sample(&stdout, "process_max_fds", &[]).expect("max fds");
    assert!(fds >= 3.0 && fds <= max_fds, "{process}");
    let cpu = sample(&stdout, "process_cpu_seconds_total", &[]).expect("cpu");
    assert!(cpu >= 0.0, "{process}");
    assert!(
        sample(&stdout, "process_virtual_memory_max_bytes", &[]).is_some(),
        "{process}"
    );

    if let Some(problems) = promtool_problems("once_reports_its_own_process", &process) {
        assert!(problems.is_empty(), "{problems:?}\n{process}");
    }
}
