//! The disk collector: size, free space and inodes of each mounted filesystem, as
//! node_exporter's `filesystem` collector reports them (`node_filesystem_*`).
//!
//! A hung mount (a dead NFS server, a stuck FUSE daemon) must never block a scrape: the
//! `statfs` calls run on a few worker threads, kept between cycles (node_exporter's
//! `stat-workers`), and are waited for at most `statfs_timeout`. A mount whose call did not
//! answer is reported with `device_error=1` and no sizes, and is not asked again until that call
//! returns (node_exporter's `stuckMounts`): a hung mount holds one blocked thread, not one more
//! every cycle, and another worker takes the hung one's place.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use regex::Regex;

use super::{CollectError, CollectFuture, Collector};
use crate::config::{DiskConfig, Paths};
use crate::snapshot::{Filesystem, Part};

/// Stack of a statfs worker: it only makes one system call at a time.
const STATFS_STACK: usize = 64 * 1024;
/// Workers that call `statfs` at once, and the most kept idle between cycles (node_exporter's
/// `--collector.filesystem.stat-workers` default).
const STATFS_WORKERS: usize = 4;

/// Why the mounts could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot read the mount table {}: {source}", path.display())]
    Mounts { path: PathBuf, source: io::Error },
}

/// What `statfs` tells about one filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub files: u64,
    pub files_free: u64,
    /// Mounted read-only (`ST_RDONLY`).
    pub readonly: bool,
}

/// The `statfs` call, injectable so that a test can stand in a mount that hangs.
pub trait Statfs: Send + Sync + 'static {
    fn statfs(&self, path: &Path) -> io::Result<FsStats>;
}

impl<F> Statfs for F
where
    F: Fn(&Path) -> io::Result<FsStats> + Send + Sync + 'static,
{
    fn statfs(&self, path: &Path) -> io::Result<FsStats> {
        self(path)
    }
}

/// The real call: `statvfs(3)`; blocks and counts are in units of `f_frsize`.
pub fn statvfs(path: &Path) -> io::Result<FsStats> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is NUL-terminated and `buf` is a plain struct statvfs fills in.
    let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fs_stats(&buf))
}

