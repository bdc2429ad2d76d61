//! Rule evaluation cost: 1,000 rules over 1,000 containers per cycle (target: under 50 ms).
//!
//! `cargo bench --bench engine` prints, for two loads, the time of one full evaluation
//! (`Engine::evaluate`: targets built from the snapshot, every rule over every container it
//! matches, state machine steps, annotations of the active alerts):
//! - typical: a few containers hot, a few hundred alerts active;
//! - stress: tens of thousands of (rule, container) pairs breached at once.
//!
//! For comparison it also times one pass of the same (rule, container) pairs through the
//! compiled expressions alone and through evalexpr's own tree walk.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use lookout::engine::expr::Truth;
use lookout::engine::rule::{self, Rule, Source};
use lookout::engine::vars;
use lookout::engine::Engine;
use lookout::snapshot::{
    CollectorStatus, Container, ContainerInfo, ContainerStats, Derived, MemoryStats, Snapshot,
    State,
};

const CONTAINERS: usize = 1000;
const RULES: usize = 1000;
const CYCLES: usize = 30;

/// 1,000 rules of six shapes, thresholds spread over 50..99; some select by name or label.
fn rules_yaml() -> String {
    let mut y = String::from("groups:\n");
    for g in 0..10 {
        let _ = writeln!(y, "  - name: group{g}\n    rules:");
        for i in 0..RULES / 10 {
            let n = g * (RULES / 10) + i;
            let t = 50 + (n % 50);
            let _ = writeln!(y, "      - alert: Rule{n}\n        scope: container");
            let expr = match n % 6 {
                0 => format!("cpu_percent > {t}"),
                1 => format!("memory_percent > {t} && state == \"running\""),
                2 => format!("restarts_recent >= {} || oom_killed", 1 + n % 5),
                3 => "(state == \"exited\" || state == \"dead\") && exit_code != 0".to_string(),
                4 => format!("net_rx_bytes_per_second / 1048576 > {t}"),
                _ => format!("cpu_percent > {t} && memory_bytes > 100000000 || pids > 500"),
            };
            let _ = writeln!(y, "        expr: '{expr}'");
            if n.is_multiple_of(3) {
                let _ = writeln!(y, "        for: 2m");
            }
            if n.is_multiple_of(7) {
                let _ = writeln!(y, "        resolve: cpu_percent < {}", t - 10);
            }
            if n % 6 == 3 {
                let _ = writeln!(y, "        match: {{name: \"svc-9*\"}}");
            } else if n.is_multiple_of(10) {
                let _ = writeln!(y, "        match: {{name: \"svc-1*\"}}");
            } else if n % 20 == 5 {
                let _ = writeln!(
                    y,
                    "        match: {{labels: {{com.docker.compose.project: shop}}}}"
                );
            }
            let _ = writeln!(
                y,
                "        annotations:\n          summary: \"{{{{ name }}}} at {{{{ cpu_percent | round(1) }}}}%\""
            );
        }
    }
    y
}

#[derive(Clone, Copy)]
struct Load {
    name: &'static str,
    /// Every n-th container runs hot (60..99% CPU, moving each cycle).
    hot_every: usize,
    /// Memory percent is `i % mem_mod` (0..mem_mod-1).
    mem_mod: usize,
}

fn snapshot(load: Load, cycle: usize) -> Snapshot {
    let containers = (0..CONTAINERS)
        .map(|i| {
            let running = i % 20 != 0;
            let mut labels = BTreeMap::new();
            labels.insert(
                "com.docker.compose.project".to_string(),
                if i % 4 == 0 { "shop" } else { "blog" }.to_string(),
            );
            labels.insert("com.docker.compose.service".to_string(), format!("s{i}"));
            labels.insert("maintainer".to_string(), "ops".to_string());
            let cpu = if i % load.hot_every == 0 {
                60.0 + ((i + cycle * 7) % 40) as f64
            } else {
                (i % 30) as f64
            };
            Container {
                info: ContainerInfo {
                    id: format!("{i:064x}"),
                    name: format!("svc-{i}"),
                    image: "registry.example/app:1.2.3".into(),
                    labels,
                    state: if running {
                        State::Running
                    } else {
                        State::Exited
                    },
                    exit_code: if running { 0 } else { (i % 3) as i64 },
                    pid: if running { 1000 + i as u32 } else { 0 },
                    restart_count: (i % 4) as i64,
                    ..Default::default()
                },
                stats: running.then(|| ContainerStats {
                    memory: Some(MemoryStats {
                        working_set: 50_000_000 + (i as u64 * 100_000),
                        ..Default::default()
                    }),
                    pids: Some((i % 40) as u64),
                    ..Default::default()
                }),
                derived: Derived {
                    cpu_percent: running.then_some(cpu),
                    memory_percent: running.then_some((i % load.mem_mod) as f64),
                    net_rx_bytes_per_second: running.then_some((i * 1000) as f64),
                    uptime_seconds: running.then_some(3600.0),
                    ..Default::default()
                },
            }
        })
        .collect();
    Snapshot {
        taken_at: 1_700_000_000.0 + cycle as f64 * 10.0,
        containers,
        collectors: vec![CollectorStatus::succeeded("docker")],
        label_allowlist: Arc::new(lookout::snapshot::LabelAllowlist::new(&[
            "com.docker.compose.project".into(),
            "com.docker.compose.service".into(),
        ])),
        ..Default::default()
    }
}

