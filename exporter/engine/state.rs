//! The alert state machine of one (rule, target) instance, with Prometheus's semantics.
//!
//! `inactive → pending → firing → (resolved, i.e. inactive again)`. It is pure: [`Instance::step`]
//! takes the evaluation's outcome and an explicit time, does no I/O, reads no clock, and returns
//! the transition it made, if any. Tests walk it through time without sleeping.

use serde::{Deserialize, Serialize};

/// Where an instance is. Only these three shapes exist, so an impossible state (firing without
/// having been active) cannot be written down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Inactive,
    /// The condition holds, but not yet for the rule's `for`.
    Pending {
        /// Unix time the condition started to hold.
        active_at: f64,
    },
    /// The condition has held for `for`.
    Firing {
        active_at: f64,
        /// Unix time it started firing.
        fired_at: f64,
        /// Set while the condition no longer holds but `keep_firing_for` keeps the alert firing:
        /// the time it stopped holding.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_firing_since: Option<f64>,
    },
}

impl Phase {
    pub fn is_active(&self) -> bool {
        !matches!(self, Phase::Inactive)
    }

    /// `pending` or `firing` (Prometheus's `alertstate` label), `inactive` otherwise.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Inactive => "inactive",
            Phase::Pending { .. } => "pending",
            Phase::Firing { .. } => "firing",
        }
    }

    pub fn active_at(&self) -> Option<f64> {
        match *self {
            Phase::Inactive => None,
            Phase::Pending { active_at } | Phase::Firing { active_at, .. } => Some(active_at),
        }
    }

    pub fn fired_at(&self) -> Option<f64> {
        match *self {
            Phase::Firing { fired_at, .. } => Some(fired_at),
            _ => None,
        }
    }
}

/// A change of phase, as the notification and action issues consume it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "to", rename_all = "lowercase")]
pub enum Transition {
    /// Inactive → pending: the condition started to hold (not announced by Prometheus either).
    Pending { active_at: f64 },
    /// → firing (from pending, or straight from inactive when `for` is 0).
    Firing { active_at: f64, fired_at: f64 },
    /// Firing → inactive: the alert resolved.
    Resolved {
        active_at: f64,
        fired_at: f64,
        resolved_at: f64,
    },
    /// Pending → inactive without ever firing.
    Inactive { active_at: f64 },
}

impl Transition {
    /// The phase the instance went to, as a word: pending, firing, resolved or inactive.
    pub fn as_str(&self) -> &'static str {
        match self {
            Transition::Pending { .. } => "pending",
            Transition::Firing { .. } => "firing",
            Transition::Resolved { .. } => "resolved",
            Transition::Inactive { .. } => "inactive",
        }
    }
}

/// A rule's timing, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Timing {
    /// How long the condition must hold before the alert fires.
    pub for_secs: f64,
    /// How long a firing alert keeps firing after its condition stopped holding.
    pub keep_firing_for: f64,
}

/// One (rule, target) instance: its phase and its rule's timing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Instance {
    pub phase: Phase,
    pub timing: Timing,
}

impl Instance {
    pub fn new(timing: Timing) -> Instance {
        Instance {
            phase: Phase::Inactive,
            timing,
        }
    }

    /// Take one evaluation's outcome at time `now`.
    ///
    /// `breached`: the rule's `expr` is true. `resolved`: its `resolve` condition is true (for a
    /// rule without one, pass `!breached`). Once pending or firing, the instance stays active
    /// until `resolved`, which is the hysteresis a `resolve` expression gives: `cpu > 80` to
    /// start, `cpu < 70` to stop.
    pub fn step(&mut self, breached: bool, resolved: bool, now: f64) -> Option<Transition> {
        let holds = breached || (self.phase.is_active() && !resolved);
        match self.phase {
            Phase::Inactive => {
                if !holds {
                    return None;
                }
                if self.timing.for_secs <= 0.0 {
                    self.phase = Phase::Firing {
                        active_at: now,
                        fired_at: now,
                        keep_firing_since: None,
                    };
                    return Some(Transition::Firing {
                        active_at: now,
                        fired_at: now,
                    });
                }
                self.phase = Phase::Pending { active_at: now };
                Some(Transition::Pending { active_at: now })
            }
            Phase::Pending { active_at } => {
                if !holds {
                    self.phase = Phase::Inactive;
                    return Some(Transition::Inactive { active_at });
                }
                if now - active_at >= self.timing.for_secs {
                    self.phase = Phase::Firing {
                        active_at,
                        fired_at: now,
                        keep_firing_since: None,
                    };
                    return Some(Transition::Firing {
                        active_at,
                        fired_at: now,
                    });
                }
                None
            }
            Phase::Firing {
                active_at,
                fired_at,
                keep_firing_since,
            } => {
                if holds {
                    if keep_firing_since.is_some() {
                        self.phase = Phase::Firing {
                            active_at,
                            fired_at,
                            keep_firing_since: None,
                        };
                    }
                    return None;
                }
                if self.timing.keep_firing_for > 0.0 {
                    let since = keep_firing_since.unwrap_or(now);
                    if now - since < self.timing.keep_firing_for {
                        self.phase = Phase::Firing {
                            active_at,
                            fired_at,
                            keep_firing_since: Some(since),
                        };
                        return None;
                    }
                }
                self.phase = Phase::Inactive;
                Some(Transition::Resolved {
                    active_at,
                    fired_at,
                    resolved_at: now,
                })
            }
        }
    }

