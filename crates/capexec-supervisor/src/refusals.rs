//! Rootless, the daemon's share of a service's refused syscalls. No audit
//! log is readable without root, so the launcher starts a service (one
//! without a broker) with its filter's errno refusals handed to a seccomp
//! listener (`SetupPlan::report_refusals`), and gives the daemon the
//! listener with that filter: the daemon answers each call with the errno
//! the filter gives it, never letting one through, and tells the service's
//! trail what it was.
//!
//! A service looping on a refused call would send the daemon's event loop
//! an event a call. Here the first of each refusal in a second is told at
//! once and its repeats are counted, then told as one denial with their
//! count when the second ends: the loop costs the event loop an event a
//! second, the trail's total stays exact.

use crate::trail::{describe, Denial, Notified};
use capexec_decl::ServiceSpec;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime};

/// How long the repeats of a refusal told are counted before they are told.
const WINDOW: Duration = Duration::from_secs(1);

/// Distinct refusals whose repeats are counted at once; past them, each
/// refusal is told as it comes (a program making more than this many
/// different refused calls a second is rare, and still bounded by the
/// rate of its own calls, each of which waits for its answer).
const KEYS: usize = 64;

/// Calls answered in one go before the daemon's other work gets a turn.
const BATCH: usize = 256;

/// One service run's listener, the filter that judges its calls, and the
/// repeats counted.
pub struct Refusals {
    notified: Notified,
    spec: ServiceSpec,
    repeats: Repeats,
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
        Refusals { notified: Notified { listener: capexec_sys::notify::Listener::new(listener), judge }, spec, repeats: Repeats::default() }
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
            out.extend(self.repeats.add(d, now));
        }
        (out, Left::More)
    }

    /// The repeats whose second has ended, to tell now.
    pub fn due(&mut self, now: Instant) -> Vec<Denial> {
        self.repeats.due(now)
    }

    /// When [`due`](Self::due) has something next.
    pub fn next_due(&self) -> Option<Instant> {
        self.repeats.next_due()
    }

    /// Every repeat counted, the run being over.
    pub fn rest(&mut self) -> Vec<Denial> {
        self.repeats.rest()
    }
}

impl AsRawFd for Refusals {
    fn as_raw_fd(&self) -> RawFd {
        self.notified.listener.as_fd().as_raw_fd()
    }
}

/// The refusals told in the current second, by mechanism and what, with
/// their repeats since.
#[derive(Default)]
struct Repeats {
    told: HashMap<(&'static str, String), Told>,
}

struct Told {
    at: Instant,
    repeats: u64,
    denial: Denial,
}

impl Repeats {
    /// `d` now: the denial to tell now (with the repeats counted before it,
    /// if its second had ended), or nothing: counted.
    fn add(&mut self, d: Denial, now: Instant) -> Option<Denial> {
        let key = (d.mechanism, d.what.clone());
        if let Some(t) = self.told.get_mut(&key) {
            if now.duration_since(t.at) < WINDOW {
                t.repeats += 1;
                return None;
            }
            t.at = now;
            return Some(Denial { count: 1 + std::mem::take(&mut t.repeats), ..d });
        }
        if self.told.len() >= KEYS {
            self.told.retain(|_, t| t.repeats > 0 || now.duration_since(t.at) < WINDOW);
        }
        if self.told.len() < KEYS {
            self.told.insert(key, Told { at: now, repeats: 0, denial: d.clone() });
        }
        Some(d)
    }

    /// The repeats of the refusals whose second has ended, each as one
    /// denial with their count; each such refusal starts a new second, so
    /// that a loop on it is told once a second.
    fn due(&mut self, now: Instant) -> Vec<Denial> {
        let mut out = Vec::new();
        for t in self.told.values_mut().filter(|t| t.repeats > 0 && now.duration_since(t.at) >= WINDOW) {
            out.push(Denial { at: Some(SystemTime::now()), count: std::mem::take(&mut t.repeats), ..t.denial.clone() });
            t.at = now;
        }
        // The ones whose second ended with no repeats: nothing to keep.
        self.told.retain(|_, t| now.duration_since(t.at) < WINDOW);
        out
    }

    fn next_due(&self) -> Option<Instant> {
        self.told.values().filter(|t| t.repeats > 0).map(|t| t.at + WINDOW).min()
    }

    fn rest(&mut self) -> Vec<Denial> {
        self.told.drain().filter(|(_, t)| t.repeats > 0).map(|(_, t)| Denial { at: Some(SystemTime::now()), count: t.repeats, ..t.denial }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(what: &str) -> Denial {
        Denial { at: None, mechanism: "seccomp", what: what.into(), fix: "f".into(), pid: Some(7), count: 1 }
    }

    /// A loop on one refused call: told at once, then once a second with
    /// the count of its repeats; nothing is lost, whatever the order of
    /// arrivals and flushes.
    #[test]
    fn a_loop_is_told_once_a_second_with_its_count() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut told = Vec::new();
        told.extend(r.add(denial("a"), t0));
        for i in 1..1000 {
            told.extend(r.add(denial("a"), ms(i)));
        }
        assert_eq!(told.len(), 1, "one told in the first second");
        assert_eq!(r.next_due(), Some(ms(1000)));
        assert!(r.due(ms(999)).is_empty());
        let due = r.due(ms(1000));
        assert_eq!(due.iter().map(|d| d.count).collect::<Vec<_>>(), [999]);
        told.extend(due);
        // Repeats after the flush: counted in the new second, then told
        // with the next arrival after it, or by the run's end.
        told.extend(r.add(denial("a"), ms(1500)));
        told.extend(r.add(denial("a"), ms(2100)));
        assert_eq!(told.last().map(|d| d.count), Some(2), "the repeat before it, and itself");
        told.extend(r.add(denial("a"), ms(2200)));
        told.extend(r.rest());
        assert_eq!(told.iter().map(|d| d.count).sum::<u64>(), 1003, "every call counted");
        assert_eq!(r.next_due(), None);
    }

    /// Different refusals are each told at once; past KEYS of them, each
    /// is told as it comes (none is lost, none is held).
    #[test]
    fn distinct_refusals_are_told_at_once_and_bounded() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let told: Vec<_> = (0..200).filter_map(|i| r.add(denial(&format!("call {i}")), t0)).collect();
        assert_eq!(told.len(), 200);
        assert!(r.told.len() <= KEYS);
        let again: u64 = (0..200).filter_map(|i| r.add(denial(&format!("call {i}")), t0)).map(|d| d.count).sum();
        let later: u64 = r.due(t0 + WINDOW).iter().map(|d| d.count).sum();
        assert_eq!(again + later, 200, "each repeat told now or at its second's end");
        assert!(r.told.len() <= KEYS);
    }
}
