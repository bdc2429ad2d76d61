use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::*;
use crate::collect::docker;
use crate::docker_api::{BoxStream, DaemonInfo, Listed, LogChunk};
use crate::snapshot::{ContainerStats, State};

fn lines_of(s: &mut LineSplitter, chunks: &[&[u8]]) -> Vec<String> {
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, |l| out.push(String::from_utf8_lossy(l).into_owned()));
    }
    out
}

#[test]
fn splitter_joins_lines_across_chunks() {
    let mut s = LineSplitter::new(64);
    let got = lines_of(
        &mut s,
        &[b"one\ntw", b"o\n", b"", b"thr", b"ee", b"\nfour\nfi"],
    );
    assert_eq!(got, ["one", "two", "three", "four"]);
    assert_eq!(s.pending(), 2);
    let mut rest = Vec::new();
    s.finish(|l| rest.push(l.to_vec()));
    assert_eq!(rest, [b"fi".to_vec()]);
    // Nothing pending: finish reports nothing.
    s.finish(|_| panic!("no line expected"));
}

#[test]
fn splitter_strips_crlf_even_when_split() {
    let mut s = LineSplitter::new(64);
    let got = lines_of(&mut s, &[b"a\r\nb\r", b"\n\r\n", b"c\rd\n"]);
    assert_eq!(got, ["a", "b", "", "c\rd"]);
}

#[test]
fn splitter_caps_a_long_line_and_counts_it_once() {
    let mut s = LineSplitter::new(8);
    let mut got = Vec::new();
    // 20 bytes in pieces, then the newline, then a short line.
    for c in [&b"0123456"[..], b"789abcdef", b"ghij", b"\nok\n"] {
        s.feed(c, |l| got.push(String::from_utf8_lossy(l).into_owned()));
        assert!(s.pending() <= 8, "buffer grew to {}", s.pending());
    }
    assert_eq!(got, ["01234567", "ok"]);
    // A long line inside one chunk is cut without copying.
    got.clear();
    s.feed(b"0123456789\n", |l| {
        got.push(String::from_utf8_lossy(l).into_owned())
    });
    assert_eq!(got, ["01234567"]);
    // A line exactly at the cap is whole.
    got.clear();
    s.feed(b"abcd", |_| {});
    s.feed(b"efgh\n", |l| {
        got.push(String::from_utf8_lossy(l).into_owned())
    });
    assert_eq!(got, ["abcdefgh"]);
}

#[test]
fn splitter_holds_at_most_the_cap_for_a_megabyte_line() {
    let mut s = LineSplitter::new(LINE_CAP);
    let piece = vec![b'a'; 16 * 1024];
    let mut n = 0;
    for _ in 0..64 {
        s.feed(&piece, |_| n += 1);
        assert!(s.pending() <= LINE_CAP);
        assert!(s.buf.capacity() <= LINE_CAP);
    }
    s.feed(b"\n", |l| {
        n += 1;
        assert_eq!(l.len(), LINE_CAP);
    });
    assert_eq!(n, 1);
}

/// A Docker stand-in: an inventory the test edits, and log streams it feeds by hand.
fn now_ns() -> i64 {
    unix_ns(crate::now_unix())
}

/// A Docker stand-in: an inventory the test edits, and a log file per container that `logs()`
/// replays from `since` (whole seconds, as Docker does) and then follows while it runs.
#[derive(Default)]
struct Fake {
    containers: Mutex<HashMap<String, ContainerInfo>>,
    history: Mutex<HashMap<String, Vec<LogChunk>>>,
    streams: Mutex<HashMap<String, mpsc::UnboundedSender<Result<LogChunk, DockerError>>>>,
    /// Every `logs()` call: (id, since).
    calls: Mutex<Vec<(String, i64)>>,
}

impl Fake {
    fn put(&self, c: ContainerInfo) {
        self.containers.lock().unwrap().insert(c.id.clone(), c);
    }

