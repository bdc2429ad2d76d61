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
lookout doctor                   diagnose Docker socket, cgroups and /proc, /sys mounts\n\n\
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
    /// Address to listen on, host:port [env: LOOKOUT_LISTEN; default 0.0.0.0:9659].
    #[arg(long = "listen", global = true, value_name = "ADDR")]
    listen: Option<String>,
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
}

#[derive(Subcommand)]
enum Command {
    /// Run the exporter (the default when no command is given).
    Run,
    /// Validate the config file and its rule files; print every problem as FILE:LINE:COL:
    /// message; exit 1 if any.
    Check,
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
}

fn overrides(g: &Global) -> Overrides {
    Overrides {
        listen: g.listen.clone(),
        interval: g.interval.clone(),
        procfs: g.procfs.clone(),
        sysfs: g.sysfs.clone(),
        rootfs: g.rootfs.clone(),
        docker_host: g.docker_host.clone(),
        ..Default::default()
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
        Command::Check => {
            let name = g
                .config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "<embedded default>".into());
            match load(&g) {
                Ok(cfg) => check_rules(&name, &cfg),
                Err(code) => code,
            }
        }
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
            init_tracing(g.log_level.as_deref(), g.log_format);
            let cfg = match load(&g) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = runtime();
            let result = rt.block_on(serve(cfg));
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
    match rules {
        Some((summary, receivers)) => {
            println!("{summary}");
            if !receivers.is_empty() {
                println!(
                    "notify receivers used: {} (warning: nothing delivers them yet)",
                    receivers.join(", ")
                );
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

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let addr = config::bind_address(&cfg.listen);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {addr} (is another lookout or exporter already using the port? \
             choose another with --listen or LOOKOUT_LISTEN)"
            )
        })?;
    lookout::run(cfg, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
