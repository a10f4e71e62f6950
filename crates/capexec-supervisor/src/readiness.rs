//! Readiness by a listening address (`service.ready_address`, and `capexec
//! learn`'s `--wait-for`): a service is ready once one of its addresses
//! accepts a connection, checked from the host. The check connects and
//! closes at once: the service sees one connection that sends nothing.

use capexec_decl::spec::ReadyAddr;
use std::time::Duration;

/// Whether `a` accepts a connection now (a Unix path: as a stream or a
/// datagram socket). Blocks for at most 200 ms.
pub fn accepts(a: &ReadyAddr) -> bool {
    use std::os::unix::net::{UnixDatagram, UnixStream};
    match a {
        ReadyAddr::Tcp(a) => std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok(),
        ReadyAddr::Unix(p) => {
            // The path is in a directory the service writes: it could make
            // it (or a directory on the way) a link to another socket on
            // the host, which the daemon, as root, would then connect to.
            // So the socket is opened without following any link, and
            // connected to through that descriptor.
            let Some(fd) = socket_no_links(p) else { return false };
            let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            UnixStream::connect(&via).is_ok() || UnixDatagram::unbound().and_then(|d| d.connect(&via)).is_ok()
        }
    }
}

/// An O_PATH descriptor of the socket at `p`, reached one directory at a
/// time from `/` without following a link; `None` for anything else.
fn socket_no_links(p: &std::path::Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    let (parent, name) = (p.parent()?, p.file_name()?);
    let dir = capexec_sys::open_dir_no_links(parent).ok()?;
    let name = std::ffi::CString::new(name.as_encoded_bytes()).ok()?;
    let fd = capexec_sys::open_at(dir.as_fd(), &name, libc::O_PATH | libc::O_NOFOLLOW, 0).ok()?;
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(fd)
}

/// Waits until one of `addrs` accepts: tries at once, then after 10 ms,
/// doubling up to 200 ms between tries. The caller bounds the wait (the
/// daemon's ready timer ends the start).
pub async fn until_accepting(addrs: Vec<ReadyAddr>) {
    let mut pause = Duration::from_millis(10);
    loop {
        let a = addrs.clone();
        if tokio::task::spawn_blocking(move || a.iter().any(accepts)).await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
