//! Container series: cAdvisor's names, units and labels, plus lookout's Docker facts.

use super::{push_label, Encoder, Kind};
use crate::snapshot::{
    BlkDevice, CpuStats, LayerUsage, MemoryStats, NetInterface, Network, Snapshot, State,
};

/// Each container's identity labels ([`Container::identity_labels`]: `id`, `image`, `name`,
/// allow-listed `container_label_*`), rendered once and shared by every family.
fn label_sets(snap: &Snapshot) -> Vec<String> {
    snap.containers
        .iter()
        .map(|c| {
            let mut s = String::with_capacity(160);
            c.identity_labels(&snap.label_allowlist, |k, v| {
                if !s.is_empty() {
                    s.push(',');
                }
                push_label(&mut s, k, v);
            });
            s
        })
        .collect()
}

type CpuField = fn(&CpuStats) -> Option<f64>;
type MemField = fn(&MemoryStats) -> Option<f64>;
type NetField = fn(&NetInterface) -> u64;
type BlkField = fn(&BlkDevice) -> u64;
type LayerField = fn(&LayerUsage) -> Option<f64>;

const CPU: &[(&str, &str, CpuField)] = &[
    (
        "container_cpu_user_seconds_total",
        "Cumulative user CPU time consumed in seconds.",
        |c| Some(c.user_seconds),
    ),
    (
        "container_cpu_system_seconds_total",
        "Cumulative system CPU time consumed in seconds.",
        |c| Some(c.system_seconds),
    ),
    (
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        |c| c.periods.map(|v| v as f64),
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        |c| c.throttled_periods.map(|v| v as f64),
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        |c| c.throttled_seconds,
    ),
];

const MEM: &[(&str, &str, MemField)] = &[
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        |m| Some(m.usage as f64),
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes (usage minus inactive file cache).",
        |m| Some(m.working_set as f64),
    ),
    ("container_memory_rss", "Size of RSS in bytes.", |m| {
        Some(m.rss as f64)
    }),
    (
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        |m| Some(m.cache as f64),
    ),
    (
        "container_memory_swap",
        "Container swap usage in bytes.",
        |m| m.swap.map(|v| v as f64),
    ),
];

const NET: &[(&str, &str, NetField)] = &[
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received.",
        |i| i.rx_bytes,
    ),
    (
        "container_network_receive_packets_total",
        "Cumulative count of packets received.",
        |i| i.rx_packets,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving.",
        |i| i.rx_errors,
    ),
    (
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving.",
        |i| i.rx_dropped,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted.",
        |i| i.tx_bytes,
    ),
    (
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted.",
        |i| i.tx_packets,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting.",
        |i| i.tx_errors,
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting.",
        |i| i.tx_dropped,
    ),
];

const BLK: &[(&str, &str, BlkField)] = &[
    (
        "container_fs_reads_bytes_total",
        "Cumulative count of bytes read.",
        |b| b.read_bytes,
    ),
    (
        "container_fs_writes_bytes_total",
        "Cumulative count of bytes written.",
        |b| b.write_bytes,
    ),
    (
        "container_fs_reads_total",
        "Cumulative count of reads completed.",
        |b| b.reads,
    ),
    (
        "container_fs_writes_total",
        "Cumulative count of writes completed.",
        |b| b.writes,
    ),
];

