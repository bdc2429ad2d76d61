//! A strict fake Discord: the execute-webhook endpoint, validated as Discord documents it, on a
//! loopback port.
//!
//! ```ignore
//! let discord = FakeDiscord::start().await;
//! let url = discord.webhook_url();          // http://127.0.0.1:PORT/api/webhooks/ID/TOKEN
//! discord.fail_next(2, Fault::RateLimited { retry_after: 0.5 });
//! discord.down_for(Duration::from_secs(1)).await;   // refuses connections, then comes back
//! let msgs = discord.wait_messages(3, Duration::from_secs(5)).await;
//! ```
//!
//! - `POST /api/webhooks/{id}/{token}`: `?wait=true` answers 200 with a message object, without
//!   it 204. Unknown id or token: 404 `Unknown Webhook` (10015).
//! - Bodies are checked against every documented limit; a violation is a 400 with Discord's
//!   `Invalid Form Body` (50035) error tree, an empty message a 400 with 50006.
//! - A per-webhook bucket of 5 requests per 2 s, with Discord's rate-limit headers on every
//!   answer and a 429 (`Retry-After`, JSON `retry_after`) when it is exceeded.
//! - Every accepted message and every answer's status is recorded.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};

pub const LIMIT_CONTENT: usize = 2000;
pub const LIMIT_EMBEDS: usize = 10;
pub const LIMIT_TITLE: usize = 256;
pub const LIMIT_DESCRIPTION: usize = 4096;
pub const LIMIT_FIELDS: usize = 25;
pub const LIMIT_FIELD_NAME: usize = 256;
pub const LIMIT_FIELD_VALUE: usize = 1024;
pub const LIMIT_FOOTER: usize = 2048;
pub const LIMIT_AUTHOR: usize = 256;
pub const LIMIT_TOTAL: usize = 6000;
pub const LIMIT_USERNAME: usize = 80;

/// What a scripted answer is, instead of the normal one.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with this `retry_after` (seconds).
    RateLimited { retry_after: f64 },
    /// This 5xx status.
    ServerError(u16),
    /// 404 Unknown Webhook (as if deleted), this time only.
    Gone,
    /// 401 Invalid Webhook Token.
    Unauthorized,
    /// 200 with a body that is no message object (`{}`).
    NoMessageId,
    /// Answer normally, after this delay.
    Slow(Duration),
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    /// The request body as posted.
    pub body: Value,
    /// `thread_id` of the query, if any.
    pub thread_id: Option<String>,
    /// Whether the poster asked for `wait=true`.
    pub wait: bool,
    pub at: Instant,
    pub time: SystemTime,
}

impl Message {
    pub fn embeds(&self) -> Vec<Value> {
        self.body["embeds"].as_array().cloned().unwrap_or_default()
    }
    pub fn content(&self) -> Option<&str> {
        self.body.get("content").and_then(Value::as_str)
    }
}

struct Bucket {
    limit: u32,
    per: Duration,
    remaining: u32,
    reset_at: Instant,
}

struct State {
    messages: Vec<Message>,
    statuses: BTreeMap<u16, usize>,
    requests: usize,
    faults: VecDeque<Fault>,
    bucket: Bucket,
    deleted: bool,
    next_id: u64,
}

struct Inner {
    webhook_id: String,
    token: String,
    state: Mutex<State>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake; stops serving when dropped.
pub struct FakeDiscord {
    inner: Arc<Inner>,
    addr: SocketAddr,
    server: Arc<Mutex<Option<JoinHandle<()>>>>,
    restart: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        if let Some(h) = self
            .restart
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.abort();
        }
        if let Some(h) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.abort();
        }
    }
}

