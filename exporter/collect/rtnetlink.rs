//! One rtnetlink `RTM_GETLINK` dump (NETLINK_ROUTE, rtnetlink(7)): the links of lookout's own
//! network namespace with the attributes netclass takes from it, in one round of syscalls
//! instead of a sysfs file each. Only the socket and the parsing are here; what each attribute
//! means as a sysfs file is netclass's. Malformed data (a length past the end, a short
//! attribute) is an error, never a panic.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// include/uapi/linux/if_link.h
const IFLA_ADDRESS: u16 = 1;
const IFLA_BROADCAST: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKMODE: u16 = 17;
const IFLA_IFALIAS: u16 = 20;
const IFLA_GROUP: u16 = 27;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_PROMISCUITY: u16 = 30;
const IFLA_CARRIER: u16 = 33;
const IFLA_CARRIER_CHANGES: u16 = 35;
const IFLA_CARRIER_UP_COUNT: u16 = 47;
const IFLA_CARRIER_DOWN_COUNT: u16 = 48;
/// Linux 6.6 and later.
const IFLA_ALLMULTI: u16 = 61;
/// include/uapi/linux/rtnetlink.h: leave out IFLA_STATS/IFLA_STATS64 (older kernels ignore it).
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
/// NLA_TYPE_MASK: the type without NLA_F_NESTED and NLA_F_NET_BYTEORDER.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// NLM_F_DUMP_INTR: the dump was interrupted by a change; its result may be inconsistent.
const NLM_F_DUMP_INTR: u16 = 0x10;

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const RTA_HDRLEN: usize = 4;

/// One link as RTM_NEWLINK describes it; an attribute the kernel did not send is None.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    /// ifi_index.
    pub index: i32,
    /// ifi_type (ARPHRD_*).
    pub kind: u16,
    /// ifi_flags: dev_get_flags(), not the `flags` sysfs file (dev->flags).
    pub flags: u32,
    pub name: String,
    pub mtu: Option<u32>,
    pub txqlen: Option<u32>,
    pub operstate: Option<u8>,
    pub link_mode: Option<u8>,
    pub group: Option<u32>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
    pub alias: Option<String>,
    /// netif_carrier_ok(), sent whether or not the device is running.
    pub carrier: Option<u8>,
    pub carrier_changes: Option<u32>,
    pub carrier_up: Option<u32>,
    pub carrier_down: Option<u32>,
    /// IFLA_LINK: sent only when iflink differs from the index.
    pub link: Option<u32>,
    /// How many asked for promiscuous mode: dev->flags has IFF_PROMISC while it is above 0.
    pub promiscuity: Option<u32>,
    /// The same for IFF_ALLMULTI (Linux 6.6 and later).
    pub allmulti: Option<u32>,
}

/// Why a dump gave no links.
#[derive(Debug)]
pub enum Error {
    Io(&'static str, std::io::Error),
    /// The kernel answered NLMSG_ERROR with this errno.
    Kernel(i32),
    /// A message or attribute that does not fit, or a dump the kernel flagged as interrupted.
    Malformed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(what, e) => write!(f, "rtnetlink {what}: {e}"),
            Error::Kernel(errno) => write!(
                f,
                "rtnetlink: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            Error::Malformed(m) => write!(f, "rtnetlink: {m}"),
        }
    }
}

/// Every link of this process's network namespace, in the kernel's order.
pub fn links() -> Result<Vec<Link>, Error> {
    let sock = socket()?;
    let seq: u32 = 1;
    send(&sock, &request(seq))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(&sock, &mut buf)?;
        if parse_batch(&buf[..n], seq, &mut out)? {
            return Ok(out);
        }
    }
}

/// The RTM_GETLINK dump request: nlmsghdr, ifinfomsg (AF_UNSPEC), IFLA_EXT_MASK.
fn request(seq: u32) -> Vec<u8> {
    let len = NLMSG_HDRLEN + IFINFOMSG_LEN + RTA_HDRLEN + 4;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
    m.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[0u8; IFINFOMSG_LEN]);
    m.extend_from_slice(&((RTA_HDRLEN + 4) as u16).to_ne_bytes());
    m.extend_from_slice(&IFLA_EXT_MASK.to_ne_bytes());
    m.extend_from_slice(&RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    m
}

fn socket() -> Result<OwnedFd, Error> {
    // SAFETY: plain socket(2) call; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(Error::Io("socket", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // A kernel that never answers costs a second, not the collector's deadline.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: `tv` is a valid timeval and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(Error::Io("setsockopt", std::io::Error::last_os_error()));
    }
    Ok(sock)
}

fn send(sock: &OwnedFd, msg: &[u8]) -> Result<(), Error> {
    // SAFETY: an all-zero sockaddr_nl is valid; nl_pid 0 addresses the kernel.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    loop {
        // SAFETY: `msg` and `addr` are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n >= 0 {
            return if n as usize == msg.len() {
                Ok(())
            } else {
                Err(Error::Malformed(format!("short send ({n} bytes)")))
            };
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::Io("sendto", e));
        }
    }
}

