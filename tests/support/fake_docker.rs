//! A scriptable fake Docker daemon behind lookout's [`DockerApi`] trait, for the tests that
//! need what a real daemon won't do on cue: go away and come back with changed pids, fail one
//! container's inspect with a 500, replay events from a given time.
//!
//! Include it with `#[path = "support/fake_docker.rs"] mod fake_docker;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use lookout::docker_api::{
    BoxStream, DaemonInfo, DockerApi, DockerError, DockerEvent, Listed, LogChunk,
};
use lookout::snapshot::{ContainerInfo, ContainerStats};
use tokio::sync::mpsc;

#[derive(Default)]
struct Inner {
    up: bool,
    containers: BTreeMap<String, ContainerInfo>,
    /// Ids whose inspect answers a 500.
    failing: HashSet<String>,
    /// Every event emitted, for replays.
    history: Vec<DockerEvent>,
    /// Open event streams.
    live: Vec<mpsc::UnboundedSender<Result<DockerEvent, DockerError>>>,
    /// The `since` of every events request.
    since: Vec<Option<i64>>,
    info_calls: u32,
    inspect_calls: BTreeMap<String, u32>,
    /// Each container's log lines, oldest first, for `logs_tail`.
    logs: BTreeMap<String, Vec<String>>,
}

/// The fake daemon. It starts up (reachable) with no containers.
pub struct FakeDocker {
    inner: Mutex<Inner>,
}

const HOST: &str = "unix:///fake/docker.sock";

fn unreachable() -> DockerError {
    DockerError::Unreachable {
        host: HOST.into(),
        reason: "the fake daemon is down".into(),
    }
}

impl FakeDocker {
    pub fn new() -> Arc<FakeDocker> {
        Arc::new(FakeDocker {
            inner: Mutex::new(Inner {
                up: true,
                ..Default::default()
            }),
        })
    }

    /// Add a container or replace its facts.
    pub fn put(&self, info: ContainerInfo) {
        self.inner
            .lock()
            .unwrap()
            .containers
            .insert(info.id.clone(), info);
    }

    pub fn remove(&self, id: &str) {
        self.inner.lock().unwrap().containers.remove(id);
    }

    /// Make one container's inspect fail with a 500 (or work again).
    pub fn fail_inspect(&self, id: &str, fail: bool) {
        let mut i = self.inner.lock().unwrap();
        if fail {
            i.failing.insert(id.to_string());
        } else {
            i.failing.remove(id);
        }
    }

    /// Set a container's log lines (oldest first); `logs_tail` answers the last of them.
    pub fn set_logs(&self, id: &str, lines: &[&str]) {
        self.inner.lock().unwrap().logs.insert(
            id.to_string(),
            lines.iter().map(|l| l.to_string()).collect(),
        );
    }

    /// Take the daemon down (every call fails, open event streams end) or bring it back.
    pub fn set_up(&self, up: bool) {
        let mut i = self.inner.lock().unwrap();
        i.up = up;
        if !up {
            i.live.clear();
        }
    }

    /// Emit an event (kept for replays; sent to open streams while up).
    pub fn emit(&self, action: &str, id: &str, time_nano: i64) {
        let ev = DockerEvent {
            action: action.into(),
            id: id.into(),
            name: String::new(),
            time_nano,
            attributes: Default::default(),
        };
        let mut i = self.inner.lock().unwrap();
        i.history.push(ev.clone());
        if i.up {
            i.live.retain(|tx| tx.send(Ok(ev.clone())).is_ok());
        }
    }

    /// The `since` of each events request so far.
    pub fn since_asked(&self) -> Vec<Option<i64>> {
        self.inner.lock().unwrap().since.clone()
    }

    pub fn info_calls(&self) -> u32 {
        self.inner.lock().unwrap().info_calls
    }

    pub fn inspect_calls(&self, id: &str) -> u32 {
        self.inner
            .lock()
            .unwrap()
            .inspect_calls
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl DockerApi for FakeDocker {
    fn host(&self) -> &str {
        HOST
    }

    fn is_local(&self) -> bool {
        false
    }

    async fn info(&self) -> Result<DaemonInfo, DockerError> {
        let mut i = self.inner.lock().unwrap();
        i.info_calls += 1;
        if !i.up {
            return Err(unreachable());
        }
        Ok(DaemonInfo {
            version: "fake".into(),
            api_version: "1.41".into(),
            cgroup_driver: "cgroupfs".into(),
            cgroup_version: "1".into(),
            ..Default::default()
        })
    }

    async fn list(&self) -> Result<Vec<Listed>, DockerError> {
        let i = self.inner.lock().unwrap();
        if !i.up {
            return Err(unreachable());
        }
        Ok(i.containers
            .values()
            .map(|c| Listed {
                id: c.id.clone(),
                state: c.state.as_str().into(),
                status: String::new(),
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DockerError> {
        let mut i = self.inner.lock().unwrap();
        *i.inspect_calls.entry(id.to_string()).or_default() += 1;
        if !i.up {
            return Err(unreachable());
        }
        if i.failing.contains(id) {
            return Err(DockerError::Api(
                "500: the fake daemon fails this one".into(),
            ));
        }
        Ok(i.containers.get(id).cloned())
    }

    fn events(&self, since: Option<i64>) -> BoxStream<Result<DockerEvent, DockerError>> {
        let mut i = self.inner.lock().unwrap();
        i.since.push(since);
        if !i.up {
            return futures_util::stream::once(async { Err(unreachable()) }).boxed();
        }
        let from = since.unwrap_or(i64::MAX).saturating_mul(1_000_000_000);
        let replay: Vec<Result<DockerEvent, DockerError>> = i
            .history
            .iter()
            .filter(|e| e.time_nano >= from)
            .cloned()
            .map(Ok)
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        i.live.push(tx);
        futures_util::stream::iter(replay)
            .chain(tokio_stream_from(rx))
            .boxed()
    }

    async fn stats_once(&self, _id: &str) -> Result<Option<ContainerStats>, DockerError> {
        Ok(None)
    }

    fn logs(&self, _id: &str, _since: i64) -> BoxStream<Result<LogChunk, DockerError>> {
        futures_util::stream::empty().boxed()
    }

    /// The last `lines` of what `set_logs` gave (none for an unknown container).
    async fn logs_tail(
        &self,
        id: &str,
        lines: usize,
        _max_bytes: usize,
    ) -> Result<Vec<String>, DockerError> {
        let i = self.inner.lock().unwrap();
        if !i.up {
            return Err(unreachable());
        }
        let all = i.logs.get(id).map(Vec::as_slice).unwrap_or_default();
        Ok(all[all.len().saturating_sub(lines)..].to_vec())
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
