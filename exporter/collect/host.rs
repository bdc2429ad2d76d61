//! The host collector: CPU times, memory, load, boot time, network and disk I/O counters,
//! pressure stall information and uname, read from the host's procfs the way node_exporter's
//! `cpu`, `meminfo`, `loadavg`, `stat`, `netdev`, `diskstats`, `pressure` and `uname`
//! collectors read them, so that its series can carry node_exporter's names.
//!
//! Every file is read under `paths.procfs` (never a hard-coded `/proc`), so the same code runs
//! on the host, in a container with the host's /proc mounted at `/host/proc`, and on the
//! fixture tree of the golden test. Network counters come from `<procfs>/net/dev`, which is the
//! network namespace of the process that *reads* it: on the host, or in a container started
//! with `--network host`, that is the host's; in a container on its own network it is the
//! container's (node_exporter has the same rule; run lookout with `--network host`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;

use super::disk::DiskCollector;
use super::{CollectError, CollectFuture, Collector};
use crate::config::Config;
use crate::snapshot::{
    CpuTimes, DiskIo, HostStats, MemField, Meminfo, NetDevDetail, NetInterface, Part, Pressure,
    Snapshot, Uname,
};

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions, RAM disks,
/// loop devices and floppies are left out; whole disks stay.
pub const DISKSTATS_DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// The PSI resources node_exporter reads (`irq` since Linux 6.1, with
/// `CONFIG_IRQ_TIME_ACCOUNTING`).
const PRESSURE_RESOURCES: [&str; 4] = ["cpu", "memory", "io", "irq"];

/// `/proc/stat`'s CPU columns in file order (proc(5)), named for errors. Kernels before 2.6.33
/// write fewer: the first four are always there.
const CPU_COLUMNS: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

/// `/proc/net/dev`'s counters in file order (`dev_seq_printf_stats` in net/core/net-procfs.c),
/// named as node_exporter names them, for errors.
const NET_DEV_COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// `/proc/diskstats`' counters after major, minor and name, in file order
/// (Documentation/admin-guide/iostats.rst), named for errors. Every kernel since 2.6.25 writes
/// the first eleven; Linux 4.18 added the four discard fields, 5.5 the two flush fields.
const DISKSTATS_COLUMNS: [&str; 17] = [
    "reads completed",
    "reads merged",
    "sectors read",
    "time reading",
    "writes completed",
    "writes merged",
    "sectors written",
    "time writing",
    "I/Os in progress",
    "time doing I/Os",
    "weighted time doing I/Os",
    "discards completed",
    "discards merged",
    "sectors discarded",
    "time discarding",
    "flush requests completed",
    "time flushing",
];

/// Why part of the host could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
}

/// Reads the host's procfs each cycle.
pub struct HostCollector {
    procfs: PathBuf,
    /// `/proc/diskstats` devices to leave out (node_exporter's default exclusion).
    disk_exclude: Regex,
    /// Clock ticks per second of `/proc/stat` (USER_HZ).
    user_hz: f64,
}

impl HostCollector {
    /// A collector reading `<procfs>/...`.
    pub fn new(procfs: &Path) -> HostCollector {
        HostCollector {
            procfs: procfs.to_path_buf(),
            disk_exclude: Regex::new(DISKSTATS_DEVICE_EXCLUDE).expect("constant regex"),
            user_hz: user_hz(),
        }
    }

    /// Read everything once (blocking). The stats hold whatever could be read; each file that
    /// could not be read or parsed is one error. Missing PSI is not an error (kernels without
    /// `CONFIG_PSI`, or booted with `psi=0`; `irq` before Linux 6.1).
    pub fn read(&self) -> (HostStats, Vec<HostError>) {
        let mut stats = HostStats::default();
        let mut errors = Vec::new();
        if let Some(st) = self.file("stat", &mut errors, |t| parse_stat(t, self.user_hz)) {
            stats.cpus = st.cpus;
            stats.boot_time = st.boot_time;
        }
        if let Some(m) = self.file("meminfo", &mut errors, parse_meminfo) {
            stats.memory = m;
        }
        if let Some((l1, l5, l15)) = self.file("loadavg", &mut errors, parse_loadavg) {
            (stats.load1, stats.load5, stats.load15) = (l1, l5, l15);
        }
        if let Some(n) = self.file("net/dev", &mut errors, parse_net_dev) {
            stats.network = n;
        }
        if let Some(d) = self.file("diskstats", &mut errors, |t| {
            parse_diskstats(t, &self.disk_exclude)
        }) {
            stats.disks = d;
        }
        for resource in PRESSURE_RESOURCES {
            let path = self.procfs.join("pressure").join(resource);
            match std::fs::read_to_string(&path) {
                Ok(text) => match parse_pressure(resource, &text) {
                    Ok(p) => stats.pressure.push(p),
                    Err(message) => errors.push(HostError::Parse { path, message }),
                },
                Err(e) if psi_absent(&e) => {}
                Err(source) => errors.push(HostError::Read { path, source }),
            }
        }
        stats.uname = read_uname(&self.procfs);
        (stats, errors)
    }

