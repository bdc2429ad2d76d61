//! Wiring: build the collectors from the config, run the collection loop, serve HTTP.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::collect::cgroup::CgroupCollector;
use crate::collect::disk::DiskCollector;
use crate::collect::docker::{self, DockerCollector, DockerState};
use crate::collect::gpu::{self as gpu_collect, GpuCollector};
use crate::collect::host::HostCollector;
use crate::collect::logs::LogCollector;
use crate::collect::{Collector, Runner};
use crate::config::{Config, GpuMode};
use crate::docker_api::{BollardDocker, DockerApi};
use crate::exposition::Exposition;
use crate::snapshot::Snapshot;

/// A snapshot and its encodings, swapped in whole after each cycle.
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    pub exposition: Exposition,
}

impl Published {
    /// Encode `snapshot`; `size_hint` is the previous exposition's size, to allocate once.
    pub fn new(snapshot: Snapshot, size_hint: usize) -> Published {
        let exposition = Exposition::encode(&snapshot, size_hint);
        Published {
            snapshot: Arc::new(snapshot),
            exposition,
        }
    }
}

/// State shared by the collection loop and the HTTP handlers.
pub struct Shared {
    latest: RwLock<Arc<Published>>,
    ready: AtomicBool,
    pub docker: Arc<DockerState>,
    pub config: Arc<Config>,
    /// Unix time lookout started.
    pub started_at: f64,
}

impl Shared {
    pub fn new(config: Arc<Config>, docker: Arc<DockerState>) -> Arc<Shared> {
        Arc::new(Shared {
            latest: RwLock::new(Arc::new(Published::new(Snapshot::default(), 0))),
            ready: AtomicBool::new(false),
            docker,
            config,
            started_at: crate::now_unix(),
        })
    }

    /// The last published snapshot.
    pub fn latest(&self) -> Arc<Published> {
        self.latest.read().unwrap().clone()
    }

    pub fn publish(&self, p: Published) {
        *self.latest.write().unwrap() = Arc::new(p);
        self.ready.store(true, Ordering::Release);
    }

    /// Whether the first collection is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The collectors this config asks for, in the order they are listed everywhere.
pub fn build_collectors<D: DockerApi>(
    config: &Config,
    api: &Arc<D>,
    docker: &Arc<DockerState>,
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
        )));
    }
    // Always with the Docker collector: any container can opt in with its label.
    if config.collectors.docker {
        out.push(Arc::new(LogCollector::new(
            api.clone(),
            docker.clone(),
            &config.collectors.logs,
        )));
    }
    out
}

/// One cycle: run the collectors and assemble the snapshot.
pub async fn cycle(runner: &mut Runner, config: &Config, prev: Option<&Snapshot>) -> Snapshot {
    let taken_at = crate::now_unix();
    let start = Instant::now();
    let (parts, statuses) = runner.run(config.collector_timeout).await;
    let labels = Arc::new(config.docker.labels.clone());
    let mut snap = Snapshot::assemble(taken_at, parts, statuses, prev, labels);
    snap.duration_seconds = start.elapsed().as_secs_f64();
    snap
}

/// Wait until the Docker watcher has its first inventory or has failed (at most `max`).
async fn wait_for_docker(docker: &DockerState, max: Duration) {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if docker.is_connected() || docker.last_error().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn docker_client(config: &Config) -> anyhow::Result<Arc<BollardDocker>> {
    Ok(Arc::new(BollardDocker::new(&config.docker.host)?))
}

/// Run one full collection and return the snapshot (for `lookout once`).
pub async fn collect_once(config: Config) -> anyhow::Result<Snapshot> {
    let api = docker_client(&config)?;
    let state = DockerState::new(config.docker.filter.clone());
    let watcher = config.collectors.docker.then(|| {
        tokio::spawn(docker::watch(
            api.clone(),
            state.clone(),
            config.docker.resync,
        ))
    });
    if watcher.is_some() {
        wait_for_docker(&state, Duration::from_secs(5)).await;
    }
    let mut runner = Runner::new(build_collectors(&config, &api, &state));
    let snap = cycle(&mut runner, &config, None).await;
    if let Some(w) = watcher {
        w.abort();
    }
    Ok(snap)
}

/// Hand memory freed by the previous cycle's snapshot and exposition back to the OS, so that
/// resident memory tracks what is live rather than the high-water mark.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Run the exporter until `shutdown` resolves: collect every interval, serve HTTP on `listener`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let api = docker_client(&config)?;
    let state = DockerState::new(config.docker.filter.clone());
    let shared = Shared::new(config.clone(), state.clone());
    let mut tasks = Vec::new();
    if config.collectors.docker {
        tasks.push(tokio::spawn(docker::watch(
            api.clone(),
            state.clone(),
            config.docker.resync,
        )));
    }
    let mut runner = Runner::new(build_collectors(&config, &api, &state));
    tracing::info!(collectors = ?runner.names(), interval = ?config.interval, "collecting");
    let loop_shared = shared.clone();
    let loop_config = config.clone();
    tasks.push(tokio::spawn(async move {
        if loop_config.collectors.docker {
            wait_for_docker(&loop_shared.docker, Duration::from_secs(3)).await;
        }
        let mut ticker = tokio::time::interval(loop_config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let prev = loop_shared.latest();
            let has_prev = loop_shared.is_ready();
            let snap = cycle(
                &mut runner,
                &loop_config,
                has_prev.then_some(&*prev.snapshot),
            )
            .await;
            let hint = prev.exposition.len();
            drop(prev);
            let published = tokio::task::block_in_place(|| Published::new(snap, hint));
            loop_shared.publish(published);
            release_freed_memory();
        }
    }));
    let app = crate::http::router(shared);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving /metrics");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    for t in tasks {
        t.abort();
    }
    served?;
    Ok(())
}
