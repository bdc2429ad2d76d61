//! node_exporter's `timex` collector: the kernel clock's discipline state from `adjtimex(2)`
//! (read only: `modes = 0`), in node_exporter's units. Not under `paths.*`: the clock is the
//! kernel's, the same in every container.

use super::node::NodeError;
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `adjtimex`'s return value when the clock is not synchronised (TIME_ERROR).
const TIME_ERROR: i32 = 5;
/// `status` bit: `offset` and `jitter` are in ns rather than µs (STA_NANO).
const STA_NANO: i64 = 0x2000;
/// Scaled ppm (`freq`, `ppsfreq`, `stabil`): ppm with a 16-bit fraction (see adjtimex(2) NOTES).
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

/// What `adjtimex` returned, as plain numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timex {
    /// The clock state (the call's return value).
    pub state: i32,
    pub offset: i64,
    pub freq: i64,
    pub maxerror: i64,
    pub esterror: i64,
    pub status: i64,
    pub constant: i64,
    pub tick: i64,
    pub ppsfreq: i64,
    pub jitter: i64,
    pub shift: i64,
    pub stabil: i64,
    pub jitcnt: i64,
    pub calcnt: i64,
    pub errcnt: i64,
    pub stbcnt: i64,
    pub tai: i64,
}

/// `node_timex_*` for this machine's clock. Without the permission to ask (a seccomp profile
/// that refuses it), not available here, as in node_exporter.
pub fn read(_paths: &Paths) -> Result<Vec<Family>, NodeError> {
    Ok(families(&adjtimex()?))
}

/// `adjtimex(2)` with `modes = 0`: reads, changes nothing.
pub fn adjtimex() -> Result<Timex, NodeError> {
    // SAFETY: timex is plain data; with modes 0 the kernel only fills it in.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    t.modes = 0;
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::ENOSYS) => {
                NodeError::Unavailable(format!("adjtimex: {e}"))
            }
            _ => NodeError::Failed(format!("adjtimex: {e}")),
        });
    }
    Ok(Timex {
        state,
        offset: t.offset as i64,
        freq: t.freq as i64,
        maxerror: t.maxerror as i64,
        esterror: t.esterror as i64,
        status: t.status as i64,
        constant: t.constant as i64,
        tick: t.tick as i64,
        ppsfreq: t.ppsfreq as i64,
        jitter: t.jitter as i64,
        shift: t.shift as i64,
        stabil: t.stabil as i64,
        jitcnt: t.jitcnt as i64,
        calcnt: t.calcnt as i64,
        errcnt: t.errcnt as i64,
        stbcnt: t.stbcnt as i64,
        tai: t.tai as i64,
    })
}

/// node_exporter's families and units for one reading.
pub fn families(t: &Timex) -> Vec<Family> {
    let divisor = if t.status & STA_NANO != 0 { 1e9 } else { 1e6 };
    let sync = if t.state == TIME_ERROR { 0.0 } else { 1.0 };
    let g = Kind::Gauge;
    let c = Kind::Counter;
    [
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            g,
            t.esterror as f64 / 1e6,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            g,
            1.0 + t.freq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            g,
            t.constant as f64,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            g,
            t.maxerror as f64 / 1e6,
        ),
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            g,
            t.offset as f64 / divisor,
        ),
        (
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            c,
            t.calcnt as f64,
        ),
        (
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            c,
            t.errcnt as f64,
        ),
        (
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            g,
            t.ppsfreq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            g,
            t.jitter as f64 / divisor,
        ),
        (
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            c,
            t.jitcnt as f64,
        ),
        (
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            g,
            t.shift as f64,
        ),
        (
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            c,
            t.stbcnt as f64,
        ),
        (
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            g,
            t.stabil as f64 / PPM16FRAC,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            g,
            t.status as f64,
        ),
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            g,
            sync,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            g,
            t.tai as f64,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            g,
            t.tick as f64 / 1e6,
        ),
    ]
    .into_iter()
    .map(|(name, help, kind, v)| Family::single(name, help, kind, v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(f: &[Family], name: &str) -> f64 {
        f.iter().find(|f| f.name == name).unwrap().samples[0].1
    }

    #[test]
    fn units_as_node_exporter() {
        let t = Timex {
            state: 0,
            offset: 1500,
            freq: 65536 * 10, // 10 ppm
            maxerror: 16_000_000,
            esterror: 250,
            status: 0x0001,
            tick: 10_000,
            ..Default::default()
        };
        let f = families(&t);
        assert_eq!(f.len(), 17);
        assert_eq!(get(&f, "node_timex_offset_seconds"), 0.0015);
        assert_eq!(get(&f, "node_timex_frequency_adjustment_ratio"), 1.00001);
        assert_eq!(get(&f, "node_timex_maxerror_seconds"), 16.0);
        assert_eq!(get(&f, "node_timex_estimated_error_seconds"), 0.00025);
        assert_eq!(get(&f, "node_timex_tick_seconds"), 0.01);
        assert_eq!(get(&f, "node_timex_sync_status"), 1.0);
        // STA_NANO: the offset is in ns; TIME_ERROR: not synchronised.
        let f = families(&Timex {
            state: TIME_ERROR,
            offset: 1500,
            status: STA_NANO | 0x40,
            ..t
        });
        assert_eq!(get(&f, "node_timex_offset_seconds"), 0.0000015);
        assert_eq!(get(&f, "node_timex_sync_status"), 0.0);
        assert_eq!(get(&f, "node_timex_status"), (0x2040) as f64);
    }

    #[test]
    fn reads_this_machines_clock() {
        match adjtimex() {
            Ok(t) => assert!(t.tick > 0),
            Err(NodeError::Unavailable(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}