    /// Read and parse `<procfs>/<name>`, recording a failure in `errors`.
    fn file<T>(
        &self,
        name: &str,
        errors: &mut Vec<HostError>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let path = self.procfs.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&text) {
                Ok(v) => Some(v),
                Err(message) => {
                    errors.push(HostError::Parse { path, message });
                    None
                }
            },
            Err(source) => {
                errors.push(HostError::Read { path, source });
                None
            }
        }
    }
}

impl Collector for HostCollector {
    fn name(&self) -> &'static str {
        "host"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            let (stats, errors) = tokio::task::spawn_blocking(move || self.read())
                .await
                .map_err(|e| CollectError::failed(format!("host reader: {e}")))?;
            if errors.is_empty() {
                return Ok(Part::Host(Box::new(stats)));
            }
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            Err(CollectError::Failed {
                message,
                partial: Some(Part::Host(Box::new(stats))),
            })
        })
    }
}

/// `ENOENT` (no `/proc/pressure`) or `EOPNOTSUPP` (PSI compiled in but disabled).
fn psi_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

pub(crate) fn user_hz() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

fn num<T: std::str::FromStr>(field: Option<&str>, what: &str) -> Result<T, String> {
    let f = field.ok_or_else(|| format!("missing {what}"))?;
    f.parse()
        .map_err(|_| format!("expected a number for {what}; got {f:?}"))
}

/// What `/proc/stat` holds: the CPU times and boot time (the host collector's) and the
/// counters node_exporter's `stat` collector exports (the `stat` collector's). A counter whose
/// line is missing (an old kernel) or malformed is None.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stat {
    pub cpus: Vec<CpuTimes>,
    pub boot_time: f64,
    /// `ctxt`.
    pub context_switches: Option<u64>,
    /// `intr`'s first number: the total of every interrupt serviced.
    pub interrupts: Option<u64>,
    /// `processes`: forks since boot.
    pub forks: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

/// `/proc/stat`: the per-CPU lines (`cpuN ...`, in ticks), `btime`, and the counters of
/// node_exporter's `stat` collector. The aggregate `cpu` line is skipped, as node_exporter
/// does. The one parser of this file.
pub fn parse_stat(text: &str, user_hz: f64) -> Result<Stat, String> {
    let mut st = Stat::default();
    let mut boot = None;
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        let Some(key) = f.next() else { continue };
        let counter = match key {
            "btime" => {
                boot = Some(num::<u64>(f.next(), "btime")? as f64);
                continue;
            }
            "ctxt" => &mut st.context_switches,
            "intr" => &mut st.interrupts,
            "processes" => &mut st.forks,
            "procs_running" => &mut st.procs_running,
            "procs_blocked" => &mut st.procs_blocked,
            _ => {
                if let Some(id) = key.strip_prefix("cpu").filter(|s| !s.is_empty()) {
                    let cpu = parse_cpu_line(key, id, f, user_hz)
                        .map_err(|e| format!("line {}: {e}", i + 1))?;
                    st.cpus.push(cpu);
                }
                continue;
            }
        };
        // A malformed counter line is skipped: it costs only its own series, never the CPU
        // times of the host collector.
        *counter = num::<u64>(f.next(), key).ok();
    }
    if st.cpus.is_empty() {
        return Err("no cpuN lines".into());
    }
    st.boot_time = boot.ok_or("no btime line")?;
    Ok(st)
}