/// One datagram; with MSG_TRUNC the kernel says its whole length, so a cut one is an error.
fn recv(sock: &OwnedFd, buf: &mut [u8]) -> Result<usize, Error> {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n >= 0 {
            let n = n as usize;
            if n > buf.len() {
                return Err(Error::Malformed(format!(
                    "a {n}-byte message does not fit {} bytes",
                    buf.len()
                )));
            }
            return Ok(n);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::Io("recv", e));
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// The messages of one datagram, links appended to `out`; true once NLMSG_DONE is seen.
pub fn parse_batch(buf: &[u8], seq: u32, out: &mut Vec<Link>) -> Result<bool, Error> {
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let (Some(len), Some(kind), Some(flags), Some(mseq)) = (
            u32_at(rest, 0),
            u16_at(rest, 4),
            u16_at(rest, 6),
            u32_at(rest, 8),
        ) else {
            return Err(Error::Malformed(format!(
                "{} bytes left at offset {at}, less than a message header",
                rest.len()
            )));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(Error::Malformed(format!(
                "message length {len} at offset {at} (of {} bytes)",
                buf.len()
            )));
        }
        let body = &rest[NLMSG_HDRLEN..len];
        if flags & NLM_F_DUMP_INTR != 0 {
            return Err(Error::Malformed("dump interrupted by a change".into()));
        }
        if mseq == seq {
            match kind as libc::c_int {
                libc::NLMSG_DONE => return Ok(true),
                libc::NLMSG_ERROR => {
                    let errno = u32_at(body, 0)
                        .ok_or_else(|| Error::Malformed("short NLMSG_ERROR".into()))?
                        as i32;
                    if errno != 0 {
                        return Err(Error::Kernel(-errno));
                    }
                }
                _ if kind == libc::RTM_NEWLINK => out.push(parse_link(body)?),
                _ => {}
            }
        }
        at += align4(len);
    }
    Ok(false)
}

/// The bytes of a string attribute up to its NUL.
fn string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// One RTM_NEWLINK body: ifinfomsg, then rtattrs.
pub fn parse_link(body: &[u8]) -> Result<Link, Error> {
    if body.len() < IFINFOMSG_LEN {
        return Err(Error::Malformed(format!(
            "RTM_NEWLINK of {} bytes, shorter than ifinfomsg",
            body.len()
        )));
    }
    let mut link = Link {
        kind: u16_at(body, 2).unwrap_or_default(),
        index: u32_at(body, 4).unwrap_or_default() as i32,
        flags: u32_at(body, 8).unwrap_or_default(),
        ..Link::default()
    };
    let mut name = None;
    let mut at = align4(IFINFOMSG_LEN);
    while at < body.len() {
        let rest = &body[at..];
        let (Some(len), Some(kind)) = (u16_at(rest, 0), u16_at(rest, 2)) else {
            return Err(Error::Malformed(format!(
                "link {}: {} bytes left, less than an attribute header",
                link.index,
                rest.len()
            )));
        };
        let len = len as usize;
        if len < RTA_HDRLEN || len > rest.len() {
            return Err(Error::Malformed(format!(
                "link {}: attribute {kind} of length {len} with {} bytes left",
                link.index,
                rest.len()
            )));
        }
        let v = &rest[RTA_HDRLEN..len];
        let kind = kind & NLA_TYPE_MASK;
        let short = || {
            Error::Malformed(format!(
                "link {}: attribute {kind} of {} bytes is too short",
                link.index,
                v.len()
            ))
        };
        let u32v = || u32_at(v, 0).ok_or_else(short);
        let u8v = || v.first().copied().ok_or_else(short);
        match kind {
            IFLA_IFNAME => name = Some(string(v)),
            IFLA_ADDRESS => link.address = Some(v.to_vec()),
            IFLA_BROADCAST => link.broadcast = Some(v.to_vec()),
            IFLA_IFALIAS => link.alias = Some(string(v)),
            IFLA_MTU => link.mtu = Some(u32v()?),
            IFLA_LINK => link.link = Some(u32v()?),
            IFLA_TXQLEN => link.txqlen = Some(u32v()?),
            IFLA_GROUP => link.group = Some(u32v()?),
            IFLA_CARRIER_CHANGES => link.carrier_changes = Some(u32v()?),
            IFLA_CARRIER_UP_COUNT => link.carrier_up = Some(u32v()?),
            IFLA_CARRIER_DOWN_COUNT => link.carrier_down = Some(u32v()?),
            IFLA_OPERSTATE => link.operstate = Some(u8v()?),
            IFLA_LINKMODE => link.link_mode = Some(u8v()?),
            IFLA_CARRIER => link.carrier = Some(u8v()?),
            IFLA_PROMISCUITY => link.promiscuity = Some(u32v()?),
            IFLA_ALLMULTI => link.allmulti = Some(u32v()?),
            _ => {}
        }
        at += align4(len);
    }
    link.name =
        name.ok_or_else(|| Error::Malformed(format!("link {} has no IFLA_IFNAME", link.index)))?;
    Ok(link)
}

