//! node_exporter's `softnet` collector: `/proc/net/softnet_stat`, one line per CPU of hex
//! counters (net/core/net-procfs.c): processed, dropped, time_squeeze, five zeros,
//! cpu_collision, then received_rps (2.6.39+), flow_limit_count (4.18+), the backlog length
//! and the CPU's number (5.10+). Before 5.10 the CPU is the line's index, as node_exporter
//! numbers it. A column the kernel does not write yet gives no series.
//!
//! The file is the kernel's, whatever the network namespace.

use super::node::{parse_error, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// One line of `softnet_stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Softnet {
    pub cpu: u32,
    pub processed: u32,
    pub dropped: u32,
    pub time_squeezed: u32,
    pub cpu_collision: u32,
    pub received_rps: Option<u32>,
    pub flow_limit_count: Option<u32>,
    pub backlog_len: Option<u32>,
}

/// `node_softnet_*{cpu}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let path = paths.procfs.join("net/softnet_stat");
    let text = read_file(&path)?;
    let lines = parse_softnet(&text).map_err(|e| parse_error(&path, e))?;
    Ok(families(&lines))
}

/// The families of the parsed lines, in node_exporter's order; a family no line has is left out.
pub fn families(lines: &[Softnet]) -> Vec<Family> {
    type Get = fn(&Softnet) -> Option<u32>;
    let specs: [(&str, &str, Kind, Get); 7] = [
        (
            "node_softnet_processed_total",
            "Number of processed packets",
            Kind::Counter,
            |s| Some(s.processed),
        ),
        (
            "node_softnet_dropped_total",
            "Number of dropped packets",
            Kind::Counter,
            |s| Some(s.dropped),
        ),
        (
            "node_softnet_times_squeezed_total",
            "Number of times processing packets ran out of quota",
            Kind::Counter,
            |s| Some(s.time_squeezed),
        ),
        (
            "node_softnet_cpu_collision_total",
            "Number of collision occur while obtaining device lock while transmitting",
            Kind::Counter,
            |s| Some(s.cpu_collision),
        ),
        (
            "node_softnet_received_rps_total",
            "Number of times cpu woken up received_rps",
            Kind::Counter,
            |s| s.received_rps,
        ),
        (
            "node_softnet_flow_limit_count_total",
            "Number of times flow limit has been reached",
            Kind::Counter,
            |s| s.flow_limit_count,
        ),
        (
            "node_softnet_backlog_len",
            "Softnet backlog status",
            Kind::Gauge,
            |s| s.backlog_len,
        ),
    ];
    let mut out = Vec::new();
    for (name, help, kind, get) in specs {
        let mut f = Family::new(name, help, kind);
        for line in lines {
            if let Some(v) = get(line) {
                f.push(&[("cpu", &line.cpu.to_string())], v as f64);
            }
        }
        if !f.samples.is_empty() {
            out.push(f);
        }
    }
    out
}

/// `softnet_stat`: at least 9 hex columns a line (what 2.6.23 wrote); fewer, or a column that is
/// not a 32-bit hex number, is an error.
pub fn parse_softnet(text: &str) -> Result<Vec<Softnet>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 9 {
            return Err(format!(
                "line {}: {} columns, expected at least 9",
                i + 1,
                f.len()
            ));
        }
        let col = |n: usize| -> Result<Option<u32>, String> {
            f.get(n)
                .map(|s| {
                    u32::from_str_radix(s, 16)
                        .map_err(|_| format!("line {}: expected a hex number, got {s:?}", i + 1))
                })
                .transpose()
        };
        let must = |n: usize| col(n).map(|v| v.unwrap_or(0));
        out.push(Softnet {
            cpu: col(12)?.unwrap_or(i as u32),
            processed: must(0)?,
            dropped: must(1)?,
            time_squeezed: must(2)?,
            cpu_collision: must(8)?,
            received_rps: col(9)?,
            flow_limit_count: col(10)?,
            backlog_len: col(11)?,
        });
        for n in 3..8 {
            col(n)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_6_lines_carry_their_cpu() {
        let text = "0003cb64 00000002 00000010 00000000 00000000 00000000 00000000 00000000 \
                    00000003 00000004 00000005 00000006 00000000 00000000 00000000\n\
                    00037fb4 00000000 00000000 00000000 00000000 00000000 00000000 00000000 \
                    00000000 00000000 00000000 00000000 00000002 00000000 00000000\n";
        let s = parse_softnet(text).unwrap();
        assert_eq!(
            s[0],
            Softnet {
                cpu: 0,
                processed: 0x3cb64,
                dropped: 2,
                time_squeezed: 16,
                cpu_collision: 3,
                received_rps: Some(4),
                flow_limit_count: Some(5),
                backlog_len: Some(6),
            }
        );
        // An offline CPU 1 has no line: the second is CPU 2.
        assert_eq!(s[1].cpu, 2);
        assert_eq!(families(&s).len(), 7);
    }

    #[test]
    fn old_kernels_number_by_line_and_lack_columns() {
        let text = "00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
                    00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n";
        let s = parse_softnet(text).unwrap();
        assert_eq!((s[0].cpu, s[1].cpu, s[1].processed), (0, 1, 2));
        assert_eq!(s[0].received_rps, None);
        let f = families(&s);
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].samples[1].0, [("cpu".to_string(), "1".to_string())]);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_softnet("00000001 00000000\n").is_err());
        assert!(parse_softnet("0000000x 0 0 0 0 0 0 0 0\n").is_err());
        assert!(parse_softnet("1 0 0 0 0 0 0 0 0 1ffffffff\n").is_err());
        assert_eq!(parse_softnet("").unwrap(), []);
    }
}
