//! The snapshot: one collection cycle's facts, as plain data.
//!
//! Collectors produce [`Part`]s; [`Snapshot::assemble`] joins them with the previous snapshot
//! (for rates) into one immutable value that the exposition encodes and the rule engine reads.
//! Nothing in here does I/O.

pub mod container;
pub mod gpu;
pub mod host;
pub mod labels;
pub mod logs;
pub mod node;
pub mod probe;
pub mod process;
pub mod textfile;

use std::collections::HashMap;
use std::sync::Arc;

pub use container::*;
pub use gpu::*;
pub use host::*;
pub use labels::*;
pub use logs::*;
pub use node::*;
pub use probe::*;
pub use process::*;
pub use textfile::*;

/// What one collector contributed to a cycle.
#[derive(Debug, Clone)]
pub enum Part {
    Docker(Inventory),
    Cgroup(CgroupPart),
    Host(Box<HostStats>),
    Disk(Vec<Filesystem>),
    Gpu(GpuPart),
    Logs(LogPart),
    Probe(ProbePart),
    FsUsage(FsUsagePart),
    /// A node_exporter-style collector's families (`stat`, `filefd`, ...).
    Node(NodePart),
    /// node_exporter's textfile collector: the families of the `*.prom` files.
    Textfile(TextfilePart),
}

/// How one collector fared in the cycle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectorStatus {
    pub name: &'static str,
    pub success: bool,
    /// Whether to export `lookout_collector_success` for it at all (a GPU collector on `auto`
    /// without a GPU is silent, not failing).
    pub exported: bool,
    pub duration_seconds: f64,
    /// The last error, kept until a cycle succeeds.
    pub error: Option<String>,
}

impl CollectorStatus {
    /// A collector that succeeded at once (for snapshots built by hand: tests, benchmarks).
    pub fn succeeded(name: &'static str) -> CollectorStatus {
        CollectorStatus {
            name,
            success: true,
            exported: true,
            duration_seconds: 0.0,
            error: None,
        }
    }
}

/// One cycle's facts.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Unix time (s) at which the cycle started.
    pub taken_at: f64,
    /// Seconds the whole cycle took.
    pub duration_seconds: f64,
    /// Every known container, stopped ones included, sorted by name.
    pub containers: Vec<Container>,
    pub host: Option<Box<HostStats>>,
    pub filesystems: Vec<Filesystem>,
    pub gpu: GpuPart,
    pub logs: LogPart,
    /// The node_exporter-style collectors' families, in collector order.
    pub node: Vec<Family>,
    /// What the textfile collector read; None when it is off (then no `node_textfile_*` at all).
    pub textfile: Option<TextfilePart>,
    /// The fs_usage collector's last pass over the writable layers, once it has made one.
    pub fs_usage_pass: Option<FsUsagePass>,
    pub collectors: Vec<CollectorStatus>,
    /// Allow-listed Docker labels, exported as `container_label_<sanitized>`.
    pub label_allowlist: Arc<LabelAllowlist>,
    /// The Docker inventory's generation the containers were taken at: an evaluation of this
    /// snapshot never overrides what the engine saw of a container at a later generation
    /// (through a Docker event).
    pub inventory_generation: u64,
    /// Number of host CPUs and memory, for "percent of the host" figures.
    pub host_cpus: u32,
    pub host_memory_bytes: u64,
    /// lookout's own process (`process_*`), read from `/proc/self` by the wiring each cycle;
    /// `None` when it could not be read (not a collector: lookout's health, not the host's).
    pub process: Option<ProcessStats>,
}

impl Snapshot {
    /// Join the parts of a cycle. `prev` gives the previous samples for rates.
    pub fn assemble(
        taken_at: f64,
        parts: Vec<Part>,
        collectors: Vec<CollectorStatus>,
        prev: Option<&Snapshot>,
        label_allowlist: Arc<LabelAllowlist>,
    ) -> Snapshot {
        let mut inventory: Option<Inventory> = None;
        let mut cgroup = CgroupPart::default();
        let mut probes = ProbePart::default();
        let mut layers = HashMap::new();
        let mut snap = Snapshot {
            taken_at,
            collectors,
            label_allowlist,
            host_cpus: num_cpus(),
            ..Default::default()
        };
        for part in parts {
            match part {
                Part::Docker(inv) => {
                    snap.inventory_generation = inv.generation;
                    inventory = Some(inv)
                }
                Part::Cgroup(c) => cgroup = c,
                Part::Host(h) => snap.host = Some(h),
                Part::Disk(f) => snap.filesystems = f,
                Part::Gpu(g) => snap.gpu = g,
                Part::Logs(l) => snap.logs = l,
                Part::Probe(p) => probes = p,
                Part::Node(n) => snap.node.extend(n.families),
                Part::Textfile(t) => snap.textfile = Some(t),
                Part::FsUsage(f) => {
                    layers = f.layers;
                    snap.fs_usage_pass = f.pass;
                }
            }
        }
        if let (Some(h), Some(p)) = (&mut snap.host, prev.and_then(|p| p.host.as_deref())) {
            h.cpu_percent = h.cpu_percent_since(p);
        }
        if let Some(h) = &snap.host {
            if h.memory.total_bytes > 0 {
                snap.host_memory_bytes = h.memory.total_bytes;
            }
            if !h.cpus.is_empty() {
                snap.host_cpus = h.cpus.len() as u32;
            }
        }
        if snap.host_memory_bytes == 0 {
            snap.host_memory_bytes = host_memory_fallback();
        }
        let prev_by_id: HashMap<&str, &Container> = prev
            .map(|p| {
                p.containers
                    .iter()
                    .map(|c| (c.info.id.as_str(), c))
                    .collect()
            })
            .unwrap_or_default();
        let mut stats = cgroup.stats;
        let gpu_by_id = snap.gpu.memory_by_container();
        let mut probe_by_id: HashMap<String, ProbeResult> = probes
            .results
            .into_iter()
            .map(|r| (r.container_id.clone(), r))
            .collect();
        let mut containers: Vec<Container> = inventory
            .map(|inv| inv.containers)
            .unwrap_or_default()
            .iter()
            .map(|info| {
                let stats = stats.remove(&info.id);
                let prev = prev_by_id.get(info.id.as_str()).copied();
                let mut c = Container {
                    info: info.clone(),
                    stats,
                    derived: Derived::default(),
                };
                c.derived =
                    Derived::compute(&c, prev, taken_at, snap.host_cpus, snap.host_memory_bytes);
                c.derived.gpu_memory_bytes = gpu_by_id.get(info.id.as_str()).copied();
                // Only running containers are probed; a result that raced a stop is dropped.
                if info.state == State::Running {
                    c.derived.probe = probe_by_id.remove(&info.id);
                }
                if info.is_running() {
                    c.derived.fs_usage = layers.remove(&info.id);
                }
                c
            })
            .collect();
        containers.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        snap.containers = containers;
        snap
    }

    /// The container with this id or name, if known.
    pub fn container(&self, id_or_name: &str) -> Option<&Container> {
        self.containers
            .iter()
            .find(|c| c.info.id == id_or_name || c.info.name == id_or_name)
    }
}

fn num_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

fn host_memory_fallback() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        0
    }
}