    /// The target is gone (container removed, filesystem unmounted, GPU lost): a firing alert
    /// resolves at once, `keep_firing_for` notwithstanding, since nothing is left to keep it
    /// for; a pending one is dropped.
    pub fn vanish(&mut self, now: f64) -> Option<Transition> {
        let t = match self.phase {
            Phase::Inactive => None,
            Phase::Pending { active_at } => Some(Transition::Inactive { active_at }),
            Phase::Firing {
                active_at,
                fired_at,
                ..
            } => Some(Transition::Resolved {
                active_at,
                fired_at,
                resolved_at: now,
            }),
        };
        self.phase = Phase::Inactive;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(for_secs: f64, keep: f64) -> Instance {
        Instance::new(Timing {
            for_secs,
            keep_firing_for: keep,
        })
    }

    /// Step without a `resolve` expression.
    fn plain(i: &mut Instance, breached: bool, now: f64) -> Option<&'static str> {
        i.step(breached, !breached, now).map(|t| t.as_str())
    }

    #[test]
    fn for_zero_fires_at_once() {
        let mut i = inst(0.0, 0.0);
        assert_eq!(plain(&mut i, false, 0.0), None);
        assert_eq!(
            i.step(true, false, 10.0),
            Some(Transition::Firing {
                active_at: 10.0,
                fired_at: 10.0
            })
        );
        assert_eq!(plain(&mut i, true, 20.0), None);
        assert_eq!(
            i.step(false, true, 30.0),
            Some(Transition::Resolved {
                active_at: 10.0,
                fired_at: 10.0,
                resolved_at: 30.0
            })
        );
        assert_eq!(i.phase, Phase::Inactive);
    }

    #[test]
    fn for_must_hold_before_firing() {
        let mut i = inst(120.0, 0.0);
        assert_eq!(plain(&mut i, true, 0.0), Some("pending"));
        assert_eq!(i.phase, Phase::Pending { active_at: 0.0 });
        assert_eq!(plain(&mut i, true, 60.0), None);
        assert_eq!(plain(&mut i, true, 119.0), None);
        assert_eq!(
            i.step(true, false, 120.0),
            Some(Transition::Firing {
                active_at: 0.0,
                fired_at: 120.0
            })
        );
        assert_eq!(plain(&mut i, true, 180.0), None);
        assert_eq!(plain(&mut i, false, 190.0), Some("resolved"));
    }

    #[test]
    fn pending_that_stops_holding_goes_inactive_and_restarts_the_clock() {
        let mut i = inst(120.0, 0.0);
        assert_eq!(plain(&mut i, true, 0.0), Some("pending"));
        assert_eq!(
            i.step(false, true, 100.0),
            Some(Transition::Inactive { active_at: 0.0 })
        );
        assert_eq!(plain(&mut i, true, 110.0), Some("pending"));
        // 120 s after the first start, but only 10 s after the second: still pending.
        assert_eq!(plain(&mut i, true, 130.0), None);
        assert_eq!(plain(&mut i, true, 230.0), Some("firing"));
    }

