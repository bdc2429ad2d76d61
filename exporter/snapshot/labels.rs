//! The identity labels of every target, decided in one place: the exposition renders them on
//! each series, the rule engine puts them on each alert, and `test-rules` builds its expected
//! alerts from them, so `lookout_alerts * on(id) group_left container_memory_usage_bytes`-style
//! joins work.
//!
//! - container: cAdvisor's `id` (the cgroup path), `image`, `name`, then the allow-listed Docker
//!   labels as `container_label_<sanitized>` (empty values left out, as Prometheus treats an
//!   empty label as absent): the listed keys in the configured order, then the keys the globs
//!   match in key order (see [`LabelAllowlist`] for two keys that become one name);
//! - filesystem: node_exporter's `device`, `fstype`, `mountpoint`;
//! - GPU: DCGM exporter's `gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`.

use super::{Container, Filesystem, Gpu};

/// Prometheus label-name rules: `[a-zA-Z_][a-zA-Z0-9_]*`; other characters become `_`.
pub fn sanitize_label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Whether a `docker.labels` entry is a glob over label keys (`com.docker.compose.*`, `*`)
/// rather than a key: it holds one of `*`, `?`, `[` or `{`.
pub fn is_label_glob(entry: &str) -> bool {
    entry.contains(['*', '?', '[', '{'])
}

/// The Docker labels exported as `container_label_<name>` (`docker.labels`): listed keys, with
/// their Prometheus names worked out once per config rather than per container and cycle, and
/// globs over keys, which export every label they match (cAdvisor's "all labels" behaviour with
/// `*`).
///
/// Two keys can become one name (`a.b` and `a-b` are both `container_label_a_b`). The config
/// refuses that between listed keys; between a glob's matches and the other labels it is only
/// known per container, and settled the same way every time: listed keys first, then the
/// matched keys in key (byte) order, each taking its name unless an earlier one took it.
#[derive(Debug, Clone, Default)]
pub struct LabelAllowlist {
    /// (Docker label key, `container_label_<sanitized key>`), in the configured order.
    entries: Vec<(String, String)>,
    /// The globs, as configured.
    globs: Vec<String>,
    /// Matches them; None without globs.
    matcher: Option<crate::config::NameFilter>,
}

impl PartialEq for LabelAllowlist {
    fn eq(&self, other: &LabelAllowlist) -> bool {
        self.entries == other.entries && self.globs == other.globs
    }
}

impl LabelAllowlist {
    /// From `docker.labels` (already validated): entries with glob characters are globs.
    pub fn new(entries: &[String]) -> LabelAllowlist {
        let (globs, keys): (Vec<String>, Vec<String>) =
            entries.iter().cloned().partition(|e| is_label_glob(e));
        let mut a = LabelAllowlist::keys_only(&keys);
        if !globs.is_empty() {
            a.matcher = Some(crate::config::NameFilter::new(&globs, &[]));
            a.globs = globs;
        }
        a
    }

    /// Exactly these keys, whatever characters they hold (test-rules' targets).
    pub fn keys_only(keys: &[String]) -> LabelAllowlist {
        LabelAllowlist {
            entries: keys
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        format!("container_label_{}", sanitize_label_name(k)),
                    )
                })
                .collect(),
            globs: Vec::new(),
            matcher: None,
        }
    }

    /// The listed Docker label keys, as configured (globs left out).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// Whether the Docker label `key` is exported: listed, or matched by a glob.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
            || self.matcher.as_ref().is_some_and(|m| m.matches(key))
    }

    /// (Docker key, Prometheus label name) pairs of the listed keys.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

impl Container {
    /// Visit the container's identity labels in exposition order: `id`, `image`, `name`,
    /// then each exported Docker label that has a value ([`LabelAllowlist`]'s order).
    pub fn identity_labels(&self, allow: &LabelAllowlist, mut f: impl FnMut(&str, &str)) {
        f("id", &self.cgroup_id());
        f("image", &self.info.image);
        f("name", &self.info.name);
        let mut taken: Vec<&str> = Vec::new();
        for (key, label) in &allow.entries {
            if let Some(v) = self.info.labels.get(key).filter(|v| !v.is_empty()) {
                f(label, v);
                taken.push(label);
            }
        }
        let Some(matcher) = &allow.matcher else {
            return;
        };
        let mut matched: Vec<String> = Vec::new();
        // BTreeMap: key order.
        for (key, v) in &self.info.labels {
            if v.is_empty() || allow.entries.iter().any(|(k, _)| k == key) {
                continue;
            }
            if !matcher.matches(key) {
                continue;
            }
            let label = format!("container_label_{}", sanitize_label_name(key));
            if taken.contains(&label.as_str()) || matched.contains(&label) {
                continue;
            }
            f(&label, v);
            matched.push(label);
        }
    }
}

impl Filesystem {
    /// `device`, `fstype`, `mountpoint` (node_exporter's).
    pub fn identity_labels(&self, mut f: impl FnMut(&str, &str)) {
        f("device", &self.device);
        f("fstype", &self.fstype);
        f("mountpoint", &self.mountpoint);
    }
}

