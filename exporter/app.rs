//! Wiring: build the collectors, create the channels, start the tasks under the supervisor,
//! serve HTTP, and stop everything on one signal. Each task lives in its own module:
//!
//! ```text
//! docker watcher (collect::docker) ─► inventory ◄── collectors
//! collection loop (collect::cycle) ──snapshots──► engine task (engine::task) ──► seam ──► transition log
//!                                                     │  ▲                          └──► notifier (notify::dispatch)
//!                                                     │  │                               ──► outbox ──► senders
//!                              publishes to the board ▼  │ commands
//! HTTP (http) ── reads the board, sends reload requests ──► reload task (reload)
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::act::{self, runtime::Runtime};
use crate::collect::cgroup::CgroupCollector;
use crate::collect::cycle::{self, CollectLoop};
use crate::collect::disk::DiskCollector;
use crate::collect::docker::{self, DockerCollector, DockerState};
use crate::collect::fs_usage::FsUsageCollector;
use crate::collect::gpu::{self as gpu_collect, GpuCollector};
use crate::collect::host::{self, HostCollector};
use crate::collect::logs::LogCollector;
use crate::collect::node::NodeCollector;
use crate::collect::probe::ProbeCollector;
use crate::collect::textfile::TextfileCollector;
use crate::collect::{Collector, Runner};
use crate::config::{Config, GpuMode};
use crate::docker_api::{BollardDocker, DockerApi};
use crate::engine::journal;
use crate::engine::rule;
use crate::engine::seam::Seam;
use crate::engine::task::EngineTask;
use crate::http::{self, serve::Limits, HttpState};
use crate::notify::{self, dispatch::NotifyTask, outbox::Outbox, silence::Silences};
use crate::publish::Board;
use crate::reload::{self, Reloader};
use crate::snapshot::{LabelAllowlist, Snapshot};
use crate::state_dir::StateDir;
use crate::supervise::{Supervisor, TaskHealth};

/// How long tasks get to stop once the HTTP server has drained.
const TASK_GRACE: Duration = Duration::from_secs(1);

/// The collectors this config asks for, in the order they are listed everywhere. `state` is
/// where those that keep facts across restarts keep them (the GPU's last XIDs).
pub fn build_collectors(
    config: &Config,
    api: &Arc<dyn DockerApi>,
    docker: &Arc<DockerState>,
    state: &StateDir,
) -> Vec<Arc<dyn Collector>> {
    let mut out: Vec<Arc<dyn Collector>> = Vec::new();
    if config.collectors.docker {
        out.push(Arc::new(DockerCollector::new(docker.clone())));
    }
    if config.collectors.cgroup {
        out.push(Arc::new(CgroupCollector::new(
            docker.clone(),
            api.clone(),
            &config.paths.procfs,
            &config.paths.sysfs,
            config.interval,
        )));
    }
    if config.collectors.host {
        out.push(Arc::new(HostCollector::new(&config.paths.procfs)));
    }
    for name in config.collectors.node.enabled_names() {
        if let Some(c) = NodeCollector::new(name, &config.paths) {
            out.push(Arc::new(c));
        }
    }
    if config.collectors.disk.enabled {
        out.push(Arc::new(DiskCollector::new(
            &config.paths,
            &config.collectors.disk,
        )));
    }
    if config.collectors.gpu != GpuMode::Off {
        out.push(Arc::new(GpuCollector::new(
            config.collectors.gpu,
            gpu_collect::library_path(),
            &config.paths.procfs,
            state.clone(),
        )));
    }
    // With the Docker collector: any container can opt in with its label.
    if config.collectors.docker && config.collectors.logs_enabled {
        out.push(Arc::new(LogCollector::new(
            api.clone(),
            docker.clone(),
            &config.collectors.logs,
        )));
    }
    // With the Docker collector too: containers opt in with the label `lookout.probe`.
    if config.collectors.docker && config.collectors.probe {
        out.push(Arc::new(ProbeCollector::new(
            docker.clone(),
            config.collectors.probe_interval,
        )));
    }
    if config.collectors.textfile.enabled {
        out.push(Arc::new(TextfileCollector::new(
            config.collectors.textfile.directory.clone(),
        )));
    }
    // With the Docker collector too: the layers are found through its inventory.
    if config.collectors.docker && config.collectors.fs_usage {
        out.push(Arc::new(FsUsageCollector::new(
            docker.clone(),
            &config.paths,
            config.collectors.fs_usage_interval,
            config.collectors.fs_usage_budget,
        )));
    }
    out
}

