//! The host facts rules read from the node_exporter-style collectors: rates between two
//! snapshots, the used share of kernel tables, the clock, software RAID and the hottest sensor.
//!
//! Each fact is read from the family its collector put in the snapshot (`stat`, `conntrack`,
//! `filefd`, `timex`, `vmstat`, `mdadm`, `hwmon`, `thermal_zone`): the collector stays the one
//! parser of its file. A collector that is off, failed or is not available here leaves its
//! facts `None`, which the host variables turn into a missing reading, never into 0.

use std::collections::{BTreeMap, BTreeSet};

use crate::snapshot::{sample_label, Family, Snapshot};

/// What the host variables read beyond [`crate::snapshot::HostStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFacts {
    /// `node_context_switches_total`'s rate between the previous snapshot and this one.
    pub context_switches_per_second: Option<f64>,
    /// (`node_nf_conntrack_entries`, `node_nf_conntrack_entries_limit`).
    pub conntrack: Option<(f64, f64)>,
    /// (`node_filefd_allocated`, `node_filefd_maximum`).
    pub filefd: Option<(f64, f64)>,
    /// `node_timex_offset_seconds`.
    pub clock_offset_seconds: Option<f64>,
    /// `node_timex_sync_status == 1`.
    pub clock_synchronized: Option<bool>,
    /// `node_vmstat_oom_kill`'s increase since the previous snapshot.
    pub oom_kills: Option<f64>,
    pub raid: Option<Raid>,
    pub hottest: Option<Hottest>,
}

/// The software RAID arrays (`node_md_*`) that need attention.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Raid {
    /// Arrays with fewer active disks than they need, or inactive, by name.
    pub degraded: Vec<String>,
    /// Failed disks over every array (`node_md_disks{state="failed"}`).
    pub disks_failed: f64,
}

/// The hottest temperature sensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Hottest {
    pub celsius: f64,
    /// Which one: `<chip> <sensor>` (and its label) as on `node_hwmon_*`, or
    /// `thermal_zone<N> (<type>)`.
    pub sensor: String,
}

impl NodeFacts {
    /// The facts of `snap`; `prev` (the snapshot before) gives the rates.
    pub fn new(snap: &Snapshot, prev: Option<&Snapshot>) -> NodeFacts {
        let value = |name: &str| snap.node_family(name).and_then(Family::value);
        let pair = |a: &str, b: &str| Some((value(a)?, value(b)?));
        NodeFacts {
            context_switches_per_second: increase(snap, prev, "node_context_switches_total")
                .map(|(d, dt)| d / dt),
            conntrack: pair(
                "node_nf_conntrack_entries",
                "node_nf_conntrack_entries_limit",
            ),
            filefd: pair("node_filefd_allocated", "node_filefd_maximum"),
            clock_offset_seconds: value("node_timex_offset_seconds"),
            clock_synchronized: value("node_timex_sync_status").map(|v| v == 1.0),
            oom_kills: increase(snap, prev, "node_vmstat_oom_kill").map(|(d, _)| d),
            raid: raid(snap),
            hottest: hottest(snap),
        }
    }
}

/// A counter's increase from `prev` to `snap` and the seconds between them; None on the first
/// snapshot, without the counter in either, or when it went back.
fn increase(snap: &Snapshot, prev: Option<&Snapshot>, name: &str) -> Option<(f64, f64)> {
    let prev = prev?;
    let now = snap.node_family(name)?.value()?;
    let before = prev.node_family(name)?.value()?;
    let dt = snap.taken_at - prev.taken_at;
    (dt > 0.0 && now >= before).then_some((now - before, dt))
}

