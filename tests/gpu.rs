//! The gpu collector through nvml-wrapper's real loading path, against a stub
//! `libnvidia-ml.so.1` built here from C: DCGM series for two GPUs, unsupported fields left out,
//! XID events, the throttle reasons, fan, PCIe replays, NVLink and the GPM profiling fields (and
//! a driver too old for some of them), GPU memory attributed to a real Docker container and to a
//! host process, and the `auto` / `true` behaviour without the library.

#[path = "support/nvml_stub.rs"]
mod nvml_stub;
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout::collect::gpu::GpuCollector;
use lookout::collect::CollectError;
use lookout::config::GpuMode;
use lookout::exposition::{render, Format};
use lookout::snapshot::{ContainerInfo, Gpu, GpuPart, Inventory, Part, Snapshot};
use lookout::state_dir::StateDir;
use nvml_stub::{NvmlStub, NAMES, UUIDS};
use support::{get, sample, wait_until, Container, Lookout};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn gcc_or_skip(test: &str) -> bool {
    support::tool_or_skip(test, "/usr/bin/gcc")
}

/// A fixture /proc with three processes: one in a systemd-driver container (cgroup v2), one in a
/// cgroupfs-driver container (cgroup v1), one on the host.
fn fixture_procfs(dir: &Path, in_a: &str, in_b: &str) {
    let proc_ = |pid: u32, comm: &str, cgroup: &str| {
        let d = dir.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
        std::fs::write(d.join("cgroup"), cgroup).unwrap();
    };
    proc_(
        4242,
        "python3",
        &format!("0::/system.slice/docker-{in_a}.scope\n"),
    );
    proc_(
        4444,
        "trainer",
        &format!("12:memory:/docker/{in_b}\n1:name=systemd:/docker/{in_b}\n"),
    );
    proc_(
        4343,
        "Xorg",
        "0::/user.slice/user-1000.slice/session-2.scope\n",
    );
    std::fs::create_dir_all(dir.join("sys/kernel")).unwrap();
    std::fs::write(dir.join("sys/kernel/hostname"), "gpu-box-7\n").unwrap();
}

fn collect(c: &GpuCollector) -> GpuPart {
    match c.collect_blocking() {
        Ok(p) => p,
        Err(e) => panic!("gpu collection failed: {e:?}"),
    }
}

