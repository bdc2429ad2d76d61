//! Configuration: the embedded default, a YAML file, the environment, then flags.
//!
//! The file is parsed with `deny_unknown_fields` and then validated as a whole: every problem
//! is reported at once as `FILE:LINE:COL: message`. Precedence, lowest first: the embedded
//! default (`default.yml`), the file (`-c` or `LOOKOUT_CONFIG`), the environment
//! (`LOOKOUT_LISTEN`, `LOOKOUT_INTERVAL`, `DOCKER_HOST`), and flags.

mod duration;
mod glob;
pub mod receivers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

pub use duration::{format_duration, parse_duration};
pub use glob::{check_path as check_path_glob, NameFilter};

use crate::exposition::sanitize_label_name;
use crate::yamlloc::{self, Located, Locations, Pos};

/// The embedded default configuration; every key is documented there.
pub const DEFAULT_YAML: &str = include_str!("default.yml");

/// node_exporter's default mount-point exclusion.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default filesystem-type exclusion.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

/// The file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    interval: Option<String>,
    collector_timeout: Option<String>,
    paths: Option<RawPaths>,
    docker: Option<RawDocker>,
    collectors: Option<RawCollectors>,
    rule_files: Option<Vec<String>>,
    state_dir: Option<String>,
    web: Option<RawWeb>,
    receivers: Option<Vec<receivers::RawReceiver>>,
    route: Option<receivers::RawRoute>,
    inhibit_rules: Option<Vec<receivers::RawInhibit>>,
    actions: Option<RawActions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActions {
    enabled: Option<bool>,
    dry_run: Option<bool>,
    require_label: Option<String>,
    max_per_minute: Option<u32>,
}

/// `actions:`: whether failover actions run at all, and their host-wide guardrails.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionsConfig {
    pub enabled: bool,
    /// Log and notify what would be done; do nothing.
    pub dry_run: bool,
    /// Opt-in: act only on containers with this label (`key=value`, or `key` for any value);
    /// empty: every container but those labelled `lookout.actions=off`.
    pub require_label: String,
    /// Host-wide budget: at most this many actions in any minute.
    pub max_per_minute: u32,
}

