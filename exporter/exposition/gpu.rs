//! GPU series: NVIDIA DCGM exporter's names, units, types and labels (so its published Grafana
//! dashboard works unchanged), plus lookout's GPU memory per container and per host process.

use std::collections::{BTreeMap, HashMap};

use super::{push_label, Encoder, Kind};
use crate::snapshot::{Gpu, GpuProcess, Snapshot};

type GpuField = fn(&Gpu) -> Option<f64>;

/// DCGM exporter's fields, in its `default-counters.csv` order then `dcp-metrics-included.csv`'s
/// profiling fields, with its types and help texts. The fan speed and the throttle reasons are in
/// neither file (users add them); their help is DCGM's field description.
const DCGM: &[(&str, Kind, &str, GpuField)] = &[
    (
        "DCGM_FI_DEV_SM_CLOCK",
        Kind::Gauge,
        "SM clock frequency (in MHz).",
        |g| g.sm_clock_mhz,
    ),
    (
        "DCGM_FI_DEV_MEM_CLOCK",
        Kind::Gauge,
        "Memory clock frequency (in MHz).",
        |g| g.mem_clock_mhz,
    ),
    (
        "DCGM_FI_DEV_GPU_TEMP",
        Kind::Gauge,
        "GPU temperature (in C).",
        |g| g.temperature_celsius,
    ),
    (
        "DCGM_FI_DEV_POWER_USAGE",
        Kind::Gauge,
        "Power draw (in W).",
        |g| g.power_watts,
    ),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        Kind::Counter,
        "Total energy consumption since boot (in mJ).",
        |g| g.total_energy_mj,
    ),
    (
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        Kind::Counter,
        "Total number of PCIe retries.",
        |g| g.pcie_replay_total,
    ),
    (
        "DCGM_FI_DEV_GPU_UTIL",
        Kind::Gauge,
        "GPU utilization (in %).",
        |g| g.utilization_percent,
    ),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        Kind::Gauge,
        "Memory utilization (in %).",
        |g| g.memory_copy_utilization_percent,
    ),
    (
        "DCGM_FI_DEV_XID_ERRORS",
        Kind::Gauge,
        "Value of the last XID error encountered.",
        |g| g.xid_errors,
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        Kind::Gauge,
        "Framebuffer memory free (in MiB).",
        |g| g.fb_free_mib,
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        Kind::Gauge,
        "Framebuffer memory used (in MiB).",
        |g| g.fb_used_mib,
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        Kind::Counter,
        "Total number of single-bit volatile ECC errors.",
        |g| g.ecc_sbe_volatile_total,
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        Kind::Counter,
        "Total number of double-bit volatile ECC errors.",
        |g| g.ecc_dbe_volatile_total,
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        Kind::Counter,
        "Total number of single-bit persistent ECC errors.",
        |g| g.ecc_sbe_aggregate_total,
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        Kind::Counter,
        "Total number of double-bit persistent ECC errors.",
        |g| g.ecc_dbe_aggregate_total,
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        Kind::Counter,
        "Total number of NVLink bandwidth counters for all lanes.",
        |g| g.nvlink_bandwidth_kib_total,
    ),
    (
        "DCGM_FI_DEV_FAN_SPEED",
        Kind::Gauge,
        "Fan speed for the device in percent 0-100.",
        |g| g.fan_speed_percent,
    ),
    (
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        Kind::Gauge,
        "Current clock throttle reasons (bitmask of DCGM_CLOCKS_THROTTLE_REASON_*).",
        |g| g.throttle_reasons.map(|r| r as f64),
    ),
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        Kind::Gauge,
        "Ratio of time the graphics engine is active.",
        |g| g.profiling.gr_engine_active,
    ),
    (
        "DCGM_FI_PROF_SM_ACTIVE",
        Kind::Gauge,
        "The ratio of cycles an SM has at least 1 warp assigned.",
        |g| g.profiling.sm_active,
    ),
    (
        "DCGM_FI_PROF_SM_OCCUPANCY",
        Kind::Gauge,
        "The ratio of number of warps resident on an SM.",
        |g| g.profiling.sm_occupancy,
    ),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        Kind::Gauge,
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        |g| g.profiling.tensor_active,
    ),
    (
        "DCGM_FI_PROF_DRAM_ACTIVE",
        Kind::Gauge,
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        |g| g.profiling.dram_active,
    ),
    (
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        Kind::Gauge,
        "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        |g| g.profiling.pcie_tx_bytes_per_second,
    ),
    (
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        Kind::Gauge,
        "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        |g| g.profiling.pcie_rx_bytes_per_second,
    ),
];

