//! The probe collector: active health probes for containers that have no HEALTHCHECK.
//!
//! A container opts in with the label `lookout.probe`:
//!
//! - `http://[host][:port][/path]`: a `GET`; an answer with a 2xx or 3xx status is a success
//!   (only the status line is read, at most [`READ_CAP`] bytes);
//! - `tcp://[host]:port`: an accepted connection is a success.
//!
//! Without a host (`http://:8080/health`, `tcp://:5432`) the container's own IP address on its
//! first network ([`ContainerInfo::ip_address`]) is probed; a container on the host's network
//! names one (`http://127.0.0.1:8080/health`). A label that does not parse is logged once per
//! container and the container is not probed (no series, `probe_ok` unknown).
//!
//! # Tasks
//!
//! A supervisor task watches the inventory ([`DockerState::view`], woken by its events and a
//! 1 s tick) and keeps one task per running, opted-in container, which probes it every
//! `collectors.probe_interval`, each probe under a timeout of that interval or [`MAX_TIMEOUT`],
//! whichever is shorter. At most [`MAX_CONCURRENT`] probes run at once. Results are kept per
//! container; a container that stops, is removed or drops its label loses its task and its
//! result. `collect()` only reports the latest results: a slow probe never delays a
//! collection cycle.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::docker::DockerState;
use super::{CollectFuture, Collector};
use crate::snapshot::{ContainerInfo, Part, ProbePart, ProbeResult, State};

/// The label a container opts in with.
pub const LABEL: &str = "lookout.probe";
/// Probes running at once, over all containers.
pub const MAX_CONCURRENT: usize = 32;
/// The longest a probe may take, whatever the interval.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of an HTTP answer read while looking for its status line.
pub const READ_CAP: usize = 4096;
/// How often the supervisor looks at the inventory besides Docker's events.
const TICK: Duration = Duration::from_secs(1);

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Http,
    Tcp,
}

/// A parsed `lookout.probe` label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    pub kind: ProbeKind,
    /// The host as written (an IPv6 address without its brackets); None: the container's own
    /// address.
    pub host: Option<String>,
    pub port: u16,
    /// HTTP: the path and query sent, starting with `/`; TCP: empty.
    pub path: String,
}

/// Where one probe goes, with the host worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// `host:port` to connect to (an IPv6 address in brackets).
    pub addr: String,
    /// The HTTP `Host` header: the host, with the port unless it is 80.
    pub host_header: String,
    /// The whole target, for messages and the snapshot: `http://172.17.0.2:8080/health`.
    pub url: String,
}

/// Parse a `lookout.probe` label: `http://[host][:port][/path]` (port 80 by default) or
/// `tcp://[host]:port`. The error says what is wrong, for the log.
pub fn parse_label(value: &str) -> Result<ProbeSpec, String> {
    const FORMS: &str = "expected http://[host][:port][/path] or tcp://[host]:port, e.g. \
                         http://:8080/health or tcp://:5432";
    let value = value.trim();
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(FORMS.to_string());
    };
    let kind = match scheme.to_ascii_lowercase().as_str() {
        "http" => ProbeKind::Http,
        "tcp" => ProbeKind::Tcp,
        "https" => {
            return Err(
                "https is not supported (lookout has no TLS client); probe the port with \
                 tcp://:PORT instead"
                    .to_string(),
            )
        }
        _ => return Err(format!("unsupported scheme {scheme:?}; {FORMS}")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("user information (user@host) is not supported".to_string());
    }
    let (host, port) = split_authority(authority)?;
    let port = match (port, kind) {
        (Some(p), _) => Some(p),
        (None, ProbeKind::Http) => Some(80),
        (None, ProbeKind::Tcp) => None,
    };
    let Some(port) = port else {
        return Err("a tcp probe needs a port, e.g. tcp://:5432".to_string());
    };
    if let Some(h) = &host {
        check_host(h)?;
    }
    let path = match kind {
        ProbeKind::Tcp => {
            if !tail.is_empty() && tail != "/" {
                return Err(format!("a tcp probe takes no path, got {tail:?}"));
            }
            String::new()
        }
        ProbeKind::Http => {
            // A fragment is the client's business, never sent.
            let tail = tail.split('#').next().unwrap_or("");
            if let Some(c) = tail.chars().find(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("the path may not contain {c:?}"));
            }
            if tail.starts_with('/') {
                tail.to_string()
            } else {
                format!("/{tail}")
            }
        }
    };
    Ok(ProbeSpec {
        kind,
        host,
        port,
        path,
    })
}

