//! node_exporter's `stat` collector, the part the host collector does not export: context
//! switches, interrupts, forks and the running and blocked processes, from `/proc/stat`
//! (parsed by [`super::host::parse_stat`], the one parser of that file; CPU times and the boot
//! time stay with the host collector).

use super::host::{parse_stat, user_hz};
use super::node::{parse_error, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `node_context_switches_total`, `node_intr_total`, `node_forks_total`, `node_procs_running`
/// and `node_procs_blocked`, each where its line is in the file.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let path = paths.procfs.join("stat");
    let text = read_file(&path)?;
    let stat = parse_stat(&text, user_hz()).map_err(|e| parse_error(&path, e))?;
    let mut out = Vec::new();
    for (name, help, kind, v) in [
        (
            "node_context_switches_total",
            "Total number of context switches.",
            Kind::Counter,
            stat.context_switches,
        ),
        (
            "node_forks_total",
            "Total number of forks.",
            Kind::Counter,
            stat.forks,
        ),
        (
            "node_intr_total",
            "Total number of interrupts serviced.",
            Kind::Counter,
            stat.interrupts,
        ),
        (
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            Kind::Gauge,
            stat.procs_blocked,
        ),
        (
            "node_procs_running",
            "Number of processes in runnable state.",
            Kind::Gauge,
            stat.procs_running,
        ),
    ] {
        if let Some(v) = v {
            out.push(Family::single(name, help, kind, v as f64));
        }
    }
    Ok(out)
}
