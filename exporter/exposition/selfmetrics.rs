//! lookout's own series: build info, collector health, cycle timing, its tasks' health, and
//! the `process_*` series every Go exporter has.

use super::{Encoder, Kind, Status};
use crate::snapshot::{FsUsagePass, ProcessStats, Snapshot};

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
    if let Some(p) = &snap.fs_usage_pass {
        encode_fs_usage_pass(enc, p);
    }
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
    if let Some(st) = status {
        encode_receivers(enc, &st.receivers);
        if let Some(a) = &st.actions {
            encode_actions(enc, a);
        }
    }
    if let Some(p) = &snap.process {
        encode_process(enc, p);
    }
}

/// How the fs_usage collector's last pass over the writable layers went.
fn encode_fs_usage_pass(enc: &mut Encoder, p: &FsUsagePass) {
    enc.single(
        "lookout_fs_usage_pass_duration_seconds",
        "How long the fs_usage collector's last pass over the containers' writable layers took.",
        Kind::Gauge,
        p.duration_seconds,
    );
    enc.single(
        "lookout_fs_usage_pass_timestamp_seconds",
        "Unix time at which the fs_usage collector's last pass ended.",
        Kind::Gauge,
        p.finished_at,
    );
    enc.family(
        "lookout_fs_usage_containers",
        "Running containers by how the fs_usage collector's last pass fared with their writable layer: measured, failed (unreadable), unsupported (a storage driver without a layer directory), or unreached (the pass's time budget ran out first; they keep their last complete figures).",
        Kind::Gauge,
    );
    for (result, n) in [
        ("measured", p.measured),
        ("failed", p.failed),
        ("unsupported", p.unsupported),
        ("unreached", p.unreached),
    ] {
        enc.sample(
            "lookout_fs_usage_containers",
            "",
            &[("result", result)],
            n as f64,
        );
    }
}