/// The arrays' state from `node_md_disks`, `node_md_disks_required` and `node_md_state`:
/// degraded as node-mixin's NodeRAIDDegraded has it (required minus active disks > 0), or
/// inactive as awesome-prometheus-alerts' HostRaidArrayGotInactive. Without arrays the
/// collector exports nothing: no array is degraded, when it succeeded.
fn raid(snap: &Snapshot) -> Option<Raid> {
    let Some(disks) = snap.node_family("node_md_disks") else {
        return snap.collector_succeeded("mdadm").then(Raid::default);
    };
    let mut out = Raid::default();
    let mut active: BTreeMap<&str, f64> = BTreeMap::new();
    for (labels, v) in &disks.samples {
        let device = sample_label(labels, "device").unwrap_or("");
        match sample_label(labels, "state") {
            Some("failed") => out.disks_failed += v,
            Some("active") => {
                active.insert(device, *v);
            }
            _ => {}
        }
    }
    let mut degraded: BTreeSet<&str> = BTreeSet::new();
    for (labels, required) in snap
        .node_family("node_md_disks_required")
        .map(|f| f.samples.as_slice())
        .unwrap_or_default()
    {
        let device = sample_label(labels, "device").unwrap_or("");
        if active.get(device).copied().unwrap_or(0.0) < *required {
            degraded.insert(device);
        }
    }
    for (labels, v) in snap
        .node_family("node_md_state")
        .map(|f| f.samples.as_slice())
        .unwrap_or_default()
    {
        if sample_label(labels, "state") == Some("inactive") && *v == 1.0 {
            degraded.insert(sample_label(labels, "device").unwrap_or(""));
        }
    }
    out.degraded = degraded.into_iter().map(String::from).collect();
    Some(out)
}

