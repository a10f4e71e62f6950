//! The capexec command line definition (shared by the binary and by the tests
//! that generate the manual pages from it), and the two pure conversions the
//! tests also call: scoring a declaration (`exposure`) and converting a
//! systemd unit (`import`); and [`terminal::safe`], which every command that
//! prints a service's own text to a terminal goes through.

pub mod cli;
pub mod exposure;
pub mod import;
pub mod terminal;
