//! A scripted [`Runtime`] for the action engine's tests: it records every call (method,
//! arguments, time), knows a set of containers and Swarm services, and fails on demand.
//! Deterministic: new ids count up (`fake-0001`, ...), maps are ordered.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lookout::act::runtime::{Runtime, ServiceReplicas};
use lookout::docker_api::DockerError;

/// The trait's methods, as the fake records and scripts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Restart,
    Start,
    Stop,
    Clone,
    Remove,
    SwarmLeader,
    Service,
    ScaleService,
}

/// One call, as made.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    /// The arguments in order, as text: an id or name; a timeout as whole seconds (`"10s"`);
    /// a clone's labels as `k=v` after its source and name; a scale's service name and count.
    pub args: Vec<String>,
    /// When it was made (tokio's clock, so paused-time tests see their own time).
    pub at: tokio::time::Instant,
    pub wall: SystemTime,
    /// Whether it failed (a scripted failure, or a missing container or service).
    pub failed: bool,
}

/// A container the fake knows.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContainer {
    pub id: String,
    pub running: bool,
    pub labels: BTreeMap<String, String>,
}

/// A Swarm service the fake knows.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeService {
    pub id: String,
    pub version: u64,
    /// `None`: a global service.
    pub replicas: Option<u64>,
}

#[derive(Default)]
struct Script {
    failures: HashMap<Method, Vec<DockerError>>,
    delays: HashMap<Method, Duration>,
}

/// The fake runtime. Containers are keyed by name and found by name or id.
#[derive(Default)]
pub struct FakeRuntime {
    pub containers: Mutex<BTreeMap<String, FakeContainer>>,
    pub services: Mutex<BTreeMap<String, FakeService>>,
    pub leader: Mutex<bool>,
    calls: Mutex<Vec<Call>>,
    script: Mutex<Script>,
    next_id: Mutex<u32>,
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// Add a container (`running`) with labels; its id is `id-<name>`.
    pub fn with_container(self, name: &str, running: bool, labels: &[(&str, &str)]) -> Self {
        self.add_container(name, running, labels);
        self
    }

