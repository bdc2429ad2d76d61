//! node_exporter's `mdadm` collector: the software RAID arrays of `/proc/mdstat`
//! (drivers/md/md.c's `md_seq_show`, Documentation/admin-guide/md.rst), parsed as
//! node_exporter (procfs' `parseMDStat`) parses it: a device line `md<N> : <state> <level>
//! <disk>[<n>](F|S)...`, a status line `<blocks> blocks ... [<total>/<active>] [UU_]`, then
//! maybe a progress line (`recovery`, `resync`, `check`, with `(<synced>/<total>)`; `PENDING`
//! or `DELAYED`: none synced yet) and a `bitmap:` line. `raid0` and `linear` arrays count
//! their disks on the device line; an `inactive` one has none active. Without `/proc/mdstat`
//! (no md driver) the collector is not available here.

use super::node::{parse_error, read_optional, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// One md array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Array {
    pub name: String,
    /// `active`, `inactive`, `recovering`, `resyncing` or `checking`.
    pub state: String,
    pub disks_active: u64,
    pub disks_failed: u64,
    pub disks_spare: u64,
    pub disks_total: u64,
    pub blocks: u64,
    pub blocks_synced: u64,
}

/// `node_md_blocks{device}`, `node_md_blocks_synced`, `node_md_disks{device,state}`,
/// `node_md_disks_required{device}`, `node_md_state{device,state}`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let path = paths.procfs.join("mdstat");
    let Some(text) = read_optional(&path)? else {
        return Err(NodeError::Unavailable(format!("no {}", path.display())));
    };
    let arrays = parse_mdstat(&text).map_err(|e| parse_error(&path, e))?;
    Ok(families(&arrays))
}

/// The first number of `(<n>/<m>)` in a progress line.
fn synced_blocks(line: &str) -> Option<u64> {
    let mut rest = line;
    while let Some(open) = rest.find('(') {
        rest = &rest[open + 1..];
        if let Some((a, tail)) = rest.split_once('/') {
            let b = tail.split(')').next().unwrap_or("");
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
            if digits(a) && digits(b) && tail.contains(')') {
                return a.parse().ok();
            }
        }
    }
    None
}

/// `[<total>/<active>] [<U_>]` of a status line: (total, active).
fn total_active(status: &str) -> Option<(u64, u64)> {
    let f: Vec<&str> = status.split_ascii_whitespace().collect();
    if f.get(1) != Some(&"blocks") {
        return None;
    }
    f.windows(2).rev().find_map(|w| {
        let counts = w[0].strip_prefix('[')?.strip_suffix(']')?;
        let map = w[1].strip_prefix('[')?.strip_suffix(']')?;
        if map.is_empty() || !map.bytes().all(|c| c == b'U' || c == b'_') {
            return None;
        }
        let (t, a) = counts.split_once('/')?;
        Some((t.parse().ok()?, a.parse().ok()?))
    })
}

/// The arrays of `/proc/mdstat`, in its order.
pub fn parse_mdstat(text: &str) -> Result<Vec<Array>, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with('\t')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 3 {
            return Err(format!("line {}: not enough fields: {line:?}", i + 1));
        }
        let name = fields[0];
        if lines.len() <= i + 3 {
            return Err(format!("{name}: too few lines"));
        }
        let status = lines[i + 1];
        let blocks: u64 = status
            .split_ascii_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{name}: no block count in {status:?}"))?;
        let (active, total) = if line.contains("raid0") || line.contains("linear") {
            let n = line.matches('[').count() as u64;
            (n, n)
        } else if line.contains("inactive") {
            (0, 0)
        } else {
            let (t, a) = total_active(status)
                .ok_or_else(|| format!("{name}: no [total/active] [U_] in {status:?}"))?;
            (a, t)
        };
        let mut sync = lines[i + 2];
        if sync.contains("bitmap") {
            sync = lines[i + 3];
        }
        let mut state = fields[2].to_string();
        let mut blocks_synced = blocks;
        let (recovering, resyncing, checking) = (
            sync.contains("recovery"),
            sync.contains("resync"),
            sync.contains("check"),
        );
        if recovering || resyncing || checking {
            state = if recovering {
                "recovering"
            } else if checking {
                "checking"
            } else {
                "resyncing"
            }
            .to_string();
            blocks_synced = if sync.contains("PENDING") || sync.contains("DELAYED") {
                0
            } else {
                synced_blocks(sync)
                    .ok_or_else(|| format!("{name}: no (synced/total) in {sync:?}"))?
            };
        }
        out.push(Array {
            name: name.to_string(),
            state,
            disks_active: active,
            disks_failed: line.matches("(F)").count() as u64,
            disks_spare: line.matches("(S)").count() as u64,
            disks_total: total,
            blocks,
            blocks_synced,
        });
    }
    Ok(out)
}

