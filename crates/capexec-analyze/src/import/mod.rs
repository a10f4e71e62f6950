//! `capexec import`: a systemd service unit → a capexec declaration (TOML
//! text), with a comment on everything that was not carried over and why.
//!
//! What maps: ExecStart (with $VAR from Environment= and readable
//! EnvironmentFile=s), User, Group, Environment, WorkingDirectory, Type,
//! Restart and its timings, the path directives (ReadOnlyPaths, ReadWritePaths,
//! InaccessiblePaths, ExecPaths, State/Cache/Logs/RuntimeDirectory),
//! PrivateNetwork, MemoryDenyWriteExecute, UMask, IgnoreSIGPIPE, AmbientCapabilities, SystemCallFilter and its errno,
//! Limit*, MemoryMax, TasksMax, CPUWeight. Many hardening directives need no
//! counterpart because capexec always does at least as much; they are listed
//! as such. The rest is listed as not mapped, with the reason.

pub mod locate;
pub mod socket;
mod stop;
pub mod unit_file;

use crate::exposure::systemd_set;
use std::collections::BTreeMap;
use std::fmt::Write;
use unit_file::Entry;

/// Directives whose protection capexec applies to every service, whatever
/// the value: what it does instead.
const ALWAYS: &[(&str, &str)] = &[
    ("NoNewPrivileges", "no_new_privs is always set"),
    ("PrivateTmp", "/tmp is always a private tmpfs"),
    ("PrivateDevices", "/dev is always minimal (null, zero, full, random, urandom, tty)"),
    ("DevicePolicy", "/dev is always minimal"),
    ("ProtectHome", "home directories are not in the view unless declared"),
    ("ProtectKernelTunables", "/proc/sys is read-only and /sys is not in the view"),
    ("ProtectKernelModules", "no module syscalls, /usr/lib/modules masked"),
    ("ProtectKernelLogs", "no syslog(), /proc/kmsg masked, no /dev/kmsg"),
    ("ProtectControlGroups", "the cgroup file system is not in the view"),
    ("ProtectClock", "no clock-setting syscalls, no CAP_SYS_TIME"),
    ("ProtectHostname", "own UTS namespace"),
    ("ProtectProc", "own pid namespace and /proc"),
    ("ProcSubset", "proc = \"pid-only\" is the default"),
    ("PrivateMounts", "own mount namespace"),
    ("PrivateIPC", "own IPC namespace"),
    ("RemoveIPC", "own IPC namespace"),
    ("RestrictSUIDSGID", "setuid and setgid bits are refused in every chmod and file creation"),
    ("RestrictNamespaces", "clone() with namespace flags, unshare and setns are refused"),
    ("LockPersonality", "personality() may only query or set plain Linux"),
    ("RestrictRealtime", "RLIMIT_RTPRIO is 0 by default and no CAP_SYS_NICE"),
    ("SystemCallArchitectures", "only native syscalls"),
    ("KeyringMode", "keyring syscalls are not in the default allowlist"),
    ("RootDirectory", "the service always runs in a root of its own (the view)"),
    ("RestrictFileSystems", "the view holds only declared paths"),
    ("TemporaryFileSystem", "the view holds only declared paths"),
    ("ReadWriteDirectories", ""), // handled as ReadWritePaths; listed so it is never "unknown"
];

/// Directives capexec does not carry over, with why.
const NOT_MAPPED: &[(&str, &str)] = &[
    (
        "KillMode",
        "capexec always stops the whole service (its pid namespace), and a service ends with its main process: a program that puts itself in the \
         background under Type=simple (and lived on through KillMode=process) needs its option to stay in the foreground, or service.type = \"forking\"",
    ),
    ("SendSIGKILL", "capexec always kills what is left at service.stop_timeout; raise it if the program needs longer to end"),
    ("RestrictAddressFamilies", "capexec always limits socket() to AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK; narrower lists are not expressible"),
    ("ConfigurationDirectoryMode", "the directory is used as it is on the host"),
    ("NoExecPaths", "only the system directories and declared executable paths are executable"),
    ("IOSchedulingClass", "no I/O scheduling settings"),
    ("IOSchedulingPriority", "no I/O scheduling settings"),
    ("CPUSchedulingPolicy", "no scheduling settings"),
    ("StandardOutput", "the daemon logs stdout and stderr (`capexec logs`); `capexec exec` passes them through"),
    ("StandardError", "the daemon logs stdout and stderr"),
    ("SyslogIdentifier", "logs are named after the unit"),
    ("Slice", "the daemon puts each service in a cgroup of its own"),
    ("Delegate", "no cgroup delegation"),
];

/// What `TimeoutStopSec=0` and `infinity` ("no limit") become.
const NO_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// systemd's DefaultTimeoutStartSec= and DefaultTimeoutStopSec=.
const SYSTEMD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// A unit that sets no timeouts has systemd's defaults (90 s each), not
/// capexec's shorter ones (10 s to stop, 30 s to start): squid takes 30 s to
/// end its clients' transfers after SIGTERM, and a kill before that loses
/// its cache's index. The start's bounds the start_pre commands and the wait
/// for readiness of a notify or forking service.
fn systemd_timeouts(out: &mut Out) {
    let has = |out: &Out, key: &str| out.service.iter().any(|(k, _)| *k == key);
    let waits_for_start = out.service.iter().any(|(k, v)| *k == "type" && (v == "notify" || v == "forking")) || !out.commands.is_empty();
    let mut set = Vec::new();
    if !has(out, "stop_timeout") {
        set.push("stop_timeout");
    }
    if waits_for_start && !has(out, "ready_timeout") {
        set.push("ready_timeout");
    }
    if set.is_empty() {
        return;
    }
    let d = capexec_decl::spec::format_duration(SYSTEMD_TIMEOUT);
    for key in &set {
        out.service.push((key, d.clone()));
    }
    out.covered.push((
        "(no timeouts in the unit)".into(),
        format!("systemd's defaults: service.{} = \"{d}\" (capexec's own are 10s to stop, 30s to start)", set.join(" and service.")),
    ));
}

/// capexec's default for service.restart_delay_max (see capexec_decl::validate).
const RESTART_DELAY_MAX_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);

/// A [Unit] entry: the description is read above; the start limit maps;
/// dependencies and conditions have no counterpart, and each says what to do.
fn unit_section(e: &Entry, out: &mut Out) {
    let v = e.value.as_str();
    match e.key.as_str() {
        "StartLimitBurst" => match v.parse::<u32>() {
            Ok(n) => out.service.push(("start_limit_burst", n.to_string())),
            Err(_) => out.skip(e, "not a number of starts"),
        },
        "StartLimitIntervalSec" | "StartLimitInterval" => match capexec_decl::raw::parse_duration(v) {
            Ok(d) if !d.is_zero() => out.service.push(("start_limit_interval", capexec_decl::spec::format_duration(d))),
            Ok(_) => out.skip(e, "0 turns systemd's start limit off; capexec always has one (service.start_limit_burst)"),
            Err(err) => out.skip(e, err.to_string()),
        },
        "Documentation" => {}
        "Requires" | "Wants" | "BindsTo" | "Requisite" | "PartOf" | "Upholds" => {
            let mut sockets: Vec<&str> = v.split_whitespace().filter(|u| u.ends_with(".socket")).collect();
            sockets.retain(|s| !out.activate(e, s));
            if sockets.is_empty() && v.split_whitespace().all(|u| u.ends_with(".socket")) {
                return;
            }
            let why = if sockets.is_empty() {
                "capexec starts each service on its own, without dependencies: start what it needs first (`capexec start UNIT`)".to_owned()
            } else {
                format!(
                    "no socket unit {} found next to the unit or in systemd's unit directories: declare what it listens on as [[preopen.listen]] here, and capexec opens it for the service",
                    sockets.join(", ")
                )
            };
            out.skip(e, why);
        }
        "After" | "Before" => out.skip(e, "no start ordering: the daemon starts services as they are asked for (autostart ones when it starts)"),
        "Conflicts" | "OnFailure" | "OnSuccess" | "PropagatesReloadTo" | "ReloadPropagatedFrom" | "JoinsNamespaceOf" => {
            out.skip(e, "capexec has no relations between services")
        }
        key if key.starts_with("Condition") || key.starts_with("Assert") => match path_check(key, v) {
            Ok(argv) => {
                let assert = key.starts_with("Assert");
                let what = match assert {
                    true => "[[exec.start_pre]] with privileged = true: on the host as root, as systemd checks it; when it does not hold the start fails, as systemd's assertion fails it",
                    false => "[[exec.condition]] with privileged = true: on the host as root, as systemd checks it; when it does not hold the service is not started, and not failed",
                };
                out.covered.push((format!("{key}={v}"), format!("{what} (`{}`)", argv.join(" "))));
                let list = if assert { &mut out.unit_asserts } else { &mut out.unit_conditions };
                list.push((argv, false, true));
            }
            Err(why) => out.skip(e, why),
        },
        "DefaultDependencies" => {}
        "RequiresMountsFor" => out.skip(
            e,
            "capexec waits for no mount: mount these before the start (a declared path that is missing fails the start, unless its entry has a `-` prefix)",
        ),
        _ => out.skip(e, "not mapped: capexec has no counterpart for this [Unit] directive"),
    }
}

const RLIMITS: &[(&str, &str)] = &[
    ("LimitAS", "as"),
    ("LimitCORE", "core"),
    ("LimitCPU", "cpu"),
    ("LimitDATA", "data"),
    ("LimitFSIZE", "fsize"),
    ("LimitLOCKS", "locks"),
    ("LimitMEMLOCK", "memlock"),
    ("LimitMSGQUEUE", "msgqueue"),
    ("LimitNICE", "nice"),
    ("LimitNOFILE", "nofile"),
    ("LimitNPROC", "nproc"),
    ("LimitRSS", "rss"),
    ("LimitRTPRIO", "rtprio"),
    ("LimitRTTIME", "rttime"),
    ("LimitSIGPENDING", "sigpending"),
    ("LimitSTACK", "stack"),
];

/// A TOML string literal.
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A command that names `$MAINPID` as a shell command that expands it from
/// the environment (capexec sets MAINPID for start_post, reload and stop
/// commands); others unchanged.
fn mainpid_shell(argv: Vec<String>) -> Vec<String> {
    if !argv.iter().any(|w| w.contains("$MAINPID")) {
        return argv;
    }
    let quoted: Vec<String> = argv.iter().map(|w| format!("'{}'", w.replace('\'', "'\\''").replace("$MAINPID", "'\"$MAINPID\"'"))).collect();
    vec!["/bin/sh".into(), "-c".into(), format!("exec {}", quoted.join(" "))]
}

/// ExecStartPre= lines that make the service's directories by hand, from
/// before systemd had RuntimeDirectory= (mosquitto: `mkdir -m 740 -p
/// /run/mosquitto`, then `chown mosquitto /run/mosquitto`; vsftpd: `mkdir -p
/// /var/run/vsftpd/empty`): in the sandbox they could do neither (the
/// directory's parent is not writable, chown needs a capability), so each
/// becomes the directory capexec makes, with its mode and owner. A line
/// that does anything else stays a command, and so does a privileged one
/// (systemd's `+`: root makes a directory root's) unless it is an `install
/// -d` that names the owner (tor's, under `PermissionsStartOnly=yes`).
fn directories_from_commands(out: &mut Out) {
    let Some(mut list) = out.commands.remove("start_pre") else { return };
    list.retain(|(argv, _, privileged)| {
        let taken = if *privileged {
            made_by_install(out, argv, true)
        } else {
            made_by_mkdir(out, argv) || owned_by_chown(out, argv) || made_by_install(out, argv, false)
        };
        if taken {
            out.covered.push((format!("ExecStartPre={}", argv.join(" ")), "a directory capexec makes for the service (see [filesystem])".into()));
        }
        !taken
    });
    if !list.is_empty() {
        out.commands.insert("start_pre", list);
    }
}

