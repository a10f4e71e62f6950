//! What a learning run saw, as the recorder wrote it down. Serialisable, so
//! that several runs can be saved and merged before mining.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How a path was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Opened for reading (a file, or a directory to list it), or made the
    /// working directory or root.
    Read,
    /// Opened for writing, truncated, its mode or times changed.
    Write,
    /// Created (O_CREAT, mkdir, mknod, symlink, the target of rename or link).
    Create,
    /// Removed (unlink, rmdir, the source of rename).
    Remove,
    /// Executed.
    Exec,
    /// Looked at without being opened (stat, statfs, access, readlink,
    /// getxattr): the view must show it, Landlock checks none of these.
    /// Runs saved before this existed say `read` for them.
    Look,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// Syscall name → number of calls.
    pub syscalls: BTreeMap<String, u64>,
    /// Absolute path (as the program named it) → how it was used.
    pub paths: BTreeMap<String, BTreeSet<Access>>,
    /// Socket kinds created, e.g. `inet/stream`.
    pub sockets: BTreeSet<String>,
    /// Addresses bound, e.g. `tcp:127.0.0.1:6379`.
    pub binds: BTreeSet<String>,
    /// Addresses connected to.
    pub connects: BTreeSet<String>,
    /// Stream sockets bound (also in `binds`) once the run had started to
    /// accept connections, by a process that bound none at the start: a
    /// listener opened for one session, on a port picked for it (an FTP
    /// server's passive data port), unlike those a service binds at its
    /// start, or its own process binds later.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub session_binds: BTreeSet<String>,
    /// Addresses IP sockets were bound or connected to (also in `binds`,
    /// `connects`) after their process had added them to an epoll set
    /// (boost::asio registers a socket at its open). The broker's bind or
    /// connect puts a host socket in place of the service's, and that set
    /// goes on watching the old one: i2pd's listeners took connections that
    /// it never heard of, and a connect's completion would never be heard
    /// of either. Such a run binds and connects for itself, in the host's
    /// network (see `mine`).
    #[serde(default, alias = "polled_binds", skip_serializing_if = "BTreeSet::is_empty")]
    pub polled: BTreeSet<String>,
    /// Datagram sockets bound (also in `binds`) before the workload
    /// started: the service's own listeners (in.tftpd's on 0.0.0.0:6969),
    /// not source ports a resolver picks for each query once asked.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub start_datagram_binds: BTreeSet<String>,
    /// Paths opened with O_CREAT|O_EXCL (also in `paths`): the program
    /// makes the file itself and fails where it is there already (atd's
    /// pid file, which it removes when it finds one and makes anew).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub exclusive: BTreeSet<String>,
    /// Files the run made where there was none (an O_CREAT open, mknod or
    /// symlink of a path that did not exist; also in `paths`). Those it
    /// leaves, a later start finds, and may remove, replace or truncate:
    /// postgrey's Berkeley DB removes the region files of the environment it
    /// made on its first start; mpd's PulseAudio client replaces the link it
    /// made with a new one renamed over it; etcd truncates its log.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub made: BTreeSet<String>,
    /// Addresses in `binds` and `connects` that only ever named the run's
    /// own sockets: a bind to a loopback address with port 0, and a connect
    /// or send to the port such a bind got (squid talking to its helpers).
    /// The service's own network namespace gives it these; mining grants
    /// none of them (see `record::LocalPorts`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub own_loopback: BTreeSet<String>,
    /// Addresses the commands run around the program (start_post, reload,
    /// stop) connected to: no grants of theirs (see `forget_network`), but a
    /// loopback port the program listens on that they reach is a control
    /// channel (named's, for `rndc stop`), which mining keeps in the
    /// service's own network namespace.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub command_connects: BTreeSet<String>,
    /// (source, target) of each rename and link: both must be on one mount,
    /// or the call fails with EXDEV (postfix moves a queue file from
    /// incoming/ to active/).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub moves: BTreeSet<(String, String)>,
    /// Server (`udp:ADDRESS:53`) → the names of the DNS queries the run sent
    /// it (lower-case, no trailing dot): what mining grants in `[broker.dns]`
    /// where the server is one of the host's resolvers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dns_queries: BTreeMap<String, BTreeSet<String>>,
    /// Syscall numbers this build has no name for.
    pub unknown: BTreeSet<i64>,
    /// Syscall name → calls the judging filter refused: capexec's argument
    /// rules when mining (clone with CLONE_NEW*, socket(AF_PACKET), ...),
    /// the unit's whole filter under `--check`.
    #[serde(default)]
    pub denied: BTreeMap<String, u64>,
    /// Capability → what in the run used it, seen in the calls themselves:
    /// the permitted set a capset() asked for (the kernel refuses to add
    /// to it), a file access the caller's ids alone would not allow (see
    /// `record::Creds`). Only recorded for a run with capabilities.
    #[serde(default)]
    pub capabilities: BTreeMap<String, BTreeSet<String>>,
    /// The network calls by process, in the order first seen (for
    /// `capexec run --net-summary`; at most `NET_EVENTS`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetEvent>,
}

