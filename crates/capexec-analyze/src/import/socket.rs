//! A `.socket` unit the service requires, as the `[[preopen.listen]]`
//! entries capexec opens for it: systemd's socket activation, where the
//! manager binds and the service inherits (LISTEN_FDS), is what preopens
//! are. rsyslog's `Requires=syslog.socket` becomes a datagram socket at
//! /run/systemd/journal/syslog, mode 0666, named `syslog`.

use super::unit_file;
use std::path::{Path, PathBuf};

/// One listening socket of the socket unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// As `[[preopen.listen]]` writes it: `unixgram:/run/x`, `tcp:0.0.0.0:80`.
    pub address: String,
    pub name: String,
    pub socket_mode: Option<String>,
}

/// What a socket unit gives the service, and what of it does not carry over.
#[derive(Debug, Default)]
pub struct Activation {
    /// Where the socket unit was read.
    pub path: PathBuf,
    pub listen: Vec<Listen>,
    /// (directive, why it is not carried over)
    pub skipped: Vec<(String, String)>,
    /// (directive, what capexec does that covers it)
    pub covered: Vec<(String, String)>,
}

/// Where systemd looks for units, after the requiring unit's own directory.
const UNIT_DIRS: &[&str] = &["/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"];

/// Reads the socket unit `name` (`syslog.socket`) next to the service's
/// unit or in systemd's unit directories; `None` if there is none.
pub fn read(beside: Option<&Path>, name: &str) -> Option<Activation> {
    if name.contains('/') {
        return None;
    }
    let path = beside.into_iter().map(Path::to_path_buf).chain(UNIT_DIRS.iter().map(PathBuf::from)).map(|d| d.join(name)).find(|p| p.is_file())?;
    let text = std::fs::read_to_string(&path).ok()?;
    let entries = unit_file::parse(&text).ok()?;
    Some(activation(path, name, &entries))
}

