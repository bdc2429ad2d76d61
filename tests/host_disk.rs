//! The host and disk collectors end to end: over a frozen /proc tree against a golden
//! exposition, against a hung statfs, and against a live node_exporter on this machine.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use lookout::collect::disk::{DiskCollector, FsStats, Statfs};
use lookout::collect::host::HostCollector;
use lookout::collect::Collector;
use lookout::exposition::{render_host_disk, Format};
use lookout::snapshot::{Filesystem, Part, Snapshot};

use support::exposition::{helps, label_names, parse};
use support::{config_at, host_fixture as fixture};

/// A statfs whose answers depend only on the mount point (the path under the fixture root).
fn fake_statfs(root: PathBuf) -> impl Fn(&Path) -> std::io::Result<FsStats> + Send + Sync {
    move |path: &Path| {
        let rel = path.strip_prefix(&root).expect("statfs under the rootfs");
        let gib = 1u64 << 30;
        match rel.to_str().unwrap() {
            "" | "var/lib/docker" => Ok(FsStats {
                size_bytes: 252 * gib,
                free_bytes: 200 * gib,
                avail_bytes: 190 * gib,
                files: 16_777_216,
                files_free: 16_000_000,
                readonly: false,
            }),
            "mnt/ro data" => Ok(FsStats {
                size_bytes: 4096,
                free_bytes: 4096,
                avail_bytes: 4096,
                files: 3_085_302,
                files_free: 3_085_300,
                readonly: true,
            }),
            "srv" => Ok(FsStats {
                size_bytes: 10 * gib,
                free_bytes: 9 * gib,
                avail_bytes: 9 * gib,
                files: 5_242_880,
                files_free: 5_242_869,
                readonly: false,
            }),
            "mnt/nfs" => Err(std::io::Error::from_raw_os_error(libc::EIO)),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("fake statfs: no {other}"),
            )),
        }
    }
}

/// Host and disk over the fixture tree, rendered as Prometheus text.
fn fixture_exposition() -> String {
    let root = fixture();
    let config = config_at(&root);
    let host = HostCollector::new(&config.paths.procfs);
    let (stats, errors) = host.read();
    assert!(errors.is_empty(), "fixture read errors: {errors:?}");
    let disk = DiskCollector::with_statfs(
        &config.paths,
        &config.collectors.disk,
        Arc::new(fake_statfs(root)),
    );
    let fs = disk.read().expect("fixture mounts");
    let snap = Snapshot::assemble(
        0.0,
        vec![Part::Host(Box::new(stats)), Part::Disk(fs)],
        vec![],
        None,
        Arc::new(lookout::snapshot::LabelAllowlist::default()),
    );
    render_host_disk(&snap, Format::Text)
}

#[test]
fn fixture_tree_matches_golden() {
    let got = fixture_exposition();
    let golden = fixture().join("golden.prom");
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &got).unwrap();
        eprintln!("rewrote {}", golden.display());
        return;
    }
    let want = std::fs::read_to_string(&golden)
        .expect("golden.prom missing: run with UPDATE_GOLDEN=1 to create it");
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "exposition differs from {} at line {}:\n  got:  {:?}\n  want: {:?}\n(UPDATE_GOLDEN=1 rewrites it after a deliberate change)",
            golden.display(),
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        );
    }
}

