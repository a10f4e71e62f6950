//! The seccomp filters: the service's allowlist (from the spec's syscall set) and
//! the tiny filter of the namespace's init process.
//!
//! seccompiler builds the allowlist (with its own architecture check); capexec puts
//! a short prologue in front of it that
//!   1. kills the process for any architecture other than x86_64 (i386 via
//!      `int 0x80`, a 32-bit binary),
//!   2. rejects x32 syscall numbers (bit 30 set) with ENOSYS, and
//!   3. answers clone3 with ENOSYS: its flags sit in memory, where a filter cannot
//!      look, so libc falls back to clone(), whose flags the allowlist checks.
//! A few allowed syscalls carry argument rules (see `argument_rules`).

use crate::error::LaunchError;
use capexec_decl::spec::{DenyAction, SeccompSpec};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};
use std::collections::BTreeMap;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const SYS_CLONE3: u32 = 435;

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}
fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

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

fn cond(arg: u8, len: Len, op: Op, val: u64) -> Cond {
    Cond::new(arg, len, op, val).expect("argument index below 6")
}

const NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | 0x80 /* CLONE_NEWTIME */) as u64;

/// Argument rules for allowed syscalls; a syscall with rules is allowed only when
/// one of its rules matches. Documented in docs/declaration.md.
fn argument_rules(name: &str) -> Option<Vec<SeccompRule>> {
    let rule = |c: Vec<Cond>| SeccompRule::new(c).expect("non-empty rule");
    Some(match name {
        // No new namespaces from inside: clone without any CLONE_NEW* flag.
        "clone" => vec![rule(vec![cond(0, Len::Qword, Op::MaskedEq(NS_FLAGS), 0)])],
        // Only the socket families services use; no AF_PACKET, no raw sockets
        // outside IP (and IP raw sockets still need CAP_NET_RAW).
        "socket" => [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK]
            .iter()
            .map(|f| rule(vec![cond(0, Len::Dword, Op::Eq, *f as u64)]))
            .collect(),
        // No TIOCSTI/TIOCLINUX; compared on the low 32 bits, as the kernel does
        // (CVE-2019-10063: junk in the upper half must not slip through).
        "ioctl" => vec![rule(vec![
            cond(1, Len::Dword, Op::Ne, libc::TIOCSTI as u64),
            cond(1, Len::Dword, Op::Ne, libc::TIOCLINUX as u64),
        ])],
        // Only query the personality or set the plain Linux one (no READ_IMPLIES_EXEC).
        "personality" => vec![
            rule(vec![cond(0, Len::Dword, Op::Eq, 0)]),
            rule(vec![cond(0, Len::Dword, Op::Eq, 0xffff_ffff)]),
        ],
        // FIFOs, sockets and regular files only: no device nodes.
        "mknod" | "mknodat" => {
            let arg = if name == "mknod" { 1 } else { 2 };
            [0, libc::S_IFREG, libc::S_IFIFO, libc::S_IFSOCK]
                .iter()
                .map(|t| rule(vec![cond(arg, Len::Dword, Op::MaskedEq(libc::S_IFMT as u64), *t as u64)]))
                .collect()
        }
        _ => return None,
    })
}

pub fn service_filter(spec: &SeccompSpec) -> Result<BpfProgram, LaunchError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in &spec.allowed {
        let nr = capexec_decl::syscalls::number(name)
            .ok_or_else(|| LaunchError::Seccomp(format!("unknown syscall `{name}`")))?;
        if nr == i64::from(SYS_CLONE3) {
            continue; // answered by the prologue
        }
        rules.insert(nr, argument_rules(name).unwrap_or_default());
    }
    let mismatch = match spec.action {
        DenyAction::Errno(e) => SeccompAction::Errno(e as u32),
        DenyAction::Kill => SeccompAction::KillProcess,
        DenyAction::Log => SeccompAction::Log,
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(|e| LaunchError::Seccomp(e.to_string()))?;
    let body: BpfProgram = filter.try_into().map_err(|e: seccompiler::BackendError| LaunchError::Seccomp(e.to_string()))?;
    let mut prog = prologue();
    prog.extend(body);
    Ok(prog)
}

/// The namespace init only waits, forwards signals and exits; anything else kills it.
pub fn init_filter() -> Result<BpfProgram, LaunchError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in [
        "rt_sigtimedwait", "rt_sigprocmask", "rt_sigreturn", "wait4", "waitid", "kill", "exit", "exit_group", "restart_syscall",
        "close_range",
    ] {
        rules.insert(capexec_decl::syscalls::number(name).expect("known syscall"), vec![]);
    }
    let filter = SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(|e| LaunchError::Seccomp(e.to_string()))?;
    let body: BpfProgram = filter.try_into().map_err(|e: seccompiler::BackendError| LaunchError::Seccomp(e.to_string()))?;
    let mut prog = prologue();
    prog.extend(body);
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prologue_comes_first_and_checks_arch_x32_clone3() {
        let mut allowed = std::collections::BTreeSet::new();
        allowed.insert("read".to_owned());
        allowed.insert("clone3".to_owned());
        let spec = SeccompSpec { declared: vec![], allowed, action: DenyAction::Errno(libc::EPERM) };
        let p = service_filter(&spec).unwrap();
        assert_eq!(p[0].k, 4);
        assert_eq!(p[1].k, AUDIT_ARCH_X86_64);
        assert_eq!(p[2].k, SECCOMP_RET_KILL_PROCESS);
        assert_eq!(p[4].k, X32_SYSCALL_BIT);
        assert_eq!(p[6].k, SYS_CLONE3);
        assert!(p.len() > 8);
    }

    #[test]
    fn every_argument_rule_builds() {
        for n in ["clone", "socket", "ioctl", "personality", "mknod", "mknodat"] {
            assert!(!argument_rules(n).unwrap().is_empty());
        }
    }
}