#[test]
fn two_stub_gpus_through_nvml_wrapper() {
    if !gcc_or_skip("two_stub_gpus_through_nvml_wrapper") {
        return;
    }
    let stub = NvmlStub::build();
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    stub.configure(&format!(
        "compute 0 4242 {}\ngraphics 0 4242 {}\ncompute 0 4444 {}\ngraphics 1 4343 {}\ncompute 1 4242 na\n",
        GIB,
        GIB,
        256 * MIB,
        32 * MIB
    ));
    let procfs = tempfile::tempdir().unwrap();
    fixture_procfs(procfs.path(), &a, &b);
    let c = GpuCollector::new(
        GpuMode::On,
        stub.lib().into(),
        procfs.path(),
        StateDir::none(),
    );
    let part = collect(&c);

    assert_eq!(part.driver_version.as_deref(), Some("550.54.15"));
    assert_eq!(part.nvml_version.as_deref(), Some("12.550.54.15"));
    assert_eq!(part.hostname, "gpu-box-7");
    assert_eq!(part.gpus.len(), 2);
    let (g0, g1) = (&part.gpus[0], &part.gpus[1]);
    assert_eq!(
        (g0.index, g0.uuid.as_str(), g0.name.as_str()),
        (0, UUIDS[0], NAMES[0])
    );
    assert_eq!(
        (g1.index, g1.uuid.as_str(), g1.name.as_str()),
        (1, UUIDS[1], NAMES[1])
    );
    // `device` is from the minor number, which differs from the index on GPU 1.
    assert_eq!(
        (g0.device.as_str(), g1.device.as_str()),
        ("nvidia0", "nvidia3")
    );
    assert_eq!(g0.pci_bus_id.as_deref(), Some("00000000:07:00.0"));
    assert_eq!(g0.utilization_percent, Some(87.0));
    assert_eq!(g0.memory_copy_utilization_percent, Some(45.0));
    assert_eq!(g1.utilization_percent, Some(12.0));
    // 40 GiB total, 512 MiB reserved, 10 GiB used: MiB, as DCGM reports them.
    assert_eq!(g0.fb_total_mib, Some(40960.0));
    assert_eq!(g0.fb_used_mib, Some(10240.0));
    assert_eq!(g0.fb_free_mib, Some(40960.0 - 512.0 - 10240.0));
    assert_eq!(g1.fb_used_mib, Some(1024.0));
    assert_eq!(
        (g0.temperature_celsius, g1.temperature_celsius),
        (Some(61.0), Some(44.0))
    );
    // NVML gives milliwatts; DCGM watts.
    assert_eq!((g0.power_watts, g1.power_watts), (Some(251.5), Some(30.25)));
    assert_eq!(
        (g0.sm_clock_mhz, g0.mem_clock_mhz),
        (Some(1410.0), Some(1215.0))
    );
    assert_eq!(
        (g1.sm_clock_mhz, g1.mem_clock_mhz),
        (Some(210.0), Some(405.0))
    );
    assert_eq!(g0.total_energy_mj, Some(987654321.0));
    assert_eq!(g0.ecc_sbe_volatile_total, Some(5.0));
    assert_eq!(g0.ecc_dbe_volatile_total, Some(1.0));
    assert_eq!(g0.ecc_sbe_aggregate_total, Some(17.0));
    assert_eq!(g0.ecc_dbe_aggregate_total, Some(2.0));
    // GPU 0's XID events are watched and none came: 0. GPU 1 can't be watched: unknown.
    assert_eq!(g0.xid_errors, Some(0.0));
    // What GPU 1 answers NOT_SUPPORTED for is left out, not 0.
    assert_eq!(g1.total_energy_mj, None);
    assert_eq!(g1.ecc_sbe_volatile_total, None);
    assert_eq!(g1.ecc_dbe_aggregate_total, None);
    assert_eq!(g1.xid_errors, None);

    // Processes: 4242 is in both of GPU 0's lists and counts once.
    type Row<'a> = (u32, u32, &'a str, Option<u64>, Option<&'a str>);
    let procs: Vec<Row> = part
        .processes
        .iter()
        .map(|p| {
            (
                p.gpu_index,
                p.pid,
                p.comm.as_str(),
                p.used_bytes,
                p.container_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        procs,
        vec![
            (0, 4242, "python3", Some(GIB), Some(a.as_str())),
            (0, 4444, "trainer", Some(256 * MIB), Some(b.as_str())),
            (1, 4242, "python3", None, Some(a.as_str())),
            (1, 4343, "Xorg", Some(32 * MIB), None),
        ]
    );
    assert!(part
        .processes
        .iter()
        .all(|p| p.uuid == UUIDS[p.gpu_index as usize]));

    // Exposition: container "svc-a" is watched; b's container is not (outside the filter), so
    // its process shows as a process, like the host's Xorg.
    let info = ContainerInfo {
        id: a.clone(),
        name: "svc-a".into(),
        ..Default::default()
    };
    let snap = Snapshot::assemble(
        0.0,
        vec![
            Part::Docker(Inventory {
                containers: Arc::new(vec![info]),
                generation: 1,
                cgroup_driver: None,
            }),
            Part::Gpu(part),
        ],
        vec![],
        None,
        Arc::new(lookout::snapshot::LabelAllowlist::default()),
    );
    assert_eq!(snap.containers[0].derived.gpu_memory_bytes, Some(GIB));
    let text = render(&snap, Format::Text);
    let l0 = format!(
        "gpu=\"0\",UUID=\"{}\",pci_bus_id=\"00000000:07:00.0\",device=\"nvidia0\",modelName=\"{}\",Hostname=\"gpu-box-7\",DCGM_FI_DRIVER_VERSION=\"550.54.15\"}}",
        UUIDS[0], NAMES[0]
    );
    assert_eq!(
        sample(&text, "DCGM_FI_DEV_GPU_UTIL", &[&l0]),
        Some(87.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            &["gpu=\"1\""]
        ),
        None
    );
    assert_eq!(
        sample(
            &text,
            "lookout_container_gpu_memory_used_bytes",
            &["name=\"svc-a\"", "gpu=\"0\""]
        ),
        Some(GIB as f64)
    );
    assert_eq!(
        sample(
            &text,
            "lookout_gpu_process_memory_used_bytes",
            &["pid=\"4444\"", "comm=\"trainer\""]
        ),
        Some((256 * MIB) as f64)
    );
    assert_eq!(
        sample(
            &text,
            "lookout_gpu_process_memory_used_bytes",
            &["gpu=\"1\"", "pid=\"4343\"", "comm=\"Xorg\""]
        ),
        Some((32 * MIB) as f64)
    );
    assert_eq!(
        sample(
            &text,
            "lookout_gpu_process_memory_used_bytes",
            &["pid=\"4242\""]
        ),
        None
    );
}

#[test]
fn xid_errors_come_from_nvml_events() {
    if !gcc_or_skip("xid_errors_come_from_nvml_events") {
        return;
    }
    let stub = NvmlStub::build();
    stub.configure("xid 0 79\n");
    let c = GpuCollector::new(
        GpuMode::On,
        stub.lib().into(),
        Path::new("/proc"),
        StateDir::none(),
    );
    let got = wait_until(Duration::from_secs(10), || {
        let part = collect(&c);
        assert_eq!(part.gpus[1].xid_errors, None, "GPU 1 has no XID events");
        (part.gpus[0].xid_errors == Some(79.0)).then_some(())
    });
    assert!(got.is_some(), "XID 79 on GPU 0 never showed");
}

#[test]
fn the_last_xid_survives_a_restart() {
    if !gcc_or_skip("the_last_xid_survives_a_restart") {
        return;
    }
    let stub = NvmlStub::build();
    stub.configure("xid 0 79\n");
    let state = tempfile::tempdir().unwrap();
    let dir = StateDir::at(state.path());
    let proc_ = Path::new("/proc");
    {
        let c = GpuCollector::new(GpuMode::On, stub.lib().into(), proc_, dir.clone());
        let got = wait_until(Duration::from_secs(10), || {
            (collect(&c).gpus[0].xid_errors == Some(79.0)).then_some(())
        });
        assert!(got.is_some(), "XID 79 on GPU 0 never showed");
        let saved = dir
            .load::<serde_json::Value>("gpu.json")
            .unwrap()
            .unwrap()
            .to_string();
        assert!(saved.contains(UUIDS[0]) && saved.contains("79"), "{saved}");
    }
    // The stub delivers no XID any more: a new collector can only have it from the state.
    stub.configure("");
    let c = GpuCollector::new(GpuMode::On, stub.lib().into(), proc_, dir.clone());
    let part = collect(&c);
    assert_eq!(part.gpus[0].xid_errors, Some(79.0));
    assert_eq!(part.gpus[1].xid_errors, None, "GPU 1 has no XID events");
    drop(c);
    // Without the state, 0 (watched, none seen).
    let c = GpuCollector::new(GpuMode::On, stub.lib().into(), proc_, StateDir::none());
    assert_eq!(collect(&c).gpus[0].xid_errors, Some(0.0));
    drop(c);
    // After a reboot (another boot id), the GPUs were reset: the old XID no longer applies.
    let rebooted = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(rebooted.path().join("sys/kernel/random")).unwrap();
    std::fs::write(
        rebooted.path().join("sys/kernel/random/boot_id"),
        "00000000-0000-0000-0000-000000000000\n",
    )
    .unwrap();
    let c = GpuCollector::new(GpuMode::On, stub.lib().into(), rebooted.path(), dir);
    assert_eq!(collect(&c).gpus[0].xid_errors, Some(0.0));
}

#[test]
fn collection_cost_against_the_stub() {
    if !gcc_or_skip("collection_cost_against_the_stub") {
        return;
    }
    let stub = NvmlStub::build();
    let pid = std::process::id();
    stub.configure(&format!("compute 0 {pid} {GIB}\ncompute 1 {pid} {MIB}\n"));
    let c = GpuCollector::new(
        GpuMode::On,
        stub.lib().into(),
        Path::new("/proc"),
        StateDir::none(),
    );
    collect(&c);
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(collect(&c).processes.len(), 2);
    }
    let per = t.elapsed() / n;
    eprintln!("gpu collection against the stub (2 GPUs, 2 processes): {per:?} per cycle");
    // Generous even for a debug build on a loaded machine; a cycle that re-opened NVML or
    // re-read config every time would still pass, a hang or a per-cycle sleep would not.
    assert!(per < Duration::from_millis(50), "{per:?} per collection");
}

/// A collector on the stub, reading the real /proc.
fn collector(stub: &NvmlStub) -> GpuCollector {
    GpuCollector::new(
        GpuMode::On,
        stub.lib().into(),
        Path::new("/proc"),
        StateDir::none(),
    )
}

/// Two collections a little apart: GPM measures between them.
fn two_cycles(c: &GpuCollector) -> (GpuPart, GpuPart) {
    let first = collect(c);
    std::thread::sleep(Duration::from_millis(20));
    (first, collect(c))
}

/// A snapshot of only this GPU part, for the exposition.
fn snapshot_of(part: GpuPart) -> Snapshot {
    Snapshot::assemble(
        0.0,
        vec![Part::Gpu(part)],
        vec![],
        None,
        Arc::new(lookout::snapshot::LabelAllowlist::default()),
    )
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

/// KiB the stub's GPU 0 reports over its 12 NVLinks: link i sent 1000·(i+1), received 500·(i+1).
const NVLINK_KIB: f64 = 1500.0 * (12.0 * 13.0 / 2.0);

#[test]
fn throttle_fan_pcie_nvlink_and_gpm_profiling() {
    if !gcc_or_skip("throttle_fan_pcie_nvlink_and_gpm_profiling") {
        return;
    }
    let stub = NvmlStub::build();
    let c = collector(&stub);
    let (first, second) = two_cycles(&c);
    let (g0, g1) = (&second.gpus[0], &second.gpus[1]);
    // The raw bitmask: HW thermal slowdown + SW power cap on GPU 0, idle on GPU 1.
    assert_eq!(
        (g0.throttle_reasons, g1.throttle_reasons),
        (Some(0x44), Some(0x1))
    );
    // The data-centre board has no fan of its own: no reading, not 0.
    assert_eq!(
        (g0.fan_speed_percent, g1.fan_speed_percent),
        (None, Some(41.0))
    );
    assert_eq!(
        (g0.pcie_replay_total, g1.pcie_replay_total),
        (Some(3.0), Some(0.0))
    );
    // Summed over the links that answer (links 12 to 17 do not), both directions.
    assert_eq!(g0.nvlink_bandwidth_kib_total, Some(NVLINK_KIB));
    assert_eq!(g1.nvlink_bandwidth_kib_total, None, "GPU 1 has no NVLink");

    // GPM needs two samples: nothing on the first cycle, then the stub's rates over the cycle,
    // percentages as DCGM's ratios and MiB/s as bytes/s.
    for g in &first.gpus {
        assert_eq!(
            g.profiling,
            Default::default(),
            "first cycle, GPU {}",
            g.index
        );
    }
    let p = &g0.profiling;
    for (what, got, want) in [
        ("gr_engine_active", p.gr_engine_active, 0.625),
        ("sm_active", p.sm_active, 0.40),
        ("sm_occupancy", p.sm_occupancy, 0.25),
        ("tensor_active", p.tensor_active, 0.125),
        ("dram_active", p.dram_active, 0.30),
        ("pcie_tx", p.pcie_tx_bytes_per_second, 96.0 * 1048576.0),
        ("pcie_rx", p.pcie_rx_bytes_per_second, 32.0 * 1048576.0),
    ] {
        assert!(close(got, want), "{what}: {got:?}, want {want}");
    }
    assert_eq!(g1.profiling, Default::default(), "GPU 1 has no GPM");
    // One sample kept (GPU 0's), the one before freed; all of them freed with the collector.
    assert_eq!(stub.gpm_samples_live(), Some(1));
    collect(&c);
    assert_eq!(stub.gpm_samples_live(), Some(1));
    drop(c);
    assert_eq!(stub.gpm_samples_live(), Some(0));

    let text = render(&snapshot_of(second), Format::Text);
    for (name, gpu, want) in [
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", 0, 68.0),
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", 1, 1.0),
        ("DCGM_FI_DEV_FAN_SPEED", 1, 41.0),
        ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", 0, 3.0),
        ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", 1, 0.0),
        ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", 0, NVLINK_KIB),
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0, 0.625),
        ("DCGM_FI_PROF_SM_ACTIVE", 0, 0.4),
        ("DCGM_FI_PROF_SM_OCCUPANCY", 0, 0.25),
        ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 0, 0.125),
        ("DCGM_FI_PROF_DRAM_ACTIVE", 0, 0.3),
        ("DCGM_FI_PROF_PCIE_TX_BYTES", 0, 100663296.0),
        ("DCGM_FI_PROF_PCIE_RX_BYTES", 0, 33554432.0),
    ] {
        let uuid = format!("UUID=\"{}\"", UUIDS[gpu]);
        let gpu = format!("gpu=\"{gpu}\"");
        let got = sample(
            &text,
            name,
            &[&gpu, &uuid, "DCGM_FI_DRIVER_VERSION=\"550.54.15\""],
        );
        assert!(
            close(got, want),
            "{name} {gpu}: {got:?}, want {want}\n{text}"
        );
    }
    for (name, gpu) in [
        ("DCGM_FI_DEV_FAN_SPEED", "0"),
        ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "1"),
        ("DCGM_FI_PROF_SM_ACTIVE", "1"),
        ("DCGM_FI_PROF_PCIE_TX_BYTES", "1"),
    ] {
        let gpu = format!("gpu=\"{gpu}\"");
        assert_eq!(sample(&text, name, &[&gpu]), None, "{name} {gpu}");
    }
    assert!(text.contains("# TYPE DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL counter\n"));
    assert!(text.contains("# TYPE DCGM_FI_PROF_SM_ACTIVE gauge\n"));
    promtool_accepts(&text);
}

