//! The action task with a recording runtime: `after`, backoff, giving up, the budget, the
//! guardrails, dry runs, standbys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::audit::Audit;
use super::runtime::{Runtime, ServiceReplicas};
use super::spec::{ActionSpec, Restart, StartStandby};
use super::task::{ActTask, Handle};
use crate::collect::docker::DockerState;
use crate::config::{ActionsConfig, Config, NameFilter, Overrides};
use crate::docker_api::DockerError;
use crate::engine::seam::Delivery;
use crate::engine::state::Transition;
use crate::engine::{Alert, AlertEvent};
use crate::notify::Announcement;
use crate::snapshot::{ContainerInfo, State};

#[derive(Default)]
struct Rec {
    calls: Mutex<Vec<(String, String, Instant)>>,
}

impl Rec {
    fn calls(&self, what: &str) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, ..)| w == what)
            .map(|(_, t, _)| t.clone())
            .collect()
    }
    fn push(&self, what: &str, target: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((what.into(), target.into(), Instant::now()));
    }
}

#[async_trait]
impl Runtime for Rec {
    async fn restart(&self, id: &str, _t: Duration) -> Result<(), DockerError> {
        self.push("restart", id);
        Ok(())
    }
    async fn start(&self, id: &str) -> Result<(), DockerError> {
        self.push("start", id);
        Ok(())
    }
    async fn stop(&self, id: &str, _t: Duration) -> Result<(), DockerError> {
        self.push("stop", id);
        Ok(())
    }
    async fn clone_container(
        &self,
        source: &str,
        name: &str,
        _l: &BTreeMap<String, String>,
    ) -> Result<String, DockerError> {
        self.push("clone", &format!("{source}->{name}"));
        Ok(name.into())
    }
    async fn remove(&self, id: &str) -> Result<(), DockerError> {
        self.push("remove", id);
        Ok(())
    }
    async fn swarm_leader(&self) -> Result<bool, DockerError> {
        Ok(false)
    }
    async fn service(&self, _n: &str) -> Result<Option<ServiceReplicas>, DockerError> {
        Ok(None)
    }
    async fn scale_service(&self, _s: &ServiceReplicas, _r: u64) -> Result<(), DockerError> {
        Ok(())
    }
}

fn container(name: &str, labels: &[(&str, &str)]) -> ContainerInfo {
    ContainerInfo {
        id: format!("{name}-id"),
        name: name.into(),
        image: "img".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        state: State::Running,
        pid: 1,
        ..Default::default()
    }
}

struct Setup {
    rec: Arc<Rec>,
    tx: mpsc::Sender<Delivery>,
    said: mpsc::UnboundedReceiver<Announcement>,
    handle: Arc<Handle>,
    token: CancellationToken,
    _cfg: watch::Sender<Arc<Config>>,
}

fn setup(actions: ActionsConfig, containers: Vec<ContainerInfo>, own: Option<&str>) -> Setup {
    let rec = Arc::new(Rec::default());
    let docker = DockerState::new(NameFilter::new(&["*".to_string()], &[]));
    for c in containers {
        docker.put_for_test(c);
    }
    let (said_tx, said) = mpsc::unbounded_channel();
    let handle = Handle::new(
        &actions,
        Arc::new(Audit::open(None)),
        rec.clone(),
        docker,
        said_tx,
        own.map(str::to_string),
    );
    let mut cfg = Config::load(None, &|_| None, &Overrides::default()).unwrap();
    cfg.actions = actions;
    let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
    let (tx, rx) = mpsc::channel(64);
    let task = Arc::new(ActTask {
        deliveries: tokio::sync::Mutex::new(rx),
        config: cfg_rx,
        handle: handle.clone(),
    });
    let token = CancellationToken::new();
    tokio::spawn(task.run(token.clone()));
    Setup {
        rec,
        tx,
        said,
        handle,
        token,
        _cfg: cfg_tx,
    }
}

