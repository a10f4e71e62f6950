//! The daemon driven through a fake launcher: control requests go in as
//! events, launch requests come out of the launcher queue, and the test
//! answers them as the launcher would (launched, failed, exited). No process
//! is forked and no sandbox is built, so these run without root; what a real
//! launch does is tested in crates/capexec-integration-tests.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// A scratch directory with the daemon's runtime, state and unit directories.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!("capexec-daemon-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("units")).expect("create the scratch directory");
        Scratch(dir)
    }

    fn unit(&self, name: &str, text: &str) {
        std::fs::write(self.0.join("units").join(format!("{name}.svc")), text).expect("write the unit");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon and the two ends the real one has: its own event channel and
/// the launcher's queue.
struct Harness {
    d: Daemon,
    rx: mpsc::UnboundedReceiver<Ev>,
    launches: mpsc::UnboundedReceiver<(Vec<u8>, Vec<OwnedFd>)>,
    _scratch: Scratch,
}

/// A unit that needs nothing of the host: the daemon only reads it.
const SIMPLE: &str = "[exec]\nargv = [\"/bin/true\"]\n";

impl Harness {
    fn new(scratch: Scratch) -> Harness {
        let root = scratch.0.clone();
        let paths = Paths { mode: Mode::User, runtime: root.join("run"), state: root.join("state"), logs: root.join("logs") };
        prepare_dirs(&paths).expect("prepare the daemon's directories");
        let cfg = Config { paths, unit_path: vec![root.join("units")], cgroup_parent: None, log_max_size: 1 << 20, log_files: true };
        let (tx, rx) = mpsc::unbounded_channel();
        let (launch_tx, launches) = mpsc::unbounded_channel();
        let target = Target::Files { dir: root.join("logs"), max_size: 1 << 20, keep: 1 };
        let rootless = !nix::unistd::geteuid().is_root();
        let d = Daemon::new(cfg, Context::current(), None, target, rootless, tx, launch_tx);
        Harness { d, rx, launches, _scratch: scratch }
    }

    /// Sends a control request; the receiver gets the reply when there is one.
    fn request(&mut self, req: Request) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        assert!(self.d.handle(Ev::Control(req, tx)));
        rx
    }

    /// The next launch request the daemon sent to the launcher.
    fn next_launch(&mut self) -> LaunchRequest {
        let (data, fds) = self.launches.try_recv().expect("the daemon sent a launch request");
        assert_eq!(fds.len(), 4, "a launch carries stdin, stdout, stderr and the refusal pipe");
        match serde_json::from_slice(&data).expect("a launch request decodes") {
            launcher::LauncherRequest::Launch(req) => *req,
            other => panic!("not a launch: {other:?}"),
        }
    }

    fn no_launch(&mut self) {
        assert!(self.launches.try_recv().is_err(), "the daemon sent a launch request it should not have");
    }

    fn launcher(&mut self, ev: LauncherEvent) -> bool {
        self.d.handle(Ev::Launcher(ev, Vec::new()))
    }

    /// Feeds the daemon its own events (timers, polls) until `done` holds.
    async fn pump_until(&mut self, mut done: impl FnMut(&mut Harness) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(self) {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv()).await.expect("the daemon reached the expected state in time").expect("channel open");
            assert!(self.d.handle(ev));
        }
    }

    fn status(&self, name: &str) -> ServiceStatus {
        self.d.status_of(&self.d.services[name])
    }
}

/// The reply, which must already be there.
fn answered(rx: &mut oneshot::Receiver<Reply>) -> Response {
    match rx.try_recv() {
        Ok(Reply::Now(r)) => r,
        Ok(_) => panic!("expected a direct answer"),
        Err(e) => panic!("no answer yet: {e}"),
    }
}

fn start(name: &str) -> Request {
    Request::Start { units: vec![name.into()] }
}

#[tokio::test]
async fn start_answers_once_the_launcher_reports_the_program_executed() {
    let s = Scratch::new();
    s.unit("web", SIMPLE);
    let mut h = Harness::new(s);
    let mut reply = h.request(start("web"));
    let req = h.next_launch();
    assert_eq!(req.spec.name, "web");
    assert_eq!(req.spec.exec.argv, ["/bin/true"]);
    h.no_launch();
    assert!(reply.try_recv().is_err(), "`capexec start` must wait for the launcher");
    assert_eq!(h.status("web").state, "starting");

    assert!(h.launcher(LauncherEvent::Launched {
        id: req.id,
        init_pid: 4_000_001,
        main_pid: Some(4_000_002),
        broker_pid: None,
        syslog: false,
        refusals: None
    }));
    let r = answered(&mut reply);
    assert!(r.ok, "{r:?}");
    let st = h.status("web");
    assert_eq!((st.state.as_str(), st.main_pid, st.init_pid), ("running", Some(4_000_002), Some(4_000_001)));

    // A second start of a running service launches nothing.
    let mut again = h.request(start("web"));
    h.no_launch();
    assert!(answered(&mut again).ok);
}

