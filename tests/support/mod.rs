//! Shared helpers for integration tests: the busybox test image, containers that clean up after
//! themselves, a lookout server on a free loopback port, and a tiny HTTP client.
#![allow(dead_code)]

pub mod alertmanager;
pub mod deploy;
pub mod discord;
pub mod exposition;
pub mod fake_runtime;
pub mod grafana;
pub mod http_sink;
pub mod prometheus;
pub mod smtp;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The image every Docker test uses: `FROM scratch` plus Debian's static busybox.
pub const IMAGE: &str = "lookout-test-bb:latest";

/// Whether Docker tests should run. With `LOOKOUT_REQUIRE_DOCKER=1` (set by `.ci/run`) a missing
/// daemon is a failure, never a skip.
pub fn docker_or_skip(test: &str) -> bool {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("LOOKOUT_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("{test}: Docker daemon not reachable and LOOKOUT_REQUIRE_DOCKER=1");
        }
        eprintln!(
            "SKIP {test}: no Docker daemon (set LOOKOUT_REQUIRE_DOCKER=1 to make this a failure)"
        );
    }
    ok
}

/// Whether a tool needed by a test exists. With `LOOKOUT_REQUIRE_TOOLS=1` (set by `.ci/run`) a
/// missing one is a failure.
pub fn tool_or_skip(test: &str, path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var("LOOKOUT_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{test}: {path} is missing and LOOKOUT_REQUIRE_TOOLS=1");
    }
    eprintln!("SKIP {test}: {path} not installed");
    false
}

