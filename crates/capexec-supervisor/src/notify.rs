//! The service's NOTIFY_SOCKET (sd_notify protocol): a datagram socket per
//! service run, in a directory of its own that the launcher binds read-only
//! into the service's view. Every user may send to it, since a daemon started
//! as root speaks after it has switched to its own user (named as bind), as
//! systemd's own socket lets everyone send; each message comes with the
//! sender's pid (SO_PASSCRED), and the daemon takes it only from a process of
//! the service (see `Daemon::notify`).

use crate::SupervisorError;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::sync::mpsc::UnboundedSender;

/// sd_notify messages are short; systemd reads at most a page or so.
const MAX_MESSAGE: usize = 4096;

pub fn listen<E: Send + 'static>(
    dir: &Path,
    owner: (u32, u32),
    unit: &str,
    run: u64,
    tx: UnboundedSender<E>,
    make: fn(String, u64, String, Option<i32>) -> E,
) -> Result<tokio::task::AbortHandle, SupervisorError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(SupervisorError::path("create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(SupervisorError::path("set permissions of", dir))?;
    let path = dir.join("notify");
    let sock = tokio::net::UnixDatagram::bind(&path).map_err(SupervisorError::path("create the notify socket", &path))?;
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)).map_err(SupervisorError::path("chown", &path))?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(SupervisorError::path("set permissions of", &path))?;
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)
        .map_err(|e| SupervisorError::path("set SO_PASSCRED on", &path)(e.into()))?;
    let unit = unit.to_owned();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            if sock.readable().await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
            match sock.try_io(tokio::io::Interest::READABLE, || recv_with_pid(sock.as_fd(), &mut buf)) {
                Ok((n, pid)) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if tx.send(make(unit.clone(), run, msg, pid)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    Ok(task.abort_handle())
}

/// One datagram and its sender's pid (as this pid namespace sees it), from
/// the credentials the kernel attaches under SO_PASSCRED (none where the
/// receiving socket lacks it). Never blocks.
pub fn recv_with_pid(sock: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<(usize, Option<i32>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr, UnixCredentials};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(UnixCredentials);
    let m = recvmsg::<UnixAddr>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC)?;
    // A message that carried descriptors too overflows the buffer (they are
    // never taken: the kernel closes what does not fit), and nix then reads
    // no control message at all: such a message comes without its sender.
    // Failing on it ended the reader of a service's /dev/log.
    let pid = m.cmsgs().ok().and_then(|mut c| {
        c.find_map(|c| match c {
            ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
            _ => None,
        })
    });
    Ok((m.bytes, pid))
}