#[tokio::test]
async fn a_launch_the_launcher_could_not_make_is_reported_with_its_error() {
    let s = Scratch::new();
    s.unit("web", &format!("{SIMPLE}[service]\nrestart = \"no\"\n"));
    let mut h = Harness::new(s);
    let mut reply = h.request(start("web"));
    let req = h.next_launch();
    h.launcher(LauncherEvent::Failed { id: req.id, error: "sandbox setup failed at `landlock`: EPERM".into(), unmet: false });
    let r = answered(&mut reply);
    assert!(!r.ok);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("web: sandbox setup failed at `landlock`"), "{error}");
    let st = h.status("web");
    assert_eq!((st.state.as_str(), st.result.as_deref()), ("failed", Some("spawn-failed")));
    assert_eq!(st.last_exit.map(|e| e.outcome).as_deref(), Some("spawn-failed"));
    // A report for a launch the daemon no longer waits for changes nothing.
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_001, main_pid: None, broker_pid: None, syslog: false, refusals: None });
    assert_eq!(h.status("web").state, "failed");
}

#[tokio::test]
async fn a_failing_service_is_restarted_until_its_start_limit() {
    let s = Scratch::new();
    s.unit(
        "flaky",
        &format!("{SIMPLE}[service]\nrestart = \"on-failure\"\nrestart_delay = \"10ms\"\nstart_limit_burst = 3\nstart_limit_interval = \"1min\"\n"),
    );
    let mut h = Harness::new(s);
    let _reply = h.request(start("flaky"));
    let mut launched = Vec::new();
    for run in 0..3 {
        h.pump_until(|h| !h.launches.is_empty()).await;
        let req = h.next_launch();
        let init_pid = 4_000_100 + run;
        h.launcher(LauncherEvent::Launched { id: req.id, init_pid, main_pid: Some(init_pid + 1), broker_pid: None, syslog: false, refusals: None });
        assert_eq!(h.status("flaky").state, "running");
        h.launcher(LauncherEvent::Exited { init_pid, code: 3 });
        launched.push(req.id);
    }
    h.pump_until(|h| h.status("flaky").state == "failed").await;
    let st = h.status("flaky");
    assert_eq!(st.result.as_deref(), Some("start-limit"));
    assert_eq!(st.last_exit.map(|e| e.code), Some(Some(3)));
    assert_eq!(launched.len(), 3);
    assert!(launched.windows(2).all(|w| w[0] < w[1]), "each run is a new launch request: {launched:?}");
    h.no_launch();
}

#[tokio::test]
async fn a_stop_during_the_launch_ends_what_the_launcher_then_reports() {
    let s = Scratch::new();
    s.unit("web", SIMPLE);
    let mut h = Harness::new(s);
    let _start = h.request(start("web"));
    let req = h.next_launch();
    let mut stop = h.request(Request::Stop { units: vec!["web".into()] });
    assert!(stop.try_recv().is_err(), "the stop waits for the launch in flight");
    assert_eq!(h.status("web").state, "stopping");
    // The launcher finishes the launch it had started: the daemon kills it...
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_201, main_pid: Some(4_000_202), broker_pid: None, syslog: false, refusals: None });
    assert!(stop.try_recv().is_err(), "stopped only once the init is gone");
    // ...and answers the stop once the init has ended.
    h.launcher(LauncherEvent::Exited { init_pid: 4_000_201, code: 137 });
    h.pump_until(|h| h.status("web").state == "stopped").await;
    assert!(answered(&mut stop).ok);
    h.no_launch();
}

