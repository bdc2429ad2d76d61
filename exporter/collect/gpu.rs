//! The gpu collector: NVIDIA GPUs through NVML (`libnvidia-ml.so.1`, loaded at run time), with
//! DCGM exporter's facts per GPU, and the processes on each GPU mapped to their Docker container
//! through `<procfs>/<pid>/cgroup`.
//!
//! The NVML handle is opened once and kept across cycles; when opening fails, it is retried at
//! most once a minute. NVML calls block (some take milliseconds), so a cycle runs on the blocking
//! pool. A field the board does not support is left out, never reported as 0. XID errors arrive
//! only as NVML events: a thread waits on an event set, and a GPU whose events could be
//! registered reports its last XID (0 until one arrives), while the others report none.
//!
//! Where the wrapper lacks a call or narrows its answer, the driver's symbol is called through
//! nvml-wrapper's own bindings ([`nvml_wrapper::Nvml::lib`]), looked up when the library is
//! loaded: a symbol that an older driver lacks is "not supported", never a panic. DCGM's
//! profiling fields come from NVML's GPM (Hopper and later), which measures between two samples:
//! the collector keeps each GPU's last sample across cycles ([`GpmSamples`]), so the first cycle
//! has no profiling series and each later one reports the averages since the cycle before.
//!
//! The last XID of each GPU is kept in the state directory ([`STATE_FILE`]), so that a restarted
//! lookout reports it again and an alert on it (the default GpuXidErrors) stays firing. It is
//! dropped after a reboot of the host (the boot id changed), which resets the GPUs.
//!
//! A hung NVML call (a wedged GPU) holds one thread of the blocking pool until it returns; the
//! runner never starts another cycle of this collector meanwhile, and the XID watcher is one
//! thread for the collector's lifetime, so a hang never piles up threads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::raw::{c_int, c_uint, c_ulonglong};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::{nvml_try, NvmlError};
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::{Device, GpmSample, Nvml};
use nvml_wrapper_sys::bindings as sys;
use serde::{Deserialize, Serialize};

use super::{CollectError, CollectFuture, Collector};
use crate::config::GpuMode;
use crate::snapshot::{Gpu, GpuPart, GpuProcess, GpuProfiling, Part};
use crate::state_dir::StateDir;

/// The library NVIDIA's driver installs (and the container toolkit mounts into containers).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";
/// The environment variable that overrides the library path (tests point it at a stub).
pub const LIBRARY_ENV: &str = "LOOKOUT_NVML_LIB";
/// How often a failed NVML initialisation is retried.
pub const INIT_RETRY: Duration = Duration::from_secs(60);
/// How long an XID wait blocks before the watcher checks whether it should stop.
const XID_WAIT_MS: u32 = 1000;
/// The file in the state directory that keeps the last XID of each GPU.
pub const STATE_FILE: &str = "gpu.json";

/// What went wrong talking to NVML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// The library could not be loaded: no NVIDIA driver on this machine, or (in a container) the
    /// driver's libraries were not mounted in.
    #[error("{path} not found ({detail})")]
    LibraryMissing { path: String, detail: String },
    /// The library is there but the kernel driver is not loaded (no GPU, or a driver problem).
    #[error("NVIDIA driver not loaded ({path} is present but nvmlInit says: {detail})")]
    DriverNotLoaded { path: String, detail: String },
    /// nvmlInit failed for another reason (permissions, a broken driver).
    #[error("nvmlInit failed: {0}")]
    Init(String),
    /// A query that every GPU answers failed.
    #[error("{what}: {detail}")]
    Query { what: String, detail: String },
}

impl GpuError {
    /// Whether this means "there is no NVIDIA GPU here" rather than "something is broken".
    pub fn is_absent(&self) -> bool {
        matches!(
            self,
            GpuError::LibraryMissing { .. } | GpuError::DriverNotLoaded { .. }
        )
    }

    fn query(what: impl Into<String>, e: NvmlError) -> GpuError {
        GpuError::Query {
            what: what.into(),
            detail: e.to_string(),
        }
    }
}

/// The library path: `LOOKOUT_NVML_LIB` when set, else the driver's `libnvidia-ml.so.1`, found
/// by the dynamic loader's normal search.
pub fn library_path() -> OsString {
    std::env::var_os(LIBRARY_ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_LIBRARY.into())
}