/// Bytes from blocks. A FUSE filesystem reports whatever it likes, so the products saturate
/// rather than wrap (or panic in a debug build).
// The fields are u64 here but narrower on some 32-bit targets: the casts stay.
#[allow(clippy::unnecessary_cast)]
fn fs_stats(buf: &libc::statvfs) -> FsStats {
    let unit = buf.f_frsize as u64;
    FsStats {
        size_bytes: (buf.f_blocks as u64).saturating_mul(unit),
        free_bytes: (buf.f_bfree as u64).saturating_mul(unit),
        avail_bytes: (buf.f_bavail as u64).saturating_mul(unit),
        files: buf.f_files as u64,
        files_free: buf.f_ffree as u64,
        readonly: buf.f_flag & libc::ST_RDONLY != 0,
    }
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    /// As the host sees it (without the rootfs prefix).
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

/// Reads the mount table and `statfs`es each mount each cycle.
pub struct DiskCollector {
    procfs: PathBuf,
    rootfs: PathBuf,
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    timeout: Duration,
    workers: Workers,
    /// The mount table last read, kept open to learn when it changes.
    table: Mutex<Option<MountTable>>,
    /// How many times the mount table was read and parsed (tests).
    table_reads: AtomicU64,
    /// Mount points whose statfs outlived the timeout and has not returned yet: skipped
    /// (reported `device_error=1`) until it does.
    stuck: Mutex<HashSet<String>>,
}

impl DiskCollector {
    /// A collector using the real `statvfs`.
    pub fn new(paths: &Paths, config: &DiskConfig) -> DiskCollector {
        DiskCollector::with_statfs(paths, config, Arc::new(statvfs))
    }

    /// A collector with its own statfs (tests, fixtures).
    pub fn with_statfs(paths: &Paths, config: &DiskConfig, statfs: Arc<dyn Statfs>) -> Self {
        DiskCollector {
            procfs: paths.procfs.clone(),
            rootfs: paths.rootfs.clone(),
            mount_points_exclude: config.mount_points_exclude.clone(),
            fs_types_exclude: config.fs_types_exclude.clone(),
            timeout: config.statfs_timeout,
            workers: Workers::new(statfs),
            table: Mutex::new(None),
            table_reads: AtomicU64::new(0),
            stuck: Mutex::new(HashSet::new()),
        }
    }

    /// The mount table: `<rootfs>/proc/1/mounts` when it exists, else `<procfs>/1/mounts`
    /// (the host's mount namespace when lookout shares the host's PID namespace), else
    /// `<procfs>/mounts` (`/proc/1` hidden by `hidepid`).
    pub fn mounts_path(&self) -> PathBuf {
        mount_table_path(&self.procfs, &self.rootfs)
    }

    /// The mounts to report: deduplicated (a mount point listed twice is the later mount, which
    /// hides the earlier), then filtered by the exclusions, sorted by mount point.
    ///
    /// A procfs mount table is read again only when the kernel says a mount came or went (it
    /// is pollable: `POLLPRI`): making its text costs the kernel more than anything else here
    /// once containers add their overlay mounts. Any other file (a fixture) is read each time.
    pub fn mounts(&self) -> Result<Vec<Mount>, DiskError> {
        let path = self.mounts_path();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = table.as_ref().filter(|t| t.path == path && t.unchanged()) {
            return Ok(t.mounts.clone());
        }
        *table = None;
        let (file, text) = File::open(&path)
            .and_then(|mut f| {
                let mut text = String::new();
                f.read_to_string(&mut text).map(|_| (f, text))
            })
            .map_err(|source| DiskError::Mounts {
                path: path.clone(),
                source,
            })?;
        self.table_reads.fetch_add(1, Ordering::Relaxed);
        let mut by_mountpoint = BTreeMap::new();
        for m in parse_mounts(&text, &self.rootfs) {
            by_mountpoint.insert(m.mountpoint.clone(), m);
        }
        let mounts: Vec<Mount> = by_mountpoint
            .into_values()
            .filter(|m| {
                !self.mount_points_exclude.is_match(&m.mountpoint)
                    && !self.fs_types_exclude.is_match(&m.fstype)
            })
            .collect();
        if on_procfs(&file) {
            *table = Some(MountTable {
                path,
                file,
                mounts: mounts.clone(),
            });
        }
        Ok(mounts)
    }

    /// One cycle (blocking, for at most about `statfs_timeout`).
    pub fn read(&self) -> Result<Vec<Filesystem>, DiskError> {
        Ok(self.stat_all(&self.mounts()?))
    }

    fn stat_all(&self, mounts: &[Mount]) -> Vec<Filesystem> {
        let deadline = Instant::now() + self.timeout;
        let mut out: Vec<Filesystem> = mounts
            .iter()
            .map(|m| Filesystem {
                device: m.device.clone(),
                fstype: m.fstype.clone(),
                mountpoint: m.mountpoint.clone(),
                readonly: m.options.split(',').any(|o| o == "ro"),
                device_error: true,
                ..Default::default()
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        let mut stuck = self.stuck.lock().unwrap_or_else(|e| e.into_inner());
        let mut asked = vec![false; mounts.len()];
        let mut waiting = 0;
        {
            let mut pool = self.workers.begin_cycle();
            stuck.retain(|mountpoint| {
                let returned = !pool.running.contains(mountpoint);
                if returned {
                    tracing::info!(%mountpoint, "statfs returned; monitoring the mount again");
                }
                !returned
            });
            for (i, m) in mounts.iter().enumerate() {
                if stuck.contains(&m.mountpoint) {
                    continue;
                }
                let cycle = pool.cycle;
                pool.queue.push_back(Job {
                    cycle,
                    index: i,
                    mountpoint: m.mountpoint.clone(),
                    path: host_path(&self.rootfs, &m.mountpoint),
                    reply: tx.clone(),
                });
                asked[i] = true;
                waiting += 1;
            }
            self.workers.staff(&mut pool);
        }
        drop(tx);
        while waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((i, result)) = rx.recv_timeout(left) else {
                break;
            };
            waiting -= 1;
            asked[i] = false;
            let fs = &mut out[i];
            match result {
                Ok(s) => {
                    fs.size_bytes = s.size_bytes;
                    fs.free_bytes = s.free_bytes;
                    fs.avail_bytes = s.avail_bytes;
                    fs.files = s.files;
                    fs.files_free = s.files_free;
                    fs.readonly |= s.readonly;
                    fs.device_error = false;
                }
                Err(error) => {
                    tracing::debug!(mountpoint = %fs.mountpoint, %error, "statfs failed")
                }
            }
        }
        if waiting > 0 {
            // Calls still queued are dropped (every worker was busy); a call running is stuck.
            let mut pool = self.workers.lock();
            pool.queue.clear();
            for (i, m) in mounts.iter().enumerate() {
                if asked[i] && pool.running.contains(&m.mountpoint) {
                    tracing::warn!(
                        mountpoint = %m.mountpoint,
                        timeout = ?self.timeout,
                        "statfs did not answer in time; the mount is reported as device_error and skipped until the call returns"
                    );
                    stuck.insert(m.mountpoint.clone());
                }
            }
        }
        out
    }
}

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || self.read())
                .await
                .map_err(|e| CollectError::failed(format!("disk reader: {e}")))?
                .map(Part::Disk)
                .map_err(|e| CollectError::failed(e.to_string()))
        })
    }
}

