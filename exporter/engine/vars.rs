//! The variables a rule's expression can use, per scope, and the targets built from a snapshot.
//!
//! Each scope's variables are ONE table below (name, kind, meaning, how to read it), from which
//! the evaluation context, the sample context of the load-time dry run, and the README's list
//! ([`markdown_table`]) are all generated, so the documentation cannot drift from the code.
//!
//! A reading that does not exist this cycle (no CPU figure for a stopped container, a GPU that
//! does not report power) is evalexpr's `Empty`: comparisons with it are unknown, which does
//! not breach a rule and is not an evaluation failure (see [`super::expr`]).

use std::collections::{BTreeMap, HashMap};

use evalexpr::Value;

use super::expr::Names;
use super::facts::NodeFacts;
use super::fill::FillHistory;
use crate::snapshot::{
    labels, Container, Filesystem, Gpu, HostStats, LabelAllowlist, Snapshot, State,
};

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Container,
    Host,
    Filesystem,
    Gpu,
}

/// A variable's type in expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Number,
    Text,
    Bool,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::Text => "string",
            Kind::Bool => "boolean",
        }
    }
}

/// One variable of a scope's table; `F` reads it from the scope's source.
pub struct Def<F> {
    pub name: &'static str,
    pub kind: Kind,
    /// What it means, for the README.
    pub doc: &'static str,
    get: F,
}

type ContainerGet = for<'a, 'b> fn(&'b ContainerSource<'a>) -> Value;
type HostGet = for<'a, 'b> fn(&'b HostSource<'a>) -> Value;
type FsGet = for<'a, 'b> fn(&'b FsSource<'a>) -> Value;
type GpuGet = fn(&Gpu) -> Value;

/// What a container target's variables are read from.
pub struct ContainerSource<'a> {
    pub c: &'a Container,
    /// Matching log lines per minute, when the container's logs are followed.
    pub log_matches_per_minute: Option<f64>,
    /// The last matching line ("" when followed but nothing matched yet).
    pub last_log_match: Option<&'a str>,
    /// Whether GPUs are watched at all (then a container without GPU processes uses 0 bytes).
    pub gpus_watched: bool,
}

/// What the host target's variables are read from.
pub struct HostSource<'a> {
    pub h: &'a HostStats,
    pub now: f64,
    /// What the node_exporter-style collectors found.
    pub node: &'a NodeFacts,
}

/// What a filesystem target's variables are read from.
pub struct FsSource<'a> {
    pub f: &'a Filesystem,
    /// Seconds until it is predicted to fill (+∞: not filling), from the engine's history.
    pub fill_eta_seconds: Option<f64>,
}

fn num(v: Option<f64>) -> Value {
    v.map(Value::Float).unwrap_or(Value::Empty)
}

fn text(s: &str) -> Value {
    Value::String(s.to_string())
}

fn flag(v: Option<bool>) -> Value {
    v.map(Value::Boolean).unwrap_or(Value::Empty)
}

fn pct(part: f64, whole: f64) -> Value {
    if whole > 0.0 {
        Value::Float(part * 100.0 / whole)
    } else {
        Value::Empty
    }
}

/// A resource reading of a container: zero when it has no processes (stopped, restarting:
/// it uses nothing, which is known), else the reading, missing when it could not be read.
fn usage(s: &ContainerSource, v: Option<f64>) -> Value {
    if s.c.info.state.has_processes() {
        num(v)
    } else {
        Value::Float(0.0)
    }
}

fn stats_num<T: Copy>(
    c: &Container,
    f: impl Fn(&crate::snapshot::ContainerStats) -> Option<T>,
) -> Option<T> {
    c.stats.as_ref().and_then(f)
}

