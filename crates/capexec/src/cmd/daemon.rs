//! `capexec daemon`: resolves the mode and directories, then hands over to the
//! supervisor crate's event loop.

use capexec::cli::DaemonArgs;
use capexec_supervisor::daemon::{self, Config};
use capexec_supervisor::paths::{self, Mode, Paths};

pub fn run(args: &DaemonArgs) -> i32 {
    let root = nix::unistd::geteuid().is_root();
    let user_mode = args.user || !root;
    let mut p = if user_mode {
        match Paths::user(args.runtime_dir.clone(), args.state_dir.clone()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("capexec daemon: {e}");
                return 1;
            }
        }
    } else {
        let mut p = Paths::system();
        if let Some(d) = &args.runtime_dir {
            p.runtime = d.clone();
        }
        if let Some(d) = &args.state_dir {
            p.state = d.clone();
        }
        p
    };
    if let Some(d) = &args.log_dir {
        p.logs = d.clone();
    }
    let unit_path = if !args.search.unit_path.is_empty() || std::env::var_os("CAPEXEC_UNIT_PATH").is_some() {
        super::search_path(&args.search.unit_path)
    } else if p.mode == Mode::User {
        paths::user_unit_path()
    } else {
        capexec_decl::source::default_search_path()
    };
    let cfg = Config {
        paths: p,
        unit_path,
        // Without systemd delegating a subtree, a user has no cgroup to create
        // children in: a user daemon tracks services by pid namespace only.
        cgroup_parent: (!user_mode).then(|| args.cgroup.clone()),
        log_max_size: args.log_max_size,
        log_files: args.log_files,
    };
    match daemon::run(cfg) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("capexec daemon: {e}");
            1
        }
    }
}
