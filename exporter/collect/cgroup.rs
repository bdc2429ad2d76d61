//! The cgroup collector: each running container's CPU, memory, block I/O, pids and network,
//! read straight from its cgroup (v1 or v2, cgroupfs or systemd driver) and from
//! `/proc/<pid>/net/dev`, because Docker's stats API costs about 1-2 s per container.
//!
//! File handles are kept open between cycles and re-read with `pread` at offset 0 (the cheapest
//! way to read cgroup files; see ../shared/bench's floor), within a file-descriptor budget.
//! Containers whose cgroup can't be found here (a remote DOCKER_HOST, missing mounts) fall back
//! to Docker's stats API with `one-shot=true`, polled in the background.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use super::docker::DockerState;
use super::{CollectError, CollectFuture, Collector};
use crate::docker_api::DockerApi;
use crate::snapshot::{
    BlkDevice, CgroupPart, CgroupSpec, ContainerInfo, ContainerStats, CpuStats, MemoryStats,
    NetInterface, Network, Part,
};

/// Values at or above this are "no limit" (v1 reports 9223372036854771712).
const UNLIMITED: u64 = 1 << 62;
/// Limits are re-read this often (in cycles) besides when Docker reports a change.
const SPEC_EVERY: u64 = 30;

/// Which cgroup hierarchy the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Per-controller hierarchies under `<sysfs>/fs/cgroup/<controller>`.
    V1 { root: PathBuf },
    /// The unified hierarchy at `<sysfs>/fs/cgroup`.
    V2 { root: PathBuf },
    /// No cgroup filesystem readable here.
    None,
}

impl Layout {
    pub fn detect(sysfs: &Path) -> Layout {
        let root = sysfs.join("fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            Layout::V2 { root }
        } else if root.join("memory").is_dir() || root.join("cpuacct").is_dir() {
            Layout::V1 { root }
        } else {
            Layout::None
        }
    }

    pub fn version(&self) -> Option<u8> {
        match self {
            Layout::V1 { .. } => Some(1),
            Layout::V2 { .. } => Some(2),
            Layout::None => None,
        }
    }
}

/// A file read each cycle: kept open when the fd budget allows, else opened each time.
enum Src {
    Open(File),
    Path(PathBuf),
}

impl Src {
    fn new(path: PathBuf, keep: bool) -> io::Result<Src> {
        if keep {
            Ok(Src::Open(File::open(&path)?))
        } else if path.exists() {
            Ok(Src::Path(path))
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                path.display().to_string(),
            ))
        }
    }

    fn read<'b>(&self, buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
        buf.clear();
        match self {
            Src::Open(f) => {
                buf.resize(buf.capacity().max(8192), 0);
                let mut off = 0;
                loop {
                    let n = f.read_at(&mut buf[off..], off as u64)?;
                    off += n;
                    if n == 0 || off < buf.len() {
                        break;
                    }
                    buf.resize(buf.len() * 2, 0);
                }
                buf.truncate(off);
            }
            Src::Path(p) => {
                File::open(p)?.read_to_end(buf)?;
            }
        }
        std::str::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn is_open(&self) -> bool {
        matches!(self, Src::Open(_))
    }
}

/// The files of one container.
enum Files {
    V1 {
        cpuacct_usage: Src,
        cpuacct_stat: Src,
        cpu_stat: Option<Src>,
        mem_usage: Src,
        mem_stat: Src,
        blkio_bytes: Option<Src>,
        blkio_ops: Option<Src>,
        pids: Option<Src>,
        cpu_dir: PathBuf,
        mem_dir: PathBuf,
    },
    V2 {
        cpu_stat: Src,
        mem_current: Src,
        mem_stat: Src,
        mem_swap: Option<Src>,
        io_stat: Option<Src>,
        pids: Option<Src>,
        dir: PathBuf,
    },
}

struct Handles {
    pid: u32,
    cgroup_path: String,
    files: Files,
    netdev: Option<Src>,
    spec: CgroupSpec,
    spec_cycle: u64,
    limits: crate::snapshot::Limits,
    fds: usize,
}

