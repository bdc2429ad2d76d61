//! Grafana dashboards read as Grafana reads them: the panels (those inside rows included),
//! their PromQL queries and the annotation queries, the template variables, and the
//! interpolation of variables into a query as Grafana's Prometheus datasource does it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One dashboard file.
pub struct Dashboard {
    pub file: PathBuf,
    pub json: Value,
}

/// Every `*.json` of `dir`, parsed (a file that does not parse panics with its name).
pub fn dashboards(dir: &Path) -> Vec<Dashboard> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
            Dashboard { file, json }
        })
        .collect()
}

/// A query of a dashboard: a panel's target or an annotation.
#[derive(Debug, Clone)]
pub struct Query {
    /// `panel "CPU" A` or `annotation "lookout actions"`.
    pub origin: String,
    pub expr: String,
    /// Grafana runs it as an instant query (else over the time range).
    pub instant: bool,
}

/// A template variable.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// `query`, `datasource`, `custom`, ...
    pub kind: String,
    /// The query of a `query` variable (`label_values(...)`).
    pub query: Option<String>,
    pub multi: bool,
    pub include_all: bool,
    /// What "All" stands for when set (else the values, joined as a regex).
    pub all_value: Option<String>,
    pub regex: String,
}

impl Dashboard {
    pub fn name(&self) -> String {
        self.file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }

    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or("")
    }

    /// Every panel, those in rows (collapsed or not) included; rows themselves too.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(ps: &'a Value, out: &mut Vec<&'a Value>) {
            for p in ps.as_array().into_iter().flatten() {
                out.push(p);
                walk(&p["panels"], out);
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        out
    }

    /// The PromQL of every panel target and every Prometheus annotation.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = Vec::new();
        for p in self.panels() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if t["hide"] == true {
                    continue;
                }
                out.push(Query {
                    origin: format!(
                        "panel {:?} {}",
                        p["title"].as_str().unwrap_or(""),
                        t["refId"].as_str().unwrap_or("?")
                    ),
                    expr: t["expr"].as_str().unwrap_or("").to_string(),
                    instant: t["instant"] == true && t["range"] != true,
                });
            }
        }
        for a in self.json["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if a["datasource"]["type"] == "grafana" || a["enable"] == false {
                continue;
            }
            out.push(Query {
                origin: format!("annotation {:?}", a["name"].as_str().unwrap_or("")),
                expr: a["expr"].as_str().unwrap_or("").to_string(),
                instant: false,
            });
        }
        out
    }

    pub fn variables(&self) -> Vec<Variable> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| Variable {
                name: v["name"].as_str().unwrap_or("").to_string(),
                kind: v["type"].as_str().unwrap_or("").to_string(),
                query: match &v["query"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("query").and_then(|q| q.as_str()).map(String::from),
                    _ => None,
                },
                multi: v["multi"] == true,
                include_all: v["includeAll"] == true,
                all_value: v["allValue"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(String::from),
                regex: v["regex"].as_str().unwrap_or("").to_string(),
            })
            .collect()
    }
}

/// `label_values(selector, label)` or `label_values(label)`: (selector, label).
pub fn parse_label_values(query: &str) -> Option<(Option<String>, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => {
            Some((Some(selector.trim().to_string()), label.trim().to_string()))
        }
        None => Some((None, inner.trim().to_string())),
    }
}

/// Grafana's escaping of a variable value used in a PromQL regex matcher
/// (`prometheusSpecialRegexEscape`): regex metacharacters get a backslash, itself escaped for
/// the PromQL string.
pub fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The text Grafana puts in a query for a variable set to "All": its `allValue`, else every
/// value, escaped and joined as `(a|b)`.
pub fn all_text(v: &Variable, values: &[String]) -> String {
    if let Some(a) = &v.all_value {
        return a.clone();
    }
    match values {
        [one] => regex_escape(one),
        _ => format!(
            "({})",
            values
                .iter()
                .map(|s| regex_escape(s))
                .collect::<Vec<_>>()
                .join("|")
        ),
    }
}

/// Replace `$name`, `${name}` and `[[name]]` by `vars[name]`; an unknown variable is an
/// error naming it (Grafana would leave it in and Prometheus would fail to parse it).
pub fn interpolate(expr: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (name, len) = if let Some(r) = rest.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {expr}"))?;
            let name = r[..end].split(':').next().unwrap_or("");
            (name.to_string(), end + 3)
        } else if let Some(r) = rest.strip_prefix("[[") {
            let end = r
                .find("]]")
                .ok_or_else(|| format!("unclosed [[ in {expr}"))?;
            (r[..end].to_string(), end + 4)
        } else if let Some(r) = rest.strip_prefix('$') {
            let end = r
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            (r[..end].to_string(), end + 1)
        } else {
            out.push('[');
            rest = &rest[1..];
            continue;
        };
        let value = vars
            .get(&name)
            .ok_or_else(|| format!("unknown variable ${name}"))?;
        out.push_str(value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    Ok(out)
}