/// One `cpuN` line's columns, ticks converted to seconds. Older kernels have fewer columns:
/// an absent mode of `node_cpu_seconds_total` is 0 (as node_exporter has it), an absent guest
/// column is None (no `node_cpu_guest_seconds_total` series).
fn parse_cpu_line<'a>(
    key: &str,
    id: &str,
    f: impl Iterator<Item = &'a str>,
    user_hz: f64,
) -> Result<CpuTimes, String> {
    let cpu = num::<u32>(Some(id), "cpu number")?;
    let mut t = [None; CPU_COLUMNS.len()];
    for (slot, (v, column)) in t.iter_mut().zip(f.zip(CPU_COLUMNS)) {
        let ticks: u64 = v
            .parse()
            .map_err(|_| format!("expected a number for {key} {column}; got {v:?}"))?;
        *slot = Some(ticks as f64 / user_hz);
    }
    if t[3].is_none() {
        return Err(format!("{key}: expected at least 4 columns"));
    }
    let mode = |i: usize| t[i].unwrap_or(0.0);
    Ok(CpuTimes {
        cpu,
        user: mode(0),
        nice: mode(1),
        system: mode(2),
        idle: mode(3),
        iowait: mode(4),
        irq: mode(5),
        softirq: mode(6),
        steal: mode(7),
        guest: t[8],
        guest_nice: t[9],
    })
}

/// `/proc/meminfo`, named as node_exporter names it: `Active(anon)` → `Active_anon`; lines
/// with a unit (always kB) become bytes.
pub fn parse_meminfo(text: &str) -> Result<Meminfo, String> {
    let mut m = Meminfo::default();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let Some(key) = f.next() else { continue };
        let key = key.strip_suffix(':').unwrap_or(key);
        let value: u64 = num(f.next(), key)?;
        let bytes = match f.next() {
            None => false,
            Some("kB") => true,
            Some(unit) => return Err(format!("{key}: unknown unit {unit:?}")),
        };
        let value = if bytes { value * 1024 } else { value };
        let name = match key.split_once('(') {
            Some((a, b)) => format!("{a}_{}", b.trim_end_matches(')')),
            None => key.to_string(),
        };
        match name.as_str() {
            "MemTotal" => m.total_bytes = value,
            "MemAvailable" => m.available_bytes = value,
            "SwapTotal" => m.swap_total_bytes = value,
            "SwapFree" => m.swap_free_bytes = value,
            _ => {}
        }
        m.fields.push(MemField { name, value, bytes });
    }
    if m.total_bytes == 0 {
        return Err("no MemTotal".into());
    }
    Ok(m)
}

/// `/proc/loadavg`: the 1, 5 and 15 minute averages.
pub fn parse_loadavg(text: &str) -> Result<(f64, f64, f64), String> {
    let mut f = text.split_ascii_whitespace();
    Ok((
        num(f.next(), "load1")?,
        num(f.next(), "load5")?,
        num(f.next(), "load15")?,
    ))
}

/// `/proc/net/dev` (the host's, or a container's `/proc/<pid>/net/dev`): every interface's
/// sixteen counters, loopback included. The one parser of this file: the host collector and
/// the cgroup collector both use it.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetInterface>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        // Interface names cannot hold a colon (dev_valid_name), so the first one ends it.
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let device = name.trim();
        let mut v = [0u64; NET_DEV_COLUMNS.len()];
        let mut f = rest.split_ascii_whitespace();
        for (slot, column) in v.iter_mut().zip(NET_DEV_COLUMNS) {
            *slot = num(f.next(), column).map_err(|e| format!("line {}: {device}: {e}", i + 1))?;
        }
        out.push(NetInterface {
            name: device.to_string(),
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errors: v[2],
            rx_dropped: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errors: v[10],
            tx_dropped: v[11],
            detail: Some(NetDevDetail {
                rx_fifo: v[4],
                rx_frame: v[5],
                rx_compressed: v[6],
                rx_multicast: v[7],
                tx_fifo: v[12],
                tx_colls: v[13],
                tx_carrier: v[14],
                tx_compressed: v[15],
            }),
        });
    }
    Ok(out)
}

