//! The cgroup reader against fixture trees: v1 captured from a real Docker host, v2 built from
//! the kernel's cgroup-v2 documentation (see tests/fixtures/cgroup/*/README.md).

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::snapshot::{NetDevDetail, State, StatsSource};

/// v1, `--cpus 0.5 --memory 64m`, pid 4242.
const V1_LIMITED: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// v1, no limits, pid 4343.
const V1_UNLIMITED: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// v2, systemd driver, limited, pid 2001.
const V2_SYSTEMD: &str = "9704eaf23f94f9261f5928f3e25a45ce8ae6a661b521d7a18bcad1594b7a68ea";
/// v2, cgroupfs driver, unlimited, pid 2002.
const V2_CGROUPFS: &str = "0f115a276faf1b43bc87c1436bd9c6253ed04681e7a04f3f0be7f3ae1b56110a";
/// v2, systemd driver, empty io.stat and no memory.swap.current, pid 2003.
const V2_NOIO: &str = "54e1002b4ae91655cd158a1de4df605bdd4b23643120d1d203a65bc60eaf6c85";
/// A pid with no entry in either fixture's proc/.
const NO_PID: u32 = 999_999;

fn fixture(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cgroup")
        .join(version)
}

fn reader_at(root: &Path) -> Reader {
    let sysfs = root.join("sys");
    Reader::new(Layout::detect(&sysfs), &root.join("proc"), &sysfs)
}

fn running(id: &str, pid: u32) -> ContainerInfo {
    ContainerInfo {
        id: id.to_string(),
        name: format!("c-{}", &id[..8]),
        state: State::Running,
        pid,
        network_mode: "bridge".into(),
        ..Default::default()
    }
}

/// Copy a fixture tree so a test may change it.
fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
}

fn scratch(version: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(version), dir.path());
    dir
}

fn v1_file(root: &Path, controller: &str, id: &str, file: &str) -> PathBuf {
    root.join("sys/fs/cgroup")
        .join(controller)
        .join("docker")
        .join(id)
        .join(file)
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-9, "{what}: got {got}, want {want}");
}

fn eth0(s: &ContainerStats) -> &NetInterface {
    match &s.network {
        Network::Own(ifs) => {
            assert_eq!(ifs.len(), 1, "only eth0 (lo is excluded): {ifs:?}");
            &ifs[0]
        }
        other => panic!("expected the container's own interfaces, got {other:?}"),
    }
}

