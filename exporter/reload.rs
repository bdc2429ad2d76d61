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
                        let rules = rule::load_for(&cfg).map_err(|e| e.to_string())?;
                        crate::notify::cli::validate(&cfg, &rules)?;
                        Ok((cfg, rules))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NameFilter, Overrides};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    const RULE: &str = "groups:\n  - name: g\n    rules:\n      - alert: A\n        scope: host\n        expr: load1 > 100\n";

    struct Setup {
        dir: tempfile::TempDir,
        handle: Handle,
        board: Arc<Board>,
        config: watch::Receiver<Arc<Config>>,
        engine_reloads: Arc<AtomicU32>,
        token: CancellationToken,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("lookout.yml");
        std::fs::write(&cfg, "listen: 127.0.0.1:9100\nrule_files: [r.yml]\n").unwrap();
        std::fs::write(dir.path().join("r.yml"), RULE).unwrap();
        let config = Config::load(Some(&cfg), &|_| None, &Overrides::default()).unwrap();
        let (config_tx, config_rx) = watch::channel(Arc::new(config));
        let (engine_tx, mut engine_rx) = mpsc::channel::<Command>(8);
        let engine_reloads = Arc::new(AtomicU32::new(0));
        let count = engine_reloads.clone();
        // A stand-in engine that acknowledges each command.
        tokio::spawn(async move {
            while let Some(cmd) = engine_rx.recv().await {
                match cmd {
                    Command::Reload { loaded, ack } => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = ack.send(loaded.rules.len());
                    }
                    Command::Republish { ack } => {
                        let _ = ack.send(());
                    }
                }
            }
        });
        let board = Board::new(Duration::from_secs(10), Arc::default());
        let reloader = Arc::new(Reloader {
            config: config_tx,
            docker: DockerState::new(NameFilter::all()),
            engine: engine_tx,
            board: board.clone(),
        });
        let channel = Channel::new();
        let token = CancellationToken::new();
        tokio::spawn(reloader.run(channel.inbox(), token.clone()));
        Setup {
            dir,
            handle: channel.handle.clone(),
            board,
            config: config_rx,
            engine_reloads,
            token,
        }
    }

    #[tokio::test]
    async fn a_reload_applies_all_or_nothing_and_names_what_needs_a_restart() {
        let s = setup();
        std::fs::write(
            s.dir.path().join("lookout.yml"),
            "listen: 127.0.0.1:9200\ninterval: 5s\nrule_files: [r.yml]\n",
        )
        .unwrap();
        let two =
            RULE.to_string() + "      - alert: B\n        scope: host\n        expr: load5 > 100\n";
        std::fs::write(s.dir.path().join("r.yml"), two).unwrap();
        let out = s.handle.reload(Origin::Http).await;
        assert_eq!(
            out,
            Outcome::Reloaded {
                rules: 2,
                needs_restart: vec!["listen"]
            }
        );
        assert_eq!(s.config.borrow().interval, Duration::from_secs(5));
        assert!(s.board.reload_state().successful);

        // A broken rule file: nothing applies, every problem is in the answer.
        std::fs::write(
            s.dir.path().join("r.yml"),
            "groups: [{name: x, rules: [{alert: A}]}]\n",
        )
        .unwrap();
        std::fs::write(
            s.dir.path().join("lookout.yml"),
            "listen: 127.0.0.1:9200\ninterval: 7s\nrule_files: [r.yml]\n",
        )
        .unwrap();
        let Outcome::Failed(e) = s.handle.reload(Origin::Signal).await else {
            panic!("a broken file must fail the reload")
        };
        assert!(
            e.contains("r.yml:1:") && e.contains("missing field `scope`"),
            "{e}"
        );
        assert_eq!(
            s.config.borrow().interval,
            Duration::from_secs(5),
            "old config kept"
        );
        assert!(!s.board.reload_state().successful);
        assert_eq!(s.engine_reloads.load(Ordering::SeqCst), 1);
        s.token.cancel();
    }

    /// Reloads never overlap: requests that arrive together are served in order by one task,
    /// and those queued behind a running reload share the next one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reloads_are_single_flight() {
        let s = setup();
        let mut asks = Vec::new();
        for _ in 0..10 {
            let h = s.handle.clone();
            asks.push(tokio::spawn(async move { h.reload(Origin::Http).await }));
        }
        for a in asks {
            assert!(matches!(
                a.await.unwrap(),
                Outcome::Reloaded { rules: 1, .. }
            ));
        }
        let n = s.engine_reloads.load(Ordering::SeqCst);
        assert!((1..10).contains(&n), "{n} engine reloads for 10 requests");
        s.token.cancel();
    }
}
