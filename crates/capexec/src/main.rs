//! capexec: one binary, one subcommand per job. Each subcommand lives in `cmd/`.

// System calls that need `unsafe` are capexec-sys's (docs/architecture.md).
#![forbid(unsafe_code)]

mod cmd;

use capexec::cli;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

fn main() {
    // Logs go to stderr so stdout stays the service's (or `--json`'s). No threads
    // are started here: `exec` and `run` fork, which needs a single-threaded process.
    // CAPEXEC_LOG is a level (`debug`) or `target=level` pairs
    // (`info,capexec_supervisor=debug`): tracing-subscriber's Targets, which
    // needs no regular expressions (EnvFilter's brought the regex crates and
    // their Unicode tables into the binary every `capexec run` loads).
    let warn = || tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN);
    let filter = match std::env::var("CAPEXEC_LOG") {
        Ok(f) => f.parse().unwrap_or_else(|e| {
            eprintln!("capexec: CAPEXEC_LOG={f}: {e}: give a level (debug) or target=level pairs; logging warnings only");
            warn()
        }),
        Err(_) => warn(),
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry().with(fmt.with_filter(filter)).init();
    let cli = cli::Cli::parse();
    // Report commands end quietly when their reader goes away (`capexec
    // analyze ... | head`), as other command-line tools do, instead of
    // panicking on the write. Not the others: the daemon and the brokers write
    // to sockets whose peers may close, which must not kill them.
    if matches!(
        cli.command,
        cli::Command::Check(_)
            | cli::Command::Analyze(_)
            | cli::Command::Doctor(_)
            | cli::Command::Import(_)
            | cli::Command::Status(_)
            | cli::Command::List(_)
            | cli::Command::Logs(_)
            | cli::Command::Denials(_)
            | cli::Command::Diff(_)
    ) {
        capexec_sys::default_sigpipe();
    }
    let code = match &cli.command {
        cli::Command::Check(a) => cmd::check::run(a),
        cli::Command::Agent(a) => cmd::agent::run(a),
        cli::Command::Exec(a) => cmd::exec::run(a),
        cli::Command::Run(a) => cmd::run::run(a),
        cli::Command::Doctor(a) => cmd::doctor::run(a),
        cli::Command::Daemon(a) => cmd::daemon::run(a),
        cli::Command::Start(a) => cmd::ctl::start(a),
        cli::Command::Stop(a) => cmd::ctl::stop(a),
        cli::Command::Restart(a) => cmd::ctl::restart(a),
        cli::Command::Reload(a) => cmd::ctl::reload(a),
        cli::Command::Status(a) => cmd::ctl::status(a),
        cli::Command::List(a) => cmd::ctl::list(a),
        cli::Command::Logs(a) => cmd::ctl::logs(a),
        cli::Command::Denials(a) => cmd::ctl::denials(a),
        cli::Command::Diff(a) => cmd::overlay::diff(a),
        cli::Command::Discard(a) => cmd::overlay::discard(a),
        cli::Command::Commit(a) => cmd::overlay::commit(a),
        cli::Command::Enable(a) => cmd::ctl::enable(a, true),
        cli::Command::Disable(a) => cmd::ctl::enable(a, false),
        cli::Command::Learn(a) => cmd::learn::run(a),
        cli::Command::Analyze(a) => cmd::analyze::run(a),
        cli::Command::Import(a) => cmd::import::run(a),
    };
    std::process::exit(code);
}
