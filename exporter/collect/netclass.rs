//! node_exporter's `netclass` collector: the attributes of each `<sysfs>/class/net/<iface>/`
//! (Documentation/ABI/testing/sysfs-class-net). Every entry of `class/net` but a plain file
//! (`bonding_masters`) is an interface; none is ignored (node_exporter's default
//! `--collector.netclass.ignored-devices` is `^$`). As in node_exporter (procfs' sysfs reader),
//! an attribute that cannot be read (absent, or EINVAL as `speed` and `carrier` answer on a
//! down interface) or is not a number gives no series; numbers may be hexadecimal (`flags`
//! `0x1003`). One difference: a `speed` of -1 (unknown) gives no series, where node_exporter
//! 1.5 exports -125000. Without `class/net` the collector is not available here.
//!
//! A sysfs read costs an open, a read and a close per attribute, so when `class/net` shows
//! this process's own network namespace, what rtnetlink carries comes from one `RTM_GETLINK`
//! dump instead (as the kernel's net-sysfs.c shows it), and sysfs is read only for the rest
//! (`flags`, `addr_assign_type`, `speed`, `duplex`; `name_assign_type`, `dev_id` and `ifindex`
//! once per interface). It is the same namespace when both list the same names with the same
//! indexes; otherwise (a fixture tree, a host's /sys mounted into a container on its own network)
//! or on any netlink error, every attribute is read from sysfs.
//!
//! An interface's `dev_id` and `name_assign_type` never change while it keeps its name and
//! index (a rename sets `name_assign_type`, under the new name), so they and the index check are
//! read the first time an interface (name and index) is seen, and remembered while it stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use super::node::{AttrDir, NodeError};
use super::rtnetlink::{self, Link};
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

/// Where a cycle's attributes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An rtnetlink dump, and sysfs for what it does not carry.
    Netlink,
    /// sysfs alone.
    Sysfs,
}

/// `node_network_info`, `node_network_up` and the `node_network_*` properties, per device.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    read_via(paths, true).map(|(families, _)| families)
}

/// [`read`], through rtnetlink where it may (`netlink`) and it answers for `paths.sysfs`; says
/// which way it went.
pub fn read_via(paths: &Paths, netlink: bool) -> Result<(Vec<Family>, Source), NodeError> {
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
    if netlink {
        match rtnetlink::links() {
            Ok(links) => {
                if let Some(ifaces) = read_with_links(&dir, &names, links)? {
                    return Ok((families(&ifaces), Source::Netlink));
                }
                tracing::debug!(
                    dir = %dir.display(),
                    "netclass: sysfs and rtnetlink list other interfaces (another network namespace?); reading sysfs alone"
                );
            }
            Err(error) => {
                tracing::debug!(%error, "netclass: no rtnetlink dump; reading sysfs alone")
            }
        }
    }
    let mut ifaces = Vec::new();
    for name in names {
        // An interface removed since the listing is left out.
        if let Some(iface) = read_iface(&name, &dir.join(&name))? {
            ifaces.push(iface);
        }
    }
    Ok((families(&ifaces), Source::Sysfs))
}

/// What sysfs says of an interface that cannot change while it keeps its name and index, read
/// once; its index was checked against sysfs then.
#[derive(Debug, Clone, Copy)]
struct Fixed {
    dev_id: Option<i64>,
    name_assign_type: Option<i64>,
}

/// A `class/net` directory, an interface name and its index.
type IfaceKey = (PathBuf, String, i32);

