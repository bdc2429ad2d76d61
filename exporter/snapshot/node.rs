//! node_exporter-style families (`stat`, `filefd`, `vmstat`, ...): each collector of that kind
//! produces its families whole (names, help, type, samples), so that one exposition function
//! writes them all.

use crate::exposition::Kind;

/// One family: its sample name, help text, type and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    /// Each sample's labels (in the order written) and value.
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    /// A family of one unlabelled sample.
    pub fn single(name: impl Into<String>, help: impl Into<String>, kind: Kind, v: f64) -> Family {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            samples: vec![(Vec::new(), v)],
        }
    }

    /// A family without samples yet.
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: Kind) -> Family {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// The value of a family of one unlabelled sample (`node_filefd_maximum`).
    pub fn value(&self) -> Option<f64> {
        match self.samples.as_slice() {
            [(labels, v)] if labels.is_empty() => Some(*v),
            _ => None,
        }
    }

    /// Add a sample with these labels.
    pub fn push(&mut self, labels: &[(&str, &str)], v: f64) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.push((labels, v));
    }
}

/// What one node_exporter-style collector contributed to a cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodePart {
    pub families: Vec<Family>,
}

/// The value of label `name` in a sample's labels.
pub fn sample_label<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl super::Snapshot {
    /// The family `name` of this cycle's node_exporter-style collectors; None when the
    /// collector that exports it is off, failed or not available here.
    pub fn node_family(&self, name: &str) -> Option<&Family> {
        self.node.iter().find(|f| f.name == name)
    }

    /// Whether the collector `name` ran this cycle and succeeded.
    pub fn collector_succeeded(&self, name: &str) -> bool {
        self.collectors.iter().any(|c| c.name == name && c.success)
    }
}
