//! node_exporter's `thermal_zone` collector: `<sysfs>/class/thermal/thermal_zone<N>/{type,temp,
//! policy,mode}` and `cooling_device<N>/{type,cur_state,max_state}`
//! (Documentation/driver-api/thermal/sysfs-api.rst). Temperatures are millidegrees Celsius,
//! exported in degrees. As in node_exporter, a zone whose `mode` is `disabled` is skipped, and
//! so is a zone or device whose files cannot be read (a sensor that answers EAGAIN or ENODATA,
//! like a Wi-Fi card's while its interface is down); a value that is not a number is a failure.
//! Without zones and cooling devices (most VMs) the collector is not available here.

use std::path::Path;

use super::node::{numbered, parse_error, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// One thermal zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    /// `<N>` of `thermal_zone<N>`.
    pub zone: String,
    pub kind: String,
    /// Millidegrees Celsius.
    pub temp: i64,
}

/// One cooling device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoolingDevice {
    /// `<N>` of `cooling_device<N>`.
    pub name: String,
    pub kind: String,
    /// May be -1 (intel_powerclamp while idle injection is off).
    pub cur_state: i64,
    pub max_state: i64,
}

/// `node_thermal_zone_temp{type,zone}`, `node_cooling_device_{cur,max}_state{name,type}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let dir = paths.sysfs.join("class/thermal");
    let mut zones = Vec::new();
    for (n, path) in numbered(&dir, "thermal_zone")? {
        if let Some(z) = read_zone(&n, &path)? {
            zones.push(z);
        }
    }
    let mut devices = Vec::new();
    for (n, path) in numbered(&dir, "cooling_device")? {
        if let Some(d) = read_cooling_device(&n, &path)? {
            devices.push(d);
        }
    }
    if zones.is_empty() && devices.is_empty() {
        return Err(NodeError::Unavailable(format!(
            "no thermal zones or cooling devices in {}",
            dir.display()
        )));
    }
    Ok(families(&zones, &devices))
}

/// A sysfs attribute, trimmed; None when it cannot be read.
fn attr(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn number(path: &Path, text: &str) -> Result<i64, NodeError> {
    text.parse()
        .map_err(|_| parse_error(path, format!("expected a number, got {text:?}")))
}

/// One `thermal_zone<N>`: None when disabled or unreadable.
pub fn read_zone(zone: &str, dir: &Path) -> Result<Option<Zone>, NodeError> {
    if attr(&dir.join("mode")).as_deref() == Some("disabled") {
        return Ok(None);
    }
    let (Some(kind), Some(_policy), Some(temp)) = (
        attr(&dir.join("type")),
        attr(&dir.join("policy")),
        attr(&dir.join("temp")),
    ) else {
        return Ok(None);
    };
    Ok(Some(Zone {
        zone: zone.to_string(),
        kind,
        temp: number(&dir.join("temp"), &temp)?,
    }))
}

/// One `cooling_device<N>`: None when unreadable.
pub fn read_cooling_device(name: &str, dir: &Path) -> Result<Option<CoolingDevice>, NodeError> {
    let (Some(kind), Some(max), Some(cur)) = (
        attr(&dir.join("type")),
        attr(&dir.join("max_state")),
        attr(&dir.join("cur_state")),
    ) else {
        return Ok(None);
    };
    Ok(Some(CoolingDevice {
        name: name.to_string(),
        kind,
        max_state: number(&dir.join("max_state"), &max)?,
        cur_state: number(&dir.join("cur_state"), &cur)?,
    }))
}

/// The families, in node_exporter's order; one without series is left out.
pub fn families(zones: &[Zone], devices: &[CoolingDevice]) -> Vec<Family> {
    let mut temp = Family::new(
        "node_thermal_zone_temp",
        "Zone temperature in Celsius",
        Kind::Gauge,
    );
    for z in zones {
        temp.push(
            &[("type", &z.kind), ("zone", &z.zone)],
            z.temp as f64 / 1000.0,
        );
    }
    let mut cur = Family::new(
        "node_cooling_device_cur_state",
        "Current throttle state of the cooling device",
        Kind::Gauge,
    );
    let mut max = Family::new(
        "node_cooling_device_max_state",
        "Maximum throttle state of the cooling device",
        Kind::Gauge,
    );
    for d in devices {
        let l = [("name", d.name.as_str()), ("type", d.kind.as_str())];
        cur.push(&l, d.cur_state as f64);
        max.push(&l, d.max_state as f64);
    }
    [temp, cur, max]
        .into_iter()
        .filter(|f| !f.samples.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::node::testing::write;

    #[test]
    fn zones_and_devices() {
        let root = tempfile::tempdir().unwrap();
        let t = root.path().join("class/thermal");
        let zone = [
            ("type", "x86_pkg_temp"),
            ("policy", "step_wise"),
            ("temp", "-1500"),
        ];
        write(&t.join("thermal_zone10"), &zone);
        write(&t.join("thermal_zone2"), &zone);
        // Disabled, and unreadable (no temp): skipped.
        write(
            &t.join("thermal_zone3"),
            &[("mode", "disabled"), zone[0], zone[1], zone[2]],
        );
        write(&t.join("thermal_zone4"), &zone[..2]);
        write(
            &t.join("cooling_device0"),
            &[
                ("type", "intel_powerclamp"),
                ("cur_state", "-1"),
                ("max_state", "50"),
            ],
        );
        let paths = Paths {
            procfs: root.path().join("proc"),
            sysfs: root.path().to_path_buf(),
            rootfs: root.path().to_path_buf(),
        };
        let f = read(&paths).unwrap();
        assert_eq!(f.len(), 3);
        let zones: Vec<&str> = f[0].samples.iter().map(|s| s.0[1].1.as_str()).collect();
        assert_eq!(zones, ["2", "10"]);
        assert_eq!(f[0].samples[0].1, -1.5);
        assert_eq!(f[1].samples[0].1, -1.0);
        assert_eq!(f[2].samples[0].1, 50.0);
        write(&t.join("thermal_zone2"), &[("temp", "hot")]);
        assert!(matches!(read(&paths), Err(NodeError::Failed(m)) if m.contains("thermal_zone2")));
    }
}
