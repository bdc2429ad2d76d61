//! node_exporter's `netclass` collector: the attributes of each `<sysfs>/class/net/<iface>/`
//! (Documentation/ABI/testing/sysfs-class-net). Every entry of `class/net` but a plain file
//! (`bonding_masters`) is an interface; none is ignored (node_exporter's default
//! `--collector.netclass.ignored-devices` is `^$`). As in node_exporter (procfs' sysfs reader),
//! an attribute that cannot be read (absent, or EINVAL as `speed` and `carrier` answer on a
//! down interface) or is not a number gives no series; numbers may be hexadecimal (`flags`
//! `0x1003`). One difference: a `speed` of -1 (unknown) gives no series, where node_exporter
//! 1.5 exports -125000. Without `class/net` the collector is not available here.

use std::path::Path;

use super::node::{AttrDir, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// The numeric attributes exported, in node_exporter's (the family names') order: (family
/// suffix, file, kind).
const NUMERIC: &[(&str, &str, Kind)] = &[
    ("address_assign_type", "addr_assign_type", Kind::Gauge),
    ("carrier", "carrier", Kind::Gauge),
    ("carrier_changes_total", "carrier_changes", Kind::Counter),
    (
        "carrier_down_changes_total",
        "carrier_down_count",
        Kind::Counter,
    ),
    (
        "carrier_up_changes_total",
        "carrier_up_count",
        Kind::Counter,
    ),
    ("device_id", "dev_id", Kind::Gauge),
    ("dormant", "dormant", Kind::Gauge),
    ("flags", "flags", Kind::Gauge),
    ("iface_id", "ifindex", Kind::Gauge),
    ("iface_link", "iflink", Kind::Gauge),
    ("iface_link_mode", "link_mode", Kind::Gauge),
    ("mtu_bytes", "mtu", Kind::Gauge),
    ("name_assign_type", "name_assign_type", Kind::Gauge),
    ("net_dev_group", "netdev_group", Kind::Gauge),
    ("protocol_type", "type", Kind::Gauge),
    ("speed_bytes", "speed", Kind::Gauge),
    ("transmit_queue_length", "tx_queue_len", Kind::Gauge),
];

/// One interface's attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Iface {
    pub device: String,
    pub address: String,
    pub broadcast: String,
    pub duplex: String,
    pub ifalias: String,
    pub operstate: String,
    /// The attributes of [`NUMERIC`], in its order; None when unreadable or not a number.
    pub numbers: Vec<Option<i64>>,
}

/// `node_network_info`, `node_network_up` and the `node_network_*` properties, per device.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let dir = paths.sysfs.join("class/net");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NodeError::Unavailable(format!("no {}", dir.display())))
        }
        Err(e) => {
            return Err(NodeError::Failed(format!(
                "cannot read {}: {e}",
                dir.display()
            )))
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            if e.file_type().ok()?.is_file() {
                return None;
            }
            e.file_name().into_string().ok()
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(NodeError::Unavailable(format!(
            "no interfaces in {}",
            dir.display()
        )));
    }
    let mut ifaces = Vec::new();
    for name in names {
        // An interface removed since the listing is left out.
        if let Some(iface) = read_iface(&name, &dir.join(&name))? {
            ifaces.push(iface);
        }
    }
    Ok(families(&ifaces))
}

/// The sysfs attribute `name` of an open directory, trimmed; None when it is absent or the
/// kernel refuses it (EINVAL, EOPNOTSUPP, ENODATA, permission), a failure otherwise.
fn attr_in(dir: &AttrDir, name: &str) -> Result<Option<String>, NodeError> {
    refused_is_none(dir.read(name), &dir.join(name))
}

fn refused_is_none(r: std::io::Result<String>, path: &Path) -> Result<Option<String>, NodeError> {
    match r {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) || matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENODATA | libc::EAGAIN)
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

