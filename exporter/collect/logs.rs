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
//! Counting starts when lookout does: lines written before are never counted, also not after a
//! restart of lookout. Docker's `since` has whole-second granularity and the API sends the log
//! file's history before following, so each follower asks from the whole second before what it
//! wants and skips, by Docker's per-message nanosecond timestamps, what it does not: lines
//! before lookout started, and lines it has already counted. It keeps, per stream, the
//! timestamp of the last message counted; a re-attach (the container restarted, crash-looped,
//! or the stream broke) reads from there, so a run is read from its first line even when the
//! follower attaches late, and no line is counted twice. A stream that was quiet does not drag
//! `since` further back than a second before the other stream's last message.
//!
//! # Memory
//!
//! Lines are split by [`LineSplitter`], which keeps at most [`LINE_CAP`] bytes of a line (the
//! rest is dropped until the newline, and the line still counts once), so a follower holds at
//! most two such buffers and the last match, whatever the container writes. Below it, the
//! stream is read by `docker_api`'s own bounded reader (not bollard's, which held a TTY
//! container's output until each newline): a chunk is at most one 64 KiB socket read, and a
//! chunk without a timestamp continues the message before it, so it is skipped or counted
//! with that message. A TTY container's 30 MB line, or a progress bar that never ends its line,
//! costs no more than a short line.
//!
//! # Cost
//!
//! Docker sends one frame per line; a socket read holds many, and the follower decodes and
//! counts them in place. Measured with `tests/logs.rs`'s flood (500k lines of `yes`, as fast
//! as Docker takes them, debug build): ~7 % of one core per 10 000 lines/s, caught up at a peak
//! of ~130k lines/s, where bollard's reader cost ~28 % and peaked at ~42k lines/s (in a release
//! build bollard's cost 3-5 %); RSS stays flat (~21 MB, debug).
//! The daemon, for its part, reads the log file from its start on every attach to apply
//! `since` (`tail=all`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use regex::bytes::Regex;
use tokio::sync::watch;
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
/// A container first seen this long after lookout started (the daemon was away) is read from
/// at most this far back.
const LOOKBACK_NS: i64 = 60_000_000_000;
/// How far before the busier stream's last message a re-attach may reach for the other one.
const STREAM_SKEW_NS: i64 = 1_000_000_000;
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
    /// Per stream, Docker's timestamp (unix ns) of the last message counted; 0 before any.
    cursor: [AtomicI64; 2],
    /// Unix ns from which lines count.
    from_ns: i64,
}

impl Counters {
    fn new(from_ns: i64) -> Counters {
        Counters {
            from_ns,
            ..Default::default()
        }
    }

