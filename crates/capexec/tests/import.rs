//! `capexec import` on Debian's own unit files for nginx, redis-server,
//! memcached and unbound: every result is a valid declaration, carries over
//! what the unit says, and notes what it leaves out; the imported redis unit,
//! with the listening address the notes ask for, runs and answers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn capexec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capexec"))
}

fn import(name: &str) -> String {
    let unit = Path::new("/lib/systemd/system").join(format!("{name}.service"));
    assert!(unit.exists(), "{} is missing: scripts/install-test-deps.sh installs Debian's packages", unit.display());
    let o = capexec().arg("import").arg(&unit).output().unwrap();
    assert!(o.status.success(), "import {name}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("capexec-import-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `capexec import` of a unit file with `text`.
fn import_text(tag: &str, text: &str) -> String {
    let d = dir(tag);
    let unit = d.join(format!("{tag}.service"));
    std::fs::write(&unit, text).unwrap();
    let o = capexec().arg("import").arg(&unit).output().unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// A socket unit the service requires, next to it, becomes its preopened
/// sockets (socket activation), each with the socket's mode and name.
#[test]
fn required_socket_units_become_preopens() {
    let d = dir("sockets");
    std::fs::write(
        d.join("t.socket"),
        "[Socket]\nListenStream=/run/t/t.sock\nListenDatagram=127.0.0.1:5514\nSocketMode=0660\nFileDescriptorName=t-fds\nBacklog=5\n",
    )
    .unwrap();
    let unit = d.join("t.service");
    std::fs::write(&unit, "[Unit]\nRequires=t.socket\n[Service]\nExecStart=/usr/bin/sleep 100\nUser=nobody\n").unwrap();
    let o = capexec().arg("import").arg(&unit).output().unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let decl = String::from_utf8(o.stdout).unwrap();
    for want in [
        "[[preopen.listen]]\naddress = \"unix:/run/t/t.sock\"\nname = \"t-fds\"\nsocket_mode = \"0660\"\n",
        "[[preopen.listen]]\naddress = \"udp:127.0.0.1:5514\"\nname = \"t-fds-2\"\n\n",
        "#   Requires=t.socket: t.socket (",
        "#   t.socket: Backlog=5: not mapped",
    ] {
        assert!(decl.contains(want), "missing {want:?} in:\n{decl}");
    }
    check(&decl, "sockets");
}

fn check(decl: &str, tag: &str) {
    let d = dir(tag);
    let f = d.join(format!("{tag}.svc"));
    std::fs::write(&f, decl).unwrap();
    let o = capexec().arg("check").arg(&f).output().unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "capexec check of the imported {tag}:\n{}\n{decl}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn debians_units_import_into_valid_declarations() {
    for name in ["nginx", "redis-server", "memcached", "unbound"] {
        check(&import(name), name);
    }
    let redis = import("redis-server");
    for want in [
        "argv = [\"/usr/bin/redis-server\", \"/etc/redis/redis.conf\", \"--supervised\", \"systemd\", \"--daemonize\", \"no\"]",
        "user = \"redis\"",
        "group = \"redis\"",
        "\"-/var/lib/redis\"",
        "runtime_directory = [\"redis\"]",
        "nofile = 65535",
        "type = \"notify\"",
        "restart = \"always\"",
        "allow = [\"@system-service\"]",
        "\"@resources\"",
        "\"setuid\"",
        "#   ProtectSystem=strict: ",
        "memory_deny_write_execute = true",
        "#   UMask=007: ",
        "#   RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX: ",
    ] {
        assert!(redis.contains(want), "redis-server import lacks {want}:\n{redis}");
    }
    // /var/run/redis is the RuntimeDirectory, made by capexec: not also a bind of its own.
    assert!(!redis.contains("\"-/run/redis\""), "{redis}");
    let nginx = import("nginx");
    assert!(nginx.contains("type = \"forking\"") && nginx.contains("pid_file = \"/run/nginx.pid\""), "{nginx}");
    assert!(nginx.contains("[[exec.start_pre]]\nargv = [\"/usr/sbin/nginx\", \"-t\", \"-q\", \"-g\", \"daemon on; master_process on;\"]\n"), "{nginx}");
    assert!(nginx.contains("user = \"root\""), "{nginx}");
    let memcached = import("memcached");
    assert!(memcached.contains("argv = [\"/usr/share/memcached/scripts/systemd-memcached-wrapper\", \"/etc/memcached.conf\"]"), "{memcached}");
    assert!(memcached.contains("#   CapabilityBoundingSet=CAP_SETGID CAP_SETUID CAP_SYS_RESOURCE: "), "{memcached}");
    // ExecStart=! (chrony): root, and its directories are User='s.
    let chrony = import("chrony");
    assert!(chrony.contains("user = \"root\"") && chrony.contains("directories_user = \"_chrony\""), "{chrony}");
    let unbound = import("unbound");
    assert!(unbound.contains("argv = [\"/usr/sbin/unbound\", \"-d\", \"-p\"]"), "{unbound}");
    assert!(unbound.contains("$DAEMON_OPTS"), "the unexpanded variable is noted:\n{unbound}");
    assert!(unbound.contains("argv = [\"/usr/libexec/unbound-helper\", \"chroot_setup\"]\nignore_failure = true\n"), "{unbound}");
}

/// What import made wrong before (issue 19): a dynamic user became root, a
/// restart delay above the default maximum made a file that failed `check`,
/// [Unit] dependencies and conditions vanished without a note, and
/// ProtectSystem=full was called covered though capexec is stricter.
#[test]
fn dynamic_users_long_restart_delays_unit_relations_and_protect_system() {
    let decl = import_text(
        "relations",
        "[Unit]\nDescription=t\nRequires=t.socket\nWants=other.service\nAfter=network.target\nConditionPathExists=/etc/t\nRequiresMountsFor=/var/log/t\n\
         StartLimitBurst=3\nStartLimitIntervalSec=2min\n\
         [Service]\nExecStart=/usr/bin/sleep 100\nDynamicUser=yes\nUser=t\nGroup=t\nRestartSec=1min\nProtectSystem=full\nSuccessExitStatus=143 SIGKILL TEMPFAIL\n",
    );
    for want in [
        "success_exit_status = [143, \"SIGKILL\"]",
        "#   SuccessExitStatus=143 SIGKILL TEMPFAIL: `TEMPFAIL`: only exit codes and signal names are taken",
        "user = \"dynamic\"",
        "restart_delay = \"1min\"",
        "restart_delay_max = \"1min\"",
        "start_limit_burst = 3",
        "start_limit_interval = \"2min\"",
        "#   Requires=t.socket: no socket unit t.socket found next to the unit or in systemd's unit directories: declare what it listens on as [[preopen.listen]]",
        "#   Wants=other.service: capexec starts each service on its own",
        "#   After=network.target: no start ordering",
        "#   RequiresMountsFor=/var/log/t: capexec waits for no mount: mount these before the start",
        "#   ConditionPathExists=/etc/t: [[exec.condition]] with privileged = true",
        "# Stricter under capexec than in the unit",
        "#   ProtectSystem=full: the view is read-only except the declared writable paths",
    ] {
        assert!(decl.contains(want), "missing {want:?} in:\n{decl}");
    }
    assert!(!decl.contains("user = \"root\"") && !decl.contains("group = \"t\""), "{decl}");
    check(&decl, "relations");
}

/// systemd's limits in its own units: sizes with a 1024-based suffix
/// (mpd's `LimitMEMLOCK=64M` made a file that failed `check`), CPU time in
/// seconds and real-time in microseconds, each also as a time span.
#[test]
fn limits_in_systemds_units() {
    let decl = import_text(
        "limits-units",
        "[Service]\nExecStart=/usr/bin/sleep 100\nLimitMEMLOCK=64M\nLimitSTACK=8M:infinity\nLimitCORE=1KiB\nLimitCPU=1h\nLimitRTTIME=infinity\n\
         LimitNOFILE=1024:4096\nLimitNPROC=12x\n",
    );
    for want in [
        "memlock = 67108864",
        "stack = { soft = 8388608, hard = \"infinity\" }",
        "core = 1024",
        "cpu = 3600",
        "rttime = \"infinity\"",
        "nofile = { soft = 1024, hard = 4096 }",
        "#   LimitNPROC=12x: `12x` is not a limit capexec can read",
    ] {
        assert!(decl.contains(want), "missing {want:?} in:\n{decl}");
    }
    check(&decl, "limits-units");
}

/// systemd still reads the start limit in [Service], where older units
/// (dnsdist's) have it; it means there what it means in [Unit].
#[test]
fn start_limits_in_the_service_section() {
    let decl = import_text("limits-service", "[Service]\nExecStart=/usr/bin/sleep 100\nStartLimitBurst=4\nStartLimitInterval=30\n");
    assert!(decl.contains("start_limit_burst = 4") && decl.contains("start_limit_interval = \"30s\""), "{decl}");
    let off = import_text("limits-off", "[Service]\nExecStart=/usr/bin/sleep 100\nStartLimitInterval=0\n");
    assert!(off.contains("#   StartLimitInterval=0: 0 turns systemd's start limit off"), "{off}");
    check(&decl, "limits-service");
}

/// systemd's timeouts come along: the unit's (`infinity` and 0 are no limit
/// there, an hour here; TimeoutSec= sets both), else systemd's defaults of
/// 90 s rather than capexec's shorter ones (squid ends its clients'
/// transfers for 30 s after SIGTERM).
#[test]
fn timeouts_are_systemds() {
    let none = import_text("timeouts-none", "[Service]\nType=notify\nExecStart=/usr/bin/sleep 100\n");
    assert!(none.contains("stop_timeout = \"90s\"") && none.contains("ready_timeout = \"90s\"") && none.contains("systemd's defaults"), "{none}");
    check(&none, "timeouts-none");
    let simple = import_text("timeouts-simple", "[Service]\nExecStart=/usr/bin/sleep 100\nTimeoutStopSec=5\n");
    assert!(simple.contains("stop_timeout = \"5s\"") && !simple.contains("ready_timeout"), "{simple}");
    let both = import_text("timeouts-both", "[Service]\nType=forking\nExecStart=/usr/bin/sleep 100\nTimeoutSec=infinity\nTimeoutStopSec=2min\n");
    assert!(
        both.contains("ready_timeout = \"1h\"") && both.contains("stop_timeout = \"2min\"") && !both.lines().any(|l| l == "stop_timeout = \"1h\""),
        "{both}"
    );
    assert!(both.contains("#   TimeoutSec=infinity: no limit to systemd"), "{both}");
    check(&both, "timeouts-both");
    let redis = import_text("timeouts-zero", "[Service]\nExecStart=/usr/bin/sleep 100\nTimeoutStopSec=0\n");
    assert!(redis.contains("stop_timeout = \"1h\""), "{redis}");
}

/// BindReadOnlyPaths= and BindPaths=: a path bound at its place is in the
/// view (read-only, writable); /dev/log bound into a chroot (haproxy's unit)
/// is a further place of capexec's syslog socket; one path bound onto
/// another is not mapped, and said so.
#[test]
fn bind_paths_map_to_the_view_and_the_syslog_socket() {
    let d = import_text(
        "binds",
        "[Service]\nExecStart=/usr/bin/sleep 100\nBindReadOnlyPaths=/dev/log:/srv/jail/dev/log -/etc/ssl/certs /dev/log\n\
         BindPaths=/var/spool/x:/var/spool/x:rbind /srv/a:/srv/b\n",
    );
    for want in [
        "syslog_sockets = [\"/srv/jail/dev/log\"]",
        "read_only = [\"-/etc/ssl/certs\"]",
        "read_write = [\"/var/spool/x\"]",
        "#   BindPaths=/var/spool/x:/var/spool/x:rbind /srv/a:/srv/b: /srv/a:/srv/b bound onto another path",
        "#   BindReadOnlyPaths=/dev/log:/srv/jail/dev/log -/etc/ssl/certs /dev/log: filesystem.syslog_sockets: capexec's syslog socket (the service's /dev/log) there too; filesystem.read_only; /dev/log is capexec's",
    ] {
        assert!(d.contains(want), "{want}\n{d}");
    }
    check(&d, "binds");
}

/// ExecStopPost= that removes the pid file capexec makes (privoxy's
/// `rm -f $PIDFILE`) is what capexec does at a stop; other commands are
/// not run, and said so.
#[test]
fn a_stop_post_removing_the_pid_file_is_covered() {
    let d = import_text(
        "stoppost",
        "[Service]\nType=forking\nEnvironment=PIDFILE=/run/x.pid\nPIDFile=/run/x.pid\nExecStart=/usr/bin/sleep 100\n\
         ExecStopPost=/bin/rm -f $PIDFILE\nExecStopPost=/bin/rm -f /var/lib/x/state\nExecStopPost=-/usr/lib/x/helper remove\n",
    );
    for want in [
        "#   ExecStopPost=/bin/rm -f $PIDFILE: capexec removes the pid file (service.pid_file) when the service stops",
        "#   ExecStopPost=/bin/rm -f /var/lib/x/state: capexec runs no commands after a stop",
        "#   ExecStopPost=-/usr/lib/x/helper remove: capexec runs no commands after a stop",
    ] {
        assert!(d.contains(want), "{want}\n{d}");
    }
    check(&d, "stoppost");
}

/// StandardInput=null is what the daemon gives every service, and is said
/// to be covered; other standard inputs and NonBlocking= are not mapped,
/// each with where to set it instead.
#[test]
fn standard_input_and_nonblocking_are_said_what_they_become() {
    let d = import_text("stdin", "[Service]\nExecStart=/usr/bin/sleep 100\nStandardInput=null\nNonBlocking=yes\n");
    let covered = d.split("# Not mapped:").next().unwrap();
    assert!(covered.contains("#   StandardInput=null: the daemon gives every service /dev/null as standard input"), "{d}");
    assert!(d.contains("#   NonBlocking=yes: sockets capexec opens ([[preopen.listen]]) are handed over blocking") && !d.contains("no counterpart"), "{d}");
    let tty = import_text("stdin-tty", "[Service]\nExecStart=/usr/bin/sleep 100\nStandardInput=tty\n");
    assert!(tty.split("# Not mapped:").nth(1).is_some_and(|n| n.contains("#   StandardInput=tty: the daemon gives every service /dev/null")), "{tty}");
    check(&d, "stdin");
}

/// A command without a path (atd's `ExecStartPre=-find ...`) is found where
/// systemd finds it, and said so; one found nowhere is named.
#[test]
fn commands_without_a_path_are_found_where_systemd_finds_them() {
    let d = import_text("bare", "[Service]\nExecStartPre=-find /var/spool -name x\nExecStart=/usr/bin/sleep 100\nExecReload=nosuchcommand-capexec\n");
    assert!(
        d.contains("argv = [\"/usr/bin/find\", \"/var/spool\"") && d.contains("#   ExecStartPre=find: /usr/bin/find on this host, where systemd's search path"),
        "{d}"
    );
    assert!(d.contains("`nosuchcommand-capexec` is not in systemd's search path"), "{d}");
    let atd = import("atd");
    check(&atd, "atd");
}

/// The socket unit of the service's name (beanstalkd.socket), which systemd
/// starts the service from where it is enabled, is named with what it
/// listens on; the service binds its own under capexec.
#[test]
fn the_socket_unit_of_its_name_is_said() {
    let d = dir("own-socket");
    std::fs::write(d.join("queue.socket"), "[Socket]\nListenStream=127.0.0.1:11300\n").unwrap();
    std::fs::write(d.join("queue.service"), "[Service]\nExecStart=/usr/bin/sleep 100\n").unwrap();
    let o = capexec().arg("import").arg(d.join("queue.service")).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let not_mapped = text.split("# Not mapped:").nth(1).unwrap_or_default();
    assert!(not_mapped.contains("queue.socket (") && not_mapped.contains("hands it tcp:127.0.0.1:11300"), "{text}");
    assert!(!text.contains("[[preopen.listen]]\naddress"), "{text}");
    check(&text, "own-socket");
}

/// A template whose socket unit (tangd.socket for tangd@.service) has
/// Accept=yes, one instance per connection: import says how to keep that
/// under systemd, since capexec has no instances per connection.
#[test]
fn an_accepting_socket_unit_of_a_template_is_said() {
    let d = dir("accepting-socket");
    std::fs::write(d.join("echo.socket"), "[Socket]\nListenStream=127.0.0.1:7\nAccept=yes\n").unwrap();
    std::fs::write(d.join("echo@.service"), "[Service]\nExecStart=/usr/bin/cat\nStandardInput=socket\n").unwrap();
    let o = capexec().arg("import").arg(d.join("echo@.service")).args(["--instance", "x"]).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let not_mapped = text.split("# Not mapped:").nth(1).unwrap_or_default();
    assert!(
        not_mapped.contains("echo.socket (") && not_mapped.contains("with Accept=yes: systemd starts an instance of this unit for each connection"),
        "{text}"
    );
    assert!(not_mapped.contains("ExecStart= `capexec exec FILE`"), "{text}");
    check(&text, "accepting-socket");
}

/// NotifyAccess=all is what capexec does for a notify service (freeradius's
/// unit); main and none are said to differ.
#[test]
fn notify_access_is_said_what_it_becomes() {
    let all = import_text("notify-all", "[Service]\nType=notify\nNotifyAccess=all\nExecStart=/usr/bin/sleep 100\n");
    let covered = all.split("# Not mapped:").next().unwrap();
    assert!(covered.contains("#   NotifyAccess=all: every process of a type = \"notify\" service may send on its notification socket"), "{all}");
    let main = import_text("notify-main", "[Service]\nType=notify\nNotifyAccess=main\nExecStart=/usr/bin/sleep 100\n");
    assert!(main.split("# Not mapped:").nth(1).is_some_and(|n| n.contains("#   NotifyAccess=main: capexec takes notifications from every process")), "{main}");
    check(&all, "notify-all");
}

/// CapabilityBoundingSet= becomes capabilities.bound, its lines added up
/// as systemd does; an ambient capability outside it is left out.
#[test]
fn the_capability_bounding_set_is_the_bound() {
    let bound = |text: &str| -> Vec<String> {
        let v: toml::Value = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        v["capabilities"]["bound"].as_array().unwrap_or_else(|| panic!("no bound:\n{text}")).iter().map(|c| c.as_str().unwrap().to_owned()).collect()
    };
    let nsd = import("nsd");
    assert_eq!(
        bound(&nsd),
        ["CAP_CHOWN", "CAP_IPC_LOCK", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SYS_CHROOT"],
        "{nsd}"
    );
    check(&nsd, "bound-nsd");
    let lines = import_text(
        "bound-lines",
        "[Service]\nExecStart=/usr/bin/sleep 100\nCapabilityBoundingSet=CAP_CHOWN\nCapabilityBoundingSet=CAP_SETUID CAP_KILL\nCapabilityBoundingSet=~CAP_KILL\nAmbientCapabilities=CAP_SETUID CAP_SYS_ADMIN\n",
    );
    assert_eq!(bound(&lines), ["CAP_CHOWN", "CAP_SETUID"], "{lines}");
    assert!(lines.contains("keep = [\"CAP_SETUID\"]"), "{lines}");
    check(&lines, "bound-lines");
    let not = import_text("bound-not", "[Service]\nExecStart=/usr/bin/sleep 100\nCapabilityBoundingSet=~CAP_SYS_ADMIN\n");
    let b = bound(&not);
    assert!(b.contains(&"CAP_CHOWN".to_owned()) && !b.contains(&"CAP_SYS_ADMIN".to_owned()), "{not}");
    let reset = import_text("bound-reset", "[Service]\nExecStart=/usr/bin/sleep 100\nCapabilityBoundingSet=CAP_CHOWN\nCapabilityBoundingSet=\n");
    assert!(bound(&reset).is_empty(), "{reset}");
}

/// A template unit is imported for one instance: Debian's dnsmasq@.service,
/// whose every command names %i, becomes a declaration for `test` that passes
/// check; without --instance, import says how to name one.
#[test]
fn template_units_are_imported_for_an_instance() {
    let unit = Path::new("/lib/systemd/system/dnsmasq@.service");
    assert!(unit.exists(), "dnsmasq@.service is missing: scripts/install-test-deps.sh installs dnsmasq");
    let o = capexec().arg("import").arg(unit).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a template unit: name the instance with --instance NAME"), "{o:?}");
    let o = capexec().arg("import").arg(unit).args(["--instance", "test"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let decl = String::from_utf8(o.stdout).unwrap();
    assert!(decl.contains("argv = [\"/usr/share/dnsmasq/systemd-helper\", \"exec\", \"test\"]"), "{decl}");
    assert!(decl.contains("dnsmasq (test)") && !decl.contains("%i"), "{decl}");
    check(&decl, "dnsmasq-test");
    let o = capexec().arg("import").arg("/lib/systemd/system/dnsmasq.service").args(["--instance", "x"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("is not a template unit"), "{o:?}");
}

#[test]
fn import_refuses_what_it_cannot_use_and_never_overwrites() {
    let d = dir("errors");
    let bad = d.join("bad.service");
    std::fs::write(&bad, "[Service]\nType=simple\n").unwrap();
    let o = capexec().arg("import").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no usable ExecStart="), "{}", String::from_utf8_lossy(&o.stderr));
    let o = capexec().arg("import").arg(d.join("missing.service")).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = d.join("x.svc");
    std::fs::write(&out, "keep me").unwrap();
    let o = capexec().args(["import", "/lib/systemd/system/memcached.service", "--out"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not overwrite"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    let _ = std::fs::remove_dir_all(&d);
}

/// The imported redis-server unit plus the one thing its notes ask for (where
/// it listens, here through the broker from a network namespace of its own)
/// runs Debian's redis and answers.
#[test]
fn the_imported_redis_unit_runs() {
    assert!(nix::unistd::geteuid().is_root(), "run as root (CI does): the unit runs redis as the redis user");
    let d = dir("redis");
    let unit = d.join("redis-server.svc");
    std::fs::write(&unit, import("redis-server")).unwrap();
    std::fs::create_dir_all(d.join("redis-server.svc.d")).unwrap();
    std::fs::write(
        d.join("redis-server.svc.d/listen.toml"),
        "[namespaces]\nnet = \"none\"\n\n[broker.net]\nbind = [\"tcp:127.0.0.1:6379\", \"tcp:[::1]:6379\"]\n\n\
         # Debian asks for 65535 files; root on the test machines lacks CAP_SYS_RESOURCE\n\
         # and has a hard limit of 20000, so no process there can raise it that far.\n\
         [rlimits]\nnofile = 10032\n",
    )
    .unwrap();
    let child = capexec().arg("exec").arg(&unit).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    let mut answer = String::new();
    while Instant::now() < end && answer != "+PONG\r\n" {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", 6379)) {
            use std::io::{Read, Write};
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.write_all(b"PING\r\n");
            let mut b = [0u8; 16];
            let n = s.read(&mut b).unwrap_or(0);
            answer = String::from_utf8_lossy(&b[..n]).into_owned();
        }
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let o = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert_eq!(answer, "+PONG\r\n", "stderr:\n{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", String::from_utf8_lossy(&o.stderr));
    // RuntimeDirectory=redis: made for the run, removed after it (by a helper
    // that outlives capexec, whose broker may not unlink).
    let end = Instant::now() + Duration::from_secs(15);
    while Path::new("/run/redis").exists() {
        assert!(Instant::now() < end, "/run/redis outlived the service");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What systemd does around a daemon (issue 19): a forking daemon with its
/// pid file, the commands before it with their `-`, `+` and `!` prefixes,
/// supplementary groups and a private user namespace become keys, and the
/// file passes `check`.
#[test]
fn forking_start_pre_and_identity_directives_are_mapped() {
    let decl = import_text(
        "forking",
        "[Service]\nType=forking\nPIDFile=/var/run/f/f.pid\nExecStartPre=+/bin/mkdir -p /run/f\nExecStartPre=-/bin/false\n\
         ExecStartPre=!/bin/true\nExecStartPre=/usr/bin/test -d /etc\nExecStartPost=-/bin/true post\nExecReload=/bin/kill -HUP $MAINPID\nExecStart=/usr/bin/sleep 100\nUser=nobody\nSupplementaryGroups=adm\nPrivateUsers=yes\n",
    );
    for want in [
        "type = \"forking\"",
        "pid_file = \"/run/f/f.pid\"",
        "[[exec.start_pre]]\nargv = [\"/bin/mkdir\", \"-p\", \"/run/f\"]\n# systemd ran it with full privileges",
        "argv = [\"/bin/false\"]\nignore_failure = true\n",
        "argv = [\"/bin/true\"]\n# systemd ran it with full privileges; capexec runs it on the host as root, outside the sandbox.\nprivileged = true\n",
        "[[exec.start_pre]]\nargv = [\"/usr/bin/test\", \"-d\", \"/etc\"]\n\n",
        "[[exec.start_post]]\nargv = [\"/bin/true\", \"post\"]\nignore_failure = true\n",
        "[[exec.reload]]\nargv = [\"/bin/sh\", \"-c\", \"\"\"exec '/bin/kill' '-HUP' ''\"$MAINPID\"''\"\"\"]",
        "supplementary_groups = [\"adm\"]",
        "[namespaces]\nuser = true\n",
        "#   PrivateUsers=yes: namespaces.user = true",
    ] {
        assert!(decl.contains(want), "import lacks {want:?}:\n{decl}");
    }
    check(&decl, "forking");
}

/// ExecStop= (bind9's `rndc stop`, dovecot's `doveadm stop`): a command
/// that does more than signal the main process is an `[[exec.stop]]` with
/// its prefixes, `$MAINPID` from the environment; one that only signals
/// stays the stop signal, which follows the commands; an empty ExecStop=
/// clears the list, as systemd's does.
#[test]
fn stop_commands_are_mapped_and_signals_stay_signals() {
    let decl = import_text(
        "stopcmd",
        "[Service]\nExecStart=/usr/sbin/named -f\nExecStop=/bin/true dropped\nExecStop=\nExecStop=/usr/sbin/rndc stop\n\
         ExecStop=-+/usr/bin/logger stopping $MAINPID\nExecStop=/bin/kill -s INT $MAINPID\n",
    );
    for want in [
        "[[exec.stop]]\nargv = [\"/usr/sbin/rndc\", \"stop\"]\n",
        "[[exec.stop]]\nargv = [\"/bin/sh\", \"-c\", \"\"\"exec '/usr/bin/logger' 'stopping' ''\"$MAINPID\"''\"\"\"]\nignore_failure = true\n# systemd ran it with full privileges",
        "stop_signal = \"SIGINT\"",
        "#   ExecStop=/bin/kill -s INT $MAINPID: service.stop_signal = \"SIGINT\"",
    ] {
        assert!(decl.contains(want), "import lacks {want:?}:\n{decl}");
    }
    assert!(!decl.contains("dropped"), "an empty ExecStop= clears the list:\n{decl}");
    assert!(!decl.contains("runs no stop commands"), "{decl}");
    check(&decl, "stopcmd");
}

/// Directories made by hand before systemd had RuntimeDirectory= (Debian's
/// mosquitto: `mkdir -m 740 -p /run/mosquitto`, then `chown mosquitto` of
/// it, in a root unit whose daemon drops to that user itself): in the
/// sandbox neither command could work, so they become the directories
/// capexec makes, with their mode and owner. A command that does more, a
/// directory elsewhere, or a privileged one stays a command.
#[test]
fn start_pre_commands_that_make_directories_become_them() {
    let decl = import_text(
        "mkdirs",
        "[Service]\nExecStartPre=/bin/mkdir -m 740 -p /var/log/mosq\nExecStartPre=/bin/chown nobody /var/log/mosq\n\
         ExecStartPre=-/bin/mkdir -p /var/run/mosq/empty\nExecStartPre=/bin/mkdir -p /srv/elsewhere\nExecStartPre=/bin/mkdir /run/noparents\n\
         ExecStartPre=+/bin/mkdir -p /run/privileged\nExecStart=/usr/bin/sleep 100\n",
    );
    for want in [
        "logs_directory = [\"mosq\"]",
        "logs_directory_mode = \"0740\"",
        "runtime_directory = [\"mosq/empty\"]",
        "directories_user = \"nobody\"",
        "#   ExecStartPre=/bin/chown nobody /var/log/mosq: a directory capexec makes for the service",
        "argv = [\"/bin/mkdir\", \"-p\", \"/srv/elsewhere\"]",
        "argv = [\"/bin/mkdir\", \"/run/noparents\"]",
        "argv = [\"/bin/mkdir\", \"-p\", \"/run/privileged\"]\n# systemd ran it with full privileges",
    ] {
        assert!(decl.contains(want), "import lacks {want:?}:\n{decl}");
    }
    assert!(!decl.contains("\"/bin/chown\""), "{decl}");
    check(&decl, "mkdirs");
    // A chown to another user than the one the unit runs as stays a command.
    let decl = import_text(
        "mkdirs-user",
        "[Service]\nUser=daemon\nExecStartPre=/bin/mkdir -p /run/m\nExecStartPre=/bin/chown nobody /run/m\nExecStart=/usr/bin/sleep 100\n",
    );
    assert!(decl.contains("runtime_directory = [\"m\"]") && decl.contains("argv = [\"/bin/chown\", \"nobody\", \"/run/m\"]"), "{decl}");
}

/// Path directives naming what capexec's view has by itself (tor's unit:
/// `ReadOnlyDirectories=/`, then `ReadWriteDirectories=-/proc`) are said so
/// and left out: the result passes check (it failed it on both).
#[test]
fn path_directives_on_the_views_own_parts_are_covered() {
    let decl = import_text(
        "rootpaths",
        "[Service]\nExecStart=/usr/bin/sleep 100\nReadOnlyDirectories=/\nReadWriteDirectories=-/proc\nReadWritePaths=/dev/shm\nReadWritePaths=/\nReadWritePaths=/var/lib/x\n",
    );
    let (covered, not_mapped) = decl.split_once("# Not mapped:").unwrap();
    assert!(
        covered.contains("#   ReadOnlyDirectories=/: the view is read-only wherever")
            && covered.contains("#   ReadWriteDirectories=-/proc: /proc is capexec's own"),
        "{decl}"
    );
    assert!(
        covered.contains("#   ReadWritePaths=/dev/shm: /dev is capexec's own") && not_mapped.contains("#   ReadWritePaths=/: all of / cannot be given"),
        "{decl}"
    );
    assert!(decl.contains("read_write = [\"/var/lib/x\"]") && !decl.contains("\"/proc\"") && !decl.contains("read_only = [\"/\"]"), "{decl}");
    check(&decl, "rootpaths");
}

/// `install -d` with an owner and mode (munin-node's `install -o munin -g
/// munin -d /run/munin`, in a root unit) is such a directory too; one with
/// another group than the owner's name, or not a directory, stays a command.
#[test]
fn install_d_of_a_directory_becomes_it() {
    let decl = import_text(
        "installd",
        "[Service]\nExecStartPre=/usr/bin/install -o nobody -g nobody -m 0750 -d /run/munin\n\
         ExecStartPre=/usr/bin/install -o nobody -g daemon -d /var/lib/other\nExecStartPre=/usr/bin/install -m 644 /etc/hosts /run/hosts\nExecStart=/usr/bin/sleep 100\n",
    );
    for want in [
        "runtime_directory = [\"munin\"]",
        "runtime_directory_mode = \"0750\"",
        "directories_user = \"nobody\"",
        "#   ExecStartPre=/usr/bin/install -o nobody -g nobody -m 0750 -d /run/munin: a directory capexec makes for the service",
        "argv = [\"/usr/bin/install\", \"-o\", \"nobody\", \"-g\", \"daemon\", \"-d\", \"/var/lib/other\"]",
        "argv = [\"/usr/bin/install\", \"-m\", \"644\", \"/etc/hosts\", \"/run/hosts\"]",
    ] {
        assert!(decl.contains(want), "import lacks {want:?}:\n{decl}");
    }
    check(&decl, "installd");
    let munin = import("munin-node");
    assert!(munin.contains("runtime_directory = [\"munin\"]") && !munin.contains("\"/usr/bin/install\""), "{munin}");
    check(&munin, "munin-node");
}

/// `PermissionsStartOnly=yes` (tor's unit) is systemd's older spelling of
/// `+` on every command but ExecStart=: each becomes privileged. A
/// privileged `install -d` that names the owner is still the directory
/// capexec makes (root made it with that owner), its setgid bit kept and
/// `-Z` (SELinux's default context) meaning nothing here; a privileged one
/// without an owner (root's directory) stays a command.
#[test]
fn permissions_start_only_makes_the_commands_privileged() {
    let decl = import_text(
        "startonly",
        "[Service]\nPermissionsStartOnly=yes\nExecStartPre=/usr/bin/install -Z -m 02755 -o daemon -g daemon -d /run/tor\n\
         ExecStartPre=/usr/bin/install -d /run/rootowned\nExecStartPre=/usr/bin/tor --verify-config\nExecReload=/bin/kill -HUP $MAINPID\n\
         ExecStart=/usr/bin/sleep 100\n",
    );
    for want in [
        "runtime_directory = [\"tor\"]",
        "runtime_directory_mode = \"02755\"",
        "directories_user = \"daemon\"",
        "#   ExecStartPre=/usr/bin/install -Z -m 02755 -o daemon -g daemon -d /run/tor: a directory capexec makes for the service",
        "#   PermissionsStartOnly=yes: the commands other than ExecStart= run as with the `+` prefix",
        "argv = [\"/usr/bin/install\", \"-d\", \"/run/rootowned\"]\n# systemd ran it with full privileges",
        "argv = [\"/usr/bin/tor\", \"--verify-config\"]\n# systemd ran it with full privileges",
    ] {
        assert!(decl.contains(want), "import lacks {want:?}:\n{decl}");
    }
    let reload = &decl[decl.find("[[exec.reload]]").expect("a reload command")..];
    assert!(reload.lines().take(4).any(|l| l == "privileged = true"), "{decl}");
    check(&decl, "startonly");
    // Without it, the same commands run in the sandbox.
    let plain = import_text("startonly-no", "[Service]\nExecStartPre=/usr/bin/tor --verify-config\nExecStart=/usr/bin/sleep 100\n");
    assert!(!plain.contains("privileged = true"), "{plain}");
}

/// A unit named without a path is found where systemd finds it, with its
/// drop-ins as `systemctl cat` shows them (an administrator's `systemctl
/// edit` override in /etc hides the same-named one of the package's); a
/// copy of the file elsewhere is read alone; an instance comes from its
/// template. (Not in /run/systemd/system: made where there was none, it
/// tells sd_booted() that systemd runs, and knotd logs to a journal that
/// is not there.)
#[test]
fn a_unit_by_name_comes_with_its_drop_ins() {
    assert!(nix::unistd::geteuid().is_root(), "run as root (CI does): the test writes a unit in /etc/systemd/system");
    let name = format!("capexec-it-dropin-{}.service", std::process::id());
    let (etc, lib) = (Path::new("/etc/systemd/system"), Path::new("/lib/systemd/system"));
    let d = dir("byname");
    let cleanup = [etc.join(&name), etc.join(format!("{name}.d")), lib.join(format!("{name}.d"))];
    let put = |p: PathBuf, text: &str| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put(etc.join(&name), "[Service]\nExecStart=/usr/bin/sleep 100\nUser=daemon\n");
    put(lib.join(format!("{name}.d/10-listen.conf")), "[Service]\nExecStart=\nExecStart=/usr/bin/sleep 1\n");
    put(etc.join(format!("{name}.d/10-listen.conf")), "[Service]\nExecStart=\nExecStart=/usr/bin/sleep 2\n");
    put(lib.join(format!("{name}.d/20-env.conf")), "[Service]\nEnvironment=X=1\n");
    std::fs::copy(etc.join(&name), d.join(&name)).unwrap();
    let by_name = capexec().arg("import").arg(&name).output().unwrap();
    let copy = capexec().arg("import").arg(d.join(&name)).output().unwrap();
    for p in cleanup {
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
    let _ = std::fs::remove_dir_all(&d);
    let decl = String::from_utf8_lossy(&by_name.stdout);
    assert!(by_name.status.success(), "{}", String::from_utf8_lossy(&by_name.stderr));
    let first = decl.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "# Imported from {0}/{name} and its drop-ins {0}/{name}.d/10-listen.conf, {1}/{name}.d/20-env.conf by `capexec import`.",
            etc.display(),
            lib.display()
        )
    );
    assert!(decl.contains("argv = [\"/usr/bin/sleep\", \"2\"]") && decl.contains("\"X\" = \"1\""), "{decl}");
    let alone = String::from_utf8_lossy(&copy.stdout);
    assert!(copy.status.success() && alone.contains("argv = [\"/usr/bin/sleep\", \"100\"]") && !alone.contains("drop-in"), "{alone}");
    // An instance by its name is its template's import with --instance.
    let by_instance = capexec().args(["import", "postgresql@15-main.service"]).output().unwrap();
    let with_flag = capexec().args(["import", "/lib/systemd/system/postgresql@.service", "--instance", "15-main"]).output().unwrap();
    assert!(by_instance.status.success(), "{}", String::from_utf8_lossy(&by_instance.stderr));
    assert_eq!(String::from_utf8_lossy(&by_instance.stdout), String::from_utf8_lossy(&with_flag.stdout));
    let missing = capexec().args(["import", "capexec-it-nothere.service"]).output().unwrap();
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("give its path"));
}

/// ExecCondition= (samba's `is-configured smb`) becomes exec.condition,
/// with its prefixes; an empty one resets the list, as for the others.
#[test]
fn exec_condition_becomes_the_condition_commands() {
    let decl = import_text(
        "condition",
        "[Service]\nExecStartPre=/bin/true pre\nExecCondition=/bin/true old\nExecCondition=\nExecCondition=+/bin/true cond\nExecStart=/usr/bin/sleep 100\n",
    );
    assert!(decl.contains("[[exec.condition]]\nargv = [\"/bin/true\", \"cond\"]\n# systemd ran it with full privileges"), "{decl}");
    assert!(decl.contains("[[exec.start_pre]]\nargv = [\"/bin/true\", \"pre\"]"), "{decl}");
    assert!(!decl.contains("\"old\"") && !decl.contains("fails the start"), "{decl}");
    check(&decl, "condition");
}

/// [Unit] conditions and assertions on paths (ssh.service's
/// `ConditionPathExists=!/etc/ssh/sshd_not_to_be_run`) become privileged
/// test(1) commands, checked on the host as systemd checks them: a condition
/// first among exec.condition, an assertion first among start_pre; others
/// say how to check them.
#[test]
fn unit_path_conditions_become_checks_on_the_host() {
    let decl = import_text(
        "unit-conditions",
        "[Unit]\nConditionPathExists=!/etc/ssh/sshd_not_to_be_run\nAssertFileNotEmpty=/etc/app.conf\nConditionVirtualization=!container\nConditionPathExists=|/a\n\
         [Service]\nExecCondition=/bin/true cond\nExecStartPre=/bin/true pre\nExecStart=/usr/bin/sleep 100\n",
    );
    let (test, cond) = (decl.find("argv = [\"/usr/bin/test\", \"!\", \"-e\", \"/etc/ssh/sshd_not_to_be_run\"]"), decl.find("\"cond\""));
    assert!(test.is_some() && test < cond, "{decl}");
    assert!(decl[..test.unwrap()].ends_with("[[exec.condition]]\n"), "{decl}");
    let (assert, pre) = (decl.find("argv = [\"/usr/bin/test\", \"-s\", \"/etc/app.conf\"]"), decl.find("\"pre\""));
    assert!(assert.is_some() && assert < pre && decl[..assert.unwrap()].ends_with("[[exec.start_pre]]\n"), "{decl}");
    assert!(decl.contains("capexec checks no Virtualization condition") && decl.contains("a triggering condition"), "{decl}");
    check(&decl, "unit-conditions");
}

/// DeviceAllow= (OpenVPN's unit: /dev/null and /dev/net/tun): a node of
/// the minimal /dev is there anyway, a TUN device is filesystem.devices,
/// and a disk or a class of devices is left out, said so.
#[test]
fn device_allow_becomes_the_devices_capexec_gives() {
    let decl = import_text(
        "devices",
        "[Service]\nExecStart=/usr/bin/sleep 100\nDeviceAllow=/dev/null rw\nDeviceAllow=/dev/net/tun rw\nDeviceAllow=/dev/sda r\nDeviceAllow=char-usb_device rwm\n",
    );
    for want in [
        "devices = [\"/dev/net/tun\"]",
        "#   DeviceAllow=/dev/null rw: in capexec's minimal /dev for every service",
        "#   DeviceAllow=/dev/net/tun rw: filesystem.devices",
        "#   DeviceAllow=/dev/sda r: capexec gives a service only these devices",
        "#   DeviceAllow=char-usb_device rwm: capexec gives a service only these devices",
    ] {
        assert!(decl.contains(want), "import lacks {want:?}:\n{decl}");
    }
    check(&decl, "devices");
}

/// Every unit of the packages issue 19 names, and of those tests/debian.rs
/// runs besides, imports into a declaration that passes `check` (templates
/// with an instance): what `capexec import` makes of a real distribution's
/// units is at least valid, whatever it leaves to a drop-in. Comments and `TasksMax=99%` are not specifiers (mariadb's unit).
#[test]
fn every_unit_of_debians_server_packages_imports_and_checks() {
    let packages = ["openssh-server", "bind9", "postgresql-common", "cron", "chrony", "rsyslog", "mariadb-server", "apache2"]
        .into_iter()
        .chain(["lighttpd", "vsftpd", "haproxy", "squid", "nsd", "snmpd", "varnish", "dnsmasq", "unbound"]);
    let mut units = Vec::new();
    for p in packages {
        let o = Command::new("dpkg").args(["-L", p]).output().unwrap();
        assert!(o.status.success(), "{p} is not installed: scripts/install-test-deps.sh installs it");
        let list = String::from_utf8_lossy(&o.stdout).into_owned();
        let found: Vec<String> = list.lines().filter(|l| l.starts_with("/lib/systemd/system/") && l.ends_with(".service")).map(str::to_owned).collect();
        assert!(!found.is_empty(), "{p} has no unit");
        units.extend(found);
    }
    for unit in units {
        let mut c = capexec();
        c.arg("import").arg(&unit);
        if unit.ends_with("@.service") {
            c.args(["--instance", "test"]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "import {unit}: {}", String::from_utf8_lossy(&o.stderr));
        let decl = String::from_utf8(o.stdout).unwrap();
        let tag = Path::new(&unit).file_stem().unwrap().to_string_lossy().replace('@', "-at-");
        check(&decl, &tag);
    }
}

/// IPAddressDeny=any becomes the network guard with no grants under the
/// host's network, IPAddressAllow= its grants both ways; with
/// PrivateNetwork= the own namespace already reaches nothing; a partial
/// deny list or an allow list alone is said, not mapped.
#[test]
fn ip_address_deny_and_allow_become_the_network_guard() {
    let unit = "[Service]\nExecStart=/usr/bin/sleep 100\nIPAddressDeny=any\n";
    let decl = import_text("ip-deny", unit);
    let v: toml::Value = toml::from_str(&decl).unwrap();
    assert_eq!(v["namespaces"]["net"].as_str(), Some("host"), "{decl}");
    assert_eq!(v["broker"]["net"]["guard"].as_bool(), Some(true), "{decl}");
    assert!(v["broker"]["net"].get("connect").is_none() && decl.contains("holds every IP socket of the service to no address"), "{decl}");
    check(&decl, "ip-deny");
    let decl = import_text("ip-allow", &format!("{unit}IPAddressAllow=localhost\nIPAddressAllow=192.0.2.0/24 2001:db8::/32\n"));
    let v: toml::Value = toml::from_str(&decl).unwrap();
    let want = ["127.0.0.0/8:*", "[::1]:*", "192.0.2.0/24:*", "[2001:db8::]/32:*"];
    for key in ["connect", "bind"] {
        let got: Vec<&str> = v["broker"]["net"][key].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
        assert_eq!(got, want, "{decl}");
    }
    check(&decl, "ip-allow");
    let decl = import_text("ip-private", &format!("{unit}PrivateNetwork=yes\nIPAddressAllow=localhost\n"));
    let v: toml::Value = toml::from_str(&decl).unwrap();
    assert!(v.get("broker").is_none() && decl.contains("#   IPAddressDeny=any: namespaces.net = \"none\""), "{decl}");
    let decl = import_text("ip-partial", "[Service]\nExecStart=/usr/bin/sleep 100\nIPAddressDeny=10.0.0.0/8\nIPAddressAllow=localhost\n");
    let v: toml::Value = toml::from_str(&decl).unwrap();
    assert!(v.get("broker").is_none() && decl.contains("IPAddressDeny=10.0.0.0/8: capexec's grants name what a service may reach"), "{decl}");
    assert!(decl.contains("IPAddressAllow=localhost: without IPAddressDeny=any it limits nothing"), "{decl}");
}

/// An EnvironmentFile= is read as systemd reads it: gearman-job-server's
/// /etc/default file spreads one quoted value over three lines with
/// backslashes, and each continued line became a variable of its own
/// (`--daemon`, `--log-file`), which `check` refused; its expansion in
/// ExecStart lost the arguments. A line that assigns no valid name is
/// ignored and said.
#[test]
fn environment_files_are_read_with_their_continued_lines() {
    let d = dir("env-file-default");
    let env = d.join("default");
    std::fs::write(&env, "# options\nPARAMS=\"--listen=localhost \\\n --daemon \\\n --log-file=/var/log/g/g.log\"\n-bad=1\n").unwrap();
    let unit = format!("[Service]\nEnvironmentFile=-{}\nExecStart=/usr/sbin/gearmand --pid-file=/run/g.pid $PARAMS\n", env.display());
    let decl = import_text("env-file", &unit);
    let v: toml::Value = toml::from_str(&decl).unwrap();
    let argv: Vec<&str> = v["exec"]["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(argv, ["/usr/sbin/gearmand", "--pid-file=/run/g.pid", "--listen=localhost", "--daemon", "--log-file=/var/log/g/g.log"], "{decl}");
    let env_table = v["exec"]["environment"].as_table().unwrap();
    assert_eq!(env_table.keys().collect::<Vec<_>>(), ["PARAMS"], "{decl}");
    assert!(decl.contains("`-bad`: not a variable name") && decl.contains("ignored, as systemd does"), "{decl}");
    check(&decl, "env-file");
    let _ = std::fs::remove_dir_all(&d);
}

/// krb5-kdc's ReadWriteDirectories= lists /tmp, which `check` refused
/// beside capexec's private /tmp: it is covered by that (said), and the
/// other entries stay; its `-/var/run /run` is one entry.
#[test]
fn a_writable_tmp_is_the_private_one() {
    let decl = import_text(
        "rw-tmp",
        "[Service]\nExecStart=/usr/sbin/krb5kdc\nReadOnlyDirectories=/\nReadWriteDirectories=-/var/tmp /tmp /var/lib/krb5kdc -/var/run /run\n",
    );
    let v: toml::Value = toml::from_str(&decl).unwrap();
    let rw: Vec<&str> = v["filesystem"]["read_write"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    // (/var/run is /run, listed once: required, as /run is.)
    assert_eq!(rw, ["-/var/tmp", "/var/lib/krb5kdc", "/run"], "{decl}");
    assert!(decl.contains("/tmp is a private tmpfs of the service's own (filesystem.private_tmp), writable"), "{decl}");
    check(&decl, "rw-tmp");
}

/// ReadWritePaths= of a host-wide part of /proc (irqbalance's /proc/irq)
/// becomes that entry with the full /proc, whose host-wide parts are
/// otherwise read-only; all of /proc, or a process's own files, stay
/// capexec's own (said).
#[test]
fn a_written_part_of_proc_is_the_full_proc_with_that_entry() {
    let decl = import_text(
        "proc-irq",
        "[Service]\nExecStart=/usr/sbin/irqbalance --foreground\nReadOnlyPaths=/\nReadWritePaths=/proc/irq\nRuntimeDirectory=irqbalance/\n",
    );
    let v: toml::Value = toml::from_str(&decl).unwrap();
    // (Its unit's `irqbalance/` is the directory irqbalance: learning took the two for two.)
    assert_eq!(v["filesystem"]["runtime_directory"][0].as_str(), Some("irqbalance"), "{decl}");
    assert_eq!(v["filesystem"]["proc"].as_str(), Some("full"), "{decl}");
    assert_eq!(v["filesystem"]["read_write"].as_array().map(|a| a.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>()), Some(vec!["/proc/irq"]), "{decl}");
    check(&decl, "proc-irq");
    let decl = import_text("proc-all", "[Service]\nExecStart=/usr/bin/sleep 100\nReadWritePaths=/proc /proc/self/oom_score_adj\n");
    let v: toml::Value = toml::from_str(&decl).unwrap();
    assert!(v.get("filesystem").and_then(|f| f.get("proc")).is_none(), "{decl}");
    assert!(decl.contains("#   ReadWritePaths=/proc /proc/self/oom_score_adj: /proc is capexec's own"), "{decl}");
}

/// Nice= and OOMScoreAdjust= become exec.nice and exec.oom_score_adjust
/// (gdnsd's unit asks for -11 and -900), and the file passes check; out of
/// range, each is a note and no key.
#[test]
fn nice_and_oom_score_adjust_are_carried_over() {
    let decl = import_text("nice", "[Service]\nExecStart=/usr/bin/sleep 100\nNice=-11\nOOMScoreAdjust=-900\n");
    assert!(decl.contains("\nnice = -11\n") && decl.contains("\noom_score_adjust = -900\n"), "{decl}");
    assert!(decl.contains("#   Nice=-11: exec.nice") && decl.contains("#   OOMScoreAdjust=-900: exec.oom_score_adjust"), "{decl}");
    let d = dir("nice-check");
    let svc = d.join("nice.svc");
    std::fs::write(&svc, &decl).unwrap();
    let o = capexec().arg("check").arg(&svc).output().unwrap();
    let _ = std::fs::remove_dir_all(&d);
    assert!(o.status.success(), "{}{decl}", String::from_utf8_lossy(&o.stderr));
    let decl = import_text("nice-bad", "[Service]\nExecStart=/usr/bin/sleep 100\nNice=40\nOOMScoreAdjust=x\n");
    assert!(!decl.contains("nice =") && !decl.contains("oom_score_adjust ="), "{decl}");
    assert!(decl.contains("Nice=40: not a nice value from -20 to 19") && decl.contains("OOMScoreAdjust=x: not an OOM score adjustment"), "{decl}");
}
