//! One explicit state machine per service, written as a transition table:
//! `(state, event) → (state, actions)`. The daemon feeds it events (a start was
//! requested, the main process exited, a timer fired, the cgroup is empty, ...) and
//! carries out the actions it returns (launch, signal, kill, arm a timer). Time is
//! passed in, so tests drive it with a fake clock. docs/state-machine.md shows the
//! same table.

use capexec_decl::spec::{RestartPolicy, ServiceType, Supervision};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Not running, and not asked to (initial state; after a requested stop).
    Stopped,
    /// Launched, not yet running (notify: waiting for READY=1).
    Starting,
    Running,
    /// Stop signal sent (or the main process ended): waiting until every process
    /// of the service is gone.
    Stopping,
    /// Ended by itself with success, and the policy does not restart it.
    Exited,
    /// Ended in failure without restart, or hit the start limit. Stays so until
    /// started by hand.
    Failed,
    /// Ended; a restart is scheduled after the backoff delay.
    WaitingToRestart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `capexec start`, or the daemon starting an enabled service.
    StartRequested,
    /// `capexec stop` (also daemon shutdown).
    StopRequested,
    /// The launcher reports the program was executed.
    Spawned,
    /// The sandbox could not be set up or the program not executed.
    SpawnFailed,
    /// An `exec.condition` command said the service is not to start now
    /// (systemd's `ExecCondition=` exiting 1 to 254).
    ConditionUnmet,
    /// READY=1 from a notify service.
    Ready,
    ReadyTimeout,
    WatchdogTimeout,
    /// The main process ended; `success` is exit status 0.
    MainExited {
        success: bool,
    },
    StopTimeout,
    /// No process of the service is left (cgroup empty).
    AllGone,
    RestartTimer,
    /// An `exec.start_post` command failed: the service is stopped, as failed.
    PostFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Ready,
    Watchdog,
    Stop,
    Restart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Launch,
    /// The declared stop signal to the main process.
    SendStopSignal,
    /// A stop of a service that ran (asked for, or after its start_post
    /// failed): its `exec.stop` commands first, then the stop signal if it
    /// still runs (systemd's `ExecStop=`). Without commands, as
    /// SendStopSignal. Not for a start that timed out or a missed
    /// watchdog: a service that does not answer is not asked.
    RunStopCommands,
    /// SIGKILL to every process of the service (cgroup.kill).
    KillAll,
    ArmTimer(Timer, Duration),
    CancelTimer(Timer),
}

/// Why the service last ended, for `capexec status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    /// Non-zero exit or killed by a signal.
    ExitFailure,
    SpawnFailed,
    ReadyTimeout,
    WatchdogTimeout,
    StartLimit,
    /// Not started: an `exec.condition` command said not now. No failure,
    /// and never restarted (as systemd skips a unit whose condition fails).
    ConditionUnmet,
}

impl Outcome {
    fn is_failure(self) -> bool {
        !matches!(self, Outcome::Success | Outcome::ConditionUnmet)
    }
}

pub struct Machine {
    pub state: State,
    policy: Supervision,
    /// Start times within the start-limit window.
    starts: VecDeque<Instant>,
    /// Failed runs in a row: the backoff exponent.
    consecutive_failures: u32,
    /// Set by StopRequested: the end is wanted, never restarted.
    stop_requested: bool,
    /// How the current (or last) run ended.
    pub outcome: Option<Outcome>,
    running_since: Option<Instant>,
    pub restarts: u32,
}

impl Machine {
    pub fn new(policy: Supervision) -> Machine {
        Machine {
            state: State::Stopped,
            policy,
            starts: VecDeque::new(),
            consecutive_failures: 0,
            stop_requested: false,
            outcome: None,
            running_since: None,
            restarts: 0,
        }
    }

    /// The delay before the next restart: restart_delay doubled per consecutive
    /// failure, capped at restart_delay_max.
    pub fn backoff(&self) -> Duration {
        let shift = self.consecutive_failures.saturating_sub(1).min(20);
        self.policy.restart_delay.saturating_mul(1 << shift).min(self.policy.restart_delay_max)
    }

