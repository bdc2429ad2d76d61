//! node_exporter's `schedstat` collector: the `cpu<N>` lines of `/proc/schedstat`
//! (Documentation/scheduler/sched-stats.rst). Of each line's nine numbers the seventh, eighth
//! and ninth are the time the CPU spent running tasks and the time tasks spent waiting for it
//! (nanoseconds since CFS, whatever the documentation says of jiffies) and the timeslices it ran.
//! The `version`, `timestamp` and `domain<N>` lines are skipped. Without the file (a kernel
//! built without `CONFIG_SCHEDSTATS`) the collector is not available here.

use super::node::{parse_error, read_optional, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// One `cpu<N>` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSched {
    pub cpu: String,
    pub running_ns: u64,
    pub waiting_ns: u64,
    pub timeslices: u64,
}

/// `node_schedstat_{running_seconds,waiting_seconds,timeslices}_total{cpu}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let path = paths.procfs.join("schedstat");
    let Some(text) = read_optional(&path)? else {
        return Err(NodeError::Unavailable(format!(
            "no {} (kernel without CONFIG_SCHEDSTATS)",
            path.display()
        )));
    };
    let cpus = parse_schedstat(&text).map_err(|e| parse_error(&path, e))?;
    Ok(families(&cpus))
}

/// The three families, in node_exporter's order.
pub fn families(cpus: &[CpuSched]) -> Vec<Family> {
    let mut running = Family::new(
        "node_schedstat_running_seconds_total",
        "Number of seconds CPU spent running a process.",
        Kind::Counter,
    );
    let mut waiting = Family::new(
        "node_schedstat_waiting_seconds_total",
        "Number of seconds spent by processing waiting for this CPU.",
        Kind::Counter,
    );
    let mut slices = Family::new(
        "node_schedstat_timeslices_total",
        "Number of timeslices executed by CPU.",
        Kind::Counter,
    );
    for c in cpus {
        let l = [("cpu", c.cpu.as_str())];
        running.push(&l, c.running_ns as f64 / 1e9);
        waiting.push(&l, c.waiting_ns as f64 / 1e9);
        slices.push(&l, c.timeslices as f64);
    }
    vec![running, waiting, slices]
}

/// The `cpu<N>` lines: `cpu<N>` and at least nine numbers; fewer, a number that is not one, or a
/// CPU that is not a number is an error.
pub fn parse_schedstat(text: &str) -> Result<Vec<CpuSched>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(cpu) = f.next().and_then(|w| w.strip_prefix("cpu")) else {
            continue;
        };
        if cpu.is_empty() || !cpu.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("cpu{cpu}: not a CPU number"));
        }
        let n: Vec<u64> = f
            .map(|s| s.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("cpu{cpu}: expected numbers, got {line:?}"))?;
        if n.len() < 9 {
            return Err(format!(
                "cpu{cpu}: {} numbers, expected at least 9",
                n.len()
            ));
        }
        out.push(CpuSched {
            cpu: cpu.to_string(),
            running_ns: n[6],
            waiting_ns: n[7],
            timeslices: n[8],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_only() {
        let text = "version 15\ntimestamp 4297299139\n\
                    cpu0 0 0 0 0 0 0 2500000000 1500000 2680\n\
                    domain0 00000003 1 2 3 4 5 6 7 8 9 10\n\
                    cpu3 0 0 0 0 0 0 1 2 3\n";
        let c = parse_schedstat(text).unwrap();
        assert_eq!(
            c,
            [
                CpuSched {
                    cpu: "0".into(),
                    running_ns: 2_500_000_000,
                    waiting_ns: 1_500_000,
                    timeslices: 2680
                },
                CpuSched {
                    cpu: "3".into(),
                    running_ns: 1,
                    waiting_ns: 2,
                    timeslices: 3
                }
            ]
        );
        let f = families(&c);
        assert_eq!(f[0].samples[0].1, 2.5);
        assert_eq!(f[1].samples[0].1, 0.0015);
        assert_eq!(f[2].samples[1].0, [("cpu".to_string(), "3".to_string())]);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_schedstat("cpu0 1 2 3\n").is_err());
        assert!(parse_schedstat("cpu0 0 0 0 0 0 0 x 0 0\n").is_err());
        assert!(parse_schedstat("cpux 0 0 0 0 0 0 0 0 0\n").is_err());
        assert_eq!(parse_schedstat("version 15\n").unwrap(), []);
    }
}
