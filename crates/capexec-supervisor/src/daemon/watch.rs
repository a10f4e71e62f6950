//! Descriptors the daemon's tokio runtime watches for readiness: the one
//! place the daemon registers an fd with tokio, whose `AsyncFd::register`
//! is unsafe because a registered number must stay the same open file for
//! as long as it is watched.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Values that own their descriptor for as long as they live and answer
/// `as_raw_fd` with that same number throughout: only they are watched.
pub(super) trait OwnsItsFd: AsRawFd {}

impl OwnsItsFd for OwnedFd {}
/// Owns the seccomp listener it reads (crate::refusals).
impl OwnsItsFd for crate::refusals::Refusals {}
/// Owns the ring buffer's map (capexec_sandbox::netguard).
impl OwnsItsFd for capexec_sandbox::netguard::Refusals {}

/// `inner`, watched for `interest` by the current runtime.
pub(super) fn watch<T: OwnsItsFd>(inner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: an OwnsItsFd keeps its descriptor open, and the same number,
    // until the AsyncFd drops it (after deregistering it), which is all
    // register_with_interest asks of its caller.
    unsafe { AsyncFd::register_with_interest(inner, interest) }.map_err(io::Error::from)
}