/// `host:port`, `[v6]:port`, `:port`, `host` or nothing, as (host, port).
fn split_authority(a: &str) -> Result<(Option<String>, Option<u16>), String> {
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let Some((inner, after)) = v6.split_once(']') else {
            return Err(format!("unclosed [ in {a:?}"));
        };
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address {inner:?}"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("expected :port after the IPv6 address, got {p:?}"))?,
            ),
        };
        (inner, port)
    } else {
        match a.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(format!(
                        "invalid host and port {a:?} (an IPv6 address goes in brackets: [::1]:80)"
                    ));
                }
                (h, Some(p))
            }
            None => (a, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("invalid port {p:?} (1-65535)")),
        },
    };
    Ok(((!host.is_empty()).then(|| host.to_string()), port))
}

/// A host name or IPv4 address: letters, digits, `.`, `-` and `_` (IPv6 was checked whole).
fn check_host(h: &str) -> Result<(), String> {
    if h.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("invalid character {c:?} in host {h:?}"));
    }
    Ok(())
}

impl ProbeSpec {
    /// Where the probe goes for a container whose own address is `container_ip` (empty when
    /// it has none).
    pub fn target(&self, container_ip: &str) -> Result<ProbeTarget, String> {
        let host = match &self.host {
            Some(h) => h.as_str(),
            None if container_ip.is_empty() => {
                return Err(
                    "the container has no IP address (host or none network, or not started): \
                     give a host in the label, e.g. http://127.0.0.1:8080/health"
                        .to_string(),
                )
            }
            None => container_ip,
        };
        let host = if host.parse::<Ipv6Addr>().is_ok() {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let addr = format!("{host}:{}", self.port);
        Ok(match self.kind {
            ProbeKind::Tcp => ProbeTarget {
                url: format!("tcp://{addr}"),
                host_header: host,
                addr,
            },
            ProbeKind::Http => ProbeTarget {
                url: format!("http://{addr}{}", self.path),
                host_header: if self.port == 80 { host } else { addr.clone() },
                addr,
            },
        })
    }

    /// The label as lookout reads it, for messages where no target could be worked out.
    fn display(&self) -> String {
        let scheme = match self.kind {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
        };
        let host = match &self.host {
            Some(h) if h.contains(':') => format!("[{h}]"),
            Some(h) => h.clone(),
            None => String::new(),
        };
        format!("{scheme}://{host}:{}{}", self.port, self.path)
    }
}

/// Run one probe, within `timeout`.
pub async fn probe(
    kind: ProbeKind,
    target: &ProbeTarget,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let work = async {
        let mut stream = TcpStream::connect(&target.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", target.addr))?;
        if kind == ProbeKind::Tcp {
            return Ok(());
        }
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lookout/{}\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n",
            target.host_header,
            env!("CARGO_PKG_VERSION")
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut buf = vec![0u8; READ_CAP];
        let mut len = 0;
        loop {
            if let Some(nl) = buf[..len].iter().position(|b| *b == b'\n') {
                return check_status(&buf[..nl]);
            }
            if len == buf.len() {
                return Err(format!("no HTTP status line in the first {READ_CAP} bytes"));
            }
            let n = stream
                .read(&mut buf[len..])
                .await
                .map_err(|e| format!("reading the answer: {e}"))?;
            if n == 0 {
                if len == 0 {
                    return Err("connection closed without an answer".to_string());
                }
                return check_status(&buf[..len]);
            }
            len += n;
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "timed out after {}",
            crate::config::format_duration(timeout)
        )),
    }
}

/// A status line (`HTTP/1.1 204 No Content`): Ok for 2xx and 3xx.
pub fn check_status(line: &[u8]) -> Result<(), String> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end();
    let mut words = line.split_whitespace();
    let code = match (words.next(), words.next()) {
        (Some(v), Some(c)) if v.starts_with("HTTP/") && c.len() == 3 => c.parse::<u16>().ok(),
        _ => None,
    };
    let Some(code) = code else {
        let shown: String = line.chars().take(60).collect();
        return Err(format!("not an HTTP answer: {shown:?}"));
    };
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP status {code}"))
    }
}

