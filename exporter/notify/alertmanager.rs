//! Alertmanager: lookout as an alert source, the way Prometheus is one.
//!
//! Each send posts the batch to `<url>/api/v2/alerts` of every configured Alertmanager at
//! once (an HA cluster wants every alert at each member; they deduplicate notifications among
//! themselves). Firing alerts carry `endsAt = now + 4 × resend_interval`, as Prometheus's do:
//! lookout sends them again every `resend_interval`, and should it stop, Alertmanager resolves
//! them by itself. Alertmanager groups, so lookout does not ([`Notifier::groups`] is false).
//!
//! One Alertmanager accepting is enough (the cluster shares the alert); the others' failures
//! are logged with their URL (userinfo removed).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use serde::Serialize;

use super::webhook::{body_excerpt, client, error_text, generator_url, now_unix, read_bounded};
use super::{rfc3339, Ack, Batch, Item, Notifier, SendError, Status};
use crate::config::receivers::AlertmanagerConfig;

/// How much of an Alertmanager's answer is read.
const BODY_LIMIT: usize = 4096;

/// Sends to one or more Alertmanagers.
pub struct AlertmanagerNotifier {
    client: reqwest::Client,
    targets: Vec<Target>,
    resend_interval: Duration,
}

struct Target {
    /// `<url>/api/v2/alerts`, or why the configured URL cannot be used.
    endpoint: Result<Url, String>,
    /// The configured URL without userinfo: for logs and [`Ack::detail`].
    shown: String,
}

impl std::fmt::Debug for AlertmanagerNotifier {
    /// The URLs without their userinfo (a password may be in it).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerNotifier")
            .field(
                "urls",
                &self.targets.iter().map(|t| &t.shown).collect::<Vec<_>>(),
            )
            .field("resend_interval", &self.resend_interval)
            .finish()
    }
}

/// What one Alertmanager made of a post.
#[derive(Debug)]
enum Outcome {
    /// 2xx.
    Accepted(StatusCode),
    /// A 4xx other than 408 and 429: this payload will never do.
    Refused(String),
    /// A 5xx, 408, 429, a timeout or a connection error: try again.
    Failed(String),
    /// The configured URL is unusable.
    Invalid(String),
}

/// Alertmanager's `postableAlert`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    labels: BTreeMap<&'a str, &'a str>,
    annotations: BTreeMap<&'a str, &'a str>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*` (what Alertmanager accepts).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `base` joined with `api/v2/alerts`, keeping a path prefix (`http://h/am/` →
/// `http://h/am/api/v2/alerts`).
fn endpoint(base: &str) -> Result<Url, String> {
    let mut url = Url::parse(base.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("not an http(s) URL: {}", url.scheme()));
    }
    let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    Ok(url)
}

/// A URL fit for logs: without `user:password@`.
fn shown(base: &str) -> String {
    match Url::parse(base.trim()) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => {
            // Unparsable: cut whatever precedes an `@` in the authority.
            let s = base.trim();
            if let Some((scheme, rest)) = s.split_once("://") {
                let end = rest.find('/').unwrap_or(rest.len());
                if let Some(at) = rest[..end].rfind('@') {
                    return format!("{scheme}://{}", &rest[at + 1..]);
                }
            }
            s.to_string()
        }
    }
}

/// Alertmanager's error text: a JSON string (`"invalid label set: ..."`), a JSON object with a
/// `message` (request validation), or plain text.
fn am_error(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => match o.get("message") {
            Some(serde_json::Value::String(m)) => m.clone(),
            _ => body.to_string(),
        },
        _ => body.to_string(),
    };
    body_excerpt(&text)
}

impl AlertmanagerNotifier {
    pub fn new(cfg: &AlertmanagerConfig) -> AlertmanagerNotifier {
        AlertmanagerNotifier {
            client: client(cfg.timeout),
            targets: cfg
                .urls
                .iter()
                .map(|u| Target {
                    endpoint: endpoint(u),
                    shown: shown(u),
                })
                .collect(),
            resend_interval: cfg.resend_interval,
        }
    }

