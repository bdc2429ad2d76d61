//! node_exporter's `entropy` collector: `/proc/sys/kernel/random/{entropy_avail,poolsize}`.

use super::node::{parse_number, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `node_entropy_available_bits` and `node_entropy_pool_size_bits`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let dir = paths.procfs.join("sys/kernel/random");
    let mut out = Vec::new();
    for (file, name, help) in [
        (
            "entropy_avail",
            "node_entropy_available_bits",
            "Bits of available entropy.",
        ),
        (
            "poolsize",
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
        ),
    ] {
        let path = dir.join(file);
        let v = parse_number(&path, &read_file(&path)?)?;
        out.push(Family::single(name, help, Kind::Gauge, v as f64));
    }
    Ok(out)
}
