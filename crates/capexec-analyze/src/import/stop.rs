//! `ExecStop=` lines whose whole effect is a signal to the main process:
//! such a line becomes `service.stop_signal` (the signal capexec sends
//! after the stop commands) rather than an `[[exec.stop]]` command, which
//! would have to reach the main process from the sandbox and could not
//! wait for it to end. What matters is which signal: PostgreSQL
//! takes SIGTERM as a "smart" shutdown that waits for every client to
//! disconnect (an idle pooled connection holds a stop for the whole stop
//! timeout, then SIGKILL and crash recovery), where its unit's
//! `pg_ctlcluster -m fast stop` sends SIGINT.

/// The signal `command` (an `ExecStop=` value, its prefixes included) sends
/// the main process, and how it was told; `None`: not one capexec knows.
pub(super) fn signal_of(command: &str) -> Option<(&'static str, String)> {
    let words: Vec<&str> = command.trim_start_matches(|c| "-@+!:".contains(c)).split_whitespace().collect();
    let program = words.first()?.rsplit('/').next()?;
    let args = &words[1..];
    match program {
        "pg_ctlcluster" | "pg_ctl" if args.contains(&"stop") => {
            // Both default to fast since PostgreSQL 9.5.
            let mode = option(args, "-m", "--mode").unwrap_or("fast");
            let sig = match mode {
                "smart" | "s" => "SIGTERM",
                "fast" | "f" => "SIGINT",
                "immediate" | "i" => "SIGQUIT",
                _ => return None,
            };
            Some((sig, format!("what `{program} stop` in {mode} mode sends the postmaster")))
        }
        "start-stop-daemon" if args.iter().any(|a| *a == "--stop" || *a == "-K") => {
            // A schedule that starts with a signal sends that one first;
            // otherwise --signal's (TERM when not given).
            let first = option(args, "-R", "--retry").and_then(|s| s.split('/').next()).filter(|s| s.parse::<u32>().is_err());
            let sig = signal_name(first.or_else(|| option(args, "-s", "--signal")).unwrap_or("TERM"))?;
            Some((sig, "what the unit's start-stop-daemon --stop sends first".into()))
        }
        "kill" if args.last().is_some_and(|a| a.contains("MAINPID")) => {
            let sig = match args {
                [flag, s, _] if *flag == "-s" || *flag == "--signal" => signal_name(s)?,
                [s, _] => signal_name(s.strip_prefix('-')?)?,
                [_] => "SIGTERM",
                _ => return None,
            };
            Some((sig, "what the unit's kill sends the main process".into()))
        }
        // Not graceful-stop (SIGWINCH): the root master then waits for its
        // www-data children, which it may signal only with CAP_KILL (a learned
        // declaration keeps it; an imported one keeps none): both apache2
        // tests hung in their stop on it. SIGTERM, the default, ends them.
        "apachectl" | "apache2ctl" if args == ["stop"] => Some(("SIGTERM", "what `apachectl stop` sends".into())),
        _ => None,
    }
}

/// The value of option `short`/`long` in `args` (`-m fast`, `--mode=fast`, `--mode fast`).
fn option<'a>(args: &[&'a str], short: &str, long: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(
        |(i, a)| {
            if *a == short || *a == long {
                args.get(i + 1).copied()
            } else {
                a.strip_prefix(long).and_then(|r| r.strip_prefix('='))
            }
        },
    )
}

/// A stop signal capexec takes, from a name (`QUIT`, `SIGQUIT`) or number.
fn signal_name(s: &str) -> Option<&'static str> {
    let by_number = [("1", "HUP"), ("2", "INT"), ("3", "QUIT"), ("9", "KILL"), ("10", "USR1"), ("12", "USR2"), ("15", "TERM"), ("28", "WINCH")];
    let name = by_number.iter().find(|(n, _)| *n == s).map_or(s, |(_, name)| name);
    let full = format!("SIG{}", name.trim_start_matches("SIG").to_ascii_uppercase());
    capexec_decl::validate::STOP_SIGNALS.iter().find(|(n, _)| *n == full).map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::signal_of;

    #[test]
    fn the_stop_commands_of_debians_units() {
        for (command, want) in [
            ("/usr/bin/pg_ctlcluster --skip-systemctl-redirect -m fast 15-main stop", Some("SIGINT")),
            ("/usr/bin/pg_ctlcluster --skip-systemctl-redirect 15-main stop", Some("SIGINT")),
            ("/usr/bin/pg_ctlcluster --mode=smart 15-main stop", Some("SIGTERM")),
            ("-/usr/bin/pg_ctlcluster -m immediate 15-main stop", Some("SIGQUIT")),
            ("/usr/bin/pg_ctlcluster 15-main reload", None),
            ("-/sbin/start-stop-daemon --quiet --stop --retry QUIT/5 --pidfile /run/nginx.pid", Some("SIGQUIT")),
            ("/sbin/start-stop-daemon --stop --retry 5 --signal USR1 --pidfile /run/x.pid", Some("SIGUSR1")),
            ("/sbin/start-stop-daemon --stop --pidfile /run/x.pid", Some("SIGTERM")),
            ("/bin/kill -s QUIT $MAINPID", Some("SIGQUIT")),
            ("/bin/kill -WINCH ${MAINPID}", Some("SIGWINCH")),
            ("/bin/kill -3 $MAINPID", Some("SIGQUIT")),
            ("/bin/kill $MAINPID", Some("SIGTERM")),
            ("/bin/kill -STOP $MAINPID", None),
            ("/usr/sbin/apachectl graceful-stop", None),
            ("/usr/sbin/apachectl stop", Some("SIGTERM")),
            ("/usr/sbin/rndc stop", None),
            ("/usr/bin/doveadm stop", None),
        ] {
            assert_eq!(signal_of(command).map(|(s, _)| s), want, "{command}");
        }
    }
}
