//! The fs_usage collector: how much disk each running container's writable layer takes
//! (cAdvisor's `container_fs_usage_bytes`), with the size and inodes of the filesystem that
//! holds it (`container_fs_limit_bytes`, `container_fs_inodes_total`, `container_fs_inodes_free`).
//!
//! # Its own cadence
//!
//! Measuring a layer means visiting every file in it, and cAdvisor's `du` is a known CPU and I/O
//! hog (cAdvisor #2523). So the walk runs in a task of its own, one pass every
//! `collectors.fs_usage_interval` (5m by default) on a blocking thread, and `collect()` only
//! hands over the last complete figures: a slow disk never delays a collection cycle.
//!
//! # Bounds
//!
//! - A pass has a time budget (`collectors.fs_usage_budget`). A container not finished when it
//!   runs out keeps the figures of its last complete measurement; the pass says how many
//!   (`lookout_fs_usage_containers{result="unreached"}`, and a log line when passes start or
//!   stop running out). Each pass starts with the containers attempted longest ago, so a budget
//!   too small for all of them still measures each in turn.
//! - The walk never follows a symbolic link: every directory is opened relative to its parent
//!   with `O_NOFOLLOW`, so one swapped for a link between listing and opening is refused too.
//! - It never leaves the layer's filesystem: an entry on another device (`st_dev`) is neither
//!   entered nor counted, as with `du -x`.
//! - It holds at most [`MAX_DEPTH`] directories open; deeper ones are left out (counted as
//!   unreadable, so the figure is a lower bound, as `du`'s is after an error).
//!
//! # What is counted
//!
//! `du -sx` semantics: allocated blocks (`st_blocks` × 512, so a sparse file counts what it
//! occupies), of every entry including directories, each hard-linked inode once.
//!
//! # Which directory
//!
//! Docker's `GraphDriver.Data.UpperDir` (overlay2, and the other overlay drivers), under
//! `paths.rootfs`. A driver without one (btrfs, zfs, vfs, devicemapper, the containerd image
//! store) gives no series, said once per driver in the log. A container whose layer cannot be
//! read loses only its own series.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::disk::{self, Mount};
use super::docker::{DockerState, Follower};
use super::{CollectFuture, Collector};
use crate::snapshot::{ContainerInfo, FsUsagePart, FsUsagePass, LayerUsage, Part};

/// The most directories held open at once (one per level of the walk).
pub const MAX_DEPTH: usize = 128;
/// Entries examined between two looks at the clock.
const CHECK_EVERY: u32 = 64;
/// `st_blocks` counts 512-byte units, whatever the filesystem's block size.
const STAT_BLOCK: u64 = 512;

/// What one walk of a layer found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walk {
    /// Allocated bytes, each hard-linked inode once.
    pub bytes: u64,
    /// Entries counted, the root included.
    pub inodes: u64,
    /// The layer's filesystem (`st_dev` of its root).
    pub dev: u64,
    /// Entries on another filesystem (mount points), neither entered nor counted.
    pub other_device: u64,
    /// Entries that could not be examined (unreadable, deeper than [`MAX_DEPTH`], replaced
    /// while walked): the figure is then a lower bound.
    pub unreadable: u64,
}

/// Why a layer has no figure this pass.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The pass's budget ran out during (or before) the walk.
    #[error("the pass ran out of its time budget")]
    OutOfTime,
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("statvfs {}: {source}", path.display())]
    Statvfs { path: PathBuf, source: io::Error },
}

/// An open directory stream (closed when dropped).
struct Dir(NonNull<libc::DIR>);

impl Dir {
    /// A stream over the directory `fd`, which it takes (and closes, on failure too).
    fn from_fd(fd: libc::c_int) -> io::Result<Dir> {
        // SAFETY: `fd` is an open descriptor we own; fdopendir takes it over on success.
        let d = unsafe { libc::fdopendir(fd) };
        match NonNull::new(d) {
            Some(d) => Ok(Dir(d)),
            None => {
                let e = io::Error::last_os_error();
                // SAFETY: fdopendir failed, so `fd` is still ours to close.
                unsafe { libc::close(fd) };
                Err(e)
            }
        }
    }

    fn fd(&self) -> libc::c_int {
        // SAFETY: the stream is open for as long as `self` lives.
        unsafe { libc::dirfd(self.0.as_ptr()) }
    }