    /// Records a start; false when it would exceed the start limit.
    fn admit_start(&mut self, now: Instant) -> bool {
        while self.starts.front().is_some_and(|t| now.duration_since(*t) >= self.policy.start_limit_interval) {
            self.starts.pop_front();
        }
        if self.starts.len() >= self.policy.start_limit_burst as usize {
            return false;
        }
        self.starts.push_back(now);
        true
    }

    fn launch(&mut self, now: Instant) -> (State, Vec<Action>) {
        if !self.admit_start(now) {
            self.outcome = Some(Outcome::StartLimit);
            return (State::Failed, vec![]);
        }
        self.stop_requested = false;
        self.outcome = None;
        let mut a = vec![Action::Launch];
        if self.waits_for_ready() {
            a.push(Action::ArmTimer(Timer::Ready, self.policy.ready_timeout));
        }
        (State::Starting, a)
    }

    /// A notify service says READY=1; a forking one's init says it when the
    /// started process has exited with 0; a simple one with a ready_address
    /// is ready once the address accepts.
    fn waits_for_ready(&self) -> bool {
        matches!(self.policy.kind, ServiceType::Notify | ServiceType::Forking) || !self.policy.ready_address.is_empty()
    }

    fn become_running(&mut self, now: Instant) -> (State, Vec<Action>) {
        self.running_since = Some(now);
        let mut a = vec![Action::CancelTimer(Timer::Ready)];
        if let Some(w) = self.policy.watchdog {
            a.push(Action::ArmTimer(Timer::Watchdog, w));
        }
        (State::Running, a)
    }

    /// Ends the run with `outcome`: stop everything, then decide on AllGone.
    fn end(&mut self, outcome: Outcome, graceful: bool) -> (State, Vec<Action>) {
        self.outcome.get_or_insert(outcome);
        let mut a = vec![Action::CancelTimer(Timer::Ready), Action::CancelTimer(Timer::Watchdog)];
        if graceful {
            let ran = self.state == State::Running && outcome != Outcome::WatchdogTimeout;
            a.push(if ran { Action::RunStopCommands } else { Action::SendStopSignal });
            a.push(Action::ArmTimer(Timer::Stop, self.policy.stop_timeout));
        } else {
            // The main process is gone: whatever it left behind is killed.
            a.push(Action::KillAll);
        }
        (State::Stopping, a)
    }

    /// Everything is gone: stopped, exited, failed, or a restart after backoff.
    fn settle(&mut self, now: Instant) -> (State, Vec<Action>) {
        let stop_cancel = Action::CancelTimer(Timer::Stop);
        if self.stop_requested {
            return (State::Stopped, vec![stop_cancel]);
        }
        let outcome = self.outcome.unwrap_or(Outcome::ExitFailure);
        // A run that lasted a whole start-limit interval was healthy: reset backoff.
        if self.running_since.is_some_and(|t| now.duration_since(t) >= self.policy.start_limit_interval) {
            self.consecutive_failures = 0;
        }
        self.running_since = None;
        if outcome.is_failure() {
            self.consecutive_failures += 1;
        } else {
            self.consecutive_failures = 0;
        }
        let restart = match self.policy.restart {
            _ if outcome == Outcome::ConditionUnmet => false,
            RestartPolicy::No => false,
            RestartPolicy::OnFailure => outcome.is_failure(),
            RestartPolicy::Always => true,
        };
        if !restart {
            return (if outcome.is_failure() { State::Failed } else { State::Exited }, vec![stop_cancel]);
        }
        (State::WaitingToRestart, vec![stop_cancel, Action::ArmTimer(Timer::Restart, self.backoff())])
    }