/// [`Fixed`] by `class/net` directory, interface name and index: the interfaces of the last
/// read through rtnetlink (those no longer listed are forgotten each read).
static KNOWN: LazyLock<Mutex<HashMap<IfaceKey, Fixed>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The interfaces `names` of `dir` from `links` and sysfs; None unless the links are exactly
/// these interfaces (same names, same indexes), i.e. `dir` shows this network namespace.
fn read_with_links(
    dir: &Path,
    names: &[String],
    links: Vec<Link>,
) -> Result<Option<Vec<Iface>>, NodeError> {
    let mut by_name: HashMap<String, Link> =
        links.into_iter().map(|l| (l.name.clone(), l)).collect();
    if by_name.len() != names.len() {
        return Ok(None);
    }
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    let mut seen: HashMap<IfaceKey, Fixed> = HashMap::with_capacity(names.len());
    let mut ifaces = Vec::with_capacity(names.len());
    for name in names {
        let Some(link) = by_name.remove(name) else {
            return Ok(None);
        };
        let path = dir.join(name);
        let attrs = match AttrDir::open(&path) {
            Ok(d) => d,
            // Removed since the listing: let sysfs alone tell.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(NodeError::Failed(format!(
                    "cannot open {}: {e}",
                    path.display()
                )))
            }
        };
        let key = (dir.to_path_buf(), name.clone(), link.index);
        let fixed = match known.get(&key) {
            Some(f) => *f,
            None => {
                let ifindex = attr_in(&attrs, "ifindex")?.as_deref().and_then(parse_int);
                if ifindex != Some(i64::from(link.index)) {
                    return Ok(None);
                }
                Fixed {
                    dev_id: attr_in(&attrs, "dev_id")?.as_deref().and_then(parse_int),
                    name_assign_type: attr_in(&attrs, "name_assign_type")?
                        .as_deref()
                        .and_then(parse_int),
                }
            }
        };
        ifaces.push(iface_from_link(name, &attrs, &link, fixed)?);
        seen.insert(key, fixed);
    }
    known.retain(|(d, _, _), _| d != dir);
    known.extend(seen);
    Ok(Some(ifaces))
}

