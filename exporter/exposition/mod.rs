//! Exposition: a snapshot encoded as Prometheus text 0.0.4 or OpenMetrics 1.0.
//!
//! Encoding happens once per collection cycle, not per scrape: [`Exposition::encode`] renders
//! both formats, and `/metrics` serves the bytes (gzipped on demand, cached). lookout writes the
//! text itself (the prometheus-client crate was dropped) rather than building metric objects for
//! every series each cycle:
//! one pass over the snapshot, with each container's label set rendered once and reused by
//! every family, is what keeps a cycle inside its per-container CPU budget.

mod alerts;
mod container;
mod disk;
mod gpu;
mod host;
mod logs;
mod node;
mod selfmetrics;
mod textfile;

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::OnceLock;

use crate::snapshot::Snapshot;

pub use crate::snapshot::sanitize_label_name;
pub use alerts::{ActionFigures, Status};

/// The two text formats Prometheus scrapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Pick the format from an HTTP Accept header, as Prometheus negotiates it: OpenMetrics
    /// when the scraper lists it (with a non-zero q), the classic text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        for part in accept.split(',') {
            let mut items = part.split(';').map(str::trim);
            let media = items.next().unwrap_or("");
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                let q_zero = items.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                if !q_zero {
                    return Format::OpenMetrics;
                }
            }
        }
        Format::Text
    }
}

/// Metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Samples `<name>_bucket{le=...}`, `<name>_sum`, `<name>_count`, written by the caller.
    Histogram,
    /// Samples `<name>{quantile=...}`, `<name>_sum`, `<name>_count`, written by the caller
    /// (only textfiles bring them).
    Summary,
    /// node_exporter's untyped families (`node_vmstat_*`, `node_netstat_*`): `untyped` in the
    /// text format, `unknown` in OpenMetrics.
    Untyped,
}

/// Writes families and samples once, for both formats. The buffer holds the text-0.0.4
/// exposition, contiguous (served as one block). OpenMetrics differs only in each family's
/// `# HELP`/`# TYPE` header (counters are named without `_total`) and the final `# EOF`, so it
/// is served as chunks: each family's OpenMetrics header, then a zero-copy slice of its samples.
pub struct Encoder {
    pub buf: String,
    heads: Vec<Head>,
}

/// What the encoder keeps of each family.
struct Head {
    /// Where its samples start in `buf`.
    samples_start: usize,
    /// Its OpenMetrics header.
    om: String,
    /// Where its name is in `buf` (in its text header).
    name_start: usize,
    name_len: usize,
    kind: Kind,
}

impl Encoder {
    pub fn new(capacity: usize) -> Encoder {
        Encoder {
            buf: String::with_capacity(capacity),
            heads: Vec::new(),
        }
    }

    /// Start a family. `name` is the sample name (counters end in `_total`).
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let mut om = String::with_capacity(name.len() * 2 + help.len() + 24);
        write_header(&mut om, name, help, kind, Format::OpenMetrics);
        let name_start = self.buf.len() + "# HELP ".len();
        write_header(&mut self.buf, name, help, kind, Format::Text);
        self.heads.push(Head {
            samples_start: self.buf.len(),
            om,
            name_start,
            name_len: name.len(),
            kind,
        });
    }

    /// Every name the families written so far take, in either format (see [`exposed_names`]).
    pub fn taken_names(&self) -> HashSet<String> {
        let mut out = HashSet::with_capacity(self.heads.len() * 2);
        for h in &self.heads {
            let name = &self.buf[h.name_start..h.name_start + h.name_len];
            out.extend(exposed_names(name, h.kind));
        }
        out
    }

    /// One sample. `labels` is a pre-rendered `a="x",b="y"` list (may be empty); `extra` adds
    /// more pairs after it.
    pub fn sample(&mut self, name: &str, labels: &str, extra: &[(&str, &str)], value: f64) {
        self.buf.push_str(name);
        if !labels.is_empty() || !extra.is_empty() {
            self.buf.push('{');
            self.buf.push_str(labels);
            let mut first = labels.is_empty();
            for (k, v) in extra {
                if !first {
                    self.buf.push(',');
                }
                first = false;
                push_label(&mut self.buf, k, v);
            }
            self.buf.push('}');
        }
        self.buf.push(' ');
        push_value(&mut self.buf, value);
        self.buf.push('\n');
    }

    /// Family and its single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: f64) {
        self.family(name, help, kind);
        self.sample(name, "", &[], value);
    }

    /// Freeze into shareable bytes.
    pub fn finish(self) -> Encoded {
        let text = bytes::Bytes::from(self.buf);
        let mut families = Vec::with_capacity(self.heads.len());
        for (i, h) in self.heads.iter().enumerate() {
            // The next family's samples start after its text header; find where that header began.
            let end = match self.heads.get(i + 1) {
                Some(next) => header_start(&text, next.samples_start),
                None => text.len(),
            };
            families.push((
                bytes::Bytes::from(h.om.clone()),
                text.slice(h.samples_start..end),
            ));
        }
        Encoded { text, families }
    }

    /// Everything, as one string in `format` (for `lookout once` and tests).
    pub fn into_string(self, format: Format) -> String {
        let enc = self.finish();
        let mut s = String::with_capacity(enc.text.len() + 4096);
        for c in enc.chunks(format) {
            s.push_str(std::str::from_utf8(&c).unwrap_or(""));
        }
        s
    }
}

