//! Rootless, the daemon's share of a service's refused syscalls. No audit
//! log is readable without root, so the launcher starts a service with its
//! filter's errno refusals handed to a seccomp
//! listener (`SetupPlan::report_refusals`), and gives the daemon the
//! listener with that filter: the daemon answers each call with the errno
//! the filter gives it, never letting one through, and tells the service's
//! trail what it was. (A brokered service's broker holds its one listener,
//! and answers and tells them: `capexec_broker::Broker::judge_refusals`.)
//!
//! A service looping on a refused call would send the daemon's event loop
//! an event a call: its repeats are counted and told once a second
//! (`fix::Repeats`).

use crate::trail::{describe, Denial, Notified};
use capexec_decl::{fix, ServiceSpec};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Instant, SystemTime};

/// Calls answered in one go before the daemon's other work gets a turn.
const BATCH: usize = 256;

/// One service run's listener, the filter that judges its calls, and the
/// repeats counted.
pub struct Refusals {
    notified: Notified,
    spec: ServiceSpec,
    repeats: fix::Repeats<Denial>,
}

/// What [`Refusals::answer_waiting`] left.
#[derive(Debug, PartialEq, Eq)]
pub enum Left {
    /// No call waits now.
    Nothing,
    /// More calls wait than one batch took.
    More,
}

impl Refusals {
    /// `judge` is the program's own filter (the plan's `seccomp`), which
    /// the listener's filter was made from.
    pub fn new(listener: OwnedFd, judge: Vec<capexec_sandbox::seccomp::sock_filter>, spec: ServiceSpec) -> Refusals {
        Refusals { notified: Notified { listener: capexec_sys::notify::Listener::new(listener), judge }, spec, repeats: Default::default() }
    }

    /// Answers the calls that wait now, a batch at most; returns the
    /// denials to tell now.
    pub fn answer_waiting(&mut self, now: Instant) -> (Vec<Denial>, Left) {
        let mut out = Vec::new();
        for _ in 0..BATCH {
            // An error other than "no call waits" leaves nothing to answer:
            // the service's calls then fail with ENOSYS (still refused)
            // once the listener is closed.
            let Ok(Some(call)) = self.notified.listener.recv_now() else { return (out, Left::Nothing) };
            let record = self.notified.answer(&call);
            let pid = match record {
                crate::audit::Record::Seccomp { pid, .. } => Some(pid),
                _ => None,
            };
            let Some((mechanism, what, fix)) = describe(&record, &self.spec) else { continue };
            let d = Denial { at: Some(SystemTime::now()), mechanism, what, fix, pid, count: 1 };
            let key = format!("{mechanism} {}", d.what);
            out.extend(self.repeats.add(key, d, now).map(counted));
        }
        (out, Left::More)
    }

    /// The repeats whose second has ended, to tell now.
    pub fn due(&mut self, now: Instant) -> Vec<Denial> {
        self.repeats.due(now).into_iter().map(counted).collect()
    }

    /// When [`due`](Self::due) has something next.
    pub fn next_due(&self) -> Option<Instant> {
        self.repeats.next_due()
    }

    /// Every repeat counted, the run being over.
    pub fn rest(&mut self) -> Vec<Denial> {
        self.repeats.rest().into_iter().map(counted).collect()
    }
}

impl AsRawFd for Refusals {
    fn as_raw_fd(&self) -> RawFd {
        self.notified.listener.as_fd().as_raw_fd()
    }
}

/// A denial told for `n` calls (the first of them, or its repeats).
fn counted((d, n): (Denial, u64)) -> Denial {
    Denial { at: Some(SystemTime::now()), count: n, ..d }
}
