//! node_exporter's `sockstat` collector: `/proc/net/sockstat` and `/proc/net/sockstat6`, as
//! `node_sockstat_sockets_used` and `node_sockstat_<PROTO>_<field>` (gauges), with each `mem`
//! (pages) also as `node_sockstat_<PROTO>_mem_bytes`. Either file may be absent (no IPv6, or a
//! kernel without IPv4 sockstat): it is skipped, as node_exporter does; without both the
//! collector is not available here.
//!
//! Like `/proc/net/dev`, these files are the network namespace of the reading process: run
//! lookout with `--network host`.

use super::node::{page_size, parse_error, read_optional, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// One protocol line: `TCP: inuse 4 orphan 0 tw 0 alloc 4 mem 251`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Protocol {
    pub name: String,
    /// The fields node_exporter knows (`inuse`, `orphan`, `tw`, `alloc`, `mem`, `memory`), in
    /// that order, where present.
    pub fields: Vec<(&'static str, u64)>,
}

/// One sockstat file: `sockets: used N` (IPv4 only) and the protocol lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sockstat {
    pub used: Option<u64>,
    pub protocols: Vec<Protocol>,
}

/// node_exporter's fields, in its order; others are skipped.
const FIELDS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

/// `node_sockstat_*` from `<procfs>/net/sockstat` and `<procfs>/net/sockstat6`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let mut out = Vec::new();
    let mut found = false;
    for file in ["net/sockstat", "net/sockstat6"] {
        let path = paths.procfs.join(file);
        let Some(text) = read_optional(&path)? else {
            continue;
        };
        found = true;
        let stat = parse_sockstat(&text).map_err(|e| parse_error(&path, e))?;
        families(&stat, page_size(), &mut out);
    }
    if !found {
        return Err(NodeError::Unavailable(format!(
            "no {}/net/sockstat or sockstat6",
            paths.procfs.display()
        )));
    }
    Ok(out)
}

/// The families of one file, `mem` pages converted with `page_size`.
pub fn families(stat: &Sockstat, page_size: u64, out: &mut Vec<Family>) {
    if let Some(used) = stat.used {
        out.push(Family::single(
            "node_sockstat_sockets_used",
            "Number of IPv4 sockets in use.",
            Kind::Gauge,
            used as f64,
        ));
    }
    for p in &stat.protocols {
        for &(field, v) in &p.fields {
            let mut push = |field: &str, v: f64| {
                out.push(Family::single(
                    format!("node_sockstat_{}_{field}", p.name),
                    format!("Number of {} sockets in state {field}.", p.name),
                    Kind::Gauge,
                    v,
                ))
            };
            push(field, v as f64);
            if field == "mem" {
                push("mem_bytes", v.saturating_mul(page_size) as f64);
            }
        }
    }
}

/// A sockstat file. A line is `KEY: name value name value ...`; an odd count, a value that is
/// not a number or a protocol name that cannot be part of a metric name is an error.
pub fn parse_sockstat(text: &str) -> Result<Sockstat, String> {
    let mut out = Sockstat::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("expected `PROTO: name value ...`, got {line:?}"));
        };
        let key = key.trim();
        let f: Vec<&str> = rest.split_ascii_whitespace().collect();
        if !f.len().is_multiple_of(2) {
            return Err(format!("{key}: odd number of fields in {line:?}"));
        }
        let mut pairs = Vec::with_capacity(f.len() / 2);
        for kv in f.chunks(2) {
            let v: u64 = kv[1]
                .parse()
                .map_err(|_| format!("{key} {}: expected a number, got {:?}", kv[0], kv[1]))?;
            pairs.push((kv[0], v));
        }
        if key == "sockets" {
            out.used = pairs.iter().find(|(k, _)| *k == "used").map(|(_, v)| *v);
            continue;
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{key:?} is not a protocol name"));
        }
        let fields = FIELDS
            .iter()
            .filter_map(|&name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (name, *v))
            })
            .collect();
        out.protocols.push(Protocol {
            name: key.to_string(),
            fields,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_and_mem_bytes() {
        let text = "sockets: used 229\nTCP: inuse 4 orphan 1 tw 2 alloc 5 mem 251\n\
                    UDP: inuse 0 mem 3\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 7\n";
        let st = parse_sockstat(text).unwrap();
        assert_eq!(st.used, Some(229));
        assert_eq!(st.protocols[0].name, "TCP");
        assert_eq!(
            st.protocols[0].fields,
            [
                ("inuse", 4),
                ("orphan", 1),
                ("tw", 2),
                ("alloc", 5),
                ("mem", 251)
            ]
        );
        let mut out = Vec::new();
        families(&st, 4096, &mut out);
        let get = |n: &str| out.iter().find(|f| f.name == n).unwrap().samples[0].1;
        assert_eq!(get("node_sockstat_sockets_used"), 229.0);
        assert_eq!(get("node_sockstat_TCP_mem_bytes"), 251.0 * 4096.0);
        assert_eq!(get("node_sockstat_UDP_mem_bytes"), 3.0 * 4096.0);
        assert_eq!(get("node_sockstat_FRAG_memory"), 7.0);
        assert!(!out
            .iter()
            .any(|f| f.name == "node_sockstat_FRAG_memory_bytes"));
    }

    #[test]
    fn sockstat6_has_no_sockets_line() {
        let st = parse_sockstat("TCP6: inuse 3\nFRAG6: inuse 0 memory 0\n").unwrap();
        assert_eq!(st.used, None);
        assert_eq!(st.protocols[1].fields, [("inuse", 0), ("memory", 0)]);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_sockstat("TCP: inuse\n").is_err());
        assert!(parse_sockstat("TCP: inuse x\n").is_err());
        assert!(parse_sockstat("garbage\n").is_err());
        assert!(parse_sockstat("T-CP: inuse 1\n").is_err());
        // Unknown fields are skipped.
        let st = parse_sockstat("TCP: inuse 1 future 9\n").unwrap();
        assert_eq!(st.protocols[0].fields, [("inuse", 1)]);
    }
}