/// container scope.
#[rustfmt::skip]
pub const CONTAINER: &[Def<ContainerGet>] = &[
    Def { name: "name", kind: Kind::Text, doc: "Container name, without the leading slash.", get: |s| text(&s.c.info.name) },
    Def { name: "id", kind: Kind::Text, doc: "Full container id.", get: |s| text(&s.c.info.id) },
    Def { name: "image", kind: Kind::Text, doc: "Image as given at `docker run`.", get: |s| text(&s.c.info.image) },
    Def { name: "state", kind: Kind::Text, doc: "created, running, paused, restarting, removing, stopping, exited, dead, or unknown (a state this lookout does not know).", get: |s| text(s.c.info.state.as_str()) },
    Def { name: "health", kind: Kind::Text, doc: "none (no HEALTHCHECK), starting, healthy or unhealthy.", get: |s| text(s.c.info.health.as_str()) },
    Def { name: "cpu_percent", kind: Kind::Number, doc: "CPU use; 100 = one full core, as in `docker stats`.", get: |s| usage(s, s.c.derived.cpu_percent) },
    Def { name: "cpu_limit_percent", kind: Kind::Number, doc: "CPU use as a percentage of its CPU limit, or of all host cores when unlimited.", get: |s| usage(s, s.c.derived.cpu_limit_percent) },
    Def { name: "memory_bytes", kind: Kind::Number, doc: "Working set (usage minus inactive file cache).", get: |s| usage(s, stats_num(s.c, |st| st.memory.map(|m| m.working_set as f64))) },
    Def { name: "memory_limit_bytes", kind: Kind::Number, doc: "Memory limit; missing when unlimited.", get: |s| num(s.c.memory_limit().map(|b| b as f64)) },
    Def { name: "memory_percent", kind: Kind::Number, doc: "Working set / limit, or / host memory when unlimited.", get: |s| usage(s, s.c.derived.memory_percent) },
    Def { name: "restart_count", kind: Kind::Number, doc: "Docker's restart count.", get: |s| Value::Float(s.c.info.restart_count as f64) },
    Def { name: "restarts_recent", kind: Kind::Number, doc: "Restarts seen in the last 10 minutes.", get: |s| Value::Float(s.c.derived.restarts_recent as f64) },
    Def { name: "exit_code", kind: Kind::Number, doc: "Exit code of the last run (0 while it never exited).", get: |s| Value::Float(s.c.info.exit_code as f64) },
    Def { name: "oom_killed", kind: Kind::Bool, doc: "Whether the last run was killed for running out of memory.", get: |s| Value::Boolean(s.c.info.oom_killed) },
    Def { name: "uptime_seconds", kind: Kind::Number, doc: "Seconds since it started; missing when not running.", get: |s| num(s.c.derived.uptime_seconds) },
    Def { name: "pids", kind: Kind::Number, doc: "Processes and threads in the container.", get: |s| usage(s, stats_num(s.c, |st| st.pids.map(|p| p as f64))) },
    Def { name: "net_rx_bytes_per_second", kind: Kind::Number, doc: "Received bytes per second (own network namespace only).", get: |s| usage(s, s.c.derived.net_rx_bytes_per_second) },
    Def { name: "net_tx_bytes_per_second", kind: Kind::Number, doc: "Sent bytes per second (own network namespace only).", get: |s| usage(s, s.c.derived.net_tx_bytes_per_second) },
    Def { name: "blk_read_bytes_per_second", kind: Kind::Number, doc: "Block-device bytes read per second.", get: |s| usage(s, s.c.derived.blk_read_bytes_per_second) },
    Def { name: "blk_write_bytes_per_second", kind: Kind::Number, doc: "Block-device bytes written per second.", get: |s| usage(s, s.c.derived.blk_write_bytes_per_second) },
    Def { name: "gpu_memory_bytes", kind: Kind::Number, doc: "GPU memory used by its processes (0 when GPUs are watched and it uses none).", get: |s| num(s.c.derived.gpu_memory_bytes.map(|b| b as f64).or(if s.gpus_watched { Some(0.0) } else { None })) },
    Def { name: "log_matches_per_minute", kind: Kind::Number, doc: "Log lines matching its pattern per minute; missing when its logs are not followed.", get: |s| num(s.log_matches_per_minute) },
    Def { name: "last_log_match", kind: Kind::Text, doc: "The last matching log line (\"\" when none yet); missing when not followed.", get: |s| s.last_log_match.map(text).unwrap_or(Value::Empty) },
    Def { name: "probe_ok", kind: Kind::Bool, doc: "Whether its last active probe (label `lookout.probe=http://:PORT/PATH` or `tcp://:PORT`) succeeded; missing without a probe, before its first result, and when not running.", get: |s| s.c.derived.probe.as_ref().map(|p| Value::Boolean(p.success)).unwrap_or(Value::Empty) },
    Def { name: "fs_usage_bytes", kind: Kind::Number, doc: "Bytes its writable layer takes on disk (`container_fs_usage_bytes`, measured every `collectors.fs_usage_interval`, 5m by default); missing before the first measurement, with a storage driver other than overlay2, and when not running.", get: |s| num(s.c.derived.fs_usage.as_ref().map(|u| u.usage_bytes as f64)) },
];

