//! Helpers of the deploy tests (`tests/deploy_*.rs`): the repository's deploy files, read the
//! way their tools read them (`docker-compose config`), and lookout's image built from
//! `deploy/Dockerfile`'s runtime stage on a root filesystem assembled here, since no base image
//! can be pulled on a test machine.
//!
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_yaml::Value;

/// The tag of the image [`lookout_image`] builds.
pub const IMAGE: &str = "lookout-deploy-test:latest";

/// The user the runtime image runs as (distroless's `nonroot`).
pub const NONROOT: &str = "65532";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, read.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// stdout of a command that must succeed.
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The group id of the Docker socket, as `group_add` / `DOCKER_GID` want it.
pub fn docker_gid() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/var/run/docker.sock")
        .map(|m| m.gid().to_string())
        .expect("/var/run/docker.sock")
}

/// `docker-compose -f FILE... config` with `env`, parsed: the files as Compose reads them
/// (variables substituted, relative paths made absolute, short syntax normalised).
pub fn compose_config(files: &[&str], env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new("docker-compose");
    for f in files {
        cmd.arg("-f").arg(repo().join(f));
    }
    let out = cmd
        .arg("config")
        .env_remove("LOOKOUT_IMAGE")
        .envs(env.iter().copied())
        .output()
        .expect("run docker-compose");
    let text = ok(out, &format!("docker-compose config of {files:?}"));
    serde_yaml::from_str(&text).expect("docker-compose config prints YAML")
}

/// `v[k1][k2]...` (Null where absent).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter().fold(v, |v, k| v.get(*k).unwrap_or(&NULL))
}

/// A YAML sequence of strings.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One mount of a service, whichever syntax it was written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// `rslave`, `rprivate`, ... when given.
    pub propagation: Option<String>,
    /// A named volume rather than a host path.
    pub volume: bool,
}

const PROPAGATIONS: [&str; 6] = [
    "rslave", "slave", "rshared", "shared", "rprivate", "private",
];

/// The mounts of a service of a `docker-compose config` output.
pub fn mounts(service: &Value) -> Vec<Mount> {
    let mut out = Vec::new();
    for v in service["volumes"]
        .as_sequence()
        .cloned()
        .unwrap_or_default()
    {
        match v {
            Value::String(s) => {
                // SOURCE:TARGET[:OPTIONS] (Compose 1.29 prints binds and volumes this way).
                let parts: Vec<&str> = s.splitn(3, ':').collect();
                let opts: Vec<&str> = parts
                    .get(2)
                    .map(|o| o.split(',').collect())
                    .unwrap_or_default();
                out.push(Mount {
                    source: parts[0].to_string(),
                    target: parts[1].to_string(),
                    read_only: opts.contains(&"ro"),
                    propagation: opts
                        .iter()
                        .find(|o| PROPAGATIONS.contains(o))
                        .map(|o| o.to_string()),
                    volume: !parts[0].starts_with('/'),
                });
            }
            Value::Mapping(_) => out.push(Mount {
                source: v["source"].as_str().unwrap_or("").to_string(),
                target: v["target"].as_str().unwrap_or("").to_string(),
                read_only: v["read_only"].as_bool().unwrap_or(false),
                propagation: at(&v, &["bind", "propagation"])
                    .as_str()
                    .map(str::to_string),
                volume: v["type"].as_str() == Some("volume"),
            }),
            other => panic!("a volume entry Compose does not print: {other:?}"),
        }
    }
    out
}

/// The `--path.*` flags lookout needs in a container, with the host path each must be the
/// read-only mount of.
pub const HOST_PATHS: [(&str, &str); 3] = [
    ("--path.procfs", "/proc"),
    ("--path.sysfs", "/sys"),
    ("--path.rootfs", "/"),
];

/// Check that every `--path.*` flag of `args` names a read-only mount of the matching host
/// path, and that the Docker socket is mounted read-only. Returns the problems.
pub fn check_host_mounts(args: &[String], mounts: &[Mount]) -> Vec<String> {
    let mut problems = Vec::new();
    for (flag, host) in HOST_PATHS {
        let prefix = format!("{flag}=");
        let Some(target) = args.iter().find_map(|a| a.strip_prefix(&prefix)) else {
            problems.push(format!("no {flag}=... in {args:?}"));
            continue;
        };
        match mounts.iter().find(|m| m.target == target) {
            None => problems.push(format!("{flag}={target}: nothing is mounted there")),
            Some(m) => {
                if m.source != host || m.volume {
                    problems.push(format!(
                        "{flag}={target}: mounts {:?}, not the host's {host}",
                        m.source
                    ));
                }
                if !m.read_only {
                    problems.push(format!("{flag}={target}: the mount is writable"));
                }
            }
        }
    }
    match mounts.iter().find(|m| m.target == "/var/run/docker.sock") {
        Some(m) if m.source == "/var/run/docker.sock" && m.read_only => {}
        other => problems.push(format!(
            "the Docker socket is not mounted read-only: {other:?}"
        )),
    }
    problems
}

