//! An OCI bundle (a directory with config.json and, usually, the root
//! filesystem) read and checked: the first step of `create`, and all of
//! `capexec-oci check`.

use crate::coverage::{self, Finding};
use std::path::{Path, PathBuf};

/// Why a bundle cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: `{field}`: {detail}")]
    Field { path: PathBuf, field: String, detail: String },
    #[error("{path}: ociVersion {version:?} is not a runtime-spec 1.x version, which capexec-oci implements")]
    Version { path: PathBuf, version: String },
    #[error("{path}: {} field(s) capexec-oci does not apply: {}", .refused.len(), .refused.iter().map(|f| format!("`{}` ({})", f.field, f.why)).collect::<Vec<_>>().join("; "))]
    Unsupported { path: PathBuf, refused: Vec<Finding> },
    #[error("{path}: the root filesystem {rootfs} {why}")]
    Rootfs { path: PathBuf, rootfs: PathBuf, why: String },
}

/// A bundle whose config.json capexec-oci can apply.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: oci_spec::runtime::Spec,
    /// The root filesystem, absolute.
    pub rootfs: PathBuf,
    /// Fields that are ignored (see coverage::Verdict::Ignored): warnings.
    pub ignored: Vec<Finding>,
}

/// Reads `dir/config.json` and checks it: valid JSON of the runtime-spec's
/// shape, version 1.x, no field that would be dropped where that weakens
/// confinement (see crate::coverage), a root filesystem that is a directory.
pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
    load_with(dir, |_| Ok(()))
}

/// [`load`], with `edit` applied to config.json's JSON first (`exec` puts
/// its process in place of the config's), so that what it changed is
/// checked as the config is.
pub fn load_with(dir: &Path, edit: impl FnOnce(&mut serde_json::Value) -> Result<(), &'static str>) -> Result<Bundle, BundleError> {
    let path = dir.join("config.json");
    let text = std::fs::read(&path).map_err(|source| BundleError::Read { path: path.clone(), source })?;
    let mut value: serde_json::Value = serde_json::from_slice(&text).map_err(|source| BundleError::Json { path: path.clone(), source })?;
    edit(&mut value).map_err(|detail| BundleError::Field { path: path.clone(), field: "process".into(), detail: detail.into() })?;
    let (refused, ignored): (Vec<Finding>, Vec<Finding>) = coverage::check(&value).into_iter().partition(|f| f.refused);
    // Shape errors first: a misspelt field is better said as what it is.
    let spec: oci_spec::runtime::Spec = serde_path_to_error::deserialize(&value).map_err(|e| BundleError::Field {
        path: path.clone(),
        field: e.path().to_string(),
        detail: e.inner().to_string(),
    })?;
    if !refused.is_empty() {
        return Err(BundleError::Unsupported { path, refused });
    }
    if !spec.version().starts_with("1.") {
        return Err(BundleError::Version { path, version: spec.version().clone() });
    }
    let Some(root) = spec.root() else {
        return Err(BundleError::Field { path, field: "root".into(), detail: "missing: a Linux container needs a root filesystem".into() });
    };
    let rootfs = dir.join(root.path());
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(BundleError::Rootfs { path, rootfs, why: "is not a directory".into() }),
        Err(e) => return Err(BundleError::Rootfs { path, rootfs, why: format!("cannot be used: {e}") }),
    }
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let rootfs = std::path::absolute(&rootfs).unwrap_or(rootfs);
    Ok(Bundle { dir, spec, rootfs, ignored })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: &str, rootfs: bool) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("capexec-oci-bundle-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if rootfs {
            std::fs::create_dir(dir.join("rootfs")).unwrap();
        }
        std::fs::write(dir.join("config.json"), config).unwrap();
        dir
    }

    const MINIMAL: &str =
        r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}}"#;

    #[test]
    fn a_minimal_bundle_loads() {
        let dir = bundle(MINIMAL, true);
        let b = load(&dir).unwrap();
        assert_eq!(b.rootfs, dir.join("rootfs"));
        assert!(b.ignored.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_bundles_are_refused_with_what_is_wrong() {
        let cases = [
            (r#"{"ociVersion": "1.0.2", "#, true, "is not valid JSON"),
            (r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": "true", "cwd": "/"}}"#, true, "`process.args`"),
            (r#"{"ociVersion": "0.9", "root": {"path": "rootfs"}}"#, true, "not a runtime-spec 1.x version"),
            (MINIMAL, false, "the root filesystem"),
            (r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {"intelRdt": {"closID": "x"}}}"#, true, "`linux.intelRdt` (a resource limit"),
            (r#"{"ociVersion": "1.0.2"}"#, true, "`root`: missing"),
        ];
        for (config, rootfs, want) in cases {
            let dir = bundle(config, rootfs);
            let e = load(&dir).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("config.json"), "{config}: {e}");
            std::fs::remove_dir_all(dir).unwrap();
        }
        let e = load(Path::new("/nonexistent-capexec-bundle")).unwrap_err().to_string();
        assert!(e.contains("read /nonexistent-capexec-bundle/config.json: No such file"), "{e}");
    }
}
