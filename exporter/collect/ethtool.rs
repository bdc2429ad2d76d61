//! A link's speed and duplex through the ethtool ioctl (`ETHTOOL_GLINKSETTINGS`): what the
//! sysfs `speed` and `duplex` files print, from the same `__ethtool_get_link_ksettings()`, for
//! one system call per interface instead of an open, a read and a close per file. Asked on a
//! socket, it answers for this process's network namespace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// include/uapi/linux/sockios.h.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// include/uapi/linux/ethtool.h.
const ETHTOOL_GLINKSETTINGS: u32 = 0x4c;
/// `struct ethtool_link_settings` without its link mode masks, in u32 words.
const BASE_WORDS: usize = 12;
/// Where its fields are: `speed` is word 1, `duplex` the first byte of word 2 and
/// `link_mode_masks_nwords` (s8) the last byte of word 3.
const SPEED_WORD: usize = 1;
const DUPLEX_WORD: usize = 2;
const NWORDS_WORD: usize = 3;

/// What `ETHTOOL_GLINKSETTINGS` says of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSettings {
    /// Mb/s; `SPEED_UNKNOWN` is `u32::MAX` (sysfs prints it with `%d`: -1).
    pub speed: u32,
    /// `DUPLEX_HALF` 0, `DUPLEX_FULL` 1, `DUPLEX_UNKNOWN` 0xff.
    pub duplex: u8,
}

impl LinkSettings {
    /// The sysfs `duplex` file's text (net-sysfs.c's `duplex_show`).
    pub fn duplex_text(&self) -> &'static str {
        match self.duplex {
            0 => "half",
            1 => "full",
            _ => "unknown",
        }
    }
}

/// `struct ifreq` with `ifr_data` (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// A socket to ask on, and the length of the kernel's link mode masks once learnt.
pub struct Ethtool {
    sock: OwnedFd,
    nwords: Option<u8>,
}

impl Ethtool {
    pub fn open() -> io::Result<Ethtool> {
        // SAFETY: plain socket(2); the fd is owned at once.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Ethtool {
            // SAFETY: a fresh fd of ours.
            sock: unsafe { OwnedFd::from_raw_fd(fd) },
            nwords: None,
        })
    }

    /// The settings of interface `name`; the kernel's error (EOPNOTSUPP without
    /// `get_link_ksettings`, ENODEV once gone) otherwise.
    pub fn link_settings(&mut self, name: &str) -> io::Result<LinkSettings> {
        let nwords = match self.nwords {
            Some(n) => n,
            None => {
                // The handshake: with no masks, the kernel answers how many words they take.
                let mut base = [0u32; BASE_WORDS];
                self.call(name, &mut base, 0)?;
                let n = nwords_of(&base);
                if n >= 0 {
                    return Err(io::Error::other(format!(
                        "ethtool handshake for {name}: {n} mask words"
                    )));
                }
                self.nwords = Some(n.unsigned_abs());
                n.unsigned_abs()
            }
        };
        let mut buf = vec![0u32; BASE_WORDS + 3 * usize::from(nwords)];
        self.call(name, &mut buf, nwords)?;
        if nwords_of(&buf) != nwords as i8 {
            // Another kernel's mask length (never within one boot): learn it again next time.
            self.nwords = None;
            return Err(io::Error::other(format!(
                "ethtool for {name}: the kernel wants another mask length"
            )));
        }
        Ok(LinkSettings {
            speed: buf[SPEED_WORD],
            duplex: buf[DUPLEX_WORD].to_ne_bytes()[0],
        })
    }

    fn call(&self, name: &str, buf: &mut [u32], nwords: u8) -> io::Result<()> {
        let n = name.as_bytes();
        if n.is_empty() || n.len() >= libc::IFNAMSIZ || n.contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        buf[0] = ETHTOOL_GLINKSETTINGS;
        let mut w = buf[NWORDS_WORD].to_ne_bytes();
        w[3] = nwords;
        buf[NWORDS_WORD] = u32::from_ne_bytes(w);
        let mut req = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: buf.as_mut_ptr().cast(),
            _pad: [0; 16],
        };
        req.name[..n.len()].copy_from_slice(n);
        // SAFETY: `req` names a NUL-terminated interface and points at `buf`, which is as
        // long as the header plus the three masks of `nwords` words that the kernel fills.
        let r = unsafe { libc::ioctl(self.sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// `link_mode_masks_nwords` as the kernel left it.
fn nwords_of(buf: &[u32]) -> i8 {
    buf[NWORDS_WORD].to_ne_bytes()[3] as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every interface here: the ioctl answers what sysfs shows, or fails where sysfs refuses.
    #[test]
    fn agrees_with_sysfs_here() {
        let mut e = Ethtool::open().unwrap();
        let mut checked = 0;
        for entry in std::fs::read_dir("/sys/class/net").unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let dir = entry.path();
            let Ok(flags) = std::fs::read_to_string(dir.join("flags")) else {
                continue;
            };
            let up = i64::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap() & 1;
            let speed = std::fs::read_to_string(dir.join("speed")).ok();
            let duplex = std::fs::read_to_string(dir.join("duplex")).ok();
            let settings = e.link_settings(&name);
            if !dir.exists() {
                continue; // removed meanwhile
            }
            match (settings, up) {
                (Ok(s), 1) => {
                    assert_eq!(
                        speed.unwrap().trim(),
                        (s.speed as i32).to_string(),
                        "{name}"
                    );
                    assert_eq!(duplex.unwrap().trim(), s.duplex_text(), "{name}");
                    checked += 1;
                }
                // sysfs answers only for a running device.
                (_, 0) => assert!(speed.is_none(), "{name}"),
                (Err(_), _) => assert!(speed.is_none() && duplex.is_none(), "{name}"),
                _ => unreachable!(),
            }
        }
        eprintln!("{checked} interfaces with link settings");
        assert!(e.link_settings("no-such-if0").is_err());
        assert!(e.link_settings("").is_err());
        assert!(e.link_settings("a-name-too-long-for-linux").is_err());
    }
}