    /// Add (or replace) a container; returns its id (`id-<name>`).
    pub fn add_container(&self, name: &str, running: bool, labels: &[(&str, &str)]) -> String {
        let id = format!("id-{name}");
        self.containers.lock().unwrap().insert(
            name.to_string(),
            FakeContainer {
                id: id.clone(),
                running,
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
        id
    }

    /// Add a service (`replicas: None` for a global one), version 1, id `svc-<name>`.
    pub fn with_service(self, name: &str, replicas: Option<u64>) -> Self {
        self.services.lock().unwrap().insert(
            name.to_string(),
            FakeService {
                id: format!("svc-{name}"),
                version: 1,
                replicas,
            },
        );
        self
    }

    /// Make this daemon the Swarm leader (or not).
    pub fn set_leader(&self, leader: bool) {
        *self.leader.lock().unwrap() = leader;
    }

    /// The next `n` calls of `method` fail with `DockerError::Api("scripted failure")`.
    pub fn fail_next(&self, method: Method, n: usize) {
        self.fail_next_with(method, n, DockerError::Api("scripted failure".into()));
    }

    /// The next `n` calls of `method` fail with `err` (after any failures already scripted).
    pub fn fail_next_with(&self, method: Method, n: usize, err: DockerError) {
        let mut s = self.script.lock().unwrap();
        let queue = s.failures.entry(method).or_default();
        queue.extend(std::iter::repeat_n(err, n));
    }

    /// Every call of `method` takes `d` (tokio's sleep) before it answers.
    pub fn delay(&self, method: Method, d: Duration) {
        self.script.lock().unwrap().delays.insert(method, d);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls of one method.
    pub fn calls_of(&self, method: Method) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Forget the calls recorded so far.
    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// A container by name or id.
    pub fn container(&self, id_or_name: &str) -> Option<FakeContainer> {
        let map = self.containers.lock().unwrap();
        find(&map, id_or_name).map(|k| map[&k].clone())
    }

    /// A service's state by name.
    pub fn service_state(&self, name: &str) -> Option<FakeService> {
        self.services.lock().unwrap().get(name).cloned()
    }

    /// Record a call, wait any scripted delay, then take a scripted failure if there is one.
    async fn enter(&self, method: Method, args: Vec<String>) -> Result<usize, DockerError> {
        let index = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call {
                method,
                args,
                at: tokio::time::Instant::now(),
                wall: SystemTime::now(),
                failed: false,
            });
            calls.len() - 1
        };
        let delay = self.script.lock().unwrap().delays.get(&method).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let failure = {
            let mut s = self.script.lock().unwrap();
            s.failures
                .get_mut(&method)
                .and_then(|q| (!q.is_empty()).then(|| q.remove(0)))
        };
        match failure {
            Some(e) => {
                self.mark_failed(index);
                Err(e)
            }
            None => Ok(index),
        }
    }

    fn mark_failed(&self, index: usize) {
        if let Some(c) = self.calls.lock().unwrap().get_mut(index) {
            c.failed = true;
        }
    }

    /// Apply `f` to a known container, or fail the call with NotFound.
    fn with<T>(
        &self,
        index: usize,
        id_or_name: &str,
        f: impl FnOnce(&mut FakeContainer) -> T,
    ) -> Result<T, DockerError> {
        let mut map = self.containers.lock().unwrap();
        match find(&map, id_or_name) {
            Some(k) => Ok(f(map.get_mut(&k).expect("key just found"))),
            None => {
                drop(map);
                self.mark_failed(index);
                Err(DockerError::NotFound)
            }
        }
    }
}

/// The key of a container named or with id `id_or_name`.
fn find(map: &BTreeMap<String, FakeContainer>, id_or_name: &str) -> Option<String> {
    let name = id_or_name.trim_start_matches('/');
    if map.contains_key(name) {
        return Some(name.to_string());
    }
    map.iter()
        .find(|(_, c)| c.id == id_or_name)
        .map(|(k, _)| k.clone())
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn restart(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        let i = self
            .enter(Method::Restart, vec![id.into(), secs(timeout)])
            .await?;
        self.with(i, id, |c| c.running = true)
    }

    async fn start(&self, id_or_name: &str) -> Result<(), DockerError> {
        let i = self.enter(Method::Start, vec![id_or_name.into()]).await?;
        self.with(i, id_or_name, |c| c.running = true)
    }

    async fn stop(&self, id_or_name: &str, timeout: Duration) -> Result<(), DockerError> {
        let i = self
            .enter(Method::Stop, vec![id_or_name.into(), secs(timeout)])
            .await?;
        self.with(i, id_or_name, |c| c.running = false)
    }

    async fn clone_container(
        &self,
        source: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, DockerError> {
        let mut args = vec![source.to_string(), name.to_string()];
        args.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
        let i = self.enter(Method::Clone, args).await?;
        let mut base = self.with(i, source, |c| c.labels.clone())?;
        let mut map = self.containers.lock().unwrap();
        if map.contains_key(name) {
            drop(map);
            self.mark_failed(i);
            return Err(DockerError::Api(format!(
                "409: Conflict. The container name \"/{name}\" is already in use"
            )));
        }
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("fake-{:04}", *n)
        };
        base.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        map.insert(
            name.to_string(),
            FakeContainer {
                id: id.clone(),
                running: true,
                labels: base,
            },
        );
        Ok(id)
    }

    async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let i = self.enter(Method::Remove, vec![id.into()]).await?;
        let mut map = self.containers.lock().unwrap();
        match find(&map, id) {
            Some(k) => {
                map.remove(&k);
                Ok(())
            }
            None => {
                drop(map);
                self.mark_failed(i);
                Err(DockerError::NotFound)
            }
        }
    }

    async fn swarm_leader(&self) -> Result<bool, DockerError> {
        self.enter(Method::SwarmLeader, Vec::new()).await?;
        Ok(*self.leader.lock().unwrap())
    }

    async fn service(&self, name: &str) -> Result<Option<ServiceReplicas>, DockerError> {
        self.enter(Method::Service, vec![name.into()]).await?;
        let map = self.services.lock().unwrap();
        Ok(map
            .iter()
            .find(|(n, s)| *n == name || s.id == name)
            .map(|(n, s)| ServiceReplicas {
                id: s.id.clone(),
                name: n.clone(),
                version: s.version,
                replicas: s.replicas,
            }))
    }

    async fn scale_service(
        &self,
        service: &ServiceReplicas,
        replicas: u64,
    ) -> Result<(), DockerError> {
        let i = self
            .enter(
                Method::ScaleService,
                vec![service.name.clone(), replicas.to_string()],
            )
            .await?;
        let mut map = self.services.lock().unwrap();
        let result = match map.values_mut().find(|s| s.id == service.id) {
            None => Err(DockerError::Api(format!(
                "service {} not found",
                service.name
            ))),
            Some(s) if s.replicas.is_none() => Err(DockerError::Api(format!(
                "service {} is global: it has no replica count to scale",
                service.name
            ))),
            Some(s) if s.version != service.version => {
                Err(DockerError::Api("update out of sequence".to_string()))
            }
            Some(s) => {
                s.replicas = Some(replicas);
                s.version += 1;
                Ok(())
            }
        };
        drop(map);
        if result.is_err() {
            self.mark_failed(i);
        }
        result
    }
}
