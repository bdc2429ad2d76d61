//! Silences, with Alertmanager's semantics: an alert matching every matcher of a silence
//! that is in effect (`startsAt <= now < endsAt`) is not notified; when the silence ends, an
//! alert still firing is notified. Kept in the state database (`silences.json`).

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::matcher::{all_match, Matcher};
use crate::state_dir::StateDir;

/// The document silences are kept in.
pub const SILENCES: &str = "silences.json";

/// Expired silences are kept this long for `GET`, then forgotten.
const KEEP_EXPIRED: f64 = 5.0 * 24.0 * 3600.0;

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    /// Unix seconds.
    pub starts_at: f64,
    pub ends_at: f64,
    pub created_by: String,
    pub comment: String,
    pub updated_at: f64,
}

impl Silence {
    /// `pending`, `active` or `expired` at `now`.
    pub fn state(&self, now: f64) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>, now: f64) -> bool {
        self.state(now) == "active" && all_match(&self.matchers, labels)
    }
}

/// A new silence as asked for.
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matchers: Vec<Matcher>,
    pub starts_at: f64,
    pub ends_at: f64,
    pub created_by: String,
    pub comment: String,
}

/// The silences, shared by the notifier and the HTTP API.
pub struct Silences {
    list: RwLock<Vec<Silence>>,
    state: StateDir,
}

impl Silences {
    /// Load what `state` keeps.
    pub fn load(state: &StateDir) -> Silences {
        let list = match state.load::<Vec<Silence>>(SILENCES) {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the silences; starting with none");
                Vec::new()
            }
        };
        Silences {
            list: RwLock::new(list),
            state: state.clone(),
        }
    }

    fn save(&self, list: &[Silence]) -> Result<(), String> {
        self.state.save(SILENCES, list).map_err(|e| e.to_string())
    }

    /// Every silence, newest first.
    pub fn list(&self) -> Vec<Silence> {
        let mut v = self.list.read().unwrap_or_else(|p| p.into_inner()).clone();
        v.sort_by(|a, b| b.updated_at.total_cmp(&a.updated_at));
        v
    }

    /// The ids of the silences in effect that match `labels`.
    pub fn silencing(&self, labels: &BTreeMap<String, String>, now: f64) -> Vec<String> {
        self.list
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.matches(labels, now))
            .map(|s| s.id.clone())
            .collect()
    }

    /// How many are in effect.
    pub fn active_count(&self, now: f64) -> usize {
        self.list
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.state(now) == "active")
            .count()
    }

    /// Add a silence; returns its id.
    pub fn add(&self, new: NewSilence, now: f64) -> Result<String, String> {
        if new.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if new.matchers.iter().all(|m| m.matches(&BTreeMap::new())) {
            return Err("a silence's matchers must not all match the empty label set (it would silence everything)".into());
        }
        if new.ends_at.is_nan() || new.ends_at <= new.starts_at {
            return Err("endsAt must be after startsAt".into());
        }
        if new.ends_at <= now {
            return Err("endsAt is in the past".into());
        }
        let id = new_id(now);
        let s = Silence {
            id: id.clone(),
            matchers: new.matchers,
            starts_at: new.starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            comment: new.comment,
            updated_at: now,
        };
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        list.retain(|s| s.ends_at + KEEP_EXPIRED > now);
        list.push(s);
        self.save(&list)?;
        Ok(id)
    }

    /// End a silence now; false when there is no such silence or it had ended.
    pub fn expire(&self, id: &str, now: f64) -> Result<bool, String> {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let Some(s) = list.iter_mut().find(|s| s.id == id) else {
            return Ok(false);
        };
        if s.state(now) == "expired" {
            return Ok(false);
        }
        s.ends_at = now;
        if s.starts_at > now {
            s.starts_at = now;
        }
        s.updated_at = now;
        self.save(&list)?;
        Ok(true)
    }
}

/// A random-enough id: time and a counter, hashed into UUID form.
fn new_id(now: f64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let a = super::fnv(&[
        &now.to_bits().to_le_bytes(),
        &n.to_le_bytes(),
        &std::process::id().to_le_bytes(),
    ]);
    let b = super::fnv(&[&a.to_le_bytes(), &n.to_le_bytes()]);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a as u16,
        (b >> 48) as u16,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::notify::labels as l;

    #[test]
    fn a_silence_silences_while_in_effect_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path());
        let s = Silences::load(&state);
        let web = l(&[("name", "web-1")]);
        let id = s
            .add(
                NewSilence {
                    matchers: vec![Matcher::parse(r#"name="web-1""#).unwrap()],
                    starts_at: 100.0,
                    ends_at: 200.0,
                    created_by: "me".into(),
                    comment: "deploy".into(),
                },
                100.0,
            )
            .unwrap();
        assert_eq!(s.silencing(&web, 150.0), vec![id.clone()]);
        assert!(s.silencing(&l(&[("name", "db")]), 150.0).is_empty());
        assert!(s.silencing(&web, 200.0).is_empty(), "ended");
        let again = Silences::load(&state);
        assert_eq!(again.list().len(), 1);
        assert!(again.expire(&id, 120.0).unwrap());
        assert!(again.silencing(&web, 130.0).is_empty());
        assert!(!again.expire(&id, 130.0).unwrap());
        assert!(!again.expire("nope", 130.0).unwrap());
    }

    #[test]
    fn refuses_silences_that_silence_everything_or_nothing() {
        let s = Silences::load(&StateDir::none());
        let new = |m: &str, a: f64, b: f64| NewSilence {
            matchers: vec![Matcher::parse(m).unwrap()],
            starts_at: a,
            ends_at: b,
            created_by: String::new(),
            comment: String::new(),
        };
        assert!(s.add(new(r#"name=~".*""#, 0.0, 10.0), 0.0).is_err());
        assert!(s.add(new(r#"name="a""#, 10.0, 5.0), 0.0).is_err());
        assert!(s.add(new(r#"name="a""#, 0.0, 5.0), 6.0).is_err());
    }
}