/// The managed directory (its list's key and name) at `path`, if it is one.
fn managed_dir(path: &str) -> Option<(&'static str, String)> {
    let path = path.strip_prefix("/var/run/").map_or_else(|| path.to_owned(), |r| format!("/run/{r}"));
    let keys = [("/run/", "runtime_directory"), ("/var/lib/", "state_directory"), ("/var/cache/", "cache_directory"), ("/var/log/", "logs_directory")];
    let (key, name) = keys.iter().find_map(|(base, key)| Some((*key, path.strip_prefix(base)?.trim_end_matches('/'))))?;
    let plain = !name.is_empty() && std::path::Path::new(name).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then(|| (key, name.to_owned()))
}

/// `mkdir [-m MODE] -p DIR...` of managed directories: taken as them.
fn made_by_mkdir(out: &mut Out, argv: &[String]) -> bool {
    if !matches!(argv.first().map(String::as_str), Some("/bin/mkdir" | "/usr/bin/mkdir" | "mkdir")) {
        return false;
    }
    let (mut mode, mut parents, mut dirs) = (None, false, Vec::new());
    let mut args = argv[1..].iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-p" | "--parents" => parents = true,
            "-m" | "--mode" => mode = args.next().cloned(),
            _ if a.starts_with("--mode=") => mode = Some(a["--mode=".len()..].to_owned()),
            _ if a.starts_with('-') => return false,
            _ => match managed_dir(a) {
                Some(d) => dirs.push(d),
                None => return false,
            },
        }
    }
    // Without -p an existing directory fails the start: not what capexec's do.
    parents && take_directories(out, mode, dirs)
}

/// `install -d [-m MODE] [-o USER] [-g GROUP] DIR...` of managed
/// directories (munin-node's `install -o munin -g munin -d /run/munin`):
/// taken as them, with their mode and owner as `mkdir` and `chown` are;
/// only with `-o` where `owner_named`.
fn made_by_install(out: &mut Out, argv: &[String], owner_named: bool) -> bool {
    if !matches!(argv.first().map(String::as_str), Some("/usr/bin/install" | "/bin/install" | "install")) {
        return false;
    }
    let (mut mode, mut owner, mut group, mut directory, mut dirs) = (None, None, None, false, Vec::new());
    let mut args = argv[1..].iter();
    while let Some(a) = args.next() {
        let value = |long: &str| a.strip_prefix(long).map(str::to_owned);
        match a.as_str() {
            "-d" | "--directory" => directory = true,
            // The default SELinux context: capexec's directories have the
            // one their parent gives (no SELinux policy is applied).
            "-Z" | "--context" => {}
            "-m" | "--mode" => mode = args.next().cloned(),
            "-o" | "--owner" => owner = args.next().cloned(),
            "-g" | "--group" => group = args.next().cloned(),
            _ if value("--mode=").is_some() => mode = value("--mode="),
            _ if value("--owner=").is_some() => owner = value("--owner="),
            _ if value("--group=").is_some() => group = value("--group="),
            _ if a.starts_with('-') => return false,
            _ => match managed_dir(a) {
                Some(d) => dirs.push(d),
                None => return false,
            },
        }
    }
    // capexec gives them directories_user's primary group: taken where the
    // group is named as the owner is (Debian's user-named groups).
    let group_fits = match (&owner, &group) {
        (_, None) => true,
        (Some(o), Some(g)) => o == g,
        (None, Some(_)) => false,
    };
    if !directory || !group_fits || (owner_named && owner.is_none()) {
        return false;
    }
    let names: Vec<String> = dirs.iter().map(|(key, name)| format!("{}/{name}", managed_base(key))).collect();
    // All or nothing: an owner that cannot be taken leaves the command whole.
    let before = (out.fs.clone(), out.dir_modes.clone(), out.dirs_owner.clone());
    let taken = take_directories(out, mode, dirs)
        && owner.is_none_or(|o| owned_by_chown(out, &std::iter::once("chown".to_owned()).chain(std::iter::once(o)).chain(names).collect::<Vec<_>>()));
    if !taken {
        (out.fs, out.dir_modes, out.dirs_owner) = before;
    }
    taken
}

/// Where each kind of managed directory is.
fn managed_base(key: &str) -> &'static str {
    match key {
        "state_directory" => "/var/lib",
        "cache_directory" => "/var/cache",
        "logs_directory" => "/var/log",
        _ => "/run",
    }
}

/// The managed directories `dirs` made with `mode` (an octal string, if
/// given): added to their lists; false (nothing taken) where the mode is
/// no mode, or another than one taken before for that kind.
fn take_directories(out: &mut Out, mode: Option<String>, dirs: Vec<(&'static str, String)>) -> bool {
    let mode = match mode.map(|m| directory_mode(&m)) {
        None => None,
        Some(Some(m)) => Some(m),
        Some(None) => return false,
    };
    // One mode per kind of directory: a second, different one cannot be said.
    let conflicting = |key: &str| mode.as_ref().is_some_and(|m| out.dir_modes.get(key).is_some_and(|had| had != m));
    if dirs.is_empty() || dirs.iter().any(|(k, _)| conflicting(k)) {
        return false;
    }
    for (key, name) in dirs {
        if let Some(m) = &mode {
            out.dir_modes.insert(key, m.clone());
        }
        let names = out.fs.entry(key).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    true
}

/// An octal mode as a service's directory may have it (permission bits and
/// setgid, as `filesystem.*_mode` takes them), written as the declaration
/// writes it; None for another.
fn directory_mode(octal: &str) -> Option<String> {
    match u32::from_str_radix(octal, 8) {
        Ok(m) if m & !0o777 == 0 => Some(format!("{m:04o}")),
        Ok(m) if m & !0o2777 == 0 => Some(format!("0{m:o}")),
        _ => None,
    }
}

/// `chown USER[:GROUP] DIR...` of directories capexec makes for the service:
/// taken as their owner (`directories_user`, for a service started as root)
/// when that is the service's own user or the one it drops to.
fn owned_by_chown(out: &mut Out, argv: &[String]) -> bool {
    if !matches!(argv.first().map(String::as_str), Some("/bin/chown" | "/usr/bin/chown" | "chown")) || argv.len() < 3 {
        return false;
    }
    let owner = argv[1].split([':', '.']).next().unwrap_or_default().to_owned();
    let made = |d: &String| managed_dir(d).is_some_and(|(key, name)| out.fs.get(key).is_some_and(|l| l.contains(&name)));
    if owner.is_empty() || owner.starts_with('-') || !argv[2..].iter().all(made) {
        return false;
    }
    match (&out.user, out.started_as_root) {
        // They are the service's user's already (or, started as root, the
        // user it drops to: directories_user).
        (Some(u), _) => *u == owner,
        // A root service that drops to `owner` itself (mosquitto).
        (None, _) if out.dirs_owner.as_ref().is_none_or(|o| *o == owner) => {
            out.dirs_owner = Some(owner);
            true
        }
        (None, _) => false,
    }
}

/// A [Unit] `Condition…=` or `Assert…=` on a path, as the test(1) command
/// that checks the same (`!` negates it); `Err` says why another one is
/// left out.
fn path_check(key: &str, value: &str) -> Result<Vec<String>, String> {
    let kind = key.strip_prefix("Condition").or_else(|| key.strip_prefix("Assert")).unwrap_or(key);
    let test = match kind {
        "PathExists" => "-e",
        "PathIsDirectory" => "-d",
        "PathIsSymbolicLink" => "-L",
        "FileNotEmpty" => "-s",
        "FileIsExecutable" => "-x",
        _ => {
            return Err(format!(
                "capexec checks no {kind} condition: the service starts whatever this says; an [[exec.condition]] command (exit 1: do not start) can check it"
            ))
        }
    };
    if value.is_empty() {
        return Err("an empty assignment resets the unit's conditions: capexec keeps those it mapped above; remove them from [[exec.condition]] by hand".into());
    }
    if value.starts_with('|') {
        return Err("a triggering condition (`|`: any one of several holds): capexec checks each condition on its own; write one [[exec.condition]] command that tests them together".into());
    }
    let (negated, path) = match value.strip_prefix('!') {
        Some(p) => (true, p),
        None => (false, value),
    };
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path (systemd would not accept it either)"));
    }
    let mut argv = vec!["/usr/bin/test".to_owned()];
    if negated {
        argv.push("!".into());
    }
    argv.extend([test.to_owned(), path.to_owned()]);
    Ok(argv)
}

/// The declaration's list for an Exec*= directive.
fn command_list(directive: &str) -> &'static str {
    match directive {
        "ExecCondition" => "condition",
        "ExecStartPre" => "start_pre",
        "ExecStartPost" => "start_post",
        "ExecStop" => "stop",
        _ => "reload",
    }
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| q(s)).collect::<Vec<_>>().join(", "))
}

fn yes(v: &str) -> bool {
    matches!(v, "1" | "yes" | "true" | "on")
}

/// An Exec*= line: (argv, ignore_failure, privileged).
type ImportedCommand = (Vec<String>, bool, bool);

