//! `state_dir`: where lookout keeps what must survive a restart: alert state, container facts
//! (recent restarts, OOM counts), GPU XID state, the notification outbox, silences and mail
//! threads.
//!
//! One owner, one crash-safe home: everything lives in one embedded [redb] database,
//! `state_dir/lookout.redb`, whose transactions are atomic and fsync on commit. Documents
//! (`alerts.json`, `containers.json`, `gpu.json`: the names of the files they once were) are
//! JSON values in its `documents` table, read and written through [`StateDir::load`] and
//! [`StateDir::save`]; the notifier keeps its own tables in the same database
//! ([`StateDir::store`]). A document still in an old JSON file of that name is read from the
//! file until it is first saved.
//!
//! redb rather than SQLite: pure Rust (no C library to build or link), a small API made for
//! exactly this (typed key-value tables, ACID, one writer and many readers, copy-on-write
//! B-trees that a crash cannot leave half-written), and a single file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{Database, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The database file inside the state directory.
pub const DB_FILE: &str = "lookout.redb";

/// JSON documents by name.
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");

/// Why state could not be read or written.
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

/// The open database.
pub struct Store {
    pub db: Database,
    path: PathBuf,
}

impl Store {
    pub fn new(db: Database, path: PathBuf) -> Store {
        Store { db, path }
    }

    /// Where it is, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

/// A storage error as text (redb's errors are many types).
pub fn db_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The state directory, or none (state is then not kept across restarts). Clones share one
/// database, opened on first use.
#[derive(Debug, Clone, Default)]
pub struct StateDir {
    dir: Option<PathBuf>,
    /// The database once opened; a failed open is tried again on the next use.
    store: Arc<Mutex<Option<Arc<Store>>>>,
}

impl PartialEq for StateDir {
    fn eq(&self, o: &StateDir) -> bool {
        self.dir == o.dir
    }
}

impl StateDir {
    /// No directory: loads find nothing and saves do nothing.
    pub fn none() -> StateDir {
        StateDir::default()
    }

    /// A given directory (created on first use).
    pub fn at(dir: impl Into<PathBuf>) -> StateDir {
        StateDir {
            dir: Some(dir.into()),
            store: Arc::default(),
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
                StateDir {
                    dir: d,
                    store: Arc::default(),
                }
            }
        }
    }

    /// The directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Where a document is kept, for messages: `DIR/lookout.redb (alerts.json)`.
    pub fn describe(&self, name: &str) -> String {
        match &self.dir {
            Some(d) => format!("{} ({name})", d.join(DB_FILE).display()),
            None => format!("(no state_dir) ({name})"),
        }
    }

    /// The database, opened (and created) on first use; `Ok(None)` without a directory.
    pub fn store(&self) -> Result<Option<Arc<Store>>, String> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = &*slot {
            return Ok(Some(s.clone()));
        }
        let path = dir.join(DB_FILE);
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let db = Database::create(&path)
            .map_err(|e| format!("cannot open the state database {}: {e}", path.display()))?;
        let s = Arc::new(Store { db, path });
        *slot = Some(s.clone());
        Ok(Some(s))
    }

    /// Read `name`; `Ok(None)` when there is no directory or no such document yet.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let read_err = |message: String| StateError::Read {
            path: self.describe(name),
            message,
        };
        let Some(store) = self.store().map_err(read_err)? else {
            return Ok(None);
        };
        let bytes: Option<Vec<u8>> = (|| -> Result<Option<Vec<u8>>, String> {
            let tx = store.db.begin_read().map_err(db_error)?;
            let table = match tx.open_table(DOCUMENTS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db_error(e)),
            };
            let v = table.get(name).map_err(db_error)?;
            Ok(v.map(|g| g.value().to_vec()))
        })()
        .map_err(read_err)?;
        let bytes = match bytes {
            Some(b) => b,
            // A document from before the database: the JSON file of that name.
            None => match self.legacy(name) {
                Some(b) => b,
                None => return Ok(None),
            },
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| read_err(e.to_string()))
    }

    fn legacy(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.dir.as_ref()?.join(name);
        std::fs::read(path).ok()
    }

    /// Replace `name` with `value`, atomically and durably. Nothing happens without a
    /// directory.
    pub fn save<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let err = |message: String| StateError::Write {
            path: self.describe(name),
            source: std::io::Error::other(message),
        };
        let Some(store) = self.store().map_err(err)? else {
            return Ok(());
        };
        let body = serde_json::to_vec(value).map_err(|e| err(e.to_string()))?;
        let tx = store.db.begin_write().map_err(|e| err(db_error(e)))?;
        {
            let mut t = tx.open_table(DOCUMENTS).map_err(|e| err(db_error(e)))?;
            t.insert(name, body.as_slice())
                .map_err(|e| err(db_error(e)))?;
        }
        tx.commit().map_err(|e| err(db_error(e)))?;
        // The old file, if any, is superseded.
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(dir.join(name));
        }
        Ok(())
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
        s.save("x.json", &"not a list").unwrap();
        assert!(s.load::<Vec<u32>>("x.json").is_err());
        // A second handle on the same directory shares the open database.
        let t = s.clone();
        assert_eq!(
            t.load::<String>("x.json").unwrap().as_deref(),
            Some("not a list")
        );
        drop((s, t));
        // Reopened: still there.
        let s = StateDir::at(dir.path().join("sub"));
        assert_eq!(
            s.load::<String>("x.json").unwrap().as_deref(),
            Some("not a list")
        );
        // A document still in its old JSON file is read from it until saved.
        std::fs::write(dir.path().join("sub/old.json"), "[7]").unwrap();
        assert_eq!(s.load::<Vec<u32>>("old.json").unwrap(), Some(vec![7]));
        s.save("old.json", &vec![8u32]).unwrap();
        assert!(!dir.path().join("sub/old.json").exists());
        assert_eq!(s.load::<Vec<u32>>("old.json").unwrap(), Some(vec![8]));
        let none = StateDir::none();
        none.save("x.json", &1u32).unwrap();
        assert_eq!(none.load::<u32>("x.json").unwrap(), None);
    }
}
