//! The loader: precedence (default < file < environment < flags) and located errors.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

/// A config file in a temp dir (kept alive by the returned handle).
fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}

fn load_file(text: &str) -> (Result<Config, ConfigError>, String) {
    let f = file(text);
    let name = f.path().display().to_string();
    (
        Config::load(Some(f.path()), &no_env, &Overrides::default()),
        name,
    )
}

/// The error of a file that must not load, and the file's name.
fn refused(text: &str) -> (ConfigError, String) {
    let (res, name) = load_file(text);
    let err = res.expect_err("the config should be refused");
    for p in &err.problems {
        assert_eq!(p.file, name, "every problem names the file: {p}");
    }
    (err, name)
}

/// The problems of a file that must not load, as (line, col, message).
fn problems(text: &str) -> Vec<(usize, usize, String)> {
    refused(text)
        .0
        .problems
        .iter()
        .map(|p| (p.pos.line, p.pos.col, p.message.clone()))
        .collect()
}

#[test]
fn embedded_default_loads() {
    let c = Config::load(None, &no_env, &Overrides::default()).unwrap();
    assert_eq!(c.source, None);
    assert_eq!(c.listen, "0.0.0.0:9659");
    assert_eq!(c.interval, Duration::from_secs(10));
    // 80% of the interval, at most 5s.
    assert_eq!(c.collector_timeout, Duration::from_secs(5));
    assert_eq!(
        c.paths,
        Paths {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
        }
    );
    assert_eq!(c.docker.host, "unix:///var/run/docker.sock");
    assert_eq!(
        c.docker.labels,
        ["com.docker.compose.project", "com.docker.compose.service"]
    );
    assert_eq!(c.docker.resync, Duration::from_secs(60));
    assert!(c.docker.filter.matches("anything"));
    assert!(c.collectors.docker && c.collectors.cgroup && c.collectors.host);
    assert!(c.collectors.disk.enabled);
    assert_eq!(
        c.collectors.disk.mount_points_exclude.as_str(),
        DEFAULT_MOUNT_POINTS_EXCLUDE
    );
    assert_eq!(
        c.collectors.disk.fs_types_exclude.as_str(),
        DEFAULT_FS_TYPES_EXCLUDE
    );
    assert!(c.collectors.disk.mount_points_exclude.is_match("/proc/sys"));
    assert!(c.collectors.disk.fs_types_exclude.is_match("overlay"));
    assert!(!c.collectors.disk.fs_types_exclude.is_match("ext4"));
    assert_eq!(c.collectors.disk.statfs_timeout, Duration::from_secs(1));
    assert_eq!(c.collectors.gpu, GpuMode::Auto);
    assert!(c.collectors.logs.is_empty());
    assert_eq!(c.rule_files, None);
    assert_eq!(c.state_dir, None);
    // default.yml's web: section says what WebConfig::default() says.
    assert_eq!(c.web, WebConfig::default());
    assert!(c.collectors.logs_enabled);
    assert!(c.collectors.probe);
    assert_eq!(c.collectors.probe_interval, Duration::from_secs(30));
    assert!(c.collectors.fs_usage);
    assert_eq!(c.collectors.fs_usage_interval, Duration::from_secs(300));
    assert_eq!(c.collectors.fs_usage_budget, Duration::from_secs(30));
}

#[test]
fn fs_usage_settings_and_flags() {
    let (c, _) = load_file("collectors:\n  fs_usage_interval: 1s\n  fs_usage_budget: 500ms\n");
    let c = c.unwrap();
    assert_eq!(
        (c.collectors.fs_usage_interval, c.collectors.fs_usage_budget),
        (Duration::from_secs(1), Duration::from_millis(500))
    );
    let c = with_collector_flags("collectors:\n  fs_usage: false\n", false, &[]).unwrap();
    assert!(!c.collectors.fs_usage);
    let c = with_collector_flags(
        "collectors:\n  fs_usage: false\n",
        false,
        &[("fs_usage", true)],
    )
    .unwrap();
    assert!(c.collectors.fs_usage);
    assert!(
        !with_collector_flags("", true, &[])
            .unwrap()
            .collectors
            .fs_usage
    );
    // The flags override the file.
    let flags = Overrides {
        fs_usage_interval: Some("10m".into()),
        fs_usage_budget: Some("2m".into()),
        ..Default::default()
    };
    let f = file("collectors:\n  fs_usage_interval: 1m\n  fs_usage_budget: 10s\n");
    let c = Config::load(Some(f.path()), &no_env, &flags).unwrap();
    assert_eq!(
        (c.collectors.fs_usage_interval, c.collectors.fs_usage_budget),
        (Duration::from_secs(600), Duration::from_secs(120))
    );
    // Located errors: too short an interval, no budget, a budget past the interval.
    assert_eq!(
        problems("collectors:\n  fs_usage_interval: 100ms\n  fs_usage_budget: 0s\n"),
        [
            (
                2,
                22,
                "collectors.fs_usage_interval: must be at least 1s (e.g. 5m), got 100ms".into()
            ),
            (
                3,
                20,
                "collectors.fs_usage_budget: must be more than 0s (e.g. 30s)".into()
            ),
        ]
    );
    assert_eq!(
        problems("collectors:\n  fs_usage_interval: 1m\n  fs_usage_budget: 2m\n"),
        [(
            3,
            20,
            "collectors.fs_usage_budget: the fs_usage budget (2m) may not exceed its interval \
             (1m); e.g. 30s for 5m"
                .into()
        )]
    );
    let flags = Overrides {
        fs_usage_interval: Some("10s".into()),
        ..Default::default()
    };
    let err = Config::load(None, &no_env, &flags).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--collector.fs_usage.interval: the fs_usage budget (30s) may not exceed its interval \
         (10s); e.g. 30s for 5m"
    );
    let flags = Overrides {
        fs_usage_budget: Some("soon".into()),
        ..Default::default()
    };
    let err = Config::load(None, &no_env, &flags).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--collector.fs_usage.budget \"soon\": "),
        "{err}"
    );
}