#[tokio::test]
async fn readiness_from_an_earlier_run_does_not_count() {
    let s = Scratch::new();
    s.unit("n", &format!("{SIMPLE}[service]\ntype = \"notify\"\nready_timeout = \"1min\"\n"));
    let mut h = Harness::new(s);
    let mut reply = h.request(start("n"));
    let req = h.next_launch();
    assert!(req.notify_dir.as_ref().is_some_and(|d| d.join("notify").exists()), "the notify socket exists before the launch: {:?}", req.notify_dir);
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_301, main_pid: Some(4_000_302), broker_pid: None, syslog: false, refusals: None });
    assert_eq!(h.status("n").state, "starting");
    let run = h.d.services["n"].run_id;
    h.d.handle(Ev::Notify { unit: "n".into(), run: run - 1, msg: "READY=1\nSTATUS=old".into(), pid: Some(4_000_302) });
    assert_eq!(h.status("n").state, "starting");
    assert!(reply.try_recv().is_err());
    // Anyone may write to the socket (0666): a process that is not the
    // service's (this test's own, not a child of the run's init) is ignored,
    // and so is a message without a sender.
    for pid in [Some(std::process::id() as i32), None] {
        h.d.handle(Ev::Notify { unit: "n".into(), run, msg: "READY=1\nSTATUS=forged".into(), pid });
        assert_eq!(h.status("n").state, "starting", "{pid:?}");
    }
    h.d.handle(Ev::Notify { unit: "n".into(), run, msg: "STATUS=serving\nREADY=1".into(), pid: Some(4_000_302) });
    let st = h.status("n");
    assert_eq!((st.state.as_str(), st.status_text.as_deref()), ("running", Some("serving")));
    assert!(answered(&mut reply).ok);
}

/// READY=1 may come before the launcher's report of the run: it is judged
/// once the run's pids are known, so the service's counts and a stranger's
/// does not.
#[tokio::test]
async fn readiness_before_the_launch_report_is_judged_after_it() {
    for (sender, ready) in [(4_000_402, true), (std::process::id() as i32, false)] {
        let s = Scratch::new();
        s.unit("n", &format!("{SIMPLE}[service]\ntype = \"notify\"\nready_timeout = \"1min\"\n"));
        let mut h = Harness::new(s);
        let mut reply = h.request(start("n"));
        let req = h.next_launch();
        let run = h.d.services["n"].run_id;
        h.d.handle(Ev::Notify { unit: "n".into(), run, msg: "READY=1".into(), pid: Some(sender) });
        assert_eq!(h.status("n").state, "starting");
        h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_401, main_pid: Some(4_000_402), broker_pid: None, syslog: false, refusals: None });
        assert_eq!(h.status("n").state == "running", ready, "sender {sender}");
        assert_eq!(reply.try_recv().is_ok(), ready);
    }
}

#[tokio::test]
async fn limits_without_a_cgroup_are_refused_before_any_launch() {
    let s = Scratch::new();
    s.unit("big", &format!("{SIMPLE}[limits]\nmemory_max = \"64M\"\n"));
    let mut h = Harness::new(s);
    let mut reply = h.request(start("big"));
    let r = answered(&mut reply);
    assert!(!r.ok);
    let error = r.error.unwrap_or_default();
    assert!(error.contains("big cannot be started here") && error.contains("[limits]"), "{error}");
    h.no_launch();
}

#[tokio::test]
async fn a_bad_declaration_is_refused_with_its_errors_and_listed() {
    let s = Scratch::new();
    s.unit("bad", "[exec]\nargv = []\n");
    let mut h = Harness::new(s);
    let mut reply = h.request(start("bad"));
    let r = answered(&mut reply);
    assert!(!r.ok);
    assert!(r.hint.unwrap_or_default().contains("capexec check"));
    h.no_launch();
    let _ = h.d.reload();
    let mut list = h.request(Request::List {});
    let v = answered(&mut list).result;
    let bad = v.as_array().and_then(|a| a.iter().find(|u| u["name"] == "bad")).cloned().unwrap_or_default();
    assert_eq!(bad["state"], "bad-declaration", "{v}");
}

#[tokio::test]
async fn the_daemon_stops_when_its_launcher_is_gone() {
    let mut h = Harness::new(Scratch::new());
    assert!(!h.d.handle(Ev::LauncherGone));
}

