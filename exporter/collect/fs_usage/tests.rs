use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::NameFilter;
use crate::snapshot::State;

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// A file of `len` bytes of data (not sparse: every block is allocated).
fn write_file(path: &Path, len: usize) {
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    f.sync_all().unwrap();
}

/// GNU du's figure for the tree, in bytes (`du -sxB1`), the referee; None without du.
fn du(path: &Path) -> Option<u64> {
    let out = Command::new("du").arg("-sxB1").arg(path).output().ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn blocks(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_tree_is_counted_as_du_counts_it() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    write_file(&root.join("a"), 100 * 1024);
    fs::create_dir_all(root.join("d/e")).unwrap();
    write_file(&root.join("d/b"), 50 * 1024);
    write_file(&root.join("d/e/c"), 3000);
    // A sparse file counts what it occupies, not its length.
    fs::File::create(root.join("sparse"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let w = walk(root, later()).unwrap();
    let expected: u64 = ["", "a", "d", "d/b", "d/e", "d/e/c", "sparse"]
        .iter()
        .map(|p| blocks(&root.join(p)))
        .sum();
    assert_eq!(w.bytes, expected);
    assert!(w.bytes >= 150 * 1024 && w.bytes < 1 << 20, "{w:?}");
    assert_eq!(w.inodes, 7);
    assert_eq!((w.other_device, w.unreadable), (0, 0));
    assert_eq!(w.dev, fs::metadata(root).unwrap().dev());
    if let Some(d) = du(root) {
        assert_eq!(w.bytes, d, "du -sxB1 says {d}");
    }
}

#[test]
fn symbolic_links_are_never_followed() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    let layer = t.path().join("layer");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(layer.join("d")).unwrap();
    write_file(&outside.join("big"), 4 << 20);
    std::os::unix::fs::symlink(&outside, layer.join("to_dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("big"), layer.join("to_file")).unwrap();
    // Links that would loop, were they followed.
    std::os::unix::fs::symlink(".", layer.join("self")).unwrap();
    std::os::unix::fs::symlink("..", layer.join("d/up")).unwrap();
    std::os::unix::fs::symlink("/", layer.join("root")).unwrap();
    let w = walk(&layer, later()).unwrap();
    // The root, d, and five links, each counted as itself.
    assert_eq!(w.inodes, 7, "{w:?}");
    assert!(w.bytes < 1 << 20, "a link was followed: {w:?}");
    if let Some(d) = du(&layer) {
        assert_eq!(w.bytes, d);
    }
    // The layer's own directory given as a link is refused too.
    let link = t.path().join("layer_link");
    std::os::unix::fs::symlink(&layer, &link).unwrap();
    match walk(&link, later()) {
        Err(WalkError::Open { source, .. }) => {
            assert!(
                matches!(source.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)),
                "{source}"
            )
        }
        other => panic!("walked a symbolic link: {other:?}"),
    }
}

#[test]
fn hard_links_are_counted_once() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir(root.join("sub")).unwrap();
    write_file(&root.join("f"), 1 << 20);
    fs::hard_link(root.join("f"), root.join("sub/g")).unwrap();
    fs::hard_link(root.join("f"), root.join("h")).unwrap();
    let w = walk(root, later()).unwrap();
    assert_eq!(
        w.bytes,
        blocks(root) + blocks(&root.join("sub")) + blocks(&root.join("f"))
    );
    // The root, sub, and the file once.
    assert_eq!(w.inodes, 3);
    if let Some(d) = du(root) {
        assert_eq!(w.bytes, d);
    }
}

/// A real mount point inside the walked tree: /dev/shm (its own tmpfs) under /dev (devtmpfs).
/// A file written into /dev/shm must not be counted in /dev, and the mount point is neither
/// entered nor counted.
#[test]
fn another_filesystem_is_neither_entered_nor_counted() {
    let (dev, shm) = (Path::new("/dev"), Path::new("/dev/shm"));
    let dev_st = fs::metadata(dev).expect("/dev");
    let shm_st = fs::metadata(shm).expect("/dev/shm");
    assert_ne!(
        dev_st.dev(),
        shm_st.dev(),
        "this test needs /dev/shm to be a filesystem of its own, as it is on Linux and in Docker"
    );
    let name = shm.join(format!("lookout-fs-usage-test-{}", std::process::id()));
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = fs::remove_file(self.0);
        }
    }
    write_file(&name, 4 << 20);
    let _remove = Remove(&name);
    let in_shm = walk(shm, later()).unwrap();
    assert!(in_shm.bytes >= 4 << 20, "{in_shm:?}");
    let w = walk(dev, later()).unwrap();
    assert_eq!(w.dev, dev_st.dev());
    assert!(w.other_device >= 1, "{w:?}");
    assert!(
        w.bytes < 4 << 20,
        "the walk of /dev counted /dev/shm's file: {w:?}"
    );
}

