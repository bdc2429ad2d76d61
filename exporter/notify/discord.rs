//! Discord: one channel webhook, Discord's execute-webhook API (`POST {webhook}?wait=true`).
//!
//! - One embed per alert, at most 10 embeds and 6000 characters of embed text per message
//!   ([`DiscordNotifier::split`] cuts a group into as few consecutive messages as that allows).
//! - Every one of Discord's length limits is respected by truncating with `…`: a send never
//!   fails on length, and a message is never empty.
//! - The configured mention pings only for a critical alert that fires, and `allowed_mentions`
//!   lets nothing else in the text ping anyone.
//! - The webhook URL holds the token: it appears in no error, log line or `Debug` output.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::{json, Map, Value};

use super::{rfc3339, truncate, Ack, Batch, Item, Notifier, SendError, Status};
use crate::config::receivers::DiscordConfig;

/// Discord's limits (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>).
pub mod limits {
    pub const CONTENT: usize = 2000;
    pub const EMBEDS: usize = 10;
    pub const TITLE: usize = 256;
    pub const DESCRIPTION: usize = 4096;
    pub const FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1024;
    pub const FOOTER: usize = 2048;
    pub const AUTHOR: usize = 256;
    /// Title, description, field names and values, footer text and author name of all the
    /// embeds of one message together.
    pub const TOTAL: usize = 6000;
    pub const USERNAME: usize = 80;
}

/// What is read of a response body at most.
const BODY_CAP: usize = 64 * 1024;
/// The longest pause a rate-limit header may impose before the next send.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// The longest `retry_after` passed on to the sender.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

pub const COLOR_CRITICAL: u32 = 0xE7_4C_3C;
pub const COLOR_WARNING: u32 = 0xE6_7E_22;
pub const COLOR_INFO: u32 = 0x34_98_DB;
pub const COLOR_RESOLVED: u32 = 0x2E_CC_71;

/// The content of a test notification.
pub const TEST_CONTENT: &str = "lookout test notification, please ignore";

/// The labels shown as fields, in this order, with their display names.
const KEY_LABELS: &[(&str, &str)] = &[
    ("name", "Container"),
    ("container", "Container"),
    ("instance", "Instance"),
    (
        "container_label_com_docker_compose_project",
        "Compose project",
    ),
    (
        "container_label_com_docker_compose_service",
        "Compose service",
    ),
    ("compose_project", "Compose project"),
    ("compose_service", "Compose service"),
    ("device", "Device"),
    ("mountpoint", "Mountpoint"),
    ("gpu", "GPU"),
    ("UUID", "GPU UUID"),
];

/// The most of the host name a footer shows.
const HOST_MAX: usize = 128;

/// Field values up to this many characters are shown inline (side by side).
const INLINE_MAX: usize = 40;

/// Sends to one Discord webhook.
pub struct DiscordNotifier {
    client: reqwest::Client,
    /// The webhook URL with `wait=true`; `None` when the configured one does not parse.
    url: Option<Url>,
    /// What is scrubbed from every text that leaves this notifier: the URL and its token.
    secrets: Vec<String>,
    username: Option<String>,
    avatar_url: Option<String>,
    mention: Option<Mention>,
    timeout: Duration,
    /// Discord said the bucket is empty (`X-RateLimit-Remaining: 0`): no send before this.
    pause_until: Mutex<Option<tokio::time::Instant>>,
}

impl fmt::Debug for DiscordNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordNotifier")
            .field("webhook_url", &"<secret>")
            .field("username", &self.username)
            .field("avatar_url", &self.avatar_url)
            .field("mention", &self.mention.as_ref().map(|m| &m.text))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The configured mention and what `allowed_mentions` must allow for it.
#[derive(Debug, Clone, PartialEq)]
struct Mention {
    text: String,
    roles: Vec<String>,
    users: Vec<String>,
    everyone: bool,
}

impl Mention {
    fn parse(text: &str) -> Option<Mention> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let mut m = Mention {
            text: truncate(text, limits::CONTENT),
            roles: Vec::new(),
            users: Vec::new(),
            everyone: false,
        };
        let re = regex::Regex::new(r"<@(&|!)?([0-9]{1,25})>|@(here|everyone)").ok()?;
        for c in re.captures_iter(text) {
            if let Some(id) = c.get(2) {
                let id = id.as_str().to_string();
                let list = if c.get(1).map(|k| k.as_str()) == Some("&") {
                    &mut m.roles
                } else {
                    &mut m.users
                };
                if !list.contains(&id) && list.len() < 100 {
                    list.push(id);
                }
            } else if c.get(3).is_some() {
                m.everyone = true;
            }
        }
        Some(m)
    }

    fn allowed(&self) -> Value {
        let mut o = Map::new();
        let parse: Vec<&str> = if self.everyone {
            vec!["everyone"]
        } else {
            vec![]
        };
        o.insert("parse".into(), json!(parse));
        if !self.roles.is_empty() {
            o.insert("roles".into(), json!(self.roles));
        }
        if !self.users.is_empty() {
            o.insert("users".into(), json!(self.users));
        }
        Value::Object(o)
    }
}