/// The fields of GPU `gpu` that are present, by DCGM name.
fn present(g: &Gpu) -> Vec<&'static str> {
    let p = &g.profiling;
    [
        (
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
            g.throttle_reasons.is_some(),
        ),
        ("DCGM_FI_DEV_FAN_SPEED", g.fan_speed_percent.is_some()),
        (
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
            g.pcie_replay_total.is_some(),
        ),
        (
            "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
            g.nvlink_bandwidth_kib_total.is_some(),
        ),
        (
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            p.gr_engine_active.is_some(),
        ),
        ("DCGM_FI_PROF_SM_ACTIVE", p.sm_active.is_some()),
        ("DCGM_FI_PROF_SM_OCCUPANCY", p.sm_occupancy.is_some()),
        ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", p.tensor_active.is_some()),
        ("DCGM_FI_PROF_DRAM_ACTIVE", p.dram_active.is_some()),
        (
            "DCGM_FI_PROF_PCIE_TX_BYTES",
            p.pcie_tx_bytes_per_second.is_some(),
        ),
        (
            "DCGM_FI_PROF_PCIE_RX_BYTES",
            p.pcie_rx_bytes_per_second.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(name, there)| there.then_some(name))
    .collect()
}

#[test]
fn an_unsupported_field_has_no_series_and_a_failing_one_costs_only_its_own() {
    if !gcc_or_skip("an_unsupported_field_has_no_series_and_a_failing_one_costs_only_its_own") {
        return;
    }
    let stub = NvmlStub::build();
    // GPU 0 lacks throttle reasons, PCIe replays, NVLink and one GPM metric; its DRAM metric and
    // GPU 1's fan fail (a driver error, not "not supported").
    stub.configure(
        "unsupported 0 throttle\nunsupported 0 pcie_replay\nunsupported 0 nvlink\n\
         unsupported 0 gpm_occupancy\nfail 0 gpm_dram\nfail 1 fan\n",
    );
    let c = collector(&stub);
    let part = match c.collect_blocking() {
        Err(CollectError::Failed { message, partial }) => {
            assert!(message.contains("GPU 1: fan speed"), "{message}");
            match partial {
                Some(Part::Gpu(p)) => p,
                other => panic!("expected the GPU part beside the error, got {other:?}"),
            }
        }
        other => panic!("expected a partial failure, got {other:?}"),
    };
    assert_eq!(present(&part.gpus[0]), Vec::<&str>::new());
    // The fan failed on GPU 1; its other fields are all there.
    assert_eq!(
        present(&part.gpus[1]),
        [
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
        ]
    );
    assert_eq!(part.gpus[1].utilization_percent, Some(12.0));
    std::thread::sleep(Duration::from_millis(20));
    let part = match c.collect_blocking() {
        Err(CollectError::Failed {
            message,
            partial: Some(Part::Gpu(p)),
        }) => {
            assert!(message.contains("GPU 0: GPM DRAM activity"), "{message}");
            assert!(
                !message.contains("occupancy"),
                "unsupported is no failure: {message}"
            );
            p
        }
        other => panic!("expected a partial failure, got {other:?}"),
    };
    assert_eq!(
        present(&part.gpus[0]),
        [
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_PROF_SM_ACTIVE",
            "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            "DCGM_FI_PROF_PCIE_TX_BYTES",
            "DCGM_FI_PROF_PCIE_RX_BYTES",
        ]
    );
    let text = render(&snapshot_of(part), Format::Text);
    for name in [
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "DCGM_FI_PROF_SM_OCCUPANCY",
        "DCGM_FI_PROF_DRAM_ACTIVE",
    ] {
        assert_eq!(sample(&text, name, &["gpu=\"0\""]), None, "{name}\n{text}");
    }
    assert_eq!(sample(&text, "DCGM_FI_DEV_FAN_SPEED", &[]), None);
    assert_eq!(
        sample(&text, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", &["gpu=\"1\""]),
        Some(1.0)
    );
    assert!(close(
        sample(&text, "DCGM_FI_PROF_SM_ACTIVE", &["gpu=\"0\""]),
        0.4
    ));

    // GPM switched off on GPU 0: no profiling series, and its kept sample is freed.
    assert_eq!(stub.gpm_samples_live(), Some(1));
    stub.configure("unsupported 0 gpm\n");
    let part = collect(&c);
    assert_eq!(part.gpus[0].profiling, Default::default());
    assert_eq!(stub.gpm_samples_live(), Some(0));
    // Sampling refused (GPM reserved to administrators): no series either, and no failure.
    stub.configure("deny 0 gpm\n");
    for _ in 0..2 {
        assert_eq!(collect(&c).gpus[0].profiling, Default::default());
    }
    assert_eq!(stub.gpm_samples_live(), Some(0));
}

