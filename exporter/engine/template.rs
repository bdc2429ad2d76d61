//! Annotation templates: `{{ var }}` and `{{ var | filter }}`, rendered from a target's
//! variables.
//!
//! Filters: `round(N)` (N decimals), `humanize` (SI prefixes: 1.5k, 2.3M), `humanize1024`
//! (binary prefixes: 1.5Ki, 2Gi, for bytes) and `humanizeDuration` (1h 2m 3s). A chain such
//! as `{{ x | round(1) | humanize }}` applies its filters left to right: `round(N)` gives a
//! number (shown with N decimals if it is the last filter), the humanize filters give text, and
//! a number filter leaves text as it is. Variables are resolved when the rule is loaded, so an
//! unknown variable or filter is a load error. A missing reading renders as `unknown`;
//! infinities and NaN as `+Inf`, `-Inf` and `NaN`.

use evalexpr::Value;

use super::expr::{contain, Names};

/// Why a template did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{{{` in template")]
    Unclosed,
    #[error("empty `{{{{ }}}}` in template")]
    Empty,
    #[error("unknown variable `{name}` in template; {scope} rules can use: {known}")]
    UnknownVariable {
        name: String,
        scope: &'static str,
        known: String,
    },
    #[error("unknown filter `{0}` in template; expected round(N), humanize, humanize1024 or humanizeDuration")]
    UnknownFilter(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Filter {
    Round(usize),
    Humanize,
    Humanize1024,
    HumanizeDuration,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Var { slot: usize, filters: Vec<Filter> },
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn new(src: &str, names: Names) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
            let inner = after[..close].trim();
            rest = &after[close + 2..];
            let mut pieces = inner.split('|').map(str::trim);
            let name = pieces.next().unwrap_or("");
            if name.is_empty() {
                return Err(TemplateError::Empty);
            }
            let slot = names.names.iter().position(|n| *n == name).ok_or_else(|| {
                TemplateError::UnknownVariable {
                    name: name.to_string(),
                    scope: names.scope,
                    known: names.names.join(", "),
                }
            })?;
            let filters = pieces.map(filter).collect::<Result<Vec<_>, _>>()?;
            parts.push(Part::Var { slot, filters });
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The slots it reads.
    pub fn reads(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { slot, .. } => Some(*slot),
            Part::Text(_) => None,
        })
    }

    /// The text, or why it could not be rendered (a panic in a filter, caught).
    pub fn try_render(&self, values: &[Value]) -> Result<String, String> {
        contain(|| {
            let mut out = String::new();
            for p in &self.parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Var { slot, filters } => {
                        let v = values.get(*slot).unwrap_or(&Value::Empty);
                        out.push_str(&apply(v, filters));
                    }
                }
            }
            out
        })
    }

    /// The text; a template that fails renders as `(template failed: …)`, and is logged.
    pub fn render(&self, values: &[Value]) -> String {
        self.try_render(values).unwrap_or_else(|error| {
            tracing::warn!(%error, "annotation template failed");
            format!("(template failed: {error})")
        })
    }
}

