//! The textfile collector over temporary directories.

use std::os::unix::ffi::OsStrExt;

use super::*;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

fn sample(f: &TextFamily, suffix: &str, labels: &[(&str, &str)]) -> Option<f64> {
    f.samples
        .iter()
        .find(|s| {
            s.suffix == suffix
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        })
        .map(|s| s.value)
}

fn family<'a>(part: &'a TextfilePart, name: &str) -> Option<&'a TextFamily> {
    part.families.iter().find(|f| f.name == name)
}

#[tokio::test]
async fn without_a_directory_nothing_is_read_and_nothing_failed() {
    let c = Arc::new(TextfileCollector::new(None));
    match c.collect().await {
        Ok(Part::Textfile(p)) => assert_eq!(p, TextfilePart::default()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_directory_is_no_error() {
    let dir = dir_with(&[("notes.txt", "not read")]);
    let (part, problems) = read_dir(dir.path());
    assert_eq!(part, TextfilePart::default());
    assert!(problems.is_empty());
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    let (part, problems) = read_dir(&gone);
    assert!(part.errored);
    assert!(part.families.is_empty());
    let message = &problems[&gone.display().to_string()];
    assert!(
        message.starts_with(&format!(
            "{}: cannot read the textfile directory: ",
            gone.display()
        )),
        "{message}"
    );
}

#[test]
fn files_are_merged_with_their_mtimes() {
    let dir = dir_with(&[
        (
            "b.prom",
            "# HELP backup_age_seconds Age of the last backup.\n\
             # TYPE backup_age_seconds gauge\n\
             backup_age_seconds{job=\"db\"} 3600\n\
             apt_upgrades_pending 4\n",
        ),
        (
            "a.prom",
            "# TYPE backup_age_seconds gauge\n\
             backup_age_seconds{job=\"www\"} 60\n\
             # TYPE rpc_seconds histogram\n\
             rpc_seconds_bucket{le=\"0.25\"} 1\n\
             rpc_seconds_bucket{le=\"1e6\"} 4\n\
             rpc_seconds_sum 2\n\
             rpc_seconds_count 5\n\
             # TYPE gc_seconds summary\n\
             gc_seconds{quantile=\"0.99\"} 0.3\n\
             gc_seconds{quantile=\"0.00001\"} 0.1\n",
        ),
        ("c.prom.tmp", "half written"),
    ]);
    // A known mtime, as node_exporter gives it: whole seconds.
    let when = UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_750);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("a.prom"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    let (part, problems) = read_dir(dir.path());
    assert!(problems.is_empty(), "{problems:?}");
    assert!(!part.errored);
    assert_eq!(part.mtimes.len(), 2);
    assert_eq!(part.mtimes[0], (path(&dir, "a.prom"), 1_700_000_000.0));
    assert_eq!(part.mtimes[1].0, path(&dir, "b.prom"));
    let names: Vec<&str> = part.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "apt_upgrades_pending",
            "backup_age_seconds",
            "gc_seconds",
            "rpc_seconds"
        ]
    );

    // Merged across files, sorted by labels, with the help one file gave.
    let backup = family(&part, "backup_age_seconds").unwrap();
    assert_eq!(backup.help, "Age of the last backup.");
    assert_eq!(backup.kind, Kind::Gauge);
    assert_eq!(backup.files, [path(&dir, "a.prom"), path(&dir, "b.prom")]);
    let jobs: Vec<&str> = backup
        .samples
        .iter()
        .map(|s| s.labels[0].1.as_str())
        .collect();
    assert_eq!(jobs, ["db", "www"]);
    assert_eq!(sample(backup, "", &[("job", "www")]), Some(60.0));

    // Without help, node_exporter's.
    let apt = family(&part, "apt_upgrades_pending").unwrap();
    assert_eq!(
        apt.help,
        format!("Metric read from {}", path(&dir, "b.prom"))
    );
    assert_eq!(apt.kind, Kind::Untyped);

    // A histogram gains its +Inf bucket (the count); bounds read as Go writes them.
    let rpc = family(&part, "rpc_seconds").unwrap();
    let got: Vec<(&str, String, f64)> = rpc
        .samples
        .iter()
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            (s.suffix, labels, s.value)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("_bucket", "le=0.25".to_string(), 1.0),
            ("_bucket", "le=1e+06".to_string(), 4.0),
            ("_bucket", "le=+Inf".to_string(), 5.0),
            ("_sum", String::new(), 2.0),
            ("_count", String::new(), 5.0),
        ]
    );
    let gc = family(&part, "gc_seconds").unwrap();
    assert_eq!(gc.kind, Kind::Summary);
    assert_eq!(sample(gc, "", &[("quantile", "1e-05")]), Some(0.1));
    assert_eq!(gc.samples[1].labels, [("quantile".into(), "0.99".into())]);
    assert_eq!(sample(gc, "_sum", &[]), Some(0.0));
    assert_eq!(sample(gc, "_count", &[]), Some(0.0));
}

#[test]
fn a_bad_file_is_skipped_whole_and_named_with_its_line() {
    let dir = dir_with(&[
        ("good.prom", "good_metric 1\n"),
        ("bad.prom", "fine_metric 1\nbroken_metric{x=\"1\"} one\n"),
        ("stamped.prom", "stamped_metric 1 1700000000000\n"),
    ]);
    let (part, problems) = read_dir(dir.path());
    assert!(part.errored);
    let names: Vec<&str> = part.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["good_metric"], "nothing of a skipped file");
    assert_eq!(part.mtimes.len(), 1, "no mtime for a skipped file");
    assert_eq!(
        problems[&path(&dir, "bad.prom")],
        format!(
            "{}:2:22: expected a number as the sample's value, got \"one\"",
            path(&dir, "bad.prom")
        )
    );
    assert!(problems[&path(&dir, "stamped.prom")].starts_with(&format!(
        "{}:1:18: client-side timestamps are not supported",
        path(&dir, "stamped.prom")
    )));
}

