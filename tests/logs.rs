//! The log collector against a real Docker daemon: containers that print error lines at a known
//! rate, restart, opt in by config glob or by a broken label, print a 1 MB line, or flood.
//!
//! The tests run one at a time (they measure rates, CPU and memory on a shared machine).

mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{sample, wait_until, Container, Lookout};

static SERIAL: Mutex<()> = Mutex::new(());

const ERROR_LABEL: &str = r"lookout.logs=(?i)\berror\b";

/// Prints one stdout and one stderr line every ~0.1 s.
const TEN_PER_SECOND: &str = r#"i=0; while :; do i=$((i+1)); echo "INFO ok $i"; echo "ERROR failed $i" >&2; sleep 0.1; done"#;

fn config(include: &str, extra: &str) -> String {
    format!("interval: 1s\ndocker:\n  include: [\"{include}\"]\n{extra}")
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Lines Docker holds for the container on each stream, optionally since a unix time.
fn docker_lines(c: &Container, since: Option<f64>) -> (usize, usize) {
    let mut cmd = Command::new("docker");
    cmd.arg("logs");
    if let Some(s) = since {
        cmd.arg("--since").arg(format!("{s:.6}"));
    }
    let out = cmd.arg(&c.id).output().expect("docker logs");
    assert!(out.status.success(), "docker logs failed");
    let n = |b: &[u8]| b.iter().filter(|&&x| x == b'\n').count();
    (n(&out.stdout), n(&out.stderr))
}

fn counter(lk: &Lookout, metric: &str, c: &Container, stream: &str) -> Option<f64> {
    let name = format!("name=\"{}\"", c.name);
    let stream = format!("stream=\"{stream}\"");
    sample(&lk.metrics(), metric, &[&name, &stream])
}

fn lines(lk: &Lookout, c: &Container, stream: &str) -> Option<f64> {
    counter(lk, "lookout_container_log_lines_total", c, stream)
}

fn matches(lk: &Lookout, c: &Container, stream: &str) -> Option<f64> {
    counter(lk, "lookout_container_log_matches_total", c, stream)
}

/// The counter once it has stopped moving (lookout has caught up with a paused container).
fn settled(lk: &Lookout, c: &Container, stream: &str) -> f64 {
    let mut last = -1.0;
    wait_until(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(2500));
        let v = lines(lk, c, stream).expect("series");
        let done = v == last;
        last = v;
        done.then_some(v)
    })
    .expect("counter settles")
}

