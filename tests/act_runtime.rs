//! The actions' runtime (`lookout::act::runtime::Runtime`) against the real daemon: restart,
//! start and stop; a clone's image, env, labels, volumes, networks with aliases and ports; a
//! clone that `docker-compose ps` lists as one of the project's containers; Swarm leadership
//! and scaling a service. Each test skips without Docker unless `LOOKOUT_REQUIRE_DOCKER=1`.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use lookout::act::runtime::Runtime;
use lookout::docker_api::{BollardDocker, DockerError};
use serde_json::Value;
use support::fake_runtime::{FakeRuntime, Method};
use support::{docker, docker_or_skip, ensure_image, tool_or_skip, unique_name, Container, IMAGE};

fn runtime() -> BollardDocker {
    let host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    BollardDocker::new(&host).expect("docker host")
}

/// `docker inspect` of one object, as JSON.
fn inspect(what: &str) -> Value {
    let out = docker(&["inspect", what]);
    assert!(
        out.status.success(),
        "docker inspect {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v[0].clone()
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Commands run when dropped (also on a failed assertion), last added first.
#[derive(Default)]
struct Cleanup(Vec<Vec<String>>);

impl Cleanup {
    fn docker(&mut self, args: &[&str]) {
        let mut c = vec!["docker".to_string()];
        c.extend(args.iter().map(|s| s.to_string()));
        self.0.push(c);
    }
    fn cmd(&mut self, args: &[&str]) {
        self.0.push(args.iter().map(|s| s.to_string()).collect());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        while let Some(c) = self.0.pop() {
            let _ = Command::new(&c[0]).args(&c[1..]).output();
        }
    }
}

#[tokio::test]
async fn restart_start_and_stop() {
    if !docker_or_skip("restart_start_and_stop") {
        return;
    }
    let rt = runtime();
    let c = Container::run("lk-rt-basic", &[], &["sleep", "3600"]);
    c.wait_state("running", Duration::from_secs(10));
    let started = |id: &str| {
        inspect(id)["State"]["StartedAt"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = started(&c.id);

    // `sleep` as pid 1 ignores SIGTERM: the restart waits the 1 s, then kills.
    rt.restart(&c.id, Duration::from_secs(1)).await.unwrap();
    let s = inspect(&c.id);
    assert_eq!(s["State"]["Running"], true);
    assert_ne!(s["State"]["StartedAt"].as_str().unwrap(), before);

    // A running container started again, a stopped one stopped again: both fine.
    rt.start(&c.name).await.unwrap();
    rt.stop(&c.name, Duration::from_secs(1)).await.unwrap();
    assert_eq!(inspect(&c.id)["State"]["Running"], false);
    rt.stop(&c.id, Duration::from_secs(1)).await.unwrap();
    rt.start(&c.id).await.unwrap();
    assert_eq!(inspect(&c.id)["State"]["Running"], true);
    rt.start(&c.id).await.unwrap();

    let missing = unique_name("lk-rt-missing");
    let one = Duration::from_secs(1);
    assert_eq!(rt.restart(&missing, one).await, Err(DockerError::NotFound));
    assert_eq!(rt.start(&missing).await, Err(DockerError::NotFound));
    assert_eq!(rt.stop(&missing, one).await, Err(DockerError::NotFound));
    assert_eq!(rt.remove(&missing).await, Err(DockerError::NotFound));
    // A name no container can have never reaches a request path.
    assert_eq!(rt.start("../../info?x=").await, Err(DockerError::NotFound));
    assert!(matches!(
        rt.clone_container(&missing, &unique_name("lk-rt-clone"), &BTreeMap::new())
            .await,
        Err(DockerError::NotFound)
    ));

    // `remove` is `rm -f`: a running container goes.
    rt.remove(&c.id).await.unwrap();
    assert!(!docker(&["inspect", &c.id]).status.success());
}

#[tokio::test]
async fn clone_copies_config_networks_and_volumes() {
    if !docker_or_skip("clone_copies_config_networks_and_volumes") {
        return;
    }
    ensure_image();
    let rt = runtime();
    let mut cleanup = Cleanup::default();
    let net = unique_name("lk-rt-net");
    let net2 = unique_name("lk-rt-net2");
    let vol = unique_name("lk-rt-vol");
    ok(docker(&["network", "create", &net]), "network create");
    cleanup.docker(&["network", "rm", &net]);
    ok(docker(&["network", "create", &net2]), "network create");
    cleanup.docker(&["network", "rm", &net2]);
    ok(docker(&["volume", "create", &vol]), "volume create");
    cleanup.docker(&["volume", "rm", "-f", &vol]);

    let port = support::free_port().to_string();
    let fixed = format!("127.0.0.1:{port}:80");
    let data = format!("{vol}:/data");
    let src = Container::run(
        "lk-rt-src",
        &[
            "--network",
            &net,
            "--network-alias",
            "web-alias",
            "-e",
            "FOO=bar",
            "-l",
            "app=one",
            "-l",
            "keep=me",
            "-v",
            &data,
            "-v",
            "/anon",
            "-p",
            &fixed,
            "-p",
            "0:81",
            "--restart",
            "on-failure:3",
            "--stop-signal",
            "SIGKILL",
            "-w",
            "/data",
        ],
        &["sh", "-c", "echo hi > /anon/x; exec sleep 3600"],
    );
    ok(
        docker(&[
            "network",
            "connect",
            "--alias",
            "second-alias",
            &net2,
            &src.id,
        ]),
        "network connect",
    );
    src.wait_state("running", Duration::from_secs(10));

    let name = unique_name("lk-rt-clone");
    let labels = BTreeMap::from([
        ("app".to_string(), "two".to_string()),
        ("cloned".to_string(), "yes".to_string()),
    ]);
    let id = rt.clone_container(&src.name, &name, &labels).await.unwrap();
    cleanup.docker(&["rm", "-f", "-v", &id]);

    let s = inspect(&src.id);
    let c = inspect(&id);
    assert_eq!(c["Name"], format!("/{name}"));
    assert_eq!(c["State"]["Running"], true, "{c:#}");
    assert_eq!(c["Config"]["Image"], IMAGE);
    assert_eq!(c["Image"], s["Image"]);
    assert_eq!(c["Config"]["Cmd"], s["Config"]["Cmd"]);
    assert_eq!(c["Config"]["WorkingDir"], "/data");
    assert_eq!(c["Config"]["StopSignal"], "SIGKILL");
    assert!(c["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("FOO=bar")));
    let l = &c["Config"]["Labels"];
    assert_eq!(
        (&l["app"], &l["keep"], &l["cloned"]),
        (&"two".into(), &"me".into(), &"yes".into())
    );
    // Docker picked the hostname; no copied MAC.
    assert_ne!(c["Config"]["Hostname"], s["Config"]["Hostname"]);
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 3);

    // The named volume is shared; the anonymous one is the clone's own.
    let mount = |v: &Value, dest: &str| {
        v["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == dest)
            .cloned()
            .unwrap_or_else(|| panic!("no mount at {dest}: {v:#}"))
    };
    assert_eq!(mount(&c, "/data")["Name"], vol.as_str());
    assert_ne!(mount(&c, "/anon")["Name"], mount(&s, "/anon")["Name"]);

    // Both networks, with their aliases but not the source's own id.
    let short = &src.id[..12];
    for (n, alias) in [(&net, "web-alias"), (&net2, "second-alias")] {
        let ep = &c["NetworkSettings"]["Networks"][n.as_str()];
        let aliases: Vec<&str> = ep["Aliases"]
            .as_array()
            .unwrap_or_else(|| panic!("clone not on {n}: {c:#}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(aliases.contains(&alias), "{n}: {aliases:?}");
        assert!(!aliases.contains(&short), "{n}: {aliases:?}");
        assert_ne!(
            ep["MacAddress"],
            s["NetworkSettings"]["Networks"][n.as_str()]["MacAddress"]
        );
    }
    assert_eq!(c["HostConfig"]["NetworkMode"], net.as_str());

    // The same container ports, published on host ports Docker chose.
    let host_port = |v: &Value, p: &str| {
        v["NetworkSettings"]["Ports"][p][0]["HostPort"]
            .as_str()
            .unwrap_or_else(|| panic!("{p} not published: {v:#}"))
            .to_string()
    };
    assert_eq!(host_port(&s, "80/tcp"), port);
    assert_ne!(host_port(&c, "80/tcp"), port);
    assert_eq!(
        c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostIp"],
        "127.0.0.1"
    );
    assert_ne!(host_port(&c, "81/tcp"), host_port(&s, "81/tcp"));

    // The clone answers to the alias on the network (the source is stopped first, so the
    // answer can only come from the clone).
    ok(docker(&["stop", "-t", "1", &src.id]), "docker stop");
    let probe = Container::run("lk-rt-probe", &["--network", &net], &["sleep", "3600"]);
    let ping = docker(&["exec", &probe.id, "ping", "-c", "1", "-W", "2", "web-alias"]);
    assert!(
        ping.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );

    // The name is taken now: a second clone under it fails, and the first is untouched.
    let err = rt
        .clone_container(&src.name, &name, &labels)
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::Api(_)), "{err:?}");
    assert_eq!(inspect(&name)["Id"], id.as_str());
}

#[tokio::test]
async fn clone_that_fails_to_start_is_removed() {
    if !docker_or_skip("clone_that_fails_to_start_is_removed") {
        return;
    }
    let rt = runtime();
    let mut cleanup = Cleanup::default();
    // A created (never started) source whose command does not exist: the clone is created,
    // its start fails, and it is removed again.
    ensure_image();
    let src = unique_name("lk-rt-nostart");
    ok(
        docker(&["create", "--name", &src, IMAGE, "/no/such/binary"]),
        "docker create",
    );
    cleanup.docker(&["rm", "-f", "-v", &src]);
    let name = unique_name("lk-rt-nostart-clone");
    cleanup.docker(&["rm", "-f", "-v", &name]);
    let err = rt
        .clone_container(&src, &name, &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::Api(_)), "{err:?}");
    assert!(
        !docker(&["inspect", &name]).status.success(),
        "the failed clone is still there"
    );
}

#[tokio::test]
async fn clone_joins_a_compose_project() {
    if !docker_or_skip("clone_joins_a_compose_project")
        || !tool_or_skip("clone_joins_a_compose_project", "/usr/bin/docker-compose")
    {
        return;
    }
    ensure_image();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            "version: \"2.4\"\nservices:\n  web:\n    image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n    stop_grace_period: 1s\n    labels:\n      lookout.test: compose\n"
        ),
    )
    .unwrap();
    let project = unique_name("lkrtcompose");
    let compose = |args: &[&str]| {
        Command::new("/usr/bin/docker-compose")
            .current_dir(dir.path())
            .arg("-f")
            .arg(&file)
            .args(["-p", &project])
            .args(args)
            .output()
            .expect("docker-compose")
    };
    let mut cleanup = Cleanup::default();
    cleanup.cmd(&[
        "/usr/bin/docker-compose",
        "-f",
        file.to_str().unwrap(),
        "-p",
        &project,
        "down",
        "-v",
        "-t",
        "1",
    ]);
    ok(compose(&["up", "-d"]), "docker-compose up");
    let first = format!("{project}_web_1");
    let second = format!("{project}_web_2");
    assert_eq!(inspect(&first)["State"]["Running"], true);

    let labels = BTreeMap::from([
        (
            "com.docker.compose.container-number".to_string(),
            "2".to_string(),
        ),
        ("com.docker.compose.oneoff".to_string(), "False".to_string()),
    ]);
    let id = rt.clone_container(&first, &second, &labels).await.unwrap();
    cleanup.docker(&["rm", "-f", "-v", &id]);
    let c = inspect(&id);
    assert_eq!(c["Config"]["Labels"]["lookout.test"], "compose");
    assert_eq!(
        c["Config"]["Labels"]["com.docker.compose.project"],
        project.as_str()
    );
    let net = format!("{project}_default");
    let aliases = c["NetworkSettings"]["Networks"][net.as_str()]["Aliases"].clone();
    assert!(
        aliases.as_array().unwrap().contains(&Value::from("web")),
        "{aliases}"
    );

    let ps = ok(compose(&["ps"]), "docker-compose ps");
    let line = ps
        .lines()
        .find(|l| l.starts_with(&second))
        .unwrap_or_else(|| panic!("docker-compose ps does not list {second}:\n{ps}"));
    assert!(line.contains("Up"), "{line}");
    assert!(ps.lines().any(|l| l.starts_with(&first)), "{ps}");

    ok(compose(&["down", "-t", "1"]), "docker-compose down");
    assert!(
        !docker(&["inspect", &id]).status.success(),
        "docker-compose down left the clone"
    );
    assert!(!docker(&["network", "inspect", &net]).status.success());
}

/// Leaves the swarm (and removes what it made) when dropped.
struct Swarm {
    services: Vec<String>,
    gwbridge_before: bool,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for s in &self.services {
            let _ = docker(&["service", "rm", s]);
        }
        // The tasks' containers go once they stop (1 s grace); wait, then make sure.
        for s in &self.services {
            let filter = format!("label=com.docker.swarm.service.name={s}");
            let left = || ok(docker(&["ps", "-aq", "--filter", &filter]), "ps");
            support::wait_until(Duration::from_secs(20), || left().is_empty().then_some(()));
            for id in left().lines() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        let _ = docker(&["swarm", "leave", "--force"]);
        if !self.gwbridge_before {
            let _ = docker(&["network", "rm", "docker_gwbridge"]);
        }
    }
}

#[tokio::test]
async fn swarm_leader_and_scaling() {
    if !docker_or_skip("swarm_leader_and_scaling") {
        return;
    }
    let state = ok(
        docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]),
        "docker info",
    );
    if state != "inactive" {
        eprintln!("SKIP swarm_leader_and_scaling: this node is already in a swarm ({state})");
        return;
    }
    ensure_image();
    let rt = runtime();
    assert!(!rt.swarm_leader().await.unwrap());
    assert_eq!(rt.service("x").await.unwrap(), None);

    let gwbridge_before = docker(&["network", "inspect", "docker_gwbridge"])
        .status
        .success();
    let mut swarm = Swarm {
        services: Vec::new(),
        gwbridge_before,
    };
    ok(
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]),
        "swarm init",
    );
    // Leadership is settled when `swarm init` returns; allow the daemon a moment anyway.
    let mut leader = false;
    for _ in 0..30 {
        leader = rt.swarm_leader().await.unwrap();
        if leader {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(leader, "not the leader after swarm init");
    assert!(rt.swarm_leader().await.unwrap());
    assert_eq!(rt.service("x").await.unwrap(), None);

    let name = unique_name("lk-rt-svc");
    swarm.services.push(name.clone());
    let create = |name: &str, mode: &[&str]| {
        let mut a = vec![
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--stop-grace-period",
            "1s",
            "--name",
            name,
        ];
        a.extend_from_slice(mode);
        a.extend_from_slice(&[IMAGE, "sleep", "3600"]);
        ok(docker(&a), "service create");
    };
    create(&name, &["--replicas", "1"]);
    let svc = rt.service(&name).await.unwrap().expect("the service");
    assert_eq!(svc.name, name);
    assert_eq!(svc.replicas, Some(1));
    assert!(svc.version > 0);
    // By id too.
    assert_eq!(rt.service(&svc.id).await.unwrap().as_ref(), Some(&svc));

    rt.scale_service(&svc, 3).await.unwrap();
    let replicas = ok(
        docker(&[
            "service",
            "inspect",
            "--format",
            "{{.Spec.Mode.Replicated.Replicas}}",
            &name,
        ]),
        "service inspect",
    );
    assert_eq!(replicas, "3");
    let now = rt.service(&name).await.unwrap().unwrap();
    assert_eq!(now.replicas, Some(3));
    assert!(now.version > svc.version);
    // The rest of the spec is kept.
    let spec = inspect(&name)["Spec"].clone();
    assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Image"], IMAGE);
    assert_eq!(
        spec["TaskTemplate"]["ContainerSpec"]["Args"],
        serde_json::json!(["sleep", "3600"])
    );
    // A stale version is refused.
    let stale = rt.scale_service(&svc, 2).await.unwrap_err();
    assert!(matches!(stale, DockerError::Api(_)), "{stale:?}");

    let global = unique_name("lk-rt-global");
    swarm.services.push(global.clone());
    create(&global, &["--mode", "global"]);
    let g = rt.service(&global).await.unwrap().unwrap();
    assert_eq!(g.replicas, None);
    let err = rt.scale_service(&g, 2).await.unwrap_err();
    assert!(
        matches!(&err, DockerError::Api(m) if m.contains("global")),
        "{err:?}"
    );

    drop(swarm);
    assert!(!rt.swarm_leader().await.unwrap());
    assert_eq!(rt.service(&name).await.unwrap(), None);
}

/// The fake the action engine's tests use: calls recorded, failures scripted, state kept.
#[tokio::test]
async fn fake_runtime_records_and_fails_on_demand() {
    let rt = FakeRuntime::new()
        .with_container("web", true, &[("app", "one")])
        .with_service("api", Some(2))
        .with_service("agent", None);
    let one = Duration::from_secs(1);
    rt.fail_next(Method::Restart, 2);
    assert!(rt.restart("web", one).await.is_err());
    assert!(rt.restart("id-web", one).await.is_err());
    rt.restart("web", one).await.unwrap();
    assert_eq!(rt.restart("nope", one).await, Err(DockerError::NotFound));
    rt.stop("web", Duration::from_secs(10)).await.unwrap();
    assert!(!rt.container("web").unwrap().running);
    rt.start("id-web").await.unwrap();

    let labels = BTreeMap::from([("n".to_string(), "2".to_string())]);
    let id = rt.clone_container("web", "web-2", &labels).await.unwrap();
    assert_eq!(id, "fake-0001");
    let c = rt.container(&id).unwrap();
    assert_eq!(c.labels["app"], "one");
    assert_eq!(c.labels["n"], "2");
    assert!(rt.clone_container("web", "web-2", &labels).await.is_err());
    rt.remove(&id).await.unwrap();
    assert_eq!(rt.remove(&id).await, Err(DockerError::NotFound));

    assert!(!rt.swarm_leader().await.unwrap());
    rt.set_leader(true);
    assert!(rt.swarm_leader().await.unwrap());
    let api = rt.service("api").await.unwrap().unwrap();
    assert_eq!((api.replicas, api.version), (Some(2), 1));
    rt.scale_service(&api, 4).await.unwrap();
    assert!(rt.scale_service(&api, 5).await.is_err(), "stale version");
    assert_eq!(rt.service_state("api").unwrap().replicas, Some(4));
    let agent = rt.service("svc-agent").await.unwrap().unwrap();
    assert!(rt.scale_service(&agent, 2).await.is_err(), "global");
    assert_eq!(rt.service("none").await.unwrap(), None);

    let calls = rt.calls();
    let restarts = rt.calls_of(Method::Restart);
    assert_eq!(restarts.len(), 4);
    assert_eq!(
        restarts.iter().map(|c| c.failed).collect::<Vec<_>>(),
        [true, true, false, true]
    );
    assert_eq!(restarts[0].args, ["web", "1s"]);
    assert_eq!(rt.calls_of(Method::Clone)[0].args, ["web", "web-2", "n=2"]);
    assert_eq!(rt.calls_of(Method::ScaleService)[0].args, ["api", "4"]);
    assert!(calls.windows(2).all(|w| w[0].at <= w[1].at));
    rt.clear_calls();
    assert!(rt.calls().is_empty());
}

/// Paused time: a scripted delay is tokio's, and call times are tokio's clock.
#[tokio::test(start_paused = true)]
async fn fake_runtime_delays_in_tokio_time() {
    let rt = FakeRuntime::new().with_container("web", true, &[]);
    rt.delay(Method::Stop, Duration::from_secs(30));
    let t0 = tokio::time::Instant::now();
    rt.stop("web", Duration::from_secs(10)).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(30));
    rt.fail_next_with(Method::Start, 1, DockerError::NotFound);
    assert_eq!(rt.start("web").await, Err(DockerError::NotFound));
    let calls = rt.calls();
    assert_eq!(calls[0].at, t0);
    assert!(calls[1].at >= t0 + Duration::from_secs(30));
}