/// A runtime directory (filesystem.runtime_directory) goes when the service
/// has stopped, as systemd removes RuntimeDirectory=; the launcher made it.
/// Root only: capexec makes these directories only as root.
#[tokio::test]
async fn a_runtime_directory_is_removed_once_the_service_has_stopped() {
    assert!(nix::unistd::geteuid().is_root(), "run as root (CI does): runtime directories live under /run");
    let name = format!("capexec-daemon-test-{}", std::process::id());
    let dir = PathBuf::from("/run").join(&name);
    let s = Scratch::new();
    s.unit("rt", &format!("{SIMPLE}[filesystem]\nruntime_directory = [\"{name}\"]\n[service]\nrestart = \"no\"\n"));
    let mut h = Harness::new(s);
    let _start = h.request(start("rt"));
    let req = h.next_launch();
    // What the launcher does before the service runs.
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/pid"), "1\n").unwrap();
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_401, main_pid: Some(4_000_402), broker_pid: None, syslog: false, refusals: None });
    assert!(dir.exists(), "kept while the service runs");
    h.launcher(LauncherEvent::Exited { init_pid: 4_000_401, code: 0 });
    h.pump_until(|h| matches!(h.status("rt").state.as_str(), "exited" | "stopped")).await;
    let gone = !dir.exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(gone, "the runtime directory outlived the service");
}

/// `capexec reload NAME`: the daemon asks the launcher to have the service's
/// task helper run its reload commands, and answers once the launcher says
/// they ended; a failure is the reply's error. start_post runs once the
/// service runs, and its failure stops it.
#[tokio::test]
async fn reload_and_start_post_go_to_the_task_helper() {
    let s = Scratch::new();
    s.unit("web", &format!("{SIMPLE}[[exec.reload]]\nargv = [\"/bin/true\"]\n[[exec.start_post]]\nargv = [\"/bin/false\"]\n[service]\nrestart = \"no\"\n"));
    let mut h = Harness::new(s);
    let mut reply = h.request(start("web"));
    let req = h.next_launch();
    assert!(h.launcher(LauncherEvent::Launched {
        id: req.id,
        init_pid: 4_000_501,
        main_pid: Some(4_000_502),
        broker_pid: None,
        syslog: false,
        refusals: None
    }));
    assert!(answered(&mut reply).ok);
    // start_post: a task request for the running service.
    let (data, fds) = h.launches.try_recv().expect("a task request for start_post");
    assert!(fds.is_empty());
    let post: launcher::LauncherRequest = serde_json::from_slice(&data).unwrap();
    let launcher::LauncherRequest::Task { id: post_id, init_pid: 4_000_501, which: capexec_sandbox::launch::Tasks::StartPost } = post else {
        panic!("{post:?}")
    };

    let mut reload = h.request(Request::Reload { units: vec!["web".into()] });
    let (data, _) = h.launches.try_recv().expect("a task request for the reload");
    let launcher::LauncherRequest::Task { id, init_pid: 4_000_501, which: capexec_sandbox::launch::Tasks::Reload } = serde_json::from_slice(&data).unwrap()
    else {
        panic!()
    };
    assert!(reload.try_recv().is_err(), "the reply waits for the commands");
    assert!(h.launcher(LauncherEvent::TaskDone { id, result: Err("exec.reload[0] `/bin/true` exited with status 1".into()) }));
    let r = answered(&mut reload);
    assert!(!r.ok && r.error.as_deref().unwrap_or_default().contains("web: exec.reload[0]"), "{r:?}");

    // The failed start_post stops the service as failed.
    assert!(h.launcher(LauncherEvent::TaskDone { id: post_id, result: Err("exec.start_post[0] `/bin/false` exited with status 1".into()) }));
    assert_eq!(h.status("web").state, "stopping");
    assert!(h.launcher(LauncherEvent::Exited { init_pid: 4_000_501, code: 143 }));
    let st = h.status("web");
    assert_eq!((st.state.as_str(), st.error.as_deref()), ("failed", Some("exec.start_post[0] `/bin/false` exited with status 1")));
}