/// Load the library and initialise NVML.
pub fn open(lib: &OsStr) -> Result<Nvml, GpuError> {
    let path = lib.to_string_lossy().into_owned();
    Nvml::builder().lib_path(lib).init().map_err(|e| match e {
        NvmlError::LibloadingError(err) => GpuError::LibraryMissing {
            path,
            detail: err.to_string(),
        },
        NvmlError::FailedToLoadSymbol(detail) => GpuError::LibraryMissing {
            path,
            detail: format!("not an NVML library: {detail}"),
        },
        NvmlError::DriverNotLoaded => GpuError::DriverNotLoaded {
            path,
            detail: e.to_string(),
        },
        other => GpuError::Init(other.to_string()),
    })
}

/// What `lookout doctor` reports about the NVIDIA stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub driver_version: Option<String>,
    pub nvml_version: Option<String>,
    /// `(index, name, uuid)` of each GPU NVML lists.
    pub gpus: Vec<(u32, String, String)>,
}

/// Open NVML once and list the driver and the GPUs (for `lookout doctor`).
pub fn probe(lib: &OsStr) -> Result<Probe, GpuError> {
    let nvml = open(lib)?;
    let count = nvml
        .device_count()
        .map_err(|e| GpuError::query("nvmlDeviceGetCount", e))?;
    let gpus = (0..count)
        .map(|i| {
            let d = nvml.device_by_index(i);
            let name = d.as_ref().ok().and_then(|d| d.name().ok());
            let uuid = d.as_ref().ok().and_then(|d| d.uuid().ok());
            (i, name.unwrap_or_default(), uuid.unwrap_or_default())
        })
        .collect();
    Ok(Probe {
        driver_version: nvml.sys_driver_version().ok(),
        nvml_version: nvml.sys_nvml_version().ok(),
        gpus,
    })
}

/// An open NVML handle and the GPM samples taken through it, which must be freed before it is
/// shut down.
struct Opened {
    gpm: GpmSamples,
    nvml: Nvml,
}

impl Drop for Opened {
    fn drop(&mut self) {
        self.gpm.free_all(&self.nvml);
    }
}

/// The NVML handle and what is remembered about opening it.
#[derive(Default)]
struct State {
    nvml: Option<Opened>,
    /// When opening was last tried, and how that went (while `nvml` is None).
    last_attempt: Option<(Instant, GpuError)>,
    xid: Option<Arc<XidWatch>>,
}

/// Reads every NVIDIA GPU through NVML.
pub struct GpuCollector {
    mode: GpuMode,
    lib: OsString,
    procfs: PathBuf,
    /// Where the last XIDs are kept across restarts.
    state_dir: StateDir,
    retry: Duration,
    state: Mutex<State>,
    /// How many times opening NVML was tried (for tests of the retry throttle).
    attempts: AtomicU32,
}

impl GpuCollector {
    /// `mode` decides whether a missing library is a failure (`On`) or silence (`Auto`); the
    /// last XID of each GPU is restored from, and saved to, `state_dir`.
    pub fn new(mode: GpuMode, lib: OsString, procfs: &Path, state_dir: StateDir) -> GpuCollector {
        GpuCollector {
            mode,
            lib,
            procfs: procfs.to_path_buf(),
            state_dir,
            retry: INIT_RETRY,
            state: Mutex::new(State::default()),
            attempts: AtomicU32::new(0),
        }
    }

    /// The same, retrying a failed initialisation after `retry` instead of a minute.
    pub fn with_retry(mut self, retry: Duration) -> GpuCollector {
        self.retry = retry;
        self
    }

    /// How many times NVML initialisation was attempted so far.
    pub fn init_attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn to_collect_error(&self, e: &GpuError) -> CollectError {
        if e.is_absent() && self.mode == GpuMode::Auto {
            CollectError::Unavailable(e.to_string())
        } else {
            CollectError::failed(e.to_string())
        }
    }

