//! `capexec agent --socket PATH`: capexec's broker as the seccomp agent of
//! containers run by a stock OCI runtime (runc, crun). A container whose
//! config.json has `linux.seccomp.listenerPath` = PATH and SCMP_ACT_NOTIFY
//! rules gets its notified calls answered as a capexec service's are: its
//! `[broker]` grants, from the annotation [`ANNOTATION`], open files and
//! make connections on the host for it, and refuse past them. docs/oci.md.
//!
//! The runtime connects once per container and sends the container's
//! process state (runtime-spec config-linux.md, "seccomp": a JSON object
//! with `fds`, `pid`, `metadata` and the container `state`) with the
//! listener in SCM_RIGHTS. Each container gets a broker process of its own,
//! forked here and confined as capexec's brokers are (the container's user,
//! its capabilities held permitted only, the broker's seccomp filter): one
//! container's broker cannot serve or reach another's.

use super::CmdError;
use crate::cli::AgentArgs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The annotation holding a container's grants.
pub use capexec_decl::BROKER_ANNOTATION as ANNOTATION;

/// What the runtime sends (runtime-spec: the container process state).
#[derive(serde::Deserialize)]
struct ProcessState {
    #[serde(default)]
    fds: Vec<String>,
    pid: i32,
    state: ContainerState,
}

#[derive(serde::Deserialize)]
struct ContainerState {
    id: String,
    bundle: PathBuf,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

pub fn run(args: &AgentArgs) -> i32 {
    let path = &args.socket;
    // A socket left by an agent that ended: nobody listens on it any more.
    if std::fs::symlink_metadata(path).is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        && std::os::unix::net::UnixStream::connect(path).is_err()
    {
        let _ = std::fs::remove_file(path);
    }
    let listener = match std::os::unix::net::UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("capexec agent: listen on {}: {e}", path.display());
            return super::EXIT_SETUP;
        }
    };
    // The runtime connects as root; a listener fd in anyone else's hands
    // would let them answer a container's calls.
    if let Err(e) = std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)) {
        eprintln!("capexec agent: make {} private: {e}", path.display());
        return super::EXIT_SETUP;
    }
    // The brokers are this process's children; nobody waits for them.
    if let Err(e) = capexec_sys::ignore_children() {
        eprintln!("capexec agent: ignore SIGCHLD: {e}");
        return super::EXIT_SETUP;
    }
    eprintln!("capexec agent: serving containers whose seccomp listenerPath is {}", path.display());
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                eprintln!("capexec agent: accept: {e}");
                continue;
            }
        };
        match receive(&conn) {
            Ok((state, seccomp)) => serve(&state, seccomp, listener.as_raw_fd()),
            Err(e) => eprintln!("capexec agent: {e}"),
        }
    }
    0
}

/// The state and the seccomp listener one runtime connection sends.
fn receive(conn: &std::os::unix::net::UnixStream) -> Result<(ProcessState, OwnedFd), CmdError> {
    let mut buf = vec![0u8; 64 * 1024];
    let got = capexec_sys::recv_fds(conn.as_raw_fd(), &mut buf, 0).map_err(|source| CmdError::Io { op: "receive a container's state", source })?;
    let state: ProcessState =
        serde_json::from_slice(&buf[..got.bytes]).map_err(|e| CmdError::Message(format!("the runtime's message is not a container process state: {e}")))?;
    let at = state
        .fds
        .iter()
        .position(|f| f == "seccompFd")
        .ok_or_else(|| CmdError::Message(format!("container {}: no seccompFd among the fds", state.state.id)))?;
    let fd = got.fds.into_iter().nth(at).ok_or_else(|| CmdError::Message(format!("container {}: the seccompFd was not passed", state.state.id)))?;
    Ok((state, fd))
}

