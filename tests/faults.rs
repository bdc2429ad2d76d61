//! Bad input and faults: the daemon going away and coming back, a missing socket, a port in
//! use, a broken config; and the `once`, `check` and `doctor` commands.

mod support;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{lookout_bin, sample, wait_until, Container, Lookout};

/// A unix-socket proxy to the real Docker socket that the test can take down and bring back,
/// which is what a daemon restart looks like from lookout's side.
struct Proxy {
    path: PathBuf,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(path: &Path) -> Proxy {
        let mut p = Proxy {
            path: path.to_path_buf(),
            up: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            thread: None,
        };
        p.bring_up();
        p
    }

    fn bring_up(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).unwrap();
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let up = self.up.clone();
        let conns = self.conns.clone();
        self.thread = Some(std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(upstream) = UnixStream::connect("/var/run/docker.sock") else {
                            continue;
                        };
                        conns.lock().unwrap().push(client.try_clone().unwrap());
                        conns.lock().unwrap().push(upstream.try_clone().unwrap());
                        for (mut a, mut b) in [
                            (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                            (upstream, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut a, &mut b);
                                let _ = b.shutdown(std::net::Shutdown::Write);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    fn take_down(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.take_down();
    }
}

#[test]
fn daemon_goes_away_and_comes_back() {
    if !support::docker_or_skip("daemon_goes_away_and_comes_back") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let mut proxy = Proxy::start(&sock);
    let c = Container::run("lookout-it-fault", &[], &["sleep", "3600"]);
    let cfg = format!(
        "interval: 1s\ndocker:\n  host: unix://{}\n  include: [\"lookout-it-fault-*\"]\n",
        sock.display()
    );
    let lk = Lookout::start(&cfg, &[]);
    let n = format!("name=\"{}\"", c.name);
    wait_until(Duration::from_secs(10), || {
        sample(&lk.metrics(), "lookout_container_info", &[&n])
    })
    .expect("container seen through the proxy");

    proxy.take_down();
    let m = wait_until(Duration::from_secs(15), || {
        let m = lk.metrics();
        (sample(&m, "lookout_collector_success", &["collector=\"docker\""]) == Some(0.0))
            .then_some(m)
    })
    .expect("docker collector reports failure while the daemon is away");
    // The containers are not reported as gone, and cgroup stats keep flowing.
    assert_eq!(
        sample(&m, "lookout_container_info", &[&n]),
        Some(1.0),
        "{m}"
    );
    assert!(sample(&m, "container_memory_usage_bytes", &[&n]).is_some());
    assert_eq!(support::get(&lk.addr, "/health").status, 200);

    // A container started while lookout was cut off shows up after the reconnect.
    let later = Container::run("lookout-it-fault-late", &[], &["sleep", "3600"]);
    proxy.bring_up();
    let l = format!("name=\"{}\"", later.name);
    wait_until(Duration::from_secs(40), || {
        let m = lk.metrics();
        (sample(&m, "lookout_collector_success", &["collector=\"docker\""]) == Some(1.0)
            && sample(&m, "lookout_container_info", &[&l]).is_some())
        .then_some(())
    })
    .unwrap_or_else(|| panic!("no recovery after reconnect:\n{}", lk.log()));
    // The reason was logged once, not every cycle.
    let log = lk.log();
    assert_eq!(
        log.matches("docker daemon connection lost").count(),
        1,
        "{log}"
    );
    assert!(log.contains("collector recovered"), "{log}");
}

#[test]
fn missing_socket_is_a_clear_failure_and_the_rest_keeps_serving() {
    let lk = Lookout::start(
        "interval: 1s\ndocker:\n  host: unix:///nonexistent/docker.sock\n",
        &[],
    );
    let m = lk.metrics();
    assert_eq!(
        sample(&m, "lookout_collector_success", &["collector=\"docker\""]),
        Some(0.0)
    );
    assert!(m.contains("lookout_build_info"));
    let page = support::get(&lk.addr, "/").text();
    assert!(page.contains("/nonexistent/docker.sock"), "{page}");

    let out = Command::new(lookout_bin())
        .args(["doctor", "--docker.host", "unix:///nonexistent/docker.sock"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("socket /nonexistent/docker.sock does not exist"),
        "{text}"
    );
    assert!(text.contains("fix:"), "{text}");
}

#[test]
fn permission_denied_socket_suggests_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let _l = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // Root bypasses permissions; run the check as `nobody` when we are root.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(lookout_bin());
        c
    } else {
        Command::new(lookout_bin())
    };
    let out = cmd
        .args(["doctor", "--docker.host"])
        .arg(format!("unix://{}", sock.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("permission denied"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("group_add"), "{text}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(lookout_bin())
        .args([
            "run",
            "--listen",
            &addr,
            "--docker.host",
            "unix:///nonexistent.sock",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        err.to_lowercase().contains("address already in use"),
        "{err}"
    );
}

/// `lookout check -c FILE`.
fn check(file: &Path) -> std::process::Output {
    Command::new(lookout_bin())
        .args(["check", "-c"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn check_reports_every_problem_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yml");
    std::fs::write(
        &f,
        "listen: 0.0.0.0:9659\ninterval: 10 seconds\ndocker:\n  include: [\"web-[\"]\n  labels: [a]\n",
    )
    .unwrap();
    let out = check(&f);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = f.display().to_string();
    assert!(
        err.contains(&format!("{name}:2:11: interval: invalid duration")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{name}:4:13: docker.include[0]: invalid glob")),
        "{err}"
    );

    std::fs::write(&f, "listen: 0.0.0.0:9659\ndockr:\n  host: x\n").unwrap();
    let out = check(&f);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{name}:2:1: unknown field `dockr`")),
        "{err}"
    );

    std::fs::write(&f, "interval: 5s\n").unwrap();
    let out = check(&f);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn once_prints_the_exposition() {
    if !support::docker_or_skip("once_prints_the_exposition") {
        return;
    }
    let c = Container::run("lookout-it-once", &["--memory", "32m"], &["sleep", "3600"]);
    let out = Command::new(lookout_bin()).arg("once").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let n = format!("name=\"{}\"", c.name);
    assert_eq!(
        sample(&text, "container_spec_memory_limit_bytes", &[&n]),
        Some(33554432.0)
    );
    assert!(sample(&text, "container_cpu_usage_seconds_total", &[&n]).is_some());
    assert_eq!(
        sample(
            &text,
            "lookout_collector_success",
            &["collector=\"cgroup\""]
        ),
        Some(1.0)
    );
}

#[test]
fn reload_applies_the_new_config_or_keeps_the_old_one() {
    if !support::docker_or_skip("reload_applies_the_new_config_or_keeps_the_old_one") {
        return;
    }
    let a = Container::run("lookout-it-rla", &[], &["sleep", "3600"]);
    let b = Container::run("lookout-it-rlb", &[], &["sleep", "3600"]);
    let mut lk = Lookout::start(
        "interval: 1s\ndocker:\n  include: [\"lookout-it-rla-*\"]\n",
        &["--web.enable-lifecycle"],
    );
    let (na, nb) = (
        format!("name=\"{}\"", a.name),
        format!("name=\"{}\"", b.name),
    );
    wait_until(Duration::from_secs(10), || {
        sample(&lk.metrics(), "lookout_container_info", &[&na])
    })
    .expect("a is watched");
    assert_eq!(
        sample(&lk.metrics(), "lookout_container_info", &[&nb]),
        None
    );

    // A new filter, label allow-list and interval take effect on reload.
    let cfg = lk.dir.path().join("lookout.yml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let listen = text.lines().next().unwrap().to_string();
    let state = text.lines().nth(1).unwrap().to_string();
    std::fs::write(
        &cfg,
        format!("{listen}\n{state}\ninterval: 2s\ndocker:\n  include: [\"lookout-it-rlb-*\"]\n  labels: [x.y]\n"),
    )
    .unwrap();
    let r = support::request(&lk.addr, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let m = wait_until(Duration::from_secs(10), || {
        let m = lk.metrics();
        sample(&m, "lookout_container_info", &[&nb]).map(|_| m)
    })
    .expect("b is watched after the reload");
    assert_eq!(
        sample(&m, "lookout_container_info", &[&na]),
        None,
        "a is no longer watched"
    );
    assert_eq!(
        sample(&m, "lookout_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert!(support::get(&lk.addr, "/").text().contains("Interval: 2s"));

    // A broken file keeps the running config, and says so.
    std::fs::write(&cfg, format!("{listen}\n{state}\ninterval: soon\n")).unwrap();
    let r = support::request(&lk.addr, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(r.status, 500);
    assert!(
        r.text()
            .contains("lookout.yml:3:11: interval: invalid duration"),
        "{}",
        r.text()
    );
    let m = lk.metrics();
    assert_eq!(
        sample(&m, "lookout_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(
        sample(&m, "lookout_container_info", &[&nb]).is_some(),
        "the old config runs on"
    );

    // A change only a restart applies is accepted and logged as such.
    std::fs::write(
        &cfg,
        format!("{listen}\n{state}\ninterval: 2s\ndocker:\n  include: [\"lookout-it-rlb-*\"]\ncollectors:\n  host: false\n"),
    )
    .unwrap();
    let r = support::request(&lk.addr, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The answer names what needs a restart.
    assert!(
        r.text()
            .contains("taking effect at the next restart: collectors.host"),
        "{}",
        r.text()
    );
    assert!(
        lk.log().contains("take effect at the next restart"),
        "{}",
        lk.log()
    );
    assert!(lk.log().contains("collectors.host"));

    // SIGHUP reloads too.
    std::fs::write(
        &cfg,
        format!("{listen}\n{state}\ninterval: 3s\ndocker:\n  include: [\"lookout-it-rlb-*\"]\ncollectors:\n  host: false\n"),
    )
    .unwrap();
    // SAFETY: a signal to the lookout child this test started.
    unsafe { libc::kill(lk.child.id() as i32, libc::SIGHUP) };
    wait_until(Duration::from_secs(10), || {
        support::get(&lk.addr, "/")
            .text()
            .contains("Interval: 3s")
            .then_some(())
    })
    .expect("SIGHUP reloaded the config");
    assert!(lk.child.try_wait().unwrap().is_none(), "still running");
}

/// `POST /-/reload` is off without `--web.enable-lifecycle` (as in Prometheus); a cross-site
/// request is refused even with it.
#[test]
fn reload_over_http_needs_the_lifecycle_flag() {
    let off = Lookout::start(
        "collectors: {docker: false, cgroup: false, gpu: false}\n",
        &[],
    );
    let r = support::request(&off.addr, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("--web.enable-lifecycle"), "{}", r.text());
    let on = Lookout::start(
        "collectors: {docker: false, cgroup: false, gpu: false}\n",
        &["--web.enable-lifecycle"],
    );
    let r = support::request(
        &on.addr,
        "POST",
        "/-/reload",
        &[("Origin", "http://evil.example")],
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let r = support::request(&on.addr, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}
