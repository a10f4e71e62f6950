//! The capexec daemon: supervises many confined services.
//!
//! [`daemon`] is the event loop; per service it drives a [`state::Machine`]
//! and carries out its actions: launching through the [`launcher`] process
//! (forked before the runtime, single-threaded), tracking and killing through a
//! [`cgroup`], capturing output ([`logs`]), reading sd_notify messages
//! ([`notify`]). [`control`] and [`protocol`] are the control socket, shared
//! with the CLI; [`paths`] says where a system or user daemon keeps things.
//! What a service was refused goes into its [`trail`]: as root from the
//! kernel's [`audit`] log, rootless from the [`refusals`] it answers itself.

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md);
// here only `daemon::watch`, tokio's fd registration.
#![deny(unsafe_code)]

pub mod audit;
pub mod cgroup;
pub mod control;
pub mod daemon;
pub mod error;
pub mod fdpass;
pub mod launcher;
pub mod logs;
pub mod notify;
pub mod paths;
pub mod privileged;
pub mod protocol;
pub mod readiness;
pub mod refusals;
pub mod state;
pub mod trail;

pub use error::SupervisorError;
