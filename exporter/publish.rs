//! What HTTP serves: the last published snapshot with lookout's status and their encoding
//! ([`Published`]), and whether lookout is live and ready ([`Board`]).
//!
//! The engine task publishes after each cycle's evaluation (and republishes after an
//! event-triggered evaluation or a reload); HTTP handlers only read. The board also knows when
//! the last cycle was published, so a lookout whose collection or engine is stuck stops
//! answering `/ready` with 200 after 3 intervals, and `/metrics` does not serve the frozen
//! snapshot: lookout never looks alive while it is stuck.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::exposition::{Exposition, Format, Status};
use crate::snapshot::Snapshot;
use crate::supervise::TaskHealth;

/// A snapshot, lookout's status evaluated on it, and their encodings, swapped in whole.
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    pub status: Arc<Status>,
    pub exposition: Exposition,
}

impl Published {
    /// Encode `snapshot` with `status`; `size_hint` is the previous exposition's size.
    pub fn new(snapshot: Arc<Snapshot>, status: Arc<Status>, size_hint: usize) -> Published {
        let exposition = Exposition::encode_with(&snapshot, Some(&status), size_hint);
        Published {
            snapshot,
            status,
            exposition,
        }
    }

    /// Nothing collected yet.
    pub fn empty() -> Published {
        Published::new(Arc::default(), Arc::default(), 0)
    }
}

/// The outcome of the last (re)load of config and rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReloadState {
    pub successful: bool,
    /// Unix time of the last successful (re)load.
    pub success_at: f64,
}

/// Why lookout is not ready.
#[derive(Debug, Clone, PartialEq)]
pub enum NotReady {
    /// The first cycle is not published yet.
    Starting,
    /// The last cycle was published this long ago (more than 3 intervals).
    Stale(Duration),
    /// A task failed and waits to be restarted.
    TaskDown { task: &'static str, error: String },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Starting => write!(f, "the first collection is not done yet"),
            NotReady::Stale(age) => write!(
                f,
                "stale: the last collection cycle completed {:.1}s ago (more than 3 intervals); collection or rule evaluation is stuck",
                age.as_secs_f64()
            ),
            NotReady::TaskDown { task, error } => {
                write!(f, "task {task} failed ({error}) and is being restarted")
            }
        }
    }
}

/// What the engine task publishes and HTTP reads.
pub struct Board {
    latest: RwLock<Arc<Published>>,
    /// When the last cycle (a fresh snapshot) was published.
    last_cycle: Mutex<Option<Instant>>,
    /// The collection interval in force, in ms (for staleness).
    interval_ms: AtomicU64,
    /// Formats scrapers have asked for gzipped (text, OpenMetrics): the engine task
    /// compresses those right after publishing, so a scrape only copies bytes.
    gzip_wanted: [AtomicBool; 2],
    reload: Mutex<ReloadState>,
    pub tasks: Arc<TaskHealth>,
    /// The notifier's per-receiver figures (published with each snapshot).
    pub notify: Arc<crate::notify::stats::Stats>,
    /// The failover actions' figures, when actions run.
    actions: RwLock<Option<Arc<crate::act::task::Handle>>>,
    /// Unix time lookout started.
    pub started_at: f64,
    started: Instant,
}

impl Board {
    pub fn new(interval: Duration, tasks: Arc<TaskHealth>) -> Arc<Board> {
        let now = crate::now_unix();
        Arc::new(Board {
            latest: RwLock::new(Arc::new(Published::empty())),
            last_cycle: Mutex::new(None),
            interval_ms: AtomicU64::new(interval.as_millis() as u64),
            gzip_wanted: [AtomicBool::new(false), AtomicBool::new(false)],
            reload: Mutex::new(ReloadState {
                successful: true,
                success_at: now,
            }),
            tasks,
            notify: Arc::default(),
            actions: RwLock::new(None),
            started_at: now,
            started: Instant::now(),
        })
    }

    /// Set what publishes the failover actions' figures.
    pub fn set_actions(&self, h: Option<Arc<crate::act::task::Handle>>) {
        *self.actions.write().unwrap_or_else(|p| p.into_inner()) = h;
    }

