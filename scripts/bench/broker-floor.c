/*
 * The floor under capexec's broker benchmark (scripts/bench/broker.py): the
 * same kernel round trips with nothing of capexec around them, so that the
 * table can say how much of a brokered call is capexec and how much is the
 * kernel and this machine.
 *
 *   broker-floor notify N        a child opens a file N times under a
 *                                USER_NOTIF filter; the parent answers each
 *                                open with ADDFD|SEND of a file it opened once
 *                                (no checks at all: the bare round trip)
 *   broker-floor notify-work N   the same, but the parent does what any safe
 *                                supervisor must: read the path from the
 *                                child's memory, check ID_VALID, open the file
 *                                itself, install it, close its copy
 *   broker-floor seqpacket N     a request/reply over a SOCK_SEQPACKET pair,
 *                                the reply carrying a freshly opened fd with
 *                                SCM_RIGHTS; both sides busy-wait up to 50 µs
 *                                before sleeping when another CPU is allowed,
 *                                as capexec-client and its broker do
 *
 * Prints `median_us p99_us` of the timed calls, like broker-bench.
 * Build: cc -O2 -o broker-floor broker-floor.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

static const char *FILE_PATH = "/etc/hostname";
static const long SPIN_NS = 50000;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static void report(long *t, int n) {
    qsort(t, n, sizeof(long), cmp_long);
    printf("%.2f %.2f\n", t[n / 2] / 1000.0, t[(long)n * 99 / 100] / 1000.0);
    fflush(stdout);
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void send_fd(int sock, const void *buf, size_t len, int fd) {
    struct iovec io = {(void *)buf, len};
    char c[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    if (fd >= 0) {
        m.msg_control = c;
        m.msg_controllen = sizeof c;
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &fd, sizeof(int));
    }
    if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
        die("sendmsg");
}

/* Receives one message and the fd it carries (-1 if none); 0 at EOF. With
 * `spin`, polls without blocking for up to SPIN_NS first. */
static int recv_fd(int sock, void *buf, size_t len, int *fd, int spin) {
    struct iovec io = {buf, len};
    char c[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {0};
    m.msg_iov = &io;
    m.msg_iovlen = 1;
    m.msg_control = c;
    m.msg_controllen = sizeof c;
    long until = now_ns() + SPIN_NS;
    int n;
    for (;;) {
        n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | (spin ? MSG_DONTWAIT : 0));
        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            break;
        if (spin && now_ns() > until)
            spin = 0;
    }
    if (n < 0)
        die("recvmsg");
    *fd = -1;
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    if (h && h->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(h), sizeof(int));
    return n;
}

static int notify(int n, int work) {
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
        die("socketpair");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {sizeof f / sizeof f[0], f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            die("no_new_privs");
        int l = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        if (l < 0)
            die("seccomp");
        send_fd(sp[0], "l", 1, l);
        close(l);
        long *t = malloc(n * sizeof(long));
        for (int i = 0; i < n; i++) {
            long a = now_ns();
            int fd = openat(AT_FDCWD, FILE_PATH, O_RDONLY | O_CLOEXEC);
            t[i] = now_ns() - a;
            if (fd < 0)
                die("open under the filter");
            close(fd);
        }
        report(t, n);
        exit(0);
    }
    char b;
    int l;
    recv_fd(sp[1], &b, 1, &l, 0);
    if (l < 0 || ioctl(l, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
        die("listener");
    int pre = open(FILE_PATH, O_RDONLY | O_CLOEXEC);
    for (;;) {
        struct pollfd p = {l, POLLIN, 0};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            die("poll");
        if (!(p.revents & POLLIN))
            break; /* POLLHUP: the child has exited */
        struct seccomp_notif req;
        memset(&req, 0, sizeof req);
        if (ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
            continue;
        int fd = pre;
        if (work) {
            char path[4096];
            struct iovec local = {path, sizeof path}, remote = {(void *)req.data.args[1], 256};
            local.iov_len = 256;
            if (process_vm_readv(req.pid, &local, 1, &remote, 1, 0) < 0)
                die("process_vm_readv");
            if (ioctl(l, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) < 0)
                continue;
            fd = openat(AT_FDCWD, FILE_PATH, O_RDONLY | O_CLOEXEC);
        }
        struct seccomp_notif_addfd add = {.id = req.id, .flags = SECCOMP_ADDFD_FLAG_SEND, .srcfd = fd};
        ioctl(l, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
        if (work)
            close(fd);
    }
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int seqpacket(int n) {
    cpu_set_t cpus;
    int spin = sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 1;
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) < 0)
        die("socketpair");
    pid_t server = fork();
    if (server < 0)
        die("fork");
    if (server == 0) {
        close(sp[0]);
        char buf[4096];
        int none;
        while (recv_fd(sp[1], buf, sizeof buf, &none, spin) > 0) {
            int fd = open(buf + 8, O_RDONLY | O_CLOEXEC);
            send_fd(sp[1], buf, 16, fd);
            close(fd);
        }
        exit(0);
    }
    close(sp[1]);
    long *t = malloc(n * sizeof(long));
    char req[64] = {0}, reply[4096];
    strcpy(req + 8, FILE_PATH);
    for (int i = 0; i < n; i++) {
        long a = now_ns();
        send_fd(sp[0], req, sizeof req, -1);
        int fd;
        recv_fd(sp[0], reply, sizeof reply, &fd, spin);
        t[i] = now_ns() - a;
        if (fd < 0)
            die("no fd in the reply");
        close(fd);
    }
    report(t, n);
    close(sp[0]);
    waitpid(server, NULL, 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: broker-floor notify|notify-work|seqpacket N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    if (n <= 0) {
        fprintf(stderr, "broker-floor: N must be a positive number\n");
        return 2;
    }
    if (!strcmp(argv[1], "notify"))
        return notify(n, 0);
    if (!strcmp(argv[1], "notify-work"))
        return notify(n, 1);
    if (!strcmp(argv[1], "seqpacket"))
        return seqpacket(n);
    fprintf(stderr, "broker-floor: unknown mode %s\n", argv[1]);
    return 2;
}
