//! HTTP: the exposition (`/metrics`, or `--web.telemetry-path`), liveness (`/health`,
//! `/healthz`, `/-/healthy`), readiness (`/ready`, `/-/ready`), the status page `/`,
//! `/api/v1/containers`, `/api/v1/alerts`, `/api/v1/rules`, and `POST /-/reload`.
//!
//! Handlers get a narrow state ([`HttpState`]): they read what the engine task published and
//! send commands (a reload request); they never lock the engine. [`serve`] runs the server
//! with its limits.

mod actions;
pub mod serve;
mod silences;

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::exposition::Format;
use crate::publish::Board;
use crate::reload;

/// What the handlers may touch.
#[derive(Clone)]
pub struct HttpState {
    /// The published snapshot and status, and lookout's health.
    pub board: Arc<Board>,
    /// Reload requests; None unless `--web.enable-lifecycle` allows `POST /-/reload`.
    pub reload: Option<reload::Handle>,
    /// Where the exposition is served.
    pub telemetry_path: String,
    /// The notifier's silences and receivers; None when notifications do not run.
    pub notify: Option<Arc<crate::notify::dispatch::Shared>>,
    /// The failover actions; None when they do not run.
    pub actions: Option<Arc<crate::act::task::Handle>>,
    /// Whether the admin API (silences) may be changed from anywhere, not only loopback
    /// (`--web.enable-lifecycle`, until lookout has authentication).
    pub admin: bool,
}

/// The router over the narrow state; tests call it with `oneshot`.
pub fn router(state: HttpState) -> Router {
    let path = if state.telemetry_path.starts_with('/') {
        state.telemetry_path.clone()
    } else {
        "/metrics".to_string()
    };
    Router::new()
        .route(&path, get(metrics))
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/-/healthy", get(health))
        .route("/ready", get(ready))
        .route("/-/ready", get(ready))
        .route("/", get(status_page))
        .route("/api/v1/containers", get(containers))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules))
        .route(
            "/api/v1/silences",
            get(silences::list)
                .post(silences::create)
                .delete(silences::expire_query),
        )
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(silences::expire),
        )
        .route("/api/v1/receivers", get(receivers))
        .route("/api/v1/actions", get(actions::list))
        .route("/api/v1/actions/reset", post(actions::reset))
        .route("/api/v1/containers/{name}/actions", post(actions::manual))
        .route("/-/reload", post(reload).put(reload))
        .fallback(not_found)
        .with_state(state)
}

/// The one error type handlers return: logged, then answered as plain text.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.message, "http request failed");
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message + "\n",
        )
            .into_response()
    }
}

async fn not_found() -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, "not found; see / for the endpoints")
}

async fn metrics(State(s): State<HttpState>, headers: HeaderMap) -> Result<Response, HttpError> {
    // A frozen snapshot is not served as if it were current.
    if !s.board.has_cycle() {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first collection is not done yet",
        ));
    }
    if let Some(age) = s.board.stale() {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            crate::publish::NotReady::Stale(age).to_string(),
        ));
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let latest = s.board.latest();
    let mut resp = if gzip {
        s.board.want_gzip(format);
        let body = latest.exposition.gzipped(format);
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        let mut chunks = latest.exposition.chunks(format);
        if chunks.len() == 1 {
            let mut r = chunks.pop().unwrap_or_default().into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            return Ok(r);
        }
        let len: usize = chunks.iter().map(|c| c.len()).sum();
        let stream =
            futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
        let mut r = axum::body::Body::from_stream(stream).into_response();
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(resp)
}

