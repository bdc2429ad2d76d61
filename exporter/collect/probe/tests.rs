use std::collections::BTreeMap;

use tokio::net::TcpListener;

use super::*;
use crate::config::NameFilter;

fn spec(kind: ProbeKind, host: Option<&str>, port: u16, path: &str) -> ProbeSpec {
    ProbeSpec {
        kind,
        host: host.map(str::to_string),
        port,
        path: path.to_string(),
    }
}

#[test]
fn labels_that_parse() {
    use ProbeKind::*;
    let cases = [
        ("http://:8080/health", spec(Http, None, 8080, "/health")),
        ("tcp://:5432", spec(Tcp, None, 5432, "")),
        ("tcp://:5432/", spec(Tcp, None, 5432, "")),
        (
            "tcp://db.internal:5432",
            spec(Tcp, Some("db.internal"), 5432, ""),
        ),
        ("http://:8080", spec(Http, None, 8080, "/")),
        ("http://", spec(Http, None, 80, "/")),
        ("http://web/x", spec(Http, Some("web"), 80, "/x")),
        (
            "http://127.0.0.1:8080/x?a=1&b=2#frag",
            spec(Http, Some("127.0.0.1"), 8080, "/x?a=1&b=2"),
        ),
        ("http://:9000?ready", spec(Http, None, 9000, "/?ready")),
        ("HTTP://:81/", spec(Http, None, 81, "/")),
        ("  tcp://:1  ", spec(Tcp, None, 1, "")),
        ("http://[::1]:8080/h", spec(Http, Some("::1"), 8080, "/h")),
        ("http://[fe80::2]/", spec(Http, Some("fe80::2"), 80, "/")),
    ];
    for (label, want) in cases {
        assert_eq!(parse_label(label), Ok(want), "{label}");
    }
}

#[test]
fn labels_that_do_not_parse_say_why() {
    let cases = [
        ("ftp://x", "unsupported scheme \"ftp\""),
        ("garbage", "expected http://"),
        ("", "expected http://"),
        (":8080/health", "expected http://"),
        ("https://:8443/", "https is not supported"),
        ("tcp://:0", "invalid port \"0\""),
        ("tcp://:65536", "invalid port \"65536\""),
        ("http://:port/", "invalid port \"port\""),
        ("http://:/", "invalid port \"\""),
        ("tcp://db", "needs a port"),
        ("tcp://", "needs a port"),
        ("tcp://:5432/ready", "takes no path"),
        ("http://user@web:80/", "user information"),
        ("http://::1:80/", "IPv6 address goes in brackets"),
        ("http://[::1/", "unclosed ["),
        ("http://[nope]:80/", "invalid IPv6 address"),
        ("http://[::1]x/", "expected :port"),
        ("http://a b:80/", "invalid character ' '"),
        ("http://:8080/a b", "may not contain ' '"),
        ("http://:8080/a\r\nX: y", "may not contain '\\r'"),
    ];
    for (label, want) in cases {
        let err = parse_label(label).expect_err(label);
        assert!(err.contains(want), "{label}: {err:?} lacks {want:?}");
    }
}

#[test]
fn targets_take_the_container_address_unless_a_host_is_given() {
    let s = parse_label("http://:8080/health").unwrap();
    let t = s.target("172.17.0.2").unwrap();
    assert_eq!(t.addr, "172.17.0.2:8080");
    assert_eq!(t.host_header, "172.17.0.2:8080");
    assert_eq!(t.url, "http://172.17.0.2:8080/health");
    // Without an address of its own (host network): an error that says what to do.
    let err = s.target("").unwrap_err();
    assert!(err.contains("give a host"), "{err}");

    let s = parse_label("http://127.0.0.1/x").unwrap();
    let t = s.target("").unwrap();
    assert_eq!(t.addr, "127.0.0.1:80");
    assert_eq!(t.host_header, "127.0.0.1");
    assert_eq!(t.url, "http://127.0.0.1:80/x");
    // An explicit host wins over the container's address.
    assert_eq!(s.target("10.0.0.1").unwrap().addr, "127.0.0.1:80");

    let s = parse_label("tcp://:5432").unwrap();
    let t = s.target("10.1.2.3").unwrap();
    assert_eq!(t.addr, "10.1.2.3:5432");
    assert_eq!(t.url, "tcp://10.1.2.3:5432");

    let s = parse_label("http://[::1]:8080/h").unwrap();
    let t = s.target("").unwrap();
    assert_eq!(t.addr, "[::1]:8080");
    assert_eq!(t.host_header, "[::1]:8080");
    assert_eq!(t.url, "http://[::1]:8080/h");
    assert_eq!(s.display(), "http://[::1]:8080/h");
    assert_eq!(parse_label("tcp://:5432").unwrap().display(), "tcp://:5432");
}