    /// One collection, on the calling thread (it blocks: call it from the blocking pool). Public
    /// so that benchmarks and tests can time and inspect one cycle without a runtime.
    // CollectError is the runner's own type; boxing it here would only be unboxed again.
    #[allow(clippy::result_large_err)]
    pub fn collect_blocking(&self) -> Result<GpuPart, CollectError> {
        let mut st = self.lock();
        if st.nvml.is_none() {
            if let Some((at, err)) = &st.last_attempt {
                if at.elapsed() < self.retry {
                    return Err(self.to_collect_error(err));
                }
            }
            self.attempts.fetch_add(1, Ordering::Relaxed);
            match open(&self.lib) {
                Ok(nvml) => {
                    st.nvml = Some(Opened {
                        nvml,
                        gpm: GpmSamples::default(),
                    });
                    st.last_attempt = None;
                }
                Err(e) => {
                    let out = self.to_collect_error(&e);
                    st.last_attempt = Some((Instant::now(), e));
                    return Err(out);
                }
            }
        }
        if st.xid.is_none() {
            let store = XidStore {
                dir: self.state_dir.clone(),
                boot_id: boot_id(&self.procfs),
            };
            st.xid = Some(XidWatch::start(self.lib.clone(), store));
        }
        let xid = st.xid.clone();
        let opened = st.nvml.as_mut().expect("opened above");
        let reading = match read_gpus(&opened.nvml, &mut opened.gpm, xid.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                // The driver went away under us (unloaded, reset): open it afresh, after
                // the retry interval like a failed init.
                st.nvml = None;
                let out = self.to_collect_error(&e);
                st.last_attempt = Some((Instant::now(), e));
                return Err(out);
            }
        };
        drop(st);
        let processes = reading
            .procs
            .into_iter()
            .map(|p| {
                let dir = self.procfs.join(p.pid.to_string());
                GpuProcess {
                    comm: std::fs::read_to_string(dir.join("comm"))
                        .map(|s| s.trim_end_matches('\n').to_string())
                        .unwrap_or_default(),
                    container_id: std::fs::read_to_string(dir.join("cgroup"))
                        .ok()
                        .and_then(|t| container_id_from_cgroup(&t)),
                    ..p
                }
            })
            .collect();
        let part = GpuPart {
            gpus: reading.gpus,
            processes,
            driver_version: reading.driver_version,
            nvml_version: reading.nvml_version,
            hostname: super::host::hostname(&self.procfs),
        };
        if reading.problems.is_empty() {
            Ok(part)
        } else {
            Err(CollectError::Failed {
                message: reading.problems.join("; "),
                partial: Some(Part::Gpu(part)),
            })
        }
    }
}

impl Collector for GpuCollector {
    fn name(&self) -> &'static str {
        "gpu"
    }

    #[allow(clippy::result_large_err)]
    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            let run = move || self.collect_blocking().map(Part::Gpu);
            match tokio::task::spawn_blocking(run).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(CollectError::failed(e.to_string())),
            }
        })
    }
}

impl Drop for GpuCollector {
    fn drop(&mut self) {
        if let Some(x) = &self.lock().xid {
            x.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// What NVML said in one cycle, before /proc is read.
struct Reading {
    gpus: Vec<Gpu>,
    /// Pids, GPUs and memory; `comm` and the container are filled in from /proc afterwards.
    procs: Vec<GpuProcess>,
    /// Failures of single GPUs or fields (not "unsupported"), for the collector's error.
    problems: Vec<String>,
    driver_version: Option<String>,
    nvml_version: Option<String>,
}

/// Every GPU's facts and processes (pids only; the caller reads /proc). Problems with one GPU or
/// one field (other than "not supported") are returned beside the data. `gpm` holds each GPU's
/// GPM sample from the cycle before; this cycle's replaces it.
fn read_gpus(
    nvml: &Nvml,
    gpm: &mut GpmSamples,
    xid: Option<&XidWatch>,
) -> Result<Reading, GpuError> {
    let count = nvml
        .device_count()
        .map_err(|e| GpuError::query("nvmlDeviceGetCount", e))?;
    let xids = xid.map(|x| x.values()).unwrap_or_default();
    let mut gpus = Vec::with_capacity(count as usize);
    let mut procs: Vec<GpuProcess> = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for index in 0..count {
        let dev = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("GPU {index}: {e}"));
                continue;
            }
        };
        let uuid = match dev.uuid() {
            Ok(u) => u,
            Err(e) => {
                problems.push(format!("GPU {index}: uuid: {e}"));
                continue;
            }
        };
        seen.insert(uuid.clone());
        let mut f = Fields {
            index,
            problems: &mut problems,
        };
        let name = f.get("name", dev.name()).unwrap_or_default();
        let device = match f.get("minor number", dev.minor_number()) {
            Some(m) => format!("nvidia{m}"),
            None => format!("nvidia{index}"),
        };
        let pci = f.get("pci info", dev.pci_info());
        let util = f.get("utilization", dev.utilization_rates());
        let mem = f.get("memory info", dev.memory_info());
        let mib = |b: u64| (b >> 20) as f64;
        let ecc = |f: &mut Fields, e: MemoryError, c: EccCounter| {
            f.get("ecc errors", dev.total_ecc_errors(e, c))
                .map(|v| v as f64)
        };
        gpus.push(Gpu {
            index,
            uuid: uuid.clone(),
            name,
            device,
            pci_bus_id: pci.map(|p| p.bus_id),
            utilization_percent: util.as_ref().map(|u| u.gpu as f64),
            memory_copy_utilization_percent: util.as_ref().map(|u| u.memory as f64),
            fb_used_mib: mem.as_ref().map(|m| mib(m.used)),
            fb_free_mib: mem.as_ref().map(|m| mib(m.free)),
            fb_total_mib: mem.as_ref().map(|m| mib(m.total)),
            temperature_celsius: f
                .get("temperature", dev.temperature(TemperatureSensor::Gpu))
                .map(|t| t as f64),
            power_watts: f
                .get("power usage", dev.power_usage())
                .map(|mw| mw as f64 / 1000.0),
            sm_clock_mhz: f.get("sm clock", dev.clock_info(Clock::SM)).map(f64::from),
            mem_clock_mhz: f
                .get("memory clock", dev.clock_info(Clock::Memory))
                .map(f64::from),
            total_energy_mj: f
                .get("total energy", dev.total_energy_consumption())
                .map(|v| v as f64),
            xid_errors: xids.get(&uuid).map(|v| *v as f64),
            ecc_sbe_volatile_total: ecc(&mut f, MemoryError::Corrected, EccCounter::Volatile),
            ecc_dbe_volatile_total: ecc(&mut f, MemoryError::Uncorrected, EccCounter::Volatile),
            ecc_sbe_aggregate_total: ecc(&mut f, MemoryError::Corrected, EccCounter::Aggregate),
            ecc_dbe_aggregate_total: ecc(&mut f, MemoryError::Uncorrected, EccCounter::Aggregate),
            throttle_reasons: f.get("clock throttle reasons", throttle_reasons(nvml, &dev)),
            fan_speed_percent: f.get("fan speed", fan_speed(nvml, &dev)).map(f64::from),
            pcie_replay_total: f
                .get("PCIe replay counter", dev.pcie_replay_counter())
                .map(f64::from),
            nvlink_bandwidth_kib_total: f
                .get("NVLink throughput", nvlink_kib_total(nvml, &dev))
                .map(|k| k as f64),
            profiling: gpm.profile(nvml, &dev, &uuid, &mut f),
        });
        processes(&mut f, &dev, &uuid, &mut procs);
    }
    gpm.keep_only(nvml, &seen);
    Ok(Reading {
        gpus,
        procs,
        problems,
        driver_version: nvml.sys_driver_version().ok(),
        nvml_version: nvml.sys_nvml_version().ok(),
    })
}

