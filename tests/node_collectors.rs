//! node_exporter's default Linux collectors that lookout carries under their own names
//! (`stat`, `filefd`, ...): each over the frozen /proc and /sys tree of `tests/fixtures/host`
//! against its golden exposition, through promtool, and against a live node_exporter on this
//! machine (same families, types, label names; values within tolerance).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lookout::collect::node::{NodeCollector, NodeError};
use lookout::config::NODE_COLLECTOR_NAMES;
use lookout::exposition::{render_node, Format};
use lookout::snapshot::{Family, Snapshot};

use support::exposition::{label_names, parse};
use support::{config_at, host_fixture as fixture};

fn read(name: &'static str, root: &Path) -> Result<Vec<Family>, NodeError> {
    let config = config_at(root);
    NodeCollector::new(name, &config.paths)
        .unwrap_or_else(|| panic!("no collector {name}"))
        .read()
}

fn render(families: Vec<Family>, format: Format) -> String {
    let snap = Snapshot {
        node: families,
        ..Default::default()
    };
    render_node(&snap, format)
}

/// One collector over the fixture tree, as Prometheus text.
fn fixture_exposition(name: &'static str) -> String {
    let families = read(name, &fixture()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    render(families, Format::Text)
}

/// The exposition with what depends on the clock, the machine's time zone and page size (not
/// on the fixture tree) replaced by placeholders: the time, the zone, the kernel clock's state,
/// sockstat's bytes.
fn mask(text: &str) -> String {
    let volatile = [
        "node_time_seconds ",
        "node_time_zone_offset_seconds{",
        "node_timex_",
    ];
    text.lines()
        .map(|l| {
            // sockstat's `_mem_bytes` depend on the machine's page size.
            let page_sized = l.starts_with("node_sockstat_") && l.contains("_mem_bytes ");
            if !page_sized && !volatile.iter().any(|v| l.starts_with(v)) {
                return format!("{l}\n");
            }
            // The series name, and the label names without their values.
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            let name = match series.split_once('{') {
                Some((name, labels)) => {
                    let keys: Vec<&str> = labels
                        .split(',')
                        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
                        .collect();
                    format!("{name}{{{}}}", keys.join(","))
                }
                None => series.to_string(),
            };
            format!("{name} <volatile>\n")
        })
        .collect()
}

#[test]
fn every_collector_matches_its_golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut differ = Vec::new();
    for &name in NODE_COLLECTOR_NAMES {
        let got = mask(&fixture_exposition(name));
        let golden = fixture().join("node").join(format!("{name}.prom"));
        if update {
            std::fs::write(&golden, &got).unwrap();
            eprintln!("rewrote {}", golden.display());
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{} missing: run with UPDATE_GOLDEN=1 to create it",
                golden.display()
            )
        });
        if got != want {
            differ.push(format!(
                "{name}: exposition differs from {}:\n--- got\n{got}--- want\n{want}",
                golden.display()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{}\n(UPDATE_GOLDEN=1 rewrites them after a deliberate change)",
        differ.join("\n")
    );
}

#[test]
fn fixture_values_are_the_files_values() {
    // Independent of the golden files: what node_exporter gives for this tree.
    let all: String = NODE_COLLECTOR_NAMES
        .iter()
        .map(|n| fixture_exposition(n))
        .collect();
    let has = |line: &str| all.lines().any(|l| l == line);
    for line in [
        // stat
        "node_context_switches_total 1345832",
        "node_intr_total 850153",
        "node_forks_total 28361",
        "node_procs_running 3",
        "node_procs_blocked 0",
        // filefd: 1536 0 2466183
        "node_filefd_allocated 1536",
        "node_filefd_maximum 2466183",
        // vmstat: only the default fields, untyped.
        "node_vmstat_pgfault 301526648",
        "node_vmstat_oom_kill 9",
        "# TYPE node_vmstat_pswpin untyped",
        // sockstat: mem in pages, also in bytes.
        "node_sockstat_sockets_used 229",
        "node_sockstat_TCP_tw 4",
        "node_sockstat_TCP_mem 3",
        "node_sockstat_UDP_inuse 2",
        "node_sockstat_TCP6_inuse 3",
        "node_sockstat_FRAG6_memory 0",
        // netstat: from netstat, snmp and snmp6, untyped.
        "node_netstat_TcpExt_ListenDrops 17",
        "node_netstat_Tcp_InSegs 467486",
        "node_netstat_Ip6_OutOctets 367864",
        "node_netstat_IpExt_InOctets 5193295320",
        "# TYPE node_netstat_Tcp_CurrEstab untyped",
        "# HELP node_netstat_Icmp6_OutMsgs Statistic Icmp6OutMsgs.",
        // time: the fixture's clocksources.
        r#"node_time_clocksource_available_info{clocksource="hpet",device="0"} 1"#,
        r#"node_time_clocksource_current_info{clocksource="tsc",device="0"} 1"#,
        // entropy, conntrack
        "node_entropy_available_bits 3541",
        "node_entropy_pool_size_bits 4096",
        "node_nf_conntrack_entries 85",
        "node_nf_conntrack_entries_limit 262144",
        // softnet: hex columns; the CPU column numbers the lines (CPU 1 is offline).
        r#"node_softnet_processed_total{cpu="0"} 4305607"#,
        r#"node_softnet_dropped_total{cpu="0"} 3"#,
        r#"node_softnet_times_squeezed_total{cpu="0"} 29"#,
        r#"node_softnet_cpu_collision_total{cpu="0"} 2"#,
        r#"node_softnet_processed_total{cpu="2"} 239089"#,
        r#"node_softnet_received_rps_total{cpu="2"} 17"#,
        r#"node_softnet_flow_limit_count_total{cpu="2"} 1"#,
        r#"node_softnet_backlog_len{cpu="2"} 2"#,
        "# TYPE node_softnet_backlog_len gauge",
        // schedstat: nanoseconds to seconds.
        r#"node_schedstat_running_seconds_total{cpu="0"} 1892.417530113"#,
        r#"node_schedstat_waiting_seconds_total{cpu="1"} 97.64321551"#,
        r#"node_schedstat_timeslices_total{cpu="1"} 45187"#,
        // arp: entries per device, the incomplete one too.
        r#"node_arp_entries{device="eth0"} 2"#,
        r#"node_arp_entries{device="docker0"} 2"#,
        r#"node_arp_entries{device="br-5f0c2a8e31d4"} 1"#,
        // cpufreq: kHz to hertz; policy1 has no cpuinfo_cur_freq.
        r#"node_cpu_frequency_hertz{cpu="0"} 2800000000"#,
        r#"node_cpu_frequency_min_hertz{cpu="1"} 800000000"#,
        r#"node_cpu_frequency_max_hertz{cpu="1"} 3600000000"#,
        r#"node_cpu_scaling_frequency_hertz{cpu="1"} 2000000000"#,
        r#"node_cpu_scaling_frequency_min_hertz{cpu="0"} 800000000"#,
        r#"node_cpu_scaling_frequency_max_hertz{cpu="1"} 2000000000"#,
        r#"node_cpu_scaling_governor{cpu="0",governor="schedutil"} 1"#,
        r#"node_cpu_scaling_governor{cpu="1",governor="schedutil"} 0"#,
        // thermal_zone: millidegrees to degrees; the disabled zone skipped.
        r#"node_thermal_zone_temp{type="acpitz",zone="0"} 27.8"#,
        r#"node_thermal_zone_temp{type="x86_pkg_temp",zone="1"} 45"#,
        r#"node_cooling_device_cur_state{name="1",type="Processor"} 1"#,
        r#"node_cooling_device_cur_state{name="2",type="intel_powerclamp"} -1"#,
        r#"node_cooling_device_max_state{name="2",type="intel_powerclamp"} 50"#,
        // hwmon: chips named after their devices; millidegrees, millivolts.
        r#"node_hwmon_chip_names{chip="platform_coretemp_0",chip_name="coretemp"} 1"#,
        r#"node_hwmon_chip_names{chip="thermal_thermal_zone0",chip_name="acpitz"} 1"#,
        r#"node_hwmon_temp_celsius{chip="platform_coretemp_0",sensor="temp1"} 45"#,
        r#"node_hwmon_temp_crit_celsius{chip="platform_coretemp_0",sensor="temp2"} 100"#,
        r#"node_hwmon_temp_max_celsius{chip="platform_nct6775_656",sensor="temp1"} 80"#,
        r#"node_hwmon_temp_celsius{chip="thermal_thermal_zone0",sensor="temp0"} 27.8"#,
        r#"node_hwmon_sensor_label{chip="platform_coretemp_0",label="Package id 0",sensor="temp1"} 1"#,
        r#"node_hwmon_fan_rpm{chip="platform_nct6775_656",sensor="fan1"} 1171"#,
        r#"node_hwmon_in_volts{chip="platform_nct6775_656",sensor="in0"} 1.04"#,
        r#"node_hwmon_intrusion_alarm{chip="platform_nct6775_656",sensor="intrusion0"} 1"#,
        // netclass: speed in Mb/s × 125000, hexadecimal flags, -1 speed and down carrier absent.
        r#"node_network_info{address="52:54:00:12:34:56",broadcast="ff:ff:ff:ff:ff:ff",device="eth0",duplex="full",ifalias="uplink",operstate="up"} 1"#,
        r#"node_network_info{address="00:00:00:00:00:00",broadcast="00:00:00:00:00:00",device="lo",duplex="",ifalias="",operstate="unknown"} 1"#,
        r#"node_network_up{device="eth0"} 1"#,
        r#"node_network_up{device="lo"} 0"#,
        r#"node_network_speed_bytes{device="eth0"} 1250000000"#,
        r#"node_network_flags{device="eth0"} 4099"#,
        r#"node_network_flags{device="lo"} 9"#,
        r#"node_network_mtu_bytes{device="lo"} 65536"#,
        r#"node_network_protocol_type{device="lo"} 772"#,
        r#"node_network_carrier_changes_total{device="docker0"} 4"#,
        r#"node_network_carrier_up_changes_total{device="eth0"} 2"#,
        r#"node_network_iface_id{device="docker0"} 3"#,
        "# TYPE node_network_carrier_down_changes_total counter",
        // edac: errors on no known row are csrow "unknown"'s.
        r#"node_edac_correctable_errors_total{controller="0"} 3"#,
        r#"node_edac_uncorrectable_errors_total{controller="1"} 1"#,
        r#"node_edac_csrow_correctable_errors_total{controller="0",csrow="0"} 2"#,
        r#"node_edac_csrow_correctable_errors_total{controller="0",csrow="unknown"} 1"#,
        r#"node_edac_csrow_uncorrectable_errors_total{controller="1",csrow="0"} 1"#,
        "# TYPE node_edac_correctable_errors_total counter",
        // mdadm: a degraded raid1 with a failed disk, a recovering raid5, a raid0.
        r#"node_md_disks{device="md0",state="failed"} 1"#,
        r#"node_md_disks{device="md0",state="active"} 1"#,
        r#"node_md_disks_required{device="md0"} 2"#,
        r#"node_md_disks{device="md1",state="active"} 3"#,
        r#"node_md_disks_required{device="md1"} 4"#,
        r#"node_md_state{device="md1",state="recovering"} 1"#,
        r#"node_md_state{device="md1",state="active"} 0"#,
        r#"node_md_blocks{device="md1"} 5860147200"#,
        r#"node_md_blocks_synced{device="md1"} 529659136"#,
        r#"node_md_blocks_synced{device="md2"} 3906764800"#,
        r#"node_md_disks{device="md2",state="active"} 2"#,
        r#"node_md_state{device="md2",state="active"} 1"#,
        // bonding: eth0 up, eth1 down.
        r#"node_bonding_slaves{master="bond0"} 2"#,
        r#"node_bonding_active{master="bond0"} 1"#,
        r#"node_network_up{device="bond0"} 1"#,
    ] {
        assert!(has(line), "missing {line:?} in:\n{all}");
    }
    for absent in [
        r#"node_network_speed_bytes{device="docker0"}"#,
        r#"node_network_speed_bytes{device="lo"}"#,
        r#"node_network_carrier{device="docker0"}"#,
    ] {
        assert!(!all.contains(absent), "{absent} in:\n{all}");
    }
    assert!(
        !all.contains(r#"node_cpu_frequency_hertz{cpu="1"}"#),
        "no cpuinfo_cur_freq, no series"
    );
    assert!(!all.contains("iwlwifi_1"), "a disabled zone is skipped");
    assert!(
        !all.contains("node_vmstat_nr_free_pages"),
        "outside vmstat's fields"
    );
    assert!(
        !all.contains("node_netstat_Tcp_MaxConn"),
        "outside netstat's fields"
    );
    // The time is now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let t = support::sample(&all, "node_time_seconds", &[]).unwrap();
    assert!((t - now).abs() < 60.0, "{t} vs {now}");
    // The page size is this machine's.
    let page = support::sample(&all, "node_sockstat_TCP_mem_bytes", &[]).unwrap();
    assert!(page == 3.0 * 4096.0 || page == 3.0 * 16384.0 || page == 3.0 * 65536.0);
}

#[test]
fn fixture_exposition_passes_promtool() {
    for format_name in NODE_COLLECTOR_NAMES {
        let text = fixture_exposition(format_name);
        if let Some(problems) =
            support::promtool_problems("fixture_exposition_passes_promtool", &text)
        {
            assert!(
                problems.is_empty(),
                "{format_name}: promtool: {problems:#?}"
            );
        } else {
            return;
        }
    }
}

/// The collectors whose files every Linux has: a missing one is a failure.
const REQUIRED: [&str; 7] = [
    "stat", "filefd", "vmstat", "netstat", "entropy", "softnet", "arp",
];

#[test]
fn a_missing_required_file_is_a_failure_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc")).unwrap();
    for name in REQUIRED {
        match read(name, dir.path()) {
            Err(NodeError::Failed(message)) => {
                assert!(message.contains("cannot read"), "{name}: {message}");
                assert!(
                    message.contains(&dir.path().display().to_string()),
                    "{message}"
                );
            }
            other => panic!("{name}: expected a failure, got {other:?}"),
        }
    }
}

/// The collectors whose files a kernel may lack: without them, no series and no failure.
const OPTIONAL: [&str; 9] = [
    "sockstat",
    "conntrack",
    "schedstat",
    "cpufreq",
    "thermal_zone",
    "netclass",
    "edac",
    "mdadm",
    "bonding",
];

#[test]
fn a_missing_optional_source_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/net")).unwrap();
    for name in OPTIONAL {
        match read(name, dir.path()) {
            Err(NodeError::Unavailable(_)) => {}
            other => panic!("{name}: expected unavailable, got {other:?}"),
        }
    }
    // hwmon too, with or without an empty class/hwmon.
    assert!(matches!(
        read("hwmon", dir.path()),
        Err(NodeError::Unavailable(_))
    ));
    std::fs::create_dir_all(dir.path().join("sys/class/hwmon")).unwrap();
    assert!(matches!(
        read("hwmon", dir.path()),
        Err(NodeError::Unavailable(_))
    ));
    // Only IPv4 (IPv6 disabled): IPv4's series, no failure.
    std::fs::write(dir.path().join("proc/net/sockstat"), "TCP: inuse 1\n").unwrap();
    let f = read("sockstat", dir.path()).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].name, "node_sockstat_TCP_inuse");
}

