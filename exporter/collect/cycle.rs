//! The collection loop: every interval, run the collectors ([`super::Runner`]) and assemble a
//! snapshot, then hand it to the engine task, which evaluates and publishes it.
//!
//! The hand-over waits for the engine (a channel of one): snapshots are evaluated in order,
//! none is skipped, and a stuck engine stops the loop too, which `/ready` reports once the
//! last published cycle is older than 3 intervals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use tokio_util::sync::CancellationToken;

use super::docker::DockerState;
use super::Runner;
use crate::config::Config;
use crate::publish::Board;
use crate::snapshot::{LabelAllowlist, Snapshot};
use crate::state_dir::StateDir;

/// One cycle: run the collectors and assemble the snapshot.
pub async fn cycle(
    runner: &mut Runner,
    config: &Config,
    labels: &Arc<LabelAllowlist>,
    prev: Option<&Snapshot>,
) -> Snapshot {
    let taken_at = crate::now_unix();
    let start = Instant::now();
    let (parts, statuses) = runner.run(config.collector_timeout).await;
    let mut snap = Snapshot::assemble(taken_at, parts, statuses, prev, labels.clone());
    snap.duration_seconds = start.elapsed().as_secs_f64();
    snap.process = read_process();
    snap
}

/// lookout's own process figures (`process_*`); a failed read is logged once.
fn read_process() -> Option<crate::snapshot::ProcessStats> {
    static LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match super::process::read_self() {
        Ok(p) => Some(p),
        Err(e) => {
            if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot read /proc/self; the process_* series are missing");
            }
            None
        }
    }
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

/// Wait until the Docker watcher has its first inventory or has failed (at most `max`).
pub async fn wait_for_docker(docker: &DockerState, max: Duration) {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        if docker.is_connected() || docker.last_error().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The collection loop's parts, kept across restarts of the task.
pub struct CollectLoop {
    pub runner: AsyncMutex<Runner>,
    /// The config in force (a reload sends a new one).
    pub config: watch::Receiver<Arc<Config>>,
    pub docker: Arc<DockerState>,
    /// To the engine task.
    pub out: mpsc::Sender<Arc<Snapshot>>,
    pub board: Arc<Board>,
    /// Where the Docker inventory's own facts are saved.
    pub state: StateDir,
}

impl CollectLoop {
    /// Collect every interval until `token` is cancelled.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut runner = self.runner.lock().await;
        let mut config = self.config.clone();
        if config.borrow().collectors.docker {
            wait_for_docker(&self.docker, Duration::from_secs(3)).await;
        }
        let new_ticker = |every: Duration| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let mut every = config.borrow().interval;
        let mut ticker = new_ticker(every);
        let mut labels: Option<(Vec<String>, Arc<LabelAllowlist>)> = None;
        let mut prev: Option<Arc<Snapshot>> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = token.cancelled() => break,
            }
            // A reload may have changed the interval, the timeout or the labels.
            let cfg = config.borrow_and_update().clone();
            if cfg.interval != every {
                every = cfg.interval;
                self.board.set_interval(every);
                ticker = new_ticker(every);
                ticker.tick().await;
            }
            let allow = match &labels {
                Some((keys, a)) if *keys == cfg.docker.labels => a.clone(),
                _ => {
                    let a = Arc::new(LabelAllowlist::new(&cfg.docker.labels));
                    labels = Some((cfg.docker.labels.clone(), a.clone()));
                    a
                }
            };
            let snap = tokio::select! {
                s = cycle(&mut runner, &cfg, &allow, prev.as_deref()) => Arc::new(s),
                _ = token.cancelled() => break,
            };
            self.docker.save_facts(&self.state);
            prev = Some(snap.clone());
            tokio::select! {
                r = self.out.send(snap) => if r.is_err() { break },
                _ = token.cancelled() => break,
            }
        }
        // What changed since the last cycle is kept too.
        self.docker.save_facts(&self.state);
    }
}
