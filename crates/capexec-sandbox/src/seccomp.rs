//! The seccomp filters: the service's allowlist (from the spec's syscall set) and
//! the tiny filter of the namespace's init process.
//!
//! The service filter starts with a prologue that
//! 1. kills the process for any architecture other than x86_64 (i386 via
//!    `int 0x80`, a 32-bit binary),
//! 2. rejects x32 syscall numbers (bit 30 set) with ENOSYS, and
//! 3. answers clone3 with ENOSYS: its flags sit in memory, where a filter cannot
//!    look, so libc falls back to clone(), whose flags the allowlist checks;
//!
//! then decides by a binary search over syscall numbers (see `service_filter` for
//! why it is generated here rather than by seccompiler). A few allowed syscalls
//! carry argument rules (see `argument_block`). The tests run the generated
//! program in a small BPF interpreter against the spec for every number.

use crate::error::LaunchError;
use capexec_decl::spec::{ArgOp, DenyAction, ProfileAction, ProfileRule, SeccompProfile, SeccompSpec};
use capexec_decl::syscalls::Set;
pub use seccompiler::sock_filter;
use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch};
use std::collections::BTreeMap;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const SYS_CLONE3: u32 = 435;

pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;

/// One instruction without jumps (a load, a return, ...).
pub fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}
/// A conditional jump: `jt` instructions ahead when the test holds, `jf` when not.
pub fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

pub const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn prologue() -> Vec<sock_filter> {
    vec![
        stmt(BPF_LD_W_ABS, 4), // seccomp_data.arch
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, 0), // seccomp_data.nr
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        jump(BPF_JEQ_K, SYS_CLONE3, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ]
}

/// Namespace flags refused in clone()'s flags. All sit in the low 32 bits.
/// (CLONE_NEWTIME is not here: clone() reads that bit as part of the exit signal;
/// only clone3 and unshare take it, and neither is allowed.)
pub const NS_FLAGS: u32 =
    (libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWCGROUP)
        as u32;

pub const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// Offset of the low 32 bits of syscall argument `i` in seccomp_data (x86_64 is
/// little-endian). Every check here needs only the low half: the kernel reads
/// these arguments as 32-bit values (int family, unsigned int cmd, ...).
pub fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

/// A self-contained block: loads argument `arg` (masked), returns `on_match`
/// if it equals one of `values`, else `otherwise`.
pub fn any_of(arg: u32, mask: Option<u32>, values: &[u32], on_match: u32, otherwise: u32) -> Vec<sock_filter> {
    let mut b = vec![stmt(BPF_LD_W_ABS, arg_lo(arg))];
    if let Some(m) = mask {
        b.push(stmt(BPF_AND_K, m));
    }
    let n = values.len();
    for (i, v) in values.iter().enumerate() {
        // Match: jump to the RET on_match after the remaining comparisons.
        b.push(jump(BPF_JEQ_K, *v, (n - i) as u8, 0));
    }
    b.push(stmt(BPF_RET_K, otherwise));
    b.push(stmt(BPF_RET_K, on_match));
    b
}

/// Returns `on_set` if argument `arg` has any bit of `bits`, else ALLOW.
fn none_of_bits(arg: u32, bits: u32, on_set: u32) -> Vec<sock_filter> {
    vec![stmt(BPF_LD_W_ABS, arg_lo(arg)), jump(BPF_JSET_K, bits, 0, 1), stmt(BPF_RET_K, on_set), stmt(BPF_RET_K, SECCOMP_RET_ALLOW)]
}

/// setuid and setgid bits (systemd's RestrictSUIDSGID=): a service that could
/// make a file setuid to its own uid leaves a way into that uid for whoever
/// runs the file later.
const SUID_SGID: u32 = libc::S_ISUID | libc::S_ISGID;

/// shmat's flag for an executable attach (linux/shm.h; not in the libc crate for glibc).
const SHM_EXEC: u32 = 0o100000;

/// The IP protocols a socket may be created with: 0 (the type's default),
/// TCP and UDP. Landlock's TCP rules check TCP sockets only, so MPTCP (which
/// falls back to plain TCP on the wire), SCTP and the rest would reach ports
/// no rule covers.
const IP_PROTOCOLS: [u32; 3] = [0, libc::IPPROTO_TCP as u32, libc::IPPROTO_UDP as u32];

/// socket(): Unix and netlink sockets of any kind; IPv4 and IPv6 sockets
/// only with a protocol from IP_PROTOCOLS and of type stream or datagram;
/// every other family refused (AF_PACKET, AF_VSOCK, ...). A refused
/// protocol gets `bad_protocol` (EPROTONOSUPPORT, what a kernel without it
/// says, so that programs that try MPTCP first fall back to TCP). A raw
/// socket is refused whatever its protocol: with `CAP_NET_RAW` kept on the
/// host (`namespaces.user = false`), `SOCK_RAW` with IPPROTO_UDP or TCP
/// sends packets it builds itself, which no connect or sendmsg hook of the
/// network guard sees (and with IP_HDRINCL, any packet at all). With `ping`
/// (`[broker.net] ping`), ICMP and ICMPv6 too: of type datagram that is a
/// ping socket, which sends echo requests only, and each one meets the
/// network guard's packet check.
fn socket_block(deny: u32, bad_protocol: u32, ping: bool) -> Vec<sock_filter> {
    let (unix, netlink, inet, inet6) = (libc::AF_UNIX as u32, libc::AF_NETLINK as u32, libc::AF_INET as u32, libc::AF_INET6 as u32);
    let mut protocols = IP_PROTOCOLS.to_vec();
    if ping {
        protocols.extend([libc::IPPROTO_ICMP as u32, libc::IPPROTO_ICMPV6 as u32]);
    }
    let n = protocols.len();
    // Where the jumps go, by index: the type check, the refusal, the allow.
    let (types, refuse, allow) = (7 + n, 11 + n, 12 + n);
    let to = |from: usize, target: usize| (target - from - 1) as u8;
    let mut b = vec![
        stmt(BPF_LD_W_ABS, arg_lo(0)),
        jump(BPF_JEQ_K, unix, to(1, allow), 0),
        jump(BPF_JEQ_K, netlink, to(2, allow), 0),
        jump(BPF_JEQ_K, inet, 1, 0),
        jump(BPF_JEQ_K, inet6, 0, to(4, refuse)),
        stmt(BPF_LD_W_ABS, arg_lo(2)),
    ];
    for (i, p) in protocols.iter().enumerate() {
        b.push(jump(BPF_JEQ_K, *p, to(6 + i, types), 0));
    }
    b.push(stmt(BPF_RET_K, bad_protocol));
    // The type without SOCK_NONBLOCK and SOCK_CLOEXEC (the kernel's SOCK_TYPE_MASK).
    b.push(stmt(BPF_LD_W_ABS, arg_lo(1)));
    b.push(stmt(BPF_AND_K, 0xf));
    b.push(jump(BPF_JEQ_K, libc::SOCK_STREAM as u32, to(types + 2, allow), 0));
    b.push(jump(BPF_JEQ_K, libc::SOCK_DGRAM as u32, to(types + 3, allow), 0));
    b.push(stmt(BPF_RET_K, deny));
    b.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    debug_assert_eq!(b.len(), allow + 1);
    b
}

/// The answer for a refusal that should look like a feature the kernel lacks:
/// `errno` where the declaration refuses with an errno, else its own action.
fn refusal(deny: u32, errno: i32) -> u32 {
    if deny & 0xffff_0000 == SECCOMP_RET_ERRNO {
        SECCOMP_RET_ERRNO | errno as u32
    } else {
        deny
    }
}

/// Every syscall with an argument rule in [`argument_block`] (a test keeps
/// the two equal): the filter asks for blocks of these only, instead of
/// matching some 300 names against the rules on every launch.
pub const RULED: Set = Set::of(&[
    "clone",
    "socket",
    "ioctl",
    "personality",
    "mknod",
    "mknodat",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "setsockopt",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "creat",
    "mkdir",
    "mkdirat",
    "open",
    "openat",
    "openat2",
    "shmat",
]);