/// Liveness: 200 unless lookout is stuck (no collection cycle for 10 intervals).
async fn health(State(s): State<HttpState>) -> Response {
    match s.board.liveness() {
        Ok(()) => (StatusCode::OK, "OK\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

/// Readiness: 200 once the first cycle is published while the last one is at most 3
/// intervals old and every task runs.
async fn ready(State(s): State<HttpState>) -> Response {
    match s.board.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

/// One container in `/api/v1/containers`.
#[derive(Serialize)]
struct ContainerJson<'a> {
    id: &'a str,
    name: &'a str,
    image: &'a str,
    state: &'static str,
    health: &'static str,
    /// The allow-listed Docker labels only (`docker.labels`): labels often carry credentials.
    labels: std::collections::BTreeMap<&'a str, &'a str>,
    exit_code: i64,
    oom_killed: bool,
    restarts: i64,
    restarts_recent: u32,
    started_at: Option<String>,
    finished_at: Option<String>,
    uptime_seconds: Option<f64>,
    network_mode: &'a str,
    cgroup_id: String,
    stats_source: Option<crate::snapshot::StatsSource>,
    cpu_percent: Option<f64>,
    cpu_limit_percent: Option<f64>,
    cpu_limit_cores: Option<f64>,
    memory_bytes: Option<u64>,
    memory_usage_bytes: Option<u64>,
    memory_limit_bytes: Option<u64>,
    memory_percent: Option<f64>,
    pids: Option<u64>,
    net_rx_bytes_per_second: Option<f64>,
    net_tx_bytes_per_second: Option<f64>,
    blk_read_bytes_per_second: Option<f64>,
    blk_write_bytes_per_second: Option<f64>,
    gpu_memory_bytes: Option<u64>,
}

async fn containers(State(s): State<HttpState>) -> Response {
    let latest = s.board.latest();
    let allow = &latest.snapshot.label_allowlist;
    let list: Vec<ContainerJson> = latest
        .snapshot
        .containers
        .iter()
        .map(|c| {
            let i = &c.info;
            let st = c.stats.as_ref();
            ContainerJson {
                id: &i.id,
                name: &i.name,
                image: &i.image,
                state: i.state.as_str(),
                health: i.health.as_str(),
                labels: i
                    .labels
                    .iter()
                    .filter(|(k, _)| allow.contains(k))
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                exit_code: i.exit_code,
                oom_killed: i.oom_killed,
                restarts: i.restart_count,
                restarts_recent: c.derived.restarts_recent,
                started_at: i.started_at.map(rfc3339),
                finished_at: i.finished_at.map(rfc3339),
                uptime_seconds: c.derived.uptime_seconds,
                network_mode: &i.network_mode,
                cgroup_id: c.cgroup_id(),
                stats_source: st.map(|s| s.source),
                cpu_percent: c.derived.cpu_percent,
                cpu_limit_percent: c.derived.cpu_limit_percent,
                cpu_limit_cores: i.limits.cpu_cores(),
                memory_bytes: st.and_then(|s| s.memory).map(|m| m.working_set),
                memory_usage_bytes: st.and_then(|s| s.memory).map(|m| m.usage),
                memory_limit_bytes: c.memory_limit(),
                memory_percent: c.derived.memory_percent,
                pids: st.and_then(|s| s.pids),
                net_rx_bytes_per_second: c.derived.net_rx_bytes_per_second,
                net_tx_bytes_per_second: c.derived.net_tx_bytes_per_second,
                blk_read_bytes_per_second: c.derived.blk_read_bytes_per_second,
                blk_write_bytes_per_second: c.derived.blk_write_bytes_per_second,
                gpu_memory_bytes: c.derived.gpu_memory_bytes,
            }
        })
        .collect();
    Json(serde_json::json!({ "containers": list })).into_response()
}

/// One alert in `/api/v1/alerts` (Prometheus's shape).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson<'a> {
    labels: &'a std::collections::BTreeMap<String, String>,
    annotations: &'a std::collections::BTreeMap<String, String>,
    state: &'static str,
    value: Option<&'a str>,
    active_at: String,
    fired_at: Option<String>,
    /// Whether a silence in effect matches it (it is then not notified).
    silenced: bool,
    /// The ids of those silences.
    silenced_by: Vec<String>,
    /// Whether an inhibition rule mutes it.
    inhibited: bool,
}

async fn alerts(State(s): State<HttpState>) -> Response {
    let latest = s.board.latest();
    let now = crate::now_unix();
    let muted = |labels: &std::collections::BTreeMap<String, String>| match &s.notify {
        Some(n) => n.muted(labels, now),
        None => (Vec::new(), false),
    };
    let list: Vec<AlertJson> = latest
        .status
        .view
        .alerts
        .iter()
        .map(|a| (a, muted(&a.labels)))
        .map(|(a, (silenced_by, inhibited))| AlertJson {
            labels: &a.labels,
            annotations: &a.annotations,
            state: a.state,
            value: a.value.as_deref(),
            active_at: rfc3339_millis(a.active_at),
            fired_at: a.fired_at.map(rfc3339_millis),
            silenced: !silenced_by.is_empty(),
            silenced_by,
            inhibited,
        })
        .collect();
    Json(serde_json::json!({ "alerts": list })).into_response()
}

/// `/api/v1/receivers`: each receiver's state and figures.
async fn receivers(State(s): State<HttpState>) -> Response {
    let now = crate::now_unix();
    match &s.notify {
        Some(n) => Json(serde_json::json!({
            "receivers": n.stats.snapshot(),
            "silencesActive": n.silences.active_count(now),
        }))
        .into_response(),
        None => Json(serde_json::json!({ "receivers": {} })).into_response(),
    }
}

/// One rule in `/api/v1/rules`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleJson<'a> {
    name: &'a str,
    scope: &'static str,
    query: &'a str,
    resolve: Option<&'a str>,
    duration: f64,
    keep_firing_for: f64,
    severity: &'static str,
    labels: &'a std::collections::BTreeMap<String, String>,
    annotations: &'a std::collections::BTreeMap<String, String>,
    notify: &'a [String],
    /// `{logs: N}` for a rule with `context:`; absent without.
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<ContextJson>,
    health: &'static str,
    last_error: &'a str,
    last_evaluation: Option<String>,
    evaluation_failures: u64,
    active_alerts: usize,
}

/// A rule's `context:` in `/api/v1/rules`.
#[derive(Serialize)]
struct ContextJson {
    logs: usize,
}

/// A rule group in `/api/v1/rules`.
#[derive(Serialize)]
struct GroupJson<'a> {
    name: &'a str,
    file: &'a str,
    rules: Vec<RuleJson<'a>>,
}

