//! A JSON POST in Alertmanager's webhook payload format (version 4), so that anything written
//! for Alertmanager's `webhook_configs` takes lookout's notifications as they are.
//!
//! ```json
//! {"receiver": "ops", "status": "firing", "alerts": [{"status": "firing", "labels": {..},
//!  "annotations": {..}, "startsAt": "..", "endsAt": "0001-01-01T00:00:00Z",
//!  "generatorURL": "..", "fingerprint": ".."}], "groupLabels": {..}, "commonLabels": {..},
//!  "commonAnnotations": {..}, "externalURL": "..", "version": "4", "groupKey": "..",
//!  "truncatedAlerts": 0}
//! ```
//!
//! The URL is a secret (it often carries a token): it never appears in an error or a log, not
//! even when the receiver echoes it back in an error page.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::{rfc3339, Ack, Batch, Item, Notifier, SendError, Status};
use crate::config::receivers::{Secret, WebhookConfig};

/// What Alertmanager puts in `endsAt` of an alert still firing (Go's zero time).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The most of a response body read (for an error message); the rest is never read.
pub(crate) const BODY_LIMIT: usize = 4096;

/// The most of a response body put into an error message.
const REASON_LIMIT: usize = 300;

/// The longest `Retry-After` honoured: a receiver cannot park a queue for days.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// `User-Agent` of every notifier's request.
pub(crate) const UA: &str = concat!("lookout/", env!("CARGO_PKG_VERSION"));

/// Alertmanager's webhook message (`notify/webhook`'s `Message`: `template.Data` plus
/// `version`, `groupKey` and `truncatedAlerts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    pub receiver: String,
    /// `firing` when any alert of the batch fires, else `resolved`.
    pub status: String,
    pub alerts: Vec<WebhookAlert>,
    pub group_labels: BTreeMap<String, String>,
    /// The labels every alert in `alerts` has with the same value.
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// Always `"4"`.
    pub version: String,
    pub group_key: String,
    /// How many alerts `max_alerts` left out.
    pub truncated_alerts: u64,
}

/// One alert of a [`WebhookMessage`] (Alertmanager's `template.Alert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    /// [`ZERO_TIME`] while firing.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// Build the webhook message for `batch`. With `max_alerts > 0` at most that many alerts are
/// put in, firing ones before resolved ones (otherwise in batch order), the rest counted in
/// `truncatedAlerts`; `commonLabels` and `commonAnnotations` are those of the alerts put in,
/// as in Alertmanager.
pub fn message(batch: &Batch, receiver: &str, max_alerts: usize) -> WebhookMessage {
    let mut items: Vec<&Item> = batch.items.iter().collect();
    let mut truncated = 0;
    if max_alerts > 0 && items.len() > max_alerts {
        // Stable: firing first, each kind in batch order.
        items.sort_by_key(|i| i.status != Status::Firing);
        truncated = (items.len() - max_alerts) as u64;
        items.truncate(max_alerts);
    }
    let now = now_unix();
    let generator_url = generator_url(&batch.external_url);
    let alerts: Vec<WebhookAlert> = items
        .iter()
        .map(|i| WebhookAlert {
            status: i.status.as_str().to_string(),
            labels: i.labels.clone(),
            annotations: i.annotations.clone(),
            starts_at: rfc3339(i.starts_at),
            ends_at: match i.status {
                Status::Firing => ZERO_TIME.to_string(),
                Status::Resolved => rfc3339(i.ends_at.unwrap_or(now)),
            },
            generator_url: generator_url.clone(),
            fingerprint: i.fingerprint.clone(),
        })
        .collect();
    let status = if batch.firing() > 0 {
        Status::Firing
    } else {
        Status::Resolved
    };
    WebhookMessage {
        receiver: receiver.to_string(),
        status: status.as_str().to_string(),
        common_labels: common(alerts.iter().map(|a| &a.labels)),
        common_annotations: common(alerts.iter().map(|a| &a.annotations)),
        alerts,
        group_labels: batch.group_labels.clone(),
        external_url: batch.external_url.clone(),
        version: "4".to_string(),
        group_key: batch.group_key.clone(),
        truncated_alerts: truncated,
    }
}

/// The pairs every map has with the same value.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in maps {
        if out.is_empty() {
            break;
        }
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// Where an alert came from: lookout's own alert list.
pub(crate) fn generator_url(external_url: &str) -> String {
    format!("{}/api/v1/alerts", external_url.trim_end_matches('/'))
}