/// Reads cgroup and proc files for many containers; keeps handles between cycles.
pub struct Reader {
    layout: Layout,
    procfs: PathBuf,
    sysfs: PathBuf,
    /// `cgroupfs` or `systemd`, from Docker; used only when /proc can't tell a container's path.
    pub driver: Option<String>,
    handles: HashMap<String, Handles>,
    devnames: HashMap<(u32, u32), String>,
    buf: Vec<u8>,
    fd_budget: usize,
    fds_open: usize,
    cycle: u64,
    clk_tck: f64,
    /// Problems already logged (each is logged once).
    logged: HashSet<String>,
}

impl Reader {
    pub fn new(layout: Layout, procfs: &Path, sysfs: &Path) -> Reader {
        Reader {
            layout,
            procfs: procfs.to_path_buf(),
            sysfs: sysfs.to_path_buf(),
            driver: None,
            handles: HashMap::new(),
            devnames: HashMap::new(),
            buf: Vec::with_capacity(16384),
            fd_budget: fd_budget(),
            fds_open: 0,
            cycle: 0,
            clk_tck: clk_tck(),
            logged: HashSet::new(),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Read every running container. Returns the stats read and the ids that must fall back to
    /// Docker's stats API.
    pub fn read_all(
        &mut self,
        containers: &[ContainerInfo],
    ) -> (HashMap<String, ContainerStats>, Vec<String>) {
        self.cycle += 1;
        let now = crate::now_unix();
        let mut out = HashMap::with_capacity(containers.len());
        let mut fallback = Vec::new();
        let mut live = HashSet::with_capacity(containers.len());
        for c in containers.iter().filter(|c| c.is_running()) {
            live.insert(c.id.as_str());
            if self.layout == Layout::None {
                fallback.push(c.id.clone());
                continue;
            }
            match self.read_one(c, now) {
                Ok(Some(s)) => {
                    out.insert(c.id.clone(), s);
                }
                Ok(None) => fallback.push(c.id.clone()),
                Err(e) => {
                    // Vanished mid-read (or its cgroup went away): drop its handles; it is
                    // reported again next cycle if it still exists.
                    tracing::debug!(container = %c.name, error = %e, "container vanished while reading its cgroup");
                    self.drop_handles(&c.id);
                }
            }
        }
        let stale: Vec<String> = self
            .handles
            .keys()
            .filter(|id| !live.contains(id.as_str()))
            .cloned()
            .collect();
        for id in stale {
            self.drop_handles(&id);
        }
        (out, fallback)
    }

    fn drop_handles(&mut self, id: &str) {
        if let Some(h) = self.handles.remove(id) {
            self.fds_open -= h.fds;
        }
    }

    /// Ok(None): its cgroup isn't here (use the API). Err: it vanished mid-read.
    fn read_one(&mut self, c: &ContainerInfo, now: f64) -> io::Result<Option<ContainerStats>> {
        let stale = self.handles.get(&c.id).is_some_and(|h| h.pid != c.pid);
        if stale {
            self.drop_handles(&c.id);
        }
        if !self.handles.contains_key(&c.id) {
            match self.open(c)? {
                Some(h) => {
                    self.fds_open += h.fds;
                    self.handles.insert(c.id.clone(), h);
                }
                None => return Ok(None),
            }
        }
        let cycle = self.cycle;
        let clk = self.clk_tck;
        let mut h = self.handles.remove(&c.id).expect("handles just inserted");
        let res = self.read_handles(&mut h, c, now, cycle, clk);
        self.handles.insert(c.id.clone(), h);
        res.map(Some)
    }

    fn read_handles(
        &mut self,
        h: &mut Handles,
        c: &ContainerInfo,
        now: f64,
        cycle: u64,
        clk: f64,
    ) -> io::Result<ContainerStats> {
        let mut s = ContainerStats {
            cgroup_path: h.cgroup_path.clone(),
            read_at: now,
            ..Default::default()
        };
        if h.spec_cycle == 0 || cycle - h.spec_cycle >= SPEC_EVERY || h.limits != c.limits {
            h.spec = self.read_spec(&h.files);
            h.spec_cycle = cycle;
            h.limits = c.limits.clone();
        }
        s.spec = h.spec;
        let buf = &mut self.buf;
        let mut problems: Vec<String> = Vec::new();
        let mut bad = |what: &str, text: &str| {
            problems.push(format!(
                "container {}: unexpected content in {what}: {:?}",
                c.name,
                text.chars().take(80).collect::<String>()
            ))
        };
        match &h.files {
            Files::V1 {
                cpuacct_usage,
                cpuacct_stat,
                cpu_stat,
                mem_usage,
                mem_stat,
                blkio_bytes,
                blkio_ops,
                pids,
                ..
            } => {
                let usage = parse_u64(cpuacct_usage.read(buf)?);
                let usage = usage.inspect_err(|t| bad("cpuacct.usage", t)).ok();
                let stat = cpuacct_stat.read(buf)?;
                let user = kv(stat, "user").map(|t| t as f64 / clk);
                let system = kv(stat, "system").map(|t| t as f64 / clk);
                if user.is_none() {
                    bad("cpuacct.stat", stat);
                }
                let mut cpu = usage.map(|u| CpuStats {
                    usage_seconds: u as f64 / 1e9,
                    user_seconds: user.unwrap_or(0.0),
                    system_seconds: system.unwrap_or(0.0),
                    ..Default::default()
                });
                if let (Some(cpu), Some(f)) = (cpu.as_mut(), cpu_stat) {
                    let t = f.read(buf)?;
                    cpu.periods = kv(t, "nr_periods");
                    cpu.throttled_periods = kv(t, "nr_throttled");
                    cpu.throttled_seconds = kv(t, "throttled_time").map(|ns| ns as f64 / 1e9);
                }
                s.cpu = cpu;
                let usage = parse_u64(mem_usage.read(buf)?);
                let usage = usage.inspect_err(|t| bad("memory.usage_in_bytes", t)).ok();
                let t = mem_stat.read(buf)?;
                let get = |k: &str, alt: &str| kv(t, k).or_else(|| kv(t, alt));
                match (usage, get("total_inactive_file", "inactive_file")) {
                    (Some(u), Some(inactive)) => {
                        s.memory = Some(MemoryStats {
                            usage: u,
                            working_set: u.saturating_sub(inactive),
                            rss: get("total_rss", "rss").unwrap_or(0),
                            cache: get("total_cache", "cache").unwrap_or(0),
                            swap: get("total_swap", "swap"),
                        })
                    }
                    (Some(_), None) => bad("memory.stat", t),
                    _ => {}
                }
                let mut devs: Vec<BlkDevice> = Vec::new();
                if let Some(f) = blkio_bytes {
                    parse_blkio_v1(f.read(buf)?, &mut devs, true);
                }
                if let Some(f) = blkio_ops {
                    parse_blkio_v1(f.read(buf)?, &mut devs, false);
                }
                s.blkio = devs;
                if let Some(f) = pids {
                    s.pids = parse_u64(f.read(buf)?).ok();
                }
            }
            Files::V2 {
                cpu_stat,
                mem_current,
                mem_stat,
                mem_swap,
                io_stat,
                pids,
                ..
            } => {
                let t = cpu_stat.read(buf)?;
                match kv(t, "usage_usec") {
                    Some(u) => {
                        s.cpu = Some(CpuStats {
                            usage_seconds: u as f64 / 1e6,
                            user_seconds: kv(t, "user_usec").unwrap_or(0) as f64 / 1e6,
                            system_seconds: kv(t, "system_usec").unwrap_or(0) as f64 / 1e6,
                            periods: kv(t, "nr_periods"),
                            throttled_periods: kv(t, "nr_throttled"),
                            throttled_seconds: kv(t, "throttled_usec").map(|u| u as f64 / 1e6),
                        })
                    }
                    None => bad("cpu.stat", t),
                }
                let usage = parse_u64(mem_current.read(buf)?);
                let usage = usage.inspect_err(|t| bad("memory.current", t)).ok();
                let swap = match mem_swap {
                    Some(f) => parse_u64(f.read(buf)?).ok(),
                    None => None,
                };
                let t = mem_stat.read(buf)?;
                match (usage, kv(t, "inactive_file")) {
                    (Some(u), Some(inactive)) => {
                        s.memory = Some(MemoryStats {
                            usage: u,
                            working_set: u.saturating_sub(inactive),
                            rss: kv(t, "anon").unwrap_or(0),
                            cache: kv(t, "file").unwrap_or(0),
                            swap,
                        })
                    }
                    (Some(_), None) => bad("memory.stat", t),
                    _ => {}
                }
                if let Some(f) = io_stat {
                    s.blkio = parse_io_stat_v2(f.read(buf)?);
                }
                if let Some(f) = pids {
                    s.pids = parse_u64(f.read(buf)?).ok();
                }
            }
        }
        s.network = if c.shares_network() {
            Network::Shared
        } else {
            match &h.netdev {
                Some(f) => match f.read(buf).map(parse_net_dev) {
                    Ok(Ok(ifs)) => Network::Own(ifs),
                    Ok(Err(e)) => {
                        problems.push(format!("net/dev of {}: {e}", c.name));
                        Network::Unknown
                    }
                    Err(_) => Network::Unknown,
                },
                None => Network::Unknown,
            }
        };
        for p in problems {
            if self.logged.insert(p.clone()) {
                tracing::warn!(problem = %p, "skipping a cgroup reading lookout could not parse");
            }
        }
        for d in s.blkio.iter_mut() {
            d.device = self.devname(d.major, d.minor);
        }
        Ok(s)
    }

    fn devname(&mut self, major: u32, minor: u32) -> String {
        let sysfs = &self.sysfs;
        self.devnames
            .entry((major, minor))
            .or_insert_with(|| {
                let uevent = sysfs.join(format!("dev/block/{major}:{minor}/uevent"));
                std::fs::read_to_string(uevent)
                    .ok()
                    .and_then(|t| {
                        t.lines()
                            .find_map(|l| l.strip_prefix("DEVNAME=").map(|n| format!("/dev/{n}")))
                    })
                    .unwrap_or_else(|| format!("{major}:{minor}"))
            })
            .clone()
    }

    fn read_spec(&mut self, files: &Files) -> CgroupSpec {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        match files {
            Files::V1 {
                cpu_dir, mem_dir, ..
            } => {
                let quota = read(cpu_dir.join("cpu.cfs_quota_us"))
                    .and_then(|t| t.trim().parse::<i64>().ok());
                let period = read(cpu_dir.join("cpu.cfs_period_us"))
                    .and_then(|t| t.trim().parse::<u64>().ok());
                let shares =
                    read(cpu_dir.join("cpu.shares")).and_then(|t| t.trim().parse::<u64>().ok());
                let mem = read(mem_dir.join("memory.limit_in_bytes"))
                    .and_then(|t| t.trim().parse::<u64>().ok());
                CgroupSpec {
                    memory_limit: mem.filter(|m| *m < UNLIMITED),
                    cpu_quota: quota.filter(|q| *q > 0),
                    cpu_period: period,
                    cpu_shares: shares,
                }
            }
            Files::V2 { dir, .. } => {
                let (quota, period) = read(dir.join("cpu.max"))
                    .map(|t| parse_cpu_max(&t))
                    .unwrap_or((None, None));
                let shares = read(dir.join("cpu.weight"))
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .map(weight_to_shares);
                let mem = read(dir.join("memory.max")).and_then(|t| t.trim().parse::<u64>().ok());
                CgroupSpec {
                    memory_limit: mem.filter(|m| *m < UNLIMITED),
                    cpu_quota: quota,
                    cpu_period: period,
                    cpu_shares: shares,
                }
            }
        }
    }

    /// The container's cgroup path relative to the hierarchy root (cAdvisor's `id`).
    fn cgroup_path(&self, c: &ContainerInfo) -> Vec<String> {
        let mut candidates = Vec::new();
        let proc_cgroup = self.procfs.join(c.pid.to_string()).join("cgroup");
        if let Ok(text) = std::fs::read_to_string(proc_cgroup) {
            let v2 = matches!(self.layout, Layout::V2 { .. });
            if let Some(p) = path_from_proc_cgroup(&text, v2) {
                if !p.starts_with("/..") && p != "/" {
                    candidates.push(p);
                }
            }
        }
        let parent = c.cgroup_parent.trim_end_matches('/');
        let systemd = self.driver.as_deref() == Some("systemd");
        if systemd || parent.ends_with(".slice") {
            let slice = if parent.is_empty() {
                "system.slice"
            } else {
                parent.trim_start_matches('/')
            };
            candidates.push(format!("/{slice}/docker-{}.scope", c.id));
        }
        let parent = if parent.is_empty() || parent.ends_with(".slice") {
            "/docker"
        } else {
            parent
        };
        let parent = if parent.starts_with('/') {
            parent.to_string()
        } else {
            format!("/{parent}")
        };
        candidates.push(format!("{parent}/{}", c.id));
        if !systemd {
            candidates.push(format!("/system.slice/docker-{}.scope", c.id));
        }
        candidates
    }

    fn open(&mut self, c: &ContainerInfo) -> io::Result<Option<Handles>> {
        let keep = self.fds_open + 12 < self.fd_budget;
        for rel in self.cgroup_path(c) {
            let rel_trim = rel.trim_start_matches('/');
            // The directory (or directories) that must exist for this path to be the container's.
            let dirs: Vec<PathBuf>;
            let built = match &self.layout {
                Layout::V1 { root } => {
                    let cpuacct = root.join("cpuacct").join(rel_trim);
                    let mem = root.join("memory").join(rel_trim);
                    if !mem.is_dir() || !cpuacct.is_dir() {
                        continue;
                    }
                    dirs = vec![cpuacct.clone(), mem.clone()];
                    let cpu = root.join("cpu").join(rel_trim);
                    let blkio = root.join("blkio").join(rel_trim);
                    let pids = root.join("pids").join(rel_trim);
                    (|| -> io::Result<Files> {
                        Ok(Files::V1 {
                            cpuacct_usage: Src::new(cpuacct.join("cpuacct.usage"), keep)?,
                            cpuacct_stat: Src::new(cpuacct.join("cpuacct.stat"), keep)?,
                            cpu_stat: Src::new(cpu.join("cpu.stat"), keep).ok(),
                            mem_usage: Src::new(mem.join("memory.usage_in_bytes"), keep)?,
                            mem_stat: Src::new(mem.join("memory.stat"), keep)?,
                            blkio_bytes: Src::new(
                                blkio.join("blkio.throttle.io_service_bytes"),
                                keep,
                            )
                            .ok(),
                            blkio_ops: Src::new(blkio.join("blkio.throttle.io_serviced"), keep)
                                .ok(),
                            pids: Src::new(pids.join("pids.current"), keep).ok(),
                            cpu_dir: cpu,
                            mem_dir: mem,
                        })
                    })()
                }
                Layout::V2 { root } => {
                    let dir = root.join(rel_trim);
                    if !dir.join("cgroup.procs").exists() && !dir.join("cpu.stat").exists() {
                        continue;
                    }
                    dirs = vec![dir.clone()];
                    (|| -> io::Result<Files> {
                        Ok(Files::V2 {
                            cpu_stat: Src::new(dir.join("cpu.stat"), keep)?,
                            mem_current: Src::new(dir.join("memory.current"), keep)?,
                            mem_stat: Src::new(dir.join("memory.stat"), keep)?,
                            mem_swap: Src::new(dir.join("memory.swap.current"), keep).ok(),
                            io_stat: Src::new(dir.join("io.stat"), keep).ok(),
                            pids: Src::new(dir.join("pids.current"), keep).ok(),
                            dir,
                        })
                    })()
                }
                Layout::None => return Ok(None),
            };
            let files = match built {
                Ok(files) => files,
                // The cgroup is there but lacks a file lookout needs (v2 without the memory
                // controller enabled for it, as with `cgroup_disable=memory`): not readable
                // here, so Docker's stats API is asked. Gone altogether: it vanished.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound && dirs.iter().all(|d| d.is_dir()) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let netdev = if c.shares_network() {
                None
            } else {
                Src::new(self.procfs.join(c.pid.to_string()).join("net/dev"), keep).ok()
            };
            let fds = count_open(&files) + netdev.as_ref().map_or(0, |s| s.is_open() as usize);
            return Ok(Some(Handles {
                pid: c.pid,
                cgroup_path: rel,
                files,
                netdev,
                spec: CgroupSpec::default(),
                spec_cycle: 0,
                limits: c.limits.clone(),
                fds,
            }));
        }
        Ok(None)
    }
}

fn count_open(files: &Files) -> usize {
    let n = |s: &Src| s.is_open() as usize;
    let o = |s: &Option<Src>| s.as_ref().map_or(0, n);
    match files {
        Files::V1 {
            cpuacct_usage,
            cpuacct_stat,
            cpu_stat,
            mem_usage,
            mem_stat,
            blkio_bytes,
            blkio_ops,
            pids,
            ..
        } => {
            n(cpuacct_usage)
                + n(cpuacct_stat)
                + o(cpu_stat)
                + n(mem_usage)
                + n(mem_stat)
                + o(blkio_bytes)
                + o(blkio_ops)
                + o(pids)
        }
        Files::V2 {
            cpu_stat,
            mem_current,
            mem_stat,
            mem_swap,
            io_stat,
            pids,
            ..
        } => n(cpu_stat) + n(mem_current) + n(mem_stat) + o(mem_swap) + o(io_stat) + o(pids),
    }
}

/// How many descriptors lookout may keep open: the soft limit raised to the hard one, minus a
/// reserve for sockets and everything else.
fn fd_budget() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max.min(1 << 20),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = want.rlim_cur;
            }
        }
    }
    (lim.rlim_cur as usize).saturating_sub(512)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// A single unsigned number (a file like `memory.current`); Err carries the text.
