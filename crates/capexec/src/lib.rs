//! The capexec command line definition (shared by the binary and by the tests
//! that generate the manual pages from it), and the two pure conversions the
//! tests also call: scoring a declaration (`exposure`) and converting a
//! systemd unit (`import`).

pub mod cli;
pub mod exposure;
pub mod import;