/// The failover actions' series.
fn encode_actions(enc: &mut Encoder, a: &super::ActionFigures) {
    enc.single(
        "lookout_actions_enabled",
        "Whether failover actions run (1), or are off (0); dry runs count as off.",
        Kind::Gauge,
        if a.enabled && !a.dry_run { 1.0 } else { 0.0 },
    );
    enc.single(
        "lookout_actions_dry_run",
        "Whether failover actions only log and notify what they would do (1).",
        Kind::Gauge,
        if a.dry_run { 1.0 } else { 0.0 },
    );
    enc.single(
        "lookout_actions_exhausted",
        "Containers lookout has given up restarting (max_attempts within the window).",
        Kind::Gauge,
        a.exhausted as f64,
    );
    enc.family(
        "lookout_actions_total",
        "Failover actions by action and outcome (success, failure, skipped, dry_run, exhausted).",
        Kind::Counter,
    );
    let mut actions: std::collections::BTreeSet<&str> = [
        "restart",
        "start_standby",
        "stop_standby",
        "scale_up",
        "scale_down",
        "webhook",
    ]
    .into_iter()
    .collect();
    for (act, _) in a.counts.keys() {
        actions.insert(act);
    }
    for act in &actions {
        for outcome in crate::act::audit::OUTCOMES {
            let n = a
                .counts
                .get(&(act.to_string(), outcome.to_string()))
                .copied()
                .unwrap_or(0);
            enc.sample(
                "lookout_actions_total",
                "",
                &[("action", act), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    enc.family(
        "lookout_action_duration_seconds",
        "How long failover actions took.",
        Kind::Histogram,
    );
    for (act, buckets, sum, count) in &a.durations {
        for (i, b) in crate::act::audit::BUCKETS.iter().enumerate() {
            let le = b.to_string();
            enc.sample(
                "lookout_action_duration_seconds_bucket",
                "",
                &[("action", act), ("le", &le)],
                buckets.get(i).copied().unwrap_or(0) as f64,
            );
        }
        enc.sample(
            "lookout_action_duration_seconds_bucket",
            "",
            &[("action", act), ("le", "+Inf")],
            *count as f64,
        );
        enc.sample(
            "lookout_action_duration_seconds_sum",
            "",
            &[("action", act)],
            *sum,
        );
        enc.sample(
            "lookout_action_duration_seconds_count",
            "",
            &[("action", act)],
            *count as f64,
        );
    }
}

/// The notifier's series, per receiver (present once receivers are configured).
fn encode_receivers(
    enc: &mut Encoder,
    receivers: &std::collections::BTreeMap<String, crate::notify::stats::ReceiverStats>,
) {
    if receivers.is_empty() {
        return;
    }
    enc.family(
        "lookout_notifications_total",
        "Attempts to send a notification, by receiver and outcome (success; failure, retried; rejected, dropped).",
        Kind::Counter,
    );
    for (name, r) in receivers {
        for outcome in ["success", "failure", "rejected"] {
            let n = r.outcomes.get(outcome).copied().unwrap_or(0);
            enc.sample(
                "lookout_notifications_total",
                "",
                &[("receiver", name), ("outcome", outcome)],
                n as f64,
            );
        }
    }
    enc.family(
        "lookout_notification_duration_seconds",
        "How long sending a notification to the receiver took.",
        Kind::Histogram,
    );
    for (name, r) in receivers {
        for (i, b) in crate::notify::stats::BUCKETS.iter().enumerate() {
            let le = b.to_string();
            enc.sample(
                "lookout_notification_duration_seconds_bucket",
                "",
                &[("receiver", name), ("le", &le)],
                r.duration_buckets.get(i).copied().unwrap_or(0) as f64,
            );
        }
        enc.sample(
            "lookout_notification_duration_seconds_bucket",
            "",
            &[("receiver", name), ("le", "+Inf")],
            r.duration_count as f64,
        );
        enc.sample(
            "lookout_notification_duration_seconds_sum",
            "",
            &[("receiver", name)],
            r.duration_sum,
        );
        enc.sample(
            "lookout_notification_duration_seconds_count",
            "",
            &[("receiver", name)],
            r.duration_count as f64,
        );
    }
    enc.family(
        "lookout_notifications_pending",
        "Notifications stored in the outbox and waiting for the receiver (not counting those a silence or an inhibition holds).",
        Kind::Gauge,
    );
    for (name, r) in receivers {
        enc.sample(
            "lookout_notifications_pending",
            "",
            &[("receiver", name)],
            r.pending.saturating_sub(r.held) as f64,
        );
    }
    enc.family(
        "lookout_notifications_silenced",
        "Notifications held because a silence or an inhibition mutes their alert.",
        Kind::Gauge,
    );
    for (name, r) in receivers {
        enc.sample(
            "lookout_notifications_silenced",
            "",
            &[("receiver", name)],
            r.held as f64,
        );
    }
    enc.family(
        "lookout_notifications_dropped_total",
        "Notifications that will never be sent, by receiver and reason (backlog_full, rejected, receiver_disabled, receiver_removed, silenced, store_error).",
        Kind::Counter,
    );
    for (name, r) in receivers {
        for reason in [
            "backlog_full",
            "rejected",
            "receiver_disabled",
            "receiver_removed",
            "silenced",
            "store_error",
        ] {
            enc.sample(
                "lookout_notifications_dropped_total",
                "",
                &[("receiver", name), ("reason", reason)],
                r.dropped.get(reason).copied().unwrap_or(0) as f64,
            );
        }
    }
    enc.family(
        "lookout_receiver_up",
        "Whether the receiver's last send succeeded (1; also before the first) or it failed or is disabled (0).",
        Kind::Gauge,
    );
    for (name, r) in receivers {
        enc.sample(
            "lookout_receiver_up",
            "",
            &[("receiver", name), ("kind", r.kind)],
            if r.up { 1.0 } else { 0.0 },
        );
    }
}

/// The `process_*` families with client_golang's names, types and help texts, so that the
/// dashboards and alerts written for Go exporters (`rate(process_cpu_seconds_total[5m])`,
/// `process_open_fds / process_max_fds`) work on lookout unchanged.
pub(super) fn encode_process(enc: &mut Encoder, p: &ProcessStats) {
    // An unlimited limit is RLIM_INFINITY, which client_golang (through prometheus/procfs)
    // exports as the float of 2^64-1 (1.8446744073709552e+19); lookout does the same.
    let limit = |l: Option<u64>| l.unwrap_or(u64::MAX) as f64;
    enc.single(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        Kind::Counter,
        p.cpu_seconds_total,
    );
    enc.single(
        "process_open_fds",
        "Number of open file descriptors.",
        Kind::Gauge,
        p.open_fds as f64,
    );
    enc.single(
        "process_max_fds",
        "Maximum number of open file descriptors.",
        Kind::Gauge,
        limit(p.max_fds),
    );
    enc.single(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        Kind::Gauge,
        p.virtual_memory_bytes as f64,
    );
    enc.single(
        "process_virtual_memory_max_bytes",
        "Maximum amount of virtual memory available in bytes.",
        Kind::Gauge,
        limit(p.virtual_memory_max_bytes),
    );
    enc.single(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        Kind::Gauge,
        p.resident_memory_bytes as f64,
    );
    enc.single(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Kind::Gauge,
        p.start_time_seconds,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{render, Format};

    fn stats() -> ProcessStats {
        ProcessStats {
            cpu_seconds_total: 2.25,
            resident_memory_bytes: 12_582_912,
            virtual_memory_bytes: 812_646_400,
            virtual_memory_max_bytes: None,
            open_fds: 9,
            max_fds: Some(1024),
            start_time_seconds: 1_700_001_234.56,
        }
    }

    #[test]
    fn process_families_as_client_golang_writes_them() {
        let mut enc = Encoder::new(0);
        encode_process(&mut enc, &stats());
        assert_eq!(
            enc.into_string(Format::Text),
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 2.25\n\
             # HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds 9\n\
             # HELP process_max_fds Maximum number of open file descriptors.\n\
             # TYPE process_max_fds gauge\n\
             process_max_fds 1024\n\
             # HELP process_virtual_memory_bytes Virtual memory size in bytes.\n\
             # TYPE process_virtual_memory_bytes gauge\n\
             process_virtual_memory_bytes 812646400\n\
             # HELP process_virtual_memory_max_bytes Maximum amount of virtual memory available in bytes.\n\
             # TYPE process_virtual_memory_max_bytes gauge\n\
             process_virtual_memory_max_bytes 18446744073709552000\n\
             # HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\n\
             process_resident_memory_bytes 12582912\n\
             # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n\
             # TYPE process_start_time_seconds gauge\n\
             process_start_time_seconds 1700001234.56\n"
        );
        let mut om = Encoder::new(0);
        encode_process(&mut om, &stats());
        let om = om.into_string(Format::OpenMetrics);
        assert!(
            om.starts_with(
                "# HELP process_cpu_seconds Total user and system CPU time spent in seconds.\n\
                            # TYPE process_cpu_seconds counter\n\
                            process_cpu_seconds_total 2.25\n"
            ),
            "{om}"
        );
    }

    #[test]
    fn fs_usage_pass_series_once_a_pass_ended() {
        let mut snap = Snapshot::default();
        let text = render(&snap, Format::Text);
        assert!(!text.contains("lookout_fs_usage_"));
        snap.fs_usage_pass = Some(crate::snapshot::FsUsagePass {
            finished_at: 1700000000.5,
            duration_seconds: 1.25,
            measured: 3,
            failed: 1,
            unsupported: 0,
            unreached: 2,
        });
        let text = render(&snap, Format::Text);
        for line in [
            "lookout_fs_usage_pass_duration_seconds 1.25\n",
            "lookout_fs_usage_pass_timestamp_seconds 1700000000.5\n",
            "lookout_fs_usage_containers{result=\"measured\"} 3\n",
            "lookout_fs_usage_containers{result=\"failed\"} 1\n",
            "lookout_fs_usage_containers{result=\"unsupported\"} 0\n",
            "lookout_fs_usage_containers{result=\"unreached\"} 2\n",
        ] {
            assert!(text.contains(line), "{line}{text}");
        }
    }

    #[test]
    fn process_series_only_with_a_reading() {
        let mut snap = Snapshot::default();
        assert!(!render(&snap, Format::Text).contains("process_"));
        snap.process = Some(stats());
        let text = render(&snap, Format::Text);
        assert!(text.contains("\nprocess_open_fds 9\n"), "{text}");
        assert!(
            text.contains("\nprocess_start_time_seconds 1700001234.56\n"),
            "{text}"
        );
    }
}
