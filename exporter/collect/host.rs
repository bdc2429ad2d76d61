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
    CpuTimes, DiskIo, HostStats, MemField, Meminfo, NetInterface, Part, Pressure, Snapshot, Uname,
};

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions, RAM disks,
/// loop devices and floppies are left out; whole disks stay.
pub const DISKSTATS_DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// The PSI resources node_exporter reads.
const PRESSURE_RESOURCES: [&str; 3] = ["cpu", "memory", "io"];

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
    /// `CONFIG_PSI`, or booted with `psi=0`).
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
    for line in text.lines() {
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
                    st.cpus.push(parse_cpu_line(key, id, f, user_hz)?);
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

/// One `cpuN` line's columns, ticks converted to seconds.
fn parse_cpu_line<'a>(
    key: &str,
    id: &str,
    mut f: impl Iterator<Item = &'a str>,
    user_hz: f64,
) -> Result<CpuTimes, String> {
    let cpu = num::<u32>(Some(id), "cpu number")?;
    // Older kernels have fewer columns; absent ones are 0.
    let mut t = [0.0f64; 8];
    for (i, slot) in t.iter_mut().enumerate() {
        match f.next() {
            Some(v) => *slot = num::<u64>(Some(v), key)? as f64 / user_hz,
            None if i >= 4 => break,
            None => return Err(format!("{key}: expected at least 4 columns")),
        }
    }
    Ok(CpuTimes {
        cpu,
        user: t[0],
        nice: t[1],
        system: t[2],
        idle: t[3],
        iowait: t[4],
        irq: t[5],
        softirq: t[6],
        steal: t[7],
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
/// receive and transmit counters, loopback included. The one parser of this file: the host
/// collector and the cgroup collector both use it.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetInterface>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let device = name.trim();
        let mut v = [0u64; 16];
        let mut f = rest.split_ascii_whitespace();
        for slot in v.iter_mut() {
            *slot = num(f.next(), device)?;
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
        });
    }
    Ok(out)
}

/// `/proc/diskstats`: the counters of each device not matched by `exclude`. Sectors are 512
/// bytes whatever the device's sector size; times are in ms.
pub fn parse_diskstats(text: &str, exclude: &Regex) -> Result<Vec<DiskIo>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(_major), Some(_minor), Some(device)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if exclude.is_match(device) {
            continue;
        }
        let mut v = [0u64; 11];
        for slot in v.iter_mut() {
            *slot = num(f.next(), device)?;
        }
        out.push(DiskIo {
            device: device.to_string(),
            reads_completed: v[0],
            // Sectors saturate rather than wrap (or panic in a debug build) at the edge of u64.
            read_bytes: v[2].saturating_mul(512),
            read_time_seconds: v[3] as f64 / 1000.0,
            writes_completed: v[4],
            written_bytes: v[6].saturating_mul(512),
            write_time_seconds: v[7] as f64 / 1000.0,
            io_now: v[8],
            io_time_seconds: v[9] as f64 / 1000.0,
        });
    }
    Ok(out)
}

/// `/proc/pressure/<resource>`: the `some` and (where present) `full` totals, µs → s.
pub fn parse_pressure(resource: &str, text: &str) -> Result<Pressure, String> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let kind = f.next();
        let total = f.find_map(|kv| kv.strip_prefix("total="));
        let Some(total) = total else { continue };
        let secs = num::<u64>(Some(total), "total")? as f64 / 1e6;
        match kind {
            Some("some") => some = Some(secs),
            Some("full") => full = Some(secs),
            _ => {}
        }
    }
    Ok(Pressure {
        resource: resource.to_string(),
        some_seconds: some.ok_or("no `some` line")?,
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
    fn loadavg_netdev_diskstats() {
        assert_eq!(
            parse_loadavg("0.89 0.65 0.42 1/130 13614\n").unwrap(),
            (0.89, 0.65, 0.42)
        );
        assert!(parse_loadavg("0.89\n").is_err());
        let net = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n\
                   \x20   lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0\n\
                   eth0:173392014 6541 1 2 0 0 0 0 477901 4519 3 4 0 0 0 0\n";
        let n = parse_net_dev(net).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].name, "lo");
        assert_eq!(
            (n[1].rx_bytes, n[1].rx_errors, n[1].rx_dropped),
            (173392014, 1, 2)
        );
        assert_eq!(
            (
                n[1].tx_bytes,
                n[1].tx_packets,
                n[1].tx_errors,
                n[1].tx_dropped
            ),
            (477901, 4519, 3, 4)
        );
        assert!(parse_net_dev("a\nb\neth0: 1 2 3\n").is_err());

        let ex = Regex::new(DISKSTATS_DEVICE_EXCLUDE).unwrap();
        let ds = " 254 0 vda 39252 6803 5579530 29940 12230 32861 16874600 118183 2 14308 149339 5425 47 380552 1152\n\
                  254 1 vda1 1 1 1 1 1 1 1 1 1 1 1\n   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n\
                  253 0 zram0 0 0 0 0 0 0 0 0 0 0 0\n259 0 nvme0n1 1 0 8 3 0 0 0 0 0 0 0\n\
                  259 1 nvme0n1p1 1 0 8 3 0 0 0 0 0 0 0\n 8 0 sda 1 0 8 3 0 0 0 0 0 0 0\n\
                  253 1 dm-0 1 0 8 3 0 0 0 0 0 0 0\n";
        let d = parse_diskstats(ds, &ex).unwrap();
        let names: Vec<_> = d.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["vda", "nvme0n1", "sda", "dm-0"]);
        assert_eq!(d[0].reads_completed, 39252);
        assert_eq!(d[0].read_bytes, 5579530 * 512);
        assert_eq!(d[0].written_bytes, 16874600 * 512);
        assert_eq!(d[0].read_time_seconds, 29.94);
        assert_eq!(d[0].write_time_seconds, 118.183);
        assert_eq!(d[0].io_now, 2);
        assert_eq!(d[0].io_time_seconds, 14.308);
        assert!(parse_diskstats("8 0 sdz 1 2\n", &ex).is_err());
        let max = u64::MAX;
        let huge = format!(
            "8 0 sda 0 0 {max} {max} 0 0 {} 0 {max} {max} 0\n",
            max / 512 + 1
        );
        let d = parse_diskstats(&huge, &ex).unwrap();
        assert_eq!((d[0].read_bytes, d[0].written_bytes), (max, max));
        assert_eq!(d[0].io_now, max);
    }

    #[test]
    fn pressure_some_and_full() {
        let cpu = "some avg10=45.95 avg60=42.77 avg300=18.58 total=88333532\n";
        let p = parse_pressure("cpu", cpu).unwrap();
        assert_eq!(p.some_seconds, 88.333532);
        assert_eq!(p.full_seconds, None);
        let io = "some avg10=0.12 avg60=1.03 avg300=0.81 total=7553971\n\
                  full avg10=0.00 avg60=0.23 avg300=0.26 total=4921430\n";
        let p = parse_pressure("io", io).unwrap();
        assert_eq!(p.full_seconds, Some(4.92143));
        assert!(parse_pressure("io", "full total=1\n").is_err());
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
}
