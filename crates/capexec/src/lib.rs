//! The capexec command line definition, shared by the binary and by the tests
//! that generate the manual pages from it. (Scoring a declaration and
//! converting a systemd unit live in capexec-analyze.)

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]

pub mod cli;
