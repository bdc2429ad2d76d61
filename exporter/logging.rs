//! Logging: `--log.level` and `--log.format`, as Prometheus exporters take them.
//!
//! Logs go to stderr, one event a line, in one of three layouts:
//!
//! - **logfmt** (the default when stderr is not a terminal), as Go exporters write it
//!   (go-kit/log, slog's `TextHandler`), so the log pipelines that already parse
//!   node_exporter's or Prometheus's lines parse lookout's:
//!   ```text
//!   ts=2026-11-30T13:04:47.123Z level=warn msg="collector failed; its series are missing until it recovers" collector=disk error="timed out after 1.0s"
//!   ```
//!   Keys come in this order: `ts` (UTC, RFC 3339 with milliseconds), `level` (lowercase:
//!   `error`, `warn`, `info`, `debug`, `trace`), `msg` (always present, `""` when the event has
//!   none), then the event's fields in the order they were written, then the fields of the spans
//!   it happened in, outermost first. A value is quoted when it is empty or holds a space, `=`,
//!   `"` or a control character; inside quotes `\`, `"`, newline, carriage return and tab are
//!   escaped as `\\`, `\"`, `\n`, `\r`, `\t`, other control characters as `\u00XX`.
//! - **json**: tracing-subscriber's JSON formatter, flattened: one object a line with
//!   `timestamp` (same clock and layout as logfmt's `ts`), `level` (uppercase, as slog's
//!   `JSONHandler` writes it), `message`, then the event's fields as top-level keys, and
//!   `span` (the innermost span's fields) only when the event happened inside one:
//!   ```text
//!   {"timestamp":"2026-11-30T13:04:47.123Z","level":"WARN","message":"collector failed; its series are missing until it recovers","collector":"disk","error":"timed out after 1.0s"}
//!   ```
//! - **human** (the default on a terminal): tracing-subscriber's readable layout, with colours.

use std::fmt;
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `ts=… level=info msg="…" key=value`, as Go exporters log (see the module doc).
    Logfmt,
    /// One flat JSON object a line (see the module doc).
    Json,
    /// tracing-subscriber's readable layout with colours; the default on a terminal, and not
    /// selectable by name, since it is meant for eyes, not parsers.
    Human,
}