/// One embed before it becomes JSON; what Discord counts toward the 6000.
#[derive(Debug, Clone, PartialEq)]
struct Embed {
    title: String,
    description: String,
    color: u32,
    fields: Vec<(String, String, bool)>,
    footer: String,
    timestamp: Option<String>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

impl Embed {
    fn size(&self) -> usize {
        chars(&self.title)
            + chars(&self.description)
            + chars(&self.footer)
            + self
                .fields
                .iter()
                .map(|(n, v, _)| chars(n) + chars(v))
                .sum::<usize>()
    }

    fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("title".into(), json!(self.title));
        if !self.description.is_empty() {
            o.insert("description".into(), json!(self.description));
        }
        o.insert("color".into(), json!(self.color));
        if !self.fields.is_empty() {
            let fields: Vec<Value> = self
                .fields
                .iter()
                .map(|(n, v, i)| json!({"name": n, "value": v, "inline": i}))
                .collect();
            o.insert("fields".into(), Value::Array(fields));
        }
        if !self.footer.is_empty() {
            o.insert("footer".into(), json!({ "text": self.footer }));
        }
        if let Some(t) = &self.timestamp {
            o.insert("timestamp".into(), json!(t));
        }
        Value::Object(o)
    }
}

/// A field's text, never empty (Discord rejects empty names and values).
fn field_text(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.is_empty() {
        "-".to_string()
    } else {
        truncate(s, max)
    }
}

/// A timestamp Discord accepts (a four-digit year), or none.
fn timestamp(t: Option<f64>) -> Option<String> {
    let t = t?;
    (t.is_finite() && (0.0..253_402_300_799.0).contains(&t)).then(|| rfc3339(t))
}

/// Log lines as they go into a code block: no fence inside can close it early.
fn log_text(logs: &[String]) -> String {
    logs.join("\n").replace("```", "`\u{200b}``")
}

/// The description: the `description` annotation, then the log excerpt in a code block, in
/// at most `budget` characters. When cut, the annotation ends with `…` and the excerpt keeps
/// its newest lines (after a `…` line); the code block is always closed.
fn describe(annotation: &str, logs: &str, budget: usize) -> String {
    const OPEN: &str = "```\n";
    const CLOSE: &str = "\n```";
    const SEP: &str = "\n";
    const CUT: &str = "…\n";
    // The smallest excerpt worth a code block: fences and a few characters.
    const MIN_LOG: usize = 8 + 2 + 16;
    let annotation = annotation.trim();
    let logs = logs.trim_end_matches('\n');
    let (a_len, l_len) = (chars(annotation), chars(logs));
    let log_full = if l_len == 0 { 0 } else { 8 + l_len };
    let sep = if l_len > 0 && a_len > 0 { 1 } else { 0 };
    if a_len + sep + log_full <= budget {
        return assemble(annotation, logs);
    }
    // Who gets what: the excerpt at most half when the annotation needs more, but whatever
    // the annotation leaves.
    let log_budget = if l_len == 0 || budget < MIN_LOG {
        0
    } else if a_len == 0 {
        budget
    } else {
        let want_a = a_len + sep;
        let half = budget / 2;
        log_full.min(budget.saturating_sub(want_a).max(half))
    };
    let log_budget = if log_budget < MIN_LOG.min(log_full) {
        0
    } else {
        log_budget
    };
    let a_budget = budget.saturating_sub(log_budget + if log_budget > 0 { 1 } else { 0 });
    let annotation = truncate(annotation, a_budget);
    if log_budget == 0 {
        return annotation;
    }
    let sep = if annotation.is_empty() { 0 } else { chars(SEP) };
    // Whatever the annotation did not use goes to the excerpt.
    let room = budget.saturating_sub(chars(&annotation) + sep + chars(OPEN) + chars(CLOSE));
    let excerpt = if l_len <= room {
        logs.to_string()
    } else {
        let keep = room.saturating_sub(chars(CUT));
        let tail: String = logs.chars().skip(l_len - keep).collect();
        format!("{CUT}{tail}")
    };
    assemble(&annotation, &excerpt)
}

fn assemble(annotation: &str, logs: &str) -> String {
    let mut out = annotation.to_string();
    if !logs.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("```\n");
        out.push_str(logs);
        out.push_str("\n```");
    }
    out
}