/// `/proc/diskstats`: the counters of each device not matched by `exclude`. Sectors are 512
/// bytes whatever the device's sector size; times are in ms. A line needs at least the eleven
/// counters every kernel since 2.6.25 writes; the discard and flush counters that later kernels
/// add are None where the line lacks them (as node_exporter has it: no series, not 0).
pub fn parse_diskstats(text: &str, exclude: &Regex) -> Result<Vec<DiskIo>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(device)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if exclude.is_match(device) {
            continue;
        }
        let at = |e: String| format!("line {}: {device}: {e}", i + 1);
        let major = num::<u32>(Some(major), "major").map_err(at)?;
        let minor = num::<u32>(Some(minor), "minor").map_err(at)?;
        let mut v = [None; DISKSTATS_COLUMNS.len()];
        let mut count = 0;
        for (slot, (value, column)) in v.iter_mut().zip(f.zip(DISKSTATS_COLUMNS)) {
            *slot = Some(num::<u64>(Some(value), column).map_err(at)?);
            count += 1;
        }
        if count < 11 {
            return Err(at(format!("{count} counters, expected at least 11")));
        }
        let c = |k: usize| v[k].unwrap_or(0);
        let ms = |ticks: u64| ticks as f64 / 1000.0;
        out.push(DiskIo {
            device: device.to_string(),
            major,
            minor,
            reads_completed: c(0),
            reads_merged: c(1),
            // Sectors saturate rather than wrap (or panic in a debug build) at the edge of u64.
            read_bytes: c(2).saturating_mul(512),
            read_time_seconds: ms(c(3)),
            writes_completed: c(4),
            writes_merged: c(5),
            written_bytes: c(6).saturating_mul(512),
            write_time_seconds: ms(c(7)),
            io_now: c(8),
            io_time_seconds: ms(c(9)),
            io_time_weighted_seconds: ms(c(10)),
            discards_completed: v[11],
            discards_merged: v[12],
            discarded_sectors: v[13],
            discard_time_seconds: v[14].map(ms),
            flush_requests: v[15],
            flush_time_seconds: v[16].map(ms),
        });
    }
    Ok(out)
}

/// `/proc/pressure/<resource>`: the `some` and `full` totals, µs → s. `irq` has only a `full`
/// line (the kernel has no `some` state for it); every other resource has `some`, and `full`
/// where the kernel reports it.
pub fn parse_pressure(resource: &str, text: &str) -> Result<Pressure, String> {
    let mut some = None;
    let mut full = None;
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_ascii_whitespace();
        let slot = match f.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let total = f
            .find_map(|kv| kv.strip_prefix("total="))
            .ok_or_else(|| format!("line {}: no total=", i + 1))?;
        let micros =
            num::<u64>(Some(total), "total").map_err(|e| format!("line {}: {e}", i + 1))?;
        *slot = Some(micros as f64 / 1e6);
    }
    if resource == "irq" {
        if full.is_none() {
            return Err("no `full` line".into());
        }
    } else if some.is_none() {
        return Err("no `some` line".into());
    }
    Ok(Pressure {
        resource: resource.to_string(),
        some_seconds: some,
        full_seconds: full,
    })
}

/// This machine's name: the one name lookout gives the host everywhere (the host alerts'
/// `instance`, `node_uname_info{nodename}`, DCGM's `Hostname`). `<procfs>/sys/kernel/hostname`
/// when it can be read (with the host's /proc mounted, the host's), else `gethostname(2)`.
pub fn hostname(procfs: &Path) -> String {
    if let Ok(s) = std::fs::read_to_string(procfs.join("sys/kernel/hostname")) {
        let s = s.trim();
        if !s.is_empty() {
            return s.to_string();
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `node_uname_info`'s fields from `<procfs>/sys/kernel/*` (so a fixture tree can supply
/// them), each falling back to `uname(2)` where its file is missing.
pub fn read_uname(procfs: &Path) -> Uname {
    let dir = procfs.join("sys/kernel");
    let file = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|s| s.trim_end_matches('\n').to_string())
    };
    let mut u = Uname {
        sysname: file("ostype").unwrap_or_default(),
        release: file("osrelease").unwrap_or_default(),
        version: file("version").unwrap_or_default(),
        machine: file("arch").unwrap_or_default(),
        nodename: hostname(procfs),
        domainname: file("domainname").unwrap_or_default(),
    };
    let empty = [
        &u.sysname,
        &u.release,
        &u.version,
        &u.machine,
        &u.nodename,
        &u.domainname,
    ]
    .iter()
    .any(|s| s.is_empty());
    if empty {
        if let Some(sys) = uname_syscall() {
            for (mine, theirs) in [
                (&mut u.sysname, sys.sysname),
                (&mut u.release, sys.release),
                (&mut u.version, sys.version),
                (&mut u.machine, sys.machine),
                (&mut u.nodename, sys.nodename),
                (&mut u.domainname, sys.domainname),
            ] {
                if mine.is_empty() {
                    *mine = theirs;
                }
            }
        }
    }
    u
}

fn uname_syscall() -> Option<Uname> {
    // SAFETY: utsname is plain bytes; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let s = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some(Uname {
        sysname: s(&u.sysname),
        release: s(&u.release),
        version: s(&u.version),
        machine: s(&u.machine),
        nodename: s(&u.nodename),
        domainname: s(&u.domainname),
    })
}

