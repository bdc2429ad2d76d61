//! The Docker collector: an inventory of every container, stopped ones included, kept current
//! by Docker's event stream with a periodic full resync.
//!
//! A background watcher owns the connection. When the daemon goes away it keeps the last known
//! inventory (containers are not reported as gone), marks the collector failed, and reconnects
//! with backoff. Each new session first re-inspects every container (a daemon restart keeps a
//! `--restart always` container's state word but gives it a new pid, `StartedAt` and
//! `RestartCount`), and replays the events it missed from the time of the last one it saw. A
//! container whose inspect fails (a 500, an answer lookout cannot read) keeps its last facts;
//! the error is logged once and the session goes on.
//!
//! What only lookout knows of a container (restarts seen in the last 10 minutes, OOM events
//! counted) is kept in `state_dir/containers.json`, so a restart of lookout does not reset
//! `restarts_recent` or `container_oom_events_total`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{CollectError, CollectFuture, Collector};
use crate::config::NameFilter;
use crate::docker_api::{DaemonInfo, DockerApi, DockerError, DockerEvent};
use crate::snapshot::{ContainerInfo, Inventory, Part};
use crate::state_dir::StateDir;

/// Restarts are counted over this window for `restarts_recent`.
const RECENT: f64 = 600.0;
/// The file lookout's own container facts are kept in.
pub const FACTS_FILE: &str = "containers.json";
/// The shortest resync period (a shorter `docker.resync` is refused by the config).
pub const MIN_RESYNC: Duration = Duration::from_secs(1);

/// What lookout alone knows of a container, kept across its restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SavedFacts {
    /// The start time last seen (to count a restart that happened while lookout was down).
    started_at: Option<f64>,
    recent_starts: Vec<f64>,
    oom_events: u64,
}