/// haproxy's unit says `SuccessExitStatus=143`: its master ends with 143
/// when it stops. Such a status is a clean end: no restart under
/// `restart = "on-failure"`, and `capexec status` says success; any other
/// non-zero status still fails.
#[tokio::test]
async fn a_declared_success_exit_status_is_a_clean_end() {
    let s = Scratch::new();
    s.unit("hp", &format!("{SIMPLE}[service]\nrestart = \"on-failure\"\nrestart_delay = \"10ms\"\nsuccess_exit_status = [143, \"SIGKILL\"]\n"));
    let mut h = Harness::new(s);
    let _reply = h.request(start("hp"));
    let req = h.next_launch();
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_601, main_pid: Some(4_000_602), broker_pid: None, syslog: false, refusals: None });
    h.launcher(LauncherEvent::Exited { init_pid: 4_000_601, code: 143 });
    h.pump_until(|h| h.status("hp").state == "exited").await;
    assert_eq!(h.status("hp").last_exit.map(|e| e.outcome).as_deref(), Some("success"));
    h.no_launch();
    // 128 + SIGKILL counts too; 1 does not, and is restarted.
    let _reply = h.request(start("hp"));
    let req = h.next_launch();
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_611, main_pid: Some(4_000_612), broker_pid: None, syslog: false, refusals: None });
    h.launcher(LauncherEvent::Exited { init_pid: 4_000_611, code: 137 });
    h.pump_until(|h| h.status("hp").state == "exited").await;
    h.no_launch();
    let _reply = h.request(start("hp"));
    let req = h.next_launch();
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_621, main_pid: Some(4_000_622), broker_pid: None, syslog: false, refusals: None });
    h.launcher(LauncherEvent::Exited { init_pid: 4_000_621, code: 1 });
    h.pump_until(|h| !h.launches.is_empty()).await;
    assert_eq!(h.status("hp").last_exit.map(|e| e.outcome).as_deref(), Some("exit-failure"));
}

/// A service that announces its reloads (RELOADING=1, as systemd's protocol
/// has it) is reloaded when its READY=1 says so, not when the command that
/// asked for the reload (a `kill -HUP`) returns: the reply waits for it, a
/// stale task timer does not end the wait, and a READY=1 that came before
/// the RELOADING=1 of this reload does not count.
#[tokio::test]
async fn an_announced_reload_ends_with_its_ready() {
    let s = Scratch::new();
    s.unit("web", &format!("{SIMPLE}[[exec.reload]]\nargv = [\"/bin/true\"]\n[service]\ntype = \"notify\"\nready_timeout = \"1min\"\nrestart = \"no\"\n"));
    let mut h = Harness::new(s);
    let mut reply = h.request(start("web"));
    let req = h.next_launch();
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_601, main_pid: Some(4_000_602), broker_pid: None, syslog: false, refusals: None });
    let run = h.d.services["web"].run_id;
    let say = |h: &mut Harness, msg: &str| h.d.handle(Ev::Notify { unit: "web".into(), run, msg: msg.into(), pid: Some(4_000_602) });
    say(&mut h, "READY=1\nRELOADING=1");
    say(&mut h, "READY=1");
    assert!(answered(&mut reply).ok);
    assert!(!h.status("web").reloading);

    let mut reload = h.request(Request::Reload { units: vec!["web".into()] });
    let (data, _) = h.launches.try_recv().expect("a task request for the reload");
    let launcher::LauncherRequest::Task { id, which: capexec_sandbox::launch::Tasks::Reload, .. } = serde_json::from_slice(&data).unwrap() else { panic!() };
    say(&mut h, "READY=1");
    assert!(h.launcher(LauncherEvent::TaskDone { id, result: Ok(()) }));
    assert!(reload.try_recv().is_err(), "answered before the service said its reload began");
    // The sandboxed stage's timer, late: not the end of the reload.
    h.d.handle(Ev::JobStep { job: id, stage: commands::Stage::Sandboxed, result: Err(commands::JobError::Sandboxed("late".into())) });
    say(&mut h, "RELOADING=1");
    assert!(reload.try_recv().is_err(), "answered in the midst of the reload");
    let st = h.status("web");
    assert!(st.state == "running" && st.reloading, "{st:?}");
    say(&mut h, "READY=1");
    assert!(answered(&mut reload).ok);
    assert!(!h.status("web").reloading);

    // A stop in the midst of one ends the wait with an error.
    let mut reload = h.request(Request::Reload { units: vec!["web".into()] });
    let (data, _) = h.launches.try_recv().expect("a task request for the second reload");
    let launcher::LauncherRequest::Task { id, .. } = serde_json::from_slice(&data).unwrap() else { panic!() };
    assert!(h.launcher(LauncherEvent::TaskDone { id, result: Ok(()) }));
    say(&mut h, "RELOADING=1");
    let _stop = h.request(Request::Stop { units: vec!["web".into()] });
    assert!(h.launcher(LauncherEvent::Exited { init_pid: 4_000_601, code: 143 }));
    h.pump_until(|h| h.status("web").state == "stopped").await;
    let r = answered(&mut reload);
    assert!(!r.ok && r.error.as_deref().unwrap_or_default().contains("stopped before its reload ended"), "{r:?}");
}

