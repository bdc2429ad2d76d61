//! Wiring: build the collectors from the config, run the collection loop, evaluate the rules
//! after each cycle and on Docker events, reload on SIGHUP, serve HTTP.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
use crate::engine::{self, rule, vars, Engine};
use crate::exposition::{Exposition, RulesStatus};
use crate::snapshot::Snapshot;

/// A snapshot, the alerts evaluated on it, and their encodings, swapped in whole after each
/// cycle (and after an event-triggered evaluation that changed an alert).
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    pub rules: Arc<RulesStatus>,
    pub exposition: Exposition,
}

impl Published {
    /// Encode `snapshot` (without rule engine series); `size_hint` is the previous
    /// exposition's size, to allocate once.
    pub fn new(snapshot: Snapshot, size_hint: usize) -> Published {
        let exposition = Exposition::encode(&snapshot, size_hint);
        Published {
            snapshot: Arc::new(snapshot),
            rules: Arc::default(),
            exposition,
        }
    }

    /// A snapshot with the engine's alerts and series.
    pub fn with_rules(
        snapshot: Arc<Snapshot>,
        rules: Arc<RulesStatus>,
        size_hint: usize,
    ) -> Published {
        let exposition = Exposition::encode_with(&snapshot, Some(&rules), size_hint);
        Published {
            snapshot,
            rules,
            exposition,
        }
    }
}

/// The outcome of the last (re)load of config and rules.
#[derive(Debug, Clone, Copy)]
struct ReloadState {
    successful: bool,
    success_at: f64,
}

/// State shared by the collection loop and the HTTP handlers.
pub struct Shared {
    latest: RwLock<Arc<Published>>,
    ready: AtomicBool,
    pub docker: Arc<DockerState>,
    /// The running config; a successful reload swaps it.
    config: RwLock<Arc<Config>>,
    /// Unix time lookout started.
    pub started_at: f64,
    /// The rule engine. Evaluating and publishing happen under this lock, so a cycle and an
    /// event-triggered evaluation never publish over each other's newer state.
    pub engine: Mutex<Engine>,
    reload: Mutex<ReloadState>,
    /// Formats scrapers have asked for gzipped (text, OpenMetrics): the collection loop
    /// compresses those right after publishing, so a scrape only copies bytes.
    gzip_wanted: [AtomicBool; 2],
}

impl Shared {
    pub fn new(config: Arc<Config>, docker: Arc<DockerState>) -> Arc<Shared> {
        let now = crate::now_unix();
        Arc::new(Shared {
            latest: RwLock::new(Arc::new(Published::new(Snapshot::default(), 0))),
            ready: AtomicBool::new(false),
            docker,
            config: RwLock::new(config),
            started_at: now,
            engine: Mutex::new(Engine::new(Vec::new(), &hostname(), None)),
            reload: Mutex::new(ReloadState {
                successful: true,
                success_at: now,
            }),
            gzip_wanted: [AtomicBool::new(false), AtomicBool::new(false)],
        })
    }

    /// The running config.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap().clone()
    }

    /// The last published snapshot.
    pub fn latest(&self) -> Arc<Published> {
        self.latest.read().unwrap().clone()
    }

    pub fn publish(&self, p: Published) {
        *self.latest.write().unwrap() = Arc::new(p);
        self.ready.store(true, Ordering::Release);
    }

    /// A scraper asked for `format` gzipped: compress it ahead from the next cycle on.
    pub fn want_gzip(&self, format: crate::exposition::Format) {
        self.gzip_wanted[format as usize].store(true, Ordering::Relaxed);
    }

    /// Compress the formats scrapers want gzipped (part of the cycle, not of a scrape).
    pub fn warm_gzip(&self) {
        use crate::exposition::Format;
        let latest = self.latest();
        for f in [Format::Text, Format::OpenMetrics] {
            if self.gzip_wanted[f as usize].load(Ordering::Relaxed) {
                latest.exposition.gzipped(f);
            }
        }
    }

    /// Whether the first collection is done.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The engine's current view and the reload outcome (call with the engine locked).
    fn rules_status(&self, engine: &Engine) -> Arc<RulesStatus> {
        let r = *self.reload.lock().unwrap();
        Arc::new(RulesStatus {
            view: Arc::new(engine.view()),
            reload_successful: r.successful,
            reload_success_at: r.success_at,
        })
    }

    /// Publish the last snapshot again with the engine's current state (after an
    /// event-triggered evaluation or a reload). Call with the engine locked.
    fn republish(&self, engine: &Engine) {
        let latest = self.latest();
        let status = self.rules_status(engine);
        let p = Published::with_rules(latest.snapshot.clone(), status, latest.exposition.len());
        *self.latest.write().unwrap() = Arc::new(p);
    }
}

