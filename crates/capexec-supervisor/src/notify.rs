//! The service's NOTIFY_SOCKET (sd_notify protocol): a datagram socket per
//! service run, in a directory of its own that the launcher binds read-only
//! into the service's view. Only the service's uid may write to it, and no other
//! service can see it, so whatever arrives there comes from this service.

use crate::SupervisorError;
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
    make: fn(String, u64, String) -> E,
) -> Result<tokio::task::AbortHandle, SupervisorError> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(SupervisorError::path("create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(SupervisorError::path("set permissions of", dir))?;
    let path = dir.join("notify");
    let sock = tokio::net::UnixDatagram::bind(&path).map_err(SupervisorError::path("create the notify socket", &path))?;
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)).map_err(SupervisorError::path("chown", &path))?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(SupervisorError::path("set permissions of", &path))?;
    let unit = unit.to_owned();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if tx.send(make(unit.clone(), run, msg)).is_err() {
                        break;
                    }
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    Ok(task.abort_handle())
}
