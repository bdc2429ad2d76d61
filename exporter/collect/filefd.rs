//! node_exporter's `filefd` collector: `/proc/sys/fs/file-nr` (allocated, unused, maximum).

use super::node::{parse_error, read_file, NodeError};
use crate::config::Paths;
use crate::exposition::Kind;
use crate::snapshot::Family;

/// `node_filefd_allocated` and `node_filefd_maximum`.
pub fn read(paths: &Paths) -> Result<Vec<Family>, NodeError> {
    let path = paths.procfs.join("sys/fs/file-nr");
    let text = read_file(&path)?;
    let (allocated, maximum) = parse_file_nr(&text).map_err(|e| parse_error(&path, e))?;
    Ok(vec![
        Family::single(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            Kind::Gauge,
            allocated as f64,
        ),
        Family::single(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            Kind::Gauge,
            maximum as f64,
        ),
    ])
}

/// `file-nr`: three numbers; the first (allocated) and the third (maximum) are exported.
pub fn parse_file_nr(text: &str) -> Result<(u64, u64), String> {
    let f: Vec<&str> = text.split_ascii_whitespace().collect();
    if f.len() != 3 {
        return Err(format!("expected 3 numbers, got {:?}", text.trim()));
    }
    let n = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("expected a number, got {s:?}"))
    };
    n(f[1])?;
    Ok((n(f[0])?, n(f[2])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_nr() {
        assert_eq!(
            parse_file_nr("1024\t0\t1631329\n").unwrap(),
            (1024, 1631329)
        );
        assert!(parse_file_nr("1024 0\n").is_err());
        assert!(parse_file_nr("1024 0 x\n").is_err());
        assert!(parse_file_nr("").is_err());
    }
}
