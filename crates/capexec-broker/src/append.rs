//! Append-only files, Casper's way: the broker keeps the file (opened with
//! O_APPEND) and the service gets the write end of a pipe; one relay thread
//! copies what arrives to the end of the file.
//!
//! Why not hand the service the file itself: any writable fd of it lets the
//! service truncate it (`ftruncate`, `fallocate`), clear O_APPEND
//! (`fcntl(F_SETFL)`) and write anywhere (`pwrite`, `pwritev2` with
//! RWF_NOAPPEND, a shared mapping), and no seccomp rule can follow an fd once
//! it is duplicated or sent over a socket. A pipe can only be written to.
//!
//! What the service sees: a FIFO (`fstat`), `lseek` fails with ESPIPE (the C
//! library's and Python's append mode accept that), `fsync` with EINVAL. A
//! write of up to PIPE_BUF bytes reaches the file whole, in one append; the
//! relay reads everything queued (a pipe holds 64 KiB) and appends it at once.

use crate::net::set_nonblocking;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc, Mutex};

/// At most this many files relayed at once per service; beyond, an append
/// open fails with EMFILE (each costs the broker two fds).
pub const MAX_RELAYS: usize = 256;

/// A file and the read end of the pipe that feeds it.
pub use capexec_sandbox::resources::AppendPipe as Relay;

#[derive(Default)]
struct Inner {
    /// Relays the thread has not taken yet.
    pending: Vec<Relay>,
    /// Relays pending or running.
    active: usize,
    /// Set by [`Appender::finish`]: end once every relay reached EOF.
    closing: bool,
    /// Receives once the thread ended; `None` until the thread is started.
    done: Option<mpsc::Receiver<()>>,
}

pub struct Appender {
    unit: String,
    /// [`MAX_RELAYS`]; lower in tests.
    max: usize,
    inner: Mutex<Inner>,
    /// Wakes the relay thread for new relays and for `finish`.
    wake_rd: OwnedFd,
    wake_wr: OwnedFd,
}

impl Appender {
    pub fn new(unit: &str) -> io::Result<Appender> {
        let (wake_rd, wake_wr) = capexec_sandbox::sys::pipe2(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
        Ok(Appender { unit: unit.to_owned(), max: MAX_RELAYS, inner: Mutex::new(Inner::default()), wake_rd, wake_wr })
    }

    /// The fds the appender holds, so that a forked broker keeps them.
    pub fn fds(&self) -> Vec<RawFd> {
        vec![self.wake_rd.as_raw_fd(), self.wake_wr.as_raw_fd()]
    }

    /// Relays to `file` (opened for appending) from a new pipe and returns
    /// the pipe's write end for the service (`nonblocking` as it asked).
    pub fn relay(self: &Arc<Self>, file: OwnedFd, nonblocking: bool, path: &str) -> io::Result<OwnedFd> {
        let (from, to) = capexec_sandbox::sys::pipe2(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
        set_nonblocking(&to, nonblocking)?;
        self.adopt(Relay { file, from, path: path.to_owned() })?;
        Ok(to)
    }

    /// Takes over a relay whose pipe was made elsewhere (a preopened file).
    pub fn adopt(self: &Arc<Self>, r: Relay) -> io::Result<()> {
        set_nonblocking(&r.from, true)?;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.active >= self.max {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        if g.closing {
            // The service ended: nobody is left to write.
            return Err(io::Error::from_raw_os_error(libc::EPIPE));
        }
        if g.done.is_none() {
            let (tx, rx) = mpsc::channel();
            let me = Arc::clone(self);
            std::thread::Builder::new().name("broker-append".into()).spawn(move || {
                me.run();
                let _ = tx.send(());
            })?;
            g.done = Some(rx);
        }
        g.pending.push(r);
        g.active += 1;
        drop(g);
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        // A full pipe (EAGAIN) already holds a wake-up.
        let _ = nix::unistd::write(&self.wake_wr, &[1u8]);
    }

    /// Lets the relays run until each pipe reaches EOF (every writer closed:
    /// the service ended), at most `timeout`. Returns how many were still
    /// open then (what is left in them is lost).
    pub fn finish(&self, timeout: std::time::Duration) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.closing = true;
        let Some(done) = g.done.take() else { return 0 };
        drop(g);
        self.wake();
        if done.recv_timeout(timeout).is_ok() {
            return 0;
        }
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).active
    }

    fn run(&self) {
        let mut relays: Vec<Relay> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            {
                let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                relays.append(&mut g.pending);
                if g.closing && relays.is_empty() {
                    return;
                }
            }
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let ready: Vec<bool> = {
                let mut pfds: Vec<PollFd> =
                    std::iter::once(&self.wake_rd).chain(relays.iter().map(|r| &r.from)).map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)).collect();
                if poll(&mut pfds, PollTimeout::NONE).is_err() {
                    continue;
                }
                pfds.iter().map(|p| p.revents().is_some_and(|r| !r.is_empty())).collect()
            };
            if ready[0] {
                // Our own non-blocking pipe: drained.
                while matches!(nix::unistd::read(self.wake_rd.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
            }
            for i in (0..relays.len()).rev() {
                if ready[i + 1] && !self.pump(&relays[i], &mut buf) {
                    relays.swap_remove(i);
                    self.inner.lock().unwrap_or_else(|e| e.into_inner()).active -= 1;
                }
            }
        }
    }

