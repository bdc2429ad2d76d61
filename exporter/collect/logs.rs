//! The log collector: follows opted-in containers' stdout and stderr through the Docker API and
//! counts their lines, and the lines matching the container's pattern, per stream.
//!
//! A container opts in with the label `lookout.logs=<regex>`, or by matching a name glob of
//! `collectors.logs` in the config (the label wins when both apply; a label that is not a valid
//! regular expression is logged once, exported as `lookout_container_log_pattern_invalid`, and
//! the config rules apply as if it were absent).
//!
//! # Tasks
//!
//! A supervisor task watches the inventory ([`DockerState::view`], woken by
//! [`DockerState::subscribe`]'s events and a 1 s tick) and keeps one follower task per opted-in
//! container; followers of containers that are gone or no longer opted in are stopped, and their
//! counters dropped. A follower reads its container's log stream and counts in place: there is
//! no queue between reader and matcher, so a flood is slowed by the socket's backpressure rather
//! than buffered, and `collect()` only reads the atomic counters.
//!
//! # Where reading starts
//!
//! Docker's `since` has whole-second granularity (and the API sends the log file's history
//! before following), so:
//! - a run that was already going when lookout started is read from the *next* whole second:
//!   no history is ever re-read after a restart of lookout; at most the rest of the current
//!   second is missed;
//! - a run that started while lookout was watching (a restart, a new container, a crash loop)
//!   is read from the whole second it started in, so its first lines are counted even when the
//!   follower attaches late or the run has already ended. Lines the *previous* run wrote in
//!   that same second are counted again: a duplicate only possible when a container stops and
//!   starts within one wall-clock second;
//! - a stream that broke while the same run goes on is resumed from the next whole second after
//!   it broke (no duplicates; lines in between are missed).
//!
//! # Memory
//!
//! Lines are split by [`LineSplitter`], which keeps at most [`LINE_CAP`] bytes of a line (the
//! rest is dropped until the newline, and the line still counts once), so a follower holds at
//! most two such buffers and the last match, whatever the container writes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use regex::bytes::Regex;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::docker::DockerState;
use super::{CollectFuture, Collector};
use crate::config::{LogRule, NameFilter};
use crate::docker_api::{DockerApi, DockerError, LogStream};
use crate::snapshot::{ContainerInfo, InvalidPattern, LastMatch, LogCounts, LogPart, Part};

/// The Docker label through which a container opts in.
pub const LABEL: &str = "lookout.logs";
/// Bytes of a line kept for matching; the rest of a longer line is dropped.
pub const LINE_CAP: usize = 64 * 1024;
/// Characters of the last matching line kept for the rule engine's annotations.
pub const LAST_MATCH_CHARS: usize = 500;
/// Bytes stored of the last match: enough for 500 characters of UTF-8.
const LAST_MATCH_BYTES: usize = LAST_MATCH_CHARS * 4;
/// A run that started this recently (and after lookout did) is read from its start.
const FRESH_RUN: f64 = 60.0;
/// How often the supervisor looks at the inventory besides Docker's events.
const TICK: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

const STREAMS: [&str; 2] = ["stdout", "stderr"];

fn stream_index(s: LogStream) -> usize {
    match s {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

/// Splits a byte stream into lines, holding at most `cap` bytes of the current line.
///
/// Docker frames can hold several lines or part of one (the daemon splits lines longer than
/// 16 KiB into partial messages), so lines are joined here across chunks. A line is reported
/// without its `\n` (or `\r\n`); of a longer line only the first `cap` bytes are reported.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    cap: usize,
    /// Whether bytes of the current line were dropped beyond `cap`.
    overflowed: bool,
}

impl LineSplitter {
    pub fn new(cap: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            cap,
            overflowed: false,
        }
    }

    /// Take a chunk in; `line` is called for each line it completes.
    pub fn feed(&mut self, mut chunk: &[u8], mut line: impl FnMut(&[u8])) {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let head = &chunk[..nl];
            if self.buf.is_empty() && !self.overflowed {
                // The whole line is in this chunk: no copy.
                line(trim_cr(&head[..head.len().min(self.cap)]));
            } else {
                self.push(head);
                line(trim_cr(&self.buf));
                self.buf.clear();
                self.overflowed = false;
            }
            chunk = &chunk[nl + 1..];
        }
        self.push(chunk);
    }

    /// The stream ended: a last line without a newline still counts.
    pub fn finish(&mut self, mut line: impl FnMut(&[u8])) {
        if !self.buf.is_empty() || self.overflowed {
            line(trim_cr(&self.buf));
        }
        self.buf.clear();
        self.overflowed = false;
    }

    /// Bytes held for the current, unfinished line (never more than the cap).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap - self.buf.len();
        if bytes.len() > room {
            self.overflowed = true;
        }
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The last matching line of a container, as raw bytes (decoded when snapshotted).
#[derive(Debug, Default)]
struct Last {
    line: Vec<u8>,
    at: f64,
}

