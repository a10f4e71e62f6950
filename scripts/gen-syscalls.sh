#!/bin/sh
# Regenerates crates/capexec-decl/src/syscall_table.rs from the installed kernel UAPI header.
set -eu
hdr=/usr/include/x86_64-linux-gnu/asm/unistd_64.h
out="$(dirname "$0")/../crates/capexec-decl/src/syscall_table.rs"
{
  echo '//! x86_64 system call numbers, generated from the kernel UAPI header'
  echo '//! `asm/unistd_64.h` (linux-libc-dev). Regenerate with `scripts/gen-syscalls.sh`;'
  echo '//! a table rather than `libc::SYS_*` so that names can be looked up at run time.'
  echo
  echo 'pub static SYSCALLS: &[(&str, i64)] = &['
  grep -E '^#define __NR_[a-z0-9_]+ [0-9]+' "$hdr" | awk '{sub("__NR_","",$2); printf "    (\"%s\", %s),\n", $2, $3}'
  echo '    // Newer than bookworm'"'"'s header; numbers from the kernel'"'"'s syscall_64.tbl.'
  echo '    ("cachestat", 451),'
  echo '    ("fchmodat2", 452),'
  echo '    ("map_shadow_stack", 453),'
  echo '    ("futex_wake", 454),'
  echo '    ("futex_wait", 455),'
  echo '    ("futex_requeue", 456),'
  echo '    ("statmount", 457),'
  echo '    ("listmount", 458),'
  echo '    ("lsm_get_self_attr", 459),'
  echo '    ("lsm_set_self_attr", 460),'
  echo '    ("lsm_list_modules", 461),'
  echo '    ("mseal", 462),'
  echo '    ("setxattrat", 463),'
  echo '    ("getxattrat", 464),'
  echo '    ("listxattrat", 465),'
  echo '    ("removexattrat", 466),'
  echo '    ("open_tree_attr", 467),'
  echo '    ("file_getattr", 468),'
  echo '    ("file_setattr", 469),'
  echo '];'
} > "$out"
