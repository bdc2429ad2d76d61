//! `/api/v1/silences`: list, create and expire silences. Reading is open; changing needs the
//! admin switch (`--web.enable-lifecycle`, as reload) or a client on loopback, until lookout
//! has authentication.
//!
//! The JSON is Alertmanager's (`matchers` as `{name, value, isRegex, isEqual}`, `startsAt`,
//! `endsAt`, `createdBy`, `comment`); `matchers` may also be given as strings such as
//! `name="web-1"`.

use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::serve::Peer;
use super::{cross_site, HttpError, HttpState};
use crate::notify::matcher::{JsonMatcher, Matcher};
use crate::notify::silence::NewSilence;

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyMatcher {
    Text(String),
    Json(JsonMatcher),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostSilence {
    matchers: Vec<AnyMatcher>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    /// Instead of `endsAt`: a duration such as `2h` from `startsAt` (lookout's CLI uses it).
    duration: Option<String>,
    created_by: Option<String>,
    comment: Option<String>,
    /// Alertmanager's update-by-id; lookout expires the old one and creates a new one.
    id: Option<String>,
}

fn parse_time(field: &str, s: &str) -> Result<f64, HttpError> {
    crate::docker_api::parse_rfc3339(s).ok_or_else(|| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("{field}: expected an RFC 3339 time such as 2026-11-30T15:00:00Z, got {s:?}"),
        )
    })
}

/// Whether this request may change silences.
pub(super) fn admin_allowed(
    s: &HttpState,
    ext: &Extensions,
    headers: &HeaderMap,
) -> Result<(), HttpError> {
    if cross_site(headers) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "cross-site requests may not change silences",
        ));
    }
    let loopback = ext.get::<Peer>().is_some_and(|p| p.0.ip().is_loopback());
    if s.admin || loopback {
        Ok(())
    } else {
        Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "changing silences is allowed from loopback, or from anywhere with --web.enable-lifecycle",
        ))
    }
}

fn shared(s: &HttpState) -> Result<&std::sync::Arc<crate::notify::dispatch::Shared>, HttpError> {
    s.notify.as_ref().ok_or_else(|| {
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "notifications are not running",
        )
    })
}

pub async fn list(State(s): State<HttpState>) -> Result<Response, HttpError> {
    let n = shared(&s)?;
    let now = crate::now_unix();
    let list: Vec<serde_json::Value> = n
        .silences
        .list()
        .iter()
        .map(|x| {
            serde_json::json!({
                "id": x.id,
                "matchers": x.matchers,
                "startsAt": super::rfc3339_millis(x.starts_at),
                "endsAt": super::rfc3339_millis(x.ends_at),
                "updatedAt": super::rfc3339_millis(x.updated_at),
                "createdBy": x.created_by,
                "comment": x.comment,
                "status": {"state": x.state(now)},
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "silences": list })).into_response())
}

pub async fn create(
    State(s): State<HttpState>,
    ext: Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, HttpError> {
    admin_allowed(&s, &ext, &headers)?;
    let n = shared(&s)?;
    let bad = |m: String| HttpError::new(StatusCode::BAD_REQUEST, m);
    let p: PostSilence =
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid silence: {e}")))?;
    let now = crate::now_unix();
    let mut matchers = Vec::new();
    for (i, m) in p.matchers.iter().enumerate() {
        let m = match m {
            AnyMatcher::Text(t) => Matcher::parse(t),
            AnyMatcher::Json(j) => j.build(),
        }
        .map_err(|e| bad(format!("matchers[{i}]: {e}")))?;
        matchers.push(m);
    }
    let starts_at = match &p.starts_at {
        Some(t) => parse_time("startsAt", t)?.max(now),
        None => now,
    };
    let ends_at = match (&p.ends_at, &p.duration) {
        (Some(_), Some(_)) => return Err(bad("give endsAt or duration, not both".into())),
        (Some(t), None) => parse_time("endsAt", t)?,
        (None, Some(d)) => {
            starts_at
                + crate::config::parse_duration(d)
                    .map_err(|e| bad(format!("duration: {e}")))?
                    .as_secs_f64()
        }
        (None, None) => return Err(bad("endsAt (or duration) is required".into())),
    };
    if let Some(old) = &p.id {
        let _ = n.silences.expire(old, now);
    }
    let id = n
        .silences
        .add(
            NewSilence {
                matchers,
                starts_at,
                ends_at,
                created_by: p.created_by.unwrap_or_default(),
                comment: p.comment.unwrap_or_default(),
            },
            now,
        )
        .map_err(bad)?;
    tracing::info!(silence = %id, "silence created");
    Ok(Json(serde_json::json!({ "silenceID": id })).into_response())
}

#[derive(Deserialize)]
pub struct IdQuery {
    id: Option<String>,
}

async fn expire_id(s: HttpState, id: &str) -> Result<Response, HttpError> {
    let n = shared(&s)?;
    match n.silences.expire(id, crate::now_unix()) {
        Ok(true) => {
            tracing::info!(silence = %id, "silence expired");
            Ok(Json(serde_json::json!({ "silenceID": id, "status": "expired" })).into_response())
        }
        Ok(false) => Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no active or pending silence {id}"),
        )),
        Err(e) => Err(HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// `DELETE /api/v1/silences/{id}`.
pub async fn expire(
    State(s): State<HttpState>,
    ext: Extensions,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    admin_allowed(&s, &ext, &headers)?;
    expire_id(s, &id).await
}

/// `DELETE /api/v1/silences?id=...`.
pub async fn expire_query(
    State(s): State<HttpState>,
    ext: Extensions,
    headers: HeaderMap,
    Query(q): Query<IdQuery>,
) -> Result<Response, HttpError> {
    admin_allowed(&s, &ext, &headers)?;
    let Some(id) = q.id else {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "DELETE /api/v1/silences/{id} (or ?id=...)",
        ));
    };
    expire_id(s, &id).await
}