#[test]
fn layout_detects_v1_v2_and_none() {
    let v1 = fixture("v1").join("sys");
    let v2 = fixture("v2").join("sys");
    assert_eq!(
        Layout::detect(&v1),
        Layout::V1 {
            root: v1.join("fs/cgroup")
        }
    );
    assert_eq!(
        Layout::detect(&v2),
        Layout::V2 {
            root: v2.join("fs/cgroup")
        }
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(Layout::detect(empty.path()), Layout::None);
    assert_eq!(Layout::detect(&v1).version(), Some(1));
    assert_eq!(Layout::detect(&v2).version(), Some(2));
    assert_eq!(Layout::None.version(), None);
}

#[test]
fn clk_tck_is_user_hz() {
    let r = reader_at(&fixture("v1"));
    assert!(r.clk_tck > 0.0);
    // USER_HZ is 100 on every mainstream Linux architecture.
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    assert_eq!(r.clk_tck, 100.0);
}

#[test]
fn v1_fixture_every_figure() {
    let mut r = reader_at(&fixture("v1"));
    let clk = r.clk_tck;
    let (stats, fallback) = r.read_all(&[running(V1_LIMITED, 4242), running(V1_UNLIMITED, 4343)]);
    assert!(fallback.is_empty(), "{fallback:?}");
    assert_eq!(stats.len(), 2);

    let s = &stats[V1_LIMITED];
    assert_eq!(s.cgroup_path, format!("/docker/{V1_LIMITED}"));
    assert!(s.read_at > 0.0);
    assert_eq!(s.source, StatsSource::Cgroup);
    let cpu = s.cpu.expect("cpu");
    // cpuacct.usage is in ns; cpuacct.stat in USER_HZ ticks.
    assert_close(cpu.usage_seconds, 0.592_072_937, "usage");
    assert_close(cpu.user_seconds, 54.0 / clk, "user");
    assert_close(cpu.system_seconds, 4.0 / clk, "system");
    assert_eq!(cpu.periods, Some(18));
    assert_eq!(cpu.throttled_periods, Some(10));
    assert_close(cpu.throttled_seconds.unwrap(), 0.498_258_739, "throttled");
    let mem = s.memory.expect("memory");
    assert_eq!(mem.usage, 9_052_160);
    // usage - total_inactive_file = 9052160 - 8388608.
    assert_eq!(mem.working_set, 663_552);
    assert_eq!(mem.rss, 49_152);
    assert_eq!(mem.cache, 8_491_008);
    assert_eq!(mem.swap, Some(0));
    assert_eq!(
        s.spec,
        CgroupSpec {
            memory_limit: Some(67_108_864),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpu_shares: Some(1024),
        }
    );
    assert_eq!(
        s.blkio,
        vec![BlkDevice {
            device: "/dev/sda".into(),
            major: 8,
            minor: 0,
            read_bytes: 1_982_464,
            write_bytes: 65_536,
            reads: 484,
            writes: 16,
        }]
    );
    assert_eq!(s.pids, Some(1));
    let e = eth0(s);
    assert_eq!(e.name, "eth0");
    assert_eq!((e.rx_bytes, e.rx_packets), (726, 9));
    assert_eq!(
        (e.tx_bytes, e.tx_packets, e.rx_errors, e.tx_dropped),
        (0, 0, 0, 0)
    );

    let s = &stats[V1_UNLIMITED];
    assert_eq!(s.cgroup_path, format!("/docker/{V1_UNLIMITED}"));
    let cpu = s.cpu.expect("cpu");
    assert_close(cpu.usage_seconds, 0.187_763_389, "usage");
    assert_close(cpu.user_seconds, 17.0 / clk, "user");
    assert_close(cpu.system_seconds, 1.0 / clk, "system");
    assert_eq!(cpu.periods, Some(0));
    assert_eq!(cpu.throttled_periods, Some(0));
    assert_eq!(cpu.throttled_seconds, Some(0.0));
    let mem = s.memory.expect("memory");
    assert_eq!(mem.usage, 331_776);
    assert_eq!(mem.working_set, 331_776 - 4096);
    assert_eq!(mem.rss, 53_248);
    assert_eq!(mem.cache, 4096);
    assert_eq!(mem.swap, Some(0));
    // quota -1 and limit 9223372036854771712 are v1's "unlimited".
    assert_eq!(
        s.spec,
        CgroupSpec {
            memory_limit: None,
            cpu_quota: None,
            cpu_period: Some(100_000),
            cpu_shares: Some(1024),
        }
    );
    // Its blkio files hold only `Total 0`: no device is invented.
    assert!(s.blkio.is_empty(), "{:?}", s.blkio);
    assert_eq!(s.pids, Some(1));
    assert_eq!(eth0(s).rx_bytes, 586);
    assert_eq!(eth0(s).rx_packets, 7);
}

#[test]
fn v2_fixture_every_figure() {
    let mut r = reader_at(&fixture("v2"));
    let (stats, fallback) = r.read_all(&[
        running(V2_SYSTEMD, 2001),
        running(V2_CGROUPFS, 2002),
        running(V2_NOIO, 2003),
    ]);
    assert!(fallback.is_empty(), "{fallback:?}");
    assert_eq!(stats.len(), 3);

    let s = &stats[V2_SYSTEMD];
    assert_eq!(
        s.cgroup_path,
        format!("/system.slice/docker-{V2_SYSTEMD}.scope")
    );
    let cpu = s.cpu.expect("cpu");
    assert_close(cpu.usage_seconds, 8.234_567, "usage");
    assert_close(cpu.user_seconds, 6.123_456, "user");
    assert_close(cpu.system_seconds, 2.111_111, "system");
    assert_eq!(cpu.periods, Some(1200));
    assert_eq!(cpu.throttled_periods, Some(37));
    assert_close(cpu.throttled_seconds.unwrap(), 1.85, "throttled");
    let mem = s.memory.expect("memory");
    assert_eq!(mem.usage, 160_432_128);
    // memory.current - inactive_file = 160432128 - 41943040.
    assert_eq!(mem.working_set, 118_489_088);
    assert_eq!(mem.rss, 104_857_600, "rss is v2's anon");
    assert_eq!(mem.cache, 52_428_800, "cache is v2's file");
    assert_eq!(mem.swap, Some(1_048_576));
    assert_eq!(
        s.spec,
        CgroupSpec {
            memory_limit: Some(268_435_456),
            cpu_quota: Some(150_000),
            cpu_period: Some(100_000),
            // cpu.weight 100, converted as cAdvisor does: 2 + 99 * 262142 / 9999.
            cpu_shares: Some(2597),
        }
    );
    assert_eq!(
        s.blkio,
        vec![
            BlkDevice {
                device: "/dev/sdb".into(),
                major: 8,
                minor: 16,
                read_bytes: 1_459_200,
                write_bytes: 314_773_504,
                reads: 192,
                writes: 353,
            },
            BlkDevice {
                device: "/dev/sda".into(),
                major: 8,
                minor: 0,
                read_bytes: 90_430_464,
                write_bytes: 299_008_000,
                reads: 8950,
                writes: 1252,
            },
        ]
    );
    assert_eq!(s.pids, Some(7));
    assert_eq!(
        *eth0(s),
        NetInterface {
            name: "eth0".into(),
            rx_bytes: 123_456_789,
            rx_packets: 98_765,
            rx_errors: 1,
            rx_dropped: 2,
            tx_bytes: 23_456_789,
            tx_packets: 54_321,
            tx_errors: 3,
            tx_dropped: 4,
            detail: Some(NetDevDetail::default()),
        }
    );

    let s = &stats[V2_CGROUPFS];
    assert_eq!(s.cgroup_path, format!("/docker/{V2_CGROUPFS}"));
    let cpu = s.cpu.expect("cpu");
    assert_close(cpu.usage_seconds, 0.5234, "usage");
    assert_close(cpu.user_seconds, 0.4012, "user");
    assert_close(cpu.system_seconds, 0.1222, "system");
    assert_eq!((cpu.periods, cpu.throttled_periods), (Some(0), Some(0)));
    let mem = s.memory.expect("memory");
    assert_eq!(mem.usage, 3_670_016);
    assert_eq!(mem.working_set, 3_670_016 - 786_432);
    assert_eq!(
        (mem.rss, mem.cache, mem.swap),
        (2_097_152, 1_048_576, Some(0))
    );
    assert_eq!(
        s.spec,
        CgroupSpec {
            // memory.max "max" and cpu.max "max 100000": no limits.
            memory_limit: None,
            cpu_quota: None,
            cpu_period: Some(100_000),
            // cpu.weight 39: 2 + 38 * 262142 / 9999.
            cpu_shares: Some(998),
        }
    );
    assert_eq!(s.blkio.len(), 1);
    assert_eq!(
        (
            s.blkio[0].device.as_str(),
            s.blkio[0].read_bytes,
            s.blkio[0].reads
        ),
        ("/dev/sda", 4096, 1)
    );
    assert_eq!((s.blkio[0].write_bytes, s.blkio[0].writes), (0, 0));
    assert_eq!(s.pids, Some(1));
    assert_eq!(
        (eth0(s).rx_bytes, eth0(s).tx_bytes, eth0(s).tx_packets),
        (1500, 700, 9)
    );

    let s = &stats[V2_NOIO];
    assert_eq!(
        s.cgroup_path,
        format!("/system.slice/docker-{V2_NOIO}.scope")
    );
    assert_close(s.cpu.unwrap().usage_seconds, 0.001, "usage");
    let mem = s.memory.unwrap();
    assert_eq!(mem.working_set, 1_048_576 - 131_072);
    assert_eq!(
        mem.swap, None,
        "no memory.swap.current: swap accounting is off"
    );
    assert_eq!(s.spec.memory_limit, Some(536_870_912));
    assert_eq!(s.spec.cpu_quota, None);
    assert_eq!(s.spec.cpu_shares, Some(2597));
    assert!(s.blkio.is_empty(), "empty io.stat: {:?}", s.blkio);
    assert_eq!(s.pids, Some(2));
}

#[test]
fn cgroupfs_path_is_guessed_without_a_proc_entry() {
    for driver in [None, Some("cgroupfs")] {
        let mut r = reader_at(&fixture("v1"));
        r.driver = driver.map(String::from);
        let (stats, fallback) = r.read_all(&[running(V1_LIMITED, NO_PID)]);
        assert!(fallback.is_empty());
        let s = &stats[V1_LIMITED];
        assert_eq!(s.cgroup_path, format!("/docker/{V1_LIMITED}"), "{driver:?}");
        assert_eq!(s.memory.unwrap().usage, 9_052_160);
        // No proc entry: no interfaces to read.
        assert_eq!(s.network, Network::Unknown);

        let mut r = reader_at(&fixture("v2"));
        r.driver = driver.map(String::from);
        let (stats, _) = r.read_all(&[running(V2_CGROUPFS, NO_PID)]);
        assert_eq!(
            stats[V2_CGROUPFS].cgroup_path,
            format!("/docker/{V2_CGROUPFS}")
        );
        assert_eq!(stats[V2_CGROUPFS].memory.unwrap().usage, 3_670_016);
    }
}

#[test]
fn systemd_path_is_guessed_without_a_proc_entry() {
    // With the driver known, and without (the cgroupfs guess fails, then the systemd one).
    for driver in [Some("systemd"), None] {
        let mut r = reader_at(&fixture("v2"));
        r.driver = driver.map(String::from);
        let (stats, fallback) = r.read_all(&[running(V2_SYSTEMD, NO_PID)]);
        assert!(fallback.is_empty(), "{driver:?}");
        let s = &stats[V2_SYSTEMD];
        assert_eq!(
            s.cgroup_path,
            format!("/system.slice/docker-{V2_SYSTEMD}.scope")
        );
        assert_eq!(s.memory.unwrap().usage, 160_432_128);
    }
}

#[test]
fn shared_network_namespaces_are_not_read() {
    let mut r = reader_at(&fixture("v2"));
    let host = ContainerInfo {
        network_mode: "host".into(),
        ..running(V2_SYSTEMD, 2001)
    };
    let joined = ContainerInfo {
        network_mode: format!("container:{V2_NOIO}"),
        ..running(V2_CGROUPFS, 2002)
    };
    let (stats, _) = r.read_all(&[host, joined]);
    assert_eq!(stats[V2_SYSTEMD].network, Network::Shared);
    assert_eq!(stats[V2_CGROUPFS].network, Network::Shared);
    // Everything else is still read.
    assert_eq!(stats[V2_SYSTEMD].pids, Some(7));
}

#[test]
fn containers_without_a_cgroup_here_fall_back() {
    let missing = "f".repeat(64);
    let mut r = reader_at(&fixture("v1"));
    let stopped = ContainerInfo {
        state: State::Exited,
        pid: 0,
        ..running(V1_UNLIMITED, 4343)
    };
    let (stats, fallback) = r.read_all(&[
        running(&missing, NO_PID),
        running(V1_LIMITED, 4242),
        stopped,
    ]);
    assert_eq!(fallback, vec![missing.clone()]);
    assert_eq!(stats.keys().collect::<Vec<_>>(), vec![V1_LIMITED]);
    assert!(!r.handles.contains_key(&missing));

    // No cgroup filesystem at all: every running container falls back.
    let empty = tempfile::tempdir().unwrap();
    let mut r = reader_at(empty.path());
    assert_eq!(r.layout(), &Layout::None);
    let (stats, fallback) = r.read_all(&[running(V1_LIMITED, 4242)]);
    assert!(stats.is_empty());
    assert_eq!(fallback, vec![V1_LIMITED.to_string()]);
}

#[test]
fn v2_cgroup_without_the_memory_controller_falls_back() {
    // As on a host booted with `cgroup_disable=memory`: the cgroup exists, its memory.* files
    // don't. Docker's stats API must be asked rather than the container silently dropped.
    let dir = scratch("v2");
    let cg = dir.path().join("sys/fs/cgroup/docker").join(V2_CGROUPFS);
    for f in [
        "memory.current",
        "memory.max",
        "memory.stat",
        "memory.swap.current",
        "memory.events",
    ] {
        fs::remove_file(cg.join(f)).unwrap();
    }
    let mut r = reader_at(dir.path());
    let (stats, fallback) = r.read_all(&[running(V2_CGROUPFS, 2002), running(V2_SYSTEMD, 2001)]);
    assert_eq!(fallback, vec![V2_CGROUPFS.to_string()]);
    assert!(!stats.contains_key(V2_CGROUPFS));
    assert!(stats.contains_key(V2_SYSTEMD));
    assert!(!r.handles.contains_key(V2_CGROUPFS));
    assert_eq!(
        r.fds_open, r.handles[V2_SYSTEMD].fds,
        "nothing leaked by the failed open"
    );
}

#[test]
fn garbled_files_cost_only_their_own_reading_v1() {
    let dir = scratch("v1");
    fs::write(
        v1_file(dir.path(), "memory", V1_LIMITED, "memory.stat"),
        "\u{1}\u{2}not a memory.stat\n",
    )
    .unwrap();
    fs::write(
        v1_file(dir.path(), "cpuacct", V1_UNLIMITED, "cpuacct.usage"),
        "lots\n",
    )
    .unwrap();
    let mut r = reader_at(dir.path());
    let (stats, fallback) = r.read_all(&[running(V1_LIMITED, 4242), running(V1_UNLIMITED, 4343)]);
    assert!(fallback.is_empty());

    let s = &stats[V1_LIMITED];
    assert_eq!(s.memory, None);
    assert_close(s.cpu.unwrap().usage_seconds, 0.592_072_937, "usage");
    assert_eq!(s.spec.memory_limit, Some(67_108_864));
    assert_eq!(s.blkio.len(), 1);
    assert_eq!(s.pids, Some(1));
    assert_eq!(eth0(s).rx_bytes, 726);

    let s = &stats[V1_UNLIMITED];
    assert_eq!(s.cpu, None);
    assert_eq!(s.memory.unwrap().usage, 331_776);
    assert_eq!(s.pids, Some(1));
}

#[test]
fn garbled_files_cost_only_their_own_reading_v2() {
    let dir = scratch("v2");
    let cg = dir.path().join(format!(
        "sys/fs/cgroup/system.slice/docker-{V2_SYSTEMD}.scope"
    ));
    fs::write(cg.join("cpu.stat"), "usage_usec lots\n").unwrap();
    fs::write(cg.join("memory.current"), "").unwrap();
    fs::write(cg.join("memory.max"), "a lot\n").unwrap();
    let mut r = reader_at(dir.path());
    let (stats, _) = r.read_all(&[running(V2_SYSTEMD, 2001)]);
    let s = &stats[V2_SYSTEMD];
    assert_eq!(s.cpu, None);
    assert_eq!(s.memory, None);
    assert_eq!(s.spec.memory_limit, None);
    assert_eq!(s.spec.cpu_quota, Some(150_000));
    assert_eq!(s.blkio.len(), 2);
    assert_eq!(s.pids, Some(7));
    assert_eq!(eth0(s).rx_bytes, 123_456_789);
}

#[test]
fn v1_working_set_uses_hierarchical_totals() {
    let dir = scratch("v1");
    let stat = v1_file(dir.path(), "memory", V1_LIMITED, "memory.stat");
    // A parent cgroup: its own counters differ from the totals over its children.
    fs::write(
        &stat,
        "cache 0\nrss 0\ninactive_file 0\nswap 0\ntotal_cache 8491008\ntotal_rss 49152\n\
         total_swap 8192\ntotal_inactive_file 8000000\n",
    )
    .unwrap();
    let mut r = reader_at(dir.path());
    let (stats, _) = r.read_all(&[running(V1_LIMITED, 4242)]);
    let mem = stats[V1_LIMITED].memory.unwrap();
    assert_eq!(mem.working_set, 9_052_160 - 8_000_000);
    assert_eq!(
        (mem.rss, mem.cache, mem.swap),
        (49_152, 8_491_008, Some(8192))
    );

    // Swap accounting off: no swap lines at all.
    fs::write(&stat, "cache 5\nrss 6\ninactive_file 7\n").unwrap();
    let mut r = reader_at(dir.path());
    let (stats, _) = r.read_all(&[running(V1_LIMITED, 4242)]);
    let mem = stats[V1_LIMITED].memory.unwrap();
    assert_eq!(
        (mem.working_set, mem.rss, mem.cache, mem.swap),
        (9_052_160 - 7, 6, 5, None)
    );
}

#[test]
fn rereads_show_new_values_through_kept_open_handles() {
    let dir = scratch("v1");
    let mut r = reader_at(dir.path());
    let c = [running(V1_LIMITED, 4242)];
    let (first, _) = r.read_all(&c);
    assert_eq!(first[V1_LIMITED].memory.unwrap().usage, 9_052_160);
    let h = &r.handles[V1_LIMITED];
    assert!(h.fds >= 9, "handles are kept open: {} fds", h.fds);
    assert_eq!(r.fds_open, h.fds);

    // Rewritten in place (same inode, as the kernel's files change), longer and then shorter.
    fs::write(
        v1_file(dir.path(), "memory", V1_LIMITED, "memory.usage_in_bytes"),
        "123456789012\n",
    )
    .unwrap();
    fs::write(
        v1_file(dir.path(), "pids", V1_LIMITED, "pids.current"),
        "3\n",
    )
    .unwrap();
    fs::write(
        v1_file(dir.path(), "cpuacct", V1_LIMITED, "cpuacct.usage"),
        "7\n",
    )
    .unwrap();
    // memory.stat grows past the reader's 16 KiB buffer: the value sits at the very end.
    let stat = v1_file(dir.path(), "memory", V1_LIMITED, "memory.stat");
    let mut big = String::new();
    for i in 0..2000 {
        big.push_str(&format!("padding_key_{i} {i}\n"));
    }
    big.push_str("total_rss 11\ntotal_cache 22\ntotal_inactive_file 1000\n");
    assert!(big.len() > 40_000);
    fs::write(&stat, &big).unwrap();

    let (second, _) = r.read_all(&c);
    let s = &second[V1_LIMITED];
    let mem = s.memory.unwrap();
    assert_eq!(mem.usage, 123_456_789_012);
    assert_eq!(
        (mem.working_set, mem.rss, mem.cache),
        (123_456_788_012, 11, 22)
    );
    assert_eq!(s.pids, Some(3));
    assert_close(s.cpu.unwrap().usage_seconds, 7e-9, "usage");
    // The same handles were used, not reopened.
    assert_eq!(r.fds_open, r.handles[V1_LIMITED].fds);

    // And back to a short file: no stale tail from the longer content.
    fs::write(&stat, "total_inactive_file 52\n").unwrap();
    let (third, _) = r.read_all(&c);
    assert_eq!(
        third[V1_LIMITED].memory.unwrap().working_set,
        123_456_789_012 - 52
    );
}

#[test]
fn limits_are_reread_when_docker_reports_a_change() {
    let dir = scratch("v1");
    let mut r = reader_at(dir.path());
    let mut c = running(V1_LIMITED, 4242);
    let (s, _) = r.read_all(std::slice::from_ref(&c));
    assert_eq!(s[V1_LIMITED].spec.memory_limit, Some(67_108_864));
    fs::write(
        v1_file(dir.path(), "memory", V1_LIMITED, "memory.limit_in_bytes"),
        "134217728\n",
    )
    .unwrap();
    // Limits are cached between cycles...
    let (s, _) = r.read_all(std::slice::from_ref(&c));
    assert_eq!(s[V1_LIMITED].spec.memory_limit, Some(67_108_864));
    // ...and re-read as soon as Docker's view of them changes (`docker update`).
    c.limits.memory_bytes = Some(134_217_728);
    let (s, _) = r.read_all(std::slice::from_ref(&c));
    assert_eq!(s[V1_LIMITED].spec.memory_limit, Some(134_217_728));
}

#[test]
fn vanished_container_is_skipped_and_its_handles_dropped() {
    let dir = scratch("v1");
    let mut r = reader_at(dir.path());
    // Open files by path each cycle (as when the fd budget is spent): a removed cgroup then
    // fails to open, as a removed cgroupfs file fails to read (ENODEV) through a kept handle;
    // see `vanished_cgroup_on_the_real_cgroupfs` for that.
    r.fd_budget = 0;
    let c = [running(V1_LIMITED, 4242), running(V1_UNLIMITED, 4343)];
    let (stats, _) = r.read_all(&c);
    assert_eq!(stats.len(), 2);
    assert_eq!(r.handles.len(), 2);
    assert_eq!(r.fds_open, 0, "nothing kept open without budget");

    fs::remove_dir_all(
        dir.path()
            .join("sys/fs/cgroup/memory/docker")
            .join(V1_LIMITED),
    )
    .unwrap();
    let (stats, fallback) = r.read_all(&c);
    assert!(!stats.contains_key(V1_LIMITED));
    assert!(fallback.is_empty(), "{fallback:?}");
    assert!(!r.handles.contains_key(V1_LIMITED));
    assert!(
        stats.contains_key(V1_UNLIMITED),
        "the other container is unaffected"
    );

    // Still listed by Docker next cycle: its cgroup is gone, so the stats API is asked.
    let (stats, fallback) = r.read_all(&c);
    assert_eq!(fallback, vec![V1_LIMITED.to_string()]);
    assert_eq!(stats.len(), 1);
}

#[test]
fn handles_of_containers_gone_from_the_inventory_are_closed() {
    let mut r = reader_at(&fixture("v2"));
    r.read_all(&[running(V2_SYSTEMD, 2001), running(V2_CGROUPFS, 2002)]);
    assert_eq!(r.handles.len(), 2);
    let both = r.fds_open;
    assert!(both > 0);
    let (stats, _) = r.read_all(&[running(V2_CGROUPFS, 2002)]);
    assert_eq!(stats.len(), 1);
    assert_eq!(r.handles.len(), 1);
    assert_eq!(r.fds_open, r.handles[V2_CGROUPFS].fds);
    assert!(r.fds_open < both);
    r.read_all(&[]);
    assert!(r.handles.is_empty());
    assert_eq!(r.fds_open, 0);
}

/// A cgroup made on this host's real cgroupfs, removed on drop.
struct RealCgroup(Vec<PathBuf>);

impl Drop for RealCgroup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir(d);
        }
    }
}

