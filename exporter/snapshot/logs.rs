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
    /// Unix seconds at which lookout read the line (Docker's own timestamp is not asked for).
    pub at: f64,
}

/// A container whose `lookout.logs` label is not a valid regular expression.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InvalidPattern {
    pub container_id: String,
    pub name: String,
    /// The label's value, as written.
    pub pattern: String,
    /// What is wrong with it (the regex parser's message).
    pub error: String,
}

/// The log collector's part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogPart {
    /// Two entries (stdout, stderr) per followed container, sorted by name. Counters live as
    /// long as the container does (across its restarts) and start at 0 when lookout begins
    /// following it.
    pub counts: Vec<LogCounts>,
    pub last_matches: Vec<LastMatch>,
    /// Containers that asked to be followed with a label that does not compile, so a user can
    /// find out why nothing is counted.
    pub invalid_patterns: Vec<InvalidPattern>,
}
