//! Reload: one task re-reads the config file (with the same command-line values) and the rule
//! files, all or nothing, for every request, whether it comes from SIGHUP or from
//! `POST /-/reload`.
//!
//! Requests go through one channel to one task, so reloads never overlap and apply in the
//! order they were asked for; requests that arrive while one runs are answered together by
//! the next (single-flight). A bad new set keeps the running one, answers every problem, and
//! sets `lookout_config_last_reload_successful` to 0. The rules, `interval`,
//! `collector_timeout`, `docker.include`/`exclude` and `docker.labels` apply at once; the
//! answer names the changed keys that only a restart applies.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch, Mutex as AsyncMutex};
use tokio_util::sync::CancellationToken;

use crate::collect::docker::DockerState;
use crate::config::Config;
use crate::engine::rule;
use crate::engine::task::Command;
use crate::publish::{Board, ReloadState};

/// Who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Signal,
    Http,
}

/// The outcome of a reload.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Reloaded {
        rules: usize,
        /// Changed keys that take effect at the next restart.
        needs_restart: Vec<&'static str>,
    },
    /// The running config and rules are kept; every problem, one per line.
    Failed(String),
}

/// One reload request (opaque: made by [`Handle`]).
pub struct Request {
    origin: Origin,
    reply: Option<oneshot::Sender<Outcome>>,
}

impl Request {
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Answer the request (for a reload task of one's own, in tests).
    pub fn answer(self, outcome: Outcome) {
        if let Some(r) = self.reply {
            let _ = r.send(outcome);
        }
    }
}

/// Asks for reloads (cheap to clone).
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
}

impl Handle {
    /// Reload and wait for the outcome.
    pub async fn reload(&self, origin: Origin) -> Outcome {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Request {
                origin,
                reply: Some(reply),
            })
            .await
            .is_err()
        {
            return Outcome::Failed("lookout is shutting down".into());
        }
        rx.await
            .unwrap_or_else(|_| Outcome::Failed("the reload was interrupted".into()))
    }

    /// Ask for a reload without waiting (SIGHUP). When requests are already queued, they
    /// cover this one too.
    pub fn request(&self, origin: Origin) {
        let _ = self.tx.try_send(Request {
            origin,
            reply: None,
        });
    }
}

/// Both ends: `main` keeps a [`Handle`] for SIGHUP (installed before anything else), and
/// [`crate::run`] takes the channel.
pub struct Channel {
    pub handle: Handle,
    inbox: Arc<AsyncMutex<mpsc::Receiver<Request>>>,
}

impl Channel {
    pub fn new() -> Channel {
        let (tx, rx) = mpsc::channel(64);
        Channel {
            handle: Handle { tx },
            inbox: Arc::new(AsyncMutex::new(rx)),
        }
    }
}

impl Default for Channel {
    fn default() -> Channel {
        Channel::new()
    }
}

/// What a reload changes.
pub struct Reloader {
    pub config: watch::Sender<Arc<Config>>,
    pub docker: Arc<DockerState>,
    pub engine: mpsc::Sender<Command>,
    pub board: Arc<Board>,
}

impl Reloader {
    /// Serve reload requests until `token` is cancelled.
    pub async fn run(
        self: Arc<Self>,
        channel: Arc<AsyncMutex<mpsc::Receiver<Request>>>,
        token: CancellationToken,
    ) {
        let mut inbox = channel.lock().await;
        loop {
            let first = tokio::select! {
                r = inbox.recv() => match r { Some(r) => r, None => return },
                _ = token.cancelled() => return,
            };
            // Everything queued by now is answered by this one reload.
            let mut batch = vec![first];
            while let Ok(r) = inbox.try_recv() {
                batch.push(r);
            }
            let origins: Vec<Origin> = batch.iter().map(|r| r.origin).collect();
            tracing::info!(requests = batch.len(), from = ?origins, "reloading config and rules");
            let outcome = self.reload_once().await;
            for r in batch {
                if let Some(reply) = r.reply {
                    let _ = reply.send(outcome.clone());
                }
            }
        }
    }

    async fn reload_once(&self) -> Outcome {
        let old = self.config.borrow().clone();
        let loaded = {
            let old = old.clone();
            tokio::task::spawn_blocking(move || {
                Config::load_from_env(old.source.as_deref(), &old.overrides)
                    .map_err(|e| e.to_string())
                    .and_then(|cfg| {
                        rule::load_for(&cfg)
                            .map(|rules| (cfg, rules))
                            .map_err(|e| e.to_string())
                    })
            })
            .await
            .unwrap_or_else(|e| Err(format!("reload panicked: {e}")))
        };
        match loaded {
            Ok((cfg, rules)) => {
                for w in &rules.warnings {
                    tracing::warn!(warning = %w, "rules");
                }
                let needs_restart = old.needs_restart(&cfg);
                if !needs_restart.is_empty() {
                    tracing::warn!(changed = ?needs_restart, "reloaded; these changes take effect at the next restart");
                }
                self.docker.set_filter(cfg.docker.filter.clone());
                self.config.send_replace(Arc::new(cfg));
                self.board.set_reload(ReloadState {
                    successful: true,
                    success_at: crate::now_unix(),
                });
                let (ack, done) = oneshot::channel();
                let n = rules.rules.len();
                if self
                    .engine
                    .send(Command::Reload { loaded: rules, ack })
                    .await
                    .is_err()
                {
                    return Outcome::Failed("the rule engine is not running".into());
                }
                let n = done.await.unwrap_or(n);
                Outcome::Reloaded {
                    rules: n,
                    needs_restart,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reload failed; keeping the running config and rules");
                let mut st = self.board.reload_state();
                st.successful = false;
                self.board.set_reload(st);
                let (ack, done) = oneshot::channel();
                if self.engine.send(Command::Republish { ack }).await.is_ok() {
                    let _ = done.await;
                }
                Outcome::Failed(e)
            }
        }
    }
}

impl Channel {
    /// The receiving end, for the reload task.
    pub fn inbox(&self) -> Arc<AsyncMutex<mpsc::Receiver<Request>>> {
        self.inbox.clone()
    }
}
