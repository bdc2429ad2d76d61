//! The rule engine: alert rules evaluated over each snapshot's targets.

pub mod expr;
pub mod state;
pub mod vars;