    /// The endpoints posted to (userinfo removed), in config order.
    pub fn endpoints(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| match &t.endpoint {
                Ok(u) => shown(u.as_str()),
                Err(_) => t.shown.clone(),
            })
            .collect()
    }

    /// The JSON array posted for `batch` at unix time `now`.
    pub fn payload(&self, batch: &Batch, now: f64) -> serde_json::Value {
        serde_json::to_value(self.alerts(batch, now)).unwrap_or_default()
    }

    fn alerts<'a>(&self, batch: &'a Batch, now: f64) -> Vec<PostableAlert<'a>> {
        let generator = generator_url(&batch.external_url);
        // Prometheus: endsAt = now + 4 × max(resend delay, evaluation interval).
        let keep_alive = 4.0 * self.resend_interval.as_secs_f64().max(1.0);
        batch
            .items
            .iter()
            .map(|i: &'a Item| {
                let ends = match i.status {
                    Status::Firing => now + keep_alive,
                    Status::Resolved => i.ends_at.unwrap_or(now),
                };
                PostableAlert {
                    labels: i
                        .labels
                        .iter()
                        .filter(|(k, v)| valid_label_name(k) && !v.is_empty())
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    annotations: i
                        .annotations
                        .iter()
                        .filter(|(k, _)| valid_label_name(k))
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    starts_at: rfc3339(i.starts_at),
                    // Alertmanager refuses an end before the start.
                    ends_at: rfc3339(ends.max(i.starts_at)),
                    generator_url: generator.clone(),
                }
            })
            .collect()
    }

    async fn post(&self, target: &Target, body: &[u8]) -> Outcome {
        let url = match &target.endpoint {
            Ok(u) => u.clone(),
            Err(e) => return Outcome::Invalid(e.clone()),
        };
        let mut resp = match self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(error_text(e)),
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Accepted(status);
        }
        let text = am_error(&read_bounded(&mut resp, BODY_LIMIT).await);
        let msg = if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        };
        if status.is_client_error()
            && status != StatusCode::TOO_MANY_REQUESTS
            && status != StatusCode::REQUEST_TIMEOUT
        {
            Outcome::Refused(msg)
        } else {
            Outcome::Failed(msg)
        }
    }
}

#[async_trait::async_trait]
impl Notifier for AlertmanagerNotifier {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn groups(&self) -> bool {
        false
    }

    fn resend_interval(&self) -> Option<Duration> {
        Some(self.resend_interval)
    }

    async fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
        if self.targets.is_empty() {
            return Err(SendError::Disabled {
                reason: "alertmanager: no URLs configured".into(),
            });
        }
        let body = serde_json::to_vec(&self.alerts(batch, now_unix())).map_err(|e| {
            SendError::Rejected {
                reason: format!("alertmanager: cannot encode the alerts: {e}"),
            }
        })?;
        let outcomes = join_all(self.targets.iter().map(|t| self.post(t, &body))).await;

