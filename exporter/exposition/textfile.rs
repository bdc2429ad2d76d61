//! The textfile collector's families, `node_textfile_mtime_seconds` and
//! `node_textfile_scrape_error`, written after every other family: a textfile family that takes
//! a name one of them took (lookout's own `node_*`, `container_*`, `DCGM_*`, `lookout_*`, ...)
//! would make a second family of that name, which Prometheus refuses, so it is dropped, logged
//! once (naming the file and the metric) and counted in `node_textfile_scrape_error`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::{exposed_names, Encoder, Kind};
use crate::snapshot::{Snapshot, TextFamily, TextfilePart};

const MTIME: &str = "node_textfile_mtime_seconds";
const SCRAPE_ERROR: &str = "node_textfile_scrape_error";

pub(super) fn encode(enc: &mut Encoder, snap: &Snapshot) {
    if let Some(part) = &snap.textfile {
        let dropped = write(enc, part);
        log_dropped(dropped);
    }
}

/// Write `part` after the families already in `enc`; what was dropped, each naming the file
/// and the metric.
fn write(enc: &mut Encoder, part: &TextfilePart) -> Vec<String> {
    // Without families (no directory, the usual case) there is nothing to check.
    let mut own = if part.families.is_empty() {
        Default::default()
    } else {
        enc.taken_names()
    };
    own.insert(MTIME.to_string());
    own.insert(SCRAPE_ERROR.to_string());
    // The names the textfile families written so far take, and which family took each.
    let mut theirs: HashMap<String, &TextFamily> = HashMap::new();
    let mut dropped = Vec::new();
    let mut extra: Vec<(&str, &str)> = Vec::new();
    for f in &part.families {
        let names = exposed_names(&f.name, f.kind);
        if let Some(n) = names.iter().find(|n| own.contains(n.as_str())) {
            dropped.push(format!(
                "{}: {} is dropped: lookout exports {n} itself",
                f.files.join(", "),
                f.name
            ));
            continue;
        }
        if let Some((n, other)) = names.iter().find_map(|n| theirs.get(n).map(|o| (n, o))) {
            dropped.push(format!(
                "{}: {} is dropped: {n} is taken by {} read from {}",
                f.files.join(", "),
                f.name,
                other.name,
                other.files.join(", ")
            ));
            continue;
        }
        for n in names {
            theirs.insert(n, f);
        }
        enc.family(&f.name, &f.help, f.kind);
        // A histogram's or summary's sample names, made once per family.
        let suffixed = match f.kind {
            Kind::Histogram | Kind::Summary => {
                ["_bucket", "_sum", "_count"].map(|suffix| (suffix, format!("{}{suffix}", f.name)))
            }
            _ => Default::default(),
        };
        for s in &f.samples {
            let name = match s.suffix {
                "" => f.name.as_str(),
                suffix => suffixed
                    .iter()
                    .find(|(x, _)| *x == suffix)
                    .map_or(f.name.as_str(), |(_, n)| n.as_str()),
            };
            extra.clear();
            extra.extend(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            enc.sample(name, "", &extra, s.value);
        }
    }
    if !part.mtimes.is_empty() {
        enc.family(
            MTIME,
            "Unixtime mtime of textfiles successfully read.",
            Kind::Gauge,
        );
        for (file, mtime) in &part.mtimes {
            enc.sample(MTIME, "", &[("file", file)], *mtime);
        }
    }
    let errored = part.errored || !dropped.is_empty();
    enc.single(
        SCRAPE_ERROR,
        "1 if there was an error opening or reading a file, 0 otherwise",
        Kind::Gauge,
        if errored { 1.0 } else { 0.0 },
    );
    dropped
}

/// The families dropped at the last encoding: each is logged when it is first dropped (a
/// snapshot is encoded again on each publication, and each cycle brings the same files back).
static DROPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log_dropped(now: Vec<String>) {
    let mut last = DROPPED.lock().unwrap_or_else(PoisonError::into_inner);
    if *last == now {
        return;
    }
    for message in now.iter().filter(|m| !last.contains(m)) {
        tracing::warn!(
            collector = "textfile",
            error = %message,
            "textfile family dropped; node_textfile_scrape_error is 1"
        );
    }
    *last = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{render, Format};
    use crate::snapshot::{Family, TextSample, TextfilePart};

    fn family(name: &str, kind: Kind, file: &str, samples: &[(&'static str, f64)]) -> TextFamily {
        TextFamily {
            name: name.into(),
            help: format!("{name} help"),
            kind,
            files: vec![file.into()],
            samples: samples
                .iter()
                .map(|(suffix, value)| TextSample {
                    suffix,
                    labels: vec![("a".into(), "x".into())],
                    value: *value,
                })
                .collect(),
        }
    }

    fn snap(families: Vec<TextFamily>, errored: bool) -> Snapshot {
        Snapshot {
            node: vec![
                Family::single("node_forks_total", "Forks.", Kind::Counter, 3.0),
                Family::single("node_load1", "Load.", Kind::Gauge, 0.5),
            ],
            textfile: Some(TextfilePart {
                families,
                mtimes: vec![("/d/a.prom".into(), 1700000000.0)],
                errored,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn families_mtimes_and_the_error_are_written_last() {
        let s = snap(
            vec![
                family("app_up", Kind::Gauge, "/d/a.prom", &[("", 1.0)]),
                family(
                    "app_latency_seconds",
                    Kind::Histogram,
                    "/d/a.prom",
                    &[("_bucket", 2.0), ("_sum", 0.5), ("_count", 2.0)],
                ),
            ],
            false,
        );
        let text = render(&s, Format::Text);
        let tail = &text[text.find("# HELP app_up").expect(&text)..];
        assert_eq!(
            tail,
            "# HELP app_up app_up help\n# TYPE app_up gauge\napp_up{a=\"x\"} 1\n\
             # HELP app_latency_seconds app_latency_seconds help\n\
             # TYPE app_latency_seconds histogram\n\
             app_latency_seconds_bucket{a=\"x\"} 2\napp_latency_seconds_sum{a=\"x\"} 0.5\n\
             app_latency_seconds_count{a=\"x\"} 2\n\
             # HELP node_textfile_mtime_seconds Unixtime mtime of textfiles successfully read.\n\
             # TYPE node_textfile_mtime_seconds gauge\n\
             node_textfile_mtime_seconds{file=\"/d/a.prom\"} 1700000000\n\
             # HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise\n\
             # TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0\n"
        );
        // The collector's own error comes through.
        let text = render(&snap(vec![], true), Format::Text);
        assert!(text.ends_with("\nnode_textfile_scrape_error 1\n"), "{text}");
        // Without the collector, none of it.
        let off = Snapshot::default();
        assert!(!render(&off, Format::Text).contains("node_textfile"));
    }

    #[test]
    fn a_family_with_an_own_name_is_dropped_and_counted() {
        let part = TextfilePart {
            families: vec![
                // The same name as lookout's counter.
                family("node_forks_total", Kind::Counter, "/d/a.prom", &[("", 9.0)]),
                // The OpenMetrics name of lookout's counter.
                family("node_forks", Kind::Gauge, "/d/b.prom", &[("", 9.0)]),
                family("node_load1", Kind::Untyped, "/d/c.prom", &[("", 9.0)]),
                family(
                    "node_textfile_scrape_error",
                    Kind::Gauge,
                    "/d/d.prom",
                    &[("", 0.0)],
                ),
                family("app_up", Kind::Gauge, "/d/e.prom", &[("", 1.0)]),
                // A histogram's sample takes the name of another textfile family.
                family("app", Kind::Histogram, "/d/f.prom", &[("_count", 1.0)]),
                family("app_count", Kind::Gauge, "/d/g.prom", &[("", 1.0)]),
            ],
            mtimes: Vec::new(),
            errored: false,
        };
        let encoded = || {
            let mut enc = Encoder::new(0);
            enc.single("node_forks_total", "Forks.", Kind::Counter, 3.0);
            enc.single("node_load1", "Load.", Kind::Gauge, 0.5);
            let dropped = write(&mut enc, &part);
            (enc, dropped)
        };
        let (_, dropped) = encoded();
        assert_eq!(
            dropped,
            [
                "/d/a.prom: node_forks_total is dropped: lookout exports node_forks_total itself",
                "/d/b.prom: node_forks is dropped: lookout exports node_forks itself",
                "/d/c.prom: node_load1 is dropped: lookout exports node_load1 itself",
                "/d/d.prom: node_textfile_scrape_error is dropped: lookout exports \
                 node_textfile_scrape_error itself",
                "/d/g.prom: app_count is dropped: app_count is taken by app read from /d/f.prom",
            ]
        );
        for format in [Format::Text, Format::OpenMetrics] {
            let text = encoded().0.into_string(format);
            for (name, count) in [
                ("node_forks", 1),
                ("node_load1 ", 1),
                ("node_textfile_scrape_error", 1),
                ("app_up", 1),
                ("app ", 1),
                ("app_count", 0),
            ] {
                let headers = text
                    .lines()
                    .filter(|l| l.starts_with(&format!("# TYPE {name}")))
                    .count();
                assert_eq!(headers, count, "{name} in {format:?}:\n{text}");
            }
            assert!(!text.contains(" 9\n"), "{text}");
            assert!(text.contains("\nnode_textfile_scrape_error 1\n"), "{text}");
        }
    }
}
