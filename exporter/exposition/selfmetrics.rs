//! lookout's own series: build info, collector health, cycle timing and its tasks' health.

use super::{Encoder, Kind, Status};
use crate::snapshot::Snapshot;

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot, status: Option<&Status>) {
    enc.family(
        "lookout_build_info",
        "A metric with a constant '1' value labeled by version and the Rust version lookout was built with.",
        Kind::Gauge,
    );
    enc.sample(
        "lookout_build_info",
        "",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("rustc", crate::RUSTC_VERSION),
        ],
        1.0,
    );
    enc.family(
        "lookout_collector_success",
        "Whether the collector's last cycle succeeded (1) or failed (0).",
        Kind::Gauge,
    );
    for c in snap.collectors.iter().filter(|c| c.exported) {
        enc.sample(
            "lookout_collector_success",
            "",
            &[("collector", c.name)],
            if c.success { 1.0 } else { 0.0 },
        );
    }
    enc.family(
        "lookout_collector_duration_seconds",
        "How long the collector's last cycle took.",
        Kind::Gauge,
    );
    for c in snap.collectors.iter().filter(|c| c.exported) {
        enc.sample(
            "lookout_collector_duration_seconds",
            "",
            &[("collector", c.name)],
            c.duration_seconds,
        );
    }
    enc.single(
        "lookout_collection_duration_seconds",
        "How long the last collection cycle took, all collectors together.",
        Kind::Gauge,
        snap.duration_seconds,
    );
    enc.single(
        "lookout_collection_timestamp_seconds",
        "Unix time at which the last collection cycle started.",
        Kind::Gauge,
        snap.taken_at,
    );
    if let Some(st) = status.filter(|s| !s.tasks.is_empty()) {
        enc.family(
            "lookout_task_up",
            "Whether lookout's task is running (1) or has failed and awaits its restart (0).",
            Kind::Gauge,
        );
        for t in &st.tasks {
            enc.sample(
                "lookout_task_up",
                "",
                &[("task", t.name)],
                if t.up { 1.0 } else { 0.0 },
            );
        }
        enc.family(
            "lookout_task_failures_total",
            "Times lookout's task ended by a fault (a panic, or returning while it should run) and was restarted.",
            Kind::Counter,
        );
        for t in &st.tasks {
            enc.sample(
                "lookout_task_failures_total",
                "",
                &[("task", t.name)],
                t.failures as f64,
            );
        }
    }
}