/// A procfs mount table as last read, its file kept open: the kernel marks an open mounts file
/// (`POLLERR | POLLPRI`) once the namespace's mounts change after it was opened or last polled.
struct MountTable {
    path: PathBuf,
    file: File,
    /// The mounts to report, as [`DiskCollector::mounts`] made them from that text.
    mounts: Vec<Mount>,
}

impl MountTable {
    /// No mount came or went since the text was read (a failed poll counts as a change).
    fn unchanged(&self) -> bool {
        let mut fd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and a zero timeout: poll only looks.
        let n = unsafe { libc::poll(&mut fd, 1, 0) };
        n >= 0 && fd.revents & (libc::POLLPRI | libc::POLLERR | libc::POLLNVAL) == 0
    }
}

/// Whether the file is on procfs (whose mounts files are pollable), not a plain file.
fn on_procfs(file: &File) -> bool {
    // SAFETY: a valid fd, and `buf` is a plain struct fstatfs fills in.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe {
        libc::fstatfs(file.as_raw_fd(), &mut buf) == 0 && buf.f_type == libc::PROC_SUPER_MAGIC
    }
}

/// One statfs call asked for by a cycle.
struct Job {
    cycle: u64,
    /// The mount's place in the cycle's list.
    index: usize,
    mountpoint: String,
    path: PathBuf,
    reply: mpsc::Sender<(usize, io::Result<FsStats>)>,
}

/// What the cycles and the workers share, under one lock.
struct Pool {
    /// The current cycle: a job of an earlier one is dropped, not run.
    cycle: u64,
    queue: VecDeque<Job>,
    /// Mount points whose call is running now (a stuck one stays here until it returns).
    running: HashSet<String>,
    /// Worker threads alive, those inside a call included.
    threads: usize,
    /// Set when the collector is dropped: idle workers end.
    closed: bool,
}

/// The statfs worker threads, kept between cycles so that a cycle does not start one thread per
/// mount. A worker inside a hung call is replaced, not waited for.
struct Workers {
    shared: Arc<(Mutex<Pool>, Condvar)>,
    statfs: Arc<dyn Statfs>,
}