/// One followed container's counters, written by its follower and read by `collect()`. They
/// live as long as the container is followed, across its restarts and its followers' restarts.
#[derive(Debug, Default)]
struct Counters {
    lines: [AtomicU64; 2],
    matches: [AtomicU64; 2],
    last: Mutex<Option<Last>>,
}

impl Counters {
    fn add(&self, stream: usize, lines: u64, matches: u64, last: Option<&[u8]>) {
        if lines > 0 {
            self.lines[stream].fetch_add(lines, Ordering::Relaxed);
        }
        if matches > 0 {
            self.matches[stream].fetch_add(matches, Ordering::Relaxed);
        }
        if let Some(l) = last {
            let mut g = self.last.lock().unwrap();
            let slot = g.get_or_insert_with(Last::default);
            slot.line.clear();
            slot.line.extend_from_slice(l);
            slot.at = crate::now_unix();
        }
    }
}

/// Counts the lines of one chunk; the last match is copied once per chunk, not per line.
struct Tally<'a> {
    regex: &'a Regex,
    lines: u64,
    matches: u64,
    last: &'a mut Vec<u8>,
    matched: bool,
}

impl Tally<'_> {
    fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        if self.regex.is_match(line) {
            self.matches += 1;
            self.matched = true;
            self.last.clear();
            self.last
                .extend_from_slice(&line[..line.len().min(LAST_MATCH_BYTES)]);
        }
    }
}

/// Follow one stream from `since` until it ends, counting as chunks arrive.
async fn read<D: DockerApi + ?Sized>(
    api: &D,
    id: &str,
    since: i64,
    regex: &Regex,
    counters: &Counters,
) -> Result<(), DockerError> {
    let mut stream = api.logs(id, since);
    let mut split = [LineSplitter::new(LINE_CAP), LineSplitter::new(LINE_CAP)];
    let mut last = Vec::new();
    let mut outcome = Ok(());
    let count = |i: usize, split: &mut LineSplitter, last: &mut Vec<u8>, bytes: Option<&[u8]>| {
        let mut t = Tally {
            regex,
            lines: 0,
            matches: 0,
            last,
            matched: false,
        };
        match bytes {
            Some(b) => split.feed(b, |l| t.line(l)),
            None => split.finish(|l| t.line(l)),
        }
        let matched = t.matched.then_some(&t.last[..]);
        counters.add(i, t.lines, t.matches, matched);
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                let i = stream_index(chunk.stream);
                count(i, &mut split[i], &mut last, Some(&chunk.bytes));
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    for (i, s) in split.iter_mut().enumerate() {
        count(i, s, &mut last, None);
    }
    outcome
}

/// Whether run start `a` is later than `b` (a run lookout has not read yet).
fn newer(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        _ => false,
    }
}

/// What a follower does next.
enum Step {
    /// Read the stream from this unix second.
    Read(i64),
    /// After a pause, ask Docker what the container is doing.
    Inspect(Duration),
    /// Wait for the supervisor to announce a newer run.
    Wait,
}

/// One container's follower: reads its runs one after another.
struct Follower<D: DockerApi> {
    api: Arc<D>,
    id: String,
    name: String,
    regex: Regex,
    counters: Arc<Counters>,
    /// The start time of the container's latest run, as the inventory knows it.
    run: watch::Receiver<Option<f64>>,
    /// The start of the latest run whose lines have been (or are being) read.
    read_run: Option<f64>,
    /// The earliest announced run start not read yet.
    pending: Option<f64>,
    backoff: Duration,
    logged: Option<String>,
}

