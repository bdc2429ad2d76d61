//! Why a container is down, as the person on call needs it first.

use serde::{Deserialize, Serialize};

/// A container's facts at the moment of a transition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub container: String,
    pub image: String,
    /// `running`, `exited`, ...
    pub state: String,
    pub health: String,
    /// The last exit code (None while it never exited).
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub restart_count: i64,
    /// How long the container ran (start to finish, or start to now while running).
    pub ran_for_seconds: Option<f64>,
}