#[test]
fn counts_error_lines_from_now_at_their_rate_and_across_restarts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !support::docker_or_skip("counts_error_lines_from_now_at_their_rate_and_across_restarts") {
        return;
    }
    let printer = Container::run(
        "lookout-logs-rate",
        &["--label", ERROR_LABEL],
        &["sh", "-c", TEN_PER_SECOND],
    );
    // History lookout must not read: ~3 s of lines before it starts.
    std::thread::sleep(Duration::from_secs(3));
    let (_, before) = docker_lines(&printer, None);
    assert!(before >= 20, "the printer printed only {before} lines");
    let started = now_unix();
    let lk = Lookout::start(&config("lookout-logs-rate-*", ""), &[]);
    // lookout follows from the whole second after it attached, which was before it was ready:
    // every line from the next whole second after readiness on must be counted.
    let ready = now_unix().ceil();

    wait_until(Duration::from_secs(10), || lines(&lk, &printer, "stderr"))
        .unwrap_or_else(|| panic!("no log series; log:\n{}", lk.log()));
    std::thread::sleep(Duration::from_secs(2));
    let (t0, e0) = (Instant::now(), lines(&lk, &printer, "stderr").unwrap());
    std::thread::sleep(Duration::from_secs(6));
    let (t1, e1) = (Instant::now(), lines(&lk, &printer, "stderr").unwrap());
    let rate = (e1 - e0) / (t1 - t0).as_secs_f64();
    eprintln!("stderr lines/s seen by lookout: {rate:.2} (the printer aims at 10/s)");
    assert!(
        (7.0..=11.5).contains(&rate),
        "rate {rate:.2}/s, expected ~10/s"
    );

    // Every stderr line matches, no stdout line does, and stdout is counted too.
    let m = lk.metrics();
    let get = |metric: &str, stream: &str| {
        sample(
            &m,
            metric,
            &[
                &format!("name=\"{}\"", printer.name),
                &format!("stream=\"{stream}\""),
            ],
        )
        .unwrap()
    };
    let err_lines = get("lookout_container_log_lines_total", "stderr");
    assert_eq!(
        get("lookout_container_log_matches_total", "stderr"),
        err_lines
    );
    assert_eq!(get("lookout_container_log_matches_total", "stdout"), 0.0);
    let out_lines = get("lookout_container_log_lines_total", "stdout");
    assert!(
        (out_lines - err_lines).abs() <= 2.0,
        "{out_lines} vs {err_lines}"
    );

    // No history: compare with what Docker holds, with the printer paused so both stand still.
    assert!(printer.docker(&["pause"]).status.success());
    let seen = settled(&lk, &printer, "stderr");
    let (_, total) = docker_lines(&printer, None);
    let (_, since_start) = docker_lines(&printer, Some(started));
    let (_, since_ready) = docker_lines(&printer, Some(ready));
    eprintln!(
        "printed {total} stderr lines, {before} before lookout started, {since_start} after, {since_ready} after it was ready; lookout counted {seen}"
    );
    assert!(
        seen <= since_start as f64,
        "lookout counted {seen} lines, more than the {since_start} printed since it started"
    );
    assert!(
        seen >= since_ready as f64,
        "lookout counted {seen}, fewer than the {since_ready} lines printed since it was ready"
    );
    assert!(printer.docker(&["unpause"]).status.success());

    // A restart: the counter goes on from where it was (sh as pid 1 ignores SIGTERM: killed
    // after 1 s), and the new run is counted.
    let before_restart = lines(&lk, &printer, "stderr").unwrap();
    let restart = printer.docker(&["restart", "-t", "1"]);
    assert!(restart.status.success());
    let mut prev = before_restart;
    let grown = wait_until(Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_millis(250));
        let v = lines(&lk, &printer, "stderr").expect("series kept across the restart");
        assert!(v >= prev, "counter went back from {prev} to {v}");
        prev = v;
        (v >= before_restart + 30.0).then_some(v)
    });
    assert!(
        grown.is_some(),
        "counting did not resume after the restart (stuck at {prev}); log:\n{}",
        lk.log()
    );
    // And across both runs it still agrees with Docker: nothing counted twice (the re-attach
    // reaches back over the old run's last second and skips it by timestamp), nothing lost.
    assert!(printer.docker(&["pause"]).status.success());
    let seen = settled(&lk, &printer, "stderr");
    let (_, since_start) = docker_lines(&printer, Some(started));
    let (_, since_ready) = docker_lines(&printer, Some(ready));
    eprintln!("after the restart: {since_start} stderr lines since lookout started, {since_ready} since it was ready; lookout counted {seen}");
    assert!(
        seen <= since_start as f64 && seen >= since_ready as f64,
        "lookout counted {seen}; Docker has {since_start} since lookout started, {since_ready} since it was ready"
    );
    assert_eq!(
        matches(&lk, &printer, "stderr"),
        lines(&lk, &printer, "stderr")
    );
}

#[test]
fn config_glob_rules_and_broken_labels() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !support::docker_or_skip("config_glob_rules_and_broken_labels") {
        return;
    }
    let script = r#"while :; do echo "WARN disk"; echo "fine"; sleep 0.1; done"#;
    let by_rule = Container::run("lookout-logs-cfg", &[], &["sh", "-c", script]);
    let broken = Container::run(
        "lookout-logs-broken",
        &["--label", "lookout.logs=(unclosed"],
        &["sh", "-c", script],
    );
    let plain = Container::run("lookout-logs-plain", &[], &["sh", "-c", script]);
    let lk = Lookout::start(
        &config(
            "lookout-logs-*",
            "collectors:\n  logs:\n    - match: {name: \"lookout-logs-cfg-*\"}\n      pattern: \"(?i)\\\\bwarn\\\\b\"\n",
        ),
        &[],
    );
    let m = wait_until(Duration::from_secs(15), || {
        let m = matches(&lk, &by_rule, "stdout")?;
        (m >= 10.0).then_some(m)
    })
    .unwrap_or_else(|| panic!("the config rule did not count; log:\n{}", lk.log()));
    let l = lines(&lk, &by_rule, "stdout").unwrap();
    assert!(
        (l - 2.0 * m).abs() <= 4.0,
        "{m} matches of {l} lines; half the lines match"
    );
    let metrics = lk.metrics();
    let broken_name = format!("name=\"{}\"", broken.name);
    assert_eq!(
        sample(
            &metrics,
            "lookout_container_log_pattern_invalid",
            &[&broken_name]
        ),
        Some(1.0)
    );
    for c in [&broken, &plain] {
        assert_eq!(lines(&lk, c, "stdout"), None, "{} is not opted in", c.name);
    }
    let log = lk.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&broken.name) && l.contains("lookout.logs=(unclosed"))
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "one warning naming the container and label:\n{log}"
    );
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

