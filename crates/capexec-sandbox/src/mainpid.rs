//! A notify service's main process may change, as sd_notify(3) allows: a
//! daemon that replaces itself (gdnsd's `gdnsdctl replace`, its unit's
//! ExecReload=) starts a successor, which says `MAINPID=<its pid>` on
//! NOTIFY_SOCKET and then tells the old process to exit. systemd takes the
//! named process as the service's main from then on; without that, the old
//! one's exit ends the service.
//!
//! Here init stands for the main process (it ends the sandbox when that
//! ends), but what the service says goes to whoever reads its socket: the
//! daemon, or `capexec exec`'s relay. So when the main process has ended,
//! init asks on that same socket ([`QUESTION`]) and waits for the answer, a
//! queued [`answer_signal`] whose value is the pid the service named last
//! (in the service's pid namespace, which is init's), or 0. Datagrams on one
//! socket are read in the order they were sent: a MAINPID= sent before the
//! old process exited is read before init's question, however late its
//! reader runs. Init trusts the answer only as far as it names one of its
//! own children (the successor is an orphan of the old main process, which
//! init adopts); anyone on the socket may ask, and an answer to a question
//! init did not ask is dropped before it asks its own.

/// What init sends when the main process has ended. Not one of sd_notify's
/// assignments: a relay drops it, as systemd would.
pub const QUESTION: &str = "X_CAPEXEC_MAIN_EXITED=1";

/// The signal that carries the answer (its value, from sigqueue). Not a
/// real-time one: those queue every instance, and a service asking over and
/// over would pile answers up against its user's RLIMIT_SIGPENDING (and
/// make its reader log each refused one); a standard signal stays pending
/// once, the rest dropped. No one else sends init SIGPWR (an init system
/// sends it to the host's pid 1 on a power failure).
pub fn answer_signal() -> libc::c_int {
    libc::SIGPWR
}

/// What a reader of a notify service's socket keeps: the main process the
/// service named last.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    pub pid: Option<i32>,
}

impl Announced {
    /// Reads one message: a `MAINPID=` is kept; `true` when the message
    /// is init's question.
    pub fn hear(&mut self, msg: &str) -> bool {
        let mut asked = false;
        for line in msg.split('\n') {
            if line == QUESTION {
                asked = true;
            } else if let Some(pid) = line.strip_prefix("MAINPID=").and_then(|p| p.parse::<i32>().ok()).filter(|p| *p > 1) {
                self.pid = Some(pid);
            }
        }
        asked
    }
}

/// Answers init (`init`, its pid as the caller sees it) with the main
/// process the service named last.
pub fn answer(init: libc::pid_t, announced: Announced) -> std::io::Result<()> {
    capexec_sys::process::queue_signal(init, answer_signal(), announced.pid.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_named_main_process_is_kept_and_the_question_told() {
        let mut a = Announced::default();
        assert!(!a.hear("READY=1"));
        assert_eq!(a.pid, None);
        assert!(!a.hear("MAINPID=7210\nREADY=1"));
        assert!(!a.hear("MAINPID=1\nMAINPID=x\nMAINPID=-3"), "init itself, garbage and a negative pid are no main process");
        assert_eq!(a.pid, Some(7210));
        assert!(a.hear(QUESTION));
        assert!(a.hear(&format!("STATUS=x\n{QUESTION}\n")));
    }
}