/// net-sysfs.c's `operstates`, indexed by IF_OPER_*.
const OPERSTATES: [&str; 7] = [
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

/// A hardware address as sysfs shows it (`%*phC`): lowercase hex bytes joined by ':'.
fn mac(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

/// IFF_UP, which the kernel sets with __LINK_STATE_START (netif_running(), the test of the
/// sysfs `carrier` file) once the device has opened and clears with it on close.
const IFF_UP: u32 = 1;
/// IFF_DORMANT, set in the link's flags only while the device runs (dev_get_flags()).
const IFF_DORMANT: u32 = 0x20000;

/// The sysfs file `file` as the link gives it; None when netlink does not carry it (read the
/// file), Some(None) when sysfs refuses it. net-sysfs.c prints these with `%d`, so an unsigned
/// 32-bit value reads as signed.
fn number_from_link(l: &Link, file: &str) -> Option<Option<i64>> {
    let d = |v: u32| Some(i64::from(v as i32));
    match file {
        "ifindex" => Some(Some(i64::from(l.index))),
        "type" => Some(Some(i64::from(l.kind))),
        "mtu" => l.mtu.map(d),
        "tx_queue_len" => l.txqlen.map(d),
        "link_mode" => l.link_mode.map(|v| Some(i64::from(v))),
        "netdev_group" => l.group.map(d),
        // IFLA_LINK is left out when iflink is the index.
        "iflink" => Some(d(l.link.unwrap_or(l.index as u32))),
        "carrier_changes" => l.carrier_changes.map(d),
        "carrier_up_count" => l.carrier_up.map(d),
        "carrier_down_count" => l.carrier_down.map(d),
        // Both EINVAL unless the device is running.
        "dormant" => Some((l.flags & IFF_UP != 0).then_some(i64::from(l.flags & IFF_DORMANT != 0))),
        "carrier" => l
            .carrier
            .map(|c| (l.flags & IFF_UP != 0).then_some(i64::from(c != 0))),
        _ => None,
    }
}

/// One interface from its link and, for the rest, its open sysfs directory.
fn iface_from_link(
    device: &str,
    dir: &AttrDir,
    l: &Link,
    fixed: Fixed,
) -> Result<Iface, NodeError> {
    let mut numbers = Vec::with_capacity(NUMERIC.len());
    for (_, file, _) in NUMERIC {
        numbers.push(match (number_from_link(l, file), *file) {
            (Some(v), _) => v,
            (None, "dev_id") => fixed.dev_id,
            (None, "name_assign_type") => fixed.name_assign_type,
            (None, _) => attr_in(dir, file)?.as_deref().and_then(parse_int),
        });
    }
    let operstate = match l.operstate {
        // Out of the table, sysfs answers EINVAL.
        Some(o) => OPERSTATES.get(usize::from(o)).unwrap_or(&"").to_string(),
        None => attr_in(dir, "operstate")?.unwrap_or_default(),
    };
    Ok(Iface {
        device: device.to_string(),
        address: l.address.as_deref().map(mac).unwrap_or_default(),
        broadcast: l.broadcast.as_deref().map(mac).unwrap_or_default(),
        duplex: attr_in(dir, "duplex")?.unwrap_or_default(),
        // Trimmed as a file's text is.
        ifalias: l.alias.as_deref().unwrap_or("").trim().to_string(),
        operstate,
        numbers,
    })
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
        // Not this network namespace's interfaces: sysfs alone.
        let (f, source) = read_via(&paths(root.path()), true).unwrap();
        assert_eq!(source, Source::Sysfs);
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
    fn the_sysfs_meaning_of_netlink_attributes() {
        let mut l = Link {
            index: 7,
            flags: 0x1002, // not IFF_UP
            carrier: Some(1),
            txqlen: Some(u32::MAX),
            operstate: Some(9),
            address: Some(vec![0x02, 0xAB, 0, 0x0f]),
            ..Link::default()
        };
        assert_eq!(number_from_link(&l, "carrier"), Some(None));
        assert_eq!(number_from_link(&l, "iflink"), Some(Some(7)));
        assert_eq!(number_from_link(&l, "tx_queue_len"), Some(Some(-1)));
        assert_eq!(number_from_link(&l, "mtu"), None);
        assert_eq!(number_from_link(&l, "flags"), None);
        l.flags |= IFF_UP;
        l.link = Some(3);
        assert_eq!(number_from_link(&l, "carrier"), Some(Some(1)));
        assert_eq!(number_from_link(&l, "iflink"), Some(Some(3)));
        assert_eq!(mac(l.address.as_deref().unwrap()), "02:ab:00:0f");
        assert_eq!(mac(&[]), "");
        assert_eq!(OPERSTATES.get(9), None);
        assert_eq!(OPERSTATES[6], "up");
    }

    fn real_sysfs() -> Paths {
        crate::collect::node::testing::paths(Path::new("/"), Path::new("/sys"))
    }

    /// On this machine's /sys (this process's namespace) the netlink way is taken and gives
    /// what sysfs alone gives. Interfaces that come or go between the reads are retried.
    #[test]
    fn netlink_and_sysfs_agree_here() {
        let p = real_sysfs();
        let mut last = None;
        for _ in 0..5 {
            let (nl, source) = read_via(&p, true).unwrap();
            let (fs, _) = read_via(&p, false).unwrap();
            if source == Source::Netlink && nl == fs {
                assert!(nl.iter().any(|f| f.name == "node_network_info"));
                return;
            }
            last = Some((source, nl, fs));
        }
        let (source, nl, fs) = last.unwrap();
        assert_eq!(source, Source::Netlink);
        assert_eq!(nl, fs);
    }

    /// A tree with this namespace's names is taken for it only with the same indexes; then
    /// what netlink does not carry (`flags`) is the tree's, and what it carries (`mtu`) is not.
    #[test]
    fn another_namespace_with_the_same_names_is_read_from_sysfs() {
        let links = rtnetlink::links().unwrap();
        for shift in [1000, 0] {
            let root = tempfile::tempdir().unwrap();
            let net = root.path().join("class/net");
            for l in &links {
                let index = (l.index + shift).to_string();
                write(
                    &net.join(&l.name),
                    &[("ifindex", &index), ("flags", "0x99"), ("mtu", "77")],
                );
            }
            let (f, source) = read_via(&paths(root.path()), true).unwrap();
            let family = |n: &str| f.iter().find(|f| f.name == n).unwrap();
            assert_eq!(family("node_network_flags").samples[0].1, 153.0);
            if shift == 0 {
                assert_eq!(source, Source::Netlink);
                assert!(family("node_network_mtu_bytes")
                    .samples
                    .iter()
                    .all(|s| s.1 != 77.0));
            } else {
                assert_eq!(source, Source::Sysfs);
                assert_eq!(family("node_network_mtu_bytes").samples[0].1, 77.0);
            }
        }
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