#[test]
fn a_megabyte_line_and_a_flood_keep_memory_bounded_and_collection_on_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !support::docker_or_skip("a_megabyte_line_and_a_flood") {
        return;
    }
    support::ensure_image();
    let lk = Lookout::start(&config("lookout-logs-flood-*", ""), &[]);
    let pid = lk.child.id();

    // Three 1 MB lines: a plain one, one whose match lies past the 64 KiB kept for matching,
    // and one that starts with the match.
    let mb = r#"head -c 1000000 /dev/zero | tr "\0" a"#;
    let long = Container::run(
        "lookout-logs-flood-long",
        &["--label", ERROR_LABEL],
        &[
            "sh",
            "-c",
            &format!(
                r#"{mb}; echo; echo ERROR short; {mb}; echo " ERROR"; echo "ERROR $({mb})"; sleep 3600"#
            ),
        ],
    );
    let got = wait_until(Duration::from_secs(20), || {
        lines(&lk, &long, "stdout").filter(|v| *v >= 4.0)
    })
    .unwrap_or_else(|| panic!("the long lines were not counted; log:\n{}", lk.log()));
    assert_eq!(got, 4.0, "each 1 MB line counts once");
    assert_eq!(matches(&lk, &long, "stdout"), Some(2.0));
    let rss_long = rss_kb(pid);
    eprintln!("RSS after three 1 MB lines: {} kB", rss_long);

    // Idle cost, to subtract from the flood's.
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let idle_cpu = (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64();
    let rss_idle = rss_kb(pid);

    // As fast as Docker takes it (~100-200k lines/s here), a known number of lines.
    const FLOOD: f64 = 500_000.0;
    let flood = Container::run(
        "lookout-logs-flood-yes",
        &["--label", ERROR_LABEL],
        &[
            "sh",
            "-c",
            r#"sleep 1; yes "ERROR flood" | head -n 500000; sleep 3600"#,
        ],
    );
    let (cpu_start, wall_start) = (cpu_seconds(pid), Instant::now());
    let mut max_rss = 0;
    let mut stamps: Vec<f64> = Vec::new();
    let mut peak_rate: f64 = 0.0;
    // (snapshot time, flood lines) of the last new snapshot.
    let mut prev: Option<(f64, f64)> = None;
    let name = format!("name=\"{}\"", flood.name);
    // Watch until lookout has counted the whole flood.
    while wall_start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(250));
        max_rss = max_rss.max(rss_kb(pid));
        let m = lk.metrics();
        assert_eq!(
            sample(&m, "lookout_collector_success", &["collector=\"docker\""]),
            Some(1.0),
            "the docker collector failed during the flood"
        );
        let Some(ts) = sample(&m, "lookout_collection_timestamp_seconds", &[]) else {
            continue;
        };
        if stamps.last() == Some(&ts) {
            continue;
        }
        stamps.push(ts);
        let v = sample(
            &m,
            "lookout_container_log_lines_total",
            &[&name, "stream=\"stdout\""],
        )
        .unwrap_or(0.0);
        if let Some((pts, pv)) = prev {
            peak_rate = peak_rate.max((v - pv) / (ts - pts));
        }
        prev = Some((ts, v));
        if v >= FLOOD {
            break;
        }
    }
    let wall = wall_start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_start - idle_cpu * wall;
    // Every line once, each a match (and nothing more arrives).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        lines(&lk, &flood, "stdout"),
        Some(FLOOD),
        "flood lines counted"
    );
    assert_eq!(matches(&lk, &flood, "stdout"), Some(FLOOD), "flood matches");
    let per_10k = cpu / FLOOD * 10_000.0;
    eprintln!(
        "flood: {FLOOD} lines counted in {wall:.1} s, peak {peak_rate:.0} lines/s in lookout's counter; lookout CPU {cpu:.2} s above idle ({idle_cpu:.3} cores idle) => {:.1}% of one core per 10k lines/s",
        per_10k * 100.0
    );
    eprintln!(
        "RSS: {rss_idle} kB before the flood, {max_rss} kB at most during it, {} kB after",
        rss_kb(pid)
    );
    assert!(
        max_rss < 60 * 1024,
        "lookout's RSS reached {max_rss} kB during the flood"
    );
    // The collection loop kept its 1 s schedule: no gap over ~2 intervals (plus slack for a
    // shared two-core machine).
    let worst = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    eprintln!(
        "collection cycles during the flood: {}, widest gap {worst:.2} s",
        stamps.len()
    );
    assert!(
        stamps.len() as f64 >= wall * 0.5,
        "{} cycles in {wall:.1} s",
        stamps.len()
    );
    assert!(
        worst <= 2.5,
        "collection stalled for {worst:.2} s during the flood"
    );
}

