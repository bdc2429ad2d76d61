//! The transition log: a consumer of the [seam](super::seam) that writes one log line per
//! transition (`alert=<name> to=<pending|firing|resolved|inactive>` with the target), so the
//! log is a faithful record of what notification and actions will receive.

use tokio::sync::mpsc;

use super::seam::Delivery;

/// The target of an alert in words, from its labels: the container's name, the mountpoint,
/// the GPU's UUID or the host.
fn target(labels: &std::collections::BTreeMap<String, String>) -> String {
    ["name", "mountpoint", "UUID", "instance"]
        .iter()
        .find_map(|k| labels.get(*k).map(|v| format!("{k}={v}")))
        .unwrap_or_default()
}

/// Log every delivery until the engine side closes.
pub async fn run(rx: &mut mpsc::Receiver<Delivery>) {
    while let Some(d) = rx.recv().await {
        match d {
            Delivery::Sync { alerts } => {
                let firing = alerts.iter().filter(|a| a.state == "firing").count();
                tracing::info!(
                    firing,
                    pending = alerts.len() - firing,
                    "alert state in force (no transition)"
                );
            }
            Delivery::Transition(e) => {
                tracing::info!(
                    alert = %e.alert.alertname,
                    to = e.transition.as_str(),
                    target = %target(&e.alert.labels),
                    severity = e.alert.severity,
                    "alert transition"
                );
            }
            // For failover actions; nothing to log.
            Delivery::Tick { .. } => {}
        }
    }
}
