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