#[test]
fn probe_settings_and_flags() {
    let f = file("collectors:\n  probe_interval: 1s\n");
    let c = Config::load(Some(f.path()), &no_env, &Overrides::default()).unwrap();
    assert!(c.collectors.probe);
    assert_eq!(c.collectors.probe_interval, Duration::from_secs(1));
    let c = with_collector_flags("collectors:\n  probe: false\n", false, &[]).unwrap();
    assert!(!c.collectors.probe);
    let c =
        with_collector_flags("collectors:\n  probe: false\n", false, &[("probe", true)]).unwrap();
    assert!(c.collectors.probe);
    let c = with_collector_flags("", false, &[("probe", false)]).unwrap();
    assert!(!c.collectors.probe);
    let c = with_collector_flags("", true, &[]).unwrap();
    assert!(!c.collectors.probe);
    let f = file("collectors:\n  probe_interval: 100ms\n");
    let err = Config::load(Some(f.path()), &no_env, &Overrides::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:19: collectors.probe_interval: must be at least 1s (e.g. 30s), got 100ms",
            f.path().display()
        )
    );
}

#[test]
fn web_section_and_its_flags() {
    let f = file(
        "web:\n  telemetry_path: /prom/metrics\n  max_connections: 64\n  \
         read_header_timeout: 2s\n  idle_timeout: 1m\n  request_timeout: 500ms\n",
    );
    let c = Config::load(Some(f.path()), &no_env, &Overrides::default()).unwrap();
    assert_eq!(
        c.web,
        WebConfig {
            telemetry_path: "/prom/metrics".into(),
            enable_lifecycle: false,
            max_connections: 64,
            read_header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_millis(500),
        }
    );
    // Keys the file leaves out keep the default.
    let (c, _) = load_file("web:\n  max_connections: 8\n");
    let c = c.unwrap();
    assert_eq!(c.web.max_connections, 8);
    assert_eq!(c.web.telemetry_path, "/metrics");
    assert_eq!(c.web.idle_timeout, Duration::from_secs(60));

    // Flags override the file; enable_lifecycle comes from its flag alone.
    let flags = Overrides {
        telemetry_path: Some("/x".into()),
        enable_lifecycle: true,
        max_connections: Some("3".into()),
        read_header_timeout: Some("1s".into()),
        idle_timeout: Some("5s".into()),
        request_timeout: Some("2m".into()),
        ..Default::default()
    };
    let c = Config::load(Some(f.path()), &no_env, &flags).unwrap();
    assert_eq!(
        c.web,
        WebConfig {
            telemetry_path: "/x".into(),
            enable_lifecycle: true,
            max_connections: 3,
            read_header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
        }
    );
    let p = problems("web:\n  enable_lifecycle: true\n");
    assert_eq!((p[0].0, p[0].1), (2, 3), "{p:?}");
    assert!(
        p[0].2.starts_with("web: unknown field `enable_lifecycle`"),
        "{p:?}"
    );
}