impl Workers {
    fn new(statfs: Arc<dyn Statfs>) -> Workers {
        let pool = Pool {
            cycle: 0,
            queue: VecDeque::new(),
            running: HashSet::new(),
            threads: 0,
            closed: false,
        };
        Workers {
            shared: Arc::new((Mutex::new(pool), Condvar::new())),
            statfs,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pool, with a new cycle begun: what is left queued from an earlier cycle is dropped.
    fn begin_cycle(&self) -> MutexGuard<'_, Pool> {
        let mut pool = self.lock();
        pool.cycle += 1;
        pool.queue.clear();
        pool
    }

    /// Enough idle workers for the queued calls (at most [`STATFS_WORKERS`]), then wake them.
    fn staff(&self, pool: &mut Pool) {
        let idle = pool.threads.saturating_sub(pool.running.len());
        let wanted = pool.queue.len().min(STATFS_WORKERS);
        for _ in idle..wanted {
            let shared = self.shared.clone();
            let statfs = self.statfs.clone();
            let spawned = std::thread::Builder::new()
                .name("lookout-statfs".into())
                .stack_size(STATFS_STACK)
                .spawn(move || work(&shared, &*statfs));
            match spawned {
                Ok(_) => pool.threads += 1,
                Err(error) => {
                    tracing::warn!(%error, "cannot start a statfs worker");
                    break;
                }
            }
        }
        self.shared.1.notify_all();
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let mut pool = self.lock();
        pool.closed = true;
        pool.queue.clear();
        self.shared.1.notify_all();
    }
}

/// A worker: takes the current cycle's calls one at a time; ends when the collector is gone or
/// when more than [`STATFS_WORKERS`] would be left idle (a stuck call that finally returned).
fn work(shared: &(Mutex<Pool>, Condvar), statfs: &dyn Statfs) {
    let (lock, wake) = shared;
    let mut pool = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let idle = pool.threads - pool.running.len();
        if pool.closed || idle > STATFS_WORKERS {
            pool.threads -= 1;
            return;
        }
        let Some(job) = pool.queue.pop_front() else {
            pool = wake.wait(pool).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        if job.cycle != pool.cycle || !pool.running.insert(job.mountpoint.clone()) {
            continue;
        }
        drop(pool);
        // A panicking statfs (a test's) answers an error and leaves the worker alive.
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| statfs.statfs(&job.path)))
                .unwrap_or_else(|_| Err(io::Error::other("statfs panicked")));
        // Done before answering: the next cycle, begun on that answer, may ask this mount again.
        pool = lock.lock().unwrap_or_else(|e| e.into_inner());
        pool.running.remove(&job.mountpoint);
        let _ = job.reply.send((job.index, result));
    }
}

/// The host's mount table under these roots: `<rootfs>/proc/1/mounts` when it exists, else
/// `<procfs>/1/mounts`, else `<procfs>/mounts` (see [`DiskCollector::mounts_path`]).
pub fn mount_table_path(procfs: &Path, rootfs: &Path) -> PathBuf {
    [rootfs.join("proc/1/mounts"), procfs.join("1/mounts")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| procfs.join("mounts"))
}

/// The mount table's lines, mount points unescaped (`\040` is a space, as in fstab(5)) and
/// without the `rootfs` prefix (when the table is the container's own view, the host's mounts
/// appear under it).
pub fn parse_mounts(text: &str, rootfs: &Path) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let (device, mountpoint, fstype, options) =
                (f.next()?, f.next()?, f.next()?, f.next()?);
            Some(Mount {
                device: unescape(device),
                mountpoint: strip_rootfs(&unescape(mountpoint), rootfs),
                fstype: fstype.to_string(),
                options: options.to_string(),
            })
        })
        .collect()
}

/// Undo the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/host/var/lib` → `/var/lib` for rootfs `/host` (whole path components only).
fn strip_rootfs(mountpoint: &str, rootfs: &Path) -> String {
    let root = rootfs.to_string_lossy();
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return mountpoint.to_string();
    }
    match mountpoint.strip_prefix(root) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => mountpoint.to_string(),
    }
}

