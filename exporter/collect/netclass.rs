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
//! this process's own network namespace, the attributes come from one `RTM_GETLINK` dump
//! instead (as the kernel's net-sysfs.c shows them), `speed` and `duplex` from the ethtool
//! ioctl (the same kernel call sysfs makes), and `flags` (dev->flags) from the link's flags and
//! its promiscuity and allmulti counts (Linux 6.6 and later send both). It is the same namespace
//! when both list the same names with the same indexes; otherwise (a fixture tree, a host's
//! /sys mounted into a container on its own network) or on any netlink error, every attribute
//! is read from sysfs.
//!
//! The first time an interface (name, index and address) is seen, sysfs is read for what
//! netlink does not carry and cannot change meanwhile: `dev_id`, `name_assign_type` (a rename
//! sets it, under the new name) and `addr_assign_type` (set with the address); and to check
//! its index, its `flags` and its link settings against what the netlink and ethtool answers
//! give. What agreed comes from them while the interface stays; what did not is read from
//! sysfs every time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ethtool::{Ethtool, LinkSettings};
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

/// `node_network_info`, `node_network_up` and the `node_network_*` properties, per device,
/// read afresh (every interface is at its first sight: [`Netclass`] keeps what it learns).
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    Netclass::default().read(paths)
}

/// The netclass collector's state: what it learnt of each interface, and its ethtool socket.
#[derive(Default)]
pub struct Netclass {
    kept: Mutex<Kept>,
}

impl Netclass {
    /// `node_network_info`, `node_network_up` and the `node_network_*` properties, per device.
    pub fn read(&self, paths: &Paths) -> Result<Vec<Family>, NodeError> {
        self.read_via(paths, true).map(|(families, _)| families)
    }

    /// [`Netclass::read`], through rtnetlink where it may (`netlink`) and it answers for
    /// `paths.sysfs`; says which way it went.
    pub fn read_via(
        &self,
        paths: &Paths,
        netlink: bool,
    ) -> Result<(Vec<Family>, Source), NodeError> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        read_via(&mut kept, paths, netlink)
    }
}

