//! The one trait through which lookout talks to Docker, and its implementation: bollard, and
//! for following logs lookout's own bounded reader (`log_stream`).
//!
//! Collectors take any [`DockerApi`], so the same code runs against the real daemon (unix socket
//! or `tcp://` DOCKER_HOST) and against the benchmark's synthetic inventory.

use std::collections::BTreeMap;
use std::pin::Pin;

use async_trait::async_trait;
use bollard::Docker;
use futures_util::{Stream, StreamExt};
use std::sync::{Arc, Mutex};

mod log_stream;

use crate::snapshot::{
    BlkDevice, ContainerInfo, ContainerStats, CpuStats, Health, Limits, MemoryStats, NetInterface,
    Network, State, StatsSource,
};

/// A boxed stream, as the trait returns them.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// What can go wrong talking to Docker.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DockerError {
    #[error("no such container")]
    NotFound,
    #[error("docker daemon unreachable at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("docker API error: {0}")]
    Api(String),
}

/// One entry of `GET /containers/json?all=1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: String,
    pub state: String,
    /// Human status ("Up 5 minutes (healthy)"), used to notice health changes on resync.
    pub status: String,
}

/// One container event from `GET /events`.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerEvent {
    /// `start`, `die`, `oom`, `health_status: unhealthy`, `destroy`, `rename`, ...
    pub action: String,
    pub id: String,
    pub name: String,
    /// Unix nanoseconds.
    pub time_nano: i64,
    pub attributes: BTreeMap<String, String>,
}

impl DockerEvent {
    /// The action without its detail (`health_status: healthy` → `health_status`).
    pub fn kind(&self) -> &str {
        self.action.split(':').next().unwrap_or("").trim()
    }
}

/// Daemon facts for `lookout doctor` and cgroup detection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonInfo {
    pub version: String,
    pub api_version: String,
    pub cgroup_driver: String,
    pub cgroup_version: String,
    pub runtimes: Vec<String>,
    pub os: String,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// A chunk of a container's log output (Docker frames may hold several lines or part of one).
#[derive(Debug, Clone)]
pub struct LogChunk {
    pub stream: LogStream,
    /// Docker's timestamp of the message (unix ns), when the daemon sent one. `since` has
    /// whole-second granularity; this lets a follower skip lines it has already counted.
    pub time_nano: Option<i64>,
    pub bytes: bytes::Bytes,
}

/// Everything lookout asks of Docker.
#[async_trait]
pub trait DockerApi: Send + Sync + 'static {
    /// The address, for messages.
    fn host(&self) -> &str;
    /// Whether cgroup files of this daemon's containers can be on this machine at all.
    fn is_local(&self) -> bool;
    async fn info(&self) -> Result<DaemonInfo, DockerError>;
    async fn list(&self) -> Result<Vec<Listed>, DockerError>;
    /// Ok(None) when the container no longer exists.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DockerError>;
    /// Container events since the given unix time (s), following.
    fn events(&self, since: Option<i64>) -> BoxStream<Result<DockerEvent, DockerError>>;
    /// One stats sample (`stream=false&one-shot=true`), for when cgroup files can't be read.
    async fn stats_once(&self, id: &str) -> Result<Option<ContainerStats>, DockerError>;
    /// Follow a container's stdout and stderr from `since` (unix s).
    fn logs(&self, id: &str, since: i64) -> BoxStream<Result<LogChunk, DockerError>>;
    /// The container's last `lines` log lines (stdout and stderr, in the order written), for a
    /// notification: at most `max_bytes` of the daemon's answer are read, escape sequences and
    /// control characters are removed, blank lines skipped, and each line is cut at
    /// [`TAIL_LINE_MAX`] characters. Empty when the container no longer exists.
    async fn logs_tail(
        &self,
        id: &str,
        lines: usize,
        max_bytes: usize,
    ) -> Result<Vec<String>, DockerError>;
}

/// The most characters [`DockerApi::logs_tail`] keeps of one line (`…` marks a cut).
pub const TAIL_LINE_MAX: usize = 2000;

/// The real daemon, through bollard (logs through `log_stream`, whose memory is bounded).
pub struct BollardDocker {
    host: String,
    /// The client at the API version the daemon speaks, once a connection succeeded; cleared
    /// when the daemon goes away so a restarted daemon is negotiated with afresh.
    client: Arc<Mutex<Option<Docker>>>,
}

/// The largest inspect answer read (a container with thousands of labels or mounts is still
/// far below this).
const INSPECT_MAX: usize = 8 << 20;
/// The largest container list read.
const LIST_MAX: usize = 256 << 20;

impl BollardDocker {
    /// `GET path` at the negotiated API version, the whole body (at most `max` bytes). lookout
    /// reads inspect and list answers itself rather than through bollard's typed models, so
    /// that a value a newer daemon sends (a new state, a new health status) is kept as text
    /// instead of failing the whole answer.
    async fn get_json(&self, path: &str, max: usize) -> Result<bytes::Bytes, DockerError> {
        self.get_with(path, |r| r.bytes(max)).await
    }

