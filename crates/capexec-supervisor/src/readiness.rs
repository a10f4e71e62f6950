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
        ReadyAddr::Unix(p) => UnixStream::connect(p).is_ok() || UnixDatagram::unbound().and_then(|d| d.connect(p)).is_ok(),
    }
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
