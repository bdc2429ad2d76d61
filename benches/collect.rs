//! Collection benchmark (not a timed test): `cargo bench --bench collect`.
//!
//! On a synthetic cgroup v1 + proc tree with a fake Docker inventory it measures:
//! - one collection cycle's CPU time per container (cgroup read + snapshot + encoding both
//!   formats) for 100, 1,000 and 10,000 containers;
//! - the `/metrics` response time at 1,000 containers (plain and gzip);
//! - resident memory at 1,000 containers;
//! - one host + disk collection on this machine's real /proc and mounts (compare with a
//!   node_exporter scrape), and one GPU collection against the test stub `libnvidia-ml.so.1`.
//!
//! `LOOKOUT_BENCH_SIZES=100,1000` picks the sizes; `LOOKOUT_BENCH_CYCLES` the cycles per size.

#[path = "../tests/support/nvml_stub.rs"]
mod nvml_stub;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout::collect::cgroup::{Layout, Reader};
use lookout::config::{Config, Overrides};
use lookout::publish::{Board, Published};
use lookout::snapshot::{
    CgroupPart, ContainerInfo, Inventory, LabelAllowlist, Part, Snapshot, State,
};

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A cgroup v1 tree like Docker's cgroupfs driver makes, and /proc entries, for `n` containers.
fn synth(root: &Path, n: usize) -> Vec<ContainerInfo> {
    let sys = root.join("sys");
    let proc_ = root.join("proc");
    write(&sys.join("fs/cgroup/memory/tasks"), "");
    write(
        &sys.join("dev/block/8:0/uevent"),
        "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
    );
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{:064x}", 0xabc000 + i);
        let pid = 100_000 + i as u32;
        let d = |c: &str| sys.join(format!("fs/cgroup/{c}/docker/{id}"));
        write(
            &d("cpuacct").join("cpuacct.usage"),
            &format!("{}\n", 123_456_789_000u64 + i as u64),
        );
        write(
            &d("cpuacct").join("cpuacct.stat"),
            "user 9000\nsystem 3000\n",
        );
        write(
            &d("cpu").join("cpu.stat"),
            "nr_periods 1200\nnr_throttled 300\nthrottled_time 45000000000\n",
        );
        write(&d("cpu").join("cpu.cfs_quota_us"), "50000\n");
        write(&d("cpu").join("cpu.cfs_period_us"), "100000\n");
        write(&d("cpu").join("cpu.shares"), "1024\n");
        write(&d("memory").join("memory.usage_in_bytes"), "41943040\n");
        write(&d("memory").join("memory.limit_in_bytes"), "67108864\n");
        write(&d("memory").join("memory.stat"), MEMORY_STAT);
        write(&d("blkio").join("blkio.throttle.io_service_bytes"), "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n");
        write(&d("blkio").join("blkio.throttle.io_serviced"), "8:0 Read 1\n8:0 Write 2\n8:0 Sync 0\n8:0 Async 3\n8:0 Discard 0\n8:0 Total 3\nTotal 3\n");
        write(&d("pids").join("pids.current"), "3\n");
        let p = proc_.join(pid.to_string());
        write(
            &p.join("cgroup"),
            &format!("12:memory:/docker/{id}\n3:cpu,cpuacct:/docker/{id}\n"),
        );
        write(&p.join("net/dev"), NET_DEV);
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("com.docker.compose.project".into(), "bench".into());
        labels.insert("com.docker.compose.service".into(), format!("svc{i}"));
        out.push(ContainerInfo {
            id,
            name: format!("bench-{i}"),
            image: "bb:local".into(),
            labels,
            state: State::Running,
            pid,
            started_at: Some(1.7e9),
            network_mode: "bridge".into(),
            ..Default::default()
        });
    }
    out
}

const MEMORY_STAT: &str = "cache 8388608\nrss 33554432\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\nwriteback 0\nswap 0\npgpgin 10000\npgpgout 2000\npgfault 30000\npgmajfault 0\ninactive_anon 0\nactive_anon 33554432\ninactive_file 4194304\nactive_file 4194304\nunevictable 0\nhierarchical_memory_limit 67108864\nhierarchical_memsw_limit 9223372036854771712\ntotal_cache 8388608\ntotal_rss 33554432\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 0\ntotal_dirty 0\ntotal_writeback 0\ntotal_swap 0\ntotal_pgpgin 10000\ntotal_pgpgout 2000\ntotal_pgfault 30000\ntotal_pgmajfault 0\ntotal_inactive_anon 0\ntotal_active_anon 33554432\ntotal_inactive_file 4194304\ntotal_active_file 4194304\ntotal_unevictable 0\n";

