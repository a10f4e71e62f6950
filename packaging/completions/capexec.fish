# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_capexec_global_optspecs
    string join \n h/help V/version
end

function __fish_capexec_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_capexec_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_capexec_using_subcommand
    set -l cmd (__fish_capexec_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c capexec -n "__fish_capexec_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c capexec -n "__fish_capexec_needs_command" -s V -l version -d 'Print version'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "check" -d 'Validate declarations and print them with every default resolved'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "exec" -d 'Run a declared service in the foreground (what systemd\'s ExecStart= calls)'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "run" -d 'Run a program confined without a declaration file (strict by default)'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "doctor" -d 'Show what this kernel supports (Landlock ABI, seccomp, user namespaces, cgroups, LSMs)'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "daemon" -d 'Run the supervisor: keeps declared services running, answers `capexec start|stop|status|...`'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "start" -d 'Start services (by name from the search path, or by path) and wait until they run'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "stop" -d 'Stop services: their exec.stop commands, the declared stop signal, then after stop_timeout every process is killed'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "restart" -d 'Stop, then start services'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "reload" -d 'Re-read every declaration (unchanged services keep running, changed ones restart, removed ones stop); with names, run those services\' exec.reload commands'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "status" -d 'Show state, main pid, uptime, restarts, last exit, memory, tasks, STATUS= and last log lines'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "list" -d 'List every loaded service, one line each'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "logs" -d 'Show a service\'s output (stdout and stderr, with timestamps)'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "denials" -d 'Show what was refused a service (Landlock, seccomp, its broker, the network guard), each with what would allow it'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "agent" -d 'Answer the seccomp notifications of containers run by runc or crun with capexec\'s broker (their listenerPath)'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "diff" -d 'Show what an overlaid run (`capexec run --overlay DIR`) changed against the host'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "commit" -d 'Apply to the host what an overlaid run changed (all of it, or what is at or below PATHs)'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "discard" -d 'Drop everything an overlaid run wrote (the layers in DIR); the host was never touched'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "enable" -d 'Start services when the daemon starts (overrides the declaration\'s autostart)'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "disable" -d 'Do not start services when the daemon starts'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "learn" -d 'Run a program or a unit with nothing denied, record what it does, and write a declaration for it'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "analyze" -d 'Score declarations from 0 (confined) to 10 (exposed) with systemd-analyze security\'s checks'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "import" -d 'Convert a systemd service unit into a declaration, with a note on everything not carried over'
complete -c capexec -n "__fish_capexec_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c capexec -n "__fish_capexec_using_subcommand check" -l unit-path -d 'Look up bare names in DIR instead of the default search path (repeatable)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand check" -l json -d 'Print JSON (one object: {"units": [...], "errors": [...]})'
complete -c capexec -n "__fish_capexec_using_subcommand check" -s q -l quiet -d 'Print only errors'
complete -c capexec -n "__fish_capexec_using_subcommand check" -l full -d 'Print the whole resolved declaration (TOML) instead of a summary'
complete -c capexec -n "__fish_capexec_using_subcommand check" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand exec" -l unit-path -d 'Look up bare names in DIR instead of the default search path (repeatable)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand exec" -l explain -d 'Run the service with nothing denied, recording what it does, then say what the declaration would have refused, each with the key that allows it (only for a program you would run unconfined)'
complete -c capexec -n "__fish_capexec_using_subcommand exec" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand run" -l unit -d 'Start from this declaration, then apply the options below on top' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand run" -l ro -d 'Make PATH visible read-only (repeatable; as root without --user, read as PATH\'s owner)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l visible -d 'Show PATH without letting the program read it: it may stat it, test that it exists and list a directory, not open a file (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l rw -d 'Make PATH visible read-write, not executable (repeatable; as root without --user, written as PATH\'s owner: what the program makes there is the owner\'s)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l rw-exec -d 'Make PATH visible read-write and executable: the program may run what it writes there (`make check` running the binaries it built; repeatable; as root without --user, writes as PATH\'s owner, as --rw does)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l overlay -d 'Show the whole host filesystem and keep every write in layers in DIR, never on the host (see `capexec diff`, `commit`, `discard`; DIR is made if missing and may be reused)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l copy-up -d 'With --overlay, rootless: copy PATH (a file or a tree) into the layers before the run, as yours, so that the program may rewrite in place what the host\'s root owns (overlayfs cannot copy such files up in a user namespace); --fakeroot copies the package tools\' state (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l hide -d 'Hide PATH (an empty, unreadable file or directory in its place; repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l exec-path -d 'Make PATH visible read-only and executable (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l tmpfs -d 'Mount a fresh, empty tmpfs at PATH (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l net -d 'Network: `none` (own namespace, loopback only; default) or `host`' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l bind-tcp -d 'Allow TCP bind to PORT, or to each port of FIRST-LAST (Landlock; repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l tasks -d 'At most N tasks, threads included (RLIMIT_NPROC in the service\'s own user namespace; default 4096)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l connect-tcp -d 'Allow TCP connect to PORT, or to each port of FIRST-LAST (Landlock; repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l allow-syscall -d 'Also allow a syscall or a group such as @mount (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l cap -d 'Keep a capability, e.g. CAP_NET_BIND_SERVICE (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l preopen-listen -d 'Open a listening socket before confinement and pass it as fd 3, 4, ... (repeatable; unixgram:PATH is a Unix datagram socket, as syslog\'s /dev/log)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l env -d 'Set an environment variable (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l pass-env -d 'Copy a variable from capexec\'s environment (repeatable; TERM, LANG, LC_*, TZ are passed by default)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l user -d 'Run as USER (root only; default: a dynamic unprivileged uid, or your own uid when rootless)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l cwd -d 'Working directory (default: the current one if it is in the view, else /)' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l landlock -d 'Landlock enforcement: `required` (default) or `best-effort`' -r
complete -c capexec -n "__fish_capexec_using_subcommand run" -l fakeroot -d 'With --overlay: run as uid 0 in the program\'s own user namespace, so that dpkg, apt-get and pip install into the layers (rootless too; `capexec commit` applies what you may write)'
complete -c capexec -n "__fish_capexec_using_subcommand run" -l net-summary -d 'After the run, list the sockets the program made and the addresses it connected, bound and sent to, each allowed or refused (always with --overlay)'
complete -c capexec -n "__fish_capexec_using_subcommand run" -l dry-run -d 'Print the resolved declaration instead of running'
complete -c capexec -n "__fish_capexec_using_subcommand run" -l explain -d 'Run the program with nothing denied, recording what it does, then say what these options would have refused, each with the flag that allows it (for rootless runs, where only the refused syscalls are reported after a failure, not files or ports; only for a program you would run unconfined)'
complete -c capexec -n "__fish_capexec_using_subcommand run" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand doctor" -l json -d 'Print JSON'
complete -c capexec -n "__fish_capexec_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l runtime-dir -d 'Directory for the control socket, lock and notify sockets' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l state-dir -d 'Directory for persistent state (enable/disable)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l log-dir -d 'Directory for log files' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l log-max-size -d 'Rotate a service\'s log file when it exceeds this many bytes' -r
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l cgroup -d 'Name of the cgroup that holds one cgroup per service (system mode), relative to the cgroup v2 root (`capexec`, or `system.slice/capexec.service` under systemd)' -r
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l unit-path -d 'Look up bare names in DIR instead of the default search path (repeatable)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l user -d 'User mode: the caller\'s own daemon (the default for non-root users)'
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -l log-files -d 'Write log files even where a journal runs'
complete -c capexec -n "__fish_capexec_using_subcommand daemon" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand start" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand start" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand start" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand start" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand stop" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand stop" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand stop" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand stop" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand restart" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand restart" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand restart" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand restart" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand reload" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand reload" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand reload" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand reload" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand status" -s n -l lines -d 'Log lines to show per unit' -r
complete -c capexec -n "__fish_capexec_using_subcommand status" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand status" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand status" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand status" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand list" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand list" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand list" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand list" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand logs" -s n -l lines -d 'Show the last N lines' -r
complete -c capexec -n "__fish_capexec_using_subcommand logs" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand logs" -s f -l follow -d 'Keep printing new lines as they come (until interrupted)'
complete -c capexec -n "__fish_capexec_using_subcommand logs" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand logs" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand logs" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand denials" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand denials" -l propose -d 'Print a drop-in for the unit that allows what it was refused (the smallest change: each refused item added to its list)'
complete -c capexec -n "__fish_capexec_using_subcommand denials" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand denials" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand denials" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand agent" -l socket -d 'The Unix socket to listen on (made mode 0600; a stale one is replaced)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand agent" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand diff" -l stat -d 'Only the counts'
complete -c capexec -n "__fish_capexec_using_subcommand diff" -s p -l patch -d 'A unified diff of each text file added, modified or deleted'
complete -c capexec -n "__fish_capexec_using_subcommand diff" -l json -d 'The changes as JSON: path, change, kind'
complete -c capexec -n "__fish_capexec_using_subcommand diff" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand commit" -l dry-run -d 'Say what would be applied; change nothing'
complete -c capexec -n "__fish_capexec_using_subcommand commit" -l force -d 'Apply over host paths that changed since the run'
complete -c capexec -n "__fish_capexec_using_subcommand commit" -l json -d 'The report as JSON: applied, conflicts, skipped'
complete -c capexec -n "__fish_capexec_using_subcommand commit" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand discard" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand enable" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand enable" -l now -d 'Also start (enable) or stop (disable) them now'
complete -c capexec -n "__fish_capexec_using_subcommand enable" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand enable" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand enable" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand disable" -l socket -d 'The daemon\'s control socket (default: the system daemon\'s for root; for other users their user daemon\'s if it runs, else the system daemon\'s). Also CAPEXEC_SOCKET' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand disable" -l now -d 'Also start (enable) or stop (disable) them now'
complete -c capexec -n "__fish_capexec_using_subcommand disable" -l user -d 'Talk to your user daemon ($XDG_RUNTIME_DIR/capexec/control.sock)'
complete -c capexec -n "__fish_capexec_using_subcommand disable" -l json -d 'Print the daemon\'s answer as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand disable" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l unit -d 'Start from this declaration (its user, environment, private directories and preopened sockets), running PROG' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l workload -d 'Run this shell command on the host once the service listens; its exit ends the run' -r
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l wait-for -d 'Start the workload once ADDR (tcp:HOST:PORT, or unix:PATH) accepts connections (repeatable; one answering is enough; default: the unit\'s TCP preopens and exact broker bind grants, else a forking service\'s pid file, else READY=1 of a notify service, else the first socket the service binds, once it accepts)' -r
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l ready-timeout -d 'Give up when the service is not ready within this many seconds (default: the unit\'s service.ready_timeout, at least 30; 30 for a program without a unit)' -r
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l out -d 'Write the mined declaration here (default: standard output)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l save -d 'Also save what was recorded, as JSON, to merge into later runs with --merge' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l merge -d 'Add what earlier runs saved with --save (repeatable)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l user -d 'Run as USER (root only; default: the unit\'s user, else a dynamic unprivileged uid, or your own uid when rootless). A program after `--` then runs as a service declared with `user = USER` would, with the host\'s ids (a root daemon that drops to its own user can), and the mined declaration says `user = USER`' -r
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l env -d 'Set an environment variable (repeatable)' -r
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l check -d 'Judge the run against UNIT and report what it would have refused, instead of mining'
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l no-wait -d 'Start the workload at once, without waiting for the service to be ready (for a service that listens on nothing, such as cron)'
complete -c capexec -n "__fish_capexec_using_subcommand learn" -l json -d 'Print the --check report (or the difference from the unit) as JSON'
complete -c capexec -n "__fish_capexec_using_subcommand learn" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand analyze" -l threshold -d 'Exit with status 1 when a unit\'s exposure is above N (0.0 to 10.0)' -r
complete -c capexec -n "__fish_capexec_using_subcommand analyze" -l unit-path -d 'Look up bare names in DIR instead of the default search path (repeatable)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand analyze" -l json -d 'Print JSON: {"units": [{"name", "exposure", "level", "checks": [...]}], "errors": [...]}'
complete -c capexec -n "__fish_capexec_using_subcommand analyze" -s s -l short -d 'Print only each unit\'s overall score, one line per unit'
complete -c capexec -n "__fish_capexec_using_subcommand analyze" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand import" -s o -l out -d 'Write the declaration here instead of standard output (refuses to overwrite)' -r -F
complete -c capexec -n "__fish_capexec_using_subcommand import" -l instance -d 'For a template unit (NAME@.service): the instance, as systemd\'s %i (e.g. 15-main for postgresql@.service)' -r
complete -c capexec -n "__fish_capexec_using_subcommand import" -s h -l help -d 'Print help'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "check" -d 'Validate declarations and print them with every default resolved'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "exec" -d 'Run a declared service in the foreground (what systemd\'s ExecStart= calls)'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "run" -d 'Run a program confined without a declaration file (strict by default)'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "doctor" -d 'Show what this kernel supports (Landlock ABI, seccomp, user namespaces, cgroups, LSMs)'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "daemon" -d 'Run the supervisor: keeps declared services running, answers `capexec start|stop|status|...`'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "start" -d 'Start services (by name from the search path, or by path) and wait until they run'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "stop" -d 'Stop services: their exec.stop commands, the declared stop signal, then after stop_timeout every process is killed'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "restart" -d 'Stop, then start services'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "reload" -d 'Re-read every declaration (unchanged services keep running, changed ones restart, removed ones stop); with names, run those services\' exec.reload commands'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "status" -d 'Show state, main pid, uptime, restarts, last exit, memory, tasks, STATUS= and last log lines'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "list" -d 'List every loaded service, one line each'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "logs" -d 'Show a service\'s output (stdout and stderr, with timestamps)'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "denials" -d 'Show what was refused a service (Landlock, seccomp, its broker, the network guard), each with what would allow it'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "agent" -d 'Answer the seccomp notifications of containers run by runc or crun with capexec\'s broker (their listenerPath)'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "diff" -d 'Show what an overlaid run (`capexec run --overlay DIR`) changed against the host'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "commit" -d 'Apply to the host what an overlaid run changed (all of it, or what is at or below PATHs)'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "discard" -d 'Drop everything an overlaid run wrote (the layers in DIR); the host was never touched'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "enable" -d 'Start services when the daemon starts (overrides the declaration\'s autostart)'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "disable" -d 'Do not start services when the daemon starts'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "learn" -d 'Run a program or a unit with nothing denied, record what it does, and write a declaration for it'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "analyze" -d 'Score declarations from 0 (confined) to 10 (exposed) with systemd-analyze security\'s checks'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "import" -d 'Convert a systemd service unit into a declaration, with a note on everything not carried over'
complete -c capexec -n "__fish_capexec_using_subcommand help; and not __fish_seen_subcommand_from check exec run doctor daemon start stop restart reload status list logs denials agent diff commit discard enable disable learn analyze import help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
