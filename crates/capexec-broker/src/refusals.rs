//! Rootless, a brokered service's refused syscalls. No audit log is
//! readable without root, so the service's filter hands its errno refusals
//! to a listener; the kernel allows one listener in a filter chain, and the
//! broker's is there, so one program does both filters' work and its
//! listener is the broker's (`capexec_sandbox::SetupPlan::refusals_to_broker`).
//! The broker tells a refusal from a call it answers by running the
//! service's own filter on the call: where that filter gives an errno, the
//! call was refused, and is answered with that errno, never let through,
//! and told (the daemon's trail, or the service's log), a loop on it
//! counted (`fix::Repeats`).

use crate::{Broker, Refuser, Report};
use capexec_decl::{fix, ServiceSpec};
use capexec_sandbox::seccomp::sock_filter;
use capexec_sys::notify::Notif;
use std::time::Instant;

/// The service's filter, which judges each call, and its declaration,
/// which the fix of a refusal names.
pub(crate) struct Judge {
    prog: Vec<sock_filter>,
    spec: ServiceSpec,
}

impl Judge {
    pub(crate) fn new(prog: Vec<sock_filter>, spec: &ServiceSpec) -> Judge {
        Judge { prog, spec: spec.clone() }
    }

    /// The errno the service's filter refuses `n` with; `None`: it lets
    /// it run, so the call is one the broker answers.
    pub(crate) fn refuses(&self, n: &Notif) -> Option<i32> {
        capexec_sandbox::seccomp::refusal_errno(&self.prog, n.nr as u32, n.args)
    }
}

/// A refused call, as the report names it.
#[derive(Clone)]
pub(crate) struct Refused {
    pid: i32,
    nr: i64,
    comm: String,
}

/// The refusals told by the notification thread, a loop on one counted.
#[derive(Default)]
pub(crate) struct Told {
    repeats: fix::Repeats<Refused>,
}

impl Told {
    /// Answers refused call `n` with `errno` and tells it (or counts it).
    pub(crate) fn refuse(&mut self, b: &Broker, l: &capexec_sys::notify::Listener, n: &Notif, errno: i32) {
        // Read before the answer: the thread may end right after it.
        let r = Refused { pid: n.process(), nr: n.nr, comm: n.comm() };
        // ENOENT: the thread went away meanwhile; its call was refused all the same.
        let _ = l.fail(n.id, errno);
        let key = format!("{} {}", r.nr, r.comm);
        if let Some(told) = self.repeats.add(key, r, Instant::now()) {
            tell(b, told);
        }
    }

    /// How long until repeats are due to be told (`None`: none are).
    pub(crate) fn until_due(&self) -> Option<std::time::Duration> {
        self.repeats.next_due().map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Tells the repeats due now.
    pub(crate) fn due(&mut self, b: &Broker) {
        for told in self.repeats.due(Instant::now()) {
            tell(b, told);
        }
    }

    /// Tells every repeat counted: the service is gone.
    pub(crate) fn rest(&mut self, b: &Broker) {
        for told in self.repeats.rest() {
            tell(b, told);
        }
    }
}

fn tell(b: &Broker, (r, count): (Refused, u64)) {
    let Some(judge) = &b.judge else { return };
    let Some((what, fix)) = fix::refused_syscall(r.nr, &r.comm, &judge.spec) else { return };
    b.tell(Report { by: Refuser::Seccomp, what, fix, pid: Some(r.pid), count });
}