#[derive(Default)]
struct Out {
    /// The drop-ins applied after the unit file, by path.
    dropins: Vec<String>,
    description: Option<String>,
    argv: Vec<String>,
    user: Option<String>,
    /// DynamicUser=yes: a uid of its own from capexec's dynamic range.
    dynamic: bool,
    group: Option<String>,
    /// SupplementaryGroups=, in order.
    groups: Vec<String>,
    /// PrivateUsers=yes: a user namespace of its own.
    private_users: bool,
    /// PIDFile=: service.pid_file of a forking service.
    pid_file: Option<String>,
    /// ExecStart=!: started as root whatever User= says.
    started_as_root: bool,
    /// [Unit] Condition…= and Assert…= on paths, as privileged commands:
    /// systemd checks them before anything of the start.
    unit_conditions: Vec<ImportedCommand>,
    unit_asserts: Vec<ImportedCommand>,
    /// PermissionsStartOnly=yes (its assignment): every command privileged.
    permissions_start_only: Option<String>,
    /// A root unit's directories chowned to this user by its ExecStartPre=
    /// lines (see `directories_from_commands`).
    dirs_owner: Option<String>,
    /// ExecStartPre=, ExecStartPost=, ExecReload= and ExecStop= lines (but
    /// those that only signal), by the key of their list.
    commands: BTreeMap<&'static str, Vec<ImportedCommand>>,
    env: BTreeMap<String, String>,
    workdir: Option<String>,
    mdwe: bool,
    /// UMask=, as four octal digits.
    umask: Option<String>,
    /// Nice= and OOMScoreAdjust=, in range.
    nice: Option<i32>,
    oom_score_adjust: Option<i32>,
    /// IgnoreSIGPIPE=no: the unit keeps SIGPIPE at its default (systemd
    /// ignores it otherwise).
    sigpipe_default: bool,
    fs: BTreeMap<&'static str, Vec<String>>,
    /// The unit's own directory, where its socket units are looked for first.
    unit_dir: Option<std::path::PathBuf>,
    /// Sockets of the socket units it requires (`Requires=x.socket`, `Sockets=`).
    listen: Vec<socket::Listen>,
    /// RuntimeDirectoryMode= and the others, by the key of their list.
    dir_modes: BTreeMap<&'static str, String>,
    net_none: bool,
    /// A host-wide part of /proc is written (`read_write`): `proc = "full"`.
    proc_full: bool,
    /// IPAddressDeny= of every address (`any`), as the unit wrote it.
    ip_deny_any: Option<String>,
    /// IPAddressAllow= lines, as the unit wrote them, and the prefixes they name.
    ip_allow: Vec<(String, Vec<String>)>,
    /// `[broker.net]` from IPAddressDeny=any: `guard = true`, and the
    /// grants IPAddressAllow= gives (each prefix, any port, both ways).
    ip_guard: Option<Vec<String>>,
    keep: Vec<String>,
    /// CapabilityBoundingSet=, as its lines add up (None: not set).
    bound: Option<std::collections::BTreeSet<String>>,
    allow: Vec<String>,
    deny: Vec<String>,
    errno: Option<String>,
    action: Option<String>,
    /// capexec's rlimit name → its TOML value.
    rlimits: BTreeMap<&'static str, String>,
    service: Vec<(&'static str, String)>,
    limits: Vec<(&'static str, String)>,
    /// Directives capexec covers anyway: (assignment, what it does).
    covered: Vec<(String, String)>,
    /// Where capexec is stricter than the unit, which may stop the service
    /// from working: (assignment, what to check).
    stricter: Vec<(String, String)>,
    /// Not carried over: (assignment, why).
    skipped: Vec<(String, String)>,
    /// An ExecStop= that only signals the main process: (signal, the
    /// assignment, how it was told); it wins over KillSignal=.
    stop_by: Option<(&'static str, String, String)>,
    /// ExecStopPost= lines that only `rm -f` a file: (assignment, the file).
    removed_at_stop: Vec<(String, String)>,
}

/// The declaration's list for StateDirectory= and the others (their
/// `...Mode=` too).
fn directory_key(directive: &str) -> &'static str {
    match directive.trim_end_matches("Mode") {
        "StateDirectory" => "state_directory",
        "CacheDirectory" => "cache_directory",
        "LogsDirectory" => "logs_directory",
        _ => "runtime_directory",
    }
}

/// The `[broker.net]` address prefixes (any port) that one word of
/// IPAddressAllow= names; None for a word that is none of systemd's.
fn ip_prefixes(word: &str) -> Option<Vec<String>> {
    let fixed: &[&str] = match word {
        "localhost" => &["127.0.0.0/8", "[::1]"],
        "link-local" => &["169.254.0.0/16", "[fe80::]/64"],
        "multicast" => &["224.0.0.0/4", "[ff00::]/8"],
        "any" => &["0.0.0.0/0", "[::]/0"],
        _ => &[],
    };
    if !fixed.is_empty() {
        return Some(fixed.iter().map(|p| format!("{p}:*")).collect());
    }
    let (addr, prefix) = word.split_once('/').map_or((word, None), |(a, p)| (a, Some(p)));
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let prefix = match prefix {
        Some(p) => Some(p.parse::<u8>().ok().filter(|p| *p <= if ip.is_ipv4() { 32 } else { 128 })?),
        None => None,
    };
    let shown = if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
    Some(vec![format!("{shown}{}:*", prefix.map(|p| format!("/{p}")).unwrap_or_default())])
}

/// IPAddressDeny=any with what IPAddressAllow= lets through: in the
/// service's own network namespace (PrivateNetwork=) it reaches no
/// address already; in the host's, `[broker.net] guard = true` with the
/// allowed prefixes as grants both ways, which the network guard holds on
/// every socket of the service, as systemd's BPF programs do.
fn ip_address_lists(out: &mut Out) {
    let allow = std::mem::take(&mut out.ip_allow);
    let Some(deny) = out.ip_deny_any.take() else {
        for (a, _) in allow {
            out.skipped.push((a, "without IPAddressDeny=any it limits nothing, under systemd as here".into()));
        }
        return;
    };
    if out.net_none {
        out.covered.push((deny, "namespaces.net = \"none\": its own network namespace reaches no address of the host".into()));
        for (a, _) in allow {
            out.skipped
                .push((a, "its own network namespace (PrivateNetwork=) reaches none of the host's addresses; grant what it must reach in [broker.net]".into()));
        }
        return;
    }
    let mut grants: Vec<String> = Vec::new();
    for (a, prefixes) in allow {
        out.covered.push((a, format!("[broker.net] connect and bind {}: the network guard lets its sockets reach these", prefixes.join(", "))));
        for p in prefixes {
            if !grants.contains(&p) {
                grants.push(p);
            }
        }
    }
    out.covered.push((
        deny,
        "[broker.net] guard = true: the network guard lets no IP socket of the service reach an address its grants do not name (as root; rootless such a file is refused at the start)".into(),
    ));
    out.ip_guard = Some(grants);
}

impl Out {
    /// Takes the listening sockets of the socket unit `name`, which `e`
    /// names, as preopens; false if there is no such unit.
    fn activate(&mut self, e: &Entry, name: &str) -> bool {
        let Some(a) = socket::read(self.unit_dir.as_deref(), name) else { return false };
        let what: Vec<&str> = a.listen.iter().map(|l| l.address.as_str()).collect();
        self.covered.push((
            format!("{}={}", e.key, e.value),
            format!("{name} ({}): [[preopen.listen]] {}; capexec opens it for the service, as socket activation does", a.path.display(), what.join(", ")),
        ));
        for (d, why) in a.skipped {
            self.skipped.push((format!("{name}: {d}"), why));
        }
        for (d, what) in a.covered {
            self.covered.push((format!("{name}: {d}"), what));
        }
        for l in a.listen {
            if !self.listen.contains(&l) {
                self.listen.push(l);
            }
        }
        true
    }

    fn skip(&mut self, e: &Entry, why: impl Into<String>) {
        self.skipped.push((format!("{}={}", e.key, e.value), why.into()));
    }
    fn path(&mut self, kind: &'static str, p: &str, e: &Entry) {
        let (optional, rest) = match p.strip_prefix('-') {
            Some(r) => ("-", r),
            None => ("", p),
        };
        let rest = rest.trim_start_matches('+');
        if !rest.starts_with('/') {
            self.skip(e, format!("{p} is not an absolute path"));
            return;
        }
        // /var/run is a symlink to /run: name the real directory.
        let rest = match rest.strip_prefix("/var/run/") {
            Some(r) => format!("/run/{r}"),
            None if rest.trim_end_matches('/') == "/var/run" => "/run".to_owned(),
            None => rest.to_owned(),
        };
        // What capexec's view has by itself (tor's unit makes all of /
        // read-only, then /proc writable again).
        let trimmed = rest.trim_end_matches('/');
        let own = |d: &str| trimmed == d || trimmed.starts_with(&format!("{d}/"));
        let said = match kind {
            _ if trimmed.is_empty() && kind == "read_only" => {
                Some("the view is read-only wherever the declaration says nothing else, and shows the system directories, not all of /")
            }
            _ if trimmed.is_empty() => {
                self.skip(e, "all of / cannot be given: list the directories the service writes");
                return;
            }
            // A host-wide part of /proc it writes (irqbalance's /proc/irq):
            // the full /proc shows it, and the entry makes it writable.
            "read_write" if own("/proc") && !trimmed.is_empty() && !pid_path(trimmed) && trimmed != "/proc" => {
                self.proc_full = true;
                None
            }
            "read_only" | "read_write" | "inaccessible" | "executable" if own("/proc") => {
                Some("/proc is capexec's own (filesystem.proc): the service may write its own processes' files there, and nothing else")
            }
            // krb5-kdc's ReadWriteDirectories=/tmp: under systemd the host's
            // /tmp (the unit has no PrivateTmp=); `check` refuses it beside
            // capexec's private one, which is writable and shares nothing.
            "read_only" | "read_write" | "inaccessible" | "executable" if trimmed == "/tmp" => Some(
                "/tmp is a private tmpfs of the service's own (filesystem.private_tmp), writable; to share the host's, set private_tmp = false and list /tmp",
            ),
            "read_only" | "read_write" | "inaccessible" | "executable" if own("/dev") => {
                Some("/dev is capexec's own (filesystem.dev): a minimal one, its device nodes writable")
            }
            _ => None,
        };
        if let Some(what) = said {
            self.covered.push((format!("{}={}", e.key, e.value), what.into()));
            return;
        }
        let item = format!("{optional}{rest}");
        let v = self.fs.entry(kind).or_default();
        // Listed twice (krb5-kdc's `-/var/run /run`, the same directory):
        // once, required if either is.
        match v.iter().position(|x| x.trim_start_matches('-') == rest) {
            Some(i) if optional.is_empty() => v[i] = item,
            Some(_) => {}
            None => v.push(item),
        }
    }
}

/// A path of a process's own files in /proc: `/proc/self`, `/proc/PID`.
fn pid_path(p: &str) -> bool {
    let first = p.strip_prefix("/proc/").and_then(|r| r.split('/').next()).unwrap_or_default();
    first == "self" || first == "thread-self" || (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
}

/// SecureBits=: `noroot` is what no_new_privs gives every service (an exec
/// gains no capability, whatever its uid or file capabilities: haveged's
/// `noroot-locked`); capexec sets no other bit for a service, and leaves
/// PR_SET_KEEPCAPS to the program.
fn secure_bits(e: &Entry, out: &mut Out) {
    let (noroot, other): (Vec<&str>, Vec<&str>) = e.value.split_whitespace().partition(|b| matches!(*b, "noroot" | "noroot-locked"));
    if !noroot.is_empty() {
        out.covered.push((
            format!("{}={}", e.key, noroot.join(" ")),
            "no_new_privs, always set: no program the service executes gains a capability, whatever its uid or file capabilities".into(),
        ));
    }
    for b in other {
        let why = match b {
            "keep-caps" | "keep-caps-locked" => {
                "capexec sets no keep-caps bit: the program keeps its capabilities across its own setuid() by asking (PR_SET_KEEPCAPS)"
            }
            "no-setuid-fixup" | "no-setuid-fixup-locked" => "capexec keeps the kernel's setuid fixup: a switch away from uid 0 drops the capabilities (locked)",
            _ => "not a securebit systemd knows",
        };
        out.skipped.push((format!("{}={b}", e.key), why.into()));
    }
}

/// The nodes of capexec's minimal /dev, which every service has.
const MINIMAL_DEV: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"];

/// DeviceAllow=`PATH [rwm]`: a node of the minimal /dev is there anyway, one
/// of capexec's short list is `filesystem.devices` (OpenVPN's
/// /dev/net/tun); the rest (a class such as `char-*`, a disk) is left out,
/// said so.
fn device_allow(e: &Entry, out: &mut Out) {
    let node = e.value.split_whitespace().next().unwrap_or_default();
    let what = if MINIMAL_DEV.contains(&node) {
        "in capexec's minimal /dev for every service".to_owned()
    } else if capexec_decl::validate::DEVICES.contains(&node) {
        let list = out.fs.entry("devices").or_default();
        if !list.iter().any(|d| d == node) {
            list.push(node.to_owned());
        }
        format!("filesystem.devices: {node} in the service's /dev")
    } else {
        let why = format!("capexec gives a service only these devices beyond the minimal /dev: {}", capexec_decl::validate::DEVICES.join(", "));
        out.skip(e, why);
        return;
    };
    out.covered.push((format!("{}={}", e.key, e.value), what));
}

/// Where syslog(3) sends, as systemd units name it in a bind.
const SYSLOG_SOURCES: &[&str] = &["/dev/log", "/run/systemd/journal/dev-log"];

/// BindReadOnlyPaths= and BindPaths=, a list of `[-]SRC[:DST[:OPTIONS]]`: a
/// path bound at its own place is what read_only and read_write give; the
/// syslog socket bound into a chroot (haproxy's /var/lib/haproxy/dev/log)
/// is filesystem.syslog_sockets, and /dev/log itself is capexec's already.
/// capexec binds no path onto another: the rest is left out, said so.
fn bind_paths(e: &Entry, out: &mut Out) {
    let kind = if e.key == "BindPaths" { "read_write" } else { "read_only" };
    let (mut not_mapped, mut mapped) = (Vec::new(), Vec::new());
    for b in e.value.split_whitespace() {
        let (optional, rest) = b.strip_prefix('-').map_or(("", b), |r| ("-", r));
        let mut parts = rest.splitn(3, ':');
        let (src, dst) = (parts.next().unwrap_or_default(), parts.next());
        let what = match dst {
            Some(d) if SYSLOG_SOURCES.contains(&src) && d != "/dev/log" => {
                out.path("syslog_sockets", d, e);
                "filesystem.syslog_sockets: capexec's syslog socket (the service's /dev/log) there too"
            }
            _ if SYSLOG_SOURCES.contains(&src) => "/dev/log is capexec's syslog socket already",
            Some(d) if d != src => {
                not_mapped.push(b);
                continue;
            }
            _ => {
                out.path(kind, &format!("{optional}{src}"), e);
                if kind == "read_write" {
                    "filesystem.read_write"
                } else {
                    "filesystem.read_only"
                }
            }
        };
        if !mapped.contains(&what) {
            mapped.push(what);
        }
    }
    if not_mapped.is_empty() {
        out.covered.push((format!("{}={}", e.key, e.value), mapped.join("; ")));
    } else {
        let why = format!(
            "{} bound onto another path: capexec has no such binds (the rest of the line is mapped); point the service at the source path, or list the target in filesystem.{kind}",
            not_mapped.join(" ")
        );
        out.skip(e, why);
    }
}

/// CapabilityBoundingSet=: lines add up as systemd's do (a list ORed in,
/// a `~` list taken out, an empty line resets to no capability), and the
/// result is `capabilities.bound`.
fn capability_bound(e: &Entry, out: &mut Out) {
    let v = e.value.trim();
    let (negated, names) = match v.strip_prefix('~') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let mut listed = std::collections::BTreeSet::new();
    for n in names.split_whitespace() {
        let up = n.to_ascii_uppercase();
        if capexec_decl::validate::CAPABILITIES.contains(&up.as_str()) {
            listed.insert(up);
        } else {
            out.skipped.push((format!("CapabilityBoundingSet={v}"), format!("{n} is no capability capexec knows; left out")));
        }
    }
    let all = || capexec_decl::validate::CAPABILITIES.iter().map(|c| (*c).to_owned()).collect::<std::collections::BTreeSet<_>>();
    let bound = match (v.is_empty(), negated, out.bound.take()) {
        (true, _, _) => Default::default(),
        (_, true, current) => current.unwrap_or_else(all).difference(&listed).cloned().collect(),
        (_, false, current) => current.unwrap_or_default().union(&listed).cloned().collect(),
    };
    out.bound = Some(bound);
    out.covered.push((
        format!("CapabilityBoundingSet={v}"),
        "capabilities.bound: `capexec learn` starts the service with these at most and keeps no other; every capability not kept is dropped".into(),
    ));
}

/// Variables an ExecStart may name: Environment= and the EnvironmentFile=s
/// that can be read here.
fn environment(entries: &[Entry], out: &mut Out) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for e in entries.iter().filter(|e| e.section == "Service") {
        match e.key.as_str() {
            "Environment" => {
                for w in unit_file::words(&e.value).unwrap_or_default() {
                    if let Some((k, v)) = w.split_once('=') {
                        vars.insert(k.to_owned(), v.to_owned());
                        out.env.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
            "EnvironmentFile" => {
                let path = e.value.trim_start_matches('-');
                match std::fs::read_to_string(path) {
                    Ok(text) => {
                        let (assigned, ignored) = unit_file::env_file(&text);
                        for (k, v) in assigned {
                            vars.insert(k.clone(), v.clone());
                            out.env.insert(k, v);
                        }
                        for why in ignored {
                            out.skip(e, format!("{path}: {why}: ignored, as systemd does"));
                        }
                        out.covered.push((
                            format!("EnvironmentFile={}", e.value),
                            format!("read now; its variables are in [exec.environment] (re-import when {path} changes)"),
                        ));
                    }
                    Err(err) if e.value.starts_with('-') => {
                        out.covered.push((format!("EnvironmentFile={}", e.value), format!("optional and not readable here ({err}): nothing taken from it")))
                    }
                    Err(err) => out.skip(e, format!("cannot read {path}: {err}")),
                }
            }
            _ => {}
        }
    }
    vars
}

/// ExecStart's argv, with the prefixes removed and $VAR / ${VAR} expanded.
/// A command line around the program (ExecStartPre= and the others) with
/// its prefixes: `-` ignores its failure, `+` and `!` run it privileged.
fn imported_command(e: &Entry, vars: &BTreeMap<String, String>, out: &mut Out) -> Option<ImportedCommand> {
    let v = e.value.as_str();
    let prefixes: String = v.chars().take_while(|c| "-@+!:".contains(*c)).collect();
    if prefixes.contains('@') {
        out.skip(e, "the `@` prefix (a separate argv[0]) has no counterpart");
        return None;
    }
    if prefixes.contains('!') && !prefixes.contains('+') {
        out.covered.push((
            format!("{}={v}", e.key),
            "`!` (root, with the unit's other sandboxing): privileged = true, which runs it on the host as root without the sandbox".into(),
        ));
    }
    let argv = exec_start(&Entry { value: v[prefixes.len()..].to_owned(), ..e.clone() }, vars, out);
    (!argv.is_empty()).then(|| (mainpid_shell(argv), prefixes.contains('-'), prefixes.contains('+') || prefixes.contains('!')))
}

/// The program from the ExecStart= lines: the first, the others said. A
/// oneshot's run one after another, each to its end (pg_dump@.service dumps,
/// then expires old dumps): all but the last become start_pre commands,
/// after the unit's own and in order, the last the program.
fn starts_of(starts: &[Entry], oneshot: bool, vars: &BTreeMap<String, String>, out: &mut Out) {
    if oneshot && out.commands.contains_key("start_post") {
        out.skipped.push((
            "ExecStartPost= (Type=oneshot)".into(),
            "systemd runs it after the last ExecStart= has ended; capexec runs start_post once the program has started".into(),
        ));
    }
    match starts {
        [] => {}
        [first, rest @ ..] if !oneshot || rest.is_empty() => {
            out.argv = exec_start(first, vars, out);
            for e in rest {
                out.skip(e, "a second ExecStart (only Type=oneshot has several): capexec runs one program");
            }
        }
        [before @ .., last] => {
            let before: Vec<ImportedCommand> = before.iter().filter_map(|e| imported_command(e, vars, out)).collect();
            out.argv = exec_start(last, vars, out);
            out.commands.entry("start_pre").or_default().extend(before);
            out.covered.push((
                format!("ExecStart= ({} lines, Type=oneshot)", starts.len()),
                "one after another, as systemd runs them: all but the last as [[exec.start_pre]] (after the unit's own ExecStartPre=), the last as the program"
                    .into(),
            ));
        }
    }
}

fn exec_start(e: &Entry, vars: &BTreeMap<String, String>, out: &mut Out) -> Vec<String> {
    let mut value = e.value.as_str();
    while let Some(r) = value.strip_prefix(['-', '@', '+', '!', ':']) {
        if value.starts_with('+') {
            out.skip(e, "the `+` prefix (run with full privileges) has no counterpart: the service is always confined");
        } else if value.starts_with('!') {
            // Root despite User= (which names whom the daemon drops to).
            out.started_as_root = true;
        }
        value = r;
    }
    let words = match unit_file::words(value) {
        Ok(w) => w,
        Err(err) => {
            out.skip(e, err.to_string());
            return Vec::new();
        }
    };
    let mut argv = Vec::new();
    for w in words {
        // systemd's main pid: capexec sets MAINPID for the commands around the
        // service (see `mainpid_shell`), not for the program.
        if w.contains("$MAINPID") || w.contains("${MAINPID}") {
            argv.push(w.replace("${MAINPID}", "$MAINPID"));
            continue;
        }
        // A word that is exactly $VAR splits into words; ${VAR} inside a word does not.
        if let Some(name) = w.strip_prefix('$').filter(|n| !n.starts_with('{') && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
            match vars.get(name) {
                Some(v) => argv.extend(v.split_whitespace().map(str::to_owned)),
                None => out.skip(e, format!("${name} is not set by Environment= or a readable EnvironmentFile=: left out of argv")),
            }
            continue;
        }
        let mut word = w.clone();
        while let Some(start) = word.find("${") {
            let Some(len) = word[start..].find('}') else { break };
            let name = word[start + 2..start + len].to_owned();
            let val = vars.get(&name).cloned().unwrap_or_else(|| {
                out.skip(e, format!("${{{name}}} is not set: replaced by nothing"));
                String::new()
            });
            word.replace_range(start..start + len + 1, &val);
        }
        // Specifiers were expanded (or noted) before parsing: a % left here is literal.
        argv.push(word);
    }
    // A command without a path is found where systemd looks when it loads
    // the unit (atd's `ExecStartPre=-find ...`); capexec takes paths only.
    if let Some(name) = argv.first().filter(|p| !p.contains('/')).cloned() {
        match SYSTEMD_SEARCH_PATH.iter().map(|d| std::path::Path::new(d).join(&name)).find(|p| p.is_file()) {
            Some(found) => {
                out.covered.push((
                    format!("{}={name}", e.key),
                    format!("{} on this host, where systemd's search path for a command without a path finds it", found.display()),
                ));
                argv[0] = found.display().to_string();
            }
            None => out.skip(e, format!("`{name}` is not in systemd's search path ({}): give its full path", SYSTEMD_SEARCH_PATH.join(":"))),
        }
    }
    argv
}

/// Where systemd finds an Exec*= command given without a path.
const SYSTEMD_SEARCH_PATH: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// SystemCallFilter= lines → allow and deny lists capexec knows.
fn syscall_filter(e: &Entry, out: &mut Out, first: &mut Option<bool>) {
    let (deny, rest) = match e.value.trim().strip_prefix('~') {
        Some(r) => (true, r),
        None => (false, e.value.trim()),
    };
    if rest.is_empty() && !deny {
        out.allow.clear();
        out.deny.clear();
        return;
    }
    first.get_or_insert(!deny);
    for item in rest.split_whitespace() {
        // `name:errno` sets a per-call errno, which capexec does not have.
        let name = item.split(':').next().unwrap_or(item);
        let mut known: Vec<String> = Vec::new();
        if name.starts_with('@') {
            if capexec_decl::syscalls::group(name).is_some() {
                known.push(name.to_owned());
            } else {
                let members = systemd_set(name);
                if members.is_empty() {
                    out.skip(e, format!("{name}: a syscall set capexec does not know"));
                    continue;
                }
                known.extend(members.iter().filter(|m| capexec_decl::syscalls::number(m).is_some()).map(|m| (*m).to_owned()));
            }
        } else if capexec_decl::syscalls::number(name).is_some() {
            known.push(name.to_owned());
        } else {
            out.skip(e, format!("{name}: not a syscall of this architecture"));
            continue;
        }
        let into = if deny { &mut out.deny } else { &mut out.allow };
        for k in known {
            if !into.contains(&k) {
                into.push(k);
            }
        }
    }
}

/// Why a unit file cannot be converted at all (what can be converted in
/// part is, with what was skipped listed in the output).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("{unit}: {error}")]
    Syntax { unit: String, error: unit_file::SyntaxError },
    #[error("{0}: no usable ExecStart= in [Service]; nothing to run")]
    NoExecStart(String),
    #[error("{0} is a template unit: name the instance with --instance NAME (for postgresql@.service, --instance 15-main)")]
    TemplateNeedsInstance(String),
    #[error("{0} is not a template unit (no `@` before .service): --instance does not apply")]
    NotATemplate(String),
}

/// systemd's specifiers (systemd.unit(5)) in `text`, for the unit file named
/// `file` and its `instance`: the instance and unit names, and the system
/// directories (a service of the system manager). Others stay as written and
/// are returned, to be noted.
/// Returns the text, the specifiers left unexpanded, and those expanded to
/// this host's names (%H, %l: the service runs with the host's hostname).
fn expand_specifiers(text: &str, file: &str, instance: Option<&str>) -> (String, Vec<String>, Vec<String>) {
    let stem = file.strip_suffix(".service").unwrap_or(file);
    let (prefix, template) = match stem.split_once('@') {
        Some((p, _)) => (p, true),
        None => (stem, false),
    };
    let inst = instance.unwrap_or("");
    let name = if template { format!("{prefix}@{inst}") } else { prefix.to_owned() };
    let mut out = String::with_capacity(text.len());
    let (mut left, mut host) = (Vec::new(), Vec::new());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "localhost".into());
    for line in text.split_inclusive('\n') {
        // Comments are not expanded (Debian's mariadb.service says "99% of").
        if matches!(line.trim_start().chars().next(), Some('#' | ';')) {
            out.push_str(line);
            continue;
        }
        expand_line(line, &mut out, (&mut left, &mut host), (inst, prefix, &name, &hostname));
    }
    (out, left, host)
}

/// [`expand_specifiers`] for one line.
fn expand_line(line: &str, out: &mut String, (left, host): (&mut Vec<String>, &mut Vec<String>), (inst, prefix, name, hostname): (&str, &str, &str, &str)) {
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // A % before anything but a letter or % is no specifier (TasksMax=99%).
        let Some(s) = chars.next_if(|n| n.is_ascii_alphabetic() || *n == '%') else {
            out.push('%');
            continue;
        };
        match s {
            '%' => out.push('%'),
            'i' => out.push_str(inst),
            'I' => out.push_str(&unescape(inst)),
            'p' => out.push_str(prefix),
            'P' => out.push_str(&unescape(prefix)),
            'j' => out.push_str(prefix.rsplit('-').next().unwrap_or(prefix)),
            'J' => out.push_str(&unescape(prefix.rsplit('-').next().unwrap_or(prefix))),
            'n' => out.push_str(&format!("{name}.service")),
            'N' => out.push_str(name),
            't' => out.push_str("/run"),
            'S' => out.push_str("/var/lib"),
            'C' => out.push_str("/var/cache"),
            'L' => out.push_str("/var/log"),
            'E' => out.push_str("/etc"),
            'T' => out.push_str("/tmp"),
            'V' => out.push_str("/var/tmp"),
            'H' | 'l' => {
                out.push_str(if s == 'H' { hostname } else { hostname.split('.').next().unwrap_or(hostname) });
                if !host.contains(&format!("%{s}")) {
                    host.push(format!("%{s}"));
                }
            }
            other => {
                out.push('%');
                out.push(other);
                if !left.contains(&format!("%{other}")) {
                    left.push(format!("%{other}"));
                }
            }
        }
    }
}

/// systemd-escape's reverse: `-` is `/`, `\xNN` a byte.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => out.push(b'/'),
            b'\\' if b.get(i + 1) == Some(&b'x') && b.len() >= i + 4 => {
                match std::str::from_utf8(&b[i + 2..i + 4]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => out.push(b'\\'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file of the unit: its path and text.
pub struct UnitText {
    pub path: String,
    pub text: String,
}

/// The declaration for the unit file `unit` with its `dropins` (applied
/// after it in their order, as systemd does: see `locate`); a template unit
/// (`name@.service`) needs its `instance`.
pub fn convert(unit: &UnitText, dropins: &[UnitText], instance: Option<&str>) -> Result<String, ImportError> {
    let source = unit.path.as_str();
    let file = std::path::Path::new(source).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match (file.contains("@."), instance) {
        (true, None) => return Err(ImportError::TemplateNeedsInstance(source.to_owned())),
        (false, Some(_)) => return Err(ImportError::NotATemplate(source.to_owned())),
        _ => {}
    }
    let (mut entries, mut unexpanded, mut host_names) = (Vec::new(), Vec::new(), Vec::new());
    for f in std::iter::once(unit).chain(dropins) {
        let (text, u, h) = expand_specifiers(&f.text, &file, instance);
        entries.extend(unit_file::parse(&text).map_err(|error| ImportError::Syntax { unit: f.path.clone(), error })?);
        for (list, found) in [(&mut unexpanded, u), (&mut host_names, h)] {
            for s in found {
                if !list.contains(&s) {
                    list.push(s);
                }
            }
        }
    }
    let mut out = Out { unit_dir: std::path::Path::new(source).parent().map(|p| p.to_path_buf()), ..Out::default() };
    out.dropins = dropins.iter().map(|d| d.path.clone()).collect();
    for s in unexpanded {
        out.skipped.push((s, "a unit specifier import does not expand (it expands %i, %I, %n, %N, %p, %P, %j, %J, the host's %H and %l, and the system directories %t, %S, %C, %L, %E, %T, %V): replace it by hand".into()));
    }
    for s in host_names {
        out.covered.push((s, "this host's name, as the service sees it (namespaces.hostname is the host's); expanded now: re-import on another host".into()));
    }
    let vars = environment(&entries, &mut out);
    let mut filter_mode: Option<bool> = None;
    // ExecStart= lines, in order; Type=oneshot.
    let mut starts: Vec<Entry> = Vec::new();
    let mut oneshot = false;
    for e in &entries {
        if e.section == "Unit" && e.key == "Description" {
            out.description = Some(e.value.clone());
            continue;
        }
        if e.section == "Install" {
            out.skip(e, "[Install]: capexec's daemon starts services with `autostart = true` or `capexec enable NAME`");
            continue;
        }
        if e.section == "Unit" {
            unit_section(e, &mut out);
            continue;
        }
        if e.section != "Service" {
            continue;
        }
        let v = e.value.as_str();
        match e.key.as_str() {
            // A drop-in resets the list before it sets its own (systemctl edit).
            "ExecStart" if v.is_empty() => starts.clear(),
            "ExecStop" if v.is_empty() => {
                out.stop_by = None;
                out.commands.remove(command_list(&e.key));
            }
            // A stop that only signals the main process is that signal.
            "ExecStop" if stop::signal_of(v).is_some() => {
                let (sig, how) = stop::signal_of(v).expect("checked");
                out.stop_by = Some((sig, format!("{}={v}", e.key), how));
            }
            "ExecStartPre" | "ExecStartPost" | "ExecReload" | "ExecCondition" if v.is_empty() => drop(out.commands.remove(command_list(&e.key))),
            "ExecStartPre" | "ExecStartPost" | "ExecReload" | "ExecStop" | "ExecCondition" => {
                if let Some(entry) = imported_command(e, &vars, &mut out) {
                    out.commands.entry(command_list(&e.key)).or_default().push(entry);
                }
            }
            // Read once all are known (see `starts`).
            "ExecStart" => starts.push(e.clone()),
            "Environment" | "EnvironmentFile" => {}
            "Sockets" => {
                let missing: Vec<&str> = v.split_whitespace().filter(|s| !out.activate(e, s)).collect();
                if !missing.is_empty() {
                    out.skip(e, format!("no socket unit {} found: declare what it listens on as [[preopen.listen]] here", missing.join(", ")));
                }
            }
            "User" => out.user = Some(v.to_owned()),
            "DynamicUser" => {
                out.dynamic = yes(v);
                if out.dynamic {
                    out.covered.push((format!("DynamicUser={v}"), "user = \"dynamic\": a uid of its own from capexec's dynamic range, with no passwd entry".into()));
                }
            }
            "ProtectSystem" if v == "strict" => {
                out.covered.push((format!("ProtectSystem={v}"), "the view is read-only except the declared writable paths".into()));
            }
            "ProtectSystem" => out.stricter.push((
                format!("ProtectSystem={v}"),
                format!(
                    "the view is read-only except the declared writable paths, as with ProtectSystem=strict; systemd left {} writable: add what the service writes there to filesystem.read_write (`capexec learn` finds it)",
                    if v == "full" { "/var and the rest outside /usr, /boot and /etc" } else if yes(v) { "/etc, /var and the rest outside /usr and /boot" } else { "everything" }
                ),
            )),
            "Group" => out.group = Some(v.to_owned()),
            "SupplementaryGroups" if v.is_empty() => out.groups.clear(),
            "SupplementaryGroups" => out.groups.extend(v.split_whitespace().map(str::to_owned)),
            "PrivateUsers" => {
                out.private_users = yes(v);
                let what = if out.private_users {
                    "namespaces.user = true: a user namespace of its own mapping the service's uid, gid and groups"
                } else {
                    "the host's user namespace, capexec's default as root"
                };
                out.covered.push((format!("PrivateUsers={v}"), what.into()));
            }
            "WorkingDirectory" => match v.trim_start_matches('-') {
                "~" => out.skip(e, "~ (the user's home) is not in the view"),
                d => out.workdir = Some(d.to_owned()),
            },
            "ReadWritePaths" | "ReadWriteDirectories" => {
                for p in v.split_whitespace() {
                    out.path("read_write", p, e);
                }
            }
            "ReadOnlyPaths" | "ReadOnlyDirectories" => {
                for p in v.split_whitespace() {
                    out.path("read_only", p, e);
                }
            }
            "InaccessiblePaths" | "InaccessibleDirectories" => {
                for p in v.split_whitespace() {
                    out.path("inaccessible", p, e);
                }
            }
            "ExecPaths" => {
                for p in v.split_whitespace() {
                    out.path("executable", p, e);
                }
            }
            "BindReadOnlyPaths" | "BindPaths" => bind_paths(e, &mut out),
            "ConfigurationDirectory" => {
                for d in v.split_whitespace() {
                    let d = d.split(':').next().unwrap_or(d);
                    out.path("read_only", &format!("/etc/{d}"), e);
                }
            }
            "StateDirectory" | "CacheDirectory" | "LogsDirectory" | "RuntimeDirectory" => {
                let key = directory_key(&e.key);
                let names = out.fs.entry(key).or_default();
                for d in v.split_whitespace() {
                    // A `:` names a symlink systemd makes to it; capexec makes none.
                    // (irqbalance's unit writes `irqbalance/`: the same directory.)
                    let d = d.split(':').next().unwrap_or(d).trim_end_matches('/').to_owned();
                    if !names.contains(&d) {
                        names.push(d);
                    }
                }
                out.covered.push((
                    format!("{}={v}", e.key),
                    format!("filesystem.{key}: created owned by the service's user and writable (as root){}", if key == "runtime_directory" { ", removed when it stops" } else { "" }),
                ));
            }
            "StateDirectoryMode" | "CacheDirectoryMode" | "LogsDirectoryMode" | "RuntimeDirectoryMode" => {
                let key = directory_key(&e.key);
                match directory_mode(v) {
                    Some(m) => {
                        out.dir_modes.insert(key, m);
                        out.covered.push((format!("{}={v}", e.key), format!("filesystem.{key}_mode: the directory is given this mode, made or found")));
                    }
                    None => out.skip(e, "not a mode of permission bits and setgid (capexec sets no setuid or sticky bit on a service's directory)"),
                }
            }
            "DeviceAllow" => device_allow(e, &mut out),
            "PrivateNetwork" => out.net_none = yes(v),
            "IPAddressDeny" => match v.split_whitespace().collect::<Vec<_>>()[..] {
                [] => out.ip_deny_any = None,
                ["any"] | ["0.0.0.0/0", "::/0"] | ["::/0", "0.0.0.0/0"] => out.ip_deny_any = Some(format!("{}={v}", e.key)),
                _ => out.skip(e, "capexec's grants name what a service may reach, not what it may not: deny every address (IPAddressDeny=any) and list what it may reach in IPAddressAllow= or [broker.net] grants"),
            },
            "IPAddressAllow" if v.is_empty() => out.ip_allow.clear(),
            "IPAddressAllow" => match v.split_whitespace().map(ip_prefixes).collect::<Option<Vec<_>>>() {
                Some(p) => out.ip_allow.push((format!("{}={v}", e.key), p.concat())),
                None => out.skip(e, "not a list of addresses, prefixes or `localhost`, `link-local`, `multicast`, `any`: name what it may reach in [broker.net] grants"),
            },
            "PermissionsStartOnly" => out.permissions_start_only = yes(v).then(|| format!("{}={v}", e.key)),
            "MemoryDenyWriteExecute" => out.mdwe = yes(v),
            "UMask" => match u32::from_str_radix(v, 8) {
                Ok(m) if m <= 0o777 => {
                    out.umask = Some(format!("{m:04o}"));
                    out.covered.push((format!("{}={v}", e.key), "exec.umask: the mask the program and its commands start with".into()));
                }
                _ => out.skip(e, "not an octal mask of permission bits"),
            },
            "Nice" => match v.parse::<i32>() {
                Ok(n) if (-20..=19).contains(&n) => {
                    out.nice = Some(n);
                    out.covered.push((format!("{}={v}", e.key), "exec.nice: the nice value the program and all it starts run with".into()));
                }
                _ => out.skip(e, "not a nice value from -20 to 19"),
            },
            "OOMScoreAdjust" => match v.parse::<i32>() {
                Ok(n) if (-1000..=1000).contains(&n) => {
                    out.oom_score_adjust = Some(n);
                    let what = match n < 0 {
                        true => "exec.oom_score_adjust: the program's OOM score adjustment, inherited by all it starts (a negative one needs CAP_SYS_RESOURCE, as under systemd)",
                        false => "exec.oom_score_adjust: the program's OOM score adjustment, inherited by all it starts",
                    };
                    out.covered.push((format!("{}={v}", e.key), what.into()));
                }
                _ => out.skip(e, "not an OOM score adjustment from -1000 to 1000"),
            },
            "IgnoreSIGPIPE" => {
                out.sigpipe_default = !yes(v);
                let what = match out.sigpipe_default {
                    true => "SIGPIPE at its default, as capexec starts every service (atd's and cron's jobs see it so)",
                    false => "exec.ignore_sigpipe = true",
                };
                out.covered.push((format!("{}={v}", e.key), what.into()));
            }
            "CapabilityBoundingSet" => capability_bound(e, &mut out),
            "SecureBits" => secure_bits(e, &mut out),
            "AmbientCapabilities" => {
                for c in v.split_whitespace().filter(|c| !c.starts_with('~')) {
                    let c = c.to_ascii_uppercase();
                    if !out.keep.contains(&c) {
                        out.keep.push(c);
                    }
                }
            }
            "SystemCallFilter" => syscall_filter(e, &mut out, &mut filter_mode),
            "SystemCallErrorNumber" => match v {
                "kill" | "log" => out.action = Some(v.to_owned()),
                errno => out.errno = Some(errno.to_owned()),
            },
            "Type" => match v {
                "simple" | "exec" | "notify" | "forking" => out.service.push(("type", v.into())),
                "notify-reload" => {
                    out.service.push(("type", "notify".into()));
                    out.skip(e, "reloading by signal: type = \"notify\"; send the reload signal yourself");
                }
                "oneshot" => {
                    oneshot = true;
                    out.service.push(("type", "exec".into()));
                    out.covered.push((
                        format!("Type={v}"),
                        "type = \"exec\": the service ends when its program does, as a oneshot's does (`capexec status` shows how it ended); \
                         `capexec exec FILE` runs it to its end (from a systemd timer's unit, say)"
                            .into(),
                    ));
                }
                _ => out.skip(e, "no counterpart; running as type \"simple\""),
            },
            // Kept for a forking service only (see `render`); /var/run is /run.
            "PIDFile" => out.pid_file = Some(v.strip_prefix("/var/run/").map_or_else(|| v.to_owned(), |r| format!("/run/{r}"))),
            // systemd still reads these in [Service], where older units have them.
            "StartLimitBurst" | "StartLimitIntervalSec" | "StartLimitInterval" => unit_section(e, &mut out),
            "Restart" => match v {
                "no" | "on-failure" | "always" => out.service.push(("restart", v.into())),
                _ => {
                    out.service.push(("restart", "on-failure".into()));
                    out.skip(e, "capexec has no, on-failure and always; on-failure chosen");
                }
            },
            "TimeoutStopSec" | "TimeoutStartSec" | "TimeoutSec" => {
                let keys: &[&'static str] = match e.key.as_str() {
                    "TimeoutStopSec" => &["stop_timeout"],
                    "TimeoutStartSec" => &["ready_timeout"],
                    _ => &["ready_timeout", "stop_timeout"],
                };
                let d = match v {
                    "infinity" => Ok(std::time::Duration::ZERO),
                    v => capexec_decl::raw::parse_duration(v),
                };
                match d {
                    Ok(d) => {
                        // systemd waits without limit; capexec always has one.
                        let d = if d.is_zero() { NO_LIMIT } else { d };
                        for key in keys {
                            out.service.retain(|(k, _)| k != key);
                            out.service.push((key, capexec_decl::spec::format_duration(d)));
                        }
                        if d == NO_LIMIT {
                            out.covered.push((format!("{}={v}", e.key), format!("no limit to systemd: service.{} = \"1h\"", keys.join(" and service."))));
                        }
                    }
                    Err(err) => out.skip(e, err.to_string()),
                }
            }
            "RestartSec" | "WatchdogSec" => {
                let key = match e.key.as_str() {
                    "RestartSec" => "restart_delay",
                    _ => "watchdog",
                };
                match capexec_decl::raw::parse_duration(v) {
                    Ok(d) if d.is_zero() && key != "restart_delay" => out.skip(e, "0 means \"no limit\" to systemd; capexec's default applies"),
                    Ok(d) => {
                        out.service.push((key, capexec_decl::spec::format_duration(d)));
                        // The delay doubles after each failed start up to
                        // restart_delay_max, which must not be below it.
                        if key == "restart_delay" && d > RESTART_DELAY_MAX_DEFAULT {
                            out.service.push(("restart_delay_max", capexec_decl::spec::format_duration(d)));
                        }
                    }
                    Err(err) => out.skip(e, err.to_string()),
                }
            }
            "KillSignal" => out.service.push(("stop_signal", v.into())),
            "StandardInput" => match v {
                "null" => out.covered.push((
                    format!("{}={v}", e.key),
                    "the daemon gives every service /dev/null as standard input; `capexec exec` hands on its own, which systemd makes /dev/null".into(),
                )),
                _ => out.skip(e, "the daemon gives every service /dev/null as standard input; under systemd, set it on capexec's own unit (`capexec exec` hands its standard input on)"),
            },
            // capexec takes a notify service's messages from any of its
            // processes (by the sender's pid), which is NotifyAccess=all.
            "NotifyAccess" => match v {
                "all" => out.covered.push((
                    format!("{}={v}", e.key),
                    "every process of a type = \"notify\" service may send on its notification socket".into(),
                )),
                "none" => out.skip(e, "a type = \"notify\" service always gets a notification socket, and other types none"),
                _ => out.skip(e, "capexec takes notifications from every process of the service, not only its main process (as NotifyAccess=all)"),
            },
            "NonBlocking" => out.skip(
                e,
                "sockets capexec opens ([[preopen.listen]]) are handed over blocking, as systemd's are without it; under systemd, set it on capexec's own unit: `capexec exec` hands systemd's sockets on as they are",
            ),
            "ExecStopPost" => {
                let argv = exec_start(e, &vars, &mut out);
                match argv.as_slice() {
                    [rm, f, path] if rm.rsplit('/').next() == Some("rm") && f == "-f" => out.removed_at_stop.push((format!("{}={v}", e.key), path.clone())),
                    _ => out.skip(e, "capexec runs no commands after a stop"),
                }
            }
            "SuccessExitStatus" => {
                // Codes and signal names, space-separated; systemd's exit
                // status names (e.g. "TEMPFAIL") are not taken.
                let mut items = Vec::new();
                for t in v.split_whitespace() {
                    match t.parse::<u8>() {
                        Ok(n) => items.push(n.to_string()),
                        Err(_) if t.to_ascii_uppercase().starts_with("SIG") => items.push(q(&t.to_ascii_uppercase())),
                        Err(_) => out.skip(e, format!("`{t}`: only exit codes and signal names are taken")),
                    }
                }
                if !items.is_empty() {
                    out.service.push(("success_exit_status", format!("[{}]", items.join(", "))));
                }
            }
            "MemoryMax" | "MemoryLimit" => out.limits.push(("memory_max", v.into())),
            "TasksMax" if v.ends_with('%') => out.skip(e, "a percentage of the system's limit; give a number"),
            "TasksMax" => out.limits.push(("tasks_max", v.into())),
            "CPUWeight" => out.limits.push(("cpu_weight", v.into())),
            key if key.starts_with("Limit") => match RLIMITS.iter().find(|(k, _)| *k == key) {
                Some((_, name)) => match rlimit(name, v) {
                    Ok(value) => {
                        out.rlimits.insert(name, value);
                    }
                    Err(why) => out.skip(e, why),
                },
                None => out.skip(e, "an rlimit capexec does not know"),
            },
            key => match (ALWAYS.iter().find(|(k, _)| *k == key), NOT_MAPPED.iter().find(|(k, _)| *k == key)) {
                (Some((_, what)), _) if !what.is_empty() => out.covered.push((format!("{key}={v}"), (*what).to_owned())),
                (Some(_), _) => {}
                (None, Some((_, why))) => out.skip(e, *why),
                (None, None) => out.skip(e, "not mapped: capexec has no counterpart for this directive"),
            },
        }
    }
    starts_of(&starts, oneshot, &vars, &mut out);
    if out.argv.is_empty() {
        return Err(ImportError::NoExecStart(source.to_owned()));
    }
    ip_address_lists(&mut out);
    // systemd also starts a service from the socket unit of its name, once
    // that is enabled, and hands it the sockets (beanstalkd.socket): said,
    // where the unit names no sockets of its own.
    let own_socket = file.strip_suffix(".service").filter(|n| !n.contains('@')).map(|n| format!("{n}.socket"));
    if let Some(name) = own_socket.filter(|_| out.listen.is_empty()) {
        if let Some(a) = socket::read(out.unit_dir.as_deref(), &name).filter(|a| !a.listen.is_empty()) {
            let what: Vec<&str> = a.listen.iter().map(|l| l.address.as_str()).collect();
            out.skipped.push((
                format!("{name} ({})", a.path.display()),
                format!(
                    "the socket unit of its name: where it is enabled, systemd starts the service from it and hands it {}; capexec starts the service as it binds its own (to have capexec open them, declare them as [[preopen.listen]])",
                    what.join(", ")
                ),
            ));
        }
    }
    // A template's socket unit of the name before its `@` with Accept=yes
    // (tangd.socket for tangd@.service) starts an instance per connection,
    // the connection as its standard input and output: no counterpart in
    // capexec, but `capexec exec` hands its standard input and output on,
    // so systemd's socket unit can keep starting it.
    let accepting = file.strip_suffix("@.service").map(|n| format!("{n}.socket"));
    if let Some(name) = accepting {
        if let Some(a) = socket::read(out.unit_dir.as_deref(), &name).filter(|a| a.skipped.iter().any(|(k, _)| k.starts_with("Accept="))) {
            out.skipped.push((
                format!("{name} ({}) with Accept=yes", a.path.display()),
                "systemd starts an instance of this unit for each connection, the connection as its standard input and output; capexec has \
                 no instances per connection: keep systemd's socket unit and make this unit's ExecStart= `capexec exec FILE`, which hands \
                 its standard input and output on to the service"
                    .into(),
            ));
        }
    }
    // A pid file directly in /run is made and removed by capexec; one in a
    // runtime directory goes with the directory.
    for (assignment, path) in std::mem::take(&mut out.removed_at_stop) {
        let dir = std::path::Path::new(&path).parent().and_then(|d| d.strip_prefix("/run").ok()).map(|d| d.display().to_string());
        let runtime =
            out.fs.get("runtime_directory").is_some_and(|l| dir.as_ref().is_some_and(|d| l.iter().any(|r| d == r || d.starts_with(&format!("{r}/")))));
        if out.pid_file.as_deref() == Some(path.as_str()) && (dir.as_deref() == Some("") || runtime) {
            out.covered.push((assignment, "capexec removes the pid file (service.pid_file) when the service stops".into()));
        } else {
            out.skipped.push((assignment, "capexec runs no commands after a stop".into()));
        }
    }
    if let Some((sig, assignment, how)) = out.stop_by.take() {
        out.service.retain(|(k, _)| *k != "stop_signal");
        out.service.push(("stop_signal", sig.into()));
        out.covered.push((assignment, format!("service.stop_signal = \"{sig}\": {how}")));
    }
    // The unit's own checks come before its Exec lines.
    for (list, checks) in [("condition", std::mem::take(&mut out.unit_conditions)), ("start_pre", std::mem::take(&mut out.unit_asserts))] {
        if !checks.is_empty() {
            let rest = out.commands.remove(list).unwrap_or_default();
            out.commands.insert(list, checks.into_iter().chain(rest).collect());
        }
    }
    if let Some(assignment) = out.permissions_start_only.take() {
        // systemd's older spelling of `+` on every line but ExecStart=.
        for command in out.commands.values_mut().flatten() {
            command.2 = true;
        }
        let what = "the commands other than ExecStart= run as with the `+` prefix: privileged = true, on the host as root, outside the sandbox";
        out.covered.push((assignment, what.into()));
    }
    directories_from_commands(&mut out);
    systemd_timeouts(&mut out);
    // A forking service's pid file names its main process; any service's is
    // made writable (that file alone) and holds the host's pid, for host
    // tools (logrotate's `kill -USR1 $(cat ...)`).
    if let Some(p) = out.pid_file.take() {
        out.service.push(("pid_file", p));
    }
    if filter_mode == Some(false) || (filter_mode.is_none() && !out.deny.is_empty()) {
        // A deny list in systemd allows everything else; capexec starts from
        // the default allowlist and removes the denied calls.
        out.skipped.push((
            "SystemCallFilter=~...".into(),
            "systemd's deny list allowed every other syscall; capexec allows @system-service less the denied calls".into(),
        ));
        out.allow = vec!["@system-service".into()];
    }
    Ok(render(source, out))
}

fn render(source: &str, o: Out) -> String {
    let mut s = String::new();
    match o.dropins.as_slice() {
        [] => {
            let _ = writeln!(s, "# Imported from {source} by `capexec import`.");
        }
        d => {
            let plural = if d.len() > 1 { "s" } else { "" };
            let _ = writeln!(s, "# Imported from {source} and its drop-in{plural} {} by `capexec import`.", d.join(", "));
        }
    }
    let _ = writeln!(s, "# Review the notes at the end, then: capexec check FILE; capexec learn --check FILE --workload '...'");
    if let Some(d) = &o.description {
        let _ = writeln!(s, "description = {}", q(d));
    }
    let _ = writeln!(s, "\n[exec]\nargv = {}", list(&o.argv));
    match &o.user {
        _ if o.dynamic => {
            if let Some(u) = &o.user {
                let _ = writeln!(s, "# DynamicUser=yes with User={u}: the name is systemd's for the dynamic user; capexec's has none.");
            }
            let _ = writeln!(s, "user = \"dynamic\"");
        }
        Some(u) if o.started_as_root => {
            let _ = writeln!(s, "# ExecStart=! : systemd started it as root; User={u} is the user it drops to itself (its");
            let _ = writeln!(s, "# directories are that user's: filesystem.directories_user).");
            let _ = writeln!(s, "user = \"root\"");
        }
        Some(u) => {
            let _ = writeln!(s, "user = {}", q(u));
        }
        None => {
            let _ = writeln!(s, "# systemd ran it as root (no User=). capexec runs it as root without any capability;");
            let _ = writeln!(s, "# if the program drops to a user of its own, name that user here instead.");
            let _ = writeln!(s, "user = \"root\"");
        }
    }
    if let Some(g) = o.group.as_ref().filter(|_| !o.dynamic) {
        let _ = writeln!(s, "group = {}", q(g));
    }
    if !o.groups.is_empty() {
        let _ = writeln!(s, "supplementary_groups = {}", list(&o.groups));
    }
    if let Some(w) = &o.workdir {
        let _ = writeln!(s, "working_directory = {}", q(w));
    }
    if o.mdwe {
        let _ = writeln!(s, "memory_deny_write_execute = true");
    }
    if let Some(m) = &o.umask {
        let _ = writeln!(s, "umask = {}", q(m));
    }
    if let Some(n) = o.nice {
        let _ = writeln!(s, "nice = {n}");
    }
    if let Some(n) = o.oom_score_adjust {
        let _ = writeln!(s, "oom_score_adjust = {n}");
    }
    if !o.sigpipe_default {
        let _ = writeln!(s, "# systemd ignores SIGPIPE in a unit's processes unless IgnoreSIGPIPE=no.\nignore_sigpipe = true");
    }
    if !o.env.is_empty() {
        let _ = writeln!(s, "\n[exec.environment]");
        for (k, v) in &o.env {
            let _ = writeln!(s, "{} = {}", q(k), q(v));
        }
    }
    let lists = ["condition", "start_pre", "start_post", "reload", "stop"].into_iter().filter_map(|k| o.commands.get(k).map(|l| (k, l)));
    for (key, argv, ignore, privileged) in lists.flat_map(|(k, l)| l.iter().map(move |(a, i, p)| (k, a, i, p))) {
        let _ = writeln!(s, "\n[[exec.{key}]]\nargv = {}", list(argv));
        if *ignore {
            let _ = writeln!(s, "ignore_failure = true");
        }
        if *privileged {
            let _ = writeln!(s, "# systemd ran it with full privileges; capexec runs it on the host as root, outside the sandbox.");
            let _ = writeln!(s, "privileged = true");
        }
    }
    let mut fs = o.fs.clone();
    // A directory capexec makes for the service (RuntimeDirectory= and the
    // others) is writable in the view already; a path directive naming it
    // (often through /var/run) would list it twice.
    let mut made: Vec<String> = fs.get("tmpfs").cloned().unwrap_or_default();
    for (key, base) in [("runtime_directory", "/run"), ("state_directory", "/var/lib"), ("cache_directory", "/var/cache"), ("logs_directory", "/var/log")] {
        made.extend(fs.get(key).into_iter().flatten().map(|d| format!("{base}/{d}")));
    }
    for kind in ["read_only", "read_write"] {
        if let Some(v) = fs.get_mut(kind) {
            v.retain(|p| !made.iter().any(|t| t == p.trim_start_matches('-')));
        }
    }
    fs.retain(|_, v| !v.is_empty());
    if let Some(w) = &o.workdir {
        // In the view already: below a listed path, a directory capexec
        // makes (stubby's WorkingDirectory=/run/stubby, its RuntimeDirectory=,
        // listed twice failed `check`), /usr or /etc.
        let w_path = std::path::Path::new(w);
        let listed = ["read_only", "read_write", "executable"].into_iter().filter_map(|k| fs.get(k)).flatten();
        let covered = w == "/" || listed.chain(&made).map(String::as_str).chain(["/usr", "/etc"]).any(|p| w_path.starts_with(p.trim_start_matches('-')));
        if !covered {
            fs.entry("read_only").or_default().push(w.clone());
        }
    }
    if !fs.is_empty() {
        let _ = writeln!(s, "\n[filesystem]");
        for (k, v) in &fs {
            let _ = writeln!(s, "{k} = {}", list(v));
        }
        if o.proc_full {
            let _ = writeln!(
                s,
                "# It writes a host-wide part of /proc (read_write above): the full /proc has it (its own pid\n\
                 # namespace's processes, /proc/sys read-only but where listed writable).\nproc = \"full\""
            );
        }
        for (k, m) in &o.dir_modes {
            match fs.contains_key(k) {
                true => writeln!(s, "{k}_mode = {}", q(m)),
                // systemd ignores a mode for no directory; so does the import.
                false => writeln!(s, "# {k}_mode = {}: no {k} to apply it to", q(m)),
            }
            .ok();
        }
        let makes = ["runtime_directory", "state_directory", "cache_directory", "logs_directory"].iter().any(|k| fs.contains_key(k));
        let owner = o.user.as_ref().filter(|_| o.started_as_root).or(o.dirs_owner.as_ref());
        if let Some(u) = owner.filter(|_| makes && !o.dynamic) {
            let _ = writeln!(s, "directories_user = {}", q(u));
        }
    }
    let _ = writeln!(s, "\n[namespaces]");
    if o.private_users {
        let _ = writeln!(s, "user = true");
    }
    if o.net_none {
        let _ = writeln!(s, "net = \"none\"");
    } else {
        let _ = writeln!(s, "# systemd gave it the host's network (no PrivateNetwork=). Landlock still refuses every TCP");
        let _ = writeln!(s, "# bind and connect until allowed: declare what it listens on ([[preopen.listen]], or");
        let _ = writeln!(s, "# [broker.net] bind with net = \"none\", or landlock.bind_tcp) and where it connects.");
        let _ = writeln!(s, "net = \"host\"");
    }
    if let Some(grants) = &o.ip_guard {
        let list = grants.iter().map(|g| q(g)).collect::<Vec<_>>().join(", ");
        let to = if grants.is_empty() { "no address" } else { "the addresses of IPAddressAllow=, any port" };
        let _ = writeln!(s, "\n[broker.net]\n# IPAddressDeny=any: the network guard holds every IP socket of the service to {to}.\nguard = true");
        if !grants.is_empty() {
            let _ = writeln!(s, "connect = [{list}]\nbind = [{list}]");
        }
    }
    // Ambient capabilities outside the bounding set are dropped by systemd too.
    let keep: Vec<String> = o.keep.iter().filter(|c| o.bound.as_ref().is_none_or(|b| b.contains(*c))).cloned().collect();
    if !keep.is_empty() || o.bound.is_some() {
        let _ = writeln!(s, "\n[capabilities]");
    }
    if let Some(b) = &o.bound {
        let _ = writeln!(s, "# CapabilityBoundingSet=: the most the service may be given (`capexec learn` starts a root");
        let _ = writeln!(s, "# service with these); it runs with `keep` only.");
        let _ = writeln!(s, "bound = {}", list(&b.iter().cloned().collect::<Vec<_>>()));
    }
    if !keep.is_empty() {
        let _ = writeln!(s, "keep = {}", list(&keep));
    }
    if !o.allow.is_empty() || !o.deny.is_empty() || o.errno.is_some() || o.action.is_some() {
        let _ = writeln!(s, "\n[seccomp]");
        if !o.allow.is_empty() {
            let _ = writeln!(s, "allow = {}", list(&o.allow));
        }
        if !o.deny.is_empty() {
            let _ = writeln!(s, "deny = {}", list(&o.deny));
        }
        if let Some(a) = &o.action {
            let _ = writeln!(s, "action = {}", q(a));
        }
        if let Some(e) = &o.errno {
            let _ = writeln!(s, "errno = {}", q(e));
        }
    }
    if !o.rlimits.is_empty() {
        let _ = writeln!(s, "\n[rlimits]");
        for (k, value) in &o.rlimits {
            let _ = writeln!(s, "{k} = {value}");
        }
    }
    if !o.service.is_empty() {
        let _ = writeln!(s, "\n[service]");
        for (k, v) in &o.service {
            // The one number among strings (durations, names).
            // (Already TOML: a number, an array.)
            let value = if matches!(*k, "start_limit_burst" | "success_exit_status") { v.clone() } else { q(v) };
            let _ = writeln!(s, "{k} = {value}");
        }
    }
    if !o.limits.is_empty() {
        let _ = writeln!(s, "\n[limits]");
        for (k, v) in &o.limits {
            let value = match v.parse::<u64>() {
                Ok(n) => n.to_string(),
                Err(_) => q(v),
            };
            let _ = writeln!(s, "{k} = {value}");
        }
    }
    for l in &o.listen {
        let _ = writeln!(s, "\n[[preopen.listen]]\naddress = {}\nname = {}", q(&l.address), q(&l.name));
        if let Some(m) = &l.socket_mode {
            let _ = writeln!(s, "socket_mode = {}", q(m));
        }
    }
    if !o.covered.is_empty() {
        let _ = writeln!(s, "\n# Covered by capexec without a setting:");
        for (a, what) in &o.covered {
            let _ = writeln!(s, "#   {a}: {what}");
        }
    }
    if !o.stricter.is_empty() {
        let _ = writeln!(s, "\n# Stricter under capexec than in the unit (check that the service still works):");
        for (a, what) in &o.stricter {
            let _ = writeln!(s, "#   {a}: {what}");
        }
    }
    if !o.skipped.is_empty() {
        let _ = writeln!(s, "\n# Not mapped:");
        for (a, why) in &o.skipped {
            let _ = writeln!(s, "#   {a}: {why}");
        }
    }
    s
}

/// An rlimit value as capexec writes it: a number or "infinity".
/// systemd's `LimitX=SOFT[:HARD]` as the TOML value of capexec's
/// `rlimits.x`: sizes may carry a 1024-based suffix (mpd's
/// `LimitMEMLOCK=64M`), `LimitCPU=` is seconds and `LimitRTTIME=`
/// microseconds, each also as a time span (`1h`); anything else is a
/// number or `infinity`. An error says why it was left out.
fn rlimit(name: &str, v: &str) -> Result<String, String> {
    let one = |v: &str| -> Result<String, String> {
        let v = v.trim();
        if v == "infinity" {
            return Ok(q("infinity"));
        }
        if let Ok(n) = v.parse::<u64>() {
            return Ok(n.to_string());
        }
        let bad = || format!("`{v}` is not a limit capexec can read: write a number of {}", unit_of(name));
        let n = match name {
            "as" | "core" | "data" | "fsize" | "memlock" | "msgqueue" | "rss" | "stack" => {
                let (digits, suffix) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
                let shift = match suffix.trim_end_matches('B').trim_end_matches("i") {
                    "K" => 10,
                    "M" => 20,
                    "G" => 30,
                    "T" => 40,
                    "P" => 50,
                    "E" => 60,
                    _ => return Err(bad()),
                };
                digits.parse::<u64>().ok().and_then(|n| n.checked_mul(1u64 << shift)).ok_or_else(bad)?
            }
            "cpu" => capexec_decl::raw::parse_duration(v).map_err(|_| bad())?.as_secs(),
            "rttime" => u64::try_from(capexec_decl::raw::parse_duration(v).map_err(|_| bad())?.as_micros()).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        Ok(n.to_string())
    };
    match v.split_once(':') {
        Some((soft, hard)) => Ok(format!("{{ soft = {}, hard = {} }}", one(soft)?, one(hard)?)),
        None => one(v),
    }
}

/// What a number in `rlimits.NAME` counts.
fn unit_of(name: &str) -> &'static str {
    match name {
        "as" | "core" | "data" | "fsize" | "memlock" | "msgqueue" | "rss" | "stack" => "bytes",
        "cpu" => "seconds",
        "rttime" => "microseconds",
        _ => "its own units, or \"infinity\"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifiers_expand_for_the_instance_and_the_system_directories() {
        let (t, left, _) = expand_specifiers("%i %I %p %n %N %j %t/%p %S %% 100%% %h %u", "postgresql@.service", Some("15-main"));
        assert_eq!(t, "15-main 15/main postgresql postgresql@15-main.service postgresql@15-main postgresql /run/postgresql /var/lib % 100% %h %u");
        assert_eq!(left, ["%h", "%u"]);
        let (t, left, host) = expand_specifiers("HOSTNAME=%H %l", "freeradius.service", None);
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
        assert_eq!(t, format!("HOSTNAME={name} {}", name.split('.').next().unwrap()));
        assert!(left.is_empty() && host == ["%H", "%l"], "{left:?} {host:?}");
        let (t, _, _) = expand_specifiers("%n %p %i", "nginx.service", None);
        assert_eq!(t, "nginx.service nginx ");
        assert_eq!(unescape("a-b\\x2dc"), "a/b-c");
        assert_eq!(unescape("\\xZZ-"), "\\xZZ/");
    }

    /// SecureBits=noroot-locked (haveged) is what no_new_privs gives every
    /// service: covered, where it was "not mapped"; the bits capexec does
    /// not set are said with what it does instead.
    #[test]
    fn securebits_noroot_is_no_new_privs() {
        let unit = UnitText {
            path: "/lib/systemd/system/h.service".into(),
            text: "[Service]\nExecStart=/usr/sbin/haveged\nSecureBits=noroot-locked keep-caps\n".into(),
        };
        let decl = convert(&unit, &[], None).unwrap();
        assert!(decl.contains("#   SecureBits=noroot-locked: no_new_privs, always set"), "{decl}");
        assert!(decl.contains("#   SecureBits=keep-caps: capexec sets no keep-caps bit"), "{decl}");
        assert!(!decl.contains("no counterpart"), "{decl}");
    }

    /// A oneshot (pg_dump@.service: a privileged ExecStartPre=, then a dump
    /// and an expiry of old dumps) runs its ExecStart= lines one after
    /// another: all but the last as start_pre commands after the unit's own,
    /// the last as the program, of type "exec"; the file passes check. It was
    /// "not mapped", its second ExecStart= dropped. Elsewhere a second
    /// ExecStart= is still said.
    #[test]
    fn a_oneshot_runs_its_starts_in_order() {
        let t = |text: &str| UnitText { path: "/lib/systemd/system/pg_dump@.service".into(), text: text.into() };
        let unit = "[Service]\nType=oneshot\nUser=postgres\nEnvironment=\"KEEP=3\"\nExecStartPre=+/usr/bin/pg_backupcluster %i createdirectory\n\
                    ExecStart=/usr/bin/pg_backupcluster %i dump\nExecStart=-/usr/bin/pg_backupcluster %i expiredumps $KEEP\n";
        let decl = convert(&t(unit), &[], Some("15-main")).unwrap();
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let spec = capexec_decl::from_text("pg_dump", &decl, &ctx).unwrap_or_else(|e| panic!("{e}\n{decl}"));
        assert_eq!(spec.exec.argv, ["/usr/bin/pg_backupcluster", "15-main", "expiredumps", "3"], "{decl}");
        let pre: Vec<(Vec<String>, bool, bool)> = spec.exec.start_pre.iter().map(|c| (c.argv.clone(), c.ignore_failure, c.privileged)).collect();
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pre,
            [
                (words(&["/usr/bin/pg_backupcluster", "15-main", "createdirectory"]), false, true),
                (words(&["/usr/bin/pg_backupcluster", "15-main", "dump"]), false, false)
            ],
            "{decl}"
        );
        assert!(decl.contains("type = \"exec\"") && decl.contains("#   Type=oneshot: type = \"exec\""), "{decl}");
        assert!(!decl.contains("second ExecStart") && !decl.contains("not mapped"), "{decl}");
        let decl = convert(&t(&unit.replace("Type=oneshot\n", "")), &[], Some("15-main")).unwrap();
        assert!(decl.contains("ExecStart=-/usr/bin/pg_backupcluster 15-main expiredumps $KEEP: a second ExecStart"), "{decl}");
        assert!(decl.contains("argv = [\"/usr/bin/pg_backupcluster\", \"15-main\", \"dump\"]"), "{decl}");
    }

    /// A working directory capexec makes (stubby's WorkingDirectory= is its
    /// RuntimeDirectory=) is in the view already: it is not listed again,
    /// which failed `check`. One outside everything listed still is.
    #[test]
    fn a_working_directory_capexec_makes_is_not_listed_again() {
        let t = |text: &str| UnitText { path: "/lib/systemd/system/s.service".into(), text: text.into() };
        let ctx = capexec_decl::Context { rootless: false, uid: 0, gid: 0, unit_dir: None };
        let decl =
            convert(&t("[Service]\nWorkingDirectory=/run/stubby\nExecStart=/usr/bin/stubby\nRuntimeDirectory=stubby\nDynamicUser=true\n"), &[], None).unwrap();
        assert!(decl.contains("working_directory = \"/run/stubby\"") && !decl.contains("read_only"), "{decl}");
        capexec_decl::from_text("s", &decl, &ctx).unwrap();
        let decl = convert(&t("[Service]\nWorkingDirectory=/srv/s\nExecStart=/usr/bin/s\nRuntimeDirectory=s\n"), &[], None).unwrap();
        assert!(decl.contains("read_only = [\"/srv/s\"]"), "{decl}");
    }

    /// A drop-in applies after the unit as systemd applies it: an empty
    /// `ExecStart=` resets the command before the drop-in's own (the
    /// override `systemctl edit` makes), its other lines add up; the header
    /// names it, and a syntax error names the file it is in.
    #[test]
    fn drop_ins_apply_after_the_unit() {
        let t = |path: &str, text: &str| UnitText { path: path.into(), text: text.into() };
        let unit = t("/lib/systemd/system/x.service", "[Service]\nExecStart=/usr/bin/sleep 100\nUser=daemon\n");
        let dropin = t("/etc/systemd/system/x.service.d/override.conf", "[Service]\nExecStart=\nExecStart=/usr/bin/sleep 5\nEnvironment=A=%n\n");
        let decl = convert(&unit, std::slice::from_ref(&dropin), None).unwrap();
        assert!(decl.starts_with("# Imported from /lib/systemd/system/x.service and its drop-in /etc/systemd/system/x.service.d/override.conf by"), "{decl}");
        assert!(decl.contains("argv = [\"/usr/bin/sleep\", \"5\"]") && decl.contains("user = \"daemon\"") && decl.contains("\"A\" = \"x.service\""), "{decl}");
        assert!(!decl.contains("second ExecStart"), "{decl}");
        let bad = t("/etc/systemd/system/x.service.d/bad.conf", "[Service\n");
        let e = convert(&unit, &[dropin, bad], None).unwrap_err();
        assert!(e.to_string().starts_with("/etc/systemd/system/x.service.d/bad.conf:"), "{e}");
    }
}
