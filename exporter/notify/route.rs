//! Routing (Alertmanager's tree: first matching child wins unless `continue`, depth first)
//! and inhibition.

use std::collections::BTreeMap;

use super::matcher::all_match;
use super::outbox::Timing;
use crate::config::receivers::{InhibitRule, NotifyConfig, Route};

/// Where one alert goes: a receiver and the group it joins there.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    pub timing: Timing,
    pub send_resolved: bool,
}

/// The destinations of an alert with `labels` whose rule names `notify`: the routing tree's
/// matches, then the rule's receivers (with the root route's grouping); a receiver reached
/// both ways gets the alert once.
pub fn destinations(
    cfg: &NotifyConfig,
    labels: &BTreeMap<String, String>,
    notify: &[String],
) -> Vec<Destination> {
    let mut out: Vec<Destination> = Vec::new();
    let mut matched = Vec::new();
    walk(&cfg.route, "{}", labels, &mut matched);
    for (path, route) in matched {
        if let Some(r) = &route.receiver {
            push(&mut out, r, &path, route, labels);
        }
    }
    for r in notify {
        if cfg.receiver(r).is_some() {
            push(&mut out, r, "{}/notify", &cfg.route, labels);
        }
    }
    out
}

fn push(
    out: &mut Vec<Destination>,
    receiver: &str,
    path: &str,
    route: &Route,
    labels: &BTreeMap<String, String>,
) {
    if out.iter().any(|d| d.receiver == receiver) {
        return;
    }
    let group_labels: BTreeMap<String, String> = if route.group_by.iter().any(|g| g == "...") {
        labels.clone()
    } else {
        route
            .group_by
            .iter()
            .filter_map(|g| labels.get(g).map(|v| (g.clone(), v.clone())))
            .collect()
    };
    let values: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    out.push(Destination {
        receiver: receiver.to_string(),
        group_key: format!("{path}:{{{}}}", values.join(",")),
        group_labels,
        timing: Timing {
            group_wait: route.group_wait.as_secs_f64(),
            group_interval: route.group_interval.as_secs_f64(),
            repeat_interval: route.repeat_interval.as_secs_f64(),
        },
        send_resolved: route.send_resolved,
    });
}

/// The routes that take `labels`, depth first: a child that matches replaces its parent;
/// without `continue` the first matching child ends the search at its level.
fn walk<'a>(
    route: &'a Route,
    path: &str,
    labels: &BTreeMap<String, String>,
    out: &mut Vec<(String, &'a Route)>,
) -> bool {
    if !all_match(&route.matchers, labels) {
        return false;
    }
    let mut any_child = false;
    for (i, child) in route.routes.iter().enumerate() {
        let p = format!("{path}/{i}");
        if walk(child, &p, labels, out) {
            any_child = true;
            if !child.continue_ {
                break;
            }
        }
    }
    if !any_child {
        out.push((path.to_string(), route));
    }
    true
}

/// Whether an alert with `labels` is inhibited by one of `firing` (the labels of the alerts
/// firing now): a rule's source matches a firing alert, its target matches this one, the
/// `equal` labels agree, and the alert is not its own source.
pub fn inhibited<'a>(
    rules: &[InhibitRule],
    labels: &BTreeMap<String, String>,
    firing: impl IntoIterator<Item = &'a BTreeMap<String, String>> + Clone,
) -> bool {
    rules.iter().any(|r| {
        all_match(&r.target, labels)
            && firing.clone().into_iter().any(|src| {
                src != labels
                    && all_match(&r.source, src)
                    && r.equal.iter().all(|e| src.get(e) == labels.get(e))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::receivers::Secret;
    use crate::config::receivers::{Receiver, ReceiverKind, WebhookConfig};
    use crate::notify::matcher::Matcher;
    use std::time::Duration;

    use crate::notify::labels as l;

    fn receiver(name: &str) -> Receiver {
        Receiver {
            name: name.into(),
            kind: ReceiverKind::Webhook(WebhookConfig {
                url: Secret::new("http://x"),
                max_alerts: 0,
                timeout: Duration::from_secs(1),
            }),
        }
    }

    fn cfg() -> NotifyConfig {
        let child = |m: &str, r: &str, cont: bool| Route {
            receiver: Some(r.into()),
            matchers: vec![Matcher::parse(m).unwrap()],
            continue_: cont,
            ..Route::default()
        };
        NotifyConfig {
            receivers: ["discord", "admins", "disk", "all"]
                .into_iter()
                .map(receiver)
                .collect(),
            route: Route {
                receiver: Some("discord".into()),
                routes: vec![
                    child(r#"severity="critical""#, "admins", true),
                    child(r#"alertname=~"Disk.*""#, "disk", false),
                    child(r#"alertname=~".*""#, "all", false),
                ],
                ..Route::default()
            },
            inhibit_rules: vec![],
        }
    }

    fn names(d: &[Destination]) -> Vec<&str> {
        d.iter().map(|d| d.receiver.as_str()).collect()
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let c = cfg();
        let crit = l(&[("alertname", "DiskFull"), ("severity", "critical")]);
        assert_eq!(names(&destinations(&c, &crit, &[])), ["admins", "disk"]);
        let warn = l(&[("alertname", "DiskFull"), ("severity", "warning")]);
        assert_eq!(names(&destinations(&c, &warn, &[])), ["disk"]);
        let other = l(&[("alertname", "X")]);
        assert_eq!(names(&destinations(&c, &other, &[])), ["all"]);
        // No child matches: the parent takes it.
        let mut c2 = cfg();
        c2.route.routes.pop();
        assert_eq!(names(&destinations(&c2, &other, &[])), ["discord"]);
    }

    #[test]
    fn a_receiver_named_by_the_rule_and_the_route_gets_it_once() {
        let c = cfg();
        let warn = l(&[("alertname", "DiskFull"), ("severity", "warning")]);
        let d = destinations(&c, &warn, &["disk".into(), "discord".into(), "nope".into()]);
        assert_eq!(names(&d), ["disk", "discord"]);
    }

    #[test]
    fn groups_by_the_route_labels() {
        let c = cfg();
        let a = destinations(&c, &l(&[("alertname", "X"), ("name", "a")]), &[]);
        let b = destinations(&c, &l(&[("alertname", "X"), ("name", "b")]), &[]);
        let y = destinations(&c, &l(&[("alertname", "Y"), ("name", "a")]), &[]);
        assert_eq!(a[0].group_key, b[0].group_key);
        assert_ne!(a[0].group_key, y[0].group_key);
        assert_eq!(a[0].group_labels, l(&[("alertname", "X")]));
    }

    #[test]
    fn inhibition_needs_a_firing_source_and_equal_labels() {
        let rules = vec![InhibitRule {
            source: vec![Matcher::parse(r#"alertname="DockerUnreachable""#).unwrap()],
            target: vec![Matcher::parse(r#"alertname=~"Container.*""#).unwrap()],
            equal: vec!["instance".into()],
        }];
        let src = l(&[("alertname", "DockerUnreachable"), ("instance", "h1")]);
        let tgt = l(&[("alertname", "ContainerDown"), ("instance", "h1")]);
        let other_host = l(&[("alertname", "ContainerDown"), ("instance", "h2")]);
        assert!(inhibited(&rules, &tgt, [&src]));
        assert!(!inhibited(&rules, &other_host, [&src]));
        assert!(!inhibited(
            &rules,
            &tgt,
            [] as [&BTreeMap<String, String>; 0]
        ));
        assert!(!inhibited(&rules, &src, [&src]));
    }
}