    /// The next entry's name, NUL-terminated, into `name` (`.` and `..` skipped); None at the
    /// end, Err on a read error.
    fn next_into(&mut self, name: &mut Vec<u8>) -> Option<io::Result<()>> {
        loop {
            // readdir returns NULL both at the end and on an error; only errno tells them apart.
            // SAFETY: errno is thread-local; the stream is open.
            let entry = unsafe {
                *libc::__errno_location() = 0;
                libc::readdir(self.0.as_ptr())
            };
            if entry.is_null() {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(0) | None => None,
                    Some(_) => Some(Err(e)),
                };
            }
            // SAFETY: readdir's entry is valid until the next call on this stream, and d_name
            // is NUL-terminated.
            let n = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes_with_nul();
            if n == b".\0" || n == b"..\0" {
                continue;
            }
            name.clear();
            name.extend_from_slice(n);
            return Some(Ok(()));
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: the stream is open and closed only here.
        unsafe { libc::closedir(self.0.as_ptr()) };
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never what a link points to.
fn lstat_at(dir: libc::c_int, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid value for fstatat to fill in; `name` is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Open the directory `name` under `dir` (or a path, with `AT_FDCWD`), refusing a symbolic
/// link, and check that it is the directory `expect` says (`(st_dev, st_ino)`), when given: one
/// swapped in between the listing and the opening is refused.
fn open_dir_at(
    dir: libc::c_int,
    name: &CStr,
    expect: Option<(u64, u64)>,
) -> io::Result<(Dir, libc::stat)> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated; the descriptor returned is ours.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as in lstat_at; `fd` is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: `fd` is ours and not handed on.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    if let Some(want) = expect {
        if dev_ino(&st) != want {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
            return Err(io::Error::other("replaced while being walked"));
        }
    }
    Ok((Dir::from_fd(fd)?, st))
}

/// `(st_dev, st_ino)`, whose widths differ between targets (the casts stay).
#[allow(clippy::unnecessary_cast)]
fn dev_ino(st: &libc::stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Allocated bytes of one entry.
// st_blocks is i64 on some targets and u64 on others: the cast stays.
#[allow(clippy::unnecessary_cast)]
fn allocated(st: &libc::stat) -> u64 {
    (st.st_blocks.max(0) as u64).saturating_mul(STAT_BLOCK)
}

/// Walk the tree at `root` as `du -sx` does (see the module doc), giving up at `deadline`.
pub fn walk(root: &Path, deadline: Instant) -> Result<Walk, WalkError> {
    let open_err = |source| WalkError::Open {
        path: root.to_path_buf(),
        source,
    };
    if Instant::now() >= deadline {
        return Err(WalkError::OutOfTime);
    }
    let c = CString::new(root.as_os_str().as_bytes())
        .map_err(|e| open_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let (dir, st) = open_dir_at(libc::AT_FDCWD, &c, None).map_err(open_err)?;
    let mut w = Walk {
        bytes: allocated(&st),
        inodes: 1,
        dev: dev_ino(&st).0,
        ..Walk::default()
    };
    // Inodes with more than one link, seen already (all on `w.dev`).
    let mut linked: HashSet<u64> = HashSet::new();
    let mut stack = vec![dir];
    let mut name: Vec<u8> = Vec::with_capacity(256);
    let mut examined: u32 = 0;
    while let Some(top) = stack.last_mut() {
        examined = examined.wrapping_add(1);
        if examined.is_multiple_of(CHECK_EVERY) && Instant::now() >= deadline {
            return Err(WalkError::OutOfTime);
        }
        match top.next_into(&mut name) {
            None => {
                stack.pop();
                continue;
            }
            Some(Err(_)) => {
                w.unreadable += 1;
                stack.pop();
                continue;
            }
            Some(Ok(())) => {}
        }
        let Ok(entry) = CStr::from_bytes_with_nul(&name) else {
            continue;
        };
        let parent = top.fd();
        let st = match lstat_at(parent, entry) {
            Ok(st) => st,
            // Deleted since it was listed: it takes nothing now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                w.unreadable += 1;
                continue;
            }
        };
        let (dev, ino) = dev_ino(&st);
        if dev != w.dev {
            w.other_device += 1;
            continue;
        }
        let dir = is_dir(&st);
        if !dir && st.st_nlink > 1 && !linked.insert(ino) {
            continue;
        }
        w.bytes = w.bytes.saturating_add(allocated(&st));
        w.inodes += 1;
        if !dir {
            continue;
        }
        if stack.len() >= MAX_DEPTH {
            w.unreadable += 1;
            continue;
        }
        match open_dir_at(parent, entry, Some((dev, ino))) {
            Ok((d, _)) => stack.push(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => w.unreadable += 1,
        }
    }
    Ok(w)
}

/// The device holding `dir` (a host path), as the mount table names it: the source of the
/// deepest mount point above `dir` whose own `st_dev` is `dev` (a mount listed twice: the
/// later one, which hides the earlier); else `MAJ:MIN`.
pub fn device_name(rootfs: &Path, dir: &str, dev: u64, mounts: &[Mount]) -> String {
    let above = |mp: &str| {
        mp == "/"
            || dir
                .strip_prefix(mp)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let mut candidates: Vec<(usize, &Mount)> = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| above(&m.mountpoint))
        .collect();
    candidates.sort_by(|a, b| {
        b.1.mountpoint
            .len()
            .cmp(&a.1.mountpoint.len())
            .then(b.0.cmp(&a.0))
    });
    for (_, m) in candidates {
        let on = std::fs::metadata(disk::host_path(rootfs, &m.mountpoint));
        if on.is_ok_and(|md| std::os::unix::fs::MetadataExt::dev(&md) == dev) {
            return m.device.clone();
        }
    }
    let dev = dev as libc::dev_t;
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

/// Measure one layer: walk it, then `statvfs` its filesystem.
pub fn measure(
    rootfs: &Path,
    upper_dir: &str,
    mounts: &[Mount],
    deadline: Instant,
) -> Result<LayerUsage, WalkError> {
    let path = disk::host_path(rootfs, upper_dir);
    let w = walk(&path, deadline)?;
    let fs = disk::statvfs(&path).map_err(|source| WalkError::Statvfs {
        path: path.clone(),
        source,
    })?;
    // A filesystem without an inode table (btrfs) reports 0 inodes: no figure, not 0.
    let inodes = (fs.files > 0).then_some((fs.files, fs.files_free));
    Ok(LayerUsage {
        device: device_name(rootfs, upper_dir, w.dev, mounts),
        usage_bytes: w.bytes,
        limit_bytes: fs.size_bytes,
        inodes_total: inodes.map(|i| i.0),
        inodes_free: inodes.map(|i| i.1),
        measured_at: crate::now_unix(),
    })
}

/// The running containers in the order a pass takes them: attempted longest ago first (never
/// attempted first of all), then by name.
fn order_of<'a>(
    view: &'a [ContainerInfo],
    attempted: &HashMap<String, u64>,
) -> Vec<&'a ContainerInfo> {
    let mut order: Vec<&ContainerInfo> = view.iter().filter(|c| c.is_running()).collect();
    let at = |c: &ContainerInfo| attempted.get(&c.id).copied().unwrap_or(0);
    order.sort_by(|a, b| at(a).cmp(&at(b)).then_with(|| a.name.cmp(&b.name)));
    order
}

/// What the task keeps between passes, and `collect()` reads.
#[derive(Default)]
struct Figures {
    /// Each container's last complete measurement, with the layer directory it was of.
    layers: HashMap<String, (String, LayerUsage)>,
    /// The pass each container was last attempted in (measured, failed or cut short).
    attempted: HashMap<String, u64>,
    /// Passes begun.
    passes: u64,
    last: Option<FsUsagePass>,
    /// Whether the last pass ran out of its budget (logged when that changes).
    cut_short: bool,
    /// Containers whose layer could not be measured, with the error (logged once each).
    failing: HashMap<String, String>,
    /// Storage drivers without a layer directory, logged once each.
    unsupported_drivers: HashSet<String>,
}

struct Inner {
    docker: Arc<DockerState>,
    procfs: PathBuf,
    rootfs: PathBuf,
    interval: Duration,
    budget: Duration,
    figures: Mutex<Figures>,
}

/// Measures the running containers' writable layers, on its own cadence.
pub struct FsUsageCollector {
    inner: Arc<Inner>,
    task: Follower,
}

impl FsUsageCollector {
    /// Nothing is started until the first `collect()` (which runs inside the runtime).
    pub fn new(
        docker: Arc<DockerState>,
        paths: &crate::config::Paths,
        interval: Duration,
        budget: Duration,
    ) -> FsUsageCollector {
        FsUsageCollector {
            inner: Arc::new(Inner {
                docker,
                procfs: paths.procfs.clone(),
                rootfs: paths.rootfs.clone(),
                interval,
                budget,
                figures: Mutex::new(Figures::default()),
            }),
            task: Follower::default(),
        }
    }
}

impl Collector for FsUsageCollector {
    fn name(&self) -> &'static str {
        "fs_usage"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            let inner = self.inner.clone();
            self.task.ensure(|| inner.run());
            Ok(Part::FsUsage(self.inner.part()))
        })
    }
}