#[test]
fn unreadable_files_are_errors_naming_them() {
    let dir = dir_with(&[("ok.prom", "ok_metric 1\n")]);
    // A directory, a dangling link and bytes that are not UTF-8 (root reads any mode).
    std::fs::create_dir(dir.path().join("dir.prom")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("link.prom")).unwrap();
    std::fs::write(
        dir.path().join("latin1.prom"),
        b"ok 1\nbad{x=\"caf\xe9\"} 1\n",
    )
    .unwrap();
    let (part, problems) = read_dir(dir.path());
    assert!(part.errored);
    assert_eq!(part.families.len(), 1);
    assert_eq!(part.families[0].name, "ok_metric");
    assert_eq!(
        problems[&path(&dir, "dir.prom")],
        format!(
            "{}: not a regular file (a directory, FIFO or device)",
            path(&dir, "dir.prom")
        )
    );
    // A FIFO is refused unopened (opening it would wait for a writer).
    let fifo = std::ffi::CString::new(dir.path().join("fifo.prom").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let (part, problems) = read_dir(dir.path());
    assert!(problems[&path(&dir, "fifo.prom")]
        .ends_with(": not a regular file (a directory, FIFO or device)"));
    assert_eq!(part.families.len(), 1);
    // A name that is not UTF-8 is read under its own name.
    std::fs::remove_file(dir.path().join("fifo.prom")).unwrap();
    let odd = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.prom"));
    std::fs::write(&odd, "odd_metric 1\n").unwrap();
    let (part, problems) = read_dir(dir.path());
    assert!(
        !problems.contains_key(&odd.display().to_string()),
        "{problems:?}"
    );
    assert!(family(&part, "odd_metric").is_some());
    assert!(problems[&path(&dir, "link.prom")]
        .starts_with(&format!("{}: cannot open: ", path(&dir, "link.prom"))));
    assert_eq!(
        problems[&path(&dir, "latin1.prom")],
        format!("{}:2:11: not UTF-8 text", path(&dir, "latin1.prom"))
    );
}

#[test]
fn a_conflicting_family_is_skipped_in_the_later_file() {
    let dir = dir_with(&[
        (
            "1.prom",
            "# TYPE jobs counter\njobs{q=\"a\"} 1\n# HELP depth Queue depth.\ndepth 3\n\
             shared{f=\"1\"} 1\n",
        ),
        // Another type, another help, a series given again: each family skipped here alone.
        (
            "2.prom",
            "# TYPE jobs gauge\njobs{q=\"b\"} 2\n# HELP depth Other.\ndepth 4\n\
             shared{f=\"1\"} 5\nown_metric 1\n",
        ),
        // The same type and help, other series: merged.
        (
            "3.prom",
            "# TYPE jobs counter\njobs{q=\"c\"} 3\n# HELP depth Queue depth.\ndepth{x=\"y\"} 5\n",
        ),
    ]);
    let (part, problems) = read_dir(dir.path());
    assert!(part.errored);
    assert_eq!(part.mtimes.len(), 3, "each file parsed");
    let jobs = family(&part, "jobs").unwrap();
    assert_eq!(jobs.kind, Kind::Counter);
    assert_eq!(jobs.files, [path(&dir, "1.prom"), path(&dir, "3.prom")]);
    assert_eq!(sample(jobs, "", &[("q", "a")]), Some(1.0));
    assert_eq!(sample(jobs, "", &[("q", "b")]), None);
    assert_eq!(sample(jobs, "", &[("q", "c")]), Some(3.0));
    let depth = family(&part, "depth").unwrap();
    assert_eq!(depth.samples.len(), 2);
    assert_eq!(sample(depth, "", &[("x", "y")]), Some(5.0));
    assert_eq!(
        sample(family(&part, "shared").unwrap(), "", &[("f", "1")]),
        Some(1.0)
    );
    assert_eq!(
        sample(family(&part, "own_metric").unwrap(), "", &[]),
        Some(1.0)
    );
    let (one, two) = (path(&dir, "1.prom"), path(&dir, "2.prom"));
    assert_eq!(
        problems[&two],
        format!(
            "{two}: depth's help \"Other.\" differs from \"Queue depth.\" in {one}; this file's \
             depth is skipped; {two}: jobs has type gauge here but counter in {one}; this file's \
             jobs is skipped; {two}:5: shared{{f=\"1\"}} was already read from {one}; this \
             file's shared is skipped"
        )
    );
    assert!(!problems.contains_key(&path(&dir, "3.prom")));
}

#[test]
fn problems_are_remembered_until_they_change() {
    let dir = dir_with(&[("a.prom", "a{ 1\n")]);
    let c = TextfileCollector::new(Some(dir.path().to_path_buf()));
    assert!(c.read().errored);
    let logged = || c.logged.lock().unwrap().clone();
    assert_eq!(logged().len(), 1);
    let first = logged();
    assert!(c.read().errored);
    assert_eq!(logged(), first);
    std::fs::write(dir.path().join("a.prom"), "a 1\n").unwrap();
    assert!(!c.read().errored);
    assert!(logged().is_empty());
}

#[test]
fn bounds_read_as_go_writes_them() {
    for (v, want) in [
        (0.25, "0.25"),
        (1.0, "1"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (2.5e-7, "2.5e-07"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123456789.0, "1.23456789e+08"),
        (-3.0, "-3"),
        (1e300, "1e+300"),
        (0.0, "0"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(go_float(v), want, "{v}");
    }
}
