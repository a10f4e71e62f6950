//! Run under `capexec learn` (integration-tests/tests/learn.rs): does one
//! distinctive thing in each kind of process a recorder must follow. `DIR`
//! holds main.txt, thread.txt, child.txt and exec.txt.
//!
//! - the main thread reads main.txt;
//! - a second thread reads thread.txt and calls getpriority(2);
//! - a forked child reads child.txt, calls sysinfo(2), and execs
//!   /usr/bin/cat on exec.txt.

fn main() {
    let dir = std::env::args().nth(1).expect("usage: learn-probe DIR");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).unwrap_or_else(|e| panic!("{f}: {e}"));
    print!("{}", read("main.txt"));
    let d = dir.clone();
    let t = std::thread::spawn(move || {
        // SAFETY: getpriority only reads the calling process's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        std::fs::read_to_string(format!("{d}/thread.txt")).unwrap()
    });
    print!("{}", t.join().unwrap());
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // SAFETY: the process is single-threaded again (the thread was joined), so
    // the child may allocate and exec.
    match unsafe { libc::fork() } {
        0 => {
            print!("{}", read("child.txt"));
            std::io::stdout().flush().unwrap();
            // SAFETY: sysinfo writes one struct at a valid pointer.
            unsafe {
                let mut si: libc::sysinfo = std::mem::zeroed();
                libc::sysinfo(&mut si);
            }
            let e = std::process::Command::new("/usr/bin/cat").arg(format!("{dir}/exec.txt")).status();
            std::process::exit(if e.is_ok_and(|s| s.success()) { 0 } else { 1 });
        }
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
        }
    }
}
