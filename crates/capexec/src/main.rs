//! capexec: one binary, one subcommand per job. Each subcommand lives in `cmd/`.

mod cli;
mod cmd;

use clap::Parser;

fn main() {
    // Logs go to stderr so stdout stays the service's (or `--json`'s). No threads
    // are started here: `exec` and `run` fork, which needs a single-threaded process.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAPEXEC_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let cli = cli::Cli::parse();
    let code = match &cli.command {
        cli::Command::Check(a) => cmd::check::run(a),
        cli::Command::Exec(a) => cmd::exec::run(a),
        cli::Command::Run(a) => cmd::run::run(a),
        cli::Command::Doctor(a) => cmd::doctor::run(a),
    };
    std::process::exit(code);
}
