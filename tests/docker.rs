//! lookout against a real Docker daemon: containers started here, read back through /metrics
//! and /api/v1/containers.

mod support;

use std::time::{Duration, Instant};

use support::{get, request, sample, wait_until, Container, Lookout};

const CFG: &str = "interval: 1s\ndocker:\n  include: [\"lookout-it-*\"]\n";

fn name_label(c: &Container) -> String {
    format!("name=\"{}\"", c.name)
}

#[test]
fn cpu_burner_limited_to_half_a_core() {
    if !support::docker_or_skip("cpu_burner_limited_to_half_a_core") {
        return;
    }
    let burn = Container::run(
        "lookout-it-burn",
        &["--cpus", "0.5"],
        &["sh", "-c", "while :; do :; done"],
    );
    let lk = Lookout::start(CFG, &[]);
    let n = name_label(&burn);
    let read = || {
        wait_until(Duration::from_secs(10), || {
            sample(
                &lk.metrics(),
                "container_cpu_usage_seconds_total",
                &[&n, "cpu=\"total\""],
            )
        })
        .expect("cpu series for the burner")
    };
    // Let it warm up, then measure the rate over ~6 s, as rate() would.
    std::thread::sleep(Duration::from_secs(2));
    let (t0, v0) = (Instant::now(), read());
    std::thread::sleep(Duration::from_secs(6));
    let (t1, v1) = (Instant::now(), read());
    let rate = (v1 - v0) / (t1 - t0).as_secs_f64();
    assert!(
        (0.35..=0.65).contains(&rate),
        "cpu rate {rate:.3}, expected ~0.5"
    );
    // The spec series say the same.
    let m = lk.metrics();
    assert_eq!(sample(&m, "container_spec_cpu_quota", &[&n]), Some(50000.0));
    assert_eq!(
        sample(&m, "container_spec_cpu_period", &[&n]),
        Some(100000.0)
    );
    assert!(sample(&m, "container_cpu_cfs_periods_total", &[&n]).unwrap() > 0.0);
    assert!(sample(&m, "container_cpu_cfs_throttled_periods_total", &[&n]).unwrap() > 0.0);
    // And the JSON API's cpu_percent (100 = one core).
    let api = get(&lk.addr, "/api/v1/containers").text();
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    let c = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == burn.name.as_str())
        .expect("burner in /api/v1/containers")
        .clone();
    let pct = c["cpu_percent"].as_f64().expect("cpu_percent");
    assert!((30.0..=70.0).contains(&pct), "cpu_percent {pct}");
    assert_eq!(c["state"], "running");
    assert_eq!(c["id"], burn.id.as_str());
}

#[test]
fn memory_working_set_and_limit() {
    if !support::docker_or_skip("memory_working_set_and_limit") {
        return;
    }
    // 40 MB in tmpfs counts as the container's memory (shmem), and stays resident.
    let mem = Container::run(
        "lookout-it-mem",
        &["--memory", "64m", "--shm-size", "60m"],
        &[
            "sh",
            "-c",
            "head -c 40000000 /dev/zero > /dev/shm/fill; sleep 3600",
        ],
    );
    let lk = Lookout::start(CFG, &[]);
    let n = name_label(&mem);
    let ws = wait_until(Duration::from_secs(15), || {
        sample(&lk.metrics(), "container_memory_working_set_bytes", &[&n]).filter(|v| *v > 35e6)
    })
    .unwrap_or_else(|| panic!("working set never reached ~40 MB:\n{}", lk.metrics()));
    assert!((35e6..=48e6).contains(&ws), "working set {ws}");
    let m = lk.metrics();
    assert_eq!(
        sample(&m, "container_spec_memory_limit_bytes", &[&n]),
        Some(67108864.0)
    );
    assert!(sample(&m, "container_memory_usage_bytes", &[&n]).unwrap() >= ws);
    assert!(
        sample(&m, "container_memory_cache", &[&n]).unwrap() > 30e6,
        "tmpfs pages are cache"
    );
    assert!(sample(&m, "lookout_container_pids", &[&n]).unwrap() >= 1.0);
    // Its own network namespace: eth0 counters, no loopback.
    assert!(sample(
        &m,
        "container_network_receive_bytes_total",
        &[&n, "interface=\"eth0\""]
    )
    .is_some());
    assert!(sample(
        &m,
        "container_network_receive_bytes_total",
        &[&n, "interface=\"lo\""]
    )
    .is_none());
}

#[test]
fn stopped_container_state_and_exit_code() {
    if !support::docker_or_skip("stopped_container_state_and_exit_code") {
        return;
    }
    let c = Container::run("lookout-it-exit", &[], &["sh", "-c", "exit 3"]);
    c.wait_state("exited", Duration::from_secs(10));
    let lk = Lookout::start(CFG, &[]);
    let n = name_label(&c);
    let m = lk.metrics();
    assert_eq!(
        sample(&m, "lookout_container_exit_code", &[&n]),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "lookout_container_state", &[&n, "state=\"exited\""]),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "lookout_container_state", &[&n, "state=\"running\""]),
        None
    );
    assert_eq!(sample(&m, "lookout_container_info", &[&n]), Some(1.0));
    // No resource series for a stopped container.
    assert_eq!(sample(&m, "container_memory_usage_bytes", &[&n]), None);
}