/// The embed of one item, within every per-embed limit and within the 6000 total alone.
fn embed(item: &Item, batch_test: bool, repeat: bool, host: &str) -> Embed {
    let mut title = format!("{} {}", item.status.tag(), item.summary().trim());
    if batch_test {
        title = format!("[TEST] {title}");
    }
    let title = truncate(title.trim(), limits::TITLE);
    let color = match item.status {
        Status::Resolved => COLOR_RESOLVED,
        Status::Firing => match item.severity() {
            "critical" => COLOR_CRITICAL,
            "info" => COLOR_INFO,
            _ => COLOR_WARNING,
        },
    };
    let mut fields: Vec<(String, String, bool)> = Vec::new();
    let mut push = |name: &str, value: &str| {
        if value.trim().is_empty() || fields.len() >= limits::FIELDS {
            return;
        }
        let value = field_text(value, limits::FIELD_VALUE);
        let inline = chars(&value) <= INLINE_MAX;
        fields.push((field_text(name, limits::FIELD_NAME), value, inline));
    };
    push("Alert", item.alertname());
    push("Severity", item.severity());
    if let Some(v) = &item.value {
        push("Value", v);
    }
    let mut shown_container = false;
    for (key, name) in KEY_LABELS {
        if let Some(v) = item.labels.get(*key) {
            if *name == "Container" {
                if shown_container {
                    continue;
                }
                shown_container = true;
            }
            push(name, v);
        }
    }
    if let Some(r) = &item.reason {
        for (name, value) in r.fields() {
            push(name, &value);
        }
    }
    let mut footer = format!("lookout on {}", truncate(host.trim(), HOST_MAX));
    if repeat {
        footer.push_str(" · reminder");
    }
    if batch_test {
        footer.push_str(" · test");
    }
    let footer = truncate(&footer, limits::FOOTER);
    let ts = match item.status {
        Status::Firing => timestamp(Some(item.starts_at)),
        Status::Resolved => timestamp(item.ends_at).or_else(|| timestamp(Some(item.starts_at))),
    };
    let annotation = item
        .annotations
        .get("description")
        .map(String::as_str)
        .unwrap_or("");
    let logs = log_text(&item.logs);
    let mut e = Embed {
        title,
        description: String::new(),
        color,
        fields,
        footer,
        timestamp: ts,
    };
    // Fields first: they must fit alone; then the description gets what is left.
    let mut cap = limits::FIELD_VALUE;
    while e.size() > limits::TOTAL && cap > 16 {
        cap /= 2;
        for f in &mut e.fields {
            f.1 = field_text(&f.1, cap);
            f.0 = field_text(&f.0, cap);
        }
    }
    while e.size() > limits::TOTAL && !e.fields.is_empty() {
        e.fields.pop();
    }
    let budget = limits::DESCRIPTION.min(limits::TOTAL.saturating_sub(e.size()));
    e.description = describe(annotation, &logs, budget);
    e
}

/// The request body of one message.
fn payload(
    embeds: &[Embed],
    content: Option<String>,
    username: Option<&str>,
    avatar_url: Option<&str>,
    allowed: Value,
) -> Value {
    let mut o = Map::new();
    if let Some(c) = content {
        o.insert("content".into(), json!(truncate(&c, limits::CONTENT)));
    }
    if let Some(u) = username {
        o.insert("username".into(), json!(u));
    }
    if let Some(a) = avatar_url {
        o.insert("avatar_url".into(), json!(a));
    }
    o.insert(
        "embeds".into(),
        Value::Array(embeds.iter().map(Embed::to_json).collect()),
    );
    o.insert("allowed_mentions".into(), allowed);
    Value::Object(o)
}

/// How many of `sizes`, from the start, fit one message.
fn fits(sizes: &[usize], max_embeds: usize) -> usize {
    let mut total = 0;
    let mut n = 0;
    for s in sizes.iter().take(max_embeds) {
        if n > 0 && total + s > limits::TOTAL {
            break;
        }
        total += s;
        n += 1;
    }
    n
}

/// The webhook URL with `wait=true` (other query parameters, such as `thread_id`, kept).
fn with_wait(url: &str) -> Option<Url> {
    let mut u = Url::parse(url.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return None;
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "wait")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.set_query(None);
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        q.append_pair("wait", "true");
    }
    Some(u)
}

/// `reqwest`'s error and its causes, without the URL.
fn describe_error(e: reqwest::Error, timeout: Duration) -> String {
    let e = e.without_url();
    let what = if e.is_timeout() {
        format!("discord request timed out after {}s", timeout.as_secs_f64())
    } else if e.is_connect() {
        "cannot connect to discord".to_string()
    } else {
        "discord request failed".to_string()
    };
    let mut out = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn header_f64(h: &HeaderMap, name: &str) -> Option<f64> {
    h.get(name)?.to_str().ok()?.trim().parse::<f64>().ok()
}

fn secs(s: f64, max: Duration) -> Option<Duration> {
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s).min(max))
}