impl LogFormat {
    /// The layout when none is asked for: readable on a terminal, logfmt for anything that
    /// collects the output (journald, `docker logs`, a file).
    pub fn default_for(stderr_is_terminal: bool) -> LogFormat {
        if stderr_is_terminal {
            LogFormat::Human
        } else {
            LogFormat::Logfmt
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}`; expected one of: logfmt, json"
            )),
        }
    }
}

/// The tracing filter: `level` (from `--log.level`), else `LOOKOUT_LOG`, else `info`. An
/// invalid filter falls back to `info`; the problem is returned so that it can be logged once
/// logging works.
fn filter(level: Option<&str>) -> (EnvFilter, Option<String>) {
    let wanted = level
        .map(str::to_string)
        .or_else(|| std::env::var("LOOKOUT_LOG").ok())
        .unwrap_or_else(|| "info".into());
    match EnvFilter::try_new(&wanted) {
        Ok(f) => (f, None),
        Err(e) => (
            EnvFilter::new("info"),
            Some(format!(
                "invalid log level or filter `{wanted}` ({e}); logging at info \
                 (expected e.g. info, debug, or lookout=debug)"
            )),
        ),
    }
}

/// Install the global logger: stderr, filtered by `level` (a tracing filter such as `info`,
/// `debug` or `lookout=debug`; without one, `LOOKOUT_LOG`, else `info`), laid out as `format`
/// (without one, [`LogFormat::default_for`] stderr). Does nothing if a logger is already
/// installed.
pub fn init(level: Option<&str>, format: Option<LogFormat>) {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let format = format.unwrap_or(LogFormat::default_for(terminal));
    let (filter, problem) = filter(level);
    let installed = tracing::subscriber::set_global_default(subscriber(
        format,
        filter,
        terminal,
        std::io::stderr,
        crate::now_unix,
    ))
    .is_ok();
    if let (true, Some(p)) = (installed, problem) {
        tracing::warn!("{p}");
    }
}

/// The subscriber for `format`, writing to `writer`; `clock` gives Unix seconds (injected so
/// that tests see fixed timestamps).
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
    clock: fn() -> f64,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Logfmt => Box::new(
            builder
                .with_ansi(false)
                .fmt_fields(LogfmtFields)
                .event_format(Logfmt { clock })
                .finish(),
        ),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_target(false)
                .with_timer(Rfc3339Millis { clock })
                .finish(),
        ),
        LogFormat::Human => Box::new(builder.with_target(false).with_ansi(ansi).finish()),
    }
}

/// Timestamps as logfmt's `ts`: UTC, RFC 3339, milliseconds (`2026-11-30T13:04:47.123Z`).
struct Rfc3339Millis {
    clock: fn() -> f64,
}

impl FormatTime for Rfc3339Millis {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str(&crate::http::rfc3339_millis((self.clock)()))
    }
}

/// The logfmt event layout (see the module doc).
struct Logfmt {
    clock: fn() -> f64,
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        w.write_str("ts=")?;
        w.write_str(&crate::http::rfc3339_millis((self.clock)()))?;
        w.write_str(" level=")?;
        w.write_str(level_name(event.metadata().level()))?;
        w.write_str(" msg=")?;
        write_value(&mut w, fields.message.as_deref().unwrap_or(""))?;
        if let Some(e) = fields.error {
            return Err(e);
        }
        if !fields.pairs.is_empty() {
            w.write_char(' ')?;
            w.write_str(&fields.pairs)?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>() {
                    if !f.fields.is_empty() {
                        w.write_char(' ')?;
                        w.write_str(&f.fields)?;
                    }
                }
            }
        }
        w.write_char('\n')
    }
}

/// Span fields in logfmt, so that an event can append its spans' fields as they are.
struct LogfmtFields;

impl<'w> FormatFields<'w> for LogfmtFields {
    fn format_fields<R: RecordFields>(&self, mut w: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = FieldVisitor {
            // A span has no message; a field named so is an ordinary pair.
            in_span: true,
            ..Default::default()
        };
        fields.record(&mut v);
        if let Some(e) = v.error {
            return Err(e);
        }
        w.write_str(&v.pairs)
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Collects an event's message apart and its other fields as `k=v` pairs, in order.
#[derive(Default)]
struct FieldVisitor {
    in_span: bool,
    message: Option<String>,
    pairs: String,
    error: Option<fmt::Error>,
}

impl FieldVisitor {
    fn push(&mut self, name: &str, value: &str) {
        if name == "message" && !self.in_span {
            self.message = Some(value.to_string());
            return;
        }
        if !self.pairs.is_empty() {
            self.pairs.push(' ');
        }
        // `r#type` is how tracing names a field written as a raw identifier.
        self.pairs.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.pairs.push('=');
        if let Err(e) = write_value(&mut self.pairs, value) {
            self.error = Some(e);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields and the message arrive here as Display wrappers, so Debug prints them
        // plainly; `?x` fields print as Debug.
        self.push(field.name(), &format!("{value:?}"));
    }
}

/// A logfmt value: as is when it needs no quotes, else quoted and escaped (go-kit/log's rule:
/// quote when empty or holding a space, `=`, `"` or a control character).
fn write_value(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control());
    if !needs_quotes {
        return w.write_str(value);
    }
    w.write_char('"')?;
    for c in value.chars() {
        match c {
            '\\' => w.write_str("\\\\")?,
            '"' => w.write_str("\\\"")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c if c.is_control() => write!(w, "\\u{:04x}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `MakeWriter` that keeps everything written, for reading back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// 2026-11-30T13:04:47.123Z.
    fn fixed_clock() -> f64 {
        1_796_043_887.123_4
    }

    /// What `f`'s events look like in `format` at level `debug`.
    fn capture(format: LogFormat, f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let sub = subscriber(
            format,
            EnvFilter::new("debug"),
            false,
            buf.clone(),
            fixed_clock,
        );
        tracing::subscriber::with_default(sub, f);
        buf.text()
    }

    #[test]
    fn logfmt_line_as_go_exporters_write_it() {
        let out = capture(LogFormat::Logfmt, || {
            let err = "timed out after 1.0s";
            tracing::warn!(
                collector = "disk",
                error = %err,
                "collector failed; its series are missing until it recovers"
            );
        });
        assert_eq!(
            out,
            "ts=2026-11-30T13:04:47.123Z level=warn \
             msg=\"collector failed; its series are missing until it recovers\" \
             collector=disk error=\"timed out after 1.0s\"\n"
        );
    }

    #[test]
    fn logfmt_levels_types_and_field_order() {
        let out = capture(LogFormat::Logfmt, || {
            tracing::info!(b = 2, a = true, z = 0.5, list = ?["x"], "started");
            tracing::debug!(n = -3, "debugging");
            tracing::error!(r#type = "raw", "failed");
            tracing::info!(only = "fields");
            tracing::trace!("not at debug");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "ts=2026-11-30T13:04:47.123Z level=info msg=started b=2 a=true z=0.5 list=\"[\\\"x\\\"]\"",
                "ts=2026-11-30T13:04:47.123Z level=debug msg=debugging n=-3",
                "ts=2026-11-30T13:04:47.123Z level=error msg=failed type=raw",
                "ts=2026-11-30T13:04:47.123Z level=info msg=\"\" only=fields",
            ]
        );
    }

    #[test]
    fn logfmt_escaping() {
        let mut s = String::new();
        for v in [
            "plain",
            "",
            "two words",
            "a=b",
            "say \"hi\"",
            "back\\slash",
            "back\\slash and space",
            "line\nbreak",
            "tab\there",
            "bell\u{7}",
            "ünïcode",
        ] {
            write_value(&mut s, v).unwrap();
            s.push('|');
        }
        assert_eq!(
            s,
            "plain|\"\"|\"two words\"|\"a=b\"|\"say \\\"hi\\\"\"|back\\slash|\
             \"back\\\\slash and space\"|\"line\\nbreak\"|\"tab\\there\"|\"bell\\u0007\"|ünïcode|"
        );
        let out = capture(LogFormat::Logfmt, || {
            tracing::info!(
                path = "/media/x/DONNÉES",
                line = "a \"quoted\"\nnext",
                "multi\nline"
            );
        });
        assert_eq!(
            out,
            "ts=2026-11-30T13:04:47.123Z level=info msg=\"multi\\nline\" \
             path=/media/x/DONNÉES line=\"a \\\"quoted\\\"\\nnext\"\n"
        );
        assert_eq!(out.lines().count(), 1, "one event, one line");
    }

    #[test]
    fn logfmt_appends_span_fields_outermost_first() {
        let out = capture(LogFormat::Logfmt, || {
            let outer = tracing::info_span!("cycle", n = 7);
            let _o = outer.enter();
            let inner = tracing::info_span!("collector", name = "disk", message = "x y");
            let _i = inner.enter();
            tracing::info!(took = 0.25, "done");
        });
        assert_eq!(
            out,
            "ts=2026-11-30T13:04:47.123Z level=info msg=done took=0.25 n=7 name=disk message=\"x y\"\n"
        );
    }

    #[test]
    fn json_is_one_flat_object_a_line() {
        let out = capture(LogFormat::Json, || {
            tracing::warn!(collector = "disk", error = %"timed out", "collector failed");
            let s = tracing::info_span!("cycle", n = 7);
            let _e = s.enter();
            tracing::info!("in a span");
        });
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({
                "timestamp": "2026-11-30T13:04:47.123Z",
                "level": "WARN",
                "message": "collector failed",
                "collector": "disk",
                "error": "timed out",
            })
        );
        assert_eq!(lines[1]["message"], "in a span");
        assert_eq!(lines[1]["span"]["n"], 7);
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn format_names_and_defaults() {
        assert_eq!("logfmt".parse(), Ok(LogFormat::Logfmt));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        let err = "xml".parse::<LogFormat>().unwrap_err();
        assert!(
            err.contains("`xml`") && err.contains("logfmt, json"),
            "{err}"
        );
        assert_eq!(LogFormat::default_for(false), LogFormat::Logfmt);
        assert_eq!(LogFormat::default_for(true), LogFormat::Human);
    }

    #[test]
    fn invalid_filter_falls_back_to_info_and_says_so() {
        let (_, problem) = filter(Some("lookout=loud"));
        let p = problem.expect("a problem");
        assert!(p.contains("lookout=loud") && p.contains("info"), "{p}");
        assert!(filter(Some("lookout=debug,warn")).1.is_none());
    }
}
