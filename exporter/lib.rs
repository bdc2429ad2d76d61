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
//!                     └──► engine ──► notify | act   (notify and act: later issues)
//! ```
//!
//! - [`config`]: the embedded default, the YAML file, environment and flags, validated as a
//!   whole with `FILE:LINE:COL` errors ([`yamlloc`] finds the locations).
//! - [`docker_api`]: the one trait lookout reaches Docker through, and its bollard implementation.
//! - [`collect`]: the [`collect::Collector`] trait, one file per collector, and the runner that
//!   runs them concurrently under deadlines.
//! - [`snapshot`]: one cycle's facts as plain data, with rates derived from the previous cycle.
//! - [`exposition`]: the snapshot encoded once per cycle as Prometheus text or OpenMetrics.
//! - [`engine`]: alert rules (top-level `rules/` holds the default set) evaluated over each
//!   snapshot and on Docker events; transitions go out on a channel.
//! - [`http`]: the router (`/metrics`, `/health`, `/ready`, `/`, `/api/v1/containers`).
//! - [`doctor`]: `lookout doctor`'s diagnosis of the environment.
//! - [`logging`]: `--log.level` and `--log.format` (logfmt, json, or readable on a terminal).
//! - [`app`]: wiring: build the collectors, run the collection loop, serve HTTP.

pub mod app;
pub mod collect;
pub mod config;
pub mod docker_api;
pub mod doctor;
pub mod engine;
pub mod exposition;
pub mod http;
pub mod logging;
pub mod snapshot;
pub mod state_dir;
pub mod yamlloc;

pub use app::{collect_once, run};

/// The Rust version lookout was built with (for `lookout_build_info`).
pub const RUSTC_VERSION: &str = env!("LOOKOUT_RUSTC_VERSION");

/// Seconds since the Unix epoch, as a float.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