fn filter(s: &str) -> Result<Filter, TemplateError> {
    let bad = || TemplateError::UnknownFilter(s.to_string());
    match s {
        "humanize" => Ok(Filter::Humanize),
        "humanize1024" => Ok(Filter::Humanize1024),
        "humanizeDuration" => Ok(Filter::HumanizeDuration),
        _ => {
            let n = s
                .strip_prefix("round(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?;
            let n: usize = n.trim().parse().map_err(|_| bad())?;
            if n > 12 {
                return Err(bad());
            }
            Ok(Filter::Round(n))
        }
    }
}

/// A value on its way through a filter chain.
enum Flow {
    /// A number, and the decimals `round(N)` asked for (how to show it if nothing follows).
    Number(f64, Option<usize>),
    Text(String),
}

/// Pass `v` through `filters` left to right: `round(N)` rounds a number, the humanize filters
/// turn a number into text, and a number filter leaves text (`unknown` included) as it is.
fn apply(v: &Value, filters: &[Filter]) -> String {
    let mut flow = match v {
        Value::Float(f) => Flow::Number(*f, None),
        Value::Int(i) => Flow::Number(*i as f64, None),
        other => Flow::Text(plain(other)),
    };
    for f in filters {
        let Flow::Number(n, _) = flow else { break };
        flow = match f {
            Filter::Round(d) => Flow::Number(round(n, *d), Some(*d)),
            Filter::Humanize => {
                Flow::Text(humanize(n, 1000.0, &["", "k", "M", "G", "T", "P", "E"]))
            }
            Filter::Humanize1024 => Flow::Text(humanize(
                n,
                1024.0,
                &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"],
            )),
            Filter::HumanizeDuration => Flow::Text(duration(n)),
        };
    }
    match flow {
        Flow::Number(n, Some(d)) if n.is_finite() => format!("{n:.d$}"),
        Flow::Number(n, _) => plain(&Value::Float(n)),
        Flow::Text(t) => t,
    }
}

/// `n` rounded to `d` decimals, the way `{:.d$}` shows it (so a later filter sees the number
/// that `round` alone would have printed).
fn round(n: f64, d: usize) -> f64 {
    if !n.is_finite() {
        return n;
    }
    format!("{n:.d$}").parse().unwrap_or(n)
}

/// Infinities and NaN as Prometheus prints them; None for a finite number.
fn non_finite(n: f64) -> Option<String> {
    if n.is_nan() {
        Some("NaN".into())
    } else if n.is_infinite() {
        Some(if n > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// A value as text: integers without a fraction.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Value::Float(f) => non_finite(*f).unwrap_or_else(|| format!("{f}")),
        Value::Int(i) => i.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Empty => "unknown".into(),
        Value::Tuple(t) => format!("{t:?}"),
    }
}

/// Like Prometheus's humanize: up to 4 significant digits and a prefix.
fn humanize(n: f64, base: f64, units: &[&str]) -> String {
    if let Some(s) = non_finite(n) {
        return s;
    }
    let mut v = n;
    let mut i = 0;
    while v.abs() >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    let int_digits = (v.abs().max(1.0).log10().floor() as usize).saturating_add(1);
    if int_digits > 4 {
        // Beyond the largest prefix: 4 significant digits in scientific notation.
        return format!("{v:.3e}{}", units[i]);
    }
    let prec = 4 - int_digits;
    let mut s = format!("{v:.prec$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

fn duration(secs: f64) -> String {
    if let Some(s) = non_finite(secs) {
        return s;
    }
    if secs < 0.0 {
        return format!("-{}", duration(-secs));
    }
    if secs < 1.0 {
        return format!("{:.0}ms", secs * 1000.0);
    }
    let mut s = secs.round() as u64;
    let mut out = Vec::new();
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= n {
            out.push(format!("{}{unit}", s / n));
            s %= n;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Names = Names {
        scope: "test",
        names: &["name", "cpu", "mem", "up", "gone"],
    };

    fn vals() -> Vec<Value> {
        vec![
            Value::String("web-1".into()),
            Value::Float(85.4567),
            Value::Float(3.5 * 1024.0 * 1024.0 * 1024.0),
            Value::Float(3725.0),
            Value::Empty,
        ]
    }

    fn render(src: &str) -> String {
        Template::new(src, NAMES).unwrap().render(&vals())
    }

    #[test]
    fn renders() {
        assert_eq!(
            render("{{ name }} uses {{ cpu | round(1) }}% CPU"),
            "web-1 uses 85.5% CPU"
        );
        assert_eq!(render("{{name}}:{{cpu|round(0)}}"), "web-1:85");
        assert_eq!(render("{{ mem | humanize1024 }}B"), "3.5GiB");
        assert_eq!(render("{{ mem | humanize }}B"), "3.758GB");
        assert_eq!(render("up {{ up | humanizeDuration }}"), "up 1h 2m 5s");
        assert_eq!(render("{{ gone | round(1) }}"), "unknown");
        assert_eq!(render("no vars"), "no vars");
        assert_eq!(render("{{ up }}"), "3725");
    }

    #[test]
    fn filter_chains_apply_left_to_right() {
        // round, then humanize the rounded number: 1234.5678 -> 1234.6 -> 1.235k.
        let t = |src: &str, v: Value| {
            Template::new(src, NAMES)
                .unwrap()
                .render(&[Value::Empty, v])
        };
        assert_eq!(
            t("{{ cpu | round(1) | humanize }}", Value::Float(1234.5678)),
            "1.235k"
        );
        // round(0) first changes what humanize sees: 999.6 -> 1000 -> 1k.
        assert_eq!(
            t("{{ cpu | round(0) | humanize }}", Value::Float(999.6)),
            "1k"
        );
        assert_eq!(t("{{ cpu | humanize }}", Value::Float(999.6)), "999.6");
        // Once text, a number filter leaves it alone.
        assert_eq!(
            t("{{ cpu | humanize | round(2) }}", Value::Float(1500.0)),
            "1.5k"
        );
        assert_eq!(
            t(
                "{{ cpu | humanize1024 | humanizeDuration }}",
                Value::Float(2048.0)
            ),
            "2Ki"
        );
        // round after round: the last one says how many decimals are shown.
        assert_eq!(
            t("{{ cpu | round(1) | round(3) }}", Value::Float(2.26)),
            "2.300"
        );
        assert_eq!(
            t("{{ cpu | round(3) | round(1) }}", Value::Float(2.2549)),
            "2.3"
        );
        // round, then a duration: 90.4 -> 90 -> 1m 30s.
        assert_eq!(
            t(
                "{{ cpu | round(0) | humanizeDuration }}",
                Value::Float(90.4)
            ),
            "1m 30s"
        );
        // An integer reading goes through the chain as a number.
        assert_eq!(
            t("{{ cpu | round(1) | humanize1024 }}", Value::Int(3 << 30)),
            "3Gi"
        );
        // Text and unknown readings pass through every filter unchanged.
        assert_eq!(
            t(
                "{{ cpu | round(1) | humanize }}",
                Value::String("n/a".into())
            ),
            "n/a"
        );
        assert_eq!(
            t("{{ cpu | round(1) | humanize }}", Value::Empty),
            "unknown"
        );
    }

    #[test]
    fn infinities_and_nan_do_not_panic() {
        let t = |src: &str, v: f64| {
            Template::new(src, NAMES)
                .unwrap()
                .render(&[Value::Empty, Value::Float(v)])
        };
        for (v, shown) in [
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            for src in [
                "{{ cpu }}",
                "{{ cpu | humanize }}",
                "{{ cpu | humanize1024 }}",
                "{{ cpu | humanizeDuration }}",
                "{{ cpu | round(2) }}",
                "{{ cpu | round(2) | humanize }}",
            ] {
                assert_eq!(t(src, v), shown, "{src} of {v}");
            }
        }
        // The largest finite numbers, too.
        assert_eq!(t("{{ cpu | humanize }}", f64::MAX), "1.798e290E");
        assert_eq!(t("{{ cpu | humanize1024 }}", -f64::MAX), "-1.559e290Ei");
        assert_eq!(t("{{ cpu | humanize }}", 15e21), "1.500e4E");
        assert_eq!(t("{{ cpu | humanizeDuration }}", -90.0), "-1m 30s");
        assert!(t("{{ cpu | humanizeDuration }}", f64::MAX).starts_with("213503982334601d"));
        assert_eq!(t("{{ cpu | round(12) }}", f64::MAX).len(), 322);
    }

    #[test]
    fn humanize_takes_infinity_and_nan() {
        let t = Template::new("{{ cpu | humanize }} {{ mem | humanize1024 }}", NAMES).unwrap();
        let mut v = vals();
        v[1] = Value::Float(f64::INFINITY);
        v[2] = Value::Float(f64::NEG_INFINITY);
        assert_eq!(t.try_render(&v), Ok("+Inf -Inf".into()));
        v[1] = Value::Float(f64::NAN);
        assert_eq!(t.try_render(&v), Ok("NaN -Inf".into()));
    }

    #[test]
    fn load_errors() {
        assert!(matches!(
            Template::new("{{ cpus }}", NAMES),
            Err(TemplateError::UnknownVariable { .. })
        ));
        assert_eq!(
            Template::new("{{ cpu | round }}", NAMES),
            Err(TemplateError::UnknownFilter("round".into()))
        );
        assert_eq!(
            Template::new("{{ cpu | upper }}", NAMES),
            Err(TemplateError::UnknownFilter("upper".into()))
        );
        assert_eq!(
            Template::new("{{ cpu ", NAMES),
            Err(TemplateError::Unclosed)
        );
        assert_eq!(Template::new("{{ }}", NAMES), Err(TemplateError::Empty));
    }
}