#[test]
fn malformed_files_fail_cleanly_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("proc");
    std::fs::create_dir_all(p.join("sys/fs")).unwrap();
    std::fs::write(p.join("stat"), "cpu0 x\nctxt\n\u{0}\n").unwrap();
    std::fs::write(p.join("sys/fs/file-nr"), "many\n").unwrap();
    std::fs::write(p.join("vmstat"), "pgfault\n").unwrap();
    std::fs::create_dir_all(p.join("net")).unwrap();
    std::fs::write(p.join("net/sockstat"), "TCP: inuse\n").unwrap();
    let freq = dir.path().join("sys/devices/system/cpu/cpu0/cpufreq");
    std::fs::create_dir_all(&freq).unwrap();
    std::fs::write(freq.join("scaling_cur_freq"), "2.4GHz\n").unwrap();
    let zone = dir.path().join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    for (f, v) in [("type", "acpitz"), ("policy", "step_wise"), ("temp", "hot")] {
        std::fs::write(zone.join(f), v).unwrap();
    }
    std::fs::write(p.join("schedstat"), "version 15\ncpu0 1 2 3\n").unwrap();
    std::fs::write(p.join("net/arp"), "192.0.2.1 0x1 0x2 eth0\n").unwrap();
    std::fs::write(p.join("net/softnet_stat"), "0000000g 0 0 0 0 0 0 0 0\n").unwrap();
    std::fs::write(p.join("net/netstat"), "TcpExt: A B\nTcpExt: 1\n").unwrap();
    std::fs::create_dir_all(p.join("sys/kernel/random")).unwrap();
    std::fs::write(p.join("sys/kernel/random/entropy_avail"), "lots\n").unwrap();
    std::fs::write(p.join("sys/kernel/random/poolsize"), "256\n").unwrap();
    std::fs::create_dir_all(p.join("sys/net/netfilter")).unwrap();
    std::fs::write(p.join("sys/net/netfilter/nf_conntrack_count"), "-1\n").unwrap();
    std::fs::write(p.join("sys/net/netfilter/nf_conntrack_max"), "1\n").unwrap();
    let mc = dir.path().join("sys/devices/system/edac/mc/mc0");
    std::fs::create_dir_all(&mc).unwrap();
    std::fs::write(mc.join("ce_count"), "-3\n").unwrap();
    std::fs::write(p.join("mdstat"), "md0 : active\n").unwrap();
    // netclass is lenient and bonding parses nothing, below.
    for name in REQUIRED
        .iter()
        .chain(&OPTIONAL)
        .filter(|n| !["netclass", "bonding"].contains(n))
    {
        match read(name, dir.path()) {
            Err(NodeError::Failed(message)) => {
                assert!(message.contains("cannot parse"), "{name}: {message}")
            }
            other => panic!("{name}: expected a failure, got {other:?}"),
        }
    }
    // hwmon skips a value that is not a number, as node_exporter does.
    let chip = dir.path().join("sys/class/hwmon/hwmon0");
    std::fs::create_dir_all(&chip).unwrap();
    std::fs::write(chip.join("name"), "k10temp\n").unwrap();
    std::fs::write(chip.join("temp1_input"), "n/a\n").unwrap();
    std::fs::write(chip.join("temp2_input"), "\u{0}\n").unwrap();
    std::fs::write(chip.join("fan1_input"), "900\n").unwrap();
    let f = read("hwmon", dir.path()).unwrap();
    let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["node_hwmon_chip_names", "node_hwmon_fan_rpm"]);
    assert_eq!(f[1].samples[0].0[0], ("chip".into(), "k10temp".into()));
    // bonding: a bond without its slaves file is a failure naming it.
    std::fs::create_dir_all(dir.path().join("sys/class/net")).unwrap();
    std::fs::write(dir.path().join("sys/class/net/bonding_masters"), "bond0\n").unwrap();
    match read("bonding", dir.path()) {
        Err(NodeError::Failed(m)) => assert!(m.contains("bond0/bonding/slaves"), "{m}"),
        other => panic!("bonding: expected a failure, got {other:?}"),
    }
    // netclass leaves out an attribute that is not a number, as node_exporter does.
    let iface = dir.path().join("sys/class/net/eth0");
    std::fs::create_dir_all(&iface).unwrap();
    std::fs::write(iface.join("mtu"), "\u{0}big\n").unwrap();
    std::fs::write(iface.join("flags"), "0xzz\n").unwrap();
    std::fs::write(iface.join("ifindex"), "7\n").unwrap();
    let f = read("netclass", dir.path()).unwrap();
    let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "node_network_iface_id",
            "node_network_info",
            "node_network_up"
        ]
    );
}