/// The runtime stage of `deploy/Dockerfile`: the instructions after its last `FROM`.
pub fn runtime_stage(dockerfile: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = dockerfile.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM in deploy/Dockerfile");
    (
        lines[from].to_string(),
        lines[from + 1..].iter().map(|l| l.to_string()).collect(),
    )
}

/// lookout's image as `deploy/Dockerfile` makes it, built once per test binary: `FROM scratch`
/// plus what the distroless base brings that lookout needs (the glibc libraries the binary is
/// linked against, as `ldd` lists them, and a passwd with `nonroot`), then the Dockerfile's
/// runtime stage itself, its `COPY --from=build /out/...` taking the files from a directory
/// laid out like the build stage's `/out` (this build's lookout binary, stripped).
pub fn lookout_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(build_image);
    IMAGE
}

fn build_image() {
    let ctx = tempfile::tempdir().unwrap();
    let base = ctx.path().join("base");
    let bin = super::lookout_bin();
    // The base: the dynamic loader and libraries lookout is linked against.
    let ldd = ok(Command::new("ldd").arg(&bin).output().expect("ldd"), "ldd");
    for lib in ldd.lines().filter_map(|l| {
        let l = l.trim();
        let path = l.split("=>").nth(1).unwrap_or(l).trim();
        path.split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
    }) {
        let dest = base.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
    }
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::create_dir_all(base.join("tmp")).unwrap();
    std::fs::write(
        base.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(base.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    // The build stage's /out.
    let out = ctx.path().join("out");
    std::fs::create_dir_all(out.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(out.join("var/lib/lookout")).unwrap();
    let dest = out.join("usr/local/bin/lookout");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&dest)
        .arg(&bin)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !stripped {
        std::fs::copy(&bin, &dest).unwrap();
    }
    // The runtime stage, on the assembled base.
    let (_, stage) = runtime_stage(&read("deploy/Dockerfile"));
    let mut dockerfile = String::from("FROM scratch\nCOPY base/ /\n");
    for line in stage {
        let line = match line.strip_prefix("COPY --from=build ") {
            Some(rest) => format!("COPY {}", rest.replace(" /out/", " out/")),
            None => line,
        };
        dockerfile.push_str(&line);
        dockerfile.push('\n');
    }
    std::fs::write(ctx.path().join("Dockerfile"), &dockerfile).unwrap();
    let before = image_id();
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", IMAGE])
        .arg(ctx.path())
        .output()
        .expect("docker build");
    ok(out, &format!("docker build of\n{dockerfile}"));
    // The previous build of the tag, now untagged, goes.
    if let Some(old) = before.filter(|old| Some(old) != image_id().as_ref()) {
        let _ = Command::new("docker").args(["rmi", &old]).output();
    }
}

fn image_id() -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", IMAGE])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The mountpoints of the host's mount table (`/proc/1/mounts`, as PID 1 sees them).
pub fn host_mountpoints() -> Vec<String> {
    std::fs::read_to_string("/proc/1/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|m| m.replace("\\040", " "))
        .collect()
}

/// statvfs of a path: (size, available) in bytes.
pub fn statvfs(path: &Path) -> (u64, u64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes only into the struct it is given.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    (
        s.f_blocks as u64 * s.f_frsize as u64,
        s.f_bavail as u64 * s.f_frsize as u64,
    )
}

/// Whether the host's `/` is a shared mount (systemd makes it one at boot), which a bind mount
/// of `/` with `rslave` propagation needs; a host without systemd may have it private.
pub fn root_is_shared() -> bool {
    std::fs::read_to_string("/proc/1/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.split(" - ")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
        })
        .find(|f| f.get(4) == Some(&"/"))
        .is_some_and(|f| f[6..].iter().any(|o| o.starts_with("shared:")))
}

/// The note a test prints when it runs a mount without the propagation the file asks for.
pub const PRIVATE_ROOT: &str =
    "NOTE: this host's / is not a shared mount (no systemd), so Docker refuses a bind \
mount of / with rslave propagation; the test runs that mount without it (mounts made after \
lookout starts are then not seen under /host)";