/// Reads optional fields of one GPU: unsupported is None, other errors are problems too.
struct Fields<'a> {
    index: u32,
    problems: &'a mut Vec<String>,
}

impl Fields<'_> {
    fn get<T>(&mut self, what: &str, r: Result<T, NvmlError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if unsupported(&e) => None,
            Err(e) => {
                self.problems
                    .push(format!("GPU {}: {what}: {e}", self.index));
                None
            }
        }
    }
}

/// "This board or driver can't tell": the field is left out, and that is not a failure.
fn unsupported(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported
            | NvmlError::FunctionNotFound
            | NvmlError::FailedToLoadSymbol(_)
            | NvmlError::NoData
    )
}

/// A driver symbol from nvml-wrapper's bindings; one the loaded library lacks is an error that
/// [`unsupported`] accepts.
fn sym<T: Copy, E: std::fmt::Display>(s: &Result<T, E>) -> Result<T, NvmlError> {
    s.as_ref()
        .copied()
        .map_err(|e| NvmlError::FailedToLoadSymbol(e.to_string()))
}

/// The clock-throttle reasons bitmask, all bits as the driver reports them (the wrapper's
/// `current_throttle_reasons` drops the bits it has no flag for). Drivers since R535 call it
/// `nvmlDeviceGetCurrentClocksEventReasons` and keep the old name as an alias, which a later one
/// may drop; older drivers have only the old name.
fn throttle_reasons(nvml: &Nvml, dev: &Device) -> Result<u64, NvmlError> {
    let lib = nvml.lib();
    let f = sym(&lib.nvmlDeviceGetCurrentClocksEventReasons)
        .or_else(|_| sym(&lib.nvmlDeviceGetCurrentClocksThrottleReasons))?;
    let mut reasons: c_ulonglong = 0;
    // SAFETY: a device handle from this library and a valid out-pointer, as nvml.h declares.
    nvml_try(unsafe { f(dev.handle(), &mut reasons) })?;
    Ok(reasons)
}

/// The intended fan speed in percent, through `nvmlDeviceGetFanSpeed` as DCGM reads it (the
/// wrapper has only the per-fan `_v2`).
fn fan_speed(nvml: &Nvml, dev: &Device) -> Result<u32, NvmlError> {
    let f = sym(&nvml.lib().nvmlDeviceGetFanSpeed)?;
    let mut speed: c_uint = 0;
    // SAFETY: as above.
    nvml_try(unsafe { f(dev.handle(), &mut speed) })?;
    Ok(speed)
}