    /// The transition table. Events that do not apply in a state are ignored
    /// (returned actions empty, state unchanged): e.g. a late timer.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use Event as E;
        use State as S;
        let (next, actions) = match (self.state, event) {
            // Starting by hand clears the start-limit history and the backoff.
            (S::Stopped | S::Exited | S::Failed, E::StartRequested) => {
                self.starts.clear();
                self.consecutive_failures = 0;
                self.launch(now)
            }
            (S::Starting, E::Spawned) if !self.waits_for_ready() => self.become_running(now),
            (S::Starting, E::Spawned) => (S::Starting, vec![]),
            (S::Starting, E::Ready) => self.become_running(now),
            (S::Running, E::Ready) => (S::Running, vec![]),
            (S::Starting, E::SpawnFailed) => self.end(Outcome::SpawnFailed, false),
            (S::Starting, E::ConditionUnmet) => self.end(Outcome::ConditionUnmet, false),
            (S::Starting, E::ReadyTimeout) => self.end(Outcome::ReadyTimeout, true),
            (S::Running, E::WatchdogTimeout) => self.end(Outcome::WatchdogTimeout, true),
            (S::Running, E::PostFailed) => self.end(Outcome::ExitFailure, true),
            (S::Starting | S::Running, E::MainExited { success }) => self.end(if success { Outcome::Success } else { Outcome::ExitFailure }, false),
            (S::Starting | S::Running, E::StopRequested) => {
                self.stop_requested = true;
                self.end(Outcome::Success, true)
            }
            (S::Stopping, E::StopRequested) => {
                self.stop_requested = true;
                (S::Stopping, vec![])
            }
            (S::Stopping, E::MainExited { success }) => {
                // Ended during a stop we started for a failure: keep that outcome.
                self.outcome.get_or_insert(if success { Outcome::Success } else { Outcome::ExitFailure });
                (S::Stopping, vec![Action::KillAll])
            }
            (S::Stopping, E::StopTimeout) => (S::Stopping, vec![Action::KillAll]),
            (S::Stopping, E::AllGone) => self.settle(now),
            (S::WaitingToRestart, E::RestartTimer) => {
                let next = self.launch(now);
                if next.0 == S::Starting {
                    self.restarts += 1;
                }
                next
            }
            (S::WaitingToRestart, E::StopRequested) => {
                self.stop_requested = true;
                (S::Stopped, vec![Action::CancelTimer(Timer::Restart)])
            }
            (S::WaitingToRestart, E::StartRequested) => (S::WaitingToRestart, vec![]),
            (state, _) => (state, vec![]),
        };
        self.state = next;
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use State as S;

    fn policy(restart: RestartPolicy) -> Supervision {
        Supervision {
            kind: ServiceType::Simple,
            restart,
            restart_delay: Duration::from_millis(100),
            restart_delay_max: Duration::from_secs(1),
            start_limit_burst: 3,
            start_limit_interval: Duration::from_secs(10),
            stop_signal: 15,
            stop_timeout: Duration::from_secs(5),
            ready_timeout: Duration::from_secs(2),
            watchdog: None,
            pid_file: None,
            ready_address: Vec::new(),
            success_exit_status: Vec::new(),
            autostart: false,
        }
    }