impl DiscordNotifier {
    pub fn new(cfg: &DiscordConfig, timeout: Duration) -> DiscordNotifier {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would turn the POST into a GET, and could carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "DiscordBot (https://github.com/lookout, ",
                env!("CARGO_PKG_VERSION"),
                ") lookout"
            ))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let raw = cfg.webhook_url.expose();
        let url = with_wait(raw);
        let mut secrets = vec![raw.trim().to_string()];
        if let Some(u) = &url {
            secrets.push(u.to_string());
            // The token: the last path segment of `/api/webhooks/<id>/<token>`.
            if let Some(t) = u.path_segments().and_then(|mut s| s.next_back()) {
                if t.len() >= 8 {
                    secrets.push(t.to_string());
                }
            }
        }
        secrets.retain(|s| !s.is_empty());
        DiscordNotifier {
            client,
            url,
            secrets,
            username: cfg
                .username
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| truncate(u, limits::USERNAME)),
            avatar_url: cfg
                .avatar_url
                .as_deref()
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_string),
            mention: cfg.mention.as_deref().and_then(Mention::parse),
            timeout,
            pause_until: Mutex::new(None),
        }
    }

    /// `s` with the webhook URL and token replaced by `<secret>`.
    fn redact(&self, s: String) -> String {
        let mut s = s;
        for secret in &self.secrets {
            if s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), "<secret>");
            }
        }
        s
    }

    fn embeds(&self, batch: &Batch, items: &[Item]) -> Vec<Embed> {
        items
            .iter()
            .map(|i| embed(i, batch.test, batch.repeat, &batch.host))
            .collect()
    }

    /// The JSON body for `batch`: what [`Notifier::send`] posts. Items beyond one message's
    /// limits (a batch not cut by [`Notifier::split`]) are named in the content, not dropped
    /// silently.
    pub fn body(&self, batch: &Batch) -> Value {
        let mut embeds = self.embeds(batch, &batch.items);
        let sizes: Vec<usize> = embeds.iter().map(Embed::size).collect();
        let all = fits(&sizes, limits::EMBEDS);
        let mut lines: Vec<String> = Vec::new();
        let ping = batch
            .items
            .iter()
            .any(|i| i.status == Status::Firing && i.severity() == "critical");
        let mention = self.mention.as_ref().filter(|_| ping);
        if let Some(m) = mention {
            lines.push(m.text.clone());
        }
        if batch.test {
            lines.push(TEST_CONTENT.to_string());
        }
        if all < embeds.len() {
            // One embed's room for the note would not hold the rest anyway: keep 9.
            let shown = fits(&sizes, limits::EMBEDS - 1).min(all);
            let rest: Vec<String> = batch.items[shown..]
                .iter()
                .map(|i| format!("{} {}", i.status.tag(), i.summary()))
                .collect();
            lines.push(format!(
                "…and {} more alert{} not shown: {}",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" },
                rest.join("; ")
            ));
            embeds.truncate(shown);
        }
        if embeds.is_empty() && lines.is_empty() {
            lines.push(format!(
                "lookout on {}: no alerts in this notification",
                truncate(&batch.host, 200)
            ));
        }
        let content = (!lines.is_empty()).then(|| lines.join("\n"));
        let allowed = match mention {
            Some(m) => m.allowed(),
            None => json!({ "parse": [] }),
        };
        payload(
            &embeds,
            content,
            self.username.as_deref(),
            self.avatar_url.as_deref(),
            allowed,
        )
    }

    async fn wait_for_bucket(&self) {
        let until = *self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    fn note_bucket(&self, h: &HeaderMap) {
        let empty = h
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim() == "0")
            .unwrap_or(false);
        let pause = if empty {
            header_f64(h, "x-ratelimit-reset-after").and_then(|s| secs(s, MAX_PAUSE))
        } else {
            None
        };
        *self.pause_until.lock().unwrap_or_else(|e| e.into_inner()) =
            pause.map(|p| tokio::time::Instant::now() + p);
    }

    async fn read_body(resp: &mut reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            let room = BODY_CAP - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= BODY_CAP {
                break;
            }
        }
        Ok(body)
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Ack, SendError> {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let code = json
            .as_ref()
            .and_then(|j| j.get("code"))
            .and_then(Value::as_i64);
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(Value::as_str)
            .map(|m| truncate(m, 200));
        let said = match (&message, code) {
            (Some(m), Some(c)) => format!("{m} (code {c})"),
            (Some(m), None) => m.clone(),
            (None, Some(c)) => format!("code {c}"),
            (None, None) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
                let text = text.trim().to_string();
                if text.is_empty() {
                    "no error message".to_string()
                } else {
                    truncate(&text, 200)
                }
            }
        };
        let s = status.as_u16();
        if status.is_success() {
            let id = json
                .as_ref()
                .and_then(|j| j.get("id"))
                .and_then(|id| match id {
                    Value::String(s) if !s.trim().is_empty() => Some(truncate(s.trim(), 64)),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
            return match id {
                Some(id) => Ok(Ack {
                    detail: format!("discord accepted message {id} ({s})"),
                    message_id: Some(id),
                }),
                None => Err(SendError::Retry {
                    after: None,
                    reason: format!(
                        "discord answered {s} without a message id: delivery not confirmed"
                    ),
                }),
            };
        }
        if s == 429 {
            let from_body = json
                .as_ref()
                .and_then(|j| j.get("retry_after"))
                .and_then(Value::as_f64)
                .and_then(|f| secs(f, MAX_RETRY_AFTER));
            let from_header =
                header_f64(headers, RETRY_AFTER.as_str()).and_then(|f| secs(f, MAX_RETRY_AFTER));
            let after = from_body.or(from_header);
            let global = json
                .as_ref()
                .and_then(|j| j.get("global"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            return Err(SendError::Retry {
                after,
                reason: format!(
                    "discord rate limited this webhook{}{}",
                    if global { " (global limit)" } else { "" },
                    match after {
                        Some(a) => format!(", retry after {:.3}s", a.as_secs_f64()),
                        None => String::new(),
                    }
                ),
            });
        }
        if matches!(s, 401 | 403 | 404) {
            let reason = format!(
                "DISCORD WEBHOOK UNUSABLE: discord answered {s}: {said}; the webhook was deleted \
                 or its URL/token is wrong. Notifications to this receiver are stopped until \
                 webhook_url is fixed"
            );
            return Err(SendError::Disabled { reason });
        }
        if status.is_client_error() {
            let mut reason = format!("discord rejected the message ({s}): {said}");
            if let Some(errors) = json.as_ref().and_then(|j| j.get("errors")) {
                reason.push_str(": ");
                reason.push_str(&truncate(&errors.to_string(), 800));
            }
            return Err(SendError::Rejected { reason });
        }
        Err(SendError::Retry {
            after: None,
            reason: format!("discord answered {s}: {said}"),
        })
    }
}

#[async_trait::async_trait]
impl Notifier for DiscordNotifier {
    fn kind(&self) -> &'static str {
        "discord"
    }

    fn split(&self, items: &[Item]) -> Vec<usize> {
        let sizes: Vec<usize> = items
            .iter()
            // Sized as the longest it can be: a test reminder, the longest host name shown.
            .map(|i| embed(i, true, true, "").size() + HOST_MAX)
            .collect();
        let mut out = Vec::new();
        let mut at = 0;
        while at < sizes.len() {
            let n = fits(&sizes[at..], limits::EMBEDS).max(1);
            out.push(n);
            at += n;
        }
        if out.is_empty() {
            out.push(0);
        }
        out
    }

    async fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
        let Some(url) = self.url.clone() else {
            return Err(SendError::Disabled {
                reason: "DISCORD WEBHOOK UNUSABLE: webhook_url is not an http(s) URL".into(),
            });
        };
        let body = match serde_json::to_vec(&self.body(batch)) {
            Ok(b) => b,
            Err(e) => {
                return Err(SendError::Rejected {
                    reason: format!("cannot encode the discord message: {e}"),
                })
            }
        };
        self.wait_for_bucket().await;
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Err(SendError::Retry {
                    after: None,
                    reason: self.redact(describe_error(e, self.timeout)),
                })
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        self.note_bucket(&headers);
        let body = match Self::read_body(&mut resp).await {
            Ok(b) => b,
            Err(e) if status.is_success() => {
                return Err(SendError::Retry {
                    after: None,
                    reason: self.redact(format!(
                        "discord answered {} but its body could not be read: {}",
                        status.as_u16(),
                        describe_error(e, self.timeout)
                    )),
                })
            }
            Err(_) => Vec::new(),
        };
        match self.classify(status, &headers, &body) {
            Ok(mut ack) => {
                ack.detail = self.redact(ack.detail);
                Ok(ack)
            }
            Err(e) => Err(match e {
                SendError::Retry { after, reason } => SendError::Retry {
                    after,
                    reason: self.redact(reason),
                },
                SendError::Disabled { reason } => {
                    let reason = self.redact(reason);
                    tracing::error!(receiver = %batch.receiver, "{reason}");
                    SendError::Disabled { reason }
                }
                SendError::Rejected { reason } => SendError::Rejected {
                    reason: self.redact(reason),
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::receivers::Secret;
    use crate::notify::Reason;
    use std::collections::BTreeMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const TOKEN: &str = "sEcReTtOkEn-abcdefghijklmnopqrstuvwxyz0123456789";

    fn cfg(url: &str, mention: Option<&str>) -> DiscordConfig {
        DiscordConfig {
            webhook_url: Secret::new(url),
            username: Some("lookout".into()),
            avatar_url: None,
            mention: mention.map(str::to_string),
        }
    }

    fn item(seq: u64, status: Status, severity: &str) -> Item {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), "ContainerDown".to_string());
        labels.insert("severity".to_string(), severity.to_string());
        labels.insert("name".to_string(), format!("web-{seq}"));
        Item {
            seq,
            status,
            labels,
            annotations: BTreeMap::new(),
            starts_at: 1_796_048_630.0,
            ends_at: (status == Status::Resolved).then_some(1_796_048_700.0),
            value: Some("1".into()),
            reason: None,
            logs: Vec::new(),
            fingerprint: format!("fp{seq}"),
        }
    }

    fn batch(items: Vec<Item>) -> Batch {
        Batch {
            receiver: "discord".into(),
            group_key: "g".into(),
            group_labels: BTreeMap::new(),
            items,
            host: "host-a".into(),
            external_url: "http://host-a:9659".into(),
            thread: None,
            test: false,
            repeat: false,
        }
    }

    fn notifier(url: &str, mention: Option<&str>) -> DiscordNotifier {
        DiscordNotifier::new(&cfg(url, mention), Duration::from_secs(2))
    }

    /// Every limit Discord checks, on one body.
    fn assert_within_limits(body: &Value) {
        if let Some(c) = body.get("content") {
            let c = c.as_str().unwrap();
            assert!(chars(c) <= limits::CONTENT && !c.trim().is_empty());
        }
        let embeds = body["embeds"].as_array().unwrap();
        assert!(
            body.get("content").is_some() || !embeds.is_empty(),
            "empty message"
        );
        assert!(embeds.len() <= limits::EMBEDS);
        let mut total = 0;
        for e in embeds {
            let title = e["title"].as_str().unwrap();
            assert!(!title.is_empty() && chars(title) <= limits::TITLE);
            total += chars(title);
            if let Some(d) = e.get("description") {
                let d = d.as_str().unwrap();
                assert!(chars(d) <= limits::DESCRIPTION);
                assert!(
                    d.matches("```").count().is_multiple_of(2),
                    "open code block"
                );
                total += chars(d);
            }
            let fields = e.get("fields").and_then(Value::as_array).cloned();
            let fields = fields.unwrap_or_default();
            assert!(fields.len() <= limits::FIELDS);
            for f in fields {
                let (n, v) = (f["name"].as_str().unwrap(), f["value"].as_str().unwrap());
                assert!((1..=limits::FIELD_NAME).contains(&chars(n)), "{n:?}");
                assert!((1..=limits::FIELD_VALUE).contains(&chars(v)), "{v:?}");
                total += chars(n) + chars(v);
            }
            let footer = e["footer"]["text"].as_str().unwrap();
            assert!(chars(footer) <= limits::FOOTER);
            total += chars(footer);
            assert!(e["color"].as_u64().unwrap() <= 0xFF_FF_FF);
        }
        assert!(total <= limits::TOTAL, "total {total}");
    }

    #[test]
    fn wait_is_appended_and_other_query_kept() {
        let u = with_wait("https://discord.com/api/webhooks/1/tok").unwrap();
        assert_eq!(
            u.as_str(),
            "https://discord.com/api/webhooks/1/tok?wait=true"
        );
        let u = with_wait("https://discord.com/api/webhooks/1/tok?thread_id=9&wait=false").unwrap();
        assert_eq!(u.query(), Some("thread_id=9&wait=true"));
        assert!(with_wait("not a url").is_none());
        assert!(with_wait("ftp://x/y").is_none());
    }

    #[test]
    fn mentions_allow_exactly_what_they_name() {
        let m = Mention::parse("<@&123>").unwrap();
        assert_eq!(m.allowed(), json!({"parse": [], "roles": ["123"]}));
        let m = Mention::parse("<@!456> <@789>").unwrap();
        assert_eq!(m.allowed(), json!({"parse": [], "users": ["456", "789"]}));
        let m = Mention::parse("@here").unwrap();
        assert_eq!(m.allowed(), json!({"parse": ["everyone"]}));
        let m = Mention::parse("on call").unwrap();
        assert_eq!(m.allowed(), json!({"parse": []}));
        assert!(Mention::parse("  ").is_none());
    }

    #[test]
    fn mention_only_for_a_critical_alert_that_fires() {
        let n = notifier("http://127.0.0.1:1/api/webhooks/1/t", Some("<@&42>"));
        let b = n.body(&batch(vec![item(1, Status::Firing, "warning")]));
        assert!(b.get("content").is_none());
        assert_eq!(b["allowed_mentions"], json!({"parse": []}));
        let b = n.body(&batch(vec![item(1, Status::Resolved, "critical")]));
        assert!(b.get("content").is_none());
        let b = n.body(&batch(vec![
            item(1, Status::Firing, "warning"),
            item(2, Status::Firing, "critical"),
        ]));
        assert_eq!(b["content"], "<@&42>");
        assert_eq!(b["allowed_mentions"], json!({"parse": [], "roles": ["42"]}));
    }

    #[test]
    fn embed_reads_right() {
        let mut i = item(1, Status::Firing, "critical");
        i.annotations.insert("summary".into(), "web is down".into());
        i.annotations
            .insert("description".into(), "It stopped.".into());
        i.labels.insert("instance".into(), "host-a".into());
        i.labels.insert(
            "container_label_com_docker_compose_service".into(),
            "web".into(),
        );
        i.labels.insert("unrelated".into(), "zzz-not-shown".into());
        i.reason = Some(Reason {
            container: "web-1".into(),
            image: "nginx".into(),
            state: "exited".into(),
            exit_code: Some(137),
            oom_killed: true,
            restart_count: 3,
            ..Default::default()
        });
        i.logs = vec!["line one".into(), "has ``` fence".into()];
        let mut b = batch(vec![i]);
        b.repeat = true;
        let body = notifier("http://x/api/webhooks/1/t", None).body(&b);
        assert_within_limits(&body);
        let e = &body["embeds"][0];
        assert_eq!(e["title"], "[FIRING] web is down");
        assert_eq!(e["color"], COLOR_CRITICAL);
        assert_eq!(e["timestamp"], "2026-11-30T14:23:50.000Z");
        assert_eq!(e["footer"]["text"], "lookout on host-a · reminder");
        let d = e["description"].as_str().unwrap();
        assert!(d.starts_with("It stopped.\n```\nline one\n"), "{d}");
        assert!(d.ends_with("\n```"));
        assert_eq!(
            d.matches("```").count(),
            2,
            "the fence in the log is defused"
        );
        let text = e["fields"].to_string();
        for want in [
            "Compose service",
            "host-a",
            "Exit code",
            "137 (SIGKILL",
            "Restarts",
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
        assert!(!text.contains("zzz-not-shown"));

        let mut r = item(2, Status::Resolved, "critical");
        r.labels.remove("name");
        let body = notifier("http://x/api/webhooks/1/t", None).body(&batch(vec![r]));
        assert_eq!(body["embeds"][0]["color"], COLOR_RESOLVED);
        assert_eq!(body["embeds"][0]["timestamp"], "2026-11-30T14:25:00.000Z");
        assert!(body["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED] "));
    }

    #[test]
    fn test_batches_are_marked() {
        let mut b = batch(vec![item(1, Status::Firing, "info")]);
        b.test = true;
        let body = notifier("http://x/api/webhooks/1/t", None).body(&b);
        assert_eq!(body["content"], TEST_CONTENT);
        assert!(body["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .starts_with("[TEST] [FIRING]"));
        assert_eq!(body["embeds"][0]["color"], COLOR_INFO);
    }

    #[test]
    fn an_empty_batch_is_not_an_empty_message() {
        let body = notifier("http://x/api/webhooks/1/t", None).body(&batch(vec![]));
        assert!(!body["content"].as_str().unwrap().is_empty());
        assert_within_limits(&body);
    }

    #[test]
    fn descriptions_fit_any_budget_and_close_their_code_block() {
        let long_a = "a".repeat(10_000);
        let long_l = "log line\n".repeat(3000);
        for a in ["", "short", long_a.as_str()] {
            for l in ["", "x", "tail", long_l.as_str()] {
                for budget in [0, 5, 20, 30, 100, 2000, 4096] {
                    let d = describe(a, l, budget);
                    assert!(chars(&d) <= budget, "{} > {budget}", chars(&d));
                    assert!(d.matches("```").count().is_multiple_of(2));
                    if d.contains("```") {
                        assert!(d.ends_with("\n```"));
                    }
                }
            }
        }
        let d = describe(&long_a, &long_l, 4096);
        assert_eq!(chars(&d), 4096);
        let (a, rest) = d.split_once('\n').unwrap();
        assert!(a.ends_with('…'));
        assert!(rest.starts_with("```\n…\n"));
        assert!(rest.ends_with("log line\n```"), "newest lines kept");
        // Room enough: untouched.
        assert_eq!(describe("why", "l1\nl2", 100), "why\n```\nl1\nl2\n```");
    }

    #[test]
    fn a_monstrous_item_still_fits_one_message() {
        let mut i = item(1, Status::Firing, "critical");
        let huge = "é".repeat(20_000);
        i.annotations.insert("summary".into(), huge.clone());
        i.annotations.insert("description".into(), huge.clone());
        for (k, _) in KEY_LABELS {
            i.labels.insert(k.to_string(), huge.clone());
        }
        i.labels.insert("alertname".into(), huge.clone());
        i.value = Some(huge.clone());
        i.reason = Some(Reason {
            image: huge.clone(),
            state: huge.clone(),
            ..Default::default()
        });
        i.logs = vec![huge.clone(); 10];
        let mut b = batch(vec![i.clone(), i.clone(), i]);
        b.host = huge;
        b.test = true;
        let n = notifier("http://x/api/webhooks/1/t", Some("<@1>"));
        assert_eq!(n.split(&b.items), vec![1, 1, 1]);
        let one = Batch {
            items: b.items[..1].to_vec(),
            ..b.clone()
        };
        let body = n.body(&one);
        assert_within_limits(&body);
        assert_eq!(body["embeds"].as_array().unwrap().len(), 1);
        // Unsplit, the rest is named in the content instead of failing.
        let body = n.body(&b);
        assert_within_limits(&body);
        assert!(body["content"]
            .as_str()
            .unwrap()
            .contains("…and 2 more alerts not shown"));
    }

    #[test]
    fn split_packs_by_count_and_by_total_size() {
        let n = notifier("http://x/api/webhooks/1/t", None);
        let items: Vec<Item> = (0..23)
            .map(|s| item(s, Status::Firing, "warning"))
            .collect();
        assert_eq!(n.split(&items), vec![10, 10, 3]);
        assert_eq!(n.split(&[]), vec![0]);
        // ~2500 characters each: two per message.
        let items: Vec<Item> = (0..5)
            .map(|s| {
                let mut i = item(s, Status::Firing, "warning");
                i.annotations.insert("description".into(), "d".repeat(2500));
                i
            })
            .collect();
        let sizes = n.split(&items);
        assert_eq!(sizes, vec![2, 2, 1]);
        for chunk in items.chunks(2) {
            assert_within_limits(&n.body(&batch(chunk.to_vec())));
        }
    }

    /// A one-shot HTTP server answering each request with `answer(request head)`.
    async fn raw_server(answer: fn(&str) -> Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    // Head and body (small): read until the body is in.
                    loop {
                        let Ok(n) = s.read(&mut tmp).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                let _ = s.write_all(&answer(head)).await;
                                let _ = s.shutdown().await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        format!("http://{addr}/api/webhooks/1/{TOKEN}")
    }

    fn response(status: &str, headers: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    async fn send_one(url: &str) -> Result<Ack, SendError> {
        notifier(url, None)
            .send(&batch(vec![item(1, Status::Firing, "warning")]))
            .await
    }

    #[tokio::test]
    async fn the_token_is_in_no_error() {
        let mut errors: Vec<SendError> = Vec::new();
        // Connection refused.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://127.0.0.1:{port}/api/webhooks/1/{TOKEN}");
        errors.push(send_one(&url).await.unwrap_err());
        // Timeout: accepts, never answers.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let n = DiscordNotifier::new(
            &cfg(&format!("http://{addr}/api/webhooks/1/{TOKEN}"), None),
            Duration::from_millis(300),
        );
        let e = n
            .send(&batch(vec![item(1, Status::Firing, "warning")]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        errors.push(e);
        hold.abort();
        // Answers that echo the request line (with the token) in their bodies.
        fn echo(status: &'static str) -> impl Fn(&str) -> Vec<u8> {
            move |head: &str| {
                let line = head.lines().next().unwrap_or("").to_string();
                response(
                    status,
                    "",
                    &format!("{{\"message\":\"{line}\",\"code\":1}}"),
                )
            }
        }
        let echo500: fn(&str) -> Vec<u8> = |h| echo("500 Internal Server Error")(h);
        let echo400: fn(&str) -> Vec<u8> = |h| echo("400 Bad Request")(h);
        let echo404: fn(&str) -> Vec<u8> = |h| echo("404 Not Found")(h);
        let echo200: fn(&str) -> Vec<u8> = |h| {
            let line = h.lines().next().unwrap_or("").to_string();
            response("200 OK", "", &format!("{{\"note\":\"{line}\"}}"))
        };
        let html: fn(&str) -> Vec<u8> = |h| response("502 Bad Gateway", "", h);
        for f in [echo500, echo400, echo404, echo200, html] {
            let url = raw_server(f).await;
            let e = send_one(&url).await.unwrap_err();
            errors.push(e);
        }
        // A URL that does not parse, token and all.
        errors.push(send_one(&format!("http//x/{TOKEN}")).await.unwrap_err());
        assert_eq!(errors.len(), 8);
        let mut saw_secret_marker = false;
        for e in &errors {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(TOKEN), "token leaked: {text}");
            assert!(!text.contains("sEcReT"), "token leaked: {text}");
            saw_secret_marker |= text.contains("<secret>");
        }
        assert!(saw_secret_marker, "the echoing answers were redacted");
        let n = notifier(&format!("http://x/api/webhooks/1/{TOKEN}"), None);
        assert!(!format!("{n:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn answers_are_classified() {
        let ok: fn(&str) -> Vec<u8> = |_| {
            response(
                "200 OK",
                "",
                r#"{"id":"1234","channel_id":"9","embeds":[]}"#,
            )
        };
        let ack = send_one(&raw_server(ok).await).await.unwrap();
        assert_eq!(ack.message_id.as_deref(), Some("1234"));

        let no_id: fn(&str) -> Vec<u8> = |_| response("204 No Content", "", "");
        let e = send_one(&raw_server(no_id).await).await.unwrap_err();
        assert!(matches!(e, SendError::Retry { after: None, .. }), "{e:?}");

        let both: fn(&str) -> Vec<u8> = |_| {
            response(
                "429 Too Many Requests",
                "retry-after: 3\r\n",
                r#"{"message":"You are being rate limited.","retry_after":1.25,"global":false}"#,
            )
        };
        let e = send_one(&raw_server(both).await).await.unwrap_err();
        assert_eq!(
            e,
            SendError::Retry {
                after: Some(Duration::from_millis(1250)),
                reason: e.to_string()
            }
        );
        let header_only: fn(&str) -> Vec<u8> =
            |_| response("429 Too Many Requests", "retry-after: 3\r\n", "<html>");
        let e = send_one(&raw_server(header_only).await).await.unwrap_err();
        assert!(
            matches!(e, SendError::Retry { after: Some(a), .. } if a == Duration::from_secs(3))
        );
        let neither: fn(&str) -> Vec<u8> = |_| response("429 Too Many Requests", "", "{");
        let e = send_one(&raw_server(neither).await).await.unwrap_err();
        assert!(matches!(e, SendError::Retry { after: None, .. }));

        let gone: fn(&str) -> Vec<u8> = |_| {
            response(
                "404 Not Found",
                "",
                r#"{"message":"Unknown Webhook","code":10015}"#,
            )
        };
        let e = send_one(&raw_server(gone).await).await.unwrap_err();
        assert!(matches!(&e, SendError::Disabled { reason } if reason.contains("10015")));
        let denied: fn(&str) -> Vec<u8> = |_| response("401 Unauthorized", "", "");
        let e = send_one(&raw_server(denied).await).await.unwrap_err();
        assert!(matches!(e, SendError::Disabled { .. }));

        let bad: fn(&str) -> Vec<u8> = |_| {
            response(
                "400 Bad Request",
                "",
                r#"{"code":50035,"message":"Invalid Form Body","errors":{"embeds":{}}}"#,
            )
        };
        let e = send_one(&raw_server(bad).await).await.unwrap_err();
        assert!(
            matches!(&e, SendError::Rejected { reason } if reason.contains("Invalid Form Body (code 50035)")),
            "{e:?}"
        );
        let huge: fn(&str) -> Vec<u8> = |_| response("500 Oops", "", &"x".repeat(2_000_000));
        let e = send_one(&raw_server(huge).await).await.unwrap_err();
        assert!(matches!(&e, SendError::Retry { reason, .. } if reason.len() < 1000));
    }

    #[tokio::test]
    async fn an_empty_bucket_delays_the_next_send() {
        let empty: fn(&str) -> Vec<u8> = |_| {
            response(
                "200 OK",
                "x-ratelimit-remaining: 0\r\nx-ratelimit-reset-after: 0.6\r\n",
                r#"{"id":"1"}"#,
            )
        };
        let n = notifier(&raw_server(empty).await, None);
        let b = batch(vec![item(1, Status::Firing, "warning")]);
        n.send(&b).await.unwrap();
        let t = std::time::Instant::now();
        n.send(&b).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(550),
            "{:?}",
            t.elapsed()
        );
    }
}
