//! node_exporter's `hwmon` collector: each chip of `<sysfs>/class/hwmon/hwmon<N>/` (and its
//! `device/`, where older drivers put their attributes), read as node_exporter reads them
//! (Documentation/hwmon/sysfs-interface.rst): files `<type><N>_<item>` of the types node_exporter
//! knows, in the units the kernel gives (millidegrees, millivolts, milliamperes, microwatts,
//! microjoules), as `node_hwmon_<type>[_<item>]_<unit>{chip,sensor}`.
//!
//! The chip is named as node_exporter names it, after the device its `device` link leads to:
//! `<parent>_<device>` (`platform_coretemp_0`, `nvme_nvme0`), else the `name` attribute, else
//! `hwmon<N>`, lower-cased and with every other character than `[a-z0-9:_]` made `_`. Its `name`
//! is `node_hwmon_chip_names{chip,chip_name}`, each `<sensor>_label` is
//! `node_hwmon_sensor_label{chip,label,sensor}`. A file that cannot be read (a driver answering
//! EAGAIN or EIO) or does not hold a number is skipped, as node_exporter skips it. Without chips
//! (most VMs) the collector is not available here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::node::{numbered, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// The sensor types node_exporter reads; other files are skipped.
const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// A sensor's items (`input`, `max`, `label`, ... ; `""` for a bare `<type><N>` file) by name.
type Sensor = BTreeMap<String, String>;

/// One chip: its name for the `chip` label, its `name` attribute, its sensors by
/// (type, number).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chip {
    pub chip: String,
    pub chip_name: Option<String>,
    pub sensors: BTreeMap<(String, u64), Sensor>,
}

/// `node_hwmon_*`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let dir = paths.sysfs.join("class/hwmon");
    let mut chips = Vec::new();
    for (n, path) in numbered(&dir, "hwmon")? {
        if path.is_dir() {
            chips.push(read_chip(&n, &path)?);
        }
    }
    if chips.is_empty() {
        return Err(NodeError::Unavailable(format!(
            "no hwmon chips in {}",
            dir.display()
        )));
    }
    Ok(families(&chips))
}

/// node_exporter's clean-up of names: lower case, `[^a-z0-9:_]` to `_`, no `_` at either end.
pub fn clean(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | ':' | '_' => c,
            _ => '_',
        })
        .collect();
    s.trim_matches('_').to_string()
}

/// Split a file name into (type, number, item) as node_exporter's
/// `^([^0-9]+)([0-9]*)?(_(.+))?$` does: `temp1_crit_alarm` is (temp, 1, crit_alarm),
/// `update_interval` is (update_interval, 0, ""). None when it does not match.
pub fn explode(name: &str) -> Option<(&str, u64, &str)> {
    let p = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    if p == 0 {
        return None;
    }
    let digits = name[p..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(name.len(), |d| p + d);
    let rest = &name[digits..];
    let item = if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('_').filter(|r| !r.is_empty())
    };
    if let Some(item) = item {
        let num = if digits > p {
            name[p..digits].parse().ok()?
        } else {
            0
        };
        return Some((&name[..p], num, item));
    }
    // The regular expression backtracks: the type ends at an earlier `_`, the rest is the item.
    let k = name[1..p].rfind('_')? + 1;
    (k + 1 < name.len()).then(|| (&name[..k], 0, &name[k + 1..]))
}

/// A sysfs attribute as node_exporter reads it (its trailing newlines cut, bytes that are not
/// UTF-8 replaced); None when it cannot be read.
fn attr(path: &Path) -> Option<String> {
    let raw = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&raw).trim_matches('\n').to_string())
}

/// The sensor files of one directory into `sensors`.
fn collect_sensors(
    dir: &Path,
    sensors: &mut BTreeMap<(String, u64), Sensor>,
) -> Result<(), NodeError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| NodeError::Failed(format!("cannot read {}: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let Some((kind, num, item)) = explode(&name) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) {
            continue;
        }
        // A directory (`power/`) or an unreadable attribute gives nothing.
        if let Some(value) = attr(&dir.join(&name)) {
            sensors
                .entry((kind.to_string(), num))
                .or_default()
                .insert(item.to_string(), value);
        }
    }
    Ok(())
}