#[test]
fn a_walk_stops_at_its_deadline() {
    let t = tempfile::tempdir().unwrap();
    for d in 0..20 {
        let dir = t.path().join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..100 {
            fs::File::create(dir.join(format!("f{f}"))).unwrap();
        }
    }
    // Already past: nothing is opened.
    assert!(matches!(
        walk(t.path(), Instant::now()),
        Err(WalkError::OutOfTime)
    ));
    // Passing during the walk of 2000 entries.
    assert!(matches!(
        walk(t.path(), Instant::now() + Duration::from_micros(50)),
        Err(WalkError::OutOfTime)
    ));
    let w = walk(t.path(), later()).unwrap();
    assert_eq!(w.inodes, 1 + 20 + 2000);
}

#[test]
fn deeper_than_the_limit_is_left_out_not_an_error() {
    let t = tempfile::tempdir().unwrap();
    let mut p = t.path().to_path_buf();
    for i in 0..MAX_DEPTH + 5 {
        p.push(format!("{}", i % 10));
    }
    fs::create_dir_all(&p).unwrap();
    let w = walk(t.path(), later()).unwrap();
    // MAX_DEPTH directories open (the root and MAX_DEPTH - 1 levels); the next level is
    // counted but not entered, and what is below it left out.
    assert_eq!(w.inodes, MAX_DEPTH as u64 + 1);
    assert_eq!(w.unreadable, 1);
}

#[test]
fn missing_or_odd_roots_are_errors_not_panics() {
    let t = tempfile::tempdir().unwrap();
    for p in [
        t.path().join("nope"),
        t.path().join("file"),
        t.path().join("with\0nul"),
    ] {
        if p.ends_with("file") {
            fs::write(&p, "x").unwrap();
        }
        assert!(
            matches!(walk(&p, later()), Err(WalkError::Open { .. })),
            "{p:?}"
        );
    }
}

#[test]
fn the_device_is_the_deepest_mount_holding_the_layer() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_str().unwrap().to_string();
    let dev = fs::metadata(t.path()).unwrap().dev();
    let mounts = disk::parse_mounts(
        &fs::read_to_string("/proc/self/mounts").unwrap(),
        "/".as_ref(),
    );
    let name = device_name("/".as_ref(), &dir, dev, &mounts);
    // df names the same source.
    if let Ok(out) = Command::new("df")
        .args(["--output=source"])
        .arg(t.path())
        .output()
    {
        let df = String::from_utf8_lossy(&out.stdout);
        assert_eq!(Some(name.as_str()), df.lines().nth(1).map(str::trim));
    }
    // A mount point that does not hold it (another st_dev) is passed over; without any,
    // MAJ:MIN.
    let fake = vec![Mount {
        device: "/dev/elsewhere".into(),
        mountpoint: "/".into(),
        fstype: "ext4".into(),
        options: "rw".into(),
    }];
    let dev = dev as libc::dev_t;
    assert_eq!(
        device_name("/".as_ref(), &dir, dev as u64 + 1, &fake),
        format!("{}:{}", libc::major(dev + 1), libc::minor(dev + 1))
    );
    assert_eq!(
        device_name("/".as_ref(), &dir, dev as u64, &fake),
        "/dev/elsewhere"
    );
}

/// A running overlay2 container whose layer is `<rootfs>/layers/<id>/diff`.
fn container(id: &str, upper: &str) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        name: format!("{id}-name"),
        state: State::Running,
        pid: 1,
        storage_driver: "overlay2".into(),
        upper_dir: upper.into(),
        ..Default::default()
    }
}

fn inner(rootfs: &Path, docker: Arc<DockerState>, budget: Duration) -> Inner {
    Inner {
        docker,
        procfs: rootfs.join("proc"),
        rootfs: rootfs.to_path_buf(),
        interval: Duration::from_secs(300),
        budget,
        figures: Mutex::new(Figures::default()),
    }
}

