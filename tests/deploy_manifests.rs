//! deploy/'s files, checked by the tools their users run them with: `docker-compose config`
//! (Compose file, GPU override, Swarm stack), Kubernetes' and prometheus-operator's schemas
//! (offline, vendored in tests/fixtures/schemas), `promtool`, `systemd-analyze`, and lookout's
//! own `check`; and the Dockerfile's instructions.

mod support;

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;
use support::deploy::{
    at, check_host_mounts, compose_config, mounts, ok, read, repo, runtime_stage, strings,
};
use support::{lookout_bin, tool_or_skip};

const GID: &str = "4242";

fn compose(files: &[&str]) -> Option<Value> {
    tool_or_skip("compose", "/usr/bin/docker-compose").then(|| {
        compose_config(
            files,
            &[("DOCKER_GID", GID), ("LOOKOUT_IMAGE", "lookout:test")],
        )
    })
}

#[test]
fn the_compose_file_gives_lookout_the_hosts_mounts_groups_and_namespaces() {
    let Some(c) = compose(&["deploy/docker-compose.yml"]) else {
        return;
    };
    let lo = at(&c, &["services", "lookout"]);
    let args = strings(&lo["command"]);
    let m = mounts(lo);
    assert_eq!(check_host_mounts(&args, &m), Vec::<String>::new());
    let root = m.iter().find(|m| m.target == "/host").unwrap();
    assert_eq!(root.propagation.as_deref(), Some("rslave"), "{root:?}");
    assert_eq!(strings(&lo["group_add"]), [GID]);
    assert_eq!(lo["pid"].as_str(), Some("host"));
    assert_eq!(lo["network_mode"].as_str(), Some("host"));
    assert_eq!(lo["read_only"].as_bool(), Some(true));
    assert_eq!(strings(&lo["cap_drop"]), ["ALL"]);
    assert_eq!(lo["image"].as_str(), Some("lookout:test"));
    assert_eq!(
        at(lo, &["build", "dockerfile"]).as_str(),
        Some("deploy/Dockerfile")
    );
    // The image's HEALTHCHECK (`lookout healthcheck`) stands: not overridden, not disabled.
    assert!(lo["healthcheck"].is_null(), "{:?}", lo["healthcheck"]);
    // The config it is given, and its state on a volume.
    // By environment, which the image's HEALTHCHECK sees too.
    let config = at(lo, &["environment", "LOOKOUT_CONFIG"])
        .as_str()
        .expect("LOOKOUT_CONFIG");
    assert!(!args.iter().any(|a| a.starts_with("--config")), "{args:?}");
    let cfg = m
        .iter()
        .find(|m| m.target == config)
        .expect("the config mount");
    assert_eq!(Path::new(&cfg.source), repo().join("deploy/lookout.yml"));
    assert!(cfg.read_only);
    let state = m.iter().find(|m| m.target == "/var/lib/lookout").unwrap();
    assert!(state.volume && !state.read_only, "{state:?}");

    // Prometheus scrapes lookout and alerts through Alertmanager; Grafana is provisioned.
    let prom = at(&c, &["services", "prometheus"]);
    let pm = mounts(prom);
    let file = |target: &str| -> String {
        pm.iter()
            .find(|m| m.target == target)
            .unwrap_or_else(|| panic!("nothing at {target}: {pm:?}"))
            .source
            .clone()
    };
    assert_eq!(
        Path::new(&file("/etc/prometheus/prometheus.yml")),
        repo().join("deploy/prometheus.yml")
    );
    // The PromQL twins of lookout's rules are optional: an empty file unless PROMETHEUS_RULES.
    assert_eq!(file("/etc/prometheus/rules/lookout.yml"), "/dev/null");
    assert_eq!(
        strings(&prom["extra_hosts"]),
        ["host.docker.internal:host-gateway"]
    );
    let am = at(&c, &["services", "alertmanager"]);
    let amm = mounts(am);
    assert!(
        amm.iter().any(
            |m| Path::new(&m.source) == repo().join("alertmanager/alertmanager.yml")
                && m.target == "/etc/alertmanager/alertmanager.yml"
        ),
        "{amm:?}"
    );
    let gm = mounts(at(&c, &["services", "grafana"]));
    for (src, target) in [
        ("dashboards/provisioning", "/etc/grafana/provisioning"),
        ("dashboards", "/var/lib/grafana/dashboards"),
    ] {
        assert!(
            gm.iter().any(|m| Path::new(&m.source) == repo().join(src)
                && m.target == target
                && m.read_only),
            "grafana lacks {src} at {target}: {gm:?}"
        );
    }
    // Secrets are Docker secrets, never values in the file.
    assert_eq!(
        strings(at(&c, &["services", "grafana", "secrets"])).len(),
        1
    );
    for (name, _) in at(&c, &["secrets"]).as_mapping().unwrap() {
        let f = at(&c, &["secrets", name.as_str().unwrap(), "file"])
            .as_str()
            .unwrap();
        assert!(
            f.starts_with(repo().join("deploy/secrets").to_str().unwrap()),
            "{f}"
        );
    }
}

