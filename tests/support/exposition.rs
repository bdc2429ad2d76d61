//! The Prometheus text format parsed into families, to compare lookout's series with those of
//! the exporter it stands in for (node_exporter) family by family.

use std::collections::BTreeMap;

/// One sample's labels, sorted by name.
pub type Labels = Vec<(String, String)>;

/// A parsed exposition: family → (type, samples as (sorted labels, value)).
pub type Families = BTreeMap<String, (String, Vec<(Labels, f64)>)>;

/// Parse the Prometheus text format (enough of it for node_exporter and lookout).
pub fn parse(text: &str) -> Families {
    let mut out: Families = BTreeMap::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut labels: Labels = labels
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        labels.sort();
        let kind = types.get(name).cloned().unwrap_or_default();
        out.entry(name.to_string())
            .or_insert_with(|| (kind, Vec::new()))
            .1
            .push((labels, value));
    }
    out
}

/// The distinct sets of label names among a family's samples, sorted.
pub fn label_names(samples: &[(Labels, f64)]) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = samples
        .iter()
        .map(|(l, _)| l.iter().map(|(k, _)| k.clone()).collect())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Each family's `# HELP` text, as written (escapes kept).
pub fn helps(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, help)| (name.to_string(), help.to_string()))
        .collect()
}