pub fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Build the busybox image if it is not there (idempotent; safe from parallel test binaries).
pub fn ensure_image() {
    if docker(&["image", "inspect", IMAGE]).status.success() {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("static busybox (Debian package busybox-static) is needed to build the test image");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(busybox, dir.path().join("busybox")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nENV PATH=/bin\nCMD [\"sh\"]\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", IMAGE])
        .arg(dir.path())
        .output()
        .expect("docker build");
    assert!(
        out.status.success() || docker(&["image", "inspect", IMAGE]).status.success(),
        "building {IMAGE} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique container name with the test's prefix.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container this test started; removed (by id) when dropped.
pub struct Container {
    pub id: String,
    pub name: String,
}

impl Container {
    /// `docker run -d --name <prefix-unique> ARGS IMAGE CMD...`
    pub fn run(prefix: &str, args: &[&str], cmd: &[&str]) -> Container {
        Container::run_named(&unique_name(prefix), args, cmd)
    }

    /// `docker run -d --name NAME ARGS IMAGE CMD...` (NAME from [`unique_name`]).
    pub fn run_named(name: &str, args: &[&str], cmd: &[&str]) -> Container {
        ensure_image();
        let name = name.to_string();
        let mut a = vec!["run", "-d", "--name", name.as_str()];
        a.extend_from_slice(args);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        let out = docker(&a);
        assert!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container {
            id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            name,
        }
    }

    /// `docker <verb> <id>` (stop, kill, start, restart, rm -f ...).
    pub fn docker(&self, verb: &[&str]) -> std::process::Output {
        let mut a: Vec<&str> = verb.to_vec();
        a.push(&self.id);
        docker(&a)
    }

    /// The container's init pid on the host.
    pub fn pid(&self) -> u32 {
        let out = docker(&["inspect", "--format", "{{.State.Pid}}", &self.id]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Wait for the container to reach a state (`running`, `exited`, ...).
    pub fn wait_state(&self, state: &str, timeout: Duration) {
        wait_until(timeout, || {
            let out = docker(&["inspect", "--format", "{{.State.Status}}", &self.id]);
            (String::from_utf8_lossy(&out.stdout).trim() == state).then_some(())
        })
        .unwrap_or_else(|| panic!("{} did not reach state {state}", self.name));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.id]);
    }
}

/// Poll `f` every 50 ms until it returns Some or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A response from [`get`].
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 request (the tests need no client crate).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Resp> {
    request_with_body(addr, method, path, headers, b"")
}

/// [`request`] with a body.
pub fn request_with_body(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub fn get(addr: &str, path: &str) -> Resp {
    request(addr, "GET", path, &[]).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < nl + 2 + size {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[(nl + 4 + size).min(b.len())..];
    }
    out
}

/// The value of the first sample of `metric` whose line contains every one of `needles`.
pub fn sample(exposition: &str, metric: &str, needles: &[&str]) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The built `lookout` binary.
pub fn lookout_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lookout"))
}

/// `lookout once ARGS` (log level warn): its exposition; a failure shows lookout's stderr.
pub fn lookout_once<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = std::process::Command::new(lookout_bin())
        .arg("once")
        .args(args)
        .env("LOOKOUT_LOG", "warn")
        .output()
        .expect("run lookout once");
    assert!(
        out.status.success(),
        "lookout once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("lookout once writes UTF-8")
}

/// A `lookout run` process on a free loopback port, killed when dropped.
pub struct Lookout {
    pub addr: String,
    pub child: std::process::Child,
    pub dir: tempfile::TempDir,
}

impl Lookout {
    /// Start `lookout run -c <config>` where `config` is YAML without `listen` (added here).
    pub fn start(config: &str, extra_args: &[&str]) -> Lookout {
        Lookout::start_with_env(config, extra_args, &[])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lookout.log")).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        get(&self.addr, "/metrics").text()
    }
}

impl Drop for Lookout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config a test's lookout runs with: its listen address, and alert state in the test's own
/// temp dir (never the machine's /var/lib/lookout) unless the test sets `state_dir` itself.
fn config_text(addr: &str, config: &str, dir: &Path) -> String {
    let state = if config.contains("state_dir:") {
        String::new()
    } else {
        format!("state_dir: {}\n", dir.join("state").display())
    };
    format!("listen: {addr}\n{state}{config}")
}

/// The host fixture tree (procfs, sysfs, rootfs written from the kernel's documentation).
pub fn host_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host")
}

/// The default config with its roots at `root`: procfs `<root>/proc`, sysfs `<root>/sys`,
/// rootfs `<root>`.
pub fn config_at(root: &Path) -> lookout::config::Config {
    let flags = lookout::config::Overrides {
        procfs: Some(root.join("proc").display().to_string()),
        sysfs: Some(root.join("sys").display().to_string()),
        rootfs: Some(root.display().to_string()),
        ..Default::default()
    };
    lookout::config::Config::load(None, &|_| None, &flags).expect("default config")
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Lookout {
    /// [`Lookout::start`] with extra environment variables for the lookout process (added for
    /// the GPU tests, which point `LOOKOUT_NVML_LIB` at a stub library).
    pub fn start_with_env(config: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Lookout {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("lookout.yml");
        std::fs::write(&cfg, config_text(&addr, config, dir.path())).unwrap();
        let log = std::fs::File::create(dir.path().join("lookout.log")).unwrap();
        let child = Command::new(lookout_bin())
            .arg("run")
            .arg("-c")
            .arg(&cfg)
            .args(extra_args)
            .env("LOOKOUT_LOG", "info")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start lookout");
        let l = Lookout { addr, child, dir };
        wait_until(Duration::from_secs(20), || {
            request(&l.addr, "GET", "/ready", &[])
                .ok()
                .filter(|r| r.status == 200)
        })
        .unwrap_or_else(|| panic!("lookout did not become ready; log:\n{}", l.log()));
        l
    }
}

/// Lint an exposition with `promtool check metrics` (Debian's prometheus package). Returns the
/// complaints other than the names a compatibility contract dictates: node_exporter's camelCase
/// meminfo and netstat names and its entropy families in bits, DCGM's camelCase labels and
/// counters without `_total`, and cAdvisor's gauge `container_fs_inodes_total`. None when promtool is not installed (a failure under
/// `LOOKOUT_REQUIRE_TOOLS=1`).
pub fn promtool_problems(test: &str, text: &str) -> Option<Vec<String>> {
    if !tool_or_skip(test, "/usr/bin/promtool") {
        return None;
    }
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted = |l: &str| {
        // node_exporter's meminfo and netstat names keep the kernel's field names.
        let meminfo = (l.starts_with("node_memory_") || l.starts_with("node_netstat_"))
            && l.ends_with("metric names should be written in 'snake_case' not 'camelCase'");
        // DCGM's names and labels (`modelName`, `UUID`, `Hostname`, `..._REPLAY_COUNTER`), and
        // lookout_alerts, whose GPU alerts carry the DCGM labels of the series they are about.
        let dcgm = (l.starts_with("DCGM_FI_")
            && (l.ends_with("label names should be written in 'snake_case' not 'camelCase'")
                || l.ends_with("counter metrics should have \"_total\" suffix")
                || l.ends_with("metric name should not include type 'counter'")))
            || (l.starts_with("lookout_alerts ")
                && l.ends_with("label names should be written in 'snake_case' not 'camelCase'"));
        // node_exporter's entropy families count bits, by name.
        let entropy = l.starts_with("node_entropy_")
            && l.ends_with("use base unit \"bytes\" instead of \"bits\"");
        // cAdvisor's inode count of the container's filesystem: a gauge, named so.
        let cadvisor = l.starts_with("container_fs_inodes_total ")
            && l.ends_with("non-counter metrics should not have \"_total\" suffix");
        meminfo || dcgm || entropy || cadvisor
    };
    Some(
        report
            .lines()
            .filter(|l| !l.trim().is_empty() && !accepted(l))
            .map(str::to_string)
            .collect(),
    )
}

// ---- Slow-client helpers (tests/http_limits.rs) -------------------------------------------------

/// Raise this process's soft RLIMIT_NOFILE to the hard limit (a test that opens hundreds of
/// sockets needs more than the usual soft 1024); children started afterwards inherit it. The
/// new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

/// A number from `/proc/<pid>/status`: `VmRSS` (in KiB), `Threads`, ...
pub fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---- end of slow-client helpers ------------------------------------------------------------------
