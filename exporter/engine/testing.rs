//! `lookout test-rules FILE...`: rule unit tests in a promtool-like format, run through the
//! real engine with explicit time.
//!
//! ```yaml
//! rule_files: [../containers.yml]      # relative to this file; globs allowed
//! evaluation_interval: 30s             # default 1m; sample k of a series is at k × interval
//! tests:
//!   - name: high CPU fires after 2 minutes
//!     targets:
//!       - scope: container             # container | host | filesystem | gpu
//!         name: web                    # container name, mountpoint, GPU UUID or hostname
//!         labels: {com.docker.compose.project: shop}   # Docker labels (container scope)
//!         values: {state: running}     # constant variables
//!         series:                      # variables over time, one sample per interval
//!           cpu_percent: "50 90x6 60"  # promtool notation: `a+bxN` is a, a+b, … a+N·b;
//!                                      # `axN` is a repeated N+1 times; `_` is no reading
//!         until: 10m                   # optional: the target is gone from then on
//!     alerts:                          # what the engine holds at these times
//!       - at: 1m
//!         pending:
//!           - alertname: ContainerHighCpu
//!             labels: {name: web}      # must be among the alert's labels
//!             annotations: {summary: "web uses 90.0% CPU"}   # optional, checked when given
//!       - at: 3m
//!         firing: [{alertname: ContainerHighCpu}]
//!         pending: []                  # an empty list: none may be pending
//! ```
//!
//! A `firing` or `pending` key that is left out is not checked. Every alert in a checked state
//! must be listed (and every listed one must exist). Variables neither in `values` nor in
//! `series` have no reading, except a target's identity (a container's `name` and `id` default
//! to its `name`; a filesystem's `mountpoint` and a GPU's `uuid` too). Text and boolean series
//! take words: `"running runningx3 exited"`, `"false true"`. Beyond its last sample a series has
//! no reading. Alerts carry the labels a real target's series carry: a container's `id` is its
//! cgroup path (`/docker/<id>`), and every Docker label given becomes a
//! `container_label_<name>` alert label; a GPU's labels are DCGM's, with `Hostname` `localhost`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use evalexpr::Value;
use serde::Deserialize;

use super::rule::{self, Source};
use super::vars::{Kind, Scope, Target};
use super::{Alert, Engine};
use crate::config::parse_duration;
use crate::snapshot::labels;
use crate::yamlloc::{self, Locations};

/// The host name of the engine tests run on (the host target's `instance`, DCGM's `Hostname`).
const HOSTNAME: &str = "localhost";

/// Why test files could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("no test files given")]
    NoFiles,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    rule_files: Vec<String>,
    evaluation_interval: Option<String>,
    tests: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    #[serde(default)]
    targets: Vec<TestTarget>,
    #[serde(default)]
    alerts: Vec<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestTarget {
    scope: String,
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    values: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    series: BTreeMap<String, String>,
    until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    at: String,
    firing: Option<Vec<ExpAlert>>,
    pending: Option<Vec<ExpAlert>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    alertname: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// One test's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub name: String,
    /// Empty when it passed; else a readable diff per mismatch.
    pub failures: Vec<String>,
}

/// One file's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    pub path: String,
    /// Problems that kept the file from running (each `FILE:LINE:COL: message`).
    pub errors: Vec<String>,
    pub cases: Vec<CaseResult>,
}

/// Every file's outcome; printed as the command's output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub files: Vec<FileReport>,
}

