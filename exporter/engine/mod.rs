//! The rule engine: alert rules evaluated over each snapshot's targets.

pub mod expr;
pub mod rule;
pub mod state;
pub mod template;
pub mod vars;
