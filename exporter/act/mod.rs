//! Failover actions: the third consumer of the transition seam (after the transition log and
//! the notifier). Evaluation never acts; this module does, carefully, and says what it did.
//!
//! - [`runtime`]: what actions ask of Docker, behind one trait.
//! - [`docker`]: that trait for the real daemon (bollard).

pub mod docker;
pub mod runtime;
