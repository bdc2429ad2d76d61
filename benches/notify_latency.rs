//! Alert latency: from `docker kill` of a watched container to the (fake, strict) Discord
//! server receiving the ContainerDown message, with `group_wait: 1s`, over 20 kills.
//! Targets: p50 under 2 s, p99 under 3 s.
//!
//! `cargo bench --bench notify_latency` (needs a Docker daemon; builds the busybox test
//! image FROM scratch as the tests do). Set `KILLS=N` for more or fewer kills.

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::time::{Duration, Instant};

use support::discord::FakeDiscord;
use support::{get, wait_until, Container, Lookout};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let kills: usize = std::env::var("KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let discord = FakeDiscord::start().await;
    // Discord's own bucket (5 per 2 s) is kept: the kills are spaced further apart than that.
    let prefix = "lookout-bench-lat";
    let cfg = format!(
        "interval: 10s\ndocker:\n  include: [\"{prefix}-*\"]\n\
         receivers:\n  - name: discord\n    discord: {{webhook_url: \"{}\"}}\n\
         route:\n  group_by: [alertname, name]\n  group_wait: 1s\n  group_interval: 1m\n",
        discord.webhook_url()
    );
    let lo = Lookout::start(&cfg, &[]);
    wait_until(Duration::from_secs(30), || {
        (get(&lo.addr, "/ready").status == 200).then_some(())
    })
    .expect("lookout ready");
    let mut lat = Vec::new();
    for i in 0..kills {
        let c = Container::run(prefix, &[], &["sleep", "3600"]);
        wait_until(Duration::from_secs(20), || {
            get(&lo.addr, "/api/v1/containers")
                .text()
                .contains(&c.name)
                .then_some(())
        })
        .expect("lookout sees the container");
        let t0 = Instant::now();
        let out = c.docker(&["kill"]);
        assert!(out.status.success());
        let got = loop {
            let m = discord.messages();
            if let Some(at) = m
                .iter()
                .find(|m| m.body.to_string().contains(&c.name))
                .map(|m| m.at)
            {
                break Some(at);
            }
            if t0.elapsed() > Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let Some(at) = got else {
            panic!("kill {i}: no message within 30 s\n{}", lo.log());
        };
        let d = at.duration_since(t0);
        println!("kill {:>2}: {:>6.0} ms", i + 1, d.as_secs_f64() * 1000.0);
        lat.push(d.as_secs_f64());
        drop(c);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((p * (lat.len() - 1) as f64).round() as usize).min(lat.len() - 1)];
    println!(
        "docker kill -> Discord message, group_wait 1s, {} kills: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (targets: p50 < 2000 ms, p99 < 3000 ms)",
        lat.len(),
        q(0.5) * 1000.0,
        q(0.99) * 1000.0,
        lat.last().copied().unwrap_or(0.0) * 1000.0
    );
}
