//! The identity labels of every target, decided in one place: the exposition renders them on
//! each series, the rule engine puts them on each alert, and `test-rules` builds its expected
//! alerts from them, so `lookout_alerts * on(id) group_left container_memory_usage_bytes`-style
//! joins work.
//!
//! - container: cAdvisor's `id` (the cgroup path), `image`, `name`, then the allow-listed Docker
//!   labels as `container_label_<sanitized>` (empty values left out, as Prometheus treats an
//!   empty label as absent);
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

/// The Docker labels exported as `container_label_<name>` (`docker.labels`), with their
/// Prometheus names worked out once per config rather than per container and cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelAllowlist {
    /// (Docker label key, `container_label_<sanitized key>`), in the configured order.
    entries: Vec<(String, String)>,
}

impl LabelAllowlist {
    pub fn new(keys: &[String]) -> LabelAllowlist {
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
        }
    }

    /// The Docker label keys, as configured.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// (Docker key, Prometheus label name) pairs.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }
}

impl Container {
    /// Visit the container's identity labels in exposition order: `id`, `image`, `name`,
    /// then each allow-listed Docker label that has a value.
    pub fn identity_labels(&self, allow: &LabelAllowlist, mut f: impl FnMut(&str, &str)) {
        f("id", &self.cgroup_id());
        f("image", &self.info.image);
        f("name", &self.info.name);
        for (key, label) in &allow.entries {
            if let Some(v) = self.info.labels.get(key).filter(|v| !v.is_empty()) {
                f(label, v);
            }
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
