//! Times one kind of call N times from wherever it runs (inside or outside a
//! capexec sandbox) and prints `median_us p99_us` — the measuring half of
//! scripts/bench/broker.py, which decides where each run happens.
//!
//! `open PATH N`: open(2)+close, as an unmodified program does (a plain open,
//! or a transparent brokered one when PATH is under a [[broker.fs]] grant).
//! `explicit PATH N`: the same file through capexec-client.
//! `connect PORT N`: a TCP connect to 127.0.0.1:PORT (transparently brokered
//! under a connect grant in net = "none"), closed with RST so no TIME_WAIT piles up.
//! `explicit-connect PORT N`: the same through capexec-client.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

fn close_rst(fd: i32) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt reads one linger struct; close ends our own fd.
    unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&l as *const libc::linger).cast(), std::mem::size_of::<libc::linger>() as u32);
        libc::close(fd);
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (mode, target, n) = (a[1].as_str(), a[2].clone(), a[3].parse::<usize>().unwrap());
    let mut t = Vec::with_capacity(n);
    let path = CString::new(target.clone()).unwrap();
    let port: u16 = target.parse().unwrap_or(0);
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    let client = || capexec_client::Broker::from_env().expect("no broker connection");
    let broker = if mode.starts_with("explicit") { Some(client()) } else { None };
    for _ in 0..n {
        match mode {
            "open" => {
                let s = Instant::now();
                // SAFETY: valid C string; the fd is closed right after.
                let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                t.push(s.elapsed().as_nanos() as u64);
                assert!(fd >= 0, "open {target}: {}", std::io::Error::last_os_error());
                // SAFETY: closing the fd just opened.
                unsafe { libc::close(fd) };
            }
            "explicit" => {
                let b = broker.as_ref().unwrap();
                let s = Instant::now();
                let fd: OwnedFd = b.open(&target, libc::O_RDONLY, 0).expect("explicit open");
                t.push(s.elapsed().as_nanos() as u64);
                drop(fd);
            }
            "connect" => {
                // SAFETY: a new socket, connected and closed below.
                let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
                let s = Instant::now();
                // SAFETY: the kernel reads one sockaddr_in.
                let rc = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as u32) };
                t.push(s.elapsed().as_nanos() as u64);
                assert!(rc == 0, "connect: {}", std::io::Error::last_os_error());
                close_rst(fd);
            }
            "explicit-connect" => {
                let b = broker.as_ref().unwrap();
                let s = Instant::now();
                let fd = b.connect(capexec_client::Proto::Tcp, std::net::SocketAddr::from(([127, 0, 0, 1], port))).expect("explicit connect");
                t.push(s.elapsed().as_nanos() as u64);
                close_rst(fd.as_raw_fd());
                std::mem::forget(fd);
            }
            other => panic!("unknown mode {other}"),
        }
    }
    t.sort_unstable();
    let us = |ns: u64| ns as f64 / 1000.0;
    println!("{:.2} {:.2}", us(t[n / 2]), us(t[n * 99 / 100]));
}
