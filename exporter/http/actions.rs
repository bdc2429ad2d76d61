//! `/api/v1/actions` (the audit trail, and resetting a container lookout gave up on) and
//! `POST /api/v1/containers/{name}/actions` (a person asks for an action). Changing anything
//! follows the admin switch of silences and reload: loopback, or `--web.enable-lifecycle`.

use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{silences::admin_allowed, HttpError, HttpState};
use crate::act::task::{Handle, Manual};

fn handle(s: &HttpState) -> Result<&std::sync::Arc<Handle>, HttpError> {
    s.actions.as_ref().ok_or_else(|| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "failover actions are not running",
        )
    })
}

/// `GET /api/v1/actions`: `{"actions": [...]}`, newest last, and each container's restart
/// history.
pub async fn list(State(s): State<HttpState>) -> Result<Response, HttpError> {
    let h = handle(&s)?;
    Ok(Json(serde_json::json!({
        "actions": h.audit.recent(),
        "enabled": h.enabled(),
        "dryRun": h.dry_run(),
        "restarts": h.restarts(),
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    container: Option<String>,
}

/// `POST /api/v1/actions/reset` (`{"container": "web-1"}`, or `{}` for all).
pub async fn reset(
    State(s): State<HttpState>,
    ext: Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, HttpError> {
    admin_allowed(&s, &ext, &headers)?;
    let h = handle(&s)?;
    let b: ResetBody = if body.iter().all(|c| c.is_ascii_whitespace()) {
        ResetBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, format!("invalid body: {e}")))?
    };
    let n = h.reset(b.container.as_deref());
    tracing::info!(container = ?b.container, cleared = n, "action history reset");
    Ok(Json(serde_json::json!({ "reset": n })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualBody {
    action: String,
}

/// `POST /api/v1/containers/{name}/actions` with `{"action": "restart"}` (or start, stop).
pub async fn manual(
    State(s): State<HttpState>,
    ext: Extensions,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, HttpError> {
    admin_allowed(&s, &ext, &headers)?;
    let h = handle(&s)?;
    let b: ManualBody = serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"action\": \"restart\"}} (or start, stop): {e}"),
        )
    })?;
    let Some(what) = Manual::parse(&b.action) else {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown action {:?}: restart, start or stop", b.action),
        ));
    };
    match h.manual(&name, what).await {
        Ok(msg) => Ok(Json(serde_json::json!({ "result": msg })).into_response()),
        Err(e) => Err(HttpError::new(StatusCode::CONFLICT, e)),
    }
}
