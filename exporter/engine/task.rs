//! The engine task: the one owner of the [`Engine`] (no lock: HTTP reads what it publishes).
//!
//! It takes, in one loop and so in one order:
//! - each cycle's snapshot from the collection loop: evaluate every rule, publish;
//! - Docker events: evaluate the containers concerned at once, with the inventory as of the
//!   event (its generation, so an older snapshot never reverts what an event showed);
//! - commands: a reload's new rules, or a republish after a failed reload.
//!
//! After each evaluation it hands the transitions to the [seam](super::seam) (waiting for slow
//! consumers), then saves the alert state, then publishes the snapshot with the engine's view.
//! When it (re)starts it restores the saved state and first sends the consumers a
//! [`Delivery::Sync`] of the alerts in force.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, oneshot, Mutex as AsyncMutex};
use tokio_util::sync::CancellationToken;

use super::rule::{Loaded, Rule};
use super::seam::{Delivery, Seam};
use super::{vars, AlertEvent, Engine};
use crate::collect::docker::DockerState;
use crate::docker_api::DockerEvent;
use crate::exposition::Status;
use crate::publish::{Board, Published};
use crate::snapshot::Snapshot;
use crate::state_dir::StateDir;

/// What the reload task asks of the engine.
pub enum Command {
    /// Replace the rules (unchanged rules keep their alerts); answers with the rule count.
    Reload {
        loaded: Loaded,
        ack: oneshot::Sender<usize>,
    },
    /// Publish again (the reload outcome changed).
    Republish { ack: oneshot::Sender<()> },
}

/// Everything the engine task needs; kept across restarts of the task.
pub struct EngineTask {
    /// The rules in force (a restarted task starts from them).
    pub rules: Mutex<Vec<Rule>>,
    pub hostname: String,
    pub state: StateDir,
    pub snapshots: AsyncMutex<mpsc::Receiver<Arc<Snapshot>>>,
    pub commands: AsyncMutex<mpsc::Receiver<Command>>,
    /// The inventory, for event-driven evaluation (None without the Docker collector).
    pub docker: Option<Arc<DockerState>>,
    pub seam: Arc<Seam>,
    pub board: Arc<Board>,
}

/// The Docker events that can change a container's alerts.
fn wanted(ev: &DockerEvent) -> bool {
    matches!(
        ev.kind(),
        "die" | "oom" | "health_status" | "start" | "destroy" | "restart" | "kill" | "stop"
    )
}

impl EngineTask {
    /// Run until `token` is cancelled.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut engine = Engine::new(rules, &self.hostname, self.state.clone());
        let mut snapshots = self.snapshots.lock().await;
        let mut commands = self.commands.lock().await;
        let mut events = match &self.docker {
            Some(d) => d.subscribe(),
            None => broadcast::channel(1).1,
        };
        self.seam
            .deliver([Delivery::Sync {
                alerts: engine.active_alerts(),
            }])
            .await;
        // The last snapshot (for event-driven evaluation) and the one before (for rates).
        let latest = self.board.latest();
        let mut last: Arc<Snapshot> = latest.snapshot.clone();
        let mut hint = latest.exposition.len();
        drop(latest);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(Command::Reload { loaded, ack }) => {
                        *self.rules.lock().unwrap_or_else(|p| p.into_inner()) = loaded.rules.clone();
                        let n = loaded.rules.len();
                        engine.reload(loaded);
                        self.save(&mut engine);
                        hint = self.publish(&engine, last.clone(), hint, false);
                        let _ = ack.send(n);
                    }
                    Some(Command::Republish { ack }) => {
                        hint = self.publish(&engine, last.clone(), hint, false);
                        let _ = ack.send(());
                    }
                    None => break,
                },
                snap = snapshots.recv() => {
                    let Some(snap) = snap else { break };
                    let prev = last.clone();
                    let had_prev = prev.taken_at > 0.0;
                    let transitions = tokio::task::block_in_place(|| {
                        engine.evaluate(&snap, had_prev.then_some(&*prev), snap.taken_at)
                    });
                    self.deliver(transitions).await;
                    if engine.has_actions() {
                        let tick = Delivery::Tick {
                            at: snap.taken_at,
                            alerts: engine.active_alerts(),
                            samples: engine.take_samples(),
                        };
                        self.seam.deliver([tick]).await;
                    }
                    self.save(&mut engine);
                    last = snap;
                    drop(prev);
                    hint = self.publish(&engine, last.clone(), hint, true);
                }
                ev = events.recv() => {
                    let ids = match ev {
                        Ok(ev) if wanted(&ev) => burst(ev.id, &mut events),
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "docker events came faster than rules could follow; evaluating every container again");
                            self.docker.as_ref().map(|d| d.view().iter().map(|c| c.id.clone()).collect()).unwrap_or_default()
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            events = broadcast::channel(1).1;
                            continue;
                        }
                    };
                    let transitions = tokio::task::block_in_place(|| self.on_events(&mut engine, &last, &ids));
                    if !transitions.is_empty() {
                        self.deliver(transitions).await;
                        self.save(&mut engine);
                        hint = self.publish(&engine, last.clone(), hint, false);
                    }
                }
            }
        }
        self.save(&mut engine);
    }

    /// Evaluate the containers with fresh Docker facts, at the inventory's generation.
    fn on_events(&self, engine: &mut Engine, last: &Snapshot, ids: &[String]) -> Vec<AlertEvent> {
        let Some(docker) = &self.docker else {
            return Vec::new();
        };
        let (generation, view) = docker.view_at();
        let now = crate::now_unix();
        let logs = vars::LogFacts::new(last, None);
        let gpus = !last.gpu.gpus.is_empty();
        let mut out = Vec::new();
        for id in ids {
            let target = view.iter().find(|c| &c.id == id).map(|info| {
                let c = vars::container_between_cycles(info, last, now);
                vars::container_target(&c, &last.label_allowlist, &logs, gpus)
            });
            out.extend(engine.evaluate_container(id, target.as_ref(), generation, now));
        }
        out
    }

    async fn deliver(&self, transitions: Vec<AlertEvent>) {
        if !transitions.is_empty() {
            self.seam
                .deliver(transitions.into_iter().map(Delivery::Transition))
                .await;
        }
    }

    fn save(&self, engine: &mut Engine) {
        if let Err(e) = engine.save() {
            tracing::warn!(error = %e, "alert state not saved");
        }
    }

    /// Publish `snap` with the engine's view; returns the exposition's size (the next hint).
    fn publish(&self, engine: &Engine, snap: Arc<Snapshot>, hint: usize, cycle: bool) -> usize {
        tokio::task::block_in_place(|| {
            let reload = self.board.reload_state();
            let status = Arc::new(Status {
                view: Arc::new(engine.view()),
                reload_successful: reload.successful,
                reload_success_at: reload.success_at,
                tasks: self.board.tasks.snapshot(),
                receivers: self.board.notify.snapshot(),
                actions: self.board.actions().map(|h| h.figures()),
            });
            let p = Published::new(snap, status, hint);
            let size = p.exposition.len();
            if cycle {
                self.board.publish_cycle(p);
            } else {
                self.board.republish(p);
            }
            self.board.warm_gzip();
            if cycle {
                // The previous cycle's snapshot and exposition were just let go.
                crate::collect::cycle::release_freed_memory();
            }
            size
        })
    }
}