#[test]
fn status_lines() {
    assert_eq!(check_status(b"HTTP/1.1 200 OK\r"), Ok(()));
    assert_eq!(check_status(b"HTTP/1.0 204"), Ok(()));
    assert_eq!(check_status(b"HTTP/1.1 302 Found"), Ok(()));
    assert_eq!(check_status(b"HTTP/1.1 399 x"), Ok(()));
    assert_eq!(
        check_status(b"HTTP/1.1 404 Not Found"),
        Err("HTTP status 404".into())
    );
    assert_eq!(check_status(b"HTTP/1.1 503"), Err("HTTP status 503".into()));
    assert_eq!(
        check_status(b"HTTP/1.1 199 x"),
        Err("HTTP status 199".into())
    );
    for bad in [
        &b"SSH-2.0-OpenSSH"[..],
        b"HTTP/1.1 2000 x",
        b"",
        b"HTTP/1.1",
    ] {
        let e = check_status(bad).unwrap_err();
        assert!(e.starts_with("not an HTTP answer"), "{e}");
    }
}

/// A server on loopback that answers each connection with `answer` (after reading the
/// request's head), and hands the requests it read to the test.
async fn server(answer: &'static [u8]) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                if answer.is_empty() {
                    // Never answers.
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                let _ = s.write_all(answer).await;
            });
        }
    });
    (port, rx)
}

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn run(label: &str, ip: &str, timeout: Duration) -> Result<(), String> {
    let s = parse_label(label).unwrap();
    let t = s.target(ip).unwrap();
    probe(s.kind, &t, &s.path, timeout).await
}

