//! A foreground service's /dev/log (`Spawned::syslog`, for `capexec exec`,
//! `run` and `learn`): each datagram becomes a line on capexec's stderr,
//! which the terminal or systemd's journal (capexec@.service) gets. The
//! daemon reads its services' in its event loop instead
//! (`capexec_supervisor::logs::read_syslog`).

use capexec_supervisor::logs::{syslog_line, SYSLOG_MAX};
use capexec_supervisor::notify::recv_with_pid;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Relay {
    stop: Arc<AtomicBool>,
    sock: Arc<OwnedFd>,
    thread: std::thread::JoinHandle<()>,
}

impl Relay {
    /// Reads `sock` on a thread of its own until [`finish`](Self::finish).
    pub fn start(sock: OwnedFd) -> std::io::Result<Relay> {
        let stop = Arc::new(AtomicBool::new(false));
        let sock = Arc::new(sock);
        // Into the journal, a line's `<N>` prefix is its priority
        // (SyslogLevelPrefix=, on by default); on a terminal it is noise.
        let journal = std::env::var_os("JOURNAL_STREAM").is_some();
        let thread = std::thread::Builder::new().name("syslog".into()).stack_size(64 * 1024).spawn({
            let (stop, sock) = (stop.clone(), sock.clone());
            move || relay(&sock, &stop, journal)
        })?;
        Ok(Relay { stop, sock, thread })
    }

    /// Stops reading once what the service sent is read (call it when the
    /// service has ended). The shutdown wakes the thread's poll at once: a
    /// timed wait would add its period to every `capexec run`.
    pub fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = nix::sys::socket::shutdown(std::os::fd::AsRawFd::as_raw_fd(&*self.sock), nix::sys::socket::Shutdown::Read);
        let _ = self.thread.join();
    }
}

fn relay(sock: &OwnedFd, stop: &AtomicBool, journal: bool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut buf = vec![0u8; SYSLOG_MAX];
    loop {
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::NONE);
        // Set before the shutdown that woke this poll, if that is what did.
        let stopping = stop.load(Ordering::SeqCst);
        loop {
            match recv_with_pid(sock.as_fd(), &mut buf) {
                // Shut down and empty (an empty datagram otherwise).
                Ok((0, _)) if stopping => break,
                Ok((n, sender)) => {
                    let (severity, text) = syslog_line(&buf[..n], sender);
                    let line = if journal { format!("<{severity}>{text}\n") } else { format!("{text}\n") };
                    let _ = std::io::stderr().lock().write_all(line.as_bytes());
                }
                Err(_) => break,
            }
        }
        if stopping {
            return;
        }
    }
}