pub fn parse_u64(text: &str) -> Result<u64, &str> {
    text.trim().parse::<u64>().map_err(|_| text)
}

/// The value of `key` in a `key value` per line file (memory.stat, cpu.stat, cpuacct.stat).
pub fn kv(text: &str, key: &str) -> Option<u64> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(key) {
            if let Some(v) = rest.strip_prefix(' ') {
                return v.trim().parse().ok();
            }
        }
    }
    None
}

/// The container's path from `/proc/<pid>/cgroup`: the unified line on v2, else the memory
/// controller's (falling back to cpuacct's).
pub fn path_from_proc_cgroup(text: &str, v2: bool) -> Option<String> {
    let mut fallback = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        if v2 {
            if ctrls.is_empty() {
                return Some(path.to_string());
            }
        } else if ctrls.split(',').any(|c| c == "memory") {
            return Some(path.to_string());
        } else if ctrls.split(',').any(|c| c == "cpuacct") {
            fallback = Some(path.to_string());
        }
    }
    fallback
}

/// `blkio.throttle.io_service_bytes` / `io_serviced`: `MAJ:MIN Op N` lines, plus `Total N`.
pub fn parse_blkio_v1(text: &str, devs: &mut Vec<BlkDevice>, bytes: bool) {
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(val)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min), Ok(val)) =
            (maj.parse::<u32>(), min.parse::<u32>(), val.parse::<u64>())
        else {
            continue;
        };
        let d = match devs
            .iter_mut()
            .position(|d| d.major == maj && d.minor == min)
        {
            Some(i) => &mut devs[i],
            None => {
                devs.push(BlkDevice {
                    major: maj,
                    minor: min,
                    ..Default::default()
                });
                devs.last_mut().expect("just pushed")
            }
        };
        match (op, bytes) {
            ("Read", true) => d.read_bytes = val,
            ("Write", true) => d.write_bytes = val,
            ("Read", false) => d.reads = val,
            ("Write", false) => d.writes = val,
            _ => {}
        }
    }
}