/// The kept-open path against the kernel itself: read a real (empty) cgroup, remove it, read
/// again. Needs permission to create cgroups (root on a host with cgroupfs mounted); elsewhere
/// it says so and returns.
#[test]
fn vanished_cgroup_on_the_real_cgroupfs() {
    let sys = Path::new("/sys");
    let layout = Layout::detect(sys);
    let name = format!(
        "lookout-test-{}-{}",
        std::process::id(),
        crate::now_unix().to_bits()
    );
    let (dirs, proc_cgroup) = match &layout {
        Layout::V1 { root } => (
            ["cpu", "cpuacct", "memory", "blkio", "pids"]
                .iter()
                .filter(|c| root.join(c).is_dir())
                .map(|c| root.join(c).join(&name))
                .collect::<Vec<_>>(),
            format!("4:memory:/{name}\n2:cpuacct:/{name}\n"),
        ),
        Layout::V2 { root } => (vec![root.join(&name)], format!("0::/{name}\n")),
        Layout::None => {
            eprintln!("skipped: no cgroup filesystem at /sys/fs/cgroup");
            return;
        }
    };
    let mut made = RealCgroup(Vec::new());
    for d in &dirs {
        if let Err(e) = fs::create_dir(d) {
            eprintln!("skipped: cannot create {}: {e}", d.display());
            return;
        }
        made.0.push(d.clone());
    }
    let procfs = tempfile::tempdir().unwrap();
    fs::create_dir_all(procfs.path().join("77")).unwrap();
    fs::write(procfs.path().join("77/cgroup"), proc_cgroup).unwrap();
    let mut r = Reader::new(layout, procfs.path(), sys);
    let c = [running(&"e".repeat(64), 77)];
    let (stats, fallback) = r.read_all(&c);
    if stats.is_empty() {
        // e.g. v2 without the memory controller delegated to the root's children.
        eprintln!("skipped: the new cgroup is not readable here ({fallback:?})");
        return;
    }
    let s = &stats[&c[0].id];
    assert_eq!(s.cgroup_path, format!("/{name}"));
    assert_eq!(s.pids, Some(0));
    assert!(r.fds_open > 0, "handles are kept open");

    drop(made);
    assert!(!dirs[0].exists());
    let (stats, fallback) = r.read_all(&c);
    assert!(stats.is_empty(), "{stats:?}");
    assert!(fallback.is_empty(), "{fallback:?}");
    assert!(r.handles.is_empty());
    assert_eq!(r.fds_open, 0);
}