    /// Moves what is queued in `r`'s pipe to its file. `false`: EOF, the
    /// relay is done.
    fn pump(&self, r: &Relay, buf: &mut [u8]) -> bool {
        // A few reads per wake-up, so that one busy writer cannot starve the others.
        for _ in 0..16 {
            match nix::unistd::read(r.from.as_raw_fd(), buf) {
                Ok(0) => return false,
                Err(e) => return matches!(e, nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR),
                Ok(n) => {
                    if let Err(e) = write_all(&r.file, &buf[..n]) {
                        // The service's data cannot be kept; it must not be
                        // blocked either: say so, and go on reading.
                        eprintln!("capexec: {}: broker: append to {} failed: {e}; {n} bytes were lost", self.unit, capexec_decl::terminal::safe(&r.path));
                    }
                }
            }
        }
        true
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn relays_in_order_until_every_writer_closed() {
        let dir = std::env::temp_dir().join(format!("capexec-append-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        std::fs::write(&path, "before\n").unwrap();
        let open = || -> OwnedFd { std::fs::OpenOptions::new().append(true).open(&path).unwrap().into() };
        let a = Arc::new(Appender::new("test").unwrap());
        let w1 = std::fs::File::from(a.relay(open(), false, "log").unwrap());
        let w2 = std::fs::File::from(a.relay(open(), false, "log").unwrap());
        for (mut w, tag) in [(w1, "one"), (w2, "two")] {
            for i in 0..1000 {
                // One write per line (writeln! on a File writes each piece
                // apart): a write reaches the file whole, pieces may not.
                w.write_all(format!("{tag} {i}\n").as_bytes()).unwrap();
            }
        }
        assert_eq!(a.finish(std::time::Duration::from_secs(10)), 0);
        let mut text = String::new();
        std::fs::File::open(&path).unwrap().read_to_string(&mut text).unwrap();
        assert!(text.starts_with("before\n"));
        for tag in ["one", "two"] {
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(tag)).collect();
            assert_eq!(lines.len(), 1000, "every line of {tag} arrived");
            assert!(lines.iter().enumerate().all(|(i, l)| *l == format!("{tag} {i}")), "in order");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn finish_gives_up_on_a_writer_that_stays() {
        let a = Arc::new(Appender::new("test").unwrap());
        let f: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let _held = a.relay(f, false, "/dev/null").unwrap();
        assert_eq!(a.finish(std::time::Duration::from_millis(50)), 1);
    }

    #[test]
    fn too_many_relays_fail_with_emfile() {
        let mut a = Appender::new("test").unwrap();
        a.max = 3;
        let a = Arc::new(a);
        let null = || -> OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
        let held: Vec<OwnedFd> = (0..3).map(|_| a.relay(null(), false, "/dev/null").unwrap()).collect();
        let e = a.relay(null(), false, "/dev/null").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
        drop(held);
        // The relays end at EOF and make room again.
        let start = std::time::Instant::now();
        while a.relay(null(), false, "/dev/null").is_err() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "closed relays were not released");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
