//! Active health probes of containers (the probe collector's facts).

use serde::Serialize;

/// The latest result of one container's probe (label `lookout.probe`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeResult {
    pub container_id: String,
    /// What was probed, with the host resolved: `http://172.17.0.2:8080/health`,
    /// `tcp://172.17.0.2:5432`.
    pub target: String,
    /// HTTP: a 2xx or 3xx answer; TCP: the connection was accepted.
    pub success: bool,
    /// Seconds the probe took (until it failed, for a failure; the timeout, for a timeout).
    pub duration_seconds: f64,
    /// Unix time (s) at which the probe started.
    pub at: f64,
    /// Why it failed; None on success.
    pub error: Option<String>,
}

/// The probe collector's part: the latest result of each probed container that has one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbePart {
    pub results: Vec<ProbeResult>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::snapshot::{ContainerInfo, Inventory, LabelAllowlist, Part, Snapshot, State};

    #[test]
    fn results_join_their_running_containers() {
        let info = |id: &str, state| ContainerInfo {
            id: id.into(),
            name: format!("{id}-name"),
            state,
            pid: 1,
            ..Default::default()
        };
        let result = |id: &str| ProbeResult {
            container_id: id.into(),
            success: true,
            ..Default::default()
        };
        let parts = vec![
            Part::Probe(ProbePart {
                results: vec![result("up"), result("stopped"), result("gone")],
            }),
            Part::Docker(Inventory {
                containers: Arc::new(vec![
                    info("up", State::Running),
                    info("stopped", State::Exited),
                    info("plain", State::Running),
                ]),
                ..Default::default()
            }),
        ];
        let s = Snapshot::assemble(
            10.0,
            parts,
            vec![],
            None,
            Arc::new(LabelAllowlist::default()),
        );
        let probe = |id: &str| s.container(id).unwrap().derived.probe.clone();
        assert_eq!(probe("up"), Some(result("up")));
        // A result that raced a stop is not shown; a container without a probe has none.
        assert_eq!(probe("stopped"), None);
        assert_eq!(probe("plain"), None);
    }
}