fn read_via(
    kept: &mut Kept,
    paths: &Paths,
    netlink: bool,
) -> Result<(Vec<Family>, Source), NodeError> {
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
                if let Some(ifaces) = read_with_links(kept, &dir, &names, links)? {
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

/// What sysfs says of an interface that cannot change while it keeps its name, index and
/// address, read once; and whether the netlink and ethtool answers agreed with sysfs then.
#[derive(Debug, Clone)]
struct Fixed {
    address: Option<Vec<u8>>,
    dev_id: Option<i64>,
    name_assign_type: Option<i64>,
    addr_assign_type: Option<i64>,
    /// [`sysfs_flags`] gave the `flags` file's value.
    flags_from_link: bool,
    /// The ethtool ioctl gave the `speed` and `duplex` files' values.
    settings_from_ethtool: bool,
}

/// A `class/net` directory, an interface name and its index.
type IfaceKey = (PathBuf, String, i32);

/// What the reads through rtnetlink keep between them.
#[derive(Default)]
struct Kept {
    /// [`Fixed`] of the interfaces of the last read (those no longer listed are forgotten).
    known: HashMap<IfaceKey, Fixed>,
    /// None until opened, or when it cannot be (sysfs answers then).
    ethtool: Option<Ethtool>,
}

/// An interface's sysfs directory, opened at its first read.
struct LazyDir {
    path: PathBuf,
    dir: Option<AttrDir>,
}

impl LazyDir {
    /// The attribute `name` as [`attr_in`] reads it; None for every attribute once the
    /// directory is gone.
    fn read(&mut self, name: &str) -> Result<Option<String>, NodeError> {
        if self.dir.is_none() {
            self.dir = open_iface(&self.path)?;
        }
        match &self.dir {
            Some(dir) => attr_in(dir, name),
            None => Ok(None),
        }
    }

    fn number(&mut self, name: &str) -> Result<Option<i64>, NodeError> {
        Ok(self.read(name)?.as_deref().and_then(parse_int))
    }
}

/// The interfaces `names` of `dir` from `links` and sysfs; None unless the links are exactly
/// these interfaces (same names, same indexes), i.e. `dir` shows this network namespace.
fn read_with_links(
    kept: &mut Kept,
    dir: &Path,
    names: &[String],
    links: Vec<Link>,
) -> Result<Option<Vec<Iface>>, NodeError> {
    let mut by_name: HashMap<String, Link> =
        links.into_iter().map(|l| (l.name.clone(), l)).collect();
    if by_name.len() != names.len() {
        return Ok(None);
    }
    let Kept { known, ethtool } = kept;
    if ethtool.is_none() {
        *ethtool = Ethtool::open()
            .inspect_err(|error| tracing::debug!(%error, "netclass: no ethtool socket"))
            .ok();
    }
    let mut seen: HashMap<IfaceKey, Fixed> = HashMap::with_capacity(names.len());
    let mut ifaces = Vec::with_capacity(names.len());
    for name in names {
        let Some(link) = by_name.remove(name) else {
            return Ok(None);
        };
        let mut attrs = LazyDir {
            path: dir.join(name),
            dir: None,
        };
        // sysfs answers `speed` and `duplex` only while the device runs.
        let settings = match ethtool {
            Some(e) if link.flags & IFF_UP != 0 => e.link_settings(name).ok(),
            _ => None,
        };
        let key = (dir.to_path_buf(), name.clone(), link.index);
        let fixed = match known.remove(&key).filter(|f| f.address == link.address) {
            Some(f) => f,
            None => {
                if attrs.number("ifindex")? != Some(i64::from(link.index)) {
                    return Ok(None);
                }
                let flags = attrs.number("flags")?;
                let speed = attrs.number("speed")?;
                let duplex = attrs.read("duplex")?;
                Fixed {
                    address: link.address.clone(),
                    dev_id: attrs.number("dev_id")?,
                    name_assign_type: attrs.number("name_assign_type")?,
                    addr_assign_type: attrs.number("addr_assign_type")?,
                    flags_from_link: flags.is_some() && sysfs_flags(&link) == flags,
                    settings_from_ethtool: settings.map(speed_of) == speed
                        && settings.map(|s| s.duplex_text()) == duplex.as_deref(),
                }
            }
        };
        ifaces.push(iface_from_link(name, &mut attrs, &link, &fixed, settings)?);
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
const IFF_RUNNING: u32 = 0x40;
const IFF_PROMISC: u32 = 0x100;
const IFF_ALLMULTI: u32 = 0x200;
const IFF_LOWER_UP: u32 = 0x10000;

/// The sysfs `flags` file (dev->flags) from the link: dev_get_flags() reports the running,
/// lower-up and dormant states, which dev->flags does not hold, and the promiscuous and
/// allmulti modes only as asked by user space (gflags), where dev->flags holds them while
/// anything asks (their counts above 0). None without both counts (before Linux 6.6).
fn sysfs_flags(l: &Link) -> Option<i64> {
    let (promiscuity, allmulti) = (l.promiscuity?, l.allmulti?);
    let mut f = l.flags & !(IFF_PROMISC | IFF_ALLMULTI | IFF_RUNNING | IFF_LOWER_UP | IFF_DORMANT);
    if promiscuity > 0 {
        f |= IFF_PROMISC;
    }
    if allmulti > 0 {
        f |= IFF_ALLMULTI;
    }
    Some(i64::from(f))
}

/// The sysfs `speed` file's number (`%d` of an unsigned value: SPEED_UNKNOWN is -1).
fn speed_of(s: LinkSettings) -> i64 {
    i64::from(s.speed as i32)
}

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

/// One interface from its link, its link settings and, for the rest, its sysfs directory.
fn iface_from_link(
    device: &str,
    dir: &mut LazyDir,
    l: &Link,
    fixed: &Fixed,
    settings: Option<LinkSettings>,
) -> Result<Iface, NodeError> {
    let mut numbers = Vec::with_capacity(NUMERIC.len());
    for (_, file, _) in NUMERIC {
        numbers.push(match *file {
            "dev_id" => fixed.dev_id,
            "name_assign_type" => fixed.name_assign_type,
            "addr_assign_type" => fixed.addr_assign_type,
            "flags" if fixed.flags_from_link => sysfs_flags(l),
            "speed" if fixed.settings_from_ethtool => settings.map(speed_of),
            file => match number_from_link(l, file) {
                Some(v) => v,
                None => dir.number(file)?,
            },
        });
    }
    let operstate = match l.operstate {
        // Out of the table, sysfs answers EINVAL.
        Some(o) => OPERSTATES.get(usize::from(o)).unwrap_or(&"").to_string(),
        None => dir.read("operstate")?.unwrap_or_default(),
    };
    let duplex = if fixed.settings_from_ethtool {
        settings.map(|s| s.duplex_text().to_string())
    } else {
        dir.read("duplex")?
    };
    Ok(Iface {
        device: device.to_string(),
        address: l.address.as_deref().map(mac).unwrap_or_default(),
        broadcast: l.broadcast.as_deref().map(mac).unwrap_or_default(),
        duplex: duplex.unwrap_or_default(),
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

/// An interface's sysfs directory, open; None when the interface is gone.
fn open_iface(path: &Path) -> Result<Option<AttrDir>, NodeError> {
    match AttrDir::open(path) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Failed(format!(
            "cannot open {}: {e}",
            path.display()
        ))),
    }
}

/// One interface's directory; None when it is gone.
pub fn read_iface(device: &str, dir: &Path) -> Result<Option<Iface>, NodeError> {
    let Some(dir) = open_iface(dir)? else {
        return Ok(None);
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
        let (f, source) = Netclass::default()
            .read_via(&paths(root.path()), true)
            .unwrap();
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

    /// dev->flags from dev_get_flags() and the mode counts.
    #[test]
    fn flags_as_the_sysfs_file_holds_them() {
        let mut l = Link {
            // UP BROADCAST RUNNING PROMISC(asked by user space) MULTICAST LOWER_UP DORMANT
            flags: 0x1 | 0x2 | IFF_RUNNING | IFF_PROMISC | 0x1000 | IFF_LOWER_UP | IFF_DORMANT,
            promiscuity: Some(0),
            allmulti: Some(0),
            ..Link::default()
        };
        assert_eq!(sysfs_flags(&l), Some(0x1003));
        // A bridge port: promiscuous for the bridge, which user space never asked.
        l.promiscuity = Some(1);
        l.allmulti = Some(2);
        assert_eq!(sysfs_flags(&l), Some(0x1303));
        // Before Linux 6.6 there is no allmulti count: sysfs tells.
        l.allmulti = None;
        assert_eq!(sysfs_flags(&l), None);
    }

    fn real_sysfs() -> Paths {
        crate::collect::node::testing::paths(Path::new("/"), Path::new("/sys"))
    }

    /// On this machine's /sys (this process's namespace) the netlink way is taken and gives
    /// what sysfs alone gives, at an interface's first sight and after. Interfaces that come or
    /// go between the reads are retried.
    #[test]
    fn netlink_and_sysfs_agree_here() {
        let p = real_sysfs();
        let mut last = None;
        let netclass = Netclass::default();
        netclass.read_via(&p, true).unwrap();
        // Linux 6.6 and later: the flags come from netlink, the link settings from ethtool.
        let recent = rtnetlink::links()
            .unwrap()
            .iter()
            .all(|l| l.allmulti.is_some());
        if recent {
            let kept = netclass.kept.lock().unwrap();
            let here: Vec<&Fixed> = kept
                .known
                .iter()
                .filter(|((d, _, _), _)| d == &p.sysfs.join("class/net"))
                .map(|(_, f)| f)
                .collect();
            assert!(!here.is_empty());
            assert!(
                here.iter()
                    .all(|f| f.flags_from_link && f.settings_from_ethtool),
                "{here:?}"
            );
        }
        for _ in 0..5 {
            let (nl, source) = netclass.read_via(&p, true).unwrap();
            let (fs, _) = Netclass::default().read_via(&p, false).unwrap();
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
            let (f, source) = Netclass::default()
                .read_via(&paths(root.path()), true)
                .unwrap();
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