#[test]
fn a_pass_measures_each_running_layer_and_only_costs_a_bad_one_its_own_series() {
    let root = tempfile::tempdir().unwrap();
    for id in ["a", "b"] {
        fs::create_dir_all(root.path().join(format!("layers/{id}/diff"))).unwrap();
    }
    write_file(&root.path().join("layers/a/diff/data"), 2 << 20);
    write_file(&root.path().join("layers/b/diff/data"), 1 << 20);
    let docker = DockerState::new(NameFilter::all());
    docker.put_for_test(container("a", "/layers/a/diff"));
    docker.put_for_test(container("b", "/layers/b/diff"));
    docker.put_for_test(container("gone-dir", "/layers/missing/diff"));
    docker.put_for_test(ContainerInfo {
        storage_driver: "btrfs".into(),
        ..container("btrfs", "")
    });
    docker.put_for_test(ContainerInfo {
        state: State::Exited,
        pid: 0,
        ..container("stopped", "/layers/a/diff")
    });
    let i = inner(root.path(), docker.clone(), Duration::from_secs(60));
    // Before any pass: nothing, not zeros.
    let p = i.part();
    assert!(p.layers.is_empty() && p.pass.is_none());
    i.pass();
    let p = i.part();
    let pass = p.pass.unwrap();
    assert_eq!(
        (pass.measured, pass.failed, pass.unsupported, pass.unreached),
        (2, 1, 1, 0)
    );
    let mut ids: Vec<&str> = p.layers.keys().map(String::as_str).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    let a = &p.layers["a"];
    assert!(a.usage_bytes >= 2 << 20 && a.usage_bytes < 3 << 20, "{a:?}");
    assert!(p.layers["b"].usage_bytes >= 1 << 20);
    // The filesystem's size and inodes, from statvfs.
    let fs = disk::statvfs(root.path()).unwrap();
    assert_eq!(a.limit_bytes, fs.size_bytes);
    assert_eq!(a.inodes_total, Some(fs.files).filter(|n| *n > 0));
    assert!(a.inodes_free.is_some() == a.inodes_total.is_some());
    // No mount table under this rootfs: the device is named MAJ:MIN.
    let dev = fs::metadata(root.path()).unwrap().dev() as libc::dev_t;
    assert_eq!(
        a.device,
        format!("{}:{}", libc::major(dev), libc::minor(dev))
    );
    // With the host's mount table under the rootfs (lookout in a container, the host's / at
    // /host), the device is the mount's source.
    fs::create_dir_all(root.path().join("proc/1")).unwrap();
    fs::write(
        root.path().join("proc/1/mounts"),
        "/dev/host-root / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n",
    )
    .unwrap();
    i.pass();
    assert_eq!(i.part().layers["a"].device, "/dev/host-root");

    // A removed container drops its figures; a stopped one is not shown.
    docker.remove_for_test("b");
    let p = i.part();
    assert!(!p.layers.contains_key("b"));
    assert!(!i.figures().layers.contains_key("b"));
    assert!(!p.layers.contains_key("stopped"));
}

#[test]
fn a_pass_out_of_budget_keeps_the_last_complete_figures() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("layers/a/diff")).unwrap();
    write_file(&root.path().join("layers/a/diff/data"), 1 << 20);
    let docker = DockerState::new(NameFilter::all());
    docker.put_for_test(container("a", "/layers/a/diff"));
    let mut i = inner(root.path(), docker, Duration::from_secs(60));
    i.pass();
    let first = i.part().layers["a"].clone();
    // The layer grows, but the next pass has no time: the old figure stays, and the pass says
    // it did not reach the container.
    write_file(&root.path().join("layers/a/diff/more"), 2 << 20);
    i.budget = Duration::ZERO;
    i.pass();
    let p = i.part();
    assert_eq!(p.layers["a"], first);
    let pass = p.pass.unwrap();
    assert_eq!((pass.measured, pass.unreached), (0, 1));
    assert!(i.figures().cut_short);
    // With time again, the new figure.
    i.budget = Duration::from_secs(60);
    i.pass();
    let p = i.part();
    assert!(p.layers["a"].usage_bytes >= 3 << 20);
    assert_eq!(p.pass.unwrap().unreached, 0);
    assert!(!i.figures().cut_short);
}

/// Each pass starts with the containers attempted longest ago, so that a budget too small for
/// all of them still measures each in turn.
#[test]
fn passes_start_with_the_containers_attempted_longest_ago() {
    let root = tempfile::tempdir().unwrap();
    let docker = DockerState::new(NameFilter::all());
    for id in ["a", "b", "c"] {
        fs::create_dir_all(root.path().join(format!("layers/{id}/diff"))).unwrap();
        docker.put_for_test(container(id, &format!("/layers/{id}/diff")));
    }
    let i = inner(root.path(), docker, Duration::from_secs(60));
    i.pass();
    // All attempted in pass 1; now pretend b was last attempted in a later pass than a and c.
    {
        let mut f = i.figures();
        assert_eq!(f.attempted.values().copied().collect::<Vec<_>>(), [1, 1, 1]);
        f.attempted.insert("b".into(), 7);
        f.attempted.insert("c".into(), 3);
    }
    let view = i.docker.view();
    let f = i.figures();
    let order: Vec<&str> = order_of(&view, &f.attempted)
        .into_iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(order, ["a", "c", "b"]);
}