const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  eth0:  123456     789    0    0    0     0          0         0    65432     321    0    0    0     0       0          0\n";

struct Cycle {
    read: f64,
    assemble: f64,
    encode: f64,
}

fn cycle(
    reader: &mut Reader,
    inv: &Arc<Vec<ContainerInfo>>,
    prev: Option<&Published>,
    labels: &Arc<LabelAllowlist>,
) -> (Cycle, Published) {
    let c0 = cpu_seconds();
    let (stats, fallback) = reader.read_all(inv);
    assert!(
        fallback.is_empty(),
        "every synthetic container has a cgroup"
    );
    let c1 = cpu_seconds();
    let parts = vec![
        Part::Docker(Inventory {
            containers: inv.clone(),
            generation: 1,
            cgroup_driver: None,
        }),
        Part::Cgroup(CgroupPart { stats }),
    ];
    let snap = Snapshot::assemble(
        lookout::now_unix(),
        parts,
        vec![],
        prev.map(|p| &*p.snapshot),
        labels.clone(),
    );
    let c2 = cpu_seconds();
    let hint = prev.map_or(0, |p| p.exposition.len());
    let published = Published::new(Arc::new(snap), Arc::default(), hint);
    let c3 = cpu_seconds();
    (
        Cycle {
            read: c1 - c0,
            assemble: c2 - c1,
            encode: c3 - c2,
        },
        published,
    )
}

fn http_get(addr: &str, gzip: bool) -> (Duration, usize) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    let enc = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n{enc}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    (t.elapsed(), buf.len())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // As the binary does (exporter/main.rs).
    // SAFETY: mallopt only tunes the allocator; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let sizes: Vec<usize> = std::env::var("LOOKOUT_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,100,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cycles: usize = std::env::var("LOOKOUT_BENCH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let labels = Arc::new(LabelAllowlist::new(&[
        "com.docker.compose.project".to_string(),
        "com.docker.compose.service".to_string(),
    ]));
    println!(
        "lookout collection benchmark ({} cycles per size; CPU = user+sys of this process)",
        cycles
    );
    println!("| containers | CPU µs/container/cycle (total) | cgroup+proc read | snapshot | encode (both formats) | exposition bytes (text) |");
    println!("|---|---|---|---|---|---|");
    for &n in &sizes {
        let base = if Path::new("/dev/shm").exists() {
            Path::new("/dev/shm")
        } else {
            Path::new("/tmp")
        };
        let dir = tempfile::tempdir_in(base).unwrap();
        let inv = Arc::new(synth(dir.path(), n));
        let sys = dir.path().join("sys");
        let mut reader = Reader::new(Layout::detect(&sys), &dir.path().join("proc"), &sys);
        // Warm-up: opens and keeps the handles, as lookout does from its second cycle on.
        let (_, mut last) = cycle(&mut reader, &inv, None, &labels);
        let (mut r, mut a, mut e) = (0.0, 0.0, 0.0);
        for _ in 0..cycles {
            let (c, p) = cycle(&mut reader, &inv, Some(&last), &labels);
            r += c.read;
            a += c.assemble;
            e += c.encode;
            last = p;
            lookout::collect::cycle::release_freed_memory();
        }
        let per = |x: f64| x / cycles as f64 / n as f64 * 1e6;
        println!(
            "| {n} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            per(r + a + e),
            per(r),
            per(a),
            per(e),
            last.exposition.len()
        );
        if n == 1000 {
            let rss = status_kb("VmRSS:");
            let hwm = status_kb("VmHWM:");
            serve_and_measure(last, rss, hwm);
        }
    }
    host_disk_and_gpu(cycles.max(200) as u32);
    host_vs_node_exporter(cycles.max(200) as u32);
}

