//! [`Runtime`] for the real daemon, over the Docker Engine API (bollard).
//!
//! Errors: a container that does not exist is [`DockerError::NotFound`]; everything else goes
//! through lookout's one mapping (`BollardDocker::map_err`), so a transport error also forgets
//! the client. An odd daemon answer is an error, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, NetworkConnectRequest,
    NetworkingConfig, Service, ServiceSpecModeReplicated,
};
use bollard::query_parameters::{
    CreateContainerOptions, RemoveContainerOptions, RestartContainerOptions, StopContainerOptions,
    UpdateServiceOptions,
};
use bollard::Docker;

use super::runtime::{Runtime, ServiceReplicas};
use crate::docker_api::{BollardDocker, DockerError};

/// What a request that waits for a container to stop may take beyond its stop timeout.
const GRACE: Duration = Duration::from_secs(30);

/// Whether `s` can be a container, network or service name or id: Docker's own character set
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, a leading `/` allowed for names as inspect writes them).
/// Anything else could not name an object, and is never put into a request path.
fn plain(s: &str) -> bool {
    let s = s.strip_prefix('/').unwrap_or(s);
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Docker's `t` (whole seconds, rounded up, capped).
fn stop_secs(t: Duration) -> i32 {
    let s = t.as_secs().saturating_add(u64::from(t.subsec_nanos() > 0));
    i32::try_from(s).unwrap_or(i32::MAX)
}

/// A client whose requests may last `t` plus [`GRACE`] (a stop waits up to `t` for the
/// container, then kills it).
fn patient(c: Docker, t: Duration) -> Docker {
    let secs = u64::try_from(stop_secs(t)).unwrap_or(0);
    c.with_timeout(GRACE.saturating_add(Duration::from_secs(secs)))
}

impl BollardDocker {
    /// A unit answer: "not modified" (304, already started or stopped) is success.
    fn unit(&self, r: Result<(), BollardError>) -> Result<(), DockerError> {
        match r {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Remove a container that a failed clone left behind (its anonymous volumes with it).
    async fn discard(&self, c: &Docker, id: &str) {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        if let Err(e) = c.remove_container(id, Some(opts)).await {
            tracing::warn!(container = id, error = %self.map_err(e), "could not remove a failed clone");
        }
    }
}

#[async_trait]
impl Runtime for BollardDocker {
    async fn restart(&self, id: &str, timeout: Duration) -> Result<(), DockerError> {
        if !plain(id) {
            return Err(DockerError::NotFound);
        }
        let c = patient(self.client().await?, timeout);
        let opts = RestartContainerOptions {
            signal: None,
            t: Some(stop_secs(timeout)),
        };
        let r = c.restart_container(id, Some(opts)).await;
        self.unit(r)
    }

    async fn start(&self, id_or_name: &str) -> Result<(), DockerError> {
        if !plain(id_or_name) {
            return Err(DockerError::NotFound);
        }
        let c = self.client().await?;
        let r = c.start_container(id_or_name, None).await;
        self.unit(r)
    }

    async fn stop(&self, id_or_name: &str, timeout: Duration) -> Result<(), DockerError> {
        if !plain(id_or_name) {
            return Err(DockerError::NotFound);
        }
        let c = patient(self.client().await?, timeout);
        let opts = StopContainerOptions {
            signal: None,
            t: Some(stop_secs(timeout)),
        };
        let r = c.stop_container(id_or_name, Some(opts)).await;
        self.unit(r)
    }

    async fn clone_container(
        &self,
        source: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, DockerError> {
        if !plain(source) {
            return Err(DockerError::NotFound);
        }
        if !plain(name) {
            return Err(DockerError::Api(format!(
                "invalid container name {name:?} for a clone of {source}"
            )));
        }
        let c = self.client().await?;
        let src = c
            .inspect_container(source, None)
            .await
            .map_err(|e| self.map_err(e))?;
        let plan = clone_plan(src, labels)?;
        let image = plan.body.image.clone().unwrap_or_default();
        let opts = CreateContainerOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let created = c
            .create_container(Some(opts), plan.body)
            .await
            .map_err(|e| match self.map_err(e) {
                // 404 here is the image (or a network), not the container.
                DockerError::NotFound => DockerError::Api(format!(
                    "creating {name} from {source}: image {image} or a network not found"
                )),
                other => other,
            })?;
        let id = created.id;
        if id.is_empty() || !plain(&id) {
            return Err(DockerError::Api(format!(
                "creating {name}: the daemon answered with no usable id ({id:?})"
            )));
        }
        for w in created.warnings {
            tracing::warn!(container = name, warning = %w, "docker create warning");
        }
        let finish = async {
            for (network, endpoint) in plan.connect {
                if !plain(&network) {
                    return Err(DockerError::Api(format!(
                        "network name {network:?} of {source} is not usable"
                    )));
                }
                let req = NetworkConnectRequest {
                    container: id.clone(),
                    endpoint_config: Some(endpoint),
                };
                c.connect_network(&network, req)
                    .await
                    .map_err(|e| match self.map_err(e) {
                        DockerError::NotFound => DockerError::Api(format!(
                            "connecting {name} to network {network}: not found"
                        )),
                        other => other,
                    })?;
            }
            let r = c.start_container(&id, None).await;
            self.unit(r)
        };
        match finish.await {
            Ok(()) => Ok(id),
            Err(e) => {
                self.discard(&c, &id).await;
                Err(match e {
                    DockerError::NotFound => {
                        DockerError::Api(format!("starting {name}: the new container vanished"))
                    }
                    other => other,
                })
            }
        }
    }

    async fn remove(&self, id: &str) -> Result<(), DockerError> {
        if !plain(id) {
            return Err(DockerError::NotFound);
        }
        let c = self.client().await?;
        let opts = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        let r = c.remove_container(id, Some(opts)).await;
        self.unit(r)
    }

    async fn swarm_leader(&self) -> Result<bool, DockerError> {
        let c = self.client().await?;
        let info = c.info().await.map_err(|e| self.map_err(e))?;
        let Some(swarm) = info.swarm else {
            return Ok(false);
        };
        if swarm.control_available != Some(true) {
            return Ok(false);
        }
        let Some(node) = swarm.node_id.filter(|n| plain(n)) else {
            return Ok(false);
        };
        match c.inspect_node(&node).await {
            Ok(n) => Ok(n.manager_status.and_then(|m| m.leader).unwrap_or(false)),
            // Left the swarm, or demoted, since `info`.
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 503,
                ..
            }) => Ok(false),
            Err(e) => Err(self.map_err(e)),
        }
    }

    async fn service(&self, name: &str) -> Result<Option<ServiceReplicas>, DockerError> {
        if !plain(name) {
            return Ok(None);
        }
        let c = self.client().await?;
        match c.inspect_service(name, None).await {
            Ok(s) => replicas_of(s).map(Some),
            // 404: no such service; 503: not in a swarm (or not a manager, which cannot see
            // services either).
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 503,
                ..
            }) => Ok(None),
            Err(e) => Err(self.map_err(e)),
        }
    }

    async fn scale_service(
        &self,
        service: &ServiceReplicas,
        replicas: u64,
    ) -> Result<(), DockerError> {
        let what = if service.name.is_empty() {
            &service.id
        } else {
            &service.name
        };
        if !plain(&service.id) {
            return Err(DockerError::Api(format!("service {what}: unusable id")));
        }
        let c = self.client().await?;
        let current =
            c.inspect_service(&service.id, None)
                .await
                .map_err(|e| match self.map_err(e) {
                    DockerError::NotFound => DockerError::Api(format!("service {what} not found")),
                    other => other,
                })?;
        let mut spec = current
            .spec
            .ok_or_else(|| DockerError::Api(format!("service {what}: the daemon sent no spec")))?;
        let mode = spec.mode.get_or_insert_with(Default::default);
        if mode.global.is_some() {
            return Err(DockerError::Api(format!(
                "service {what} is global: it has no replica count to scale"
            )));
        }
        if mode.replicated_job.is_some() || mode.global_job.is_some() {
            return Err(DockerError::Api(format!(
                "service {what} is a job: it has no replica count to scale"
            )));
        }
        let count = i64::try_from(replicas)
            .map_err(|_| DockerError::Api(format!("{replicas} replicas is too many")))?;
        mode.replicated = Some(ServiceSpecModeReplicated {
            replicas: Some(count),
        });
        let version = i32::try_from(service.version).map_err(|_| {
            DockerError::Api(format!(
                "service {what}: version {} is beyond the API's range",
                service.version
            ))
        })?;
        let opts = UpdateServiceOptions {
            version,
            ..Default::default()
        };
        let r = c
            .update_service(&service.id, spec, opts, None)
            .await
            .map_err(|e| match self.map_err(e) {
                DockerError::NotFound => DockerError::Api(format!("service {what} not found")),
                other => other,
            })?;
        for w in r.warnings.unwrap_or_default() {
            tracing::warn!(service = %what, warning = %w, "docker service update warning");
        }
        Ok(())
    }
}