/// The hottest of the hwmon temperature sensors (`node_hwmon_temp_celsius`) and the thermal
/// zones (`node_thermal_zone_temp`). As in awesome-prometheus-alerts' HostPhysicalComponentTooHot,
/// AMD's `Tctl` (a control value with an offset, not a temperature) is left out; so is a sensor
/// whose `fault` attribute is set.
fn hottest(snap: &Snapshot) -> Option<Hottest> {
    let mut best: Option<Hottest> = None;
    let mut consider = |celsius: f64, sensor: &dyn Fn() -> String| {
        if celsius.is_finite() && best.as_ref().is_none_or(|b| celsius > b.celsius) {
            best = Some(Hottest {
                celsius,
                sensor: sensor(),
            });
        }
    };
    if let Some(temps) = snap.node_family("node_hwmon_temp_celsius") {
        let of = |family: &str, chip: &str, sensor: &str| -> Option<&[(String, String)]> {
            snap.node_family(family)?
                .samples
                .iter()
                .find(|(l, _)| {
                    sample_label(l, "chip") == Some(chip)
                        && sample_label(l, "sensor") == Some(sensor)
                })
                .map(|(l, _)| l.as_slice())
        };
        let faulty = |chip: &str, sensor: &str| {
            snap.node_family("node_hwmon_temp_fault")
                .into_iter()
                .flat_map(|f| &f.samples)
                .any(|(l, v)| {
                    *v == 1.0
                        && sample_label(l, "chip") == Some(chip)
                        && sample_label(l, "sensor") == Some(sensor)
                })
        };
        for (l, v) in &temps.samples {
            let chip = sample_label(l, "chip").unwrap_or("");
            let sensor = sample_label(l, "sensor").unwrap_or("");
            let label = of("node_hwmon_sensor_label", chip, sensor)
                .and_then(|l| sample_label(l, "label"))
                .map(str::trim);
            if faulty(chip, sensor) || label.is_some_and(|l| l.eq_ignore_ascii_case("tctl")) {
                continue;
            }
            consider(*v, &|| match label {
                Some(label) => format!("{chip} {sensor} ({label})"),
                None => format!("{chip} {sensor}"),
            });
        }
    }
    if let Some(zones) = snap.node_family("node_thermal_zone_temp") {
        for (l, v) in &zones.samples {
            consider(*v, &|| {
                format!(
                    "thermal_zone{} ({})",
                    sample_label(l, "zone").unwrap_or(""),
                    sample_label(l, "type").unwrap_or("")
                )
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use evalexpr::Value;

    use crate::collect::node::{reader, testing};
    use crate::collect::timex::{families as timex_families, Timex};
    use crate::engine::fill::FillHistory;
    use crate::engine::vars::{targets, Target};
    use crate::snapshot::{CollectorStatus, HostStats, NodePart, Part, Snapshot};

    /// A snapshot at `t` of the node collectors `names` over the fixture tree `root`, assembled
    /// as a cycle assembles it (a collector that is not available here has no part).
    fn snapshot(root: &Path, names: &[&'static str], t: f64) -> Snapshot {
        let paths = testing::paths(root, &root.join("sys"));
        let mut parts = Vec::new();
        let mut statuses = Vec::new();
        for name in names {
            match reader(name).unwrap()(&paths) {
                Ok(families) => {
                    parts.push(Part::Node(NodePart { families }));
                    statuses.push(CollectorStatus::succeeded(name));
                }
                Err(_) => statuses.push(CollectorStatus {
                    success: false,
                    exported: false,
                    ..CollectorStatus::succeeded(name)
                }),
            }
        }
        parts.push(Part::Host(Box::default()));
        Snapshot::assemble(t, parts, statuses, None, Default::default())
    }

    fn host(snap: &Snapshot, prev: Option<&Snapshot>) -> Target {
        targets(snap, prev, "box", &FillHistory::default())
            .into_iter()
            .find(|t| t.key == "host")
            .unwrap()
    }

    fn get(t: &Target, name: &str) -> Value {
        t.get(name).cloned().unwrap()
    }

    const ALL: &[&str] = &[
        "stat",
        "conntrack",
        "filefd",
        "vmstat",
        "mdadm",
        "hwmon",
        "thermal_zone",
    ];

    fn proc_files(root: &Path, ctxt: u64, oom_kill: u64) {
        testing::write(
            &root.join("proc"),
            &[
                (
                    "stat",
                    &format!(
                        "cpu  10 0 5 100 0 0 0 0 0 0\ncpu0 10 0 5 100 0 0 0 0 0 0\n\
                         intr 50\nctxt {ctxt}\nbtime 1700000000\nprocesses 70\n\
                         procs_running 2\nprocs_blocked 0"
                    ),
                ),
                (
                    "vmstat",
                    &format!("nr_free_pages 5\npgfault 100\noom_kill {oom_kill}"),
                ),
                (
                    "mdstat",
                    "Personalities : [raid1]\n\
                     md0 : active raid1 sdb1[1](F) sda1[0]\n      \
                     1048512 blocks super 1.2 [2/1] [U_]\n      \n\
                     md1 : active raid1 sdd1[1] sdc1[0]\n      \
                     1048512 blocks super 1.2 [2/2] [UU]\n      \n\
                     md3 : inactive sde1[0](S)\n      \
                     2096128 blocks super 1.2\n       \n\
                     unused devices: <none>",
                ),
            ],
        );
        testing::write(&root.join("proc/sys/fs"), &[("file-nr", "1024 0 4096")]);
        testing::write(
            &root.join("proc/sys/net/netfilter"),
            &[("nf_conntrack_count", "900"), ("nf_conntrack_max", "1000")],
        );
    }

    fn sys_files(root: &Path, zone_millicelsius: i64) {
        let hwmon = root.join("sys/class/hwmon");
        testing::write(
            &hwmon.join("hwmon0"),
            &[
                ("name", "coretemp"),
                ("temp1_input", "45000"),
                ("temp1_label", "Package id 0"),
                ("temp2_input", "81000"),
                ("temp2_label", "Core 1"),
            ],
        );
        // AMD's Tctl reads hot by design; a sensor with its fault flag set reads nonsense.
        testing::write(
            &hwmon.join("hwmon1"),
            &[
                ("name", "k10temp"),
                ("temp1_input", "95000"),
                ("temp1_label", "Tctl"),
            ],
        );
        testing::write(
            &hwmon.join("hwmon2"),
            &[
                ("name", "nvme"),
                ("temp1_input", "127000"),
                ("temp1_fault", "1"),
            ],
        );
        testing::write(
            &root.join("sys/class/thermal/thermal_zone0"),
            &[
                ("type", "acpitz"),
                ("policy", "step_wise"),
                ("temp", &zone_millicelsius.to_string()),
            ],
        );
    }

    #[test]
    fn host_variables_from_the_collectors_families() {
        let dir = tempfile::tempdir().unwrap();
        proc_files(dir.path(), 1000, 3);
        sys_files(dir.path(), 50000);
        let first = snapshot(dir.path(), ALL, 1000.0);
        let h = host(&first, None);
        // No rate or increase on the first snapshot.
        assert_eq!(get(&h, "context_switches_per_second"), Value::Empty);
        assert_eq!(get(&h, "oom_kills"), Value::Empty);
        assert_eq!(get(&h, "conntrack_used_percent"), Value::Float(90.0));
        assert_eq!(get(&h, "filefd_used_percent"), Value::Float(25.0));
        // md0 lost a disk, md3 is inactive; md1 is whole.
        assert_eq!(get(&h, "raid_degraded"), Value::Boolean(true));
        assert_eq!(
            get(&h, "raid_degraded_devices"),
            Value::String("md0, md3".into())
        );
        assert_eq!(get(&h, "raid_disks_failed"), Value::Float(1.0));
        assert_eq!(get(&h, "hardware_temperature_celsius"), Value::Float(81.0));
        assert_eq!(
            get(&h, "hardware_temperature_sensor"),
            Value::String("coretemp temp2 (Core 1)".into())
        );

        // 30 s later: 3000 more context switches, 2 more OOM kills; the zone is the hottest.
        proc_files(dir.path(), 4000, 5);
        sys_files(dir.path(), 85500);
        let second = snapshot(dir.path(), ALL, 1030.0);
        let h = host(&second, Some(&first));
        assert_eq!(get(&h, "context_switches_per_second"), Value::Float(100.0));
        assert_eq!(get(&h, "oom_kills"), Value::Float(2.0));
        assert_eq!(get(&h, "hardware_temperature_celsius"), Value::Float(85.5));
        assert_eq!(
            get(&h, "hardware_temperature_sensor"),
            Value::String("thermal_zone0 (acpitz)".into())
        );
        // Counters that went back (a reboot between the two): no rate.
        let h = host(&first, Some(&second));
        assert_eq!(get(&h, "context_switches_per_second"), Value::Empty);
        assert_eq!(get(&h, "oom_kills"), Value::Empty);
    }

    #[test]
    fn a_collector_that_is_off_or_not_available_gives_missing_readings_not_zero() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing under /proc or /sys: each collector fails or is not available here.
        let prev = snapshot(dir.path(), ALL, 1000.0);
        let snap = snapshot(dir.path(), ALL, 1030.0);
        let off = snapshot(dir.path(), &[], 1030.0);
        for s in [&snap, &off] {
            let h = host(s, Some(&prev));
            for name in [
                "context_switches_per_second",
                "conntrack_used_percent",
                "filefd_used_percent",
                "clock_offset_seconds",
                "clock_synchronized",
                "oom_kills",
                "raid_degraded",
                "raid_degraded_devices",
                "raid_disks_failed",
                "hardware_temperature_celsius",
                "hardware_temperature_sensor",
            ] {
                assert_eq!(get(&h, name), Value::Empty, "{name}");
            }
        }
        // A conntrack limit of 0 (a broken sysctl): no share, rather than a division by 0.
        testing::write(
            &dir.path().join("proc/sys/net/netfilter"),
            &[("nf_conntrack_count", "0"), ("nf_conntrack_max", "0")],
        );
        let h = host(&snapshot(dir.path(), &["conntrack"], 1060.0), None);
        assert_eq!(get(&h, "conntrack_used_percent"), Value::Empty);
    }

    #[test]
    fn mdadm_without_arrays_is_known_healthy() {
        let dir = tempfile::tempdir().unwrap();
        testing::write(
            &dir.path().join("proc"),
            &[("mdstat", "Personalities : \nunused devices: <none>")],
        );
        let h = host(&snapshot(dir.path(), &["mdadm"], 1000.0), None);
        assert_eq!(get(&h, "raid_degraded"), Value::Boolean(false));
        assert_eq!(
            get(&h, "raid_degraded_devices"),
            Value::String(String::new())
        );
        assert_eq!(get(&h, "raid_disks_failed"), Value::Float(0.0));
    }

    #[test]
    fn the_clock_from_timex() {
        let mut snap = Snapshot {
            host: Some(Box::new(HostStats::default())),
            ..Default::default()
        };
        // 80 ms off (in µs: STA_NANO unset), synchronised.
        snap.node = timex_families(&Timex {
            offset: -80_000,
            ..Default::default()
        });
        let h = host(&snap, None);
        assert_eq!(get(&h, "clock_offset_seconds"), Value::Float(-0.08));
        assert_eq!(get(&h, "clock_synchronized"), Value::Boolean(true));
        // TIME_ERROR: the kernel says the clock is not synchronised.
        snap.node = timex_families(&Timex {
            state: 5,
            ..Default::default()
        });
        let h = host(&snap, None);
        assert_eq!(get(&h, "clock_synchronized"), Value::Boolean(false));
        assert_eq!(get(&h, "clock_offset_seconds"), Value::Float(0.0));
    }
}
