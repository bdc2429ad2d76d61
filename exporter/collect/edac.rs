//! node_exporter's `edac` collector: the error counts of each memory controller
//! `<sysfs>/devices/system/edac/mc/mc<N>/` and of its chip-select rows `csrow<M>/`
//! (Documentation/admin-guide/ras.rst). As in node_exporter, the errors the driver could not
//! place on a row (`ce_noinfo_count`, `ue_noinfo_count`) are the row `unknown`'s, and a count
//! that cannot be read or is not a number is a failure naming its file. Without memory
//! controllers (no EDAC driver: most VMs) the collector is not available here.

use std::path::Path;

use super::node::{numbered, parse_number, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// One memory controller's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Controller {
    /// `<N>` of `mc<N>`.
    pub controller: String,
    pub ce_count: u64,
    pub ce_noinfo_count: u64,
    pub ue_count: u64,
    pub ue_noinfo_count: u64,
    /// (`<M>` of `csrow<M>`, correctable, uncorrectable).
    pub csrows: Vec<(String, u64, u64)>,
}

/// `node_edac_{,un}correctable_errors_total{controller}`,
/// `node_edac_csrow_{,un}correctable_errors_total{controller,csrow}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let dir = paths.sysfs.join("devices/system/edac/mc");
    let mut controllers = Vec::new();
    for (n, path) in numbered(&dir, "mc")? {
        controllers.push(read_controller(&n, &path)?);
    }
    if controllers.is_empty() {
        return Err(NodeError::Unavailable(format!(
            "no memory controllers in {}",
            dir.display()
        )));
    }
    Ok(families(&controllers))
}

fn count(path: &Path) -> Result<u64, NodeError> {
    parse_number(path, &read_file(path)?)
}

/// One `mc<N>` directory.
pub fn read_controller(controller: &str, dir: &Path) -> Result<Controller, NodeError> {
    let mut csrows = Vec::new();
    for (m, row) in numbered(dir, "csrow")? {
        let ce = count(&row.join("ce_count"))?;
        let ue = count(&row.join("ue_count"))?;
        csrows.push((m, ce, ue));
    }
    Ok(Controller {
        controller: controller.to_string(),
        ce_count: count(&dir.join("ce_count"))?,
        ce_noinfo_count: count(&dir.join("ce_noinfo_count"))?,
        ue_count: count(&dir.join("ue_count"))?,
        ue_noinfo_count: count(&dir.join("ue_noinfo_count"))?,
        csrows,
    })
}

/// The four families, in node_exporter's order.
pub fn families(controllers: &[Controller]) -> Vec<Family> {
    let mut ce = Family::new(
        "node_edac_correctable_errors_total",
        "Total correctable memory errors.",
        Kind::Counter,
    );
    let mut row_ce = Family::new(
        "node_edac_csrow_correctable_errors_total",
        "Total correctable memory errors for this csrow.",
        Kind::Counter,
    );
    let mut row_ue = Family::new(
        "node_edac_csrow_uncorrectable_errors_total",
        "Total uncorrectable memory errors for this csrow.",
        Kind::Counter,
    );
    let mut ue = Family::new(
        "node_edac_uncorrectable_errors_total",
        "Total uncorrectable memory errors.",
        Kind::Counter,
    );
    for c in controllers {
        let mc = c.controller.as_str();
        ce.push(&[("controller", mc)], c.ce_count as f64);
        ue.push(&[("controller", mc)], c.ue_count as f64);
        for (row, n_ce, n_ue) in &c.csrows {
            row_ce.push(&[("controller", mc), ("csrow", row)], *n_ce as f64);
            row_ue.push(&[("controller", mc), ("csrow", row)], *n_ue as f64);
        }
        let unknown = [("controller", mc), ("csrow", "unknown")];
        row_ce.push(&unknown, c.ce_noinfo_count as f64);
        row_ue.push(&unknown, c.ue_noinfo_count as f64);
    }
    vec![ce, row_ce, row_ue, ue]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::node::testing::write;

    fn paths(root: &Path) -> Paths {
        crate::collect::node::testing::paths(root, root)
    }

    #[test]
    fn controllers_and_rows() {
        let root = tempfile::tempdir().unwrap();
        let p = paths(root.path());
        assert!(matches!(read(&p), Err(NodeError::Unavailable(_))));
        let mc = root.path().join("devices/system/edac/mc");
        write(&mc, &[("mc_ignored", "")]);
        assert!(matches!(read(&p), Err(NodeError::Unavailable(_))));
        let counts = [
            ("ce_count", "5"),
            ("ce_noinfo_count", "1"),
            ("ue_count", "0"),
            ("ue_noinfo_count", "0"),
        ];
        write(&mc.join("mc10"), &counts);
        write(&mc.join("mc2"), &counts);
        write(
            &mc.join("mc2/csrow0"),
            &[("ce_count", "4"), ("ue_count", "0")],
        );
        let f = read(&p).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_edac_correctable_errors_total",
                "node_edac_csrow_correctable_errors_total",
                "node_edac_csrow_uncorrectable_errors_total",
                "node_edac_uncorrectable_errors_total"
            ]
        );
        assert_eq!(f[0].samples[0].0[0].1, "2");
        assert_eq!(f[0].samples[1].0[0].1, "10");
        assert_eq!(f[1].samples.len(), 3);
        assert_eq!(f[1].samples[0].0[1].1, "0");
        assert_eq!(f[1].samples[0].1, 4.0);
        assert_eq!(f[1].samples[1].0[1].1, "unknown");
        write(&mc.join("mc2/csrow0"), &[("ue_count", "many")]);
        assert!(matches!(read(&p), Err(NodeError::Failed(m)) if m.contains("csrow0")));
        std::fs::remove_file(mc.join("mc10/ue_count")).unwrap();
        write(&mc.join("mc2/csrow0"), &[("ue_count", "0")]);
        assert!(matches!(read(&p), Err(NodeError::Failed(m)) if m.contains("mc10")));
    }
}