impl Report {
    /// Whether every test of every file passed (and every file could run).
    pub fn passed(&self) -> bool {
        self.files
            .iter()
            .all(|f| f.errors.is_empty() && f.cases.iter().all(|c| c.failures.is_empty()))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut total, mut failed) = (0, 0);
        for file in &self.files {
            writeln!(f, "{}", file.path)?;
            for e in &file.errors {
                writeln!(f, "  ERROR {e}")?;
            }
            for c in &file.cases {
                total += 1;
                if c.failures.is_empty() {
                    writeln!(f, "  ok    {}", c.name)?;
                } else {
                    failed += 1;
                    writeln!(f, "  FAIL  {}", c.name)?;
                    for line in c.failures.iter().flat_map(|x| x.lines()) {
                        writeln!(f, "        {line}")?;
                    }
                }
            }
        }
        let errors: usize = self.files.iter().map(|f| f.errors.len()).sum();
        write!(f, "{total} tests, {failed} failed")?;
        if errors > 0 {
            write!(f, ", {errors} errors")?;
        }
        writeln!(f)
    }
}

/// Run the tests in these files.
pub fn run_test_files(paths: &[PathBuf]) -> Result<Report, TestError> {
    if paths.is_empty() {
        return Err(TestError::NoFiles);
    }
    Ok(Report {
        files: paths.iter().map(|p| run_file(p)).collect(),
    })
}

fn run_file(path: &Path) -> FileReport {
    let name = path.display().to_string();
    let mut report = FileReport {
        path: name.clone(),
        errors: Vec::new(),
        cases: Vec::new(),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(format!("{name}: cannot read: {e}"));
            return report;
        }
    };
    let locs = Locations::index(&text);
    let file: TestFile = match serde_yaml::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            report
                .errors
                .push(yamlloc::from_serde(&name, &e, &locs, "").to_string());
            return report;
        }
    };
    let at = |p: &str, m: String| format!("{name}:{}: {p}: {m}", locs.value(p));
    let interval = match file.evaluation_interval.as_deref().map(parse_duration) {
        None => 60.0,
        Some(Ok(d)) if d.as_secs_f64() > 0.0 => d.as_secs_f64(),
        Some(Ok(_)) => {
            report
                .errors
                .push(at("evaluation_interval", "must be more than 0s".into()));
            return report;
        }
        Some(Err(e)) => {
            report.errors.push(at("evaluation_interval", e));
            return report;
        }
    };
    // The rule files, relative to this file.
    let base = path.parent().unwrap_or(Path::new("."));
    let mut sources = Vec::new();
    for (i, g) in file.rule_files.iter().enumerate() {
        let p = format!("rule_files[{i}]");
        match rule::expand(base, g) {
            Ok((found, unreadable)) if found.is_empty() => {
                let mut m = format!("{g:?} matches no file");
                for u in unreadable {
                    m.push_str(&format!("; {u}"));
                }
                report.errors.push(at(&p, m))
            }
            Ok((found, _)) => {
                for f in found {
                    match std::fs::read_to_string(&f) {
                        Ok(text) => sources.push(Source {
                            name: f.display().to_string(),
                            text,
                        }),
                        Err(e) => report
                            .errors
                            .push(at(&p, format!("cannot read {}: {e}", f.display()))),
                    }
                }
            }
            Err(e) => report.errors.push(at(&p, e)),
        }
    }
    let loaded = match rule::load(&sources) {
        Ok(l) => l,
        Err(e) => {
            report.errors.extend(e.errors.iter().map(|x| x.to_string()));
            return report;
        }
    };
    if !report.errors.is_empty() {
        return report;
    }
    for (i, case) in file.tests.iter().enumerate() {
        let base = format!("tests[{i}]");
        match prepare(case, &base) {
            Ok(targets) => {
                let engine = Engine::new(
                    loaded.rules.clone(),
                    HOSTNAME,
                    crate::state_dir::StateDir::none(),
                );
                report.cases.push(CaseResult {
                    name: case.name.clone(),
                    failures: run_case(engine, &targets, case, interval),
                });
            }
            Err(errs) => report.errors.extend(errs.into_iter().map(|(p, m)| {
                // An unknown name is pointed at by its key, anything else by its value.
                if m.starts_with("unknown variable") {
                    format!("{name}:{}: {p}: {m}", locs.key(&p))
                } else {
                    at(&p, m)
                }
            })),
        }
    }
    report
}

