//! node_exporter's textfile collector: every `*.prom` file in `collectors.textfile.directory`
//! (`--collector.textfile.directory`), read as the Prometheus text format, with
//! `node_textfile_mtime_seconds{file}` for each file read and `node_textfile_scrape_error`.
//!
//! As in node_exporter: without a directory there is nothing to read and no error; a file that
//! does not parse, or that carries client-side timestamps, is skipped whole; families of one
//! name in several files are merged when their types and help agree, and otherwise the later
//! file's family is skipped; a family without `# HELP` gets "Metric read from FILES". Each
//! problem makes `node_textfile_scrape_error` 1 and is logged (FILE:LINE:COL and why) once, when
//! it appears or changes. A family that takes the name of one of lookout's own is dropped when
//! the exposition is written (see [`crate::exposition`]), where all of lookout's families are
//! known.

mod parse;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use self::parse::{kind_name, parse, show, Metric, ParsedFamily, Value};
use super::{CollectError, CollectFuture, Collector};
use crate::exposition::Kind;
use crate::snapshot::{Part, TextFamily, TextSample, TextfilePart};

/// Reads the textfile directory each cycle.
pub struct TextfileCollector {
    /// None: nothing to read (node_exporter's default, an empty directory flag).
    directory: Option<PathBuf>,
    /// The problems last logged, by file (or directory), so that each is logged once.
    logged: Mutex<BTreeMap<String, String>>,
}

impl TextfileCollector {
    pub fn new(directory: Option<PathBuf>) -> TextfileCollector {
        TextfileCollector {
            directory,
            logged: Mutex::new(BTreeMap::new()),
        }
    }

    /// One collection, blocking; problems are logged once each.
    pub fn read(&self) -> TextfilePart {
        let Some(dir) = &self.directory else {
            return TextfilePart::default();
        };
        let (part, problems) = read_dir(dir);
        self.log(problems);
        part
    }

    fn log(&self, problems: BTreeMap<String, String>) {
        let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, message) in &problems {
            if logged.get(key) != Some(message) {
                tracing::warn!(
                    collector = "textfile",
                    error = %message,
                    "textfile skipped; node_textfile_scrape_error is 1"
                );
            }
        }
        for key in logged.keys() {
            if !problems.contains_key(key) {
                tracing::info!(collector = "textfile", file = %key, "textfile read again");
            }
        }
        *logged = problems;
    }
}

impl Collector for TextfileCollector {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn collect(self: Arc<Self>) -> CollectFuture {
        Box::pin(async move {
            if self.directory.is_none() {
                return Ok(Part::Textfile(TextfilePart::default()));
            }
            let part = tokio::task::spawn_blocking(move || self.read())
                .await
                .map_err(|e| CollectError::failed(format!("textfile reader: {e}")))?;
            Ok(Part::Textfile(part))
        })
    }
}

/// Read every `*.prom` file of `dir`, in name order. The problems, by file (or `dir`), each
/// naming the file, with its line and column where it has one.
pub fn read_dir(dir: &Path) -> (TextfilePart, BTreeMap<String, String>) {
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut names: Vec<OsString> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(e) => {
                        let name = e.file_name();
                        if name.as_bytes().ends_with(b".prom") {
                            names.push(name);
                        }
                    }
                    Err(e) => problems
                        .entry(dir.display().to_string())
                        .or_default()
                        .push(format!("{}: cannot list the directory: {e}", dir.display())),
                }
            }
        }
        Err(e) => problems
            .entry(dir.display().to_string())
            .or_default()
            .push(format!(
                "{}: cannot read the textfile directory: {e}",
                dir.display()
            )),
    }
    names.sort();

    let mut merged = Merger::default();
    let mut mtimes = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let shown = path.display().to_string();
        match read_file(&path) {
            Ok((mtime, families)) => {
                mtimes.push((shown.clone(), mtime));
                for message in merged.add(&shown, families) {
                    problems.entry(shown.clone()).or_default().push(message);
                }
            }
            Err(message) => problems.entry(shown).or_default().push(message),
        }
    }
    let part = TextfilePart {
        families: merged.finish(),
        mtimes,
        errored: !problems.is_empty(),
    };
    let problems = problems
        .into_iter()
        .map(|(k, v)| (k, v.join("; ")))
        .collect();
    (part, problems)
}

/// One file's families and its mtime (whole seconds, as node_exporter gives it), or why it is
/// skipped.
fn read_file(path: &Path) -> Result<(f64, Vec<ParsedFamily>), String> {
    let shown = path.display();
    // Only a regular file (through links): a FIFO would block the collector for good.
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: cannot open: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{shown}: not a regular file (a directory, FIFO or device)"
        ));
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("{shown}: cannot open: {e}"))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let col = valid.len() - valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
        format!("{shown}:{line}:{col}: not UTF-8 text")
    })?;
    let families = parse(&text).map_err(|e| format!("{shown}:{e}"))?;
    // Only a file that parsed has its mtime taken, so that a broken file does not look fresh.
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| format!("{shown}: cannot stat: {e}"))?;
    let mtime = match modified.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as f64,
        Err(e) => -(e.duration().as_secs() as f64),
    };
    Ok((mtime, families))
}

