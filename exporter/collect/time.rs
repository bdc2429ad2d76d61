//! node_exporter's `time` collector: the system time, the local time zone and its offset, and
//! the clocksources of `<sysfs>/devices/system/clocksource/clocksource<N>/`.

use std::path::Path;

use super::node::{numbered, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `node_time_seconds`, `node_time_zone_offset_seconds{time_zone}`, and
/// `node_time_clocksource_{available,current}_info{clocksource,device}` where sysfs has them.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut out = vec![Family::single(
        "node_time_seconds",
        "System time in seconds since epoch (1970).",
        Kind::Gauge,
        now,
    )];
    let (zone, offset) = local_zone(now as i64);
    let mut tz = Family::new(
        "node_time_zone_offset_seconds",
        "System time zone offset in seconds.",
        Kind::Gauge,
    );
    tz.push(&[("time_zone", &zone)], offset as f64);
    out.push(tz);
    out.extend(clocksources(
        &paths.sysfs.join("devices/system/clocksource"),
    )?);
    Ok(out)
}

unsafe extern "C" {
    /// POSIX `tzset(3)` (not in the libc crate): (re)reads TZ, else /etc/localtime.
    fn tzset();
}

/// The local time zone's abbreviation and offset from UTC (s) at `t` (Unix time), as the C
/// library sees them (TZ, else /etc/localtime), like Go's `time.Now().Zone()`.
pub fn local_zone(t: i64) -> (String, i64) {
    let t = t as libc::time_t;
    // SAFETY: tm is plain data; localtime_r fills it from `t`, and tm_zone, where set, points
    // to a NUL-terminated string owned by the C library that stays valid while TZ is unchanged.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return ("UTC".into(), 0);
        }
        let zone = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        (zone, tm.tm_gmtoff)
    }
}

/// The clocksource families from `dir` (`<sysfs>/devices/system/clocksource`): none where it
/// is absent; an unreadable `clocksource<N>` is an error naming its file.
pub fn clocksources(dir: &Path) -> Result<Vec<Family>, NodeError> {
    let mut available = Family::new(
        "node_time_clocksource_available_info",
        "Available clocksources read from '/sys/devices/system/clocksource'.",
        Kind::Gauge,
    );
    let mut current = Family::new(
        "node_time_clocksource_current_info",
        "Current clocksource read from '/sys/devices/system/clocksource'.",
        Kind::Gauge,
    );
    for (device, base) in numbered(dir, "clocksource")? {
        for source in read_file(&base.join("available_clocksource"))?.split_ascii_whitespace() {
            available.push(&[("clocksource", source), ("device", &device)], 1.0);
        }
        let cur = read_file(&base.join("current_clocksource"))?;
        let cur = cur.trim();
        if !cur.is_empty() {
            current.push(&[("clocksource", cur), ("device", &device)], 1.0);
        }
    }
    Ok([available, current]
        .into_iter()
        .filter(|f| !f.samples.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocksources_of_each_device() {
        let dir = tempfile::tempdir().unwrap();
        for (n, avail, cur) in [
            (0, "tsc hpet acpi_pm \n", "tsc\n"),
            (1, "arch_sys_counter\n", "arch_sys_counter\n"),
        ] {
            let d = dir.path().join(format!("clocksource{n}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("available_clocksource"), avail).unwrap();
            std::fs::write(d.join("current_clocksource"), cur).unwrap();
        }
        std::fs::create_dir(dir.path().join("power")).unwrap();
        let f = clocksources(dir.path()).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].samples.len(), 4);
        assert_eq!(
            f[0].samples[1].0,
            [
                ("clocksource".to_string(), "hpet".to_string()),
                ("device".into(), "0".into())
            ]
        );
        assert_eq!(f[1].samples[1].0[0].1, "arch_sys_counter");
        // Absent: no families, no error; a device without its files: an error naming it.
        assert!(clocksources(&dir.path().join("none")).unwrap().is_empty());
        std::fs::create_dir(dir.path().join("clocksource2")).unwrap();
        let e = clocksources(dir.path()).unwrap_err().to_string();
        assert!(e.contains("clocksource2/available_clocksource"), "{e}");
    }

    #[test]
    fn zone_is_named() {
        let (zone, offset) = local_zone(1_700_000_000);
        assert!(!zone.is_empty());
        assert!(offset.abs() <= 14 * 3600);
    }
}