/// host scope.
#[rustfmt::skip]
pub const HOST: &[Def<HostGet>] = &[
    Def { name: "cpu_percent", kind: Kind::Number, doc: "CPU busy, 0-100 over all cores.", get: |s| num(s.h.cpu_percent) },
    Def { name: "memory_percent", kind: Kind::Number, doc: "(total - available) / total.", get: |s| pct(s.h.memory.total_bytes.saturating_sub(s.h.memory.available_bytes) as f64, s.h.memory.total_bytes as f64) },
    Def { name: "swap_percent", kind: Kind::Number, doc: "Swap used / swap total; 0 without swap.", get: |s| {
        let m = &s.h.memory;
        if m.swap_total_bytes == 0 { Value::Float(0.0) } else { pct(m.swap_total_bytes.saturating_sub(m.swap_free_bytes) as f64, m.swap_total_bytes as f64) }
    } },
    Def { name: "load1", kind: Kind::Number, doc: "1-minute load average.", get: |s| Value::Float(s.h.load1) },
    Def { name: "load5", kind: Kind::Number, doc: "5-minute load average.", get: |s| Value::Float(s.h.load5) },
    Def { name: "load15", kind: Kind::Number, doc: "15-minute load average.", get: |s| Value::Float(s.h.load15) },
    Def { name: "uptime_seconds", kind: Kind::Number, doc: "Seconds since boot.", get: |s| if s.h.boot_time > 0.0 { Value::Float((s.now - s.h.boot_time).max(0.0)) } else { Value::Empty } },
    Def { name: "context_switches_per_second", kind: Kind::Number, doc: "Context switches per second since the previous cycle (`node_context_switches_total`, stat collector); missing on the first cycle.", get: |s| num(s.node.context_switches_per_second) },
    Def { name: "conntrack_used_percent", kind: Kind::Number, doc: "Connection-tracking entries / their limit (`node_nf_conntrack_entries`, conntrack collector); missing without nf_conntrack.", get: |s| s.node.conntrack.map_or(Value::Empty, |(n, max)| pct(n, max)) },
    Def { name: "filefd_used_percent", kind: Kind::Number, doc: "Allocated file handles / their maximum (`node_filefd_allocated`, filefd collector).", get: |s| s.node.filefd.map_or(Value::Empty, |(n, max)| pct(n, max)) },
    Def { name: "clock_offset_seconds", kind: Kind::Number, doc: "The kernel clock's offset from its reference clock (`node_timex_offset_seconds`, timex collector).", get: |s| num(s.node.clock_offset_seconds) },
    Def { name: "clock_synchronized", kind: Kind::Bool, doc: "Whether the kernel reports its clock synchronised (`node_timex_sync_status`, timex collector).", get: |s| flag(s.node.clock_synchronized) },
    Def { name: "oom_kills", kind: Kind::Number, doc: "Processes the kernel's OOM killer ended since the previous cycle (`node_vmstat_oom_kill`'s increase, vmstat collector); missing on the first cycle.", get: |s| num(s.node.oom_kills) },
    Def { name: "raid_degraded", kind: Kind::Bool, doc: "Whether a software RAID array has fewer active disks than it needs, or is inactive (`node_md_*`, mdadm collector); false without arrays.", get: |s| flag(s.node.raid.as_ref().map(|r| !r.degraded.is_empty())) },
    Def { name: "raid_degraded_devices", kind: Kind::Text, doc: "Those arrays, comma-separated (`md0, md2`; \"\" when none).", get: |s| s.node.raid.as_ref().map_or(Value::Empty, |r| text(&r.degraded.join(", "))) },
    Def { name: "raid_disks_failed", kind: Kind::Number, doc: "Failed disks over every software RAID array (`node_md_disks{state=\"failed\"}`).", get: |s| num(s.node.raid.as_ref().map(|r| r.disks_failed)) },
    Def { name: "hardware_temperature_celsius", kind: Kind::Number, doc: "The hottest hwmon temperature sensor or thermal zone (hwmon and thermal_zone collectors; AMD's `Tctl` and faulty sensors left out); missing without sensors.", get: |s| num(s.node.hottest.as_ref().map(|h| h.celsius)) },
    Def { name: "hardware_temperature_sensor", kind: Kind::Text, doc: "Which one: `<chip> <sensor> (<label>)` as on `node_hwmon_temp_celsius`, or `thermal_zone<N> (<type>)`.", get: |s| s.node.hottest.as_ref().map_or(Value::Empty, |h| text(&h.sensor)) },
];

/// filesystem scope.
#[rustfmt::skip]
pub const FILESYSTEM: &[Def<FsGet>] = &[
    Def { name: "mountpoint", kind: Kind::Text, doc: "Where it is mounted, as the host sees it.", get: |s| text(&s.f.mountpoint) },
    Def { name: "device", kind: Kind::Text, doc: "The mounted device.", get: |s| text(&s.f.device) },
    Def { name: "fstype", kind: Kind::Text, doc: "Filesystem type.", get: |s| text(&s.f.fstype) },
    Def { name: "used_percent", kind: Kind::Number, doc: "Used / (used + available to users), as `df` shows it.", get: |s| {
        let f = s.f;
        if f.device_error { return Value::Empty }
        let used = f.size_bytes.saturating_sub(f.free_bytes) as f64;
        pct(used, used + f.avail_bytes as f64)
    } },
    Def { name: "avail_bytes", kind: Kind::Number, doc: "Bytes available to unprivileged users.", get: |s| if s.f.device_error { Value::Empty } else { Value::Float(s.f.avail_bytes as f64) } },
    Def { name: "size_bytes", kind: Kind::Number, doc: "Size in bytes.", get: |s| if s.f.device_error { Value::Empty } else { Value::Float(s.f.size_bytes as f64) } },
    Def { name: "inodes_used_percent", kind: Kind::Number, doc: "Inodes used / inodes; missing where the filesystem has no inode limit.", get: |s| if s.f.device_error { Value::Empty } else { pct(s.f.files.saturating_sub(s.f.files_free) as f64, s.f.files as f64) } },
    Def { name: "readonly", kind: Kind::Bool, doc: "Mounted read-only.", get: |s| Value::Boolean(s.f.readonly) },
    Def { name: "fill_eta_seconds", kind: Kind::Number, doc: "Seconds until it is predicted to fill, as `predict_linear(node_filesystem_avail_bytes[6h], …)` predicts it: where the least-squares line through its available bytes of the last 6 hours (a point a minute) reaches 0; +Inf when not falling; missing with under an hour (or 10 points) of history, and when read-only.", get: |s| if s.f.device_error { Value::Empty } else { num(s.fill_eta_seconds) } },
];

