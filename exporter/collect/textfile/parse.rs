//! The Prometheus text exposition format (0.0.4), read the way node_exporter's textfile
//! collector reads it (client_golang's `expfmt.TextParser`): `# HELP` and `# TYPE` lines, other
//! comments ignored, samples `name{label="value",...} value`, histograms and summaries gathered
//! from their `_bucket`, `_sum`, `_count` and `quantile` samples. A client-side timestamp is
//! refused, as node_exporter refuses it. Every error says where: line, column and what was
//! expected.

use std::collections::HashMap;

use crate::exposition::Kind;

/// One family of a file, in the order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFamily {
    pub name: String,
    /// The `# HELP` text, unescaped; None without one.
    pub help: Option<String>,
    pub kind: Kind,
    /// Each series, its labels sorted by name; a label another series of the family has and
    /// this one lacks is there with an empty value (as node_exporter fills it).
    pub metrics: Vec<Metric>,
}

/// One series of a family (for a histogram or summary, all of its samples).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub labels: Vec<(String, String)>,
    pub value: Value,
    /// The line it was first seen on.
    pub line: usize,
}

/// A series' value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Single(f64),
    /// `(quantile, value)` in the order read; sum and count when given.
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: Option<f64>,
        count: Option<f64>,
    },
    /// `(le, cumulative count)` in the order read; sum and count when given.
    Histogram {
        buckets: Vec<(f64, f64)>,
        sum: Option<f64>,
        count: Option<f64>,
    },
}

/// Why a file is not valid, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// Which sample of a histogram or summary a line is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// A plain sample (counter, gauge, untyped).
    Plain,
    Quantile(f64),
    Bucket(f64),
    Sum,
    Count,
}

/// Parse a whole file.
pub fn parse(text: &str) -> Result<Vec<ParsedFamily>, ParseError> {
    let mut p = Parser::default();
    for (i, line) in text.split('\n').enumerate() {
        p.line(i + 1, line)?;
    }
    p.finish()
}

#[derive(Default)]
struct Parser {
    families: Vec<Family>,
    by_name: HashMap<String, usize>,
}

/// A family while its file is read.
struct Family {
    name: String,
    help: Option<String>,
    /// None until a `# TYPE` line or a sample says (a sample makes it untyped).
    kind: Option<Kind>,
    metrics: Vec<Metric>,
    /// Each series' index in `metrics`, by its labels (sorted; without `le` and `quantile`).
    index: HashMap<Vec<(String, String)>, usize>,
}

impl Parser {
    fn line(&mut self, n: usize, line: &str) -> Result<(), ParseError> {
        let mut c = Cursor::new(n, line);
        c.blanks();
        match c.peek() {
            None => Ok(()),
            Some(b'#') => {
                c.bump();
                self.comment(c)
            }
            Some(_) => self.sample(c),
        }
    }

    /// `# HELP name text`, `# TYPE name type`; any other comment is ignored. As in expfmt,
    /// `# HELP` or `# TYPE` without a name, or with a name and nothing after it, says nothing.
    fn comment(&mut self, mut c: Cursor) -> Result<(), ParseError> {
        c.blanks();
        let keyword = c.token();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        c.blanks();
        if c.at_end() {
            return Ok(());
        }
        let col = c.col();
        let name = c.metric_name();
        if name.is_empty() || !(c.at_end() || c.at_blank()) {
            return Err(c.error_at(
                col,
                format!(
                    "invalid metric name in # {keyword}: expected [a-zA-Z_:][a-zA-Z0-9_:]*, got {:?}",
                    c.rest_from(col)
                ),
            ));
        }
        c.blanks();
        if c.at_end() {
            return Ok(());
        }
        let i = self.family(name);
        let family = &mut self.families[i];
        if keyword == "HELP" {
            if family.help.is_some() {
                return Err(c.error(format!("second # HELP line for metric {name}")));
            }
            family.help = Some(c.help_text()?);
            return Ok(());
        }
        if family.kind.is_some() {
            return Err(c.error(format!(
                "second # TYPE line for metric {name}, or # TYPE after its samples"
            )));
        }
        let word = c.rest().trim_end();
        family.kind = Some(match word.to_ascii_lowercase().as_str() {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            "untyped" => Kind::Untyped,
            _ => {
                return Err(c.error(format!(
                    "unknown metric type {word:?}; expected counter, gauge, histogram, summary or untyped"
                )))
            }
        });
        Ok(())
    }