/// Families of every file so far, by name.
#[derive(Default)]
struct Merger {
    families: HashMap<String, Merged>,
}

struct Merged {
    help: Option<String>,
    kind: Kind,
    files: Vec<String>,
    metrics: Vec<Metric>,
    /// Every series' labels, so that a later file cannot give one again.
    series: HashSet<Vec<(String, String)>>,
}

impl Merger {
    /// Merge `file`'s families; what is refused, each family of the file whose type, help or
    /// series conflicts with an earlier file's (that family of this file is skipped).
    fn add(&mut self, file: &str, mut families: Vec<ParsedFamily>) -> Vec<String> {
        families.sort_by(|a, b| a.name.cmp(&b.name));
        let mut refused = Vec::new();
        for f in families {
            let Some(m) = self.families.get_mut(&f.name) else {
                let series = f.metrics.iter().map(|m| m.labels.clone()).collect();
                self.families.insert(
                    f.name,
                    Merged {
                        help: f.help,
                        kind: f.kind,
                        files: vec![file.to_string()],
                        metrics: f.metrics,
                        series,
                    },
                );
                continue;
            };
            let first = &m.files[0];
            let name = &f.name;
            if f.kind != m.kind {
                refused.push(format!(
                    "{file}: {name} has type {} here but {} in {first}; this file's {name} is \
                     skipped",
                    kind_name(f.kind),
                    kind_name(m.kind)
                ));
                continue;
            }
            if let (Some(new), Some(old)) = (&f.help, &m.help) {
                if new != old {
                    refused.push(format!(
                        "{file}: {name}'s help {new:?} differs from {old:?} in {first}; this \
                         file's {name} is skipped"
                    ));
                    continue;
                }
            }
            if let Some(dup) = f.metrics.iter().find(|s| m.series.contains(&s.labels)) {
                refused.push(format!(
                    "{file}:{}: {name}{} was already read from {}; this file's {name} is skipped",
                    dup.line,
                    show(&dup.labels),
                    m.files.join(", ")
                ));
                continue;
            }
            if m.help.is_none() {
                m.help = f.help;
            }
            m.files.push(file.to_string());
            m.series.extend(f.metrics.iter().map(|s| s.labels.clone()));
            m.metrics.extend(f.metrics);
        }
        refused
    }

    /// The families sorted by name, their series by labels, as samples.
    fn finish(self) -> Vec<TextFamily> {
        let mut out: Vec<TextFamily> = self
            .families
            .into_iter()
            .map(|(name, mut m)| {
                m.metrics.sort_by(|a, b| a.labels.cmp(&b.labels));
                let help = m
                    .help
                    .unwrap_or_else(|| format!("Metric read from {}", m.files.join(", ")));
                let mut samples = Vec::with_capacity(m.metrics.len());
                for metric in m.metrics {
                    push_samples(&mut samples, metric);
                }
                TextFamily {
                    name,
                    help,
                    kind: m.kind,
                    files: m.files,
                    samples,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// A series' samples as client_golang writes them: a summary's quantiles in order, then `_sum`
/// and `_count`; a histogram's buckets in order, with `+Inf` (the count) when the file has none,
/// then `_sum` and `_count`. An absent sum or count is 0.
fn push_samples(out: &mut Vec<TextSample>, metric: Metric) {
    let with = |labels: &[(String, String)], extra: Option<(&str, f64)>| {
        let mut l = labels.to_vec();
        if let Some((k, v)) = extra {
            l.push((k.to_string(), go_float(v)));
        }
        l
    };
    let (sum, count) = match metric.value {
        Value::Single(v) => {
            out.push(TextSample {
                suffix: "",
                labels: metric.labels,
                value: v,
            });
            return;
        }
        Value::Summary {
            mut quantiles,
            sum,
            count,
        } => {
            quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (q, v) in quantiles {
                out.push(TextSample {
                    suffix: "",
                    labels: with(&metric.labels, Some(("quantile", q))),
                    value: v,
                });
            }
            (sum, count)
        }
        Value::Histogram {
            mut buckets,
            sum,
            count,
        } => {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !buckets.iter().any(|(le, _)| *le == f64::INFINITY) {
                buckets.push((f64::INFINITY, count.unwrap_or(0.0)));
            }
            for (le, v) in buckets {
                out.push(TextSample {
                    suffix: "_bucket",
                    labels: with(&metric.labels, Some(("le", le))),
                    value: v,
                });
            }
            (sum, count)
        }
    };
    out.push(TextSample {
        suffix: "_sum",
        labels: metric.labels.clone(),
        value: sum.unwrap_or(0.0),
    });
    out.push(TextSample {
        suffix: "_count",
        labels: metric.labels,
        value: count.unwrap_or(0.0),
    });
}

/// A bound as client_golang writes it, Go's `strconv.FormatFloat(v, 'g', -1, 64)`: the
/// shortest digits, in exponent form below 1e-4 and from 1e6 (`1e+06`), so that `le` and
/// `quantile` read as node_exporter's do.
fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests;
