//! Golden plans: what a launch of each shipped unit, and of `capexec run`'s
//! defaults, would do, as text (`SetupPlan::summary`), compared with
//! crates/capexec/golden/*.plan. A change to what capexec does at launch
//! shows up as a diff there, for review. Planning changes nothing on the
//! system, so these run without root (as root and as a user, whoever runs
//! them). `CAPEXEC_UPDATE_GOLDEN=1 cargo test -p capexec golden` rewrites
//! the files.

use capexec_decl::Context;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

/// The plan's summary with what depends on the machine taken out: the
/// checkout's path, and the service's uid and gid (system users get theirs
/// at install time).
fn render(spec: &capexec_decl::ServiceSpec, rootless: bool) -> String {
    let extras = capexec_sandbox::plan::Extras { rootless, broker: capexec_broker::contribution(spec), ..Default::default() };
    let text = match capexec_sandbox::plan::compose(spec, &extras) {
        Ok(p) => p.summary(),
        Err(e) => format!("refused: {e}\n"),
    };
    let (uid, gid) = (spec.exec.user.uid.to_string(), spec.exec.user.gid.to_string());
    let ids = |line: &str| {
        line.split(' ')
            .map(|w| {
                if w == uid {
                    "$UID"
                } else if w == gid {
                    "$GID"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    // The default hostname is the host's.
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    text.replace(&root().display().to_string(), "$ROOT")
        .replace(&format!("Some({host:?})"), "Some(\"$HOSTNAME\")")
        .lines()
        .map(|l| match l.split_once(": ") {
            Some(("ids", v)) => format!("ids: {}", v.replacen(&format!("{uid}:"), "$UID:", 1).replacen(&format!(":{gid}"), ":$GID", 1)),
            Some(("uid_map" | "gid_map", _)) => ids(l),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn compare(name: &str, text: &str) {
    let file = root().join("crates/capexec/golden").join(format!("{name}.plan"));
    if std::env::var_os("CAPEXEC_UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}; CAPEXEC_UPDATE_GOLDEN=1 writes it", file.display()));
    if want != text {
        let diff: Vec<String> = want
            .lines()
            .zip(text.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  golden: {a}\n  now:    {b}", i + 1))
            .collect();
        panic!(
            "the plan of {name} changed ({} lines golden, {} now):\n{}\nif the change is meant, CAPEXEC_UPDATE_GOLDEN=1 cargo test -p capexec golden, and review the diff",
            want.lines().count(),
            text.lines().count(),
            diff.join("\n")
        );
    }
}

/// Where the package puts the shipped units (packaging/build-deb.sh).
const PACKAGED: &str = "/usr/lib/capexec/units";

const ROOT_CTX: Context = Context { rootless: false, uid: 0, gid: 0, unit_dir: None };

#[test]
fn shipped_units() {
    let dir = root().join("units");
    let mut units: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "svc")).collect();
    units.sort();
    assert!(units.len() >= 6, "{units:?}");
    for u in units {
        let name = u.file_stem().unwrap().to_string_lossy().into_owned();
        // `${UNIT_DIR}` as the package installs it, not this checkout's
        // directory: the view is sorted by path, so the checkout's place
        // would move lines around.
        let ctx = Context { unit_dir: Some(PathBuf::from(PACKAGED)), ..ROOT_CTX };
        let loaded = capexec_decl::source::load(&u).unwrap_or_else(|e| panic!("{name}: {e}"));
        let spec = capexec_decl::validate::validate(&loaded.name, &loaded.raw, vec![u.clone()], &ctx)
            .unwrap_or_else(|e| panic!("{name}: {e:?} (the units' users come with their packages: scripts/install-test-deps.sh)"));
        compare(&name, &render(&spec, false));
    }
}

#[test]
fn run_defaults() {
    use clap::Parser;
    for (name, ctx) in [("run-root", ROOT_CTX), ("run-user", Context { rootless: true, uid: 4242, gid: 4242, unit_dir: None })] {
        let cli = capexec::cli::Cli::try_parse_from(["capexec", "run", "--", "/bin/true"]).unwrap();
        let capexec::cli::Command::Run(args) = cli.command else { panic!("not run") };
        let spec = super::run::build_in(&args, ctx.clone(), Some("/home/golden")).unwrap();
        compare(name, &render(&spec, ctx.rootless));
    }
}