/// The files the stack mounts from the dashboards' and Alertmanager's folders agree with it:
/// the dashboard provider reads where Compose mounts the dashboards, the datasource reaches the
/// stack's Prometheus. (Each is checked when that folder exists in this checkout.)
#[test]
fn the_compose_stack_agrees_with_the_provisioning_files() {
    let provider = repo().join("dashboards/provisioning/dashboards/lookout.yml");
    if let Ok(text) = std::fs::read_to_string(&provider) {
        let v: Value = serde_yaml::from_str(&text).unwrap();
        let paths: Vec<&str> = v["providers"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|p| at(p, &["options", "path"]).as_str())
            .collect();
        assert!(
            paths.iter().any(|p| p.starts_with("/var/lib/grafana/dashboards")),
            "the dashboard provider reads {paths:?}; Compose mounts dashboards/ at /var/lib/grafana/dashboards"
        );
    } else {
        eprintln!("NOTE: no {} in this checkout", provider.display());
    }
    let datasource = repo().join("dashboards/provisioning/datasources/lookout.yml");
    if let Ok(text) = std::fs::read_to_string(&datasource) {
        assert!(
            text.contains("http://prometheus:9090"),
            "the datasource does not reach the stack's Prometheus (http://prometheus:9090):\n{text}"
        );
    } else {
        eprintln!("NOTE: no {} in this checkout", datasource.display());
    }
}

#[test]
fn the_gpu_override_reserves_the_nvidia_gpus() {
    let Some(c) = compose(&["deploy/docker-compose.yml", "deploy/docker-compose.gpu.yml"]) else {
        return;
    };
    let lo = at(&c, &["services", "lookout"]);
    let dev = &at(lo, &["deploy", "resources", "reservations", "devices"])[0];
    assert_eq!(dev["driver"].as_str(), Some("nvidia"));
    assert_eq!(strings(&dev["capabilities"]), ["gpu"]);
    assert_eq!(dev["count"].as_str(), Some("all"));
    assert_eq!(
        at(lo, &["environment", "NVIDIA_DRIVER_CAPABILITIES"]).as_str(),
        Some("utility")
    );
    // The override adds; the base service's mounts and flags stay.
    let base = compose(&["deploy/docker-compose.yml"]).unwrap();
    let b = at(&base, &["services", "lookout"]);
    let sorted = |v: &Value| {
        let mut s = strings(v);
        s.sort();
        s
    };
    assert_eq!(sorted(&lo["volumes"]), sorted(&b["volumes"]));
    assert_eq!(lo["command"], b["command"]);
}

