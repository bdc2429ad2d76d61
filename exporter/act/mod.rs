//! Failover actions: the third consumer of the transition seam (after the transition log and
//! the notifier). Evaluation never acts; this module does, carefully, and says what it did.
//!
//! - [`spec`]: a rule's `actions:` as validated.
//! - [`task`]: the action task: when to act, under which guardrails, and the doing.
//! - [`runtime`]: what actions ask of Docker, behind one trait; [`docker`]: its implementation
//!   over the Docker Engine API.
//! - [`audit`]: `state_dir/actions.log`, `/api/v1/actions` and the `lookout_actions_*` figures.
//! - [`cli`]: `lookout action ...`.

pub mod audit;
pub mod cli;
pub mod docker;
pub mod runtime;
pub mod spec;
pub mod task;

#[cfg(test)]
mod tests;