/// This machine's name, for the host target's `instance` label.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The `state_dir` to use: the configured one, else the default (None: state is not kept).
fn state_dir(config: &Config) -> Option<std::path::PathBuf> {
    match &config.state_dir {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                tracing::warn!(dir = %d.display(), error = %e, "cannot create state_dir; alert state will not survive a restart");
            }
            Some(d.clone())
        }
        None => {
            let d = engine::default_state_dir();
            if d.is_none() {
                tracing::warn!("no writable state_dir (/var/lib/lookout, $XDG_DATA_HOME, $HOME); alert state will not survive a restart");
            }
            d
        }
    }
}

fn save_state(engine: &mut Engine) {
    if let Err(e) = engine.save() {
        tracing::warn!(error = %e, "alert state not saved");
    }
}

/// Re-read the config file (with the same command-line values) and the rule files, all or
/// nothing: a bad new set keeps the old one running. The rules, `interval`,
/// `collector_timeout`, `docker.include`/`exclude` and `docker.labels` take effect at once; a
/// change that only a restart applies (the listen address, paths, the collector set) is logged.
pub fn reload(shared: &Shared) -> Result<usize, String> {
    let old = shared.config();
    let result = crate::config::Config::load_from_env(old.source.as_deref(), &old.overrides)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            rule::load_for(&cfg)
                .map(|rules| (cfg, rules))
                .map_err(|e| e.to_string())
        });
    let mut engine = shared.engine.lock().unwrap();
    let out = match result {
        Ok((cfg, loaded)) => {
            for w in &loaded.warnings {
                tracing::warn!(warning = %w, "rules");
            }
            let restart = old.needs_restart(&cfg);
            if !restart.is_empty() {
                tracing::warn!(changed = ?restart, "reloaded; these changes take effect at the next restart");
            }
            shared.docker.set_filter(cfg.docker.filter.clone());
            *shared.config.write().unwrap() = Arc::new(cfg);
            let n = loaded.rules.len();
            engine.reload(loaded);
            save_state(&mut engine);
            *shared.reload.lock().unwrap() = ReloadState {
                successful: true,
                success_at: crate::now_unix(),
            };
            Ok(n)
        }
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the running config and rules");
            shared.reload.lock().unwrap().successful = false;
            Err(e)
        }
    };
    shared.republish(&engine);
    out
}