#[test]
fn bad_web_values_are_located_or_name_their_flag() {
    let p = problems(
        "web:\n  telemetry_path: metrics\n  max_connections: 0\n  read_header_timeout: 0s\n  \
         idle_timeout: soon\n  request_timeout: \"0\"\n",
    );
    assert_eq!(
        p,
        vec![
            (
                2,
                19,
                "web.telemetry_path: expected a path starting with / (e.g. /metrics); got \"metrics\""
                    .into()
            ),
            (
                3,
                20,
                "web.max_connections: must be at least 1 (e.g. 1024), got 0".into()
            ),
            (
                4,
                24,
                "web.read_header_timeout: must be more than 0s (e.g. 10s)".into()
            ),
            (
                5,
                17,
                "web.idle_timeout: invalid duration \"soon\" (e.g. 10s, 1m30s, 500ms; units ms, s, \
                 m, h, d, w)"
                    .into()
            ),
            (
                6,
                20,
                "web.request_timeout: must be more than 0s (e.g. 30s)".into()
            ),
        ]
    );
    for (path, why) in [
        ("/", "one of lookout's own paths"),
        ("/health", "one of lookout's own paths"),
        ("/healthz", "one of lookout's own paths"),
        ("/ready", "one of lookout's own paths"),
        ("/-/healthy", "one of lookout's own paths"),
        ("/-/ready", "one of lookout's own paths"),
        ("/-/reload", "one of lookout's own paths"),
        ("/-/anything", "one of lookout's own paths"),
        ("/api", "one of lookout's own paths"),
        ("/api/v1/containers", "one of lookout's own paths"),
        ("/metrics/{x}", "without '{'"),
        ("/met rics", "without ' '"),
        ("/a*", "without '*'"),
        ("/:x", "without ':'"),
        ("", "starting with /"),
    ] {
        let e = check_telemetry_path(path).expect_err(path);
        assert!(e.contains(why), "{path}: {e}");
    }
    for ok in [
        "/metrics",
        "/prometheus/metrics",
        "/metrics/",
        "/apis",
        "/healthy",
    ] {
        assert_eq!(check_telemetry_path(ok), Ok(()), "{ok}");
    }
    let p = problems("web:\n  telemetry_path: /healthz\n");
    assert_eq!((p[0].0, p[0].1), (2, 19), "{p:?}");
    assert!(
        p[0].2.starts_with(
            "web.telemetry_path: \"/healthz\" is one of lookout's own paths (/, /health, \
             /healthz, /ready, /-/healthy, /-/ready, /-/reload, /api/..., /-/...); e.g. /metrics"
        ),
        "{p:?}"
    );
    // A negative or textual count is refused by the parser, located too.
    let p = problems("web:\n  max_connections: -1\n");
    assert_eq!((p[0].0, p[0].1), (2, 20), "{p:?}");

    let flags = Overrides {
        telemetry_path: Some("/ready".into()),
        max_connections: Some("0".into()),
        read_header_timeout: Some("0s".into()),
        idle_timeout: Some("99999999999999999999s".into()),
        request_timeout: Some("soon".into()),
        ..Default::default()
    };
    let err = Config::load(None, &no_env, &flags).unwrap_err();
    let got: Vec<(&str, &str)> = err
        .problems
        .iter()
        .map(|p| (p.file.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(got.len(), 5, "{err}");
    assert_eq!(got[0].0, "--web.telemetry-path");
    assert!(
        got[0]
            .1
            .starts_with("--web.telemetry-path \"/ready\": \"/ready\" is one of"),
        "{err}"
    );
    assert_eq!(
        got[1],
        (
            "--web.max-connections",
            "--web.max-connections \"0\": must be at least 1 (e.g. 1024)"
        )
    );
    assert_eq!(
        got[2],
        (
            "--web.read-header-timeout",
            "--web.read-header-timeout \"0s\": must be more than 0s (e.g. 10s)"
        )
    );
    assert_eq!(got[3].0, "--web.idle-timeout");
    assert!(got[3].1.contains("is too large"), "{err}");
    assert_eq!(got[4].0, "--web.request-timeout");
    assert!(got[4].1.contains("invalid duration \"soon\""), "{err}");
    assert!(
        err.to_string()
            .starts_with("--web.telemetry-path \"/ready\": \"/ready\" is one of"),
        "{err}"
    );
    let flags = Overrides {
        max_connections: Some("many".into()),
        ..Default::default()
    };
    let err = Config::load(None, &no_env, &flags).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--web.max-connections \"many\": expected a whole number of at least 1 (e.g. 1024)"
    );
}

/// Which collectors run, as (docker, cgroup, host, disk, gpu, logs).
fn collector_set(c: &Config) -> (bool, bool, bool, bool, GpuMode, bool) {
    let k = &c.collectors;
    (
        k.docker,
        k.cgroup,
        k.host,
        k.disk.enabled,
        k.gpu,
        k.logs_enabled,
    )
}

fn with_collector_flags(
    text: &str,
    disable_defaults: bool,
    flags: &[(&str, bool)],
) -> Result<Config, ConfigError> {
    let f = file(text);
    let o = Overrides {
        collectors: flags.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
        disable_defaults,
        ..Default::default()
    };
    Config::load(Some(f.path()), &no_env, &o)
}

#[test]
fn collector_flags_apply_over_the_file() {
    use GpuMode::*;
    let c = with_collector_flags("", false, &[]).unwrap();
    assert_eq!(collector_set(&c), (true, true, true, true, Auto, true));

    // --no-collector.X turns one off; --collector.X turns one the file disabled back on.
    let c = with_collector_flags(
        "collectors:\n  host: false\n  gpu: false\n",
        false,
        &[
            ("docker", false),
            ("host", true),
            ("logs", false),
            ("gpu", true),
        ],
    )
    .unwrap();
    assert_eq!(collector_set(&c), (false, true, true, true, Auto, false));

    // disable-defaults: everything off, then the flags turn some on, in order.
    let c = with_collector_flags(
        "",
        true,
        &[
            ("host", true),
            ("disk", true),
            ("disk", false),
            ("cgroup", true),
        ],
    )
    .unwrap();
    assert_eq!(collector_set(&c), (false, true, true, false, Off, false));
    let c = with_collector_flags("", true, &[]).unwrap();
    assert_eq!(collector_set(&c), (false, false, false, false, Off, false));

    // gpu: on by flag is auto, unless the file requires it (true).
    for (file_says, want) in [("auto", Auto), ("true", On), ("false", Auto)] {
        let text = format!("collectors:\n  gpu: {file_says}\n");
        let c = with_collector_flags(&text, false, &[("gpu", true)]).unwrap();
        assert_eq!(c.collectors.gpu, want, "file {file_says}");
        let c = with_collector_flags(&text, true, &[("gpu", true)]).unwrap();
        assert_eq!(c.collectors.gpu, want, "file {file_says}, disable-defaults");
        let c = with_collector_flags(&text, false, &[("gpu", false)]).unwrap();
        assert_eq!(c.collectors.gpu, Off, "file {file_says}");
    }

    // disk: turned on by flag, it keeps the file's settings.
    let c = with_collector_flags(
        "collectors:\n  disk:\n    enabled: false\n    statfs_timeout: 3s\n    \
         fs_types_exclude: \"^tmpfs$\"\n",
        false,
        &[("disk", true)],
    )
    .unwrap();
    assert!(c.collectors.disk.enabled);
    assert_eq!(c.collectors.disk.statfs_timeout, Duration::from_secs(3));
    assert_eq!(c.collectors.disk.fs_types_exclude.as_str(), "^tmpfs$");

    // Log rules stay when logs are turned off (the wiring reads logs_enabled).
    let c = with_collector_flags(
        "collectors:\n  logs:\n    - match: {name: \"*\"}\n      pattern: x\n",
        false,
        &[("logs", false)],
    )
    .unwrap();
    assert!(!c.collectors.logs_enabled);
    assert_eq!(c.collectors.logs.len(), 1);
}

#[test]
fn node_exporter_style_collectors_follow_file_and_flags() {
    let names = |c: &Config| c.collectors.node.enabled_names().collect::<Vec<_>>();
    // All on by default, as in node_exporter.
    let c = with_collector_flags("", false, &[]).unwrap();
    assert_eq!(names(&c), NODE_COLLECTOR_NAMES);
    // The file turns one off; a flag turns it on again; another flag turns another off.
    let c = with_collector_flags("collectors:\n  stat: false\n", false, &[]).unwrap();
    assert!(!c.collectors.node.enabled("stat"));
    assert!(c.collectors.node.enabled("filefd"));
    let c = with_collector_flags(
        "collectors:\n  stat: false\n",
        false,
        &[("stat", true), ("filefd", false)],
    )
    .unwrap();
    assert!(c.collectors.node.enabled("stat"));
    assert!(!c.collectors.node.enabled("filefd"));
    // disable-defaults turns them off with the rest; a flag turns one on.
    let c = with_collector_flags("", true, &[("filefd", true)]).unwrap();
    assert_eq!(names(&c), ["filefd"]);
    assert!(!c.collectors.host);
    // A wrong type in the file is an error.
    assert!(with_collector_flags("collectors:\n  filefd: maybe\n", false, &[]).is_err());
}

#[test]
fn textfile_takes_a_switch_or_settings_and_the_flag_wins() {
    let textfile =
        |text: &str, disable_defaults: bool, flags: &[(&str, bool)], dir: Option<&str>| {
            let f = file(text);
            let o = Overrides {
                collectors: flags.iter().map(|(n, b)| (n.to_string(), *b)).collect(),
                disable_defaults,
                textfile_directory: dir.map(str::to_string),
                ..Default::default()
            };
            Config::load(Some(f.path()), &no_env, &o).map(|c| c.collectors.textfile)
        };
    let t = |enabled: bool, directory: Option<&str>| TextfileConfig {
        enabled,
        directory: directory.map(PathBuf::from),
    };
    // On without a directory by default, as node_exporter.
    assert_eq!(textfile("", false, &[], None).unwrap(), t(true, None));
    assert_eq!(
        textfile("collectors:\n  textfile: false\n", false, &[], None).unwrap(),
        t(false, None)
    );
    assert_eq!(
        textfile(
            "collectors:\n  textfile:\n    directory: /var/lib/node_exporter\n",
            false,
            &[],
            None
        )
        .unwrap(),
        t(true, Some("/var/lib/node_exporter"))
    );
    // The flag over the file; an empty flag is no directory.
    let file_dir = "collectors:\n  textfile: {enabled: false, directory: /a}\n";
    assert_eq!(
        textfile(file_dir, false, &[("textfile", true)], Some("/b")).unwrap(),
        t(true, Some("/b"))
    );
    assert_eq!(
        textfile(file_dir, false, &[], Some("")).unwrap(),
        t(false, None)
    );
    // Off with the other defaults; a flag turns it on again.
    assert!(!textfile("", true, &[], None).unwrap().enabled);
    assert!(
        textfile("", true, &[("textfile", true)], None)
            .unwrap()
            .enabled
    );
    assert!(
        !textfile("", false, &[("textfile", false)], None)
            .unwrap()
            .enabled
    );
    // An unknown key is an error at its place.
    let err = textfile("collectors:\n  textfile: {dir: /a}\n", false, &[], None).unwrap_err();
    assert!(err.to_string().contains(":2:"), "{err}");
}

#[test]
fn an_unknown_collector_flag_names_the_flag() {
    let err = with_collector_flags("", false, &[("foo", true), ("gpus", false), ("host", true)])
        .unwrap_err();
    let shown: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        shown,
        [
            format!(
                "--collector.foo: unknown collector; expected one of docker, cgroup, host, disk, \
                 gpu, logs, probe, textfile, fs_usage, {}",
                NODE_COLLECTOR_NAMES.join(", ")
            ),
            format!(
                "--no-collector.gpus: unknown collector; expected one of docker, cgroup, host, \
                 disk, gpu, logs, probe, textfile, fs_usage, {}",
                NODE_COLLECTOR_NAMES.join(", ")
            ),
        ]
    );
}