#[test]
fn an_old_driver_without_gpm_or_clocks_event_reasons() {
    if !gcc_or_skip("an_old_driver_without_gpm_or_clocks_event_reasons") {
        return;
    }
    let stub = NvmlStub::build_old_driver();
    let c = collector(&stub);
    let (_, part) = two_cycles(&c);
    // The throttle reasons through the old name; no GPM symbols: no profiling, no failure.
    assert_eq!(part.gpus[0].throttle_reasons, Some(0x44));
    assert_eq!(part.gpus[0].nvlink_bandwidth_kib_total, Some(NVLINK_KIB));
    for g in &part.gpus {
        assert_eq!(g.profiling, Default::default(), "GPU {}", g.index);
    }
    assert_eq!(
        stub.gpm_samples_live(),
        None,
        "no GPM sample was ever allocated"
    );
    let text = render(&snapshot_of(part), Format::Text);
    assert!(!text.contains("DCGM_FI_PROF_"), "{text}");
    assert_eq!(
        sample(&text, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", &["gpu=\"0\""]),
        Some(68.0)
    );
}

#[test]
fn a_running_lookout_exports_the_profiling_fields_from_its_second_cycle() {
    if !gcc_or_skip("a_running_lookout_exports_the_profiling_fields_from_its_second_cycle") {
        return;
    }
    let stub = NvmlStub::build();
    let lib = stub.lib().to_str().unwrap().to_string();
    let lk = Lookout::start_with_env(
        "interval: 1s\ncollectors: {docker: false, cgroup: false, gpu: true}\n",
        &[],
        &[("LOOKOUT_NVML_LIB", &lib)],
    );
    let text = wait_until(Duration::from_secs(15), || {
        let m = lk.metrics();
        sample(&m, "DCGM_FI_PROF_SM_ACTIVE", &["gpu=\"0\""]).map(|_| m)
    })
    .unwrap_or_else(|| {
        panic!(
            "no DCGM_FI_PROF_SM_ACTIVE\nlog:\n{}\n{}",
            lk.log(),
            lk.metrics()
        )
    });
    assert!(close(
        sample(&text, "DCGM_FI_PROF_SM_ACTIVE", &["gpu=\"0\""]),
        0.4
    ));
    assert!(close(
        sample(&text, "DCGM_FI_PROF_DRAM_ACTIVE", &["gpu=\"0\""]),
        0.3
    ));
    assert_eq!(
        sample(&text, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", &["gpu=\"0\""]),
        Some(68.0)
    );
    assert_eq!(
        sample(&text, "lookout_collector_success", &["collector=\"gpu\""]),
        Some(1.0)
    );
    promtool_accepts(&text);
}