/// KiB sent plus received over every NVLink since the driver loaded: NVML's per-link data
/// throughput counters (`NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_{TX,RX}`, scope = link), summed over
/// the links that answer, as DCGM sums them for `DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL`. A GPU none
/// of whose links answer has no NVLink: "not supported". (The wrapper's `field_values_for` cannot
/// set the scope.)
fn nvlink_kib_total(nvml: &Nvml, dev: &Device) -> Result<u64, NvmlError> {
    use sys::field_id::{
        NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
    };
    let f = sym(&nvml.lib().nvmlDeviceGetFieldValues)?;
    let mut values: Vec<sys::nvmlFieldValue_t> = (0..sys::NVML_NVLINK_MAX_LINKS)
        .flat_map(|link| {
            [
                NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
                NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX,
            ]
            .map(|id| {
                // SAFETY: nvmlFieldValue_t is plain data; all zeroes is a valid value.
                let mut v: sys::nvmlFieldValue_t = unsafe { std::mem::zeroed() };
                v.fieldId = id;
                v.scopeId = link;
                v
            })
        })
        .collect();
    // SAFETY: `values.len()` initialised entries, as nvml.h declares.
    nvml_try(unsafe { f(dev.handle(), values.len() as c_int, values.as_mut_ptr()) })?;
    let mut total: Option<u64> = None;
    for v in &values {
        if v.nvmlReturn != sys::nvmlReturn_enum_NVML_SUCCESS {
            continue;
        }
        // SAFETY: the union member read is the one `valueType` names.
        let kib = unsafe {
            match v.valueType {
                sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG => v.value.ullVal,
                sys::nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT => v.value.uiVal as u64,
                _ => continue,
            }
        };
        total = Some(total.unwrap_or(0).saturating_add(kib));
    }
    total.ok_or(NvmlError::NotSupported)
}

/// The GPM metrics behind DCGM's profiling fields, in [`GpuProfiling`]'s order (DCGM's own
/// mapping on Hopper: percentages become ratios, MiB/s become bytes/s).
const GPM_METRICS: [(GpmMetricId, &str); 7] = [
    (GpmMetricId::GraphicsUtil, "GPM graphics activity"),
    (GpmMetricId::SmUtil, "GPM SM activity"),
    (GpmMetricId::SmOccupancy, "GPM SM occupancy"),
    (GpmMetricId::AnyTensorUtil, "GPM tensor activity"),
    (GpmMetricId::DramBwUtil, "GPM DRAM activity"),
    (GpmMetricId::PcieTxPerSec, "GPM PCIe TX"),
    (GpmMetricId::PcieRxPerSec, "GPM PCIe RX"),
];

/// A GPM sample handle kept from one cycle to the next (owned: freed exactly once, by
/// [`GpmSamples`], before the NVML handle it came from is shut down).
struct HeldSample(sys::nvmlGpmSample_t);

// SAFETY: the handle is an opaque pointer into the driver, used only under the collector's
// mutex, by one thread at a time (not concurrently: nvml-wrapper's own GpmSample is Send, not
// Sync, for the same reason).
unsafe impl Send for HeldSample {}

/// Each GPU's last GPM sample, by UUID, and the GPUs whose GPM was found off limits.
#[derive(Default)]
struct GpmSamples {
    last: HashMap<String, HeldSample>,
    /// GPUs for which "no permission" was logged, so it is said once.
    refused: HashSet<String>,
}

impl GpmSamples {
    /// Whether the library has all the GPM calls. The wrapper frees a sample in `Drop` through
    /// `nvmlGpmSampleFree` and would panic without it, so no sample is taken unless it is there.
    fn available(nvml: &Nvml) -> bool {
        let lib = nvml.lib();
        lib.nvmlGpmQueryDeviceSupport.is_ok()
            && lib.nvmlGpmSampleAlloc.is_ok()
            && lib.nvmlGpmSampleFree.is_ok()
            && lib.nvmlGpmSampleGet.is_ok()
            && lib.nvmlGpmMetricsGet.is_ok()
    }

