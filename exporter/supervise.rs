//! Supervised tasks: each of lookout's long-running tasks (collection loop, engine, Docker
//! watcher, reload, transition consumers) runs under a supervisor that notices when it ends by a
//! fault (a panic, or returning while lookout is not shutting down), logs it, counts it in
//! `lookout_task_failures_total{task}`, marks it down (so `/ready` answers 503) and starts it
//! again after a backoff (1 s, doubling to 30 s). All of them stop on one cancellation token.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One task's health, as `/metrics` and `/ready` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub name: &'static str,
    /// Running (false while it waits to be restarted after a fault).
    pub up: bool,
    /// Faults so far.
    pub failures: u64,
    /// The last fault, in words.
    pub last_error: Option<String>,
}

/// Health of every supervised task, shared with HTTP and the exposition.
#[derive(Debug, Default)]
pub struct TaskHealth {
    tasks: Mutex<BTreeMap<&'static str, TaskStatus>>,
}

impl TaskHealth {
    fn set(&self, name: &'static str, f: impl FnOnce(&mut TaskStatus)) {
        let mut t = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let st = t.entry(name).or_insert(TaskStatus {
            name,
            up: true,
            failures: 0,
            last_error: None,
        });
        f(st);
    }

    /// Every task, by name.
    pub fn snapshot(&self) -> Vec<TaskStatus> {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The first task that is down, if any.
    pub fn down(&self) -> Option<TaskStatus> {
        self.snapshot().into_iter().find(|t| !t.up)
    }
}

/// Starts tasks and restarts them after faults; [`Supervisor::shutdown`] stops them all.
pub struct Supervisor {
    health: Arc<TaskHealth>,
    token: CancellationToken,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

/// The first restart waits this long; each further one twice as long, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A panic's message.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Supervisor {
    pub fn new(health: Arc<TaskHealth>, token: CancellationToken) -> Supervisor {
        Supervisor {
            health,
            token,
            handles: Vec::new(),
        }
    }

    /// The token every task stops on.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn health(&self) -> Arc<TaskHealth> {
        self.health.clone()
    }

    /// Run `make()`'s future as task `name`, and again after each fault. The future should
    /// return when the token is cancelled; returning before that is a fault.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, mut make: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let health = self.health.clone();
        let token = self.token.clone();
        health.set(name, |_| {});
        let handle = tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    make(token.clone())
                })) {
                    Ok(fut) => std::panic::AssertUnwindSafe(fut).catch_unwind().await,
                    Err(p) => Err(p),
                };
                if token.is_cancelled() {
                    return;
                }
                let error = match outcome {
                    Ok(()) => "it returned while lookout is running".to_string(),
                    Err(p) => format!("panicked: {}", panic_message(&*p)),
                };
                tracing::error!(task = name, error = %error, restart_in_s = backoff.as_secs_f64(), "task failed; restarting it");
                health.set(name, |t| {
                    t.up = false;
                    t.failures += 1;
                    t.last_error = Some(error);
                });
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = token.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                health.set(name, |t| t.up = true);
                tracing::info!(task = name, "task restarted");
            }
        });
        self.handles.push((name, handle));
    }

    /// Cancel every task and wait for them, at most `grace`; the rest are aborted.
    pub async fn shutdown(self, grace: Duration) {
        self.token.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut h) in self.handles {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                tracing::warn!(task = name, "task did not stop in time; abandoning it");
                h.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_counted_marked_down_and_restarted() {
        let health = Arc::new(TaskHealth::default());
        let mut sup = Supervisor::new(health.clone(), CancellationToken::new());
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("flaky", move |token| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("boom");
                }
                token.cancelled().await;
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = health.down().expect("down after the panic");
        assert_eq!(st.failures, 1);
        assert!(st.last_error.unwrap().contains("boom"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(health.down().is_none(), "restarted");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        sup.shutdown(Duration::from_secs(1)).await;
        assert_eq!(health.snapshot()[0].failures, 1, "a shutdown is no fault");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_abandons_a_task_that_does_not_stop() {
        let health = Arc::new(TaskHealth::default());
        let mut sup = Supervisor::new(health, CancellationToken::new());
        sup.spawn("stubborn", |_| std::future::pending::<()>());
        let start = tokio::time::Instant::now();
        sup.shutdown(Duration::from_millis(500)).await;
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