#[test]
fn web_and_collector_changes_need_a_restart() {
    let base = Config::load(None, &no_env, &Overrides::default()).unwrap();
    assert!(base.needs_restart(&base.clone()).is_empty());
    let change = |text: &str, flags: Overrides| {
        let f = file(text);
        let mut new = Config::load(Some(f.path()), &no_env, &flags).unwrap();
        // Only the settings differ, not where they came from.
        new.source = None;
        base.needs_restart(&new)
    };
    let d = Overrides::default;
    assert_eq!(
        change("web:\n  telemetry_path: /m\n", d()),
        ["web.telemetry_path"]
    );
    assert_eq!(
        change("web:\n  max_connections: 1\n", d()),
        ["web.max_connections"]
    );
    assert_eq!(
        change("web:\n  read_header_timeout: 1s\n", d()),
        ["web.read_header_timeout"]
    );
    assert_eq!(
        change("web:\n  idle_timeout: 1s\n", d()),
        ["web.idle_timeout"]
    );
    assert_eq!(
        change("web:\n  request_timeout: 1s\n", d()),
        ["web.request_timeout"]
    );
    let logs_off = Overrides {
        collectors: vec![("logs".into(), false)],
        ..Default::default()
    };
    assert_eq!(change("", logs_off), ["collectors.logs"]);
    let none = Overrides {
        disable_defaults: true,
        ..Default::default()
    };
    assert_eq!(
        change("", none),
        [
            "collectors.docker",
            "collectors.cgroup",
            "collectors.host",
            "collectors.disk",
            "collectors.gpu",
            "collectors.logs",
            "collectors.probe",
            "collectors.textfile",
            "collectors.fs_usage",
            "collectors (node_exporter's: stat, filefd, ...)",
        ]
    );
    assert_eq!(
        change("collectors:\n  textfile: {directory: /x}\n", d()),
        ["collectors.textfile"]
    );
    assert_eq!(
        change("collectors:\n  fs_usage_budget: 1m\n", d()),
        ["collectors.fs_usage"]
    );
    assert_eq!(
        change("collectors:\n  filefd: false\n", d()),
        ["collectors (node_exporter's: stat, filefd, ...)"]
    );
    assert_eq!(
        change("collectors:\n  probe_interval: 5s\n", d()),
        ["collectors.probe"]
    );
    // What a reload applies is not listed.
    assert!(change("interval: 3s\n", d()).is_empty());
}