#[test]
fn parse_kv() {
    let t = "file 10\nfile_mapped 20\ninactive_file 30\nanon  40\nbad x\n";
    assert_eq!(kv(t, "file"), Some(10));
    assert_eq!(kv(t, "file_mapped"), Some(20));
    assert_eq!(kv(t, "inactive_file"), Some(30));
    assert_eq!(kv(t, "anon"), Some(40));
    assert_eq!(
        kv(t, "mapped"),
        None,
        "keys match whole, from the line start"
    );
    assert_eq!(kv(t, "bad"), None);
    assert_eq!(kv(t, "missing"), None);
    assert_eq!(kv("", "file"), None);
    assert_eq!(parse_u64(" 42\n"), Ok(42));
    assert_eq!(parse_u64("max\n"), Err("max\n"));
    assert!(parse_u64("-1").is_err());
}

#[test]
fn parse_blkio_v1_lines() {
    let bytes = "8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Async 0\n8:0 Discard 0\n\
                 8:0 Total 300\n253:1 Read 5\n253:1 Write 6\n253:1 Total 11\nTotal 311\n";
    let ops = "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n259:0 Write 9\nTotal 12\n";
    let mut devs = Vec::new();
    parse_blkio_v1(bytes, &mut devs, true);
    parse_blkio_v1(ops, &mut devs, false);
    let got: Vec<_> = devs
        .iter()
        .map(|d| {
            (
                d.major,
                d.minor,
                d.read_bytes,
                d.write_bytes,
                d.reads,
                d.writes,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (8, 0, 100, 200, 1, 2),
            (253, 1, 5, 6, 0, 0),
            (259, 0, 0, 0, 0, 9)
        ]
    );
    let mut none = Vec::new();
    parse_blkio_v1("Total 0\n", &mut none, true);
    parse_blkio_v1("", &mut none, false);
    parse_blkio_v1("x:y Read 1\n8:0 Read many\n8:0\n", &mut none, true);
    assert!(none.is_empty());
}

#[test]
fn parse_io_stat_v2_lines() {
    let t = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
             8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n";
    let d = parse_io_stat_v2(t);
    assert_eq!(d.len(), 2);
    assert_eq!(
        (
            d[0].major,
            d[0].minor,
            d[0].read_bytes,
            d[0].write_bytes,
            d[0].reads,
            d[0].writes
        ),
        (8, 16, 1_459_200, 314_773_504, 192, 353)
    );
    assert_eq!(
        (
            d[1].major,
            d[1].minor,
            d[1].read_bytes,
            d[1].write_bytes,
            d[1].reads,
            d[1].writes
        ),
        (8, 0, 90_430_464, 299_008_000, 8950, 1252)
    );
    assert!(
        d.iter().all(|d| d.device.is_empty()),
        "named later, from sysfs"
    );
    // Newer kernels append keys (e.g. cost.*); they are ignored.
    let d =
        parse_io_stat_v2("259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.usage=7\n");
    assert_eq!(
        (d[0].read_bytes, d[0].write_bytes, d[0].reads, d[0].writes),
        (1, 2, 3, 4)
    );
    assert!(parse_io_stat_v2("").is_empty());
    assert!(parse_io_stat_v2("\nrbytes=1\nx:1 rbytes=1\n").is_empty());
}

#[test]
fn parse_cpu_max_forms() {
    assert_eq!(parse_cpu_max("max 100000\n"), (None, Some(100_000)));
    assert_eq!(
        parse_cpu_max("50000 100000\n"),
        (Some(50_000), Some(100_000))
    );
    assert_eq!(
        parse_cpu_max("150000 250000"),
        (Some(150_000), Some(250_000))
    );
    assert_eq!(parse_cpu_max(""), (None, None));
}

#[test]
fn weight_to_shares_matches_cadvisor() {
    // 2 + (w - 1) * 262142 / 9999, the inverse of runc's (pre-1.3.2) linear conversion.
    assert_eq!(weight_to_shares(1), 2);
    assert_eq!(weight_to_shares(10_000), 262_144);
    assert_eq!(weight_to_shares(100), 2597);
    assert_eq!(weight_to_shares(39), 998);
    // Round trip through runc's linear shares -> weight stays within one weight step.
    for shares in [2u64, 512, 1024, 4096, 262_144] {
        let weight = 1 + (shares - 2) * 9999 / 262_142;
        let back = weight_to_shares(weight);
        assert!(
            back <= shares && shares - back < 27,
            "{shares} -> {weight} -> {back}"
        );
    }
    // Out of the kernel's range: no overflow, and still more than the largest real value.
    assert!(weight_to_shares(u64::MAX) > 262_144);
    assert_eq!(weight_to_shares(0), 2);
}

#[test]
fn parse_net_dev_columns() {
    let t = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     840      12    0    0    0     0          0         0      840      12    0    0    0     0       0          0\n  \
             eth0:123456789   98765    1    2    5     6          7         8 23456789   54321    3    4    9    10      11         12\n\
             veth1:       1       2    3    4    0     0          0         0        5       6    7    8    0     0       0          0\n";
    let ifs = parse_net_dev(t).unwrap();
    assert_eq!(
        ifs,
        vec![
            NetInterface {
                name: "eth0".into(),
                rx_bytes: 123_456_789,
                rx_packets: 98_765,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 23_456_789,
                tx_packets: 54_321,
                tx_errors: 3,
                tx_dropped: 4,
                detail: Some(NetDevDetail {
                    rx_fifo: 5,
                    rx_frame: 6,
                    rx_compressed: 7,
                    rx_multicast: 8,
                    tx_fifo: 9,
                    tx_colls: 10,
                    tx_carrier: 11,
                    tx_compressed: 12,
                }),
            },
            NetInterface {
                name: "veth1".into(),
                rx_bytes: 1,
                rx_packets: 2,
                rx_errors: 3,
                rx_dropped: 4,
                tx_bytes: 5,
                tx_packets: 6,
                tx_errors: 7,
                tx_dropped: 8,
                detail: Some(NetDevDetail::default()),
            },
        ]
    );
    assert!(parse_net_dev("").unwrap().is_empty());
    // A line the kernel never writes is an error (the reading is then unknown), not zeros.
    assert!(parse_net_dev("a\nb\n  short: 1 2 3\n").is_err());
}

#[test]
fn path_from_proc_cgroup_forms() {
    let v1 = fs::read_to_string(fixture("v1").join("proc/4242/cgroup")).unwrap();
    assert_eq!(
        path_from_proc_cgroup(&v1, false).as_deref(),
        Some(format!("/docker/{V1_LIMITED}").as_str())
    );
    // Hybrid hosts also list the unified hierarchy as `0::`.
    assert_eq!(
        path_from_proc_cgroup(&v1, true).as_deref(),
        Some(format!("/docker/{V1_LIMITED}").as_str())
    );
    // Combined controllers, memory not first; cpuacct when memory is absent.
    assert_eq!(
        path_from_proc_cgroup("5:cpu,cpuacct:/a\n3:blkio,memory:/b\n", false).as_deref(),
        Some("/b")
    );
    assert_eq!(
        path_from_proc_cgroup("5:cpu,cpuacct:/a\n1:name=systemd:/c\n", false).as_deref(),
        Some("/a")
    );
    // `memory` must be a whole controller name.
    assert_eq!(path_from_proc_cgroup("4:memoryx:/m\n", false), None);
    let v2 = fs::read_to_string(fixture("v2").join("proc/2001/cgroup")).unwrap();
    assert_eq!(
        path_from_proc_cgroup(&v2, true).as_deref(),
        Some(format!("/system.slice/docker-{V2_SYSTEMD}.scope").as_str())
    );
    assert_eq!(path_from_proc_cgroup(&v2, false), None);
    assert_eq!(path_from_proc_cgroup("", true), None);
    assert_eq!(path_from_proc_cgroup("garbage\n", false), None);
}