        let detail = self
            .targets
            .iter()
            .zip(&outcomes)
            .map(|(t, o)| match o {
                Outcome::Accepted(s) => format!("{}: {s}", t.shown),
                Outcome::Refused(m) | Outcome::Failed(m) | Outcome::Invalid(m) => {
                    format!("{}: {m}", t.shown)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");

        let accepted = outcomes.iter().any(|o| matches!(o, Outcome::Accepted(_)));
        if accepted {
            for (t, o) in self.targets.iter().zip(&outcomes) {
                match o {
                    Outcome::Accepted(_) => {}
                    Outcome::Refused(m) | Outcome::Failed(m) | Outcome::Invalid(m) => {
                        tracing::warn!(
                            receiver = %batch.receiver,
                            url = %t.shown,
                            error = %m,
                            "an Alertmanager did not take the alerts (others did)"
                        );
                    }
                }
            }
            return Ok(Ack {
                detail,
                message_id: None,
            });
        }
        let reason = format!("alertmanager: none accepted: {detail}");
        if outcomes.iter().all(|o| matches!(o, Outcome::Invalid(_))) {
            return Err(SendError::Disabled { reason });
        }
        if outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Refused(_) | Outcome::Invalid(_)))
        {
            return Err(SendError::Rejected { reason });
        }
        Err(SendError::Retry {
            after: None,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(urls: &[&str]) -> AlertmanagerConfig {
        AlertmanagerConfig {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(2),
        }
    }

    fn batch(items: Vec<Item>) -> Batch {
        Batch {
            receiver: "am".into(),
            group_key: "k".into(),
            group_labels: BTreeMap::new(),
            items,
            host: "h".into(),
            external_url: "http://h:9659".into(),
            thread: None,
            test: false,
            repeat: false,
        }
    }

    fn item(status: Status, labels: &[(&str, &str)]) -> Item {
        Item {
            seq: 1,
            status,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [
                ("summary".to_string(), "s".to_string()),
                ("bad name".to_string(), "x".to_string()),
            ]
            .into(),
            starts_at: 1_796_048_630.0,
            ends_at: (status == Status::Resolved).then_some(1_796_048_690.0),
            value: None,
            reason: None,
            logs: vec![],
            fingerprint: "f".into(),
        }
    }

    #[test]
    fn label_names() {
        for ok in ["a", "_", "alertname", "A_1", "__name__"] {
            assert!(valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é", "a b"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn endpoints_keep_path_prefixes_and_drop_userinfo() {
        let n = AlertmanagerNotifier::new(&cfg(&[
            "http://am:9093",
            "http://am:9093/",
            "https://u:p@h/prefix/am/",
            "http://h/x?tenant=a",
            "nope",
            "ftp://h",
        ]));
        assert_eq!(
            n.endpoints()[..4],
            [
                "http://am:9093/api/v2/alerts",
                "http://am:9093/api/v2/alerts",
                "https://h/prefix/am/api/v2/alerts",
                "http://h/x/api/v2/alerts?tenant=a",
            ]
        );
        assert!(n.targets[4].endpoint.is_err());
        assert!(n.targets[5].endpoint.is_err());
        assert_eq!(
            n.targets[2].endpoint.as_ref().unwrap().username(),
            "u",
            "userinfo is kept for the request (basic auth)"
        );
        assert_eq!(shown("https://u:p@h/prefix/"), "https://h/prefix");
        assert!(!format!("{n:?}").contains("u:p"), "{n:?}");
        assert_eq!(shown("http://u:p@bad host/x"), "http://bad host/x");
        assert_eq!(n.kind(), "alertmanager");
        assert!(!n.groups());
        assert_eq!(n.resend_interval(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn payload_is_alertmanagers_postable_alerts() {
        let n = AlertmanagerNotifier::new(&cfg(&["http://am:9093"]));
        let b = batch(vec![
            item(
                Status::Firing,
                &[("alertname", "X"), ("bad-name", "v"), ("empty", "")],
            ),
            item(Status::Resolved, &[("alertname", "Y")]),
        ]);
        let now = 1_796_048_700.0;
        let v = n.payload(&b, now);
        assert_eq!(
            v[0],
            serde_json::json!({
                "labels": {"alertname": "X"},
                "annotations": {"summary": "s"},
                "startsAt": "2026-11-30T14:23:50.000Z",
                "endsAt": rfc3339(now + 240.0),
                "generatorURL": "http://h:9659/api/v1/alerts",
            })
        );
        assert_eq!(v[1]["endsAt"], "2026-11-30T14:24:50.000Z");
        // An end before the start is moved to the start.
        let mut odd = item(Status::Resolved, &[("alertname", "Z")]);
        odd.ends_at = Some(odd.starts_at - 10.0);
        let v = n.payload(&batch(vec![odd]), now);
        assert_eq!(v[0]["endsAt"], v[0]["startsAt"]);
    }

    #[test]
    fn alertmanager_error_text() {
        assert_eq!(am_error("\"invalid label set\"\n"), "invalid label set");
        assert_eq!(
            am_error(r#"{"code":602,"message":"labels in body is required"}"#),
            "labels in body is required"
        );
        assert_eq!(am_error("plain\ntext"), "plain text");
    }

    #[tokio::test]
    async fn no_reachable_url_means_retry_and_no_usable_one_disabled() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let b = batch(vec![item(Status::Firing, &[("alertname", "X")])]);
        let n = AlertmanagerNotifier::new(&cfg(&[&format!("http://u:secret@127.0.0.1:{port}")]));
        let err = n.send(&b).await.unwrap_err();
        assert!(
            matches!(err, SendError::Retry { after: None, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = AlertmanagerNotifier::new(&cfg(&["ftp://x"]))
            .send(&b)
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Disabled { .. }), "{err:?}");
        let err = AlertmanagerNotifier::new(&cfg(&[]))
            .send(&b)
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Disabled { .. }), "{err:?}");
    }
}