    struct Clock(Instant);
    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    #[test]
    fn start_run_and_stop_by_request() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::Always));
        assert_eq!(m.handle(E::StartRequested, c.at(0)), vec![Action::Launch]);
        assert_eq!(m.state, S::Starting);
        m.handle(E::Spawned, c.at(1));
        assert_eq!(m.state, S::Running);
        let a = m.handle(E::StopRequested, c.at(100));
        assert_eq!(m.state, S::Stopping);
        assert!(a.contains(&Action::RunStopCommands) && a.contains(&Action::ArmTimer(Timer::Stop, Duration::from_secs(5))));
        assert_eq!(m.handle(E::MainExited { success: true }, c.at(120)), vec![Action::KillAll]);
        m.handle(E::AllGone, c.at(121));
        assert_eq!(m.state, S::Stopped, "a requested stop is never restarted, even with restart = always");
    }

    #[test]
    fn stop_timeout_kills_everything() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::No));
        m.handle(E::StartRequested, c.at(0));
        m.handle(E::Spawned, c.at(1));
        m.handle(E::StopRequested, c.at(10));
        assert_eq!(m.handle(E::StopTimeout, c.at(5010)), vec![Action::KillAll]);
        assert_eq!(m.state, S::Stopping);
        m.handle(E::AllGone, c.at(5011));
        assert_eq!(m.state, S::Stopped);
    }

    #[test]
    fn on_failure_restarts_with_exponential_backoff_until_the_start_limit() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::OnFailure));
        m.handle(E::StartRequested, c.at(0));
        m.handle(E::Spawned, c.at(1));
        let mut t = 10;
        let mut delays = vec![];
        loop {
            let a = m.handle(E::MainExited { success: false }, c.at(t));
            assert_eq!(a.last(), Some(&Action::KillAll), "leftovers of a dead main process are killed");
            let a = m.handle(E::AllGone, c.at(t + 1));
            assert_eq!(m.state, S::WaitingToRestart);
            let Some(Action::ArmTimer(Timer::Restart, d)) = a.last().copied() else { panic!("{a:?}") };
            let d = d.as_millis() as u64;
            delays.push(d);
            m.handle(E::RestartTimer, c.at(t + 1 + d));
            if m.state == S::Failed {
                break;
            }
            m.handle(E::Spawned, c.at(t + 2 + d));
            t += 10 + d;
        }
        assert_eq!(delays, vec![100, 200, 400], "backoff doubles; the third restart would be the 4th start in 10 s");
        assert_eq!(m.outcome, Some(Outcome::StartLimit));
        // Failed stays failed until started by hand, which clears the history.
        assert_eq!(m.handle(E::RestartTimer, c.at(t + 5000)), vec![]);
        assert_eq!(m.handle(E::StartRequested, c.at(t + 6000)), vec![Action::Launch]);
        assert_eq!(m.state, S::Starting);
    }

    #[test]
    fn backoff_is_capped() {
        let mut m = Machine::new(policy(RestartPolicy::Always));
        m.consecutive_failures = 30;
        assert_eq!(m.backoff(), Duration::from_secs(1));
    }

    #[test]
    fn on_failure_does_not_restart_a_clean_exit_but_always_does() {
        let c = Clock(Instant::now());
        for (policy_, want) in [(RestartPolicy::OnFailure, S::Exited), (RestartPolicy::Always, S::WaitingToRestart), (RestartPolicy::No, S::Exited)] {
            let mut m = Machine::new(policy(policy_));
            m.handle(E::StartRequested, c.at(0));
            m.handle(E::Spawned, c.at(1));
            m.handle(E::MainExited { success: true }, c.at(5));
            m.handle(E::AllGone, c.at(6));
            assert_eq!(m.state, want, "{policy_:?}");
        }
        let mut m = Machine::new(policy(RestartPolicy::No));
        m.handle(E::StartRequested, c.at(0));
        m.handle(E::MainExited { success: false }, c.at(5));
        m.handle(E::AllGone, c.at(6));
        assert_eq!((m.state, m.outcome), (S::Failed, Some(Outcome::ExitFailure)));
    }

    #[test]
    fn a_long_healthy_run_resets_the_backoff() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::Always));
        m.consecutive_failures = 4;
        m.handle(E::StartRequested, c.at(0));
        m.consecutive_failures = 4;
        m.handle(E::Spawned, c.at(1));
        m.handle(E::MainExited { success: false }, c.at(60_000));
        let a = m.handle(E::AllGone, c.at(60_001));
        assert_eq!(a.last(), Some(&Action::ArmTimer(Timer::Restart, Duration::from_millis(100))));
    }

    /// A forking service runs once its init says the started program exited
    /// with 0 (READY=1), a simple one with a ready_address once the address
    /// accepts (the daemon's probe says Ready): not once it was executed.
    #[test]
    fn forking_and_ready_address_wait_for_ready() {
        let c = Clock(Instant::now());
        let mut forking = policy(RestartPolicy::No);
        forking.kind = ServiceType::Forking;
        let mut listening = policy(RestartPolicy::No);
        listening.ready_address = vec![capexec_decl::spec::ReadyAddr::parse("tcp:127.0.0.1:8080").unwrap()];
        for p in [forking, listening] {
            let mut m = Machine::new(p);
            assert_eq!(m.handle(E::StartRequested, c.at(0)), vec![Action::Launch, Action::ArmTimer(Timer::Ready, Duration::from_secs(2))]);
            m.handle(E::Spawned, c.at(1));
            assert_eq!(m.state, S::Starting);
            m.handle(E::Ready, c.at(400));
            assert_eq!(m.state, S::Running);
        }
    }

    /// A failed start_post stops a running service gracefully, as failed.
    #[test]
    fn a_failed_start_post_stops_the_service() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::No));
        m.handle(E::StartRequested, c.at(0));
        m.handle(E::Spawned, c.at(1));
        assert_eq!(m.state, S::Running);
        let a = m.handle(E::PostFailed, c.at(10));
        assert!(a.contains(&Action::RunStopCommands) && m.state == S::Stopping, "{a:?}");
        m.handle(E::MainExited { success: true }, c.at(20));
        m.handle(E::AllGone, c.at(21));
        assert_eq!((m.state, m.outcome), (S::Failed, Some(Outcome::ExitFailure)));
    }

    #[test]
    fn notify_waits_for_ready_and_times_out() {
        let c = Clock(Instant::now());
        let mut p = policy(RestartPolicy::No);
        p.kind = ServiceType::Notify;
        p.watchdog = Some(Duration::from_secs(3));
        let mut m = Machine::new(p.clone());
        assert_eq!(m.handle(E::StartRequested, c.at(0)), vec![Action::Launch, Action::ArmTimer(Timer::Ready, Duration::from_secs(2))]);
        m.handle(E::Spawned, c.at(1));
        assert_eq!(m.state, S::Starting, "notify services are not running before READY=1");
        let a = m.handle(E::Ready, c.at(50));
        assert_eq!(m.state, S::Running);
        assert!(a.contains(&Action::ArmTimer(Timer::Watchdog, Duration::from_secs(3))));
        let a = m.handle(E::WatchdogTimeout, c.at(3100));
        assert!(a.contains(&Action::SendStopSignal) && !a.contains(&Action::RunStopCommands), "a service that missed its watchdog is not asked: {a:?}");
        m.handle(E::MainExited { success: true }, c.at(3200));
        m.handle(E::AllGone, c.at(3201));
        assert_eq!((m.state, m.outcome), (S::Failed, Some(Outcome::WatchdogTimeout)), "the watchdog's outcome wins over the exit status");

        let mut m = Machine::new(p.clone());
        m.handle(E::StartRequested, c.at(0));
        m.handle(E::Spawned, c.at(1));
        let a = m.handle(E::ReadyTimeout, c.at(2000));
        assert!(a.contains(&Action::SendStopSignal) && !a.contains(&Action::RunStopCommands), "nor one that never became ready: {a:?}");
        m.handle(E::AllGone, c.at(2001));
        assert_eq!((m.state, m.outcome), (S::Failed, Some(Outcome::ReadyTimeout)));

        // Stopped while it starts: the stop commands are for a service that runs.
        let mut m = Machine::new(p);
        m.handle(E::StartRequested, c.at(0));
        m.handle(E::Spawned, c.at(1));
        let a = m.handle(E::StopRequested, c.at(10));
        assert!(a.contains(&Action::SendStopSignal) && !a.contains(&Action::RunStopCommands), "{a:?}");
    }

    #[test]
    fn spawn_failure_counts_as_failure() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::OnFailure));
        m.handle(E::StartRequested, c.at(0));
        assert_eq!(m.handle(E::SpawnFailed, c.at(1)).last(), Some(&Action::KillAll));
        m.handle(E::AllGone, c.at(2));
        assert_eq!(m.state, S::WaitingToRestart);
        assert_eq!(m.handle(E::StopRequested, c.at(3)), vec![Action::CancelTimer(Timer::Restart)]);
        assert_eq!(m.state, S::Stopped);
    }

    /// systemd's ExecCondition=: a start the condition declines is no
    /// failure and is not retried, whatever the restart policy; the next
    /// start by hand runs the condition again.
    #[test]
    fn an_unmet_condition_ends_the_start_without_failure_or_restart() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::Always));
        m.handle(E::StartRequested, c.at(0));
        assert_eq!(m.handle(E::ConditionUnmet, c.at(1)).last(), Some(&Action::KillAll));
        assert_eq!(m.handle(E::AllGone, c.at(2)), vec![Action::CancelTimer(Timer::Stop)]);
        assert_eq!((m.state, m.outcome, m.consecutive_failures), (S::Exited, Some(Outcome::ConditionUnmet), 0));
        assert_eq!(m.handle(E::StartRequested, c.at(3)).first(), Some(&Action::Launch));
        assert_eq!(m.state, S::Starting);
    }

    #[test]
    fn stray_events_change_nothing() {
        let c = Clock(Instant::now());
        let mut m = Machine::new(policy(RestartPolicy::Always));
        for e in [E::StopRequested, E::Spawned, E::Ready, E::AllGone, E::StopTimeout, E::RestartTimer, E::WatchdogTimeout, E::MainExited { success: false }] {
            assert_eq!(m.handle(e, c.at(0)), vec![]);
            assert_eq!(m.state, S::Stopped);
        }
    }
}