/// One `hwmon<N>` directory.
pub fn read_chip(n: &str, dir: &Path) -> Result<Chip, NodeError> {
    let mut sensors = BTreeMap::new();
    collect_sensors(dir, &mut sensors)?;
    let device = dir.join("device");
    if device.is_dir() {
        collect_sensors(&device, &mut sensors)?;
    }
    let chip_name = attr(&dir.join("name"))
        .map(|s| clean(&s))
        .filter(|s| !s.is_empty());
    Ok(Chip {
        chip: chip_label(n, dir, chip_name.as_deref()),
        chip_name,
        sensors,
    })
}

/// The chip's name: the device's parent and name, else the `name` attribute, else `hwmon<N>`.
fn chip_label(n: &str, dir: &Path, name: Option<&str>) -> String {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let dev = device
            .file_name()
            .map(|s| clean(&s.to_string_lossy()))
            .unwrap_or_default();
        let parent = device
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| clean(&s.to_string_lossy()))
            .unwrap_or_default();
        match (parent.is_empty(), dev.is_empty()) {
            (false, false) => return format!("{parent}_{dev}"),
            (true, false) => return dev,
            _ => {}
        }
    }
    if let Some(name) = name {
        return name.to_string();
    }
    let real = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|s| clean(&s.to_string_lossy())))
        .filter(|s| !s.is_empty());
    real.unwrap_or_else(|| format!("hwmon{n}"))
}

/// The families in order of first appearance; a series seen twice (two chips of one name)
/// is kept once.
#[derive(Default)]
struct Out {
    families: Vec<Family>,
    index: HashMap<String, usize>,
    seen: HashSet<(String, Vec<(String, String)>)>,
}

impl Out {
    fn push(&mut self, name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], v: f64) {
        let key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !self.seen.insert((name.to_string(), key)) {
            return;
        }
        let i = *self.index.entry(name.to_string()).or_insert_with(|| {
            self.families.push(Family::new(name, help, kind));
            self.families.len() - 1
        });
        self.families[i].push(labels, v);
    }
}

/// The families of the chips, with node_exporter's names, help texts and units.
pub fn families(chips: &[Chip]) -> Vec<Family> {
    let mut out = Out::default();
    for chip in chips {
        if let Some(name) = &chip.chip_name {
            out.push(
                "node_hwmon_chip_names",
                "Annotation metric for human-readable chip names",
                Kind::Gauge,
                &[("chip", &chip.chip), ("chip_name", name)],
                1.0,
            );
        }
        for ((kind, num), items) in &chip.sensors {
            sensor(&mut out, &chip.chip, kind, *num, items);
        }
    }
    out.families
}

fn sensor(out: &mut Out, chip: &str, kind: &str, num: u64, items: &Sensor) {
    let sensor = format!("{kind}{num}");
    let labels = [("chip", chip), ("sensor", sensor.as_str())];
    if let Some(label) = items.get("label") {
        if !clean(label).is_empty() {
            out.push(
                "node_hwmon_sensor_label",
                "Label for given chip and sensor",
                Kind::Gauge,
                &[("chip", chip), ("label", label), ("sensor", &sensor)],
                1.0,
            );
        }
    }
    let bare = items.get("").map(String::as_str);
    match kind {
        "beep_enable" => {
            let on = if bare == Some("1") { 1.0 } else { 0.0 };
            out.push(
                "node_hwmon_beep_enabled",
                "Hardware beep enabled",
                Kind::Gauge,
                &labels,
                on,
            );
            return;
        }
        "vrm" | "update_interval" => {
            if let Some(v) = bare.and_then(|b| b.trim().parse::<f64>().ok()) {
                let (name, help, v) = if kind == "vrm" {
                    (
                        "node_hwmon_voltage_regulator_version",
                        "Hardware voltage regulator",
                        v,
                    )
                } else {
                    (
                        "node_hwmon_update_interval_seconds",
                        "Hardware monitor update interval",
                        v * 0.001,
                    )
                };
                out.push(name, help, Kind::Gauge, &labels, v);
            }
            return;
        }
        _ => {}
    }
    let prefix = format!("node_hwmon_{kind}");
    for (item, value) in items {
        if item == "label" {
            continue;
        }
        let name = if item == "input" {
            if bare.is_some() {
                format!("{prefix}_input")
            } else {
                prefix.clone()
            }
        } else if item.is_empty() {
            prefix.clone()
        } else {
            format!("{prefix}_{}", clean(item))
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, help, kind_, v) = element(kind, item, name, v);
        out.push(&name, &help, kind_, &labels, v);
    }
}