/// Host + disk on the real machine, and GPU on the stub (2 GPUs, 2 processes).
fn host_disk_and_gpu(iterations: u32) {
    let config = Config::load(None, &|_| None, &Overrides::default()).unwrap();
    let hd = lookout::collect::host::bench_host_disk(&config, iterations);
    println!(
        "\nhost + disk collection (this machine's /proc and mounts, read + text encoding): {:.0} µs CPU, {:.0} µs wall per collection ({iterations} runs)",
        hd.cpu.as_secs_f64() * 1e6,
        hd.wall.as_secs_f64() * 1e6
    );
    let stub = nvml_stub::NvmlStub::build();
    let me = std::process::id();
    stub.configure(&format!(
        "compute 0 {me} 1073741824\ngraphics 1 {me} 16777216\n"
    ));
    let gpu = lookout::collect::gpu::GpuCollector::new(
        lookout::config::GpuMode::On,
        stub.lib().as_os_str().to_owned(),
        Path::new("/proc"),
        lookout::state_dir::StateDir::none(),
    );
    gpu.collect_blocking()
        .expect("GPU collection against the stub");
    let n = iterations;
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..n {
        std::hint::black_box(gpu.collect_blocking().expect("GPU collection"));
    }
    println!(
        "GPU collection (NVML stub, 2 GPUs, 2 processes): {:.0} µs CPU, {:.0} µs wall per collection ({n} runs)",
        (cpu_seconds() - c0) / n as f64 * 1e6,
        t0.elapsed().as_secs_f64() / n as f64 * 1e6
    );
}

fn serve_and_measure(published: Published, rss_kb: u64, hwm_kb: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let board = Board::new(Duration::from_secs(3600), Arc::default());
    board.publish_cycle(published);
    let state = lookout::http::HttpState {
        board,
        reload: None,
        telemetry_path: "/metrics".into(),
        notify: None,
        actions: None,
        admin: false,
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(async move { axum::serve(listener, lookout::http::router(state)).await });
    for gzip in [false, true] {
        for _ in 0..5 {
            http_get(&addr, gzip);
        }
        let mut lat: Vec<f64> = Vec::new();
        let mut bytes = 0;
        for _ in 0..200 {
            let (d, b) = http_get(&addr, gzip);
            lat.push(d.as_secs_f64() * 1e3);
            bytes = b;
        }
        println!(
            "\n/metrics at 1000 containers ({}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} bytes on the wire",
            if gzip { "gzip" } else { "plain" },
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            pct(&mut lat, 1.0),
            bytes
        );
    }
    println!(
        "resident memory at 1000 containers (this process, after the cycles): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rss_kb as f64 / 1024.0,
        hwm_kb as f64 / 1024.0
    );
    rt.shutdown_background();
}

/// node_exporter's flags for the collectors lookout's host collection covers: upstream's (1.8)
/// default filters, since Debian patches them (netdev leaves out `lo`, the mount filter drops
/// `/run`, `/mnt` and `/media`).
const NODE_EXPORTER_UPSTREAM_FILTERS: &[&str] = &[
    r"--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
    r"--collector.diskstats.device-exclude=^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$",
    "--collector.netdev.device-exclude=",
];

/// The host collectors lookout has beyond the node_exporter-style ones (its `host` and `disk`),
/// under node_exporter's names.
const HOST_AND_DISK_AS_NODE_EXPORTER: &[&str] = &[
    "cpu",
    "meminfo",
    "loadavg",
    "netdev",
    "diskstats",
    "pressure",
    "uname",
    "filesystem",
];

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn process_cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) / hz, ticks(12) / hz)
}