/// v2 `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`.
pub fn parse_io_stat_v2(text: &str) -> Vec<BlkDevice> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        let mut d = BlkDevice {
            major,
            minor,
            ..Default::default()
        };
        for kvp in it {
            let Some((k, v)) = kvp.split_once('=') else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            match k {
                "rbytes" => d.read_bytes = v,
                "wbytes" => d.write_bytes = v,
                "rios" => d.reads = v,
                "wios" => d.writes = v,
                _ => {}
            }
        }
        out.push(d);
    }
    out
}

/// v2 `cpu.max`: `max 100000` or `50000 100000`.
pub fn parse_cpu_max(text: &str) -> (Option<i64>, Option<u64>) {
    let mut it = text.split_ascii_whitespace();
    let quota = it.next().and_then(|q| q.parse::<i64>().ok());
    let period = it.next().and_then(|p| p.parse::<u64>().ok());
    (quota, period)
}

/// v2 `cpu.weight` (1-10000) back to v1 shares (2-262144), the inverse of runc's conversion.
pub fn weight_to_shares(weight: u64) -> u64 {
    // The kernel allows 1-10000; a stranger value saturates rather than overflows.
    2u64.saturating_add(weight.saturating_sub(1).saturating_mul(262142) / 9999)
}

/// A container's `/proc/<pid>/net/dev` (the shared parser), loopback excluded.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetInterface>, String> {
    let mut ifs = super::host::parse_net_dev(text)?;
    ifs.retain(|i| i.name != "lo");
    Ok(ifs)
}

