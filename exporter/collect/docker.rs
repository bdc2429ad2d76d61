//! The Docker collector: an inventory of every container, stopped ones included, kept current
//! by Docker's event stream with a periodic full resync.
//!
//! A background watcher owns the connection. When the daemon goes away it keeps the last known
//! inventory (containers are not reported as gone), marks the collector failed, and reconnects
//! with backoff; on reconnect it resyncs and replays the events it missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::{CollectError, CollectFuture, Collector};
use crate::config::NameFilter;
use crate::docker_api::{DaemonInfo, DockerApi, DockerError, DockerEvent};
use crate::snapshot::{ContainerInfo, Inventory, Part};

/// Restarts are counted over this window for `restarts_recent`.
const RECENT: f64 = 600.0;

/// The inventory and connection state, shared by the watcher, the collectors and the HTTP API.
pub struct DockerState {
    containers: RwLock<HashMap<String, ContainerInfo>>,
    /// Bumped on every inventory change.
    generation: AtomicU64,
    view: Mutex<(u64, Arc<Vec<ContainerInfo>>)>,
    connected: AtomicBool,
    synced: AtomicBool,
    last_error: Mutex<Option<String>>,
    daemon: Mutex<Option<DaemonInfo>>,
    events: broadcast::Sender<DockerEvent>,
    filter: RwLock<NameFilter>,
}

impl DockerState {
    pub fn new(filter: NameFilter) -> Arc<DockerState> {
        Arc::new(DockerState {
            containers: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(1),
            view: Mutex::new((0, Arc::new(Vec::new()))),
            connected: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            last_error: Mutex::new(None),
            daemon: Mutex::new(None),
            events: broadcast::channel(1024).0,
            filter: RwLock::new(filter),
        })
    }

    /// The watched containers (name filter applied), sorted by name; cheap when unchanged.
    pub fn view(&self) -> Arc<Vec<ContainerInfo>> {
        let gen = self.generation.load(Ordering::Acquire);
        let mut v = self.view.lock().unwrap();
        if v.0 != gen {
            let map = self.containers.read().unwrap();
            let filter = self.filter.read().unwrap();
            let mut list: Vec<ContainerInfo> = map
                .values()
                .filter(|c| filter.matches(&c.name))
                .cloned()
                .collect();
            list.sort_by(|a, b| a.name.cmp(&b.name));
            *v = (gen, Arc::new(list));
        }
        v.1.clone()
    }

    /// Watch other containers from now on (a config reload).
    pub fn set_filter(&self, filter: NameFilter) {
        *self.filter.write().unwrap() = filter;
        self.changed();
    }

    /// Container events, after the inventory has taken them in.
    pub fn subscribe(&self) -> broadcast::Receiver<DockerEvent> {
        self.events.subscribe()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn daemon(&self) -> Option<DaemonInfo> {
        self.daemon.lock().unwrap().clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap().clone()
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Take a fresh inspect result in, keeping what only lookout tracks.
    fn upsert(&self, mut info: ContainerInfo, now: f64) {
        let mut map = self.containers.write().unwrap();
        if let Some(old) = map.get(&info.id) {
            info.oom_events = old.oom_events;
            info.recent_starts = old.recent_starts.clone();
            if let (Some(prev), Some(new)) = (old.started_at, info.started_at) {
                if new > prev {
                    info.recent_starts.push(new);
                }
            }
        }
        info.recent_starts.retain(|t| now - t <= RECENT);
        if map.get(&info.id) != Some(&info) {
            map.insert(info.id.clone(), info);
            drop(map);
            self.changed();
        }
    }

    fn remove(&self, id: &str) {
        if self.containers.write().unwrap().remove(id).is_some() {
            self.changed();
        }
    }

    fn count_oom(&self, id: &str) {
        if let Some(c) = self.containers.write().unwrap().get_mut(id) {
            c.oom_events += 1;
            self.changed();
        }
    }

    fn set_error(&self, err: &DockerError) {
        self.connected.store(false, Ordering::Release);
        *self.last_error.lock().unwrap() = Some(err.to_string());
    }
}

/// Reports the inventory each cycle.
pub struct DockerCollector {
    state: Arc<DockerState>,
}

impl DockerCollector {
    pub fn new(state: Arc<DockerState>) -> DockerCollector {
        DockerCollector { state }
    }
}

impl Collector for DockerCollector {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            let s = &self.state;
            let error = || {
                s.last_error()
                    .unwrap_or_else(|| "connecting to the docker daemon".to_string())
            };
            if !s.synced.load(Ordering::Acquire) {
                return Err(CollectError::failed(error()));
            }
            let inv = Inventory {
                containers: s.view(),
                cgroup_driver: s
                    .daemon()
                    .map(|d| d.cgroup_driver)
                    .filter(|d| !d.is_empty()),
            };
            if !s.is_connected() {
                // Keep reporting the last known containers rather than none.
                return Err(CollectError::Failed {
                    message: format!(
                        "{} (serving the inventory from before the disconnect)",
                        error()
                    ),
                    partial: Some(Part::Docker(inv)),
                });
            }
            Ok(Part::Docker(inv))
        })
    }
}

