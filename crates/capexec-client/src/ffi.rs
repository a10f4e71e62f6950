//! The C interface (`include/capexec.h`), for C programs that use capexec's
//! broker as they would use libcasper's `cap_*` functions. Failures return -1
//! with errno set (the `_r` lookups return the error number, as getpwnam_r
//! does); nothing here panics on bad input.

use crate::{Broker, Family, Proto};
use std::ffi::{c_char, c_int, CStr};
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

fn fail(e: &std::io::Error) -> c_int {
    set_errno(e.raw_os_error().unwrap_or(libc::EIO));
    -1
}

/// Borrows the broker and a C string, or fails with EINVAL.
///
/// # Safety
/// `b` is NULL or from `capexec_broker_init`; `s` is NULL or NUL-terminated.
unsafe fn args<'a>(b: *const Broker, s: *const c_char) -> Option<(&'a Broker, &'a str)> {
    if b.is_null() || s.is_null() {
        return None;
    }
    // SAFETY: the caller's contract above.
    unsafe { Some((&*b, CStr::from_ptr(s).to_str().ok()?)) }
}

/// The connection named by CAPEXEC_BROKER_FD, or NULL with errno set.
#[no_mangle]
pub extern "C" fn capexec_broker_init() -> *mut Broker {
    match Broker::from_env() {
        Ok(b) => Box::into_raw(Box::new(b)),
        Err(e) => {
            set_errno(if e.kind() == std::io::ErrorKind::NotFound { libc::ENOENT } else { e.raw_os_error().unwrap_or(libc::EBADF) });
            std::ptr::null_mut()
        }
    }
}

/// Frees the handle (the inherited descriptor stays open).
///
/// # Safety
/// `b` is NULL or a handle from `capexec_broker_init` not freed before.
#[no_mangle]
pub unsafe extern "C" fn capexec_broker_free(b: *mut Broker) {
    if !b.is_null() {
        // SAFETY: the caller's contract: a Box we handed out, freed once.
        drop(unsafe { Box::from_raw(b) });
    }
}

/// # Safety
/// `b` from `capexec_broker_init`, `path` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn capexec_open(b: *const Broker, path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: forwarded caller contract.
    let Some((b, path)) = (unsafe { args(b, path) }) else { return fail(&std::io::Error::from_raw_os_error(libc::EINVAL)) };
    match b.open(path, flags, mode) {
        Ok(fd) => fd.into_raw_fd(),
        Err(e) => fail(&e),
    }
}

/// # Safety
/// `addr` points to `len` readable bytes.
unsafe fn sockaddr(addr: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: the caller's contract; each read is checked against `len`
    // first, and unaligned: a C caller's buffer need not be aligned for the
    // struct (a sockaddr inside a byte array, say).
    unsafe {
        let family = std::ptr::addr_of!((*addr).sa_family).read_unaligned();
        match family as c_int {
            libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                let a = (addr as *const libc::sockaddr_in).read_unaligned();
                Some(SocketAddr::new(std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)).into(), u16::from_be(a.sin_port)))
            }
            libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                let a = (addr as *const libc::sockaddr_in6).read_unaligned();
                Some(SocketAddr::new(std::net::Ipv6Addr::from(a.sin6_addr.s6_addr).into(), u16::from_be(a.sin6_port)))
            }
            _ => None,
        }
    }
}

/// # Safety
/// `b` from `capexec_broker_init`; `addr` points to `len` readable bytes.
unsafe fn net(b: *const Broker, protocol: c_int, addr: *const libc::sockaddr, len: libc::socklen_t, bind: bool) -> c_int {
    let proto = match protocol {
        0 | libc::IPPROTO_TCP => Proto::Tcp,
        libc::IPPROTO_UDP => Proto::Udp,
        _ => return fail(&std::io::Error::from_raw_os_error(libc::EPROTONOSUPPORT)),
    };
    // SAFETY: forwarded caller contract.
    let Some(a) = (unsafe { sockaddr(addr, len) }) else { return fail(&std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT)) };
    if b.is_null() {
        return fail(&std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: non-NULL handle from capexec_broker_init.
    let b = unsafe { &*b };
    match if bind { b.bind(proto, a) } else { b.connect(proto, a) } {
        Ok(fd) => fd.into_raw_fd(),
        Err(e) => fail(&e),
    }
}

/// A socket connected to `addr`; `protocol` is IPPROTO_TCP (or 0) or IPPROTO_UDP.
///
/// # Safety
/// `b` from `capexec_broker_init`; `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn capexec_connect(b: *const Broker, protocol: c_int, addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { net(b, protocol, addr, len, false) }
}

