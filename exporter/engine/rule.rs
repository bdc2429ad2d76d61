//! Rule files: parsed, validated as a whole (every problem at once, each as
//! `FILE:LINE:COL: message`), then compiled into [`Rule`]s.
//!
//! ```yaml
//! groups:
//!   - name: containers
//!     rules:
//!       - alert: ContainerHighCpu
//!         scope: container            # container | host | filesystem | gpu
//!         match:                      # optional target selectors
//!           name: "web-*"             # glob on container name (or mountpoint, GPU UUID, hostname)
//!           labels: {com.docker.compose.project: shop}
//!         expr: cpu_percent > 80      # evalexpr, over the scope's variables
//!         for: 2m                     # default 0s: fire at once
//!         resolve: cpu_percent < 70   # optional hysteresis; default: expr is false
//!         keep_firing_for: 0s
//!         severity: warning           # info | warning | critical (default warning)
//!         labels: {team: ops}
//!         annotations:
//!           summary: "{{ name }} uses {{ cpu_percent | round(1) }}% CPU"
//!         notify: [ops-discord]       # receiver names
//!         context: {logs: 20}         # container scope: attach its last 20 log lines
//! ```
//!
//! The text is read into a YAML value first and each group and rule is then deserialized on its
//! own (`deny_unknown_fields`), so one bad rule does not hide the problems of the others.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value as Yaml;

use super::expr::{Compiled, ExprError};
use super::state::Timing;
use super::template::Template;
use super::vars::{Scope, Target};
use crate::config::{parse_duration, Config};
use crate::yamlloc::{self, join, join_index, Located, Locations, Pos};

/// The default rules, embedded for the no-config default (`rule_files` absent).
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    (
        "<embedded>/rules/containers.yml",
        include_str!("../../rules/containers.yml"),
    ),
    (
        "<embedded>/rules/host.yml",
        include_str!("../../rules/host.yml"),
    ),
    (
        "<embedded>/rules/gpu.yml",
        include_str!("../../rules/gpu.yml"),
    ),
];

/// A rule file's name (for messages) and text.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// Problems found in a rule set: errors, and the warnings found alongside them.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .errors.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct RuleError {
    pub errors: Vec<Located>,
    pub warnings: Vec<Located>,
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which targets a rule applies to.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// The glob as written, and compiled.
    pub name: Option<(String, globset::GlobMatcher)>,
    /// Exact label values (a container's Docker labels; other targets' alert labels).
    pub labels: Vec<(String, String)>,
}

impl Matcher {
    pub fn matches(&self, t: &Target) -> bool {
        if let Some((_, g)) = &self.name {
            if !g.is_match(&t.name) {
                return false;
            }
        }
        self.labels
            .iter()
            .all(|(k, v)| t.selectors.get(k).is_some_and(|x| x == v))
    }

    pub fn is_all(&self) -> bool {
        self.name.is_none() && self.labels.is_empty()
    }

    /// The selector as text (for identities and deduplication).
    pub fn describe(&self) -> String {
        format!(
            "{}|{:?}",
            self.name.as_ref().map(|n| n.0.as_str()).unwrap_or(""),
            self.labels
        )
    }
}

/// A validated, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The file it came from.
    pub file: String,
    pub group: String,
    pub alert: String,
    pub scope: Scope,
    pub matcher: Matcher,
    pub expr: Compiled,
    pub resolve: Option<Compiled>,
    pub timing: Timing,
    pub severity: Severity,
    /// Extra labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Annotation name, source text and compiled template, sorted by name.
    pub annotations: Vec<(String, String, Template)>,
    /// Receiver names.
    pub notify: Vec<String>,
    /// `context: {logs: N}`: how many of the container's last log lines a notification
    /// carries (0: none). Only container rules have it.
    pub context_logs: usize,
    /// `actions:`: what lookout does about the rule's alerts (container rules).
    pub actions: std::sync::Arc<Vec<crate::act::spec::ActionSpec>>,
}

/// The most log lines `context: {logs: N}` may ask for.
pub const CONTEXT_LOGS_MAX: usize = 1000;

impl Rule {
    /// What makes two rules "the same rule" across a reload or a restart: an unchanged rule
    /// keeps the state of its alerts.
    pub fn identity(&self) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.group,
            self.alert,
            self.scope.as_str(),
            self.expr.source,
            self.resolve
                .as_ref()
                .map(|r| r.source.as_str())
                .unwrap_or(""),
            self.matcher.describe()
        )
    }
}

/// A loaded rule set and the warnings about it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub rules: Vec<Rule>,
    pub warnings: Vec<Located>,
    /// The files it came from.
    pub files: Vec<String>,
}

impl Loaded {
    /// The receiver names the rules' `notify` use, sorted.
    pub fn receivers(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .rules
            .iter()
            .flat_map(|r| r.notify.iter().map(String::as_str))
            .collect();
        set.into_iter().map(str::to_string).collect()
    }
}

