//! Source locations (line:col) of every key and value in a YAML document.
//!
//! serde_yaml parses lookout's config and rule files, but it cannot say where a value that
//! parsed fine yet is wrong (a bad duration, a glob that does not compile) came from. This index
//! walks the same text once with yaml-rust2's event parser and remembers, for each path such as
//! `docker.include[1]` or `groups[0].rules[2].for`, where its key and its value start. Validation
//! then reports every problem at once, each as `FILE:LINE:COL: message`.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A problem found in a file, located as precisely as the index allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: a value from the environment or a flag, which has no position to show; its
        // origin is shown once, whether or not the message already starts with it.
        if self.pos.line == 0 {
            if self.message.starts_with(&self.file) {
                write!(f, "{}", self.message)
            } else {
                write!(f, "{}: {}", self.file, self.message)
            }
        } else {
            write!(f, "{}:{}: {}", self.file, self.pos, self.message)
        }
    }
}

/// Where each path's key and value start.
#[derive(Debug, Default, Clone)]
pub struct Locations {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

impl Locations {
    /// Index `text`. A document that does not parse yields an empty index (serde_yaml reports
    /// the syntax error itself, with its own location).
    pub fn index(text: &str) -> Self {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut walker, false);
        walker.locs
    }

    /// Where the value at `path` starts, else its key, else the nearest enclosing path's.
    pub fn value(&self, path: &str) -> Pos {
        self.lookup(path, true)
    }

    /// Where the key at `path` starts (for "unknown key" errors), else as [`Self::value`].
    pub fn key(&self, path: &str) -> Pos {
        self.lookup(path, false)
    }

    fn lookup(&self, path: &str, value_first: bool) -> Pos {
        let mut p = path;
        loop {
            let (a, b) = if value_first {
                (&self.values, &self.keys)
            } else {
                (&self.keys, &self.values)
            };
            if let Some(pos) = a.get(p).or_else(|| b.get(p)) {
                return *pos;
            }
            match parent(p) {
                Some(up) => p = up,
                None => {
                    return self
                        .values
                        .get("")
                        .copied()
                        .unwrap_or(Pos { line: 1, col: 1 })
                }
            }
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → ``.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Join a child key onto a path.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Join an index onto a path.
pub fn join_index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

enum Frame {
    /// In a mapping: the key awaiting its value, if any.
    Map { path: String, key: Option<String> },
    /// In a sequence: the next index.
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    locs: Locations,
}

impl Walker {
    fn pos(mark: Marker) -> Pos {
        Pos {
            line: mark.line(),
            col: mark.col() + 1,
        }
    }

    /// The path of the node that starts now, or None when this scalar is a mapping key.
    fn node_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = join_index(path, *next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    // This node is a key.
                    let k = scalar.unwrap_or("?").to_string();
                    let full = join(path, &k);
                    self.locs.keys.entry(full).or_insert(Self::pos(mark));
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(p) = self.node_path(Some(&value), mark) {
                    self.locs.values.entry(p).or_insert(Self::pos(mark));
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node_path(None, mark) {
                    self.locs.values.entry(p).or_insert(Self::pos(mark));
                }
            }
            Event::MappingStart(..) => {
                let p = self.node_path(None, mark).unwrap_or_default();
                self.locs.values.entry(p.clone()).or_insert(Self::pos(mark));
                self.stack.push(Frame::Map { path: p, key: None });
            }
            Event::SequenceStart(..) => {
                let p = self.node_path(None, mark).unwrap_or_default();
                self.locs.values.entry(p.clone()).or_insert(Self::pos(mark));
                self.stack.push(Frame::Seq { path: p, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Turn a serde_yaml error into a located problem (serde_yaml knows where syntax and type
/// errors are; unknown keys are pointed at their key via the index when the message names one).
pub fn from_serde(file: &str, err: &serde_yaml::Error, locs: &Locations, base: &str) -> Located {
    let msg = err.to_string();
    let pos = err
        .location()
        .map(|l| Pos {
            line: l.line(),
            col: l.column(),
        })
        .unwrap_or_else(|| locs.value(base));
    Located {
        file: file.to_string(),
        pos,
        message: strip_serde_location(&msg),
    }
}

/// serde_yaml appends " at line N column M" to its messages; we print the location up front.
pub fn strip_serde_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_without_a_position_is_shown_once() {
        let at = |file: &str, line, message: &str| {
            Located {
                file: file.into(),
                pos: Pos { line, col: 3 },
                message: message.into(),
            }
            .to_string()
        };
        assert_eq!(at("a.yml", 2, "x: bad"), "a.yml:2:3: x: bad");
        assert_eq!(
            at("--interval", 0, "--interval \"10\": invalid duration"),
            "--interval \"10\": invalid duration"
        );
        assert_eq!(
            at("--interval", 0, "must be at least 100ms"),
            "--interval: must be at least 100ms"
        );
    }

    #[test]
    fn indexes_keys_values_and_sequences() {
        let text = "listen: 0.0.0.0:9659\ndocker:\n  include: [\"a*\", \"b\"]\n  exclude:\n    - c\n    - d\n";
        let l = Locations::index(text);
        assert_eq!(l.value("listen"), Pos { line: 1, col: 9 });
        assert_eq!(l.key("listen"), Pos { line: 1, col: 1 });
        assert_eq!(l.key("docker.include"), Pos { line: 3, col: 3 });
        // `  include: ["a*", "b"]`: the second item's quote is the 19th character.
        assert_eq!(l.value("docker.include[1]"), Pos { line: 3, col: 19 });
        assert_eq!(l.value("docker.exclude[1]"), Pos { line: 6, col: 7 });
        // Unknown paths fall back to the nearest parent.
        assert_eq!(l.value("docker.exclude[7]"), l.value("docker.exclude"));
    }
}
