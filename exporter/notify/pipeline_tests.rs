//! The notifier task and its senders with a recording receiver: grouping, ordering through
//! failures, reconciliation with the engine's sync, and reminders.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::dispatch::{NotifyTask, Shared};
use super::outbox::Outbox;
use super::silence::Silences;
use super::stats::Stats;
use super::*;
use crate::config::receivers::{Receiver, ReceiverKind, Route, Secret, WebhookConfig};
use crate::config::{Config, Overrides};
use crate::engine::seam::Delivery;
use crate::engine::state::Transition;
use crate::engine::{Alert, AlertEvent};
use crate::state_dir::StateDir;

/// Records every batch; fails the first `fail` sends with a retry.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Batch>>,
    fail: AtomicUsize,
}

#[async_trait::async_trait]
impl Notifier for Recorder {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    async fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SendError::Retry {
                after: Some(Duration::from_millis(50)),
                reason: "down".into(),
            });
        }
        self.batches.lock().unwrap().push(batch.clone());
        Ok(Ack::default())
    }
}

impl Recorder {
    /// Each batch as its items' `name:status`.
    fn seen(&self) -> Vec<Vec<String>> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                b.items
                    .iter()
                    .map(|i| format!("{}:{}", i.labels["name"], i.status.as_str()))
                    .collect()
            })
            .collect()
    }
}

fn config(route: Route) -> Config {
    let mut c = Config::load(None, &|_| None, &Overrides::default()).unwrap();
    c.notify.receivers = vec![Receiver {
        name: "rec".into(),
        kind: ReceiverKind::Webhook(WebhookConfig {
            url: Secret::new("http://127.0.0.1:1/"),
            max_alerts: 0,
            timeout: Duration::from_secs(1),
        }),
    }];
    c.notify.route = Route {
        receiver: Some("rec".into()),
        ..route
    };
    c
}

fn alert(name: &str, alertname: &str) -> Alert {
    let labels: BTreeMap<String, String> = [("alertname", alertname), ("name", name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Alert {
        labels: Arc::new(labels),
        annotations: Arc::default(),
        state: "firing",
        active_at: 1.0,
        fired_at: Some(2.0),
        value: None,
        group: "g".into(),
        alertname: alertname.into(),
        severity: "warning",
        notify: vec![],
        context_logs: 0,
        streak: 0,
        actions: Default::default(),
    }
}

fn firing(name: &str, alertname: &str) -> Delivery {
    Delivery::Transition(AlertEvent {
        transition: Transition::Firing {
            active_at: 1.0,
            fired_at: 2.0,
        },
        alert: alert(name, alertname),
    })
}

fn resolved(name: &str, alertname: &str) -> Delivery {
    let mut a = alert(name, alertname);
    a.state = "inactive";
    Delivery::Transition(AlertEvent {
        transition: Transition::Resolved {
            active_at: 1.0,
            fired_at: 2.0,
            resolved_at: 3.0,
        },
        alert: a,
    })
}

struct Running {
    tx: mpsc::Sender<Delivery>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(cfg: Config, state: &StateDir, rec: Arc<Recorder>) -> Running {
    let (tx, rx) = mpsc::channel(64);
    let (_cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
    let shared = Shared::new(
        Arc::new(Silences::load(state)),
        Arc::new(Outbox::open(state)),
        Arc::new(Stats::default()),
    );
    let (_announce, announce_rx) = mpsc::unbounded_channel();
    let task = Arc::new(NotifyTask {
        deliveries: tokio::sync::Mutex::new(rx),
        announcements: tokio::sync::Mutex::new(announce_rx),
        config: cfg_rx,
        shared,
        docker: None,
        build: Arc::new(move |_r: &Receiver| Ok(rec.clone() as Arc<dyn Notifier>)),
        host: "box".into(),
        external_url: "http://box:9659".into(),
    });
    let token = CancellationToken::new();
    let t = token.clone();
    let task = tokio::spawn(async move {
        // Keep the config sender alive as long as the task.
        let _keep = _cfg_tx;
        task.run(t).await
    });
    Running { tx, token, task }
}

async fn stop(r: Running) {
    r.token.cancel();
    let _ = r.task.await;
}

async fn until(rec: &Recorder, n: usize) {
    for _ in 0..200 {
        if rec.batches.lock().unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("only {:?}", rec.seen());
}

fn route(wait_ms: u64) -> Route {
    Route {
        group_by: vec!["alertname".into()],
        group_wait: Duration::from_millis(wait_ms),
        group_interval: Duration::from_millis(300),
        ..Route::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_of_one_group_go_together_after_group_wait() {
    let rec = Arc::new(Recorder::default());
    let r = start(config(route(300)), &StateDir::none(), rec.clone());
    for d in [firing("a", "X"), firing("b", "X"), firing("c", "Y")] {
        r.tx.send(d).await.unwrap();
    }
    until(&rec, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut seen = rec.seen();
    seen.sort();
    assert_eq!(seen, [vec!["a:firing", "b:firing"], vec!["c:firing"]]);
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_every_transition_once_in_order() {
    let rec = Arc::new(Recorder::default());
    rec.fail.store(5, Ordering::SeqCst);
    let r = start(config(route(0)), &StateDir::none(), rec.clone());
    for d in [firing("a", "X"), resolved("a", "X")] {
        r.tx.send(d).await.unwrap();
    }
    until(&rec, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One alert's firing and resolve never share a batch, and keep their order.
    assert_eq!(rec.seen(), [vec!["a:firing"], vec!["a:resolved"]]);
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_sends_what_waited_and_the_sync_adds_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::at(dir.path());
    {
        let rec = Arc::new(Recorder::default());
        rec.fail.store(usize::MAX, Ordering::SeqCst);
        let r = start(config(route(0)), &state, rec.clone());
        r.tx.send(firing("a", "X")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(r).await;
        assert!(rec.seen().is_empty());
    }
    let rec = Arc::new(Recorder::default());
    let r = start(config(route(0)), &state, rec.clone());
    // The engine's sync after its restart: `a` still fires, `b` fires too (its transition
    // was lost); `a` is not queued again.
    r.tx.send(Delivery::Sync {
        alerts: vec![alert("a", "X"), alert("b", "Z")],
    })
    .await
    .unwrap();
    until(&rec, 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut seen = rec.seen();
    seen.sort();
    assert_eq!(seen, [vec!["a:firing"], vec!["b:firing"]]);
    // A sync without `b`: it resolved while nobody looked.
    r.tx.send(Delivery::Sync {
        alerts: vec![alert("a", "X")],
    })
    .await
    .unwrap();
    until(&rec, 3).await;
    assert_eq!(rec.seen()[2], ["b:resolved"]);
    stop(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_still_fires_is_repeated_after_repeat_interval() {
    let rec = Arc::new(Recorder::default());
    let mut rt = route(0);
    rt.repeat_interval = Duration::from_millis(400);
    let r = start(config(rt), &StateDir::none(), rec.clone());
    r.tx.send(firing("a", "X")).await.unwrap();
    until(&rec, 2).await;
    let b = rec.batches.lock().unwrap().clone();
    assert!(!b[0].repeat);
    assert!(b[1].repeat, "a reminder");
    assert_eq!(rec.seen()[1], ["a:firing"]);
    stop(r).await;
}
