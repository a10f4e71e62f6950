//! Where systemd finds a unit and its drop-ins: what `capexec import NAME`
//! reads, so that the declaration says what `systemctl cat NAME` shows (an
//! administrator's `systemctl edit` override included), not the packaged
//! file alone.

use std::path::{Path, PathBuf};

/// The system manager's unit directories, most important first
/// (systemd.unit(5), "System Unit Search Path"; the generator directories
/// hold units made at boot, which an import should not take for a service's).
pub const SYSTEM_UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// Where SysV init scripts are, which systemd's sysv-generator turns into
/// units for packages that ship no unit of their own.
const INIT_D: &str = "/etc/init.d";

/// A unit as systemd would load it.
#[derive(Debug, PartialEq)]
pub struct Located {
    /// The unit file (for an instance, its template's).
    pub path: PathBuf,
    /// The instance, from `NAME@INSTANCE.service` or `--instance`.
    pub instance: Option<String>,
    /// Its drop-ins (`*.conf` of `UNIT.d/` in the unit directories), in the
    /// order systemd applies them.
    pub dropins: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LocateError {
    #[error("no unit file {name} in systemd's unit directories ({dirs}) and no such file here: give its path")]
    NotFound { name: String, dirs: String },
    #[error(
        "no unit file {name}, only the SysV init script {}: systemd runs such a script through a unit its sysv-generator makes at boot, \
         and capexec import reads unit files only. Give capexec the program the script starts: `capexec learn --workload CMD -- PROGRAM ARGS...` \
         writes a declaration from a run of it (the script's start line, with its /etc/default file's options, names the program)",
        script.display()
    )]
    SysvOnly { name: String, script: PathBuf },
    #[error("{name} is masked ({path} leads to /dev/null): systemd would not start it")]
    Masked { name: String, path: PathBuf },
    #[error("{name} names instance {named}, and --instance says {given}: give one")]
    TwoInstances { name: String, named: String, given: String },
}

/// The unit `arg` names, with `instance` (`--instance`): an existing file
/// is read as it is, with the drop-ins systemd gives it where it lies in one
/// of `dirs`; a bare name (`coturn.service`, `postgresql@15-main.service`)
/// is looked for in `dirs` as systemd does, the template for an instance.
pub fn locate(arg: &Path, instance: Option<&str>, dirs: &[&str]) -> Result<Located, LocateError> {
    let bare = arg.components().count() == 1;
    if arg.exists() || !bare {
        // A file elsewhere (a copy to edit, a test's) is taken alone: drop-ins
        // of a unit of that name on this host are not its.
        let file = arg.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let in_dirs = arg.parent().and_then(|p| p.canonicalize().ok()).is_some_and(|p| dirs.iter().any(|d| Path::new(d).canonicalize().is_ok_and(|d| d == p)));
        let dropins = if in_dirs { dropins(&file, instance, dirs) } else { Vec::new() };
        return Ok(Located { path: arg.to_path_buf(), instance: instance.map(str::to_owned), dropins });
    }
    let name = arg.to_string_lossy().into_owned();
    // NAME@INSTANCE.service: its own file if there is one, else the template's.
    let (file, instance) = match split_instance(&name) {
        Some((template, named)) => {
            if let Some(given) = instance.filter(|g| *g != named) {
                return Err(LocateError::TwoInstances { name: name.clone(), named: named.to_owned(), given: given.to_owned() });
            }
            match find(&name, dirs) {
                // A unit file of the instance's own name is no template.
                Some(_) => (name.clone(), None),
                None => (template, Some(named.to_owned())),
            }
        }
        None => (name.clone(), instance.map(str::to_owned)),
    };
    let path = find(&file, dirs).ok_or_else(|| not_found(&name, &file, dirs, Path::new(INIT_D)))?;
    if masked(&path) {
        return Err(LocateError::Masked { name, path });
    }
    let dropins = dropins(&file, instance.as_deref(), dirs);
    Ok(Located { path, instance, dropins })
}

/// Why no unit file `file` (for `name`) is in `dirs`: tftpd-hpa and
/// icecast2 ship only a SysV init script in `init_d`, from which systemd
/// makes a unit at boot.
fn not_found(name: &str, file: &str, dirs: &[&str], init_d: &Path) -> LocateError {
    let script = file.strip_suffix(".service").map(|stem| init_d.join(stem)).filter(|s| s.is_file());
    match script {
        Some(script) => LocateError::SysvOnly { name: name.to_owned(), script },
        None => LocateError::NotFound { name: name.to_owned(), dirs: dirs.join(", ") },
    }
}

/// `NAME@INSTANCE.service` → (`NAME@.service`, INSTANCE).
fn split_instance(name: &str) -> Option<(String, &str)> {
    let (prefix, rest) = name.split_once('@')?;
    let (instance, suffix) = rest.rsplit_once('.')?;
    (!instance.is_empty()).then(|| (format!("{prefix}@.{suffix}"), instance))
}

/// The first of `dirs` holding `file`.
fn find(file: &str, dirs: &[&str]) -> Option<PathBuf> {
    dirs.iter().map(|d| Path::new(d).join(file)).find(|p| p.symlink_metadata().is_ok())
}