/// Follow the daemon until `shutdown`: resync, then events, reconnecting with backoff.
pub async fn watch<D: DockerApi>(api: Arc<D>, state: Arc<DockerState>, resync: Duration) {
    let mut backoff = Duration::from_millis(250);
    let mut logged: Option<String> = None;
    loop {
        match session(&*api, &state, resync, &mut backoff).await {
            Ok(()) => {}
            Err(e) => {
                let was_connected = state.is_connected();
                state.set_error(&e);
                let msg = e.to_string();
                if was_connected {
                    tracing::warn!(error = %msg, "docker daemon connection lost; keeping the last inventory and reconnecting with backoff");
                } else if logged.is_none() {
                    tracing::warn!(error = %msg, "cannot reach the docker daemon; retrying with backoff");
                } else if logged.as_deref() != Some(msg.as_str()) {
                    tracing::info!(error = %msg, "docker daemon still unreachable");
                }
                logged = Some(msg);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn session<D: DockerApi>(
    api: &D,
    state: &DockerState,
    resync_every: Duration,
    backoff: &mut Duration,
) -> Result<(), DockerError> {
    let info = api.info().await?;
    *state.daemon.lock().unwrap() = Some(info);
    // Subscribe from just before the list, so nothing between them is missed.
    let since = crate::now_unix() as i64 - 1;
    let mut events = api.events(Some(since));
    resync(api, state).await?;
    let was = state.connected.swap(true, Ordering::AcqRel);
    state.synced.store(true, Ordering::Release);
    if !was && state.last_error.lock().unwrap().take().is_some() {
        tracing::info!("docker daemon connection restored");
    }
    *backoff = Duration::from_millis(250);
    let mut ticker = tokio::time::interval(resync_every);
    ticker.tick().await;
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(ev)) => handle_event(api, state, ev).await?,
                Some(Err(e)) => return Err(e),
                None => return Err(DockerError::Unreachable {
                    host: api.host().to_string(),
                    reason: "event stream closed".into(),
                }),
            },
            _ = ticker.tick() => resync(api, state).await?,
        }
    }
}

/// List everything; inspect what is new or whose state changed; drop what is gone.
pub async fn resync<D: DockerApi + ?Sized>(
    api: &D,
    state: &DockerState,
) -> Result<(), DockerError> {
    let listed = api.list().await?;
    let now = crate::now_unix();
    let known: HashMap<String, (String, String)> = state
        .containers
        .read()
        .unwrap()
        .values()
        .map(|c| {
            (
                c.id.clone(),
                (c.state.as_str().to_string(), c.health.as_str().to_string()),
            )
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for l in &listed {
        seen.insert(l.id.clone());
        let health = if l.status.contains("(unhealthy)") {
            "unhealthy"
        } else if l.status.contains("(healthy)") {
            "healthy"
        } else if l.status.contains("(health: starting)") {
            "starting"
        } else {
            "none"
        };
        let fresh = match known.get(&l.id) {
            Some((st, h)) => *st == l.state && (h == health || (health == "none" && h == "none")),
            None => false,
        };
        if fresh {
            continue;
        }
        match api.inspect(&l.id).await {
            Ok(Some(info)) => state.upsert(info, now),
            Ok(None) | Err(DockerError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    let gone: Vec<String> = known
        .keys()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect();
    for id in gone {
        state.remove(&id);
    }
    Ok(())
}

async fn handle_event<D: DockerApi + ?Sized>(
    api: &D,
    state: &DockerState,
    ev: DockerEvent,
) -> Result<(), DockerError> {
    let kind = ev.kind();
    if kind.starts_with("exec_")
        || matches!(
            kind,
            "attach"
                | "detach"
                | "top"
                | "resize"
                | "copy"
                | "archive-path"
                | "extract-to-dir"
                | "export"
                | "commit"
        )
        || ev.id.is_empty()
    {
        return Ok(());
    }
    match kind {
        "destroy" => state.remove(&ev.id),
        _ => {
            if kind == "oom" {
                state.count_oom(&ev.id);
            }
            match api.inspect(&ev.id).await {
                Ok(Some(info)) => state.upsert(info, crate::now_unix()),
                Ok(None) | Err(DockerError::NotFound) => state.remove(&ev.id),
                Err(e) => return Err(e),
            }
        }
    }
    let _ = state.events.send(ev);
    Ok(())
}