#[test]
fn fixture_exposition_spot_checks() {
    // Independent of the golden file: the values node_exporter would give for this tree.
    let text = fixture_exposition();
    let has = |line: &str| text.lines().any(|l| l == line);
    // cpu1 idle 79906 ticks at USER_HZ 100.
    assert!(has(r#"node_cpu_seconds_total{cpu="1",mode="idle"} 799.06"#));
    assert!(has("node_memory_MemTotal_bytes 25274793984"));
    // Active(anon): 1572 kB.
    assert!(has("node_memory_Active_anon_bytes 1609728"));
    assert!(has("node_memory_HugePages_Total 0"));
    assert!(has("node_boot_time_seconds 1795379207"));
    assert!(has(
        r#"node_network_receive_bytes_total{device="eth0"} 173392014"#
    ));
    // 9633322 sectors of 512 bytes; 211602 ms writing.
    assert!(has(
        r#"node_disk_read_bytes_total{device="vda"} 4932260864"#
    ));
    assert!(has(
        r#"node_disk_write_time_seconds_total{device="vda"} 211.602"#
    ));
    assert!(has(r#"node_disk_io_now{device="nvme0n1"} 3"#));
    assert!(
        !text.contains(r#"device="vda1""#),
        "partitions are excluded"
    );
    assert!(!text.contains(r#"device="nvme0n1p1""#));
    assert!(!text.contains(r#"device="loop0""#));
    assert!(!text.contains(r#"device="zram0""#));
    // full total=5650680 µs.
    assert!(has("node_pressure_io_stalled_seconds_total 5.65068"));
    // irq has only `full`; cpu's `full` is not one of node_exporter's series.
    assert!(has("node_pressure_irq_stalled_seconds_total 0.418322"));
    assert!(!text.contains("node_pressure_irq_waiting"));
    assert!(!text.contains("node_pressure_cpu_stalled"));
    // Guest columns: 610 and 35 ticks.
    assert!(has(
        r#"node_cpu_guest_seconds_total{cpu="1",mode="user"} 6.1"#
    ));
    assert!(has(
        r#"node_cpu_guest_seconds_total{cpu="1",mode="nice"} 0.35"#
    ));
    // Every /proc/net/dev column, by its header.
    assert!(has(r#"node_network_receive_frame_total{device="eth0"} 3"#));
    assert!(has(
        r#"node_network_receive_multicast_total{device="eth0"} 112"#
    ));
    assert!(has(
        r#"node_network_transmit_carrier_total{device="eth0"} 2"#
    ));
    assert!(has(r#"node_network_transmit_colls_total{device="lo"} 0"#));
    // Diskstats: 20 columns (vda, nvme0n1), 18 (sdb: no flushes), 14 (sda: neither).
    assert!(has(r#"node_disk_reads_merged_total{device="vda"} 7995"#));
    assert!(has(r#"node_disk_writes_merged_total{device="vda"} 51551"#));
    assert!(has(
        r#"node_disk_io_time_weighted_seconds_total{device="vda"} 306.355"#
    ));
    assert!(has(
        r#"node_disk_discarded_sectors_total{device="nvme0n1"} 3325952"#
    ));
    assert!(has(
        r#"node_disk_discard_time_seconds_total{device="sdb"} 0.095"#
    ));
    assert!(has(
        r#"node_disk_flush_requests_total{device="nvme0n1"} 1460"#
    ));
    assert!(has(
        r#"node_disk_flush_requests_time_seconds_total{device="vda"} 0.138"#
    ));
    assert!(has(
        r#"node_disk_io_time_weighted_seconds_total{device="sda"} 25.396"#
    ));
    assert!(!text.contains(r#"node_disk_discards_completed_total{device="sda"}"#));
    assert!(!text.contains(r#"node_disk_flush_requests_total{device="sda"}"#));
    assert!(!text.contains(r#"node_disk_flush_requests_total{device="sdb"}"#));
    assert!(has(
        r#"node_disk_info{device="sdb",major="8",minor="16",model="",path="",revision="",serial="",wwn=""} 1"#
    ));
    assert!(has(
        r##"node_uname_info{domainname="(none)",machine="x86_64",nodename="vm",release="6.18.44-fc-v445",sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC @0"} 1"##
    ));
    // Filesystems: unescaped, read-only from the options, deduplicated, errors as data.
    let fs_labels = r#"device="tmpfs",fstype="tmpfs",mountpoint="/mnt/ro data""#;
    assert!(has(&format!("node_filesystem_readonly{{{fs_labels}}} 1")));
    assert!(has(
        r#"node_filesystem_size_bytes{device="/dev/vdc",fstype="xfs",mountpoint="/srv"} 10737418240"#
    ));
    assert!(!text.contains("/dev/vdb"), "the later /srv mount wins");
    let nfs = r#"device="nfs.example:/export",fstype="nfs4",mountpoint="/mnt/nfs""#;
    assert!(has(&format!("node_filesystem_device_error{{{nfs}}} 1")));
    assert!(!has(&format!("node_filesystem_size_bytes{{{nfs}}} 0")));
    assert!(!text.contains("overlay"), "fs_types_exclude applies");
    assert!(
        !text.contains(r#"mountpoint="/dev"#),
        "mount_points_exclude applies"
    );
}

#[test]
fn fixture_exposition_passes_promtool() {
    // node_exporter's meminfo names (MemTotal, HugePages_Total) are camelCase by design, and
    // dashboards depend on them: that lint is the accepted exception.
    if let Some(problems) =
        support::promtool_problems("fixture_exposition_passes_promtool", &fixture_exposition())
    {
        assert!(problems.is_empty(), "promtool: {problems:#?}");
    }
}

/// A statfs whose first call on `/mnt/nfs` hangs (for up to 10 s, or until released); later
/// calls and other mounts answer at once. It counts the calls that reached `/mnt/nfs`.
struct HungNfs {
    root: PathBuf,
    release: Mutex<mpsc::Receiver<()>>,
    calls: AtomicUsize,
}

impl Statfs for HungNfs {
    fn statfs(&self, path: &Path) -> std::io::Result<FsStats> {
        if path.ends_with("mnt/nfs") {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = self
                    .release
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(10));
            }
            return Ok(FsStats {
                size_bytes: 1 << 40,
                ..Default::default()
            });
        }
        fake_statfs(self.root.clone())(path)
    }
}

fn by_mountpoint<'a>(fs: &'a [Filesystem], mountpoint: &str) -> &'a Filesystem {
    fs.iter()
        .find(|f| f.mountpoint == mountpoint)
        .unwrap_or_else(|| panic!("no {mountpoint} in {fs:?}"))
}

async fn collect_disk(disk: &Arc<DiskCollector>) -> (Vec<Filesystem>, Duration) {
    let start = Instant::now();
    match disk.clone().collect().await {
        Ok(Part::Disk(fs)) => (fs, start.elapsed()),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_statfs_never_blocks_collection() {
    let root = fixture();
    let mut config = config_at(&root);
    let timeout = Duration::from_millis(300);
    config.collectors.disk.statfs_timeout = timeout;
    let (release, rx) = mpsc::channel();
    let fake = Arc::new(HungNfs {
        root: root.clone(),
        release: Mutex::new(rx),
        calls: AtomicUsize::new(0),
    });
    let disk = Arc::new(DiskCollector::with_statfs(
        &config.paths,
        &config.collectors.disk,
        fake.clone(),
    ));

    // First cycle: the hung call costs the timeout, not 10 s, and only its own mount.
    let (fs, took) = collect_disk(&disk).await;
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "{took:?}"
    );
    let nfs = by_mountpoint(&fs, "/mnt/nfs");
    assert!(nfs.device_error);
    assert_eq!(nfs.size_bytes, 0);
    let root_fs = by_mountpoint(&fs, "/");
    assert!(!root_fs.device_error);
    assert_eq!(root_fs.size_bytes, 252 << 30);
    assert_eq!(by_mountpoint(&fs, "/srv").size_bytes, 10 << 30);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1);

    // Second cycle: the stuck call is still running, so the mount is skipped, not called again,
    // and nothing waits for it.
    let (fs, took) = collect_disk(&disk).await;
    assert!(took < timeout, "{took:?}");
    assert!(by_mountpoint(&fs, "/mnt/nfs").device_error);
    assert!(!by_mountpoint(&fs, "/").device_error);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "no second stuck call");

    // The call returns: the mount is asked again and reported.
    release.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (fs, _) = collect_disk(&disk).await;
        let nfs = by_mountpoint(&fs, "/mnt/nfs");
        if !nfs.device_error {
            assert_eq!(nfs.size_bytes, 1 << 40);
            break;
        }
        assert!(Instant::now() < deadline, "the mount never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
}

/// Kills and reaps the child when dropped, on panic too.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// node_exporter's collectors whose series lookout's host collector carries.
const HOST_COLLECTORS: [&str; 7] = [
    "cpu",
    "diskstats",
    "netdev",
    "pressure",
    "meminfo",
    "loadavg",
    "uname",
];

/// Whether a family is one of those collectors'.
fn host_family(name: &str) -> bool {
    [
        "node_cpu_",
        "node_disk_",
        "node_network_",
        "node_pressure_",
        "node_memory_",
        "node_load",
        "node_uname_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Families node_exporter has that lookout's host collector does not carry, and why.
const NOT_CARRIED: [&str; 3] = [
    // node_exporter reads interface counters over netlink by default, which adds rx_nohandler;
    // /proc/net/dev has no such column.
    "node_network_receive_nohandler_total",
    // From sysfs thermal_throttle (bare-metal Intel CPUs), which the host collector does not read.
    "node_cpu_core_throttles_total",
    "node_cpu_package_throttles_total",
];

/// Whether lookout's value, read between node_exporter's two scrapes, lies between their values
/// (counters only grow), with room for gauges that move and the conversions' float rounding.
fn between(name: &str, labels: &[(String, String)], ours: f64, first: f64, second: f64) -> bool {
    let slack = match name {
        // The kernel's figures move between the reads.
        n if n.starts_with("node_memory_") => (64u64 << 20) as f64,
        "node_load1" | "node_load5" | "node_load15" => 1.0,
        "node_disk_io_now" => 64.0,
        // A VM's idle and iowait can step back (NO_HZ accounting), and node_exporter 1.5
        // passes that through.
        "node_cpu_seconds_total"
            if labels
                .iter()
                .any(|(k, v)| k == "mode" && (v == "idle" || v == "iowait")) =>
        {
            1.0
        }
        _ => 0.0,
    };
    let (lo, hi) = (first.min(second), first.max(second));
    let rounding = 1e-9 * hi.abs().max(1.0);
    ours >= lo - slack - rounding && ours <= hi + slack + rounding
}

fn scrape(addr: &str) -> Option<String> {
    support::request(addr, "GET", "/metrics", &[])
        .ok()
        .map(|r| r.text())
        .filter(|body| body.contains("node_cpu_seconds_total"))
}

#[test]
fn agrees_with_live_node_exporter() {
    let bin = "/usr/bin/prometheus-node-exporter";
    if !support::tool_or_skip("agrees_with_live_node_exporter", bin) {
        return;
    }
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let collectors = HOST_COLLECTORS.map(|c| format!("--collector.{c}"));
    let _guard = KillOnDrop(
        Command::new(bin)
            .arg(format!("--web.listen-address={addr}"))
            .arg("--collector.disable-defaults")
            .args(&collectors)
            .arg("--collector.filesystem")
            // Upstream's device filters: Debian's package patches them (no zram in the disk
            // exclude, loopback left out of netdev).
            .arg(format!(
                "--collector.diskstats.device-exclude={}",
                lookout::collect::host::DISKSTATS_DEVICE_EXCLUDE
            ))
            .arg("--collector.netdev.device-exclude=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter"),
    );
    let first = support::wait_until(Duration::from_secs(10), || scrape(&addr))
        .unwrap_or_else(|| panic!("node_exporter did not answer on {addr}"));
    let ours = support::lookout_once(&["--collector.disable-defaults", "--collector.host"]);
    let second = scrape(&addr).expect("node_exporter's second scrape");

    let (our_help, their_help) = (helps(&ours), helps(&first));
    let ours = parse(&ours);
    let (first_f, second_f) = (parse(&first), parse(&second));
    let mut compared = Vec::new();
    let mut problems = Vec::new();
    for (name, (kind, samples)) in ours.iter().filter(|(n, _)| host_family(n)) {
        let (Some((their_kind, their_samples)), Some((_, later))) =
            (first_f.get(name), second_f.get(name))
        else {
            problems.push(format!("{name}: lookout has it, node_exporter does not"));
            continue;
        };
        compared.push(name.as_str());
        if kind != their_kind {
            problems.push(format!("{name}: type {kind}, node_exporter's {their_kind}"));
        }
        if our_help.get(name) != their_help.get(name) {
            problems.push(format!(
                "{name}: help {:?}, node_exporter's {:?}",
                our_help.get(name),
                their_help.get(name)
            ));
        }
        if label_names(samples) != label_names(their_samples) {
            problems.push(format!(
                "{name}: label names {:?}, node_exporter's {:?}",
                label_names(samples),
                label_names(their_samples)
            ));
        }
        for (labels, v) in samples {
            let find = |s: &[(Vec<(String, String)>, f64)]| {
                s.iter().find(|(l, _)| l == labels).map(|(_, v)| *v)
            };
            let (Some(a), Some(b)) = (find(their_samples), find(later)) else {
                // Interfaces come and go between the scrapes (containers' veths).
                if !name.starts_with("node_network_") {
                    problems.push(format!("{name}{labels:?}: not in node_exporter's"));
                }
                continue;
            };
            if !between(name, labels, *v, a, b) {
                problems.push(format!(
                    "{name}{labels:?}: {v}, node_exporter's {a} then {b}"
                ));
            }
        }
    }
    for name in first_f.keys().filter(|n| host_family(n)) {
        if !ours.contains_key(name) && !NOT_CARRIED.contains(&name.as_str()) {
            problems.push(format!("{name}: node_exporter has it, lookout does not"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The newer families were compared, where this machine has them: guest time and the
    // detailed network counters everywhere, the disk ones where a disk is not excluded, and
    // discards and flushes where the kernel writes them (Linux 5.5+: 20 columns).
    let exclude = regex::Regex::new(lookout::collect::host::DISKSTATS_DEVICE_EXCLUDE).unwrap();
    let diskstats = std::fs::read_to_string("/proc/diskstats").unwrap();
    let columns: Vec<usize> = diskstats
        .lines()
        .map(|l| l.split_ascii_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 2 && !exclude.is_match(f[2]))
        .map(|f| f.len())
        .collect();
    let mut expected = vec![
        "node_cpu_guest_seconds_total",
        "node_network_receive_multicast_total",
        "node_network_transmit_colls_total",
    ];
    if !columns.is_empty() {
        expected.extend([
            "node_disk_info",
            "node_disk_reads_merged_total",
            "node_disk_io_time_weighted_seconds_total",
        ]);
    }
    if columns.iter().any(|&n| n >= 20) {
        expected.extend([
            "node_disk_discards_completed_total",
            "node_disk_flush_requests_total",
        ]);
    }
    for name in expected {
        assert!(
            compared.contains(&name),
            "{name} not compared: {compared:?}"
        );
    }

    let config = config_at(Path::new("/"));
    let fs = DiskCollector::new(&config.paths, &config.collectors.disk)
        .read()
        .unwrap();
    let ours = by_mountpoint(&fs, "/");
    assert!(!ours.device_error);
    let their_size = support::sample(&first, "node_filesystem_size_bytes", &[r#"mountpoint="/""#])
        .expect("node_filesystem_size_bytes for /");
    assert_eq!(ours.size_bytes as f64, their_size);
}