    /// Per stream, the newest timestamp not to count again; and the `since` (unix s) to ask
    /// Docker for so that nothing newer is missed.
    fn resume_point(&self) -> ([i64; 2], i64) {
        let skip = [0, 1].map(|i| self.cursor[i].load(Ordering::Relaxed).max(self.from_ns - 1));
        let want = (skip[0].min(skip[1]) + 1).max(skip[0].max(skip[1]) - STREAM_SKEW_NS);
        (skip, want.div_euclid(1_000_000_000))
    }

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

/// Follow the container's stream until it ends, counting as chunks arrive and skipping what
/// was counted before.
async fn read<D: DockerApi + ?Sized>(
    api: &D,
    id: &str,
    regex: &Regex,
    counters: &Counters,
) -> Result<(), DockerError> {
    let (skip, since) = counters.resume_point();
    // Skipping stops at a stream's first new message: within a stream Docker's order is its
    // timestamps' order (all parts of a long line share one).
    let mut skipping = [true; 2];
    // Whether the current message is skipped: a chunk without a timestamp continues the
    // message before it on its stream (a long message read in pieces) and shares its fate.
    let mut dropping = [false; 2];
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
                match chunk.time_nano {
                    Some(t) => {
                        dropping[i] = skipping[i] && t <= skip[i];
                        if dropping[i] {
                            continue;
                        }
                        counters.cursor[i].store(t, Ordering::Relaxed);
                    }
                    None if dropping[i] => continue,
                    None => {}
                }
                skipping[i] = false;
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

/// Unix seconds to nanoseconds.
fn unix_ns(secs: f64) -> i64 {
    (secs * 1e9) as i64
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
    /// Read the stream from where counting stopped.
    Read,
    /// After a pause, ask Docker what the container is doing.
    Inspect(Duration),
    /// Wait for the supervisor to announce a newer run.
    Wait,
}

/// One container's follower: reads its runs one after another.
struct Follower<D: DockerApi + ?Sized> {
    api: Arc<D>,
    id: String,
    name: String,
    regex: Regex,
    counters: Arc<Counters>,
    /// The start time of the container's latest run, as the inventory knows it.
    run: watch::Receiver<Option<f64>>,
    /// The start of the latest run known when a read last began.
    seen_run: Option<f64>,
    backoff: Duration,
    logged: Option<String>,
}

impl<D: DockerApi + ?Sized> Follower<D> {
    async fn run(mut self, read_first: bool) {
        let mut step = if read_first { Step::Read } else { Step::Wait };
        loop {
            step = match step {
                Step::Read => {
                    let began = Instant::now();
                    let res = read(&*self.api, &self.id, &self.regex, &self.counters).await;
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
                        Ok(Some(info)) => {
                            // A run came (and maybe went) since the last read, or the current
                            // one goes on after its stream broke: read on from the cursor.
                            let new_run = newer(info.started_at, self.seen_run);
                            if new_run {
                                self.seen_run = info.started_at;
                            }
                            if new_run || info.is_running() {
                                Step::Read
                            } else {
                                Step::Wait
                            }
                        }
                    }
                }
                Step::Wait => {
                    let announced = *self.run.borrow_and_update();
                    if newer(announced, self.seen_run) {
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

    fn bump(&mut self) -> Duration {
        let b = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        b
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
    /// Ids in that inventory: a container seen before that becomes opted in (a rename onto a
    /// rule) is counted from then, not from when lookout started.
    known: HashSet<String>,
}

struct Inner<D: DockerApi + ?Sized> {
    api: Arc<D>,
    docker: Arc<DockerState>,
    rules: Vec<(NameFilter, Regex)>,
    table: Mutex<Table>,
    /// Unix ns at which the collector was built: lines from then on are counted.
    created_ns: i64,
}

/// Counts log lines and pattern matches of opted-in containers.
pub struct LogCollector<D: DockerApi + ?Sized> {
    inner: Arc<Inner<D>>,
    supervisor: super::docker::Follower,
}

impl<D: DockerApi + ?Sized> LogCollector<D> {
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
                created_ns: unix_ns(crate::now_unix()),
            }),
            supervisor: Default::default(),
        }
    }

    fn ensure_supervisor(&self) {
        let inner = self.inner.clone();
        self.supervisor.ensure(|| inner.supervise());
    }
}

impl<D: DockerApi + ?Sized> Drop for LogCollector<D> {
    fn drop(&mut self) {
        for f in self.inner.table.lock().unwrap().followed.values() {
            f.task.abort();
        }
    }
}

impl<D: DockerApi + ?Sized> Collector for LogCollector<D> {
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

impl<D: DockerApi + ?Sized> Inner<D> {
    async fn supervise(self: Arc<Self>) {
        let docker = self.docker.clone();
        docker.follow(TICK, || self.sync()).await;
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
        let now = unix_ns(crate::now_unix());
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
                        // a new one goes on from the counters' cursor.
                        let read_first = c.is_running();
                        let (regex, counters) = (f.regex.clone(), f.counters.clone());
                        f.task = self.spawn(c, regex, counters, &f.run, read_first);
                    }
                    continue;
                }
            }
            // Not followed yet, no longer opted in, or its pattern changed (a rename under
            // config rules): stop the old follower; the counters (and their cursor) stay with
            // the container.
            let old = t.followed.remove(&c.id);
            if let Some(o) = &old {
                o.task.abort();
            }
            let Some((source, regex)) = want else {
                continue;
            };
            let counters = old.map(|o| o.counters).unwrap_or_else(|| {
                let from = if t.known.contains(&c.id) {
                    now
                } else {
                    self.created_ns.max(now - LOOKBACK_NS)
                };
                Arc::new(Counters::new(from))
            });
            // Read now if it runs, or if it ran since counting began (a crash loop).
            let read_first = c.is_running()
                || c.finished_at
                    .is_some_and(|f| unix_ns(f) >= counters.from_ns);
            let (run, _) = watch::channel(c.started_at);
            let task = self.spawn(c, regex.clone(), counters.clone(), &run, read_first);
            tracing::debug!(container = %c.name, pattern = ?source, read_first, "following logs");
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
        t.known = present.into_iter().map(str::to_string).collect();
    }

    fn spawn(
        &self,
        c: &ContainerInfo,
        regex: Regex,
        counters: Arc<Counters>,
        run: &watch::Sender<Option<f64>>,
        read_first: bool,
    ) -> JoinHandle<()> {
        let f = Follower {
            api: self.api.clone(),
            id: c.id.clone(),
            name: c.name.clone(),
            regex,
            counters,
            run: run.subscribe(),
            seen_run: c.started_at,
            backoff: MIN_BACKOFF,
            logged: None,
        };
        tokio::spawn(f.run(read_first))
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
                        let error = crate::config::regex_error(&e);
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
