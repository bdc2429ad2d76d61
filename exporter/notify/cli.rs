//! The notification commands: `lookout silence add|list|expire` (amtool's idiom, against a
//! running lookout's HTTP API) and `lookout notify-test RECEIVER`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{build, Batch, Item, Status};
use crate::config::Config;
use crate::engine::rule::Loaded;

/// The receivers the rules name that the config lacks: errors (or one warning when the
/// config has no receivers at all), as text.
pub fn check_rule_receivers(cfg: &Config, loaded: &Loaded) -> (Vec<String>, Vec<String>) {
    let used: Vec<(&str, &str)> = loaded
        .rules
        .iter()
        .flat_map(|r| r.notify.iter().map(move |n| (r.alert.as_str(), n.as_str())))
        .collect();
    let (errors, mut warnings) = cfg.notify.check_rule_receivers(used);
    // The embedded default rules name `discord` and `email`: a config that defines only one
    // of them (or others) is told, not refused; the user's own rule files must be right.
    if cfg.rule_files.is_none() {
        // With a receiver at the routing tree's root every alert still goes somewhere.
        let fate = match &cfg.notify.route.receiver {
            Some(r) => format!("those rules' alerts go only where the route sends them (`{r}`)"),
            None => "alerts of those rules reach no one there".to_string(),
        };
        warnings.extend(
            errors
                .into_iter()
                .map(|e| format!("{e} (in the embedded default rules: {fate})")),
        );
        return (Vec::new(), warnings);
    }
    let file = cfg
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<embedded default>".into());
    (
        errors.into_iter().map(|e| format!("{file}: {e}")).collect(),
        warnings,
    )
}

/// Everything about the receivers that stops lookout from starting or a reload from taking:
/// an unknown receiver named by a rule, a receiver whose notifier cannot be built. `Ok` holds
/// the warnings.
pub fn validate(cfg: &Config, loaded: &Loaded) -> Result<Vec<String>, String> {
    let (mut errors, warnings) = check_rule_receivers(cfg, loaded);
    for r in &cfg.notify.receivers {
        if let Err(e) = build(r) {
            errors.push(format!("receiver `{}`: {e}", r.name));
        }
    }
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors.join("\n"))
    }
}

pub(crate) fn client() -> reqwest::Client {
    client_with(Duration::from_secs(10))
}

/// A client for lookout's API with a timeout (an action can take a container's stop timeout).
pub(crate) fn client_with(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

pub(crate) fn api(url: &str, path: &str) -> String {
    format!("{}{path}", url.trim_end_matches('/'))
}

pub(crate) async fn answer(r: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(text);
        anyhow::bail!("{status}: {}", msg.trim());
    }
    Ok(serde_json::from_str(&text)?)
}

/// `lookout silence add MATCHER... --for D --comment C`: prints the new silence's id.
pub async fn silence_add(
    url: &str,
    matchers: &[String],
    duration: &str,
    comment: &str,
    author: &str,
) -> anyhow::Result<String> {
    for m in matchers {
        super::matcher::Matcher::parse(m).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    crate::config::parse_duration(duration)
        .map_err(|e| anyhow::anyhow!("--for {duration:?}: {e}"))?;
    let body = serde_json::json!({
        "matchers": matchers,
        "duration": duration,
        "comment": comment,
        "createdBy": author,
    });
    let r = client()
        .post(api(url, "/api/v1/silences"))
        .json(&body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach lookout at {url}: {}", e.without_url()))?;
    let v = answer(r).await?;
    Ok(v["silenceID"].as_str().unwrap_or_default().to_string())
}

/// `lookout silence list`: a table like amtool's.
pub async fn silence_list(url: &str, all: bool) -> anyhow::Result<String> {
    let r = client()
        .get(api(url, "/api/v1/silences"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach lookout at {url}: {}", e.without_url()))?;
    let v = answer(r).await?;
    let mut rows = vec![[
        "ID".to_string(),
        "Matchers".into(),
        "Ends At".into(),
        "State".into(),
        "Created By".into(),
        "Comment".into(),
    ]];
    for s in v["silences"].as_array().cloned().unwrap_or_default() {
        let state = s["status"]["state"].as_str().unwrap_or("").to_string();
        if !all && state == "expired" {
            continue;
        }
        let matchers: Vec<String> = s["matchers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let op = match (m["isRegex"].as_bool(), m["isEqual"].as_bool()) {
                    (Some(true), Some(false)) => "!~",
                    (Some(true), _) => "=~",
                    (_, Some(false)) => "!=",
                    _ => "=",
                };
                format!(
                    "{}{op}{:?}",
                    m["name"].as_str().unwrap_or(""),
                    m["value"].as_str().unwrap_or("")
                )
            })
            .collect();
        let f = |k: &str| s[k].as_str().unwrap_or("").to_string();
        rows.push([
            f("id"),
            matchers.join(" "),
            f("endsAt"),
            state,
            f("createdBy"),
            f("comment"),
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// `lookout silence expire ID...`.
pub async fn silence_expire(url: &str, id: &str) -> anyhow::Result<()> {
    let r = client()
        .delete(api(url, &format!("/api/v1/silences/{id}")))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach lookout at {url}: {}", e.without_url()))?;
    answer(r).await.map(drop)
}

/// `lookout notify-test RECEIVER`: send a clearly marked test alert; the receiver's answer.
pub async fn notify_test(cfg: &Config, receiver: &str) -> anyhow::Result<String> {
    let Some(r) = cfg.notify.receiver(receiver) else {
        let names = cfg.notify.names();
        anyhow::bail!(
            "no receiver named {receiver:?}; receivers: {}",
            if names.is_empty() {
                "none defined".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let notifier = build(r).map_err(|e| anyhow::anyhow!("{e}"))?;
    let host = crate::collect::host::hostname(&cfg.paths.procfs);
    let now = crate::now_unix();
    let labels: BTreeMap<String, String> = [
        ("alertname", "LookoutTest"),
        ("severity", "info"),
        ("instance", host.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations: BTreeMap<String, String> = [
        ("summary", "lookout test notification: please ignore"),
        (
            "description",
            "Sent by `lookout notify-test` to check that this receiver works. No alert is firing.",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let fingerprint = super::fingerprint(&labels);
    let batch = Batch {
        receiver: r.name.clone(),
        group_key: "{}/notify-test:{}".into(),
        group_labels: BTreeMap::new(),
        items: vec![Item {
            seq: 1,
            status: Status::Firing,
            labels,
            annotations,
            starts_at: now,
            ends_at: None,
            value: None,
            reason: None,
            logs: Vec::new(),
            fingerprint,
        }],
        host: host.clone(),
        external_url: format!(
            "http://{host}:{}",
            cfg.listen.rsplit(':').next().unwrap_or("9659")
        ),
        thread: None,
        test: true,
        repeat: false,
    };
    match notifier.send(&batch).await {
        Ok(ack) => Ok(format!(
            "{} ({}): delivered. {}{}",
            r.name,
            r.kind.as_str(),
            ack.detail,
            ack.message_id
                .map(|m| format!(" (message id {m})"))
                .unwrap_or_default()
        )),
        Err(e) => anyhow::bail!("{} ({}): not delivered: {e}", r.name, r.kind.as_str()),
    }
}