/// This process's (user, system) CPU seconds.
fn cpu_split() -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we pass.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// One host collection with every default host collector on (host, disk and each
/// node_exporter-style collector), against node_exporter scraped with the same collectors, in
/// the same run.
fn host_vs_node_exporter(iterations: u32) {
    use lookout::collect::disk::DiskCollector;
    use lookout::collect::host::HostCollector;
    use lookout::collect::node::NodeCollector;
    use lookout::exposition::{render_host_disk, render_node, Format};

    let config = Config::load(None, &|_| None, &Overrides::default()).unwrap();
    let host = HostCollector::new(&config.paths.procfs);
    let disk = DiskCollector::new(&config.paths, &config.collectors.disk);
    let names: Vec<&'static str> = config.collectors.node.enabled_names().collect();
    let nodes: Vec<NodeCollector> = names
        .iter()
        .filter_map(|n| NodeCollector::new(n, &config.paths))
        .collect();
    // One collection: what the host, disk and node_exporter-style collectors read.
    let collect = || {
        let mut node = Vec::new();
        for c in &nodes {
            if let Ok(f) = c.read() {
                node.extend(f);
            }
        }
        Snapshot {
            host: Some(Box::new(host.read().0)),
            filesystems: disk.read().unwrap_or_default(),
            node,
            ..Default::default()
        }
    };
    let encode =
        |snap: &Snapshot| render_host_disk(snap, Format::Text) + &render_node(snap, Format::Text);
    let once = || {
        let text = encode(&collect());
        text.lines().filter(|l| !l.starts_with('#')).count()
    };
    let samples = once();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..iterations {
        std::hint::black_box(once());
    }
    let alone = (cpu_seconds() - c0) / iterations as f64;
    println!(
        "\nhost collection, every default host collector ({} node_exporter-style: {}), read + text encoding: {:.0} µs CPU, {:.0} µs wall, {samples} samples ({iterations} runs)",
        names.len(),
        names.join(","),
        alone * 1e6,
        t0.elapsed().as_secs_f64() / iterations as f64 * 1e6,
    );

    // Where it goes: each node_exporter-style collector's read alone.
    let mut each: Vec<(f64, &str)> = nodes
        .iter()
        .zip(&names)
        .map(|(c, n)| {
            let c0 = cpu_seconds();
            for _ in 0..iterations {
                std::hint::black_box(c.read().ok());
            }
            ((cpu_seconds() - c0) / iterations as f64 * 1e6, *n)
        })
        .collect();
    let cost = |f: &dyn Fn() -> usize| {
        let c0 = cpu_seconds();
        for _ in 0..iterations {
            std::hint::black_box(f());
        }
        (cpu_seconds() - c0) / iterations as f64 * 1e6
    };
    each.push((cost(&|| host.read().0.cpus.len()), "(host)"));
    each.push((
        cost(&|| disk.read().map(|f| f.len()).unwrap_or(0)),
        "(disk)",
    ));
    let snap = collect();
    each.push((cost(&|| encode(&snap).len()), "(encoding)"));
    each.sort_by(|a, b| b.0.total_cmp(&a.0));
    let each: Vec<String> = each.iter().map(|(us, n)| format!("{n} {us:.0}")).collect();
    println!("  read alone, µs CPU: {}", each.join(", "));

    let bin = "/usr/bin/prometheus-node-exporter";
    if !Path::new(bin).exists() {
        println!("node_exporter comparison skipped: {bin} is not installed");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // The same collectors; node_exporter's own scrape metrics come with every scrape anyway.
    let mut child = std::process::Command::new(bin)
        .arg(format!("--web.listen-address={addr}"))
        .arg("--collector.disable-defaults")
        .args(
            HOST_AND_DISK_AS_NODE_EXPORTER
                .iter()
                .chain(names.iter())
                .map(|n| format!("--collector.{n}")),
        )
        .args(NODE_EXPORTER_UPSTREAM_FILTERS)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start node_exporter");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "node_exporter did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let scrape = || {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    };
    let body = scrape();
    let theirs_samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with("node_"))
        .count();
    // Interleaved, one of each in turn, so both see the same machine (other load, frequency).
    let n = iterations;
    // (user, system) seconds of each.
    let (mut ours, mut theirs, mut wall) = ((0.0, 0.0), (0.0, 0.0), 0.0);
    for _ in 0..n {
        let c0 = cpu_split();
        std::hint::black_box(once());
        let c1 = cpu_split();
        ours.0 += c1.0 - c0.0;
        ours.1 += c1.1 - c0.1;
        let (c0, t0) = (process_cpu_seconds(child.id()), Instant::now());
        std::hint::black_box(scrape());
        let c1 = process_cpu_seconds(child.id());
        theirs.0 += c1.0 - c0.0;
        theirs.1 += c1.1 - c0.1;
        wall += t0.elapsed().as_secs_f64();
    }
    let per = |(u, s): (f64, f64)| (u / n as f64 * 1e6, s / n as f64 * 1e6);
    let (ours, theirs, wall) = (per(ours), per(theirs), wall / n as f64);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "node_exporter {} with the same collectors and upstream's filters, one scrape (uncompressed): {:.0} µs CPU, {:.0} µs wall, {theirs_samples} node_* samples ({n} runs)",
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(if o.stdout.is_empty() { o.stderr } else { o.stdout }).ok())
            .and_then(|s| s.split_ascii_whitespace().nth(2).map(str::to_string))
            .unwrap_or_default(),
        theirs.0 + theirs.1,
        wall * 1e6,
    );
    println!(
        "lookout, interleaved with those scrapes: {:.0} µs CPU per host collection",
        ours.0 + ours.1
    );
    println!(
        "  user / system µs: lookout {:.0} / {:.0}, node_exporter {:.0} / {:.0} (system time is mostly the kernel making the files both read: sysfs and /proc)",
        ours.0, ours.1, theirs.0, theirs.1
    );
    println!(
        "lookout / node_exporter host collection CPU: {:.3} (target ≤ 0.25); user time alone: {:.3}",
        (ours.0 + ours.1) / (theirs.0 + theirs.1),
        ours.0 / theirs.0
    );
}