impl SavedFacts {
    fn of(c: &ContainerInfo) -> SavedFacts {
        SavedFacts {
            started_at: c.started_at,
            recent_starts: c.recent_starts.clone(),
            oom_events: c.oom_events,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedFile {
    version: u32,
    containers: HashMap<String, SavedFacts>,
}

/// The inventory and connection state, shared by the watcher, the collectors, the engine and
/// the HTTP API.
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
    /// Unix ns of the last event taken in; a new session replays from there.
    last_event_nanos: AtomicI64,
    /// Containers whose last inspect failed, with the error (logged once per error).
    failing: Mutex<HashMap<String, String>>,
    /// Facts restored from `state_dir` for containers not inspected yet this run.
    restored: Mutex<HashMap<String, SavedFacts>>,
    /// Whether facts changed since the last save.
    facts_dirty: AtomicBool,
}

/// The task that keeps a collector's per-container work (log followers, probes) in step with
/// the inventory: started on first use, started again if it ended (a panic), aborted when
/// dropped with its collector.
#[derive(Default)]
pub struct Follower(std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>);

impl Follower {
    /// Start the task with `start` unless it runs.
    pub fn ensure<F>(&self, start: impl FnOnce() -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        *s = Some(tokio::spawn(start()));
    }

    /// Whether the task was started.
    pub fn started(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(h) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
    }
}

impl DockerState {
    pub fn new(filter: NameFilter) -> Arc<DockerState> {
        DockerState::with_facts(filter, &StateDir::none())
    }

    /// A state that starts from the container facts saved in `state`.
    pub fn with_facts(filter: NameFilter, state: &StateDir) -> Arc<DockerState> {
        let restored = match state.load::<SavedFile>(FACTS_FILE) {
            Ok(f) => f.map(|f| f.containers).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "starting without the saved container facts");
                HashMap::new()
            }
        };
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
            last_event_nanos: AtomicI64::new(0),
            failing: Mutex::new(HashMap::new()),
            restored: Mutex::new(restored),
            facts_dirty: AtomicBool::new(false),
        })
    }

    /// The watched containers (name filter applied), sorted by name; cheap when unchanged.
    pub fn view(&self) -> Arc<Vec<ContainerInfo>> {
        self.view_at().1
    }

    /// The watched containers and the inventory generation they are as of.
    pub fn view_at(&self) -> (u64, Arc<Vec<ContainerInfo>>) {
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
        (v.0, v.1.clone())
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

    /// Call `sync` after every inventory event and every `tick` (for collectors that keep
    /// per-container work in step with the inventory: log followers, probes). Runs forever.
    pub async fn follow(&self, tick: Duration, mut sync: impl FnMut()) {
        let mut events = self.subscribe();
        let mut tick = tokio::time::interval(tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        loop {
            tokio::select! {
                ev = events.recv(), if events_open => {
                    if let Err(broadcast::error::RecvError::Closed) = ev {
                        events_open = false;
                    }
                }
                _ = tick.tick() => {}
            }
            sync();
        }
    }

    /// Put a container in the inventory (unit tests of the inventory's readers).
    #[cfg(test)]
    pub(crate) fn put_for_test(&self, info: ContainerInfo) {
        self.upsert(info, crate::now_unix());
        self.changed();
    }

    /// Take a container out of the inventory (unit tests of the inventory's readers).
    #[cfg(test)]
    pub(crate) fn remove_for_test(&self, id: &str) {
        self.remove(id);
    }

    /// Take a fresh inspect result in, keeping what only lookout tracks.
    fn upsert(&self, mut info: ContainerInfo, now: f64) {
        let mut map = self.containers.write().unwrap();
        let before = match map.get(&info.id) {
            Some(old) => Some(SavedFacts::of(old)),
            None => self.restored.lock().unwrap().remove(&info.id),
        };
        if let Some(old) = &before {
            info.oom_events = old.oom_events;
            info.recent_starts = old.recent_starts.clone();
            if let (Some(prev), Some(new)) = (old.started_at, info.started_at) {
                if new > prev {
                    info.recent_starts.push(new);
                }
            }
        }
        info.recent_starts.retain(|t| now - t <= RECENT);
        let facts_changed = match &before {
            Some(old) => {
                old.recent_starts != info.recent_starts
                    || old.oom_events != info.oom_events
                    || old.started_at != info.started_at
            }
            None => true,
        };
        if facts_changed {
            self.facts_dirty.store(true, Ordering::Release);
        }
        if map.get(&info.id) != Some(&info) {
            map.insert(info.id.clone(), info);
            drop(map);
            self.changed();
        }
    }

    fn remove(&self, id: &str) {
        if self.containers.write().unwrap().remove(id).is_some() {
            self.facts_dirty.store(true, Ordering::Release);
            self.changed();
        }
        self.failing.lock().unwrap().remove(id);
    }

    fn count_oom(&self, id: &str) {
        if let Some(c) = self.containers.write().unwrap().get_mut(id) {
            c.oom_events += 1;
            self.facts_dirty.store(true, Ordering::Release);
            self.changed();
        }
    }

    fn set_error(&self, err: &DockerError) {
        self.connected.store(false, Ordering::Release);
        *self.last_error.lock().unwrap() = Some(err.to_string());
    }

    /// An inspect of one container failed: it keeps its last facts; say so once per error.
    fn inspect_failed(&self, id: &str, err: &DockerError) {
        let msg = err.to_string();
        let mut failing = self.failing.lock().unwrap();
        if failing.get(id) != Some(&msg) {
            let name = self
                .containers
                .read()
                .unwrap()
                .get(id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            tracing::warn!(container = %id, name = %name, error = %msg, "cannot inspect this container; keeping its last known facts");
            failing.insert(id.to_string(), msg);
        }
    }

    fn inspect_ok(&self, id: &str) {
        if self.failing.lock().unwrap().remove(id).is_some() {
            tracing::info!(container = %id, "container inspects again");
        }
    }

    fn saw_event(&self, ev: &DockerEvent) {
        self.last_event_nanos
            .fetch_max(ev.time_nano, Ordering::AcqRel);
    }

    /// Save the facts only lookout knows, when they changed (called once per cycle).
    pub fn save_facts(&self, state: &StateDir) {
        if state.dir().is_none() || !self.facts_dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut containers: HashMap<String, SavedFacts> = self
            .containers
            .read()
            .unwrap()
            .values()
            .map(|c| (c.id.clone(), SavedFacts::of(c)))
            .collect();
        // Facts of containers not seen yet this run stay until a first full resync (the
        // daemon may be away); that resync drops the facts of containers that are gone.
        for (id, f) in self.restored.lock().unwrap().iter() {
            containers.entry(id.clone()).or_insert_with(|| f.clone());
        }
        let file = SavedFile {
            version: 1,
            containers,
        };
        if let Err(e) = state.save(FACTS_FILE, &file) {
            self.facts_dirty.store(true, Ordering::Release);
            tracing::warn!(error = %e, "container facts not saved");
        }
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
            let (generation, containers) = s.view_at();
            let inv = Inventory {
                containers,
                generation,
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

/// Follow the daemon until `token` is cancelled: resync, then events, reconnecting with
/// backoff.
pub async fn watch<D: DockerApi + ?Sized>(
    api: Arc<D>,
    state: Arc<DockerState>,
    resync: Duration,
    token: CancellationToken,
) {
    let resync = resync.max(MIN_RESYNC);
    let mut backoff = Duration::from_millis(250);
    let mut logged: Option<String> = None;
    loop {
        let outcome = tokio::select! {
            r = session(&*api, &state, resync, &mut backoff) => r,
            _ = token.cancelled() => return,
        };
        if let Err(e) = outcome {
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
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = token.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

async fn session<D: DockerApi + ?Sized>(
    api: &D,
    state: &DockerState,
    resync_every: Duration,
    backoff: &mut Duration,
) -> Result<(), DockerError> {
    let info = api.info().await?;
    *state.daemon.lock().unwrap() = Some(info);
    // Subscribe before the list, so nothing between them is missed: from the last event seen
    // (replaying what happened while disconnected), else from just before now.
    let last = state.last_event_nanos.load(Ordering::Acquire);
    let since = if last > 0 {
        last / 1_000_000_000
    } else {
        crate::now_unix() as i64 - 1
    };
    let mut events = api.events(Some(since));
    // Every container again: a daemon restart changes pids and start times under unchanged
    // state words.
    resync(api, state, true).await?;
    let was = state.connected.swap(true, Ordering::AcqRel);
    state.synced.store(true, Ordering::Release);
    {
        // Containers listed now had their saved facts taken in; the rest are gone.
        let mut restored = state.restored.lock().unwrap();
        if !restored.is_empty() {
            restored.clear();
            state.facts_dirty.store(true, Ordering::Release);
        }
    }
    if !was && state.last_error.lock().unwrap().take().is_some() {
        tracing::info!("docker daemon connection restored");
    }
    *backoff = Duration::from_millis(250);
    let mut ticker = tokio::time::interval(resync_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            _ = ticker.tick() => resync(api, state, false).await?,
        }
    }
}

/// The health word in a list entry's status ("Up 5 minutes (healthy)").
fn listed_health(status: &str) -> &'static str {
    if status.contains("(unhealthy)") {
        "unhealthy"
    } else if status.contains("(healthy)") {
        "healthy"
    } else if status.contains("(health: starting)") {
        "starting"
    } else {
        "none"
    }
}

/// Inspect one container into the inventory. A transport error ends the session (Err); any
/// other failure is that container's alone: it keeps its last facts.
async fn refresh<D: DockerApi + ?Sized>(
    api: &D,
    state: &DockerState,
    id: &str,
    now: f64,
) -> Result<(), DockerError> {
    match api.inspect(id).await {
        Ok(Some(info)) => {
            state.inspect_ok(id);
            state.upsert(info, now);
        }
        Ok(None) | Err(DockerError::NotFound) => state.remove(id),
        Err(e @ DockerError::Unreachable { .. }) => return Err(e),
        Err(e) => state.inspect_failed(id, &e),
    }
    Ok(())
}

/// List everything; inspect what is new or whose state changed (every container when `full`,
/// and those whose last inspect failed); drop what is gone.
pub async fn resync<D: DockerApi + ?Sized>(
    api: &D,
    state: &DockerState,
    full: bool,
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
    let failing: HashSet<String> = state.failing.lock().unwrap().keys().cloned().collect();
    let mut seen = HashSet::new();
    for l in &listed {
        seen.insert(l.id.clone());
        let fresh = !full
            && !failing.contains(&l.id)
            && known
                .get(&l.id)
                .is_some_and(|(st, h)| *st == l.state && h == listed_health(&l.status));
        if !fresh {
            refresh(api, state, &l.id, now).await?;
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
        state.saw_event(&ev);
        return Ok(());
    }
    // A session replays from the whole second of the last event seen: those already taken
    // in are refreshed again (harmless) but not counted or announced twice.
    let replayed = ev.time_nano <= state.last_event_nanos.load(Ordering::Acquire);
    match kind {
        "destroy" => state.remove(&ev.id),
        _ => {
            if kind == "oom" && !replayed {
                state.count_oom(&ev.id);
            }
            refresh(api, state, &ev.id, crate::now_unix()).await?;
        }
    }
    if !replayed {
        state.saw_event(&ev);
        let _ = state.events.send(ev);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::State;

    fn info(id: &str, started_at: f64) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: id.into(),
            state: State::Running,
            pid: 1,
            started_at: Some(started_at),
            ..Default::default()
        }
    }

    /// What only lookout knows of a container (restarts it saw, OOM events it counted)
    /// survives a restart of lookout, and a restart that happened while lookout was down
    /// counts too.
    #[test]
    fn container_facts_survive_a_restart_of_lookout() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::at(dir.path());
        let now = crate::now_unix();
        {
            let s = DockerState::with_facts(NameFilter::all(), &sd);
            s.upsert(info("c1", now - 300.0), now);
            s.upsert(info("c1", now - 200.0), now);
            s.upsert(info("c1", now - 100.0), now);
            s.count_oom("c1");
            s.count_oom("c1");
            s.upsert(info("gone", now - 100.0), now);
            s.save_facts(&sd);
        }
        let s = DockerState::with_facts(NameFilter::all(), &sd);
        // Not inspected yet: nothing is invented.
        assert!(s.view().is_empty());
        // Inspected again, unchanged: the facts come back.
        s.upsert(info("c1", now - 100.0), now);
        let c = s.view()[0].clone();
        assert_eq!(c.recent_starts, vec![now - 200.0, now - 100.0]);
        assert_eq!(c.oom_events, 2);
        // Restarted while lookout was down: one more restart.
        let s = DockerState::with_facts(NameFilter::all(), &sd);
        s.upsert(info("c1", now - 10.0), now);
        assert_eq!(s.view()[0].recent_starts.len(), 3);
    }

    /// Start times come back from the saved file bit for bit: a start time that reads back
    /// one ulp early would count a restart that never happened (CI caught this once).
    #[test]
    fn saved_start_times_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::at(dir.path());
        let now = 1796069571.4363937_f64;
        let started = |i: u32| now - f64::from(i) * 0.000_123_7;
        {
            let s = DockerState::with_facts(NameFilter::all(), &sd);
            for i in 0..2000 {
                s.upsert(info(&format!("c{i}"), started(i)), now);
            }
            s.save_facts(&sd);
        }
        let s = DockerState::with_facts(NameFilter::all(), &sd);
        for i in 0..2000 {
            s.upsert(info(&format!("c{i}"), started(i)), now);
        }
        for c in s.view().iter() {
            assert!(c.recent_starts.is_empty(), "{}: {:?}", c.id, c.started_at);
        }
    }
}