/// The latest result of one container's probe, shared between its task and `collect()`.
#[derive(Default)]
struct Slot {
    result: Mutex<Option<ProbeResult>>,
}

struct Probed {
    label: String,
    ip: String,
    slot: Arc<Slot>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Table {
    probed: HashMap<String, Probed>,
    /// Containers whose label does not parse, with that label: logged once.
    invalid: HashMap<String, String>,
    /// The inventory last reconciled, to skip unchanged ones cheaply.
    seen: Option<Arc<Vec<ContainerInfo>>>,
}

struct Inner {
    docker: Arc<DockerState>,
    interval: Duration,
    timeout: Duration,
    permits: Arc<Semaphore>,
    table: Mutex<Table>,
}

/// Probes the containers that carry the label `lookout.probe`.
pub struct ProbeCollector {
    inner: Arc<Inner>,
    supervisor: super::docker::Follower,
}

impl ProbeCollector {
    /// Nothing is started until the first `collect()` (which runs inside the runtime).
    pub fn new(docker: Arc<DockerState>, interval: Duration) -> ProbeCollector {
        ProbeCollector {
            inner: Arc::new(Inner {
                docker,
                interval,
                timeout: interval.min(MAX_TIMEOUT),
                permits: Arc::new(Semaphore::new(MAX_CONCURRENT)),
                table: Mutex::new(Table::default()),
            }),
            supervisor: Default::default(),
        }
    }

    fn ensure_supervisor(&self) {
        let inner = self.inner.clone();
        self.supervisor.ensure(|| inner.supervise());
    }
}

impl Drop for ProbeCollector {
    fn drop(&mut self) {
        for p in self.inner.table.lock().unwrap().probed.values() {
            p.task.abort();
        }
    }
}

impl Collector for ProbeCollector {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            self.ensure_supervisor();
            self.inner.sync();
            Ok(Part::Probe(self.inner.part()))
        })
    }
}

impl Inner {
    async fn supervise(self: Arc<Self>) {
        let docker = self.docker.clone();
        docker.follow(TICK, || self.sync()).await;
    }

    /// Reconcile the probe tasks with the inventory, if it changed.
    fn sync(&self) {
        let view = self.docker.view();
        let mut guard = self.table.lock().unwrap();
        if guard.seen.as_ref().is_some_and(|v| Arc::ptr_eq(v, &view)) {
            // Unchanged; only a task that died (a panic) is started again.
            self.restart_finished(&mut guard, &view);
            return;
        }
        self.reconcile(&mut guard, &view);
        guard.seen = Some(view);
    }

    fn restart_finished(&self, t: &mut Table, view: &[ContainerInfo]) {
        for c in view {
            if let Some(p) = t.probed.get_mut(&c.id) {
                if p.task.is_finished() {
                    if let Ok(spec) = parse_label(&p.label) {
                        p.task = self.spawn(c, spec, p.slot.clone());
                    }
                }
            }
        }
    }

