//! The supervisor behind `capexec daemon`. So far: the per-service state machine
//! ([`state`]), pure and driven by events, so that every transition is tested
//! without processes or clocks. The daemon (event loop, launcher, cgroups, logs,
//! control socket) builds on it.

pub mod cgroup;
pub mod state;
