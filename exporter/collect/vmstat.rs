//! node_exporter's `vmstat` collector: the `/proc/vmstat` fields matching its default
//! `--collector.vmstat.fields`, each as the untyped `node_vmstat_<field>`.

use std::sync::LazyLock;

use regex::Regex;

use super::node::{parse_error, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// node_exporter's default `--collector.vmstat.fields`.
pub const VMSTAT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

static FIELDS: LazyLock<Regex> = LazyLock::new(|| Regex::new(VMSTAT_FIELDS).expect("constant"));

/// `node_vmstat_<field>` for each field of `<procfs>/vmstat` that [`VMSTAT_FIELDS`] matches.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let path = paths.procfs.join("vmstat");
    let text = read_file(&path)?;
    let fields = parse_vmstat(&text, &FIELDS).map_err(|e| parse_error(&path, e))?;
    Ok(fields
        .into_iter()
        .map(|(field, v)| {
            Family::single(
                format!("node_vmstat_{field}"),
                format!("/proc/vmstat information field {field}."),
                Kind::Untyped,
                v,
            )
        })
        .collect())
}

/// `/proc/vmstat`: `name value` lines; those whose name `fields` matches, in file order. A
/// line that is not `name value` is an error, as in node_exporter.
pub fn parse_vmstat(text: &str, fields: &Regex) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(name), Some(value), None) = (f.next(), f.next(), f.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("expected `name value`, got {line:?}"));
        };
        if !fields.is_match(name) {
            continue;
        }
        let v: i64 = value
            .parse()
            .map_err(|_| format!("{name}: expected a number, got {value:?}"))?;
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{name:?} is not a metric name"));
        }
        out.push((name.to_string(), v as f64));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fields_only() {
        let text = "nr_free_pages 100\npgpgin 5\npgpgout 6\npswpin 0\npswpout 0\n\
                    pgfault 301\npgmajfault 2\npgalloc_normal 9\noom_kill 1\n\
                    thp_fault_alloc 3\npgsteal_kswapd 4\n";
        let got = parse_vmstat(text, &FIELDS).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "pgpgin",
                "pgpgout",
                "pswpin",
                "pswpout",
                "pgfault",
                "pgmajfault",
                "oom_kill"
            ]
        );
        assert_eq!(got[4].1, 301.0);
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert!(parse_vmstat("pgfault x\n", &FIELDS).is_err());
        assert!(parse_vmstat("pgfault\n", &FIELDS).is_err());
        assert!(parse_vmstat("pgfault 1 2\n", &FIELDS).is_err());
        assert!(parse_vmstat("pg-fault 1\n", &FIELDS).is_err());
        // A field outside the filter is not parsed at all.
        assert!(parse_vmstat("nr_x y\n\n", &FIELDS).unwrap().is_empty());
    }
}