/// Where the host's mount point is seen from here: `<rootfs>/<mountpoint>`.
pub fn host_path(rootfs: &Path, mountpoint: &str) -> PathBuf {
    rootfs.join(mountpoint.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn statfs_products_saturate() {
        // SAFETY: statvfs is a plain struct of integers; all zeroes is a valid value.
        let mut buf: libc::statvfs = unsafe { std::mem::zeroed() };
        buf.f_frsize = 4096;
        buf.f_blocks = u64::MAX as libc::fsblkcnt_t;
        buf.f_bfree = (u64::MAX / 4096 + 1) as libc::fsblkcnt_t;
        buf.f_bavail = 10;
        buf.f_files = u64::MAX as libc::fsfilcnt_t;
        let s = fs_stats(&buf);
        assert_eq!(s.size_bytes, u64::MAX);
        assert_eq!(s.free_bytes, u64::MAX);
        assert_eq!(s.avail_bytes, 40960);
        assert_eq!(s.files, u64::MAX);
        buf.f_frsize = u64::MAX as libc::c_ulong;
        buf.f_blocks = 2;
        assert_eq!(fs_stats(&buf).size_bytes, u64::MAX);
    }

    #[test]
    fn mount_lines_are_unescaped_and_stripped() {
        let text = "/dev/vda / ext4 rw,relatime 0 0\n\
                    /dev/sdb1 /host/mnt/my\\040disk ext4 ro,noatime 0 0\n\
                    /dev/sdc /host ext4 rw 0 0\n\
                    /dev/sdd /hostile xfs rw 0 0\n\
                    broken line\n";
        let m = parse_mounts(text, Path::new("/host"));
        let points: Vec<_> = m.iter().map(|m| m.mountpoint.as_str()).collect();
        assert_eq!(points, ["/", "/mnt/my disk", "/", "/hostile"]);
        assert_eq!(m[1].options, "ro,noatime");
        let same = parse_mounts(text, Path::new("/"));
        assert_eq!(same[1].mountpoint, "/host/mnt/my disk");
        assert_eq!(unescape(r"a\011b\134c\0"), "a\tb\\c\\0");
    }

    #[test]
    fn host_paths_join_under_rootfs() {
        assert_eq!(host_path(Path::new("/"), "/"), PathBuf::from("/"));
        assert_eq!(
            host_path(Path::new("/host"), "/var/lib"),
            PathBuf::from("/host/var/lib")
        );
        assert_eq!(host_path(Path::new("/host"), "/"), PathBuf::from("/host/"));
    }

    /// Blocks the calls on `/hang*` until opened; answers the others at once.
    struct Gate(Mutex<bool>, Condvar);

    impl Statfs for Arc<Gate> {
        fn statfs(&self, path: &Path) -> io::Result<FsStats> {
            if path.to_string_lossy().contains("/hang") {
                let open = self.0.lock().unwrap();
                drop(self.1.wait_while(open, |open| !*open).unwrap());
            }
            Ok(FsStats {
                size_bytes: 1,
                ..Default::default()
            })
        }
    }

    /// This machine's /proc, /sys and /.
    fn this_host() -> Paths {
        crate::collect::node::testing::paths(Path::new("/"), Path::new("/sys"))
    }

    /// The disk collector's config with these exclusions and a 1 s statfs timeout.
    fn config(mount_points_exclude: &str, fs_types_exclude: &str) -> DiskConfig {
        DiskConfig {
            enabled: true,
            mount_points_exclude: Regex::new(mount_points_exclude).unwrap(),
            fs_types_exclude: Regex::new(fs_types_exclude).unwrap(),
            statfs_timeout: Duration::from_secs(1),
        }
    }

    fn threads(shared: &(Mutex<Pool>, Condvar)) -> usize {
        shared.0.lock().unwrap().threads
    }

    fn settles(shared: &(Mutex<Pool>, Condvar), want: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while threads(shared) != want {
            assert!(
                Instant::now() < deadline,
                "{} workers, not {want}",
                threads(shared)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The workers are kept between cycles; a hung call's worker is replaced, so the other
    /// mounts are still answered; the extra workers end once the calls return, and all of them
    /// when the collector goes.
    #[test]
    fn workers_are_kept_and_hung_ones_replaced() {
        let gate = Arc::new(Gate(Mutex::new(false), Condvar::new()));
        // Only the cycles with a hung call wait out the 1 s timeout: two of them.
        let disk =
            DiskCollector::with_statfs(&this_host(), &config("^$", "^$"), Arc::new(gate.clone()));
        let shared = disk.workers.shared.clone();
        let mounts: Vec<Mount> = ["/hang1", "/hang2", "/hang3", "/hang4", "/hang5", "/a", "/b"]
            .iter()
            .map(|p| Mount {
                device: "dev".into(),
                mountpoint: p.to_string(),
                fstype: "ext4".into(),
                options: "rw".into(),
            })
            .collect();
        let answered = |fs: &[Filesystem]| -> Vec<String> {
            fs.iter()
                .filter(|f| !f.device_error)
                .map(|f| f.mountpoint.clone())
                .collect()
        };
        // Every worker is taken by a hung call: nothing else is answered this cycle.
        assert!(answered(&disk.stat_all(&mounts)).is_empty());
        assert_eq!(threads(&shared), STATFS_WORKERS);
        // The four stuck mounts are skipped; new workers answer the rest (one more hangs).
        assert_eq!(answered(&disk.stat_all(&mounts)), ["/a", "/b"]);
        assert_eq!(threads(&shared), STATFS_WORKERS + 3);
        for _ in 0..5 {
            assert_eq!(answered(&disk.stat_all(&mounts)), ["/a", "/b"]);
        }
        assert_eq!(threads(&shared), STATFS_WORKERS + 3, "no worker per cycle");
        // The calls return: the mounts are answered again and the extra workers end.
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        settles(&shared, STATFS_WORKERS);
        assert_eq!(answered(&disk.stat_all(&mounts)).len(), mounts.len());
        assert_eq!(threads(&shared), STATFS_WORKERS);
        drop(disk);
        settles(&shared, 0);
    }

    /// The host's mount table is read again when a mount comes or goes, and only then.
    #[test]
    fn the_mount_table_is_read_again_only_when_it_changes() {
        let disk = DiskCollector::new(
            &this_host(),
            &config("^/(dev|proc|sys)($|/)", "^(proc|sysfs|cgroup2?)$"),
        );
        let first = disk.mounts().unwrap();
        // Other processes (dockerd) may mount meanwhile: unchanged reads are seen at least once.
        let quiet = (0..20).any(|_| {
            let before = disk.table_reads.load(Ordering::Relaxed);
            let again = disk.mounts().unwrap();
            disk.table_reads.load(Ordering::Relaxed) == before && !again.is_empty()
        });
        assert!(quiet, "the mount table was read every time");
        assert!(!first.is_empty());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: the mount and unmount half is left out");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let has = |d: &DiskCollector| {
            d.mounts()
                .unwrap()
                .iter()
                .any(|m| Path::new(&m.mountpoint) == dir.path())
        };
        assert!(!has(&disk));
        // SAFETY: NUL-terminated strings; a tmpfs on a fresh empty directory of this test.
        let mounted = unsafe {
            libc::mount(
                c"lookout-test".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if mounted != 0 {
            let error = io::Error::last_os_error();
            // Root without CAP_SYS_ADMIN (an unprivileged container) cannot mount.
            assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
            eprintln!("cannot mount here ({error}): the mount and unmount half is left out");
            return;
        }
        let seen = has(&disk);
        // SAFETY: the mount made above.
        let unmounted = unsafe { libc::umount(target.as_ptr()) };
        assert!(seen, "a new mount was not seen");
        assert_eq!(unmounted, 0, "{}", io::Error::last_os_error());
        assert!(!has(&disk), "a mount gone is still listed");
    }

    #[test]
    fn real_statvfs_of_root() {
        let s = statvfs(Path::new("/")).unwrap();
        assert!(s.size_bytes > 0 && s.size_bytes >= s.free_bytes);
        assert!(s.free_bytes >= s.avail_bytes);
        assert!(statvfs(Path::new("/no/such/dir")).is_err());
    }
}
