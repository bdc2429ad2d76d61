//! node_exporter's `conntrack` collector, its table size: `/proc/sys/net/netfilter/
//! nf_conntrack_{count,max}`. Without them (no `nf_conntrack` module loaded, or another network
//! namespace) the collector is not available here: no series, no failure. The file is the
//! reading process's network namespace: run lookout with `--network host`.

use super::node::{parse_number, read_optional, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `node_nf_conntrack_entries` and `node_nf_conntrack_entries_limit`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let dir = paths.procfs.join("sys/net/netfilter");
    let mut out = Vec::new();
    for (file, name, help) in [
        (
            "nf_conntrack_count",
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
        ),
        (
            "nf_conntrack_max",
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
        ),
    ] {
        let path = dir.join(file);
        let Some(text) = read_optional(&path)? else {
            return Err(NodeError::Unavailable(format!(
                "no {} (nf_conntrack not loaded)",
                path.display()
            )));
        };
        out.push(Family::single(
            name,
            help,
            Kind::Gauge,
            parse_number(&path, &text)? as f64,
        ));
    }
    Ok(out)
}
