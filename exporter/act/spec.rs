//! A rule's `actions:`, as written and validated: each entry one of `restart`,
//! `start_standby`, `scale`, `webhook`.

use std::time::Duration;

use serde::Serialize;
use serde_yaml::Value as Yaml;

use crate::config::parse_duration;

/// `restart: {after, cooldown, max_attempts, window, timeout}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restart {
    /// Consecutive scheduled evaluations with the condition true before the first attempt.
    pub after: u32,
    /// The wait after the first attempt; each next one waits twice as long.
    #[serde(with = "secs")]
    pub cooldown: Duration,
    /// Attempts within `window` before lookout gives up on the container.
    pub max_attempts: u32,
    #[serde(with = "secs")]
    pub window: Duration,
    /// `docker restart -t`.
    #[serde(with = "secs")]
    pub timeout: Duration,
}

/// `start_standby: {standby, stop_on_resolve, for, after}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartStandby {
    /// The standby container's name.
    pub standby: String,
    pub stop_on_resolve: bool,
    /// With `stop_on_resolve`: how long the primary stays healthy (the alert resolved) before
    /// the standby is stopped.
    #[serde(rename = "for", with = "secs")]
    pub for_: Duration,
    pub after: u32,
}

/// `scale: {service, step, min, max, scale_down_below, scale_down_for, cooldown, after}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scale {
    /// The Compose service (`com.docker.compose.service`) or Swarm service.
    pub service: String,
    pub step: u32,
    pub min: u32,
    pub max: u32,
    /// Scale down one step when every replica's value (the rule's first variable) stays
    /// below this for `scale_down_for`.
    pub scale_down_below: Option<f64>,
    #[serde(with = "secs")]
    pub scale_down_for: Duration,
    /// The least time between two scaling steps of the service.
    #[serde(with = "secs")]
    pub cooldown: Duration,
    pub after: u32,
}

/// `webhook: {url, after}`: POST the action to the user's own automation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    #[serde(skip)]
    pub url: String,
    pub after: u32,
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSpec {
    Restart(Restart),
    StartStandby(StartStandby),
    Scale(Scale),
    Webhook(Webhook),
}

impl ActionSpec {
    /// `restart`, `start_standby`, `scale`, `webhook`: the `action` label.
    pub fn name(&self) -> &'static str {
        match self {
            ActionSpec::Restart(_) => "restart",
            ActionSpec::StartStandby(_) => "start_standby",
            ActionSpec::Scale(_) => "scale",
            ActionSpec::Webhook(_) => "webhook",
        }
    }

    /// Consecutive scheduled evaluations with the condition true before it acts.
    pub fn after(&self) -> u32 {
        match self {
            ActionSpec::Restart(r) => r.after,
            ActionSpec::StartStandby(s) => s.after,
            ActionSpec::Scale(s) => s.after,
            ActionSpec::Webhook(w) => w.after,
        }
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// One problem: the sub-path under the action (e.g. `restart.cooldown`) and the message.
pub type Problem = (String, String);

struct Fields<'a> {
    kind: &'static str,
    map: &'a serde_yaml::Mapping,
    problems: Vec<Problem>,
}