#[test]
fn a_file_overrides_the_default_key_by_key() {
    let f = file(
        "listen: 127.0.0.1:9000\n\
         interval: 2s\n\
         paths:\n  procfs: /host/proc\n\
         docker:\n  include: [\"web-*\"]\n  exclude: [web-tmp*]\n  resync: 5m\n\
         collectors:\n  disk: false\n  gpu: off\n  \
         logs:\n    - match: {name: \"api-*\"}\n      pattern: \"ERROR|FATAL\"\n\
         rule_files: [\"rules/*.yml\"]\n\
         state_dir: /tmp/lookout-state\n",
    );
    let c = Config::load(Some(f.path()), &no_env, &Overrides::default()).unwrap();
    assert_eq!(c.source.as_deref(), Some(f.path()));
    assert_eq!(c.listen, "127.0.0.1:9000");
    assert_eq!(c.interval, Duration::from_secs(2));
    assert_eq!(c.collector_timeout, Duration::from_millis(1600));
    assert_eq!(c.paths.procfs, Path::new("/host/proc"));
    // Keys the file leaves out keep the default.
    assert_eq!(c.paths.sysfs, Path::new("/sys"));
    assert_eq!(c.docker.host, "unix:///var/run/docker.sock");
    assert_eq!(c.docker.labels.len(), 2);
    assert!(c.docker.filter.matches("web-1"));
    assert!(!c.docker.filter.matches("web-tmp1"));
    assert!(!c.docker.filter.matches("db"));
    assert_eq!(c.docker.resync, Duration::from_secs(300));
    assert!(!c.collectors.disk.enabled);
    assert_eq!(c.collectors.gpu, GpuMode::Off);
    assert_eq!(c.collectors.logs.len(), 1);
    assert!(c.collectors.logs[0].name.matches("api-7"));
    assert!(c.collectors.logs[0].pattern.is_match("x FATAL y"));
    assert_eq!(c.rule_files, Some(vec!["rules/*.yml".to_string()]));
    assert_eq!(
        c.state_dir.as_deref(),
        Some(Path::new("/tmp/lookout-state"))
    );

    for (word, mode) in [
        ("auto", GpuMode::Auto),
        ("true", GpuMode::On),
        ("on", GpuMode::On),
        ("\"false\"", GpuMode::Off),
    ] {
        let (c, _) = load_file(&format!("collectors:\n  gpu: {word}\n"));
        assert_eq!(c.unwrap().collectors.gpu, mode, "gpu: {word}");
    }
    let (c, _) = load_file("collectors:\n  disk:\n    statfs_timeout: 250ms\n");
    let c = c.unwrap();
    assert!(c.collectors.disk.enabled);
    assert_eq!(c.collectors.disk.statfs_timeout, Duration::from_millis(250));
    // An empty file is the default.
    let (c, _) = load_file("");
    assert_eq!(c.unwrap().listen, "0.0.0.0:9659");
}

#[test]
fn environment_overrides_the_file_and_flags_override_the_environment() {
    let f = file("listen: 127.0.0.1:9000\ninterval: 30s\ndocker:\n  host: tcp://10.0.0.1:2375\n");
    let env: HashMap<&str, &str> = [
        ("LOOKOUT_LISTEN", "127.0.0.2:9001"),
        ("LOOKOUT_INTERVAL", "15s"),
        ("DOCKER_HOST", "unix:///run/user/1000/docker.sock"),
    ]
    .into();
    let env = |k: &str| env.get(k).map(|v| v.to_string());

    let c = Config::load(Some(f.path()), &no_env, &Overrides::default()).unwrap();
    assert_eq!(
        (c.listen.as_str(), c.interval, c.docker.host.as_str()),
        (
            "127.0.0.1:9000",
            Duration::from_secs(30),
            "tcp://10.0.0.1:2375"
        )
    );

    let c = Config::load(Some(f.path()), &env, &Overrides::default()).unwrap();
    assert_eq!(c.listen, "127.0.0.2:9001");
    assert_eq!(c.interval, Duration::from_secs(15));
    assert_eq!(c.docker.host, "unix:///run/user/1000/docker.sock");

    let flags = Overrides {
        listen: Some(":9100".into()),
        interval: Some("1m".into()),
        procfs: Some("/host/proc".into()),
        sysfs: Some("/host/sys".into()),
        rootfs: Some("/host".into()),
        docker_host: Some("tcp://127.0.0.1:2376".into()),
        ..Default::default()
    };
    let c = Config::load(Some(f.path()), &env, &flags).unwrap();
    assert_eq!(c.listen, ":9100");
    assert_eq!(bind_address(&c.listen), "0.0.0.0:9100");
    assert_eq!(c.interval, Duration::from_secs(60));
    assert_eq!(c.docker.host, "tcp://127.0.0.1:2376");
    assert_eq!(c.paths.procfs, Path::new("/host/proc"));
    assert_eq!(c.paths.sysfs, Path::new("/host/sys"));
    assert_eq!(c.paths.rootfs, Path::new("/host"));

    // The environment alone, over the embedded default.
    let c = Config::load(None, &env, &Overrides::default()).unwrap();
    assert_eq!(c.listen, "127.0.0.2:9001");
    assert_eq!(c.docker.host, "unix:///run/user/1000/docker.sock");
}

