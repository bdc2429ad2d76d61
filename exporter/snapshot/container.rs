//! Containers: Docker's inventory facts, cgroup readings, and the rates derived from two cycles.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// Docker's container states. `Unknown` holds a state this version of lookout does not know (a
/// newer daemon's), so one odd value never costs the container its other facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    /// Being stopped (newer daemons report it between `running` and `exited`).
    Stopping,
    Exited,
    Dead,
    Unknown,
}

impl State {
    pub const ALL: [State; 9] = [
        State::Created,
        State::Running,
        State::Paused,
        State::Restarting,
        State::Removing,
        State::Stopping,
        State::Exited,
        State::Dead,
        State::Unknown,
    ];

    /// Docker's word for the state; anything else is `Unknown` (logged by the caller).
    pub fn parse(s: &str) -> State {
        match s {
            "created" => State::Created,
            "running" => State::Running,
            "paused" => State::Paused,
            "restarting" => State::Restarting,
            "removing" => State::Removing,
            "stopping" => State::Stopping,
            "exited" => State::Exited,
            "dead" => State::Dead,
            _ => State::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Restarting => "restarting",
            State::Removing => "removing",
            State::Stopping => "stopping",
            State::Exited => "exited",
            State::Dead => "dead",
            State::Unknown => "unknown",
        }
    }

    /// Whether the container has processes (its resource readings exist).
    pub fn has_processes(self) -> bool {
        matches!(self, State::Running | State::Paused | State::Stopping)
    }
}

/// A container's health, from its HEALTHCHECK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No healthcheck configured.
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn parse(s: &str) -> Health {
        match s {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::None => "none",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }

    /// cAdvisor-style `container_health_state`: 1 healthy, 0 starting or unhealthy, -1 none.
    pub fn gauge(self) -> f64 {
        match self {
            Health::Healthy => 1.0,
            Health::Starting | Health::Unhealthy => 0.0,
            Health::None => -1.0,
        }
    }
}

/// Resource limits from the container's HostConfig.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    /// Memory limit in bytes; None when unlimited.
    pub memory_bytes: Option<u64>,
    /// `--cpus` as nano-CPUs; None when unset.
    pub nano_cpus: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_shares: Option<u64>,
}

impl Limits {
    /// The CPU limit in cores, if any (`--cpus`, or quota/period).
    pub fn cpu_cores(&self) -> Option<f64> {
        if let Some(n) = self.nano_cpus.filter(|n| *n > 0) {
            return Some(n as f64 / 1e9);
        }
        match (self.cpu_quota, self.cpu_period) {
            (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            (Some(q), None) if q > 0 => Some(q as f64 / 100_000.0),
            _ => None,
        }
    }
}

/// What Docker says about a container (inventory), kept current by events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerInfo {
    /// Full 64-hex container id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: State,
    pub health: Health,
    pub restart_count: i64,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Init process pid on the host; 0 when not running.
    pub pid: u32,
    /// Unix seconds; None when never started.
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub created_at: Option<f64>,
    pub limits: Limits,
    /// HostConfig.NetworkMode: bridge, host, none, container:<id>, or a network name.
    pub network_mode: String,
    /// HostConfig.CgroupParent, when set.
    pub cgroup_parent: String,
    /// The container's IP address on its first network (networks in name order), else the
    /// default bridge's; empty when it has none (not running, `host` or `none` network). Where
    /// active probes (`lookout.probe`) without a host go.
    pub ip_address: String,
    /// The storage driver that holds its filesystem (`GraphDriver.Name`: overlay2, btrfs, ...).
    pub storage_driver: String,
    /// Its writable layer's directory as the host sees it (`GraphDriver.Data.UpperDir`, which
    /// overlay2 and the other overlay drivers report); empty for drivers without one, whose
    /// layer usage is not measured.
    pub upper_dir: String,
    /// OOM events seen for this container since lookout started watching it.
    pub oom_events: u64,
    /// Restarts seen (new start times of a container that had started before), unix s, within
    /// the last 10 minutes, for `restarts_recent`.
    pub recent_starts: Vec<f64>,
}

impl ContainerInfo {
    /// Whether the container shares the host's network namespace (or another container's),
    /// in which case its interfaces are not its own and are not reported per container.
    pub fn shares_network(&self) -> bool {
        self.network_mode == "host" || self.network_mode.starts_with("container:")
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.state,
            State::Running | State::Paused | State::Restarting | State::Stopping
        ) && self.pid > 0
    }
}

/// The Docker collector's part: the whole inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub containers: std::sync::Arc<Vec<ContainerInfo>>,
    /// The inventory's generation when it was taken (bumped on every change).
    pub generation: u64,
    /// The daemon's cgroup driver (`cgroupfs` or `systemd`) and version, when known.
    pub cgroup_driver: Option<String>,
}

