//! A foreground service's /dev/log (`Spawned::syslog`, for `capexec exec`,
//! `run` and `learn`): each datagram becomes a line on capexec's stderr,
//! which the terminal or systemd's journal (capexec@.service) gets. The
//! daemon reads its services' in its event loop instead
//! (`capexec_supervisor::logs::read_syslog`).

use capexec_supervisor::logs::{syslog_line, SYSLOG_MAX};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Relay {
    /// Reads `sock` on a thread of its own until [`finish`](Self::finish).
    pub fn start(sock: OwnedFd) -> std::io::Result<Relay> {
        let stop = Arc::new(AtomicBool::new(false));
        // Into the journal, a line's `<N>` prefix is its priority
        // (SyslogLevelPrefix=, on by default); on a terminal it is noise.
        let journal = std::env::var_os("JOURNAL_STREAM").is_some();
        let thread = std::thread::Builder::new().name("syslog".into()).stack_size(64 * 1024).spawn({
            let stop = stop.clone();
            move || relay(sock, &stop, journal)
        })?;
        Ok(Relay { stop, thread })
    }

    /// Stops reading once what the service sent is read (call it when the
    /// service has ended).
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

fn relay(sock: OwnedFd, stop: &AtomicBool, journal: bool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::{recv, MsgFlags};
    let mut buf = vec![0u8; SYSLOG_MAX];
    loop {
        // Stopping is checked between waits, so at most one wait late.
        let stopping = stop.load(Ordering::Relaxed);
        while let Ok(n) = recv(std::os::fd::AsRawFd::as_raw_fd(&sock), &mut buf, MsgFlags::MSG_DONTWAIT) {
            let (severity, text) = syslog_line(&buf[..n]);
            let line = if journal { format!("<{severity}>{text}\n") } else { format!("{text}\n") };
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        if stopping {
            return;
        }
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
    }
}