/// One process's `socket` (`what`: its kind), `bind`, `connect` or
/// datagram (`what`: the address), and how many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetEvent {
    pub pid: i32,
    pub comm: String,
    pub op: String,
    pub what: String,
    pub count: u64,
}

/// Bound on `Observations::network`: a program looping over addresses
/// costs the recorder this many entries.
pub const NET_EVENTS: usize = 256;

impl Observations {
    /// Counts `op` on `what` by process `pid`.
    pub fn net_event(&mut self, pid: i32, comm: impl FnOnce() -> String, op: &str, what: &str) {
        if let Some(e) = self.network.iter_mut().find(|e| e.pid == pid && e.op == op && e.what == what) {
            e.count += 1;
        } else if self.network.len() < NET_EVENTS {
            self.network.push(NetEvent { pid, comm: comm(), op: op.to_owned(), what: what.to_owned(), count: 1 });
        }
    }

    /// A network call of process `pid`: a socket made (`what` its kind), or
    /// a bind, connect or addressed send ("send", judged as a connect is) to
    /// the address `what`: counted, and the kind or address kept.
    pub fn net_call(&mut self, pid: i32, comm: impl FnOnce() -> String, op: &str, what: String) {
        self.net_event(pid, comm, op, &what);
        let set = match op {
            "socket" => &mut self.sockets,
            "bind" => &mut self.binds,
            _ => &mut self.connects,
        };
        set.insert(what);
    }
}

impl Observations {
    /// Drops where the run bound, connected and sent: for the commands run
    /// around a program (start_post, reload, stop), whose network reach is no
    /// grant of the program's (their connects are kept apart, as
    /// `command_connects`). They have no broker and run in the
    /// service's own network namespace: varnish's varnishreload connects to
    /// the admin port the program listens on, which a grant would only
    /// open to the program.
    pub fn forget_network(&mut self) {
        self.binds.clear();
        self.command_connects.extend(std::mem::take(&mut self.connects));
        self.session_binds.clear();
        self.polled.clear();
        self.start_datagram_binds.clear();
        self.own_loopback.clear();
        self.dns_queries.clear();
        self.network.clear();
    }

    /// Drops the creation of each path `existed` says was there before the
    /// run (a creation that failed); a path left with no use goes.
    pub fn forget_creations(&mut self, existed: impl Fn(&str) -> bool) {
        self.paths.retain(|p, acc| {
            if acc.contains(&Access::Create) && existed(p) {
                acc.remove(&Access::Create);
            }
            !acc.is_empty()
        });
    }

    /// Adds another run's observations to these.
    pub fn merge(&mut self, other: Observations) {
        for (k, v) in other.syscalls {
            *self.syscalls.entry(k).or_default() += v;
        }
        for (k, v) in other.paths {
            self.paths.entry(k).or_default().extend(v);
        }
        self.sockets.extend(other.sockets);
        self.binds.extend(other.binds);
        self.connects.extend(other.connects);
        self.session_binds.extend(other.session_binds);
        self.polled.extend(other.polled);
        self.start_datagram_binds.extend(other.start_datagram_binds);
        self.exclusive.extend(other.exclusive);
        self.made.extend(other.made);
        self.own_loopback.extend(other.own_loopback);
        self.command_connects.extend(other.command_connects);
        self.moves.extend(other.moves);
        for (k, v) in other.dns_queries {
            self.dns_queries.entry(k).or_default().extend(v);
        }
        self.unknown.extend(other.unknown);
        for (k, v) in other.denied {
            *self.denied.entry(k).or_default() += v;
        }
        for (k, v) in other.capabilities {
            self.capabilities.entry(k).or_default().extend(v);
        }
        self.network.extend(other.network);
        self.network.truncate(NET_EVENTS);
    }
}