impl<D: DockerApi> Follower<D> {
    async fn run(mut self, first: Option<i64>) {
        let mut step = match first {
            Some(since) => Step::Read(since),
            None => Step::Wait,
        };
        let mut ended = crate::now_unix();
        loop {
            step = match step {
                Step::Read(since) => {
                    let began = Instant::now();
                    let res = read(&*self.api, &self.id, since, &self.regex, &self.counters).await;
                    ended = crate::now_unix();
                    match res {
                        Err(e) => {
                            let msg = e.to_string();
                            if self.logged.as_deref() != Some(msg.as_str()) {
                                tracing::warn!(container = %self.name, error = %msg, "cannot follow the container's logs; retrying with backoff");
                                self.logged = Some(msg);
                            }
                            Step::Inspect(self.bump())
                        }
                        // A stream that ends at once (a stopped container) gets a pause, so a
                        // container whose stream keeps ending is not polled in a tight loop.
                        Ok(()) if began.elapsed() < MIN_BACKOFF => Step::Inspect(self.bump()),
                        Ok(()) => {
                            self.backoff = MIN_BACKOFF;
                            if self.logged.take().is_some() {
                                tracing::info!(container = %self.name, "following the container's logs again");
                            }
                            Step::Inspect(Duration::ZERO)
                        }
                    }
                }
                Step::Inspect(pause) => {
                    tokio::time::sleep(pause).await;
                    match self.api.inspect(&self.id).await {
                        Ok(None) | Err(DockerError::NotFound) => return,
                        Err(_) => Step::Inspect(self.bump()),
                        Ok(Some(info)) => self.next_read(&info, ended),
                    }
                }
                Step::Wait => {
                    let announced = *self.run.borrow_and_update();
                    if newer(announced, self.read_run) {
                        self.pending = earliest(self.pending, announced);
                        Step::Inspect(Duration::ZERO)
                    } else if self.run.changed().await.is_err() {
                        return;
                    } else {
                        Step::Wait
                    }
                }
            };
        }
    }

    /// Given what the container is doing, where to read next.
    fn next_read(&mut self, info: &ContainerInfo, ended: f64) -> Step {
        if newer(info.started_at, self.read_run) {
            // A run (or several) not read yet: read from the start of the earliest one. If the
            // container has stopped again, Docker sends those lines and ends the stream.
            let from = earliest(self.pending.take(), info.started_at).unwrap_or(ended);
            self.read_run = info.started_at;
            Step::Read(from.floor() as i64)
        } else if info.is_running() {
            // The same run goes on: its stream broke; resume without re-reading.
            Step::Read(ended.ceil() as i64)
        } else {
            Step::Wait
        }
    }

    fn bump(&mut self) -> Duration {
        let b = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        b
    }
}

fn earliest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Which pattern a container is followed with.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// Its `lookout.logs` label, as written.
    Label(String),
    /// The config's `collectors.logs[i]`.
    Rule(usize),
}

struct Followed {
    name: String,
    source: Source,
    regex: Regex,
    counters: Arc<Counters>,
    run: watch::Sender<Option<f64>>,
    task: JoinHandle<()>,
}

/// A label that did not compile, remembered so it is logged once.
struct Invalid {
    name: String,
    label: String,
    error: String,
}

#[derive(Default)]
struct Table {
    followed: HashMap<String, Followed>,
    invalid: HashMap<String, Invalid>,
    /// The inventory last reconciled, to skip unchanged ones cheaply.
    seen: Option<Arc<Vec<ContainerInfo>>>,
}

struct Inner<D: DockerApi> {
    api: Arc<D>,
    docker: Arc<DockerState>,
    rules: Vec<(NameFilter, Regex)>,
    table: Mutex<Table>,
    /// Unix time the collector was built: runs that started later are read from their start.
    created_at: f64,
}

