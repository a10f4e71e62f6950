/* Runs a program under a seccomp filter that allows every syscall: the floor
 * of any seccomp allowlist (every syscall of a filtered process takes the
 * kernel's slower entry path, whatever the filter answers). Used by
 * scripts/bench/services.py --floor. Usage: seccomp-allow PROG ARGS... */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: seccomp-allow PROG ARGS...\n");
        return 2;
    }
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {.len = 1, .filter = allow};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        perror("seccomp-allow: install the filter");
        return 1;
    }
    execv(argv[1], argv + 1);
    perror("seccomp-allow: execv");
    return 127;
}