/// What failover actions act through, for a config (`docker.host`).
pub fn runtime_client(config: &Config) -> anyhow::Result<Arc<dyn Runtime>> {
    Ok(Arc::new(BollardDocker::new(&config.docker.host)?))
}

/// The Docker client for a config (`docker.host`).
pub fn docker_client(config: &Config) -> anyhow::Result<Arc<dyn DockerApi>> {
    Ok(Arc::new(BollardDocker::new(&config.docker.host)?))
}

/// Run one full collection and return the snapshot (for `lookout once`).
pub async fn collect_once(config: Config) -> anyhow::Result<Snapshot> {
    let api = docker_client(&config)?;
    let state = DockerState::new(config.docker.filter.clone());
    let token = CancellationToken::new();
    let watcher = config.collectors.docker.then(|| {
        tokio::spawn(docker::watch(
            api.clone(),
            state.clone(),
            config.docker.resync,
            token.clone(),
        ))
    });
    if watcher.is_some() {
        cycle::wait_for_docker(&state, Duration::from_secs(5)).await;
    }
    // `once` reads no saved state and writes none.
    let mut runner = Runner::new(build_collectors(&config, &api, &state, &StateDir::none()));
    let labels = Arc::new(LabelAllowlist::new(&config.docker.labels));
    let snap = cycle::cycle(&mut runner, &config, &labels, None).await;
    token.cancel();
    Ok(snap)
}

/// What [`run`] takes from outside, so that tests can replace any of it: a bound listener
/// (tests bind `127.0.0.1:0`), the Docker API (a scripted fake), and the reload channel whose
/// handle `main` gave to its SIGHUP handler before anything else started.
pub struct Io {
    pub listener: tokio::net::TcpListener,
    pub docker: Arc<dyn DockerApi>,
    pub reload: reload::Channel,
    /// What failover actions act through; None: actions do not run.
    pub runtime: Option<Arc<dyn Runtime>>,
}