#[test]
fn the_swarm_stack_runs_lookout_globally_with_the_hosts_mounts() {
    let Some(c) = compose(&["deploy/swarm/stack.yml"]) else {
        return;
    };
    assert_eq!(c["version"].as_str(), Some("3.8"));
    let lo = at(&c, &["services", "lookout"]);
    assert_eq!(at(lo, &["deploy", "mode"]).as_str(), Some("global"));
    let args = strings(&lo["command"]);
    let m = mounts(lo);
    assert_eq!(check_host_mounts(&args, &m), Vec::<String>::new());
    let root = m.iter().find(|m| m.target == "/host").unwrap();
    assert_eq!(root.propagation.as_deref(), Some("rslave"));
    // No group_add on Swarm: the socket's group is the primary group.
    assert_eq!(lo["user"].as_str(), Some(format!("65532:{GID}").as_str()));
    let nets: Vec<&str> = lo["networks"]
        .as_mapping()
        .map(|m| m.keys().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(nets, ["hostnet"]);
    assert_eq!(
        at(&c, &["networks", "hostnet", "name"]).as_str(),
        Some("host")
    );
    assert!(
        lo["healthcheck"].is_null(),
        "the image's HEALTHCHECK stands"
    );
    // Compose and Swarm run lookout with the same flags.
    let compose_file = compose(&["deploy/docker-compose.yml"]).unwrap();
    let compose_args = strings(at(&compose_file, &["services", "lookout", "command"]));
    for a in &args {
        assert!(
            compose_args.contains(a),
            "{a} is in the stack, not in Compose"
        );
    }
}

/// A variable the files require (`${VAR:?...}`) is in .env.example, and every variable
/// .env.example sets is used.
#[test]
fn env_example_names_the_variables_the_stack_uses() {
    let example = read("deploy/.env.example");
    let set: Vec<&str> = example
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .collect();
    let compose = read("deploy/docker-compose.yml");
    let re = regex::Regex::new(r"\$\{([A-Z_]+)(:?[-?])?").unwrap();
    for cap in re.captures_iter(&compose) {
        let var = &cap[1];
        if cap.get(2).is_some_and(|m| m.as_str().ends_with('?')) {
            assert!(
                set.contains(&var),
                "{var} is required but not in .env.example"
            );
        }
    }
    for var in &set {
        assert!(
            compose.contains(&format!("${{{var}")),
            "{var} in .env.example is unused"
        );
    }
}

#[test]
fn the_dockerfile_builds_in_two_stages_and_runs_unprivileged_with_a_healthcheck() {
    let df = read("deploy/Dockerfile");
    let froms: Vec<&str> = df.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].starts_with("FROM rust:${RUST_VERSION}-") && froms[0].ends_with(" AS build"));
    let cargo = read("Cargo.toml");
    let field = |k: &str| {
        cargo
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap()
            .to_string()
    };
    assert!(df.contains(&format!("ARG RUST_VERSION={}\n", field("rust-version"))));
    let (from, stage) = runtime_stage(&df);
    assert!(from.contains(":nonroot"), "{from}");
    let stage = stage.join("\n");
    assert!(stage.contains("\nUSER 65532:65532\n"), "{stage}");
    assert!(stage.contains("\nEXPOSE 9659\n"), "{stage}");
    assert!(
        stage.contains("CMD [\"/usr/local/bin/lookout\", \"healthcheck\""),
        "{stage}"
    );
    assert!(
        stage.contains("ENTRYPOINT [\"/usr/local/bin/lookout\"]"),
        "{stage}"
    );
    for (label, value) in [
        ("title", "\"lookout\"".to_string()),
        ("version", "\"${VERSION}\"".to_string()),
        ("licenses", format!("\"{}\"", field("license"))),
        ("revision", "\"${REVISION}\"".to_string()),
        ("created", "\"${CREATED}\"".to_string()),
    ] {
        assert!(
            stage.contains(&format!("org.opencontainers.image.{label}={value}")),
            "label {label}"
        );
    }
    assert!(stage.contains(&format!("ARG VERSION={}\n", field("version"))));
    // The build context keeps only what the build stage copies (not target/).
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l == "*"));
    for copied in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "benches/",
        "exporter/",
        "rules/",
    ] {
        assert!(
            ignore.lines().any(|l| l == format!("!{copied}")),
            "{copied}"
        );
    }
}

