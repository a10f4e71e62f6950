//! Each service's stdout and stderr: read from pipes by the daemon, written as
//! lines to the journal (when one runs) or to size-rotated files, and kept in a
//! short in-memory tail for `capexec status`.
//!
//! The daemon never stops reading a service's pipes, so a service is never
//! blocked for longer than one write of the daemon's. A line that cannot be
//! written (disk full, journal busy) is dropped and counted; the count shows in
//! `capexec status` and the next line that is written says how many were lost.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Lines longer than this are split (as journald does with LineMax).
pub const MAX_LINE: usize = 16 * 1024;
/// Lines kept in memory per service for `capexec status`.
pub const TAIL: usize = 10;
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

#[derive(Debug, Clone)]
pub enum Target {
    /// `<dir>/<unit>.log`, renamed to `.1`, `.2`, ... when it exceeds `max_size`.
    Files { dir: PathBuf, max_size: u64, keep: u32 },
    /// systemd-journald's native protocol, with CAPEXEC_UNIT= and SYSLOG_IDENTIFIER=.
    Journal { socket: PathBuf },
}

impl Target {
    /// The journal when its socket exists (or `CAPEXEC_JOURNAL_SOCKET` names
    /// one), otherwise files in `dir`.
    pub fn detect(dir: &Path, max_size: u64) -> Target {
        let socket = std::env::var_os("CAPEXEC_JOURNAL_SOCKET").map(PathBuf::from).unwrap_or_else(|| JOURNAL_SOCKET.into());
        if socket.exists() {
            Target::Journal { socket }
        } else {
            Target::Files { dir: dir.to_path_buf(), max_size, keep: 3 }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Files { dir, max_size, keep } => format!("files in {} (rotated at {} bytes, {} kept)", dir.display(), max_size, keep),
            Target::Journal { socket } => format!("the journal ({})", socket.display()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

struct Inner {
    tail: VecDeque<String>,
    file: Option<std::fs::File>,
    size: u64,
    journal: Option<std::os::unix::net::UnixDatagram>,
    /// Dropped since the last line that was written.
    unreported: u64,
}

/// One service's log: shared by its pipe readers and the daemon.
pub struct LogSink {
    unit: String,
    target: Target,
    pub dropped: AtomicU64,
    inner: Mutex<Inner>,
    /// `capexec logs -f` subscribers; created on the first one (a channel
    /// preallocates its slots, which a thousand idle services should not pay for).
    follow: Mutex<Option<broadcast::Sender<Arc<str>>>>,
}

impl LogSink {
    pub fn new(unit: &str, target: Target) -> Arc<LogSink> {
        Arc::new(LogSink {
            unit: unit.to_owned(),
            target,
            dropped: AtomicU64::new(0),
            inner: Mutex::new(Inner { tail: VecDeque::new(), file: None, size: 0, journal: None, unreported: 0 }),
            follow: Mutex::new(None),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        let mut f = self.follow.lock().expect("log lock");
        f.get_or_insert_with(|| broadcast::channel(1024).0).subscribe()
    }

    pub fn tail(&self) -> Vec<String> {
        self.inner.lock().expect("log lock").tail.iter().cloned().collect()
    }

    pub fn file(&self) -> Option<PathBuf> {
        match &self.target {
            Target::Files { dir, .. } => Some(dir.join(format!("{}.log", self.unit))),
            Target::Journal { .. } => None,
        }
    }

    /// A line from capexec itself about the service (started, exited, ...).
    pub fn note(&self, text: &str) {
        self.write_lines(&[(Stream::Stderr, format!("capexec: {text}"))], false);
    }

    /// `from_service`: the service's own output (stderr lines get an `err: `
    /// tag); otherwise a note of capexec's, already marked as such.
    fn write_lines(&self, lines: &[(Stream, String)], from_service: bool) {
        let mut inner = self.inner.lock().expect("log lock");
        let now = rfc3339_now();
        let mut out = String::new();
        let mut formatted = Vec::with_capacity(lines.len());
        if inner.unreported > 0 {
            let n = inner.unreported;
            formatted.push((Stream::Stderr, format!("{now} capexec: {n} log lines of this service were dropped (could not be written)")));
        }
        for (stream, text) in lines {
            let tag = if from_service && matches!(stream, Stream::Stderr) { "err: " } else { "" };
            formatted.push((*stream, format!("{now} {tag}{text}")));
        }
        let written = match &self.target {
            Target::Files { dir, max_size, keep } => {
                for (_, l) in &formatted {
                    out.push_str(l);
                    out.push('\n');
                }
                self.write_file(&mut inner, dir, *max_size, *keep, out.as_bytes())
            }
            Target::Journal { socket } => self.write_journal(&mut inner, socket, &formatted),
        };
        match written {
            Ok(()) => inner.unreported = 0,
            Err(lost) => {
                inner.unreported += lost;
                self.dropped.fetch_add(lost, Ordering::Relaxed);
            }
        }
        let follow = self.follow.lock().expect("log lock").clone().filter(|f| f.receiver_count() > 0);
        for (_, l) in formatted {
            if let Some(f) = &follow {
                let _ = f.send(Arc::from(l.as_str()));
            }
            if inner.tail.len() == TAIL {
                inner.tail.pop_front();
            }
            inner.tail.push_back(l);
        }
    }

    /// Err(n): n lines could not be written.
    fn write_file(&self, inner: &mut Inner, dir: &Path, max_size: u64, keep: u32, data: &[u8]) -> Result<(), u64> {
        let lines = data.iter().filter(|b| **b == b'\n').count() as u64;
        let path = dir.join(format!("{}.log", self.unit));
        if inner.file.is_some() && inner.size + data.len() as u64 > max_size {
            inner.file = None;
            for i in (1..keep).rev() {
                let _ = std::fs::rename(rotated(&path, i), rotated(&path, i + 1));
            }
            let _ = std::fs::rename(&path, rotated(&path, 1));
        }
        if inner.file.is_none() {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|_| lines)?;
            inner.size = f.metadata().map(|m| m.len()).unwrap_or(0);
            inner.file = Some(f);
        }
        let f = inner.file.as_mut().expect("opened above");
        match f.write_all(data) {
            Ok(()) => {
                inner.size += data.len() as u64;
                Ok(())
            }
            Err(_) => {
                inner.file = None;
                Err(lines)
            }
        }
    }

    fn write_journal(&self, inner: &mut Inner, socket: &Path, lines: &[(Stream, String)]) -> Result<(), u64> {
        if inner.journal.is_none() {
            let s = std::os::unix::net::UnixDatagram::unbound().map_err(|_| lines.len() as u64)?;
            let _ = s.set_nonblocking(true);
            inner.journal = Some(s);
        }
        let sock = inner.journal.as_ref().expect("created above");
        let mut lost = 0;
        for (stream, line) in lines {
            // The timestamp is the journal's own; send only the text.
            let text = line.split_once(' ').map_or(line.as_str(), |(_, t)| t);
            let prio = match stream {
                Stream::Stdout => 6,
                Stream::Stderr => 3,
            };
            let msg = format!("MESSAGE={text}\nPRIORITY={prio}\nSYSLOG_IDENTIFIER={0}\nCAPEXEC_UNIT={0}\n", self.unit);
            if sock.send_to(msg.as_bytes(), socket).is_err() {
                lost += 1;
            }
        }
        if lost > 0 {
            Err(lost)
        } else {
            Ok(())
        }
    }
}

pub fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Runs `f` with the read buffer shared by every pipe reader of the
/// (single-threaded) event loop, instead of one living in each task: a
/// thousand services would otherwise hold three thousand idle buffers (their
/// output, their errors, their broker's reports).
pub(crate) fn with_read_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
    }
    BUF.with_borrow_mut(|buf| f(buf))
}

/// Reads one of the service's pipes until EOF (every process holding the
/// write end has exited).
pub async fn read_pipe(sink: Arc<LogSink>, fd: OwnedFd, stream: Stream) {
    let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(r) => r,
        Err(e) => {
            sink.note(&format!("cannot read the service's output: {e}"));
            return;
        }
    };
    let mut partial: Vec<u8> = Vec::new();
    loop {
        if rx.readable().await.is_err() {
            break;
        }
        let lines = with_read_buffer(|buf| match rx.try_read(buf) {
            Ok(0) => None,
            Ok(n) => Some(split_lines(&buf[..n], &mut partial, stream)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Some(Vec::new()),
            Err(_) => None,
        });
        match lines {
            None => break,
            Some(lines) if !lines.is_empty() => sink.write_lines(&lines, true),
            Some(_) => {}
        }
    }
    if !partial.is_empty() {
        sink.write_lines(&[(stream, String::from_utf8_lossy(&partial).into_owned())], true);
    }
}

/// Most of one syslog datagram that is read (syslog(3) itself sends at most
/// what fits its buffer; the rest of a longer one is cut).
pub const SYSLOG_MAX: usize = 8 * 1024;

/// One datagram from a service's /dev/log as a line of its log: its
/// severity (the low bits of its `<PRI>`; 6, info, without one) and its
/// text without the `<PRI>` and the timestamp (the log has its own):
/// RFC 3164's `Mmm dd hh:mm:ss ` (glibc's syslog(3)) or RFC 5424's
/// `1 TIMESTAMP `. Control characters become spaces, so that a message
/// cannot forge a line of its own. `sender` is the sending process as the
/// host sees it (SO_PASSCRED): the pid the message names (`TAG[PID]:`, or
/// RFC 5424's PROCID) is its own pid namespace's (gpsd's said `gpsd[3]`),
/// which names nothing on the host; the sender's replaces it.
pub fn syslog_line(d: &[u8], sender: Option<i32>) -> (u8, String) {
    let (severity, rest) = match d.strip_prefix(b"<").and_then(|r| {
        let end = r.iter().take(4).position(|b| *b == b'>')?;
        let pri: u16 = std::str::from_utf8(&r[..end]).ok()?.parse().ok()?;
        Some(((pri & 7) as u8, &r[end + 1..]))
    }) {
        Some(p) => p,
        None => (6, d),
    };
    let is_3164_time =
        |r: &[u8]| r.len() > 16 && r[3] == b' ' && r[6] == b' ' && r[9] == b':' && r[12] == b':' && r[15] == b' ' && r[..3].iter().all(u8::is_ascii_alphabetic);
    let (rest, rfc5424) = if is_3164_time(rest) {
        (&rest[16..], false)
    } else if let Some(r) = rest.strip_prefix(b"1 ") {
        (r.iter().position(|b| *b == b' ').map_or(r, |i| &r[i + 1..]), true)
    } else {
        (rest, false)
    };
    let text: String = String::from_utf8_lossy(rest).trim_end_matches(['\n', '\0']).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let text = match sender {
        Some(pid) => with_host_pid(text, pid, rfc5424),
        None => text,
    };
    (severity, text)
}

/// `text` (a syslog message without its priority and timestamp) with the
/// pid its header gives replaced by `pid`: `TAG[PID]: ` at its start, or
/// RFC 5424's PROCID (`HOST APP PROCID ...`). A header without a pid stays
/// as it is.
fn with_host_pid(text: String, pid: i32, rfc5424: bool) -> String {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let span = if rfc5424 {
        // The third field.
        let mut starts = text.match_indices(' ').map(|(i, _)| i + 1);
        match (starts.next(), starts.next()) {
            (Some(_), Some(third)) => {
                let end = text[third..].find(' ').map_or(text.len(), |e| third + e);
                Some((third, end))
            }
            _ => None,
        }
    } else {
        // The tag ends at the first space.
        let head = text.split(' ').next().unwrap_or("");
        match (head.find('['), head.strip_suffix("]:")) {
            (Some(open), Some(_)) => Some((open + 1, head.len() - 2)),
            _ => None,
        }
    };
    match span {
        Some((a, b)) if digits(&text[a..b]) => format!("{}{pid}{}", &text[..a], &text[b..]),
        _ => text,
    }
}

/// Reads the service's syslog socket until `end` fires or is dropped (the
/// run is over), then what is left in it: each datagram is a line of the
/// service's log, an error's (severity err and above) on the side of its
/// stderr.
pub async fn read_syslog(sink: Arc<LogSink>, fd: OwnedFd, mut end: tokio::sync::oneshot::Receiver<()>) {
    let sock = std::os::unix::net::UnixDatagram::from(fd);
    let sock = match sock.set_nonblocking(true).and_then(|()| tokio::net::UnixDatagram::from_std(sock)) {
        Ok(s) => s,
        Err(e) => {
            sink.note(&format!("cannot read the service's /dev/log: {e}"));
            return;
        }
    };
    // Every datagram waiting; false once the socket fails. The buffer is
    // the pipe readers' (a thousand services, a thousand idle sockets).
    let drain = || loop {
        let got = with_read_buffer(|buf| {
            sock.try_io(tokio::io::Interest::READABLE, || crate::notify::recv_with_pid(sock.as_fd(), &mut buf[..SYSLOG_MAX]))
                .map(|(n, pid)| syslog_line(&buf[..n], pid))
        });
        match got {
            Ok((severity, text)) => {
                let stream = if severity <= 3 { Stream::Stderr } else { Stream::Stdout };
                sink.write_lines(&[(stream, text)], true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    };
    loop {
        tokio::select! {
            ready = sock.readable() => if ready.is_err() || !drain() {
                return;
            },
            _ = &mut end => break,
        }
    }
    drain();
}

/// Complete lines of `data` (after what `partial` held), splitting lines
/// longer than MAX_LINE; an unfinished line stays in `partial`.
fn split_lines(data: &[u8], partial: &mut Vec<u8>, stream: Stream) -> Vec<(Stream, String)> {
    let mut lines = Vec::new();
    for chunk in data.split_inclusive(|b| *b == b'\n') {
        partial.extend_from_slice(chunk);
        if partial.last() == Some(&b'\n') {
            partial.pop();
            lines.push((stream, String::from_utf8_lossy(partial).into_owned()));
            partial.clear();
        } else if partial.len() >= MAX_LINE {
            lines.push((stream, String::from_utf8_lossy(partial).into_owned()));
            partial.clear();
        }
    }
    if partial.capacity() > MAX_LINE * 2 && partial.is_empty() {
        *partial = Vec::new();
    }
    lines
}

/// The last `n` lines of a service's log files (current and rotated).
pub fn read_tail(file: &Path, n: usize) -> std::io::Result<Vec<String>> {
    let mut lines: VecDeque<String> = VecDeque::with_capacity(n.min(4096));
    if n == 0 {
        return Ok(Vec::new());
    }
    // Newest first: the current file, then .1, .2, ... until n lines are found.
    let mut chain = vec![file.to_path_buf()];
    for i in 1..=9 {
        let r = rotated(file, i);
        if !r.exists() {
            break;
        }
        chain.push(r);
    }
    for p in &chain {
        let text = match std::fs::read(p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && p == file => Vec::new(),
            Err(e) => return Err(e),
        };
        for l in String::from_utf8_lossy(&text).lines().rev() {
            if lines.len() == n {
                return Ok(lines.into());
            }
            lines.push_front(l.to_owned());
        }
    }
    Ok(lines.into())
}

pub use capexec_sys::clock::{rfc3339, rfc3339_now};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_datagrams_become_lines() {
        // glibc's syslog(3): RFC 3164 with a timestamp.
        assert_eq!(syslog_line(b"<30>Dec  4 18:42:07 knotd[12]: info: server started", None), (6, "knotd[12]: info: server started".into()));
        assert_eq!(syslog_line(b"<11>Dec 14 08:02:59 sshd[7]: error: bad\nline\x1b[31m\n", None), (3, "sshd[7]: error: bad line [31m".into()));
        // RFC 5424 (logger --rfc5424): the version and the timestamp go.
        assert_eq!(syslog_line(b"<13>1 2026-12-04T18:42:07.123Z host app 12 - - text", None), (5, "host app 12 - - text".into()));
        // No <PRI>, or a broken one: all of it is the text, as info.
        assert_eq!(syslog_line(b"plain", None), (6, "plain".into()));
        assert_eq!(syslog_line(b"<99999>x", None), (6, "<99999>x".into()));
        assert_eq!(syslog_line(b"<3>", None), (3, "".into()));
    }

    /// The pid a message's header names is the sender's pid namespace's;
    /// the host's pid of the sender replaces it. Headers without one, and
    /// pids later in the text, stay as they are.
    #[test]
    fn the_sender_is_named_by_its_host_pid() {
        let host = |d: &[u8]| syslog_line(d, Some(4242)).1;
        assert_eq!(host(b"<30>Dec  4 18:42:07 gpsd[3]: gpsd:INFO: launching (Version 3.22)"), "gpsd[4242]: gpsd:INFO: launching (Version 3.22)");
        assert_eq!(host(b"<13>1 2026-12-04T18:42:07.123Z host app 3 - - [x] text"), "host app 4242 - - [x] text");
        assert_eq!(host(b"<13>1 2026-12-04T18:42:07.123Z host app - - - text"), "host app - - - text");
        assert_eq!(host(b"<30>Dec  4 18:42:07 cron: started pid[3]:"), "cron: started pid[3]:");
        assert_eq!(host(b"<30>Dec  4 18:42:07 x[a3]: y"), "x[a3]: y");
        assert_eq!(host(b"plain[3]:"), "plain[4242]:");
    }

    #[test]
    fn rotation_and_tail() {
        let dir = std::env::temp_dir().join(format!("capexec-logs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sink = LogSink::new("u", Target::Files { dir: dir.clone(), max_size: 4096, keep: 2 });
        for i in 0..500 {
            sink.write_lines(&[(Stream::Stdout, format!("line {i}"))], true);
        }
        let file = dir.join("u.log");
        assert!(std::fs::metadata(&file).unwrap().len() <= 4096);
        assert!(rotated(&file, 1).exists() && rotated(&file, 2).exists() && !rotated(&file, 3).exists());
        let t = read_tail(&file, 3).unwrap();
        assert_eq!(t.len(), 3);
        assert!(t[2].ends_with(" line 499") && t[0].ends_with(" line 497"), "{t:?}");
        // More lines than the current file holds come from the rotated one.
        let t = read_tail(&file, 150).unwrap();
        assert_eq!(t.len(), 150);
        assert!(t[0].ends_with(" line 350"), "{:?}", &t[0]);
        assert_eq!(sink.tail().len(), TAIL);
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