/// The writable layer (fs_usage collector), with cAdvisor's help texts.
const LAYER: &[(&str, &str, LayerField)] = &[
    (
        "container_fs_inodes_free",
        "Number of available Inodes",
        |u| u.inodes_free.map(|v| v as f64),
    ),
    ("container_fs_inodes_total", "Number of Inodes", |u| {
        u.inodes_total.map(|v| v as f64)
    }),
    (
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        |u| Some(u.limit_bytes as f64),
    ),
    (
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        |u| Some(u.usage_bytes as f64),
    ),
];

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot) {
    let labels = label_sets(snap);
    let all = || snap.containers.iter().zip(labels.iter());
    // Resource series exist for containers whose stats were read this cycle (running ones).
    let running = || all().filter_map(|(c, l)| c.stats.as_ref().map(|s| (c, s, l.as_str())));

    enc.family(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        Kind::Counter,
    );
    for (_, s, l) in running() {
        if let Some(cpu) = &s.cpu {
            enc.sample(
                "container_cpu_usage_seconds_total",
                l,
                &[("cpu", "total")],
                cpu.usage_seconds,
            );
        }
    }
    for (name, help, f) in CPU {
        enc.family(name, help, Kind::Counter);
        for (_, s, l) in running() {
            if let Some(v) = s.cpu.as_ref().and_then(f) {
                enc.sample(name, l, &[], v);
            }
        }
    }
    for (name, help, f) in MEM {
        enc.family(name, help, Kind::Gauge);
        for (_, s, l) in running() {
            if let Some(v) = s.memory.as_ref().and_then(f) {
                enc.sample(name, l, &[], v);
            }
        }
    }

    enc.family(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container (0 when unlimited).",
        Kind::Gauge,
    );
    for (c, l) in all() {
        enc.sample(
            "container_spec_memory_limit_bytes",
            l,
            &[],
            c.memory_limit().unwrap_or(0) as f64,
        );
    }
    enc.family(
        "container_spec_cpu_quota",
        "CPU quota of the container (0 when unlimited).",
        Kind::Gauge,
    );
    for (c, l) in all() {
        let q = c
            .stats
            .as_ref()
            .and_then(|s| s.spec.cpu_quota)
            .or(c.info.limits.cpu_quota);
        enc.sample(
            "container_spec_cpu_quota",
            l,
            &[],
            q.filter(|q| *q > 0).unwrap_or(0) as f64,
        );
    }
    enc.family(
        "container_spec_cpu_period",
        "CPU period of the container.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        let p = c
            .stats
            .as_ref()
            .and_then(|s| s.spec.cpu_period)
            .or(c.info.limits.cpu_period);
        if let Some(p) = p {
            enc.sample("container_spec_cpu_period", l, &[], p as f64);
        }
    }
    enc.family(
        "container_spec_cpu_shares",
        "CPU share of the container.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        let sh = c
            .stats
            .as_ref()
            .and_then(|s| s.spec.cpu_shares)
            .or(c.info.limits.cpu_shares);
        if let Some(sh) = sh {
            enc.sample("container_spec_cpu_shares", l, &[], sh as f64);
        }
    }

    for (name, help, f) in NET {
        enc.family(name, help, Kind::Counter);
        for (_, s, l) in running() {
            if let Network::Own(ifs) = &s.network {
                for i in ifs {
                    enc.sample(name, l, &[("interface", &i.name)], f(i) as f64);
                }
            }
        }
    }
    for (name, help, f) in BLK {
        enc.family(name, help, Kind::Counter);
        for (_, s, l) in running() {
            for b in &s.blkio {
                enc.sample(name, l, &[("device", &b.device)], f(b) as f64);
            }
        }
    }

    // Measured on the fs_usage collector's own cadence: the last complete figures.
    for (name, help, f) in LAYER {
        enc.family(name, help, Kind::Gauge);
        for (c, l) in all() {
            if let Some(u) = &c.derived.fs_usage {
                if let Some(v) = f(u) {
                    enc.sample(name, l, &[("device", &u.device)], v);
                }
            }
        }
    }

    enc.family(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        if let Some(t) = c.info.started_at {
            enc.sample("container_start_time_seconds", l, &[], t);
        }
    }
    enc.family(
        "container_last_seen",
        "Last time a container was seen by the exporter.",
        Kind::Gauge,
    );
    for (_, _, l) in running() {
        enc.sample("container_last_seen", l, &[], snap.taken_at.floor());
    }
    enc.family(
        "container_oom_events_total",
        "Count of out of memory events observed for the container.",
        Kind::Counter,
    );
    for (c, l) in all() {
        enc.sample(
            "container_oom_events_total",
            l,
            &[],
            c.info.oom_events as f64,
        );
    }
    enc.family(
        "container_health_state",
        "The result of the container's health check: 1 healthy, 0 starting or unhealthy, -1 no health check.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        enc.sample("container_health_state", l, &[], c.info.health.gauge());
    }
    enc.family(
        "lookout_probe_success",
        "Whether the container's last active probe (label lookout.probe) succeeded: 1 or 0.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        if let Some(p) = &c.derived.probe {
            let v = if p.success { 1.0 } else { 0.0 };
            enc.sample("lookout_probe_success", l, &[], v);
        }
    }
    enc.family(
        "lookout_probe_duration_seconds",
        "How long the container's last active probe took, in seconds.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        if let Some(p) = &c.derived.probe {
            enc.sample("lookout_probe_duration_seconds", l, &[], p.duration_seconds);
        }
    }

    encode_docker_facts(enc, snap, &labels);
}