impl Default for ActionsConfig {
    fn default() -> ActionsConfig {
        ActionsConfig {
            enabled: true,
            dry_run: false,
            require_label: String::new(),
            max_per_minute: 10,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    telemetry_path: Option<String>,
    max_connections: Option<u64>,
    read_header_timeout: Option<String>,
    idle_timeout: Option<String>,
    request_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    procfs: Option<String>,
    sysfs: Option<String>,
    rootfs: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocker {
    host: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    labels: Option<Vec<String>>,
    resync: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollectors {
    docker: Option<bool>,
    cgroup: Option<bool>,
    host: Option<bool>,
    disk: Option<RawDisk>,
    gpu: Option<RawGpu>,
    logs: Option<Vec<RawLogRule>>,
    probe: Option<bool>,
    probe_interval: Option<String>,
    textfile: Option<RawTextfile>,
    fs_usage: Option<bool>,
    fs_usage_interval: Option<String>,
    fs_usage_budget: Option<String>,
    stat: Option<bool>,
    filefd: Option<bool>,
    vmstat: Option<bool>,
    sockstat: Option<bool>,
    netstat: Option<bool>,
    time: Option<bool>,
    timex: Option<bool>,
    entropy: Option<bool>,
    conntrack: Option<bool>,
    softnet: Option<bool>,
    schedstat: Option<bool>,
    arp: Option<bool>,
    cpufreq: Option<bool>,
    thermal_zone: Option<bool>,
    hwmon: Option<bool>,
    netclass: Option<bool>,
    edac: Option<bool>,
    mdadm: Option<bool>,
    bonding: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDisk {
    Enabled(bool),
    Settings(RawDiskSettings),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiskSettings {
    enabled: Option<bool>,
    mount_points_exclude: Option<String>,
    fs_types_exclude: Option<String>,
    statfs_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTextfile {
    Enabled(bool),
    Settings(RawTextfileSettings),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTextfileSettings {
    enabled: Option<bool>,
    directory: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawGpu {
    Bool(bool),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogRule {
    #[serde(rename = "match")]
    matcher: RawLogMatch,
    pattern: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogMatch {
    name: String,
}

/// Where lookout reads the host's filesystems (node_exporter's `--path.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    /// The host's /proc (e.g. `/host/proc` in a container).
    pub procfs: PathBuf,
    /// The host's /sys.
    pub sysfs: PathBuf,
    /// The host's / (mount points are reported without this prefix).
    pub rootfs: PathBuf,
}

/// Which containers to watch and how to reach Docker.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `unix:///var/run/docker.sock` or `tcp://host:2375`.
    pub host: String,
    /// Container-name globs to watch, and to skip.
    pub filter: NameFilter,
    /// Docker labels exported as `container_label_<name>`: keys, and globs over keys
    /// (`com.docker.compose.*`, `*`) that export every label they match.
    pub labels: Vec<String>,
    /// How often the inventory is fully re-listed besides following events.
    pub resync: Duration,
}

/// Whether to use NVIDIA GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuMode {
    /// Use them when libnvidia-ml is present; silent otherwise.
    Auto,
    /// Require them: a missing library is a collector failure.
    On,
    Off,
}

/// The disk collector's settings.
#[derive(Debug, Clone)]
pub struct DiskConfig {
    pub enabled: bool,
    pub mount_points_exclude: Regex,
    pub fs_types_exclude: Regex,
    /// A statfs slower than this marks the mount `device_error` and skips it until it answers.
    pub statfs_timeout: Duration,
}

/// node_exporter's textfile collector (`collectors.textfile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextfileConfig {
    pub enabled: bool,
    /// Where the `*.prom` files are (`collectors.textfile.directory`, or node_exporter's flag
    /// `--collector.textfile.directory`); None, node_exporter's default: nothing is read, and
    /// `node_textfile_scrape_error` is 0.
    pub directory: Option<PathBuf>,
}

/// Follow the logs of containers whose name matches, counting lines that match `pattern`.
#[derive(Debug, Clone)]
pub struct LogRule {
    pub name: NameFilter,
    pub pattern: Regex,
}

/// Which collectors run: `collectors:` in the file, then `--collector.<name>`,
/// `--no-collector.<name>` and `--collector.disable-defaults` (node_exporter's flags).
#[derive(Debug, Clone)]
pub struct CollectorsConfig {
    pub docker: bool,
    pub cgroup: bool,
    pub host: bool,
    pub disk: DiskConfig,
    pub gpu: GpuMode,
    /// The log rules (`collectors.logs` in the file); containers can also opt in by label.
    pub logs: Vec<LogRule>,
    /// Whether container logs are followed at all (`--no-collector.logs` turns it off; the file
    /// has no switch, since `collectors.logs` is the list of rules).
    pub logs_enabled: bool,
    /// Whether containers with the label `lookout.probe` are probed (`collectors.probe`).
    pub probe: bool,
    /// How often each container's probe runs (`collectors.probe_interval`, at least
    /// [`MIN_PROBE_INTERVAL`]); a probe times out after this or 10 s, whichever is shorter.
    pub probe_interval: Duration,
    /// node_exporter's textfile collector.
    pub textfile: TextfileConfig,
    /// Whether running containers' writable layers are measured (`collectors.fs_usage`):
    /// cAdvisor's `container_fs_usage_bytes` and its filesystem's size and inodes.
    pub fs_usage: bool,
    /// How often (`collectors.fs_usage_interval`, at least [`MIN_FS_USAGE_INTERVAL`]): walking
    /// every file of every layer is the costliest thing lookout does, so it has its own slow
    /// cadence instead of the collection interval.
    pub fs_usage_interval: Duration,
    /// The most time one pass over all the layers may take (`collectors.fs_usage_budget`, at
    /// most the interval); containers it did not reach keep their last complete figures.
    pub fs_usage_budget: Duration,
    /// The node_exporter-style collectors (`collectors.stat`, `collectors.filefd`, ...).
    pub node: NodeCollectors,
}

/// The shortest `collectors.probe_interval`.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest `collectors.fs_usage_interval`.
pub const MIN_FS_USAGE_INTERVAL: Duration = Duration::from_secs(1);

/// The collector names the `--collector.<name>` flags take, in the order lookout lists them.
pub const COLLECTOR_NAMES: &[&str] = &[
    "docker",
    "cgroup",
    "host",
    "disk",
    "gpu",
    "logs",
    "probe",
    "textfile",
    "fs_usage",
    "stat",
    "filefd",
    "vmstat",
    "sockstat",
    "netstat",
    "time",
    "timex",
    "entropy",
    "conntrack",
    "softnet",
    "schedstat",
    "arp",
    "cpufreq",
    "thermal_zone",
    "hwmon",
    "netclass",
    "edac",
    "mdadm",
    "bonding",
];

/// The node_exporter-style collectors (each one of node_exporter's, under its name) that read
/// `paths` alone, the tail of [`COLLECTOR_NAMES`]; each is on unless turned off. (`textfile`, also
/// node_exporter's, has a setting of its own, its directory, and so a config of its own.)
pub const NODE_COLLECTOR_NAMES: &[&str] = COLLECTOR_NAMES.split_at(9).1;

/// Which node_exporter-style collectors ([`NODE_COLLECTOR_NAMES`]) run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCollectors {
    on: [bool; NODE_COLLECTOR_NAMES.len()],
}

impl Default for NodeCollectors {
    /// All on, as in node_exporter.
    fn default() -> NodeCollectors {
        NodeCollectors {
            on: [true; NODE_COLLECTOR_NAMES.len()],
        }
    }
}

impl NodeCollectors {
    /// All off (`--collector.disable-defaults`).
    pub fn none() -> NodeCollectors {
        NodeCollectors {
            on: [false; NODE_COLLECTOR_NAMES.len()],
        }
    }

    /// Whether `name` runs (false for a name that is not one of them).
    pub fn enabled(&self, name: &str) -> bool {
        NODE_COLLECTOR_NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.on[i])
    }

    /// Turn `name` on or off; false when it is not one of them.
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        match NODE_COLLECTOR_NAMES.iter().position(|n| *n == name) {
            Some(i) => {
                self.on[i] = on;
                true
            }
            None => false,
        }
    }

    /// The names of those that run, in [`NODE_COLLECTOR_NAMES`]'s order.
    pub fn enabled_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        NODE_COLLECTOR_NAMES
            .iter()
            .zip(self.on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
    }
}

/// lookout's own HTTP paths, which the telemetry path may not take (besides `/api/...` and
/// `/-/...`, which are reserved whole).
pub const RESERVED_PATHS: &[&str] = &[
    "/",
    "/health",
    "/healthz",
    "/ready",
    "/-/healthy",
    "/-/ready",
    "/-/reload",
];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any (rule-file globs are relative to it).
    pub source: Option<PathBuf>,
    /// `host:port` to serve HTTP on.
    pub listen: String,
    /// How often a snapshot is collected.
    pub interval: Duration,
    /// Each collector's deadline per cycle.
    pub collector_timeout: Duration,
    pub paths: Paths,
    pub docker: DockerConfig,
    pub collectors: CollectorsConfig,
    /// Rule-file globs; None loads the embedded default rules.
    pub rule_files: Option<Vec<String>>,
    /// Where alert state is kept across restarts; None picks the default.
    pub state_dir: Option<PathBuf>,
    /// The HTTP server's settings.
    pub web: WebConfig,
    /// The command-line values it was loaded with, so a reload applies them again.
    pub overrides: Overrides,
    /// Receivers, the routing tree and inhibition rules (a reload applies them).
    pub notify: receivers::NotifyConfig,
    /// Failover actions' switches and guardrails (a reload applies them).
    pub actions: ActionsConfig,
}

impl Config {
    /// What differs from `new` that only a restart applies (a reload takes the rest: rules,
    /// interval, collector timeout, the container filter and the exported labels). The web
    /// server's settings and the set of collectors are fixed when lookout starts.
    pub fn needs_restart(&self, new: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        let (a, b) = (&self.collectors, &new.collectors);
        let logs = |c: &CollectorsConfig| {
            c.logs
                .iter()
                .map(|r| (r.name.patterns.clone(), r.pattern.as_str().to_string()))
                .collect::<Vec<_>>()
        };
        let (w, v) = (&self.web, &new.web);
        let checks: [(&'static str, bool); 21] = [
            ("listen", self.listen != new.listen),
            ("paths", self.paths != new.paths),
            ("docker.host", self.docker.host != new.docker.host),
            ("docker.resync", self.docker.resync != new.docker.resync),
            ("collectors.docker", a.docker != b.docker),
            ("collectors.cgroup", a.cgroup != b.cgroup),
            ("collectors.host", a.host != b.host),
            (
                "collectors.disk",
                a.disk.enabled != b.disk.enabled
                    || a.disk.mount_points_exclude.as_str() != b.disk.mount_points_exclude.as_str()
                    || a.disk.fs_types_exclude.as_str() != b.disk.fs_types_exclude.as_str()
                    || a.disk.statfs_timeout != b.disk.statfs_timeout,
            ),
            ("collectors.gpu", a.gpu != b.gpu),
            (
                "collectors.logs",
                logs(a) != logs(b) || a.logs_enabled != b.logs_enabled,
            ),
            (
                "collectors.probe",
                a.probe != b.probe || a.probe_interval != b.probe_interval,
            ),
            ("collectors.textfile", a.textfile != b.textfile),
            (
                "collectors.fs_usage",
                a.fs_usage != b.fs_usage
                    || a.fs_usage_interval != b.fs_usage_interval
                    || a.fs_usage_budget != b.fs_usage_budget,
            ),
            (
                "collectors (node_exporter's: stat, filefd, ...)",
                a.node != b.node,
            ),
            ("state_dir", self.state_dir != new.state_dir),
            ("config file", self.source != new.source),
            ("web.telemetry_path", w.telemetry_path != v.telemetry_path),
            (
                "web.max_connections",
                w.max_connections != v.max_connections,
            ),
            (
                "web.read_header_timeout",
                w.read_header_timeout != v.read_header_timeout,
            ),
            ("web.idle_timeout", w.idle_timeout != v.idle_timeout),
            (
                "web.request_timeout",
                w.request_timeout != v.request_timeout,
            ),
        ];
        for (name, changed) in checks {
            if changed {
                out.push(name);
            }
        }
        out
    }
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `--web.listen-address`.
    pub listen: Option<String>,
    pub interval: Option<String>,
    pub procfs: Option<String>,
    pub sysfs: Option<String>,
    pub rootfs: Option<String>,
    pub docker_host: Option<String>,
    /// `--web.telemetry-path`.
    pub telemetry_path: Option<String>,
    /// `--web.enable-lifecycle`: allow `POST /-/reload`.
    pub enable_lifecycle: bool,
    /// `--web.max-connections`.
    pub max_connections: Option<String>,
    /// `--web.read-header-timeout`.
    pub read_header_timeout: Option<String>,
    /// `--web.idle-timeout`.
    pub idle_timeout: Option<String>,
    /// `--web.request-timeout`.
    pub request_timeout: Option<String>,
    /// `--collector.<name>` (true) and `--no-collector.<name>` (false), in the order given.
    pub collectors: Vec<(String, bool)>,
    /// `--collector.fs_usage.interval`.
    pub fs_usage_interval: Option<String>,
    /// `--collector.fs_usage.budget`.
    pub fs_usage_budget: Option<String>,
    /// `--collector.disable-defaults`: every collector off unless enabled by a flag.
    pub disable_defaults: bool,
    /// `--collector.textfile.directory` (empty: none).
    pub textfile_directory: Option<String>,
}

/// The HTTP server's settings: `web:` in the file, each key overridden by its `--web.*` flag
/// (node_exporter's and Prometheus's names); a change needs a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// Path the exposition is served on (`--web.telemetry-path`, default `/metrics`).
    pub telemetry_path: String,
    /// Whether `POST /-/reload` is allowed (`--web.enable-lifecycle`); SIGHUP always works.
    pub enable_lifecycle: bool,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// A client must send a request's headers within this time.
    pub read_header_timeout: Duration,
    /// A keep-alive connection without a request for this long is closed.
    pub idle_timeout: Duration,
    /// A request must be answered within this time (the response fully written).
    pub request_timeout: Duration,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            telemetry_path: "/metrics".into(),
            enable_lifecycle: false,
            max_connections: 1024,
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// One or more problems, each located.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Located>,
}

impl Config {
    /// The embedded default, with environment and flags applied.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut raw = parse("<embedded default>", DEFAULT_YAML, &mut problems)
            .map(|(r, _)| r)
            .unwrap_or_default();
        let mut locs = Locations::default();
        let mut name = "<embedded default>".to_string();
        if let Some(path) = file {
            name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    if let Some((user, l)) = parse(&name, &text, &mut problems) {
                        raw = merge(raw, user);
                        locs = l;
                    }
                }
                Err(e) => problems.push(Located {
                    file: name.clone(),
                    pos: Pos { line: 1, col: 1 },
                    message: format!("cannot read config file: {e}"),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let mut v = Validator {
            file: name,
            locs,
            problems: Vec::new(),
        };
        let cfg = v.build(raw, file, env, flags);
        match cfg {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(ConfigError {
                problems: v.problems,
            }),
        }
    }

    /// Load using the process environment.
    pub fn load_from_env(file: Option<&Path>, flags: &Overrides) -> Result<Config, ConfigError> {
        Config::load(
            file,
            &|k| std::env::var(k).ok().filter(|v| !v.is_empty()),
            flags,
        )
    }
}

fn parse(name: &str, text: &str, problems: &mut Vec<Located>) -> Option<(RawConfig, Locations)> {
    let locs = Locations::index(text);
    if text.trim().is_empty() {
        return Some((RawConfig::default(), locs));
    }
    match serde_yaml::from_str::<Option<RawConfig>>(text) {
        Ok(r) => Some((r.unwrap_or_default(), locs)),
        Err(e) => {
            problems.push(yamlloc::from_serde(name, &e, &locs, ""));
            None
        }
    }
}

/// Overlay `user` on `base`, key by key.
fn merge(base: RawConfig, user: RawConfig) -> RawConfig {
    let bp = base.paths.unwrap_or_default();
    let up = user.paths.unwrap_or_default();
    let bd = base.docker.unwrap_or_default();
    let ud = user.docker.unwrap_or_default();
    let bc = base.collectors.unwrap_or_default();
    let uc = user.collectors.unwrap_or_default();
    let bw = base.web.unwrap_or_default();
    let uw = user.web.unwrap_or_default();
    RawConfig {
        listen: user.listen.or(base.listen),
        interval: user.interval.or(base.interval),
        collector_timeout: user.collector_timeout.or(base.collector_timeout),
        paths: Some(RawPaths {
            procfs: up.procfs.or(bp.procfs),
            sysfs: up.sysfs.or(bp.sysfs),
            rootfs: up.rootfs.or(bp.rootfs),
        }),
        docker: Some(RawDocker {
            host: ud.host.or(bd.host),
            include: ud.include.or(bd.include),
            exclude: ud.exclude.or(bd.exclude),
            labels: ud.labels.or(bd.labels),
            resync: ud.resync.or(bd.resync),
        }),
        collectors: Some(RawCollectors {
            docker: uc.docker.or(bc.docker),
            cgroup: uc.cgroup.or(bc.cgroup),
            host: uc.host.or(bc.host),
            disk: uc.disk.or(bc.disk),
            gpu: uc.gpu.or(bc.gpu),
            logs: uc.logs.or(bc.logs),
            probe: uc.probe.or(bc.probe),
            probe_interval: uc.probe_interval.or(bc.probe_interval),
            textfile: uc.textfile.or(bc.textfile),
            fs_usage: uc.fs_usage.or(bc.fs_usage),
            fs_usage_interval: uc.fs_usage_interval.or(bc.fs_usage_interval),
            fs_usage_budget: uc.fs_usage_budget.or(bc.fs_usage_budget),
            stat: uc.stat.or(bc.stat),
            filefd: uc.filefd.or(bc.filefd),
            vmstat: uc.vmstat.or(bc.vmstat),
            sockstat: uc.sockstat.or(bc.sockstat),
            netstat: uc.netstat.or(bc.netstat),
            time: uc.time.or(bc.time),
            timex: uc.timex.or(bc.timex),
            entropy: uc.entropy.or(bc.entropy),
            conntrack: uc.conntrack.or(bc.conntrack),
            softnet: uc.softnet.or(bc.softnet),
            schedstat: uc.schedstat.or(bc.schedstat),
            arp: uc.arp.or(bc.arp),
            cpufreq: uc.cpufreq.or(bc.cpufreq),
            thermal_zone: uc.thermal_zone.or(bc.thermal_zone),
            hwmon: uc.hwmon.or(bc.hwmon),
            netclass: uc.netclass.or(bc.netclass),
            edac: uc.edac.or(bc.edac),
            mdadm: uc.mdadm.or(bc.mdadm),
            bonding: uc.bonding.or(bc.bonding),
        }),
        rule_files: user.rule_files.or(base.rule_files),
        state_dir: user.state_dir.or(base.state_dir),
        web: Some(RawWeb {
            telemetry_path: uw.telemetry_path.or(bw.telemetry_path),
            max_connections: uw.max_connections.or(bw.max_connections),
            read_header_timeout: uw.read_header_timeout.or(bw.read_header_timeout),
            idle_timeout: uw.idle_timeout.or(bw.idle_timeout),
            request_timeout: uw.request_timeout.or(bw.request_timeout),
        }),
        receivers: user.receivers.or(base.receivers),
        route: user.route.or(base.route),
        inhibit_rules: user.inhibit_rules.or(base.inhibit_rules),
        actions: user.actions.or(base.actions),
    }
}

struct Validator {
    file: String,
    locs: Locations,
    problems: Vec<Located>,
}

impl Validator {
    fn at(&mut self, path: &str, message: String) {
        let pos = self.locs.value(path);
        self.problems.push(Located {
            file: self.file.clone(),
            pos,
            message,
        });
    }

    /// A problem from the environment or a flag: no file location.
    fn outside(&mut self, origin: &str, message: String) {
        self.problems.push(Located {
            file: origin.to_string(),
            pos: Pos { line: 0, col: 0 },
            message,
        });
    }

    fn duration(&mut self, path: &str, s: &str) -> Option<Duration> {
        match parse_duration(s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.at(path, format!("{path}: {e}"));
                None
            }
        }
    }

    /// A duration from the file that must be at least `min` (more than zero when `min` is
    /// zero); `example` is a sensible value to suggest.
    fn duration_min(
        &mut self,
        path: &str,
        s: &str,
        min: Duration,
        example: &str,
    ) -> Option<Duration> {
        let d = self.duration(path, s)?;
        match check_min(d, min, example) {
            Ok(()) => Some(d),
            Err(e) => {
                self.at(path, format!("{path}: {e}"));
                None
            }
        }
    }

    fn regex(&mut self, path: &str, s: &str) -> Option<Regex> {
        match Regex::new(s) {
            Ok(r) => Some(r),
            Err(e) => {
                let first = regex_error(&e);
                self.at(
                    path,
                    format!("{path}: invalid regular expression {s:?}: {first}"),
                );
                None
            }
        }
    }

    fn globs(&mut self, path: &str, list: &[String]) -> Vec<String> {
        let mut ok = Vec::new();
        for (i, g) in list.iter().enumerate() {
            match glob::check(g) {
                Ok(()) => ok.push(g.clone()),
                Err(e) => self.at(
                    &yamlloc::join_index(path, i),
                    format!("{path}[{i}]: invalid glob {g:?}: {e}"),
                ),
            }
        }
        ok
    }

    /// `docker.labels`: no empty entry, no invalid glob, nothing listed twice, and no two keys
    /// that become the same Prometheus label (a series with a label twice makes Prometheus
    /// reject the whole scrape). Between a glob's matches and other labels that cannot be known
    /// here; [`crate::snapshot::LabelAllowlist`] settles it when labels are rendered.
    fn labels(&mut self, labels: &[String]) {
        // Each exported label name of a listed key, and the entry that first gave it.
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, l) in labels.iter().enumerate() {
            let path = format!("docker.labels[{i}]");
            if l.is_empty() {
                self.at(&path, format!("{path}: empty label name"));
                continue;
            }
            if let Some(j) = labels[..i].iter().position(|e| e == l) {
                self.at(
                    &path,
                    format!("{path}: {l:?} is already listed as docker.labels[{j}]"),
                );
                continue;
            }
            if crate::snapshot::is_label_glob(l) {
                if let Err(e) = glob::check(l) {
                    self.at(
                        &path,
                        format!("{path}: invalid glob {l:?}: {e} (e.g. com.docker.compose.* or *)"),
                    );
                }
                continue;
            }
            let name = format!("container_label_{}", sanitize_label_name(l));
            match seen.get(&name) {
                Some(&j) => self.at(
                    &path,
                    format!(
                        "{path}: {l:?} and docker.labels[{j}] {:?} both become the label \
                         {name}; list only one of them",
                        labels[j]
                    ),
                ),
                None => {
                    seen.insert(name, i);
                }
            }
        }
    }

    /// `collectors.fs_usage_interval` and `collectors.fs_usage_budget`, each overridden by its
    /// flag; the budget may not exceed the interval (passes never overlap, so a longer budget
    /// would only stretch the interval).
    fn fs_usage_cadence(
        &mut self,
        interval: Option<String>,
        budget: Option<String>,
        flags: &Overrides,
    ) -> (Duration, Duration) {
        let mut out = [Duration::from_secs(300), Duration::from_secs(30)];
        let mut origin: [Option<&'static str>; 2] = [None, None];
        let before = self.problems.len();
        for (i, key, flag, file, over, min, example) in [
            (
                0,
                "collectors.fs_usage_interval",
                "--collector.fs_usage.interval",
                interval,
                &flags.fs_usage_interval,
                MIN_FS_USAGE_INTERVAL,
                "5m",
            ),
            (
                1,
                "collectors.fs_usage_budget",
                "--collector.fs_usage.budget",
                budget,
                &flags.fs_usage_budget,
                Duration::ZERO,
                "30s",
            ),
        ] {
            if let Some(d) = file.and_then(|s| self.duration_min(key, &s, min, example)) {
                out[i] = d;
            }
            if let Some(v) = over {
                match parse_duration(v).and_then(|d| check_min(d, min, example).map(|()| d)) {
                    Ok(d) => {
                        out[i] = d;
                        origin[i] = Some(flag);
                    }
                    Err(e) => self.outside(flag, format!("{flag} {v:?}: {e}")),
                }
            }
        }
        let [interval, budget] = out;
        // Compared only when both were read (a bad one is reported already).
        if budget > interval && self.problems.len() == before {
            let msg = format!(
                "the fs_usage budget ({}) may not exceed its interval ({}); e.g. 30s for 5m",
                format_duration(budget),
                format_duration(interval)
            );
            match origin[1].or(origin[0]) {
                Some(flag) => self.outside(flag, format!("{flag}: {msg}")),
                None => self.at(
                    "collectors.fs_usage_budget",
                    format!("collectors.fs_usage_budget: {msg}"),
                ),
            }
        }
        (interval, budget)
    }

    /// `web:` from the file, each key overridden by its `--web.*` flag; `enable_lifecycle`
    /// comes from its flag alone (as in Prometheus: the file cannot open the reload endpoint).
    fn web(&mut self, raw: RawWeb, flags: &Overrides) -> WebConfig {
        let mut web = WebConfig {
            enable_lifecycle: flags.enable_lifecycle,
            ..WebConfig::default()
        };

        let path = "web.telemetry_path";
        if let Some(p) = raw.telemetry_path {
            match check_telemetry_path(&p) {
                Ok(()) => web.telemetry_path = p,
                Err(e) => self.at(path, format!("{path}: {e}")),
            }
        }
        if let Some(p) = &flags.telemetry_path {
            let origin = "--web.telemetry-path";
            match check_telemetry_path(p) {
                Ok(()) => web.telemetry_path = p.clone(),
                Err(e) => self.outside(origin, format!("{origin} {p:?}: {e}")),
            }
        }

        let path = "web.max_connections";
        let at_least_one = "must be at least 1 (e.g. 1024)";
        match raw.max_connections {
            Some(0) => self.at(path, format!("{path}: {at_least_one}, got 0")),
            Some(n) => web.max_connections = usize::try_from(n).unwrap_or(usize::MAX),
            None => {}
        }
        if let Some(v) = &flags.max_connections {
            let origin = "--web.max-connections";
            match v.trim().parse::<usize>() {
                Ok(0) => self.outside(origin, format!("{origin} {v:?}: {at_least_one}")),
                Ok(n) => web.max_connections = n,
                Err(_) => self.outside(
                    origin,
                    format!("{origin} {v:?}: expected a whole number of at least 1 (e.g. 1024)"),
                ),
            }
        }

        for (key, flag, file, over, slot, example) in [
            (
                "web.read_header_timeout",
                "--web.read-header-timeout",
                raw.read_header_timeout,
                &flags.read_header_timeout,
                &mut web.read_header_timeout,
                "10s",
            ),
            (
                "web.idle_timeout",
                "--web.idle-timeout",
                raw.idle_timeout,
                &flags.idle_timeout,
                &mut web.idle_timeout,
                "60s",
            ),
            (
                "web.request_timeout",
                "--web.request-timeout",
                raw.request_timeout,
                &flags.request_timeout,
                &mut web.request_timeout,
                "30s",
            ),
        ] {
            if let Some(d) = file.and_then(|s| self.duration_min(key, &s, Duration::ZERO, example))
            {
                *slot = d;
            }
            if let Some(v) = over {
                match parse_duration(v)
                    .and_then(|d| check_min(d, Duration::ZERO, example).map(|()| d))
                {
                    Ok(d) => *slot = d,
                    Err(e) => self.outside(flag, format!("{flag} {v:?}: {e}")),
                }
            }
        }
        web
    }

    /// `--collector.disable-defaults`, then each `--collector.<name>` / `--no-collector.<name>`
    /// in the order given, over the file's `collectors:`.
    fn collector_flags(&mut self, c: &mut CollectorsConfig, flags: &Overrides) {
        // What the file asked of the GPU: enabling it by flag restores `true` (required), and
        // otherwise means `auto`, so that a host without GPUs is no failure.
        let file_gpu = c.gpu;
        if flags.disable_defaults {
            c.docker = false;
            c.cgroup = false;
            c.host = false;
            c.disk.enabled = false;
            c.gpu = GpuMode::Off;
            c.logs_enabled = false;
            c.probe = false;
            c.textfile.enabled = false;
            c.fs_usage = false;
            c.node = NodeCollectors::none();
        }
        for (name, on) in &flags.collectors {
            let on = *on;
            match name.as_str() {
                "docker" => c.docker = on,
                "cgroup" => c.cgroup = on,
                "host" => c.host = on,
                "disk" => c.disk.enabled = on,
                "gpu" => {
                    c.gpu = match (on, file_gpu) {
                        (false, _) => GpuMode::Off,
                        (true, GpuMode::On) => GpuMode::On,
                        (true, _) => GpuMode::Auto,
                    }
                }
                "logs" => c.logs_enabled = on,
                "probe" => c.probe = on,
                "textfile" => c.textfile.enabled = on,
                "fs_usage" => c.fs_usage = on,
                other if c.node.set(other, on) => {}
                _ => {
                    let origin = format!("--{}collector.{name}", if on { "" } else { "no-" });
                    self.outside(
                        &origin,
                        format!(
                            "{origin}: unknown collector; expected one of {}",
                            COLLECTOR_NAMES.join(", ")
                        ),
                    );
                }
            }
        }
    }

    fn build(
        &mut self,
        raw: RawConfig,
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Option<Config> {
        // listen: file < LOOKOUT_LISTEN < --listen
        let mut listen = raw.listen.unwrap_or_else(|| "0.0.0.0:9659".into());
        if let Err(e) = check_listen(&listen) {
            self.at("listen", format!("listen: {e}"));
        }
        if let Some(l) = env("LOOKOUT_LISTEN") {
            if let Err(e) = check_listen(&l) {
                self.outside("LOOKOUT_LISTEN", format!("LOOKOUT_LISTEN={l:?}: {e}"));
            }
            listen = l;
        }
        if let Some(l) = &flags.listen {
            if let Err(e) = check_listen(l) {
                self.outside("--listen", format!("--listen {l:?}: {e}"));
            }
            listen = l.clone();
        }

        let mut interval = raw
            .interval
            .as_deref()
            .and_then(|s| self.duration("interval", s))
            .unwrap_or(Duration::from_secs(10));
        // Where the interval in force came from: None for the file.
        let mut interval_origin = None;
        for (origin, val) in [
            ("LOOKOUT_INTERVAL", env("LOOKOUT_INTERVAL")),
            ("--interval", flags.interval.clone()),
        ] {
            if let Some(v) = val {
                match parse_duration(&v) {
                    Ok(d) => {
                        interval = d;
                        interval_origin = Some(origin);
                    }
                    Err(e) => self.outside(origin, format!("{origin} {v:?}: {e}")),
                }
            }
        }
        if interval < Duration::from_millis(100) {
            let msg = format!("must be at least 100ms, got {}", format_duration(interval));
            match interval_origin {
                Some(origin) => self.outside(origin, format!("{origin}: {msg}")),
                None => self.at("interval", format!("interval: {msg}")),
            }
        }
        let collector_timeout = match raw.collector_timeout.as_deref() {
            Some(s) => self
                .duration_min("collector_timeout", s, Duration::ZERO, "5s")
                .unwrap_or(Duration::from_secs(5)),
            None => (interval.mul_f64(0.8)).min(Duration::from_secs(5)),
        };

        let p = raw.paths.unwrap_or_default();
        let paths = Paths {
            procfs: flags
                .procfs
                .clone()
                .or(p.procfs)
                .unwrap_or_else(|| "/proc".into())
                .into(),
            sysfs: flags
                .sysfs
                .clone()
                .or(p.sysfs)
                .unwrap_or_else(|| "/sys".into())
                .into(),
            rootfs: flags
                .rootfs
                .clone()
                .or(p.rootfs)
                .unwrap_or_else(|| "/".into())
                .into(),
        };

        let d = raw.docker.unwrap_or_default();
        let mut host = d
            .host
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let mut host_origin = None;
        if let Some(h) = env("DOCKER_HOST") {
            host = h;
            host_origin = Some("DOCKER_HOST");
        }
        if let Some(h) = &flags.docker_host {
            host = h.clone();
            host_origin = Some("--docker.host");
        }
        if let Err(e) = check_docker_host(&host) {
            match host_origin {
                Some(origin) => self.outside(origin, format!("{origin}: {e}")),
                None => self.at("docker.host", format!("docker.host: {e}")),
            }
        }
        let include = self.globs(
            "docker.include",
            d.include.as_deref().unwrap_or(&["*".to_string()]),
        );
        let exclude = self.globs("docker.exclude", d.exclude.as_deref().unwrap_or(&[]));
        let labels = d.labels.unwrap_or_default();
        self.labels(&labels);
        let resync = d
            .resync
            .as_deref()
            .and_then(|s| self.duration_min("docker.resync", s, MIN_RESYNC, "60s"))
            .unwrap_or(Duration::from_secs(60));

        let c = raw.collectors.unwrap_or_default();
        let disk_settings = match c.disk {
            None => RawDiskSettings::default(),
            Some(RawDisk::Enabled(b)) => RawDiskSettings {
                enabled: Some(b),
                ..Default::default()
            },
            Some(RawDisk::Settings(s)) => s,
        };
        let mpe = disk_settings
            .mount_points_exclude
            .as_deref()
            .unwrap_or(DEFAULT_MOUNT_POINTS_EXCLUDE)
            .to_string();
        let fte = disk_settings
            .fs_types_exclude
            .as_deref()
            .unwrap_or(DEFAULT_FS_TYPES_EXCLUDE)
            .to_string();
        let mount_points_exclude = self.regex("collectors.disk.mount_points_exclude", &mpe);
        let fs_types_exclude = self.regex("collectors.disk.fs_types_exclude", &fte);
        let statfs_timeout = disk_settings
            .statfs_timeout
            .as_deref()
            .and_then(|s| {
                self.duration_min("collectors.disk.statfs_timeout", s, Duration::ZERO, "1s")
            })
            .unwrap_or(Duration::from_secs(1));
        let gpu = match c.gpu {
            None => GpuMode::Auto,
            Some(RawGpu::Bool(true)) => GpuMode::On,
            Some(RawGpu::Bool(false)) => GpuMode::Off,
            Some(RawGpu::Word(w)) => match w.as_str() {
                "auto" => GpuMode::Auto,
                "true" | "on" => GpuMode::On,
                "false" | "off" => GpuMode::Off,
                _ => {
                    self.at(
                        "collectors.gpu",
                        format!("collectors.gpu: expected auto, true or false; got {w:?}"),
                    );
                    GpuMode::Auto
                }
            },
        };
        let mut logs = Vec::new();
        for (i, r) in c.logs.unwrap_or_default().into_iter().enumerate() {
            let base = format!("collectors.logs[{i}]");
            let name = match glob::check(&r.matcher.name) {
                Ok(()) => Some(NameFilter::new(std::slice::from_ref(&r.matcher.name), &[])),
                Err(e) => {
                    self.at(
                        &format!("{base}.match.name"),
                        format!("{base}.match.name: invalid glob {:?}: {e}", r.matcher.name),
                    );
                    None
                }
            };
            let pattern = self.regex(&format!("{base}.pattern"), &r.pattern);
            if let (Some(name), Some(pattern)) = (name, pattern) {
                logs.push(LogRule { name, pattern });
            }
        }

        let probe_interval = c
            .probe_interval
            .as_deref()
            .and_then(|s| {
                self.duration_min("collectors.probe_interval", s, MIN_PROBE_INTERVAL, "30s")
            })
            .unwrap_or(Duration::from_secs(30));
        let (fs_usage_interval, fs_usage_budget) =
            self.fs_usage_cadence(c.fs_usage_interval, c.fs_usage_budget, flags);

        let textfile = match c.textfile {
            None => RawTextfileSettings::default(),
            Some(RawTextfile::Enabled(b)) => RawTextfileSettings {
                enabled: Some(b),
                ..Default::default()
            },
            Some(RawTextfile::Settings(s)) => s,
        };
        // The flag over the file; empty is none, as node_exporter's default.
        let textfile = TextfileConfig {
            enabled: textfile.enabled.unwrap_or(true),
            directory: flags
                .textfile_directory
                .clone()
                .or(textfile.directory)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        };

        let mut node = NodeCollectors::default();
        for (name, on) in [
            ("stat", c.stat),
            ("filefd", c.filefd),
            ("vmstat", c.vmstat),
            ("sockstat", c.sockstat),
            ("netstat", c.netstat),
            ("time", c.time),
            ("timex", c.timex),
            ("entropy", c.entropy),
            ("conntrack", c.conntrack),
            ("softnet", c.softnet),
            ("schedstat", c.schedstat),
            ("arp", c.arp),
            ("cpufreq", c.cpufreq),
            ("thermal_zone", c.thermal_zone),
            ("hwmon", c.hwmon),
            ("netclass", c.netclass),
            ("edac", c.edac),
            ("mdadm", c.mdadm),
            ("bonding", c.bonding),
        ] {
            if let Some(on) = on {
                node.set(name, on);
            }
        }

        let state_dir = raw.state_dir.map(PathBuf::from);
        if let Some(rf) = &raw.rule_files {
            for (i, g) in rf.iter().enumerate() {
                if let Err(e) = glob::check_path(g) {
                    self.at(
                        &format!("rule_files[{i}]"),
                        format!("rule_files[{i}]: invalid glob {g:?}: {e}"),
                    );
                }
            }
        }

        let web = self.web(raw.web.unwrap_or_default(), flags);
        let notify = self.notify(
            raw.receivers.unwrap_or_default(),
            raw.route,
            raw.inhibit_rules.unwrap_or_default(),
            env,
        );
        let mut collectors = CollectorsConfig {
            docker: c.docker.unwrap_or(true),
            cgroup: c.cgroup.unwrap_or(true),
            host: c.host.unwrap_or(true),
            disk: DiskConfig {
                enabled: disk_settings.enabled.unwrap_or(true),
                mount_points_exclude: mount_points_exclude?,
                fs_types_exclude: fs_types_exclude?,
                statfs_timeout,
            },
            gpu,
            logs,
            logs_enabled: true,
            probe: c.probe.unwrap_or(true),
            probe_interval,
            textfile,
            fs_usage: c.fs_usage.unwrap_or(true),
            fs_usage_interval,
            fs_usage_budget,
            node,
        };
        self.collector_flags(&mut collectors, flags);
        let a = raw.actions.unwrap_or_default();
        let actions = ActionsConfig {
            enabled: a.enabled.unwrap_or(true),
            dry_run: a.dry_run.unwrap_or(false),
            require_label: a.require_label.unwrap_or_default(),
            max_per_minute: match a.max_per_minute {
                Some(0) => {
                    self.at(
                        "actions.max_per_minute",
                        "actions.max_per_minute: must be at least 1 (e.g. 10); set enabled: false to turn actions off".into(),
                    );
                    10
                }
                Some(n) => n,
                None => 10,
            },
        };
        Some(Config {
            actions,
            notify,
            web,
            overrides: flags.clone(),
            source: file.map(Path::to_path_buf),
            listen,
            interval,
            collector_timeout,
            paths,
            docker: DockerConfig {
                host,
                filter: NameFilter::new(&include, &exclude),
                labels,
                resync,
            },
            collectors,
            rule_files: raw.rule_files,
            state_dir,
        })
    }
}

/// A telemetry path: absolute, plain (a router would read `{x}`, `*` or `:x` as a pattern),
/// and none of lookout's own.
pub fn check_telemetry_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!(
            "expected a path starting with / (e.g. /metrics); got {p:?}"
        ));
    }
    if let Some(c) = p
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "{}*:?#".contains(*c))
    {
        return Err(format!(
            "expected a plain path such as /metrics, without {c:?}; got {p:?}"
        ));
    }
    let reserved = RESERVED_PATHS.contains(&p)
        || p == "/api"
        || p.starts_with("/api/")
        || p.starts_with("/-/");
    if reserved {
        return Err(format!(
            "{p:?} is one of lookout's own paths ({}, /api/..., /-/...); e.g. /metrics",
            RESERVED_PATHS.join(", ")
        ));
    }
    Ok(())
}

