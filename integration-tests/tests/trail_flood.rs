//! `capexec run`'s denial trail under a flood of refusals (issue 20), in a
//! test binary of its own: every reader of the audit log gets every record,
//! so a flood while other trail tests run would overflow their readers'
//! buffers and take their records (the kernel's audit log is one for the
//! machine). cargo runs test binaries one after another.

use capexec_integration_tests::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// A program looping on a refused call floods the audit log, which `capexec
/// run` reads in the same thread that waits for the run's signals: a Ctrl-C
/// (SIGINT to capexec) still reaches the program between two batches of
/// records, the run ends with the program's death by it, and the summary
/// names the refused call (made once before the program says it loops).
#[test]
fn a_flood_of_refusals_does_not_hold_up_the_signals() {
    require_root();
    let mut c = command(As::Root);
    // "looping" after the first refusal: one at least comes before the signal.
    c.args(["run", "--", "/usr/bin/perl", "-e", "$| = 1; syscall(27, 0, 0, 0); print \"looping\\n\"; syscall(27, 0, 0, 0) while 1;"]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "looping\n");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let o = wait_output(child, T);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("seccomp: syscall mincore (27) by perl; to allow it: --allow-syscall mincore"), "{err}");
}