impl FakeDiscord {
    /// A fake on a free loopback port, one webhook, Discord's default bucket (5 per 2 s).
    pub async fn start() -> FakeDiscord {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let inner = Arc::new(Inner {
            webhook_id: "223704706495545344".into(),
            token: "3d89bb7572e0fb30d8128367b3b1b44fecd1726de135cbe28a41f8b2f777c372ba2939e72279b94526ff5d1bd4358d65cf11".into(),
            state: Mutex::new(State {
                messages: Vec::new(),
                statuses: BTreeMap::new(),
                requests: 0,
                faults: VecDeque::new(),
                bucket: Bucket {
                    limit: 5,
                    per: Duration::from_secs(2),
                    remaining: 5,
                    reset_at: Instant::now(),
                },
                deleted: false,
                next_id: 0,
            }),
        });
        let server = tokio::spawn(serve(listener, inner.clone()));
        FakeDiscord {
            inner,
            addr,
            server: Arc::new(Mutex::new(Some(server))),
            restart: Mutex::new(None),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn webhook_id(&self) -> &str {
        &self.inner.webhook_id
    }
    pub fn token(&self) -> &str {
        &self.inner.token
    }
    /// `http://127.0.0.1:PORT/api/webhooks/ID/TOKEN` (no query: the notifier adds `wait`).
    pub fn webhook_url(&self) -> String {
        self.url_for(&self.inner.webhook_id, &self.inner.token)
    }
    /// A webhook URL on this fake for any id and token (unknown ones get 404).
    pub fn url_for(&self, id: &str, token: &str) -> String {
        format!("http://{}/api/webhooks/{id}/{token}", self.addr)
    }

    /// Every accepted message, in arrival order.
    pub fn messages(&self) -> Vec<Message> {
        self.inner.state().messages.clone()
    }
    /// How many answers had each status.
    pub fn statuses(&self) -> BTreeMap<u16, usize> {
        self.inner.state().statuses.clone()
    }
    pub fn count(&self, status: u16) -> usize {
        self.statuses().get(&status).copied().unwrap_or(0)
    }
    /// Requests answered, whatever the answer.
    pub fn requests(&self) -> usize {
        self.inner.state().requests
    }

    /// Answer the next `n` requests to the webhook with `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        let mut s = self.inner.state();
        for _ in 0..n {
            s.faults.push_back(fault.clone());
        }
    }
    /// Forget scripted faults not yet used.
    pub fn clear_faults(&self) {
        self.inner.state().faults.clear();
    }
    /// Delete the webhook for good: every later request gets 404 Unknown Webhook.
    pub fn delete_webhook(&self) {
        self.inner.state().deleted = true;
    }
    /// The bucket: `limit` requests per `per` (Discord's: 5 per 2 s).
    pub fn set_rate_limit(&self, limit: u32, per: Duration) {
        let mut s = self.inner.state();
        s.bucket = Bucket {
            limit,
            per,
            remaining: limit,
            reset_at: Instant::now(),
        };
    }

    /// Stop listening and drop every open connection now; listen again on the same port after
    /// `d`. Returns once the port refuses connections.
    pub async fn down_for(&self, d: Duration) {
        let old = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = old {
            h.abort();
            let _ = h.await;
        }
        let (addr, inner, slot) = (self.addr, self.inner.clone(), self.server.clone());
        let restart = tokio::spawn(async move {
            tokio::time::sleep(d).await;
            let started = Instant::now();
            let listener = loop {
                match rebind(addr) {
                    Ok(l) => break l,
                    Err(e) if started.elapsed() > Duration::from_secs(10) => {
                        panic!("fake discord: cannot listen on {addr} again: {e}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            let h = tokio::spawn(serve(listener, inner));
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        });
        let prev = self
            .restart
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(restart);
        if let Some(p) = prev {
            p.abort();
        }
    }

    /// Whether it listens now.
    pub fn is_up(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The first `n` messages, once that many arrived; panics after `timeout`.
    pub async fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let msgs = self.messages();
            if msgs.len() >= n {
                return msgs;
            }
            if Instant::now() >= deadline {
                panic!(
                    "fake discord: {} of {n} messages after {timeout:?}; answers: {:?}",
                    msgs.len(),
                    self.statuses()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The accept loop; aborting it drops the listener and every connection (the `JoinSet`).
async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let inner = inner.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let inner = inner.clone();
                        async move { Ok::<_, Infallible>(handle(&inner, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An answer: status, JSON body (None: no body), rate-limit headers.
struct Answer {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
}

async fn handle(inner: &Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let answer = answer(inner, req).await;
    {
        let mut s = inner.state();
        s.requests += 1;
        *s.statuses.entry(answer.status).or_insert(0) += 1;
    }
    let mut b = Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match answer.body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    b.body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn rate_headers(b: &Bucket, now: Instant) -> Vec<(String, String)> {
    let after = b.reset_at.saturating_duration_since(now).as_secs_f64();
    vec![
        ("x-ratelimit-limit".into(), b.limit.to_string()),
        ("x-ratelimit-remaining".into(), b.remaining.to_string()),
        (
            "x-ratelimit-reset".into(),
            format!("{:.3}", unix_now() + after),
        ),
        ("x-ratelimit-reset-after".into(), format!("{after:.3}")),
        (
            "x-ratelimit-bucket".into(),
            "a06de2c7f4e1d8b9c0fa58ec1ba3b3c0".into(),
        ),
    ]
}

fn rate_limited(retry_after: f64, mut headers: Vec<(String, String)>) -> Answer {
    headers.push((
        "retry-after".into(),
        (retry_after.ceil().max(0.0) as u64).to_string(),
    ));
    headers.push(("x-ratelimit-scope".into(), "shared".into()));
    Answer {
        status: 429,
        body: Some(json!({
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": false,
        })),
        headers,
    }
}

fn unknown_webhook() -> Answer {
    Answer::json(404, json!({"message": "Unknown Webhook", "code": 10015}))
}

async fn answer(inner: &Arc<Inner>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (id, token) = match segments.as_slice() {
        ["api", "webhooks", id, token] => (id.to_string(), token.to_string()),
        ["api", "v10", "webhooks", id, token] => (id.to_string(), token.to_string()),
        _ => return Answer::json(404, json!({"message": "404: Not Found", "code": 0})),
    };
    if req.method() != hyper::Method::POST {
        return Answer::json(
            405,
            json!({"message": "405: Method Not Allowed", "code": 0}),
        );
    }

    // The bucket, then scripted faults, as Discord rate limits before it looks at anything.
    let (headers, fault) = {
        let mut s = inner.state();
        let now = Instant::now();
        let b = &mut s.bucket;
        if now >= b.reset_at {
            b.remaining = b.limit;
            b.reset_at = now + b.per;
        }
        if b.remaining == 0 {
            let after = b.reset_at.saturating_duration_since(now).as_secs_f64();
            let after = (after * 1000.0).ceil() / 1000.0;
            return rate_limited(after, rate_headers(b, now));
        }
        b.remaining -= 1;
        let headers = rate_headers(b, now);
        (headers, s.faults.pop_front())
    };
    let with = |mut a: Answer| {
        a.headers.extend(headers.clone());
        a
    };
    match fault {
        Some(Fault::RateLimited { retry_after }) => {
            let mut h = headers.clone();
            for (k, v) in h.iter_mut() {
                if k == "x-ratelimit-remaining" {
                    *v = "0".into();
                }
                if k == "x-ratelimit-reset-after" {
                    *v = format!("{retry_after:.3}");
                }
            }
            return rate_limited(retry_after, h);
        }
        Some(Fault::ServerError(code)) => {
            return with(Answer::json(
                code,
                json!({"message": "Internal Server Error", "code": 0}),
            ))
        }
        Some(Fault::Gone) => return with(unknown_webhook()),
        Some(Fault::Unauthorized) => {
            return with(Answer::json(
                401,
                json!({"message": "Invalid Webhook Token", "code": 50027}),
            ))
        }
        Some(Fault::NoMessageId) => return with(Answer::json(200, json!({}))),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }

    let deleted = inner.state().deleted;
    if deleted || id != inner.webhook_id || token != inner.token {
        return with(unknown_webhook());
    }

    let json_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    let bytes: Bytes = match axum::body::to_bytes(Body::new(req.into_body()), 8 << 20).await {
        Ok(b) => b,
        Err(_) => {
            return with(Answer::json(
                413,
                json!({"message": "Request entity too large", "code": 40005}),
            ))
        }
    };
    if !json_type {
        // Discord reads anything else as a form without a payload.
        return with(empty_message());
    }
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => {
            return with(Answer::json(
                400,
                json!({"message": "The request body contains invalid JSON.", "code": 50109}),
            ))
        }
    };
    if let Err(a) = validate(&body) {
        return with(a);
    }

    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let wait = params
        .iter()
        .any(|(k, v)| *k == "wait" && v.eq_ignore_ascii_case("true"));
    let thread_id = params
        .iter()
        .find(|(k, _)| *k == "thread_id")
        .map(|(_, v)| v.to_string());
    let mut s = inner.state();
    s.next_id += 1;
    let msg_id = (1_300_000_000_000_000_000u64 + s.next_id).to_string();
    let message = Message {
        id: msg_id.clone(),
        body: body.clone(),
        thread_id: thread_id.clone(),
        wait,
        at: Instant::now(),
        time: SystemTime::now(),
    };
    s.messages.push(message);
    drop(s);
    if !wait {
        return with(Answer {
            status: 204,
            body: None,
            headers: Vec::new(),
        });
    }
    let channel = thread_id.unwrap_or_else(|| "1100000000000000001".into());
    with(Answer::json(
        200,
        json!({
            "id": msg_id,
            "type": 0,
            "content": body.get("content").cloned().unwrap_or(json!("")),
            "channel_id": channel,
            "author": {
                "id": inner.webhook_id,
                "username": body.get("username").cloned().unwrap_or(json!("Captain Hook")),
                "avatar": null,
                "discriminator": "0000",
                "bot": true,
            },
            "attachments": [],
            "embeds": body.get("embeds").cloned().unwrap_or(json!([])),
            "mentions": [],
            "mention_roles": [],
            "pinned": false,
            "mention_everyone": false,
            "tts": false,
            "timestamp": crate_rfc3339(unix_now()),
            "edited_timestamp": null,
            "flags": 0,
            "components": [],
            "webhook_id": inner.webhook_id,
        }),
    ))
}

fn crate_rfc3339(t: f64) -> String {
    let s = lookout::notify::rfc3339(t);
    // Discord's own form: microseconds and an offset.
    s.replace('Z', "000+00:00")
}

fn empty_message() -> Answer {
    Answer::json(
        400,
        json!({"message": "Cannot send an empty message", "code": 50006}),
    )
}

/// Discord's error tree: `{"embeds": {"0": {"title": {"_errors": [...]}}}}`.
#[derive(Default)]
struct Errors(Map<String, Value>);

impl Errors {
    fn add(&mut self, path: &[String], code: &str, message: String) {
        let mut node = &mut self.0;
        for p in path {
            let next = node
                .entry(p.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            node = next.as_object_mut().expect("object");
        }
        let errs = node
            .entry("_errors".to_string())
            .or_insert_with(|| json!([]));
        if let Some(a) = errs.as_array_mut() {
            a.push(json!({"code": code, "message": message}));
        }
    }
}

fn p(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// A string of `min..=max` characters at `path`; its length when it is one.
fn check_str(
    e: &mut Errors,
    v: Option<&Value>,
    path: Vec<String>,
    min: usize,
    max: usize,
    required: bool,
) -> usize {
    match v {
        None | Some(Value::Null) => {
            if required {
                e.add(&path, "BASE_TYPE_REQUIRED", "This field is required".into());
            }
            0
        }
        Some(Value::String(s)) => {
            let n = len(s);
            let blank = s.trim().is_empty();
            if n > max {
                e.add(
                    &path,
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {max} or fewer in length."),
                );
            } else if min > 0 && (n < min || blank) {
                e.add(
                    &path,
                    "BASE_TYPE_BAD_LENGTH",
                    format!("Must be between {min} and {max} in length."),
                );
            }
            n
        }
        Some(_) => {
            e.add(
                &path,
                "STRING_TYPE_CONVERT",
                "Could not interpret as string.".into(),
            );
            0
        }
    }
}

fn iso8601(s: &str) -> bool {
    let re = regex::Regex::new(
        r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$",
    )
    .expect("regex");
    re.is_match(s)
}

/// Everything Discord checks of an execute-webhook JSON body.
fn validate(body: &Value) -> Result<(), Answer> {
    let Some(obj) = body.as_object() else {
        return Err(Answer::json(
            400,
            json!({"message": "Invalid Form Body", "code": 50035, "errors": {"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used in a DictType"}]}}),
        ));
    };
    let mut e = Errors::default();
    check_str(
        &mut e,
        obj.get("content"),
        p(&["content"]),
        0,
        LIMIT_CONTENT,
        false,
    );
    let has_content = obj
        .get("content")
        .and_then(Value::as_str)
        .map(|c| !c.trim().is_empty())
        .unwrap_or(false);
    check_str(
        &mut e,
        obj.get("username"),
        p(&["username"]),
        1,
        LIMIT_USERNAME,
        false,
    );
    check_str(
        &mut e,
        obj.get("avatar_url"),
        p(&["avatar_url"]),
        1,
        2048,
        false,
    );

    let mut n_embeds = 0;
    match obj.get("embeds") {
        None | Some(Value::Null) => {}
        Some(Value::Array(embeds)) => {
            n_embeds = embeds.len();
            if embeds.len() > LIMIT_EMBEDS {
                e.add(
                    &p(&["embeds"]),
                    "BASE_TYPE_MAX_LENGTH",
                    format!("Must be {LIMIT_EMBEDS} or fewer in length."),
                );
            }
            let mut total = 0;
            for (i, embed) in embeds.iter().enumerate() {
                let i = i.to_string();
                let at = |k: &[&str]| {
                    let mut v = vec!["embeds".to_string(), i.clone()];
                    v.extend(k.iter().map(|s| s.to_string()));
                    v
                };
                let Some(em) = embed.as_object() else {
                    e.add(
                        &at(&[]),
                        "DICT_TYPE_CONVERT",
                        "Only dictionaries may be used in a DictType".into(),
                    );
                    continue;
                };
                total += check_str(
                    &mut e,
                    em.get("title"),
                    at(&["title"]),
                    0,
                    LIMIT_TITLE,
                    false,
                );
                total += check_str(
                    &mut e,
                    em.get("description"),
                    at(&["description"]),
                    0,
                    LIMIT_DESCRIPTION,
                    false,
                );
                check_str(&mut e, em.get("url"), at(&["url"]), 1, 2048, false);
                match em.get("color") {
                    None | Some(Value::Null) => {}
                    Some(Value::Number(n)) => match n.as_i64() {
                        Some(c) if (0..=0xFF_FF_FF).contains(&c) => {}
                        Some(c) if c < 0 => e.add(
                            &at(&["color"]),
                            "NUMBER_TYPE_MIN",
                            "int value should be greater than or equal to 0.".into(),
                        ),
                        _ => e.add(
                            &at(&["color"]),
                            "NUMBER_TYPE_MAX",
                            "int value should be less than or equal to 16777215.".into(),
                        ),
                    },
                    Some(_) => e.add(
                        &at(&["color"]),
                        "NUMBER_TYPE_COERCE",
                        "Value is not int.".into(),
                    ),
                }
                match em.get("timestamp") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(t)) if iso8601(t) => {}
                    Some(t) => e.add(
                        &at(&["timestamp"]),
                        "DATE_TIME_TYPE_PARSE",
                        format!("Could not parse {t}. Should be ISO8601."),
                    ),
                }
                match em.get("footer") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(f)) => {
                        total += check_str(
                            &mut e,
                            f.get("text"),
                            at(&["footer", "text"]),
                            1,
                            LIMIT_FOOTER,
                            true,
                        );
                    }
                    Some(_) => e.add(
                        &at(&["footer"]),
                        "DICT_TYPE_CONVERT",
                        "Only dictionaries may be used in a DictType".into(),
                    ),
                }
                match em.get("author") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(a)) => {
                        total += check_str(
                            &mut e,
                            a.get("name"),
                            at(&["author", "name"]),
                            1,
                            LIMIT_AUTHOR,
                            true,
                        );
                    }
                    Some(_) => e.add(
                        &at(&["author"]),
                        "DICT_TYPE_CONVERT",
                        "Only dictionaries may be used in a DictType".into(),
                    ),
                }
                match em.get("fields") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(fields)) => {
                        if fields.len() > LIMIT_FIELDS {
                            e.add(
                                &at(&["fields"]),
                                "BASE_TYPE_MAX_LENGTH",
                                format!("Must be {LIMIT_FIELDS} or fewer in length."),
                            );
                        }
                        for (j, f) in fields.iter().enumerate() {
                            let j = j.to_string();
                            let Some(f) = f.as_object() else {
                                e.add(
                                    &at(&["fields", &j]),
                                    "DICT_TYPE_CONVERT",
                                    "Only dictionaries may be used in a DictType".into(),
                                );
                                continue;
                            };
                            total += check_str(
                                &mut e,
                                f.get("name"),
                                at(&["fields", &j, "name"]),
                                1,
                                LIMIT_FIELD_NAME,
                                true,
                            );
                            total += check_str(
                                &mut e,
                                f.get("value"),
                                at(&["fields", &j, "value"]),
                                1,
                                LIMIT_FIELD_VALUE,
                                true,
                            );
                            match f.get("inline") {
                                None | Some(Value::Null) | Some(Value::Bool(_)) => {}
                                Some(_) => e.add(
                                    &at(&["fields", &j, "inline"]),
                                    "BASE_TYPE_BOOLEAN",
                                    "Must be either true or false.".into(),
                                ),
                            }
                        }
                    }
                    Some(_) => e.add(
                        &at(&["fields"]),
                        "BASE_TYPE_ARRAY",
                        "Must be an array.".into(),
                    ),
                }
            }
            if total > LIMIT_TOTAL {
                e.add(
                    &p(&["embeds"]),
                    "MAX_EMBED_SIZE_EXCEEDED",
                    format!("Embed size exceeds maximum size of {LIMIT_TOTAL}"),
                );
            }
        }
        Some(_) => e.add(
            &p(&["embeds"]),
            "BASE_TYPE_ARRAY",
            "Must be an array.".into(),
        ),
    }

    match obj.get("allowed_mentions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(am)) => {
            let mut parse: Vec<String> = Vec::new();
            match am.get("parse") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for (i, v) in a.iter().enumerate() {
                        match v.as_str() {
                            Some(s @ ("roles" | "users" | "everyone")) => parse.push(s.into()),
                            _ => e.add(
                                &p(&["allowed_mentions", "parse", &i.to_string()]),
                                "ENUM_TYPE_COERCE",
                                format!("Value {v} is not a valid enum value."),
                            ),
                        }
                    }
                }
                Some(_) => e.add(
                    &p(&["allowed_mentions", "parse"]),
                    "BASE_TYPE_ARRAY",
                    "Must be an array.".into(),
                ),
            }
            for kind in ["roles", "users"] {
                match am.get(kind) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(ids)) => {
                        if ids.len() > 100 {
                            e.add(
                                &p(&["allowed_mentions", kind]),
                                "BASE_TYPE_MAX_LENGTH",
                                "Must be 100 or fewer in length.".into(),
                            );
                        }
                        for (i, id) in ids.iter().enumerate() {
                            let ok = id
                                .as_str()
                                .map(|s| {
                                    !s.is_empty()
                                        && s.len() <= 20
                                        && s.bytes().all(|b| b.is_ascii_digit())
                                })
                                .unwrap_or(false);
                            if !ok {
                                e.add(
                                    &p(&["allowed_mentions", kind, &i.to_string()]),
                                    "NUMBER_TYPE_COERCE",
                                    format!("Value {id} is not snowflake."),
                                );
                            }
                        }
                        if !ids.is_empty() && parse.iter().any(|x| x == kind) {
                            e.add(
                                &p(&["allowed_mentions"]),
                                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                                format!(
                                    "parse:[\"{kind}\"] and {kind}: [ids] are mutually exclusive."
                                ),
                            );
                        }
                    }
                    Some(_) => e.add(
                        &p(&["allowed_mentions", kind]),
                        "BASE_TYPE_ARRAY",
                        "Must be an array.".into(),
                    ),
                }
            }
            match am.get("replied_user") {
                None | Some(Value::Null) | Some(Value::Bool(_)) => {}
                Some(_) => e.add(
                    &p(&["allowed_mentions", "replied_user"]),
                    "BASE_TYPE_BOOLEAN",
                    "Must be either true or false.".into(),
                ),
            }
        }
        Some(_) => e.add(
            &p(&["allowed_mentions"]),
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType".into(),
        ),
    }

    if !e.0.is_empty() {
        return Err(Answer::json(
            400,
            json!({"code": 50035, "message": "Invalid Form Body", "errors": Value::Object(e.0)}),
        ));
    }
    if !has_content && n_embeds == 0 {
        return Err(empty_message());
    }
    Ok(())
}
