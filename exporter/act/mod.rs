//! Failover actions: the third consumer of the transition seam (after the transition log and
//! the notifier). Evaluation never acts; this module does, carefully, and says what it did.
//!
//! - [`runtime`]: what actions ask of Docker, behind one trait.

pub mod audit;
pub mod cli;
pub mod runtime;
pub mod spec;
pub mod task;

#[cfg(test)]
mod tests;