    /// `GET path` at the negotiated API version, its response read by `read`; within 30 s.
    async fn get_with<T, F, Fut>(&self, path: &str, read: F) -> Result<T, DockerError>
    where
        F: FnOnce(log_stream::Response) -> Fut,
        Fut: std::future::Future<Output = Result<T, log_stream::HttpError>>,
    {
        let client = self.client().await?;
        let v = client.client_version();
        let full = format!("/v{}.{}{path}", v.major_version, v.minor_version);
        let fetch = async { read(log_stream::get(&self.host, &full).await?).await };
        match tokio::time::timeout(std::time::Duration::from_secs(30), fetch).await {
            Err(_) => {
                *self.client.lock().unwrap() = None;
                Err(DockerError::Unreachable {
                    host: self.host.clone(),
                    reason: format!("no answer to GET {path} within 30 s"),
                })
            }
            Ok(Ok(b)) => Ok(b),
            Ok(Err(log_stream::HttpError::Status { status: 404, .. })) => {
                Err(DockerError::NotFound)
            }
            Ok(Err(log_stream::HttpError::Io(e))) => {
                *self.client.lock().unwrap() = None;
                Err(DockerError::Unreachable {
                    host: self.host.clone(),
                    reason: e.to_string(),
                })
            }
            Ok(Err(e)) => Err(DockerError::Api(format!("GET {path}: {e}"))),
        }
    }

    /// Prepare a client; nothing is sent (and a missing socket is no error) until the first call.
    pub fn new(host: &str) -> Result<BollardDocker, DockerError> {
        if !(host.starts_with("unix://")
            || host.starts_with("tcp://")
            || host.starts_with("http://"))
        {
            return Err(DockerError::Unreachable {
                host: host.to_string(),
                reason: "expected unix:///path/to/docker.sock or tcp://host:port".into(),
            });
        }
        Ok(BollardDocker {
            host: host.to_string(),
            client: Arc::new(Mutex::new(None)),
        })
    }

    /// The negotiated bollard client (connecting first if there is none).
    pub(crate) async fn client(&self) -> Result<Docker, DockerError> {
        connect(&self.host, &self.client).await
    }

    /// A bollard error as lookout's (a transport error forgets the client).
    pub(crate) fn map_err(&self, e: bollard::errors::Error) -> DockerError {
        map_err(&self.host, &self.client, e)
    }
}

/// A bollard error as lookout's; a transport error forgets the client, so the next call
/// connects and negotiates afresh.
fn map_err(host: &str, cache: &Mutex<Option<Docker>>, e: bollard::errors::Error) -> DockerError {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code: 404, ..
        } => DockerError::NotFound,
        E::DockerResponseServerError {
            status_code,
            message,
        } => DockerError::Api(format!("{status_code}: {message}")),
        E::JsonDataError { .. } | E::JsonSerdeError { .. } => DockerError::Api(e.to_string()),
        other => {
            *cache.lock().unwrap() = None;
            unreachable(host, &other)
        }
    }
}

fn unreachable(host: &str, e: &bollard::errors::Error) -> DockerError {
    DockerError::Unreachable {
        host: host.to_string(),
        reason: describe(e),
    }
}

/// Connect and negotiate the API version (bollard's default may be newer than the daemon's).
async fn connect(host: &str, cache: &Mutex<Option<Docker>>) -> Result<Docker, DockerError> {
    if let Some(c) = cache.lock().unwrap().clone() {
        return Ok(c);
    }
    let timeout = 30;
    let raw = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(host, timeout, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|e| unreachable(host, &e))?;
    let c = raw
        .negotiate_version()
        .await
        .map_err(|e| unreachable(host, &e))?;
    *cache.lock().unwrap() = Some(c.clone());
    Ok(c)
}

