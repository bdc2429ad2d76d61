//! `lookout healthcheck`: ask a running lookout whether it is live (`/health`) and ready
//! (`/ready`), and say so by the exit code. It is what the image's `HEALTHCHECK` runs, since a
//! minimal image has no curl; the same command serves systemd's `ExecStartPost` or a cron job.
//!
//! The address is `--url` when given, else the one lookout itself listens on (`listen`, from
//! `--web.listen-address`, `LOOKOUT_LISTEN` or the config file, as `lookout run` reads them),
//! with a wildcard host (`0.0.0.0`, `::`, empty) asked on loopback. A proxy from the
//! environment (`HTTP_PROXY`) is never used: the check is about this host's lookout.

use std::time::Duration;

/// What to check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The running lookout, e.g. `http://127.0.0.1:9659`.
    pub url: String,
    /// Ask `/ready` too (the default): a lookout that serves but whose collection is stuck, not
    /// done yet, or one of whose tasks is down, is not healthy for a container runtime.
    pub ready: bool,
    /// For the whole check, both requests together; a hung lookout must fail the check, not
    /// hold it until the runtime's own timeout.
    pub timeout: Duration,
}

/// Why the check failed. Each says the URL asked, so the runtime's health log is enough.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthError {
    #[error("cannot reach lookout at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("no answer from {url} within {}", crate::config::format_duration(*.timeout))]
    Timeout { url: String, timeout: Duration },
}

/// The URL to check for lookout's `listen` address: `0.0.0.0:9659` and `:9659` become
/// `http://127.0.0.1:9659`, `[::]:9659` becomes `http://[::1]:9659`; any other host is kept.
pub fn url_for_listen(listen: &str) -> String {
    let (host, port) = match listen.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (listen, "9659"),
    };
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" | "::" | "[::0]" => "[::1]",
        h => h,
    };
    format!("http://{host}:{port}")
}

/// Run the check: `/health`, then `/ready` unless `check.ready` is false. `Ok` holds a line
/// for the runtime's health log.
pub async fn check(check: &Check) -> Result<String, HealthError> {
    let base = check.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(check.timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let paths: &[&str] = if check.ready {
        &["/health", "/ready"]
    } else {
        &["/health"]
    };
    let all = async {
        for path in paths {
            get(&client, &format!("{base}{path}"), check.timeout).await?;
        }
        Ok(())
    };
    match tokio::time::timeout(check.timeout, all).await {
        Ok(Ok(())) => Ok(format!(
            "lookout at {base} is live{}",
            if check.ready { " and ready" } else { "" }
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HealthError::Timeout {
            url: base,
            timeout: check.timeout,
        }),
    }
}

/// One GET; any answer but a 2xx is a failure, quoted (first line, at most 200 characters).
async fn get(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<(), HealthError> {
    let resp = client.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            HealthError::Timeout {
                url: url.to_string(),
                timeout,
            }
        } else {
            HealthError::Unreachable {
                url: url.to_string(),
                reason: crate::notify::webhook::error_text(e),
            }
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let first: String = body
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    Err(HealthError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body: first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::get as route;

    #[test]
    fn a_wildcard_listen_address_is_asked_on_loopback() {
        assert_eq!(url_for_listen("0.0.0.0:9659"), "http://127.0.0.1:9659");
        assert_eq!(url_for_listen(":9100"), "http://127.0.0.1:9100");
        assert_eq!(url_for_listen("[::]:9659"), "http://[::1]:9659");
        assert_eq!(url_for_listen("10.0.0.5:9659"), "http://10.0.0.5:9659");
        assert_eq!(url_for_listen("localhost:80"), "http://localhost:80");
        assert_eq!(url_for_listen("[::1]:9659"), "http://[::1]:9659");
    }

    /// A server on loopback answering `/health` and `/ready` with the given statuses.
    async fn serve(health: u16, ready: u16) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = |s: u16| StatusCode::from_u16(s).unwrap();
        let app = axum::Router::new()
            .route(
                "/health",
                route(move || async move { (status(health), "ok\n") }),
            )
            .route(
                "/ready",
                route(move || async move {
                    (
                        status(ready),
                        "not ready: the first collection is not done yet\n",
                    )
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn spec(url: &str, ready: bool) -> Check {
        Check {
            url: url.to_string(),
            ready,
            timeout: Duration::from_secs(2),
        }
    }

    #[tokio::test]
    async fn live_and_ready_passes() {
        let url = serve(200, 200).await;
        let ok = check(&spec(&url, true)).await.unwrap();
        assert_eq!(ok, format!("lookout at {url} is live and ready"));
    }

    #[tokio::test]
    async fn unready_fails_unless_only_liveness_is_asked() {
        let url = serve(200, 503).await;
        let err = check(&spec(&url, true)).await.unwrap_err();
        assert_eq!(
            err,
            HealthError::Status {
                url: format!("{url}/ready"),
                status: 503,
                body: "not ready: the first collection is not done yet".into(),
            }
        );
        assert!(check(&spec(&url, false)).await.is_ok());
        let url = serve(503, 200).await;
        assert!(matches!(
            check(&spec(&url, false)).await,
            Err(HealthError::Status { status: 503, .. })
        ));
    }

    #[tokio::test]
    async fn nothing_listening_fails() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = check(&spec(&format!("http://127.0.0.1:{port}"), true))
            .await
            .unwrap_err();
        match err {
            HealthError::Unreachable { url, reason } => {
                assert_eq!(url, format!("http://127.0.0.1:{port}/health"));
                assert!(reason.contains("refused"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_within_the_timeout() {
        // Accepted by the kernel's backlog, never read: the request hangs.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let c = Check {
            timeout: Duration::from_millis(300),
            ..spec(&url, true)
        };
        let start = std::time::Instant::now();
        let err = check(&c).await.unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(err, HealthError::Timeout { .. }), "{err:?}");
        assert!(err.to_string().contains("within 300ms"), "{err}");
        drop(listener);
    }
}
