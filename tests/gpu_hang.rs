//! A wedged GPU: an NVML call that never returns (the stub's `hang` directive) costs the gpu
//! collector's series and one thread, never the other collectors, the collection loop, more
//! threads as time goes on, or a prompt exit on SIGTERM.

#[path = "support/nvml_stub.rs"]
mod nvml_stub;
mod support;

use std::time::{Duration, Instant};

use nvml_stub::NvmlStub;
use support::{sample, wait_until, Lookout};

/// A call the gpu collector makes every cycle.
const HUNG_CALL: &str = "nvmlDeviceGetUtilizationRates";

const CONFIG: &str = "interval: 500ms
collectors:
  docker: false
  cgroup: false
  gpu: true
";

/// `Threads:` of `/proc/<pid>/status`.
fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The fewest threads seen over `window`: the process's standing threads, without the
/// short-lived ones (one statfs thread per mount, each cycle) that come and go meanwhile.
fn standing_threads(pid: u32, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut least = usize::MAX;
    while Instant::now() < end {
        least = least.min(threads(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    least
}

/// The names of the process's threads, for a failure message.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn success(metrics: &str, collector: &str) -> Option<f64> {
    let label = format!("collector=\"{collector}\"");
    sample(metrics, "lookout_collector_success", &[&label])
}

#[test]
fn a_hung_nvml_call_costs_only_the_gpu_collector() {
    if !support::tool_or_skip(
        "a_hung_nvml_call_costs_only_the_gpu_collector",
        "/usr/bin/gcc",
    ) {
        return;
    }
    let started = Instant::now();
    let stub = NvmlStub::build();
    stub.configure("");
    let lib = stub.lib().to_str().unwrap().to_string();
    let mut lk = Lookout::start_with_env(CONFIG, &[], &[("LOOKOUT_NVML_LIB", &lib)]);
    let pid = lk.child.id();

    // Un-hung first: every collector succeeds for a few cycles, then the baseline is taken.
    let healthy = wait_until(Duration::from_secs(20), || {
        let m = lk.metrics();
        ["host", "disk", "gpu"]
            .iter()
            .all(|c| success(&m, c) == Some(1.0))
            .then_some(())
    });
    assert!(
        healthy.is_some(),
        "not all collectors succeeded; log:\n{}",
        lk.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let baseline = standing_threads(pid, Duration::from_secs(2));
    let baseline_names = thread_names(pid);

    stub.hang(HUNG_CALL, "");
    let failed = wait_until(Duration::from_secs(10), || {
        (success(&lk.metrics(), "gpu") == Some(0.0)).then_some(())
    });
    assert!(
        failed.is_some(),
        "the gpu collector never failed; log:\n{}",
        lk.log()
    );

    let hang_start = Instant::now();
    let mut last_ts = 0.0;
    let mut most = baseline;
    let mut checks = 0;
    while hang_start.elapsed() < Duration::from_secs(90) {
        let m = lk.metrics();
        let ts = sample(&m, "lookout_collection_timestamp_seconds", &[]).unwrap_or(0.0);
        assert!(
            ts > last_ts,
            "the collection loop stalled at {ts}; log:\n{}",
            lk.log()
        );
        last_ts = ts;
        assert_eq!(
            success(&m, "host"),
            Some(1.0),
            "host collector; metrics:\n{m}"
        );
        assert_eq!(
            success(&m, "disk"),
            Some(1.0),
            "disk collector; metrics:\n{m}"
        );
        assert_eq!(
            success(&m, "gpu"),
            Some(0.0),
            "gpu collector; metrics:\n{m}"
        );
        let now = standing_threads(pid, Duration::from_millis(1500));
        most = most.max(now);
        assert!(
            now <= baseline + 3,
            "{now} threads after {:?} of a hung NVML call, from {baseline}:\nnow {:?}\nbefore {baseline_names:?}",
            hang_start.elapsed(),
            thread_names(pid)
        );
        checks += 1;
        std::thread::sleep(Duration::from_millis(1500));
    }
    eprintln!("threads: baseline {baseline}, at most {most} over {checks} checks of a 90 s hang");
    let log = lk.log();
    assert!(
        log.contains("previous collection still running"),
        "log:\n{log}"
    );
    assert_eq!(
        log.matches("previous collection still running").count(),
        1,
        "the hang is logged once, not every cycle; log:\n{log}"
    );

    // The call returns: the next cycle starts afresh and the gpu collector recovers.
    stub.configure("");
    let recovered = wait_until(Duration::from_secs(10), || {
        (success(&lk.metrics(), "gpu") == Some(1.0)).then_some(())
    });
    assert!(
        recovered.is_some(),
        "the gpu collector never recovered; log:\n{}",
        lk.log()
    );

    // Wedged again, SIGTERM still ends the process at once.
    stub.hang(HUNG_CALL, "");
    let failed = wait_until(Duration::from_secs(10), || {
        (success(&lk.metrics(), "gpu") == Some(0.0)).then_some(())
    });
    assert!(failed.is_some(), "the gpu collector never failed again");
    std::thread::sleep(Duration::from_secs(1));
    let term = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let exited = wait_until(Duration::from_secs(5), || {
        lk.child.try_wait().ok().flatten()
    });
    assert!(
        exited.is_some(),
        "still running 5 s after SIGTERM with an NVML call hung; log:\n{}",
        lk.log()
    );
    eprintln!(
        "exited {:?} after SIGTERM ({:?}); whole test {:?}",
        term.elapsed(),
        exited.unwrap(),
        started.elapsed()
    );
}