/// A socket bound to `addr` (call listen(2) on it for TCP).
///
/// # Safety
/// `b` from `capexec_broker_init`; `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn capexec_bind(b: *const Broker, protocol: c_int, addr: *const libc::sockaddr, len: libc::socklen_t) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { net(b, protocol, addr, len, true) }
}

/// Fills up to `max` addresses (port 0) of `name`; returns how many.
///
/// # Safety
/// `b` from `capexec_broker_init`, `name` NUL-terminated, `out` has room for `max`.
#[no_mangle]
pub unsafe extern "C" fn capexec_getaddrinfo(b: *const Broker, name: *const c_char, family: c_int, out: *mut libc::sockaddr_storage, max: usize) -> c_int {
    // SAFETY: forwarded caller contract.
    let Some((b, name)) = (unsafe { args(b, name) }) else { return fail(&std::io::Error::from_raw_os_error(libc::EINVAL)) };
    let family = match family {
        libc::AF_UNSPEC => Family::Any,
        libc::AF_INET => Family::Inet,
        libc::AF_INET6 => Family::Inet6,
        _ => return fail(&std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    };
    let addrs = match b.getaddrinfo(name, family) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let n = addrs.len().min(max);
    for (i, a) in addrs.iter().take(n).enumerate() {
        // SAFETY: i < max, within the caller's array; sockaddr_storage holds
        // either form, and is zeroed before the family's fields are written.
        unsafe {
            let slot = out.add(i);
            std::ptr::write_bytes(slot, 0, 1);
            match a {
                std::net::IpAddr::V4(v4) => {
                    let s = &mut *(slot as *mut libc::sockaddr_in);
                    s.sin_family = libc::AF_INET as libc::sa_family_t;
                    s.sin_addr.s_addr = u32::from(*v4).to_be();
                }
                std::net::IpAddr::V6(v6) => {
                    let s = &mut *(slot as *mut libc::sockaddr_in6);
                    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    s.sin6_addr.s6_addr = v6.octets();
                }
            }
        }
    }
    n as c_int
}

/// Copies `strs` NUL-terminated into `buf`, returning a pointer to each copy,
/// or None when `buf` is too small.
///
/// # Safety
/// `buf` has `len` writable bytes.
unsafe fn pack(strs: &[&str], buf: *mut c_char, len: usize) -> Option<Vec<*mut c_char>> {
    let need: usize = strs.iter().map(|s| s.len() + 1).sum();
    if need > len || buf.is_null() {
        return None;
    }
    let mut at = 0;
    let mut ptrs = Vec::with_capacity(strs.len());
    for s in strs {
        // SAFETY: at + s.len() + 1 <= need <= len: inside the caller's buffer.
        unsafe {
            let p = buf.add(at);
            std::ptr::copy_nonoverlapping(s.as_ptr(), p.cast(), s.len());
            *p.add(s.len()) = 0;
            ptrs.push(p);
        }
        at += s.len() + 1;
    }
    Some(ptrs)
}

/// As getpwnam_r(3): 0 with `*result` set, or an error number (ENOENT when the
/// user is not granted or does not exist, ERANGE when `buf` is too small).
///
/// # Safety
/// Pointers as getpwnam_r's; `b` from `capexec_broker_init`.
#[no_mangle]
pub unsafe extern "C" fn capexec_getpwnam_r(
    b: *const Broker,
    name: *const c_char,
    pwd: *mut libc::passwd,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut libc::passwd,
) -> c_int {
    if !result.is_null() {
        // SAFETY: the caller's result pointer.
        unsafe { *result = std::ptr::null_mut() };
    }
    // SAFETY: forwarded caller contract.
    let Some((b, name)) = (unsafe { args(b, name) }) else { return libc::EINVAL };
    if pwd.is_null() || result.is_null() {
        return libc::EINVAL;
    }
    let p = match b.getpwnam(name) {
        Ok(p) => p,
        Err(e) => return e.raw_os_error().unwrap_or(libc::EIO),
    };
    // SAFETY: buf has buflen bytes (caller contract).
    let Some(s) = (unsafe { pack(&[&p.name, "x", &p.gecos, &p.dir, &p.shell], buf, buflen) }) else { return libc::ERANGE };
    // SAFETY: pwd and result are valid (checked non-NULL, caller contract).
    unsafe {
        *pwd = libc::passwd { pw_name: s[0], pw_passwd: s[1], pw_uid: p.uid, pw_gid: p.gid, pw_gecos: s[2], pw_dir: s[3], pw_shell: s[4] };
        *result = pwd;
    }
    0
}

/// As getgrnam_r(3).
///
/// # Safety
/// Pointers as getgrnam_r's; `b` from `capexec_broker_init`.
#[no_mangle]
pub unsafe extern "C" fn capexec_getgrnam_r(
    b: *const Broker,
    name: *const c_char,
    grp: *mut libc::group,
    buf: *mut c_char,
    buflen: usize,
    result: *mut *mut libc::group,
) -> c_int {
    if !result.is_null() {
        // SAFETY: the caller's result pointer.
        unsafe { *result = std::ptr::null_mut() };
    }
    // SAFETY: forwarded caller contract.
    let Some((b, name)) = (unsafe { args(b, name) }) else { return libc::EINVAL };
    if grp.is_null() || result.is_null() {
        return libc::EINVAL;
    }
    let g = match b.getgrnam(name) {
        Ok(g) => g,
        Err(e) => return e.raw_os_error().unwrap_or(libc::EIO),
    };
    // The member array (NULL-terminated) goes first in buf, aligned for pointers.
    let ptr_size = std::mem::size_of::<*mut c_char>();
    let align = (buf as usize).wrapping_neg() % ptr_size;
    let array = align + (g.members.len() + 1) * ptr_size;
    if buf.is_null() || array > buflen {
        return libc::ERANGE;
    }
    let strs: Vec<&str> = std::iter::once(g.name.as_str()).chain(std::iter::once("x")).chain(g.members.iter().map(|m| m.as_str())).collect();
    // SAFETY: the strings go after the array, within buflen.
    let Some(s) = (unsafe { pack(&strs, buf.add(array), buflen - array) }) else { return libc::ERANGE };
    // SAFETY: the array lies at an aligned offset inside buf with room for
    // members + 1 pointers; grp and result are valid.
    unsafe {
        let mem = buf.add(align) as *mut *mut c_char;
        for (i, p) in s[2..].iter().enumerate() {
            *mem.add(i) = *p;
        }
        *mem.add(g.members.len()) = std::ptr::null_mut();
        *grp = libc::group { gr_name: s[0], gr_passwd: s[1], gr_gid: g.gid, gr_mem: mem };
        *result = grp;
    }
    0
}

/// Logs `message` at the level in `priority` (LOG_ERR, LOG_INFO, ...; the
/// facility bits are ignored: the broker logs as the unit).
///
/// # Safety
/// `b` from `capexec_broker_init`, `message` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn capexec_syslog(b: *const Broker, priority: c_int, message: *const c_char) -> c_int {
    // SAFETY: forwarded caller contract.
    let Some((b, msg)) = (unsafe { args(b, message) }) else { return fail(&std::io::Error::from_raw_os_error(libc::EINVAL)) };
    match b.syslog((priority & 7) as u8, msg) {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}

/// Reads a granted sysctl key into `buf`; returns the value's length (which
/// may exceed `len`: the copy is then cut), or -1.
///
/// # Safety
/// `b` from `capexec_broker_init`, `key` NUL-terminated, `buf` has `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn capexec_sysctl_read(b: *const Broker, key: *const c_char, buf: *mut c_char, len: usize) -> isize {
    // SAFETY: forwarded caller contract.
    let Some((b, key)) = (unsafe { args(b, key) }) else { return fail(&std::io::Error::from_raw_os_error(libc::EINVAL)) as isize };
    match b.sysctl(key) {
        Ok(v) => {
            if !buf.is_null() {
                // SAFETY: at most len bytes into the caller's buffer.
                unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), buf.cast(), v.len().min(len)) };
            }
            v.len() as isize
        }
        Err(e) => fail(&e) as isize,
    }
}
