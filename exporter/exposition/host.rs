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
    // Guest time is also counted in `user` and `nice`; kernels without the columns give no
    // series.
    if h.cpus
        .iter()
        .any(|c| c.guest.is_some() || c.guest_nice.is_some())
    {
        let name = "node_cpu_guest_seconds_total";
        enc.family(
            name,
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            Kind::Counter,
        );
        for c in &h.cpus {
            let id = c.cpu.to_string();
            for (mode, v) in [("nice", c.guest_nice), ("user", c.guest)] {
                if let Some(v) = v {
                    enc.sample(name, "", &[("cpu", &id), ("mode", mode)], v);
                }
            }
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
    use crate::snapshot::{NetDevDetail, NetInterface};
    type Get = fn(&NetInterface) -> Option<u64>;
    /// One of the `detail` counters, where the source has them.
    fn detail(n: &NetInterface, get: fn(&NetDevDetail) -> u64) -> Option<u64> {
        n.detail.as_ref().map(get)
    }
    // node_exporter's `/proc/net/dev` names (its netlink source maps onto the same ones).
    let families: [(&str, Get); 16] = [
        ("receive_bytes", |n| Some(n.rx_bytes)),
        ("receive_compressed", |n| detail(n, |d| d.rx_compressed)),
        ("receive_drop", |n| Some(n.rx_dropped)),
        ("receive_errs", |n| Some(n.rx_errors)),
        ("receive_fifo", |n| detail(n, |d| d.rx_fifo)),
        ("receive_frame", |n| detail(n, |d| d.rx_frame)),
        ("receive_multicast", |n| detail(n, |d| d.rx_multicast)),
        ("receive_packets", |n| Some(n.rx_packets)),
        ("transmit_bytes", |n| Some(n.tx_bytes)),
        ("transmit_carrier", |n| detail(n, |d| d.tx_carrier)),
        ("transmit_colls", |n| detail(n, |d| d.tx_colls)),
        ("transmit_compressed", |n| detail(n, |d| d.tx_compressed)),
        ("transmit_drop", |n| Some(n.tx_dropped)),
        ("transmit_errs", |n| Some(n.tx_errors)),
        ("transmit_fifo", |n| detail(n, |d| d.tx_fifo)),
        ("transmit_packets", |n| Some(n.tx_packets)),
    ];
    let mut name = String::with_capacity(48);
    for (stat, get) in families {
        if !h.network.iter().any(|n| get(n).is_some()) {
            continue;
        }
        name.clear();
        name.push_str("node_network_");
        name.push_str(stat);
        name.push_str("_total");
        enc.family(
            &name,
            &format!("Network device statistic {stat}."),
            Kind::Counter,
        );
        for n in &h.network {
            if let Some(v) = get(n) {
                enc.sample(&name, "", &[("device", &n.name)], v as f64);
            }
        }
    }
}

fn disks(enc: &mut Encoder, h: &HostStats) {
    if h.disks.is_empty() {
        return;
    }
    disk_info(enc, h);
    type Get = fn(&crate::snapshot::DiskIo) -> Option<f64>;
    // node_exporter's diskstats series, in name order. A family none of the devices has (a
    // kernel without the columns) is left out.
    let families: [(&str, &str, Kind, Get); 17] = [
        (
            "node_disk_discard_time_seconds_total",
            "This is the total number of seconds spent by all discards.",
            Kind::Counter,
            |d| d.discard_time_seconds,
        ),
        (
            "node_disk_discarded_sectors_total",
            "The total number of sectors discarded successfully.",
            Kind::Counter,
            |d| d.discarded_sectors.map(|v| v as f64),
        ),
        (
            "node_disk_discards_completed_total",
            "The total number of discards completed successfully.",
            Kind::Counter,
            |d| d.discards_completed.map(|v| v as f64),
        ),
        (
            "node_disk_discards_merged_total",
            "The total number of discards merged.",
            Kind::Counter,
            |d| d.discards_merged.map(|v| v as f64),
        ),
        (
            "node_disk_flush_requests_time_seconds_total",
            "This is the total number of seconds spent by all flush requests.",
            Kind::Counter,
            |d| d.flush_time_seconds,
        ),
        (
            "node_disk_flush_requests_total",
            "The total number of flush requests completed successfully",
            Kind::Counter,
            |d| d.flush_requests.map(|v| v as f64),
        ),
        (
            "node_disk_io_now",
            "The number of I/Os currently in progress.",
            Kind::Gauge,
            |d| Some(d.io_now as f64),
        ),
        (
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
            Kind::Counter,
            |d| Some(d.io_time_seconds),
        ),
        (
            "node_disk_io_time_weighted_seconds_total",
            "The weighted # of seconds spent doing I/Os.",
            Kind::Counter,
            |d| Some(d.io_time_weighted_seconds),
        ),
        (
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
            Kind::Counter,
            |d| Some(d.read_bytes as f64),
        ),
        (
            "node_disk_read_time_seconds_total",
            "The total number of seconds spent by all reads.",
            Kind::Counter,
            |d| Some(d.read_time_seconds),
        ),
        (
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
            Kind::Counter,
            |d| Some(d.reads_completed as f64),
        ),
        (
            "node_disk_reads_merged_total",
            "The total number of reads merged.",
            Kind::Counter,
            |d| Some(d.reads_merged as f64),
        ),
        (
            "node_disk_write_time_seconds_total",
            "This is the total number of seconds spent by all writes.",
            Kind::Counter,
            |d| Some(d.write_time_seconds),
        ),
        (
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
            Kind::Counter,
            |d| Some(d.writes_completed as f64),
        ),
        (
            "node_disk_writes_merged_total",
            "The number of writes merged.",
            Kind::Counter,
            |d| Some(d.writes_merged as f64),
        ),
        (
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
            Kind::Counter,
            |d| Some(d.written_bytes as f64),
        ),
    ];
    for (name, help, kind, get) in families {
        if !h.disks.iter().any(|d| get(d).is_some()) {
            continue;
        }
        enc.family(name, help, kind);
        for d in &h.disks {
            if let Some(v) = get(d) {
                enc.sample(name, "", &[("device", &d.device)], v);
            }
        }
    }
}

/// `node_disk_info` as node_exporter 1.8 writes it without a udev database (no
/// `/run/udev/data`, as in a container): the udev labels (`model`, `path`, `revision`,
/// `serial`, `wwn`) are there and empty.
fn disk_info(enc: &mut Encoder, h: &HostStats) {
    let name = "node_disk_info";
    enc.family(name, "Info of /sys/block/<block_device>.", Kind::Gauge);
    for d in &h.disks {
        let (major, minor) = (d.major.to_string(), d.minor.to_string());
        enc.sample(
            name,
            "",
            &[
                ("device", &d.device),
                ("major", &major),
                ("minor", &minor),
                ("model", ""),
                ("path", ""),
                ("revision", ""),
                ("serial", ""),
                ("wwn", ""),
            ],
            1.0,
        );
    }
}

/// node_exporter's PSI series: `some` as `_waiting_` for cpu, memory and io; `full` as
/// `_stalled_` for memory, io and irq. (It leaves out cpu's `full`, which Linux 5.13+ reports.)
fn pressure(enc: &mut Encoder, h: &HostStats) {
    for p in &h.pressure {
        let (waiting, stalled) = match p.resource.as_str() {
            "cpu" => (
                Some("Total time in seconds that processes have waited for CPU time"),
                None,
            ),
            "memory" => (
                Some("Total time in seconds that processes have waited for memory"),
                Some(
                    "Total time in seconds no process could make progress due to memory congestion",
                ),
            ),
            "io" => (
                Some("Total time in seconds that processes have waited due to IO congestion"),
                Some("Total time in seconds no process could make progress due to IO congestion"),
            ),
            "irq" => (
                None,
                Some("Total time in seconds no process could make progress due to IRQ congestion"),
            ),
            _ => continue,
        };
        if let (Some(help), Some(v)) = (waiting, p.some_seconds) {
            let name = format!("node_pressure_{}_waiting_seconds_total", p.resource);
            enc.single(&name, help, Kind::Counter, v);
        }
        if let (Some(help), Some(v)) = (stalled, p.full_seconds) {
            let name = format!("node_pressure_{}_stalled_seconds_total", p.resource);
            enc.single(&name, help, Kind::Counter, v);
        }
    }
}