impl Fields<'_> {
    fn check_keys(&mut self, allowed: &[&str]) {
        for k in self.map.keys() {
            let name = k.as_str().unwrap_or("?");
            if !allowed.contains(&name) {
                self.problems.push((
                    format!("{}.{name}", self.kind),
                    format!(
                        "unknown field `{name}`, expected one of {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Yaml> {
        self.map.get(key)
    }

    fn uint(&mut self, key: &str, default: u32, min: u32) -> u32 {
        match self.get(key) {
            None => default,
            Some(v) => match v.as_u64() {
                Some(n) if n >= min as u64 && n <= u32::MAX as u64 => n as u32,
                _ => {
                    self.problems.push((
                        format!("{}.{key}", self.kind),
                        format!("expected a whole number of at least {min}"),
                    ));
                    default
                }
            },
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> Duration {
        match self.get(key) {
            None => default,
            Some(v) => match v.as_str().map(parse_duration) {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    self.problems.push((format!("{}.{key}", self.kind), e));
                    default
                }
                None => {
                    self.problems.push((
                        format!("{}.{key}", self.kind),
                        "expected a duration such as 30s or 1h".into(),
                    ));
                    default
                }
            },
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.get(key) {
            None => {
                self.problems
                    .push((self.kind.to_string(), format!("`{key}` is required")));
                None
            }
            Some(v) => match v.as_str() {
                Some(s) if !s.trim().is_empty() => Some(s.to_string()),
                _ => {
                    self.problems.push((
                        format!("{}.{key}", self.kind),
                        "expected a non-empty string".into(),
                    ));
                    None
                }
            },
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => v.as_bool().unwrap_or_else(|| {
                self.problems.push((
                    format!("{}.{key}", self.kind),
                    "expected true or false".into(),
                ));
                default
            }),
        }
    }
}

/// Parse one entry of `actions:` (`{restart: {...}}` and so on).
pub fn parse(v: &Yaml) -> Result<ActionSpec, Vec<Problem>> {
    let one = |m: String| Err(vec![(String::new(), m)]);
    let Some(map) = v.as_mapping() else {
        return one(
            "expected an action such as {restart: {after: 3}}, {start_standby: {standby: web-standby}}, {scale: {...}} or {webhook: {url: ...}}".into(),
        );
    };
    if map.len() != 1 {
        return one(
            "each action is a mapping with one key: restart, start_standby, scale or webhook"
                .into(),
        );
    }
    let (k, body) = map.iter().next().expect("one entry");
    let empty = serde_yaml::Mapping::new();
    let body_map = match body {
        Yaml::Null => &empty,
        Yaml::Mapping(m) => m,
        _ => {
            return one(format!(
                "{}: expected a mapping of settings",
                k.as_str().unwrap_or("?")
            ))
        }
    };
    let kind: &'static str = match k.as_str() {
        Some("restart") => "restart",
        Some("start_standby") => "start_standby",
        Some("scale") => "scale",
        Some("webhook") => "webhook",
        Some(other) => {
            return Err(vec![(
                other.to_string(),
                format!(
                "unknown action `{other}`, expected one of restart, start_standby, scale, webhook"
            ),
            )])
        }
        None => return one("action names are strings".into()),
    };
    let mut f = Fields {
        kind,
        map: body_map,
        problems: Vec::new(),
    };
    let spec = match kind {
        "restart" => {
            f.check_keys(&["after", "cooldown", "max_attempts", "window", "timeout"]);
            ActionSpec::Restart(Restart {
                after: f.uint("after", 3, 1),
                cooldown: f.duration("cooldown", Duration::from_secs(30)),
                max_attempts: f.uint("max_attempts", 5, 1),
                window: f.duration("window", Duration::from_secs(3600)),
                timeout: f.duration("timeout", Duration::from_secs(10)),
            })
        }
        "start_standby" => {
            f.check_keys(&["standby", "stop_on_resolve", "for", "after"]);
            ActionSpec::StartStandby(StartStandby {
                standby: f.string("standby").unwrap_or_default(),
                stop_on_resolve: f.boolean("stop_on_resolve", false),
                for_: f.duration("for", Duration::from_secs(60)),
                after: f.uint("after", 1, 1),
            })
        }
        "scale" => {
            f.check_keys(&[
                "service",
                "step",
                "min",
                "max",
                "scale_down_below",
                "scale_down_for",
                "cooldown",
                "after",
            ]);
            let below = match f.get("scale_down_below") {
                None => None,
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() => Some(x),
                    _ => {
                        f.problems
                            .push(("scale.scale_down_below".into(), "expected a number".into()));
                        None
                    }
                },
            };
            let s = Scale {
                service: f.string("service").unwrap_or_default(),
                step: f.uint("step", 1, 1),
                min: f.uint("min", 1, 0),
                max: f.uint("max", 10, 1),
                scale_down_below: below,
                scale_down_for: f.duration("scale_down_for", Duration::from_secs(600)),
                cooldown: f.duration("cooldown", Duration::from_secs(60)),
                after: f.uint("after", 1, 1),
            };
            if s.min > s.max {
                f.problems.push((
                    "scale.min".into(),
                    format!("min {} is more than max {}", s.min, s.max),
                ));
            }
            ActionSpec::Scale(s)
        }
        _ => {
            f.check_keys(&["url", "after"]);
            let url = f.string("url").unwrap_or_default();
            if !url.is_empty()
                && reqwest::Url::parse(&url)
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
            {
                f.problems.push((
                    "webhook.url".into(),
                    "expected an http:// or https:// URL".into(),
                ));
            }
            ActionSpec::Webhook(Webhook {
                url,
                after: f.uint("after", 1, 1),
            })
        }
    };
    if f.problems.is_empty() {
        Ok(spec)
    } else {
        Err(f.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Yaml {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn parses_each_action_with_defaults() {
        let r = parse(&y(
            "restart: {after: 3, cooldown: 30s, max_attempts: 5, window: 1h, timeout: 10s}",
        ))
        .unwrap();
        assert_eq!(r.name(), "restart");
        assert_eq!(r.after(), 3);
        let ActionSpec::Restart(r) = parse(&y("restart:")).unwrap() else {
            panic!()
        };
        assert_eq!((r.after, r.max_attempts), (3, 5));
        let ActionSpec::StartStandby(s) = parse(&y(
            "start_standby: {standby: web-standby, stop_on_resolve: true}",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(s.standby, "web-standby");
        assert!(s.stop_on_resolve);
        let ActionSpec::Scale(s) = parse(&y("scale: {service: web, step: 1, min: 2, max: 8, scale_down_below: 30, scale_down_for: 10m}")).unwrap() else { panic!() };
        assert_eq!((s.min, s.max, s.scale_down_below), (2, 8, Some(30.0)));
    }

    #[test]
    fn refuses_what_is_wrong_with_where() {
        let e = parse(&y("restart: {after: 0, cooldwn: 30s}")).unwrap_err();
        let paths: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"restart.cooldwn"), "{e:?}");
        assert!(paths.contains(&"restart.after"), "{e:?}");
        assert!(parse(&y("reboot: {}")).is_err());
        assert!(parse(&y("scale: {service: web, min: 5, max: 2}")).is_err());
        assert!(parse(&y("start_standby: {}")).is_err());
        assert!(parse(&y("webhook: {url: 'ftp://x'}")).is_err());
    }
}
