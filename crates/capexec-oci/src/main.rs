//! capexec-oci: capexec's confinement as an OCI runtime (runtime-spec 1.x),
//! for podman, containerd and Kubernetes. Built on capexec's own launch
//! composer, not youki's libcontainer: docs/oci.md says why.
//!
//! Where it stands: `check` reads a bundle and says what of its config.json
//! capexec-oci applies, ignores or refuses; the container lifecycle
//! (`create`, `start`, `state`, `kill`, `delete`, `exec`, `ps`, `features`)
//! is being built on the launch path (see docs/oci.md, "Status").

mod bundle;
mod coverage;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "capexec-oci", version, about = "capexec's confinement as an OCI runtime (runtime-spec 1.x)")]
#[command(after_help = "Example:\n  capexec-oci check --bundle DIR     what of DIR/config.json is applied, ignored or refused")]
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
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check { bundle, json } => check(&bundle, json),
    };
    std::process::exit(code);
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