#[test]
fn a_tty_containers_endless_line_keeps_memory_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !support::docker_or_skip("a_tty_containers_endless_line_keeps_memory_bounded") {
        return;
    }
    support::ensure_image();
    let lk = Lookout::start(&config("lookout-logs-tty-*", ""), &[]);
    let pid = lk.child.id();
    // With a TTY Docker sends one raw stream (stderr joins stdout, lines end in \r\n). Known
    // lines first, then 30 MB without a newline that stays unfinished for 5 s, then its end
    // and one more error line.
    let script = r#"sleep 1; for i in 1 2 3 4; do echo "ERROR early $i"; done; echo "ERROR on stderr" >&2; echo fine; sleep 4; head -c 30000000 /dev/zero | tr "\0" a; sleep 5; echo; echo "ERROR after"; sleep 3600"#;
    let tty = Container::run(
        "lookout-logs-tty",
        &["-t", "--label", ERROR_LABEL],
        &["sh", "-c", script],
    );
    wait_until(Duration::from_secs(15), || {
        lines(&lk, &tty, "stdout").filter(|v| *v >= 6.0)
    })
    .unwrap_or_else(|| panic!("the early lines were not counted; log:\n{}", lk.log()));
    let early = (lines(&lk, &tty, "stdout"), matches(&lk, &tty, "stdout"));
    assert_eq!(early, (Some(6.0), Some(5.0)), "the early lines, each once");
    assert_eq!(lines(&lk, &tty, "stderr"), Some(0.0), "a TTY has no stderr");
    let rss0 = rss_kb(pid);

    // The long line is written and read (Docker holds it in 16 KiB parts), then stays open.
    let mut max_rss = rss0;
    let end = wait_until(Duration::from_secs(40), || {
        std::thread::sleep(Duration::from_millis(100));
        max_rss = max_rss.max(rss_kb(pid));
        lines(&lk, &tty, "stdout").filter(|v| *v >= 8.0)
    })
    .unwrap_or_else(|| {
        panic!(
            "the lines after the long one were not counted; log:\n{}",
            lk.log()
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(end, 8.0, "the 30 MB line counts once");
    assert_eq!(lines(&lk, &tty, "stdout"), Some(8.0));
    assert_eq!(
        matches(&lk, &tty, "stdout"),
        Some(6.0),
        "ERROR after counted"
    );
    eprintln!(
        "TTY: RSS {rss0} kB before the 30 MB line, {max_rss} kB at most while it was written and open (+{} kB)",
        max_rss - rss0
    );
    assert!(
        max_rss - rss0 < 8 * 1024,
        "lookout's RSS grew by {} kB during a 30 MB TTY line",
        max_rss - rss0
    );
}