/// A container's writable layer as the fs_usage collector last measured it completely
/// (cAdvisor's `container_fs_*` figures for the container's root filesystem).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerUsage {
    /// The device of the filesystem holding the layer, as the mount table names it
    /// (`/dev/sda1`), else `MAJ:MIN`: cAdvisor's `device` label.
    pub device: String,
    /// Bytes the layer takes on disk, as `du -sx` counts them: allocated blocks, each hard
    /// link's inode once, symbolic links never followed, other filesystems never entered.
    pub usage_bytes: u64,
    /// Size of the filesystem holding the layer (`statvfs`), which is what cAdvisor reports as
    /// the container's limit.
    pub limit_bytes: u64,
    /// Inodes of that filesystem, and those free; None where it reports none (btrfs).
    pub inodes_total: Option<u64>,
    pub inodes_free: Option<u64>,
    /// Unix time (s) at which the measurement ended.
    pub measured_at: f64,
}

/// How the fs_usage collector's last pass over the writable layers went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FsUsagePass {
    /// Unix time (s) at which it ended.
    pub finished_at: f64,
    pub duration_seconds: f64,
    /// Containers measured completely.
    pub measured: u32,
    /// Containers whose layer could not be measured (a missing or unreadable directory).
    pub failed: u32,
    /// Containers whose storage driver reports no writable-layer directory.
    pub unsupported: u32,
    /// Containers the pass did not finish within its time budget: they keep the figures of
    /// their last complete measurement.
    pub unreached: u32,
}

/// The fs_usage collector's part: the latest complete figures by container id (running
/// containers of the inventory only), and its last pass.
#[derive(Debug, Clone, Default)]
pub struct FsUsagePart {
    pub layers: HashMap<String, LayerUsage>,
    pub pass: Option<FsUsagePass>,
}

/// CPU counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuStats {
    pub usage_seconds: f64,
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// CFS counters: present only when the cgroup reports them.
    pub periods: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_seconds: Option<f64>,
}

/// Memory figures (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemoryStats {
    pub usage: u64,
    /// usage − inactive_file, floored at 0 (cAdvisor's definition).
    pub working_set: u64,
    pub rss: u64,
    pub cache: u64,
    /// None when swap accounting is off.
    pub swap: Option<u64>,
}

/// The cgroup's own view of its limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CgroupSpec {
    /// Bytes; None when unlimited.
    pub memory_limit: Option<u64>,
    /// CFS quota (µs); None when unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period (µs).
    pub cpu_period: Option<u64>,
    /// cgroup v1 shares (v2 weights are converted back to shares, as cAdvisor does).
    pub cpu_shares: Option<u64>,
}

/// Block I/O counters of one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlkDevice {
    /// `/dev/<name>` when the device is known, else `MAJ:MIN`.
    pub device: String,
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// Counters of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    /// The rest of `/proc/net/dev`'s columns (node_exporter's host series); None from Docker's
    /// stats API, which lacks them.
    pub detail: Option<NetDevDetail>,
}

/// The `/proc/net/dev` counters beyond bytes, packets, errors and drops, named after the
/// file's column headers (`net/core/net-procfs.c`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetDevDetail {
    pub rx_fifo: u64,
    pub rx_frame: u64,
    pub rx_compressed: u64,
    pub rx_multicast: u64,
    pub tx_fifo: u64,
    pub tx_colls: u64,
    pub tx_carrier: u64,
    pub tx_compressed: u64,
}

/// Where a container's network counters come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Not read (not running, or unreadable).
    #[default]
    Unknown,
    /// Shares the host's (or another container's) namespace: not reported per container.
    Shared,
    /// Its own namespace's interfaces, loopback excluded.
    Own(Vec<NetInterface>),
}

/// Where a container's stats came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    #[default]
    Cgroup,
    /// Docker's stats API (`one-shot=true`), when cgroup files can't be read.
    DockerApi,
}

/// One running container's resource readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerStats {
    pub cgroup_path: String,
    /// Unix time (s) the reading was taken; rates use it, so a sample that did not change
    /// between two cycles (the stats-API fallback) does not read as zero.
    pub read_at: f64,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub spec: CgroupSpec,
    pub blkio: Vec<BlkDevice>,
    pub pids: Option<u64>,
    pub network: Network,
    pub source: StatsSource,
}

/// The cgroup collector's part: stats by container id, and the cgroup path (cAdvisor's `id`
/// label) of every container it located.
#[derive(Debug, Clone, Default)]
pub struct CgroupPart {
    pub stats: HashMap<String, ContainerStats>,
}

/// Rates and ratios that need two samples or host facts, computed once per cycle.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Derived {
    /// 100 = one full core (as `docker stats`).
    pub cpu_percent: Option<f64>,
    /// Of its CPU limit, or of all host cores when unlimited.
    pub cpu_limit_percent: Option<f64>,
    /// Working set / limit, or / host memory when unlimited.
    pub memory_percent: Option<f64>,
    pub net_rx_bytes_per_second: Option<f64>,
    pub net_tx_bytes_per_second: Option<f64>,
    pub blk_read_bytes_per_second: Option<f64>,
    pub blk_write_bytes_per_second: Option<f64>,
    pub uptime_seconds: Option<f64>,
    /// Restarts seen within the last 10 minutes.
    pub restarts_recent: u32,
    pub gpu_memory_bytes: Option<u64>,
    /// The latest result of its active probe (label `lookout.probe`), while it runs; None
    /// without a probe or before the first result.
    pub probe: Option<super::ProbeResult>,
    /// Its writable layer's last complete measurement (fs_usage collector), while it runs.
    pub fs_usage: Option<LayerUsage>,
    /// Time of the sample the rates were computed at.
    pub sampled_at: f64,
}

