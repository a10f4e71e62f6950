//! Messages with file descriptors over a SOCK_SEQPACKET socket: one message per
//! record, the fds in an SCM_RIGHTS control message. Used between the daemon
//! and its launcher.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Largest message either side sends (a ServiceSpec as JSON is a few KiB; the
/// socket's default send buffer, ~208 KiB, bounds a record anyway).
pub const MAX_MESSAGE: usize = 160 * 1024;
pub const MAX_FDS: usize = 4;

pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    Ok(socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?)
}

pub fn send(fd: RawFd, data: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    if data.len() > MAX_MESSAGE {
        return Err(nix::errno::Errno::EMSGSIZE);
    }
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(fd, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one record. `Ok(None)` is end of file (the peer is gone). A record
/// that was truncated is an error (EMSGSIZE), its fds closed.
pub fn recv(fd: RawFd, buf: &mut Vec<u8>) -> nix::Result<Option<(usize, Vec<OwnedFd>)>> {
    buf.resize(MAX_MESSAGE, 0);
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(list) = c {
            // SAFETY: the kernel just installed these descriptors in our table for
            // this message; nobody else owns them.
            fds.extend(list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    let n = msg.bytes;
    if msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
        return Err(nix::errno::Errno::EMSGSIZE);
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((n, fds)))
}

pub fn raw(fds: &[OwnedFd]) -> Vec<RawFd> {
    fds.iter().map(|f| f.as_raw_fd()).collect()
}