/// What one host + disk collection costs, per iteration.
#[derive(Debug, Clone, Copy)]
pub struct HostDiskCost {
    /// CPU time of the whole process (user + system, statfs threads included).
    pub cpu: Duration,
    /// Wall-clock time.
    pub wall: Duration,
}

/// For the bench harness: run the host and disk collections as the loop would (read, assemble,
/// encode both families as Prometheus text) `iterations` times after one warm-up, and return the
/// average cost of one. Compare `cpu` with the CPU a node_exporter scrape costs. Other threads of
/// the process count too, so run it on an otherwise idle process.
pub fn bench_host_disk(config: &Config, iterations: u32) -> HostDiskCost {
    let host = HostCollector::new(&config.paths.procfs);
    let disk = DiskCollector::new(&config.paths, &config.collectors.disk);
    let once = || {
        let (stats, _) = host.read();
        let snap = Snapshot {
            host: Some(Box::new(stats)),
            filesystems: disk.read().unwrap_or_default(),
            ..Default::default()
        };
        crate::exposition::render_host_disk(&snap, crate::exposition::Format::Text).len()
    };
    std::hint::black_box(once());
    let iterations = iterations.max(1);
    let cpu0 = process_cpu();
    let wall0 = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(once());
    }
    HostDiskCost {
        cpu: process_cpu().saturating_sub(cpu0) / iterations,
        wall: wall0.elapsed() / iterations,
    }
}