#[test]
fn the_stacks_lookout_configs_pass_lookout_check() {
    let out = Command::new(lookout_bin())
        .args(["check", "config"])
        .arg(repo().join("deploy/lookout.yml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = ok(out, "lookout check config deploy/lookout.yml");
    assert!(
        text.contains("receivers: alertmanager (alertmanager)"),
        "{text}"
    );
    // The default rules name `discord` and `email`, which this config leaves to Alertmanager:
    // check says their alerts still go where the route sends them, not that they are lost.
    assert!(
        stderr.contains("go only where the route sends them (`alertmanager`)")
            && !stderr.contains("reach no one"),
        "{stderr}"
    );
}

#[test]
fn prometheus_yml_passes_promtool() {
    if !tool_or_skip("prometheus_yml_passes_promtool", "/usr/bin/promtool") {
        return;
    }
    let out = Command::new("/usr/bin/promtool")
        .args(["check", "config", "--syntax-only"])
        .arg(repo().join("deploy/prometheus.yml"))
        .output()
        .unwrap();
    ok(out, "promtool check config deploy/prometheus.yml");
}

// ---- Kubernetes ------------------------------------------------------------------------------

fn python_with_jsonschema(test: &str) -> bool {
    if !tool_or_skip(test, "/usr/bin/python3") {
        return false;
    }
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import jsonschema, yaml"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("LOOKOUT_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!(
                "{test}: python3-jsonschema and python3-yaml are needed (LOOKOUT_REQUIRE_TOOLS=1)"
            );
        }
        eprintln!("SKIP {test}: python3-jsonschema or python3-yaml missing");
    }
    ok
}

fn validate(files: &[&Path]) -> std::process::Output {
    Command::new("/usr/bin/python3")
        .arg(repo().join("tests/support/k8s_validate.py"))
        .arg(repo().join("tests/fixtures/schemas"))
        .args(files)
        .output()
        .unwrap()
}

fn manifests() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

fn manifest(name: &str) -> Value {
    serde_yaml::from_str(&read(&format!("deploy/kubernetes/{name}.yaml"))).unwrap()
}

#[test]
fn the_kubernetes_manifests_pass_the_pinned_schemas() {
    if !python_with_jsonschema("the_kubernetes_manifests_pass_the_pinned_schemas") {
        return;
    }
    let files = manifests();
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let out = validate(&paths);
    let text = ok(out, "k8s_validate.py deploy/kubernetes/*.yaml");
    for kind in [
        "DaemonSet",
        "Service",
        "ConfigMap",
        "Namespace",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(
            text.contains(&format!("{kind}/")),
            "{kind} not validated:\n{text}"
        );
    }
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": OK")).count(),
        files.len(),
        "{text}"
    );

    // The validator refuses what Kubernetes or the operator would: an unknown field of each
    // kind, a bad duration.
    let dir = tempfile::tempdir().unwrap();
    let broken = [
        (
            "daemonset",
            "readinessProbe:",
            "readinesProbe:",
            "'readinesProbe' was unexpected",
        ),
        (
            "service",
            "clusterIP: None",
            "clusterIp: None",
            "'clusterIp' was unexpected",
        ),
        (
            "servicemonitor",
            "interval: 10s",
            "interval: 10 seconds",
            "'10 seconds' does not match",
        ),
        (
            "servicemonitor",
            "jobLabel:",
            "jobLable:",
            "'jobLable' was unexpected",
        ),
        (
            "prometheusrule",
            "for: 5m",
            "fore: 5m",
            "'fore' was unexpected",
        ),
    ];
    for (i, (name, from, to, expect)) in broken.iter().enumerate() {
        let text = read(&format!("deploy/kubernetes/{name}.yaml"));
        assert!(text.contains(from), "{name}: {from}");
        let file = dir.path().join(format!("{i}.yaml"));
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
        let out = validate(&[&file]);
        assert_eq!(out.status.code(), Some(1), "{name} with {to:?} passed");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains(expect), "{name}: {said}");
    }
}