#[test]
fn bad_environment_and_flags_name_their_origin() {
    let env = |k: &str| match k {
        "LOOKOUT_LISTEN" => Some("nowhere".to_string()),
        "LOOKOUT_INTERVAL" => Some("soon".to_string()),
        _ => None,
    };
    let flags = Overrides {
        interval: Some("10".into()),
        ..Default::default()
    };
    let err = Config::load(None, &env, &flags).unwrap_err();
    let files: Vec<&str> = err.problems.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(files, ["LOOKOUT_LISTEN", "LOOKOUT_INTERVAL", "--interval"]);
    assert!(err.problems[0].message.contains("\"nowhere\""), "{err}");
    assert!(err.problems[1].message.contains("\"soon\""), "{err}");
    // No made-up position for a value that has no file, and its origin said once.
    assert!(
        err.to_string()
            .starts_with("LOOKOUT_LISTEN=\"nowhere\": expected host:port"),
        "{err}"
    );

    let env = |k: &str| (k == "DOCKER_HOST").then(|| "docker.example:2375".to_string());
    let err = Config::load(None, &env, &Overrides::default()).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].file, "DOCKER_HOST");
    assert!(err.problems[0].message.contains("tcp://host:port"), "{err}");

    let flags = Overrides {
        docker_host: Some("docker.example:2375".into()),
        ..Default::default()
    };
    let err = Config::load(None, &no_env, &flags).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].file, "--docker.host");

    let env = |k: &str| (k == "LOOKOUT_INTERVAL").then(|| "50ms".to_string());
    let err = Config::load(None, &env, &Overrides::default()).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].file, "LOOKOUT_INTERVAL");
    assert!(err.problems[0].message.contains("at least 100ms"), "{err}");
}