// ---- Against a live node_exporter ----------------------------------------------------------

/// Kills and reaps the child when dropped, on panic too.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How far lookout's later value may be from node_exporter's earlier one.
fn within(name: &str, kind: &str, theirs: f64, ours: f64) -> bool {
    // Moving gauges: any plausible value, close to theirs.
    let slack = match name {
        "node_procs_running" | "node_procs_blocked" => 64.0,
        "node_filefd_allocated" => 4096.0,
        "node_netstat_Tcp_CurrEstab" => 1024.0,
        "node_time_seconds" => 30.0,
        "node_entropy_available_bits" | "node_nf_conntrack_entries" => 4096.0,
        // The clock's error estimates grow between the scrapes; the offset moves.
        "node_timex_maxerror_seconds"
        | "node_timex_estimated_error_seconds"
        | "node_timex_offset_seconds"
        | "node_timex_frequency_adjustment_ratio" => 1.0,
        _ => 0.0,
    };
    if slack > 0.0 {
        return (ours - theirs).abs() <= slack;
    }
    // Sockets come and go between the scrapes.
    if name.starts_with("node_sockstat_") {
        let slack = if name.ends_with("_bytes") {
            (16 << 20) as f64
        } else {
            1024.0
        };
        return (ours - theirs).abs() <= slack;
    }
    match kind {
        // Counters only grow between the two scrapes, by a little; node_exporter's untyped
        // families here are counters too, but for the gauges named above.
        "counter" | "untyped" => ours >= theirs && ours <= theirs * 1.05 + 100_000.0,
        _ => ours == theirs,
    }
}

