//! # lookout
//!
//! One small sidecar for Docker hosts: it reads every container through the Docker API and the
//! container's own cgroups, reads the host, its disks and its GPUs, and serves all of it on
//! Prometheus `/metrics`.
//!
//! # Layout
//!
//! The modules follow the data flow:
//!
//! ```text
//! collect ──► snapshot ──► exposition   (/metrics)
//!                     └──► engine ──► seam ──► transition log | notify | act (later issue)
//! ```
//!
//! - [`config`]: the embedded default, the YAML file, environment and flags, validated as a
//!   whole with `FILE:LINE:COL` errors ([`yamlloc`] finds the locations).
//! - [`docker_api`]: the one trait lookout reaches Docker through, and its implementation.
//! - [`collect`]: the [`collect::Collector`] trait, one file per collector, the runner that
//!   runs them concurrently under deadlines, and the collection loop ([`collect::cycle`]).
//! - [`snapshot`]: one cycle's facts as plain data, with rates derived from the previous cycle,
//!   and the identity labels of every target ([`snapshot::labels`]).
//! - [`exposition`]: the snapshot encoded once per cycle as Prometheus text or OpenMetrics.
//! - [`engine`]: alert rules (top-level `rules/` holds the default set) evaluated over each
//!   snapshot and on Docker events by the engine task, which hands every transition to the
//!   consumers of its seam ([`engine::seam`]).
//! - [`notify`]: the notifier, a consumer of the seam: routing, grouping, silences and
//!   inhibition ([`notify::dispatch`], [`notify::sender`]), the durable outbox
//!   ([`notify::outbox`]), and one file per receiver kind (Discord, email, Alertmanager,
//!   webhook) behind the [`notify::Notifier`] trait.
//! - [`publish`]: what the engine task publishes and HTTP reads; readiness and liveness.
//! - [`reload`]: the reload task, fed by SIGHUP and `POST /-/reload`.
//! - [`supervise`]: the supervisor that restarts a failed task and reports it.
//! - [`http`]: the router over a narrow state, and the bounded server.
//! - [`state_dir`]: what is kept across restarts, in one embedded database.
//! - [`doctor`]: `lookout doctor`'s diagnosis of the environment.
//! - [`healthcheck`]: `lookout healthcheck`, the image's HEALTHCHECK: `/health` and `/ready` of
//!   a running lookout as an exit code.
//! - [`logging`]: `--log.level` and `--log.format` (logfmt, json, or readable on a terminal).
//! - [`app`]: wiring: create the channels, start the tasks, serve HTTP, stop on one signal.

pub mod act;
pub mod app;
pub mod collect;
pub mod config;
pub mod docker_api;
pub mod doctor;
pub mod engine;
pub mod exposition;
pub mod healthcheck;
pub mod http;
pub mod logging;
pub mod notify;
pub mod publish;
pub mod reload;
pub mod snapshot;
pub mod state_dir;
pub mod supervise;
pub mod yamlloc;

pub use app::{collect_once, run, Io};

/// The Rust version lookout was built with (for `lookout_build_info`).
pub const RUSTC_VERSION: &str = env!("LOOKOUT_RUSTC_VERSION");

/// Seconds since the Unix epoch, as a float.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