impl Gpu {
    /// DCGM exporter's label set, in its order: `gpu`, `UUID`, `pci_bus_id`, `device`,
    /// `modelName`, `Hostname`.
    pub fn identity_labels(&self, hostname: &str, mut f: impl FnMut(&str, &str)) {
        f("gpu", &self.index.to_string());
        f("UUID", &self.uuid);
        f("pci_bus_id", self.pci_bus_id.as_deref().unwrap_or(""));
        f("device", &self.device);
        f("modelName", &self.name);
        f("Hostname", hostname);
    }
}

/// Collect visited labels as owned pairs (for alerts, which keep them).
pub fn owned(visit: impl FnOnce(&mut dyn FnMut(&str, &str))) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(8);
    visit(&mut |k, v| out.push((k.to_string(), v.to_string())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ContainerInfo, ContainerStats};

    #[test]
    fn sanitizing() {
        assert_eq!(
            sanitize_label_name("com.docker.compose-project"),
            "com_docker_compose_project"
        );
        assert_eq!(sanitize_label_name("1x"), "_1x");
    }

    #[test]
    fn globs_export_every_matching_label_and_settle_shared_names_the_same_way() {
        let c = Container {
            info: ContainerInfo {
                id: "abc".into(),
                name: "web".into(),
                image: "img".into(),
                labels: [
                    ("com.docker.compose.project", "shop"),
                    ("com.docker.compose.service", "web"),
                    ("com.docker.compose.config-hash", "f00"),
                    ("com.docker.compose.config_hash", "b4r"),
                    ("com.docker.compose.empty", ""),
                    ("team", "ops"),
                    ("team.x", "1"),
                    ("team-x", "2"),
                    ("db.password", "hunter2"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        let labels = |entries: &[&str]| {
            let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
            let allow = LabelAllowlist::new(&entries);
            owned(|f| c.identity_labels(&allow, f))
                .into_iter()
                .skip(3)
                .collect::<Vec<_>>()
        };
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        // Listed keys first, in their order; then the glob's matches in key order. Of
        // config-hash and config_hash (one name), the first in key order ('-' < '_').
        assert_eq!(
            labels(&["team", "com.docker.compose.*"]),
            [
                pair("container_label_team", "ops"),
                pair("container_label_com_docker_compose_config_hash", "f00"),
                pair("container_label_com_docker_compose_project", "shop"),
                pair("container_label_com_docker_compose_service", "web"),
            ]
        );
        // A listed key keeps its name over a glob's match, wherever it is listed.
        assert_eq!(
            labels(&["team*", "team.x"]),
            [
                pair("container_label_team_x", "1"),
                pair("container_label_team", "ops"),
            ]
        );
        // `*` is cAdvisor's every label, each name once: 9 labels, less the empty one,
        // config_hash (after config-hash) and team.x (after team-x: '-' < '.').
        let all = labels(&["*"]);
        assert_eq!(all.len(), 6, "{all:?}");
        assert!(all.contains(&pair("container_label_db_password", "hunter2")));
        assert!(all.contains(&pair("container_label_team_x", "2")));
        let mut names: Vec<&String> = all.iter().map(|(k, _)| k).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 6);
        // The same answer every time (the labels are a sorted map).
        assert_eq!(labels(&["*"]), all);
        // Without globs, only the listed keys.
        assert_eq!(labels(&["team"]), [pair("container_label_team", "ops")]);
        let allow = LabelAllowlist::new(&["com.docker.*".into(), "team".into()]);
        assert!(allow.contains("com.docker.compose.project"));
        assert!(allow.contains("team") && !allow.contains("team.x"));
        assert!(!allow.contains("db.password"));
        assert_eq!(allow.keys().collect::<Vec<_>>(), ["team"]);
        // Test-rules' targets take their keys as they are, glob characters and all.
        assert!(!LabelAllowlist::keys_only(&["a*".into()]).contains("ab"));
    }

    #[test]
    fn container_labels_in_order_with_the_cgroup_path_as_id() {
        let mut c = Container {
            info: ContainerInfo {
                id: "abc".into(),
                name: "web".into(),
                image: "img".into(),
                labels: [
                    ("com.docker.compose.project".to_string(), "shop".to_string()),
                    ("empty".to_string(), String::new()),
                    ("secret".to_string(), "x".to_string()),
                ]
                .into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let allow = LabelAllowlist::new(&["com.docker.compose.project".into(), "empty".into()]);
        let got = owned(|f| c.identity_labels(&allow, f));
        assert_eq!(
            got,
            [
                ("id".to_string(), "/docker/abc".to_string()),
                ("image".into(), "img".into()),
                ("name".into(), "web".into()),
                (
                    "container_label_com_docker_compose_project".into(),
                    "shop".into()
                ),
            ]
        );
        c.stats = Some(ContainerStats {
            cgroup_path: "/system.slice/docker-abc.scope".into(),
            ..Default::default()
        });
        let got = owned(|f| c.identity_labels(&allow, f));
        assert_eq!(got[0].1, "/system.slice/docker-abc.scope");
    }
}