    /// The family named `name`, made if new.
    fn family(&mut self, name: &str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        self.families.push(Family {
            name: name.to_string(),
            help: None,
            kind: None,
            metrics: Vec::new(),
            index: HashMap::new(),
        });
        self.by_name
            .insert(name.to_string(), self.families.len() - 1);
        self.families.len() - 1
    }

    /// The family a sample named `name` belongs to, and whether it is a histogram's or
    /// summary's `_bucket`, `_sum` or `_count` (expfmt's rule: only when the base family is
    /// declared a histogram or summary and no family has the sample's own name).
    fn family_of(&mut self, name: &str) -> (usize, Option<&'static str>) {
        if let Some(&i) = self.by_name.get(name) {
            return (i, None);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(base) = name.strip_suffix(suffix) else {
                continue;
            };
            if let Some(&i) = self.by_name.get(base) {
                let kind = self.families[i].kind;
                let fits = match suffix {
                    "_bucket" => kind == Some(Kind::Histogram),
                    _ => matches!(kind, Some(Kind::Histogram | Kind::Summary)),
                };
                if fits {
                    return (i, Some(suffix));
                }
            }
        }
        (self.family(name), None)
    }

    fn sample(&mut self, mut c: Cursor) -> Result<(), ParseError> {
        let line = c.line;
        let name_col = c.col();
        let name = c.metric_name().to_string();
        if name.is_empty() {
            return Err(c.error(format!(
                "expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or a # comment, got {:?}",
                c.rest()
            )));
        }
        let (i, suffix) = self.family_of(&name);
        let kind = *self.families[i].kind.get_or_insert(Kind::Untyped);
        c.blanks();
        let mut labels: Vec<(String, String)> = Vec::new();
        // The `le` or `quantile` label this sample's role takes, and its column.
        let mut special: Option<(f64, usize)> = None;
        let special_name = match (kind, suffix) {
            (Kind::Histogram, Some("_bucket")) => Some("le"),
            (Kind::Summary, None) => Some("quantile"),
            _ => None,
        };
        if c.peek() == Some(b'{') {
            c.bump();
            loop {
                c.blanks();
                if c.peek() == Some(b'}') {
                    c.bump();
                    break;
                }
                let col = c.col();
                let label = c.label_name();
                if label.is_empty() {
                    return Err(c.error(format!(
                        "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*) or }}, got {:?}",
                        c.rest()
                    )));
                }
                if label.starts_with("__") {
                    return Err(c.error_at(
                        col,
                        format!("label name {label:?}: names starting with __ are reserved"),
                    ));
                }
                let label = label.to_string();
                c.blanks();
                c.expect(b'=', "= after the label name")?;
                c.blanks();
                let value_col = c.col();
                let value = c.label_value()?;
                if Some(label.as_str()) == special_name {
                    if special.is_some() {
                        return Err(c.error_at(col, format!("duplicate label {label:?}")));
                    }
                    let v = parse_float(&value).ok_or_else(|| {
                        c.error_at(
                            value_col,
                            format!("expected a number as the value of {label:?}, got {value:?}"),
                        )
                    })?;
                    special = Some((v, col));
                } else if (kind == Kind::Histogram && label == "le")
                    || (kind == Kind::Summary && label == "quantile")
                {
                    return Err(c.error_at(
                        col,
                        format!(
                            "label {label:?} on {name}: in a {} only {} samples take it",
                            kind_name(kind),
                            if kind == Kind::Histogram {
                                "_bucket"
                            } else {
                                "quantile"
                            }
                        ),
                    ));
                } else if labels.iter().any(|(k, _)| *k == label) {
                    return Err(c.error_at(col, format!("duplicate label {label:?}")));
                } else {
                    labels.push((label, value));
                }
                c.blanks();
                match c.peek() {
                    Some(b',') => c.bump(),
                    Some(b'}') => {
                        c.bump();
                        break;
                    }
                    _ => {
                        return Err(c.error(format!(
                            "expected , or }} after a label value, got {:?}",
                            c.rest()
                        )))
                    }
                }
            }
        }
        c.blanks();
        let value_col = c.col();
        let token = c.token();
        let value = parse_float(token).ok_or_else(|| {
            c.error_at(
                value_col,
                format!("expected a number as the sample's value, got {token:?}"),
            )
        })?;
        c.blanks();
        if !c.at_end() {
            let col = c.col();
            let token = c.token();
            if token.parse::<i64>().is_ok() {
                return Err(c.error_at(
                    col,
                    "client-side timestamps are not supported (node_exporter refuses them \
                     too); the whole file is skipped"
                        .to_string(),
                ));
            }
            return Err(c.error_at(
                col,
                format!("unexpected {:?} after the value", c.rest_from(col)),
            ));
        }

        let role = match (kind, suffix, special) {
            (Kind::Histogram, Some("_bucket"), Some((le, _))) => Role::Bucket(le),
            (Kind::Histogram, Some("_bucket"), None) => {
                return Err(c.error_at(
                    name_col,
                    format!("{name} has no \"le\" label (a histogram bucket's upper bound)"),
                ))
            }
            (Kind::Histogram | Kind::Summary, Some("_sum"), _) => Role::Sum,
            (Kind::Histogram | Kind::Summary, Some("_count"), _) => Role::Count,
            (Kind::Summary, None, Some((q, _))) => Role::Quantile(q),
            (Kind::Summary, None, None) => {
                return Err(c.error_at(
                    name_col,
                    format!("{name} is a summary: its samples are {name}{{quantile=\"...\"}}, {name}_sum and {name}_count"),
                ))
            }
            (Kind::Histogram, _, _) => {
                return Err(c.error_at(
                    name_col,
                    format!("{name} is a histogram: its samples are {name}_bucket{{le=\"...\"}}, {name}_sum and {name}_count"),
                ))
            }
            _ => Role::Plain,
        };
        labels.sort();
        self.add(i, labels, role, value, (line, name_col, &name))
    }

