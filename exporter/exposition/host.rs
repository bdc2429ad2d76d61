//! Host series under node_exporter's names, labels and help texts, so that existing dashboards
//! ("Node Exporter Full") and alert rules work unchanged.

use super::{Encoder, Kind};
use crate::snapshot::{HostStats, Snapshot};

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot) {
    let Some(h) = snap.host.as_deref() else {
        return;
    };
    cpu(enc, h);
    memory(enc, h);
    if !h.cpus.is_empty() {
        enc.single(
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            Kind::Gauge,
            h.boot_time,
        );
    }
    for (name, help, v) in [
        ("node_load1", "1m load average.", h.load1),
        ("node_load5", "5m load average.", h.load5),
        ("node_load15", "15m load average.", h.load15),
    ] {
        enc.single(name, help, Kind::Gauge, v);
    }
    network(enc, h);
    disks(enc, h);
    pressure(enc, h);
    machine(enc, h);
    let u = &h.uname;
    enc.family(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        Kind::Gauge,
    );
    enc.sample(
        "node_uname_info",
        "",
        &[
            ("domainname", &u.domainname),
            ("machine", &u.machine),
            ("nodename", &u.nodename),
            ("release", &u.release),
            ("sysname", &u.sysname),
            ("version", &u.version),
        ],
        1.0,
    );
}

/// cAdvisor's machine series, which its container dashboards divide by (CPU and memory
/// shares of the machine).
fn machine(enc: &mut Encoder, h: &HostStats) {
    if !h.cpus.is_empty() {
        enc.single(
            "machine_cpu_cores",
            "Number of logical CPU cores.",
            Kind::Gauge,
            h.cpus.len() as f64,
        );
    }
    if h.memory.total_bytes > 0 {
        enc.single(
            "machine_memory_bytes",
            "Amount of memory installed on the machine.",
            Kind::Gauge,
            h.memory.total_bytes as f64,
        );
    }
}

fn cpu(enc: &mut Encoder, h: &HostStats) {
    if h.cpus.is_empty() {
        return;
    }
    enc.family(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
        Kind::Counter,
    );
    for c in &h.cpus {
        let id = c.cpu.to_string();
        for (mode, v) in [
            ("idle", c.idle),
            ("iowait", c.iowait),
            ("irq", c.irq),
            ("nice", c.nice),
            ("softirq", c.softirq),
            ("steal", c.steal),
            ("system", c.system),
            ("user", c.user),
        ] {
            enc.sample(
                "node_cpu_seconds_total",
                "",
                &[("cpu", &id), ("mode", mode)],
                v,
            );
        }
    }
}

fn memory(enc: &mut Encoder, h: &HostStats) {
    let mut name = String::with_capacity(64);
    let mut help = String::with_capacity(96);
    for f in &h.memory.fields {
        name.clear();
        name.push_str("node_memory_");
        name.push_str(&f.name);
        if f.bytes {
            name.push_str("_bytes");
        }
        help.clear();
        help.push_str("Memory information field ");
        help.push_str(&name["node_memory_".len()..]);
        help.push('.');
        enc.single(&name, &help, Kind::Gauge, f.value as f64);
    }
}

fn network(enc: &mut Encoder, h: &HostStats) {
    if h.network.is_empty() {
        return;
    }
    type Get = fn(&crate::snapshot::NetInterface) -> u64;
    let families: [(&str, &str, Get); 8] = [
        ("receive_bytes", "node_network_receive_bytes_total", |n| {
            n.rx_bytes
        }),
        ("receive_drop", "node_network_receive_drop_total", |n| {
            n.rx_dropped
        }),
        ("receive_errs", "node_network_receive_errs_total", |n| {
            n.rx_errors
        }),
        (
            "receive_packets",
            "node_network_receive_packets_total",
            |n| n.rx_packets,
        ),
        ("transmit_bytes", "node_network_transmit_bytes_total", |n| {
            n.tx_bytes
        }),
        ("transmit_drop", "node_network_transmit_drop_total", |n| {
            n.tx_dropped
        }),
        ("transmit_errs", "node_network_transmit_errs_total", |n| {
            n.tx_errors
        }),
        (
            "transmit_packets",
            "node_network_transmit_packets_total",
            |n| n.tx_packets,
        ),
    ];
    for (stat, name, get) in families {
        enc.family(
            name,
            &format!("Network device statistic {stat}."),
            Kind::Counter,
        );
        for n in &h.network {
            enc.sample(name, "", &[("device", &n.name)], get(n) as f64);
        }
    }
}

fn disks(enc: &mut Encoder, h: &HostStats) {
    if h.disks.is_empty() {
        return;
    }
    type Get = fn(&crate::snapshot::DiskIo) -> f64;
    let families: [(&str, &str, Kind, Get); 8] = [
        (
            "node_disk_io_now",
            "The number of I/Os currently in progress.",
            Kind::Gauge,
            |d| d.io_now as f64,
        ),
        (
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
            Kind::Counter,
            |d| d.io_time_seconds,
        ),
        (
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
            Kind::Counter,
            |d| d.read_bytes as f64,
        ),
        (
            "node_disk_read_time_seconds_total",
            "The total number of seconds spent by all reads.",
            Kind::Counter,
            |d| d.read_time_seconds,
        ),
        (
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
            Kind::Counter,
            |d| d.reads_completed as f64,
        ),
        (
            "node_disk_write_time_seconds_total",
            "This is the total number of seconds spent by all writes.",
            Kind::Counter,
            |d| d.write_time_seconds,
        ),
        (
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
            Kind::Counter,
            |d| d.writes_completed as f64,
        ),
        (
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
            Kind::Counter,
            |d| d.written_bytes as f64,
        ),
    ];
    for (name, help, kind, get) in families {
        enc.family(name, help, kind);
        for d in &h.disks {
            enc.sample(name, "", &[("device", &d.device)], get(d));
        }
    }
}

fn pressure(enc: &mut Encoder, h: &HostStats) {
    for p in &h.pressure {
        let (waiting, stalled) = match p.resource.as_str() {
            "cpu" => (
                "Total time in seconds that processes have waited for CPU time",
                "Total time in seconds no process could make progress due to CPU congestion",
            ),
            "memory" => (
                "Total time in seconds that processes have waited for memory",
                "Total time in seconds no process could make progress due to memory congestion",
            ),
            "io" => (
                "Total time in seconds that processes have waited due to IO congestion",
                "Total time in seconds no process could make progress due to IO congestion",
            ),
            _ => continue,
        };
        let name = format!("node_pressure_{}_waiting_seconds_total", p.resource);
        enc.single(&name, waiting, Kind::Counter, p.some_seconds);
        if let Some(full) = p.full_seconds {
            let name = format!("node_pressure_{}_stalled_seconds_total", p.resource);
            enc.single(&name, stalled, Kind::Counter, full);
        }
    }
}