async fn rules(State(s): State<HttpState>) -> Response {
    let latest = s.board.latest();
    let mut groups: Vec<GroupJson> = Vec::new();
    for r in &latest.status.view.rules {
        let rule = RuleJson {
            name: &r.name,
            scope: r.scope,
            query: &r.query,
            resolve: r.resolve.as_deref(),
            duration: r.duration,
            keep_firing_for: r.keep_firing_for,
            severity: r.severity,
            labels: &r.labels,
            annotations: &r.annotations,
            notify: &r.notify,
            context: (r.context_logs > 0).then_some(ContextJson {
                logs: r.context_logs,
            }),
            health: r.health,
            last_error: &r.last_error,
            last_evaluation: r.last_evaluation.map(rfc3339),
            evaluation_failures: r.failures_total,
            active_alerts: r.active,
        };
        match groups.last_mut() {
            Some(g) if g.name == r.group && g.file == r.file => g.rules.push(rule),
            _ => groups.push(GroupJson {
                name: &r.group,
                file: &r.file,
                rules: vec![rule],
            }),
        }
    }
    Json(serde_json::json!({ "groups": groups })).into_response()
}

/// Re-read config and rules (as SIGHUP does); all or nothing. Only with
/// `--web.enable-lifecycle` (as Prometheus), and never from another site's page: a browser's
/// cross-site request (an `Origin` other than this host, or `Sec-Fetch-Site: cross-site`) is
/// refused.
async fn reload(State(s): State<HttpState>, headers: HeaderMap) -> Result<String, HttpError> {
    let Some(handle) = &s.reload else {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled: start lookout with --web.enable-lifecycle to reload \
             over HTTP (SIGHUP always reloads)",
        ));
    };
    if cross_site(&headers) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "cross-site reload refused",
        ));
    }
    match handle.reload(reload::Origin::Http).await {
        reload::Outcome::Reloaded {
            rules,
            needs_restart,
        } => {
            let mut out = format!("reloaded: {rules} rules\n");
            if !needs_restart.is_empty() {
                let _ = writeln!(
                    out,
                    "changed, taking effect at the next restart: {}",
                    needs_restart.join(", ")
                );
            }
            Ok(out)
        }
        reload::Outcome::Failed(e) => Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed; the running config and rules are kept:\n{e}"),
        )),
    }
}