pub(crate) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// An HTTP client with lookout's user agent and `timeout` for the whole exchange.
pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    let mut b = reqwest::Client::builder().user_agent(UA);
    if !timeout.is_zero() {
        b = b.timeout(timeout);
    }
    // Building fails only when the TLS backend cannot start (rustls with ring and built-in
    // roots does not); a plain client is the same without the timeout.
    b.build().unwrap_or_else(|_| reqwest::Client::new())
}

/// A transport error as text without the URL, with its causes (`connection refused`).
pub(crate) fn error_text(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut out = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(cause) = src {
        let c = cause.to_string();
        if !out.ends_with(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
        src = cause.source();
    }
    if timeout && !out.contains("timed out") {
        out.push_str(" (timed out)");
    }
    out
}

/// At most `limit` bytes of a response body, as text; the rest is never read.
pub(crate) async fn read_bounded(resp: &mut reqwest::Response, limit: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(limit - buf.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A response body cut for an error message: one line, at most [`REASON_LIMIT`] characters.
pub(crate) fn body_excerpt(body: &str) -> String {
    let one_line: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    super::truncate(&one_line, REASON_LIMIT)
}

/// `Retry-After` as a duration: delay-seconds or an HTTP date, at most [`RETRY_AFTER_MAX`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => {
            let at = http_date(v)?;
            Duration::from_secs_f64((at - now_unix()).max(0.0))
        }
    };
    Some(d.min(RETRY_AFTER_MAX))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as unix seconds.
fn http_date(s: &str) -> Option<f64> {
    let mut f = s.split_whitespace();
    let _weekday = f.next()?;
    let day: i64 = f.next()?.parse().ok()?;
    let month_name = f.next()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month_name)? as i64
        + 1;
    let year: i64 = f.next()?.parse().ok()?;
    let mut hms = f.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if f.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se) as f64)
}

/// Sends to one webhook URL.
pub struct WebhookNotifier {
    client: reqwest::Client,
    /// The parsed URL, or why it cannot be used (never with the URL in it).
    url: Result<Url, String>,
    secret: Secret,
    receiver: String,
    max_alerts: usize,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("url", &self.secret)
            .field("receiver", &self.receiver)
            .field("max_alerts", &self.max_alerts)
            .finish()
    }
}

impl WebhookNotifier {
    pub fn new(cfg: &WebhookConfig, receiver: &str) -> WebhookNotifier {
        let url = Url::parse(cfg.url.expose().trim())
            .map_err(|e| format!("the webhook URL is invalid: {e}"))
            .and_then(|u| match u.scheme() {
                "http" | "https" => Ok(u),
                _ => Err("the webhook URL is not http or https".to_string()),
            });
        WebhookNotifier {
            client: client(cfg.timeout),
            url,
            secret: cfg.url.clone(),
            receiver: receiver.to_string(),
            max_alerts: cfg.max_alerts,
        }
    }

    /// The message [`send`](Notifier::send) posts for `batch`.
    pub fn message(&self, batch: &Batch) -> WebhookMessage {
        message(batch, &self.receiver, self.max_alerts)
    }

    /// `text` with every form of the URL that could give it away replaced by `<url>`: the
    /// whole URL, and its path and query (a receiver's error page may echo them).
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut forms = vec![self.secret.expose().trim().to_string()];
        if let Ok(u) = &self.url {
            forms.push(u.as_str().to_string());
            if u.path().len() > 1 {
                forms.push(u.path().to_string());
                if let Ok(decoded) = percent_decoded(u.path()) {
                    forms.push(decoded);
                }
            }
            if let Some(q) = u.query().filter(|q| !q.is_empty()) {
                forms.push(q.to_string());
            }
        }
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        for f in forms.iter().filter(|f| !f.is_empty()) {
            out = out.replace(f.as_str(), "<url>");
        }
        out
    }
}