    fn edit(&self, id: &str, f: impl FnOnce(&mut ContainerInfo)) {
        f(self.containers.lock().unwrap().get_mut(id).unwrap());
    }

    /// The container writes a message stamped `t` (unix ns).
    fn write_at(&self, id: &str, stream: LogStream, t: i64, bytes: &[u8]) {
        let chunk = LogChunk {
            stream,
            time_nano: Some(t),
            bytes: bytes::Bytes::copy_from_slice(bytes),
        };
        let mut h = self.history.lock().unwrap();
        h.entry(id.to_string()).or_default().push(chunk.clone());
        if let Some(tx) = self.streams.lock().unwrap().get(id) {
            let _ = tx.send(Ok(chunk));
        }
    }

    /// More of the message before (a piece read without a timestamp, as the reader yields a
    /// long message).
    fn write_piece(&self, id: &str, stream: LogStream, bytes: &[u8]) {
        let chunk = LogChunk {
            stream,
            time_nano: None,
            bytes: bytes::Bytes::copy_from_slice(bytes),
        };
        let mut h = self.history.lock().unwrap();
        h.entry(id.to_string()).or_default().push(chunk.clone());
        if let Some(tx) = self.streams.lock().unwrap().get(id) {
            let _ = tx.send(Ok(chunk));
        }
    }

    fn send(&self, id: &str, stream: LogStream, bytes: &[u8]) {
        self.write_at(id, stream, now_ns(), bytes);
    }

    /// The daemon closes the stream (the container stopped).
    fn end(&self, id: &str) {
        self.streams.lock().unwrap().remove(id);
    }

    fn calls(&self) -> Vec<(String, i64)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl DockerApi for Fake {
    fn host(&self) -> &str {
        "fake"
    }
    fn is_local(&self) -> bool {
        false
    }
    async fn info(&self) -> Result<DaemonInfo, DockerError> {
        Ok(DaemonInfo::default())
    }
    async fn list(&self) -> Result<Vec<Listed>, DockerError> {
        Ok(self
            .containers
            .lock()
            .unwrap()
            .values()
            .map(|c| Listed {
                id: c.id.clone(),
                state: c.state.as_str().to_string(),
                status: String::new(),
            })
            .collect())
    }
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, DockerError> {
        Ok(self.containers.lock().unwrap().get(id).cloned())
    }
    fn events(
        &self,
        _since: Option<i64>,
    ) -> BoxStream<Result<crate::docker_api::DockerEvent, DockerError>> {
        Box::pin(futures_util::stream::pending())
    }
    async fn stats_once(&self, _id: &str) -> Result<Option<ContainerStats>, DockerError> {
        Ok(None)
    }
    fn logs(&self, id: &str, since: i64) -> BoxStream<Result<LogChunk, DockerError>> {
        self.calls.lock().unwrap().push((id.to_string(), since));
        let (tx, rx) = mpsc::unbounded_channel();
        let h = self.history.lock().unwrap();
        // A piece without a timestamp goes with the message before it.
        let mut keep = [true; 2];
        for c in h.get(id).into_iter().flatten() {
            let i = stream_index(c.stream);
            if let Some(t) = c.time_nano {
                keep[i] = t >= since * 1_000_000_000;
            }
            if keep[i] {
                let _ = tx.send(Ok(c.clone()));
            }
        }
        let running = self
            .containers
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|c| c.is_running());
        if running {
            self.streams.lock().unwrap().insert(id.to_string(), tx);
        }
        drop(h);
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|x| (x, rx))
        }))
    }
    async fn logs_tail(
        &self,
        _id: &str,
        _lines: usize,
        _max_bytes: usize,
    ) -> Result<Vec<String>, DockerError> {
        Ok(Vec::new())
    }
}

fn container(id: &str, name: &str, label: Option<&str>, started_at: f64) -> ContainerInfo {
    let mut labels = BTreeMap::new();
    if let Some(l) = label {
        labels.insert(LABEL.to_string(), l.to_string());
    }
    ContainerInfo {
        id: id.into(),
        name: name.into(),
        labels,
        state: State::Running,
        pid: 100,
        started_at: Some(started_at),
        ..Default::default()
    }
}