/// gpu scope.
#[rustfmt::skip]
pub const GPU: &[Def<GpuGet>] = &[
    Def { name: "index", kind: Kind::Number, doc: "NVML index.", get: |g| Value::Float(g.index as f64) },
    Def { name: "name", kind: Kind::Text, doc: "Product name.", get: |g| text(&g.name) },
    Def { name: "uuid", kind: Kind::Text, doc: "GPU UUID.", get: |g| text(&g.uuid) },
    Def { name: "utilization_percent", kind: Kind::Number, doc: "GPU busy percentage.", get: |g| num(g.utilization_percent) },
    Def { name: "memory_used_bytes", kind: Kind::Number, doc: "Framebuffer memory used.", get: |g| num(g.fb_used_mib.map(|m| m * 1048576.0)) },
    Def { name: "memory_used_percent", kind: Kind::Number, doc: "Framebuffer used / total.", get: |g| match (g.fb_used_mib, g.fb_total_mib) { (Some(u), Some(t)) => pct(u, t), _ => Value::Empty } },
    Def { name: "temperature_celsius", kind: Kind::Number, doc: "GPU temperature.", get: |g| num(g.temperature_celsius) },
    Def { name: "power_watts", kind: Kind::Number, doc: "Power draw.", get: |g| num(g.power_watts) },
    Def { name: "xid_errors", kind: Kind::Number, doc: "The last XID error code seen (0 for none).", get: |g| num(g.xid_errors) },
    Def { name: "throttle_reasons", kind: Kind::Number, doc: "Why the clocks are held down: NVML's clock-throttle reasons bitmask, as `DCGM_FI_DEV_CLOCK_THROTTLE_REASONS` (`0x20` SW thermal slowdown, `0x40` HW thermal slowdown, `0x4` SW power cap, `0x8` HW slowdown, `0x1` idle); test a bit with `bitand(throttle_reasons, 0x40) != 0`.", get: |g| num(g.throttle_reasons.map(|r| r as f64)) },
];

macro_rules! names_of {
    ($table:expr, $n:literal) => {{
        const fn build() -> [&'static str; $n] {
            let mut out = [""; $n];
            let mut i = 0;
            while i < $n {
                out[i] = $table[i].name;
                i += 1;
            }
            out
        }
        const NAMES: [&'static str; $n] = build();
        &NAMES
    }};
}

const CONTAINER_NAMES: &[&str] = names_of!(CONTAINER, 25);
const HOST_NAMES: &[&str] = names_of!(HOST, 18);
const FILESYSTEM_NAMES: &[&str] = names_of!(FILESYSTEM, 9);
const GPU_NAMES: &[&str] = names_of!(GPU, 10);

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Container, Scope::Host, Scope::Filesystem, Scope::Gpu];

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Container => "container",
            Scope::Host => "host",
            Scope::Filesystem => "filesystem",
            Scope::Gpu => "gpu",
        }
    }

    /// The variable names, in slot order.
    pub fn names(self) -> Names {
        Names {
            scope: self.as_str(),
            names: match self {
                Scope::Container => CONTAINER_NAMES,
                Scope::Host => HOST_NAMES,
                Scope::Filesystem => FILESYSTEM_NAMES,
                Scope::Gpu => GPU_NAMES,
            },
        }
    }

    /// (name, kind, doc) of each variable, in slot order.
    pub fn docs(self) -> Vec<(&'static str, Kind, &'static str)> {
        fn d<F>(t: &[Def<F>]) -> Vec<(&'static str, Kind, &'static str)> {
            t.iter().map(|v| (v.name, v.kind, v.doc)).collect()
        }
        match self {
            Scope::Container => d(CONTAINER),
            Scope::Host => d(HOST),
            Scope::Filesystem => d(FILESYSTEM),
            Scope::Gpu => d(GPU),
        }
    }

    pub fn kind(self, slot: usize) -> Option<Kind> {
        self.docs().get(slot).map(|d| d.1)
    }

    /// Sample values where every variable exists, for the dry run at load.
    pub fn sample(self) -> Vec<Value> {
        self.docs()
            .into_iter()
            .map(|(_, kind, _)| match kind {
                Kind::Number => Value::Float(1.0),
                Kind::Text => Value::String("sample".into()),
                Kind::Bool => Value::Boolean(false),
            })
            .collect()
    }

    /// The collector whose data this scope's targets come from.
    pub fn collector(self) -> &'static str {
        match self {
            Scope::Container => "docker",
            Scope::Host => "host",
            Scope::Filesystem => "disk",
            Scope::Gpu => "gpu",
        }
    }
}

/// The README's list of variables, per scope.
pub fn markdown_table() -> String {
    let mut out = String::new();
    for scope in Scope::ALL {
        out.push_str(&format!(
            "**{}**\n\n| variable | type | meaning |\n|---|---|---|\n",
            scope.as_str()
        ));
        for (name, kind, doc) in scope.docs() {
            out.push_str(&format!("| `{name}` | {} | {doc} |\n", kind.as_str()));
        }
        out.push('\n');
    }
    out
}