/// Load and validate a set of rule files; all or nothing.
pub fn load(sources: &[Source]) -> Result<Loaded, RuleError> {
    let mut v = Validator::default();
    for s in sources {
        v.file(&s.name, &s.text);
    }
    if v.errors.is_empty() {
        Ok(Loaded {
            rules: v.rules,
            warnings: v.warnings,
            files: sources.iter().map(|s| s.name.clone()).collect(),
        })
    } else {
        Err(RuleError {
            errors: v.errors,
            warnings: v.warnings,
        })
    }
}

/// The embedded default rule files.
pub fn default_sources() -> Vec<Source> {
    DEFAULT_RULES
        .iter()
        .map(|(n, t)| Source {
            name: n.to_string(),
            text: t.to_string(),
        })
        .collect()
}

/// The rule files a config names: `rule_files` globs relative to the config file (the current
/// directory without one); absent, the embedded defaults; `[]`, none. A glob that matches
/// nothing is a warning; a file that cannot be read, an error located at its `rule_files` entry.
pub fn sources(config: &Config) -> Result<(Vec<Source>, Vec<Located>), RuleError> {
    let Some(globs) = &config.rule_files else {
        return Ok((default_sources(), Vec::new()));
    };
    let cfg_name = config
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<config>".into());
    let locs = config
        .source
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| Locations::index(&t))
        .unwrap_or_default();
    let base = config
        .source
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, g) in globs.iter().enumerate() {
        let at = |message: String| Located {
            file: cfg_name.clone(),
            pos: locs.value(&format!("rule_files[{i}]")),
            message,
        };
        let files = match expand(&base, g) {
            Ok((files, unreadable)) => {
                for u in unreadable {
                    warnings.push(at(format!("rule_files[{i}]: {u}")));
                }
                files
            }
            Err(e) => {
                errors.push(at(format!("rule_files[{i}]: {e}")));
                continue;
            }
        };
        if files.is_empty() {
            warnings.push(at(format!(
                "rule_files[{i}]: {g:?} matches no file (looked in {})",
                base.display()
            )));
        }
        for f in files {
            if !seen.insert(f.clone()) {
                continue;
            }
            match std::fs::read_to_string(&f) {
                Ok(text) => out.push(Source {
                    name: f.display().to_string(),
                    text,
                }),
                Err(e) => errors.push(at(format!(
                    "rule_files[{i}]: cannot read {}: {e}",
                    f.display()
                ))),
            }
        }
    }
    if errors.is_empty() {
        Ok((out, warnings))
    } else {
        Err(RuleError { errors, warnings })
    }
}

/// Load the rules a config names (see [`sources`] and [`load`]).
pub fn load_for(config: &Config) -> Result<Loaded, RuleError> {
    let (srcs, mut warnings) = sources(config)?;
    match load(&srcs) {
        Ok(mut l) => {
            warnings.append(&mut l.warnings);
            l.warnings = warnings;
            Ok(l)
        }
        Err(mut e) => {
            warnings.append(&mut e.warnings);
            e.warnings = warnings;
            Err(e)
        }
    }
}

/// Whether `s` has a character the `glob` crate treats specially.
fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files `glob` matches, relative to `base` unless absolute, sorted; and the directories
/// that could not be read on the way (warnings: the glob may match nothing because of them).
///
/// A glob without glob characters is the path itself, so that a missing file is an error when
/// it is read, not "matches nothing". The `glob` crate walks only the directories the pattern
/// names: `*` and `?` never match `/`, so `/*.yml` lists `/` and nothing below it, and only
/// `**` descends.
pub(crate) fn expand(base: &Path, glob: &str) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    if !has_glob_meta(glob) {
        return Ok((vec![base.join(glob)], Vec::new()));
    }
    crate::config::check_path_glob(glob).map_err(|e| format!("invalid glob {glob:?}: {e}"))?;
    let pattern = if Path::new(glob).is_absolute() || base.as_os_str().is_empty() {
        glob.to_string()
    } else {
        // The base directory is a literal path: brackets or stars in it match only themselves.
        let base = ::glob::Pattern::escape(&base.to_string_lossy());
        format!("{}/{glob}", base.trim_end_matches('/'))
    };
    let options = ::glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    let paths = ::glob::glob_with(&pattern, options)
        .map_err(|e| format!("invalid glob {pattern:?}: {}", e.msg))?;
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for p in paths {
        match p {
            Ok(p) if p.is_dir() => {}
            Ok(p) => files.push(p),
            Err(e) => unreadable.push(format!("cannot read {}: {}", e.path().display(), e.error())),
        }
    }
    files.sort();
    files.dedup();
    Ok((files, unreadable))
}

/// A rule as written; each field is type-checked on its own first for precise locations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    alert: String,
    scope: String,
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    resolve: Option<String>,
    keep_firing_for: Option<String>,
    severity: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    notify: Option<Vec<String>>,
    context: Option<RawContext>,
    /// Checked entry by entry by `crate::act::spec::parse`.
    actions: Option<Vec<serde_yaml::Value>>,
}

/// `context:` what a notification carries besides the alert.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    logs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

const RULE_FIELDS: &[&str] = &[
    "alert",
    "scope",
    "match",
    "expr",
    "for",
    "resolve",
    "keep_firing_for",
    "severity",
    "labels",
    "annotations",
    "notify",
    "context",
    "actions",
];

