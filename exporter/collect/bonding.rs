//! node_exporter's `bonding` collector: the bonds named in `<sysfs>/class/net/bonding_masters`,
//! each with its slaves (`<bond>/bonding/slaves`) and their MII status
//! (`<bond>/lower_<slave>/bonding_slave/mii_status`, `slave_<slave>` on older kernels)
//! (Documentation/networking/bonding.rst). As in node_exporter, a slave counts as active when
//! its MII status is `up`, and a bond or slave whose file cannot be read is a failure naming
//! it. Without `bonding_masters` (no bonding driver) the collector is not available here.

use std::path::Path;

use super::node::{read_file, read_optional, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `node_bonding_slaves{master}`, `node_bonding_active{master}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let net = paths.sysfs.join("class/net");
    let masters_path = net.join("bonding_masters");
    let Some(masters) = read_optional(&masters_path)? else {
        return Err(NodeError::Unavailable(format!(
            "no {}",
            masters_path.display()
        )));
    };
    let mut bonds = Vec::new();
    for master in masters.split_ascii_whitespace() {
        let (slaves, active) = read_bond(&net, master)?;
        bonds.push((master.to_string(), slaves, active));
    }
    Ok(families(bonds))
}

/// One bond: (slaves, slaves whose MII status is up).
pub fn read_bond(net: &Path, master: &str) -> Result<(u64, u64), NodeError> {
    let dir = net.join(master);
    let slaves = read_file(&dir.join("bonding/slaves"))?;
    let (mut n, mut up) = (0, 0);
    for slave in slaves.split_ascii_whitespace() {
        let lower = dir.join(format!("lower_{slave}/bonding_slave/mii_status"));
        let status = match read_optional(&lower)? {
            Some(s) => s,
            None => read_file(&dir.join(format!("slave_{slave}/bonding_slave/mii_status")))?,
        };
        n += 1;
        if status.trim() == "up" {
            up += 1;
        }
    }
    Ok((n, up))
}

/// The two families, bonds by name; no bonds, no families.
pub fn families(mut bonds: Vec<(String, u64, u64)>) -> Vec<Family> {
    bonds.sort();
    let mut active = Family::new(
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
        Kind::Gauge,
    );
    let mut slaves = Family::new(
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
        Kind::Gauge,
    );
    for (master, n, up) in &bonds {
        active.push(&[("master", master)], *up as f64);
        slaves.push(&[("master", master)], *n as f64);
    }
    [active, slaves]
        .into_iter()
        .filter(|f| !f.samples.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, v: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{v}\n")).unwrap();
    }

    #[test]
    fn bonds_and_their_slaves() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths {
            procfs: root.path().join("proc"),
            sysfs: root.path().to_path_buf(),
            rootfs: root.path().to_path_buf(),
        };
        assert!(matches!(read(&paths), Err(NodeError::Unavailable(_))));
        let net = root.path().join("class/net");
        write(&net.join("bonding_masters"), "bond1 bond0");
        write(&net.join("bond0/bonding/slaves"), "eth0 eth1");
        write(&net.join("bond0/lower_eth0/bonding_slave/mii_status"), "up");
        write(
            &net.join("bond0/lower_eth1/bonding_slave/mii_status"),
            "down",
        );
        // An older kernel's `slave_` prefix; a bond without slaves.
        write(&net.join("bond1/bonding/slaves"), "eth2");
        write(&net.join("bond1/slave_eth2/bonding_slave/mii_status"), "up");
        let f = read(&paths).unwrap();
        assert_eq!(f[0].name, "node_bonding_active");
        let got: Vec<(&str, f64, f64)> = f[0]
            .samples
            .iter()
            .zip(&f[1].samples)
            .map(|(a, s)| (a.0[0].1.as_str(), a.1, s.1))
            .collect();
        assert_eq!(got, [("bond0", 1.0, 2.0), ("bond1", 1.0, 1.0)]);
        // A slave without its status: a failure naming it.
        write(&net.join("bond1/bonding/slaves"), "eth2 eth3");
        assert!(matches!(read(&paths), Err(NodeError::Failed(m)) if m.contains("eth3")));
        // No bonds: no series.
        write(&net.join("bonding_masters"), "");
        assert!(read(&paths).unwrap().is_empty());
    }
}
