//! The `lookout` binary: parse the command line, set up logging, load the config, then hand over
//! to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lookout::config::{self, Config, Overrides};

#[derive(Parser)]
#[command(
    name = "lookout",
    version,
    about = "Container, host, disk and GPU metrics for Docker hosts, served on Prometheus /metrics.",
    long_about = "lookout watches every Docker container (through the Docker API and the container's own \
cgroups) and serves cAdvisor-compatible series on /metrics, plus its own lookout_* facts.\n\n\
With no config file it runs on an embedded default: listen on 0.0.0.0:9659, collect every 10s, \
talk to unix:///var/run/docker.sock. Precedence: the embedded default < the config file \
(-c or LOOKOUT_CONFIG) < environment (LOOKOUT_LISTEN, LOOKOUT_INTERVAL, DOCKER_HOST) < flags.",
    after_help = "Examples:\n  lookout                          run with the embedded default\n  \
lookout -c /etc/lookout.yml run  run with a config file\n  \
lookout check -c lookout.yml     validate a config and its rules (FILE:LINE:COL: message)\n  \
lookout test-rules rules/tests/*.yml   run rule unit tests\n  \
lookout once | grep container_   one collection, printed as Prometheus text\n  \
lookout doctor                   diagnose Docker socket, cgroups and /proc, /sys mounts\n  \
lookout healthcheck              exit 0 if the running lookout is live and ready (HEALTHCHECK)\n\n\
In a container: mount /var/run/docker.sock, and the host's /proc, /sys and / read-only at \
/host/proc, /host/sys and /host, then pass --path.procfs=/host/proc --path.sysfs=/host/sys \
--path.rootfs=/host."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone, Default)]
struct Global {
    /// Config file (YAML). Without one, the embedded default is used.
    #[arg(
        short = 'c',
        long = "config",
        env = "LOOKOUT_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Address to listen on, host:port [env: LOOKOUT_LISTEN; default 0.0.0.0:9659]. `--listen`
    /// is the same flag.
    #[arg(
        long = "web.listen-address",
        visible_alias = "listen",
        global = true,
        value_name = "ADDR"
    )]
    listen: Option<String>,
    /// Path under which to expose metrics [default /metrics].
    #[arg(long = "web.telemetry-path", global = true, value_name = "PATH")]
    telemetry_path: Option<String>,
    /// Enable reload over HTTP (POST /-/reload), as Prometheus does. SIGHUP always reloads.
    #[arg(long = "web.enable-lifecycle", global = true)]
    enable_lifecycle: bool,
    /// Most HTTP connections served at once [default 1024].
    #[arg(long = "web.max-connections", global = true, value_name = "N")]
    max_connections: Option<String>,
    /// A client must send its request headers within this time [default 10s].
    #[arg(
        long = "web.read-header-timeout",
        global = true,
        value_name = "DURATION"
    )]
    read_header_timeout: Option<String>,
    /// An idle keep-alive connection is closed after this time [default 60s].
    #[arg(long = "web.idle-timeout", global = true, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// A request must be answered within this time [default 30s].
    #[arg(long = "web.request-timeout", global = true, value_name = "DURATION")]
    request_timeout: Option<String>,
    /// Collection interval, e.g. 10s or 1m [env: LOOKOUT_INTERVAL; default 10s].
    #[arg(long = "interval", global = true, value_name = "DURATION")]
    interval: Option<String>,
    /// The host's /proc [default /proc].
    #[arg(long = "path.procfs", global = true, value_name = "PATH")]
    procfs: Option<String>,
    /// The host's /sys [default /sys].
    #[arg(long = "path.sysfs", global = true, value_name = "PATH")]
    sysfs: Option<String>,
    /// The host's root filesystem [default /].
    #[arg(long = "path.rootfs", global = true, value_name = "PATH")]
    rootfs: Option<String>,
    /// Docker daemon address: unix:///path or tcp://host:port [env: DOCKER_HOST].
    #[arg(long = "docker.host", global = true, value_name = "URL")]
    docker_host: Option<String>,
    /// Log level or tracing filter (error, warn, info, debug, trace) [env: LOOKOUT_LOG].
    #[arg(long = "log.level", global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log line format: logfmt or json [default: logfmt, or a readable coloured layout when
    /// stderr is a terminal].
    #[arg(
        long = "log.format",
        env = "LOOKOUT_LOG_FORMAT",
        global = true,
        value_name = "FORMAT"
    )]
    log_format: Option<lookout::logging::LogFormat>,
    #[command(flatten)]
    collectors: CollectorFlags,
}

