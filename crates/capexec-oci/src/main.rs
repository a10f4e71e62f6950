//! capexec-oci: capexec's confinement as an OCI runtime (runtime-spec 1.x),
//! for podman, containerd and Kubernetes. Built on capexec's own launch
//! composer, not youki's libcontainer: docs/oci.md says why.
//!
//! Where it stands: `check` reads a bundle and says what of its config.json
//! capexec-oci applies, ignores or refuses; the container lifecycle
//! (`create`, `start`, `state`, `kill`, `delete`, `exec`, `ps`, `features`)
//! is being built on the launch path (see docs/oci.md, "Status").

mod bundle;
mod container;
mod coverage;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "capexec-oci", version, about = "capexec's confinement as an OCI runtime (runtime-spec 1.x)")]
#[command(
    after_help = "Examples:\n  capexec-oci check --bundle DIR     what of DIR/config.json is applied, ignored or refused\n  capexec-oci run --bundle DIR ID    run the container in the foreground until it ends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a bundle's config.json and say what capexec-oci does with it:
    /// fields it does not apply are named, as refused (the container would be
    /// less confined than its config asks, or run something else) or ignored
    /// (it would not). Exits 0 when the bundle can run, 1 when not.
    Check {
        /// The bundle directory (config.json and the root filesystem).
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// One JSON object on stdout: {"bundle", "runs", "error", "ignored": [{"field", "why"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Create and start the container in one step, in the foreground, and
    /// exit with its status (runc's `run`, without --detach): its standard
    /// streams are capexec-oci's own. As root.
    Run {
        /// The bundle directory (config.json and the root filesystem).
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// The container's id: its name in messages.
        id: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check { bundle, json } => check(&bundle, json),
        Command::Run { bundle, id } => run(&bundle, &id),
    };
    std::process::exit(code);
}

/// Exit status when the container could not be set up (as `capexec exec`'s).
const EXIT_SETUP: i32 = 125;

fn run(dir: &std::path::Path, id: &str) -> i32 {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("capexec-oci: run as root (rootless containers are not implemented yet)");
        return EXIT_SETUP;
    }
    let b = match bundle::load(dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("capexec-oci: {e}");
            return EXIT_SETUP;
        }
    };
    for f in &b.ignored {
        eprintln!("capexec-oci: {id}: warning: `{}` is ignored: {}", f.field, f.why);
    }
    let spec = match container::service(&b, id) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("capexec-oci: {}: {e}", b.dir.join("config.json").display());
            return EXIT_SETUP;
        }
    };
    let extras = capexec_sandbox::plan::Extras {
        rootless: false,
        host_env: &[],
        inherited: &[],
        notify: capexec_sandbox::plan::Notify::None,
        credentials: None,
        broker: Default::default(),
        learning: false,
        watch_network: false,
    };
    // The setup makes this directory in the root filesystem for its time
    // (capexec_sandbox::mounts); a setup that fails halfway leaves it.
    let old = b.rootfs.join("oldroot");
    let had_old = old.exists();
    let spawned = capexec_sandbox::compose(&spec, &extras).and_then(|plan| capexec_sandbox::spawn(&plan));
    match spawned {
        Ok(s) => capexec_sandbox::wait_foreground(&s),
        Err(e) => {
            if !had_old {
                let _ = std::fs::remove_dir(&old);
            }
            eprintln!("capexec-oci: {id}: {e}");
            EXIT_SETUP
        }
    }
}

fn check(dir: &std::path::Path, json: bool) -> i32 {
    let loaded = bundle::load(dir);
    if json {
        let (error, ignored) = match &loaded {
            Ok(b) => (None, b.ignored.clone()),
            Err(e) => (Some(e.to_string()), Vec::new()),
        };
        let out = serde_json::json!({
            "bundle": dir,
            "runs": loaded.is_ok(),
            "error": error,
            "ignored": ignored.iter().map(|f| serde_json::json!({"field": f.field, "why": f.why})).collect::<Vec<_>>(),
        });
        println!("{out}");
        return i32::from(loaded.is_err());
    }
    match loaded {
        Ok(b) => {
            for f in &b.ignored {
                println!("ignored: `{}`: {}", f.field, f.why);
            }
            let args = b.spec.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default();
            println!(
                "{}: capexec-oci applies this config: {:?} in the root filesystem {}",
                b.dir.join("config.json").display(),
                args.join(" "),
                b.rootfs.display()
            );
            0
        }
        Err(bundle::BundleError::Unsupported { path, refused }) => {
            eprintln!("capexec-oci: {}: {} field(s) it does not apply, so it would not run this container:", path.display(), refused.len());
            for f in refused {
                eprintln!("  `{}`: {}", f.field, f.why);
            }
            1
        }
        Err(e) => {
            eprintln!("capexec-oci: {e}");
            1
        }
    }
}