fn activation(path: PathBuf, name: &str, entries: &[unit_file::Entry]) -> Activation {
    let mut a = Activation { path, ..Default::default() };
    let socket = entries.iter().filter(|e| e.section == "Socket");
    let value = |key: &str| socket.clone().rfind(|e| e.key == key).map(|e| e.value.clone());
    // systemd's default name for the fds is the socket unit's name.
    let fd_name = value("FileDescriptorName").unwrap_or_else(|| name.trim_end_matches(".socket").to_owned());
    let mode = value("SocketMode");
    for e in socket.clone() {
        let v = e.value.trim();
        let (stream, inet) = match e.key.as_str() {
            "ListenStream" => ("unix", "tcp"),
            "ListenDatagram" => ("unixgram", "udp"),
            "FileDescriptorName" | "SocketMode" | "Service" => continue,
            "Accept" if v == "no" || v == "false" => continue,
            "Accept" => {
                a.skipped.push((
                    format!("Accept={v}"),
                    "one service instance per connection (inetd style) has no counterpart: capexec hands the listening socket to one service".into(),
                ));
                continue;
            }
            // systemd reads a boolean here as ipv6-only (true) or both.
            "BindIPv6Only" => {
                let why = match v {
                    "ipv6-only" | "yes" | "true" | "on" | "1" => {
                        a.covered.push((format!("BindIPv6Only={v}"), "capexec's IPv6 listening sockets are IPv6-only always (IPV6_V6ONLY)".into()));
                        continue;
                    }
                    "both" | "no" | "false" | "off" | "0" => {
                        "capexec's IPv6 listening sockets are IPv6-only always: beside an [::]:PORT listener, declare 0.0.0.0:PORT for IPv4"
                    }
                    _ => "the host's net.ipv6.bindv6only: capexec's IPv6 listening sockets are IPv6-only always",
                };
                a.skipped.push((format!("BindIPv6Only={v}"), why.into()));
                continue;
            }
            "DirectoryMode" => {
                a.skipped.push((format!("DirectoryMode={v}"), "missing parents of a socket path are made root's 0755".into()));
                continue;
            }
            other => {
                a.skipped.push((format!("{other}={v}"), "not mapped: capexec has no counterpart for this socket option".into()));
                continue;
            }
        };
        let address = if v.starts_with('/') {
            Some(format!("{stream}:{v}"))
        } else if let Ok(port) = v.parse::<u16>() {
            a.skipped.push((
                format!("{}={v}", e.key),
                format!("systemd listens on [::]:{v} for both families; capexec's IPv6 sockets are v6-only, so this is {inet}:0.0.0.0:{v}: add {inet}:[::]:{v} for IPv6"),
            ));
            Some(format!("{inet}:0.0.0.0:{port}"))
        } else if v.parse::<std::net::SocketAddr>().is_ok() {
            Some(format!("{inet}:{v}"))
        } else {
            None
        };
        match address {
            Some(address) => {
                let unix = address.starts_with("unix");
                // systemd names every fd of the unit alike; capexec's names
                // are distinct, so the second is NAME-2 and so on.
                let name = match a.listen.len() {
                    0 => fd_name.clone(),
                    n => {
                        a.skipped.push((
                            format!("{}={v}", e.key),
                            format!("named {fd_name}-{} in LISTEN_FDNAMES (systemd names every fd of the unit {fd_name})", n + 1),
                        ));
                        format!("{fd_name}-{}", n + 1)
                    }
                };
                a.listen.push(Listen { address, name, socket_mode: mode.clone().filter(|_| unix) });
            }
            None => a.skipped.push((
                format!("{}={v}", e.key),
                "not an absolute path, a port or ADDRESS:PORT (abstract sockets, interfaces and vsock have no preopen)".into(),
            )),
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Activation {
        activation(PathBuf::from("/lib/systemd/system/x.socket"), "x.socket", &unit_file::parse(text).unwrap())
    }

    #[test]
    fn syslog_socket_is_a_datagram_preopen() {
        let a = of("[Socket]\nListenDatagram=/run/systemd/journal/syslog\nSocketMode=0666\nPassCredentials=yes\n");
        assert_eq!(a.listen, [Listen { address: "unixgram:/run/systemd/journal/syslog".into(), name: "x".into(), socket_mode: Some("0666".into()) }]);
        assert_eq!(a.skipped.len(), 1, "{:?}", a.skipped);
    }

    /// gpsd.socket's BindIPv6Only=yes is what capexec's IPv6 listeners are
    /// anyway (it was "not mapped"); `both` is said with what to declare.
    #[test]
    fn ipv6_only_listeners_are_covered() {
        let a = of("[Socket]\nListenStream=[::1]:2947\nBindIPv6Only=yes\n");
        assert!(a.skipped.is_empty() && a.covered.len() == 1 && a.covered[0].1.contains("IPv6-only always"), "{a:?}");
        let a = of("[Socket]\nListenStream=[::]:2947\nBindIPv6Only=both\n");
        assert!(a.covered.is_empty() && a.skipped[0].1.contains("declare 0.0.0.0:PORT for IPv4"), "{a:?}");
    }

    #[test]
    fn ports_and_addresses_are_inet_listeners() {
        let a = of("[Socket]\nListenStream=22\nListenStream=127.0.0.1:8080\nListenDatagram=[::1]:53\nListenStream=@abstract\nFileDescriptorName=web\nSocketMode=0600\nAccept=yes\n");
        let got: Vec<(&str, &str, Option<&str>)> = a.listen.iter().map(|l| (l.address.as_str(), l.name.as_str(), l.socket_mode.as_deref())).collect();
        assert_eq!(got, [("tcp:0.0.0.0:22", "web", None), ("tcp:127.0.0.1:8080", "web-2", None), ("udp:[::1]:53", "web-3", None)]);
        let skipped: Vec<&str> = a.skipped.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(skipped, ["ListenStream=22", "ListenStream=127.0.0.1:8080", "ListenDatagram=[::1]:53", "ListenStream=@abstract", "Accept=yes"]);
    }
}
