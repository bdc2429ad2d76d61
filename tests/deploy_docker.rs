//! lookout run the way `deploy/` runs it, on the real Docker daemon: as the Compose stack's
//! sidecar (the image of `deploy/Dockerfile`'s runtime stage, with the mounts, groups and flags
//! of `deploy/docker-compose.yml` as `docker-compose config` reads them), and as the global
//! service of `deploy/swarm/stack.yml` through `docker stack deploy`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::deploy::{
    self, at, compose_config, docker_gid, lookout_image, mounts, ok, statvfs, strings,
};
use support::{docker, docker_or_skip, ensure_image, get, request, sample, wait_until, Container};

/// The Compose keys of the lookout service this test knows how to run; a key added to the
/// file must be added here, so the test never runs lookout differently from the file.
const KNOWN_KEYS: [&str; 13] = [
    "build",
    "image",
    "command",
    "restart",
    "network_mode",
    "pid",
    "group_add",
    "volumes",
    "security_opt",
    "cap_drop",
    "read_only",
    "logging",
    "environment",
];

/// A Docker volume this test made; removed when dropped.
struct Volume(String);

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "-f", &self.0]);
    }
}

/// `docker run` arguments for the Compose file's lookout service: every key translated, the
/// named state volume replaced by `state`, and `extra` (the test's own) appended.
fn run_args(service: &serde_yaml::Value, state: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    for key in service.as_mapping().unwrap().keys() {
        let key = key.as_str().unwrap();
        assert!(
            KNOWN_KEYS.contains(&key),
            "deploy/docker-compose.yml's lookout has `{key}`, which this test does not run"
        );
    }
    let flag = |args: &mut Vec<String>, f: &str, v: &str| {
        args.push(f.to_string());
        args.push(v.to_string());
    };
    if let Some(n) = service["network_mode"].as_str() {
        flag(&mut args, "--network", n);
    }
    if let Some(p) = service["pid"].as_str() {
        flag(&mut args, "--pid", p);
    }
    for g in strings(&service["group_add"]) {
        flag(&mut args, "--group-add", &g);
    }
    if service["read_only"].as_bool() == Some(true) {
        args.push("--read-only".into());
    }
    for c in strings(&service["cap_drop"]) {
        flag(&mut args, "--cap-drop", &c);
    }
    for s in strings(&service["security_opt"]) {
        flag(&mut args, "--security-opt", &s);
    }
    if let Some(env) = service["environment"].as_mapping() {
        for (k, v) in env {
            let v = match v {
                serde_yaml::Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other).unwrap().trim().to_string(),
            };
            flag(&mut args, "-e", &format!("{}={v}", k.as_str().unwrap()));
        }
    }
    for m in mounts(service) {
        let source = if m.volume {
            state.to_string()
        } else {
            m.source
        };
        let mut opts = vec![if m.read_only { "ro" } else { "rw" }.to_string()];
        match m.propagation {
            Some(p) if p.contains("slave") && !deploy::root_is_shared() => {
                eprintln!("{}", deploy::PRIVATE_ROOT)
            }
            p => opts.extend(p),
        }
        flag(
            &mut args,
            "-v",
            &format!("{source}:{}:{}", m.target, opts.join(",")),
        );
    }
    args.extend(extra.iter().cloned());
    args
}