fn write_config(dir: &Path, yaml: &str) -> std::path::PathBuf {
    let p = dir.join("lookout.yml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// `lookout once` with the library at `lib`; returns (stdout, stderr).
fn once(lib: &str, yaml: &str, extra: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), yaml);
    let out = Command::new(support::lookout_bin())
        .arg("once")
        .arg("-c")
        .arg(&cfg)
        .args(extra)
        .env("LOOKOUT_NVML_LIB", lib)
        .output()
        .expect("run lookout once");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "lookout once failed: {stderr}");
    (stdout, stderr)
}

#[test]
fn gpu_auto_without_the_library_is_silent() {
    let (out, err) = once(
        "/nonexistent/libnvidia-ml.so.1",
        "collectors: {docker: false, cgroup: false, gpu: auto}\n",
        &["--log.level", "info"],
    );
    // The collector ran and said why, once...
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("collector not available here") && l.contains("collector=gpu"))
            .count(),
        1,
        "stderr: {err}"
    );
    assert!(
        err.contains("/nonexistent/libnvidia-ml.so.1 not found"),
        "{err}"
    );
    // ...and exported nothing, not even a failure.
    assert!(out.contains("lookout_build_info"), "{out}");
    assert!(!out.contains("collector=\"gpu\""), "{out}");
    assert!(!out.contains("DCGM_"), "{out}");
}