struct Rig {
    fake: Arc<Fake>,
    state: Arc<DockerState>,
    collector: Arc<LogCollector<Fake>>,
}

impl Rig {
    async fn new(containers: Vec<ContainerInfo>, rules: &[(&str, &str)]) -> Rig {
        let fake = Arc::new(Fake::default());
        for c in containers {
            fake.put(c);
        }
        let state = DockerState::new(NameFilter::all());
        docker::resync(&*fake, &state, false).await.unwrap();
        let rules: Vec<LogRule> = rules
            .iter()
            .map(|(glob, pattern)| LogRule {
                name: NameFilter::new(&[glob.to_string()], &[]),
                pattern: regex::Regex::new(pattern).unwrap(),
            })
            .collect();
        let collector = Arc::new(LogCollector::new(fake.clone(), state.clone(), &rules));
        Rig {
            fake,
            state,
            collector,
        }
    }

    fn created_ns(&self) -> i64 {
        self.collector.inner.created_ns
    }

    async fn part(&self) -> LogPart {
        match self.collector.clone().collect().await {
            Ok(Part::Logs(p)) => p,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Re-read the fake inventory, as the Docker watcher would after an event.
    async fn resync(&self) {
        docker::resync(&*self.fake, &self.state, false)
            .await
            .unwrap();
    }

    /// Poll the collector until `f` holds (at most 5 s).
    async fn until(&self, what: &str, f: impl Fn(&LogPart) -> bool) -> LogPart {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let p = self.part().await;
            if f(&p) {
                return p;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}: {p:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn calls_until(&self, n: usize) -> Vec<(String, i64)> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.fake.calls();
            if c.len() >= n {
                return c;
            }
            assert!(Instant::now() < end, "expected {n} logs() calls, got {c:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn count(p: &LogPart, name: &str, stream: &str) -> Option<(u64, u64)> {
    p.counts
        .iter()
        .find(|c| c.name == name && c.stream == stream)
        .map(|c| (c.lines, c.matches))
}

#[tokio::test]
async fn counts_lines_and_matches_per_stream_from_now() {
    let long_ago = crate::now_unix() - 3600.0;
    let rig = Rig::new(
        vec![
            container("a", "api", Some(r"(?i)\berror\b"), long_ago),
            container("q", "quiet", None, long_ago),
        ],
        &[],
    )
    .await;
    // History: long before lookout, and a moment before it (within the same second, which
    // Docker's whole-second `since` sends again).
    let created = rig.created_ns();
    rig.fake.write_at(
        "a",
        LogStream::Stderr,
        created - 3_000_000_000,
        b"ERROR old\n",
    );
    rig.fake
        .write_at("a", LogStream::Stderr, created - 1, b"ERROR just before\n");
    let p = rig.part().await;
    // Only the opted-in container is followed; it starts at zero.
    assert_eq!(count(&p, "api", "stdout"), Some((0, 0)));
    assert_eq!(count(&p, "quiet", "stdout"), None);
    let calls = rig.calls_until(1).await;
    assert_eq!(
        calls[0],
        ("a".to_string(), created.div_euclid(1_000_000_000))
    );
    rig.fake.send("a", LogStream::Stdout, b"INFO one\nINFO tw");
    rig.fake
        .send("a", LogStream::Stderr, b"ERROR x\r\nterror\nEr");
    rig.fake.send("a", LogStream::Stdout, b"o\n");
    rig.fake.send("a", LogStream::Stderr, b"ror: y\n");
    let p = rig
        .until("counts", |p| count(p, "api", "stderr") == Some((3, 2)))
        .await;
    assert_eq!(count(&p, "api", "stdout"), Some((2, 0)));
    assert_eq!(p.last_matches.len(), 1);
    assert_eq!(p.last_matches[0].line, "Error: y");
    assert!(p.last_matches[0].at * 1e9 >= created as f64);
}

#[tokio::test]
async fn last_match_is_cut_to_500_characters() {
    let rig = Rig::new(vec![container("a", "api", Some("ERROR"), 1.0)], &[]).await;
    rig.part().await;
    rig.calls_until(1).await;
    let line = format!("ERROR {}\n", "é".repeat(1000));
    rig.fake.send("a", LogStream::Stdout, line.as_bytes());
    let p = rig.until("a match", |p| !p.last_matches.is_empty()).await;
    let got = &p.last_matches[0].line;
    assert_eq!(got.chars().count(), LAST_MATCH_CHARS);
    assert!(got.starts_with("ERROR éé"));
}

#[tokio::test]
async fn a_long_line_matches_only_within_the_cap() {
    let rig = Rig::new(vec![container("a", "api", Some("ERROR"), 1.0)], &[]).await;
    rig.part().await;
    rig.calls_until(1).await;
    let filler = vec![b'a'; 16 * 1024];
    // ERROR at the start of a 1 MiB line: a match; ERROR past the cap: none. Docker sends a
    // long line as 16 KiB parts that share one timestamp.
    let t = now_ns();
    rig.fake.write_at("a", LogStream::Stdout, t, b"ERROR ");
    for _ in 0..64 {
        rig.fake.write_at("a", LogStream::Stdout, t, &filler);
    }
    rig.fake.write_at("a", LogStream::Stdout, t, b"\n");
    for _ in 0..64 {
        rig.fake.send("a", LogStream::Stdout, &filler);
    }
    rig.fake.send("a", LogStream::Stdout, b" ERROR\nlast");
    let p = rig
        .until("two long lines", |p| {
            count(p, "api", "stdout").is_some_and(|c| c.0 == 2)
        })
        .await;
    assert_eq!(count(&p, "api", "stdout"), Some((2, 1)));
    // The unfinished "last" counts when the stream ends; the re-attach that follows (the
    // container still runs) skips everything already counted.
    rig.fake.end("a");
    rig.calls_until(2).await;
    rig.fake.send("a", LogStream::Stdout, b"ERROR again\n");
    rig.until("the last partial line and one more", |p| {
        count(p, "api", "stdout") == Some((4, 2))
    })
    .await;
}

#[tokio::test]
async fn pieces_without_a_timestamp_are_skipped_or_counted_with_their_message() {
    let rig = Rig::new(vec![container("a", "api", Some("ERROR"), 1.0)], &[]).await;
    rig.part().await;
    rig.calls_until(1).await;
    // A TTY line read in pieces: only the first carries the message's timestamp.
    rig.fake.send("a", LogStream::Stdout, b"ERROR one ");
    rig.fake.write_piece("a", LogStream::Stdout, b"aaaa");
    rig.fake.write_piece("a", LogStream::Stdout, b"bbb\n");
    let p = rig
        .until("the line", |p| count(p, "api", "stdout") == Some((1, 1)))
        .await;
    assert_eq!(p.last_matches[0].line, "ERROR one aaaabbb");
    // The stream breaks; the re-attach replays the line, all of whose pieces are skipped.
    rig.fake.end("a");
    rig.calls_until(2).await;
    rig.fake.send("a", LogStream::Stdout, b"ERROR two ");
    rig.fake.write_piece("a", LogStream::Stdout, b"cc\n");
    let p = rig
        .until("the next line", |p| {
            count(p, "api", "stdout").is_some_and(|c| c.1 == 2)
        })
        .await;
    assert_eq!(count(&p, "api", "stdout"), Some((2, 2)));
    assert_eq!(p.last_matches[0].line, "ERROR two cc");
}

#[tokio::test]
async fn resumes_after_a_restart_without_resetting_or_recounting() {
    let long_ago = crate::now_unix() - 3600.0;
    let rig = Rig::new(vec![container("a", "api", Some("E"), long_ago)], &[]).await;
    rig.part().await;
    rig.calls_until(1).await;
    rig.fake.send("a", LogStream::Stderr, b"E1\nE2\n");
    rig.until("first run", |p| count(p, "api", "stderr") == Some((2, 2)))
        .await;
    let last_old = rig.fake.history.lock().unwrap()["a"]
        .last()
        .unwrap()
        .time_nano;
    // The container stops: Docker ends the stream.
    rig.fake.edit("a", |c| {
        c.state = State::Exited;
        c.pid = 0;
    });
    rig.resync().await;
    rig.fake.end("a");
    rig.part().await;
    // It starts again and writes at once, before the follower is back.
    rig.fake.edit("a", |c| {
        c.state = State::Running;
        c.pid = 101;
        c.started_at = Some(crate::now_unix());
    });
    rig.fake.send("a", LogStream::Stderr, b"E3\n");
    rig.resync().await;
    rig.part().await;
    let calls = rig.calls_until(2).await;
    // The re-read reaches back over the old run's last line, which is skipped, not recounted.
    assert!(calls[1].1 * 1_000_000_000 <= last_old.unwrap(), "{calls:?}");
    rig.fake.send("a", LogStream::Stdout, b"E4\n");
    let p = rig
        .until("counts carried over", |p| {
            count(p, "api", "stdout") == Some((1, 1))
        })
        .await;
    assert_eq!(count(&p, "api", "stderr"), Some((3, 3)));
    assert_eq!(p.last_matches[0].line, "E4");
    assert_eq!(rig.fake.calls().len(), 2, "one stream per run");
}

#[tokio::test]
async fn a_container_started_while_watching_is_read_from_its_first_line() {
    let rig = Rig::new(vec![], &[("job-*", "fail")]).await;
    rig.part().await;
    rig.fake
        .put(container("j", "job-1", None, crate::now_unix()));
    // It writes before the inventory (and the follower) know it.
    rig.fake.send("j", LogStream::Stdout, b"fail early\n");
    rig.resync().await;
    rig.until("the early line", |p| {
        count(p, "job-1", "stdout") == Some((1, 1))
    })
    .await;
}

#[tokio::test]
async fn a_crash_loop_is_counted_once_per_line() {
    let rig = Rig::new(vec![], &[("job-*", "fail")]).await;
    rig.part().await;
    // It ran and died before lookout attached.
    let mut c = container("j", "job-1", None, crate::now_unix());
    rig.fake.send("j", LogStream::Stderr, b"fail 1\n");
    c.state = State::Exited;
    c.pid = 0;
    c.finished_at = Some(crate::now_unix());
    rig.fake.put(c);
    rig.resync().await;
    rig.until("run 1", |p| count(p, "job-1", "stderr") == Some((1, 1)))
        .await;
    // Twice more, each noticed only after it ended.
    for run in 2..=3 {
        rig.fake
            .edit("j", |c| c.started_at = Some(crate::now_unix()));
        rig.fake
            .send("j", LogStream::Stderr, format!("fail {run}\n").as_bytes());
        rig.fake
            .edit("j", |c| c.finished_at = Some(crate::now_unix()));
        // The watcher notices a new start (resync re-inspects on a state change).
        rig.fake.edit("j", |c| c.state = State::Restarting);
        rig.resync().await;
        rig.fake.edit("j", |c| c.state = State::Exited);
        rig.resync().await;
        rig.until("the run's line", |p| {
            count(p, "job-1", "stderr") == Some((run, run))
        })
        .await;
    }
    assert_eq!(rig.part().await.last_matches[0].line, "fail 3");
}

#[tokio::test]
async fn removed_or_no_longer_listed_containers_lose_their_counters() {
    let rig = Rig::new(
        vec![
            container("a", "api", Some("E"), 1.0),
            container("b", "web", Some("E"), 1.0),
        ],
        &[],
    )
    .await;
    rig.part().await;
    rig.calls_until(2).await;
    rig.fake.send("a", LogStream::Stdout, b"E\n");
    rig.until("a count", |p| count(p, "api", "stdout") == Some((1, 1)))
        .await;
    rig.fake.containers.lock().unwrap().remove("a");
    rig.resync().await;
    let p = rig.part().await;
    assert_eq!(count(&p, "api", "stdout"), None);
    assert!(p.last_matches.is_empty());
    assert_eq!(count(&p, "web", "stdout"), Some((0, 0)));
    assert_eq!(rig.collector.inner.table.lock().unwrap().followed.len(), 1);
}

#[tokio::test]
async fn an_invalid_label_is_reported_and_config_rules_still_apply() {
    let rig = Rig::new(
        vec![
            container("a", "api-1", Some("(unclosed"), 1.0),
            container("b", "bad-1", Some("[z-a]"), 1.0),
            container("c", "api-2", None, 1.0),
            container("d", "api-3", Some("mine"), 1.0),
        ],
        &[("api-*", "rule")],
    )
    .await;
    let p = rig.part().await;
    let invalid: Vec<&str> = p.invalid_patterns.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(invalid, ["api-1", "bad-1"]);
    assert_eq!(p.invalid_patterns[0].pattern, "(unclosed");
    assert!(!p.invalid_patterns[0].error.is_empty());
    // api-1 falls back to the rule; bad-1 has none; api-2 by rule; api-3 by its label.
    let followed: Vec<&str> = p
        .counts
        .iter()
        .filter(|c| c.stream == "stdout")
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(followed, ["api-1", "api-2", "api-3"]);
    rig.calls_until(3).await;
    for id in ["a", "c", "d"] {
        rig.fake.send(id, LogStream::Stdout, b"rule\nmine\n");
    }
    let p = rig
        .until("all three counted", |p| {
            ["api-1", "api-2", "api-3"]
                .iter()
                .all(|n| count(p, n, "stdout").is_some_and(|c| c.0 == 2))
        })
        .await;
    assert_eq!(count(&p, "api-1", "stdout"), Some((2, 1)));
    assert_eq!(count(&p, "api-3", "stdout"), Some((2, 1)));
    // Reconciling again neither re-logs nor re-follows.
    rig.fake.put(container("e", "other", None, 1.0));
    rig.resync().await;
    let p = rig.part().await;
    assert_eq!(p.invalid_patterns.len(), 2);
    assert_eq!(rig.fake.calls().len(), 3);
}

#[tokio::test]
async fn renames_keep_counts_and_count_from_the_rename() {
    let rig = Rig::new(
        vec![
            container("j", "job-1", None, 1.0),
            container("x", "other-1", None, 1.0),
        ],
        &[("job-*", "fail"), ("task-*", "oops")],
    )
    .await;
    rig.part().await;
    rig.calls_until(1).await;
    rig.fake.send("j", LogStream::Stdout, b"fail\noops\n");
    rig.fake
        .send("x", LogStream::Stdout, b"fail before the rename\n");
    rig.until("job counts", |p| {
        count(p, "job-1", "stdout") == Some((2, 1))
    })
    .await;
    // Renamed onto another rule, and a container renamed into one (resync re-inspects only on
    // a state change, so go through one).
    rig.fake.edit("j", |c| {
        c.name = "task-1".into();
        c.state = State::Paused;
    });
    rig.fake.edit("x", |c| {
        c.name = "job-2".into();
        c.state = State::Paused;
    });
    rig.resync().await;
    rig.part().await;
    rig.calls_until(3).await;
    rig.fake.send("j", LogStream::Stdout, b"oops\n");
    rig.fake.send("x", LogStream::Stdout, b"fail after\n");
    let p = rig
        .until("counts carried over", |p| {
            count(p, "task-1", "stdout") == Some((3, 2))
        })
        .await;
    assert_eq!(count(&p, "job-1", "stdout"), None);
    let p = rig
        .until("the renamed one", |p| {
            count(p, "job-2", "stdout") == Some((1, 1))
        })
        .await;
    assert_eq!(count(&p, "task-1", "stdout"), Some((3, 2)));
}