/// node_exporter's `--collector.<name>` / `--no-collector.<name>` flags.
#[derive(Args, Clone, Default)]
#[command(
    next_help_heading = "Collectors (node_exporter style; override `collectors:` in the config)"
)]
struct CollectorFlags {
    /// Turn every collector off, then on only those given with --collector.<name>.
    #[arg(long = "collector.disable-defaults", global = true)]
    disable_defaults: bool,
    /// Enable the docker collector (container inventory).
    #[arg(long = "collector.docker", global = true)]
    docker: bool,
    /// Disable the docker collector.
    #[arg(long = "no-collector.docker", global = true)]
    no_docker: bool,
    /// Enable the cgroup collector (container resources).
    #[arg(long = "collector.cgroup", global = true)]
    cgroup: bool,
    /// Disable the cgroup collector.
    #[arg(long = "no-collector.cgroup", global = true)]
    no_cgroup: bool,
    /// Enable the host collector (CPU, memory, load, network, disks I/O).
    #[arg(long = "collector.host", global = true)]
    host: bool,
    /// Disable the host collector.
    #[arg(long = "no-collector.host", global = true)]
    no_host: bool,
    /// Enable the disk collector (filesystems).
    #[arg(long = "collector.disk", global = true)]
    disk: bool,
    /// Disable the disk collector.
    #[arg(long = "no-collector.disk", global = true)]
    no_disk: bool,
    /// Enable the gpu collector (NVIDIA, through NVML).
    #[arg(long = "collector.gpu", global = true)]
    gpu: bool,
    /// Disable the gpu collector.
    #[arg(long = "no-collector.gpu", global = true)]
    no_gpu: bool,
    /// Enable the logs collector (container log lines and matches).
    #[arg(long = "collector.logs", global = true)]
    logs: bool,
    /// Disable the logs collector.
    #[arg(long = "no-collector.logs", global = true)]
    no_logs: bool,
    /// Enable the probe collector (active health probes, label lookout.probe).
    #[arg(long = "collector.probe", global = true)]
    probe: bool,
    /// Disable the probe collector.
    #[arg(long = "no-collector.probe", global = true)]
    no_probe: bool,
    /// Enable the textfile collector (node_exporter's: *.prom files from
    /// --collector.textfile.directory).
    #[arg(long = "collector.textfile", global = true)]
    textfile: bool,
    /// Disable the textfile collector.
    #[arg(long = "no-collector.textfile", global = true)]
    no_textfile: bool,
    /// Directory to read text files with metrics from (*.prom, the Prometheus text format),
    /// as node_exporter's flag [config: collectors.textfile.directory; default none].
    #[arg(
        long = "collector.textfile.directory",
        global = true,
        value_name = "DIR"
    )]
    textfile_directory: Option<String>,
    /// Enable the fs_usage collector (containers' writable-layer disk usage, cAdvisor's
    /// container_fs_usage_bytes).
    #[arg(long = "collector.fs_usage", global = true)]
    fs_usage: bool,
    /// Disable the fs_usage collector.
    #[arg(long = "no-collector.fs_usage", global = true)]
    no_fs_usage: bool,
    /// How often the fs_usage collector measures the writable layers [default 5m].
    #[arg(
        long = "collector.fs_usage.interval",
        global = true,
        value_name = "DURATION"
    )]
    fs_usage_interval: Option<String>,
    /// The most time one fs_usage pass over all the layers may take [default 30s].
    #[arg(
        long = "collector.fs_usage.budget",
        global = true,
        value_name = "DURATION"
    )]
    fs_usage_budget: Option<String>,
    #[command(flatten)]
    node: NodeCollectorFlags,
}

/// The flags of the node_exporter-style collectors: `--collector.<name>` and
/// `--no-collector.<name>` for each, and their `(name, on)` list.
macro_rules! node_collector_flags {
    ($($name:ident $no:ident $what:literal;)*) => {
        #[derive(Args, Clone, Default)]
        struct NodeCollectorFlags {
            $(
                #[arg(
                    long = concat!("collector.", stringify!($name)),
                    help = concat!("Enable the ", stringify!($name), " collector (", $what, ")"),
                    global = true
                )]
                $name: bool,
                #[arg(
                    long = concat!("no-collector.", stringify!($name)),
                    help = concat!("Disable the ", stringify!($name), " collector"),
                    global = true
                )]
                $no: bool,
            )*
        }

        impl NodeCollectorFlags {
            fn pairs(&self) -> Vec<(&'static str, bool, bool)> {
                vec![$((stringify!($name), self.$name, self.$no)),*]
            }
        }
    };
}