/// Run lookout until `shutdown` resolves: collect every interval, evaluate the rules, serve
/// HTTP on `io.listener`. Then stop every task: the HTTP drain is capped, and the tasks get
/// [`TASK_GRACE`] more.
pub async fn run(
    config: Config,
    io: Io,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let loaded = rule::load_for(&config).map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    for w in &loaded.warnings {
        tracing::warn!(warning = %w, "rules");
    }
    match notify::cli::validate(&config, &loaded) {
        Ok(warnings) => {
            for w in warnings {
                tracing::warn!(warning = %w, "receivers");
            }
        }
        Err(e) => anyhow::bail!("invalid receivers:\n{e}"),
    }
    tracing::info!(rules = loaded.rules.len(), files = ?loaded.files, "rules loaded");
    let state = StateDir::resolve(config.state_dir.as_deref());
    let hostname = host::hostname(&config.paths.procfs);
    let Io {
        listener,
        docker: api,
        reload: reload_channel,
        runtime,
    } = io;

    let health = Arc::new(TaskHealth::default());
    let token = CancellationToken::new();
    let mut sup = Supervisor::new(health.clone(), token.clone());
    let board = Board::new(config.interval, health);
    let docker = DockerState::with_facts(config.docker.filter.clone(), &state);
    let web = config.web.clone();
    let collectors_docker = config.collectors.docker;
    let resync = config.docker.resync;
    let (config_tx, config_rx) = watch::channel(Arc::new(config));

    if collectors_docker {
        let (api, docker) = (api.clone(), docker.clone());
        sup.spawn("docker", move |t| {
            docker::watch(api.clone(), docker.clone(), resync, t)
        });
    }

    // Transitions: the engine hands them to every consumer of the seam.
    let seam = Arc::new(Seam::new());
    let notify = notify::dispatch::Shared::new(
        Arc::new(Silences::load(&state)),
        Arc::new(Outbox::open(&state)),
        board.notify.clone(),
    );
    let external_url = format!("http://{hostname}:{}", listener.local_addr()?.port());
    let (announce_tx, announce_rx) = mpsc::unbounded_channel();
    let notifier = Arc::new(NotifyTask {
        deliveries: tokio::sync::Mutex::new(seam.subscribe("notify", 1024)),
        announcements: tokio::sync::Mutex::new(announce_rx),
        config: config_rx.clone(),
        shared: notify.clone(),
        docker: collectors_docker.then(|| (api.clone(), docker.clone())),
        build: Arc::new(notify::build),
        host: hostname.clone(),
        external_url,
    });
    sup.spawn("notify", move |t| notifier.clone().run(t));

    // Failover actions: a consumer of the seam too, announcing through the notifier.
    let actions = match runtime {
        Some(rt) => {
            let cfg = config_rx.borrow().clone();
            let handle = act::task::Handle::new(
                &cfg.actions,
                Arc::new(act::audit::Audit::open(state.dir())),
                rt,
                docker.clone(),
                announce_tx,
                act::task::own_container_id(&cfg.paths.procfs),
            );
            let task = Arc::new(act::task::ActTask {
                deliveries: tokio::sync::Mutex::new(seam.subscribe("act", 1024)),
                config: config_rx.clone(),
                handle: handle.clone(),
            });
            sup.spawn("act", move |t| task.clone().run(t));
            Some(handle)
        }
        None => None,
    };
    board.set_actions(actions.clone());
    let journal_rx = Arc::new(tokio::sync::Mutex::new(seam.subscribe("log", 1024)));
    sup.spawn("journal", move |t| {
        let rx = journal_rx.clone();
        async move {
            let mut rx = rx.lock().await;
            tokio::select! {
                _ = journal::run(&mut rx) => {}
                _ = t.cancelled() => {}
            }
        }
    });

    let (snap_tx, snap_rx) = mpsc::channel(1);
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let engine = Arc::new(EngineTask {
        rules: std::sync::Mutex::new(loaded.rules),
        hostname,
        state: state.clone(),
        snapshots: tokio::sync::Mutex::new(snap_rx),
        commands: tokio::sync::Mutex::new(cmd_rx),
        docker: collectors_docker.then(|| docker.clone()),
        seam: seam.clone(),
        board: board.clone(),
    });
    sup.spawn("engine", move |t| engine.clone().run(t));

    let runner = {
        let cfg = config_rx.borrow().clone();
        Runner::new(build_collectors(&cfg, &api, &docker, &state))
    };
    tracing::info!(collectors = ?runner.names(), interval = ?config_rx.borrow().interval, "collecting");
    let collect = Arc::new(CollectLoop {
        runner: tokio::sync::Mutex::new(runner),
        config: config_rx.clone(),
        docker: docker.clone(),
        out: snap_tx,
        board: board.clone(),
        state: state.clone(),
    });
    sup.spawn("collect", move |t| collect.clone().run(t));

    let reloader = Arc::new(Reloader {
        config: config_tx,
        docker: docker.clone(),
        engine: cmd_tx,
        board: board.clone(),
    });
    let inbox = reload_channel.inbox();
    sup.spawn("reload", move |t| reloader.clone().run(inbox.clone(), t));

    let state = HttpState {
        board,
        reload: web.enable_lifecycle.then(|| reload_channel.handle.clone()),
        telemetry_path: web.telemetry_path.clone(),
        notify: Some(notify),
        actions,
        admin: web.enable_lifecycle,
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, path = %web.telemetry_path, "serving /metrics");
    let stop = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    let served = http::serve::serve(
        listener,
        http::router(state),
        Limits::from_config(&web),
        token.clone().cancelled_owned(),
    )
    .await;
    sup.shutdown(TASK_GRACE).await;
    served.context("serving HTTP")
}