/// A service's replica count as the trait reports it: `None` for a global service (or a job).
fn replicas_of(s: Service) -> Result<ServiceReplicas, DockerError> {
    let id =
        s.id.filter(|i| !i.is_empty())
            .ok_or_else(|| DockerError::Api("service inspect: no ID".into()))?;
    let version = s.version.and_then(|v| v.index).unwrap_or(0);
    let spec = s.spec.unwrap_or_default();
    let name = spec.name.unwrap_or_default();
    let replicas = match spec.mode {
        // Swarm's default mode: replicated, one replica.
        None => Some(1),
        Some(m) => match m.replicated {
            Some(r) if m.global.is_none() => {
                Some(u64::try_from(r.replicas.unwrap_or(1)).unwrap_or(0))
            }
            _ if m.global.is_none() && m.replicated_job.is_none() && m.global_job.is_none() => {
                Some(1)
            }
            _ => None,
        },
    };
    Ok(ServiceReplicas {
        id,
        name,
        version,
        replicas,
    })
}

/// How to create a clone: the create body (with its first network) and the networks to
/// connect after create, before start.
#[derive(Debug)]
pub(crate) struct ClonePlan {
    pub body: ContainerCreateBody,
    pub connect: Vec<(String, EndpointSettings)>,
}

/// The clone of an inspected container (see [`Runtime::clone_container`]): the same image
/// (`Config.Image`, what it was created from), command, environment, user, ports, health check,
/// labels (with `labels` over them), stop signal, volumes and host config; fixed host ports
/// dropped (container ports kept, Docker picks host ports), no name, hostname, MAC or fixed IP.
pub(crate) fn clone_plan(
    src: ContainerInspectResponse,
    labels: &BTreeMap<String, String>,
) -> Result<ClonePlan, DockerError> {
    let cfg = src.config.unwrap_or_default();
    let image = cfg
        .image
        .filter(|i| !i.is_empty())
        .or(src.image.filter(|i| !i.is_empty()))
        .ok_or_else(|| DockerError::Api("the source container names no image".into()))?;
    let src_id = src.id.unwrap_or_default();
    let src_name = src
        .name
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string();

    let mut all_labels: HashMap<String, String> = cfg.labels.unwrap_or_default();
    all_labels.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));

    let mut hc = src.host_config.unwrap_or_default();
    if let Some(ports) = hc.port_bindings.as_mut() {
        for binding in ports.values_mut().flatten().flatten() {
            binding.host_port = None;
        }
    }
    hc.container_id_file = None;
    let mode = hc.network_mode.clone().unwrap_or_default();

    // Networks: none to join when the container shares another's stack (or has none).
    let own_stack = !(mode == "host"
        || mode == "none"
        || mode.starts_with("container:")
        || mode.starts_with("service:"));
    let mut networks: Vec<(String, String, EndpointSettings)> = if own_stack {
        src.network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, _)| !n.is_empty())
            .map(|(n, ep)| {
                let fresh = endpoint(&ep, &src_id, &src_name);
                (n, ep.network_id.unwrap_or_default(), fresh)
            })
            .collect()
    } else {
        Vec::new()
    };
    networks.sort_by(|a, b| a.0.cmp(&b.0));
    // The network the host config names (by name or id) is joined at create, the others
    // after create, before start.
    let primary = networks.iter().position(|(n, nid, _)| {
        if mode.is_empty() || mode == "default" {
            n == "bridge"
        } else {
            *n == mode || (!nid.is_empty() && nid.starts_with(&mode))
        }
    });
    let networking_config = primary.map(|i| {
        let (n, _, ep) = networks.remove(i);
        NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n, ep)])),
        }
    });
    let connect = networks.into_iter().map(|(n, _, ep)| (n, ep)).collect();

    let body = ContainerCreateBody {
        image: Some(image),
        user: cfg.user,
        domainname: cfg.domainname,
        exposed_ports: cfg.exposed_ports,
        tty: cfg.tty,
        open_stdin: cfg.open_stdin,
        stdin_once: cfg.stdin_once,
        env: cfg.env,
        cmd: cfg.cmd,
        healthcheck: cfg.healthcheck,
        args_escaped: cfg.args_escaped,
        volumes: cfg.volumes,
        working_dir: cfg.working_dir,
        entrypoint: cfg.entrypoint,
        network_disabled: cfg.network_disabled,
        labels: Some(all_labels),
        stop_signal: cfg.stop_signal,
        stop_timeout: cfg.stop_timeout,
        shell: cfg.shell,
        host_config: Some(hc),
        networking_config,
        ..Default::default()
    };
    Ok(ClonePlan { body, connect })
}