#[tokio::test]
async fn http_probes_read_the_status_line_only() {
    let (ok, mut requests) = server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let r = run(
        &format!("http://:{ok}/health?x=1"),
        "127.0.0.1",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(r, Ok(()));
    let req = requests.recv().await.unwrap();
    assert!(
        req.starts_with(&format!(
            "GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{ok}\r\n"
        )),
        "{req}"
    );
    assert!(req.contains("Connection: close\r\n"), "{req}");

    let (moved, _r) = server(b"HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n").await;
    assert_eq!(
        run(
            &format!("http://127.0.0.1:{moved}/"),
            "",
            Duration::from_secs(5)
        )
        .await,
        Ok(())
    );
    let (broken, _r) = server(b"HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
    assert_eq!(
        run(
            &format!("http://:{broken}/"),
            "127.0.0.1",
            Duration::from_secs(5)
        )
        .await,
        Err("HTTP status 500".into())
    );
    // A status line without its line end, then the connection closed: still read.
    let (short, _r) = server(b"HTTP/1.1 204 No Content").await;
    assert_eq!(
        run(
            &format!("http://:{short}/"),
            "127.0.0.1",
            Duration::from_secs(5)
        )
        .await,
        Ok(())
    );
    // More than READ_CAP bytes without a line end: not read on.
    static LONG: [u8; READ_CAP + 100] = [b'x'; READ_CAP + 100];
    let (long, _r) = server(&LONG).await;
    let e = run(
        &format!("http://:{long}/"),
        "127.0.0.1",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("no HTTP status line in the first 4096 bytes"),
        "{e}"
    );
}

#[tokio::test]
async fn failures_refused_and_timed_out() {
    let closed = closed_port();
    let e = run(
        &format!("tcp://:{closed}"),
        "127.0.0.1",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(
        e.starts_with(&format!("connect 127.0.0.1:{closed}:")),
        "{e}"
    );
    let e = run(
        &format!("http://:{closed}/"),
        "127.0.0.1",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(e.starts_with("connect"), "{e}");

    // A server that accepts and never answers: the probe gives up at its timeout.
    let (silent, _r) = server(b"").await;
    let start = Instant::now();
    let e = run(
        &format!("http://:{silent}/"),
        "127.0.0.1",
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert_eq!(e, "timed out after 300ms");
    assert!(start.elapsed() < Duration::from_secs(3));
    // TCP: an accepted connection is enough.
    assert_eq!(
        run(
            &format!("tcp://:{silent}"),
            "127.0.0.1",
            Duration::from_secs(5)
        )
        .await,
        Ok(())
    );
}

fn container(id: &str, label: Option<&str>, state: State, ip: &str) -> ContainerInfo {
    let mut labels = BTreeMap::new();
    if let Some(l) = label {
        labels.insert(LABEL.to_string(), l.to_string());
    }
    ContainerInfo {
        id: id.into(),
        name: format!("{id}-name"),
        labels,
        state,
        pid: if state == State::Running { 100 } else { 0 },
        ip_address: ip.into(),
        ..Default::default()
    }
}

fn collector(interval: Duration) -> Arc<ProbeCollector> {
    Arc::new(ProbeCollector::new(
        DockerState::new(NameFilter::all()),
        interval,
    ))
}

/// Poll the collector's results until `f` holds (at most 5 s).
async fn until(c: &ProbeCollector, what: &str, f: impl Fn(&ProbePart) -> bool) -> ProbePart {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let p = c.inner.part();
        if f(&p) {
            return p;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {p:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn result<'a>(p: &'a ProbePart, id: &str) -> Option<&'a ProbeResult> {
    p.results.iter().find(|r| r.container_id == id)
}

#[tokio::test]
async fn running_labelled_containers_are_probed_and_dropped_when_gone() {
    let (ok, _r) = server(b"HTTP/1.1 200 OK\r\n\r\n").await;
    let closed = closed_port();
    let c = collector(Duration::from_millis(100));
    let http = format!("http://:{ok}/");
    let tcp = format!("tcp://127.0.0.1:{closed}");
    let view = vec![
        container("up", Some(&http), State::Running, "127.0.0.1"),
        container("down", Some(&tcp), State::Running, ""),
        container("bad", Some("ftp://x"), State::Running, "127.0.0.1"),
        container("stopped", Some(&http), State::Exited, ""),
        container("plain", None, State::Running, "127.0.0.1"),
        // Running without an address of its own and without a host: probed, and failing.
        container("hostnet", Some(&http), State::Running, ""),
    ];
    {
        let mut t = c.inner.table.lock().unwrap();
        c.inner.reconcile(&mut t, &view);
        let mut probed: Vec<&str> = t.probed.keys().map(String::as_str).collect();
        probed.sort();
        assert_eq!(probed, ["down", "hostnet", "up"]);
        assert_eq!(
            t.invalid.get("bad").map(String::as_str),
            Some("ftp://x"),
            "the invalid label is remembered, so it is logged once"
        );
    }
    let p = until(&c, "three results", |p| p.results.len() == 3).await;
    let up = result(&p, "up").unwrap();
    assert!(up.success, "{up:?}");
    assert_eq!(up.target, format!("http://127.0.0.1:{ok}/"));
    assert_eq!(up.error, None);
    assert!(up.duration_seconds >= 0.0 && up.duration_seconds < 5.0);
    let down = result(&p, "down").unwrap();
    assert!(!down.success);
    assert_eq!(down.target, format!("tcp://127.0.0.1:{closed}"));
    assert!(down.error.as_deref().unwrap().starts_with("connect"));
    let hostnet = result(&p, "hostnet").unwrap();
    assert!(!hostnet.success);
    assert!(hostnet.error.as_deref().unwrap().contains("no IP address"));

    // Probes go on every interval.
    let first = up.at;
    until(&c, "a newer result", |p| {
        result(p, "up").is_some_and(|r| r.at > first)
    })
    .await;

    // "up" stops, "down" is removed, "bad" stays listed: their results go, the invalid label
    // stays remembered while its container exists.
    let view = vec![
        container("up", Some(&http), State::Exited, ""),
        container("bad", Some("ftp://x"), State::Running, "127.0.0.1"),
        container("hostnet", Some(&http), State::Running, ""),
    ];
    {
        let mut t = c.inner.table.lock().unwrap();
        c.inner.reconcile(&mut t, &view);
        assert_eq!(
            t.probed.keys().map(String::as_str).collect::<Vec<_>>(),
            ["hostnet"]
        );
        assert!(t.invalid.contains_key("bad"));
    }
    let p = c.inner.part();
    assert_eq!(p.results.len(), 1);
    assert_eq!(p.results[0].container_id, "hostnet");

    // The label is fixed: probed; the container is removed: forgotten.
    let view = vec![container("bad", Some(&http), State::Running, "127.0.0.1")];
    {
        let mut t = c.inner.table.lock().unwrap();
        c.inner.reconcile(&mut t, &view);
        assert!(t.invalid.is_empty());
        assert!(t.probed.contains_key("bad"));
    }
    until(&c, "the fixed label's result", |p| {
        result(p, "bad").is_some_and(|r| r.success)
    })
    .await;
    {
        let mut t = c.inner.table.lock().unwrap();
        c.inner.reconcile(&mut t, &[]);
        assert!(t.probed.is_empty());
    }
    assert!(c.inner.part().results.is_empty());
}

#[tokio::test]
async fn a_new_address_keeps_the_last_result_a_new_label_does_not() {
    let (ok, _r) = server(b"HTTP/1.1 200 OK\r\n\r\n").await;
    // A long interval: one probe at the start, then none during the test.
    let c = collector(Duration::from_secs(3600));
    let http = format!("http://:{ok}/");
    let reconcile = |view: &[ContainerInfo]| {
        let mut t = c.inner.table.lock().unwrap();
        c.inner.reconcile(&mut t, view);
    };
    reconcile(&[container("a", Some(&http), State::Running, "127.0.0.1")]);
    until(&c, "the first result", |p| p.results.len() == 1).await;
    // Restarted at another address: the old result stands until the next probe, which
    // goes to the new address.
    reconcile(&[container("a", Some(&http), State::Running, "127.0.0.2")]);
    let p = c.inner.part();
    assert_eq!(p.results.len(), 1);
    until(&c, "a probe of the new address", |p| {
        p.results[0].target == format!("http://127.0.0.2:{ok}/")
    })
    .await;
    // Another label: no result until its own first probe.
    let closed = closed_port();
    reconcile(&[container(
        "a",
        Some(&format!("tcp://:{closed}")),
        State::Running,
        "127.0.0.1",
    )]);
    let p = until(&c, "the new label's result", |p| p.results.len() == 1).await;
    assert!(!p.results[0].success);
}

#[tokio::test]
async fn at_most_max_concurrent_probes_run_at_once() {
    // Servers that accept and never answer: every probe holds its permit until its timeout.
    let (silent, mut requests) = server(b"").await;
    let c = collector(Duration::from_secs(2));
    let http = format!("http://:{silent}/");
    let view: Vec<ContainerInfo> = (0..MAX_CONCURRENT + 8)
        .map(|i| container(&format!("c{i}"), Some(&http), State::Running, "127.0.0.1"))
        .collect();
    {
        let mut t = c.inner.table.lock().unwrap();
        c.inner.reconcile(&mut t, &view);
    }
    let mut seen = 0;
    let end = Instant::now() + Duration::from_millis(800);
    while let Ok(Some(_)) = tokio::time::timeout_at(end.into(), requests.recv()).await {
        seen += 1;
    }
    assert_eq!(
        seen, MAX_CONCURRENT,
        "probes in flight before the first timed out"
    );
    assert_eq!(c.inner.permits.available_permits(), 0);
}

#[tokio::test]
async fn collect_reports_the_latest_results_without_waiting_for_probes() {
    let c = collector(Duration::from_secs(1));
    let start = Instant::now();
    match c.clone().collect().await {
        Ok(Part::Probe(p)) => assert!(p.results.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(c.supervisor.started());
}