/// A bollard error in words, with its cause chain.
fn describe(e: &bollard::errors::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

#[async_trait]
impl DockerApi for BollardDocker {
    fn host(&self) -> &str {
        &self.host
    }

    fn is_local(&self) -> bool {
        self.host.starts_with("unix://")
    }

    async fn info(&self) -> Result<DaemonInfo, DockerError> {
        let c = self.client().await?;
        let v = c.version().await.map_err(|e| self.map_err(e))?;
        let i = c.info().await.map_err(|e| self.map_err(e))?;
        Ok(DaemonInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            cgroup_driver: i.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
            cgroup_version: i.cgroup_version.map(|d| d.to_string()).unwrap_or_default(),
            runtimes: i
                .runtimes
                .map(|r| r.into_keys().collect())
                .unwrap_or_default(),
            os: i.operating_system.unwrap_or_default(),
        })
    }

    async fn list(&self) -> Result<Vec<Listed>, DockerError> {
        let body = self.get_json("/containers/json?all=1", LIST_MAX).await?;
        parse_list(&body)
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DockerError> {
        let path = format!("/containers/{}/json", log_stream::escape(id));
        match self.get_json(&path, INSPECT_MAX).await {
            Ok(body) => parse_inspect(&body).map(Some),
            Err(DockerError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn events(&self, since: Option<i64>) -> BoxStream<Result<DockerEvent, DockerError>> {
        let cache = self.client.clone();
        let host = self.host.clone();
        let filters = [("type".to_string(), vec!["container".to_string()])].into();
        let opts = bollard::query_parameters::EventsOptions {
            since: since.map(|s| s.to_string()),
            until: None,
            filters: Some(filters),
        };
        let stream = async_stream(async move {
            let client = connect(&host, &cache).await?;
            Ok(client.events(Some(opts)).map(move |r| match r {
                Ok(m) => {
                    let actor = m.actor.unwrap_or_default();
                    let attributes: BTreeMap<String, String> =
                        actor.attributes.unwrap_or_default().into_iter().collect();
                    Ok(DockerEvent {
                        action: m.action.unwrap_or_default(),
                        id: actor.id.unwrap_or_default(),
                        name: attributes.get("name").cloned().unwrap_or_default(),
                        time_nano: m
                            .time_nano
                            .unwrap_or_else(|| m.time.unwrap_or(0) * 1_000_000_000),
                        attributes,
                    })
                }
                Err(e) => Err(unreachable(&host, &e)),
            }))
        });
        Box::pin(stream)
    }

    async fn stats_once(&self, id: &str) -> Result<Option<ContainerStats>, DockerError> {
        let c = self.client().await?;
        let opts = bollard::query_parameters::StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut s = c.stats(id, Some(opts));
        match s.next().await {
            Some(Ok(r)) => Ok(Some(from_stats(r))),
            Some(Err(e)) => match self.map_err(e) {
                DockerError::NotFound => Ok(None),
                other => Err(other),
            },
            None => Ok(None),
        }
    }

    /// Read with lookout's own bounded reader (`log_stream`), not bollard's, which holds a TTY
    /// container's output until each newline.
    fn logs(&self, id: &str, since: i64) -> BoxStream<Result<LogChunk, DockerError>> {
        let cache = self.client.clone();
        let host = self.host.clone();
        let id = id.to_string();
        let stream = async_stream(async move {
            let client = connect(&host, &cache).await?;
            // Docker before API 1.42 names no format in the response: a TTY's output is raw,
            // anything else multiplexed. Config.Tty is fixed for a container's lifetime.
            let tty = match client.inspect_container(&id, None).await {
                Ok(r) => r.config.and_then(|c| c.tty).unwrap_or(false),
                Err(e) => return Err(map_err(&host, &cache, e)),
            };
            let v = client.client_version();
            // `since` in whole seconds; one timestamp per message (a line, or a 16 KiB part of
            // a longer one).
            let path = format!(
                "/v{}.{}/containers/{}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since={}&tail=all",
                v.major_version,
                v.minor_version,
                log_stream::escape(&id),
                since.max(0),
            );
            let http_err = {
                let host = host.clone();
                move |e: log_stream::HttpError| match e {
                    log_stream::HttpError::Status { status: 404, .. } => DockerError::NotFound,
                    log_stream::HttpError::Io(e) => DockerError::Unreachable {
                        host: host.clone(),
                        reason: e.to_string(),
                    },
                    other => DockerError::Api(other.to_string()),
                }
            };
            let resp = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                log_stream::get(&host, &path),
            )
            .await
            .map_err(|_| DockerError::Unreachable {
                host: host.clone(),
                reason: "no response to the logs request within 30 s".into(),
            })?
            .map_err(&http_err)?;
            let format = match resp.content_type.as_deref() {
                Some(t) if t.contains("multiplexed-stream") => log_stream::Format::Multiplexed,
                _ if tty => log_stream::Format::Raw,
                _ => log_stream::Format::Multiplexed,
            };
            Ok(resp.chunks(format).map(move |r| r.map_err(&http_err)))
        });
        Box::pin(stream)
    }

    /// One bounded read of `GET /containers/{id}/logs?tail=N`. Timestamps are asked for so
    /// that the decoder removes exactly Docker's (a line that starts with a time of its own
    /// keeps it) and a TTY's long lines come back whole.
    async fn logs_tail(
        &self,
        id: &str,
        lines: usize,
        max_bytes: usize,
    ) -> Result<Vec<String>, DockerError> {
        if lines == 0 || max_bytes == 0 {
            return Ok(Vec::new());
        }
        let path = format!(
            "/containers/{}/logs?stdout=1&stderr=1&timestamps=1&tail={lines}",
            log_stream::escape(id)
        );
        let read = self
            .get_with(&path, |r| async move {
                let content_type = r.content_type.clone();
                let (body, cut) = r.prefix(max_bytes).await?;
                Ok((content_type, body, cut))
            })
            .await;
        match read {
            Ok((content_type, body, cut)) => {
                let format = log_stream::sniff_format(content_type.as_deref(), &body);
                Ok(tail_lines(format, body, cut, lines))
            }
            Err(DockerError::NotFound) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// The last `keep` lines of a logs body (see [`DockerApi::logs_tail`]). stdout and stderr are
/// gathered into lines apart (a frame may hold part of a line) and listed in the order their
/// lines ended. `cut`: the body was cut at the byte cap, so what it ends with is incomplete: a
/// frame's text is kept with `…`, a frame header or timestamp cut short is dropped.
fn tail_lines(
    format: log_stream::Format,
    mut body: bytes::Bytes,
    cut: bool,
    keep: usize,
) -> Vec<String> {
    use std::collections::VecDeque;
    let mut out: VecDeque<String> = VecDeque::new();
    let mut push = |text: &[u8], more: bool| {
        if let Some(mut line) = clean_line(text) {
            if more && !line.ends_with('…') {
                line.push('…');
            }
            out.push_back(line);
            if out.len() > keep {
                out.pop_front();
            }
        }
    };
    // Each stream's line so far, and the order the two were started in.
    let mut open: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut started: Vec<usize> = Vec::with_capacity(2);
    let mut take = |c: LogChunk, push: &mut dyn FnMut(&[u8], bool)| {
        let i = match c.stream {
            LogStream::Stdout => 0,
            LogStream::Stderr => 1,
        };
        let mut rest = &c.bytes[..];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if open[i].is_empty() {
                push(&rest[..nl], false);
            } else {
                open[i].extend_from_slice(&rest[..nl]);
                push(&std::mem::take(&mut open[i]), false);
            }
            started.retain(|&s| s != i);
            rest = &rest[nl + 1..];
        }
        if !rest.is_empty() {
            if open[i].is_empty() {
                started.push(i);
            }
            open[i].extend_from_slice(rest);
        }
    };
    let mut decoder = log_stream::LogDecoder::new(format);
    while let Some(c) = decoder.next(&mut body) {
        take(c, &mut push);
    }
    if !cut {
        if let Some(c) = decoder.finish() {
            take(c, &mut push);
        }
    }
    for i in std::mem::take(&mut started) {
        push(&open[i], cut);
    }
    out.into()
}

/// One log line as a notification shows it: lossy UTF-8; after a carriage return only what
/// overwrote the line (a progress bar's last state); escape sequences and control characters
/// removed; trailing white space trimmed; at most [`TAIL_LINE_MAX`] characters. None for a
/// blank line.
fn clean_line(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    let text = text.trim_end_matches('\r');
    let last = text.rsplit('\r').next().unwrap_or("");
    let line = crate::notify::reason::strip_ansi(last);
    let line = line.trim_end();
    if line.trim_start().is_empty() {
        return None;
    }
    match line.char_indices().nth(TAIL_LINE_MAX - 1) {
        Some((at, _)) if line[at..].chars().nth(1).is_some() => Some(format!("{}…", &line[..at])),
        _ => Some(line.to_string()),
    }
}

/// A stream produced by a future that first yields the real stream (or an error).
fn async_stream<S, T>(
    fut: impl std::future::Future<Output = Result<S, DockerError>> + Send + 'static,
) -> impl Stream<Item = Result<T, DockerError>> + Send
where
    S: Stream<Item = Result<T, DockerError>> + Send + 'static,
    T: Send + 'static,
{
    futures_util::stream::once(fut).flat_map(|r| match r {
        Ok(s) => s.boxed(),
        Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
    })
}

/// Unix nanoseconds from an RFC 3339 timestamp with up to 9 fraction digits (Docker's log
/// timestamps); no allocation, as it runs once per log line.
pub fn parse_rfc3339_nanos(s: &[u8]) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        s.get(r)?.iter().try_fold(0i64, |v, &b| {
            b.is_ascii_digit().then(|| v * 10 + i64::from(b - b'0'))
        })
    };
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0i64;
    if s.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        nanos *= 10i64.pow(9 - (i - start).min(9) as u32);
    }
    let offset = match s.get(i) {
        Some(b'Z') | Some(b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, mo: i64, d: i64) -> i64 {
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Unix seconds from an RFC 3339 timestamp; None for Docker's zero time.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    if s.len() < 19 || s.starts_with("0001-") {
        return None;
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut frac = 0.0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac = format!("0.{}", &s[start..i]).parse().unwrap_or(0.0);
    }
    let offset = match b.get(i) {
        Some(b'Z') | Some(b'z') | None => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86400 + h * 3600 + mi * 60 + se - offset) as f64 + frac)
}

/// `GET /containers/json?all=1`, read leniently: every field optional, states as text.
fn parse_list(body: &[u8]) -> Result<Vec<Listed>, DockerError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        id: Option<String>,
        state: Option<String>,
        status: Option<String>,
    }
    let list: Vec<Entry> = serde_json::from_slice(body)
        .map_err(|e| DockerError::Api(format!("container list: {e}")))?;
    Ok(list
        .into_iter()
        .filter_map(|e| {
            Some(Listed {
                id: e.id?,
                state: e.state.unwrap_or_default(),
                status: e.status.unwrap_or_default(),
            })
        })
        .collect())
}

