//! Serving the router (placeholder until the bounded server lands: graceful shutdown with a
//! capped drain only).

use std::future::Future;
use std::time::Duration;

/// What bounds the HTTP server.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    /// How long in-flight requests may finish after shutdown starts.
    pub drain: Duration,
}

impl Limits {
    pub fn from_config(web: &crate::config::WebConfig) -> Limits {
        Limits {
            max_connections: web.max_connections,
            read_header_timeout: web.read_header_timeout,
            idle_timeout: web.idle_timeout,
            request_timeout: web.request_timeout,
            drain: Duration::from_secs(3),
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then drain (at most `limits.drain`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let mut server = std::pin::pin!(std::future::IntoFuture::into_future(server));
    tokio::select! {
        r = &mut server => r,
        _ = async { let _ = rx.await; tokio::time::sleep(limits.drain).await } => Ok(()),
    }
}