#[cfg(test)]
pub(crate) mod testing {
    /// An attribute: rtattr header, value, padding.
    pub fn attr(kind: u16, v: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(v);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    /// An RTM_NEWLINK body: ifinfomsg then `attrs`.
    pub fn link_body(index: i32, kind: u16, flags: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0u8, 0];
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        for a in attrs {
            b.extend_from_slice(a);
        }
        b
    }

    /// A netlink message around `body`.
    pub fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn eth0() -> Vec<u8> {
        link_body(
            2,
            1,
            0x11043,
            &[
                attr(IFLA_IFNAME, b"eth0\0"),
                attr(IFLA_MTU, &1500u32.to_ne_bytes()),
                attr(IFLA_ADDRESS, &[2, 0xfc, 0, 0, 0, 1]),
                attr(IFLA_OPERSTATE, &[6]),
                attr(IFLA_CARRIER, &[1]),
                attr(IFLA_IFALIAS, b"uplink\0"),
                attr(IFLA_CARRIER_UP_COUNT | 0x8000, &3u32.to_ne_bytes()),
                attr(IFLA_PROMISCUITY, &2u32.to_ne_bytes()),
                attr(IFLA_ALLMULTI, &0u32.to_ne_bytes()),
                attr(999, b"ignored"),
            ],
        )
    }

    #[test]
    fn a_dump_of_links() {
        let mut buf = message(libc::RTM_NEWLINK, 2, 7, &eth0());
        // Another sequence's message is not ours.
        buf.extend(message(libc::RTM_NEWLINK, 2, 8, &[0u8; 3]));
        let mut out = Vec::new();
        assert!(!parse_batch(&buf, 7, &mut out).unwrap());
        buf = message(libc::NLMSG_DONE as u16, 2, 7, &0u32.to_ne_bytes());
        assert!(parse_batch(&buf, 7, &mut out).unwrap());
        assert_eq!(
            out,
            [Link {
                index: 2,
                kind: 1,
                flags: 0x11043,
                name: "eth0".into(),
                mtu: Some(1500),
                operstate: Some(6),
                address: Some(vec![2, 0xfc, 0, 0, 0, 1]),
                alias: Some("uplink".into()),
                carrier: Some(1),
                carrier_up: Some(3),
                promiscuity: Some(2),
                allmulti: Some(0),
                ..Link::default()
            }]
        );
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        let good = message(libc::RTM_NEWLINK, 2, 1, &eth0());
        // Every cut of a good message fails (or, cut at a boundary, parses what is whole).
        for cut in 0..good.len() {
            let mut out = Vec::new();
            let r = parse_batch(&good[..cut], 1, &mut out);
            assert!(r.is_err() || (cut == 0 && out.is_empty()), "cut {cut}");
        }
        let bad = [
            // A header longer than the datagram.
            {
                let mut m = good.clone();
                m[0..4].copy_from_slice(&9999u32.to_ne_bytes());
                m
            },
            // An attribute shorter than its header.
            message(
                libc::RTM_NEWLINK,
                0,
                1,
                &link_body(1, 1, 0, &[vec![2, 0, 3, 0]]),
            ),
            // A u32 attribute of two bytes.
            message(
                libc::RTM_NEWLINK,
                0,
                1,
                &link_body(1, 1, 0, &[attr(IFLA_MTU, &[1, 2])]),
            ),
            // No name.
            message(libc::RTM_NEWLINK, 0, 1, &link_body(1, 1, 0, &[])),
            // An interrupted dump.
            message(libc::RTM_NEWLINK, NLM_F_DUMP_INTR, 1, &eth0()),
            // The kernel's error.
            message(libc::NLMSG_ERROR as u16, 0, 1, &(-22i32).to_ne_bytes()),
        ];
        for (i, b) in bad.iter().enumerate() {
            let r = parse_batch(b, 1, &mut Vec::new());
            assert!(r.is_err(), "case {i}: {r:?}");
        }
        // Garbage of every length never panics.
        let mut x: u32 = 12345;
        for n in 0..300 {
            let junk: Vec<u8> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = parse_batch(&junk, 1, &mut Vec::new());
            let _ = parse_link(&junk);
        }
    }

    #[test]
    fn this_namespace_has_a_loopback() {
        let links = links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").unwrap();
        assert_eq!(lo.kind, 772); // ARPHRD_LOOPBACK
        assert!(lo.mtu.is_some() && lo.operstate.is_some());
    }
}