/// Docker stats API samples for containers without readable cgroups, refreshed in the background
/// so a slow API (about 1 s a call) never holds up a cycle.
#[derive(Default)]
struct ApiPoller {
    wanted: Mutex<HashSet<String>>,
    results: Mutex<HashMap<String, ContainerStats>>,
    started: std::sync::atomic::AtomicBool,
}

/// The collector: reads cgroups for the Docker collector's running containers.
pub struct CgroupCollector<D: DockerApi + ?Sized> {
    docker: Arc<DockerState>,
    api: Arc<D>,
    reader: Arc<Mutex<Reader>>,
    poller: Arc<ApiPoller>,
    interval: Duration,
}

impl<D: DockerApi + ?Sized> CgroupCollector<D> {
    pub fn new(
        docker: Arc<DockerState>,
        api: Arc<D>,
        procfs: &Path,
        sysfs: &Path,
        interval: Duration,
    ) -> Self {
        let layout = if api.is_local() {
            Layout::detect(sysfs)
        } else {
            Layout::None
        };
        CgroupCollector {
            docker,
            api,
            reader: Arc::new(Mutex::new(Reader::new(layout, procfs, sysfs))),
            poller: Arc::new(ApiPoller::default()),
            interval,
        }
    }

    fn ensure_poller(&self) {
        if self
            .poller
            .started
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        // The task ends with the collector (it holds the poller weakly).
        let weak = Arc::downgrade(&self.poller);
        let api = self.api.clone();
        let every = self.interval;
        tokio::spawn(async move {
            loop {
                let Some(poller) = weak.upgrade() else {
                    return;
                };
                let ids: Vec<String> = poller.wanted.lock().unwrap().iter().cloned().collect();
                let results: Vec<(String, Option<ContainerStats>)> =
                    futures_util::stream::iter(ids)
                        .map(|id| {
                            let api = api.clone();
                            async move {
                                let r = api.stats_once(&id).await.ok().flatten();
                                (id, r)
                            }
                        })
                        .buffer_unordered(16)
                        .collect()
                        .await;
                {
                    let mut map = poller.results.lock().unwrap();
                    for (id, r) in results {
                        match r {
                            Some(s) => {
                                map.insert(id, s);
                            }
                            None => {
                                map.remove(&id);
                            }
                        }
                    }
                }
                drop(poller);
                tokio::time::sleep(every).await;
            }
        });
    }
}

impl<D: DockerApi + ?Sized> Collector for CgroupCollector<D> {
    fn name(&self) -> &'static str {
        "cgroup"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            let containers = self.docker.view();
            let driver = self.docker.daemon().map(|d| d.cgroup_driver);
            let reader = self.reader.clone();
            let (mut stats, fallback) = tokio::task::spawn_blocking(move || {
                let mut r = reader.lock().unwrap();
                if driver.is_some() {
                    r.driver = driver;
                }
                r.read_all(&containers)
            })
            .await
            .map_err(|e| CollectError::failed(format!("cgroup reader: {e}")))?;
            if !fallback.is_empty() {
                self.ensure_poller();
                let set: HashSet<String> = fallback.iter().cloned().collect();
                let results = self.poller.results.lock().unwrap();
                for id in &fallback {
                    if let Some(s) = results.get(id) {
                        stats.insert(id.clone(), s.clone());
                    }
                }
                *self.poller.wanted.lock().unwrap() = set;
            } else if self
                .poller
                .started
                .load(std::sync::atomic::Ordering::Acquire)
            {
                self.poller.wanted.lock().unwrap().clear();
            }
            Ok(Part::Cgroup(CgroupPart { stats }))
        })
    }
}

#[cfg(test)]
mod tests;