#[test]
fn the_daemonset_probes_mounts_and_flags_fit_lookout() {
    let ds = manifest("daemonset");
    let pod = at(&ds, &["spec", "template", "spec"]);
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(
        at(pod, &["securityContext", "runAsNonRoot"]).as_bool(),
        Some(true)
    );
    let c = &pod["containers"][0];
    assert_eq!(
        at(c, &["readinessProbe", "httpGet", "path"]).as_str(),
        Some("/ready")
    );
    assert_eq!(
        at(c, &["livenessProbe", "httpGet", "path"]).as_str(),
        Some("/health")
    );
    assert_eq!(at(c, &["ports"])[0]["containerPort"].as_u64(), Some(9659));
    assert_eq!(
        at(c, &["securityContext", "readOnlyRootFilesystem"]).as_bool(),
        Some(true)
    );
    // volumeMounts + hostPath volumes, as the mounts of the Compose file are checked.
    let volumes = pod["volumes"].as_sequence().unwrap();
    let ms: Vec<support::deploy::Mount> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| {
            let vol = volumes
                .iter()
                .find(|v| v["name"] == m["name"])
                .unwrap_or_else(|| panic!("no volume {:?}", m["name"]));
            let host = at(vol, &["hostPath", "path"]).as_str();
            support::deploy::Mount {
                source: host.unwrap_or("").to_string(),
                target: m["mountPath"].as_str().unwrap().to_string(),
                read_only: m["readOnly"].as_bool().unwrap_or(false),
                propagation: m["mountPropagation"].as_str().map(str::to_string),
                volume: host.is_none(),
            }
        })
        .collect();
    let args = strings(&c["args"]);
    assert_eq!(check_host_mounts(&args, &ms), Vec::<String>::new());
    assert_eq!(
        ms.iter()
            .find(|m| m.target == "/host")
            .unwrap()
            .propagation
            .as_deref(),
        Some("HostToContainer")
    );
    // The config and the rules come from the ConfigMap, at the paths the config names.
    assert!(args.contains(&"--config=/etc/lookout/lookout.yml".to_string()));
    let items = at(
        volumes.iter().find(|v| v["name"] == "config").unwrap(),
        &["configMap", "items"],
    );
    let paths: Vec<&str> = items
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "lookout.yml",
            "rules/containers.yml",
            "rules/host.yml",
            "rules/gpu.yml"
        ]
    );

    // Service and ServiceMonitor select these pods on the named port.
    let labels = at(&ds, &["spec", "template", "metadata", "labels"]);
    let svc = manifest("service");
    for (k, v) in at(&svc, &["spec", "selector"]).as_mapping().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v);
    }
    assert_eq!(
        at(&svc, &["spec", "ports"])[0]["name"].as_str(),
        Some("metrics")
    );
    let sm = manifest("servicemonitor");
    for (k, v) in at(&sm, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&at(&svc, &["metadata", "labels"])[k.as_str().unwrap()], v);
    }
    assert_eq!(
        at(&sm, &["spec", "endpoints"])[0]["port"].as_str(),
        Some("metrics")
    );
}