/// DCGM exporter's label set for one GPU, in its order: the GPU's identity labels
/// ([`Gpu::identity_labels`]), then `DCGM_FI_DRIVER_VERSION`.
fn dcgm_labels(g: &Gpu, hostname: &str, driver: &str) -> String {
    let mut s = String::with_capacity(200);
    g.identity_labels(hostname, |k, v| {
        push_label(&mut s, k, v);
        s.push(',');
    });
    push_label(&mut s, "DCGM_FI_DRIVER_VERSION", driver);
    s
}

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot) {
    let part = &snap.gpu;
    if let (Some(driver), Some(nvml)) = (&part.driver_version, &part.nvml_version) {
        enc.family(
            "lookout_gpu_info",
            "NVIDIA driver and NVML versions lookout reads GPUs through (always 1).",
            Kind::Gauge,
        );
        enc.sample(
            "lookout_gpu_info",
            "",
            &[("driver_version", driver), ("nvml_version", nvml)],
            1.0,
        );
    }
    if part.gpus.is_empty() {
        return;
    }
    let driver = part.driver_version.as_deref().unwrap_or("");
    let labels: Vec<String> = part
        .gpus
        .iter()
        .map(|g| dcgm_labels(g, &part.hostname, driver))
        .collect();
    for (name, kind, help, field) in DCGM {
        let mut started = false;
        for (g, l) in part.gpus.iter().zip(&labels) {
            if let Some(v) = field(g) {
                if !started {
                    enc.family(name, help, *kind);
                    started = true;
                }
                enc.sample(name, l, &[], v);
            }
        }
    }
    per_container(enc, snap);
    per_process(enc, snap);
}

/// The processes whose container is one lookout watches, keyed by the container's name.
fn watched(snap: &Snapshot) -> HashMap<&str, &str> {
    snap.containers
        .iter()
        .map(|c| (c.info.id.as_str(), c.info.name.as_str()))
        .collect()
}

/// `lookout_container_gpu_memory_used_bytes{name,gpu,UUID}`: each watched container's GPU
/// memory on each GPU, summed over its processes.
fn per_container(enc: &mut Encoder, snap: &Snapshot) {
    let names = watched(snap);
    let mut sums: BTreeMap<(&str, u32, &str), u64> = BTreeMap::new();
    for p in &snap.gpu.processes {
        let (Some(id), Some(bytes)) = (&p.container_id, p.used_bytes) else {
            continue;
        };
        if let Some(name) = names.get(id.as_str()) {
            *sums.entry((name, p.gpu_index, &p.uuid)).or_default() += bytes;
        }
    }
    if sums.is_empty() {
        return;
    }
    const NAME: &str = "lookout_container_gpu_memory_used_bytes";
    enc.family(
        NAME,
        "GPU memory used by the container's processes on this GPU, in bytes (from NVML's running compute and graphics processes).",
        Kind::Gauge,
    );
    for ((name, gpu, uuid), bytes) in sums {
        let gpu = gpu.to_string();
        enc.sample(
            NAME,
            "",
            &[("name", name), ("gpu", &gpu), ("UUID", uuid)],
            bytes as f64,
        );
    }
}

