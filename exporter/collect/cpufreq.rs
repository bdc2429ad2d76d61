//! node_exporter's `cpufreq` collector: each CPU's `<sysfs>/devices/system/cpu/cpu<N>/cpufreq/`
//! (a link to its policy directory; Documentation/admin-guide/pm/cpufreq.rst), whose
//! frequencies are in kHz: `cpuinfo_{cur,min,max}_freq` (what the hardware runs at and allows)
//! and `scaling_{cur,min,max}_freq` (what the governor asks for), as hertz, and the governor in
//! use among `scaling_available_governors`. A file the driver does not provide, or that only
//! root may read (`cpuinfo_cur_freq`), gives no series; a CPU without `cpufreq/` is skipped; with
//! none (a VM, a kernel without cpufreq) the collector is not available here.

use std::path::Path;

use super::node::{parse_error, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// One CPU's cpufreq directory; the frequencies in kHz.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuFreq {
    /// The CPU's number, as in `cpu<N>`.
    pub cpu: String,
    pub cpuinfo_cur: Option<u64>,
    pub cpuinfo_min: Option<u64>,
    pub cpuinfo_max: Option<u64>,
    pub scaling_cur: Option<u64>,
    pub scaling_min: Option<u64>,
    pub scaling_max: Option<u64>,
    pub governor: Option<String>,
    pub available_governors: Vec<String>,
}

/// `node_cpu_frequency_*hertz{cpu}`, `node_cpu_scaling_frequency_*hertz{cpu}` and
/// `node_cpu_scaling_governor{cpu,governor}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let dir = paths.sysfs.join("devices/system/cpu");
    let mut cpus: Vec<(u64, String)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let n = name.strip_prefix("cpu")?.parse().ok()?;
                Some((n, name))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(NodeError::Failed(format!(
                "cannot read {}: {e}",
                dir.display()
            )))
        }
    };
    cpus.sort();
    let mut out = Vec::new();
    for (n, name) in cpus {
        let freq = dir.join(name).join("cpufreq");
        if freq.is_dir() {
            out.push(read_cpu(&n.to_string(), &freq)?);
        }
    }
    if out.is_empty() {
        return Err(NodeError::Unavailable(format!(
            "no {}/cpu*/cpufreq",
            dir.display()
        )));
    }
    Ok(families(&out))
}

/// One CPU's `cpufreq/` directory.
pub fn read_cpu(cpu: &str, dir: &Path) -> Result<CpuFreq, NodeError> {
    let khz = |file: &str| -> Result<Option<u64>, NodeError> {
        let path = dir.join(file);
        match text(&path)? {
            None => Ok(None),
            Some(t) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| parse_error(&path, format!("expected kHz, got {:?}", t.trim()))),
        }
    };
    Ok(CpuFreq {
        cpu: cpu.to_string(),
        cpuinfo_cur: khz("cpuinfo_cur_freq")?,
        cpuinfo_min: khz("cpuinfo_min_freq")?,
        cpuinfo_max: khz("cpuinfo_max_freq")?,
        scaling_cur: khz("scaling_cur_freq")?,
        scaling_min: khz("scaling_min_freq")?,
        scaling_max: khz("scaling_max_freq")?,
        governor: text(&dir.join("scaling_governor"))?
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
        available_governors: text(&dir.join("scaling_available_governors"))?
            .map(|t| t.split_ascii_whitespace().map(String::from).collect())
            .unwrap_or_default(),
    })
}

/// A cpufreq file: None when absent or readable by root only, as for node_exporter.
fn text(path: &Path) -> Result<Option<String>, NodeError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(NodeError::Failed(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The families of the CPUs, in node_exporter's order; one no CPU has is left out.
pub fn families(cpus: &[CpuFreq]) -> Vec<Family> {
    type Get = fn(&CpuFreq) -> Option<u64>;
    let specs: [(&str, &str, Get); 6] = [
        (
            "node_cpu_frequency_hertz",
            "Current cpu thread frequency in hertz.",
            |c| c.cpuinfo_cur,
        ),
        (
            "node_cpu_frequency_min_hertz",
            "Minimum cpu thread frequency in hertz.",
            |c| c.cpuinfo_min,
        ),
        (
            "node_cpu_frequency_max_hertz",
            "Maximum cpu thread frequency in hertz.",
            |c| c.cpuinfo_max,
        ),
        (
            "node_cpu_scaling_frequency_hertz",
            "Current scaled CPU thread frequency in hertz.",
            |c| c.scaling_cur,
        ),
        (
            "node_cpu_scaling_frequency_min_hertz",
            "Minimum scaled CPU thread frequency in hertz.",
            |c| c.scaling_min,
        ),
        (
            "node_cpu_scaling_frequency_max_hertz",
            "Maximum scaled CPU thread frequency in hertz.",
            |c| c.scaling_max,
        ),
    ];
    let mut out = Vec::new();
    for (name, help, get) in specs {
        let mut f = Family::new(name, help, Kind::Gauge);
        for c in cpus {
            if let Some(khz) = get(c) {
                f.push(&[("cpu", &c.cpu)], khz as f64 * 1000.0);
            }
        }
        if !f.samples.is_empty() {
            out.push(f);
        }
    }
    let mut gov = Family::new(
        "node_cpu_scaling_governor",
        "Current enabled CPU frequency governor.",
        Kind::Gauge,
    );
    for c in cpus {
        let Some(current) = &c.governor else {
            continue;
        };
        for g in &c.available_governors {
            let on = if g == current { 1.0 } else { 0.0 };
            gov.push(&[("cpu", &c.cpu), ("governor", g)], on);
        }
    }
    if !gov.samples.is_empty() {
        out.push(gov);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khz_to_hertz_and_governors() {
        let c = CpuFreq {
            cpu: "0".into(),
            cpuinfo_min: Some(800_000),
            scaling_cur: Some(2_400_000),
            governor: Some("powersave".into()),
            available_governors: vec!["performance".into(), "powersave".into()],
            ..Default::default()
        };
        let f = families(&[c]);
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_cpu_frequency_min_hertz",
                "node_cpu_scaling_frequency_hertz",
                "node_cpu_scaling_governor"
            ]
        );
        assert_eq!(f[0].samples[0].1, 800e6);
        assert_eq!(f[1].samples[0].1, 2.4e9);
        assert_eq!(f[2].samples[0].1, 0.0);
        assert_eq!(f[2].samples[1].1, 1.0);
        assert_eq!(
            f[2].samples[1].0[1],
            ("governor".into(), "powersave".into())
        );
    }

    #[test]
    fn a_cpufreq_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("scaling_max_freq"), "3600000\n").unwrap();
        std::fs::write(dir.path().join("scaling_governor"), "schedutil\n").unwrap();
        let c = read_cpu("3", dir.path()).unwrap();
        assert_eq!(c.scaling_max, Some(3_600_000));
        assert_eq!(c.cpuinfo_cur, None);
        assert_eq!(c.governor.as_deref(), Some("schedutil"));
        assert!(c.available_governors.is_empty());
        std::fs::write(dir.path().join("scaling_min_freq"), "fast\n").unwrap();
        assert!(
            matches!(read_cpu("3", dir.path()), Err(NodeError::Failed(m)) if m.contains("scaling_min_freq"))
        );
    }
}
