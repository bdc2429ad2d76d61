//! Collection: the [`Collector`] trait, the list that names every collector, and the runner
//! that runs them all concurrently, each under its own deadline.
//!
//! A collector that fails, hangs or panics costs only its own series: the runner records
//! `lookout_collector_success{collector}=0` and logs the reason once (and once more when it
//! changes or recovers), never every cycle.
//!
//! A run that outlives its deadline is never cancelled and never started twice: aborting the
//! task would not stop a blocking call under it (an NVML call on a wedged GPU keeps its thread),
//! so a new run each cycle would park one more thread of the blocking pool until none is left.
//! The straggler is left to finish; until it does, each cycle reports "previous collection still
//! running", and the cycle after it returns starts a fresh run.

pub mod arp;
pub mod bonding;
pub mod cgroup;
pub mod conntrack;
pub mod cpufreq;
pub mod cycle;
pub mod disk;
pub mod docker;
pub mod edac;
pub mod entropy;
pub mod ethtool;
pub mod filefd;
pub mod fs_usage;
pub mod gpu;
pub mod host;
pub mod hwmon;
pub mod logs;
pub mod mdadm;
pub mod netclass;
pub mod netstat;
pub mod node;
pub mod probe;
pub mod process;
pub mod rtnetlink;
pub mod schedstat;
pub mod sockstat;
pub mod softnet;
pub mod stat;
pub mod textfile;
pub mod thermal_zone;
pub mod time;
pub mod timex;
pub mod vmstat;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::task::JoinHandle;

use crate::snapshot::{CollectorStatus, Part};

/// What a collector returns when it could not do its whole job.
#[derive(Debug)]
pub enum CollectError {
    /// It failed; `partial` is whatever it could still vouch for (e.g. the last known inventory
    /// while the Docker daemon is away).
    Failed {
        message: String,
        partial: Option<Part>,
    },
    /// What it collects does not exist here (no GPU library with `gpu: auto`): not a failure,
    /// and not exported as one; said once in the log.
    Unavailable(String),
}

impl CollectError {
    pub fn failed(message: impl Into<String>) -> CollectError {
        CollectError::Failed {
            message: message.into(),
            partial: None,
        }
    }
}

pub type CollectFuture = Pin<Box<dyn Future<Output = Result<Part, CollectError>> + Send>>;

/// One source of facts. Its name is its file name, its config key and its `collector` label.
pub trait Collector: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Collect one cycle's part. Blocking work belongs in `spawn_blocking`. A run is never
    /// cancelled (see the module doc), so it must not await anything that can wait forever.
    fn collect(self: Arc<Self>) -> CollectFuture;
}

struct Slot {
    collector: Arc<dyn Collector>,
    /// A run that outlived its deadline, and when it started; no new run starts until it ends.
    straggler: Option<(JoinHandle<Result<Part, CollectError>>, Instant)>,
    /// The error last logged, so each distinct failure is logged once.
    logged: Option<String>,
}

/// Runs the collectors, one cycle at a time.
pub struct Runner {
    slots: Vec<Slot>,
}

