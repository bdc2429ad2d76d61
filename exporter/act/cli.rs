//! `lookout action ...`: against a running lookout's HTTP API.

use crate::notify::cli::{answer, api, client, client_with};

async fn post(url: &str, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    // Under the server's own request timeout (30 s by default), which bounds an action.
    let r = client_with(std::time::Duration::from_secs(60))
        .post(api(url, path))
        .json(&body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach lookout at {url}: {}", e.without_url()))?;
    answer(r).await
}

/// `lookout action restart|start|stop NAME`.
pub async fn manual(url: &str, action: &str, name: &str) -> anyhow::Result<String> {
    let v = post(
        url,
        &format!("/api/v1/containers/{name}/actions"),
        serde_json::json!({ "action": action }),
    )
    .await?;
    Ok(v["result"].as_str().unwrap_or_default().to_string())
}

/// `lookout action reset [NAME]`.
pub async fn reset(url: &str, name: Option<&str>) -> anyhow::Result<u64> {
    let body = match name {
        Some(n) => serde_json::json!({ "container": n }),
        None => serde_json::json!({}),
    };
    let v = post(url, "/api/v1/actions/reset", body).await?;
    Ok(v["reset"].as_u64().unwrap_or(0))
}

/// `lookout action list`: the audit trail, one line each, oldest first.
pub async fn list(url: &str) -> anyhow::Result<String> {
    let r = client()
        .get(api(url, "/api/v1/actions"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach lookout at {url}: {}", e.without_url()))?;
    let v = answer(r).await?;
    let mut out = String::new();
    for a in v["actions"].as_array().cloned().unwrap_or_default() {
        let f = |k: &str| a[k].as_str().unwrap_or("").to_string();
        out.push_str(&format!(
            "{}  {:<14} {:<10} {:<24} {}{}\n",
            f("time"),
            f("action"),
            f("outcome"),
            f("container"),
            f("detail"),
            if f("error").is_empty() {
                String::new()
            } else {
                format!(" ({})", f("error"))
            }
        ));
    }
    Ok(out)
}