/// Counts log lines and pattern matches of opted-in containers.
pub struct LogCollector<D: DockerApi> {
    inner: Arc<Inner<D>>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl<D: DockerApi> LogCollector<D> {
    /// Nothing is started until the first `collect()` (which runs inside the runtime).
    pub fn new(api: Arc<D>, docker: Arc<DockerState>, rules: &[LogRule]) -> LogCollector<D> {
        let rules = rules
            .iter()
            .filter_map(|r| match Regex::new(r.pattern.as_str()) {
                Ok(b) => Some((r.name.clone(), b)),
                Err(e) => {
                    // The config validated it as a str regex; the bytes flavour takes the same
                    // syntax, so this is not expected.
                    tracing::error!(pattern = %r.pattern, error = %e, "log rule pattern skipped");
                    None
                }
            })
            .collect();
        LogCollector {
            inner: Arc::new(Inner {
                api,
                docker,
                rules,
                table: Mutex::new(Table::default()),
                created_at: crate::now_unix(),
            }),
            supervisor: Mutex::new(None),
        }
    }

    fn ensure_supervisor(&self) {
        let mut s = self.supervisor.lock().unwrap();
        if s.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let inner = self.inner.clone();
        *s = Some(tokio::spawn(async move { inner.supervise().await }));
    }
}

impl<D: DockerApi> Drop for LogCollector<D> {
    fn drop(&mut self) {
        if let Some(h) = self.supervisor.lock().unwrap().take() {
            h.abort();
        }
        for f in self.inner.table.lock().unwrap().followed.values() {
            f.task.abort();
        }
    }
}

impl<D: DockerApi> Collector for LogCollector<D> {
    fn name(&self) -> &'static str {
        "logs"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            self.ensure_supervisor();
            self.inner.sync();
            Ok(Part::Logs(self.inner.part()))
        })
    }
}