/// One thing a rule is evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub scope: Scope,
    /// Identity across cycles: `container/<id>`, `filesystem/<mountpoint>`, `gpu/<uuid>`, `host`.
    pub key: String,
    /// What `match.name` globs: container name, mountpoint, GPU UUID, hostname.
    pub name: String,
    /// Labels every alert on it carries, sorted by name.
    pub labels: Vec<(String, String)>,
    /// What `match.labels` selects on: a container's Docker labels, else `labels`.
    pub selectors: BTreeMap<String, String>,
    /// Variable values by slot.
    pub values: Vec<Value>,
}

impl Target {
    /// A variable's value by name (for tests and templates).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.scope
            .names()
            .names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.values.get(i))
    }
}

/// Per-container log facts from this and the previous snapshot.
#[derive(Debug, Default, Clone)]
pub struct LogFacts<'a> {
    by_id: HashMap<&'a str, (Option<f64>, &'a str)>,
}

impl<'a> LogFacts<'a> {
    /// Matches per minute from the counts of this and the previous snapshot; the last match.
    pub fn new(snap: &'a Snapshot, prev: Option<&Snapshot>) -> LogFacts<'a> {
        let mut by_id: HashMap<&str, (Option<f64>, &str)> = HashMap::new();
        if snap.logs.counts.is_empty() {
            return LogFacts { by_id };
        }
        let mut now: HashMap<&str, u64> = HashMap::new();
        for c in &snap.logs.counts {
            *now.entry(c.container_id.as_str()).or_default() += c.matches;
        }
        let mut before: HashMap<&str, u64> = HashMap::new();
        let dt = prev.map(|p| snap.taken_at - p.taken_at).unwrap_or(0.0);
        if let Some(p) = prev {
            for c in &p.logs.counts {
                *before.entry(c.container_id.as_str()).or_default() += c.matches;
            }
        }
        for (id, n) in now {
            let rate = match before.get(id) {
                Some(b) if dt > 0.0 && n >= *b => Some((n - b) as f64 * 60.0 / dt),
                _ => None,
            };
            by_id.insert(id, (rate, ""));
        }
        for m in &snap.logs.last_matches {
            if let Some(e) = by_id.get_mut(m.container_id.as_str()) {
                e.1 = m.line.as_str();
            }
        }
        LogFacts { by_id }
    }
}

/// Whether a scope's data is in this snapshot. A scope whose collector failed (or is off) is
/// not evaluated at all: its alerts keep their state rather than resolving as if every target
/// had vanished.
pub fn present(snap: &Snapshot, scope: Scope) -> bool {
    let status = snap.collectors.iter().find(|c| c.name == scope.collector());
    match scope {
        // A failing Docker collector still serves the last known inventory.
        Scope::Container => status.is_some_and(|s| s.success || !snap.containers.is_empty()),
        Scope::Host => snap.host.is_some(),
        Scope::Filesystem | Scope::Gpu => status.is_some_and(|s| s.success),
    }
}

/// The container target of one container; its labels are the container's identity labels
/// ([`Container::identity_labels`]), the ones its series carry.
pub fn container_target(
    c: &Container,
    allowlist: &LabelAllowlist,
    logs: &LogFacts,
    gpus_watched: bool,
) -> Target {
    let info = &c.info;
    let (rate, last) = match logs.by_id.get(info.id.as_str()) {
        Some((r, l)) => (*r, Some(*l)),
        None => (None, None),
    };
    let src = ContainerSource {
        c,
        log_matches_per_minute: rate,
        last_log_match: last,
        gpus_watched,
    };
    let mut labels = labels::owned(|f| c.identity_labels(allowlist, f));
    labels.sort();
    Target {
        scope: Scope::Container,
        key: format!("container/{}", info.id),
        name: info.name.clone(),
        labels,
        selectors: info.labels.clone(),
        values: CONTAINER.iter().map(|d| (d.get)(&src)).collect(),
    }
}

fn plain_target(
    scope: Scope,
    key: String,
    name: String,
    labels: Vec<(String, String)>,
    values: Vec<Value>,
) -> Target {
    let mut labels = labels;
    labels.sort();
    Target {
        scope,
        key,
        name,
        selectors: labels.iter().cloned().collect(),
        labels,
        values,
    }
}

/// The host target.
pub fn host_target(h: &HostStats, node: &NodeFacts, now: f64, hostname: &str) -> Target {
    let src = HostSource { h, now, node };
    plain_target(
        Scope::Host,
        "host".into(),
        hostname.into(),
        vec![("instance".into(), hostname.into())],
        HOST.iter().map(|d| (d.get)(&src)).collect(),
    )
}

/// A filesystem target, labelled as its `node_filesystem_*` series; `fill_eta_seconds` from
/// the engine's history.
pub fn filesystem_target(f: &Filesystem, fill_eta_seconds: Option<f64>) -> Target {
    let src = FsSource {
        f,
        fill_eta_seconds,
    };
    plain_target(
        Scope::Filesystem,
        format!("filesystem/{}", f.mountpoint),
        f.mountpoint.clone(),
        labels::owned(|v| f.identity_labels(v)),
        FILESYSTEM.iter().map(|d| (d.get)(&src)).collect(),
    )
}

/// A GPU target, labelled as its DCGM series.
pub fn gpu_target(g: &Gpu, hostname: &str) -> Target {
    plain_target(
        Scope::Gpu,
        format!("gpu/{}", g.uuid),
        g.uuid.clone(),
        labels::owned(|v| g.identity_labels(hostname, v)),
        GPU.iter().map(|d| (d.get)(g)).collect(),
    )
}

/// Every target of a snapshot whose scope is present, stopped containers included (a
/// ContainerDown rule needs them). `prev` gives the rates (log matches, context switches, OOM
/// kills); `fill` the filesystems' free-space history.
pub fn targets(
    snap: &Snapshot,
    prev: Option<&Snapshot>,
    hostname: &str,
    fill: &FillHistory,
) -> Vec<Target> {
    let mut out = Vec::with_capacity(snap.containers.len() + snap.filesystems.len() + 8);
    if present(snap, Scope::Container) {
        let logs = LogFacts::new(snap, prev);
        let gpus = !snap.gpu.gpus.is_empty();
        out.extend(
            snap.containers
                .iter()
                .map(|c| container_target(c, &snap.label_allowlist, &logs, gpus)),
        );
    }
    if let (true, Some(h)) = (present(snap, Scope::Host), &snap.host) {
        let node = NodeFacts::new(snap, prev);
        out.push(host_target(h, &node, snap.taken_at, hostname));
    }
    if present(snap, Scope::Filesystem) {
        out.extend(
            snap.filesystems
                .iter()
                .map(|f| filesystem_target(f, fill.eta(&f.mountpoint, snap.taken_at))),
        );
    }
    if present(snap, Scope::Gpu) {
        out.extend(
            snap.gpu
                .gpus
                .iter()
                .map(|g| gpu_target(g, &snap.gpu.hostname)),
        );
    }
    out
}

/// A container's target between cycles (on a Docker event): Docker's fresh facts, with the
/// resource readings of the last snapshot while it is still running.
pub fn container_between_cycles(
    info: &crate::snapshot::ContainerInfo,
    last: &Snapshot,
    now: f64,
) -> Container {
    let prev = last.container(&info.id).filter(|c| c.info.id == info.id);
    let running = info.state == State::Running;
    match prev {
        Some(p) if running && p.info.pid == info.pid => Container {
            info: info.clone(),
            stats: p.stats.clone(),
            derived: p.derived.clone(),
        },
        _ => {
            let mut c = Container {
                info: info.clone(),
                stats: None,
                derived: Default::default(),
            };
            c.derived = crate::snapshot::Derived::compute(
                &c,
                None,
                now,
                last.host_cpus,
                last.host_memory_bytes,
            );
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{
        CollectorStatus, ContainerInfo, ContainerStats, Derived, LastMatch, LogCounts, LogPart,
        MemoryStats,
    };

    fn status(name: &'static str, success: bool) -> CollectorStatus {
        CollectorStatus {
            success,
            ..CollectorStatus::succeeded(name)
        }
    }

    fn container(name: &str, running: bool) -> Container {
        let mut labels = BTreeMap::new();
        labels.insert("com.docker.compose.project".to_string(), "shop".to_string());
        labels.insert("other".to_string(), "x".to_string());
        Container {
            info: ContainerInfo {
                id: format!("{name}-id"),
                name: name.into(),
                image: "img".into(),
                labels,
                state: if running {
                    State::Running
                } else {
                    State::Exited
                },
                exit_code: if running { 0 } else { 137 },
                pid: if running { 42 } else { 0 },
                ..Default::default()
            },
            stats: running.then(|| ContainerStats {
                memory: Some(MemoryStats {
                    working_set: 1000,
                    ..Default::default()
                }),
                pids: Some(3),
                ..Default::default()
            }),
            derived: Derived {
                cpu_percent: running.then_some(55.5),
                ..Default::default()
            },
        }
    }

    fn snap() -> Snapshot {
        Snapshot {
            taken_at: 1000.0,
            containers: vec![container("web", true), container("job", false)],
            collectors: vec![status("docker", true), status("disk", false)],
            label_allowlist: std::sync::Arc::new(LabelAllowlist::new(&[
                "com.docker.compose.project".into(),
            ])),
            host: Some(Box::new(HostStats {
                load1: 1.5,
                boot_time: 400.0,
                ..Default::default()
            })),
            filesystems: vec![Filesystem {
                mountpoint: "/".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn tables_and_names_agree() {
        for scope in Scope::ALL {
            let docs = scope.docs();
            let names = scope.names().names;
            assert_eq!(docs.len(), names.len(), "{scope:?}");
            for (d, n) in docs.iter().zip(names) {
                assert_eq!(d.0, *n);
            }
            assert_eq!(scope.sample().len(), names.len());
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        let md = markdown_table();
        assert!(md.contains("| `cpu_percent` | number | CPU use; 100 = one full core"));
        assert!(md.contains("**filesystem**"));
    }

    /// rules/README.md lists the variables between markers; it must equal `markdown_table()`.
    /// `LOOKOUT_WRITE_README=1 cargo test --lib rules_readme` rewrites that section.
    #[test]
    fn rules_readme_lists_the_variables() {
        // Both the user guide and rules/README.md carry the generated list.
        for file in ["README.md", "rules/README.md"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let (start, end) = ("<!-- variables:start -->\n", "<!-- variables:end -->");
            let a = text.find(start).expect("start marker") + start.len();
            let b = text.find(end).expect("end marker");
            let table = markdown_table();
            if std::env::var("LOOKOUT_WRITE_README").as_deref() == Ok("1") {
                let new = format!("{}{table}{}", &text[..a], &text[b..]);
                std::fs::write(&path, new).unwrap();
                continue;
            }
            assert_eq!(
                &text[a..b],
                table,
                "{file}'s variables differ from the code; rewrite them with \
                 LOOKOUT_WRITE_README=1 cargo test --lib rules_readme"
            );
        }
    }

    #[test]
    fn targets_of_a_snapshot() {
        let s = snap();
        let t = targets(&s, None, "box", &FillHistory::default());
        // Two containers (the stopped one too) and the host; the disk collector failed, so
        // no filesystem targets; no GPU collector.
        let keys: Vec<&str> = t.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["container/web-id", "container/job-id", "host"]);
        let web = &t[0];
        assert_eq!(
            web.labels,
            vec![
                (
                    "container_label_com_docker_compose_project".into(),
                    "shop".into()
                ),
                // The cgroup path, as on the container's series.
                ("id".into(), "/docker/web-id".into()),
                ("image".into(), "img".into()),
                ("name".into(), "web".into()),
            ]
        );
        assert_eq!(web.get("cpu_percent"), Some(&Value::Float(55.5)));
        assert_eq!(web.get("memory_bytes"), Some(&Value::Float(1000.0)));
        assert_eq!(web.get("state"), Some(&Value::String("running".into())));
        assert_eq!(web.get("gpu_memory_bytes"), Some(&Value::Empty));
        assert_eq!(web.selectors.get("other").map(String::as_str), Some("x"));
        let job = &t[1];
        // Not running: it uses nothing (known), rather than an unknown reading.
        assert_eq!(job.get("cpu_percent"), Some(&Value::Float(0.0)));
        assert_eq!(job.get("exit_code"), Some(&Value::Float(137.0)));
        assert_eq!(job.get("pids"), Some(&Value::Float(0.0)));
        let host = &t[2];
        assert_eq!(host.labels, vec![("instance".into(), "box".into())]);
        assert_eq!(host.get("load1"), Some(&Value::Float(1.5)));
        assert_eq!(host.get("uptime_seconds"), Some(&Value::Float(600.0)));
        assert_eq!(host.get("memory_percent"), Some(&Value::Empty));
        assert_eq!(host.get("swap_percent"), Some(&Value::Float(0.0)));
    }

    #[test]
    fn fs_usage_bytes_is_the_last_complete_measurement_or_unknown() {
        let mut s = snap();
        s.containers[0].derived.fs_usage = Some(crate::snapshot::LayerUsage {
            device: "/dev/sda1".into(),
            usage_bytes: 5 << 20,
            ..Default::default()
        });
        let t = targets(&s, None, "box", &FillHistory::default());
        assert_eq!(t[0].get("fs_usage_bytes"), Some(&Value::Float(5242880.0)));
        // Not measured (yet, or not running, or another storage driver): unknown, not 0.
        assert_eq!(t[1].get("fs_usage_bytes"), Some(&Value::Empty));
    }

    #[test]
    fn probe_ok_is_the_last_result_or_unknown() {
        let mut s = snap();
        let result = |success| crate::snapshot::ProbeResult {
            container_id: "web-id".into(),
            success,
            ..Default::default()
        };
        s.containers[0].derived.probe = Some(result(true));
        let t = targets(&s, None, "box", &FillHistory::default());
        assert_eq!(t[0].get("probe_ok"), Some(&Value::Boolean(true)));
        // No probe (or no result yet): unknown, so `probe_ok == false` does not fire.
        assert_eq!(t[1].get("probe_ok"), Some(&Value::Empty));
        s.containers[0].derived.probe = Some(result(false));
        let t = targets(&s, None, "box", &FillHistory::default());
        assert_eq!(t[0].get("probe_ok"), Some(&Value::Boolean(false)));
        // Between cycles, a container still running keeps its last result; a stopped one
        // has none.
        let c = container_between_cycles(&s.containers[0].info, &s, 1001.0);
        assert_eq!(c.derived.probe, Some(result(false)));
        let mut info = s.containers[0].info.clone();
        info.state = State::Exited;
        info.pid = 0;
        let c = container_between_cycles(&info, &s, 1001.0);
        assert_eq!(c.derived.probe, None);
    }

    #[test]
    fn a_failed_docker_collector_without_inventory_gives_no_container_targets() {
        let mut s = snap();
        s.collectors = vec![status("docker", false)];
        s.containers.clear();
        assert!(!present(&s, Scope::Container));
        // With its last known inventory, containers are still evaluated.
        let mut s = snap();
        s.collectors = vec![status("docker", false)];
        assert!(present(&s, Scope::Container));
    }

    #[test]
    fn filesystem_and_gpu_values() {
        let f = Filesystem {
            mountpoint: "/data".into(),
            device: "/dev/sdb1".into(),
            fstype: "ext4".into(),
            size_bytes: 1000,
            free_bytes: 200,
            avail_bytes: 100,
            files: 50,
            files_free: 40,
            ..Default::default()
        };
        let t = filesystem_target(&f, None);
        // df: used 800 of (800 + 100).
        let Some(Value::Float(u)) = t.get("used_percent") else {
            panic!()
        };
        assert!((u - 800.0 * 100.0 / 900.0).abs() < 1e-9);
        assert_eq!(t.get("inodes_used_percent"), Some(&Value::Float(20.0)));
        assert_eq!(t.get("fill_eta_seconds"), Some(&Value::Empty));
        let filling = filesystem_target(&f, Some(3600.0));
        assert_eq!(filling.get("fill_eta_seconds"), Some(&Value::Float(3600.0)));
        let broken = filesystem_target(
            &Filesystem {
                device_error: true,
                ..f
            },
            Some(3600.0),
        );
        assert_eq!(broken.get("used_percent"), Some(&Value::Empty));
        assert_eq!(broken.get("fill_eta_seconds"), Some(&Value::Empty));
        let g = gpu_target(
            &Gpu {
                index: 1,
                uuid: "GPU-1".into(),
                name: "H100".into(),
                fb_used_mib: Some(10.0),
                fb_total_mib: Some(40.0),
                device: "nvidia1".into(),
                throttle_reasons: Some(0x44),
                ..Default::default()
            },
            "box",
        );
        assert_eq!(g.get("memory_used_percent"), Some(&Value::Float(25.0)));
        assert_eq!(g.get("throttle_reasons"), Some(&Value::Float(68.0)));
        let unknown = gpu_target(&Gpu::default(), "box");
        assert_eq!(unknown.get("throttle_reasons"), Some(&Value::Empty));
        assert_eq!(
            g.get("memory_used_bytes"),
            Some(&Value::Float(10.0 * 1048576.0))
        );
        assert_eq!(g.get("power_watts"), Some(&Value::Empty));
        // DCGM's label set, as the GPU's series carry it (sorted).
        assert_eq!(
            g.labels,
            vec![
                ("Hostname".into(), "box".into()),
                ("UUID".into(), "GPU-1".into()),
                ("device".into(), "nvidia1".into()),
                ("gpu".into(), "1".into()),
                ("modelName".into(), "H100".into()),
                ("pci_bus_id".into(), String::new()),
            ]
        );
    }

    #[test]
    fn log_rate_from_two_snapshots() {
        let mut prev = snap();
        prev.taken_at = 970.0;
        prev.logs = LogPart {
            counts: vec![LogCounts {
                container_id: "web-id".into(),
                stream: "stdout",
                matches: 10,
                ..Default::default()
            }],
            last_matches: vec![],
            invalid_patterns: vec![],
        };
        let mut now = snap();
        now.logs = LogPart {
            counts: vec![
                LogCounts {
                    container_id: "web-id".into(),
                    stream: "stdout",
                    matches: 13,
                    ..Default::default()
                },
                LogCounts {
                    container_id: "web-id".into(),
                    stream: "stderr",
                    matches: 2,
                    ..Default::default()
                },
            ],
            last_matches: vec![LastMatch {
                container_id: "web-id".into(),
                line: "ERROR boom".into(),
                at: 999.0,
            }],
            invalid_patterns: vec![],
        };
        let t = targets(&now, Some(&prev), "box", &FillHistory::default());
        // (13 + 2 - 10) matches in 30 s = 10 per minute.
        assert_eq!(
            t[0].get("log_matches_per_minute"),
            Some(&Value::Float(10.0))
        );
        assert_eq!(
            t[0].get("last_log_match"),
            Some(&Value::String("ERROR boom".into()))
        );
        // Not followed: missing.
        assert_eq!(t[1].get("log_matches_per_minute"), Some(&Value::Empty));
        assert_eq!(t[1].get("last_log_match"), Some(&Value::Empty));
    }

    #[test]
    fn a_container_between_cycles_takes_docker_facts_and_last_readings() {
        let s = snap();
        let mut info = s.containers[0].info.clone();
        // Still running: the last readings apply.
        let c = container_between_cycles(&info, &s, 1001.0);
        assert_eq!(c.derived.cpu_percent, Some(55.5));
        // It died: no readings, the new state and exit code.
        info.state = State::Exited;
        info.exit_code = 137;
        info.pid = 0;
        let c = container_between_cycles(&info, &s, 1001.0);
        assert_eq!(c.derived.cpu_percent, None);
        assert!(c.stats.is_none());
        let t = container_target(&c, &LabelAllowlist::default(), &LogFacts::default(), false);
        assert_eq!(t.get("state"), Some(&Value::String("exited".into())));
        assert_eq!(t.get("exit_code"), Some(&Value::Float(137.0)));
    }
}