#[test]
fn gpu_true_without_the_library_is_a_failure() {
    let (out, err) = once(
        "/nonexistent/libnvidia-ml.so.1",
        "collectors: {docker: false, cgroup: false, gpu: true}\n",
        &[],
    );
    assert_eq!(
        sample(&out, "lookout_collector_success", &["collector=\"gpu\""]),
        Some(0.0),
        "{out}"
    );
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn gpu_false_does_not_load_the_library() {
    if !gcc_or_skip("gpu_false_does_not_load_the_library") {
        return;
    }
    // A working library is there, and still nothing is read.
    let stub = NvmlStub::build();
    let lib = stub.lib().to_str().unwrap();
    let yaml = |mode: &str| format!("collectors: {{docker: false, cgroup: false, gpu: {mode}}}\n");
    let (on, _) = once(lib, &yaml("true"), &[]);
    assert!(on.contains("DCGM_FI_DEV_GPU_UTIL"), "{on}");
    let (off, err) = once(lib, &yaml("false"), &["--log.level", "info"]);
    assert!(!off.contains("collector=\"gpu\""), "{off}");
    assert!(!off.contains("DCGM_"), "{off}");
    assert!(!err.contains("gpu"), "{err}");
}

/// A sleeping container, the stub reporting its init process on both GPUs and this test
/// process on GPU 1, and the config for lookout.
struct Scene {
    container: Container,
    stub: NvmlStub,
    config: String,
}

fn scene() -> Scene {
    let container = Container::run("lookout-gpu-it", &[], &["sleep", "300"]);
    container.wait_state("running", Duration::from_secs(20));
    let cpid = container.pid();
    assert!(cpid > 0, "no pid for {}", container.name);
    let me = std::process::id();
    let stub = NvmlStub::build();
    stub.configure(&format!(
        "compute 0 {cpid} {}\ngraphics 0 {cpid} {}\ncompute 1 {cpid} {}\ncompute 1 {me} {}\n",
        GIB,
        GIB,
        16 * MIB,
        64 * MIB
    ));
    let config = format!(
        "interval: 1s\ndocker:\n  include: [\"{}\"]\ncollectors:\n  gpu: true\n",
        container.name
    );
    Scene {
        container,
        stub,
        config,
    }
}

#[test]
fn lookout_once_attributes_gpu_memory_to_a_real_container() {
    if !support::docker_or_skip("lookout_once_attributes_gpu_memory_to_a_real_container")
        || !gcc_or_skip("lookout_once_attributes_gpu_memory_to_a_real_container")
    {
        return;
    }
    let s = scene();
    let (out, err) = once(s.stub.lib().to_str().unwrap(), &s.config, &[]);
    assert_eq!(
        sample(&out, "lookout_collector_success", &["collector=\"gpu\""]),
        Some(1.0),
        "{out}\n{err}"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host = format!("Hostname=\"{}\"", host.trim());
    // DCGM series for both GPUs, with DCGM's labels.
    for (i, (util, temp, power)) in [(87.0, 61.0, 251.5), (12.0, 44.0, 30.25)]
        .into_iter()
        .enumerate()
    {
        let gpu = format!("gpu=\"{i}\"");
        let uuid = format!("UUID=\"{}\"", UUIDS[i]);
        let model = format!("modelName=\"{}\"", NAMES[i]);
        let labels = [gpu.as_str(), &uuid, &model, &host];
        assert_eq!(
            sample(&out, "DCGM_FI_DEV_GPU_UTIL", &labels),
            Some(util),
            "{out}"
        );
        assert_eq!(sample(&out, "DCGM_FI_DEV_GPU_TEMP", &labels), Some(temp));
        assert_eq!(
            sample(&out, "DCGM_FI_DEV_POWER_USAGE", &labels),
            Some(power)
        );
    }
    assert_eq!(
        sample(
            &out,
            "DCGM_FI_DEV_FB_USED",
            &["gpu=\"0\"", "device=\"nvidia0\""]
        ),
        Some(10240.0)
    );
    assert_eq!(
        sample(
            &out,
            "DCGM_FI_DEV_FB_USED",
            &["gpu=\"1\"", "device=\"nvidia3\""]
        ),
        Some(1024.0)
    );
    assert_eq!(
        sample(&out, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", &["gpu=\"0\""]),
        Some(987654321.0)
    );
    assert_eq!(
        sample(&out, "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", &["gpu=\"0\""]),
        Some(2.0)
    );
    // Not supported on GPU 1: absent, not 0.
    for name in [
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "DCGM_FI_DEV_XID_ERRORS",
    ] {
        assert_eq!(sample(&out, name, &["gpu=\"1\""]), None, "{name} on GPU 1");
    }
    // The container's process: 1 GiB on GPU 0 (listed as compute and graphics, counted once)
    // and 16 MiB on GPU 1, under the container's name.
    let name = format!("name=\"{}\"", s.container.name);
    assert_eq!(
        sample(
            &out,
            "lookout_container_gpu_memory_used_bytes",
            &[&name, "gpu=\"0\"", &format!("UUID=\"{}\"", UUIDS[0])]
        ),
        Some(GIB as f64),
        "{out}"
    );
    assert_eq!(
        sample(
            &out,
            "lookout_container_gpu_memory_used_bytes",
            &[&name, "gpu=\"1\"", &format!("UUID=\"{}\"", UUIDS[1])]
        ),
        Some((16 * MIB) as f64)
    );
    // This test process is outside any container: a process series with its comm.
    let me = format!("pid=\"{}\"", std::process::id());
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let comm = format!("comm=\"{}\"", comm.trim());
    assert_eq!(
        sample(
            &out,
            "lookout_gpu_process_memory_used_bytes",
            &["gpu=\"1\"", &me, &comm]
        ),
        Some((64 * MIB) as f64),
        "{out}"
    );
    let cpid = format!("pid=\"{}\"", s.container.pid());
    assert_eq!(
        sample(&out, "lookout_gpu_process_memory_used_bytes", &[&cpid]),
        None
    );
    promtool_accepts(&out);
}

/// promtool parses the exposition; its only complaints are DCGM's own naming (camelCase labels,
/// counters without `_total`), which lookout keeps for DCGM dashboards' sake.
fn promtool_accepts(text: &str) {
    if let Some(problems) = support::promtool_problems("promtool check metrics", text) {
        assert!(problems.is_empty(), "promtool: {problems:#?}");
    }
}

#[test]
fn api_reports_gpu_memory_per_container() {
    if !support::docker_or_skip("api_reports_gpu_memory_per_container")
        || !gcc_or_skip("api_reports_gpu_memory_per_container")
    {
        return;
    }
    let s = scene();
    let lib = s.stub.lib().to_str().unwrap().to_string();
    let lk = Lookout::start_with_env(&s.config, &[], &[("LOOKOUT_NVML_LIB", &lib)]);
    let bytes = wait_until(Duration::from_secs(10), || {
        let v: serde_json::Value =
            serde_json::from_str(&get(&lk.addr, "/api/v1/containers").text()).ok()?;
        v["containers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == s.container.name.as_str())?["gpu_memory_bytes"]
            .as_u64()
    });
    assert_eq!(
        bytes,
        Some(GIB + 16 * MIB),
        "log:\n{}\nmetrics:\n{}",
        lk.log(),
        lk.metrics()
    );
    assert_eq!(
        sample(
            &lk.metrics(),
            "lookout_collector_success",
            &["collector=\"gpu\""]
        ),
        Some(1.0)
    );
}

#[test]
fn a_library_without_nvml_counts_as_absent_on_auto() {
    // On `auto`, a library that loads but is not NVML (no nvmlInit_v2) counts as absent.
    if !gcc_or_skip("a_library_without_nvml_counts_as_absent_on_auto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("empty.c");
    std::fs::write(&src, "int not_nvml(void) { return 0; }\n").unwrap();
    let lib = dir.path().join("libnvidia-ml.so.1");
    let ok = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let c = GpuCollector::new(
        GpuMode::Auto,
        lib.clone().into(),
        Path::new("/proc"),
        StateDir::none(),
    );
    match c.collect_blocking() {
        Err(CollectError::Unavailable(m)) => assert!(m.contains("not an NVML library"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// `lookout doctor`'s output with the library at `lib`.
fn doctor(lib: &str, yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), yaml);
    let out = Command::new(support::lookout_bin())
        .arg("doctor")
        .arg("-c")
        .arg(&cfg)
        .env("LOOKOUT_NVML_LIB", lib)
        .output()
        .expect("run lookout doctor");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn doctor_reports_driver_nvml_and_the_nvidia_runtime() {
    if !gcc_or_skip("doctor_reports_driver_nvml_and_the_nvidia_runtime") {
        return;
    }
    let stub = NvmlStub::build();
    let out = doctor(stub.lib().to_str().unwrap(), "collectors: {gpu: auto}\n");
    assert!(
        out.contains("[ok]   gpu: NVIDIA driver 550.54.15, NVML 12.550.54.15, 2 GPU(s)"),
        "{out}"
    );
    assert!(out.contains(UUIDS[1]), "{out}");
    // Whether Docker has the nvidia runtime, as `docker info` says.
    if support::docker_or_skip("doctor_reports_driver_nvml_and_the_nvidia_runtime") {
        let info = Command::new("docker")
            .args(["info", "--format", "{{json .Runtimes}}"])
            .output()
            .unwrap();
        let has = String::from_utf8_lossy(&info.stdout).contains("\"nvidia\"");
        if has {
            assert!(
                out.contains("[ok]   gpu: Docker has the nvidia runtime"),
                "{out}"
            );
        } else {
            assert!(
                out.contains("[warn] gpu: Docker has no nvidia runtime"),
                "{out}"
            );
            assert!(out.contains("nvidia-ctk runtime configure"), "{out}");
        }
    }

    let missing = "/nonexistent/libnvidia-ml.so.1";
    let out = doctor(missing, "collectors: {gpu: auto}\n");
    assert!(
        out.contains("[info] gpu: /nonexistent/libnvidia-ml.so.1 not found"),
        "{out}"
    );
    assert!(out.contains("install the NVIDIA driver"), "{out}");
    assert!(out.contains("--gpus all"), "{out}");
    // Asked for and missing: a problem.
    let out = doctor(missing, "collectors: {gpu: true}\n");
    assert!(
        out.contains("[FAIL] gpu: /nonexistent/libnvidia-ml.so.1 not found"),
        "{out}"
    );
    let out = doctor(missing, "collectors: {gpu: false}\n");
    assert!(out.contains("[info] gpu: disabled"), "{out}");
    assert!(!out.contains("not found"), "{out}");
}