/// The name, help, type and value node_exporter gives item `item` of a sensor of type `kind`.
fn element(kind: &str, item: &str, name: String, v: f64) -> (String, String, Kind, f64) {
    let g = Kind::Gauge;
    if item == "fault" || item == "alarm" {
        return (
            name,
            format!("Hardware sensor {item} status ({kind})"),
            g,
            v,
        );
    }
    if item == "beep" {
        return (
            format!("{name}_enabled"),
            "Hardware monitor sensor has beeping enabled".into(),
            g,
            v,
        );
    }
    match kind {
        "in" | "cpu" => (
            format!("{name}_volts"),
            format!("Hardware monitor for voltage ({item})"),
            g,
            v * 0.001,
        ),
        "temp" if item != "type" => {
            let item = if item.is_empty() { "input" } else { item };
            (
                format!("{name}_celsius"),
                format!("Hardware monitor for temperature ({item})"),
                g,
                v * 0.001,
            )
        }
        "curr" => (
            format!("{name}_amps"),
            format!("Hardware monitor for current ({item})"),
            g,
            v * 0.001,
        ),
        "energy" => (
            format!("{name}_joule_total"),
            format!("Hardware monitor for joules used so far ({item})"),
            Kind::Counter,
            v / 1000000.0,
        ),
        "power" if item == "accuracy" => (
            name,
            "Hardware monitor power meter accuracy, as a ratio".into(),
            g,
            v / 1000000.0,
        ),
        "power"
            if matches!(
                item,
                "average_interval" | "average_interval_min" | "average_interval_max"
            ) =>
        {
            (
                format!("{name}_seconds"),
                format!("Hardware monitor power usage update interval ({item})"),
                g,
                v * 0.001,
            )
        }
        "power" => (
            format!("{name}_watt"),
            format!("Hardware monitor for power usage in watts ({item})"),
            g,
            v / 1000000.0,
        ),
        "humidity" => (
            name,
            format!(
                "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the \
                 humidity as a percentage) ({item})"
            ),
            g,
            v / 1000000.0,
        ),
        "fan" if matches!(item, "input" | "min" | "max" | "target") => (
            format!("{name}_rpm"),
            format!("Hardware monitor for fan revolutions per minute ({item})"),
            g,
            v,
        ),
        _ => (
            name,
            format!("Hardware monitor {kind} element {item}"),
            g,
            v,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_split_like_node_exporters_regex() {
        assert_eq!(explode("temp1_input"), Some(("temp", 1, "input")));
        assert_eq!(explode("temp1_crit_alarm"), Some(("temp", 1, "crit_alarm")));
        assert_eq!(explode("fan12"), Some(("fan", 12, "")));
        assert_eq!(explode("update_interval"), Some(("update_interval", 0, "")));
        assert_eq!(explode("beep_enable"), Some(("beep_enable", 0, "")));
        assert_eq!(explode("in0_input"), Some(("in", 0, "input")));
        assert_eq!(explode("foo_bar1x"), Some(("foo", 0, "bar1x")));
        assert_eq!(explode("temp1x"), None);
        assert_eq!(explode("1temp"), None);
        assert_eq!(explode("temp1_"), None);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean("coretemp.0"), "coretemp_0");
        assert_eq!(clean("Package id 0"), "package_id_0");
        assert_eq!(clean("--"), "");
        assert_eq!(clean("0000:00:1d.0"), "0000:00:1d_0");
    }

    /// (type, number, items) of each sensor.
    type Spec<'a> = (&'a str, u64, &'a [(&'a str, &'a str)]);

    fn chip(sensors: &[Spec]) -> Chip {
        Chip {
            chip: "platform_x_0".into(),
            chip_name: Some("x".into()),
            sensors: sensors
                .iter()
                .map(|(k, n, items)| {
                    (
                        (k.to_string(), *n),
                        items
                            .iter()
                            .map(|(i, v)| (i.to_string(), v.to_string()))
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn units_and_names() {
        let c = chip(&[
            ("curr", 1, &[("input", "1500")]),
            ("energy", 1, &[("input", "2500000")]),
            ("humidity", 1, &[("input", "450000")]),
            (
                "power",
                1,
                &[
                    ("average", "12500000"),
                    ("average_interval", "1000"),
                    ("accuracy", "50000"),
                ],
            ),
            ("update_interval", 0, &[("", "2000")]),
            ("vrm", 0, &[("", "9.1")]),
            ("beep_enable", 0, &[("", "1")]),
            (
                "temp",
                1,
                &[
                    ("input", "41500"),
                    ("type", "4"),
                    ("fault", "0"),
                    ("label", "--"),
                ],
            ),
            ("in", 0, &[("input", "1040"), ("beep", "1")]),
            ("pwm", 1, &[("", "128"), ("enable", "x")]),
        ]);
        let f = families(&[c]);
        let get = |n: &str| {
            let fam = f
                .iter()
                .find(|f| f.name == n)
                .unwrap_or_else(|| panic!("{n}"));
            (fam.samples[0].1, fam.help.clone(), fam.kind)
        };
        assert_eq!(get("node_hwmon_curr_amps").0, 1.5);
        assert_eq!(get("node_hwmon_energy_joule_total").2, Kind::Counter);
        assert_eq!(get("node_hwmon_energy_joule_total").0, 2.5);
        assert_eq!(get("node_hwmon_humidity").0, 0.45);
        assert_eq!(get("node_hwmon_power_average_watt").0, 12.5);
        assert_eq!(get("node_hwmon_power_average_interval_seconds").0, 1.0);
        assert_eq!(get("node_hwmon_power_accuracy").0, 0.05);
        assert_eq!(get("node_hwmon_update_interval_seconds").0, 2.0);
        assert_eq!(get("node_hwmon_voltage_regulator_version").0, 9.1);
        assert_eq!(get("node_hwmon_beep_enabled").0, 1.0);
        assert_eq!(get("node_hwmon_temp_celsius").0, 41.5);
        assert_eq!(
            get("node_hwmon_temp_type").1,
            "Hardware monitor temp element type"
        );
        assert_eq!(
            get("node_hwmon_temp_fault").1,
            "Hardware sensor fault status (temp)"
        );
        assert_eq!(get("node_hwmon_in_volts").0, 1.04);
        assert_eq!(get("node_hwmon_in_beep_enabled").0, 1.0);
        assert_eq!(get("node_hwmon_pwm").0, 128.0);
        // Not a number: skipped. A label that cleans to nothing: no label series.
        assert!(!f.iter().any(|f| f.name == "node_hwmon_pwm_enable"));
        assert!(!f.iter().any(|f| f.name == "node_hwmon_sensor_label"));
        let s = &f
            .iter()
            .find(|f| f.name == "node_hwmon_update_interval_seconds")
            .unwrap()
            .samples[0]
            .0;
        assert_eq!(s[1], ("sensor".into(), "update_interval0".into()));
    }
}