    /// Add a sample to family `i`; `at` is its line, the column of its name, and its name.
    fn add(
        &mut self,
        i: usize,
        labels: Vec<(String, String)>,
        role: Role,
        v: f64,
        at: (usize, usize, &str),
    ) -> Result<(), ParseError> {
        let (line, col, name) = at;
        let f = &mut self.families[i];
        let duplicate = || ParseError {
            line,
            col,
            message: format!(
                "duplicate sample: {name}{} was already given",
                show(&labels)
            ),
        };
        let m = match f.index.get(&labels) {
            Some(&m) => &mut f.metrics[m].value,
            None => {
                let value = match role {
                    Role::Plain => Value::Single(v),
                    Role::Quantile(_) => Value::Summary {
                        quantiles: Vec::new(),
                        sum: None,
                        count: None,
                    },
                    _ if f.kind == Some(Kind::Summary) => Value::Summary {
                        quantiles: Vec::new(),
                        sum: None,
                        count: None,
                    },
                    _ => Value::Histogram {
                        buckets: Vec::new(),
                        sum: None,
                        count: None,
                    },
                };
                f.index.insert(labels.clone(), f.metrics.len());
                f.metrics.push(Metric {
                    labels: labels.clone(),
                    value,
                    line,
                });
                if role == Role::Plain {
                    return Ok(());
                }
                &mut f.metrics.last_mut().expect("just pushed").value
            }
        };
        match (m, role) {
            (Value::Single(_), _) => return Err(duplicate()),
            (
                Value::Summary {
                    quantiles: list, ..
                },
                Role::Quantile(x),
            )
            | (Value::Histogram { buckets: list, .. }, Role::Bucket(x)) => {
                // Compared as numbers, so `le="1"` and `le="1.0"` are the same bucket.
                if list
                    .iter()
                    .any(|(y, _)| *y == x || (x.is_nan() && y.is_nan()))
                {
                    return Err(duplicate());
                }
                list.push((x, v));
            }
            (Value::Summary { sum, .. } | Value::Histogram { sum, .. }, Role::Sum) => {
                if sum.replace(v).is_some() {
                    return Err(duplicate());
                }
            }
            (Value::Summary { count, .. } | Value::Histogram { count, .. }, Role::Count) => {
                if count.replace(v).is_some() {
                    return Err(duplicate());
                }
            }
            // Not reached: a family's kind is fixed by its first sample, and each role follows
            // from the kind. Refused rather than trusted.
            _ => {
                return Err(ParseError {
                    line,
                    col,
                    message: format!("{name}: a sample of another type than its family's"),
                })
            }
        }
        Ok(())
    }