/// Facts cAdvisor lacks, for every container including stopped ones.
fn encode_docker_facts(enc: &mut Encoder, snap: &Snapshot, labels: &[String]) {
    let all = || {
        snap.containers
            .iter()
            .zip(labels.iter().map(String::as_str))
    };
    enc.family(
        "lookout_container_info",
        "Docker facts about a container; always 1.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        let shared = if c.info.shares_network() {
            "true"
        } else {
            "false"
        };
        enc.sample(
            "lookout_container_info",
            l,
            &[
                ("container_id", &c.info.id),
                ("network_mode", &c.info.network_mode),
                ("shared_network", shared),
            ],
            1.0,
        );
    }
    enc.family(
        "lookout_container_state",
        "The container's current state (1 for the state it is in).",
        Kind::Gauge,
    );
    for (c, l) in all() {
        enc.sample(
            "lookout_container_state",
            l,
            &[("state", c.info.state.as_str())],
            1.0,
        );
    }
    enc.family(
        "lookout_container_restarts",
        "Docker's RestartCount (a gauge: it resets when the daemon restarts).",
        Kind::Gauge,
    );
    for (c, l) in all() {
        enc.sample(
            "lookout_container_restarts",
            l,
            &[],
            c.info.restart_count as f64,
        );
    }
    enc.family(
        "lookout_container_exit_code",
        "Exit code of the container's last run (0 while running).",
        Kind::Gauge,
    );
    for (c, l) in all() {
        enc.sample(
            "lookout_container_exit_code",
            l,
            &[],
            c.info.exit_code as f64,
        );
    }
    enc.family(
        "lookout_container_oom_killed",
        "Whether the container's last run was OOM-killed (1) or not (0).",
        Kind::Gauge,
    );
    for (c, l) in all() {
        enc.sample(
            "lookout_container_oom_killed",
            l,
            &[],
            if c.info.oom_killed { 1.0 } else { 0.0 },
        );
    }
    enc.family(
        "lookout_container_pids",
        "Number of processes and threads in the container's cgroup.",
        Kind::Gauge,
    );
    for (c, l) in all() {
        if let Some(p) = c.stats.as_ref().and_then(|s| s.pids) {
            enc.sample("lookout_container_pids", l, &[], p as f64);
        }
    }
    enc.family(
        "lookout_containers",
        "Number of known containers by state.",
        Kind::Gauge,
    );
    for st in State::ALL {
        let n = snap
            .containers
            .iter()
            .filter(|c| c.info.state == st)
            .count();
        enc.sample(
            "lookout_containers",
            "",
            &[("state", st.as_str())],
            n as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::{render, Format};
    use crate::snapshot::*;
    use std::sync::Arc;

    fn snap() -> Snapshot {
        let info = ContainerInfo {
            id: "abc".into(),
            name: "web-1".into(),
            image: "bb:local".into(),
            state: State::Running,
            pid: 42,
            labels: [("com.docker.compose.project".to_string(), "shop".to_string())].into(),
            ..Default::default()
        };
        let stats = ContainerStats {
            cgroup_path: "/docker/abc".into(),
            cpu: Some(CpuStats {
                usage_seconds: 1.5,
                ..Default::default()
            }),
            memory: Some(MemoryStats {
                usage: 10,
                working_set: 8,
                ..Default::default()
            }),
            spec: CgroupSpec {
                memory_limit: Some(64 << 20),
                ..Default::default()
            },
            ..Default::default()
        };
        let stopped = ContainerInfo {
            id: "def".into(),
            name: "old".into(),
            state: State::Exited,
            exit_code: 3,
            ..Default::default()
        };
        Snapshot {
            containers: vec![
                Container {
                    info,
                    stats: Some(stats),
                    derived: Default::default(),
                },
                Container {
                    info: stopped,
                    stats: None,
                    derived: Default::default(),
                },
            ],
            label_allowlist: Arc::new(LabelAllowlist::new(&["com.docker.compose.project".into()])),
            ..Default::default()
        }
    }

    #[test]
    fn cadvisor_names_and_labels() {
        let text = render(&snap(), Format::Text);
        assert!(text.contains(
            "container_cpu_usage_seconds_total{id=\"/docker/abc\",image=\"bb:local\",name=\"web-1\",container_label_com_docker_compose_project=\"shop\",cpu=\"total\"} 1.5\n"
        ), "{text}");
        assert!(text.contains("container_spec_memory_limit_bytes{id=\"/docker/abc\",image=\"bb:local\",name=\"web-1\",container_label_com_docker_compose_project=\"shop\"} 67108864\n"));
        // The stopped container has Docker facts but no resource series.
        assert!(text.contains(
            "lookout_container_exit_code{id=\"/docker/def\",image=\"\",name=\"old\"} 3\n"
        ));
        assert!(!text.contains("container_memory_usage_bytes{id=\"/docker/def\""));
        assert!(text.contains("lookout_container_state{id=\"/docker/def\",image=\"\",name=\"old\",state=\"exited\"} 1\n"));
        // No block I/O devices reported: no series, not zeros.
        assert!(!text.contains("container_fs_reads_bytes_total{"));
        // No probe results: the families, without series.
        assert!(text.contains("# TYPE lookout_probe_success gauge\n"));
        assert!(!text.contains("lookout_probe_success{"));
    }

    #[test]
    fn writable_layer_series_with_the_device() {
        let mut s = snap();
        let text = render(&s, Format::Text);
        // No measurement yet: the families, without series.
        assert!(text.contains("# HELP container_fs_usage_bytes Number of bytes that are consumed by the container on this filesystem.\n# TYPE container_fs_usage_bytes gauge\n"));
        assert!(!text.contains("container_fs_usage_bytes{"));
        s.containers[0].derived.fs_usage = Some(LayerUsage {
            device: "/dev/sda1".into(),
            usage_bytes: 5 << 20,
            limit_bytes: 100 << 30,
            inodes_total: Some(6_553_600),
            inodes_free: Some(6_000_000),
            measured_at: 1.0,
        });
        let text = render(&s, Format::Text);
        let l = "{id=\"/docker/abc\",image=\"bb:local\",name=\"web-1\",container_label_com_docker_compose_project=\"shop\",device=\"/dev/sda1\"}";
        for line in [
            format!("container_fs_usage_bytes{l} 5242880\n"),
            format!("container_fs_limit_bytes{l} 107374182400\n"),
            format!("container_fs_inodes_total{l} 6553600\n"),
            format!("container_fs_inodes_free{l} 6000000\n"),
        ] {
            assert!(text.contains(&line), "{line}{text}");
        }
        assert!(text.contains("# HELP container_fs_inodes_free Number of available Inodes\n"));
        assert!(text.contains("# HELP container_fs_inodes_total Number of Inodes\n"));
        // A filesystem without inode figures: no inode series, not zeros.
        s.containers[0]
            .derived
            .fs_usage
            .as_mut()
            .unwrap()
            .inodes_total = None;
        s.containers[0]
            .derived
            .fs_usage
            .as_mut()
            .unwrap()
            .inodes_free = None;
        let text = render(&s, Format::Text);
        assert!(!text.contains("container_fs_inodes_total{"));
        assert!(text.contains("container_fs_usage_bytes{"));
    }

    #[test]
    fn probe_results_with_the_container_labels() {
        let mut s = snap();
        s.containers[0].derived.probe = Some(ProbeResult {
            container_id: "abc".into(),
            target: "http://172.17.0.2:8080/".into(),
            success: true,
            duration_seconds: 0.0125,
            at: 1.0,
            error: None,
        });
        let text = render(&s, Format::Text);
        let l = "{id=\"/docker/abc\",image=\"bb:local\",name=\"web-1\",container_label_com_docker_compose_project=\"shop\"}";
        assert!(
            text.contains(&format!("lookout_probe_success{l} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("lookout_probe_duration_seconds{l} 0.0125\n")));
        assert!(!text.contains("lookout_probe_success{id=\"/docker/def\""));
        s.containers[0].derived.probe.as_mut().unwrap().success = false;
        let text = render(&s, Format::Text);
        assert!(text.contains(&format!("lookout_probe_success{l} 0\n")));
    }
}