/// Forks the container's broker. A container whose grants do not validate
/// still gets a broker (with none): its notified calls must be answered, or
/// they fail with ENOSYS; each is then the kernel's to decide.
fn serve(state: &ProcessState, listener: OwnedFd, agent_socket: std::os::fd::RawFd) {
    let id = &state.state.id;
    let grants = state.state.annotations.get(ANNOTATION).map(String::as_str).unwrap_or("");
    let container = match container(state, grants) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capexec agent: container {id}: {e}; its calls go on unbrokered");
            match container(state, "") {
                Ok(c) => c,
                Err(e) => return eprintln!("capexec agent: container {id}: {e}"),
            }
        }
    };
    match capexec_sys::process::fork("fork a container's broker") {
        Err(e) => eprintln!("capexec agent: container {id}: {e}"),
        Ok(capexec_sys::process::Forked::Parent(pid)) => {
            let b = &container.spec.broker;
            eprintln!("capexec agent: container {id}: broker pid {pid}, {} grant(s)", b.fs.len() + b.connect.len() + b.bind.len());
        }
        Ok(capexec_sys::process::Forked::Child) => {
            let _ = nix::unistd::close(agent_socket);
            let code = broker_main(&container, listener, state.pid);
            capexec_sys::process::exit_now(code);
        }
    }
}

fn broker_main(c: &Container, listener: OwnedFd, pid: i32) -> i32 {
    let spec = &c.spec;
    let broker = match capexec_broker::Broker::prepare(spec) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("capexec agent: container {}: {e}", spec.name);
            return 1;
        }
    };
    let (uid, gid) = (c.uid, c.gid);
    let ch = capexec_broker::Channels { listener: Some(listener), explicit: None, dns: None, appends: Vec::new() };
    match broker
        .confine(uid, gid, None)
        .and_then(|()| broker.start(ch, pid).map_err(|source| capexec_broker::BrokerError::Io { op: "start its threads", source }))
    {
        Ok(running) => {
            for t in std::mem::take(&mut { running }.threads) {
                let _ = t.join();
            }
            0
        }
        Err(e) => {
            eprintln!("capexec agent: container {}: {e}", spec.name);
            1
        }
    }
}

/// A container as its broker sees it.
struct Container {
    /// A capexec service with the container's grants and capabilities.
    spec: capexec_decl::ServiceSpec,
    /// The container's user on the host.
    uid: u32,
    gid: u32,
}

/// The container as a capexec service for its broker: `grants` (its
/// annotation), its user and its permitted capabilities from its config.json.
fn container(state: &ProcessState, grants: &str) -> Result<Container, CmdError> {
    let s = &state.state;
    capexec_decl::check_broker_annotation(grants)?;
    let config = read_config(&s.bundle)?;
    let user = |key: &str| config.pointer(&format!("/process/user/{key}")).and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    let in_userns = config.pointer("/linux/namespaces").and_then(|n| n.as_array()).is_some_and(|n| n.iter().any(|n| n["type"] == "user"));
    let host_id = |id: u32, maps: &str| -> u32 {
        let Some(maps) = config.pointer(&format!("/linux/{maps}")).and_then(|m| m.as_array()) else { return id };
        maps.iter()
            .find_map(|m| {
                let (c, h, n) = (m["containerID"].as_u64()?, m["hostID"].as_u64()?, m["size"].as_u64()?);
                (id as u64 >= c && (id as u64) < c + n).then(|| (h + id as u64 - c) as u32)
            })
            .unwrap_or(65534)
    };
    let (uid, gid) = match in_userns {
        true => (host_id(user("uid"), "uidMappings"), host_id(user("gid"), "gidMappings")),
        false => (user("uid"), user("gid")),
    };
    // Named and validated as a declaration is; the command is the container's
    // and is not run from here.
    let name = format!("container-{}", s.id);
    let text = format!("{grants}\n[exec]\nargv = [\"/container\"]\n");
    let mut spec =
        capexec_decl::from_text(&name, &text, &capexec_decl::Context::current()).map_err(|source| CmdError::AnnotationGrants { key: ANNOTATION, source })?;
    spec.namespaces.user = in_userns;
    // The broker reads the container's memory and takes its fds, which the
    // kernel allows only to a process whose permitted capabilities cover the
    // container's (capexec_broker's `service_caps`).
    spec.capabilities = config
        .pointer("/process/capabilities/permitted")
        .and_then(|p| p.as_array())
        .map(|caps| caps.iter().filter_map(|c| c.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    Ok(Container { spec, uid, gid })
}

fn read_config(bundle: &Path) -> Result<serde_json::Value, CmdError> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(CmdError::file("read", &path))?;
    serde_json::from_slice(&text).map_err(|e| CmdError::Content { path, detail: format!("not JSON: {e}") })
}