    /// The families with samples (a `# HELP` or `# TYPE` alone makes none, as in expfmt), each
    /// series with every label name of its family.
    fn finish(self) -> Result<Vec<ParsedFamily>, ParseError> {
        let mut out = Vec::new();
        for f in self.families {
            if f.metrics.is_empty() {
                continue;
            }
            let mut names: Vec<&str> = f
                .metrics
                .iter()
                .flat_map(|m| m.labels.iter().map(|(k, _)| k.as_str()))
                .collect();
            names.sort_unstable();
            names.dedup();
            let mut metrics = Vec::with_capacity(f.metrics.len());
            let mut seen: HashMap<Vec<(String, String)>, usize> = HashMap::new();
            for m in &f.metrics {
                let mut labels = m.labels.clone();
                if labels.len() < names.len() {
                    for n in &names {
                        if !labels.iter().any(|(k, _)| k == n) {
                            labels.push((n.to_string(), String::new()));
                        }
                    }
                    labels.sort();
                }
                if let Some(first) = seen.insert(labels.clone(), m.line) {
                    return Err(ParseError {
                        line: m.line,
                        col: 1,
                        message: format!(
                            "duplicate series: {}{} is line {first}'s series once absent labels \
                             are filled with \"\"",
                            f.name,
                            show(&labels)
                        ),
                    });
                }
                metrics.push(Metric {
                    labels,
                    value: m.value.clone(),
                    line: m.line,
                });
            }
            out.push(ParsedFamily {
                name: f.name.clone(),
                help: f.help.clone(),
                kind: f.kind.unwrap_or(Kind::Untyped),
                metrics,
            });
        }
        Ok(out)
    }
}

/// A kind's name in `# TYPE`.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
        Kind::Summary => "summary",
        Kind::Untyped => "untyped",
    }
}

/// `{a="x",b="y"}`, or nothing for no labels.
pub fn show(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// A sample value or bound as expfmt reads it (Go's `ParseFloat`: decimal, exponent, `NaN`,
/// `Inf`, `+Inf`, `-Inf`; no hexadecimal, no `_`).
fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains(['p', 'P', '_', 'x', 'X']) {
        return None;
    }
    s.parse().ok()
}

