pub mod agent;
pub mod analyze;
pub mod check;
pub mod ctl;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod exec;
#[cfg(test)]
mod golden;
pub mod import;
pub mod learn;
pub mod overlay;
pub mod run;
pub mod syslog;
pub mod systemd;

pub use error::CmdError;

/// capexec's own failures (declaration errors, sandbox setup) exit with this,
/// so they are told apart from the service's own statuses.
pub const EXIT_SETUP: i32 = 125;
pub const EXIT_NOEXEC: i32 = 127;

pub fn search_path(extra: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    if !extra.is_empty() {
        return extra.to_vec();
    }
    if let Ok(p) = std::env::var("CAPEXEC_UNIT_PATH") {
        return p.split(':').filter(|s| !s.is_empty()).map(Into::into).collect();
    }
    capexec_decl::source::default_search_path()
}
