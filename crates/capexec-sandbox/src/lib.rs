//! From a validated `ServiceSpec` to a running, confined process.
//!
//! [`plan::plan`] turns the spec into a [`plan::SetupPlan`] (pure); [`launch::spawn`]
//! opens the preopened resources ([`resources`]), clones into new namespaces and
//! runs the plan in the child ([`child`]): filesystem view ([`mounts`]), ids and
//! capabilities ([`creds`]), Landlock ([`landlock_rules`]), seccomp ([`seccomp`]),
//! exec. [`doctor`] reports what the kernel supports. Raw syscalls live in the
//! capexec-sys crate, re-exported here as [`sys`].

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md);
// here only aya's Pod for netguard's map value, and tests that probe the kernel.
#![deny(unsafe_code)]

pub mod child;
mod container_hooks;
pub use container_hooks::HookFailure;
pub mod creds;
pub mod doctor;
pub mod error;
pub mod landlock_rules;
pub mod launch;
pub mod layers;
pub mod mainpid;
pub mod mounts;
pub mod netguard;
pub mod noexec;
pub mod ops;
pub mod plan;
pub mod resources;
pub mod seccomp;
pub mod view_builder;

pub use capexec_sys as sys;
pub use error::LaunchError;
pub use launch::{spawn, spawn_with, wait_foreground, SpawnOptions, Spawned};
pub use plan::{compose, SetupPlan};