impl Derived {
    pub fn compute(
        c: &Container,
        prev: Option<&Container>,
        now: f64,
        host_cpus: u32,
        host_memory: u64,
    ) -> Derived {
        let mut d = Derived {
            sampled_at: now,
            ..Default::default()
        };
        let info = &c.info;
        if info.state == State::Running {
            d.uptime_seconds = info.started_at.map(|s| (now - s).max(0.0));
        }
        d.restarts_recent = info
            .recent_starts
            .iter()
            .filter(|t| now - **t <= 600.0)
            .count() as u32;
        let Some(stats) = &c.stats else { return d };
        if let Some(mem) = stats.memory {
            let limit = memory_limit(info, stats);
            let denom = limit.unwrap_or(host_memory);
            if denom > 0 {
                d.memory_percent = Some(mem.working_set as f64 * 100.0 / denom as f64);
            }
        }
        let Some(prev) = prev else { return d };
        let Some(pstats) = &prev.stats else { return d };
        if prev.info.pid != info.pid {
            return d;
        }
        let dt = stats.read_at - pstats.read_at;
        if dt == 0.0 {
            // The same sample as last cycle (a slow stats-API poll): keep last cycle's rates.
            let mut same = prev.derived.clone();
            same.uptime_seconds = d.uptime_seconds;
            same.restarts_recent = d.restarts_recent;
            same.memory_percent = d.memory_percent;
            same.sampled_at = now;
            return same;
        }
        if dt < 0.0 {
            return d;
        }
        if let (Some(cpu), Some(pcpu)) = (stats.cpu, pstats.cpu) {
            let used = cpu.usage_seconds - pcpu.usage_seconds;
            if used >= 0.0 {
                let pct = used / dt * 100.0;
                d.cpu_percent = Some(pct);
                let cores = info
                    .limits
                    .cpu_cores()
                    .or_else(|| cpu_limit_from_spec(&stats.spec))
                    .unwrap_or(host_cpus.max(1) as f64);
                d.cpu_limit_percent = Some(pct / cores);
            }
        }
        if let (Network::Own(now_if), Network::Own(prev_if)) = (&stats.network, &pstats.network) {
            let sum = |v: &[NetInterface], f: fn(&NetInterface) -> u64| {
                v.iter().map(f).fold(0, u64::saturating_add)
            };
            let rx = sum(now_if, |i| i.rx_bytes) as f64 - sum(prev_if, |i| i.rx_bytes) as f64;
            let tx = sum(now_if, |i| i.tx_bytes) as f64 - sum(prev_if, |i| i.tx_bytes) as f64;
            if rx >= 0.0 && tx >= 0.0 {
                d.net_rx_bytes_per_second = Some(rx / dt);
                d.net_tx_bytes_per_second = Some(tx / dt);
            }
        }
        let sum = |v: &[BlkDevice], f: fn(&BlkDevice) -> u64| {
            v.iter().map(f).fold(0, u64::saturating_add)
        };
        let r = sum(&stats.blkio, |b| b.read_bytes) as f64
            - sum(&pstats.blkio, |b| b.read_bytes) as f64;
        let w = sum(&stats.blkio, |b| b.write_bytes) as f64
            - sum(&pstats.blkio, |b| b.write_bytes) as f64;
        if r >= 0.0 && w >= 0.0 {
            d.blk_read_bytes_per_second = Some(r / dt);
            d.blk_write_bytes_per_second = Some(w / dt);
        }
        d
    }
}

fn cpu_limit_from_spec(spec: &CgroupSpec) -> Option<f64> {
    match (spec.cpu_quota, spec.cpu_period) {
        (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
        _ => None,
    }
}

/// The effective memory limit: the cgroup's, else Docker's.
pub fn memory_limit(info: &ContainerInfo, stats: &ContainerStats) -> Option<u64> {
    stats.spec.memory_limit.or(info.limits.memory_bytes)
}

/// A container as the snapshot holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Container {
    pub info: ContainerInfo,
    /// Present for running containers whose stats could be read this cycle.
    pub stats: Option<ContainerStats>,
    pub derived: Derived,
}

impl Container {
    /// cAdvisor's `id` label: the container's cgroup path (e.g. `/docker/<id>`), or
    /// `/docker/<id>` when it has none (not running).
    pub fn cgroup_id(&self) -> String {
        match &self.stats {
            Some(s) if !s.cgroup_path.is_empty() => s.cgroup_path.clone(),
            _ => format!("/docker/{}", self.info.id),
        }
    }

    pub fn memory_limit(&self) -> Option<u64> {
        match &self.stats {
            Some(s) => memory_limit(&self.info, s),
            None => self.info.limits.memory_bytes,
        }
    }
}