/// The argument rules: a syscall listed here is allowed only when its rule
/// passes. Each block is self-contained and ends in RET.
fn argument_block(name: &str, deny: u32, ping: bool) -> Option<Vec<sock_filter>> {
    let allow = SECCOMP_RET_ALLOW;
    Some(match name {
        // No new namespaces from inside: clone without any CLONE_NEW* flag.
        "clone" => vec![stmt(BPF_LD_W_ABS, arg_lo(0)), jump(BPF_JSET_K, NS_FLAGS, 0, 1), stmt(BPF_RET_K, deny), stmt(BPF_RET_K, allow)],
        "socket" => socket_block(deny, refusal(deny, libc::EPROTONOSUPPORT), ping),
        // A TCP Fast Open send connects inside sendto/sendmsg, where neither
        // Landlock's connect rule nor a connect-time check sees it. Refused
        // as a kernel with Fast Open disabled would (EOPNOTSUPP); a program
        // then connects the ordinary way, which the rules check.
        "sendto" | "sendmmsg" => none_of_bits(3, libc::MSG_FASTOPEN as u32, refusal(deny, libc::EOPNOTSUPP)),
        "sendmsg" => none_of_bits(2, libc::MSG_FASTOPEN as u32, refusal(deny, libc::EOPNOTSUPP)),
        // TCP_FASTOPEN_CONNECT defers the connect to the first write: refused
        // with the other Fast Open client path.
        "setsockopt" => vec![
            stmt(BPF_LD_W_ABS, arg_lo(1)),
            jump(BPF_JEQ_K, libc::IPPROTO_TCP as u32, 0, 3),
            stmt(BPF_LD_W_ABS, arg_lo(2)),
            jump(BPF_JEQ_K, libc::TCP_FASTOPEN_CONNECT as u32, 0, 1),
            stmt(BPF_RET_K, refusal(deny, libc::ENOPROTOOPT)),
            stmt(BPF_RET_K, allow),
        ],
        // No setuid or setgid bits, by chmod or at creation.
        "chmod" | "fchmod" | "creat" | "mkdir" => none_of_bits(1, SUID_SGID, deny),
        "fchmodat" | "fchmodat2" | "mkdirat" => none_of_bits(2, SUID_SGID, deny),
        "open" => creating_with(1, 2, deny),
        "openat" => creating_with(2, 3, deny),
        // openat2 keeps its flags and mode in memory, where no filter can
        // look: answered ENOSYS, as on a kernel before 5.6, so that programs
        // fall back to openat, whose mode the rule above checks (systemd's
        // RestrictSUIDSGID= does the same).
        "openat2" => vec![stmt(BPF_RET_K, refusal(deny, libc::ENOSYS))],
        // An executable attach of a SysV segment whose contents another
        // attach wrote: code made at run time that memory_deny_write_execute
        // would not see. Refused everywhere: without MDWE an anonymous
        // mapping gives the same, so nothing needs SHM_EXEC.
        "shmat" => none_of_bits(2, SHM_EXEC, deny),
        // No TIOCSTI/TIOCLINUX, compared on the low 32 bits as the kernel does
        // (CVE-2019-10063: junk in the upper half must not slip through).
        "ioctl" => any_of(1, None, &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32], deny, allow),
        // Query the personality or set plain Linux; no READ_IMPLIES_EXEC.
        "personality" => any_of(0, None, &[0, 0xffff_ffff], allow, deny),
        // Regular files, FIFOs and sockets only: never device nodes, and
        // without setuid or setgid bits.
        "mknod" | "mknodat" => {
            let arg = if name == "mknod" { 1 } else { 2 };
            let types = [0, libc::S_IFREG, libc::S_IFIFO, libc::S_IFSOCK];
            let mut b = vec![stmt(BPF_LD_W_ABS, arg_lo(arg)), jump(BPF_JSET_K, SUID_SGID, 0, 1), stmt(BPF_RET_K, deny)];
            b.extend(any_of(arg, Some(libc::S_IFMT), &types, allow, deny));
            b
        }
        _ => return None,
    })
}

/// open/openat: a mode with setuid or setgid bits is refused when the call can
/// create a file (O_CREAT or O_TMPFILE); without those flags the kernel
/// ignores the mode.
fn creating_with(flags_arg: u32, mode_arg: u32, deny: u32) -> Vec<sock_filter> {
    // O_TMPFILE includes O_DIRECTORY; its own bit is __O_TMPFILE.
    let creating = (libc::O_CREAT | (libc::O_TMPFILE & !libc::O_DIRECTORY)) as u32;
    vec![
        stmt(BPF_LD_W_ABS, arg_lo(flags_arg)),
        jump(BPF_JSET_K, creating, 0, 3),
        stmt(BPF_LD_W_ABS, arg_lo(mode_arg)),
        jump(BPF_JSET_K, SUID_SGID, 0, 1),
        stmt(BPF_RET_K, deny),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]
}

/// What the tree decides for the syscall numbers from its first one up to the
/// next segment's first (the last segment: up to the prologue's x32 bound).
/// The segments of a tree cover every number from 0, so a leaf needs no
/// comparison of its own.
#[derive(Debug, Clone)]
enum Seg {
    /// Refuse (a gap between allowed numbers).
    Deny(u32),
    /// Allow.
    Allow(u32),
    /// One syscall with an argument block.
    Rule(u32, Vec<sock_filter>),
}

fn seg_lo(s: &Seg) -> u32 {
    match s {
        Seg::Deny(lo) | Seg::Allow(lo) | Seg::Rule(lo, _) => *lo,
    }
}

/// The segments for sorted syscall numbers (each with its argument block, if
/// any): allowed runs, ruled numbers, and refused gaps between them.
fn partition(nrs: Vec<(u32, Option<Vec<sock_filter>>)>) -> Vec<Seg> {
    let mut segs: Vec<Seg> = Vec::new();
    // Every number below `end` is covered by `segs`.
    let mut end = 0;
    for (nr, block) in nrs {
        if nr < end {
            continue; // a repeated number
        }
        if nr > end {
            segs.push(Seg::Deny(end));
        }
        match block {
            Some(b) => segs.push(Seg::Rule(nr, b)),
            None if nr == end && matches!(segs.last(), Some(Seg::Allow(_))) => {}
            None => segs.push(Seg::Allow(nr)),
        }
        end = nr + 1;
    }
    segs.push(Seg::Deny(end));
    segs
}

/// Emits a binary search over a partition of the syscall numbers onto `out`:
/// an inner node is one JGE whose true branch skips its left half (or, for a
/// left half longer than a conditional jump reaches, a JGE over a 32-bit JA),
/// a leaf is a RET or an argument block. The kernel converts, JITs and
/// emulates the whole program at every launch, so its length is paid on the
/// launch's path: a leaf that tested its own bounds made the filter 544
/// instructions long where this one is 309 (`capexec run`'s defaults).
/// Written in place: built per launch, the tree made of per-node vectors
/// copied upwards was 3% of `capexec run`'s user CPU.
fn tree(segs: &[Seg], deny: u32, out: &mut Vec<sock_filter>) {
    if let [seg] = segs {
        match seg {
            Seg::Deny(_) => out.push(stmt(BPF_RET_K, deny)),
            Seg::Allow(_) => out.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW)),
            Seg::Rule(_, block) => out.extend_from_slice(block),
        }
        return;
    }
    let mid = segs.len() / 2;
    // nr >= first number of the right half: skip over the left half.
    let node = out.len();
    out.push(jump(BPF_JGE_K, seg_lo(&segs[mid]), 0, 0));
    tree(&segs[..mid], deny, out);
    let left = out.len() - node - 1;
    match u8::try_from(left) {
        Ok(skip) => out[node].jt = skip,
        Err(_) => {
            // Every jump in the left half stays inside it, so moving the
            // half by one instruction keeps them right.
            out[node].jf = 1;
            out.insert(node + 1, libc_ja(left as u32));
        }
    }
    tree(&segs[mid..], deny, out);
}

fn libc_ja(off: u32) -> sock_filter {
    stmt(BPF_JA, off)
}

/// The small second filter that hands `nrs` to the broker (SECCOMP_RET_USER_NOTIF)
/// and allows everything else, leaving the decision to the allowlist installed
/// next to it: across stacked filters the kernel takes the most restrictive
/// answer, so a syscall the allowlist denies never reaches the broker.
/// seccompiler has no user-notification action, hence hand-written BPF.
///
/// `sendto` is handed over only when it names an address (its fifth
/// argument is not NULL): a send on a connected socket, the common case by
/// far, has nothing for the broker and costs no round trip. `sendmsg` and
/// `sendmmsg` are, except on one socket, which [`exempt_sender`] names: the
/// one the filter's own listener is sent on, right after it is installed
/// (the broker that would answer has no listener yet). The broker only ever
/// moves a socket for a send, never refuses one the kernel would allow, so
/// a send it does not see loses the service nothing but the move.
pub fn notify_filter(nrs: &[u32]) -> Vec<sock_filter> {
    let mut prog = prologue();
    let (sendto, sendmsg, sendmmsg) = (libc::SYS_sendto as u32, libc::SYS_sendmsg as u32, libc::SYS_sendmmsg as u32);
    let mut blocks = Vec::new();
    if nrs.contains(&sendto) {
        // seccomp_data.args[4], low and high word (little endian).
        const ARG4: u32 = 16 + 4 * 8;
        blocks.extend([
            jump(BPF_JEQ_K, sendto, 0, 7),
            stmt(BPF_LD_W_ABS, ARG4),
            jump(BPF_JEQ_K, 0, 1, 0),
            stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF),
            stmt(BPF_LD_W_ABS, ARG4 + 4),
            jump(BPF_JEQ_K, 0, 0, 1),
            stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
            stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF),
        ]);
    }
    for nr in [sendmsg, sendmmsg].into_iter().filter(|nr| nrs.contains(nr)) {
        blocks.extend([
            jump(BPF_JEQ_K, nr, 0, 4),
            stmt(BPF_LD_W_ABS, 16), // args[0], the socket
            jump(BPF_JEQ_K, SENDER_PLACEHOLDER, 0, 1),
            stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
            stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF),
        ]);
    }
    let plain: Vec<u32> = nrs.iter().copied().filter(|nr| ![sendto, sendmsg, sendmmsg].contains(nr)).collect();
    let n = plain.len();
    for (i, nr) in plain.iter().enumerate() {
        // On a match jump to the USER_NOTIF return after the remaining tests.
        prog.push(jump(BPF_JEQ_K, *nr, (n - i + blocks.len()) as u8, 0));
    }
    prog.extend(blocks);
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
    prog
}

/// Stands for the sending socket in [`notify_filter`] until
/// [`exempt_sender`] names it; no fd has this number, so a filter
/// installed as built hands over every sendmsg.
const SENDER_PLACEHOLDER: u32 = u32::MAX;