    /// The failover actions, when they run.
    pub fn actions(&self) -> Option<Arc<crate::act::task::Handle>> {
        self.actions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last published snapshot.
    pub fn latest(&self) -> Arc<Published> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publish a cycle's snapshot.
    pub fn publish_cycle(&self, p: Published) {
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(p);
        *self.last_cycle.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Publish the same snapshot again with a newer status (an event-triggered evaluation, a
    /// reload): not a cycle, so it does not count as progress.
    pub fn republish(&self, p: Published) {
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(p);
    }

    pub fn set_interval(&self, interval: Duration) {
        self.interval_ms
            .store(interval.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.load(Ordering::Relaxed))
    }

    pub fn set_reload(&self, r: ReloadState) {
        *self.reload.lock().unwrap_or_else(|p| p.into_inner()) = r;
    }

    pub fn reload_state(&self) -> ReloadState {
        *self.reload.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A scraper asked for `format` gzipped: compress it ahead from the next cycle on.
    pub fn want_gzip(&self, format: Format) {
        self.gzip_wanted[format as usize].store(true, Ordering::Relaxed);
    }

    /// Compress the formats scrapers want gzipped (part of the cycle, not of a scrape).
    pub fn warm_gzip(&self) {
        let latest = self.latest();
        for f in [Format::Text, Format::OpenMetrics] {
            if self.gzip_wanted[f as usize].load(Ordering::Relaxed) {
                latest.exposition.gzipped(f);
            }
        }
    }

    /// Time since the last published cycle; None before the first.
    pub fn since_last_cycle(&self) -> Option<Duration> {
        self.last_cycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }

    /// Whether the first cycle is published.
    pub fn has_cycle(&self) -> bool {
        self.since_last_cycle().is_some()
    }

    /// The published snapshot is stale when the last cycle is older than 3 intervals.
    pub fn stale(&self) -> Option<Duration> {
        let age = self.since_last_cycle()?;
        (age > self.interval() * 3).then_some(age)
    }

    /// Ready: the first cycle is published, the last one is at most 3 intervals old, and no
    /// task is down.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if let Some(t) = self.tasks.down() {
            return Err(NotReady::TaskDown {
                task: t.name,
                error: t.last_error.unwrap_or_default(),
            });
        }
        match self.since_last_cycle() {
            None => Err(NotReady::Starting),
            Some(age) if age > self.interval() * 3 => Err(NotReady::Stale(age)),
            Some(_) => Ok(()),
        }
    }

    /// Live unless stuck: no cycle for 10 intervals (at least a minute), counted from start
    /// before the first cycle.
    pub fn liveness(&self) -> Result<(), String> {
        let limit = (self.interval() * 10).max(Duration::from_secs(60));
        let age = self
            .since_last_cycle()
            .unwrap_or_else(|| self.started.elapsed());
        if age > limit {
            return Err(format!(
                "stuck: no collection cycle completed for {:.0}s",
                age.as_secs_f64()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_scraped_gzipped_are_compressed_in_the_cycle() {
        let board = Board::new(Duration::from_secs(10), Arc::default());
        board.publish_cycle(Published::empty());
        board.warm_gzip();
        assert!(
            !board.latest().exposition.has_gzipped(Format::OpenMetrics),
            "nobody asked"
        );
        board.want_gzip(Format::OpenMetrics);
        board.publish_cycle(Published::empty());
        board.warm_gzip();
        let latest = board.latest();
        assert!(latest.exposition.has_gzipped(Format::OpenMetrics));
        assert!(!latest.exposition.has_gzipped(Format::Text));
    }

    #[test]
    fn ready_after_the_first_cycle_and_stale_after_three_intervals() {
        let board = Board::new(Duration::from_millis(20), Arc::default());
        assert_eq!(board.readiness(), Err(NotReady::Starting));
        board.publish_cycle(Published::empty());
        assert_eq!(board.readiness(), Ok(()));
        // A republish (an event, a reload) is not progress.
        std::thread::sleep(Duration::from_millis(80));
        board.republish(Published::empty());
        assert!(matches!(board.readiness(), Err(NotReady::Stale(_))));
        assert!(board.stale().is_some());
        board.publish_cycle(Published::empty());
        assert_eq!(board.readiness(), Ok(()));
    }
}