/// Evaluate the rules of containers that just had a Docker event, at once; one republish for
/// the whole burst (a `docker compose down` stops many containers together).
fn on_docker_events(shared: &Shared, ids: &[String]) {
    let mut engine = shared.engine.lock().unwrap();
    let now = crate::now_unix();
    let latest = shared.latest();
    let snap = &latest.snapshot;
    let view = shared.docker.view();
    let logs = vars::LogFacts::new(snap, None);
    let mut changed = false;
    for id in ids {
        let target = view.iter().find(|c| &c.id == id).map(|info| {
            let c = vars::container_between_cycles(info, snap, now);
            vars::container_target(&c, &snap.label_allowlist, &logs, !snap.gpu.gpus.is_empty())
        });
        let events = engine.evaluate_container(id, target.as_ref(), now);
        for e in &events {
            tracing::info!(alert = %e.alert.alertname, container = %id, to = e.transition.as_str(), "alert (docker event)");
        }
        changed |= !events.is_empty();
    }
    if changed {
        save_state(&mut engine);
        shared.republish(&engine);
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
            crate::state_dir::StateDir::resolve(config.state_dir.as_deref()),
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
    let loaded = rule::load_for(&config).map_err(|e| anyhow::anyhow!("invalid rules:\n{e}"))?;
    for w in &loaded.warnings {
        tracing::warn!(warning = %w, "rules");
    }
    tracing::info!(rules = loaded.rules.len(), files = ?loaded.files, "rules loaded");
    *shared.engine.lock().unwrap() =
        Engine::new(loaded.rules, &hostname(), state_dir(&config).as_deref());
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
    tasks.push(tokio::spawn(async move {
        if loop_shared.config().collectors.docker {
            wait_for_docker(&loop_shared.docker, Duration::from_secs(3)).await;
        }
        let new_ticker = |every: Duration| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let mut every = loop_shared.config().interval;
        let mut ticker = new_ticker(every);
        loop {
            ticker.tick().await;
            // A reload may have changed the interval, the timeout or the labels.
            let loop_config = loop_shared.config();
            if loop_config.interval != every {
                every = loop_config.interval;
                ticker = new_ticker(every);
                ticker.tick().await;
            }
            let prev = loop_shared.latest();
            let has_prev = loop_shared.is_ready();
            let snap = cycle(
                &mut runner,
                &loop_config,
                has_prev.then_some(&*prev.snapshot),
            )
            .await;
            let hint = prev.exposition.len();
            tokio::task::block_in_place(|| {
                let mut engine = loop_shared.engine.lock().unwrap();
                let events =
                    engine.evaluate(&snap, has_prev.then_some(&*prev.snapshot), snap.taken_at);
                drop(prev);
                for e in &events {
                    tracing::info!(alert = %e.alert.alertname, to = e.transition.as_str(), "alert");
                }
                save_state(&mut engine);
                let status = loop_shared.rules_status(&engine);
                loop_shared.publish(Published::with_rules(Arc::new(snap), status, hint));
            });
            tokio::task::block_in_place(|| loop_shared.warm_gzip());
            release_freed_memory();
        }
    }));
    // Docker events: evaluate the container's rules at once (the event arrives after the
    // inventory took it in).
    let mut docker_events = state.subscribe();
    let ev_shared = shared.clone();
    tasks.push(tokio::spawn(async move {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        let wanted = |ev: &crate::docker_api::DockerEvent| {
            matches!(
                ev.kind(),
                "die" | "oom" | "health_status" | "start" | "destroy"
            )
        };
        loop {
            let mut ids: Vec<String> = Vec::new();
            match docker_events.recv().await {
                Ok(ev) if wanted(&ev) => ids.push(ev.id),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "docker events came faster than rules could follow; the next cycle catches up");
                    continue;
                }
                Err(RecvError::Closed) => break,
            }
            // Take the rest of a burst along.
            loop {
                match docker_events.try_recv() {
                    Ok(ev) if wanted(&ev) => {
                        if !ids.contains(&ev.id) {
                            ids.push(ev.id)
                        }
                    }
                    Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
            tokio::task::block_in_place(|| on_docker_events(&ev_shared, &ids));
        }
    }));
    // SIGHUP reloads config and rules.
    let hup_shared = shared.clone();
    tasks.push(tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let s = hup_shared.clone();
            let _ = tokio::task::spawn_blocking(move || reload(&s)).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NameFilter, Overrides};
    use crate::exposition::Format;

    #[test]
    fn formats_scraped_gzipped_are_compressed_in_the_cycle() {
        let cfg = Config::load(None, &|_| None, &Overrides::default()).unwrap();
        let shared = Shared::new(Arc::new(cfg), DockerState::new(NameFilter::all()));
        shared.publish(Published::new(Snapshot::default(), 0));
        shared.warm_gzip();
        assert!(
            !shared.latest().exposition.has_gzipped(Format::OpenMetrics),
            "nobody asked"
        );
        shared.want_gzip(Format::OpenMetrics);
        shared.publish(Published::new(Snapshot::default(), 0));
        shared.warm_gzip();
        let latest = shared.latest();
        assert!(latest.exposition.has_gzipped(Format::OpenMetrics));
        assert!(!latest.exposition.has_gzipped(Format::Text));
    }
}