#[test]
fn the_configmap_holds_the_repositorys_rules_and_a_valid_config() {
    let cm = manifest("configmap");
    let data = cm["data"].as_mapping().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    for (k, v) in data {
        let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap());
        if k == "lookout.yml" {
            std::fs::write(dir.path().join(k), v).unwrap();
        } else {
            assert_eq!(v, read(&format!("rules/{k}")), "{k} differs from rules/{k}");
            std::fs::write(dir.path().join("rules").join(k), v).unwrap();
        }
    }
    let mut rules: Vec<String> = std::fs::read_dir(repo().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    rules.sort();
    let mut held: Vec<&str> = data
        .keys()
        .filter_map(|k| k.as_str())
        .filter(|k| *k != "lookout.yml")
        .collect();
    held.sort();
    assert_eq!(held, rules, "the ConfigMap holds every rule file of rules/");
    let out = Command::new(lookout_bin())
        .args(["check", "config"])
        .arg(dir.path().join("lookout.yml"))
        .env(
            "DISCORD_WEBHOOK_URL",
            "https://discord.com/api/webhooks/1/token",
        )
        .env("SMTP_PASSWORD", "secret")
        .output()
        .unwrap();
    let text = ok(out, "lookout check config (the ConfigMap's)");
    assert!(
        text.contains(&format!("rules from {} files", rules.len())),
        "{text}"
    );
    // The DaemonSet gives the receivers the variables the config reads.
    let ds = read("deploy/kubernetes/daemonset.yaml");
    for var in ["DISCORD_WEBHOOK_URL", "SMTP_PASSWORD"] {
        assert!(ds.contains(&format!("- name: {var}")), "{var}");
    }
}

#[test]
fn the_prometheusrule_passes_promtool_and_names_lookouts_series() {
    let pr = manifest("prometheusrule");
    let spec = serde_yaml::to_string(&pr["spec"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, &spec).unwrap();
    if tool_or_skip("the_prometheusrule_passes_promtool", "/usr/bin/promtool") {
        let out = Command::new("/usr/bin/promtool")
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        let text = ok(out, "promtool check rules (the PrometheusRule's groups)");
        assert!(text.contains("SUCCESS: 8 rules found"), "{text}");
    }
    // Every lookout_* series the rules read is one lookout exposes.
    let sources: String = [
        "exporter/exposition/alerts.rs",
        "exporter/exposition/selfmetrics.rs",
        "exporter/exposition/mod.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(repo().join(f)).unwrap_or_default())
    .collect();
    let re = regex::Regex::new(r"lookout_[a-z_]+").unwrap();
    let names: std::collections::BTreeSet<&str> = re.find_iter(&spec).map(|m| m.as_str()).collect();
    assert!(names.len() >= 6, "{names:?}");
    for n in names {
        assert!(
            sources.contains(&format!("\"{n}\"")),
            "lookout exposes no {n}"
        );
    }
}

// ---- systemd ---------------------------------------------------------------------------------

/// The unit with its ExecStart pointing at this build's binary (`verify` checks that the
/// program exists), in a temp dir.
fn unit_here(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookout.service");
    assert!(text.contains("ExecStart=/usr/local/bin/lookout "));
    std::fs::write(
        &path,
        text.replace("/usr/local/bin/lookout", lookout_bin().to_str().unwrap()),
    )
    .unwrap();
    (dir, path)
}

fn verify(path: &Path) -> String {
    let out = Command::new("/usr/bin/systemd-analyze")
        .arg("verify")
        .arg(path)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_systemd_unit_verifies_and_scores_as_hardened() {
    if !tool_or_skip("the_systemd_unit_verifies", "/usr/bin/systemd-analyze") {
        return;
    }
    let unit = read("deploy/systemd/lookout.service");
    for line in [
        "DynamicUser=yes",
        "SupplementaryGroups=docker",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=lookout",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let (_dir, path) = unit_here(&unit);
    // `verify` prints nothing for a clean unit, and a warning for each problem (exit 0 either
    // way, so the output is what is checked) ...
    assert_eq!(verify(&path), "", "systemd-analyze verify complained");
    // ... as a unit with a misspelt directive shows.
    let (_d2, bad) = unit_here(&unit.replace("ProtectHome=yes", "ProtectHomee=yes"));
    assert!(verify(&bad).contains("Unknown key 'ProtectHomee'"));

    let out = Command::new("/usr/bin/systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    println!(
        "systemd-analyze security: {}",
        line.trim().trim_start_matches("→ ")
    );
    let score: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // 0 is fully sandboxed, 10 not at all; "OK" ends at 3.9 (systemd's own scale).
    assert!(score <= 3.0, "exposure {score}: {line}");
}
