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
    /// Time running a virtual CPU for guests (Linux 2.6.24+), already counted in `user`;
    /// None where the kernel's line lacks the column.
    pub guest: Option<f64>,
    /// Time running a niced guest (Linux 2.6.33+), already counted in `nice`; None where the
    /// kernel's line lacks the column.
    pub guest_nice: Option<f64>,
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

/// One `/proc/meminfo` line, named as node_exporter names it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemField {
    /// The meminfo key with `(x)` turned into `_x` (node_exporter's rule: `Active(anon)` →
    /// `Active_anon`), without the `_bytes` suffix.
    pub name: String,
    /// Bytes when `bytes` (meminfo's kB × 1024), else the raw count (`HugePages_Total`).
    pub value: u64,
    /// Whether the line had a unit: such fields are exported as `node_memory_<name>_bytes`,
    /// the others as `node_memory_<name>`, exactly as node_exporter does.
    pub bytes: bool,
}

/// `/proc/meminfo`, every field (node_exporter's `node_memory_<Field>_bytes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Meminfo {
    /// Every field, in file order.
    pub fields: Vec<MemField>,
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

/// `/proc/diskstats` counters of one block device (Documentation/admin-guide/iostats.rst).
/// The first eleven are on every kernel since 2.6.25; the discard ones came with Linux 4.18 and
/// the flush ones with 5.5, so they are None where the kernel's line lacks their columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskIo {
    pub device: String,
    pub major: u32,
    pub minor: u32,
    pub reads_completed: u64,
    pub reads_merged: u64,
    /// Sectors read × 512 (the kernel's sectors are 512 bytes whatever the device's).
    pub read_bytes: u64,
    pub read_time_seconds: f64,
    pub writes_completed: u64,
    pub writes_merged: u64,
    pub written_bytes: u64,
    pub write_time_seconds: f64,
    pub io_now: u64,
    pub io_time_seconds: f64,
    /// Time spent doing I/Os, weighted by the number in flight (iostat's queue size).
    pub io_time_weighted_seconds: f64,
    pub discards_completed: Option<u64>,
    pub discards_merged: Option<u64>,
    /// In 512-byte sectors, as node_exporter exports them (not bytes).
    pub discarded_sectors: Option<u64>,
    pub discard_time_seconds: Option<f64>,
    pub flush_requests: Option<u64>,
    pub flush_time_seconds: Option<f64>,
}

/// One PSI file: `/proc/pressure/<resource>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pressure {
    /// cpu, memory, io or irq.
    pub resource: String,
    /// `some` total stall time (s); every resource but irq has it.
    pub some_seconds: Option<f64>,
    /// `full` total stall time (s), where the kernel reports it (cpu since Linux 5.13; irq has
    /// only this line).
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
    /// Every interface of the host's network namespace (`/proc/net/dev`), loopback included.
    pub network: Vec<super::NetInterface>,
    pub disks: Vec<DiskIo>,
    pub pressure: Vec<Pressure>,
    pub uname: Uname,
    /// 0-100 over all cores, from this and the previous sample (set by the snapshot).
    pub cpu_percent: Option<f64>,
}

impl HostStats {
    /// Busy share of all cores (0-100) between `prev` and this sample: busy is the total minus
    /// idle and iowait, summed over every CPU. None without a usable interval (first sample,
    /// counters that went backwards, no CPU time elapsed).
    pub fn cpu_percent_since(&self, prev: &HostStats) -> Option<f64> {
        let sum = |h: &HostStats| {
            h.cpus
                .iter()
                .fold((0.0, 0.0), |(t, i), c| (t + c.total(), i + c.idle_total()))
        };
        let (total, idle) = sum(self);
        let (prev_total, prev_idle) = sum(prev);
        let dt = total - prev_total;
        let didle = idle - prev_idle;
        if prev.cpus.is_empty() || dt <= 0.0 || didle < 0.0 {
            return None;
        }
        Some(((dt - didle) / dt * 100.0).clamp(0.0, 100.0))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host(cpus: &[(f64, f64, f64)]) -> HostStats {
        HostStats {
            cpus: cpus
                .iter()
                .enumerate()
                .map(|(i, &(user, idle, iowait))| CpuTimes {
                    cpu: i as u32,
                    user,
                    idle,
                    iowait,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_percent_over_all_cores() {
        let prev = host(&[(10.0, 10.0, 0.0), (10.0, 10.0, 0.0)]);
        // cpu0: 3 s busy, 1 s idle; cpu1: 0 busy, 3 s idle + 1 s iowait: 3 of 8 s busy.
        let now = host(&[(13.0, 11.0, 0.0), (10.0, 13.0, 1.0)]);
        assert_eq!(now.cpu_percent_since(&prev), Some(37.5));
        assert_eq!(now.cpu_percent_since(&now), None, "no time elapsed");
        assert_eq!(prev.cpu_percent_since(&now), None, "counters went back");
        assert_eq!(now.cpu_percent_since(&HostStats::default()), None);
    }
}