fn alert(name: &str, streak: u32, actions: Vec<ActionSpec>) -> Alert {
    let labels: BTreeMap<String, String> = [("alertname", "WebDown"), ("name", name)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Alert {
        labels: Arc::new(labels),
        annotations: Arc::default(),
        state: "firing",
        active_at: 1.0,
        fired_at: Some(1.0),
        value: None,
        group: "g".into(),
        alertname: "WebDown".into(),
        severity: "critical",
        notify: vec!["ops".into()],
        context_logs: 0,
        streak,
        actions: Arc::new(actions),
    }
}

fn restart(after: u32, cooldown_ms: u64, max: u32) -> ActionSpec {
    ActionSpec::Restart(Restart {
        after,
        cooldown: Duration::from_millis(cooldown_ms),
        max_attempts: max,
        window: Duration::from_secs(3600),
        timeout: Duration::from_secs(1),
    })
}

async fn tick(s: &Setup, alerts: Vec<Alert>) {
    s.tx.send(Delivery::Tick {
        at: crate::now_unix(),
        alerts,
        samples: vec![],
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_after_the_streak_then_backs_off_then_gives_up_once() {
    let mut s = setup(ActionsConfig::default(), vec![container("web", &[])], None);
    let spec = vec![restart(3, 150, 3)];
    // Two failing evaluations: nothing yet; the third: a restart.
    for streak in [1, 2] {
        tick(&s, vec![alert("web", streak, spec.clone())]).await;
    }
    assert!(s.rec.calls("restart").is_empty());
    tick(&s, vec![alert("web", 3, spec.clone())]).await;
    assert_eq!(s.rec.calls("restart"), ["web-id"]);
    // Every tick while it still fails: a second attempt only after the cooldown (150 ms), a
    // third after twice that.
    let start = Instant::now();
    let mut streak = 4;
    while s.rec.calls("restart").len() < 3 && start.elapsed() < Duration::from_secs(5) {
        tick(&s, vec![alert("web", streak, spec.clone())]).await;
        streak += 1;
    }
    let times: Vec<Instant> = s
        .rec
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(w, ..)| w == "restart")
        .map(|(.., t)| *t)
        .collect();
    assert_eq!(times.len(), 3);
    let gap1 = times[1] - times[0];
    let gap2 = times[2] - times[1];
    assert!(gap1 >= Duration::from_millis(150), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(300), "{gap2:?}");
    // Max attempts reached: no fourth restart, one "failover exhausted".
    for _ in 0..20 {
        tick(&s, vec![alert("web", streak, spec.clone())]).await;
        streak += 1;
    }
    assert_eq!(s.rec.calls("restart").len(), 3);
    let mut said = Vec::new();
    while let Ok(a) = s.said.try_recv() {
        said.push(a.annotations["summary"].clone());
    }
    let exhausted: Vec<&String> = said
        .iter()
        .filter(|t| t.contains("failover exhausted"))
        .collect();
    assert_eq!(exhausted.len(), 1, "{said:?}");
    assert!(
        said.iter()
            .any(|t| t.contains("restarted web (attempt 2/3)")),
        "{said:?}"
    );
    let outcomes: Vec<String> = s
        .handle
        .audit
        .recent()
        .iter()
        .map(|r| r.outcome.clone())
        .collect();
    assert_eq!(outcomes, ["success", "success", "success", "exhausted"]);
    // A person resets it: lookout acts again.
    assert_eq!(s.handle.reset(Some("web")), 1);
    tick(&s, vec![alert("web", streak, spec.clone())]).await;
    assert_eq!(s.rec.calls("restart").len(), 4);
    s.token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_opt_out_opt_in_own_container_and_dry_run() {
    let cs = vec![
        container("off", &[("lookout.actions", "off")]),
        container("plain", &[]),
        container("opted", &[("autoheal", "true")]),
        container("me", &[]),
    ];
    let cfg = ActionsConfig {
        require_label: "autoheal=true".into(),
        ..ActionsConfig::default()
    };
    let s = setup(cfg, cs.clone(), Some("me-id"));
    let spec = vec![restart(1, 10, 5)];
    tick(
        &s,
        ["off", "plain", "opted", "me"]
            .iter()
            .map(|n| alert(n, 1, spec.clone()))
            .collect(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.rec.calls("restart"), ["opted-id"]);
    s.token.cancel();

    let dry = ActionsConfig {
        dry_run: true,
        ..ActionsConfig::default()
    };
    let mut s = setup(dry, cs, None);
    tick(&s, vec![alert("plain", 1, spec.clone())]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        s.rec.calls("restart").is_empty(),
        "a dry run changes nothing"
    );
    assert_eq!(s.handle.audit.recent()[0].outcome, "dry_run");
    let said = s.said.try_recv().unwrap();
    assert!(said.annotations["summary"].contains("would restart plain"));
    s.token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_failure_is_held_to_the_budget_and_announced_once() {
    let cs: Vec<ContainerInfo> = (0..15).map(|i| container(&format!("c{i}"), &[])).collect();
    let cfg = ActionsConfig {
        max_per_minute: 10,
        ..ActionsConfig::default()
    };
    let mut s = setup(cfg, cs, None);
    let spec = vec![restart(1, 10, 5)];
    let alerts: Vec<Alert> = (0..15)
        .map(|i| alert(&format!("c{i}"), 1, spec.clone()))
        .collect();
    tick(&s, alerts.clone()).await;
    tick(&s, alerts).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.rec.calls("restart").len(), 10);
    let skipped = s
        .handle
        .audit
        .recent()
        .iter()
        .filter(|r| r.outcome == "skipped")
        .count();
    assert!(skipped >= 5, "{skipped}");
    let mut budget = 0;
    while let Ok(a) = s.said.try_recv() {
        if a.annotations["summary"].contains("budget") {
            budget += 1;
        }
    }
    assert_eq!(budget, 1);
    s.token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_starts_on_firing_and_stops_after_the_primary_recovers() {
    let s = setup(
        ActionsConfig::default(),
        vec![container("web", &[]), container("web-standby", &[])],
        None,
    );
    let spec = vec![ActionSpec::StartStandby(StartStandby {
        standby: "web-standby".into(),
        stop_on_resolve: true,
        for_: Duration::from_millis(200),
        after: 1,
    })];
    let a = alert("web", 0, spec.clone());
    s.tx.send(Delivery::Transition(AlertEvent {
        transition: Transition::Firing {
            active_at: 1.0,
            fired_at: 1.0,
        },
        alert: a.clone(),
    }))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.rec.calls("start"), ["web-standby"]);
    s.tx.send(Delivery::Transition(AlertEvent {
        transition: Transition::Resolved {
            active_at: 1.0,
            fired_at: 1.0,
            resolved_at: 2.0,
        },
        alert: a,
    }))
    .await
    .unwrap();
    // Not before `for`.
    tick(&s, vec![]).await;
    assert!(s.rec.calls("stop").is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    tick(&s, vec![]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.rec.calls("stop"), ["web-standby"]);
    s.token.cancel();
}
