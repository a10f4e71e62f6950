//! The capexec command line definition, shared by the binary and by the tests
//! that generate the manual pages from it.

pub mod cli;
pub mod exposure;
