//! The durable outbox: every notification is stored before it is sent and removed once its
//! receiver acknowledged it, in the state database (or in memory without a `state_dir`).
//!
//! Each entry has a stable key, `fingerprint:status:fired_at:receiver`: the key of one
//! transition of one alert instance for one receiver. A key once stored is remembered for
//! [`KEY_TTL`], so the same transition handed over again (the engine's sync after a restart)
//! is never queued, and so never sent, twice. Entries are numbered in the order they were
//! queued; senders send each alert instance's transitions in that order.
//!
//! The outbox also keeps what the notifier believes fires (`active`: what was queued as
//! firing and not yet as resolved), to reconcile with the engine after a restart, and each
//! mail group's thread (the Message-ID of its first firing mail).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::Item;
use crate::state_dir::{db_error, StateDir, Store};

const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const KEYS: TableDefinition<&str, f64> = TableDefinition::new("outbox_keys");
const ACTIVE: TableDefinition<&str, &[u8]> = TableDefinition::new("notify_active");
const THREADS: TableDefinition<&str, &str> = TableDefinition::new("mail_threads");
const META: TableDefinition<&str, u64> = TableDefinition::new("outbox_meta");

/// How long a sent transition's key is remembered.
pub const KEY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A route's timing, kept with each entry so a restart keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub group_wait: f64,
    pub group_interval: f64,
    pub repeat_interval: f64,
}

/// One notification waiting for its receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub key: String,
    pub receiver: String,
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub timing: Timing,
    /// Unix seconds it was queued.
    pub created: f64,
    pub item: Item,
}

/// Where an alert went: (receiver, group key, group labels, timing).
pub type RouteOf = (String, String, BTreeMap<String, String>, Timing);

/// An alert the notifier believes fires, and where it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Active {
    pub item: Item,
    /// (receiver, group key, group labels, timing) of each receiver it was queued for.
    pub routes: Vec<RouteOf>,
}

/// What one transition changes in the outbox.
#[derive(Debug, Default)]
pub struct Change {
    /// New entries (their `seq` is assigned on commit).
    pub entries: Vec<Entry>,
    /// The alert now fires (Some) or no longer does (None), by fingerprint.
    pub active: Option<(String, Option<Active>)>,
}

/// The outbox over a database.
pub struct Outbox {
    store: Arc<Store>,
}

fn err(e: impl std::fmt::Display) -> String {
    db_error(e)
}

impl Outbox {
    /// The outbox in `state`'s database, or in memory without one (or when it cannot be
    /// opened: logged, notifications then do not survive a restart).
    pub fn open(state: &StateDir) -> Outbox {
        let store = match state.store() {
            Ok(Some(s)) => s,
            Ok(None) => memory(),
            Err(e) => {
                tracing::error!(error = %e, "cannot open the state database: the outbox is kept in memory and pending notifications will not survive a restart");
                memory()
            }
        };
        let o = Outbox { store };
        if let Err(e) = o.prune(crate::now_unix()) {
            tracing::warn!(error = %e, "outbox: cannot prune old keys");
        }
        o
    }

    fn db(&self) -> &Database {
        &self.store.db
    }