    /// Take this cycle's sample of `dev`, and the profiling fields between the last one and it.
    fn profile(&mut self, nvml: &Nvml, dev: &Device, uuid: &str, f: &mut Fields) -> GpuProfiling {
        let prev = self.take(nvml, uuid);
        if !GpmSamples::available(nvml) {
            return GpuProfiling::default();
        }
        let supported = match dev.gpm_support() {
            Ok(s) => s,
            Err(e) => {
                self.field::<bool>(f, uuid, "GPM support", Err(e));
                false
            }
        };
        if !supported {
            return GpuProfiling::default();
        }
        let Some(now) = self.field(f, uuid, "GPM sample", dev.gpm_sample()) else {
            return GpuProfiling::default();
        };
        let ids = GPM_METRICS.map(|(id, _)| id);
        let metrics = prev.map(|prev| gpm_metrics_get(nvml, &prev, &now, &ids));
        self.last
            .insert(uuid.to_string(), HeldSample(now.into_handle()));
        let Some(metrics) = metrics else {
            return GpuProfiling::default();
        };
        let Some(values) = self.field(f, uuid, "GPM metrics", metrics) else {
            return GpuProfiling::default();
        };
        let mut v = values.into_iter().zip(GPM_METRICS).map(|(r, (_, what))| {
            let r = r.map(|m| m.value).and_then(|x| {
                // NaN is DCGM's "blank": the interval had nothing to measure.
                if x.is_nan() {
                    Err(NvmlError::NoData)
                } else {
                    Ok(x)
                }
            });
            f.get(what, r)
        });
        let mut next = || v.next().flatten();
        let ratio = |p: Option<f64>| p.map(|p| p / 100.0);
        let bytes = |mib: Option<f64>| mib.map(|m| (m * 1048576.0).round());
        GpuProfiling {
            gr_engine_active: ratio(next()),
            sm_active: ratio(next()),
            sm_occupancy: ratio(next()),
            tensor_active: ratio(next()),
            dram_active: ratio(next()),
            pcie_tx_bytes_per_second: bytes(next()),
            pcie_rx_bytes_per_second: bytes(next()),
        }
    }

    /// A GPM call's result: "no permission" (GPM can be reserved to administrators) counts as
    /// unsupported like in [`unsupported`], said once per GPU in the log.
    fn field<T>(
        &mut self,
        f: &mut Fields,
        uuid: &str,
        what: &str,
        r: Result<T, NvmlError>,
    ) -> Option<T> {
        match r {
            Err(NvmlError::NoPermission) => {
                if self.refused.insert(uuid.to_string()) {
                    tracing::info!(gpu = %uuid, "no permission for NVML's GPM: no profiling (DCGM_FI_PROF_*) series for this GPU");
                }
                None
            }
            r => f.get(what, r),
        }
    }

    /// The last sample of `uuid`, now owned by the caller (dropping it frees it).
    fn take<'n>(&mut self, nvml: &'n Nvml, uuid: &str) -> Option<GpmSample<'n>> {
        let held = self.last.remove(uuid)?;
        // SAFETY: allocated through this library by `nvml.gpm_sample`, released from its
        // wrapper with `into_handle`, and removed from the map, so it is freed exactly once.
        Some(unsafe { GpmSample::from_handle(nvml, held.0) })
    }

    /// Free the samples of GPUs that are gone.
    fn keep_only(&mut self, nvml: &Nvml, uuids: &HashSet<String>) {
        let gone: Vec<String> = self
            .last
            .keys()
            .filter(|u| !uuids.contains(*u))
            .cloned()
            .collect();
        for uuid in gone {
            self.take(nvml, &uuid);
        }
    }

    fn free_all(&mut self, nvml: &Nvml) {
        let all: Vec<String> = self.last.keys().cloned().collect();
        for uuid in all {
            self.take(nvml, &uuid);
        }
    }
}

/// The compute and graphics processes on one GPU; a pid in both lists is counted once.
fn processes(f: &mut Fields, dev: &Device, uuid: &str, out: &mut Vec<GpuProcess>) {
    let start = out.len();
    let lists = [
        f.get("compute processes", dev.running_compute_processes()),
        f.get("graphics processes", dev.running_graphics_processes()),
    ];
    for p in lists.into_iter().flatten().flatten() {
        let used = match p.used_gpu_memory {
            UsedGpuMemory::Used(b) => Some(b),
            UsedGpuMemory::Unavailable => None,
        };
        if let Some(seen) = out[start..].iter_mut().find(|q| q.pid == p.pid) {
            seen.used_bytes = seen.used_bytes.max(used);
            continue;
        }
        out.push(GpuProcess {
            gpu_index: f.index,
            uuid: uuid.to_string(),
            pid: p.pid,
            comm: String::new(),
            used_bytes: used,
            container_id: None,
        });
    }
}