#[test]
fn failing_healthcheck_shows_unhealthy() {
    if !support::docker_or_skip("failing_healthcheck_shows_unhealthy") {
        return;
    }
    let c = Container::run(
        "lookout-it-health",
        &[
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-start-period",
            "0s",
        ],
        &["sleep", "3600"],
    );
    let lk = Lookout::start(CFG, &[]);
    let n = name_label(&c);
    let health = || -> Option<String> {
        let api: serde_json::Value =
            serde_json::from_str(&get(&lk.addr, "/api/v1/containers").text()).ok()?;
        api["containers"]
            .as_array()?
            .iter()
            .find(|x| x["name"] == c.name.as_str())
            .and_then(|x| x["health"].as_str().map(str::to_string))
    };
    wait_until(Duration::from_secs(20), || {
        health().filter(|h| h == "unhealthy")
    })
    .unwrap_or_else(|| panic!("never unhealthy; last: {:?}", health()));
    assert_eq!(
        sample(&lk.metrics(), "container_health_state", &[&n]),
        Some(0.0)
    );
    // A container without a healthcheck reports -1.
    let plain = Container::run("lookout-it-plain", &[], &["sleep", "3600"]);
    let p = name_label(&plain);
    let v = wait_until(Duration::from_secs(10), || {
        sample(&lk.metrics(), "container_health_state", &[&p])
    });
    assert_eq!(v, Some(-1.0));
}

#[test]
fn removed_container_series_go_away() {
    if !support::docker_or_skip("removed_container_series_go_away") {
        return;
    }
    let c = Container::run("lookout-it-gone", &[], &["sleep", "3600"]);
    let lk = Lookout::start(CFG, &[]);
    let n = name_label(&c);
    wait_until(Duration::from_secs(10), || {
        sample(&lk.metrics(), "container_memory_usage_bytes", &[&n])
    })
    .expect("series while it runs");
    c.docker(&["rm", "-f"]);
    wait_until(Duration::from_secs(10), || {
        (!lk.metrics().contains(&n)).then_some(())
    })
    .expect("every series of the removed container disappears");
}

#[test]
fn restart_and_oom_are_counted() {
    if !support::docker_or_skip("restart_and_oom_are_counted") {
        return;
    }
    // Allocates past its 16 MiB limit in tmpfs: the kernel OOM-kills it.
    let c = Container::run(
        "lookout-it-oom",
        &[
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
            "--shm-size",
            "64m",
        ],
        &[
            "sh",
            "-c",
            "sleep 1; head -c 60000000 /dev/zero > /dev/shm/x; sleep 3600",
        ],
    );
    let lk = Lookout::start(CFG, &[]);
    let n = name_label(&c);
    wait_until(Duration::from_secs(20), || {
        let m = lk.metrics();
        (sample(&m, "lookout_container_oom_killed", &[&n]) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("oom_killed never 1:\n{}", lk.metrics()));
    let m = lk.metrics();
    assert_eq!(
        sample(&m, "lookout_container_exit_code", &[&n]),
        Some(137.0)
    );
    assert!(sample(&m, "container_oom_events_total", &[&n]).unwrap() >= 1.0);
}

#[test]
fn http_endpoints_and_formats() {
    if !support::docker_or_skip("http_endpoints_and_formats") {
        return;
    }
    let _c = Container::run("lookout-it-http", &[], &["sleep", "3600"]);
    let lk = Lookout::start(CFG, &[]);
    assert_eq!(get(&lk.addr, "/health").status, 200);
    assert_eq!(get(&lk.addr, "/ready").status, 200);
    let text = get(&lk.addr, "/metrics");
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(text
        .text()
        .contains("# TYPE container_cpu_usage_seconds_total counter"));
    let om = request(
        &lk.addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1")],
    )
    .unwrap();
    assert!(om
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let om = om.text();
    assert!(om.contains("# TYPE container_cpu_usage_seconds counter"));
    assert!(om.ends_with("# EOF\n"));
    let gz = request(&lk.addr, "GET", "/metrics", &[("Accept-Encoding", "gzip")]).unwrap();
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut d = flate2::read::GzDecoder::new(&gz.body[..]);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut d, &mut s).unwrap();
    assert!(s.contains("lookout_build_info"));
    let page = get(&lk.addr, "/").text();
    assert!(page.contains("lookout") && page.contains("docker") && page.contains("/metrics"));
    assert_eq!(get(&lk.addr, "/nope").status, 404);
}

#[test]
fn host_network_container_is_not_double_counted() {
    if !support::docker_or_skip("host_network_container_is_not_double_counted") {
        return;
    }
    let c = Container::run(
        "lookout-it-hostnet",
        &["--network", "host"],
        &["sleep", "3600"],
    );
    let lk = Lookout::start(CFG, &[]);
    let n = name_label(&c);
    let m = wait_until(Duration::from_secs(10), || {
        let m = lk.metrics();
        sample(&m, "container_memory_usage_bytes", &[&n]).map(|_| m)
    })
    .expect("host-network container has stats");
    assert!(sample(
        &m,
        "lookout_container_info",
        &[&n, "network_mode=\"host\"", "shared_network=\"true\""]
    )
    .is_some());
    assert!(sample(&m, "container_network_receive_bytes_total", &[&n]).is_none());
}
