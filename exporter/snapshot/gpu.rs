//! NVIDIA GPUs (DCGM exporter's facts) and which containers use them.

use std::collections::HashMap;

use serde::Serialize;

/// One GPU. Fields the board does not support are None and are not exported.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
    /// Product name (DCGM's `modelName`).
    pub name: String,
    /// DCGM's `device` label: `nvidia<minor>`.
    pub device: String,
    pub pci_bus_id: Option<String>,
    pub utilization_percent: Option<f64>,
    pub memory_copy_utilization_percent: Option<f64>,
    pub fb_used_mib: Option<f64>,
    pub fb_free_mib: Option<f64>,
    pub fb_total_mib: Option<f64>,
    pub temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub mem_clock_mhz: Option<f64>,
    /// Millijoules since the driver loaded.
    pub total_energy_mj: Option<f64>,
    /// The last XID error seen (DCGM reports the last XID value), if any event source exists.
    pub xid_errors: Option<f64>,
    pub ecc_sbe_volatile_total: Option<f64>,
    pub ecc_dbe_volatile_total: Option<f64>,
    pub ecc_sbe_aggregate_total: Option<f64>,
    pub ecc_dbe_aggregate_total: Option<f64>,
    /// Why the clocks are held down: NVML's clock-throttle (clocks-event) reasons bitmask, as
    /// DCGM exports it (`0x20` SW thermal slowdown, `0x40` HW thermal slowdown, `0x4` SW power
    /// cap, `0x8` HW slowdown; see [`THROTTLE_THERMAL`]).
    pub throttle_reasons: Option<u64>,
    /// The intended fan speed, percent; boards without their own fan (SXM) have none.
    pub fan_speed_percent: Option<f64>,
    /// PCIe replays (retries) since the driver loaded.
    pub pcie_replay_total: Option<f64>,
    /// KiB sent and received over all NVLinks since the driver loaded, as DCGM sums them.
    pub nvlink_bandwidth_kib_total: Option<f64>,
    /// DCGM's profiling fields, from NVML's GPM (Hopper and later).
    pub profiling: GpuProfiling,
}

/// NVML's thermal clock-throttle reasons: SW thermal slowdown (`0x20`) and HW thermal slowdown
/// (`0x40`), as in nvml.h's `nvmlClocksThrottleReason*` (renamed `nvmlClocksEventReason*`).
pub const THROTTLE_THERMAL: u64 = 0x20 | 0x40;

/// DCGM's profiling (DCP) fields, computed by NVML's GPM from two samples of the GPU taken a
/// collection cycle apart: averages over that cycle. None on the first cycle, and on GPUs or
/// drivers without GPM. The activities are ratios (0 to 1), as DCGM reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuProfiling {
    /// Time the graphics or compute engine was active (`DCGM_FI_PROF_GR_ENGINE_ACTIVE`).
    pub gr_engine_active: Option<f64>,
    /// SMs with at least one warp assigned, averaged over SMs (`DCGM_FI_PROF_SM_ACTIVE`).
    pub sm_active: Option<f64>,
    /// Resident warps / the maximum, averaged over SMs (`DCGM_FI_PROF_SM_OCCUPANCY`).
    pub sm_occupancy: Option<f64>,
    /// Time the tensor pipes were active (`DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`).
    pub tensor_active: Option<f64>,
    /// Time the memory interface was busy (`DCGM_FI_PROF_DRAM_ACTIVE`).
    pub dram_active: Option<f64>,
    /// PCIe bytes per second sent by the GPU, headers included (`DCGM_FI_PROF_PCIE_TX_BYTES`).
    pub pcie_tx_bytes_per_second: Option<f64>,
    /// PCIe bytes per second received (`DCGM_FI_PROF_PCIE_RX_BYTES`).
    pub pcie_rx_bytes_per_second: Option<f64>,
}

/// A process using a GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuProcess {
    pub gpu_index: u32,
    pub uuid: String,
    pub pid: u32,
    pub comm: String,
    /// Bytes of GPU memory; None when the driver can't tell (e.g. without permission).
    pub used_bytes: Option<u64>,
    /// The Docker container the pid belongs to, when it belongs to one.
    pub container_id: Option<String>,
}

/// The GPU collector's part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuPart {
    pub gpus: Vec<Gpu>,
    pub processes: Vec<GpuProcess>,
    pub driver_version: Option<String>,
    pub nvml_version: Option<String>,
    /// DCGM's `Hostname` label.
    pub hostname: String,
}

impl GpuPart {
    /// GPU memory used per container id, summed over its processes and GPUs.
    pub fn memory_by_container(&self) -> HashMap<&str, u64> {
        let mut out: HashMap<&str, u64> = HashMap::new();
        for p in &self.processes {
            if let (Some(id), Some(b)) = (&p.container_id, p.used_bytes) {
                *out.entry(id.as_str()).or_default() += b;
            }
        }
        out
    }
}
