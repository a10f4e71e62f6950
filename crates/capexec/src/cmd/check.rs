//! `capexec check`: validate declarations, print them resolved.

use capexec::cli::CheckArgs;
use capexec_decl::{Context, DeclError};

pub fn run(args: &CheckArgs) -> i32 {
    let search = super::search_path(&args.search.unit_path);
    let ctx = Context::current();
    let mut specs = Vec::new();
    let mut errors: Vec<DeclError> = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for u in &args.units {
        match capexec_decl::load_unit(u, &search, &ctx) {
            Ok(spec) => {
                if let Some(prev) = seen.insert(spec.name.clone(), spec.sources.first().cloned()) {
                    errors.push(
                        DeclError::new(format!("unit name `{}` given twice (also {})", spec.name, prev.map(|p| p.display().to_string()).unwrap_or_default()))
                            .help("unit names must be unique; rename one of the files"),
                    );
                    continue;
                }
                specs.push(spec);
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if args.json {
        let out = serde_json::json!({ "units": specs, "errors": errors });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for s in &specs {
            if args.quiet {
                continue;
            }
            let from: Vec<String> = s.sources.iter().map(|p| p.display().to_string()).collect();
            println!("# {}: OK ({})", s.name, from.join(", "));
            for w in s.warnings.iter().chain(&capexec_sandbox::netguard::ping_warning(s)).chain(&capexec_sandbox::creds::file_capability_warning(s)) {
                println!("# warning: {w}");
            }
            // Valid, but what a start by this user would refuse says so now.
            if !nix::unistd::geteuid().is_root() {
                if let Err(e) = capexec_sandbox::netguard::require_guard(s) {
                    println!("# as root only: {}", e.to_string().replace('\n', "\n# "));
                }
            }
            if args.full {
                match toml::to_string(s) {
                    Ok(t) => println!("{t}"),
                    Err(e) => println!("# (cannot render as TOML: {e})\n{s:#?}"),
                }
            } else {
                print!("{}", summary(s));
            }
        }
        for e in &errors {
            eprintln!("error: {e}");
        }
    }
    if errors.is_empty() {
        0
    } else {
        1
    }
}

/// What an administrator wants to know first: who runs what, what it can see,
/// reach and call. `--full` prints everything.
fn summary(s: &capexec_decl::ServiceSpec) -> String {
    use capexec_decl::spec::*;
    use std::fmt::Write;
    let mut o = String::new();
    let id = &s.exec.user;
    let who = match (&id.user_name, id.how) {
        (_, IdentitySource::Dynamic) => format!("dynamic uid {} (gid {})", id.uid, id.gid),
        (Some(n), _) => format!("{n} (uid {}, gid {})", id.uid, id.gid),
        (None, _) => format!("uid {}, gid {}", id.uid, id.gid),
    };
    let _ = writeln!(o, "  runs       {}", shell_words(&s.exec.argv));
    let groups = if id.groups.is_empty() { String::new() } else { format!(", groups {}", id.groups.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")) };
    let userns = match (id.how, s.namespaces.user) {
        (IdentitySource::Caller, _) => " (rootless: the caller)",
        (_, true) => " in a private user namespace",
        (_, false) => " in the host's user namespace",
    };
    let _ = writeln!(o, "  as         {who}{groups}{userns}");
    let list = |kind: MountKind| -> String {
        let v: Vec<String> = s.filesystem.mounts.iter().filter(|m| m.kind == kind).map(|m| m.path.display().to_string()).collect();
        if v.is_empty() {
            "-".into()
        } else {
            v.join(" ")
        }
    };
    let _ = writeln!(o, "  executable {}", list(MountKind::Executable));
    let _ = writeln!(o, "  read-only  {}", list(MountKind::ReadOnly));
    if s.filesystem.mounts.iter().any(|m| m.kind == MountKind::Visible) {
        let _ = writeln!(o, "  visible    {} (looked at, not read)", list(MountKind::Visible));
    }
    let _ = writeln!(o, "  writable   {} | tmpfs: {}", list(MountKind::ReadWrite), list(MountKind::Tmpfs));
    if s.filesystem.mounts.iter().any(|m| m.kind == MountKind::ReadWriteExec) {
        let _ = writeln!(o, "  rw + exec  {}", list(MountKind::ReadWriteExec));
    }
    let _ = writeln!(o, "  hidden     {}", list(MountKind::Inaccessible));
    let devices: String = s.filesystem.devices.iter().map(|d| format!(" + {}", d.path.display())).collect();
    let processes = match (s.filesystem.host_processes, s.namespaces.pid) {
        (true, _) => " (every process of the host)",
        (false, false) => " (its own processes only: hidepid)",
        (false, true) => "",
    };
    let _ = writeln!(o, "  proc, dev  {}{processes}, {}{devices}", name(&s.filesystem.proc), name(&s.filesystem.dev));
    let ns = &s.namespaces;
    // Under the host's network, what the network guard leaves it.
    let net = match ns.net {
        NetMode::None => "none (own namespace, loopback only)",
        NetMode::Host if s.broker.has_net_grants() => "host, addresses of [broker.net] only (network guard)",
        NetMode::Host if s.broker.guards_net() => "host, no IP address (network guard, guard = true)",
        NetMode::Host => "host, every address (UDP unlimited)",
    };
    let ports = |p: &std::collections::BTreeSet<u16>| {
        if p.is_empty() {
            "none".to_owned()
        } else {
            p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
        }
    };
    let _ = writeln!(o, "  network    {net}; TCP bind: {}; TCP connect: {}", ports(&s.landlock.bind_tcp), ports(&s.landlock.connect_tcp));
    for (i, p) in s.preopen.iter().enumerate() {
        let what = match &p.kind {
            PreopenKind::Listen { address, env, .. } => format!("{address}{}", env.as_ref().map(|e| format!(" (also ${e})")).unwrap_or_default()),
            PreopenKind::File { path, mode, .. } => format!("file {} ({mode:?})", path.display()),
            PreopenKind::Directory { path } => format!("directory {} (read-only)", path.display()),
        };
        let _ = writeln!(o, "  fd {:<7} {} = {what}", 3 + i, p.name);
    }
    let mut off = Vec::new();
    for (on, n) in [(ns.user, "user"), (ns.pid, "pid"), (ns.ipc, "ipc"), (ns.uts, "uts"), (ns.cgroup, "cgroup")] {
        if !on {
            off.push(n);
        }
    }
    let _ = writeln!(
        o,
        "  namespaces own mount, {}{}",
        if ns.net == NetMode::None { "net, " } else { "" },
        ["user", "pid", "ipc", "uts", "cgroup"].iter().filter(|n| !off.contains(n)).copied().collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        o,
        "  landlock   {}; abstract unix sockets {}; signals {}",
        name(&s.landlock.mode),
        if s.landlock.scope_abstract_unix { "scoped" } else { "open" },
        if s.landlock.scope_signals { "scoped" } else { "open" }
    );
    let action = match s.seccomp.action {
        DenyAction::Errno(e) => {
            let n = capexec_decl::validate::ERRNO_NAMES.iter().find(|(_, v)| *v == e).map_or_else(|| e.to_string(), |(n, _)| (*n).to_owned());
            format!("fail with {n}")
        }
        DenyAction::Kill => "kill".into(),
        DenyAction::Log => "log only".into(),
    };
    let _ = writeln!(o, "  seccomp    {} ({} syscalls); others: {action}", s.seccomp.declared.join(" "), s.seccomp.allowed.len());
    let names = |l: Vec<String>| if l.is_empty() { "none".to_owned() } else { l.join(" ") };
    let bound =
        s.capability_bound.as_ref().map(|b| format!(" (bound, for learning: {})", names(b.iter().map(|c| c.to_string()).collect()))).unwrap_or_default();
    let _ = writeln!(o, "  caps       {}{bound}", names(s.capabilities.iter().map(|c| c.to_string()).collect()));
    let b = &s.broker;
    let net: Vec<String> = b
        .bind
        .iter()
        .map(|g| format!("bind {g}"))
        .chain(b.connect.iter().map(|g| format!("connect {g}")))
        .chain(b.ping.iter().map(|r| format!("ping {r}")))
        .collect();
    // Under the host's network the address grants are the network guard's
    // alone: the service binds and connects by itself.
    let guarded_only = s.namespaces.net == NetMode::Host;
    if guarded_only && !net.is_empty() {
        let _ = writeln!(o, "  net guard  {} (every socket of the service)", net.join("; "));
    }
    if !b.is_empty_but_net() || (!guarded_only && !net.is_empty()) {
        let mut grants: Vec<String> = b.fs.iter().map(|g| format!("open {} ({})", g.pattern, g.rights)).collect();
        if !guarded_only {
            grants.extend(net);
        }
        grants.extend(b.dns.names.iter().map(|n| format!("resolve {n}")));
        grants.extend(b.pwd.iter().map(|n| format!("user {n}")));
        grants.extend(b.grp.iter().map(|n| format!("group {n}")));
        grants.extend(b.sysctl.iter().map(|n| format!("sysctl {n}")));
        if b.syslog {
            grants.push("syslog".into());
        }
        let _ = writeln!(o, "  broker     {}", grants.join("; "));
    }
    let sv = &s.service;
    let signal = capexec_decl::validate::STOP_SIGNALS.iter().find(|(_, n)| *n == sv.stop_signal).map_or("?", |(n, _)| n);
    let _ = writeln!(
        o,
        "  daemon     type {}, restart {} ({}..{}, at most {} starts in {}), stop {signal} then kill after {}",
        name(&sv.kind),
        name(&sv.restart),
        format_duration(sv.restart_delay),
        format_duration(sv.restart_delay_max),
        sv.start_limit_burst,
        format_duration(sv.start_limit_interval),
        format_duration(sv.stop_timeout)
    );
    o.push('\n');
    o
}

/// The name a value has in a declaration (its serde name), e.g. "pid-only".
fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The command line as a shell would show it; a multi-line argument (an inline
/// script) shows its first line only, `--full` has the rest.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| match a.split_once('\n') {
            Some((first, _)) => format!("{first} …"),
            None => a.clone(),
        })
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$;&|<>".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
