//! What node_exporter's textfile collector read: the families of the `*.prom` files in the
//! textfile directory, merged by name, with each file's mtime and whether anything failed.
//!
//! Whether a family may be exported at all is decided when the exposition is written, since only
//! then is every family of lookout's own known: a textfile family that takes one of their names
//! is dropped there and counted in `node_textfile_scrape_error`.

use crate::exposition::Kind;

/// One cycle of the textfile collector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextfilePart {
    /// The files' families, merged across files, sorted by name.
    pub families: Vec<TextFamily>,
    /// `(path, mtime in whole seconds)` of each file that parsed, sorted by path
    /// (`node_textfile_mtime_seconds{file}`).
    pub mtimes: Vec<(String, f64)>,
    /// Whether the directory could not be read, or a file or one of its families was skipped
    /// (`node_textfile_scrape_error`).
    pub errored: bool,
}

/// One family as the files give it, samples ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFamily {
    /// The family's name (a histogram's or summary's samples add their suffixes to it).
    pub name: String,
    pub help: String,
    pub kind: Kind,
    /// The files it was read from, for messages.
    pub files: Vec<String>,
    pub samples: Vec<TextSample>,
}

/// One sample of a [`TextFamily`].
#[derive(Debug, Clone, PartialEq)]
pub struct TextSample {
    /// What the sample's name adds to the family's: `""`, or a histogram's or summary's
    /// `_bucket`, `_sum`, `_count`.
    pub suffix: &'static str,
    /// Labels in the order written (a bucket's `le` or a quantile's `quantile` last).
    pub labels: Vec<(String, String)>,
    pub value: f64,
}
