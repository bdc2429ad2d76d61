//! Name globs (`web-*`, `api-?`, `db[12]`): include and exclude lists; and the check of
//! rule-file path globs (`rules/*.yml`), which the `glob` crate expands.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Check that a glob compiles.
pub fn check(glob: &str) -> Result<(), String> {
    Glob::new(glob)
        .map(|_| ())
        .map_err(|e| e.kind().to_string())
}

/// Check a rule-file path glob: the `glob` crate's syntax (`*`, `?`, `[...]`, and `**` as a
/// whole path component), with `*` and `?` never matching `/`.
pub fn check_path(glob: &str) -> Result<(), String> {
    ::glob::Pattern::new(glob)
        .map(drop)
        .map_err(|e| format!("{} (near character {})", e.msg, e.pos + 1))
}

/// Matches a name when some include glob matches and no exclude glob does.
#[derive(Debug, Clone)]
pub struct NameFilter {
    include: GlobSet,
    exclude: GlobSet,
    /// The globs as written, for display.
    pub patterns: (Vec<String>, Vec<String>),
}

impl NameFilter {
    /// Build from globs already checked with [`check`]; invalid ones are skipped.
    pub fn new(include: &[String], exclude: &[String]) -> NameFilter {
        let build = |list: &[String]| {
            let mut b = GlobSetBuilder::new();
            for g in list {
                if let Ok(g) = Glob::new(g) {
                    b.add(g);
                }
            }
            b.build().unwrap_or_else(|_| GlobSet::empty())
        };
        NameFilter {
            include: build(include),
            exclude: build(exclude),
            patterns: (include.to_vec(), exclude.to_vec()),
        }
    }

    /// Everything.
    pub fn all() -> NameFilter {
        NameFilter::new(&["*".to_string()], &[])
    }

    pub fn matches(&self, name: &str) -> bool {
        self.include.is_match(name) && !self.exclude.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_and_exclude() {
        let f = NameFilter::new(&["web-*".into(), "db".into()], &["web-tmp*".into()]);
        assert!(f.matches("web-1"));
        assert!(f.matches("db"));
        assert!(!f.matches("web-tmp3"));
        assert!(!f.matches("cache"));
        assert!(check("web-[").is_err());
    }

    #[test]
    fn path_globs() {
        for ok in [
            "rules/*.yml",
            "/etc/lookout/**/*.yml",
            "r?les/[ab].yml",
            "{a,b}.yml",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_path("rules/[.yml"),
            Err("invalid range pattern (near character 7)".into())
        );
        assert!(check_path("rules/**.yml")
            .unwrap_err()
            .contains("recursive wildcards"));
    }
}