/// Whether a browser sent this request from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if get(header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    match (get(header::ORIGIN), get(header::HOST)) {
        (None, _) => false,
        (Some(origin), host) => {
            let origin_host = origin
                .split_once("://")
                .map(|(_, rest)| rest)
                .unwrap_or(origin)
                .trim_end_matches('/');
            host != Some(origin_host)
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn status_page(State(s): State<HttpState>) -> Html<String> {
    let latest = s.board.latest();
    let snap = &latest.snapshot;
    let mut h = String::with_capacity(4096);
    let running = snap
        .containers
        .iter()
        .filter(|c| c.info.state == crate::snapshot::State::Running)
        .count();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lookout</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}.bad{{color:#b00}}.ok{{color:#070}}</style>\
         </head><body><h1>lookout {}</h1>\
         <p>Containers: <b>{}</b> known, <b>{}</b> running. Last collection: {} ({:.1} ms). Interval: {}.</p>",
        env!("CARGO_PKG_VERSION"),
        snap.containers.len(),
        running,
        if s.board.has_cycle() { rfc3339(snap.taken_at) } else { "not yet".into() },
        snap.duration_seconds * 1000.0,
        crate::config::format_duration(s.board.interval()),
    );
    h.push_str("<h2>Collectors</h2><table><tr><th>collector</th><th>state</th><th>duration</th><th>last error</th></tr>");
    for c in &snap.collectors {
        let (class, word) = match (c.success, c.exported) {
            (true, _) => ("ok", "ok"),
            (false, true) => ("bad", "failing"),
            (false, false) => ("", "not available"),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{class}\">{word}</td><td>{:.1} ms</td><td>{}</td></tr>",
            c.name,
            c.duration_seconds * 1000.0,
            esc(c.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>");
    let view = &latest.status.view;
    let failing = view.rules.iter().filter(|r| r.health == "err").count();
    let _ = write!(
        h,
        "<h2>Alerts</h2><p>Rules: <b>{}</b> loaded{}. Last evaluation: {:.1} ms.</p>",
        view.rules.len(),
        if failing > 0 {
            format!(", <span class=\"bad\">{failing} failing</span>")
        } else {
            String::new()
        },
        view.evaluation_seconds * 1000.0
    );
    if view.alerts.is_empty() {
        h.push_str("<p class=\"ok\">No alerts pending or firing.</p>");
    } else {
        h.push_str("<table><tr><th>alert</th><th>state</th><th>severity</th><th>target</th><th>since</th><th>summary</th></tr>");
        for a in &view.alerts {
            let target: Vec<String> = ["name", "mountpoint", "UUID", "instance"]
                .iter()
                .filter_map(|k| a.labels.get(*k).map(|v| format!("{k}={v}")))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.alertname),
                if a.state == "firing" { "bad" } else { "" },
                a.state,
                a.severity,
                esc(&target.join(" ")),
                rfc3339(a.active_at),
                esc(a.annotations.get("summary").map(String::as_str).unwrap_or("")),
            );
        }
        h.push_str("</table>");
    }
    if let Some(n) = &s.notify {
        let now = crate::now_unix();
        let stats = n.stats.snapshot();
        let _ = write!(
            h,
            "<h2>Receivers</h2><p>Silences in effect: <b>{}</b>.</p>",
            n.silences.active_count(now)
        );
        if stats.is_empty() {
            h.push_str("<p>No receivers configured: alerts reach no one.</p>");
        } else {
            h.push_str("<table><tr><th>receiver</th><th>kind</th><th>state</th><th>last outcome</th><th>last attempt</th><th>pending</th><th>held (silenced)</th><th>dropped</th><th>last error</th></tr>");
            for (name, r) in &stats {
                let (class, word) = match (r.disabled, r.up) {
                    (true, _) => ("bad", "disabled"),
                    (false, true) => ("ok", "up"),
                    (false, false) => ("bad", "failing"),
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(name),
                    r.kind,
                    esc(if r.last_outcome.is_empty() { "none yet" } else { &r.last_outcome }),
                    r.last_attempt.map(rfc3339).unwrap_or_default(),
                    r.pending,
                    r.held,
                    r.dropped.values().sum::<u64>(),
                    esc(&r.last_error),
                );
            }
            h.push_str("</table>");
        }
    }
    if let Some(a) = &s.actions {
        let now = crate::now_unix();
        let restarts = a.restarts();
        let _ = write!(
            h,
            "<h2>Actions</h2><p>Actions: <b>{}</b>{}. <a href=\"/api/v1/actions\">/api/v1/actions</a></p>",
            if a.enabled() { "on" } else { "off" },
            if a.dry_run() { " (dry run)" } else { "" }
        );
        if !restarts.is_empty() {
            h.push_str("<table><tr><th>container</th><th>attempts in window</th><th>next allowed</th><th>state</th></tr>");
            for (name, r) in &restarts {
                let (class, state) = match r.exhausted_until {
                    Some(u) => ("bad", format!("given up until {}", rfc3339(u))),
                    None => ("ok", "acting".to_string()),
                };
                let _ =
                    write!(
                    h,
                    "<tr><td>{}</td><td>{}/{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                    esc(name),
                    r.attempts.len(),
                    r.max_attempts,
                    if r.next_allowed > now { rfc3339(r.next_allowed) } else { "now".into() },
                    esc(&state)
                );
            }
            h.push_str("</table>");
        }
    }
    let path = esc(&s.telemetry_path);
    let _ = write!(
        h,
        "<h2>Endpoints</h2><ul><li><a href=\"{path}\">{path}</a> (Prometheus)</li>\
         <li><a href=\"/api/v1/containers\">/api/v1/containers</a> (JSON)</li>\
         <li><a href=\"/api/v1/alerts\">/api/v1/alerts</a>, <a href=\"/api/v1/rules\">/api/v1/rules</a>, \
         <a href=\"/api/v1/silences\">/api/v1/silences</a>, <a href=\"/api/v1/receivers\">/api/v1/receivers</a> (JSON)</li>\
         <li><a href=\"/health\">/health</a> (liveness)</li><li><a href=\"/ready\">/ready</a> (readiness)</li></ul>",
    );
    h.push_str("</body></html>\n");
    Html(h)
}

/// Unix seconds as an RFC 3339 UTC timestamp with milliseconds (alert times, as Prometheus
/// gives them with a fraction).
pub fn rfc3339_millis(t: f64) -> String {
    let whole = rfc3339(t);
    let ms = ((t - t.floor()) * 1000.0).floor().min(999.0) as u32;
    format!("{}.{ms:03}Z", whole.trim_end_matches('Z'))
}

/// Unix seconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(t: f64) -> String {
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Published;
    use crate::snapshot::{Container, ContainerInfo, LabelAllowlist, Snapshot};
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Duration;
    use tower::ServiceExt;

    fn state(board: Arc<Board>, reload: Option<reload::Handle>) -> HttpState {
        HttpState {
            board,
            reload,
            telemetry_path: "/metrics".into(),
            notify: None,
            actions: None,
            admin: false,
        }
    }

    async fn call(
        s: &HttpState,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = router(s.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn snapshot() -> Arc<Snapshot> {
        Arc::new(Snapshot {
            taken_at: 1000.0,
            containers: vec![Container {
                info: ContainerInfo {
                    id: "abc".into(),
                    name: "web".into(),
                    labels: [
                        ("com.docker.compose.project".to_string(), "shop".to_string()),
                        (
                            "traefik.http.middlewares.auth.basicauth.users".to_string(),
                            "admin:$apr1$secret".to_string(),
                        ),
                    ]
                    .into(),
                    ..Default::default()
                },
                ..Default::default()
            }],
            label_allowlist: Arc::new(LabelAllowlist::new(&["com.docker.compose.project".into()])),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn ready_and_metrics_wait_for_the_first_cycle_and_refuse_a_stale_one() {
        let board = Board::new(Duration::from_millis(50), Arc::default());
        let s = state(board.clone(), None);
        for path in ["/ready", "/-/ready", "/metrics"] {
            let (status, body) = call(&s, "GET", path, &[]).await;
            assert_eq!(status, 503, "{path}");
            assert!(body.contains("first collection"), "{path}: {body}");
        }
        for path in ["/health", "/healthz", "/-/healthy"] {
            assert_eq!(call(&s, "GET", path, &[]).await.0, 200, "{path}");
        }
        board.publish_cycle(Published::new(snapshot(), Arc::default(), 0));
        assert_eq!(call(&s, "GET", "/ready", &[]).await.0, 200);
        let (status, body) = call(&s, "GET", "/metrics", &[]).await;
        assert_eq!(status, 200);
        assert!(body.contains("lookout_container_info{"), "{body}");
        // No cycle for more than 3 intervals: the snapshot is frozen, and lookout says so.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, body) = call(&s, "GET", "/ready", &[]).await;
        assert_eq!(status, 503);
        assert!(body.contains("stale"), "{body}");
        let (status, body) = call(&s, "GET", "/metrics", &[]).await;
        assert_eq!(status, 503, "{body}");
        board.publish_cycle(Published::new(snapshot(), Arc::default(), 0));
        assert_eq!(call(&s, "GET", "/metrics", &[]).await.0, 200);
    }

    #[tokio::test]
    async fn a_failed_task_makes_lookout_unready() {
        let health = Arc::new(crate::supervise::TaskHealth::default());
        let board = Board::new(Duration::from_secs(10), health.clone());
        board.publish_cycle(Published::new(snapshot(), Arc::default(), 0));
        let s = state(board, None);
        assert_eq!(call(&s, "GET", "/ready", &[]).await.0, 200);
        let mut sup = crate::supervise::Supervisor::new(health, Default::default());
        sup.spawn("engine", |_| async { panic!("evaluation blew up") });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, body) = call(&s, "GET", "/ready", &[]).await;
        assert_eq!(status, 503);
        assert!(
            body.contains("engine") && body.contains("evaluation blew up"),
            "{body}"
        );
        sup.shutdown(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn the_telemetry_path_moves_the_exposition() {
        let board = Board::new(Duration::from_secs(10), Arc::default());
        board.publish_cycle(Published::new(snapshot(), Arc::default(), 0));
        let mut s = state(board, None);
        s.telemetry_path = "/prom".into();
        assert_eq!(call(&s, "GET", "/prom", &[]).await.0, 200);
        assert_eq!(call(&s, "GET", "/metrics", &[]).await.0, 404);
    }

    #[tokio::test]
    async fn containers_show_only_the_allow_listed_labels() {
        let board = Board::new(Duration::from_secs(10), Arc::default());
        board.publish_cycle(Published::new(snapshot(), Arc::default(), 0));
        let (status, body) = call(&state(board, None), "GET", "/api/v1/containers", &[]).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let labels = &v["containers"][0]["labels"];
        assert_eq!(labels["com.docker.compose.project"], "shop");
        assert!(!body.contains("apr1"), "{body}");
        assert_eq!(labels.as_object().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn rules_show_their_context_only_when_they_have_one() {
        use crate::engine::{rule, Engine};
        let text = "groups:\n  - name: g\n    rules:\n      - alert: Down\n        \
                    scope: container\n        expr: exit_code != 0\n        \
                    context: {logs: 20}\n      - alert: Load\n        scope: host\n        \
                    expr: load1 > 9\n";
        let loaded = rule::load(&[rule::Source {
            name: "r.yml".into(),
            text: text.into(),
        }])
        .unwrap();
        let engine = Engine::new(loaded.rules, "box", crate::state_dir::StateDir::none());
        let status = crate::exposition::Status {
            view: Arc::new(engine.view()),
            ..Default::default()
        };
        let board = Board::new(Duration::from_secs(10), Arc::default());
        board.publish_cycle(Published::new(snapshot(), Arc::new(status), 0));
        let (status, body) = call(&state(board, None), "GET", "/api/v1/rules", &[]).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rules = &v["groups"][0]["rules"];
        assert_eq!(rules[0]["context"], serde_json::json!({"logs": 20}));
        assert!(rules[1].get("context").is_none(), "{body}");
    }

    #[tokio::test]
    async fn reload_needs_the_lifecycle_flag_and_refuses_other_sites() {
        let board = Board::new(Duration::from_secs(10), Arc::default());
        let (status, body) = call(&state(board.clone(), None), "POST", "/-/reload", &[]).await;
        assert_eq!(status, 403);
        assert!(body.contains("--web.enable-lifecycle"), "{body}");

        // A stand-in reload task answering every request.
        let channel = reload::Channel::new();
        let inbox = channel.inbox();
        let answered = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            let mut rx = inbox.lock().await;
            while let Some(r) = rx.recv().await {
                assert_eq!(r.origin(), reload::Origin::Http);
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r.answer(reload::Outcome::Reloaded {
                    rules: 7,
                    needs_restart: vec!["listen"],
                });
            }
        });
        let s = state(board, Some(channel.handle.clone()));
        for headers in [
            vec![("Origin", "http://evil.example"), ("Host", "box:9659")],
            vec![("Sec-Fetch-Site", "cross-site")],
        ] {
            let (status, body) = call(&s, "POST", "/-/reload", &headers).await;
            assert_eq!(status, 403, "{headers:?}: {body}");
        }
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 0);
        let (status, body) = call(
            &s,
            "POST",
            "/-/reload",
            &[("Origin", "http://box:9659"), ("Host", "box:9659")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("reloaded: 7 rules"), "{body}");
        assert!(body.contains("next restart: listen"), "{body}");
        assert_eq!(call(&s, "PUT", "/-/reload", &[]).await.0, 200);
        assert_eq!(call(&s, "GET", "/-/reload", &[]).await.0, 405);
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = 1709208000.0;
        assert_eq!(rfc3339(t), "2024-02-29T12:00:00Z");
        assert_eq!(crate::docker_api::parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(rfc3339_millis(t + 0.25), "2024-02-29T12:00:00.250Z");
        let back = crate::docker_api::parse_rfc3339(&rfc3339_millis(t + 0.25)).unwrap();
        assert!((back - (t + 0.25)).abs() < 1e-6, "{back}");
    }
}
