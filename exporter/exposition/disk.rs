//! Filesystem series under node_exporter's names (`node_filesystem_*{device,fstype,mountpoint}`).
//! Sizes are left out for a mount whose statfs failed or hung; `device_error` says which.

use super::{push_label, Encoder, Kind};
use crate::snapshot::{Filesystem, Snapshot};

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot) {
    let fs = &snap.filesystems;
    if fs.is_empty() {
        return;
    }
    let labels: Vec<String> = fs
        .iter()
        .map(|f| {
            let mut s = String::with_capacity(96);
            f.identity_labels(|k, v| {
                if !s.is_empty() {
                    s.push(',');
                }
                push_label(&mut s, k, v);
            });
            s
        })
        .collect();
    type Get = fn(&Filesystem) -> u64;
    let sizes: [(&str, &str, Get); 5] = [
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            |f| f.avail_bytes,
        ),
        (
            "node_filesystem_files",
            "Filesystem total file nodes.",
            |f| f.files,
        ),
        (
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
            |f| f.files_free,
        ),
        (
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            |f| f.free_bytes,
        ),
        (
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
            |f| f.size_bytes,
        ),
    ];
    type Flag = fn(&Filesystem) -> bool;
    let flags: [(&str, &str, Flag); 2] = [
        (
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            |f| f.device_error,
        ),
        (
            "node_filesystem_readonly",
            "Filesystem read-only status.",
            |f| f.readonly,
        ),
    ];
    for (name, help, get) in flags {
        enc.family(name, help, Kind::Gauge);
        for (f, l) in fs.iter().zip(&labels) {
            enc.sample(name, l, &[], if get(f) { 1.0 } else { 0.0 });
        }
    }
    let any_sizes = fs.iter().any(|f| !f.device_error);
    for (name, help, get) in sizes.into_iter().filter(|_| any_sizes) {
        enc.family(name, help, Kind::Gauge);
        for (f, l) in fs.iter().zip(&labels).filter(|(f, _)| !f.device_error) {
            enc.sample(name, l, &[], get(f) as f64);
        }
    }
}
