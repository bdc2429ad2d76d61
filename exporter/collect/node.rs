//! The node_exporter-style collectors (`stat`, `filefd`, ...): each is one function that reads
//! its files under `paths.procfs` / `paths.sysfs` and returns its families whole; [`NodeCollector`]
//! runs any of them as a [`Collector`] off the async threads.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CollectError, CollectFuture, Collector};
use crate::config::Paths;
use crate::snapshot::{Family, NodePart, Part};

/// Why a node_exporter-style collector has no families this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// It failed (a file it needs could not be read or parsed; the message names it).
    Failed(String),
    /// What it reads does not exist here (a kernel without the feature): no series, no failure.
    Unavailable(String),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Failed(m) => write!(f, "{m}"),
            NodeError::Unavailable(m) => write!(f, "not available: {m}"),
        }
    }
}

impl From<NodeError> for CollectError {
    fn from(e: NodeError) -> CollectError {
        match e {
            NodeError::Failed(m) => CollectError::failed(m),
            NodeError::Unavailable(m) => CollectError::Unavailable(m),
        }
    }
}

/// What one node_exporter-style collector does each cycle.
pub type ReadFn = fn(&Paths) -> Result<Vec<Family>, NodeError>;

/// The reader of each node_exporter-style collector, by name (the names are
/// [`crate::config::NODE_COLLECTOR_NAMES`]).
pub fn reader(name: &str) -> Option<ReadFn> {
    Some(match name {
        "stat" => super::stat::read,
        "filefd" => super::filefd::read,
        "vmstat" => super::vmstat::read,
        "sockstat" => super::sockstat::read,
        "netstat" => super::netstat::read,
        "time" => super::time::read,
        "timex" => super::timex::read,
        "entropy" => super::entropy::read,
        "conntrack" => super::conntrack::read,
        "softnet" => super::softnet::read,
        "schedstat" => super::schedstat::read,
        "arp" => super::arp::read,
        "cpufreq" => super::cpufreq::read,
        "thermal_zone" => super::thermal_zone::read,
        "hwmon" => super::hwmon::read,
        "netclass" => super::netclass::read,
        "edac" => super::edac::read,
        "mdadm" => super::mdadm::read,
        "bonding" => super::bonding::read,
        _ => return None,
    })
}

/// Runs one node_exporter-style collector.
pub struct NodeCollector {
    name: &'static str,
    paths: Paths,
    read: Reader,
}

/// A collector's reader: most keep nothing between cycles; netclass keeps what it learnt of
/// each interface.
enum Reader {
    Plain(ReadFn),
    Netclass(super::netclass::Netclass),
}

impl NodeCollector {
    /// The collector `name` (one of [`crate::config::NODE_COLLECTOR_NAMES`]); None for another.
    pub fn new(name: &'static str, paths: &Paths) -> Option<NodeCollector> {
        let read = match name {
            "netclass" => Reader::Netclass(Default::default()),
            _ => Reader::Plain(reader(name)?),
        };
        Some(NodeCollector {
            name,
            paths: paths.clone(),
            read,
        })
    }

    /// One collection, blocking.
    pub fn read(&self) -> Result<Vec<Family>, NodeError> {
        match &self.read {
            Reader::Plain(read) => read(&self.paths),
            Reader::Netclass(n) => n.read(&self.paths),
        }
    }
}

impl Collector for NodeCollector {
    fn name(&self) -> &'static str {
        self.name
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            let name = self.name;
            let families = tokio::task::spawn_blocking(move || self.read())
                .await
                .map_err(|e| CollectError::failed(format!("{name} reader: {e}")))??;
            Ok(Part::Node(NodePart { families }))
        })
    }
}