/// The shortest `docker.resync`: a full re-list of the inventory more often than this is load
/// on the daemon for nothing (events keep the inventory current in between).
pub const MIN_RESYNC: Duration = Duration::from_secs(1);

/// `d` is at least `min`, or (with `min` zero) more than zero; else what was expected.
fn check_min(d: Duration, min: Duration, example: &str) -> Result<(), String> {
    if min.is_zero() && d.is_zero() {
        return Err(format!("must be more than 0s (e.g. {example})"));
    }
    if d < min {
        return Err(format!(
            "must be at least {} (e.g. {example}), got {}",
            format_duration(min),
            format_duration(d)
        ));
    }
    Ok(())
}

/// A regex compile error in one line: the regex crate's own message ends with the reason after
/// a drawing of the pattern.
pub fn regex_error(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// `host:port`, `[v6]:port` or `:port`.
pub fn check_listen(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("expected host:port (e.g. 0.0.0.0:9659); got {s:?}"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "invalid port {port:?} in {s:?} (e.g. 0.0.0.0:9659)"
        ));
    }
    if host.contains(' ') {
        return Err(format!("invalid host {host:?} in {s:?}"));
    }
    Ok(())
}

/// Normalise `:port` to `0.0.0.0:port` for binding.
pub fn bind_address(listen: &str) -> String {
    if listen.starts_with(':') {
        format!("0.0.0.0{listen}")
    } else {
        listen.to_string()
    }
}

fn check_docker_host(s: &str) -> Result<(), String> {
    if let Some(p) = s.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(format!(
                "empty socket path in {s:?} (e.g. unix:///var/run/docker.sock)"
            ));
        }
        return Ok(());
    }
    if let Some(rest) = s
        .strip_prefix("tcp://")
        .or_else(|| s.strip_prefix("http://"))
    {
        return check_listen(rest.trim_end_matches('/')).map_err(|_| {
            format!("expected tcp://host:port (e.g. tcp://127.0.0.1:2375); got {s:?}")
        });
    }
    Err(format!(
        "expected unix:///path/to/docker.sock or tcp://host:port; got {s:?}"
    ))
}

#[cfg(test)]
mod tests;