/// `lookout_gpu_process_memory_used_bytes{gpu,UUID,pid,comm}`: processes on a GPU that belong
/// to no container lookout watches (host processes, or containers outside its filter).
fn per_process(enc: &mut Encoder, snap: &Snapshot) {
    let names = watched(snap);
    let outside = |p: &&GpuProcess| {
        p.used_bytes.is_some()
            && p.container_id
                .as_deref()
                .is_none_or(|id| !names.contains_key(id))
    };
    let mut procs: Vec<&GpuProcess> = snap.gpu.processes.iter().filter(outside).collect();
    if procs.is_empty() {
        return;
    }
    procs.sort_by_key(|p| (p.gpu_index, p.pid));
    const NAME: &str = "lookout_gpu_process_memory_used_bytes";
    enc.family(
        NAME,
        "GPU memory used by a process outside the containers lookout watches, in bytes.",
        Kind::Gauge,
    );
    for p in procs {
        let (gpu, pid) = (p.gpu_index.to_string(), p.pid.to_string());
        enc.sample(
            NAME,
            "",
            &[
                ("gpu", &gpu),
                ("UUID", &p.uuid),
                ("pid", &pid),
                ("comm", &p.comm),
            ],
            p.used_bytes.unwrap_or(0) as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::{render, Format};
    use super::*;
    use crate::snapshot::{Container, ContainerInfo, GpuPart, GpuProfiling};

    fn gpu(index: u32) -> Gpu {
        Gpu {
            index,
            uuid: format!("GPU-{index}"),
            name: "Tesla \"T4\"".into(),
            device: format!("nvidia{index}"),
            pci_bus_id: Some(format!("00000000:0{index}:00.0")),
            utilization_percent: Some(50.0),
            power_watts: Some(70.5),
            ..Default::default()
        }
    }

    fn snap() -> Snapshot {
        let id = "a".repeat(64);
        let info = ContainerInfo {
            id: id.clone(),
            name: "trainer".into(),
            ..Default::default()
        };
        let proc_ = |gpu_index: u32, pid: u32, bytes: Option<u64>, cid: Option<&str>| GpuProcess {
            gpu_index,
            uuid: format!("GPU-{gpu_index}"),
            pid,
            comm: "python3".into(),
            used_bytes: bytes,
            container_id: cid.map(str::to_string),
        };
        Snapshot {
            containers: vec![Container {
                info,
                stats: None,
                derived: Default::default(),
            }],
            gpu: GpuPart {
                gpus: vec![
                    gpu(0),
                    Gpu {
                        power_watts: None,
                        ..gpu(1)
                    },
                ],
                processes: vec![
                    proc_(0, 10, Some(100), Some(&id)),
                    proc_(0, 11, Some(50), Some(&id)),
                    proc_(1, 12, Some(7), Some(&id)),
                    proc_(1, 13, Some(9), None),
                    proc_(1, 14, None, None),
                    proc_(0, 15, Some(3), Some(&"b".repeat(64))),
                ],
                driver_version: Some("550.1".into()),
                nvml_version: Some("12.550.1".into()),
                hostname: "box".into(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn dcgm_series_and_attribution() {
        let text = render(&snap(), Format::Text);
        assert!(text.contains(
            "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-0\",pci_bus_id=\"00000000:00:00.0\",device=\"nvidia0\",modelName=\"Tesla \\\"T4\\\"\",Hostname=\"box\",DCGM_FI_DRIVER_VERSION=\"550.1\"} 50\n"
        ), "{text}");
        // Unsupported on GPU 1: only GPU 0's sample; never supported anywhere: no family.
        assert_eq!(text.matches("DCGM_FI_DEV_POWER_USAGE{").count(), 1);
        assert!(text.contains("DCGM_FI_DEV_POWER_USAGE{gpu=\"0\""));
        assert!(!text.contains("DCGM_FI_DEV_GPU_TEMP"));
        assert!(text.contains(
            "lookout_container_gpu_memory_used_bytes{name=\"trainer\",gpu=\"0\",UUID=\"GPU-0\"} 150\n"
        ));
        assert!(text.contains(
            "lookout_container_gpu_memory_used_bytes{name=\"trainer\",gpu=\"1\",UUID=\"GPU-1\"} 7\n"
        ));
        // Outside watched containers: the host process and the unknown container's process;
        // a process without a known size is left out.
        assert!(text.contains(
            "lookout_gpu_process_memory_used_bytes{gpu=\"1\",UUID=\"GPU-1\",pid=\"13\",comm=\"python3\"} 9\n"
        ));
        assert!(text.contains("pid=\"15\""));
        assert!(!text.contains("pid=\"14\""));
        assert!(!text.contains("pid=\"10\""));
        assert!(text
            .contains("lookout_gpu_info{driver_version=\"550.1\",nvml_version=\"12.550.1\"} 1\n"));
    }

    #[test]
    fn dcgm_counters_keep_their_names_in_openmetrics() {
        let mut s = snap();
        s.gpu.gpus[0].total_energy_mj = Some(1234.0);
        let text = render(&s, Format::Text);
        assert!(text.contains("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"));
        let om = render(&s, Format::OpenMetrics);
        // OpenMetrics counters must end in _total; DCGM's name doesn't, so it is typed unknown
        // there rather than renamed (renaming would break DCGM dashboards).
        assert!(
            om.contains("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION unknown\n"),
            "{om}"
        );
        assert!(om.contains("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"0\""));
    }

    #[test]
    fn throttle_fan_pcie_nvlink_and_profiling_fields() {
        let mut s = snap();
        let g0 = &mut s.gpu.gpus[0];
        g0.throttle_reasons = Some(0x44);
        g0.pcie_replay_total = Some(3.0);
        g0.nvlink_bandwidth_kib_total = Some(117000.0);
        g0.profiling = GpuProfiling {
            sm_active: Some(0.4),
            pcie_tx_bytes_per_second: Some(100663296.0),
            ..Default::default()
        };
        s.gpu.gpus[1].fan_speed_percent = Some(41.0);
        let text = render(&s, Format::Text);
        let one = |name: &str, gpu: &str, value: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name}{{gpu=\"{gpu}\"")));
            assert_eq!(
                line.and_then(|l| l.rsplit(' ').next()),
                Some(value),
                "{name} on GPU {gpu}:\n{text}"
            );
        };
        // The bitmask as an integer, as DCGM exports it.
        one("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "0", "68");
        one("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "0", "3");
        one("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "0", "117000");
        one("DCGM_FI_DEV_FAN_SPEED", "1", "41");
        one("DCGM_FI_PROF_SM_ACTIVE", "0", "0.4");
        one("DCGM_FI_PROF_PCIE_TX_BYTES", "0", "100663296");
        for (name, kind) in [
            ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "gauge"),
            ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter"),
            ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter"),
            ("DCGM_FI_DEV_FAN_SPEED", "gauge"),
            ("DCGM_FI_PROF_SM_ACTIVE", "gauge"),
            ("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge"),
        ] {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
        }
        // A field one GPU lacks has no sample for it; one no GPU has, no family at all.
        assert_eq!(text.matches("DCGM_FI_DEV_FAN_SPEED{").count(), 1);
        assert_eq!(
            text.matches("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{").count(),
            1
        );
        for absent in ["DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_SM_OCCUPANCY"] {
            assert!(!text.contains(absent), "{absent}");
        }
    }

    #[test]
    fn nothing_without_gpus() {
        let text = render(&Snapshot::default(), Format::Text);
        assert!(!text.contains("DCGM_"));
        assert!(!text.contains("lookout_gpu"));
    }
}