node_collector_flags! {
    stat no_stat "node_exporter's: context switches, interrupts, forks, processes";
    filefd no_filefd "node_exporter's: allocated file handles";
    vmstat no_vmstat "node_exporter's: paging, swapping, OOM kills";
    sockstat no_sockstat "node_exporter's: sockets in use per protocol";
    netstat no_netstat "node_exporter's: TCP, UDP, IP and ICMP counters";
    time no_time "node_exporter's: system time, time zone, clocksources";
    timex no_timex "node_exporter's: the kernel clock's discipline, through adjtimex";
    entropy no_entropy "node_exporter's: the kernel's entropy pool";
    conntrack no_conntrack "node_exporter's: netfilter connection tracking entries";
    softnet no_softnet "node_exporter's: per-CPU packet processing (processed, dropped, squeezed)";
    schedstat no_schedstat "node_exporter's: per-CPU scheduler run and wait time, timeslices";
    arp no_arp "node_exporter's: ARP table entries per device";
    cpufreq no_cpufreq "node_exporter's: CPU frequencies and governor (sysfs cpufreq)";
    thermal_zone no_thermal_zone "node_exporter's: thermal zone temperatures, cooling device states";
    hwmon no_hwmon "node_exporter's: hardware monitor chips (temperatures, fans, voltages)";
    netclass no_netclass "node_exporter's: network interface properties (sysfs class/net)";
    edac no_edac "node_exporter's: EDAC memory controller error counts";
    mdadm no_mdadm "node_exporter's: md software RAID arrays (/proc/mdstat)";
    bonding no_bonding "node_exporter's: bonded interfaces' configured and active slaves";
}

impl CollectorFlags {
    /// (collector, enabled) for each flag given.
    fn list(&self) -> Vec<(String, bool)> {
        let pairs = [
            ("docker", self.docker, self.no_docker),
            ("cgroup", self.cgroup, self.no_cgroup),
            ("host", self.host, self.no_host),
            ("disk", self.disk, self.no_disk),
            ("gpu", self.gpu, self.no_gpu),
            ("logs", self.logs, self.no_logs),
            ("probe", self.probe, self.no_probe),
            ("textfile", self.textfile, self.no_textfile),
            ("fs_usage", self.fs_usage, self.no_fs_usage),
        ];
        let mut out = Vec::new();
        for (name, on, off) in pairs.into_iter().chain(self.node.pairs()) {
            if on {
                out.push((name.to_string(), true));
            }
            if off {
                out.push((name.to_string(), false));
            }
        }
        out
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the exporter (the default when no command is given).
    Run,
    /// Validate the config file and its rule files; print every problem as FILE:LINE:COL:
    /// message; exit 1 if any. `check config FILE` and `check rules FILE...` as in promtool.
    Check {
        #[command(subcommand)]
        what: Option<CheckWhat>,
    },
    /// Run rule unit tests (see rules/README.md for the format); exit 1 on a mismatch.
    TestRules {
        /// Test files, e.g. rules/tests/*.yml.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Run one full collection and print the exposition (Prometheus text) to stdout.
    Once {
        /// Print OpenMetrics instead of the Prometheus text format 0.0.4.
        #[arg(long)]
        openmetrics: bool,
    },
    /// Diagnose the environment (Docker socket, API version, cgroups, /proc and /sys) and print fixes.
    Doctor,
    /// Manage the silences of a running lookout (amtool's idiom): add, list, expire.
    Silence {
        /// The running lookout's URL.
        #[arg(
            long = "url",
            env = "LOOKOUT_URL",
            default_value = "http://127.0.0.1:9659",
            global = true
        )]
        url: String,
        #[command(subcommand)]
        what: SilenceWhat,
    },
    /// Failover actions of a running lookout: restart, start or stop a container by hand, list
    /// what was done, reset a container lookout gave up on.
    Action {
        /// The running lookout's URL.
        #[arg(
            long = "url",
            env = "LOOKOUT_URL",
            default_value = "http://127.0.0.1:9659",
            global = true
        )]
        url: String,
        #[command(subcommand)]
        what: ActionWhat,
    },
    /// Exit 0 when the running lookout is live (/health) and ready (/ready), 1 otherwise: the
    /// image's HEALTHCHECK, in an image without curl.
    Healthcheck {
        /// The running lookout's URL [default: the address lookout listens on
        /// (--web.listen-address, LOOKOUT_LISTEN or the config's `listen`), on loopback when it
        /// listens on all addresses].
        #[arg(long = "url", env = "LOOKOUT_URL", value_name = "URL")]
        url: Option<String>,
        /// Ask /health (liveness) only, not /ready.
        #[arg(long = "liveness-only")]
        liveness_only: bool,
        /// Give up after this long, both requests together.
        #[arg(long = "timeout", default_value = "3s", value_name = "DURATION")]
        timeout: String,
    },
    /// Send a clearly marked test notification to a receiver of the config and print its answer.
    NotifyTest {
        /// The receiver's name (`receivers[].name` in the config).
        #[arg(value_name = "RECEIVER")]
        receiver: String,
    },
}