#[test]
fn unknown_keys_are_located_at_the_key() {
    let p = problems("listen: 0.0.0.0:9659\nbogus: 1\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (2, 1), "{p:?}");
    assert!(p[0].2.contains("unknown field `bogus`"), "{p:?}");
    let (err, name) = refused("listen: 0.0.0.0:9659\nbogus: 1\n");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{name}:2:1: unknown field `bogus`")),
        "{shown}"
    );

    let p = problems("docker:\n  include: [\"*\"]\n  hots: tcp://127.0.0.1:2375\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (3, 3), "{p:?}");
    assert!(p[0].2.contains("unknown field `hots`"), "{p:?}");

    let p = problems("collectors:\n  docker: true\n  gpus: auto\n");
    assert_eq!((p[0].0, p[0].1), (3, 3), "{p:?}");
}

#[test]
fn bad_values_are_located_at_the_value() {
    let p = problems("interval: ten\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (1, 11), "{p:?}");
    assert!(
        p[0].2.starts_with("interval: invalid duration \"ten\""),
        "{p:?}"
    );

    let p = problems("interval: 50ms\n");
    assert_eq!(
        p,
        vec![(1, 11, "interval: must be at least 100ms, got 50ms".into())]
    );

    let p = problems("docker:\n  include: [\"ok-*\", \"web-[\"]\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (2, 21), "{p:?}");
    assert!(
        p[0].2
            .starts_with("docker.include[1]: invalid glob \"web-[\""),
        "{p:?}"
    );

    let p = problems("collectors:\n  disk:\n    mount_points_exclude: \"^/(proc\"\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (3, 27), "{p:?}");
    assert!(
        p[0].2
            .starts_with("collectors.disk.mount_points_exclude: invalid regular expression"),
        "{p:?}"
    );

    let p = problems("collectors:\n  gpu: maybe\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (2, 8), "{p:?}");
    assert_eq!(
        p[0].2,
        "collectors.gpu: expected auto, true or false; got \"maybe\""
    );
}

#[test]
fn huge_durations_are_located_errors_not_panics() {
    let p = problems(
        "interval: 99999999999999999999s\ncollector_timeout: 16000w\n\
         docker:\n  resync: 99999999999999999999999999999999h\n\
         collectors:\n  disk:\n    statfs_timeout: 1e400s\n",
    );
    let got: Vec<(usize, usize, &str)> = p
        .iter()
        .map(|(l, c, m)| (*l, *c, m.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 11, "interval"),
            (2, 20, "collector_timeout"),
            (4, 11, "docker.resync"),
            (7, 21, "collectors.disk.statfs_timeout"),
        ],
        "{p:#?}"
    );
    for (_, _, m) in &p[..3] {
        assert!(m.contains("is too large"), "{m}");
    }
    // `1e400s` is not a number lookout reads: invalid, not too large.
    assert!(p[3].2.contains("invalid duration"), "{p:?}");

    // From the environment or a flag: named after its origin.
    let flags = Overrides {
        interval: Some("99999999999999999999s".into()),
        ..Default::default()
    };
    let err = Config::load(None, &no_env, &flags).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].file, "--interval");
    assert!(err.problems[0].message.contains("too large"), "{err}");
}

#[test]
fn durations_where_zero_makes_no_sense_are_refused() {
    let p = problems(
        "collector_timeout: 0s\n\
         docker:\n  resync: 0s\n\
         collectors:\n  disk:\n    statfs_timeout: \"0\"\n",
    );
    assert_eq!(
        p,
        vec![
            (
                1,
                20,
                "collector_timeout: must be more than 0s (e.g. 5s)".into()
            ),
            (
                3,
                11,
                "docker.resync: must be at least 1s (e.g. 60s), got 0s".into()
            ),
            (
                6,
                21,
                "collectors.disk.statfs_timeout: must be more than 0s (e.g. 1s)".into()
            ),
        ]
    );
    let p = problems("docker:\n  resync: 999ms\n");
    assert_eq!(
        p,
        vec![(
            2,
            11,
            "docker.resync: must be at least 1s (e.g. 60s), got 999ms".into()
        )]
    );
    // The smallest values that make sense are fine.
    let (c, _) = load_file(
        "collector_timeout: 1ms\ndocker:\n  resync: 1s\ncollectors:\n  disk:\n    \
         statfs_timeout: 1ms\n",
    );
    let c = c.unwrap();
    assert_eq!(c.collector_timeout, Duration::from_millis(1));
    assert_eq!(c.docker.resync, MIN_RESYNC);
    assert_eq!(c.collectors.disk.statfs_timeout, Duration::from_millis(1));
}

#[test]
fn labels_that_sanitise_to_the_same_name_are_refused() {
    let p = problems(
        "docker:\n  labels:\n    - a.b\n    - com.example/x\n    - a-b\n    - a.b\n    \
         - 1x\n    - _1x\n",
    );
    assert_eq!(
        p,
        vec![
            (
                5,
                7,
                "docker.labels[2]: \"a-b\" and docker.labels[0] \"a.b\" both become the label \
                 container_label_a_b; list only one of them"
                    .into()
            ),
            (
                6,
                7,
                "docker.labels[3]: \"a.b\" is already listed as docker.labels[0]".into()
            ),
            (
                8,
                7,
                "docker.labels[5]: \"_1x\" and docker.labels[4] \"1x\" both become the label \
                 container_label__1x; list only one of them"
                    .into()
            ),
        ]
    );
    // Flow style is located too.
    let p = problems("docker:\n  labels: [a.b, \"a b\"]\n");
    assert_eq!((p[0].0, p[0].1), (2, 17), "{p:?}");
    let (c, _) = load_file("docker:\n  labels: [a.b, a.c, ab]\n");
    assert_eq!(c.unwrap().docker.labels, ["a.b", "a.c", "ab"]);
}

#[test]
fn label_globs_are_checked_and_may_overlap_listed_keys() {
    // Globs export every label they match; one may overlap a listed key or another glob (which
    // label gets a shared name is settled when rendering, the same way each time).
    let (c, _) = load_file(
        "docker:\n  labels: [\"com.docker.compose.*\", com.docker.compose.project, \"*\", \
         \"team-?\", \"team.x\"]\n",
    );
    assert_eq!(c.unwrap().docker.labels.len(), 5);
    assert_eq!(
        problems(
            "docker:\n  labels:\n    - \"com.[docker\"\n    - \"*\"\n    - \"*\"\n    - a.b\n    - a-b\n"
        ),
        [
            (
                3,
                7,
                "docker.labels[0]: invalid glob \"com.[docker\": unclosed character class; \
                 missing ']' (e.g. com.docker.compose.* or *)"
                    .into()
            ),
            (
                5,
                7,
                "docker.labels[2]: \"*\" is already listed as docker.labels[1]".into()
            ),
            (
                7,
                7,
                "docker.labels[4]: \"a-b\" and docker.labels[3] \"a.b\" both become the label \
                 container_label_a_b; list only one of them"
                    .into()
            ),
        ]
    );
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let text = "\
listen: nowhere
interval: 5 seconds
docker:
  include:
    - web-*
    - \"[z-a]\"
  exclude: [\"{a,b\"]
  resync: soon
collectors:
  disk:
    fs_types_exclude: \"(ext4\"
    statfs_timeout: 1x
  gpu: sometimes
  logs:
    - match: {name: \"a[\"}
      pattern: \"ok\"
    - match: {name: \"b\"}
      pattern: \"(\"
rule_files: [\"rules/**/[.yml\"]
";
    let p = problems(text);
    let got: Vec<(usize, usize, &str)> = p
        .iter()
        .map(|(l, c, m)| (*l, *c, m.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 9, "listen"),
            (2, 11, "interval"),
            (6, 7, "docker.include[1]"),
            (7, 13, "docker.exclude[0]"),
            (8, 11, "docker.resync"),
            (11, 23, "collectors.disk.fs_types_exclude"),
            (12, 21, "collectors.disk.statfs_timeout"),
            (13, 8, "collectors.gpu"),
            (15, 21, "collectors.logs[0].match.name"),
            (18, 16, "collectors.logs[1].pattern"),
            (19, 14, "rule_files[0]"),
        ],
        "{p:#?}"
    );
    let (err, name) = refused(text);
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), 11, "{shown}");
    assert!(
        shown.lines().all(|l| l.starts_with(&format!("{name}:"))),
        "{shown}"
    );
}

#[test]
fn syntax_and_type_errors_come_located_from_the_parser() {
    // A tab where YAML wants spaces, on line 2.
    let p = problems("docker:\n\thost: x\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, 2, "{p:?}");
    // A list where a string is expected.
    let p = problems("listen:\n  - a\n  - b\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (2, 3), "{p:?}");
    assert!(
        !p[0].2.contains(" at line "),
        "the location is not repeated: {p:?}"
    );
}

#[test]
fn an_unreadable_file_is_a_problem_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let err = Config::load(Some(&missing), &no_env, &Overrides::default()).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].file, missing.display().to_string());
    assert!(
        err.problems[0]
            .message
            .starts_with("cannot read config file"),
        "{err}"
    );
}

#[test]
fn listen_and_docker_host_forms() {
    for ok in ["0.0.0.0:9659", ":9659", "[::1]:9659", "localhost:80"] {
        assert!(check_listen(ok).is_ok(), "{ok}");
    }
    for bad in ["9659", "host:port", "a b:1", "host:70000"] {
        assert!(check_listen(bad).is_err(), "{bad}");
    }
    for ok in [
        "unix:///var/run/docker.sock",
        "tcp://127.0.0.1:2375",
        "tcp://docker:2375/",
        "http://[::1]:2375",
    ] {
        assert!(check_docker_host(ok).is_ok(), "{ok}");
    }
    for bad in [
        "unix://",
        "tcp://docker",
        "ssh://me@host",
        "/var/run/docker.sock",
    ] {
        assert!(check_docker_host(bad).is_err(), "{bad}");
    }
}

#[test]
fn receivers_routes_and_inhibition_load() {
    let secret = file("s3cr3t-token\n");
    let text = format!(
        r#"
receivers:
  - name: ops-discord
    discord:
      webhook_url: ${{HOOK}}
      username: lookout
      mention: "<@&123>"
  - name: admins
    email:
      smtp: {{host: smtp.example.com, port: 465, username: lookout, password_file: {}}}
      from: "lookout <lookout@example.com>"
      to: [a@example.com, b@example.com]
  - name: am
    alertmanager: {{urls: ["http://am-1:9093/", "http://am-2:9093"]}}
  - name: hook
    webhook: {{url: "https://example.com/hook"}}
route:
  receiver: ops-discord
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: admins
      continue: true
inhibit_rules:
  - source_matchers: ['alertname="DockerUnreachable"']
    target_matchers: ['alertname=~"Container.*"']
"#,
        secret.path().display()
    );
    let f = file(&text);
    let env = |k: &str| (k == "HOOK").then(|| "https://discord.com/api/webhooks/1/tok".to_string());
    let c = Config::load(Some(f.path()), &env, &Overrides::default()).unwrap();
    let n = &c.notify;
    assert_eq!(n.names(), ["ops-discord", "admins", "am", "hook"]);
    match &n.receiver("ops-discord").unwrap().kind {
        receivers::ReceiverKind::Discord(d) => {
            assert_eq!(
                d.webhook_url.expose(),
                "https://discord.com/api/webhooks/1/tok"
            );
            assert_eq!(d.mention.as_deref(), Some("<@&123>"));
        }
        k => panic!("{k:?}"),
    }
    match &n.receiver("admins").unwrap().kind {
        receivers::ReceiverKind::Email(e) => {
            // Port 465 means implicit TLS unless told otherwise.
            assert_eq!(e.smtp.tls, receivers::SmtpTls::Tls);
            assert_eq!(e.smtp.password.as_ref().unwrap().expose(), "s3cr3t-token");
            assert_eq!(e.to.len(), 2);
        }
        k => panic!("{k:?}"),
    }
    match &n.receiver("am").unwrap().kind {
        receivers::ReceiverKind::Alertmanager(a) => {
            assert_eq!(a.urls, ["http://am-1:9093", "http://am-2:9093"]);
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(n.route.receiver.as_deref(), Some("ops-discord"));
    assert_eq!(n.route.routes[0].receiver.as_deref(), Some("admins"));
    assert!(n.route.routes[0].continue_);
    // Children inherit their parent's timing.
    assert_eq!(
        n.route.routes[0].repeat_interval,
        Duration::from_secs(4 * 3600)
    );
    assert_eq!(n.inhibit_rules.len(), 1);
    // Secrets never print.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("tok") && !shown.contains("s3cr3t"),
        "{shown}"
    );
}

#[test]
fn bad_receivers_are_located_and_never_show_a_secret() {
    let text = r#"receivers:
  - name: d
    discord:
      webhook_url: "not a url with s3cr3t"
  - name: e
    email:
      smtp: {host: h, password_file: /nonexistent/secret}
      from: x@example.com
      to: []
  - name: d
    webhook: {url: "https://example.com", bogus: 1}
route:
  receiver: nope
  routes:
    - matchers: ['severity']
inhibit_rules:
  - source_matchers: ['a="b"']
"#;
    let (err, _) = refused(text);
    let all = err.to_string();
    assert!(!all.contains("s3cr3t"), "a secret was printed: {all}");
    // Unknown keys are refused by the parser before anything else, at their place.
    assert!(all.contains("bogus"), "{all}");
    let text = text.replace(", bogus: 1", "");
    let p = problems(&text);
    let find = |needle: &str| {
        p.iter()
            .find(|(.., m)| m.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentions {needle:?}: {p:?}"))
            .clone()
    };
    let (l, _, m) = find("receivers[0].discord.webhook_url");
    assert_eq!(l, 4, "{m}");
    assert!(m.contains("<secret>"), "{m}");
    let (l, _, m) = find("password_file");
    assert_eq!(l, 7);
    assert!(m.contains("/nonexistent/secret"), "the file is named: {m}");
    find("at least one recipient");
    let (l, ..) = find("defined twice");
    assert_eq!(l, 10);
    let (l, _, m) = find("route.receiver");
    assert_eq!(l, 13);
    assert!(m.contains("nope"));
    find("route.routes[0].matchers[0]");
    find("inhibit_rules[0]");
    for (.., m) in &p {
        assert!(!m.contains("s3cr3t"), "{m}");
    }
}

#[test]
fn an_unset_variable_is_named_not_guessed() {
    let (err, _) = refused("receivers:\n  - name: d\n    discord: {webhook_url: \"${NOPE}\"}\n");
    let all = err.to_string();
    assert!(all.contains("NOPE is not set"), "{all}");
    assert!(all.contains(":3:"), "located: {all}");
}