    fn reconcile(&self, t: &mut Table, view: &[ContainerInfo]) {
        let mut probed = HashSet::new();
        let mut listed = HashSet::with_capacity(view.len());
        for c in view {
            listed.insert(c.id.as_str());
            if c.state != State::Running {
                continue;
            }
            let Some(label) = c.labels.get(LABEL) else {
                continue;
            };
            let current = t.probed.get_mut(&c.id);
            if let Some(p) = current.filter(|p| p.label == *label && p.ip == c.ip_address) {
                if p.task.is_finished() {
                    if let Ok(spec) = parse_label(label) {
                        p.task = self.spawn(c, spec, p.slot.clone());
                    }
                }
                probed.insert(c.id.as_str());
                continue;
            }
            let old = t.probed.remove(&c.id);
            if let Some(o) = &old {
                o.task.abort();
            }
            let spec = match parse_label(label) {
                Ok(s) => s,
                Err(error) => {
                    if t.invalid.get(&c.id) != Some(label) {
                        tracing::warn!(
                            container = %c.name,
                            label = %format!("{LABEL}={label}"),
                            error = %error,
                            "the container's probe label is invalid; it is not probed"
                        );
                        t.invalid.insert(c.id.clone(), label.clone());
                    }
                    continue;
                }
            };
            t.invalid.remove(&c.id);
            // The same probe at a new address (a restart on the bridge) keeps its last result
            // until the next one; a changed label starts afresh.
            let slot = old
                .filter(|o| o.label == *label)
                .map(|o| o.slot)
                .unwrap_or_default();
            tracing::debug!(container = %c.name, probe = %label, "probing");
            let task = self.spawn(c, spec, slot.clone());
            t.probed.insert(
                c.id.clone(),
                Probed {
                    label: label.clone(),
                    ip: c.ip_address.clone(),
                    slot,
                    task,
                },
            );
            probed.insert(c.id.as_str());
        }
        t.probed.retain(|id, p| {
            let keep = probed.contains(id.as_str());
            if !keep {
                p.task.abort();
            }
            keep
        });
        t.invalid.retain(|id, _| listed.contains(id.as_str()));
    }

    fn spawn(&self, c: &ContainerInfo, spec: ProbeSpec, slot: Arc<Slot>) -> JoinHandle<()> {
        let task = ProbeTask {
            id: c.id.clone(),
            name: c.name.clone(),
            ip: c.ip_address.clone(),
            spec,
            slot,
            interval: self.interval,
            timeout: self.timeout,
            permits: self.permits.clone(),
        };
        tokio::spawn(task.run())
    }

    /// The latest results, sorted by container id.
    fn part(&self) -> ProbePart {
        let t = self.table.lock().unwrap();
        let mut results: Vec<ProbeResult> = t
            .probed
            .values()
            .filter_map(|p| p.slot.result.lock().unwrap().clone())
            .collect();
        results.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        ProbePart { results }
    }
}

/// Probes one container every interval, for as long as it is not aborted.
struct ProbeTask {
    id: String,
    name: String,
    ip: String,
    spec: ProbeSpec,
    slot: Arc<Slot>,
    interval: Duration,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

impl ProbeTask {
    async fn run(self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether the last probe succeeded, to log changes only.
        let mut last_ok: Option<bool> = None;
        loop {
            tick.tick().await;
            let Ok(_permit) = self.permits.acquire().await else {
                return;
            };
            let at = crate::now_unix();
            let start = Instant::now();
            let (url, outcome) = match self.spec.target(&self.ip) {
                Ok(t) => {
                    let r = probe(self.spec.kind, &t, &self.spec.path, self.timeout).await;
                    (t.url, r)
                }
                Err(e) => (self.spec.display(), Err(e)),
            };
            let duration_seconds = start.elapsed().as_secs_f64();
            let ok = outcome.is_ok();
            match (&outcome, last_ok) {
                (Err(e), None | Some(true)) => {
                    tracing::info!(container = %self.name, target = %url, error = %e, "probe failed");
                }
                (Ok(()), Some(false)) => {
                    tracing::info!(container = %self.name, target = %url, "probe succeeds again");
                }
                _ => {}
            }
            last_ok = Some(ok);
            *self.slot.result.lock().unwrap() = Some(ProbeResult {
                container_id: self.id.clone(),
                target: url,
                success: ok,
                duration_seconds,
                at,
                error: outcome.err(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
