//! `state_dir`: where lookout keeps what must survive a restart (alert state, container facts
//! such as recent restarts and OOM counts, GPU XID state; later the outbox and the action log).
//!
//! One owner for the directory: every file in it is read and written through [`StateDir`],
//! each as one JSON document replaced atomically (a temporary file renamed over the old one),
//! so a crash mid-write leaves the previous version, never half a file.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
}

/// The state directory, or none (state is then not kept across restarts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDir {
    dir: Option<PathBuf>,
}

impl StateDir {
    /// No directory: loads find nothing and saves do nothing.
    pub fn none() -> StateDir {
        StateDir { dir: None }
    }

    /// A given directory (created on first save).
    pub fn at(dir: impl Into<PathBuf>) -> StateDir {
        StateDir {
            dir: Some(dir.into()),
        }
    }

    /// The configured directory (created now; a failure is logged), else the first writable
    /// default: `/var/lib/lookout`, `$XDG_DATA_HOME/lookout`, `$HOME/.local/share/lookout`.
    pub fn resolve(configured: Option<&Path>) -> StateDir {
        match configured {
            Some(d) => {
                if let Err(e) = std::fs::create_dir_all(d) {
                    tracing::warn!(dir = %d.display(), error = %e, "cannot create state_dir; state will not survive a restart");
                }
                StateDir::at(d)
            }
            None => {
                let d = default_dir();
                if d.is_none() {
                    tracing::warn!("no writable state_dir (/var/lib/lookout, $XDG_DATA_HOME, $HOME); state will not survive a restart");
                }
                StateDir { dir: d }
            }
        }
    }

    /// The directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The path of a file in it.
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(name))
    }

    /// Read `name`; `Ok(None)` when there is no directory or no such file yet.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let Some(path) = self.file(name) else {
            return Ok(None);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StateError::Read {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// Replace `name` with `value`, atomically. Nothing happens without a directory.
    pub fn save<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let Some(path) = self.file(name) else {
            return Ok(());
        };
        let err = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        let body = serde_json::to_vec_pretty(value).map_err(|e| err(e.into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &body).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }
}

fn default_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/var/lib/lookout")];
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(x).join("lookout"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(h).join(".local/share/lookout"));
    }
    candidates.into_iter().find(|d| writable(d))
}

fn writable(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".lookout-probe-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_absent() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::at(dir.path().join("sub"));
        assert_eq!(s.load::<Vec<u32>>("x.json").unwrap(), None);
        s.save("x.json", &vec![1u32, 2]).unwrap();
        assert_eq!(s.load::<Vec<u32>>("x.json").unwrap(), Some(vec![1, 2]));
        std::fs::write(s.file("x.json").unwrap(), "{broken").unwrap();
        assert!(s.load::<Vec<u32>>("x.json").is_err());
        let none = StateDir::none();
        none.save("x.json", &1u32).unwrap();
        assert_eq!(none.load::<u32>("x.json").unwrap(), None);
    }
}
