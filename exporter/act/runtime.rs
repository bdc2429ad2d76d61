//! What failover actions ask of Docker: one trait, implemented over the Docker Engine API for
//! the real daemon and by the tests' fake.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::docker_api::DockerError;

/// A Swarm service's replica count.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceReplicas {
    pub id: String,
    pub name: String,
    /// The service spec's version (Swarm's optimistic lock for updates).
    pub version: u64,
    /// `None` for a global service.
    pub replicas: Option<u64>,
}

/// The actions' runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `docker restart -t <timeout>`.
    async fn restart(&self, id: &str, timeout: Duration) -> Result<(), DockerError>;
    /// `docker start` (a container already running is fine).
    async fn start(&self, id_or_name: &str) -> Result<(), DockerError>;
    /// `docker stop -t <timeout>` (a container already stopped is fine).
    async fn stop(&self, id_or_name: &str, timeout: Duration) -> Result<(), DockerError>;
    /// Create and start a container cloned from `source` (same image, command, env, host
    /// config, networks with their aliases, volumes and labels), named `name`, with `labels`
    /// added or replaced; returns the new container's id.
    async fn clone_container(
        &self,
        source: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, DockerError>;
    /// Stop and remove a container (`docker rm -f`, volumes kept).
    async fn remove(&self, id: &str) -> Result<(), DockerError>;
    /// Whether this daemon is a Swarm manager and the Raft leader.
    async fn swarm_leader(&self) -> Result<bool, DockerError>;
    /// A Swarm service by name or id; `Ok(None)` when there is no such service (or no Swarm).
    async fn service(&self, name: &str) -> Result<Option<ServiceReplicas>, DockerError>;
    /// Set a replicated service's replica count (at `version`).
    async fn scale_service(
        &self,
        service: &ServiceReplicas,
        replicas: u64,
    ) -> Result<(), DockerError>;
}