/// User + system CPU time of this process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_name_for_alerts_uname_and_dcgm() {
        // The host alerts' `instance`, node_uname_info{nodename} and DCGM's Hostname all come
        // from `hostname()`, whatever the container's own name is.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/kernel")).unwrap();
        std::fs::write(dir.path().join("sys/kernel/hostname"), "the-host\n").unwrap();
        assert_eq!(read_uname(dir.path()).nodename, "the-host");
        assert_eq!(hostname(dir.path()), "the-host");
    }

    #[test]
    fn hostname_prefers_procfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/kernel")).unwrap();
        std::fs::write(dir.path().join("sys/kernel/hostname"), "gpu-box-7\n").unwrap();
        assert_eq!(hostname(dir.path()), "gpu-box-7");
        // Without it: the system call, which is never empty on Linux.
        assert!(!hostname(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn stat_cpus_and_btime() {
        let text = "cpu  300 0 100 900 10 0 5 2 0 0\n\
                    cpu0 150 0 50 450 5 0 3 1 0 0\n\
                    cpu1 150 7 50 450 5 1 2 1 0 0\n\
                    intr 1 2 3\nbtime 1700000000\nprocesses 5\nctxt 9\n\
                    procs_running 2\nprocs_blocked 1\n";
        let st = parse_stat(text, 100.0).unwrap();
        assert_eq!(st.interrupts, Some(1));
        assert_eq!(st.forks, Some(5));
        assert_eq!(st.context_switches, Some(9));
        assert_eq!((st.procs_running, st.procs_blocked), (Some(2), Some(1)));
        let (cpus, boot) = (st.cpus, st.boot_time);
        assert_eq!(boot, 1_700_000_000.0);
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[1].cpu, 1);
        assert_eq!(cpus[1].user, 1.5);
        assert_eq!(cpus[1].nice, 0.07);
        assert_eq!(cpus[1].irq, 0.01);
        assert_eq!(cpus[1].steal, 0.01);
        assert!(parse_stat("cpu0 1 2 3 4\n", 100.0).is_err(), "no btime");
        assert!(parse_stat("cpu0 1 2 x 4\nbtime 1\n", 100.0).is_err());
        // A 2.6-era kernel without iowait and later columns.
        let old = parse_stat("cpu0 1 2 3 4\nbtime 1\n", 100.0).unwrap();
        assert_eq!(old.cpus[0].idle, 0.04);
        assert_eq!(old.cpus[0].steal, 0.0);
        assert_eq!(old.context_switches, None, "an absent line is no value");
        let bad = parse_stat("cpu0 1 2 3 4\nbtime 1\nctxt x\nprocesses 3\n", 100.0).unwrap();
        assert_eq!((bad.context_switches, bad.forks), (None, Some(3)));
    }

    #[test]
    fn meminfo_names_units_and_totals() {
        let text = "MemTotal:       1000 kB\nMemAvailable:    600 kB\n\
                    Active(anon):     10 kB\nHugePages_Total:       3\nSwapFree: 0 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total_bytes, 1_024_000);
        assert_eq!(m.available_bytes, 600 * 1024);
        let f = |n: &str| m.fields.iter().find(|f| f.name == n).unwrap().clone();
        assert_eq!(f("Active_anon").value, 10 * 1024);
        assert!(f("Active_anon").bytes);
        let huge = f("HugePages_Total");
        assert_eq!((huge.value, huge.bytes), (3, false));
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err(), "no MemTotal");
        assert!(parse_meminfo("MemTotal: 1 MB\n").is_err());
    }

    #[test]
    fn stat_guest_columns() {
        // Linux 2.6.33+: ten columns, guest and guest_nice last (already counted in user, nice).
        let st = parse_stat("cpu0 500 40 100 900 10 0 5 2 120 30\nbtime 1\n", 100.0).unwrap();
        let c = &st.cpus[0];
        assert_eq!((c.user, c.nice), (5.0, 0.4));
        assert_eq!((c.guest, c.guest_nice), (Some(1.2), Some(0.3)));
        assert_eq!(c.total(), 15.57, "guest time is not counted twice");
        // 2.6.24 to 2.6.32: guest but no guest_nice.
        let st = parse_stat("cpu0 500 40 100 900 10 0 5 2 120\nbtime 1\n", 100.0).unwrap();
        assert_eq!((st.cpus[0].guest, st.cpus[0].guest_nice), (Some(1.2), None));
        // Before: neither (no series, not 0).
        let st = parse_stat("cpu0 500 40 100 900 10 0 5 2\nbtime 1\n", 100.0).unwrap();
        assert_eq!((st.cpus[0].guest, st.cpus[0].guest_nice), (None, None));
        // A malformed guest column names the line, the CPU and the column.
        let e = parse_stat("btime 1\ncpu0 1 2 3 4 5 6 7 8 9x 0\n", 100.0).unwrap_err();
        assert!(e.contains("line 2") && e.contains("cpu0 guest"), "{e}");
    }

    #[test]
    fn loadavg() {
        assert_eq!(
            parse_loadavg("0.89 0.65 0.42 1/130 13614\n").unwrap(),
            (0.89, 0.65, 0.42)
        );
        assert!(parse_loadavg("0.89\n").is_err());
    }

    #[test]
    fn netdev_every_column() {
        let net = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n\
                   \x20   lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n\
                   eth0:173392014 6541 1 2 5 6 7 8 477901 4519 3 4 9 10 11 12\n";
        let n = parse_net_dev(net).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].name, "lo");
        assert_eq!(n[0].detail, Some(NetDevDetail::default()));
        let eth0 = &n[1];
        assert_eq!(
            (
                eth0.rx_bytes,
                eth0.rx_packets,
                eth0.rx_errors,
                eth0.rx_dropped
            ),
            (173392014, 6541, 1, 2)
        );
        assert_eq!(
            (
                eth0.tx_bytes,
                eth0.tx_packets,
                eth0.tx_errors,
                eth0.tx_dropped
            ),
            (477901, 4519, 3, 4)
        );
        assert_eq!(
            eth0.detail,
            Some(NetDevDetail {
                rx_fifo: 5,
                rx_frame: 6,
                rx_compressed: 7,
                rx_multicast: 8,
                tx_fifo: 9,
                tx_colls: 10,
                tx_carrier: 11,
                tx_compressed: 12,
            })
        );
    }

    #[test]
    fn netdev_malformed_names_line_device_and_column() {
        let e = parse_net_dev("a\nb\neth0: 1 2 3\n").unwrap_err();
        assert!(
            e.contains("line 3: eth0") && e.contains("receive_drop"),
            "{e}"
        );
        let e = parse_net_dev("a\nb\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 -1 15 16\n").unwrap_err();
        assert!(e.contains("transmit_colls") && e.contains("\"-1\""), "{e}");
        let e = parse_net_dev("a\nb\n\u{0}:\u{0}\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn diskstats_fields_by_kernel() {
        let ex = Regex::new(DISKSTATS_DEVICE_EXCLUDE).unwrap();
        // Linux 5.5+ (20 columns), 4.18-5.4 (18), 2.6.25-4.17 (14).
        let ds = " 254       0 vda 39252 6803 5579530 29940 12230 32861 16874600 118183 2 14308 149339 5425 47 380552 1152 2203 138\n\
                  \x20  8      16 sdb 10 1 80 7 20 2 160 9 0 12 16 3 4 4096 5\n\
                  \x20  8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n";
        let d = parse_diskstats(ds, &ex).unwrap();
        let vda = &d[0];
        assert_eq!((vda.device.as_str(), vda.major, vda.minor), ("vda", 254, 0));
        assert_eq!((vda.reads_completed, vda.reads_merged), (39252, 6803));
        assert_eq!(vda.read_bytes, 5579530 * 512);
        assert_eq!(vda.read_time_seconds, 29.94);
        assert_eq!((vda.writes_completed, vda.writes_merged), (12230, 32861));
        assert_eq!(vda.written_bytes, 16874600 * 512);
        assert_eq!(vda.write_time_seconds, 118.183);
        assert_eq!(vda.io_now, 2);
        assert_eq!(vda.io_time_seconds, 14.308);
        assert_eq!(vda.io_time_weighted_seconds, 149.339);
        assert_eq!(vda.discards_completed, Some(5425));
        assert_eq!(vda.discards_merged, Some(47));
        assert_eq!(vda.discarded_sectors, Some(380552), "sectors, not bytes");
        assert_eq!(vda.discard_time_seconds, Some(1.152));
        assert_eq!(vda.flush_requests, Some(2203));
        assert_eq!(vda.flush_time_seconds, Some(0.138));

        let sdb = &d[1];
        assert_eq!((sdb.major, sdb.minor), (8, 16));
        assert_eq!(sdb.io_time_weighted_seconds, 0.016);
        assert_eq!(sdb.discards_completed, Some(3));
        assert_eq!(sdb.discard_time_seconds, Some(0.005));
        assert_eq!((sdb.flush_requests, sdb.flush_time_seconds), (None, None));

        let sda = &d[2];
        assert_eq!(
            (sda.io_time_seconds, sda.io_time_weighted_seconds),
            (0.01, 0.011)
        );
        assert_eq!(
            (
                sda.discards_completed,
                sda.discards_merged,
                sda.discarded_sectors
            ),
            (None, None, None)
        );
        assert_eq!(sda.discard_time_seconds, None);
        assert_eq!((sda.flush_requests, sda.flush_time_seconds), (None, None));
    }

    #[test]
    fn diskstats_default_exclude() {
        let ex = Regex::new(DISKSTATS_DEVICE_EXCLUDE).unwrap();
        let zeros = "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let ds: String = [
            "254 0 vda",
            "254 1 vda1",
            "7 0 loop0",
            "1 0 ram0",
            "253 0 zram0",
            "259 0 nvme0n1",
            "259 1 nvme0n1p1",
            "8 0 sda",
            "253 1 dm-0",
            "9 0 md0",
        ]
        .iter()
        .map(|dev| format!("{dev} {zeros}\n"))
        .collect();
        let d = parse_diskstats(&ds, &ex).unwrap();
        let names: Vec<_> = d.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["vda", "nvme0n1", "sda", "dm-0", "md0"]);
    }

    #[test]
    fn diskstats_malformed_names_line_and_device() {
        let ex = Regex::new(DISKSTATS_DEVICE_EXCLUDE).unwrap();
        // Fewer than the eleven counters every kernel since 2.6.25 writes (the 2.6 partition
        // format of four included).
        let e =
            parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 1 sdz 1 2 3 4\n", &ex).unwrap_err();
        assert!(e.contains("line 2: sdz") && e.contains("4 counters"), "{e}");
        let e = parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 x\n", &ex).unwrap_err();
        assert!(
            e.contains("line 1: sda") && e.contains("discards completed"),
            "{e}"
        );
        let e = parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 9 10 -11\n", &ex).unwrap_err();
        assert!(e.contains("weighted time doing I/Os"), "{e}");
        let e = parse_diskstats("eight 0 sda 1 2 3 4 5 6 7 8 9 10 11\n", &ex).unwrap_err();
        assert!(e.contains("major"), "{e}");
        // Blank and short lines before the name are not devices.
        assert!(parse_diskstats("\n  \n8 0\n", &ex).unwrap().is_empty());
    }

    #[test]
    fn diskstats_edge_of_u64() {
        let ex = Regex::new(DISKSTATS_DEVICE_EXCLUDE).unwrap();
        let max = u64::MAX;
        let huge = format!(
            "8 0 sda 0 0 {max} {max} 0 0 {} 0 {max} {max} {max} {max} {max} {max} {max} {max} {max}\n",
            max / 512 + 1
        );
        let d = parse_diskstats(&huge, &ex).unwrap();
        assert_eq!((d[0].read_bytes, d[0].written_bytes), (max, max));
        assert_eq!(d[0].io_now, max);
        assert_eq!(d[0].discarded_sectors, Some(max));
        assert_eq!(d[0].flush_time_seconds, Some(max as f64 / 1000.0));
    }

    #[test]
    fn pressure_some_and_full() {
        let cpu = "some avg10=45.95 avg60=42.77 avg300=18.58 total=88333532\n";
        let p = parse_pressure("cpu", cpu).unwrap();
        assert_eq!(p.some_seconds, Some(88.333532));
        assert_eq!(p.full_seconds, None);
        let io = "some avg10=0.12 avg60=1.03 avg300=0.81 total=7553971\n\
                  full avg10=0.00 avg60=0.23 avg300=0.26 total=4921430\n";
        let p = parse_pressure("io", io).unwrap();
        assert_eq!(p.some_seconds, Some(7.553971));
        assert_eq!(p.full_seconds, Some(4.92143));
        assert!(
            parse_pressure("io", "full total=1\n").is_err(),
            "io without some"
        );
    }

    #[test]
    fn pressure_irq_has_only_full() {
        // Linux 6.1+ with CONFIG_IRQ_TIME_ACCOUNTING: one line, `full`.
        let irq = "full avg10=0.00 avg60=0.01 avg300=0.02 total=1234567\n";
        let p = parse_pressure("irq", irq).unwrap();
        assert_eq!((p.some_seconds, p.full_seconds), (None, Some(1.234567)));
        let e = parse_pressure("irq", "").unwrap_err();
        assert!(e.contains("full"), "{e}");
        let e = parse_pressure("irq", "full avg10=0.00 total=-5\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("total"), "{e}");
        let e = parse_pressure("irq", "full avg10=0.00\n").unwrap_err();
        assert!(e.contains("line 1: no total="), "{e}");
    }

    #[test]
    fn missing_psi_is_silent_but_missing_stat_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("stat"), "cpu0 1 2 3 4 5 6 7 8\nbtime 5\n").unwrap();
        std::fs::write(p.join("meminfo"), "MemTotal: 4 kB\n").unwrap();
        std::fs::write(p.join("loadavg"), "1 2 3 1/1 1\n").unwrap();
        std::fs::create_dir(p.join("net")).unwrap();
        std::fs::write(p.join("net/dev"), "h\nh\n").unwrap();
        std::fs::write(p.join("diskstats"), "").unwrap();
        let c = HostCollector::new(p);
        let (s, errors) = c.read();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(s.pressure.is_empty());
        assert_eq!((s.cpus[0].guest, s.cpus[0].guest_nice), (None, None));
        assert_eq!(s.boot_time, 5.0);
        assert_eq!(s.memory.total_bytes, 4096);
        // uname falls back to the syscall when the fixture has no sys/kernel files.
        assert!(!s.uname.sysname.is_empty());

        std::fs::remove_file(p.join("stat")).unwrap();
        let (s, errors) = c.read();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("stat"), "{}", errors[0]);
        assert!(s.cpus.is_empty());
        assert_eq!(s.load15, 3.0, "the other files are still read");
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_it_and_costs_only_its_series() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("stat"), "cpu0 1 2 3 4 5 6 7 8 9 10\nbtime 5\n").unwrap();
        std::fs::write(p.join("meminfo"), "MemTotal: 4 kB\n").unwrap();
        std::fs::write(p.join("loadavg"), "1 2 3 1/1 1\n").unwrap();
        std::fs::create_dir(p.join("net")).unwrap();
        std::fs::write(
            p.join("net/dev"),
            "h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        )
        .unwrap();
        std::fs::write(
            p.join("diskstats"),
            "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 16 sdb 1 2 three\n",
        )
        .unwrap();
        std::fs::create_dir(p.join("pressure")).unwrap();
        std::fs::write(p.join("pressure/cpu"), "some total=1000000\n").unwrap();
        // An irq file with a `some` line but no `full` is not what the kernel writes.
        std::fs::write(p.join("pressure/irq"), "some total=1\n").unwrap();
        let (s, errors) = HostCollector::new(p).read();
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        let disk = p.join("diskstats").display().to_string();
        assert!(
            errors[0].contains(&disk) && errors[0].contains("line 2: sdb"),
            "{errors:?}"
        );
        assert!(errors[0].contains("sectors read"), "{errors:?}");
        assert!(errors[1].contains("pressure/irq") && errors[1].contains("full"));
        assert!(s.disks.is_empty());
        assert_eq!(s.network[0].detail.as_ref().unwrap().tx_compressed, 16);
        assert_eq!(s.pressure.len(), 1);
        assert_eq!(s.pressure[0].some_seconds, Some(1.0));
        assert_eq!(s.cpus[0].guest_nice, Some(0.1));
    }
}