/// The names a family takes in either format: its own; a counter's OpenMetrics name (without
/// `_total`); the sample names a histogram or summary adds. Two families that share one would
/// be one family to a scraper.
pub fn exposed_names(name: &str, kind: Kind) -> Vec<String> {
    let mut out = vec![name.to_string()];
    match kind {
        Kind::Counter => {
            if let Some(base) = name.strip_suffix("_total") {
                out.push(base.to_string());
            }
        }
        Kind::Histogram | Kind::Summary => {
            for suffix in ["_bucket", "_sum", "_count"] {
                if suffix != "_bucket" || kind == Kind::Histogram {
                    out.push(format!("{name}{suffix}"));
                }
            }
        }
        Kind::Gauge | Kind::Untyped => {}
    }
    out
}

fn write_header(h: &mut String, name: &str, help: &str, kind: Kind, format: Format) {
    let family = match (format, kind) {
        (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    h.push_str("# HELP ");
    h.push_str(family);
    h.push(' ');
    escape_help(h, help, format);
    h.push_str("\n# TYPE ");
    h.push_str(family);
    h.push_str(match kind {
        // OpenMetrics requires a counter's samples to end in `_total`. A counter that keeps
        // another exporter's name without it (DCGM's) is typed unknown there, not renamed.
        Kind::Counter if format == Format::OpenMetrics && !name.ends_with("_total") => " unknown\n",
        Kind::Counter => " counter\n",
        Kind::Gauge => " gauge\n",
        Kind::Histogram => " histogram\n",
        Kind::Summary => " summary\n",
        Kind::Untyped if format == Format::OpenMetrics => " unknown\n",
        Kind::Untyped => " untyped\n",
    });
}

/// The start of the two header lines (`# HELP`, `# TYPE`) that end at `samples_start`.
fn header_start(text: &[u8], samples_start: usize) -> usize {
    let mut newlines = 0;
    let mut i = samples_start;
    while i > 0 {
        if text[i - 1] == b'\n' {
            newlines += 1;
            if newlines == 3 {
                return i;
            }
        }
        i -= 1;
    }
    0
}

/// An encoded exposition: the text format contiguous, and each family's OpenMetrics header
/// beside a slice of its samples.
pub struct Encoded {
    text: bytes::Bytes,
    families: Vec<(bytes::Bytes, bytes::Bytes)>,
}

impl Encoded {
    /// The body in `format`, as zero-copy chunks (one for text).
    pub fn chunks(&self, format: Format) -> Vec<bytes::Bytes> {
        match format {
            Format::Text => vec![self.text.clone()],
            Format::OpenMetrics => {
                let mut out = Vec::with_capacity(self.families.len() * 2 + 1);
                for (om, samples) in &self.families {
                    out.push(om.clone());
                    if !samples.is_empty() {
                        out.push(samples.clone());
                    }
                }
                out.push(bytes::Bytes::from_static(b"# EOF\n"));
                out
            }
        }
    }

    /// Size of the text exposition.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Append `k="v"` with the value escaped.
pub fn push_label(buf: &mut String, k: &str, v: &str) {
    buf.push_str(k);
    buf.push_str("=\"");
    for ch in v.chars() {
        match ch {
            '\\' => buf.push_str("\\\\"),
            '"' => buf.push_str("\\\""),
            '\n' => buf.push_str("\\n"),
            c => buf.push(c),
        }
    }
    buf.push('"');
}

fn escape_help(buf: &mut String, help: &str, format: Format) {
    for ch in help.chars() {
        match ch {
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '"' if format == Format::OpenMetrics => buf.push_str("\\\""),
            c => buf.push(c),
        }
    }
}

/// Write a sample value: integers without a fraction, others in Rust's shortest round-trip form.
pub fn push_value(buf: &mut String, v: f64) {
    if v.is_nan() {
        buf.push_str("NaN");
    } else if v.is_infinite() {
        buf.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(buf, "{}", v as i64);
    } else {
        let _ = write!(buf, "{v}");
    }
}

fn encode_all(snap: &Snapshot, status: Option<&Status>, capacity: usize) -> Encoder {
    let mut enc = Encoder::new(capacity);
    selfmetrics::encode(&mut enc, snap, status);
    container::encode(&mut enc, snap);
    host::encode(&mut enc, snap);
    node::encode(&mut enc, snap);
    disk::encode(&mut enc, snap);
    gpu::encode(&mut enc, snap);
    logs::encode(&mut enc, snap);
    if let Some(s) = status {
        alerts::encode(&mut enc, s);
    }
    // Last: a textfile family that takes a name of lookout's own families is dropped.
    textfile::encode(&mut enc, snap);
    enc
}

/// Encode every family of a snapshot in one format, as one string.
pub fn render(snap: &Snapshot, format: Format) -> String {
    render_with(snap, None, format)
}

/// Encode a snapshot and, when given, lookout's status, in one format.
pub fn render_with(snap: &Snapshot, status: Option<&Status>, format: Format) -> String {
    encode_all(snap, status, 4096 + snap.containers.len() * 8192).into_string(format)
}

/// Only the host and filesystem families (node_exporter's part), for the golden test and the
/// bench harness.
pub fn render_host_disk(snap: &Snapshot, format: Format) -> String {
    let mut enc = Encoder::new(16384);
    host::encode(&mut enc, snap);
    disk::encode(&mut enc, snap);
    enc.into_string(format)
}

/// Only the node_exporter-style collectors' families (`stat`, `filefd`, ...), for the golden
/// tests.
pub fn render_node(snap: &Snapshot, format: Format) -> String {
    let mut enc = Encoder::new(16384);
    node::encode(&mut enc, snap);
    enc.into_string(format)
}

/// A snapshot's exposition for both formats, with gzip encodings made on first request.
pub struct Exposition {
    encoded: Encoded,
    text_gz: OnceLock<bytes::Bytes>,
    openmetrics_gz: OnceLock<bytes::Bytes>,
}

impl Exposition {
    /// Encode `snap`; `size_hint` is the previous exposition's size (to allocate once).
    pub fn encode(snap: &Snapshot, size_hint: usize) -> Exposition {
        Exposition::encode_with(snap, None, size_hint)
    }

    /// Encode `snap` and, when given, lookout's status (the rule engine's series, its tasks).
    pub fn encode_with(snap: &Snapshot, status: Option<&Status>, size_hint: usize) -> Exposition {
        let cap = if size_hint > 0 {
            size_hint + size_hint / 8
        } else {
            4096 + snap.containers.len() * 8192
        };
        Exposition {
            encoded: encode_all(snap, status, cap).finish(),
            text_gz: OnceLock::new(),
            openmetrics_gz: OnceLock::new(),
        }
    }

    /// Size of the samples, for the next cycle's allocation.
    pub fn len(&self) -> usize {
        self.encoded.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body in `format` as zero-copy chunks.
    pub fn chunks(&self, format: Format) -> Vec<bytes::Bytes> {
        self.encoded.chunks(format)
    }

    /// Whether the gzip of `format` is already made.
    pub fn has_gzipped(&self, format: Format) -> bool {
        match format {
            Format::Text => self.text_gz.get().is_some(),
            Format::OpenMetrics => self.openmetrics_gz.get().is_some(),
        }
    }

    /// The gzip of a format's body, compressed once per snapshot.
    pub fn gzipped(&self, format: Format) -> bytes::Bytes {
        let cell = match format {
            Format::Text => &self.text_gz,
            Format::OpenMetrics => &self.openmetrics_gz,
        };
        cell.get_or_init(|| {
            use std::io::Write as _;
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.len() / 12 + 1024),
                flate2::Compression::fast(),
            );
            for c in self.chunks(format) {
                let _ = gz.write_all(&c);
            }
            gz.finish().unwrap_or_default().into()
        })
        .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_differ_between_formats() {
        let mut t = Encoder::new(0);
        t.family("x_total", "An \"x\".", Kind::Counter);
        t.sample("x_total", "a=\"1\"", &[("b", "q\"\\\n")], 2.5);
        let t = t.into_string(Format::Text);
        assert_eq!(
            t,
            "# HELP x_total An \"x\".\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"\\\\\\n\"} 2.5\n"
        );
        let mut o = Encoder::new(0);
        o.family("x_total", "An \"x\".", Kind::Counter);
        o.sample("x_total", "", &[], 3.0);
        assert_eq!(
            o.into_string(Format::OpenMetrics),
            "# HELP x An \\\"x\\\".\n# TYPE x counter\nx_total 3\n# EOF\n"
        );
    }

    #[test]
    fn untyped_is_unknown_in_openmetrics() {
        let enc = || {
            let mut e = Encoder::new(0);
            e.single("node_vmstat_pgfault", "A field.", Kind::Untyped, 7.0);
            e
        };
        assert_eq!(
            enc().into_string(Format::Text),
            "# HELP node_vmstat_pgfault A field.\n# TYPE node_vmstat_pgfault untyped\nnode_vmstat_pgfault 7\n"
        );
        assert_eq!(
            enc().into_string(Format::OpenMetrics),
            "# HELP node_vmstat_pgfault A field.\n# TYPE node_vmstat_pgfault unknown\nnode_vmstat_pgfault 7\n# EOF\n"
        );
    }

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    #[test]
    fn values_and_names() {
        let mut s = String::new();
        push_value(&mut s, 64.0 * 1024.0 * 1024.0);
        s.push(' ');
        push_value(&mut s, 0.25);
        s.push(' ');
        push_value(&mut s, f64::NAN);
        assert_eq!(s, "67108864 0.25 NaN");
        assert_eq!(
            sanitize_label_name("com.docker.compose-project"),
            "com_docker_compose_project"
        );
    }
}