/// The families, in node_exporter's order; arrays by name. No arrays: no families.
pub fn families(arrays: &[Array]) -> Vec<Family> {
    let mut sorted: Vec<&Array> = arrays.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut blocks = Family::new(
        "node_md_blocks",
        "Total number of blocks on device.",
        Kind::Gauge,
    );
    let mut synced = Family::new(
        "node_md_blocks_synced",
        "Number of blocks synced on device.",
        Kind::Gauge,
    );
    let mut disks = Family::new(
        "node_md_disks",
        "Number of active/failed/spare disks of device.",
        Kind::Gauge,
    );
    let mut required = Family::new(
        "node_md_disks_required",
        "Total number of disks of device.",
        Kind::Gauge,
    );
    let mut state = Family::new(
        "node_md_state",
        "Indicates the state of md-device.",
        Kind::Gauge,
    );
    for a in sorted {
        let d = a.name.as_str();
        blocks.push(&[("device", d)], a.blocks as f64);
        synced.push(&[("device", d)], a.blocks_synced as f64);
        for (s, n) in [
            ("active", a.disks_active),
            ("failed", a.disks_failed),
            ("spare", a.disks_spare),
        ] {
            disks.push(&[("device", d), ("state", s)], n as f64);
        }
        required.push(&[("device", d)], a.disks_total as f64);
        for (label, theirs) in [
            ("active", "active"),
            ("inactive", "inactive"),
            ("recovering", "recovering"),
            ("resync", "resyncing"),
            ("check", "checking"),
        ] {
            state.push(
                &[("device", d), ("state", label)],
                f64::from(u8::from(a.state == theirs)),
            );
        }
    }
    [blocks, synced, disks, required, state]
        .into_iter()
        .filter(|f| !f.samples.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDSTAT: &str = "\
Personalities : [raid1] [raid6] [raid5] [raid4] [raid0]
md1 : active raid5 sdf1[4] sde1[2] sdd1[1] sdc1[0]
      5860147200 blocks super 1.2 level 5, 512k chunk, algorithm 2 [4/3] [UUU_]
      [=====>...............]  recovery = 27.1% (529659136/1953382400) finish=139.3min speed=170290K/sec
      bitmap: 0/15 pages [0KB], 65536KB chunk

md0 : active raid1 sdb1[1](F) sda1[0]
      1048512 blocks super 1.2 [2/1] [U_]
      
md2 : active raid0 sdh1[1] sdg1[0]
      3906764800 blocks super 1.2 512k chunks
      
md3 : inactive sdi1[0](S)
      2096128 blocks super 1.2
       
md4 : active raid1 sdk1[1] sdj1[0]
      1048512 blocks super 1.2 [2/2] [UU]
      \tresync=DELAYED
      
md5 : active raid6 sdl[0] sdm[1] sdn[2] sdo[3]
      3906764800 blocks super 1.2 level 6, 512k chunk, algorithm 2 [4/4] [UUUU]
      [>....................]  check =  0.2% (4096/1953382400) finish=100.0min speed=40960K/sec
      
unused devices: <none>
";

    #[test]
    fn arrays_as_node_exporter_reads_them() {
        let a = parse_mdstat(MDSTAT).unwrap();
        let names: Vec<&str> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["md1", "md0", "md2", "md3", "md4", "md5"]);
        let md1 = &a[0];
        assert_eq!(md1.state, "recovering");
        assert_eq!((md1.disks_active, md1.disks_total), (3, 4));
        assert_eq!((md1.blocks, md1.blocks_synced), (5860147200, 529659136));
        let md0 = &a[1];
        assert_eq!(md0.state, "active");
        assert_eq!(
            (md0.disks_active, md0.disks_failed, md0.disks_total),
            (1, 1, 2)
        );
        assert_eq!(md0.blocks_synced, 1048512);
        assert_eq!((a[2].disks_active, a[2].disks_total), (2, 2));
        assert_eq!(
            (a[3].state.as_str(), a[3].disks_spare, a[3].disks_total),
            ("inactive", 1, 0)
        );
        assert_eq!((a[4].state.as_str(), a[4].blocks_synced), ("resyncing", 0));
        assert_eq!(
            (a[5].state.as_str(), a[5].blocks_synced),
            ("checking", 4096)
        );
        let f = families(&a);
        assert_eq!(f.len(), 5);
        // md0 first; the states one-hot.
        assert_eq!(f[4].samples[0].0[0].1, "md0");
        let on: Vec<f64> = f[4].samples[..5].iter().map(|s| s.1).collect();
        assert_eq!(on, [1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn no_arrays_no_series_and_malformed_fails() {
        let empty = "Personalities : \nunused devices: <none>\n";
        assert!(families(&parse_mdstat(empty).unwrap()).is_empty());
        assert!(parse_mdstat("md0 : active\n").is_err());
        assert!(parse_mdstat("md0 : active raid1 sda[0]\n").is_err());
        assert!(parse_mdstat("md0 : active raid1 sda[0]\n  x blocks\n\n\n").is_err());
        assert!(parse_mdstat("md0 : active raid1 sda[0]\n  10 blocks [2/1]\n\n\n").is_err());
        assert!(synced_blocks("recovery = 1% (12/100)") == Some(12));
        assert!(synced_blocks("recovery = 1% (a/100)").is_none());
    }
}