/// `prog` (a [`notify_filter`]) with `fd` as the socket whose sendmsg and
/// sendmmsg it lets through: the one its listener is sent on.
pub fn exempt_sender(prog: &[sock_filter], fd: std::os::fd::RawFd) -> Vec<sock_filter> {
    let mut out = prog.to_vec();
    for i in out.iter_mut().filter(|i| i.code == BPF_JEQ_K && i.k == SENDER_PLACEHOLDER) {
        i.k = fd as u32;
    }
    out
}

/// Whether `prog` lets syscall `nr` (x86_64) run for some arguments: some
/// path through it ends in ALLOW or LOG. `None` when the program uses an
/// instruction this analysis does not know.
pub fn allows_some(prog: &[sock_filter], nr: u32) -> Option<bool> {
    let verdicts = verdicts(prog, nr)?;
    Some(verdicts.iter().any(|v| matches!(v & libc::SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW | SECCOMP_RET_LOG)))
}

/// Every verdict `prog` can return for syscall `nr` on x86_64, whatever its
/// arguments: the program is walked with the number and the architecture
/// known and every test of anything else taken both ways. This is how
/// `capexec analyze` reads what the service's real filter allows, instead of
/// the declaration's list.
pub fn verdicts(prog: &[sock_filter], nr: u32) -> Option<std::collections::BTreeSet<u32>> {
    let mut out = std::collections::BTreeSet::new();
    // (pc, accumulator: known value or None), explored depth first; jumps only go forward.
    let mut todo = vec![(0usize, None::<u32>)];
    let mut seen = std::collections::BTreeSet::new();
    while let Some((pc, a)) = todo.pop() {
        if !seen.insert((pc, a)) {
            continue;
        }
        let ins = prog.get(pc)?;
        let next = pc + 1;
        match ins.code {
            BPF_LD_W_ABS => {
                let v = match ins.k {
                    0 => Some(nr),
                    4 => Some(AUDIT_ARCH_X86_64),
                    _ => None,
                };
                todo.push((next, v));
            }
            BPF_AND_K => todo.push((next, a.map(|v| v & ins.k))),
            BPF_RET_K => {
                out.insert(ins.k);
            }
            BPF_JA => todo.push((next + ins.k as usize, a)),
            BPF_JEQ_K | BPF_JGE_K | BPF_JGT_K | BPF_JSET_K => {
                let (t, f) = (next + ins.jt as usize, next + ins.jf as usize);
                let taken = a.map(|v| match ins.code {
                    BPF_JEQ_K => v == ins.k,
                    BPF_JGE_K => v >= ins.k,
                    BPF_JGT_K => v > ins.k,
                    _ => v & ins.k != 0,
                });
                match taken {
                    Some(true) => todo.push((t, a)),
                    Some(false) => todo.push((f, a)),
                    None => {
                        todo.push((t, a));
                        todo.push((f, a));
                    }
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Installs `prog` as a seccomp filter of the calling thread and returns the
/// user-notification listener (SECCOMP_FILTER_FLAG_NEW_LISTENER). Requires
/// no_new_privs. The listener is close-on-exec.
pub fn install_with_listener(prog: &[sock_filter]) -> std::io::Result<std::os::fd::OwnedFd> {
    crate::sys::seccomp_set_filter_listener(&kernel_form(prog))
}

/// `prog` as libc's sock_filter, the type the kernel's interface is written
/// with (seccompiler has its own of the same layout).
fn kernel_form(prog: &[sock_filter]) -> Vec<libc::sock_filter> {
    prog.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect()
}

/// Installs the service's filter with SECCOMP_FILTER_FLAG_LOG: each refusal
/// becomes an audit record (an AUDIT_SECCOMP with the syscall and the pid),
/// which the daemon reads into the service's denial trail. The kernel logs
/// only the actions `kernel.seccomp.actions_logged` names, and nothing while
/// audit is off.
pub fn install_logged(prog: &[sock_filter]) -> std::io::Result<()> {
    crate::sys::seccomp_set_filter(&kernel_form(prog), libc::SECCOMP_FILTER_FLAG_LOG).map(drop)
}

/// The service's allowlist `prog` (built by [`allowlist`]) with each refusal
/// it answers with an errno handed to a listener instead (USER_NOTIF):
/// rootless, where no audit log tells anyone what was refused, capexec
/// holds the listener, runs `prog` itself on the notification's data for
/// the errno and answers with it, and so knows each refusal as it happens
/// (`SetupPlan::report_refusals`). Nothing else changes: what `prog`
/// allows runs without a listener's say, what it kills is killed, and the
/// prologue's answers (x32 numbers, clone3) are the kernel's at once.
///
/// With a broker, `brokered` are the calls its filter ([`notify_filter`])
/// hands it. The kernel allows one listener in a filter chain, so the two
/// become one program with one listener, the broker's: what `prog` allows
/// then goes on to the broker's test, and the broker tells the refusals
/// (`prog`'s errno) from its own calls by running `prog` itself. `None`
/// for a program that does not start with the prologue, or (with a
/// broker) one that logs instead of refusing: nothing to report there.
pub fn reporting(prog: &[sock_filter], brokered: &[u32]) -> Option<Vec<sock_filter>> {
    let head = prologue();
    let same = |a: &sock_filter, b: &sock_filter| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k);
    if prog.len() < head.len() || !prog.iter().zip(&head).all(|(a, b)| same(a, b)) {
        return None;
    }
    let mut out = prog.to_vec();
    let tail = out.len();
    for (pc, i) in out.iter_mut().enumerate().skip(head.len()) {
        match (i.code, i.k) {
            (BPF_RET_K, k) if k & 0xffff_0000 == SECCOMP_RET_ERRNO => i.k = libc::SECCOMP_RET_USER_NOTIF,
            (BPF_RET_K, SECCOMP_RET_ALLOW) if !brokered.is_empty() => *i = stmt(BPF_JA, (tail - pc - 1) as u32),
            (BPF_RET_K, k) if k & 0xffff_0000 == SECCOMP_RET_LOG && !brokered.is_empty() => return None,
            _ => {}
        }
    }
    if !brokered.is_empty() {
        // The broker's test, after the allowlist's argument blocks loaded
        // arguments: the number again.
        out.push(stmt(BPF_LD_W_ABS, 0));
        out.extend(notify_filter(brokered).into_iter().skip(head.len()));
    }
    Some(out)
}

/// The learning filter (`capexec learn`): every native syscall goes to the
/// recorder, which lets it run (CONTINUE: learning enforces nothing). Other
/// architectures, x32 numbers and clone3 are answered as the enforced filter
/// answers them, so the program takes the paths it will take when confined
/// (glibc falls back from clone3 to clone).
pub fn learn_filter() -> Vec<sock_filter> {
    let mut prog = prologue();
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
    prog
}

/// The service's filter: the prologue, then a binary search over the allowed
/// syscall numbers (contiguous numbers merged into ranges), with argument blocks
/// for the syscalls that have rules.
///
/// Why not seccompiler's chain: it tests syscalls one after another, and the
/// kernel, when it installs a filter, emulates it for every syscall number to
/// build its constant-action cache — a chain of ~300 syscalls made that (and the
/// JIT) cost 1.3-2.3 ms per start, the largest single item of a launch. The tree
/// answers any number in about 2·log2(ranges) instructions. seccompiler still
/// installs the filters and builds the init's small one.
pub fn service_filter(spec: &SeccompSpec) -> Result<BpfProgram, LaunchError> {
    let deny = match spec.action {
        DenyAction::Errno(e) => SECCOMP_RET_ERRNO | (e as u32 & 0xffff),
        DenyAction::Kill => SECCOMP_RET_KILL_PROCESS,
        DenyAction::Log => SECCOMP_RET_LOG,
    };
    let nrs = spec.allowed.by_number().map(|c| (c.number(), if RULED.has(c) { argument_block(c.name(), deny, spec.ping) } else { None })).collect();
    allowlist(nrs, deny)
}

/// A profile given whole (capexec_decl's `SeccompProfile`) as filters to
/// stack, in the order to install them. A filter has one action for what
/// its rules match, so: the base returns the default for every syscall no
/// rule matches and allows the rest; one filter per other action returns
/// it where its rules match and allows the rest. The kernel takes the
/// strictest verdict of the stack (ERRNO before ALLOW), so a rule's action
/// wins over the base's allowing it, and the default applies only where
/// every filter allows. Each filter but the last must let seccomp() through
/// for the next: the base goes last, unless a rule refuses seccomp itself
/// (then that rule's filter does). The base starts with capexec's prologue
/// (other architectures killed, x32 and clone3 ENOSYS: glibc falls back to
/// clone). Notify rules make a filter of their own ([`ProfileFilters::notify`]),
/// which must be installed with a listener: the kernel answers ENOSYS for a
/// USER_NOTIF verdict of a filter without one.
pub fn profile_filters(p: &SeccompProfile) -> Result<ProfileFilters, LaunchError> {
    if p.default == ProfileAction::Notify {
        return Err(LaunchError::Plan("a seccomp profile whose default action is notify (name the calls to hand to the agent in rules instead)".into()));
    }
    let action = |a: ProfileAction| match a {
        // Replaced by USER_NOTIF once built (seccompiler has no such action;
        // trace is refused in profiles, so no other return has this value).
        ProfileAction::Notify => SeccompAction::Trace(0),
        ProfileAction::Allow => SeccompAction::Allow,
        ProfileAction::Errno(e) => SeccompAction::Errno(u32::from(e)),
        ProfileAction::KillThread => SeccompAction::KillThread,
        ProfileAction::KillProcess => SeccompAction::KillProcess,
        ProfileAction::Trap => SeccompAction::Trap,
        ProfileAction::Log => SeccompAction::Log,
    };
    let rules_of = |keep: &dyn Fn(&ProfileRule) -> bool| -> Result<BTreeMap<i64, Vec<SeccompRule>>, LaunchError> {
        let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        // A syscall with an unconditional rule matches whatever else is said of it.
        let mut always: std::collections::BTreeSet<i64> = Default::default();
        for r in p.rules.iter().filter(|r| keep(r)) {
            let conditions = r
                .args
                .iter()
                .map(|a| {
                    let op = match a.op {
                        ArgOp::Eq => SeccompCmpOp::Eq,
                        ArgOp::Ne => SeccompCmpOp::Ne,
                        ArgOp::Lt => SeccompCmpOp::Lt,
                        ArgOp::Le => SeccompCmpOp::Le,
                        ArgOp::Gt => SeccompCmpOp::Gt,
                        ArgOp::Ge => SeccompCmpOp::Ge,
                        ArgOp::MaskedEq => SeccompCmpOp::MaskedEq(a.value),
                    };
                    let value = if a.op == ArgOp::MaskedEq { a.value_two } else { a.value };
                    SeccompCondition::new(a.index, SeccompCmpArgLen::Qword, op, value)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| LaunchError::Seccomp(e.to_string()))?;
            for nr in r.syscalls.iter().filter_map(|n| capexec_decl::syscalls::number(n)) {
                if conditions.is_empty() {
                    always.insert(nr);
                }
                let list = map.entry(nr).or_default();
                if !conditions.is_empty() {
                    list.push(SeccompRule::new(conditions.clone()).map_err(|e| LaunchError::Seccomp(e.to_string()))?);
                }
            }
        }
        for nr in always {
            map.insert(nr, Vec::new());
        }
        Ok(map)
    };
    let build = |rules, mismatch: SeccompAction, matched: SeccompAction| -> Result<BpfProgram, LaunchError> {
        let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64).map_err(|e| LaunchError::Seccomp(e.to_string()))?;
        filter.try_into().map_err(|e: seccompiler::BackendError| LaunchError::Seccomp(e.to_string()))
    };
    let mut base = prologue();
    if p.default == ProfileAction::Allow {
        base.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    } else {
        base.extend(build(rules_of(&|_| true)?, action(p.default), SeccompAction::Allow)?);
    }
    let mut others: Vec<ProfileAction> = p.rules.iter().map(|r| r.action).filter(|a| !matches!(a, ProfileAction::Allow | ProfileAction::Notify)).collect();
    others.sort();
    others.dedup();
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for a in others {
        let f = build(rules_of(&|r| r.action == a)?, SeccompAction::Allow, action(a))?;
        let refuses_seccomp = p.rules.iter().any(|r| r.action == a && r.syscalls.iter().any(|s| s == "seccomp"));
        if refuses_seccomp { &mut last } else { &mut first }.push(f);
    }
    first.push(base);
    first.extend(last);
    let notify = match p.rules.iter().any(|r| r.action == ProfileAction::Notify) {
        false => None,
        true => {
            let mut f = build(rules_of(&|r| r.action == ProfileAction::Notify)?, SeccompAction::Allow, action(ProfileAction::Notify))?;
            for i in f.iter_mut().filter(|i| i.code == BPF_RET_K && i.k == SECCOMP_RET_TRACE) {
                i.k = libc::SECCOMP_RET_USER_NOTIF;
            }
            Some(f)
        }
    };
    Ok(ProfileFilters { stack: first, notify })
}

/// A profile's filters (see [`profile_filters`]).
#[derive(Debug)]
pub struct ProfileFilters {
    /// To install in this order, the base last but for a filter that
    /// refuses seccomp() itself.
    pub stack: Vec<BpfProgram>,
    /// The notify rules' filter (USER_NOTIF where they match, else allow),
    /// to install with a listener before the stack.
    pub notify: Option<BpfProgram>,
}

/// Every syscall capexec knows allowed, its argument rules still applied:
/// what `capexec learn` judges a run with, so that the mined declaration can
/// name the calls no declaration can allow.
pub fn rules_filter() -> Result<BpfProgram, LaunchError> {
    service_filter(&SeccompSpec {
        declared: Vec::new(),
        allowed: capexec_decl::syscalls::all(),
        action: DenyAction::Errno(libc::EPERM),
        // A ping socket is one a declaration can allow (`[broker.net]
        // ping`): mining grants it, and must not call it refused.
        ping: true,
        profile: None,
    })
}

/// The prologue, then a binary search over the allowed numbers (contiguous
/// numbers merged into ranges), with the argument blocks given (each ends
/// in returns of its own); `deny` for every other number.
pub fn allowlist(mut nrs: Vec<(u32, Option<Vec<sock_filter>>)>, deny: u32) -> Result<BpfProgram, LaunchError> {
    // clone3 is answered by the prologue.
    nrs.retain(|(nr, _)| *nr != SYS_CLONE3);
    nrs.sort_by_key(|(nr, _)| *nr);
    let mut prog = prologue();
    tree(&partition(nrs), deny, &mut prog);
    if prog.len() > 4096 {
        return Err(LaunchError::Seccomp(format!("filter has {} instructions; the kernel allows 4096", prog.len())));
    }
    Ok(prog)
}

/// For a sandbox living in a mount namespace not its own
/// (`SetupPlan::foreign_mount_ns`): there /proc/self/ns/mnt is that
/// namespace, reached without the ptrace check another process's would
/// need, and setns into it puts the caller's root at its root, out of the
/// view. Refused for CLONE_NEWNS (a pidfd's flags too) and for nstype 0
/// (any type: the fd's is not known here); every other call passes to the
/// filters stacked with this one.
pub fn keep_view_filter() -> BpfProgram {
    let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let mut prog = prologue();
    prog.extend([
        jump(BPF_JEQ_K, libc::SYS_setns as u32, 0, 5),
        stmt(BPF_LD_W_ABS, arg_lo(1)),
        jump(BPF_JEQ_K, 0, 2, 0),
        jump(BPF_JSET_K, libc::CLONE_NEWNS as u32, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_RET_K, eperm),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
    ]);
    prog
}

/// What init may call: wait, forward signals, exit; without a pid
/// namespace, also read its list of children through the fd it kept and
/// check its parent (`child::Leftovers`).
const INIT_CALLS: &[&str] = &[
    "rt_sigtimedwait",
    "rt_sigprocmask",
    "rt_sigreturn",
    "wait4",
    "waitid",
    "kill",
    "exit",
    "exit_group",
    "restart_syscall",
    "close_range",
    "getppid",
    "pread64",
];

/// The namespace init only waits, forwards signals and exits; anything else
/// kills it. Built by [`allowlist`] like the service's (a search tree, not
/// seccompiler's chain of one comparison per call): every launch builds it,
/// and the kernel converts and JITs it when init installs it.
pub fn init_filter(forking: bool, asks_main: bool) -> Result<BpfProgram, LaunchError> {
    // A forking service's init reads the pid file and sends READY=1 (fcntl:
    // debug builds of std check an OwnedFd is open before closing it).
    const FORKING: &[&str] = &["openat", "read", "close", "socket", "sendto", "fcntl"];
    // A notify service's asks for its main process's successor (see `crate::mainpid`).
    const ASKS_MAIN: &[&str] = &["close", "socket", "sendto", "fcntl"];
    let extra: &[&str] = match (forking, asks_main) {
        (true, _) => FORKING,
        (false, true) => ASKS_MAIN,
        (false, false) => &[],
    };
    let nrs = INIT_CALLS.iter().chain(extra).map(|n| (capexec_decl::syscalls::number(n).expect("known syscall") as u32, None)).collect();
    allowlist(nrs, SECCOMP_RET_KILL_PROCESS)
}

/// Runs a filter built here on one syscall, as the kernel would: a classic-BPF
/// interpreter for the instructions these filters use (absolute word loads,
/// AND, the conditional jumps, JA, RET). Returns the filter's SECCOMP_RET_*
/// value. `capexec learn --check` runs the unit's own filter on every call of
/// the run, so its report says what the kernel would have refused, argument
/// rules included; the tests check the generated programs with it.
pub fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    // Programs built here only jump forwards and end in RET; falling off the
    // end or an unknown instruction would be a bug in this file: kill, as the
    // kernel's verifier would have refused the program.
    while let Some(i) = prog.get(pc) {
        match (i.code & 0x07) as u32 {
            libc::BPF_LD => {
                let k = i.k as usize;
                match data.get(k..k + 4) {
                    Some(w) => acc = u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                    None => return SECCOMP_RET_KILL_PROCESS,
                }
                pc += 1;
            }
            libc::BPF_ALU if i.code == BPF_AND_K => {
                acc &= i.k;
                pc += 1;
            }
            libc::BPF_RET => return i.k,
            libc::BPF_JMP => {
                let op = (i.code & 0xf0) as u32;
                if op == libc::BPF_JA {
                    pc += 1 + i.k as usize;
                    continue;
                }
                let t = match op {
                    libc::BPF_JEQ => acc == i.k,
                    libc::BPF_JGE => acc >= i.k,
                    libc::BPF_JGT => acc > i.k,
                    libc::BPF_JSET => acc & i.k != 0,
                    _ => return SECCOMP_RET_KILL_PROCESS,
                };
                pc += 1 + if t { i.jt as usize } else { i.jf as usize };
            }
            _ => return SECCOMP_RET_KILL_PROCESS,
        }
    }
    SECCOMP_RET_KILL_PROCESS
}

/// A filter as plain numbers, one per instruction, for a message that
/// crosses a socket (the launcher hands the daemon the filter that judges
/// a listener's calls): code, jt, jf, k from the high bits down.
pub fn pack(prog: &[sock_filter]) -> Vec<u64> {
    prog.iter().map(|i| (i.code as u64) << 48 | (i.jt as u64) << 40 | (i.jf as u64) << 32 | i.k as u64).collect()
}

/// The filter [`pack`] made `words` of.
pub fn unpack(words: &[u64]) -> Vec<sock_filter> {
    words.iter().map(|w| sock_filter { code: (w >> 48) as u16, jt: (w >> 40) as u8, jf: (w >> 32) as u8, k: *w as u32 }).collect()
}

/// What a filter built here answers for a native (x86_64) syscall with
/// these arguments: its SECCOMP_RET_* value.
pub fn answer(prog: &[sock_filter], nr: u32, args: [u64; 6]) -> u32 {
    run(prog, AUDIT_ARCH_X86_64, nr, args)
}

/// The errno a filter built here refuses a native (x86_64) syscall with
/// these arguments; `None` where it answers anything else.
pub fn refusal_errno(prog: &[sock_filter], nr: u32, args: [u64; 6]) -> Option<i32> {
    let verdict = answer(prog, nr, args);
    (verdict & 0xffff_0000 == SECCOMP_RET_ERRNO).then_some((verdict & 0xffff) as i32)
}

/// What the service's allowlist filter would answer for a native (x86_64)
/// syscall: `true` when it lets the call run.
pub fn allows(prog: &[sock_filter], nr: i64, args: [u64; 6]) -> bool {
    run(prog, AUDIT_ARCH_X86_64, nr as u32, args) == SECCOMP_RET_ALLOW
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack's verdict as the kernel gives it: the strictest action,
    /// of equal ones the last installed filter's.
    fn stacked(filters: &[BpfProgram], nr: &str, args: [u64; 6]) -> u32 {
        stack(filters, AUDIT_ARCH_X86_64, capexec_decl::syscalls::number(nr).unwrap() as u32, args)
    }

    /// [`stacked`] by number and architecture.
    fn stack(filters: &[BpfProgram], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let rank = |v: u32| match v & 0xffff_0000 {
            SECCOMP_RET_KILL_PROCESS => 0,
            0 => 1,           // KILL_THREAD
            0x0003_0000 => 2, // TRAP
            SECCOMP_RET_ERRNO => 3,
            libc::SECCOMP_RET_USER_NOTIF => 4,
            SECCOMP_RET_TRACE => 5,
            SECCOMP_RET_LOG => 6,
            _ if v == SECCOMP_RET_ALLOW => 9,
            _ => 5,
        };
        filters.iter().rev().map(|f| run(f, arch, nr, args)).min_by_key(|v| rank(*v)).unwrap()
    }

    // A profile as podman's default has it: default ENOSYS, an allowlist,
    // EPERM for some, a conditional EINVAL beside a conditional allow for
    // socket, and a kill; each syscall gets the profile's verdict through
    // the stack, and the stack can be installed (seccomp stays allowed
    // until the last filter).
    #[test]
    fn a_profile_is_applied_as_its_rules_say() {
        use capexec_decl::spec::ProfileArg;
        let rule = |names: &[&str], action, args: Vec<ProfileArg>| ProfileRule { syscalls: names.iter().map(|n| n.to_string()).collect(), action, args };
        let arg = |index, op, value| ProfileArg { index, value, value_two: 0, op };
        let p = SeccompProfile {
            default: ProfileAction::Errno(38),
            rules: vec![
                rule(&["read", "write", "seccomp", "chown32", "personality"], ProfileAction::Allow, vec![]),
                rule(&["mount", "setns"], ProfileAction::Errno(1), vec![]),
                rule(&["socket"], ProfileAction::Errno(22), vec![arg(0, ArgOp::Eq, 40), arg(2, ArgOp::Eq, 9)]),
                rule(&["socket"], ProfileAction::Allow, vec![arg(0, ArgOp::Ne, 40)]),
                rule(&["reboot"], ProfileAction::KillProcess, vec![]),
                rule(&["ioctl"], ProfileAction::Allow, vec![ProfileArg { index: 1, value: 0xff00, value_two: 0x5400, op: ArgOp::MaskedEq }]),
            ],
        };
        let f = profile_filters(&p).unwrap();
        assert!(f.notify.is_none());
        let f = f.stack;
        assert_eq!(f.len(), 4, "ERRNO(1), ERRNO(22), KILL, then the base");
        let errno = |e: u32| SECCOMP_RET_ERRNO | e;
        let zero = [0u64; 6];
        assert_eq!(stacked(&f, "read", zero), SECCOMP_RET_ALLOW);
        assert_eq!(stacked(&f, "getpid", zero), errno(38), "not named: the default");
        assert_eq!(stacked(&f, "mount", zero), errno(1));
        assert_eq!(stacked(&f, "socket", [40, 1, 9, 0, 0, 0]), errno(22));
        assert_eq!(stacked(&f, "socket", [2, 1, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(stacked(&f, "socket", [40, 1, 0, 0, 0, 0]), errno(38), "no rule holds: the default");
        assert_eq!(stacked(&f, "reboot", zero), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(stacked(&f, "ioctl", [0, 0x5413, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(stacked(&f, "ioctl", [0, 0x8913, 0, 0, 0, 0]), errno(38));
        // Every filter but the last lets the next be installed.
        for prog in &f[..f.len() - 1] {
            assert_eq!(run(prog, AUDIT_ARCH_X86_64, libc::SYS_seccomp as u32, zero), SECCOMP_RET_ALLOW);
        }
        // The prologue: other architectures are killed.
        assert_eq!(run(f.last().unwrap(), 0x4000_0003, 3, zero), SECCOMP_RET_KILL_PROCESS);
    }

    // Notify rules make a filter of their own that returns USER_NOTIF where
    // they match (an argument condition included) and allows the rest, so
    // that seccomp() stays allowed for the stack after it; the base allows
    // a notified call, so the stack's verdict is the notify filter's. A
    // default of notify is refused.
    #[test]
    fn notify_rules_make_the_listeners_filter() {
        use capexec_decl::spec::ProfileArg;
        let rule = |names: &[&str], action, args: Vec<ProfileArg>| ProfileRule { syscalls: names.iter().map(|n| n.to_string()).collect(), action, args };
        let p = SeccompProfile {
            default: ProfileAction::Errno(1),
            rules: vec![
                rule(&["read", "seccomp"], ProfileAction::Allow, vec![]),
                rule(&["openat"], ProfileAction::Notify, vec![]),
                rule(&["connect"], ProfileAction::Notify, vec![ProfileArg { index: 0, value: 7, value_two: 0, op: ArgOp::Eq }]),
            ],
        };
        let f = profile_filters(&p).unwrap();
        let notify = f.notify.expect("a notify filter");
        let zero = [0u64; 6];
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        assert_eq!(run(&notify, AUDIT_ARCH_X86_64, nr_of("openat"), zero), notif);
        assert_eq!(run(&notify, AUDIT_ARCH_X86_64, nr_of("connect"), [7, 0, 0, 0, 0, 0]), notif);
        assert_eq!(run(&notify, AUDIT_ARCH_X86_64, nr_of("connect"), [8, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&notify, AUDIT_ARCH_X86_64, nr_of("seccomp"), zero), SECCOMP_RET_ALLOW);
        assert!(!notify.iter().any(|i| i.code == BPF_RET_K && i.k == SECCOMP_RET_TRACE), "no trace verdict left");
        let base = f.stack.last().unwrap();
        assert_eq!(run(base, AUDIT_ARCH_X86_64, nr_of("openat"), zero), SECCOMP_RET_ALLOW, "the base leaves a notified call to the notify filter");
        assert_eq!(run(base, AUDIT_ARCH_X86_64, nr_of("getpid"), zero), SECCOMP_RET_ERRNO | 1);
        let all = SeccompProfile { default: ProfileAction::Notify, rules: vec![] };
        assert!(profile_filters(&all).is_err());
    }
    use std::collections::BTreeSet;

    fn spec(allowed: &[&'static str]) -> SeccompSpec {
        spec_of(allowed.iter().copied().collect())
    }

    fn spec_of(allowed: Set) -> SeccompSpec {
        SeccompSpec { declared: vec![], allowed, action: DenyAction::Errno(libc::EPERM), ping: false, profile: None }
    }

    const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS_RET: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    /// @system-service's names and the service filter built from them.
    fn system_service() -> (Set, BpfProgram) {
        let set = capexec_decl::syscalls::expand(capexec_decl::syscalls::group("@system-service").unwrap());
        let s = SeccompSpec { declared: vec![], allowed: set, action: DenyAction::Errno(libc::EPERM), ping: false, profile: None };
        (set, service_filter(&s).unwrap())
    }

    fn nr_of(name: &str) -> u32 {
        capexec_decl::syscalls::number(name).unwrap() as u32
    }

    #[test]
    fn tree_matches_the_allowed_set_for_every_number() {
        let (set, prog) = system_service();
        let ruled: BTreeSet<u32> = RULED.iter().map(nr_of).collect();
        let allowed: BTreeSet<u32> = set.iter().map(nr_of).collect();
        for nr in 0..1100u32 {
            if ruled.contains(&nr) || nr == SYS_CLONE3 {
                continue;
            }
            let want = if allowed.contains(&nr) { SECCOMP_RET_ALLOW } else { EPERM };
            assert_eq!(run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), want, "syscall {nr}");
        }
        for nr in [1100, 0x1fff_ffff, X32_SYSCALL_BIT - 1] {
            assert_eq!(run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), EPERM, "syscall {nr}");
        }
        // Far shorter than a chain, and short paths: some 21 argument blocks
        // of 1-12 instructions sit at leaves, a search path is one JGE per
        // level of log2(segments).
        assert!(prog.len() < 400, "filter has {} instructions", prog.len());
    }

    /// A tree whose upper nodes have left halves longer than a conditional
    /// jump reaches (255 instructions) goes over them with a JA, and still
    /// decides every number as the list says; an empty list refuses all.
    #[test]
    fn wide_and_empty_trees_decide_every_number() {
        let every_other: Vec<(u32, Option<Vec<sock_filter>>)> = (0..1000u32).step_by(2).map(|n| (n, None)).collect();
        let prog = allowlist(every_other, EPERM).unwrap();
        assert!(prog.iter().filter(|i| i.code == BPF_JA).count() >= 3, "long jumps over the wide left halves");
        for nr in (0..1100u32).chain([0x3fff_ffff]) {
            let want = match nr {
                SYS_CLONE3 => ENOSYS_RET,
                n if n < 1000 && n % 2 == 0 => SECCOMP_RET_ALLOW,
                _ => EPERM,
            };
            assert_eq!(run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), want, "syscall {nr}");
        }
        let none = allowlist(vec![], EPERM).unwrap();
        for nr in [0, 1, 59, 1000] {
            assert_eq!(run(&none, AUDIT_ARCH_X86_64, nr, [0; 6]), EPERM, "syscall {nr}");
        }
    }

    /// The walk over every argument agrees with the concrete run where
    /// arguments do not matter, and sees both answers where they do.
    #[test]
    fn verdicts_cover_every_argument() {
        let (set, prog) = system_service();
        for nr in 0..600u32 {
            let v = verdicts(&prog, nr).unwrap();
            assert!(v.contains(&run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6])), "syscall {nr}: {v:?}");
            // clone3 answers ENOSYS whatever the list says (glibc falls back
            // to clone); the ruled ones are looked at below.
            if nr == SYS_CLONE3 || RULED.iter().any(|n| nr_of(n) == nr) {
                continue;
            }
            assert_eq!(allows_some(&prog, nr).unwrap(), set.iter().any(|n| nr_of(n) == nr), "syscall {nr}");
        }
        // socket(): allowed for some families, refused for others; openat2
        // always answers ENOSYS, listed or not.
        let v = verdicts(&prog, nr_of("socket")).unwrap();
        assert!(v.contains(&SECCOMP_RET_ALLOW) && v.len() > 1, "{v:?}");
        assert_eq!(allows_some(&prog, nr_of("openat2")), Some(false));
        assert_eq!(verdicts(&[stmt(0x06 | 0x08, 0)], 1), None, "an instruction the walk does not know");
    }

    #[test]
    fn prologue_kills_other_arches_and_rejects_x32_and_clone3() {
        let prog = service_filter(&spec(&["read", "clone3", "getpid"])).unwrap();
        assert_eq!(run(&prog, 0x4000_0003 /* i386 */, 20, [0; 6]), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 0x4000_0000 | 39, [0; 6]), ENOSYS_RET);
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, SYS_CLONE3, [0; 6]), ENOSYS_RET);
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 39, [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 1, [0; 6]), EPERM);
    }

    #[test]
    fn ruled_is_exactly_the_syscalls_with_a_block() {
        for n in capexec_decl::syscalls::all_names() {
            assert_eq!(argument_block(n, EPERM, false).is_some(), RULED.contains(n), "{n}");
        }
        // A refusal of each says which rule it met (capexec_decl::fix).
        for n in RULED.iter() {
            assert_ne!(capexec_decl::fix::argument_rule(n), capexec_decl::fix::argument_rule("-"), "{n} has no words in fix::argument_rule");
        }
    }

    #[test]
    fn network_paths_landlock_does_not_see() {
        let prog = service_filter(&spec_of(RULED)).unwrap();
        let x = |nr: i64, args: [u64; 6]| run(&prog, AUDIT_ARCH_X86_64, nr as u32, args);
        let (inet, inet6, unix) = (libc::AF_INET as u64, libc::AF_INET6 as u64, libc::AF_UNIX as u64);
        let proto_unsupported = SECCOMP_RET_ERRNO | libc::EPROTONOSUPPORT as u32;
        for fam in [inet, inet6] {
            for (ty, proto) in [(libc::SOCK_STREAM, 0), (libc::SOCK_STREAM, libc::IPPROTO_TCP), (libc::SOCK_DGRAM, 0), (libc::SOCK_DGRAM, libc::IPPROTO_UDP)] {
                assert_eq!(x(libc::SYS_socket, [fam, ty as u64, proto as u64, 0, 0, 0]), SECCOMP_RET_ALLOW, "{fam} {ty} {proto}");
            }
            for proto in [libc::IPPROTO_MPTCP, libc::IPPROTO_SCTP, libc::IPPROTO_UDPLITE, libc::IPPROTO_ICMP, libc::IPPROTO_ICMPV6, libc::IPPROTO_RAW] {
                assert_eq!(x(libc::SYS_socket, [fam, libc::SOCK_STREAM as u64, proto as u64, 0, 0, 0]), proto_unsupported, "protocol {proto}");
            }
            // Junk in the upper half of the protocol does not help: the kernel reads an int.
            assert_eq!(x(libc::SYS_socket, [fam, 1, (1 << 32) | libc::IPPROTO_MPTCP as u64, 0, 0, 0]), proto_unsupported);
        }
        // A raw IP socket, whatever its protocol: with CAP_NET_RAW kept on
        // the host it would send packets no hook of the network guard sees.
        for fam in [inet, inet6] {
            for proto in [0, libc::IPPROTO_TCP, libc::IPPROTO_UDP] {
                assert_eq!(x(libc::SYS_socket, [fam, libc::SOCK_RAW as u64, proto as u64, 0, 0, 0]), EPERM, "raw {fam} {proto}");
                assert_eq!(x(libc::SYS_socket, [fam, 10 /* SOCK_PACKET */, proto as u64, 0, 0, 0]), EPERM);
            }
            let flags = (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u64;
            assert_eq!(x(libc::SYS_socket, [fam, libc::SOCK_DGRAM as u64 | flags, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
            assert_eq!(x(libc::SYS_socket, [fam, libc::SOCK_RAW as u64 | flags, 0, 0, 0, 0]), EPERM);
        }
        assert_eq!(x(libc::SYS_socket, [unix, libc::SOCK_STREAM as u64, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(x(libc::SYS_socket, [unix, libc::SOCK_DGRAM as u64, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        // `[broker.net] ping`: ping sockets, never raw ones.
        let mut p = spec_of(RULED);
        p.ping = true;
        let prog = service_filter(&p).unwrap();
        let y = |args: [u64; 6]| run(&prog, AUDIT_ARCH_X86_64, libc::SYS_socket as u32, args);
        for (fam, proto) in [(inet, libc::IPPROTO_ICMP), (inet6, libc::IPPROTO_ICMPV6)] {
            assert_eq!(y([fam, libc::SOCK_DGRAM as u64 | libc::SOCK_CLOEXEC as u64, proto as u64, 0, 0, 0]), SECCOMP_RET_ALLOW);
            assert_eq!(y([fam, libc::SOCK_RAW as u64, proto as u64, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_socket, [fam, libc::SOCK_DGRAM as u64, proto as u64, 0, 0, 0]), proto_unsupported, "without the grant");
        }
        assert_eq!(y([inet, libc::SOCK_DGRAM as u64, libc::IPPROTO_SCTP as u64, 0, 0, 0]), proto_unsupported);
        assert_eq!(y([inet, libc::SOCK_STREAM as u64, libc::IPPROTO_TCP as u64, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(x(libc::SYS_socket, [libc::AF_PACKET as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0]), EPERM);
        assert_eq!(x(libc::SYS_socket, [libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, 9, 0, 0, 0]), SECCOMP_RET_ALLOW);
        let fastopen = libc::MSG_FASTOPEN as u64;
        let eopnotsupp = SECCOMP_RET_ERRNO | libc::EOPNOTSUPP as u32;
        assert_eq!(x(libc::SYS_sendto, [3, 0, 1, libc::MSG_NOSIGNAL as u64, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(x(libc::SYS_sendto, [3, 0, 1, fastopen | libc::MSG_NOSIGNAL as u64, 0, 0]), eopnotsupp);
        assert_eq!(x(libc::SYS_sendmsg, [3, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(x(libc::SYS_sendmsg, [3, 0, fastopen, 0, 0, 0]), eopnotsupp);
        assert_eq!(x(libc::SYS_sendmmsg, [3, 0, 1, fastopen, 0, 0]), eopnotsupp);
        let sso = |level: i32, opt: i32| x(libc::SYS_setsockopt, [3, level as u64, opt as u64, 0, 0, 0]);
        assert_eq!(sso(libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT), SECCOMP_RET_ERRNO | libc::ENOPROTOOPT as u32);
        assert_eq!(sso(libc::IPPROTO_TCP, libc::TCP_NODELAY), SECCOMP_RET_ALLOW);
        assert_eq!(sso(libc::IPPROTO_TCP, libc::TCP_FASTOPEN), SECCOMP_RET_ALLOW, "server-side Fast Open reaches nobody");
        assert_eq!(sso(libc::SOL_SOCKET, libc::TCP_FASTOPEN_CONNECT), SECCOMP_RET_ALLOW, "option 30 of another level");
        // Under a killing declaration these are kills too.
        let mut k = spec_of(RULED);
        k.action = DenyAction::Kill;
        let prog = service_filter(&k).unwrap();
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, libc::SYS_sendto as u32, [3, 0, 1, fastopen, 0, 0]), SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn no_executable_sysv_attach() {
        let prog = service_filter(&spec_of(RULED)).unwrap();
        let shmat = |flags: i32| run(&prog, AUDIT_ARCH_X86_64, libc::SYS_shmat as u32, [3, 0, flags as u64, 0, 0, 0]);
        assert_eq!(shmat(0), SECCOMP_RET_ALLOW);
        assert_eq!(shmat(libc::SHM_RDONLY), SECCOMP_RET_ALLOW);
        assert_eq!(shmat(SHM_EXEC as i32), EPERM);
        assert_eq!(shmat(SHM_EXEC as i32 | libc::SHM_RDONLY), EPERM);
    }

    #[test]
    fn no_setuid_or_setgid_bits() {
        let prog = service_filter(&spec_of(RULED)).unwrap();
        let x = |nr: i64, args: [u64; 6]| run(&prog, AUDIT_ARCH_X86_64, nr as u32, args);
        for bits in [0o4755u64, 0o2755, 0o6755, 0o4000] {
            assert_eq!(x(libc::SYS_chmod, [0, bits, 0, 0, 0, 0]), EPERM, "chmod {bits:o}");
            assert_eq!(x(libc::SYS_fchmod, [3, bits, 0, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_fchmodat, [3, 0, bits, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_fchmodat2, [3, 0, bits, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_mkdir, [0, bits, 0, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_mkdirat, [3, 0, bits, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_creat, [0, bits, 0, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_mknodat, [3, 0, libc::S_IFREG as u64 | bits, 0, 0, 0]), EPERM);
            let creat = libc::O_CREAT as u64 | libc::O_WRONLY as u64;
            assert_eq!(x(libc::SYS_open, [0, creat, bits, 0, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_openat, [3, 0, creat, bits, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_openat, [3, 0, libc::O_TMPFILE as u64 | libc::O_RDWR as u64, bits, 0, 0]), EPERM);
            assert_eq!(x(libc::SYS_openat2, [3, 0, 0, 24, 0, 0]), SECCOMP_RET_ERRNO | libc::ENOSYS as u32, "openat2's mode is out of sight");
            // Without O_CREAT the kernel ignores the mode: whatever is there is fine.
            assert_eq!(x(libc::SYS_openat, [3, 0, libc::O_RDONLY as u64, bits, 0, 0]), SECCOMP_RET_ALLOW);
        }
        for ok in [0o755u64, 0o1777, 0o644, 0] {
            assert_eq!(x(libc::SYS_chmod, [0, ok, 0, 0, 0, 0]), SECCOMP_RET_ALLOW, "chmod {ok:o}");
            assert_eq!(x(libc::SYS_fchmodat, [3, 0, ok, 0, 0, 0]), SECCOMP_RET_ALLOW);
            assert_eq!(x(libc::SYS_openat, [3, 0, libc::O_CREAT as u64 | libc::O_WRONLY as u64, ok, 0, 0]), SECCOMP_RET_ALLOW);
            assert_eq!(x(libc::SYS_mkdirat, [3, 0, ok, 0, 0, 0]), SECCOMP_RET_ALLOW);
        }
    }

    #[test]
    fn argument_rules() {
        let prog = service_filter(&spec(&["clone", "socket", "ioctl", "personality", "mknod", "mknodat"])).unwrap();
        let x = |nr: i64, args: [u64; 6]| run(&prog, AUDIT_ARCH_X86_64, nr as u32, args);
        let a = |v: u64| [v, 0, 0, 0, 0, 0];
        assert_eq!(x(libc::SYS_clone, a(libc::SIGCHLD as u64 | libc::CLONE_VM as u64)), SECCOMP_RET_ALLOW);
        for f in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWNET, libc::CLONE_NEWPID, libc::CLONE_NEWIPC, libc::CLONE_NEWUTS, libc::CLONE_NEWCGROUP]
        {
            assert_eq!(x(libc::SYS_clone, a(f as u64 | libc::SIGCHLD as u64)), EPERM, "clone flag {f:#x}");
        }
        for f in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK] {
            assert_eq!(x(libc::SYS_socket, [f as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        }
        for f in [libc::AF_PACKET, libc::AF_VSOCK, libc::AF_BLUETOOTH, libc::AF_ALG] {
            assert_eq!(x(libc::SYS_socket, a(f as u64)), EPERM);
        }
        let ioctl = |req: u64| x(libc::SYS_ioctl, [0, req, 0, 0, 0, 0]);
        assert_eq!(ioctl(libc::TIOCSTI), EPERM);
        assert_eq!(ioctl((1 << 32) | libc::TIOCSTI), EPERM, "upper bits must not help");
        assert_eq!(ioctl(libc::TIOCLINUX), EPERM);
        assert_eq!(ioctl(libc::TCGETS), SECCOMP_RET_ALLOW);
        assert_eq!(ioctl(libc::FIONREAD), SECCOMP_RET_ALLOW);
        assert_eq!(x(libc::SYS_personality, a(0)), SECCOMP_RET_ALLOW);
        assert_eq!(x(libc::SYS_personality, a(0xffff_ffff)), SECCOMP_RET_ALLOW);
        assert_eq!(x(libc::SYS_personality, a(0x0400000)), EPERM);
        for (t, want) in [
            (libc::S_IFREG, SECCOMP_RET_ALLOW),
            (libc::S_IFIFO, SECCOMP_RET_ALLOW),
            (libc::S_IFSOCK, SECCOMP_RET_ALLOW),
            (0, SECCOMP_RET_ALLOW),
            (libc::S_IFCHR, EPERM),
            (libc::S_IFBLK, EPERM),
        ] {
            assert_eq!(x(libc::SYS_mknodat, [0, 0, (t | 0o644) as u64, 0, 0, 0]), want, "mknodat {t:o}");
            assert_eq!(x(libc::SYS_mknod, [0, (t | 0o644) as u64, 0, 0, 0, 0]), want, "mknod {t:o}");
        }
    }

    #[test]
    fn deny_actions() {
        let mut s = spec(&["read"]);
        s.action = DenyAction::Kill;
        assert_eq!(run(&service_filter(&s).unwrap(), AUDIT_ARCH_X86_64, 2, [0; 6]), SECCOMP_RET_KILL_PROCESS);
        s.action = DenyAction::Log;
        assert_eq!(run(&service_filter(&s).unwrap(), AUDIT_ARCH_X86_64, 2, [0; 6]), 0x7ffc_0000);
        s.action = DenyAction::Errno(libc::ENOSYS);
        assert_eq!(run(&service_filter(&s).unwrap(), AUDIT_ARCH_X86_64, 2, [0; 6]), ENOSYS_RET);
    }

    #[test]
    fn the_view_kept_refuses_setns_into_a_mount_namespace_only() {
        let f = keep_view_filter();
        let eperm = SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let setns = |nstype: i32| run(&f, AUDIT_ARCH_X86_64, libc::SYS_setns as u32, [3, nstype as u64, 0, 0, 0, 0]);
        assert_eq!(setns(libc::CLONE_NEWNS), eperm);
        assert_eq!(setns(0), eperm, "any type");
        assert_eq!(setns(libc::CLONE_NEWNS | libc::CLONE_NEWNET), eperm, "a pidfd's flags");
        assert_eq!(setns(libc::CLONE_NEWNET), SECCOMP_RET_ALLOW);
        assert_eq!(run(&f, AUDIT_ARCH_X86_64, libc::SYS_openat as u32, [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&f, AUDIT_ARCH_X86_64, libc::SYS_chroot as u32, [0; 6]), SECCOMP_RET_ALLOW);
    }

    /// The reporting variant of a service's filter hands exactly the calls
    /// the filter answers with an errno to the listener, argument rules
    /// included, and answers everything else as the filter does.
    #[test]
    fn the_reporting_filter_notifies_exactly_the_refusals() {
        let spec = |extra: &str| {
            let text = format!("[exec]\nargv = [\"/bin/true\"]\n{extra}");
            capexec_decl::from_text("t", &text, &capexec_decl::Context { rootless: true, uid: 1000, gid: 1000, unit_dir: None }).unwrap().seccomp
        };
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        for (s, sockets) in [(spec(""), false), (spec("[seccomp]\nallow = [\"mincore\", \"socket\"]\n"), true)] {
            let prog = service_filter(&s).unwrap();
            let reporting = reporting(&prog, &[]).expect("starts with the prologue");
            assert_eq!(reporting.len(), prog.len());
            let mut notified = 0;
            let args = [[0u64; 6], [libc::AF_PACKET as u64, 0, 0, 0, 0, 0], [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0]];
            for nr in (0..1100u32).chain([0x4000_0001, SYS_CLONE3]) {
                for a in args {
                    let (was, now) = (run(&prog, AUDIT_ARCH_X86_64, nr, a), run(&reporting, AUDIT_ARCH_X86_64, nr, a));
                    match was & 0xffff_0000 == SECCOMP_RET_ERRNO && nr < 0x4000_0000 && nr != SYS_CLONE3 {
                        true => {
                            assert_eq!(now, notif, "syscall {nr} {a:?}");
                            notified += 1;
                        }
                        false => assert_eq!(now, was, "syscall {nr} {a:?}"),
                    }
                }
                assert_eq!(run(&reporting, 0x4000_0003, nr, [0; 6]), SECCOMP_RET_KILL_PROCESS, "another architecture");
            }
            assert!(notified > 1000, "most numbers are refusals: {notified}");
            let socket = |family: i32| run(&reporting, AUDIT_ARCH_X86_64, libc::SYS_socket as u32, [family as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0]);
            if sockets {
                assert_eq!((socket(libc::AF_PACKET), socket(libc::AF_UNIX)), (notif, SECCOMP_RET_ALLOW), "an argument rule's refusal");
            }
        }
        assert_eq!(reporting(&[stmt(BPF_RET_K, SECCOMP_RET_ERRNO | 1)], &[]), None, "not one of the allowlist's programs");
    }

    /// With a broker, one program does both filters' work: the allowlist's
    /// refusals and the broker's calls go to the one listener, the rest is
    /// answered as the two filters stacked would answer it.
    #[test]
    fn the_reporting_filter_with_a_broker_is_both_filters() {
        let spec = |extra: &str| {
            let text = format!("[exec]\nargv = [\"/bin/true\"]\n{extra}");
            capexec_decl::from_text("t", &text, &capexec_decl::Context { rootless: true, uid: 1000, gid: 1000, unit_dir: None }).unwrap().seccomp
        };
        let brokered = [
            libc::SYS_openat as u32,
            libc::SYS_connect as u32,
            libc::SYS_bind as u32,
            libc::SYS_open as u32,
            libc::SYS_sendto as u32,
            libc::SYS_sendmsg as u32,
        ];
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        let prog = service_filter(&spec("[seccomp]\nallow = [\"@system-service\", \"socket\", \"bind\", \"sendto\"]\n")).unwrap();
        let both = reporting(&prog, &brokered).expect("starts with the prologue");
        let stacked = [prog.clone(), notify_filter(&brokered)];
        // Arguments that are brokered numbers too: an argument block that
        // allows must not leave its argument to be taken for the number.
        let args =
            [[0u64; 6], [libc::AF_PACKET as u64, 0, 0, 0, 0, 0], [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0], [2; 6], [49; 6], [257; 6]];
        let (mut refusals, mut calls) = (0, 0);
        for nr in (0..1100u32).chain([0x4000_0001, SYS_CLONE3]) {
            for a in args {
                let (was, now) = (stack(&stacked, AUDIT_ARCH_X86_64, nr, a), run(&both, AUDIT_ARCH_X86_64, nr, a));
                let refused = run(&prog, AUDIT_ARCH_X86_64, nr, a) & 0xffff_0000 == SECCOMP_RET_ERRNO && nr < 0x4000_0000 && nr != SYS_CLONE3;
                match (refused, was) {
                    (true, _) => (assert_eq!(now, notif, "refused {nr} {a:?}"), refusals += 1).1,
                    (false, w) if w == notif => (assert_eq!(now, notif, "brokered {nr} {a:?}"), calls += 1).1,
                    (false, w) => assert_eq!(now, w, "syscall {nr} {a:?}"),
                }
            }
            assert_eq!(run(&both, 0x4000_0003, nr, [0; 6]), SECCOMP_RET_KILL_PROCESS, "another architecture");
        }
        assert!(refusals > 1000 && calls >= 6, "refusals {refusals}, brokered calls {calls}");
        assert_eq!(run(&both, AUDIT_ARCH_X86_64, libc::SYS_openat as u32, [0; 6]), notif, "a brokered call the list allows");
        // A refused socket family is a refusal, an allowed one runs.
        let socket = |family: i32| run(&both, AUDIT_ARCH_X86_64, libc::SYS_socket as u32, [family as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0]);
        assert_eq!((socket(libc::AF_PACKET), socket(libc::AF_UNIX)), (notif, SECCOMP_RET_ALLOW));
        let mut logs = spec("[seccomp]\naction = \"log\"\n");
        logs.action = DenyAction::Log;
        assert_eq!(reporting(&service_filter(&logs).unwrap(), &brokered), None, "nothing refused to report");
    }

    /// sendto goes to the broker only with an address, in either half of
    /// the pointer; sendmsg and sendmmsg but on the listener's sender; the
    /// other numbers whatever their arguments.
    #[test]
    fn the_notify_filter_hands_over_addressed_sendto_and_others_sendmsg() {
        let (sendto, connect) = (libc::SYS_sendto as u32, libc::SYS_connect as u32);
        let notif = libc::SECCOMP_RET_USER_NOTIF;
        let x = |prog: &[sock_filter], nr: u32, arg4: u64| run(prog, AUDIT_ARCH_X86_64, nr, [3, 0, 1, 0, arg4, 16]);
        let with = notify_filter(&[connect, sendto, libc::SYS_sendmsg as u32]);
        assert_eq!(x(&with, sendto, 0), SECCOMP_RET_ALLOW);
        assert_eq!((x(&with, sendto, 0x7ffd_0000), x(&with, sendto, 1 << 32), x(&with, sendto, u64::MAX)), (notif, notif, notif));
        assert_eq!((x(&with, connect, 0), x(&with, libc::SYS_sendmsg as u32, 0)), (notif, notif));
        assert_eq!((x(&with, libc::SYS_write as u32, 1), x(&with, libc::SYS_sendmmsg as u32, 1)), (SECCOMP_RET_ALLOW, SECCOMP_RET_ALLOW));
        let without = notify_filter(&[connect]);
        assert_eq!((x(&without, sendto, 1), x(&without, connect, 0)), (SECCOMP_RET_ALLOW, notif));
        // sendmsg and sendmmsg on every socket but the one named later.
        let all = notify_filter(&[libc::SYS_bind as u32, sendto, libc::SYS_sendmsg as u32, libc::SYS_sendmmsg as u32, connect]);
        let on = |prog: &[sock_filter], nr: i64, fd: u64| run(prog, AUDIT_ARCH_X86_64, nr as u32, [fd, 0, 0, 0, 0, 0]);
        let sender = exempt_sender(&all, 7);
        for prog in [&all, &sender] {
            assert_eq!((on(prog, libc::SYS_sendmsg, 3), on(prog, libc::SYS_sendmmsg, 3), on(prog, libc::SYS_bind, 7)), (notif, notif, notif));
            assert_eq!((x(prog, sendto, 0), x(prog, sendto, 1), on(prog, libc::SYS_write, 7)), (SECCOMP_RET_ALLOW, notif, SECCOMP_RET_ALLOW));
        }
        assert_eq!((on(&all, libc::SYS_sendmsg, 7), on(&all, libc::SYS_sendmmsg, 7)), (notif, notif));
        assert_eq!((on(&sender, libc::SYS_sendmsg, 7), on(&sender, libc::SYS_sendmmsg, 7)), (SECCOMP_RET_ALLOW, SECCOMP_RET_ALLOW));
    }

    /// The filter the launcher packs for the daemon is the filter: every
    /// field of every instruction, at its extremes too.
    #[test]
    fn a_packed_filter_unpacks_to_itself() {
        let ctx = capexec_decl::Context { rootless: true, uid: 1000, gid: 1000, unit_dir: None };
        let spec = capexec_decl::from_text("t", "[exec]\nargv = [\"/bin/true\"]\n", &ctx).unwrap();
        let prog = service_filter(&spec.seccomp).unwrap();
        let mut all = prog.clone();
        all.push(jump(u16::MAX, u32::MAX, u8::MAX, u8::MAX));
        all.push(jump(0, 0, 0, 0));
        all.push(jump(1, 1 << 31, 1, 0x80));
        let back = unpack(&pack(&all));
        let same = |a: &sock_filter, b: &sock_filter| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k);
        assert!(all.len() == back.len() && all.iter().zip(&back).all(|(a, b)| same(a, b)));
    }

    /// Init's filter allows its own calls and kills on any other, for every
    /// number; a forking service's init may also read its pid file and
    /// notify, a notify service's ask on its socket.
    #[test]
    fn init_filter_allows_its_calls_and_kills_on_the_rest() {
        let mine = INIT_CALLS;
        let forking = ["openat", "read", "close", "socket", "sendto", "fcntl"];
        let asks = ["close", "socket", "sendto", "fcntl"];
        for (prog, allowed) in [
            (init_filter(false, false).unwrap(), mine.to_vec()),
            (init_filter(true, false).unwrap(), [mine, &forking[..]].concat()),
            (init_filter(false, true).unwrap(), [mine, &asks[..]].concat()),
        ] {
            let allowed: BTreeSet<u32> = allowed.iter().map(|n| nr_of(n)).collect();
            for nr in (0..1100u32).chain([0x3fff_ffff]) {
                let want = match nr {
                    SYS_CLONE3 => ENOSYS_RET,
                    n if allowed.contains(&n) => SECCOMP_RET_ALLOW,
                    _ => SECCOMP_RET_KILL_PROCESS,
                };
                assert_eq!(run(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), want, "syscall {nr}");
            }
            assert_eq!(run(&prog, 0x4000_0003, nr_of("wait4"), [0; 6]), SECCOMP_RET_KILL_PROCESS, "another architecture");
        }
    }
}
