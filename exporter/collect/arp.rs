//! node_exporter's `arp` collector: the entries of `/proc/net/arp`, counted per device. Every
//! entry counts, incomplete ones (flags 0x0) too, as node_exporter counts them. The table is the
//! network namespace of the reading process: run lookout with `--network host`.

use std::collections::BTreeMap;

use super::node::{parse_error, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `node_arp_entries{device}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let path = paths.procfs.join("net/arp");
    let text = read_file(&path)?;
    let counts = parse_arp(&text).map_err(|e| parse_error(&path, e))?;
    Ok(vec![family(&counts)])
}

/// The family of the counts, by device name.
pub fn family(counts: &BTreeMap<String, u64>) -> Family {
    let mut f = Family::new("node_arp_entries", "ARP entries by device", Kind::Gauge);
    for (device, n) in counts {
        f.push(&[("device", device)], *n as f64);
    }
    f
}

/// `/proc/net/arp`: the header `IP address HW type Flags HW address Mask Device`, then one line
/// of six columns per entry, the device last. Another column count is an error.
pub fn parse_arp(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("IP address") {
            continue;
        }
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        match f.len() {
            0 => continue,
            6 => *out.entry(f[5].to_string()).or_insert(0) += 1,
            n => return Err(format!("line {}: {n} columns, expected 6", i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_by_device() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n\
                    172.17.0.2       0x1         0x2         02:42:ac:11:00:02     *        docker0\n\
                    172.17.0.9       0x1         0x0         00:00:00:00:00:00     *        docker0\n";
        let c = parse_arp(text).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!((c["docker0"], c["eth0"]), (2, 1));
        let f = family(&c);
        assert_eq!(
            f.samples[0],
            (vec![("device".to_string(), "docker0".to_string())], 2.0)
        );
        // Only the header: an empty table, no series.
        assert!(
            family(&parse_arp("IP address HW type Flags HW address Mask Device\n").unwrap())
                .samples
                .is_empty()
        );
    }

    #[test]
    fn short_lines_are_errors() {
        assert!(parse_arp("192.0.2.1 0x1 0x2 02:fc:00:00:00:05 *\n").is_err());
    }
}
