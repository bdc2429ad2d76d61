//! lookout's own process: CPU, memory, file descriptors and start time, as client_golang's
//! process collector reports them for every Go exporter (`process_*`).

/// One reading of `/proc/self`, taken each cycle. Plain data: `collect::process` reads it,
/// `exposition` writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time since the process started, in seconds (`process_cpu_seconds_total`).
    pub cpu_seconds_total: f64,
    /// Resident set size in bytes (`process_resident_memory_bytes`): what lookout costs the host.
    pub resident_memory_bytes: u64,
    /// Virtual memory size in bytes (`process_virtual_memory_bytes`).
    pub virtual_memory_bytes: u64,
    /// The soft address-space limit (`RLIMIT_AS`) in bytes; `None` when unlimited
    /// (`process_virtual_memory_max_bytes`).
    pub virtual_memory_max_bytes: Option<u64>,
    /// Open file descriptors (`process_open_fds`): a leak shows here long before `EMFILE`.
    pub open_fds: u64,
    /// The soft `RLIMIT_NOFILE`; `None` when unlimited (`process_max_fds`).
    pub max_fds: Option<u64>,
    /// Unix time the process started, in seconds (`process_start_time_seconds`): a restart
    /// shows as a jump.
    pub start_time_seconds: f64,
}