#[derive(Subcommand)]
enum ActionWhat {
    /// `docker restart` the container, through lookout (its guardrails apply).
    Restart { name: String },
    /// Start the container.
    Start { name: String },
    /// Stop the container.
    Stop { name: String },
    /// The audit trail (state_dir/actions.log), oldest first.
    #[command(visible_alias = "ls")]
    List,
    /// Forget a container's restart attempts (lookout gave up on it), or every container's.
    Reset { name: Option<String> },
}

#[derive(Subcommand)]
enum SilenceWhat {
    /// Silence the alerts matching every matcher, e.g. `lookout silence add 'name="web-1"'
    /// --for 2h --comment deploy`. Prints the silence's id.
    Add {
        /// Matchers: name="value", name!="value", name=~"regex", name!~"regex".
        #[arg(required = true, value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long the silence lasts, e.g. 30m, 2h, 1d.
        #[arg(
            long = "for",
            visible_alias = "duration",
            short = 'd',
            default_value = "1h"
        )]
        duration: String,
        /// Why (shown in the list).
        #[arg(long, short = 'm', default_value = "")]
        comment: String,
        /// Who [default: $USER].
        #[arg(long, short = 'a')]
        author: Option<String>,
    },
    /// List silences in effect or pending (with --all, expired ones too).
    #[command(visible_alias = "query", visible_alias = "ls")]
    List {
        #[arg(long)]
        all: bool,
    },
    /// End silences now.
    #[command(visible_alias = "rm")]
    Expire {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CheckWhat {
    /// Validate a config file and the rule files it names.
    Config {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Validate rule files.
    Rules {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn overrides(g: &Global) -> Overrides {
    Overrides {
        listen: g.listen.clone(),
        interval: g.interval.clone(),
        procfs: g.procfs.clone(),
        sysfs: g.sysfs.clone(),
        rootfs: g.rootfs.clone(),
        docker_host: g.docker_host.clone(),
        telemetry_path: g.telemetry_path.clone(),
        enable_lifecycle: g.enable_lifecycle,
        max_connections: g.max_connections.clone(),
        read_header_timeout: g.read_header_timeout.clone(),
        idle_timeout: g.idle_timeout.clone(),
        request_timeout: g.request_timeout.clone(),
        collectors: g.collectors.list(),
        fs_usage_interval: g.collectors.fs_usage_interval.clone(),
        fs_usage_budget: g.collectors.fs_usage_budget.clone(),
        disable_defaults: g.collectors.disable_defaults,
        textfile_directory: g.collectors.textfile_directory.clone(),
    }
}

fn init_tracing(level: Option<&str>, format: Option<lookout::logging::LogFormat>) {
    lookout::logging::init(level, format);
}

fn load(g: &Global) -> Result<Config, ExitCode> {
    Config::load_from_env(g.config.as_deref(), &overrides(g)).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

/// Fewer malloc arenas: lookout's allocations are a few large buffers per cycle, and glibc's
/// default of 8 arenas per core mostly adds resident memory.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let g = cli.global.clone();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check { what } => match what {
            None => check_config(&g, g.config.clone()),
            Some(CheckWhat::Config { file }) => check_config(&g, Some(file)),
            Some(CheckWhat::Rules { files }) => check_rule_files(&files),
        },
        Command::TestRules { files } => match lookout::engine::testing::run_test_files(&files) {
            Ok(report) => {
                print!("{report}");
                if report.passed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("lookout test-rules: {e}");
                ExitCode::from(1)
            }
        },
        Command::Doctor => {
            init_tracing(
                Some(g.log_level.as_deref().unwrap_or("error")),
                g.log_format,
            );
            let cfg = match load(&g) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = runtime();
            let report = rt.block_on(lookout::doctor::diagnose(&cfg));
            print!("{report}");
            if report.has_errors() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Silence { url, what } => {
            let rt = runtime();
            let r = rt.block_on(async {
                use lookout::notify::cli;
                match what {
                    SilenceWhat::Add {
                        matchers,
                        duration,
                        comment,
                        author,
                    } => {
                        let author = author
                            .or_else(|| std::env::var("USER").ok())
                            .unwrap_or_default();
                        let id =
                            cli::silence_add(&url, &matchers, &duration, &comment, &author).await?;
                        println!("{id}");
                        Ok(())
                    }
                    SilenceWhat::List { all } => {
                        print!("{}", cli::silence_list(&url, all).await?);
                        Ok(())
                    }
                    SilenceWhat::Expire { ids } => {
                        for id in ids {
                            cli::silence_expire(&url, &id).await?;
                            println!("expired {id}");
                        }
                        Ok::<(), anyhow::Error>(())
                    }
                }
            });
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lookout silence: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Action { url, what } => {
            let rt = runtime();
            let r: anyhow::Result<String> = rt.block_on(async {
                use lookout::act::cli;
                match what {
                    ActionWhat::Restart { name } => cli::manual(&url, "restart", &name).await,
                    ActionWhat::Start { name } => cli::manual(&url, "start", &name).await,
                    ActionWhat::Stop { name } => cli::manual(&url, "stop", &name).await,
                    ActionWhat::List => cli::list(&url).await,
                    ActionWhat::Reset { name } => cli::reset(&url, name.as_deref())
                        .await
                        .map(|n| format!("reset {n} container(s)")),
                }
            });
            match r {
                Ok(out) => {
                    let out = out.trim_end();
                    if !out.is_empty() {
                        println!("{out}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lookout action: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Healthcheck {
            url,
            liveness_only,
            timeout,
        } => healthcheck(&g, url, !liveness_only, &timeout),
        Command::NotifyTest { receiver } => {
            init_tracing(Some(g.log_level.as_deref().unwrap_or("warn")), g.log_format);
            let cfg = match load(&g) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = runtime();
            match rt.block_on(lookout::notify::cli::notify_test(&cfg, &receiver)) {
                Ok(answer) => {
                    println!("{answer}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lookout notify-test: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Once { openmetrics } => {
            init_tracing(Some(g.log_level.as_deref().unwrap_or("warn")), g.log_format);
            let cfg = match load(&g) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = runtime();
            match rt.block_on(lookout::collect_once(cfg)) {
                Ok(snap) => {
                    let fmt = if openmetrics {
                        lookout::exposition::Format::OpenMetrics
                    } else {
                        lookout::exposition::Format::Text
                    };
                    print!("{}", lookout::exposition::render(&snap, fmt));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("lookout once: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run => {
            // Signals first: a SIGHUP sent while lookout starts reloads it once it runs,
            // rather than killing it; SIGTERM and SIGINT stop it cleanly from now on.
            let rt = runtime();
            let signals = {
                let _enter = rt.enter();
                Signals::install()
            };
            init_tracing(g.log_level.as_deref(), g.log_format);
            let cfg = match load(&g) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let result = rt.block_on(serve(cfg, signals));
            // A blocking call that never returns (a wedged GPU) must not hold the exit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lookout: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// `lookout healthcheck`: 0 when live (and ready unless `ready` is false), 1 otherwise.
fn healthcheck(g: &Global, url: Option<String>, ready: bool, timeout: &str) -> ExitCode {
    let timeout = match config::parse_duration(timeout) {
        Ok(t) if !t.is_zero() => t,
        Ok(_) => {
            eprintln!("lookout healthcheck: --timeout must be more than 0 (e.g. 3s)");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("lookout healthcheck: --timeout {timeout:?}: {e}");
            return ExitCode::from(1);
        }
    };
    let url = match url {
        Some(u) => u,
        None => match load(g) {
            Ok(cfg) => lookout::healthcheck::url_for_listen(&cfg.listen),
            Err(code) => return code,
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let spec = lookout::healthcheck::Check {
        url,
        ready,
        timeout,
    };
    match rt.block_on(lookout::healthcheck::check(&spec)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lookout healthcheck: {e}");
            ExitCode::from(1)
        }
    }
}

/// `lookout check [config FILE]`: the config (every problem), then its rule files.
fn check_config(g: &Global, file: Option<PathBuf>) -> ExitCode {
    let name = file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<embedded default>".into());
    let mut g = g.clone();
    g.config = file;
    match load(&g) {
        Ok(cfg) => check_rules(&name, &cfg),
        Err(code) => code,
    }
}

/// `lookout check rules FILE...`: every problem of every file at once.
fn check_rule_files(files: &[PathBuf]) -> ExitCode {
    use lookout::engine::rule;
    let mut sources = Vec::new();
    let mut failed = false;
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => sources.push(rule::Source {
                name: f.display().to_string(),
                text,
            }),
            Err(e) => {
                eprintln!("{}:1:1: cannot read rule file: {e}", f.display());
                failed = true;
            }
        }
    }
    match rule::load(&sources) {
        Ok(l) => {
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            for s in &sources {
                let n = l.rules.iter().filter(|r| r.file == s.name).count();
                println!("{}: OK; {n} rules", s.name);
            }
        }
        Err(e) => {
            for w in &e.warnings {
                eprintln!("warning: {w}");
            }
            for err in &e.errors {
                eprintln!("{err}");
            }
            eprintln!("{} problems in the rule files", e.errors.len());
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `lookout check`'s rule half: every error and warning of the rule files, then a summary.
fn check_rules(config_name: &str, cfg: &Config) -> ExitCode {
    use lookout::engine::rule;
    let (rules, warnings, errors) = match rule::load_for(cfg) {
        Ok(l) => {
            let receivers = l.receivers();
            let summary = format!(
                "{config_name}: OK; {} rules from {}",
                l.rules.len(),
                if cfg.rule_files.is_none() {
                    "the embedded defaults".to_string()
                } else {
                    format!("{} files", l.files.len())
                }
            );
            (Some((summary, receivers)), l.warnings, Vec::new())
        }
        Err(e) => (None, e.warnings, e.errors),
    };
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    for e in &errors {
        eprintln!("{e}");
    }
    // The receivers the rules name must exist; each receiver's notifier must build.
    let mut receiver_errors = Vec::new();
    if let Ok(l) = rule::load_for(cfg) {
        let (errs, warns) = lookout::notify::cli::check_rule_receivers(cfg, &l);
        for w in warns {
            eprintln!("warning: {w}");
        }
        receiver_errors.extend(errs);
    }
    for r in &cfg.notify.receivers {
        if let Err(e) = lookout::notify::build(r) {
            receiver_errors.push(format!("{config_name}: receiver `{}`: {e}", r.name));
        }
    }
    if !cfg.notify.receivers.is_empty() {
        let names: Vec<String> = cfg
            .notify
            .receivers
            .iter()
            .map(|r| format!("{} ({})", r.name, r.kind.as_str()))
            .collect();
        println!("receivers: {}", names.join(", "));
    }
    for e in &receiver_errors {
        eprintln!("{e}");
    }
    if !receiver_errors.is_empty() && rules.is_some() {
        eprintln!("{} problems with the receivers", receiver_errors.len());
        return ExitCode::from(1);
    }
    match rules {
        Some((summary, receivers)) => {
            println!("{summary}");
            if !receivers.is_empty() {
                println!("notify receivers used: {}", receivers.join(", "));
            }
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("{} problems in the rule files", errors.len());
            ExitCode::from(1)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// SIGTERM, SIGINT and SIGHUP, registered with the OS when installed (inside the runtime).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }
}

async fn serve(cfg: Config, signals: Signals) -> anyhow::Result<()> {
    let Signals { term, int, hup } = signals;
    let reload = lookout::reload::Channel::new();
    if let Some(mut hup) = hup {
        let handle = reload.handle.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                handle.request(lookout::reload::Origin::Signal);
            }
        });
    }
    let addr = config::bind_address(&cfg.listen);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {addr} (is another lookout or exporter already using the port? \
             choose another with --web.listen-address or LOOKOUT_LISTEN)"
            )
        })?;
    let docker = lookout::app::docker_client(&cfg)?;
    let runtime = lookout::app::runtime_client(&cfg)?;
    let io = lookout::Io {
        listener,
        docker,
        reload,
        runtime: Some(runtime),
    };
    lookout::run(cfg, io, shutdown_signal(term, int)).await
}

async fn shutdown_signal(
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
) {
    let wait = |s: Option<tokio::signal::unix::Signal>| async move {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = wait(term) => {},
        _ = wait(int) => {},
    }
}
