//! `lookout doctor`: diagnose the environment and print concrete fixes.

use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::collect::cgroup::Layout;
use crate::collect::gpu;
use crate::config::{Config, GpuMode};
use crate::docker_api::{BollardDocker, DockerApi};

/// How a finding went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Error,
    Info,
}

/// One finding, with a fix when there is something to fix.
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub topic: &'static str,
    pub message: String,
    pub fix: Option<String>,
}

/// Everything `doctor` found.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn add(
        &mut self,
        level: Level,
        topic: &'static str,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.findings.push(Finding {
            level,
            topic,
            message: message.into(),
            fix,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            let tag = match x.level {
                Level::Ok => "[ok]   ",
                Level::Warn => "[warn] ",
                Level::Error => "[FAIL] ",
                Level::Info => "[info] ",
            };
            writeln!(f, "{tag}{}: {}", x.topic, x.message)?;
            if let Some(fix) = &x.fix {
                for line in fix.lines() {
                    writeln!(f, "       fix: {line}")?;
                }
            }
        }
        let errors = self
            .findings
            .iter()
            .filter(|f| f.level == Level::Error)
            .count();
        let warns = self
            .findings
            .iter()
            .filter(|f| f.level == Level::Warn)
            .count();
        writeln!(f, "\n{errors} problem(s), {warns} warning(s)")
    }
}

/// Run every check.
pub async fn diagnose(cfg: &Config) -> Report {
    let mut r = Report::default();
    let facts = docker(cfg, &mut r).await;
    cgroups(
        cfg,
        facts.as_ref().and_then(|f| f.cgroup_driver.as_deref()),
        &mut r,
    );
    proc_and_sys(cfg, &mut r);
    gpu(cfg, facts.as_ref().map(|f| f.runtimes.as_slice()), &mut r).await;
    r
}

/// What the Docker check learnt that later checks need.
struct DockerFacts {
    cgroup_driver: Option<String>,
    runtimes: Vec<String>,
}

async fn docker(cfg: &Config, r: &mut Report) -> Option<DockerFacts> {
    let host = &cfg.docker.host;
    let from_env = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| h == host)
        .is_some();
    let origin = if from_env { " (from DOCKER_HOST)" } else { "" };
    if let Some(path) = host.strip_prefix("unix://") {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fix = if from_env {
                    format!("DOCKER_HOST={host} points at a socket that does not exist: unset it or correct it (e.g. unix:///var/run/docker.sock)")
                } else {
                    format!(
                        "start the daemon (systemctl start docker), or, when lookout runs in a container, \
                         mount the socket: -v /var/run/docker.sock:{path}:ro"
                    )
                };
                r.add(
                    Level::Error,
                    "docker",
                    format!("socket {path}{origin} does not exist"),
                    Some(fix),
                );
                return None;
            }
            Err(e) => {
                r.add(
                    Level::Error,
                    "docker",
                    format!("cannot stat {path}: {e}"),
                    None,
                );
                return None;
            }
            Ok(m) if !m.file_type().is_socket() => {
                r.add(
                    Level::Error,
                    "docker",
                    format!("{path}{origin} exists but is not a socket"),
                    Some("point --docker.host or DOCKER_HOST at the daemon's socket, e.g. unix:///var/run/docker.sock".into()),
                );
                return None;
            }
            Ok(m) => {
                if let Err(e) = std::os::unix::net::UnixStream::connect(path) {
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        let gid = m.gid();
                        let group = group_name(gid).unwrap_or_else(|| gid.to_string());
                        r.add(
                            Level::Error,
                            "docker",
                            format!("permission denied on {path} (owned by uid {} gid {gid} ({group}), mode {:o})", m.uid(), m.mode() & 0o777),
                            Some(format!(
                                "add the user to the socket's group: sudo usermod -aG {group} $USER (then log in again)\n\
                                 in Docker Compose: group_add: [\"{gid}\"] on the lookout service\n\
                                 with docker run: --group-add {gid}"
                            )),
                        );
                    } else {
                        r.add(
                            Level::Error,
                            "docker",
                            format!("cannot connect to {path}: {e}"),
                            Some("is dockerd running? (systemctl status docker)".into()),
                        );
                    }
                    return None;
                }
            }
        }
    }
    let api = match BollardDocker::new(host) {
        Ok(a) => a,
        Err(e) => {
            r.add(
                Level::Error,
                "docker",
                e.to_string(),
                Some("check --docker.host / DOCKER_HOST".into()),
            );
            return None;
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), api.info()).await {
        Ok(Ok(info)) => {
            r.add(
                Level::Ok,
                "docker",
                format!(
                    "reachable at {host}{origin}: Docker {} (API {}), {}",
                    info.version, info.api_version, info.os
                ),
                None,
            );
            if !api.is_local() {
                r.add(
                    Level::Warn,
                    "docker",
                    "the daemon is remote: cgroup files are not on this machine, so container stats come from Docker's stats API (about 1 s per container)",
                    Some("run lookout on the Docker host itself for cgroup-speed collection".into()),
                );
            }
            if !info.runtimes.is_empty() {
                r.add(
                    Level::Info,
                    "docker",
                    format!("runtimes: {}", info.runtimes.join(", ")),
                    None,
                );
            }
            Some(DockerFacts {
                cgroup_driver: Some(info.cgroup_driver).filter(|d| !d.is_empty()),
                runtimes: info.runtimes,
            })
        }
        Ok(Err(e)) => {
            let fix = if host.starts_with("tcp://") || host.starts_with("http://") {
                format!("nothing answers at {host}{origin}: check DOCKER_HOST (e.g. unset it to use unix:///var/run/docker.sock) and that the daemon listens there")
            } else {
                "is dockerd running and healthy? (systemctl status docker; journalctl -u docker)"
                    .into()
            };
            r.add(Level::Error, "docker", e.to_string(), Some(fix));
            None
        }
        Err(_) => {
            r.add(
                Level::Error,
                "docker",
                format!("{host}{origin} did not answer within 10s"),
                Some("check DOCKER_HOST and the daemon's health".into()),
            );
            None
        }
    }
}

fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next();
        (f.next()? == gid.to_string()).then(|| name.to_string())
    })
}

fn cgroups(cfg: &Config, driver: Option<&str>, r: &mut Report) {
    let layout = Layout::detect(&cfg.paths.sysfs);
    let root = cfg.paths.sysfs.join("fs/cgroup");
    match layout.version() {
        Some(v) => r.add(
            Level::Ok,
            "cgroup",
            format!(
                "cgroup v{v} at {}, driver {}",
                root.display(),
                driver.unwrap_or("unknown (Docker not reachable)")
            ),
            None,
        ),
        None => r.add(
            Level::Warn,
            "cgroup",
            format!("no cgroup filesystem under {}", root.display()),
            Some(format!(
                "mount the host's /sys (e.g. -v /sys:/host/sys:ro and --path.sysfs=/host/sys); \
                 until then container stats come from Docker's stats API (slow). Now: --path.sysfs={}",
                cfg.paths.sysfs.display()
            )),
        ),
    }
}

fn proc_and_sys(cfg: &Config, r: &mut Report) {
    let in_container = Path::new("/.dockerenv").exists() || own_cgroup_is_container();
    let procfs = &cfg.paths.procfs;
    match std::fs::read_to_string(procfs.join("1/cgroup")) {
        Ok(text) => {
            let host_init = text
                .lines()
                .filter_map(|l| l.splitn(3, ':').nth(2))
                .all(|p| p == "/" || p == "/init.scope" || p.is_empty());
            if host_init {
                r.add(
                    Level::Ok,
                    "procfs",
                    format!(
                        "{} is the host's (pid 1 is in the root cgroup)",
                        procfs.display()
                    ),
                    None,
                );
            } else {
                r.add(
                    Level::Warn,
                    "procfs",
                    format!("{} is a container's: pid 1 is in cgroup {}", procfs.display(), text.lines().next().unwrap_or("")),
                    Some("mount the host's /proc: -v /proc:/host/proc:ro and pass --path.procfs=/host/proc (and pid: host in Compose for network counters)".into()),
                );
            }
        }
        Err(e) => r.add(
            Level::Error,
            "procfs",
            format!("cannot read {}/1/cgroup: {e}", procfs.display()),
            Some("check --path.procfs".into()),
        ),
    }
    let sysfs = &cfg.paths.sysfs;
    let net = std::fs::read_dir(sysfs.join("class/net"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let host_like = net
        .iter()
        .any(|n| n == "docker0" || n.starts_with("veth") || n.starts_with("br-"));
    if net.is_empty() {
        r.add(
            Level::Error,
            "sysfs",
            format!("cannot list {}/class/net", sysfs.display()),
            Some("check --path.sysfs".into()),
        );
    } else if host_like || !in_container {
        r.add(
            Level::Ok,
            "sysfs",
            format!("{} looks like the host's", sysfs.display()),
            None,
        );
    } else {
        r.add(
            Level::Warn,
            "sysfs",
            format!(
                "{} looks like a container's (interfaces: {})",
                sysfs.display(),
                net.join(", ")
            ),
            Some(
                "mount the host's /sys: -v /sys:/host/sys:ro and pass --path.sysfs=/host/sys"
                    .into(),
            ),
        );
    }
    if in_container && cfg.paths.rootfs == Path::new("/") {
        r.add(
            Level::Info,
            "rootfs",
            "lookout runs in a container with --path.rootfs=/: filesystem series will describe the container's own filesystems",
            Some("mount the host's / read-only (-v /:/host:ro,rslave) and pass --path.rootfs=/host".into()),
        );
    }
}

fn own_cgroup_is_container() -> bool {
    std::fs::read_to_string("/proc/self/cgroup")
        .map(|t| t.contains("/docker/") || t.contains("docker-") || t.contains("/kubepods"))
        .unwrap_or(false)
}

/// The NVIDIA driver and NVML versions, the GPUs, and whether Docker can hand GPUs to containers.
async fn gpu(cfg: &Config, runtimes: Option<&[String]>, r: &mut Report) {
    if cfg.collectors.gpu == GpuMode::Off {
        r.add(Level::Info, "gpu", "disabled (collectors.gpu: false)", None);
        return;
    }
    let lib = gpu::library_path();
    let probe = tokio::task::spawn_blocking({
        let lib = lib.clone();
        move || gpu::probe(&lib)
    })
    .await
    .unwrap_or_else(|e| Err(gpu::GpuError::Init(e.to_string())));
    let found = match probe {
        Ok(p) => {
            let list: Vec<String> = p
                .gpus
                .iter()
                .map(|(i, name, uuid)| format!("{i}: {name} ({uuid})"))
                .collect();
            r.add(
                Level::Ok,
                "gpu",
                format!(
                    "NVIDIA driver {}, NVML {}, {} GPU(s){}{}",
                    p.driver_version.as_deref().unwrap_or("unknown"),
                    p.nvml_version.as_deref().unwrap_or("unknown"),
                    p.gpus.len(),
                    if list.is_empty() { "" } else { ": " },
                    list.join("; ")
                ),
                None,
            );
            !p.gpus.is_empty()
        }
        Err(e) => {
            let level = match cfg.collectors.gpu {
                GpuMode::On => Level::Error,
                _ => Level::Info,
            };
            let fix = if e.is_absent() {
                format!(
                    "on a GPU host: install the NVIDIA driver (it provides {})\n\
                     when lookout runs in a container: start it with --gpus all (or --runtime=nvidia) \
                     so the driver's library is mounted in\n\
                     on a host without GPUs: set collectors.gpu: false to skip this check",
                    gpu::DEFAULT_LIBRARY
                )
            } else {
                "check that the NVIDIA driver works (nvidia-smi) and that lookout may open /dev/nvidia*"
                    .into()
            };
            r.add(level, "gpu", e.to_string(), Some(fix));
            false
        }
    };
    let Some(runtimes) = runtimes else { return };
    if runtimes.iter().any(|rt| rt == "nvidia") {
        r.add(Level::Ok, "gpu", "Docker has the nvidia runtime", None);
    } else if found {
        r.add(
            Level::Warn,
            "gpu",
            format!("Docker has no nvidia runtime (runtimes: {})", {
                let mut names = runtimes.to_vec();
                names.sort();
                names.join(", ")
            }),
            Some(
                "install the NVIDIA Container Toolkit, then:\n\
                 sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker"
                    .into(),
            ),
        );
    } else {
        r.add(
            Level::Info,
            "gpu",
            "Docker has no nvidia runtime (no GPU here either)",
            None,
        );
    }
}