#[test]
fn agrees_with_live_node_exporter() {
    let bin = "/usr/bin/prometheus-node-exporter";
    if !support::tool_or_skip("agrees_with_live_node_exporter", bin) {
        return;
    }
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let collector_flags: Vec<String> = NODE_COLLECTOR_NAMES
        .iter()
        .map(|n| format!("--collector.{n}"))
        .collect();
    let _guard = KillOnDrop(
        Command::new(bin)
            .arg(format!("--web.listen-address={addr}"))
            .arg("--collector.disable-defaults")
            .args(&collector_flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node_exporter"),
    );
    let theirs = support::wait_until(Duration::from_secs(10), || {
        support::request(&addr, "GET", "/metrics", &[])
            .ok()
            .map(|r| r.text())
            .filter(|body| body.contains("node_scrape_collector_success"))
    })
    .unwrap_or_else(|| panic!("node_exporter did not answer on {addr}"));
    let mut args = vec!["--collector.disable-defaults".to_string()];
    args.extend(collector_flags.iter().cloned());
    let ours = support::lookout_once(&args);

    let (theirs, ours) = (parse(&theirs), parse(&ours));
    let mut compared = 0;
    let mut problems = Vec::new();
    for (name, (kind, samples)) in &ours {
        if !name.starts_with("node_") {
            continue;
        }
        let Some((their_kind, their_samples)) = theirs.get(name) else {
            continue;
        };
        compared += 1;
        if kind != their_kind {
            problems.push(format!("{name}: type {kind}, node_exporter's {their_kind}"));
        }
        if label_names(samples) != label_names(their_samples) {
            problems.push(format!(
                "{name}: label names {:?}, node_exporter's {:?}",
                label_names(samples),
                label_names(their_samples)
            ));
        }
        for (labels, v) in samples {
            let Some((_, t)) = their_samples.iter().find(|(l, _)| l == labels) else {
                // Interfaces come and go between the scrapes (containers' veths).
                if name.starts_with("node_network_") {
                    continue;
                }
                problems.push(format!("{name}{labels:?}: not in node_exporter's"));
                continue;
            };
            if !within(name, kind, *t, *v) {
                problems.push(format!("{name}{labels:?}: {v}, node_exporter's {t}"));
            }
        }
    }
    // Every family node_exporter has for these collectors, lookout has too (but its own
    // `node_scrape_*`, the boot time, which lookout's host collector exports, and conntrack's
    // per-CPU `node_nf_conntrack_stat_*`, which lookout does not carry).
    for name in theirs.keys() {
        let ours_too = ours.contains_key(name);
        let skip = name.starts_with("node_scrape_")
            || name.starts_with("node_exporter_")
            || name == "node_boot_time_seconds"
            || name.starts_with("node_nf_conntrack_stat_")
            // node_exporter 1.5 exports an unknown speed (-1) as -125000; lookout leaves it out.
            || (name == "node_network_speed_bytes"
                && theirs[name].1.iter().all(|(_, v)| *v < 0.0))
            || !name.starts_with("node_");
        if !ours_too && !skip {
            problems.push(format!("{name}: node_exporter has it, lookout does not"));
        }
    }
    assert!(compared >= 5, "too few families compared: {compared}");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn each_collector_has_its_flags() {
    let help = Command::new(support::lookout_bin())
        .arg("--help")
        .output()
        .expect("lookout --help");
    let help = String::from_utf8(help.stdout).unwrap();
    for name in NODE_COLLECTOR_NAMES {
        for flag in [
            format!("--collector.{name}"),
            format!("--no-collector.{name}"),
        ] {
            assert!(
                help.lines()
                    .any(|l| l.trim() == flag || l.trim().starts_with(&format!("{flag} "))),
                "{flag} missing from --help"
            );
        }
    }
    // --no-collector.<name> after --collector.<name> turns it off again; disable-defaults
    // leaves only those named.
    let text = support::lookout_once(&[
        "--collector.disable-defaults",
        "--collector.stat",
        "--collector.filefd",
        "--no-collector.stat",
    ]);
    assert!(text.contains("\nnode_filefd_maximum "), "{text}");
    assert!(!text.contains("node_forks_total"), "{text}");
    assert!(!text.contains("node_cpu_seconds_total"), "host is off");
    assert!(text.contains(r#"lookout_collector_success{collector="filefd"} 1"#));
}
