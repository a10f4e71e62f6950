//! Two pure conversions around a declaration, kept out of the command-line
//! binary so that other tools (and tests) use them without it:
//! [`exposure`] scores a declaration as `systemd-analyze security` scores a
//! unit, from the plan a launch would run; [`import`] turns a systemd unit
//! file into a declaration.

pub mod exposure;
pub mod import;