impl Runner {
    pub fn new(collectors: Vec<Arc<dyn Collector>>) -> Runner {
        Runner {
            slots: collectors
                .into_iter()
                .map(|collector| Slot {
                    collector,
                    straggler: None,
                    logged: None,
                })
                .collect(),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.slots.iter().map(|s| s.collector.name()).collect()
    }

    /// Run every collector concurrently; each gets `timeout`.
    pub async fn run(&mut self, timeout: Duration) -> (Vec<Part>, Vec<CollectorStatus>) {
        let runs = self.slots.iter_mut().map(|slot| run_one(slot, timeout));
        let results = join_all(runs).await;
        let mut parts = Vec::new();
        let mut statuses = Vec::new();
        for (part, status) in results {
            parts.extend(part);
            statuses.push(status);
        }
        (parts, statuses)
    }
}

async fn run_one(slot: &mut Slot, timeout: Duration) -> (Option<Part>, CollectorStatus) {
    let name = slot.collector.name();
    let start = Instant::now();
    let mut handle = match slot.straggler.take() {
        Some((h, since)) if !h.is_finished() => {
            slot.straggler = Some((h, since));
            return (None, still_running(slot, name, start, since));
        }
        // A straggler that has ended is dropped (its data is stale): a fresh run starts.
        _ => tokio::spawn(slot.collector.clone().collect()),
    };
    match tokio::time::timeout(timeout, &mut handle).await {
        Ok(Ok(Ok(part))) => (Some(part), status(slot, name, start, Ok(()), true)),
        Ok(Ok(Err(CollectError::Failed { message, partial }))) => {
            (partial, status(slot, name, start, Err(message), true))
        }
        Ok(Ok(Err(CollectError::Unavailable(message)))) => {
            if slot.logged.as_deref() != Some(message.as_str()) {
                tracing::info!(collector = name, reason = %message, "collector not available here");
                slot.logged = Some(message.clone());
            }
            let st = CollectorStatus {
                name,
                success: false,
                exported: false,
                duration_seconds: start.elapsed().as_secs_f64(),
                error: Some(message),
            };
            (None, st)
        }
        Ok(Err(join)) => {
            let msg = if join.is_panic() {
                let p = join.into_panic();
                format!("panicked: {}", crate::supervise::panic_message(&*p))
            } else {
                "cancelled".to_string()
            };
            (None, status(slot, name, start, Err(msg), true))
        }
        Err(_) => {
            slot.straggler = Some((handle, start));
            let msg = format!("timed out after {:.1}s", timeout.as_secs_f64());
            (None, status(slot, name, start, Err(msg), true))
        }
    }
}

/// The status of a cycle skipped because the previous run has not returned. Its message says
/// for how long, so it changes every cycle; it is logged once, when the hang is first seen.
fn still_running(
    slot: &mut Slot,
    name: &'static str,
    start: Instant,
    since: Instant,
) -> CollectorStatus {
    const PREFIX: &str = "previous collection still running";
    let message = format!(
        "{PREFIX} after {:.1}s (hung?)",
        since.elapsed().as_secs_f64()
    );
    if !slot
        .logged
        .as_deref()
        .is_some_and(|l| l.starts_with(PREFIX))
    {
        tracing::warn!(collector = name, error = %message, "collector failed; its series are missing until it recovers");
        slot.logged = Some(message.clone());
    }
    CollectorStatus {
        name,
        success: false,
        exported: true,
        duration_seconds: start.elapsed().as_secs_f64(),
        error: Some(message),
    }
}

fn status(
    slot: &mut Slot,
    name: &'static str,
    start: Instant,
    outcome: Result<(), String>,
    exported: bool,
) -> CollectorStatus {
    let duration_seconds = start.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            if let Some(prev) = slot.logged.take() {
                tracing::info!(collector = name, previous_error = %prev, "collector recovered");
            }
            CollectorStatus {
                name,
                success: true,
                exported,
                duration_seconds,
                error: None,
            }
        }
        Err(msg) => {
            if slot.logged.as_deref() != Some(msg.as_str()) {
                tracing::warn!(collector = name, error = %msg, "collector failed; its series are missing until it recovers");
                slot.logged = Some(msg.clone());
            }
            CollectorStatus {
                name,
                success: false,
                exported,
                duration_seconds,
                error: Some(msg),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, u8);

    impl Collector for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn collect(self: Arc<Self>) -> CollectFuture {
            Box::pin(async move {
                match self.1 {
                    0 => Ok(Part::Host(Box::default())),
                    1 => panic!("boom"),
                    2 => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(Part::Disk(vec![]))
                    }
                    3 => Err(CollectError::Unavailable("no gpu".into())),
                    _ => Err(CollectError::failed("broken")),
                }
            })
        }
    }

    /// A collector whose every run blocks a thread of the blocking pool until `release`d,
    /// counting its runs.
    #[derive(Default)]
    struct Wedged {
        runs: std::sync::atomic::AtomicUsize,
        released: std::sync::Mutex<bool>,
        wake: std::sync::Condvar,
    }

    impl Wedged {
        fn release(&self) {
            *self.released.lock().unwrap() = true;
            self.wake.notify_all();
        }
        fn runs(&self) -> usize {
            self.runs.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Collector for Wedged {
        fn name(&self) -> &'static str {
            "wedged"
        }
        fn collect(self: Arc<Self>) -> CollectFuture {
            Box::pin(async move {
                self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::task::spawn_blocking(move || {
                    let mut released = self.released.lock().unwrap();
                    while !*released {
                        released = self.wake.wait(released).unwrap();
                    }
                })
                .await
                .unwrap();
                Ok(Part::Disk(vec![]))
            })
        }
    }

    #[tokio::test]
    async fn a_hung_blocking_run_is_never_started_again_while_it_runs() {
        let w = Arc::new(Wedged::default());
        // Released on the way out too, so that a failing assertion does not leave the
        // runtime's shutdown waiting on the blocked threads.
        struct Release(Arc<Wedged>);
        impl Drop for Release {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        let _release = Release(w.clone());
        let mut r = Runner::new(vec![w.clone(), Arc::new(Fixed("ok", 0))]);
        let timeout = Duration::from_millis(5);
        // Far past 10x the timeout, where the runner used to abort it and start another.
        let end = Instant::now() + timeout * 40;
        let mut cycles = 0;
        while Instant::now() < end || cycles < 5 {
            let (_, st) = r.run(timeout).await;
            cycles += 1;
            assert!(st.iter().find(|s| s.name == "ok").unwrap().success);
            let hung = st.iter().find(|s| s.name == "wedged").unwrap();
            assert!(!hung.success);
            if cycles > 1 {
                let e = hung.error.as_deref().unwrap();
                assert!(
                    e.starts_with("previous collection still running after"),
                    "{e}"
                );
            }
            tokio::time::sleep(timeout).await;
        }
        assert_eq!(w.runs(), 1, "started again while its call was running");
        // Once it returns, the next cycle starts a fresh run, which succeeds.
        w.release();
        let recovered = async {
            loop {
                let (_, st) = r.run(Duration::from_secs(5)).await;
                if st.iter().find(|s| s.name == "wedged").unwrap().success {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), recovered)
            .await
            .expect("recovered after the call returned");
        assert_eq!(w.runs(), 2);
    }

    #[tokio::test]
    async fn one_failing_collector_costs_only_itself() {
        let mut r = Runner::new(vec![
            Arc::new(Fixed("ok", 0)),
            Arc::new(Fixed("panics", 1)),
            Arc::new(Fixed("hangs", 2)),
            Arc::new(Fixed("absent", 3)),
            Arc::new(Fixed("fails", 4)),
        ]);
        let (parts, st) = r.run(Duration::from_millis(200)).await;
        assert_eq!(parts.len(), 1);
        let by = |n: &str| st.iter().find(|s| s.name == n).unwrap().clone();
        assert!(by("ok").success);
        assert!(by("panics").error.unwrap().contains("panicked: boom"));
        assert!(by("hangs").error.unwrap().contains("timed out"));
        assert!(!by("absent").exported);
        assert!(by("fails").exported && !by("fails").success);
        // The hung run is not started again while it is still running.
        let (_, st) = r.run(Duration::from_millis(50)).await;
        assert!(st
            .iter()
            .find(|s| s.name == "hangs")
            .unwrap()
            .error
            .as_ref()
            .unwrap()
            .contains("still running"));
    }
}
