//! The BCDI hosting service as a library: the domain, the ports it needs, their AWS adapters and
//! the HTTP handlers. Every Lambda in `functions/` and the local server in `local/` run this code.
//!
//! Boundaries: `domain` depends on nothing but std, serde and time; `ports` only on `domain`;
//! AWS crates appear only in `adapters` and `lambda`.

pub mod adapters;
pub mod api;
pub mod archive;
pub mod config;
pub mod domain;
pub mod lambda;
pub mod notify;
pub mod ports;
pub mod steps;
pub mod telemetry;