/// The entries `<prefix><N>` of `dir`, by N: (N, path). None when `dir` does not exist.
pub(crate) fn numbered(
    dir: &Path,
    prefix: &str,
) -> Result<Vec<(String, std::path::PathBuf)>, NodeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(NodeError::Failed(format!(
                "cannot read {}: {e}",
                dir.display()
            )))
        }
    };
    let mut out: Vec<(u64, String, std::path::PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix(prefix)?;
            let num: u64 = n.parse().ok()?;
            Some((num, n.to_string(), e.path()))
        })
        .collect();
    out.sort();
    Ok(out.into_iter().map(|(_, n, p)| (n, p)).collect())
}

/// The whole of a file that must be there: a failure naming the file otherwise.
pub(crate) fn read_file(path: &Path) -> Result<String, NodeError> {
    std::fs::read_to_string(path)
        .map_err(|e| NodeError::Failed(format!("cannot read {}: {e}", path.display())))
}

/// The whole of a file that may be absent (a kernel without the feature): None when it is.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, NodeError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Failed(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// A directory of small attribute files (a sysfs device's), read relative to one open handle.
///
/// `std::fs::read` on sysfs costs a walk of the whole path (through `class/net/<iface>`'s
/// symbolic link each time), a `statx` for a size hint and two reads; here each attribute is one
/// `openat` of its bare name, reads into a stack buffer, and a close. Reading an interface's 22
/// attributes this way costs about half as much CPU.
pub(crate) struct AttrDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl AttrDir {
    /// Open `path`, which must be a directory.
    pub fn open(path: &Path) -> std::io::Result<AttrDir> {
        let c = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: `c` is a valid NUL-terminated string; the flags take no further arguments.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(AttrDir {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    /// The whole of the file `name` in this directory (UTF-8, invalid bytes replaced).
    pub fn read(&self, name: &str) -> std::io::Result<String> {
        let c = CString::new(name)?;
        // SAFETY: the directory fd is open for `self`'s lifetime; `c` is NUL-terminated.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        loop {
            match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// The path of `name` in this directory, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// The size of a memory page, for counts the kernel gives in pages.
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// A file holding one number (a sysctl under `/proc/sys`).
pub(crate) fn parse_number(path: &Path, text: &str) -> Result<u64, NodeError> {
    let t = text.trim();
    t.parse()
        .map_err(|_| parse_error(path, format!("expected a number, got {t:?}")))
}

/// A parse failure naming the file.
pub(crate) fn parse_error(path: &Path, message: impl std::fmt::Display) -> NodeError {
    NodeError::Failed(format!("cannot parse {}: {message}", path.display()))
}

/// Helpers for the collectors' unit tests: fixture files and roots.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use crate::config::Paths;

    /// Write `files` (name, content; a newline is added, as sysfs does) in `dir`.
    pub fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (f, v) in files {
            std::fs::write(dir.join(f), format!("{v}\n")).unwrap();
        }
    }

    /// procfs at `<root>/proc`, sysfs at `sysfs`, rootfs at `root`.
    pub fn paths(root: &Path, sysfs: &Path) -> Paths {
        Paths {
            procfs: root.join("proc"),
            sysfs: sysfs.to_path_buf(),
            rootfs: root.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> Paths {
        super::testing::paths(root, &root.join("sys"))
    }

    #[test]
    fn every_name_has_a_reader() {
        for name in crate::config::NODE_COLLECTOR_NAMES {
            assert!(reader(name).is_some(), "{name}");
        }
        assert!(reader("host").is_none());
        assert!(NodeCollector::new("nope", &paths(Path::new("/"))).is_none());
    }

    #[tokio::test]
    async fn the_runner_sees_failures_and_absences() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let run = |name| Arc::new(NodeCollector::new(name, &p).unwrap()).collect();
        match run("filefd").await {
            Err(CollectError::Failed { message, .. }) => {
                assert!(message.contains("file-nr"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run("conntrack").await,
            Err(CollectError::Unavailable(_))
        ));
        std::fs::create_dir_all(dir.path().join("proc/sys/fs")).unwrap();
        std::fs::write(dir.path().join("proc/sys/fs/file-nr"), "1 0 2\n").unwrap();
        match run("filefd").await {
            Ok(Part::Node(n)) => assert_eq!(n.families.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