    /// Store `change` in one transaction; returns the entries actually added (those whose key
    /// was seen before are skipped), with their numbers.
    pub fn commit(&self, change: Change, now: f64) -> Result<Vec<Entry>, String> {
        let tx = self.db().begin_write().map_err(err)?;
        let mut added = Vec::new();
        {
            let mut outbox = tx.open_table(OUTBOX).map_err(err)?;
            let mut keys = tx.open_table(KEYS).map_err(err)?;
            let mut meta = tx.open_table(META).map_err(err)?;
            let mut next = meta
                .get("next_seq")
                .map_err(err)?
                .map(|g| g.value())
                .unwrap_or(1);
            for mut e in change.entries {
                if keys.get(e.key.as_str()).map_err(err)?.is_some() {
                    continue;
                }
                e.seq = next;
                e.item.seq = next;
                next += 1;
                let body = serde_json::to_vec(&e).map_err(err)?;
                outbox.insert(e.seq, body.as_slice()).map_err(err)?;
                keys.insert(e.key.as_str(), now).map_err(err)?;
                added.push(e);
            }
            meta.insert("next_seq", next).map_err(err)?;
            if let Some((fp, a)) = change.active {
                let mut active = tx.open_table(ACTIVE).map_err(err)?;
                match a {
                    Some(a) => {
                        let body = serde_json::to_vec(&a).map_err(err)?;
                        active.insert(fp.as_str(), body.as_slice()).map_err(err)?;
                    }
                    None => {
                        active.remove(fp.as_str()).map_err(err)?;
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    /// Whether a transition key was ever queued (within [`KEY_TTL`]).
    pub fn seen(&self, key: &str) -> Result<bool, String> {
        let tx = self.db().begin_read().map_err(err)?;
        match tx.open_table(KEYS) {
            Ok(t) => Ok(t.get(key).map_err(err)?.is_some()),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    /// Every pending entry, in order.
    pub fn pending(&self) -> Result<Vec<Entry>, String> {
        self.all(OUTBOX)
    }

    /// Every readable row of a table of JSON values, in key order (an unreadable row is
    /// logged and skipped).
    fn all<K: redb::Key + 'static, T: serde::de::DeserializeOwned>(
        &self,
        def: TableDefinition<K, &[u8]>,
    ) -> Result<Vec<T>, String> {
        let tx = self.db().begin_read().map_err(err)?;
        let t = match tx.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (_, v) = row.map_err(err)?;
            match serde_json::from_slice::<T>(v.value()) {
                Ok(x) => out.push(x),
                Err(e) => tracing::warn!(table = %def, error = %e, "skipping an unreadable row"),
            }
        }
        Ok(out)
    }

    /// Remove entries (sent, or dropped and counted).
    pub fn remove(&self, seqs: &[u64]) -> Result<(), String> {
        if seqs.is_empty() {
            return Ok(());
        }
        let tx = self.db().begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(OUTBOX).map_err(err)?;
            for s in seqs {
                t.remove(*s).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// What the notifier believes fires.
    pub fn active(&self) -> Result<Vec<Active>, String> {
        self.all(ACTIVE)
    }

    /// A mail group's thread.
    pub fn thread(&self, receiver: &str, group: &str) -> Option<String> {
        let key = format!("{receiver}\u{1f}{group}");
        let tx = self.db().begin_read().ok()?;
        let t = tx.open_table(THREADS).ok()?;
        let v = t.get(key.as_str()).ok()??;
        Some(v.value().to_string())
    }

    /// Set (Some) or end (None) a mail group's thread.
    pub fn set_thread(&self, receiver: &str, group: &str, id: Option<&str>) -> Result<(), String> {
        let key = format!("{receiver}\u{1f}{group}");
        let tx = self.db().begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(THREADS).map_err(err)?;
            match id {
                Some(id) => {
                    t.insert(key.as_str(), id).map_err(err)?;
                }
                None => {
                    t.remove(key.as_str()).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)
    }

    /// Forget keys older than [`KEY_TTL`].
    fn prune(&self, now: f64) -> Result<(), String> {
        let cutoff = now - KEY_TTL.as_secs_f64();
        let tx = self.db().begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(KEYS).map_err(err)?;
            let old: Vec<String> = t
                .iter()
                .map_err(err)?
                .filter_map(|r| r.ok())
                .filter(|(_, v)| v.value() < cutoff)
                .map(|(k, _)| k.value().to_string())
                .collect();
            for k in old {
                t.remove(k.as_str()).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
}

fn memory() -> Arc<Store> {
    let db = Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .expect("an in-memory database always opens");
    Arc::new(Store::new(db, "<memory>".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Status;

    fn entry(key: &str, receiver: &str) -> Entry {
        Entry {
            seq: 0,
            key: key.into(),
            receiver: receiver.into(),
            group_key: "g".into(),
            group_labels: BTreeMap::new(),
            timing: Timing {
                group_wait: 1.0,
                group_interval: 60.0,
                repeat_interval: 3600.0,
            },
            created: 0.0,
            item: Item {
                seq: 0,
                status: Status::Firing,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                starts_at: 0.0,
                ends_at: None,
                value: None,
                reason: None,
                logs: vec![],
                fingerprint: "f".into(),
            },
        }
    }

    #[test]
    fn a_key_is_queued_once_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let o = Outbox::open(&StateDir::at(dir.path()));
            let added = o
                .commit(
                    Change {
                        entries: vec![entry("a", "r1"), entry("b", "r1"), entry("a", "r2")],
                        active: None,
                    },
                    crate::now_unix(),
                )
                .unwrap();
            // The same key twice in one change: once.
            assert_eq!(added.len(), 2);
            assert_eq!(added[0].seq + 1, added[1].seq);
            let again = o
                .commit(
                    Change {
                        entries: vec![entry("a", "r1")],
                        active: None,
                    },
                    crate::now_unix(),
                )
                .unwrap();
            assert!(again.is_empty());
            o.remove(&[added[0].seq]).unwrap();
        }
        let o = Outbox::open(&StateDir::at(dir.path()));
        let p = o.pending().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "b");
        // Removed, and still never queued again.
        assert!(o.seen("a").unwrap());
        let n = o
            .commit(
                Change {
                    entries: vec![entry("a", "r1"), entry("c", "r1")],
                    active: None,
                },
                crate::now_unix(),
            )
            .unwrap();
        assert_eq!(n.len(), 1);
        assert!(n[0].seq > p[0].seq, "numbers keep growing");
    }

    #[test]
    fn threads_and_active_alerts() {
        let o = Outbox::open(&StateDir::none());
        assert_eq!(o.thread("mail", "g"), None);
        o.set_thread("mail", "g", Some("<1@x>")).unwrap();
        assert_eq!(o.thread("mail", "g").as_deref(), Some("<1@x>"));
        o.set_thread("mail", "g", None).unwrap();
        assert_eq!(o.thread("mail", "g"), None);
        let a = Active {
            item: entry("k", "r").item,
            routes: vec![],
        };
        o.commit(
            Change {
                entries: vec![],
                active: Some(("f".into(), Some(a.clone()))),
            },
            0.0,
        )
        .unwrap();
        assert_eq!(o.active().unwrap(), vec![a]);
        o.commit(
            Change {
                entries: vec![],
                active: Some(("f".into(), None)),
            },
            0.0,
        )
        .unwrap();
        assert!(o.active().unwrap().is_empty());
    }
}