/// The Docker container a process belongs to, from the text of its `/proc/<pid>/cgroup`: the
/// first 64-hex container id in a cgroup path, as Docker lays them out with the cgroupfs driver
/// (`/docker/<id>`, or any `--cgroup-parent`) or the systemd driver
/// (`/system.slice/docker-<id>.scope`), on cgroup v1 or v2. For nested containers this is the
/// outermost one, the one the host's Docker daemon knows.
pub fn container_id_from_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .find_map(|seg| {
            let id = seg
                .strip_prefix("docker-")
                .and_then(|s| s.strip_suffix(".scope"))
                .unwrap_or(seg);
            is_container_id(id).then(|| id.to_string())
        })
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The host's boot id (`<procfs>/sys/kernel/random/boot_id`), if readable.
fn boot_id(procfs: &Path) -> Option<String> {
    std::fs::read_to_string(procfs.join("sys/kernel/random/boot_id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What [`STATE_FILE`] holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// The boot it was saved in: after a reboot the GPUs were reset and the XIDs are old news.
    #[serde(default)]
    boot_id: Option<String>,
    /// The last XID by GPU UUID, for the GPUs that reported one.
    #[serde(default)]
    last_xid: BTreeMap<String, u64>,
}

/// Where the watcher restores and saves the last XIDs.
struct XidStore {
    dir: StateDir,
    boot_id: Option<String>,
}

impl XidStore {
    /// The XIDs saved in this boot (none after a reboot, or when the file cannot be read).
    fn load(&self) -> HashMap<String, u64> {
        match self.dir.load::<Saved>(STATE_FILE) {
            Ok(Some(saved)) => {
                let same_boot = match (&saved.boot_id, &self.boot_id) {
                    (Some(then), Some(now)) => then == now,
                    _ => true,
                };
                if !same_boot {
                    tracing::info!(
                        "the host rebooted since the last GPU XIDs were saved; not restoring them"
                    );
                    return HashMap::new();
                }
                if !saved.last_xid.is_empty() {
                    tracing::info!(xids = ?saved.last_xid, "restored the last XID of each GPU");
                }
                saved.last_xid.into_iter().collect()
            }
            Ok(None) => HashMap::new(),
            Err(e) => {
                tracing::warn!(error = %e, "starting without the saved GPU XIDs");
                HashMap::new()
            }
        }
    }

    fn save(&self, last: &HashMap<String, u64>) {
        let saved = Saved {
            boot_id: self.boot_id.clone(),
            last_xid: last
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        };
        if let Err(e) = self.dir.save(STATE_FILE, &saved) {
            tracing::warn!(error = %e, "cannot save the GPU XIDs; they will not survive a restart");
        }
    }
}

/// The last XID error of each GPU whose XID events could be registered, kept by a thread that
/// waits on an NVML event set (with its own NVML handle, since event sets borrow it).
struct XidWatch {
    /// Last XID by GPU UUID; 0 until one arrives. A GPU is present once it is watched, or when
    /// it had an XID before a restart.
    last: Mutex<HashMap<String, u64>>,
    stop: AtomicBool,
    store: XidStore,
}

impl XidWatch {
    /// Start the watcher with the saved XIDs, and wait (at most 2 s) until its events are
    /// registered.
    fn start(lib: OsString, store: XidStore) -> Arc<XidWatch> {
        let watch = Arc::new(XidWatch {
            last: Mutex::new(store.load()),
            stop: AtomicBool::new(false),
            store,
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let w = watch.clone();
        let spawned = std::thread::Builder::new()
            .name("lookout-gpu-xid".into())
            .spawn(move || w.run(&lib, ready_tx));
        match spawned {
            Ok(_) => {
                let _ = ready_rx.recv_timeout(Duration::from_secs(2));
            }
            Err(e) => tracing::warn!(error = %e, "cannot start the GPU XID watcher"),
        }
        watch
    }

    fn values(&self) -> HashMap<String, u64> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn run(&self, lib: &OsStr, ready: mpsc::SyncSender<()>) {
        let nvml = match open(lib) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "GPU XID watcher: NVML not available");
                let _ = ready.send(());
                return;
            }
        };
        let set = self.register(&nvml);
        let _ = ready.send(());
        let Some(set) = set else { return };
        while !self.stop.load(Ordering::Relaxed) {
            match set.wait(XID_WAIT_MS) {
                Ok(ev) => {
                    let Some(x) = ev.event_data else { continue };
                    let value = match x {
                        XidError::Value(v) => v,
                        XidError::Unknown => 999,
                    };
                    if let Ok(uuid) = ev.device.uuid() {
                        tracing::warn!(gpu = %uuid, xid = value, "GPU reported an XID error");
                        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                        last.insert(uuid, value);
                        self.store.save(&last);
                    }
                }
                Err(NvmlError::Timeout) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "GPU XID wait failed");
                    std::thread::sleep(Duration::from_millis(XID_WAIT_MS as u64));
                }
            }
        }
    }

    /// Register XID events on every GPU that supports them. A failed registration frees the set
    /// (NVML's rule), so the set is rebuilt without the GPU that failed.
    fn register<'n>(&self, nvml: &'n Nvml) -> Option<nvml_wrapper::EventSet<'n>> {
        let count = nvml.device_count().ok()?;
        let mut candidates: Vec<(u32, String)> = (0..count)
            .filter_map(|i| {
                let d = nvml.device_by_index(i).ok()?;
                let types = d.supported_event_types().ok()?;
                types
                    .contains(EventTypes::CRITICAL_XID_ERROR)
                    .then_some((i, d.uuid().ok()?))
            })
            .collect();
        while !candidates.is_empty() {
            let mut set = Some(nvml.create_event_set().ok()?);
            let mut failed = None;
            for (k, (i, _)) in candidates.iter().enumerate() {
                let Ok(d) = nvml.device_by_index(*i) else {
                    failed = Some(k);
                    break;
                };
                match d.register_events(EventTypes::CRITICAL_XID_ERROR, set.take()?) {
                    Ok(s) => set = Some(s),
                    Err(e) => {
                        tracing::debug!(gpu = i, error = %e.error, "cannot watch XID events");
                        failed = Some(k);
                        break;
                    }
                }
            }
            match failed {
                Some(k) => {
                    candidates.remove(k);
                }
                None => {
                    let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                    for (_, uuid) in candidates {
                        last.entry(uuid).or_insert(0);
                    }
                    return set;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4c1b2a9d8e7f60112233445566778899aabbccddeeff00112233445566aabb";

    #[test]
    fn container_id_from_cgroupfs_v1() {
        let text = format!(
            "12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/system.slice/containerd.service\n"
        );
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn container_id_from_systemd_v2() {
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
        // A process in a sub-cgroup of the container, seen through a cgroup namespace.
        let text = format!("0::/../../system.slice/docker-{ID}.scope/init.scope\n");
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn container_id_from_systemd_v1_and_cgroup_parent() {
        let text = format!(
            "4:memory:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker-{ID}.scope\n"
        );
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
        let text = format!("0::/my-parent/{ID}\n");
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn nested_container_gives_the_outermost() {
        let inner = "aa".repeat(32);
        let text = format!("0::/docker/{ID}/docker/{inner}\n");
        assert_eq!(container_id_from_cgroup(&text).as_deref(), Some(ID));
    }

    #[test]
    fn no_container_outside_docker() {
        for text in [
            "0::/init.scope\n",
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            "12:pids:/\n11:memory:/user.slice\n",
            // Not 64 lowercase hex: too short, upper case, another runtime's prefix.
            "0::/docker/3f4c1b2a9d8e\n",
            &format!("0::/docker/{}\n", ID.to_uppercase()),
            &format!("0::/machine.slice/libpod-{ID}.scope\n"),
            "",
            "garbage without colons\n",
        ] {
            assert_eq!(container_id_from_cgroup(text), None, "{text:?}");
        }
    }

    #[test]
    fn missing_library_is_unavailable_on_auto_and_a_failure_on_true() {
        let lib: OsString = "/nonexistent/libnvidia-ml.so.1".into();
        let auto = GpuCollector::new(
            GpuMode::Auto,
            lib.clone(),
            Path::new("/proc"),
            StateDir::none(),
        );
        match auto.collect_blocking() {
            Err(CollectError::Unavailable(m)) => {
                assert!(
                    m.contains("/nonexistent/libnvidia-ml.so.1 not found"),
                    "{m}"
                )
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let on = GpuCollector::new(GpuMode::On, lib, Path::new("/proc"), StateDir::none());
        match on.collect_blocking() {
            Err(CollectError::Failed { message, partial }) => {
                assert!(message.contains("not found"), "{message}");
                assert!(partial.is_none());
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn failed_init_is_retried_only_after_the_retry_interval() {
        let lib: OsString = "/nonexistent/libnvidia-ml.so.1".into();
        let c = GpuCollector::new(
            GpuMode::On,
            lib.clone(),
            Path::new("/proc"),
            StateDir::none(),
        );
        for _ in 0..3 {
            assert!(c.collect_blocking().is_err());
        }
        assert_eq!(c.init_attempts(), 1, "retried within the minute");
        let c = GpuCollector::new(GpuMode::On, lib, Path::new("/proc"), StateDir::none())
            .with_retry(Duration::from_millis(0));
        for _ in 0..3 {
            assert!(c.collect_blocking().is_err());
        }
        assert_eq!(c.init_attempts(), 3);
    }
}