    #[test]
    fn hysteresis_keeps_it_active_until_resolve_holds() {
        // expr: cpu > 80; resolve: cpu < 70.
        let step = |i: &mut Instance, cpu: f64, now: f64| {
            i.step(cpu > 80.0, cpu < 70.0, now).map(|t| t.as_str())
        };
        let mut i = inst(60.0, 0.0);
        assert_eq!(step(&mut i, 75.0, 0.0), None, "75 is not above 80");
        assert_eq!(step(&mut i, 85.0, 10.0), Some("pending"));
        // Between the thresholds: no longer breached, not yet resolved, so `for` goes on.
        assert_eq!(step(&mut i, 75.0, 40.0), None);
        assert_eq!(step(&mut i, 75.0, 70.0), Some("firing"));
        assert_eq!(step(&mut i, 72.0, 100.0), None);
        assert!(matches!(i.phase, Phase::Firing { .. }));
        assert_eq!(step(&mut i, 65.0, 110.0), Some("resolved"));
        // Inactive again: 75 does not start it.
        assert_eq!(step(&mut i, 75.0, 120.0), None);
        // A pending instance whose value falls below the resolve threshold goes inactive.
        assert_eq!(step(&mut i, 90.0, 130.0), Some("pending"));
        assert_eq!(step(&mut i, 60.0, 140.0), Some("inactive"));
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut i = inst(0.0, 30.0);
        assert_eq!(plain(&mut i, true, 0.0), Some("firing"));
        assert_eq!(plain(&mut i, false, 10.0), None);
        assert_eq!(
            i.phase,
            Phase::Firing {
                active_at: 0.0,
                fired_at: 0.0,
                keep_firing_since: Some(10.0)
            }
        );
        assert_eq!(plain(&mut i, false, 39.0), None);
        // Breached again: the keep-firing clock resets.
        assert_eq!(plain(&mut i, true, 39.5), None);
        assert_eq!(plain(&mut i, false, 50.0), None);
        assert_eq!(plain(&mut i, false, 79.0), None);
        assert_eq!(
            i.step(false, true, 80.0),
            Some(Transition::Resolved {
                active_at: 0.0,
                fired_at: 0.0,
                resolved_at: 80.0
            })
        );
    }

    #[test]
    fn keep_firing_for_does_not_hold_a_pending_alert() {
        let mut i = inst(60.0, 300.0);
        assert_eq!(plain(&mut i, true, 0.0), Some("pending"));
        assert_eq!(plain(&mut i, false, 10.0), Some("inactive"));
    }

    #[test]
    fn a_vanished_target_resolves() {
        let mut i = inst(0.0, 600.0);
        assert_eq!(plain(&mut i, true, 0.0), Some("firing"));
        assert_eq!(
            i.vanish(5.0),
            Some(Transition::Resolved {
                active_at: 0.0,
                fired_at: 0.0,
                resolved_at: 5.0
            })
        );
        assert_eq!(i.phase, Phase::Inactive);
        let mut p = inst(60.0, 0.0);
        assert_eq!(plain(&mut p, true, 0.0), Some("pending"));
        assert_eq!(p.vanish(5.0), Some(Transition::Inactive { active_at: 0.0 }));
        assert_eq!(p.vanish(6.0), None);
    }

    #[test]
    fn restored_state_keeps_firing_and_for_progress() {
        let timing = Timing {
            for_secs: 120.0,
            keep_firing_for: 0.0,
        };
        let mut firing = Instance::new(timing);
        firing.step(true, false, 0.0);
        firing.step(true, false, 120.0);
        let mut pending = Instance::new(timing);
        pending.step(true, false, 100.0);

        let saved = serde_json::to_string(&[firing.phase, pending.phase]).unwrap();
        assert!(saved.contains("\"state\":\"firing\""), "{saved}");
        let [f, p]: [Phase; 2] = serde_json::from_str(&saved).unwrap();

        // "After a restart": fresh instances carrying the restored phases.
        let mut firing2 = Instance { phase: f, timing };
        let mut pending2 = Instance { phase: p, timing };
        assert_eq!(firing2, firing);
        // Still breached: no new "firing" transition.
        assert_eq!(firing2.step(true, false, 500.0), None);
        assert_eq!(firing2.phase.fired_at(), Some(120.0));
        // The pending one fires 120 s after it first became active, not 120 s after restart.
        assert_eq!(pending2.step(true, false, 200.0), None);
        assert_eq!(
            pending2.step(true, false, 220.0),
            Some(Transition::Firing {
                active_at: 100.0,
                fired_at: 220.0
            })
        );
    }
}