/// A test target over time.
struct Timed {
    scope: Scope,
    key: String,
    name: String,
    labels: Vec<(String, String)>,
    selectors: BTreeMap<String, String>,
    /// Per slot: a constant, or one value per sample.
    slots: Vec<Slot>,
    until: Option<f64>,
}

enum Slot {
    Const(Value),
    Series(Vec<Value>),
}

impl Timed {
    fn at(&self, k: usize, t: f64) -> Option<Target> {
        if self.until.is_some_and(|u| t >= u) {
            return None;
        }
        Some(Target {
            scope: self.scope,
            key: self.key.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            selectors: self.selectors.clone(),
            values: self
                .slots
                .iter()
                .map(|s| match s {
                    Slot::Const(v) => v.clone(),
                    Slot::Series(v) => v.get(k).cloned().unwrap_or(Value::Empty),
                })
                .collect(),
        })
    }
}

type Problems = Vec<(String, String)>;

fn prepare(case: &TestCase, base: &str) -> Result<Vec<Timed>, Problems> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (j, t) in case.targets.iter().enumerate() {
        let p = format!("{base}.targets[{j}]");
        let Some(scope) = Scope::parse(&t.scope) else {
            problems.push((
                format!("{p}.scope"),
                format!(
                    "unknown scope {:?}; expected container, host, filesystem or gpu",
                    t.scope
                ),
            ));
            continue;
        };
        let names = scope.names().names;
        let mut slots: Vec<Slot> = names.iter().map(|_| Slot::Const(Value::Empty)).collect();
        let name = t.name.clone().unwrap_or_else(|| match scope {
            Scope::Host => HOSTNAME.into(),
            _ => format!("{}-{j}", scope.as_str()),
        });
        // Identity defaults.
        let defaults: &[&str] = match scope {
            Scope::Container => &["name", "id"],
            Scope::Filesystem => &["mountpoint"],
            Scope::Gpu => &["uuid"],
            Scope::Host => &[],
        };
        for d in defaults {
            if let Some(i) = names.iter().position(|n| n == d) {
                slots[i] = Slot::Const(Value::String(name.clone()));
            }
        }
        for (var, v) in &t.values {
            let vp = format!("{p}.values.{var}");
            let Some(i) = names.iter().position(|n| n == var) else {
                problems.push((vp, unknown_var(var, scope)));
                continue;
            };
            match constant(v, scope.kind(i).unwrap_or(Kind::Number)) {
                Ok(v) => slots[i] = Slot::Const(v),
                Err(m) => problems.push((vp, m)),
            }
        }
        for (var, s) in &t.series {
            let sp = format!("{p}.series.{var}");
            let Some(i) = names.iter().position(|n| n == var) else {
                problems.push((sp, unknown_var(var, scope)));
                continue;
            };
            match series(s, scope.kind(i).unwrap_or(Kind::Number)) {
                Ok(v) => slots[i] = Slot::Series(v),
                Err(m) => problems.push((sp, m)),
            }
        }
        let until = match t.until.as_deref().map(parse_duration) {
            None => None,
            Some(Ok(d)) => Some(d.as_secs_f64()),
            Some(Err(e)) => {
                problems.push((format!("{p}.until"), e));
                None
            }
        };
        let text_of = |var: &str| -> String {
            names
                .iter()
                .position(|n| *n == var)
                .and_then(|i| match &slots[i] {
                    Slot::Const(Value::Empty) => None,
                    Slot::Const(v) => Some(super::template::plain(v)),
                    Slot::Series(s) => s.first().map(super::template::plain),
                })
                .unwrap_or_default()
        };
        // The same identity labels the engine gives real targets (snapshot::labels).
        let mut labels: Vec<(String, String)> = match scope {
            Scope::Container => {
                let c = crate::snapshot::Container {
                    info: crate::snapshot::ContainerInfo {
                        id: text_of("id"),
                        image: text_of("image"),
                        name: text_of("name"),
                        labels: t.labels.clone(),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let keys: Vec<String> = t.labels.keys().cloned().collect();
                let allow = crate::snapshot::LabelAllowlist::keys_only(&keys);
                labels::owned(|f| c.identity_labels(&allow, f))
            }
            Scope::Host => vec![("instance".into(), name.clone())],
            Scope::Filesystem => {
                let f = crate::snapshot::Filesystem {
                    device: text_of("device"),
                    fstype: text_of("fstype"),
                    mountpoint: text_of("mountpoint"),
                    ..Default::default()
                };
                labels::owned(|v| f.identity_labels(v))
            }
            Scope::Gpu => {
                let g = crate::snapshot::Gpu {
                    index: text_of("index").parse().unwrap_or(0),
                    uuid: text_of("uuid"),
                    name: text_of("name"),
                    ..Default::default()
                };
                labels::owned(|v| g.identity_labels(HOSTNAME, v))
            }
        };
        labels.sort();
        let selectors = match scope {
            Scope::Container => t.labels.clone(),
            _ => labels.iter().cloned().collect(),
        };
        out.push(Timed {
            scope,
            key: format!("{}/{}", scope.as_str(), name),
            name,
            labels,
            selectors,
            slots,
            until,
        });
    }
    for (k, e) in case.alerts.iter().enumerate() {
        if let Err(m) = parse_duration(&e.at) {
            problems.push((format!("{base}.alerts[{k}].at"), m));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn unknown_var(var: &str, scope: Scope) -> String {
    format!(
        "unknown variable `{var}`; {} targets have: {}",
        scope.as_str(),
        scope.names().names.join(", ")
    )
}

fn constant(v: &serde_yaml::Value, kind: Kind) -> Result<Value, String> {
    match (kind, v) {
        (_, serde_yaml::Value::Null) => Ok(Value::Empty),
        (Kind::Number, serde_yaml::Value::Number(n)) => n
            .as_f64()
            .map(Value::Float)
            .ok_or_else(|| format!("not a number: {n}")),
        (Kind::Bool, serde_yaml::Value::Bool(b)) => Ok(Value::Boolean(*b)),
        (Kind::Text, serde_yaml::Value::String(s)) => Ok(Value::String(s.clone())),
        (Kind::Text, serde_yaml::Value::Number(n)) => Ok(Value::String(n.to_string())),
        (k, other) => Err(format!(
            "expected a {}, got {other:?}",
            match k {
                Kind::Number => "number",
                Kind::Text => "string",
                Kind::Bool => "boolean",
            }
        )),
    }
}

/// One series, expanded. See the module documentation for the notation.
fn series(s: &str, kind: Kind) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        let (head, times) = split_times(tok);
        match kind {
            Kind::Number => {
                if head == "_" {
                    out.extend(std::iter::repeat_n(Value::Empty, times + 1));
                    continue;
                }
                let (a, step) = split_step(head).ok_or_else(|| bad_token(tok))?;
                if step != 0.0 && times == 0 && !tok.contains('x') {
                    return Err(bad_token(tok));
                }
                for i in 0..=times {
                    out.push(Value::Float(a + step * i as f64));
                }
            }
            Kind::Text | Kind::Bool => {
                let v = match (kind, head) {
                    (_, "_") => Value::Empty,
                    (Kind::Bool, "true") => Value::Boolean(true),
                    (Kind::Bool, "false") => Value::Boolean(false),
                    (Kind::Bool, _) => return Err(bad_token(tok)),
                    (_, w) => Value::String(w.to_string()),
                };
                out.extend(std::iter::repeat_n(v, times + 1));
            }
        }
    }
    if out.is_empty() {
        return Err("empty series".into());
    }
    Ok(out)
}

fn bad_token(tok: &str) -> String {
    format!(
        "cannot read {tok:?} (e.g. `50`, `50x3`, `10+5x4`, `100-10x3`, `_`, `_x2`, `running`, `runningx3`)"
    )
}

/// `headxN` → (head, N); anything else → (tok, 0).
fn split_times(tok: &str) -> (&str, usize) {
    if let Some(i) = tok.rfind('x') {
        let (head, n) = (&tok[..i], &tok[i + 1..]);
        if !head.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(n) = n.parse() {
                return (head, n);
            }
        }
    }
    (tok, 0)
}

/// `a`, `a+b` or `a-b` (a may have a sign and an exponent) → (a, ±b).
fn split_step(s: &str) -> Option<(f64, f64)> {
    if let Ok(a) = s.parse::<f64>() {
        return Some((a, 0.0));
    }
    let bytes = s.as_bytes();
    for i in (1..s.len()).rev() {
        let c = bytes[i];
        if (c == b'+' || c == b'-') && !matches!(bytes[i - 1], b'e' | b'E') {
            let a: f64 = s[..i].parse().ok()?;
            let b: f64 = s[i + 1..].parse().ok()?;
            return Some((a, if c == b'-' { -b } else { b }));
        }
    }
    None
}

fn run_case(mut engine: Engine, targets: &[Timed], case: &TestCase, interval: f64) -> Vec<String> {
    let mut expects: Vec<(f64, &Expect)> = case
        .alerts
        .iter()
        .filter_map(|e| parse_duration(&e.at).ok().map(|d| (d.as_secs_f64(), e)))
        .collect();
    expects.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut failures = Vec::new();
    let mut k = 0usize;
    let mut evaluated_to: Option<f64> = None;
    for (at, exp) in expects {
        // Evaluate every interval up to `at`.
        loop {
            let t = k as f64 * interval;
            if t > at + 1e-9 {
                break;
            }
            let now: Vec<Target> = targets.iter().filter_map(|x| x.at(k, t)).collect();
            engine.evaluate_targets(now, &Scope::ALL, t);
            evaluated_to = Some(t);
            k += 1;
        }
        let view = engine.view();
        let when = crate::config::format_duration(std::time::Duration::from_secs_f64(at));
        if evaluated_to.is_none() {
            failures.push(format!("at {when}: before the first evaluation"));
            continue;
        }
        for (state, want) in [("firing", &exp.firing), ("pending", &exp.pending)] {
            let Some(want) = want else { continue };
            let got: Vec<&Alert> = view.alerts.iter().filter(|a| a.state == state).collect();
            if let Some(diff) = compare(want, &got) {
                failures.push(format!("at {when}, {state}:\n{diff}"));
            }
        }
    }
    failures
}

fn show(name: &str, labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", inner.join(", "))
}

/// None when `got` is exactly what `want` describes; else the diff.
fn compare(want: &[ExpAlert], got: &[&Alert]) -> Option<String> {
    let mut used = vec![false; got.len()];
    let mut lines = Vec::new();
    for w in want {
        let fits = |a: &Alert| {
            a.alertname == w.alertname && w.labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))
        };
        let found = got
            .iter()
            .enumerate()
            .find(|(i, a)| !used[*i] && fits(a))
            .map(|(i, _)| i);
        match found {
            Some(i) => {
                used[i] = true;
                if let Some(ann) = &w.annotations {
                    for (k, v) in ann {
                        let have = got[i].annotations.get(k);
                        if have != Some(v) {
                            lines.push(format!(
                                "  annotation {k} of {}:\n    - want {v:?}\n    + got  {}",
                                show(&w.alertname, &w.labels),
                                have.map(|h| format!("{h:?}")).unwrap_or("nothing".into())
                            ));
                        }
                    }
                }
            }
            None => lines.push(format!("  - missing     {}", show(&w.alertname, &w.labels))),
        }
    }
    for (i, a) in got.iter().enumerate() {
        if !used[i] {
            lines.push(format!("  + unexpected  {}", show(&a.alertname, &a.labels)));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_notation() {
        let n = |s: &str| series(s, Kind::Number);
        let f = |v: &[f64]| v.iter().map(|x| Value::Float(*x)).collect::<Vec<_>>();
        assert_eq!(n("50 90x2"), Ok(f(&[50.0, 90.0, 90.0, 90.0])));
        assert_eq!(n("1+1x3"), Ok(f(&[1.0, 2.0, 3.0, 4.0])));
        assert_eq!(n("100-10x2"), Ok(f(&[100.0, 90.0, 80.0])));
        assert_eq!(
            n("-5 1e3 2.5e-1+1e-1x1"),
            Ok(f(&[-5.0, 1000.0, 0.25, 0.35]))
        );
        assert_eq!(
            n("_ 3 _x1"),
            Ok(vec![
                Value::Empty,
                Value::Float(3.0),
                Value::Empty,
                Value::Empty
            ])
        );
        assert!(n("abc").is_err());
        assert!(n("1+2").is_err());
        assert!(n("").is_err());
        let t = series("running runningx1 exited _", Kind::Text).unwrap();
        assert_eq!(
            t,
            vec![
                Value::String("running".into()),
                Value::String("running".into()),
                Value::String("running".into()),
                Value::String("exited".into()),
                Value::Empty
            ]
        );
        assert_eq!(
            series("falsex1 true", Kind::Bool),
            Ok(vec![
                Value::Boolean(false),
                Value::Boolean(false),
                Value::Boolean(true)
            ])
        );
        assert!(series("yes", Kind::Bool).is_err());
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const RULES: &str = r#"groups:
  - name: g
    rules:
      - alert: HighCpu
        scope: container
        expr: cpu_percent > 80
        for: 1m
        annotations: {summary: "{{ name }} at {{ cpu_percent }}%"}
      - alert: DiskFull
        scope: filesystem
        expr: used_percent > 90
"#;

    #[test]
    fn a_passing_and_a_failing_test() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rules.yml", RULES);
        let tests = write(
            dir.path(),
            "t.yml",
            r#"rule_files: [rules.yml]
evaluation_interval: 30s
tests:
  - name: passes
    targets:
      - scope: container
        name: web
        series: {cpu_percent: "50 90x4"}
      - scope: filesystem
        name: /data
        series: {used_percent: "95x4"}
        until: 1m
    alerts:
      - at: 30s
        pending: [{alertname: HighCpu, labels: {name: web}}]
        firing: [{alertname: DiskFull, labels: {mountpoint: /data}}]
      - at: 1m30s
        firing:
          - alertname: HighCpu
            annotations: {summary: "web at 90%"}
        pending: []
  - name: fails
    targets:
      - scope: container
        name: web
        series: {cpu_percent: "90x4"}
    alerts:
      - at: 0s
        firing: [{alertname: HighCpu}]
      - at: 1m
        firing:
          - alertname: HighCpu
            labels: {name: db}
"#,
        );
        let r = run_test_files(&[tests]).unwrap();
        assert!(!r.passed());
        let f = &r.files[0];
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.cases[0].failures, Vec::<String>::new());
        assert_eq!(
            f.cases[1].failures,
            vec![
                "at 0s, firing:\n  - missing     HighCpu{}".to_string(),
                "at 1m, firing:\n  - missing     HighCpu{name=\"db\"}\n  + unexpected  \
                 HighCpu{id=\"/docker/web\", image=\"\", name=\"web\", severity=\"warning\"}"
                    .to_string(),
            ]
        );
        let text = r.to_string();
        assert!(text.contains("  ok    passes\n"), "{text}");
        assert!(text.contains("  FAIL  fails\n"), "{text}");
        assert!(text.ends_with("2 tests, 1 failed\n"), "{text}");
    }

    #[test]
    fn a_wrong_annotation_is_a_diff() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rules.yml", RULES);
        let tests = write(
            dir.path(),
            "t.yml",
            r#"rule_files: ["rule*.yml"]
tests:
  - name: annotation
    targets:
      - {scope: container, name: web, series: {cpu_percent: "90x3"}}
    alerts:
      - at: 2m
        firing: [{alertname: HighCpu, annotations: {summary: "web at 91%"}}]
"#,
        );
        let r = run_test_files(&[tests]).unwrap();
        assert_eq!(
            r.files[0].cases[0].failures,
            vec!["at 2m, firing:\n  annotation summary of HighCpu{}:\n    - want \"web at 91%\"\n    + got  \"web at 90%\"".to_string()]
        );
    }

    #[test]
    fn bad_files_are_errors_with_locations() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "rules.yml", RULES);
        let bad_rules = write(
            dir.path(),
            "bad_rules.yml",
            "groups:\n  - name: g\n    rules:\n      - {alert: A, scope: host, expr: nope > 1}\n",
        );
        let t1 = write(
            dir.path(),
            "t1.yml",
            "rule_files: [bad_rules.yml]\ntests: []\n",
        );
        let t2 = write(
            dir.path(),
            "t2.yml",
            r#"rule_files: [rules.yml, missing/*.yml]
tests:
  - name: x
    targets:
      - scope: container
        series: {cpu: "1", cpu_percent: "1+"}
        values: {oom_killed: 3}
      - scope: disk
    alerts:
      - at: soon
"#,
        );
        let t3 = write(
            dir.path(),
            "t3.yml",
            "rule_files: [rules.yml]\ntests:\n  - nam: x\n",
        );
        let r = run_test_files(&[
            t1.clone(),
            t2.clone(),
            t3.clone(),
            dir.path().join("none.yml"),
        ])
        .unwrap();
        assert!(!r.passed());
        let errs = |i: usize| r.files[i].errors.join("\n");
        assert!(
            errs(0).starts_with(&format!("{}:4:39: ", bad_rules.display())),
            "{}",
            errs(0)
        );
        let e = errs(1);
        let t2n = t2.display().to_string();
        assert!(
            e.contains(&format!(
                "{t2n}:1:25: rule_files[1]: \"missing/*.yml\" matches no file"
            )),
            "{e}"
        );
        assert!(!r.files[1].errors.is_empty());
        assert!(r.files[0].cases.is_empty());
        assert!(
            errs(2).starts_with(&format!("{}:3:5: ", t3.display())),
            "{}",
            errs(2)
        );
        assert!(errs(3).contains("cannot read"), "{}", errs(3));

        // With the rule files fixed, every problem of the test itself is listed.
        std::fs::write(
            &t2,
            std::fs::read_to_string(&t2)
                .unwrap()
                .replace(", missing/*.yml", ""),
        )
        .unwrap();
        let r = run_test_files(&[t2]).unwrap();
        let e = r.files[0].errors.join("\n");
        for want in [
            ":6:18: tests[0].targets[0].series.cpu: unknown variable `cpu`",
            ":6:41: tests[0].targets[0].series.cpu_percent: cannot read \"1+\"",
            ":7:30: tests[0].targets[0].values.oom_killed: expected a boolean",
            ":8:16: tests[0].targets[1].scope: unknown scope \"disk\"",
            ":10:13: tests[0].alerts[0].at: invalid duration \"soon\"",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
    }

    #[test]
    fn the_default_rules_pass_their_tests() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tests");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{files:?}");
        let r = run_test_files(&files).unwrap();
        assert!(r.passed(), "{r}");
        let cases: usize = r.files.iter().map(|f| f.cases.len()).sum();
        assert!(cases >= 13, "{r}");
    }
}