impl Inner {
    fn figures(&self) -> MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One pass every interval, the first at once. A pass is bounded by its budget, but a
    /// filesystem call that hangs inside it is not: the next pass waits for it, so no second
    /// thread piles up behind a stuck one.
    async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let me = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.pass()).await {
                tracing::warn!(error = %e, "fs_usage pass ended abnormally; the next one runs at its time");
            }
        }
    }

    /// The last complete figures of the running containers of the inventory. Containers gone
    /// from the inventory are forgotten, so a removed one drops its series.
    fn part(&self) -> FsUsagePart {
        let view = self.docker.view();
        let mut f = self.figures();
        let listed: HashSet<&str> = view.iter().map(|c| c.id.as_str()).collect();
        f.layers.retain(|id, _| listed.contains(id.as_str()));
        f.attempted.retain(|id, _| listed.contains(id.as_str()));
        f.failing.retain(|id, _| listed.contains(id.as_str()));
        let layers = view
            .iter()
            .filter(|c| c.is_running())
            .filter_map(|c| {
                let (dir, usage) = f.layers.get(&c.id)?;
                (*dir == c.upper_dir).then(|| (c.id.clone(), usage.clone()))
            })
            .collect();
        FsUsagePart {
            layers,
            pass: f.last,
        }
    }

    /// One pass over the running containers, within the budget (blocking).
    fn pass(&self) {
        let start = Instant::now();
        let deadline = start + self.budget;
        let view = self.docker.view();
        let (order, pass_no) = {
            let mut f = self.figures();
            f.passes += 1;
            (order_of(&view, &f.attempted), f.passes)
        };
        let mounts = self.mounts();
        let mut summary = FsUsagePass::default();
        for c in order {
            if c.upper_dir.is_empty() {
                summary.unsupported += 1;
                let mut f = self.figures();
                f.layers.remove(&c.id);
                if f.unsupported_drivers.insert(c.storage_driver.clone()) {
                    tracing::info!(
                        driver = %c.storage_driver,
                        "this storage driver reports no writable-layer directory; its containers get no container_fs_usage_bytes"
                    );
                }
                continue;
            }
            if Instant::now() >= deadline {
                summary.unreached += 1;
                continue;
            }
            let outcome = measure(&self.rootfs, &c.upper_dir, &mounts, deadline);
            let mut f = self.figures();
            f.attempted.insert(c.id.clone(), pass_no);
            match outcome {
                Ok(usage) => {
                    summary.measured += 1;
                    if f.failing.remove(&c.id).is_some() {
                        tracing::info!(container = %c.name, "writable layer measured again");
                    }
                    f.layers.insert(c.id.clone(), (c.upper_dir.clone(), usage));
                }
                Err(WalkError::OutOfTime) => summary.unreached += 1,
                Err(e) => {
                    summary.failed += 1;
                    f.layers.remove(&c.id);
                    let msg = e.to_string();
                    if f.failing.get(&c.id) != Some(&msg) {
                        tracing::warn!(container = %c.name, error = %msg, "cannot measure the container's writable layer; it has no container_fs_* series until it can");
                        f.failing.insert(c.id.clone(), msg);
                    }
                }
            }
        }
        summary.duration_seconds = start.elapsed().as_secs_f64();
        summary.finished_at = crate::now_unix();
        let mut f = self.figures();
        let cut = summary.unreached > 0;
        if cut && !f.cut_short {
            tracing::warn!(
                unreached = summary.unreached,
                measured = summary.measured,
                budget = %crate::config::format_duration(self.budget),
                "fs_usage pass ran out of its time budget; the containers it did not reach keep their last complete figures (raise collectors.fs_usage_budget)"
            );
        } else if !cut && f.cut_short {
            tracing::info!("fs_usage passes finish within their budget again");
        }
        tracing::debug!(?summary, "fs_usage pass");
        f.cut_short = cut;
        f.last = Some(summary);
    }

    /// The host's mount table, for device names; empty (names fall back to `MAJ:MIN`) when it
    /// cannot be read.
    fn mounts(&self) -> Vec<Mount> {
        let path = disk::mount_table_path(&self.procfs, &self.rootfs);
        match std::fs::read_to_string(&path) {
            Ok(text) => disk::parse_mounts(&text, &self.rootfs),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no mount table; devices named MAJ:MIN");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests;
