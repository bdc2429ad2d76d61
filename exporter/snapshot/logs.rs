//! Log lines and pattern matches per container (the log collector's facts).

use serde::Serialize;

/// Counters of one followed container and stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogCounts {
    pub container_id: String,
    pub name: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    pub lines: u64,
    pub matches: u64,
}

/// The last matching line of a container (truncated to 500 characters).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LastMatch {
    pub container_id: String,
    pub line: String,
    /// Unix seconds.
    pub at: f64,
}

/// The log collector's part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogPart {
    pub counts: Vec<LogCounts>,
    pub last_matches: Vec<LastMatch>,
}
