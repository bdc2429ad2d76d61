//! The node_exporter-style collectors' families (`stat`, `filefd`, `vmstat`, ...), written as
//! their collectors made them.

use super::Encoder;
use crate::snapshot::Snapshot;

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot) {
    let mut extra: Vec<(&str, &str)> = Vec::new();
    for f in &snap.node {
        enc.family(&f.name, &f.help, f.kind);
        for (labels, v) in &f.samples {
            extra.clear();
            extra.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            enc.sample(&f.name, "", &extra, *v);
        }
    }
}