/// A number as Go's `strconv.ParseInt(s, 0, 64)` reads sysfs' (decimal, or `0x` hexadecimal).
pub fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<i64>().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// One interface's directory; None when it is gone.
pub fn read_iface(device: &str, dir: &Path) -> Result<Option<Iface>, NodeError> {
    let dir = match AttrDir::open(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(NodeError::Failed(format!(
                "cannot open {}: {e}",
                dir.display()
            )))
        }
    };
    let text = |f: &str| -> Result<String, NodeError> { Ok(attr_in(&dir, f)?.unwrap_or_default()) };
    let mut numbers = Vec::with_capacity(NUMERIC.len());
    for (_, file, _) in NUMERIC {
        numbers.push(attr_in(&dir, file)?.as_deref().and_then(parse_int));
    }
    Ok(Some(Iface {
        device: device.to_string(),
        address: text("address")?,
        broadcast: text("broadcast")?,
        duplex: text("duplex")?,
        ifalias: text("ifalias")?,
        operstate: text("operstate")?,
        numbers,
    }))
}

/// The families, by name; one without series is left out.
pub fn families(ifaces: &[Iface]) -> Vec<Family> {
    let mut info = Family::new(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        Kind::Gauge,
    );
    let mut up = Family::new(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
        Kind::Gauge,
    );
    let mut props: Vec<Family> = NUMERIC
        .iter()
        .map(|(name, _, kind)| {
            Family::new(
                format!("node_network_{name}"),
                format!("Network device property: {name}"),
                *kind,
            )
        })
        .collect();
    for i in ifaces {
        let d = i.device.as_str();
        info.push(
            &[
                ("address", &i.address),
                ("broadcast", &i.broadcast),
                ("device", d),
                ("duplex", &i.duplex),
                ("ifalias", &i.ifalias),
                ("operstate", &i.operstate),
            ],
            1.0,
        );
        up.push(&[("device", d)], f64::from(u8::from(i.operstate == "up")));
        for ((name, _, _), (f, v)) in NUMERIC.iter().zip(props.iter_mut().zip(&i.numbers)) {
            let Some(v) = *v else { continue };
            let v = if *name == "speed_bytes" {
                // Mb/s; -1 when unknown (virtual devices, no link): no series.
                if v < 0 {
                    continue;
                }
                v as f64 * 125_000.0
            } else {
                v as f64
            };
            f.push(&[("device", d)], v);
        }
    }
    props.push(info);
    props.push(up);
    props.sort_by(|a, b| a.name.cmp(&b.name));
    props.retain(|f| !f.samples.is_empty());
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::node::testing::write;

    fn paths(root: &Path) -> Paths {
        crate::collect::node::testing::paths(root, root)
    }

    #[test]
    fn numbers_as_go_reads_them() {
        assert_eq!(parse_int("0x1003"), Some(4099));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("1500"), Some(1500));
        assert_eq!(parse_int("fast"), None);
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn interfaces_and_their_properties() {
        let root = tempfile::tempdir().unwrap();
        let net = root.path().join("class/net");
        write(
            &net.join("eth0"),
            &[
                ("operstate", "up"),
                ("address", "02:fc:00:00:00:01"),
                ("speed", "1000"),
                ("flags", "0x1003"),
                ("mtu", "nonsense"),
            ],
        );
        write(
            &net.join("docker0"),
            &[("operstate", "down"), ("speed", "-1")],
        );
        std::fs::write(net.join("bonding_masters"), "\n").unwrap();
        let f = read(&paths(root.path())).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_network_flags",
                "node_network_info",
                "node_network_speed_bytes",
                "node_network_up"
            ]
        );
        assert_eq!(f[0].samples[0].1, 4099.0);
        // docker0 first; its unknown speed gives no series.
        assert_eq!(f[1].samples[0].0[2].1, "docker0");
        assert_eq!(f[2].samples.len(), 1);
        assert_eq!(f[2].samples[0].1, 125_000_000.0);
        assert_eq!(f[3].samples[1].1, 1.0);
        assert_eq!(f[3].samples[0].1, 0.0);
    }

    #[test]
    fn without_interfaces_it_is_unavailable() {
        let root = tempfile::tempdir().unwrap();
        let p = paths(root.path());
        assert!(matches!(read(&p), Err(NodeError::Unavailable(_))));
        std::fs::create_dir_all(root.path().join("class/net")).unwrap();
        assert!(matches!(read(&p), Err(NodeError::Unavailable(_))));
    }
}
