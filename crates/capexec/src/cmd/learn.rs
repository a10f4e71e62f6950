//! `capexec learn`: the program runs under a learning plan (the host's view,
//! nothing denied, every syscall handed to the recorder); what the recorder
//! saw becomes a declaration (capexec-learn's `mine`).

use capexec::cli::{LearnArgs, RunArgs};
use capexec_learn::{mine, Observations};
use std::cell::RefCell;
use std::thread::JoinHandle;

pub fn run(args: &LearnArgs) -> i32 {
    match learn(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("capexec learn: {msg}");
            super::EXIT_SETUP
        }
    }
}

/// The same declaration `capexec run` would build, so the user, environment
/// and namespaces of the learning run are those the program will run with.
fn run_args(a: &LearnArgs) -> RunArgs {
    RunArgs {
        unit: a.unit.clone(),
        ro: Vec::new(),
        rw: Vec::new(),
        exec_path: Vec::new(),
        tmpfs: Vec::new(),
        net: None,
        bind_tcp: Vec::new(),
        connect_tcp: Vec::new(),
        allow_syscall: Vec::new(),
        cap: Vec::new(),
        preopen_listen: Vec::new(),
        env: a.env.clone(),
        pass_env: Vec::new(),
        user: a.user.clone(),
        cwd: None,
        landlock: None,
        dry_run: false,
        command: a.command.clone(),
    }
}

fn learn(a: &LearnArgs) -> Result<i32, String> {
    // Earlier runs first: a bad file is found before the program runs.
    let mut obs = Observations::default();
    for f in &a.merge {
        let text = std::fs::read_to_string(f).map_err(|e| format!("read {}: {e}", f.display()))?;
        let saved: Observations = serde_json::from_str(&text).map_err(|e| format!("{}: not observations saved by `capexec learn --save`: {e}", f.display()))?;
        obs.merge(saved);
    }
    let spec = super::run::build(&run_args(a))?;
    let rootless = !nix::unistd::geteuid().is_root();
    let host_env: Vec<(String, String)> = std::env::vars().collect();
    // Network: the host's, so that binds and connects reach something and the
    // recorder sees where they go; the mined declaration gives them back
    // through broker grants.
    let mut spec = spec;
    spec.namespaces.net = capexec_decl::spec::NetMode::Host;
    let plan = capexec_sandbox::plan(&spec, rootless, &host_env).map_err(|e| format!("{}: {e}", spec.name))?.into_learning();
    let recorder: RefCell<Option<JoinHandle<Observations>>> = RefCell::new(None);
    let start = |listener| {
        *recorder.borrow_mut() = Some(std::thread::spawn(move || capexec_learn::record::record(listener)));
    };
    let opts = capexec_sandbox::SpawnOptions { learner: Some(&start), ..Default::default() };
    let spawned = capexec_sandbox::spawn_with(&plan, &opts).map_err(|e| format!("{}: {e}", spec.name))?;
    let status = capexec_sandbox::wait_foreground(&spawned);
    drop(spawned);
    let run = recorder.into_inner().ok_or("the recorder never started")?.join().map_err(|_| "the recorder failed")?;
    let calls: u64 = run.syscalls.values().sum();
    eprintln!(
        "capexec learn: the program exited with status {status}; recorded {calls} syscalls ({} distinct), {} paths, {} binds, {} connects",
        run.syscalls.len(),
        run.paths.len(),
        run.binds.len(),
        run.connects.len()
    );
    obs.merge(run);
    if let Some(f) = &a.save {
        let json = serde_json::to_string_pretty(&obs).map_err(|e| format!("encode observations: {e}"))?;
        std::fs::write(f, json + "\n").map_err(|e| format!("write {}: {e}", f.display()))?;
    }
    let origin = mine::Origin { argv: &spec.exec.argv, date: capexec_supervisor::logs::rfc3339_now()[..10].to_owned() };
    let text = mine::declaration(&obs, &origin, |p| std::path::Path::new(p).symlink_metadata().is_ok());
    match &a.out {
        Some(f) => {
            std::fs::write(f, &text).map_err(|e| format!("write {}: {e}", f.display()))?;
            eprintln!("capexec learn: wrote {} (check it with `capexec check {}`)", f.display(), f.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}
