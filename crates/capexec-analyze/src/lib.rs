//! Two pure conversions around a declaration, kept out of the command-line
//! binary so that other tools (and tests) use them without it:
//! [`exposure`] scores a declaration as `systemd-analyze security` scores a
//! unit, from the plan a launch would run; [`import`] turns a systemd unit
//! file into a declaration.

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod exposure;
pub mod import;
