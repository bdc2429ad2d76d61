//! Alertmanager's label matchers: `name="value"`, `name!="value"`, `name=~"regex"`,
//! `name!~"regex"` (regexes fully anchored, as Alertmanager's), used by routes, inhibition
//! rules and silences.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "=~")]
    Re,
    #[serde(rename = "!~")]
    NotRe,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Matcher) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, String> {
        if !valid_label_name(name) {
            return Err(format!(
                "invalid label name {name:?}: label names are [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        let re = match op {
            Op::Re | Op::NotRe => Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                format!(
                    "invalid regular expression {value:?}: {}",
                    crate::config::regex_error(&e)
                )
            })?),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Parse `name="value"` (also `name=value` unquoted, and `{name="value"}`), with the
    /// operators `=`, `!=`, `=~`, `!~`.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let t = s.trim();
        let t = t
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(t)
            .trim();
        let end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len());
        let (name, rest) = t.split_at(end);
        let rest = rest.trim_start();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (Op::Re, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (Op::NotRe, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::Ne, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Eq, v)
        } else {
            return Err(format!(
                "expected a matcher such as name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\"; got {s:?}"
            ));
        };
        if name.is_empty() {
            return Err(format!("missing label name in matcher {s:?}"));
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"') {
            let Some(inner) = inner.strip_suffix('"') else {
                return Err(format!("unterminated quoted value in matcher {s:?}"));
            };
            unescape(inner).ok_or_else(|| format!("invalid escape in matcher {s:?}"))?
        } else {
            if value.contains('"') {
                return Err(format!("stray quote in matcher {s:?}"));
            }
            value.to_string()
        };
        Matcher::new(name, op, &value)
    }

    /// Whether `labels` satisfy it (an absent label is the empty string, as in Alertmanager).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match self.op {
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
            Op::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            Op::NotRe => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

/// Whether every matcher matches.
pub fn all_match(ms: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    ms.iter().all(|m| m.matches(labels))
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c @ ('\\' | '"') => out.push(c),
                c => {
                    out.push('\\');
                    out.push(c);
                }
            }
        } else if c == '"' {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Matcher", 4)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("value", &self.value)?;
        st.serialize_field("isRegex", &matches!(self.op, Op::Re | Op::NotRe))?;
        st.serialize_field("isEqual", &matches!(self.op, Op::Eq | Op::Re))?;
        st.end()
    }
}

/// Alertmanager's JSON form of a matcher (`{name, value, isRegex, isEqual}`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonMatcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl JsonMatcher {
    pub fn build(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => Op::Eq,
            (false, false) => Op::Ne,
            (true, true) => Op::Re,
            (true, false) => Op::NotRe,
        };
        Matcher::new(&self.name, op, &self.value)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Matcher, D::Error> {
        JsonMatcher::deserialize(d)?
            .build()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::notify::labels;

    #[test]
    fn parses_every_operator() {
        let l = labels(&[("alertname", "ContainerDown"), ("severity", "critical")]);
        assert!(Matcher::parse(r#"severity="critical""#)
            .unwrap()
            .matches(&l));
        assert!(!Matcher::parse(r#"severity!="critical""#)
            .unwrap()
            .matches(&l));
        assert!(Matcher::parse(r#"alertname=~"Container.*""#)
            .unwrap()
            .matches(&l));
        // Anchored: a partial match is no match.
        assert!(!Matcher::parse(r#"alertname=~"Down""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"alertname!~"Host.*""#)
            .unwrap()
            .matches(&l));
        assert!(Matcher::parse("name=web-1")
            .unwrap()
            .matches(&labels(&[("name", "web-1")])));
        // An absent label is "".
        assert!(Matcher::parse(r#"missing="""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"{ severity = "critical" }"#)
            .unwrap()
            .matches(&l));
    }

    #[test]
    fn refuses_what_is_not_a_matcher() {
        for bad in ["severity", r#"="x""#, r#"a="x"#, r#"a=~"(""#, r#"1a="x""#] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_round_trip() {
        let m = Matcher::parse(r#"name!~"web-.*""#).unwrap();
        let j = serde_json::to_string(&m).unwrap();
        let back: Matcher = serde_json::from_str(&j).unwrap();
        assert_eq!(m, back);
        assert_eq!(back.op, Op::NotRe);
    }
}
