//! The capexec declaration format.
//!
//! Data flow: a `.svc` file (plus drop-ins) is read and type-checked by
//! [`source`] into a [`raw::RawUnit`]; [`validate`] turns that into a
//! [`spec::ServiceSpec`] with every default resolved. Errors name the file, line,
//! column and key path ([`error::DeclError`]).

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]
// A DeclError carries file, line, column, key and help text; it is returned
// once per failed load, never in a loop, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod dns_query;
pub mod error;
pub mod fix;
pub mod grants;
pub mod ids;
pub mod overlay;
pub mod raw;
pub mod source;
pub mod spec;
pub mod syscall_table;
pub mod syscalls;
pub mod terminal;
pub mod validate;

pub use error::{DeclError, DeclErrors};
pub use spec::ServiceSpec;
pub use validate::Context;

use std::path::PathBuf;

/// Finds (by path or name), reads, merges and validates one unit.
pub fn load_unit(arg: &str, search: &[PathBuf], ctx: &Context) -> Result<ServiceSpec, DeclErrors> {
    let path = source::resolve(arg, search)?;
    let loaded = source::load(&path)?;
    let mut ctx = ctx.clone();
    ctx.unit_dir = Some(unit_dir(&path));
    let sources = loaded.files.iter().map(|f| f.path.clone()).collect();
    validate::validate(&loaded.name, &loaded.raw, sources, &ctx).map_err(|errs| DeclErrors(errs.0.into_iter().map(|e| loaded.locate(e)).collect()))
}

/// Validates a declaration given as text rather than a file (no drop-ins, no
/// `${UNIT_DIR}` unless `ctx` names one): for tests, and for declarations
/// that arrive inside something else.
pub fn from_text(name: &str, text: &str, ctx: &Context) -> Result<ServiceSpec, DeclErrors> {
    let raw: raw::RawUnit = toml::from_str(text).map_err(|e| DeclError::new(format!("{} is not a valid declaration: {}", name, e.message())))?;
    validate::validate(name, &raw, Vec::new(), ctx)
}

/// The annotation of an OCI container (config.json `annotations`) that
/// holds its `[broker]` grants: the `[broker]` tables of a declaration, as
/// TOML. Read by `capexec-oci` and by `capexec agent` (docs/oci.md).
pub const BROKER_ANNOTATION: &str = "org.capexec.broker";

/// Why the text of an OCI container's capexec annotation is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {key} is not TOML: {message}")]
    NotToml { key: &'static str, message: String },
    /// A table the annotation does not hold (`holds`: what it does).
    #[error("annotation {key} has [{table}]: it holds {holds} only")]
    Foreign { key: &'static str, table: String, holds: &'static str },
    #[error("annotation {PREOPEN_ANNOTATION} has [[preopen.directory]]: a container sees a host directory through a bind mount of its config")]
    Directory,
}

/// Checks the text of a [`BROKER_ANNOTATION`]: TOML with `[broker]` tables
/// and nothing else (what else a container is, its config says).
pub fn check_broker_annotation(text: &str) -> Result<(), AnnotationError> {
    let key = BROKER_ANNOTATION;
    let table: toml::Table = toml::from_str(text).map_err(|e| AnnotationError::NotToml { key, message: e.message().to_owned() })?;
    match table.keys().find(|k| *k != "broker") {
        Some(other) => Err(AnnotationError::Foreign { key, table: other.clone(), holds: "[broker] grants (the container's config says the rest)" }),
        None => Ok(()),
    }
}

/// The annotation of an OCI container that holds its preopened sockets and
/// files: the `[[preopen.listen]]` and `[[preopen.file]]` tables of a
/// declaration, as TOML. Opened by `capexec-oci` in the host's namespaces,
/// given to the container's program with systemd's protocol (docs/oci.md).
pub const PREOPEN_ANNOTATION: &str = "org.capexec.preopen";

/// Checks the text of a [`PREOPEN_ANNOTATION`]: TOML with `preopen.listen`
/// and `preopen.file` tables and nothing else. A preopened directory of the
/// host is refused: a container sees a host directory through a bind mount
/// of its config.
pub fn check_preopen_annotation(text: &str) -> Result<(), AnnotationError> {
    let key = PREOPEN_ANNOTATION;
    const HOLDS: &str = "[[preopen.listen]] and [[preopen.file]] tables";
    let table: toml::Table = toml::from_str(text).map_err(|e| AnnotationError::NotToml { key, message: e.message().to_owned() })?;
    if let Some(other) = table.keys().find(|k| *k != "preopen") {
        return Err(AnnotationError::Foreign { key, table: other.clone(), holds: HOLDS });
    }
    let kinds = table.get("preopen").and_then(|p| p.as_table()).map(|t| t.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    match kinds.iter().find(|k| *k != "listen" && *k != "file") {
        Some(k) if k == "directory" => Err(AnnotationError::Directory),
        Some(k) => Err(AnnotationError::Foreign { key, table: format!("[preopen.{k}]"), holds: HOLDS }),
        None => Ok(()),
    }
}

/// The directory holding a declaration, as `${UNIT_DIR}` expands: canonical, so
/// `units/../units/x.svc` gives a path without `..` that can go into the view.
pub fn unit_dir(path: &std::path::Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| PathBuf::from("/"));
    std::fs::canonicalize(&dir).unwrap_or(dir)
}
