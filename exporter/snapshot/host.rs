//! The host: CPU, memory, load, network, disk I/O, pressure and filesystems (node_exporter's facts).

use serde::Serialize;

/// Seconds each CPU spent in each mode (from `/proc/stat`, USER_HZ converted to seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuTimes {
    pub cpu: u32,
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
}

impl CpuTimes {
    pub fn total(&self) -> f64 {
        self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
    }
    pub fn idle_total(&self) -> f64 {
        self.idle + self.iowait
    }
}

/// `/proc/meminfo`, every field, in bytes (node_exporter's `node_memory_<Field>_bytes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Meminfo {
    /// Field name as in meminfo with `(`/`)` turned into `_` (node_exporter's rule), and bytes.
    pub fields: Vec<(String, u64)>,
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

/// `/proc/diskstats` counters of one block device.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskIo {
    pub device: String,
    pub reads_completed: u64,
    pub writes_completed: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub read_time_seconds: f64,
    pub write_time_seconds: f64,
    pub io_time_seconds: f64,
    pub io_now: u64,
}

/// One PSI line: `/proc/pressure/<resource>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pressure {
    /// cpu, memory or io.
    pub resource: String,
    /// `some` total stall time (s).
    pub some_seconds: f64,
    /// `full` total stall time (s), where the kernel reports it.
    pub full_seconds: Option<f64>,
}

/// `uname(2)`, for `node_uname_info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Uname {
    pub sysname: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub nodename: String,
    pub domainname: String,
}

/// A network interface's counters (`/proc/net/dev`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostNetInterface {
    pub device: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

/// The host collector's part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostStats {
    pub cpus: Vec<CpuTimes>,
    pub memory: Meminfo,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Unix seconds.
    pub boot_time: f64,
    pub network: Vec<HostNetInterface>,
    pub disks: Vec<DiskIo>,
    pub pressure: Vec<Pressure>,
    pub uname: Uname,
    /// 0-100 over all cores, from this and the previous sample (set by the snapshot).
    pub cpu_percent: Option<f64>,
}

/// One mounted filesystem (node_exporter's `node_filesystem_*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filesystem {
    pub device: String,
    pub fstype: String,
    /// As the host sees it (the rootfs prefix removed).
    pub mountpoint: String,
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub files: u64,
    pub files_free: u64,
    pub readonly: bool,
    /// statfs failed or timed out: sizes are not reported.
    pub device_error: bool,
}
