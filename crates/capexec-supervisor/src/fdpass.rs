//! Messages with file descriptors over a SOCK_SEQPACKET socket: one message per
//! record, the fds in an SCM_RIGHTS control message. Used between the daemon
//! and its launcher.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Largest message either side sends (a ServiceSpec as JSON is a few KiB; the
/// socket's default send buffer, ~208 KiB, bounds a record anyway).
pub const MAX_MESSAGE: usize = 160 * 1024;
pub const MAX_FDS: usize = 4;

pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?)
}

pub fn send(fd: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    if data.len() > MAX_MESSAGE || fds.len() > MAX_FDS {
        return Err(std::io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    capexec_sys::send_fds(fd, data, fds, libc::MSG_NOSIGNAL).map(drop)
}

/// Receives one record. `Ok(None)` is end of file (the peer is gone). A record
/// that was truncated is an error (EMSGSIZE), its fds closed.
pub fn recv(fd: RawFd, buf: &mut Vec<u8>) -> std::io::Result<Option<(usize, Vec<OwnedFd>)>> {
    buf.resize(MAX_MESSAGE, 0);
    let r = capexec_sys::recv_fds(fd, buf, 0)?;
    if r.truncated {
        return Err(std::io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    if r.bytes == 0 && r.fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((r.bytes, r.fds)))
}

pub fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(|f| f.as_raw_fd()).collect()
}