/// A service that never said RELOADING=1 is reloaded when its commands end.
#[tokio::test]
async fn an_unannounced_reload_ends_with_its_commands() {
    let s = Scratch::new();
    s.unit("web", &format!("{SIMPLE}[[exec.reload]]\nargv = [\"/bin/true\"]\n[service]\ntype = \"notify\"\nready_timeout = \"1min\"\nrestart = \"no\"\n"));
    let mut h = Harness::new(s);
    let mut reply = h.request(start("web"));
    let req = h.next_launch();
    h.launcher(LauncherEvent::Launched { id: req.id, init_pid: 4_000_701, main_pid: Some(4_000_702), broker_pid: None, syslog: false, refusals: None });
    h.d.handle(Ev::Notify { unit: "web".into(), run: h.d.services["web"].run_id, msg: "READY=1".into(), pid: Some(4_000_702) });
    assert!(answered(&mut reply).ok);
    let mut reload = h.request(Request::Reload { units: vec!["web".into()] });
    let (data, _) = h.launches.try_recv().expect("a task request for the reload");
    let launcher::LauncherRequest::Task { id, .. } = serde_json::from_slice(&data).unwrap() else { panic!() };
    assert!(h.launcher(LauncherEvent::TaskDone { id, result: Ok(()) }));
    assert!(answered(&mut reload).ok);
}

/// Starts `unit` with a real `sleep` as its init and main process, so that
/// what the daemon signals is seen as it arrives.
fn started_on_a_real_process(h: &mut Harness, unit: &str) -> std::process::Child {
    let main = std::process::Command::new("sleep").arg("60").spawn().expect("spawn sleep");
    let pid = main.id() as i32;
    let pidfd = || capexec_sys::pidfd_open(pid, 0).expect("pidfd_open of our own child");
    let _reply = h.request(start(unit));
    let req = h.next_launch();
    let launched = LauncherEvent::Launched { id: req.id, init_pid: pid, main_pid: Some(pid), broker_pid: None, syslog: false, refusals: None };
    assert!(h.d.handle(Ev::Launcher(launched, vec![pidfd(), pidfd()])));
    assert_eq!(h.status(unit).state, "running");
    main
}

/// `[[exec.stop]]` (systemd's `ExecStop=`): a stop of a running service asks
/// its task helper for the stop commands, and the stop signal goes to the
/// main process only once they ended; the service is stopped when it is
/// gone. A service without stop commands is signalled at once.
#[tokio::test]
async fn a_stop_runs_the_stop_commands_before_the_stop_signal() {
    let s = Scratch::new();
    s.unit("named", &format!("{SIMPLE}[[exec.stop]]\nargv = [\"/usr/sbin/rndc\", \"stop\"]\n[service]\nrestart = \"no\"\nstop_signal = \"SIGINT\"\n"));
    s.unit("plain", &format!("{SIMPLE}[service]\nrestart = \"no\"\n"));
    let mut h = Harness::new(s);
    let mut main = started_on_a_real_process(&mut h, "named");
    let pid = main.id() as i32;
    let mut stop = h.request(Request::Stop { units: vec!["named".into()] });
    let (data, _) = h.launches.try_recv().expect("a task request for the stop commands");
    let launcher::LauncherRequest::Task { id, init_pid, which: capexec_sandbox::launch::Tasks::Stop } = serde_json::from_slice(&data).unwrap() else {
        panic!("{}", String::from_utf8_lossy(&data))
    };
    assert_eq!(init_pid, pid);
    assert_eq!(h.status("named").state, "stopping");
    assert!(main.try_wait().unwrap().is_none(), "the stop signal went out before the stop commands ended");
    // They failed (rndc could not reach it): the signal still follows.
    assert!(h.launcher(LauncherEvent::TaskDone { id, result: Err("exec.stop[0] `/usr/sbin/rndc stop` exited with status 1".into()) }));
    let status = main.wait().expect("wait for sleep");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGINT), "the declared stop signal after the commands");
    h.no_launch();
    assert!(h.launcher(LauncherEvent::Exited { init_pid: pid, code: 130 }));
    h.pump_until(|h| h.status("named").state == "stopped").await;
    assert!(answered(&mut stop).ok);

    // No stop commands: the signal at once, no task request.
    let mut main = started_on_a_real_process(&mut h, "plain");
    let _stop = h.request(Request::Stop { units: vec!["plain".into()] });
    h.no_launch();
    let status = main.wait().expect("wait for sleep");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGTERM));
}