#[derive(Default)]
struct Validator {
    rules: Vec<Rule>,
    errors: Vec<Located>,
    warnings: Vec<Located>,
    file: String,
    locs: Locations,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `unknown field `x`, expected ...` → `x`.
fn unknown_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
}

impl Validator {
    fn err(&mut self, pos: Pos, message: String) {
        self.errors.push(Located {
            file: self.file.clone(),
            pos,
            message,
        });
    }

    fn at(&mut self, path: &str, message: String) {
        let pos = self.locs.value(path);
        self.err(pos, message);
    }

    fn at_key(&mut self, path: &str, message: String) {
        let pos = self.locs.key(path);
        self.err(pos, message);
    }

    /// A serde error about the value at `path`; unknown fields point at their key.
    fn serde_err(&mut self, path: &str, e: &serde_yaml::Error) {
        let msg = yamlloc::strip_serde_location(&e.to_string());
        match unknown_field(&msg) {
            Some(f) => {
                let p = join(path, f);
                self.at_key(&p, format!("{p}: {msg}"))
            }
            None => self.at(path, format!("{path}: {msg}")),
        }
    }

    fn file(&mut self, name: &str, text: &str) {
        self.file = name.to_string();
        self.locs = Locations::index(text);
        let root: Yaml = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let l = yamlloc::from_serde(name, &e, &self.locs, "");
                self.errors.push(l);
                return;
            }
        };
        let root = match root {
            Yaml::Null => return,
            Yaml::Mapping(m) => m,
            _ => {
                self.at("", "expected a mapping with a `groups:` list".into());
                return;
            }
        };
        let mut groups = None;
        for (k, v) in &root {
            match k.as_str() {
                Some("groups") => groups = Some(v),
                Some(other) => {
                    self.at_key(other, format!("unknown field `{other}`, expected `groups`"))
                }
                None => self.at("", "keys must be strings".into()),
            }
        }
        let groups = match groups {
            None | Some(Yaml::Null) => return,
            Some(Yaml::Sequence(s)) => s,
            Some(_) => {
                self.at("groups", "groups: expected a list of groups".into());
                return;
            }
        };
        let mut names = BTreeSet::new();
        for (i, g) in groups.iter().enumerate() {
            self.group(&join_index("groups", i), g, &mut names);
        }
    }

    fn group(&mut self, base: &str, g: &Yaml, names: &mut BTreeSet<String>) {
        let Some(map) = g.as_mapping() else {
            self.at(
                base,
                format!("{base}: expected a group (a mapping with name and rules)"),
            );
            return;
        };
        let mut name = None;
        let mut rules = None;
        for (k, v) in map {
            match k.as_str() {
                Some("name") => match v.as_str() {
                    Some(n) if !n.is_empty() => name = Some(n.to_string()),
                    _ => self.at(
                        &join(base, "name"),
                        format!("{base}.name: expected a non-empty string"),
                    ),
                },
                Some("rules") => rules = Some(v),
                Some(other) => {
                    let p = join(base, other);
                    self.at_key(
                        &p,
                        format!("{p}: unknown field `{other}`, expected `name` or `rules`"),
                    )
                }
                None => self.at(base, format!("{base}: keys must be strings")),
            }
        }
        let group = match name {
            Some(n) => {
                if !names.insert(n.clone()) {
                    self.at(
                        &join(base, "name"),
                        format!("{base}.name: duplicate group name {n:?} in this file"),
                    );
                }
                n
            }
            None => {
                if !map.contains_key("name") {
                    self.at(base, format!("{base}: missing field `name`"));
                }
                String::new()
            }
        };
        let rules = match rules {
            None | Some(Yaml::Null) => return,
            Some(Yaml::Sequence(s)) => s,
            Some(_) => {
                let p = join(base, "rules");
                self.at(&p, format!("{p}: expected a list of rules"));
                return;
            }
        };
        let mut alerts: BTreeMap<String, ()> = BTreeMap::new();
        for (j, r) in rules.iter().enumerate() {
            let rbase = join_index(&join(base, "rules"), j);
            let Some(raw) = self.raw_rule(&rbase, r) else {
                continue;
            };
            if alerts.insert(raw.alert.clone(), ()).is_some() {
                self.at(
                    &join(&rbase, "alert"),
                    format!(
                        "{rbase}.alert: duplicate alert name {:?} in group {group:?}",
                        raw.alert
                    ),
                );
            }
            if let Some(rule) = self.rule(&rbase, &group, raw) {
                self.rules.push(rule);
            }
        }
    }

    fn raw_rule(&mut self, base: &str, r: &Yaml) -> Option<RawRule> {
        let Some(map) = r.as_mapping() else {
            self.at(
                base,
                format!("{base}: expected a rule (a mapping with alert, scope, expr, ...)"),
            );
            return None;
        };
        let mut ok = true;
        for (k, v) in map {
            let Some(key) = k.as_str() else {
                self.at(base, format!("{base}: keys must be strings"));
                ok = false;
                continue;
            };
            let path = join(base, key);
            let checked = match key {
                "match" => serde_yaml::from_value::<RawMatch>(v.clone()).map(drop),
                "labels" | "annotations" => {
                    serde_yaml::from_value::<BTreeMap<String, String>>(v.clone()).map(drop)
                }
                "notify" => serde_yaml::from_value::<Vec<String>>(v.clone()).map(drop),
                "actions" => serde_yaml::from_value::<Vec<serde_yaml::Value>>(v.clone()).map(drop),
                "context" => {
                    if !self.context(&path, v) {
                        ok = false;
                    }
                    continue;
                }
                k if RULE_FIELDS.contains(&k) => {
                    serde_yaml::from_value::<String>(v.clone()).map(drop)
                }
                _ => {
                    self.at_key(
                        &path,
                        format!(
                            "{path}: unknown field `{key}`, expected one of {}",
                            RULE_FIELDS.join(", ")
                        ),
                    );
                    ok = false;
                    continue;
                }
            };
            if let Err(e) = checked {
                self.serde_err(&path, &e);
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        match serde_yaml::from_value::<RawRule>(r.clone()) {
            Ok(raw) => Some(raw),
            Err(e) => {
                // A missing field: point at the rule's first key (its start).
                let first = map
                    .keys()
                    .next()
                    .and_then(|k| k.as_str())
                    .map(|k| join(base, k))
                    .unwrap_or_else(|| base.to_string());
                let msg = yamlloc::strip_serde_location(&e.to_string());
                self.at_key(&first, format!("{base}: {msg}"));
                None
            }
        }
    }

    /// Type-check `context:` key by key, so each problem points at its own key or value.
    fn context(&mut self, path: &str, v: &Yaml) -> bool {
        let map = match v {
            Yaml::Null => return true,
            Yaml::Mapping(m) => m,
            _ => {
                self.at(
                    path,
                    format!("{path}: expected a mapping such as {{logs: 20}}"),
                );
                return false;
            }
        };
        let mut ok = true;
        for (k, v) in map {
            match k.as_str() {
                Some("logs") => {
                    let lp = join(path, "logs");
                    if let Err(e) = serde_yaml::from_value::<u64>(v.clone()) {
                        let msg = yamlloc::strip_serde_location(&e.to_string());
                        self.at(
                            &lp,
                            format!(
                                "{lp}: expected a number of lines, 0 to {CONTEXT_LOGS_MAX} ({msg})"
                            ),
                        );
                        ok = false;
                    }
                }
                Some(other) => {
                    let kp = join(path, other);
                    self.at_key(
                        &kp,
                        format!("{kp}: unknown field `{other}`, expected `logs`"),
                    );
                    ok = false;
                }
                None => {
                    self.at(path, format!("{path}: keys must be strings"));
                    ok = false;
                }
            }
        }
        ok
    }

    fn duration(&mut self, path: &str, s: Option<&str>) -> f64 {
        match s.map(parse_duration) {
            None => 0.0,
            Some(Ok(d)) => d.as_secs_f64(),
            Some(Err(e)) => {
                self.at(path, format!("{path}: {e}"));
                0.0
            }
        }
    }

    fn expr(&mut self, path: &str, src: &str, scope: Scope) -> Option<Compiled> {
        let res = Compiled::new(src, scope.names()).and_then(|c| {
            c.dry_run(&scope.sample())?;
            Ok(c)
        });
        match res {
            Ok(c) => Some(c),
            Err(e) => {
                let what = match e {
                    ExprError::Eval(m) => format!("fails on sample values: {m}"),
                    e => e.to_string(),
                };
                self.at(path, format!("{path}: {what}"));
                None
            }
        }
    }

    fn rule(&mut self, base: &str, group: &str, raw: RawRule) -> Option<Rule> {
        let before = self.errors.len();
        let p = |f: &str| join(base, f);
        if !valid_name(&raw.alert) {
            self.at(
                &p("alert"),
                format!(
                    "{}: alert names are like metric names ([a-zA-Z_][a-zA-Z0-9_]*); got {:?}",
                    p("alert"),
                    raw.alert
                ),
            );
        }
        let scope = Scope::parse(&raw.scope);
        if scope.is_none() {
            self.at(
                &p("scope"),
                format!(
                    "{}: unknown scope {:?}; expected container, host, filesystem or gpu",
                    p("scope"),
                    raw.scope
                ),
            );
        }
        let timing = Timing {
            for_secs: self.duration(&p("for"), raw.for_.as_deref()),
            keep_firing_for: self.duration(&p("keep_firing_for"), raw.keep_firing_for.as_deref()),
        };
        let severity = match raw.severity.as_deref() {
            None | Some("warning") => Severity::Warning,
            Some("info") => Severity::Info,
            Some("critical") => Severity::Critical,
            Some(other) => {
                self.at(
                    &p("severity"),
                    format!(
                        "{}: expected info, warning or critical; got {other:?}",
                        p("severity")
                    ),
                );
                Severity::Warning
            }
        };
        let mut matcher = Matcher::default();
        if let Some(m) = raw.matcher {
            if let Some(name) = m.name {
                match globset::Glob::new(&name) {
                    Ok(g) => matcher.name = Some((name, g.compile_matcher())),
                    Err(e) => self.at(
                        &p("match.name"),
                        format!("{}: invalid glob {name:?}: {}", p("match.name"), e.kind()),
                    ),
                }
            }
            matcher.labels = m.labels.unwrap_or_default().into_iter().collect();
        }
        let mut labels = Vec::new();
        for (k, v) in raw.labels.unwrap_or_default() {
            let lp = join(&p("labels"), &k);
            if !valid_name(&k) {
                self.at_key(
                    &lp,
                    format!("{lp}: label names are [a-zA-Z_][a-zA-Z0-9_]*; got {k:?}"),
                );
            } else if matches!(k.as_str(), "alertname" | "alertstate" | "severity") {
                self.at_key(
                    &lp,
                    format!("{lp}: `{k}` is set by lookout (use the rule's `alert` or `severity`)"),
                );
            } else {
                labels.push((k, v));
            }
        }
        let notify = raw.notify.unwrap_or_default();
        for (i, n) in notify.iter().enumerate() {
            if n.trim().is_empty() {
                let np = join_index(&p("notify"), i);
                self.at(&np, format!("{np}: empty receiver name"));
            }
        }
        let scope = scope?;
        let expr = self.expr(&p("expr"), &raw.expr, scope);
        let resolve = match &raw.resolve {
            Some(r) => self.expr(&p("resolve"), r, scope),
            None => None,
        };
        let mut annotations = Vec::new();
        for (k, v) in raw.annotations.unwrap_or_default() {
            match Template::new(&v, scope.names()) {
                Ok(t) => annotations.push((k, v, t)),
                Err(e) => {
                    let ap = join(&p("annotations"), &k);
                    self.at(&ap, format!("{ap}: {e}"));
                }
            }
        }
        let mut context_logs = 0;
        if let Some(n) = raw.context.and_then(|c| c.logs) {
            let lp = p("context.logs");
            if scope != Scope::Container {
                self.at(
                    &lp,
                    format!(
                        "{lp}: log lines exist only for containers; this rule's scope is {}",
                        scope.as_str()
                    ),
                );
            } else if n > CONTEXT_LOGS_MAX as u64 {
                self.at(
                    &lp,
                    format!("{lp}: at most {CONTEXT_LOGS_MAX} log lines; got {n}"),
                );
            } else {
                context_logs = n as usize;
            }
        }
        let mut actions = Vec::new();
        for (i, a) in raw.actions.unwrap_or_default().iter().enumerate() {
            let ap = join_index(&p("actions"), i);
            match crate::act::spec::parse(a) {
                Ok(spec) => {
                    if scope != Scope::Container
                        && !matches!(spec, crate::act::spec::ActionSpec::Webhook(_))
                    {
                        self.at(
                            &ap,
                            format!(
                                "{ap}: {} acts on containers; this rule's scope is {}",
                                spec.name(),
                                scope.as_str()
                            ),
                        );
                    } else {
                        actions.push(spec);
                    }
                }
                Err(problems) => {
                    for (sub, msg) in problems {
                        let path = if sub.is_empty() {
                            ap.clone()
                        } else {
                            format!("{ap}.{sub}")
                        };
                        let pos = self.locs.value(&path);
                        let fallback = self.locs.value(&ap);
                        let pos = if pos.line == 0 { fallback } else { pos };
                        self.errors.push(Located {
                            file: self.file.clone(),
                            pos,
                            message: format!("{path}: {msg}"),
                        });
                    }
                }
            }
        }
        if self.errors.len() != before {
            return None;
        }
        Some(Rule {
            actions: std::sync::Arc::new(actions),
            file: self.file.clone(),
            group: group.to_string(),
            alert: raw.alert,
            scope,
            matcher,
            expr: expr?,
            resolve: if raw.resolve.is_some() {
                Some(resolve?)
            } else {
                None
            },
            timing,
            severity,
            labels,
            annotations,
            notify,
            context_logs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_one(text: &str) -> Result<Loaded, RuleError> {
        load(&[Source {
            name: "r.yml".into(),
            text: text.into(),
        }])
    }

    fn errors(text: &str) -> Vec<String> {
        load_one(text)
            .expect_err("should not load")
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const GOOD: &str = r#"groups:
  - name: containers
    rules:
      - alert: ContainerHighCpu
        scope: container
        match:
          name: "web-*"
          labels: {com.docker.compose.project: shop}
        expr: cpu_percent > 80
        for: 2m
        resolve: cpu_percent < 70
        keep_firing_for: 30s
        severity: critical
        labels: {team: ops}
        annotations:
          summary: "{{ name }} uses {{ cpu_percent | round(1) }}% CPU"
        notify: [ops-discord, mail]
        context: {logs: 20}
      - alert: DiskFull
        scope: filesystem
        expr: used_percent > 80
"#;

    #[test]
    fn loads_the_issue_example() {
        let l = load_one(GOOD).unwrap();
        assert_eq!(l.rules.len(), 2);
        let r = &l.rules[0];
        assert_eq!(r.group, "containers");
        assert_eq!(r.alert, "ContainerHighCpu");
        assert_eq!(r.scope, Scope::Container);
        assert_eq!(r.timing.for_secs, 120.0);
        assert_eq!(r.timing.keep_firing_for, 30.0);
        assert_eq!(r.severity, Severity::Critical);
        assert_eq!(r.labels, vec![("team".to_string(), "ops".to_string())]);
        assert_eq!(r.notify, vec!["ops-discord", "mail"]);
        assert!(r.resolve.is_some());
        assert_eq!(r.matcher.labels.len(), 1);
        assert_eq!(l.rules[1].severity, Severity::Warning);
        assert_eq!(l.rules[1].timing.for_secs, 0.0);
        assert_eq!(r.context_logs, 20);
        assert_eq!(l.rules[1].context_logs, 0);
        // Receiver names are the receivers' config's business, not the rules' loader's.
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.receivers(), vec!["mail", "ops-discord"]);
    }

    #[test]
    fn context_logs_is_for_containers_and_bounded() {
        let rule = |scope: &str, expr: &str, context: &str| {
            format!(
                "groups:\n  - name: g\n    rules:\n      - alert: A\n        scope: {scope}\n        \
                 expr: {expr}\n        context: {context}\n"
            )
        };
        let l = load_one(&rule("container", "restart_count > 1", "{logs: 1000}")).unwrap();
        assert_eq!(l.rules[0].context_logs, 1000);
        let l = load_one(&rule("container", "restart_count > 1", "{}")).unwrap();
        assert_eq!(l.rules[0].context_logs, 0);
        let cases = [
            (
                rule("host", "load1 > 1", "{logs: 20}"),
                "r.yml:7:25: groups[0].rules[0].context.logs: log lines exist only for \
                 containers; this rule's scope is host",
            ),
            (
                rule("container", "restart_count > 1", "{logs: 1001}"),
                "r.yml:7:25: groups[0].rules[0].context.logs: at most 1000 log lines; got 1001",
            ),
            (
                rule("container", "restart_count > 1", "{logs: -1}"),
                "r.yml:7:25: groups[0].rules[0].context.logs: expected a number of lines, 0 to 1000",
            ),
            (
                rule("container", "restart_count > 1", "{logs: twenty}"),
                "r.yml:7:25: groups[0].rules[0].context.logs: expected a number of lines",
            ),
            (
                rule("container", "restart_count > 1", "{logs: 5, env: true}"),
                "r.yml:7:28: groups[0].rules[0].context.env: unknown field `env`, expected `logs`",
            ),
            (
                rule("container", "restart_count > 1", "20"),
                "r.yml:7:18: groups[0].rules[0].context: expected a mapping such as {logs: 20}",
            ),
        ];
        for (text, want) in cases {
            let e = errors(&text);
            assert_eq!(e.len(), 1, "{}", e.join("\n"));
            assert!(e[0].starts_with(want), "{}\nwanted {want}", e[0]);
        }
    }

    #[test]
    fn every_error_at_once_with_locations() {
        let text = r#"groups:
  - name: g
    rules:
      - alert: A
        scope: containr
        expr: cpu_percent > 80
      - alert: B
        scope: container
        expr: cpu_percnt > 80
        for: 2x
      - alert: C
        scope: host
        expr: load1 > 1
        resolve: load1 <
        keep_firing_for: soon
        match: {name: "web-["}
        severity: high
      - alert: A
        scope: gpu
        expr: temperature_celsius > 90
        annotations:
          summary: "{{ temp }}"
      - alert: D
        scope: filesystem
        expr: used_percent > 80
        colour: red
        labels: {alertname: x}
      - alert: E
        scope: container
      - alert: F
        scope: container
        expr: name + 1
"#;
        let e = errors(text);
        let expect = [
            "r.yml:5:16: groups[0].rules[0].scope: unknown scope \"containr\"",
            "r.yml:9:15: groups[0].rules[1].expr: unknown variable `cpu_percnt`",
            "r.yml:10:14: groups[0].rules[1].for: invalid duration \"2x\"",
            "r.yml:15:26: groups[0].rules[2].keep_firing_for: invalid duration \"soon\"",
            "r.yml:17:19: groups[0].rules[2].severity: expected info, warning or critical",
            "r.yml:16:23: groups[0].rules[2].match.name: invalid glob \"web-[\"",
            "r.yml:14:18: groups[0].rules[2].resolve:",
            "r.yml:18:16: groups[0].rules[3].alert: duplicate alert name \"A\" in group \"g\"",
            "r.yml:22:20: groups[0].rules[3].annotations.summary: unknown variable `temp` in template",
            "r.yml:26:9: groups[0].rules[4].colour: unknown field `colour`",
            "r.yml:28:9: groups[0].rules[5]: missing field `expr`",
            "r.yml:32:15: groups[0].rules[6].expr: fails on sample values",
        ];
        for want in expect {
            assert!(
                e.iter().any(|got| got.starts_with(want)),
                "missing {want:?} in:\n{}",
                e.join("\n")
            );
        }
        // The unknown field hides the rest of rule D (not yet deserialized), not other rules.
        assert_eq!(e.len(), expect.len(), "{}", e.join("\n"));
    }

    #[test]
    fn huge_for_and_keep_firing_for_are_located_errors() {
        let e = errors(
            r#"groups:
  - name: g
    rules:
      - alert: A
        scope: host
        expr: load1 > 1
        for: 99999999999999999999s
        keep_firing_for: 20000w
"#,
        );
        assert_eq!(e.len(), 2, "{}", e.join("\n"));
        assert!(
            e[0].starts_with(
                "r.yml:7:14: groups[0].rules[0].for: duration \"99999999999999999999s\" is too large"
            ),
            "{}",
            e[0]
        );
        assert!(
            e[1].starts_with(
                "r.yml:8:26: groups[0].rules[0].keep_firing_for: duration \"20000w\" is too large"
            ),
            "{}",
            e[1]
        );
        // The longest accepted is a plain number of seconds the state machine compares.
        let l = load_one(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        scope: host\n        \
             expr: load1 > 1\n        for: 15250w\n        keep_firing_for: 15250w\n",
        )
        .unwrap();
        assert_eq!(l.rules[0].timing.for_secs, 15250.0 * 604800.0);
    }

    #[test]
    fn label_and_type_errors() {
        let e = errors(
            r#"groups:
  - name: g
    rules:
      - alert: A
        scope: host
        expr: load1 > 1
        labels: {alertname: x, "bad-name": y}
      - alert: B
        scope: host
        expr: load1 > 1
        for: 5
        notify: discord
      - alert: "not valid"
        scope: host
        expr: load1
"#,
        );
        let want = [
            "r.yml:7:18: groups[0].rules[0].labels.alertname: `alertname` is set by lookout",
            "r.yml:7:32: groups[0].rules[0].labels.bad-name: label names are",
            "r.yml:11:14: groups[0].rules[1].for: invalid type: integer `5`, expected a string",
            "r.yml:12:17: groups[0].rules[1].notify: invalid type: string \"discord\", expected a sequence",
            "r.yml:13:16: groups[0].rules[2].alert: alert names are like metric names",
            "r.yml:15:15: groups[0].rules[2].expr: the expression gives a number (1), not a true/false condition",
        ];
        for w in want {
            assert!(
                e.iter().any(|g| g.starts_with(w)),
                "missing {w:?} in:\n{}",
                e.join("\n")
            );
        }
        assert_eq!(e.len(), want.len(), "{}", e.join("\n"));
    }

    #[test]
    fn yaml_and_structure_errors() {
        let e = errors("groups:\n  - name: g\n    rules: [\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("r.yml:4:1: "), "{}", e[0]);
        let e = errors("group: []\n");
        assert_eq!(
            e,
            vec!["r.yml:1:1: unknown field `group`, expected `groups`"]
        );
        let e = errors("groups:\n  - name: g\n    rule: []\n  - name: g\n");
        assert!(
            e[0].starts_with("r.yml:3:5: groups[0].rule: unknown field"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("r.yml:4:11: groups[1].name: duplicate group name"),
            "{e:?}"
        );
        // An empty file is an empty rule set.
        assert_eq!(load_one("").unwrap().rules.len(), 0);
    }

    #[test]
    fn errors_across_files_are_all_reported() {
        let bad = |n: &str| {
            Source {
            name: n.into(),
            text: "groups:\n  - name: g\n    rules:\n      - alert: A\n        scope: x\n        expr: a\n".into(),
        }
        };
        let e = load(&[bad("a.yml"), bad("b.yml")]).unwrap_err();
        assert_eq!(e.errors.len(), 2);
        assert_eq!(e.errors[0].file, "a.yml");
        assert_eq!(e.errors[1].file, "b.yml");
    }

    #[test]
    fn matcher() {
        let l = load_one(GOOD).unwrap();
        let m = &l.rules[0].matcher;
        let mut t = Target {
            scope: Scope::Container,
            key: "container/x".into(),
            name: "web-1".into(),
            labels: vec![],
            selectors: BTreeMap::new(),
            values: vec![],
        };
        assert!(!m.matches(&t), "label missing");
        t.selectors
            .insert("com.docker.compose.project".into(), "shop".into());
        assert!(m.matches(&t));
        t.name = "db-1".into();
        assert!(!m.matches(&t));
    }

    #[test]
    fn the_embedded_defaults_load() {
        let l = load(&default_sources()).unwrap();
        assert!(l.rules.len() >= 13, "{}", l.rules.len());
        for name in [
            "ContainerHighCpu",
            "ContainerHighMemory",
            "ContainerDown",
            "ContainerUnhealthy",
            "ContainerOomKilled",
            "ContainerRestartLoop",
            "HostHighCpu",
            "HostHighMemory",
            "HostDiskFull",
            "HostDiskAlmostFull",
            "GpuHighTemperature",
            "GpuMemoryAlmostFull",
            "GpuXidErrors",
            "GpuThermalThrottling",
        ] {
            assert!(l.rules.iter().any(|r| r.alert == name), "{name} missing");
        }
    }

    #[test]
    fn expand_is_a_path_glob() {
        let dir = tempfile::tempdir().unwrap();
        // The config's directory has glob characters of its own: they are literal.
        let base = dir.path().join("conf [1]*");
        let mk = |p: &str| {
            let p = base.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "groups: []\n").unwrap();
        };
        for f in [
            "rules/b.yml",
            "rules/a.yml",
            "rules/.hidden.yml",
            "rules/sub/c.yml",
        ] {
            mk(f);
        }
        std::fs::create_dir_all(base.join("rules/dir.yml")).unwrap();
        // Deeper than the old walker's 16 levels.
        let deep = "rules/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/deep.yml";
        mk(deep);
        let rel = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(&base).unwrap().display().to_string())
                .collect()
        };
        let (files, unreadable) = expand(&base, "rules/*.yml").unwrap();
        assert!(unreadable.is_empty(), "{unreadable:?}");
        // Sorted; `*` does not cross `/`; directories are not rule files.
        assert_eq!(
            rel(files),
            ["rules/.hidden.yml", "rules/a.yml", "rules/b.yml"]
        );
        let (files, _) = expand(&base, "rules/**/*.yml").unwrap();
        let files = rel(files);
        assert!(files.contains(&"rules/sub/c.yml".to_string()), "{files:?}");
        assert!(files.contains(&deep.to_string()), "{files:?}");
        assert_eq!(
            rel(expand(&base, "rules/?.yml").unwrap().0),
            ["rules/a.yml", "rules/b.yml"]
        );
        // Absolute globs ignore the base.
        let abs = format!(
            "{}/rules/[a].yml",
            ::glob::Pattern::escape(&base.display().to_string())
        );
        assert_eq!(
            rel(expand(Path::new("/elsewhere"), &abs).unwrap().0),
            ["rules/a.yml"]
        );
        // A path without glob characters is itself, present or not.
        assert_eq!(
            expand(&base, "missing.yml").unwrap().0,
            [base.join("missing.yml")]
        );
        // No base (a bare file name's parent is ""): the current directory.
        assert_eq!(
            expand(Path::new(""), "a.yml").unwrap().0,
            [PathBuf::from("a.yml")]
        );
        // Matching nothing is no error here (the caller warns).
        assert!(expand(&base, "none/*.yml").unwrap().0.is_empty());
        assert_eq!(
            expand(&base, "rules/[.yml").unwrap_err(),
            "invalid glob \"rules/[.yml\": invalid range pattern (near character 7)"
        );
    }

    #[test]
    fn a_root_glob_lists_the_root_and_walks_nothing_below_it() {
        // `/*.yml` used to walk the whole filesystem, /proc and /sys included (minutes, and
        // stuck on whatever hangs there); a path glob lists `/` once.
        let started = std::time::Instant::now();
        let (files, _) = expand(Path::new("/ignored"), "/*.yml").unwrap();
        assert!(
            files.iter().all(|f| f.parent() == Some(Path::new("/"))),
            "{files:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn rule_files_globs_are_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/a.yml"), GOOD).unwrap();
        std::fs::write(dir.path().join("rules/b.yml"), "groups: []\n").unwrap();
        std::fs::write(dir.path().join("rules/c.txt"), "not yaml: [").unwrap();
        let cfg_path = dir.path().join("lookout.yml");
        let text = "rule_files: [\"rules/*.yml\", \"none/*.yml\", \"missing.yml\"]\n";
        std::fs::write(&cfg_path, text).unwrap();
        let cfg = Config::load(Some(&cfg_path), &|_| None, &Default::default()).unwrap();
        let e = sources(&cfg).unwrap_err();
        assert_eq!(e.errors.len(), 1, "{e}");
        let msg = e.errors[0].to_string();
        assert!(
            msg.starts_with(&format!(
                "{}:1:43: rule_files[2]: cannot read",
                cfg_path.display()
            )),
            "{msg}"
        );
        assert_eq!(e.warnings.len(), 1);
        assert!(e.warnings[0].message.contains("matches no file"));

        std::fs::write(&cfg_path, "rule_files: [\"rules/*.yml\"]\n").unwrap();
        let cfg = Config::load(Some(&cfg_path), &|_| None, &Default::default()).unwrap();
        let l = load_for(&cfg).unwrap();
        assert_eq!(l.files.len(), 2);
        assert!(l.files[0].ends_with("rules/a.yml"));
        assert_eq!(l.rules.len(), 2);

        std::fs::write(&cfg_path, "rule_files: []\n").unwrap();
        let cfg = Config::load(Some(&cfg_path), &|_| None, &Default::default()).unwrap();
        assert_eq!(load_for(&cfg).unwrap().rules.len(), 0);

        std::fs::write(&cfg_path, "interval: 5s\n").unwrap();
        let cfg = Config::load(Some(&cfg_path), &|_| None, &Default::default()).unwrap();
        assert!(load_for(&cfg).unwrap().rules.len() >= 13);
    }
}