impl<D: DockerApi> Inner<D> {
    async fn supervise(self: Arc<Self>) {
        let mut events = self.docker.subscribe();
        let mut tick = tokio::time::interval(TICK);
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
            self.sync();
        }
    }

    /// Reconcile the followers with the inventory, if it changed.
    fn sync(&self) {
        let view = self.docker.view();
        let mut guard = self.table.lock().unwrap();
        if guard.seen.as_ref().is_some_and(|v| Arc::ptr_eq(v, &view)) {
            return;
        }
        self.reconcile(&mut guard, &view);
        guard.seen = Some(view);
    }

    fn reconcile(&self, t: &mut Table, view: &[ContainerInfo]) {
        let now = crate::now_unix();
        let mut present = HashSet::with_capacity(view.len());
        for c in view {
            present.insert(c.id.as_str());
            let want = self.pattern(c, t.followed.get(&c.id), &mut t.invalid);
            if let (Some((source, _)), Some(f)) = (&want, t.followed.get_mut(&c.id)) {
                if f.source == *source {
                    if f.name != c.name {
                        f.name = c.name.clone();
                    }
                    f.run.send_if_modified(|s| {
                        let changed = *s != c.started_at;
                        *s = c.started_at;
                        changed
                    });
                    if f.task.is_finished() {
                        // Only a panic ends a follower of a container that is still listed;
                        // start over from now, never re-reading.
                        let first = c.is_running().then(|| now.ceil() as i64);
                        f.task = self.spawn(c, f.regex.clone(), f.counters.clone(), &f.run, first);
                    }
                    continue;
                }
            }
            // Not followed yet, no longer opted in, or its pattern changed (a rename under
            // config rules): stop the old follower; the counters stay with the container.
            let old = t.followed.remove(&c.id);
            if let Some(o) = &old {
                o.task.abort();
            }
            let Some((source, regex)) = want else {
                continue;
            };
            let replaced = old.is_some();
            let counters = old.map(|o| o.counters).unwrap_or_default();
            let first = match c.started_at {
                // A replaced follower has read this run already: go on from now.
                Some(s) if !replaced && s >= self.created_at && now - s < FRESH_RUN => {
                    Some(s.floor() as i64)
                }
                _ if c.is_running() => Some(now.ceil() as i64),
                _ => None,
            };
            let (run, _) = watch::channel(c.started_at);
            let task = self.spawn(c, regex.clone(), counters.clone(), &run, first);
            tracing::debug!(container = %c.name, pattern = ?source, since = ?first, "following logs");
            t.followed.insert(
                c.id.clone(),
                Followed {
                    name: c.name.clone(),
                    source,
                    regex,
                    counters,
                    run,
                    task,
                },
            );
        }
        t.followed.retain(|id, f| {
            let keep = present.contains(id.as_str());
            if !keep {
                f.task.abort();
            }
            keep
        });
        t.invalid.retain(|id, _| present.contains(id.as_str()));
    }

    fn spawn(
        &self,
        c: &ContainerInfo,
        regex: Regex,
        counters: Arc<Counters>,
        run: &watch::Sender<Option<f64>>,
        first: Option<i64>,
    ) -> JoinHandle<()> {
        let f = Follower {
            api: self.api.clone(),
            id: c.id.clone(),
            name: c.name.clone(),
            regex,
            counters,
            run: run.subscribe(),
            read_run: c.started_at,
            pending: None,
            backoff: MIN_BACKOFF,
            logged: None,
        };
        tokio::spawn(f.run(first))
    }

    /// The pattern a container should be followed with, if any: its label, else the first
    /// config rule whose glob matches its name.
    fn pattern(
        &self,
        c: &ContainerInfo,
        current: Option<&Followed>,
        invalid: &mut HashMap<String, Invalid>,
    ) -> Option<(Source, Regex)> {
        if let Some(label) = c.labels.get(LABEL) {
            if let Some(f) = current.filter(|f| matches!(&f.source, Source::Label(l) if l == label))
            {
                return Some((f.source.clone(), f.regex.clone()));
            }
            let known_bad = invalid.get(&c.id).is_some_and(|i| i.label == *label);
            if !known_bad {
                match Regex::new(label) {
                    Ok(r) => {
                        invalid.remove(&c.id);
                        return Some((Source::Label(label.clone()), r));
                    }
                    Err(e) => {
                        let error = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        tracing::warn!(
                            container = %c.name,
                            label = %format!("{LABEL}={label}"),
                            error = %error,
                            "the container's log pattern label is not a valid regular expression; its logs are not followed by the label"
                        );
                        invalid.insert(
                            c.id.clone(),
                            Invalid {
                                name: c.name.clone(),
                                label: label.clone(),
                                error,
                            },
                        );
                    }
                }
            } else if let Some(i) = invalid.get_mut(&c.id) {
                i.name.clone_from(&c.name);
            }
        }
        self.rules
            .iter()
            .enumerate()
            .find(|(_, (f, _))| f.matches(&c.name))
            .map(|(i, (_, r))| (Source::Rule(i), r.clone()))
    }

    /// The counters as plain data, sorted by container name.
    fn part(&self) -> LogPart {
        let t = self.table.lock().unwrap();
        let mut followed: Vec<(&String, &Followed)> = t.followed.iter().collect();
        followed.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        let mut part = LogPart::default();
        for (id, f) in followed {
            for (i, stream) in STREAMS.iter().enumerate() {
                part.counts.push(LogCounts {
                    container_id: id.clone(),
                    name: f.name.clone(),
                    stream,
                    lines: f.counters.lines[i].load(Ordering::Relaxed),
                    matches: f.counters.matches[i].load(Ordering::Relaxed),
                });
            }
            if let Some(l) = f.counters.last.lock().unwrap().as_ref() {
                part.last_matches.push(LastMatch {
                    container_id: id.clone(),
                    line: String::from_utf8_lossy(&l.line)
                        .chars()
                        .take(LAST_MATCH_CHARS)
                        .collect(),
                    at: l.at,
                });
            }
        }
        let mut invalid: Vec<InvalidPattern> = t
            .invalid
            .iter()
            .map(|(id, i)| InvalidPattern {
                container_id: id.clone(),
                name: i.name.clone(),
                pattern: i.label.clone(),
                error: i.error.clone(),
            })
            .collect();
        invalid.sort_by(|a, b| a.name.cmp(&b.name));
        part.invalid_patterns = invalid;
        part
    }
}

#[cfg(test)]
mod tests;