/// CPU time of this thread, in ms: the machine is shared, so wall time alone counts the
/// time other processes held the cores.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.95), v[v.len() - 1])
}

fn run(load: Load, rules: &[Rule]) {
    let mut engine = Engine::new(
        rules.to_vec(),
        "bench",
        lookout::state_dir::StateDir::none(),
    );
    let snaps: Vec<Snapshot> = (0..CYCLES + 3).map(|c| snapshot(load, c)).collect();
    let mut eval_ms = Vec::new();
    let mut eval_cpu = Vec::new();
    let mut transitions = 0;
    for (i, s) in snaps.iter().enumerate() {
        let c = cpu_ms();
        let t = Instant::now();
        let ev = engine.evaluate(s, None, s.taken_at);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let cms = cpu_ms() - c;
        if i >= 3 {
            eval_ms.push(ms);
            eval_cpu.push(cms);
            transitions += ev.len();
        }
    }
    let t = Instant::now();
    let targets = vars::targets(&snaps[0], None, "bench", &Default::default());
    let targets_ms = t.elapsed().as_secs_f64() * 1e3;
    let (p50, p95, max) = percentiles(eval_ms);
    let (c50, c95, _) = percentiles(eval_cpu);
    println!(
        "  {:<8} one evaluation: wall median {p50:.2} ms (p95 {p95:.2}, max {max:.2}); \
         CPU median {c50:.2} ms (p95 {c95:.2})",
        load.name
    );
    println!(
        "           {} alerts active, {transitions} transitions in {CYCLES} cycles; \
         building the {} targets: {targets_ms:.2} ms",
        engine.view().alerts.len(),
        targets.len()
    );
}

fn main() {
    let t = Instant::now();
    let loaded = rule::load(&[Source {
        name: "bench.yml".into(),
        text: rules_yaml(),
    }])
    .expect("bench rules load");
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(loaded.rules.len(), RULES);
    println!("engine: {RULES} rules x {CONTAINERS} containers, {CYCLES} cycles (target < 50 ms)");
    println!("  load + validate the {RULES} rules: {load_ms:.2} ms");
    let typical = Load {
        name: "typical",
        hot_every: 100,
        mem_mod: 52,
    };
    let stress = Load {
        name: "stress",
        hot_every: 10,
        mem_mod: 90,
    };
    // LOOKOUT_BENCH=typical (or stress) runs one load only (for profiling).
    let only = std::env::var("LOOKOUT_BENCH").unwrap_or_default();
    for load in [typical, stress] {
        if only.is_empty() || only == load.name {
            run(load, &loaded.rules);
        }
    }
    if !only.is_empty() {
        return;
    }

    // One pass of the same pairs: compiled expressions alone, and evalexpr's tree walk.
    let targets = vars::targets(&snapshot(typical, 0), None, "bench", &Default::default());
    let pairs = |f: &dyn Fn(&Rule, &vars::Target) -> bool| {
        let t = Instant::now();
        let mut n = 0usize;
        for r in &loaded.rules {
            for tg in &targets {
                if (r.matcher.is_all() || r.matcher.matches(tg)) && f(r, tg) {
                    n += 1;
                }
            }
        }
        (t.elapsed().as_secs_f64() * 1e3, n)
    };
    let (compiled_ms, a) = pairs(&|r, t| r.expr.truth(&t.values) == Ok(Truth::True));
    let (evalexpr_ms, b) = pairs(&|r, t| {
        matches!(
            r.expr.eval_with_evalexpr(&t.values),
            Ok(evalexpr::Value::Boolean(true))
        )
    });
    // (The counts differ where evalexpr holds the float 0.0 != the int 0: see engine/expr.rs.)
    println!("  one pass of all pairs, compiled expressions: {compiled_ms:7.2} ms ({a} true)");
    println!("  one pass of all pairs, evalexpr tree walk:   {evalexpr_ms:7.2} ms ({b} true)");
}