/// The value of every sample of `metric` by the value of its label `label`.
fn by_label(text: &str, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter_map(|l| {
            let v = l[l.find(&key)? + key.len()..]
                .split('"')
                .next()?
                .to_string();
            Some((v, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_compose_sidecar_sees_the_hosts_containers_and_mounts() {
    if !docker_or_skip("the_compose_sidecar_sees_the_hosts_containers_and_mounts")
        || !support::tool_or_skip("the_compose_sidecar", "/usr/bin/docker-compose")
    {
        return;
    }
    ensure_image();
    let image = lookout_image();
    let gid = docker_gid();
    let config = compose_config(
        &["deploy/docker-compose.yml"],
        &[("DOCKER_GID", &gid), ("LOOKOUT_IMAGE", image)],
    );
    let service = at(&config, &["services", "lookout"]);
    assert_eq!(service["image"].as_str(), Some(image));

    // Containers for lookout to see: one limited and running, one that exited with 3.
    let busy = Container::run(
        "lk-deploy-run",
        &["--memory", "64m", "--cpus", "0.5"],
        &["sleep", "3600"],
    );
    let exited = Container::run("lk-deploy-exit", &[], &["sh", "-c", "exit 3"]);
    exited.wait_state("exited", Duration::from_secs(20));

    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let state = Volume(support::unique_name("lookout-deploy-state"));
    // The test's own: a free port instead of the host's 9659 (LOOKOUT_LISTEN, which the
    // image's healthcheck follows too), and health checks every second instead of every 30.
    let extra = [
        "-e".to_string(),
        format!("LOOKOUT_LISTEN={addr}"),
        "--health-interval=1s".to_string(),
        "--health-start-period=1s".to_string(),
    ];
    let name = support::unique_name("lk-deploy-sidecar");
    let mut a = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        name.clone(),
    ];
    a.extend(run_args(service, &state.0, &extra));
    a.push(image.to_string());
    a.extend(strings(&service["command"]));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let run = docker(&a);
    if !run.status.success() {
        // A container that was created but could not start holds its name and the volume.
        let _ = docker(&["rm", "-f", &name]);
    }
    let id = ok(run, "docker run of the sidecar").trim().to_string();
    let sidecar = Container { id, name };
    let logs = || {
        let o = sidecar.docker(&["logs"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    // Reachable from the host, ready, and healthy by the image's own HEALTHCHECK.
    wait_until(Duration::from_secs(60), || {
        request(&addr, "GET", "/ready", &[])
            .ok()
            .filter(|r| r.status == 200)
    })
    .unwrap_or_else(|| panic!("the sidecar did not become ready; log:\n{}", logs()));
    let health = wait_until(Duration::from_secs(60), || {
        let o = sidecar.docker(&["inspect", "--format", "{{.State.Health.Status}}"]);
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (s == "healthy").then_some(s)
    });
    assert!(
        health.is_some(),
        "the image's HEALTHCHECK never passed: {}\nlog:\n{}",
        String::from_utf8_lossy(
            &sidecar
                .docker(&["inspect", "--format", "{{json .State.Health}}"])
                .stdout
        ),
        logs()
    );
    let user = ok(
        sidecar.docker(&["inspect", "--format", "{{.Config.User}}"]),
        "inspect",
    );
    assert!(user.trim().starts_with(deploy::NONROOT), "runs as {user:?}");

    // The other containers, with their values; the collection must have seen them first.
    let busy_name = format!("name=\"{}\"", busy.name);
    let exited_name = format!("name=\"{}\"", exited.name);
    let metrics = wait_until(Duration::from_secs(60), || {
        let m = get(&addr, "/metrics").text();
        (sample(&m, "container_memory_usage_bytes", &[&busy_name]).is_some()
            && sample(&m, "lookout_container_exit_code", &[&exited_name]).is_some())
        .then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "the sidecar's /metrics does not list the test containers; log:\n{}\n{}",
            logs(),
            get(&addr, "/metrics").text()
        )
    });
    let value = |metric: &str, needles: &[&str]| {
        sample(&metrics, metric, needles)
            .unwrap_or_else(|| panic!("no {metric} with {needles:?} in the sidecar's /metrics"))
    };
    assert_eq!(
        value(
            "lookout_container_state",
            &[&busy_name, "state=\"running\""]
        ),
        1.0
    );
    assert_eq!(
        value("container_spec_memory_limit_bytes", &[&busy_name]),
        64.0 * 1024.0 * 1024.0
    );
    assert_eq!(value("container_spec_cpu_quota", &[&busy_name]), 50_000.0);
    assert_eq!(value("container_spec_cpu_period", &[&busy_name]), 100_000.0);
    assert!(value("container_memory_usage_bytes", &[&busy_name]) > 0.0);
    assert!(value("container_cpu_usage_seconds_total", &[&busy_name]) >= 0.0);
    // The container's own network namespace, read through the host's /proc.
    assert!(
        value(
            "container_network_receive_bytes_total",
            &[&busy_name, "interface=\"eth0\""]
        ) >= 0.0
    );
    assert_eq!(
        value(
            "lookout_container_state",
            &[&exited_name, "state=\"exited\""]
        ),
        1.0
    );
    assert_eq!(value("lookout_container_exit_code", &[&exited_name]), 3.0);
    let id_label = format!("{}\"", busy.id);
    assert!(
        sample(
            &metrics,
            "container_memory_usage_bytes",
            &[&busy_name, &id_label]
        )
        .is_some(),
        "the id label does not hold the container's id"
    );
    assert_eq!(
        value("lookout_collector_success", &["collector=\"docker\""]),
        1.0
    );

    // The filesystems are the host's, by the host's mount points (never /host/...).
    let sizes = by_label(&metrics, "node_filesystem_size_bytes", "mountpoint");
    assert!(sizes.contains_key("/"), "no mountpoint=\"/\": {sizes:?}");
    let host = deploy::host_mountpoints();
    for m in sizes.keys() {
        assert!(
            !m.starts_with("/host"),
            "mountpoint {m} is the container's view"
        );
        assert!(
            host.contains(m),
            "mountpoint {m} is not in the host's mount table"
        );
    }
    assert_eq!(sizes["/"], statvfs(std::path::Path::new("/")).0 as f64);
    // The host's network counters (host network): its interfaces, loopback among them.
    assert!(
        sample(
            &metrics,
            "node_network_receive_bytes_total",
            &["device=\"lo\""]
        )
        .is_some(),
        "no host network counters"
    );
}

/// Leaves the swarm when dropped if the test made it, removing the bridge network joining made.
struct Swarm {
    created: bool,
    gwbridge_before: bool,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let _ = docker(&["swarm", "leave", "--force"]);
        if !self.gwbridge_before {
            // In use for a moment after leaving: retry.
            for _ in 0..40 {
                if docker(&["network", "rm", "docker_gwbridge"])
                    .status
                    .success()
                    || !docker(&["network", "inspect", "docker_gwbridge"])
                        .status
                        .success()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// A deployed stack; removed (with its tasks' containers and its volume) when dropped.
struct Stack(String);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = docker(&["stack", "rm", &self.0]);
        let filter = format!("label=com.docker.stack.namespace={}", self.0);
        let left = || {
            String::from_utf8_lossy(&docker(&["ps", "-aq", "--filter", &filter]).stdout)
                .trim()
                .to_string()
        };
        wait_until(Duration::from_secs(30), || left().is_empty().then_some(()));
        for id in left().lines() {
            let _ = docker(&["rm", "-f", id]);
        }
        let vol = format!("{}_lookout-state", self.0);
        wait_until(Duration::from_secs(10), || {
            let o = docker(&["volume", "rm", "-f", &vol]);
            (o.status.success() && !docker(&["volume", "inspect", &vol]).status.success())
                .then_some(())
        });
    }
}

#[test]
fn the_swarm_stack_runs_lookout_as_a_global_service() {
    if !docker_or_skip("the_swarm_stack_runs_lookout_as_a_global_service") {
        return;
    }
    let state = ok(
        docker(&[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ]),
        "docker info",
    );
    let created = match state.trim() {
        "inactive false" => true,
        "active true" => false,
        other => {
            eprintln!(
                "SKIP the swarm stack test: this node is in a swarm it cannot deploy to ({other})"
            );
            return;
        }
    };
    let image = lookout_image();
    let gwbridge_before = docker(&["network", "inspect", "docker_gwbridge"])
        .status
        .success();
    if created {
        ok(
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]),
            "docker swarm init",
        );
    }
    let _swarm = Swarm {
        created,
        gwbridge_before,
    };
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let stack = Stack(support::unique_name("lkdeploy").replace('-', ""));
    // The stack file as it is, or without the rslave propagation a host whose / is private
    // cannot give (see PRIVATE_ROOT).
    let dir = tempfile::tempdir().unwrap();
    let mut file = deploy::repo().join("deploy/swarm/stack.yml");
    if !deploy::root_is_shared() {
        eprintln!("{}", deploy::PRIVATE_ROOT);
        let mut v: serde_yaml::Value =
            serde_yaml::from_str(&deploy::read("deploy/swarm/stack.yml")).unwrap();
        let vols = v["services"]["lookout"]["volumes"]
            .as_sequence_mut()
            .unwrap();
        for m in vols.iter_mut() {
            if let Some(m) = m.as_mapping_mut() {
                m.remove("bind");
            }
        }
        file = dir.path().join("stack.yml");
        std::fs::write(&file, serde_yaml::to_string(&v).unwrap()).unwrap();
    }
    let out = std::process::Command::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never", "-c"])
        .arg(&file)
        .arg(&stack.0)
        .env("LOOKOUT_IMAGE", image)
        .env("DOCKER_GID", docker_gid())
        .env("LOOKOUT_LISTEN", &addr)
        .output()
        .expect("docker stack deploy");
    ok(out, "docker stack deploy");
    let service = format!("{}_lookout", stack.0);
    let mode = ok(
        docker(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.Mode}}",
            &service,
        ]),
        "service inspect",
    );
    assert!(mode.contains("Global"), "{mode}");

    let tasks = || {
        String::from_utf8_lossy(&docker(&["service", "ps", "--no-trunc", &service]).stdout)
            .into_owned()
    };
    let metrics = wait_until(Duration::from_secs(90), || {
        request(&addr, "GET", "/metrics", &[])
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.text())
    })
    .unwrap_or_else(|| {
        panic!(
            "the global task's /metrics never answered; tasks:\n{}",
            tasks()
        )
    });
    assert!(metrics.contains("lookout_build_info{"), "{metrics}");
    // The task reads the Docker socket (its group is the primary group, `user` in the stack):
    // it lists its own container.
    let own = format!("name=\"{service}.");
    let seen = wait_until(Duration::from_secs(60), || {
        let m = get(&addr, "/metrics").text();
        sample(&m, "lookout_container_info", &[&own]).map(|_| m)
    });
    assert!(
        seen.is_some(),
        "the task's lookout does not list its own container; tasks:\n{}",
        tasks()
    );
    // Swarm holds a task in "Starting" until the image's HEALTHCHECK (`lookout healthcheck`,
    // first run 30 s after the start) passes, then it is "Running".
    let states = || {
        String::from_utf8_lossy(
            &docker(&[
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.CurrentState}}",
                &service,
            ])
            .stdout,
        )
        .into_owned()
    };
    let running = wait_until(Duration::from_secs(120), || {
        let s = states();
        s.starts_with("Running").then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the task never passed its health check; tasks:\n{}",
            tasks()
        )
    });
    assert_eq!(
        running.lines().count(),
        1,
        "one task on this one node: {running}"
    );
}
