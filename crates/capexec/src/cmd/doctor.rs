//! `capexec doctor`: what this kernel supports.

use capexec::cli::DoctorArgs;

pub fn run(args: &DoctorArgs) -> i32 {
    let k = capexec_sandbox::doctor::probe();
    // What the default declaration needs: without these, services refuse to start.
    let essential_ok = k.landlock_abi >= 6 && k.seccomp_filter && k.user_namespaces;
    if args.json {
        let mut v = serde_json::to_value(&k).unwrap_or_default();
        v["defaults_supported"] = essential_ok.into();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return if essential_ok { 0 } else { 1 };
    }
    let mark = |b: bool| if b { "yes" } else { "NO " };
    println!("kernel                      {}", k.kernel);
    println!(
        "Landlock                    {} ABI {}{}",
        mark(k.landlock_abi >= 6),
        k.landlock_abi,
        if k.landlock_abi >= 6 { " (filesystem, TCP, scopes)" } else { " (capexec's defaults need ABI 6: use landlock.mode = \"best-effort\")" }
    );
    println!("seccomp filter              {} actions: {}", mark(k.seccomp_filter), k.seccomp_actions.join(" "));
    println!("seccomp user notification   {}", mark(k.seccomp_user_notif));
    println!("user namespaces             {} (max_user_namespaces = {})", mark(k.user_namespaces), k.max_user_namespaces.map_or("?".into(), |n| n.to_string()));
    match &k.cgroup_v2 {
        Some(c) => println!(
            "cgroup v2                   yes at {} controllers: {}",
            c.path,
            if c.controllers.is_empty() { "(none)".to_owned() } else { c.controllers.join(" ") }
        ),
        None => println!("cgroup v2                   NO"),
    }
    for c in &k.cgroup_v1 {
        println!("cgroup v1                   {} ({})", c.path, c.controllers.join(","));
    }
    println!("pidfd                       {}", mark(k.pidfd));
    println!("LSMs                        {}", k.lsms.join(","));
    let probed = |p: &capexec_sandbox::doctor::BpfProbe| match p {
        capexec_sandbox::doctor::BpfProbe::Works => "yes (a program loaded)".to_owned(),
        capexec_sandbox::doctor::BpfProbe::Refused(e) => format!("NO  (loading one: {e})"),
    };
    println!("BPF LSM                     {} in the LSM list; programs: {}", if k.bpf_lsm { "listed" } else { "not" }, probed(&k.bpf_lsm_programs));
    match &k.cgroup_bpf {
        Some(p) => println!("cgroup BPF (sock_addr)      {}", probed(p).replace("(a program loaded)", "(loaded and attached to a cgroup)")),
        None => println!("cgroup BPF (sock_addr)      ? (probed as root, with cgroup v2)"),
    }
    if essential_ok {
        println!("\nEverything capexec's default declarations need is supported.");
        0
    } else {
        println!("\nSome mechanisms capexec uses by default are missing: units that require them will refuse to start.");
        1
    }
}