/// A fresh endpoint with the source's aliases (less the ones Docker gave the source itself:
/// its short id and its name), links and driver options; no fixed IP or MAC.
fn endpoint(ep: &EndpointSettings, src_id: &str, src_name: &str) -> EndpointSettings {
    let aliases: Vec<String> = ep
        .aliases
        .iter()
        .flatten()
        .filter(|a| {
            !a.is_empty() && *a != src_name && !(a.len() >= 12 && src_id.starts_with(a.as_str()))
        })
        .cloned()
        .collect();
    EndpointSettings {
        aliases: (!aliases.is_empty()).then_some(aliases),
        links: ep.links.clone().filter(|l| !l.is_empty()),
        driver_opts: ep.driver_opts.clone().filter(|d| !d.is_empty()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, HostConfig, NetworkSettings, PortBinding};

    fn ep(aliases: &[&str], nid: &str) -> EndpointSettings {
        EndpointSettings {
            aliases: Some(aliases.iter().map(|s| s.to_string()).collect()),
            network_id: Some(nid.into()),
            ip_address: Some("172.18.0.5".into()),
            mac_address: Some("02:42:ac:12:00:05".into()),
            ..Default::default()
        }
    }

    fn source(mode: &str, nets: &[(&str, EndpointSettings)]) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("0123456789abcdef0123".into()),
            name: Some("/web-1".into()),
            image: Some("sha256:feed".into()),
            config: Some(ContainerConfig {
                hostname: Some("0123456789ab".into()),
                image: Some("app:1".into()),
                env: Some(vec!["A=1".into()]),
                cmd: Some(vec!["sleep".into(), "1".into()]),
                labels: Some(HashMap::from([
                    ("keep".into(), "1".into()),
                    ("n".into(), "1".into()),
                ])),
                exposed_ports: Some(vec!["80/tcp".into()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some(mode.into()),
                binds: Some(vec!["data:/data".into()]),
                port_bindings: Some(HashMap::from([(
                    "80/tcp".to_string(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some("8080".into()),
                    }]),
                )])),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                networks: Some(
                    nets.iter()
                        .map(|(n, e)| (n.to_string(), e.clone()))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn clone_keeps_the_config_and_drops_identity() {
        let labels = BTreeMap::from([("n".to_string(), "2".to_string())]);
        let src = source(
            "front",
            &[
                ("back", ep(&["db-client"], "bbbb")),
                ("front", ep(&["web", "0123456789ab", "web-1"], "ffff")),
            ],
        );
        let plan = clone_plan(src, &labels).unwrap();
        let b = &plan.body;
        assert_eq!(b.image.as_deref(), Some("app:1"));
        assert_eq!(b.hostname, None);
        assert_eq!(b.env.as_deref(), Some(&["A=1".to_string()][..]));
        let l = b.labels.as_ref().unwrap();
        assert_eq!((l["keep"].as_str(), l["n"].as_str()), ("1", "2"));
        let hc = b.host_config.as_ref().unwrap();
        assert_eq!(hc.binds.as_deref(), Some(&["data:/data".to_string()][..]));
        let pb = &hc.port_bindings.as_ref().unwrap()["80/tcp"]
            .as_ref()
            .unwrap()[0];
        assert_eq!(pb.host_port, None);
        assert_eq!(pb.host_ip.as_deref(), Some("127.0.0.1"));
        // The mode's network at create, with its alias but not the source's own names.
        let eps = b
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap();
        assert_eq!(eps.len(), 1);
        let front = &eps["front"];
        assert_eq!(front.aliases.as_deref(), Some(&["web".to_string()][..]));
        assert_eq!(
            (front.ip_address.as_ref(), front.mac_address.as_ref()),
            (None, None)
        );
        // The other after.
        assert_eq!(plan.connect.len(), 1);
        assert_eq!(plan.connect[0].0, "back");
        assert_eq!(
            plan.connect[0].1.aliases.as_deref(),
            Some(&["db-client".to_string()][..])
        );
    }

    #[test]
    fn clone_networks_by_mode() {
        let none = BTreeMap::new();
        // Default bridge.
        let p = clone_plan(source("default", &[("bridge", ep(&[], "b"))]), &none).unwrap();
        let eps = p.body.networking_config.unwrap().endpoints_config.unwrap();
        assert!(eps.contains_key("bridge") && eps["bridge"].aliases.is_none());
        assert!(p.connect.is_empty());
        // The mode names the network by id.
        let p = clone_plan(
            source(
                "ffff",
                &[("a", ep(&[], "aaaa")), ("front", ep(&[], "ffff"))],
            ),
            &none,
        )
        .unwrap();
        let eps = p.body.networking_config.unwrap().endpoints_config.unwrap();
        assert!(eps.contains_key("front"));
        assert_eq!(p.connect[0].0, "a");
        // Sharing another stack: no networks.
        for mode in ["host", "none", "container:abc"] {
            let p = clone_plan(source(mode, &[(mode, ep(&[], "x"))]), &none).unwrap();
            assert!(p.body.networking_config.is_none() && p.connect.is_empty());
        }
        // No image at all is an error, not a panic.
        let empty = ContainerInspectResponse::default();
        assert!(matches!(clone_plan(empty, &none), Err(DockerError::Api(_))));
    }

    #[test]
    fn replica_counts() {
        use bollard::models::{ObjectVersion, ServiceSpec, ServiceSpecMode};
        let svc = |mode: Option<ServiceSpecMode>| Service {
            id: Some("sid".into()),
            version: Some(ObjectVersion { index: Some(7) }),
            spec: Some(ServiceSpec {
                name: Some("web".into()),
                mode,
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = replicas_of(svc(Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(3) }),
            ..Default::default()
        })))
        .unwrap();
        assert_eq!(
            (r.id.as_str(), r.name.as_str(), r.version),
            ("sid", "web", 7)
        );
        assert_eq!(r.replicas, Some(3));
        let g = replicas_of(svc(Some(ServiceSpecMode {
            global: Some(HashMap::new()),
            ..Default::default()
        })))
        .unwrap();
        assert_eq!(g.replicas, None);
        assert_eq!(replicas_of(svc(None)).unwrap().replicas, Some(1));
        let neg = replicas_of(svc(Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(-1) }),
            ..Default::default()
        })))
        .unwrap();
        assert_eq!(neg.replicas, Some(0));
        assert!(replicas_of(Service::default()).is_err());
    }

    #[test]
    fn names_and_timeouts() {
        assert!(plain("web_1.a-b") && plain("/web") && plain("0123abc"));
        assert!(!plain("") && !plain("a/b") && !plain("a?b") && !plain("../x") && !plain("/"));
        assert_eq!(stop_secs(Duration::from_millis(1500)), 2);
        assert_eq!(stop_secs(Duration::ZERO), 0);
        assert_eq!(stop_secs(Duration::MAX), i32::MAX);
    }
}