/// The container ids of an event and the rest of its burst (a `docker compose down` stops many
/// containers together), each once.
fn burst(first: String, events: &mut broadcast::Receiver<DockerEvent>) -> Vec<String> {
    let mut ids = vec![first];
    loop {
        match events.try_recv() {
            Ok(ev) if wanted(&ev) => {
                if !ids.contains(&ev.id) {
                    ids.push(ev.id)
                }
            }
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rule;
    use crate::snapshot::{CollectorStatus, Container, ContainerInfo, Derived, State};
    use std::time::Duration;

    const RULES: &str = r#"groups:
  - name: g
    rules:
      - alert: Hot
        scope: container
        expr: cpu_percent > 80
"#;

    fn snapshot(i: usize) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            taken_at: 1000.0 + i as f64,
            containers: vec![Container {
                info: ContainerInfo {
                    id: "c".into(),
                    name: "c".into(),
                    state: State::Running,
                    pid: 1,
                    ..Default::default()
                },
                stats: None,
                derived: Derived {
                    cpu_percent: Some(if i.is_multiple_of(2) { 90.0 } else { 10.0 }),
                    ..Default::default()
                },
            }],
            collectors: vec![CollectorStatus::succeeded("docker")],
            inventory_generation: i as u64,
            ..Default::default()
        })
    }

    /// Every snapshot is evaluated and every transition reaches a consumer that is far
    /// slower than the engine, in order, after the Sync: the engine waits for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_transition_reaches_a_slow_consumer_in_order() {
        let loaded = rule::load(&[rule::Source {
            name: "r.yml".into(),
            text: RULES.into(),
        }])
        .unwrap();
        let (snap_tx, snap_rx) = mpsc::channel(1);
        let (_cmd_tx, cmd_rx) = mpsc::channel(1);
        let seam = Arc::new(Seam::new());
        let mut rx = seam.subscribe("slow", 1);
        let board = Board::new(Duration::from_secs(10), Arc::default());
        let task = Arc::new(EngineTask {
            rules: Mutex::new(loaded.rules),
            hostname: "box".into(),
            state: StateDir::none(),
            snapshots: AsyncMutex::new(snap_rx),
            commands: AsyncMutex::new(cmd_rx),
            docker: None,
            seam,
            board: board.clone(),
        });
        let token = CancellationToken::new();
        let running = tokio::spawn(task.run(token.clone()));
        let n = 40;
        let producer = tokio::spawn(async move {
            for i in 0..n {
                snap_tx.send(snapshot(i)).await.unwrap();
            }
        });
        assert!(matches!(rx.recv().await, Some(Delivery::Sync { alerts }) if alerts.is_empty()));
        let mut got = Vec::new();
        while got.len() < n {
            match rx.recv().await.unwrap() {
                Delivery::Transition(e) => got.push(e.transition.as_str()),
                other => panic!("{other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        producer.await.unwrap();
        let want: Vec<&str> = (0..n)
            .map(|i| {
                if i.is_multiple_of(2) {
                    "firing"
                } else {
                    "resolved"
                }
            })
            .collect();
        assert_eq!(got, want);
        // The last snapshot was published with the engine's view.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while board.latest().snapshot.taken_at != 1000.0 + (n - 1) as f64 {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(board.has_cycle());
        token.cancel();
        running.await.unwrap();
    }
}