/// `%XX` escapes decoded (for scrubbing the path as a receiver may print it).
fn percent_decoded(s: &str) -> Result<String, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[async_trait::async_trait]
impl Notifier for WebhookNotifier {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, batch: &Batch) -> Result<Ack, SendError> {
        let url = match &self.url {
            Ok(u) => u.clone(),
            Err(e) => return Err(SendError::Disabled { reason: e.clone() }),
        };
        let body = serde_json::to_vec(&self.message(batch)).map_err(|e| SendError::Rejected {
            reason: format!("cannot encode the webhook message: {e}"),
        })?;
        let mut resp = match self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Err(SendError::Retry {
                    after: None,
                    reason: self.scrub(&format!("webhook: {}", error_text(e))),
                })
            }
        };
        let status = resp.status();
        let after = retry_after(resp.headers());
        let text = read_bounded(&mut resp, BODY_LIMIT).await;
        let reason = || {
            let excerpt = body_excerpt(&text);
            let msg = if excerpt.is_empty() {
                format!("webhook: HTTP {status}")
            } else {
                format!("webhook: HTTP {status}: {excerpt}")
            };
            self.scrub(&msg)
        };
        if status.is_success() {
            return Ok(Ack {
                detail: reason(),
                message_id: None,
            });
        }
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Err(SendError::Retry {
                    after,
                    reason: reason(),
                })
            }
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Err(SendError::Retry {
                after: None,
                reason: reason(),
            }),
            _ => Err(SendError::Rejected { reason: reason() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn item(seq: u64, status: Status, labels: &[(&str, &str)]) -> Item {
        Item {
            seq,
            status,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), format!("s{seq}"))].into(),
            starts_at: 1_796_048_630.5,
            ends_at: (status == Status::Resolved).then_some(1_796_048_690.0),
            value: None,
            reason: None,
            logs: vec![],
            fingerprint: format!("fp{seq}"),
        }
    }

    fn batch(items: Vec<Item>) -> Batch {
        Batch {
            receiver: "ops".into(),
            group_key: "{}:{alertname=\"X\"}".into(),
            group_labels: [("alertname".to_string(), "X".to_string())].into(),
            items,
            host: "h".into(),
            external_url: "http://h:9659/".into(),
            thread: None,
            test: false,
            repeat: false,
        }
    }

    fn cfg(url: &str, max_alerts: usize) -> WebhookConfig {
        WebhookConfig {
            url: Secret::new(url),
            max_alerts,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn message_has_alertmanagers_fields() {
        let b = batch(vec![
            item(1, Status::Firing, &[("alertname", "X"), ("name", "a")]),
            item(2, Status::Resolved, &[("alertname", "X"), ("name", "b")]),
        ]);
        let v = serde_json::to_value(message(&b, "ops", 0)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "receiver",
            "status",
            "alerts",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "version",
            "groupKey",
            "truncatedAlerts",
        ] {
            assert!(keys.contains(&k), "{k} missing in {keys:?}");
        }
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "ops");
        assert_eq!(v["groupKey"], "{}:{alertname=\"X\"}");
        assert_eq!(v["commonLabels"], serde_json::json!({"alertname": "X"}));
        assert_eq!(v["commonAnnotations"], serde_json::json!({}));
        assert_eq!(v["truncatedAlerts"], 0);
        let a = &v["alerts"][0];
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(a["startsAt"], "2026-11-30T14:23:50.500Z");
        assert_eq!(a["generatorURL"], "http://h:9659/api/v1/alerts");
        assert_eq!(a["fingerprint"], "fp1");
        assert_eq!(v["alerts"][1]["endsAt"], "2026-11-30T14:24:50.000Z");
        assert_eq!(v["alerts"][1]["status"], "resolved");

        let resolved = batch(vec![item(2, Status::Resolved, &[("alertname", "X")])]);
        assert_eq!(message(&resolved, "ops", 0).status, "resolved");
    }

    #[test]
    fn max_alerts_truncates_keeping_firing_ones() {
        let b = batch(vec![
            item(1, Status::Resolved, &[("alertname", "X"), ("n", "1")]),
            item(2, Status::Firing, &[("alertname", "X"), ("n", "2")]),
            item(3, Status::Resolved, &[("alertname", "X"), ("n", "3")]),
            item(4, Status::Firing, &[("alertname", "X"), ("n", "4")]),
        ]);
        let m = message(&b, "ops", 3);
        assert_eq!(m.truncated_alerts, 1);
        let fps: Vec<&str> = m.alerts.iter().map(|a| a.fingerprint.as_str()).collect();
        assert_eq!(fps, ["fp2", "fp4", "fp1"]);
        assert_eq!(m.status, "firing");
        let all = message(&b, "ops", 0);
        assert_eq!(all.truncated_alerts, 0);
        assert_eq!(all.alerts.len(), 4);
        let m = message(&b, "ops", 4);
        assert_eq!(m.truncated_alerts, 0);
        assert_eq!(
            m.alerts[0].fingerprint, "fp1",
            "no reordering without truncation"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "99999999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(RETRY_AFTER_MAX));
        h.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777.0)
        );
        assert_eq!(
            http_date("Mon, 30 Nov 2026 14:23:50 GMT"),
            Some(1_796_048_630.0)
        );
    }

    /// A one-shot HTTP server answering every request with `response`; the requests' text.
    async fn answer(response: &'static str) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let mut seen = Vec::new();
            if let Ok(Ok((mut s, _))) =
                tokio::time::timeout(Duration::from_secs(10), l.accept()).await
            {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                seen.push(String::from_utf8_lossy(&got).to_string());
                let _ = s.write_all(response.as_bytes()).await;
                let _ = s.shutdown().await;
            }
            seen
        });
        (format!("http://{addr}"), h)
    }

    const TOKEN: &str = "T0ps3cr3t-t0k3n";

    #[tokio::test]
    async fn the_url_never_appears_in_errors() {
        let b = batch(vec![item(1, Status::Firing, &[("alertname", "X")])]);

        // Refused connection: a Retry whose text has no trace of the URL.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://user:pw{TOKEN}@127.0.0.1:{port}/hooks/{TOKEN}?token={TOKEN}");
        let n = WebhookNotifier::new(&cfg(&url, 0), "ops");
        let err = n.send(&b).await.unwrap_err();
        assert!(
            matches!(err, SendError::Retry { after: None, .. }),
            "{err:?}"
        );
        for text in [err.to_string(), format!("{err:?}"), format!("{n:?}")] {
            assert!(!text.contains(TOKEN), "{text}");
            assert!(!text.contains("/hooks"), "{text}");
        }

        // A receiver echoing the path in its error page: Rejected, the path scrubbed.
        let (base, h) = answer(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 57\r\nConnection: close\r\n\r\n<pre>Cannot POST /hooks/T0ps3cr3t-t0k3n</pre>\n<p>nope</p>\n",
        )
        .await;
        let n = WebhookNotifier::new(&cfg(&format!("{base}/hooks/{TOKEN}"), 0), "ops");
        let err = n.send(&b).await.unwrap_err();
        let SendError::Rejected { reason } = &err else {
            panic!("{err:?}")
        };
        assert!(reason.contains("404"), "{reason}");
        assert!(reason.contains("Cannot POST <url>"), "{reason}");
        assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
        let req = h.await.unwrap().join("");
        assert!(
            req.starts_with(&format!("POST /hooks/{TOKEN} HTTP/1.1")),
            "{req}"
        );
        assert!(req.contains("\"version\":\"4\""), "{req}");

        // A timeout: Retry, no URL.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut c = cfg(&format!("http://{addr}/hooks/{TOKEN}"), 0);
        c.timeout = Duration::from_millis(300);
        let err = WebhookNotifier::new(&c, "ops").send(&b).await.unwrap_err();
        drop(l);
        assert!(matches!(err, SendError::Retry { .. }), "{err:?}");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");

        // An unusable URL: Disabled, without the URL.
        let n = WebhookNotifier::new(&cfg(&format!("ftp://x/{TOKEN}"), 0), "ops");
        let err = n.send(&b).await.unwrap_err();
        assert!(matches!(err, SendError::Disabled { .. }), "{err:?}");
        assert!(!err.to_string().contains(TOKEN), "{err}");
        let n = WebhookNotifier::new(&cfg(&format!("not a url {TOKEN}"), 0), "ops");
        let err = n.send(&b).await.unwrap_err();
        assert!(!err.to_string().contains(TOKEN), "{err}");
    }

    type Check = fn(&Result<Ack, SendError>) -> bool;

    #[tokio::test]
    async fn statuses_map_to_outcomes() {
        let b = batch(vec![item(1, Status::Firing, &[("alertname", "X")])]);
        let cases: [(&'static str, Check); 4] = [
            ("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", |r| {
                r.is_ok()
            }),
            (
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 12\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                |r| {
                    matches!(r, Err(SendError::Retry { after: Some(d), .. }) if *d == Duration::from_secs(12))
                },
            ),
            (
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
                |r| matches!(r, Err(SendError::Retry { after: None, reason }) if reason.contains("502") && reason.contains("oops")),
            ),
            (
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\nConnection: close\r\n\r\nbad one",
                |r| matches!(r, Err(SendError::Rejected { reason }) if reason.contains("bad one")),
            ),
        ];
        for (response, ok) in cases {
            let (base, h) = answer(response).await;
            let r = WebhookNotifier::new(&cfg(&format!("{base}/x"), 0), "ops")
                .send(&b)
                .await;
            assert!(ok(&r), "{response:?} gave {r:?}");
            h.await.unwrap();
        }
    }

    #[test]
    fn kind_and_grouping() {
        let n = WebhookNotifier::new(&cfg("http://127.0.0.1:1/", 0), "ops");
        assert_eq!(n.kind(), "webhook");
        assert!(n.groups());
        assert_eq!(n.resend_interval(), None);
    }
}