/// A position in one line.
struct Cursor<'a> {
    line: usize,
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(line: usize, text: &'a str) -> Cursor<'a> {
        Cursor { line, text, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn bump(&mut self) {
        self.at += 1;
    }

    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    fn at_blank(&self) -> bool {
        matches!(self.peek(), Some(b' ' | b'\t'))
    }

    fn blanks(&mut self) {
        while self.at_blank() {
            self.bump();
        }
    }

    /// The 1-based column of the cursor.
    fn col(&self) -> usize {
        self.at + 1
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn rest_from(&self, col: usize) -> &'a str {
        &self.text[col - 1..]
    }

    /// Up to the next blank or the end.
    fn token(&mut self) -> &'a str {
        let start = self.at;
        while !self.at_end() && !self.at_blank() {
            self.bump();
        }
        &self.text[start..self.at]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, empty when there is none.
    fn metric_name(&mut self) -> &'a str {
        self.name(|b, first| {
            b.is_ascii_alphabetic() || b == b'_' || b == b':' || (!first && b.is_ascii_digit())
        })
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, empty when there is none.
    fn label_name(&mut self) -> &'a str {
        self.name(|b, first| b.is_ascii_alphabetic() || b == b'_' || (!first && b.is_ascii_digit()))
    }

    fn name(&mut self, ok: impl Fn(u8, bool) -> bool) -> &'a str {
        let start = self.at;
        while let Some(b) = self.peek() {
            if !ok(b, self.at == start) {
                break;
            }
            self.bump();
        }
        &self.text[start..self.at]
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(b) {
            self.bump();
            return Ok(());
        }
        Err(self.error(format!("expected {what}, got {:?}", self.rest())))
    }

    /// A quoted label value: `\\`, `\"` and `\n` are its escapes.
    fn label_value(&mut self) -> Result<String, ParseError> {
        let open = self.col();
        self.expect(b'"', "\" to open the label value")?;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        let start = self.at;
        while let Some((i, ch)) = chars.next() {
            match ch {
                '"' => {
                    self.at = start + i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, other)) => {
                        return Err(self.error_at(
                            start + i + 1,
                            format!(
                                "invalid escape \\{other} in a label value (\\\\, \\\" and \\n are)"
                            ),
                        ))
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.error_at(open, "the label value's closing \" is missing".to_string()))
    }

    /// The rest of a `# HELP` line: `\\` and `\n` are its escapes.
    fn help_text(&mut self) -> Result<String, ParseError> {
        let mut out = String::new();
        let start = self.at;
        let mut chars = self.rest().char_indices();
        while let Some((i, ch)) = chars.next() {
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                // Newer expfmt takes \" too; it changes nothing.
                Some((_, '"')) => out.push('"'),
                Some((_, other)) => {
                    return Err(self.error_at(
                        start + i + 1,
                        format!("invalid escape \\{other} in # HELP (\\\\ and \\n are)"),
                    ))
                }
                None => {
                    return Err(
                        self.error_at(start + i + 1, "a lone \\ at the end of # HELP".to_string())
                    )
                }
            }
        }
        self.at = self.text.len();
        Ok(out)
    }

    fn error(&self, message: String) -> ParseError {
        self.error_at(self.col(), message)
    }

    fn error_at(&self, col: usize, message: String) -> ParseError {
        ParseError {
            line: self.line,
            col,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_file() {
        let text = "# A comment\n\
            \n\
            # HELP app_requests_total Requests \\\\ served,\\nin all.\n\
            # TYPE app_requests_total counter\n\
            app_requests_total{code=\"200\",path=\"/a \\\"b\\\"\\n\\\\\"} 1027\n\
            \t app_requests_total{ code = \"500\" , path=\"/\", } 3\n\
            #TYPE app_temp gauge\n\
            app_temp -1.5e3\n\
            app_ratio{} NaN\n\
            app_ratio{x=\"+\"} +Inf\n\
            app_ratio{x=\"-\"} -Inf\n\
            # HELP app_only_help Nothing follows.\n\
            # TYPE app_only_type gauge\n\
            # HELP\n\
            # HELP app_ratio\n\
            app_last 7";
        let f = parse(text).unwrap();
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["app_requests_total", "app_temp", "app_ratio", "app_last"]
        );
        assert_eq!(f[0].help.as_deref(), Some("Requests \\ served,\nin all."));
        assert_eq!(f[0].kind, Kind::Counter);
        assert_eq!(
            f[0].metrics[0].labels,
            l(&[("code", "200"), ("path", "/a \"b\"\n\\")])
        );
        assert_eq!(f[0].metrics[0].value, Value::Single(1027.0));
        assert_eq!(f[0].metrics[1].labels, l(&[("code", "500"), ("path", "/")]));
        assert_eq!(f[0].metrics[1].line, 6);
        assert_eq!(f[1].kind, Kind::Gauge);
        assert_eq!(f[1].metrics[0].value, Value::Single(-1500.0));
        // Untyped without # TYPE; a label only some series have is "" on the others.
        assert_eq!(f[2].kind, Kind::Untyped);
        assert_eq!(f[2].help, None);
        assert_eq!(f[2].metrics[0].labels, l(&[("x", "")]));
        assert!(matches!(f[2].metrics[0].value, Value::Single(v) if v.is_nan()));
        assert_eq!(f[2].metrics[1].value, Value::Single(f64::INFINITY));
        assert_eq!(f[2].metrics[2].value, Value::Single(f64::NEG_INFINITY));
        assert_eq!(f[3].metrics[0].value, Value::Single(7.0));
        // Nothing at all is valid too.
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("# only a comment\n\n").unwrap(), []);
    }

    #[test]
    fn histograms_and_summaries_gather_their_samples() {
        let text = "# TYPE rpc_seconds histogram\n\
            rpc_seconds_bucket{svc=\"a\",le=\"0.1\"} 3\n\
            rpc_seconds_bucket{le=\"1.0\",svc=\"a\"} 5\n\
            rpc_seconds_sum{svc=\"a\"} 2.5\n\
            rpc_seconds_count{svc=\"a\"} 6\n\
            rpc_seconds_bucket{svc=\"b\",le=\"+Inf\"} 1\n\
            # TYPE gc_seconds summary\n\
            gc_seconds{quantile=\"0.5\"} 0.01\n\
            gc_seconds{quantile=\"0.99\"} 0.2\n\
            gc_seconds_sum 4\n\
            gc_seconds_count 100\n\
            # TYPE plain counter\n\
            plain_count 2\n";
        let f = parse(text).unwrap();
        assert_eq!(f[0].kind, Kind::Histogram);
        assert_eq!(
            f[0].metrics[0],
            Metric {
                labels: l(&[("svc", "a")]),
                value: Value::Histogram {
                    buckets: vec![(0.1, 3.0), (1.0, 5.0)],
                    sum: Some(2.5),
                    count: Some(6.0)
                },
                line: 2,
            }
        );
        assert_eq!(
            f[0].metrics[1].value,
            Value::Histogram {
                buckets: vec![(f64::INFINITY, 1.0)],
                sum: None,
                count: None
            }
        );
        assert_eq!(f[1].kind, Kind::Summary);
        assert_eq!(
            f[1].metrics[0].value,
            Value::Summary {
                quantiles: vec![(0.5, 0.01), (0.99, 0.2)],
                sum: Some(4.0),
                count: Some(100.0)
            }
        );
        // `_count` of a counter is a family of its own (expfmt's rule); `plain` has no samples.
        assert_eq!(f.len(), 3);
        assert_eq!(f[2].name, "plain_count");
        assert_eq!(f[2].kind, Kind::Untyped);
    }

    #[test]
    fn a_timestamp_refuses_the_file() {
        assert_eq!(
            err("a 1\nb{x=\"y\"} 2 1700000000000\n"),
            "2:12: client-side timestamps are not supported (node_exporter refuses them too); \
             the whole file is skipped"
        );
        assert_eq!(
            err("a 1 x 17000\n"),
            "1:5: unexpected \"x 17000\" after the value"
        );
    }

    #[test]
    fn each_error_says_where_and_why() {
        for (text, want) in [
            ("9lives 1", "1:1: expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or a # comment, got \"9lives 1\""),
            ("a{b=\"c\"} x1", "1:10: expected a number as the sample's value, got \"x1\""),
            ("a 0x10", "1:3: expected a number as the sample's value, got \"0x10\""),
            ("a 1_000", "1:3: expected a number as the sample's value, got \"1_000\""),
            ("a", "1:2: expected a number as the sample's value, got \"\""),
            ("a{b} 1", "1:4: expected = after the label name, got \"} 1\""),
            ("a{b=c} 1", "1:5: expected \" to open the label value, got \"c} 1\""),
            ("a{b=\"c} 1", "1:5: the label value's closing \" is missing"),
            ("a{b=\"\\t\"} 1", "1:6: invalid escape \\t in a label value (\\\\, \\\" and \\n are)"),
            ("a{b=\"1\",b=\"2\"} 1", "1:9: duplicate label \"b\""),
            ("a{__name__=\"x\"} 1", "1:3: label name \"__name__\": names starting with __ are reserved"),
            ("a{b=\"1\" c=\"2\"} 1", "1:9: expected , or } after a label value, got \"c=\\\"2\\\"} 1\""),
            ("a{9=\"1\"} 1", "1:3: expected a label name ([a-zA-Z_][a-zA-Z0-9_]*) or }, got \"9=\\\"1\\\"} 1\""),
            ("# TYPE a gauges\na 1", "1:10: unknown metric type \"gauges\"; expected counter, gauge, histogram, summary or untyped"),
            ("# TYPE a-b gauge", "1:8: invalid metric name in # TYPE: expected [a-zA-Z_:][a-zA-Z0-9_:]*, got \"a-b gauge\""),
            ("# HELP a x\n# HELP a y\na 1", "2:10: second # HELP line for metric a"),
            ("# HELP a x\\q", "1:11: invalid escape \\q in # HELP (\\\\ and \\n are)"),
            ("a 1\n# TYPE a gauge", "2:10: second # TYPE line for metric a, or # TYPE after its samples"),
            ("a 1\na 2", "2:1: duplicate sample: a was already given"),
            ("a{x=\"\"} 1\na 2", "2:1: duplicate series: a{x=\"\"} is line 1's series once absent labels are filled with \"\""),
            ("# TYPE h histogram\nh_bucket 1", "2:1: h_bucket has no \"le\" label (a histogram bucket's upper bound)"),
            ("# TYPE h histogram\nh_bucket{le=\"x\"} 1", "2:13: expected a number as the value of \"le\", got \"x\""),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 2", "3:1: duplicate sample: h_bucket was already given"),
            ("# TYPE h histogram\nh_sum{le=\"1\"} 1", "2:7: label \"le\" on h_sum: in a histogram only _bucket samples take it"),
            ("# TYPE h histogram\nh 1", "2:1: h is a histogram: its samples are h_bucket{le=\"...\"}, h_sum and h_count"),
            ("# TYPE s summary\ns 1", "2:1: s is a summary: its samples are s{quantile=\"...\"}, s_sum and s_count"),
            ("# TYPE s summary\ns_sum 1\ns_sum 2", "3:1: duplicate sample: s_sum was already given"),
        ] {
            assert_eq!(err(text), want, "{text:?}");
        }
    }
}