/// systemd's mask: a link to /dev/null, or an empty file.
fn masked(path: &Path) -> bool {
    std::fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null")) || std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

/// The `*.conf` drop-ins of the unit file `file` (a template's too, for an
/// instance): one of a name in an earlier directory hides those of that
/// name in later ones, and they apply in the order of their names whatever
/// their directory; a masked one hides without applying.
fn dropins(file: &str, instance: Option<&str>, dirs: &[&str]) -> Vec<PathBuf> {
    let mut names = vec![format!("{file}.d")];
    if let (Some(i), Some((prefix, suffix))) = (instance, file.split_once("@.")) {
        // The template's drop-ins, then the instance's own.
        names.push(format!("{prefix}@{i}.{suffix}.d"));
    }
    let mut seen = std::collections::BTreeMap::<(usize, std::ffi::OsString), PathBuf>::new();
    for (rank, name) in names.iter().enumerate() {
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(Path::new(dir).join(name)) else { continue };
            for e in entries.flatten() {
                let conf = e.file_name();
                if conf.to_string_lossy().ends_with(".conf") {
                    // The same name for the template and the instance: the instance's wins.
                    seen.retain(|(r, n), _| !(*r < rank && *n == conf));
                    seen.entry((rank, conf)).or_insert(e.path());
                }
            }
        }
    }
    let mut list: Vec<(std::ffi::OsString, PathBuf)> = seen.into_iter().map(|((_, n), p)| (n, p)).collect();
    list.sort();
    list.into_iter().map(|(_, p)| p).filter(|p| !masked(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of the test's own, removed after it.
    struct Scratch(PathBuf);
    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Unit directories like /etc, /run and /lib's, with a unit, a template
    /// and a masked unit.
    fn tree(tag: &str) -> (Scratch, Vec<String>) {
        let t = Scratch(std::env::temp_dir().join(format!("capexec-locate-{}-{tag}", std::process::id())));
        let dirs: Vec<String> = ["etc", "run", "lib"].iter().map(|d| t.path().join(d).display().to_string()).collect();
        let put = |rel: &str, text: &str| {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put("lib/a.service", "[Service]\nExecStart=/bin/true\n");
        put("lib/a.service.d/20-pkg.conf", "x");
        put("etc/a.service.d/10-admin.conf", "x");
        put("run/a.service.d/20-pkg.conf", "x");
        put("lib/a.service.d/30-note.txt", "x");
        put("lib/t@.service", "[Service]\nExecStart=/bin/true %i\n");
        put("lib/t@.service.d/10-all.conf", "x");
        put("etc/t@one.service.d/10-all.conf", "x");
        put("etc/t@one.service.d/20-one.conf", "x");
        std::os::unix::fs::symlink("/dev/null", t.path().join("etc/m.service")).unwrap();
        put("lib/m.service", "[Service]\nExecStart=/bin/true\n");
        (t, dirs)
    }

    #[test]
    fn a_name_is_found_with_its_drop_ins_in_systemds_order() {
        let (t, dirs) = tree("name");
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let l = locate(Path::new("a.service"), None, &dirs).unwrap();
        assert_eq!(l.path, t.path().join("lib/a.service"));
        // 20-pkg.conf of /run hides /lib's; .txt is no drop-in.
        assert_eq!(l.dropins, [t.path().join("etc/a.service.d/10-admin.conf"), t.path().join("run/a.service.d/20-pkg.conf")]);
        // The same file by its path in a unit directory has them too; a copy elsewhere has none.
        assert_eq!(locate(&t.path().join("lib/a.service"), None, &dirs).unwrap().dropins, l.dropins);
        std::fs::copy(t.path().join("lib/a.service"), t.path().join("a.service")).unwrap();
        assert!(locate(&t.path().join("a.service"), None, &dirs).unwrap().dropins.is_empty());
    }

    #[test]
    fn an_instance_is_its_template_with_both_drop_ins() {
        let (t, dirs) = tree("instance");
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let l = locate(Path::new("t@one.service"), None, &dirs).unwrap();
        assert_eq!(l.path, t.path().join("lib/t@.service"));
        assert_eq!(l.instance.as_deref(), Some("one"));
        assert_eq!(l.dropins, [t.path().join("etc/t@one.service.d/10-all.conf"), t.path().join("etc/t@one.service.d/20-one.conf")]);
        assert_eq!(locate(Path::new("t@.service"), Some("two"), &dirs).unwrap().dropins, [t.path().join("lib/t@.service.d/10-all.conf")]);
        assert!(matches!(locate(Path::new("t@one.service"), Some("two"), &dirs), Err(LocateError::TwoInstances { .. })));
    }

    #[test]
    fn masked_and_missing_units_are_said() {
        let (_t, dirs) = tree("masked");
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        assert!(matches!(locate(Path::new("m.service"), None, &dirs), Err(LocateError::Masked { .. })));
        let e = locate(Path::new("nothere.service"), None, &dirs).unwrap_err();
        assert!(e.to_string().contains("give its path"), "{e}");
    }

    /// A package with only an init script (tftpd-hpa) is told so, and how
    /// to get a declaration for its program instead.
    #[test]
    fn a_sysv_script_without_a_unit_is_named() {
        let (t, dirs) = tree("sysv");
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let init_d = t.path().join("init.d");
        std::fs::create_dir_all(&init_d).unwrap();
        std::fs::write(init_d.join("tftpd-hpa"), "#!/bin/sh\n").unwrap();
        let e = not_found("tftpd-hpa.service", "tftpd-hpa.service", &dirs, &init_d);
        assert_eq!(e, LocateError::SysvOnly { name: "tftpd-hpa.service".into(), script: init_d.join("tftpd-hpa") });
        assert!(e.to_string().contains("capexec learn --workload CMD -- PROGRAM ARGS..."), "{e}");
        assert!(matches!(not_found("other.service", "other.service", &dirs, &init_d), LocateError::NotFound { .. }));
    }
}