/// The parts of `GET /containers/{id}/json` lookout uses. Every field is optional and typed
/// loosely (a `null`, a missing field or an unknown state never fails the whole answer).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawInspect {
    id: Option<String>,
    name: Option<String>,
    created: Option<String>,
    restart_count: Option<i64>,
    state: Option<RawState>,
    config: Option<RawConfig>,
    host_config: Option<RawHostConfig>,
    network_settings: Option<RawNetworkSettings>,
    graph_driver: Option<RawGraphDriver>,
}

/// `GraphDriver`: the storage driver and its data. Values are read as any JSON, so that a
/// driver that puts something other than strings there costs only the fields lookout reads.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawGraphDriver {
    name: Option<String>,
    data: Option<BTreeMap<String, serde_json::Value>>,
}

impl RawGraphDriver {
    /// The writable layer's directory (overlay drivers' `UpperDir`); empty when there is none.
    fn upper_dir(&self) -> String {
        self.data
            .as_ref()
            .and_then(|d| d.get("UpperDir"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawNetworkSettings {
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
    networks: Option<BTreeMap<String, Option<RawNetwork>>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawNetwork {
    #[serde(rename = "IPAddress")]
    ip_address: Option<String>,
}

impl RawNetworkSettings {
    /// The first network's address (in name order, as the daemon lists them), else the
    /// default bridge's top-level one; empty when there is none.
    fn first_ip(self) -> String {
        let networks = self.networks.unwrap_or_default();
        let mut on_networks = networks.into_values().flatten().map(|n| n.ip_address);
        on_networks
            .find_map(|ip| ip.filter(|ip| !ip.is_empty()))
            .or(self.ip_address)
            .unwrap_or_default()
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawState {
    status: Option<String>,
    health: Option<RawHealth>,
    exit_code: Option<i64>,
    #[serde(rename = "OOMKilled")]
    oom_killed: Option<bool>,
    pid: Option<i64>,
    started_at: Option<String>,
    finished_at: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawHealth {
    status: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawConfig {
    image: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RawHostConfig {
    memory: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    cpu_shares: Option<i64>,
    network_mode: Option<String>,
    cgroup_parent: Option<String>,
}

/// An inspect answer as lookout's facts. A state lookout does not know is kept as `unknown`
/// (a health status, as `none`), never an error; only an answer that is not JSON at all is.
pub fn parse_inspect(body: &[u8]) -> Result<ContainerInfo, DockerError> {
    let r: RawInspect = serde_json::from_slice(body)
        .map_err(|e| DockerError::Api(format!("container inspect: {e}")))?;
    let st = r.state.unwrap_or_default();
    let cfg = r.config.unwrap_or_default();
    let hc = r.host_config.unwrap_or_default();
    let pos = |v: Option<i64>| v.filter(|x| *x > 0);
    let graph = r.graph_driver.unwrap_or_default();
    Ok(ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: cfg.image.unwrap_or_default(),
        labels: cfg.labels.unwrap_or_default(),
        state: st.status.as_deref().map(State::parse).unwrap_or_default(),
        health: st
            .health
            .and_then(|h| h.status)
            .map(|s| Health::parse(&s))
            .unwrap_or_default(),
        restart_count: r.restart_count.unwrap_or(0),
        exit_code: st.exit_code.unwrap_or(0),
        oom_killed: st.oom_killed.unwrap_or(false),
        pid: u32::try_from(st.pid.unwrap_or(0).max(0)).unwrap_or(0),
        started_at: st.started_at.as_deref().and_then(parse_rfc3339),
        finished_at: st.finished_at.as_deref().and_then(parse_rfc3339),
        created_at: r.created.as_deref().and_then(parse_rfc3339),
        limits: Limits {
            memory_bytes: pos(hc.memory).map(|v| v as u64),
            nano_cpus: pos(hc.nano_cpus).map(|v| v as u64),
            cpu_quota: pos(hc.cpu_quota),
            cpu_period: pos(hc.cpu_period).map(|v| v as u64),
            cpu_shares: pos(hc.cpu_shares).map(|v| v as u64),
        },
        network_mode: hc.network_mode.unwrap_or_default(),
        cgroup_parent: hc.cgroup_parent.unwrap_or_default(),
        ip_address: r.network_settings.unwrap_or_default().first_ip(),
        upper_dir: graph.upper_dir(),
        storage_driver: graph.name.unwrap_or_default(),
        oom_events: 0,
        recent_starts: Vec::new(),
    })
}

fn from_stats(r: bollard::models::ContainerStatsResponse) -> ContainerStats {
    let mut out = ContainerStats {
        source: StatsSource::DockerApi,
        read_at: crate::now_unix(),
        ..Default::default()
    };
    if let Some(cpu) = r.cpu_stats {
        let u = cpu.cpu_usage.unwrap_or_default();
        let t = cpu.throttling_data.unwrap_or_default();
        out.cpu = Some(CpuStats {
            usage_seconds: u.total_usage.unwrap_or(0) as f64 / 1e9,
            user_seconds: u.usage_in_usermode.unwrap_or(0) as f64 / 1e9,
            system_seconds: u.usage_in_kernelmode.unwrap_or(0) as f64 / 1e9,
            periods: t.periods,
            throttled_periods: t.throttled_periods,
            throttled_seconds: t.throttled_time.map(|ns| ns as f64 / 1e9),
        });
    }
    if let Some(m) = r.memory_stats {
        let stats = m.stats.unwrap_or_default();
        let get = |k: &str| stats.get(k).copied();
        let usage = m.usage.unwrap_or(0);
        // v1 reports total_inactive_file, v2 inactive_file.
        let inactive = get("total_inactive_file")
            .or(get("inactive_file"))
            .unwrap_or(0);
        out.memory = Some(MemoryStats {
            usage,
            working_set: usage.saturating_sub(inactive),
            rss: get("total_rss").or(get("rss")).or(get("anon")).unwrap_or(0),
            cache: get("total_cache")
                .or(get("cache"))
                .or(get("file"))
                .unwrap_or(0),
            swap: get("total_swap").or(get("swap")),
        });
        out.spec.memory_limit = m.limit.filter(|l| *l > 0 && *l < (1 << 62));
    }
    if let Some(nets) = r.networks {
        let mut ifs: Vec<NetInterface> = nets
            .into_iter()
            .map(|(name, n)| NetInterface {
                name,
                rx_bytes: n.rx_bytes.unwrap_or(0),
                rx_packets: n.rx_packets.unwrap_or(0),
                rx_errors: n.rx_errors.unwrap_or(0),
                rx_dropped: n.rx_dropped.unwrap_or(0),
                tx_bytes: n.tx_bytes.unwrap_or(0),
                tx_packets: n.tx_packets.unwrap_or(0),
                tx_errors: n.tx_errors.unwrap_or(0),
                tx_dropped: n.tx_dropped.unwrap_or(0),
                detail: None,
            })
            .collect();
        ifs.sort_by(|a, b| a.name.cmp(&b.name));
        out.network = Network::Own(ifs);
    }
    if let Some(b) = r.blkio_stats {
        let mut devs: BTreeMap<(u64, u64), BlkDevice> = BTreeMap::new();
        for (list, bytes) in [
            (b.io_service_bytes_recursive, true),
            (b.io_serviced_recursive, false),
        ] {
            for e in list.unwrap_or_default() {
                let (maj, min) = (e.major.unwrap_or(0), e.minor.unwrap_or(0));
                let d = devs.entry((maj, min)).or_insert_with(|| BlkDevice {
                    device: format!("{maj}:{min}"),
                    major: maj as u32,
                    minor: min as u32,
                    ..Default::default()
                });
                let v = e.value.unwrap_or(0);
                // The daemon's numbers: a sum saturates rather than wraps (or panics in debug).
                let total = match (
                    e.op.as_deref().map(str::to_ascii_lowercase).as_deref(),
                    bytes,
                ) {
                    (Some("read"), true) => &mut d.read_bytes,
                    (Some("write"), true) => &mut d.write_bytes,
                    (Some("read"), false) => &mut d.reads,
                    (Some("write"), false) => &mut d.writes,
                    _ => continue,
                };
                *total = total.saturating_add(v);
            }
        }
        out.blkio = devs.into_values().collect();
    }
    out.pids = r.pids_stats.and_then(|p| p.current);
    out
}

#[cfg(test)]
mod from_stats_tests {
    use super::*;
    use bollard::models::{ContainerBlkioStatEntry, ContainerBlkioStats, ContainerStatsResponse};

    #[test]
    fn blkio_sums_saturate() {
        let entry = |op: &str, value: u64| ContainerBlkioStatEntry {
            major: Some(8),
            minor: Some(0),
            op: Some(op.into()),
            value: Some(value),
        };
        // One device listed twice (a daemon or kernel quirk) with counters near the top.
        let list = vec![
            entry("Read", u64::MAX - 1),
            entry("Write", 7),
            entry("read", 5),
            entry("Total", u64::MAX),
        ];
        let s = from_stats(ContainerStatsResponse {
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(list.clone()),
                io_serviced_recursive: Some(list),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(s.blkio.len(), 1);
        let d = &s.blkio[0];
        assert_eq!((d.read_bytes, d.write_bytes), (u64::MAX, 7));
        assert_eq!((d.reads, d.writes), (u64::MAX, 7));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00.5Z"), Some(1709208000.5));
        assert_eq!(
            parse_rfc3339("2024-02-29T13:00:00+01:00"),
            Some(1709208000.0)
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn log_timestamps() {
        const NS: i64 = 1_000_000_000;
        assert_eq!(
            parse_rfc3339_nanos(b"2024-02-29T12:00:00.123456789Z"),
            Some(1709208000 * NS + 123_456_789)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2024-02-29T12:00:00.5Z"),
            Some(1709208000 * NS + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2024-02-29T13:00:00+01:00"),
            Some(1709208000 * NS)
        );
        assert_eq!(parse_rfc3339_nanos(b"2024-02-29T12:00:00.Z"), None);
        assert_eq!(parse_rfc3339_nanos(b"2024-02-29T12:00:00"), None);
        assert_eq!(parse_rfc3339_nanos(b"ERROR: 2024-02-29T12:00:00Z"), None);
    }

    /// A daemon newer than lookout: an unknown state word, a health status lookout does not
    /// know, nulls where values were expected, fields lookout has never heard of. The answer
    /// is still read, the odd values kept as `unknown`/`none`.
    #[test]
    fn inspect_is_read_leniently() {
        let body = br#"{
            "Id": "abc", "Name": "/web", "Created": "2024-02-29T12:00:00Z",
            "RestartCount": 3,
            "State": {"Status": "hibernating", "Health": {"Status": "wobbly"},
                      "ExitCode": null, "OOMKilled": false, "Pid": 4242,
                      "StartedAt": "2024-02-29T12:00:01.5Z", "FinishedAt": "0001-01-01T00:00:00Z",
                      "SomethingNew": {"x": [1, 2]}},
            "Config": {"Image": "img:1", "Labels": null, "Tty": true},
            "HostConfig": {"Memory": 0, "NanoCpus": 500000000, "CpuQuota": null,
                           "NetworkMode": "bridge"},
            "NewTopLevel": 42
        }"#;
        let c = parse_inspect(body).unwrap();
        assert_eq!(c.id, "abc");
        assert_eq!(c.name, "web");
        assert_eq!(c.state, State::Unknown);
        assert_eq!(c.health, Health::None);
        assert_eq!(c.exit_code, 0);
        assert_eq!(c.pid, 4242);
        assert_eq!(c.restart_count, 3);
        assert_eq!(c.started_at, Some(1709208001.5));
        assert_eq!(c.finished_at, None);
        assert!(c.labels.is_empty());
        assert_eq!(c.limits.nano_cpus, Some(500_000_000));
        assert_eq!(c.limits.memory_bytes, None);
        assert_eq!(c.ip_address, "");
        // The first network (in name order) with an address; else the default bridge's.
        let c = parse_inspect(
            br#"{"Id": "n", "NetworkSettings": {"IPAddress": "",
                "Networks": {"a_net": null, "b_net": {"IPAddress": ""},
                             "c_net": {"IPAddress": "172.20.0.5"}, "d_net": {"IPAddress": "10.0.0.9"}}}}"#,
        )
        .unwrap();
        assert_eq!(c.ip_address, "172.20.0.5");
        let c = parse_inspect(
            br#"{"Id": "n", "NetworkSettings": {"IPAddress": "172.17.0.3", "Networks": null}}"#,
        )
        .unwrap();
        assert_eq!(c.ip_address, "172.17.0.3");
        // overlay2's writable layer; another driver's data (no UpperDir, or odd values) is
        // no error, only no layer.
        let c = parse_inspect(
            br#"{"Id": "o", "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": "/var/lib/docker/overlay2/l1/diff:/var/lib/docker/overlay2/l2/diff",
                "MergedDir": "/var/lib/docker/overlay2/abc/merged",
                "UpperDir": "/var/lib/docker/overlay2/abc/diff",
                "WorkDir": "/var/lib/docker/overlay2/abc/work"}}}"#,
        )
        .unwrap();
        assert_eq!(c.storage_driver, "overlay2");
        assert_eq!(c.upper_dir, "/var/lib/docker/overlay2/abc/diff");
        for body in [
            &br#"{"Id": "b", "GraphDriver": {"Name": "btrfs", "Data": null}}"#[..],
            br#"{"Id": "z", "GraphDriver": {"Name": "zfs", "Data": {"Dataset": "pool/x", "Size": 5, "UpperDir": 7}}}"#,
            br#"{"Id": "n", "GraphDriver": null}"#,
        ] {
            let c = parse_inspect(body).unwrap();
            assert_eq!(c.upper_dir, "", "{}", String::from_utf8_lossy(body));
        }
        // `stopping` is a state of its own.
        let c =
            parse_inspect(br#"{"Id": "x", "State": {"Status": "stopping", "Pid": 7}}"#).unwrap();
        assert_eq!(c.state, State::Stopping);
        assert!(c.is_running());
        // Only an answer that is not JSON at all is an error, and not a transport one.
        assert!(matches!(parse_inspect(b"<html>"), Err(DockerError::Api(_))));
        let l = parse_list(br#"[{"Id": "a", "State": "stopping", "Status": null}, {"Names": []}]"#)
            .unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].state, "stopping");
    }

    /// A multiplexed frame of one message with Docker's timestamp.
    fn frame(stream: u8, text: &str) -> Vec<u8> {
        let payload = format!("2024-02-29T12:00:00.123456789Z {text}");
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload.as_bytes());
        f
    }

    fn tail(body: &[u8], cut: bool, keep: usize) -> Vec<String> {
        let format = log_stream::sniff_format(None, body);
        tail_lines(format, bytes::Bytes::copy_from_slice(body), cut, keep)
    }

    #[test]
    fn tail_of_a_multiplexed_body() {
        let mut body = Vec::new();
        for (s, t) in [
            (1, "one\n"),
            (2, "\u{1b}[31mtwo in red\u{1b}[0m\n"),
            (1, "  \n"),
            (1, "three "),
            (2, "four\r\n"),
            (1, "and a half\n"),
            (1, "50%\r100%\n"),
            (1, "2024-01-01T00:00:00Z the app's own time\n"),
            (0, "stdin is dropped\n"),
        ] {
            body.extend(frame(s, t));
        }
        assert_eq!(
            log_stream::sniff_format(None, &body),
            log_stream::Format::Multiplexed
        );
        assert_eq!(
            tail(&body, false, 10),
            [
                "one",
                "two in red",
                "four",
                "three and a half",
                "100%",
                "2024-01-01T00:00:00Z the app's own time",
            ]
        );
        assert_eq!(
            tail(&body, false, 2),
            ["100%", "2024-01-01T00:00:00Z the app's own time"]
        );
        // Without timestamps (a daemon that ignored the parameter) the text is the same.
        let mut plain = vec![1, 0, 0, 0, 0, 0, 0, 4];
        plain.extend_from_slice(b"bye\n");
        assert_eq!(tail(&plain, false, 5), ["bye"]);
        // The Content-Type names the format when the daemon sends it.
        assert_eq!(
            log_stream::sniff_format(Some("application/vnd.docker.multiplexed-stream"), b"x"),
            log_stream::Format::Multiplexed
        );
        assert_eq!(tail(b"", false, 5), Vec::<String>::new());
    }

    #[test]
    fn tail_of_a_tty_body() {
        let body = "2024-02-29T12:00:00.1Z \u{1b}[1;32mready\u{1b}[0m\r\n\
                    2024-02-29T12:00:01.1Z \u{1b}]0;title\u{7}working\tnow\r\n\
                    2024-02-29T12:00:02.1Z bell\u{7} and NUL\u{0}\r\n\
                    2024-02-29T12:00:03.1Z no newline at the end";
        assert_eq!(
            log_stream::sniff_format(Some("application/vnd.docker.raw-stream"), body.as_bytes()),
            log_stream::Format::Raw
        );
        assert_eq!(
            tail(body.as_bytes(), false, 3),
            ["working\tnow", "bell and NUL", "no newline at the end"]
        );
        // Invalid UTF-8 is replaced, not an error.
        assert_eq!(
            tail(b"2024-02-29T12:00:00.1Z caf\xe9\n", false, 3),
            ["caf\u{fffd}"]
        );
    }

    #[test]
    fn tail_lines_are_capped() {
        let long = "x".repeat(TAIL_LINE_MAX + 10);
        let exact = "y".repeat(TAIL_LINE_MAX);
        let wide = "é".repeat(TAIL_LINE_MAX * 2);
        let mut body = frame(1, &format!("{long}\n"));
        body.extend(frame(1, &format!("{exact}\n")));
        body.extend(frame(2, &format!("{wide}\n")));
        let got = tail(&body, false, 5);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].chars().count(), TAIL_LINE_MAX);
        assert!(got[0].ends_with("x…"));
        assert_eq!(got[1], exact);
        assert_eq!(got[2].chars().count(), TAIL_LINE_MAX);
        assert!(got[2].ends_with("é…"));
    }

    #[test]
    fn tail_of_a_body_cut_at_the_byte_cap() {
        let mut body = frame(1, "first\n");
        body.extend(frame(2, "second\n"));
        let whole = body.len();
        body.extend(frame(1, "third, which is long\n"));
        // Cut inside the third frame's text: what arrived is kept, marked as cut.
        let at = whole + 8 + 31 + 5;
        assert_eq!(tail(&body[..at], true, 5), ["first", "second", "third…"]);
        // Cut inside its header or its timestamp: nothing of it.
        assert_eq!(tail(&body[..whole + 5], true, 5), ["first", "second"]);
        assert_eq!(tail(&body[..whole + 8 + 10], true, 5), ["first", "second"]);
        // Cut at a frame's end: nothing is incomplete.
        assert_eq!(tail(&body[..whole], true, 5), ["first", "second"]);
        // A TTY line cut short.
        let raw = b"2024-02-29T12:00:00.1Z one\r\n2024-02-29T12:00:01.1Z two and";
        assert_eq!(tail(raw, true, 5), ["one", "two and…"]);
        assert_eq!(tail(&raw[..40], true, 5), ["one"]);
    }

    #[test]
    fn event_kind() {
        let e = DockerEvent {
            action: "health_status: unhealthy".into(),
            id: String::new(),
            name: String::new(),
            time_nano: 0,
            attributes: Default::default(),
        };
        assert_eq!(e.kind(), "health_status");
    }
}
