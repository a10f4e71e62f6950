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
 *   broker-floor notify-connect N PORT
 *                                a child connects a TCP socket to 127.0.0.1:PORT
 *                                N times under a USER_NOTIF filter on connect;
 *                                the parent does what a broker that connects
 *                                on the service's behalf must: read the address,
 *                                check ID_VALID, take a copy of the socket
 *                                (pidfd_getfd) to see what it is, read the
 *                                fd's close-on-exec flag (/proc/TID/fdinfo, the
 *                                only place the kernel tells it), connect a
 *                                socket of its own, put it in place of the
 *                                child's (ADDFD with SETFD), then answer 0
 *                                (SEND): connect() must return 0, so the fd
 *                                cannot ride on the answer as with ADDFD|SEND
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
#include <netinet/in.h>
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

/* In the child: a USER_NOTIF filter on syscall `nr`, its listener sent to the parent. */
static void notify_on(int sock, int nr) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die("no_new_privs");
    int l = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (l < 0)
        die("seccomp");
    send_fd(sock, "l", 1, l);
    close(l);
}

/* In the parent: the child's listener, with SYNC_WAKE_UP as capexec sets it. */
static int listener_from(int sock) {
    char b;
    int l;
    recv_fd(sock, &b, 1, &l, 0);
    if (l < 0 || ioctl(l, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
        die("listener");
    return l;
}

static int notify(int n, int work) {
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
        die("socketpair");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        notify_on(sp[0], __NR_openat);
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
    int l = listener_from(sp[1]);
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

static int notify_connect(int n, int port) {
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
        die("socketpair");
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        notify_on(sp[0], __NR_connect);
        long *t = malloc(n * sizeof(long));
        struct linger rst = {1, 0};
        for (int i = 0; i < n; i++) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            long a = now_ns();
            int rc = connect(s, (struct sockaddr *)&to, sizeof to);
            t[i] = now_ns() - a;
            if (rc < 0)
                die("connect under the filter");
            setsockopt(s, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
            close(s);
        }
        report(t, n);
        exit(0);
    }
    int l = listener_from(sp[1]);
    int pidfd = syscall(SYS_pidfd_open, child, 0);
    if (pidfd < 0)
        die("pidfd_open");
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
        struct sockaddr_in addr;
        struct iovec local = {&addr, sizeof addr}, remote = {(void *)req.data.args[1], sizeof addr};
        if (process_vm_readv(req.pid, &local, 1, &remote, 1, 0) < 0)
            die("process_vm_readv");
        if (ioctl(l, SECCOMP_IOCTL_NOTIF_ID_VALID, &req.id) < 0)
            continue;
        int theirs = syscall(SYS_pidfd_getfd, pidfd, (int)req.data.args[0], 0);
        int type = 0;
        socklen_t tl = sizeof type;
        if (theirs < 0 || getsockopt(theirs, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
            die("pidfd_getfd of the socket");
        close(theirs);
        char fdinfo[64], info[256];
        snprintf(fdinfo, sizeof fdinfo, "/proc/%d/fdinfo/%d", req.pid, (int)req.data.args[0]);
        int f = open(fdinfo, O_RDONLY | O_CLOEXEC);
        if (f < 0 || read(f, info, sizeof info) <= 0)
            die("fdinfo");
        close(f);
        int cloexec = strstr(info, "flags:") && (strtol(strstr(info, "flags:") + 6, NULL, 8) & O_CLOEXEC);
        int mine = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(mine, (struct sockaddr *)&addr, sizeof addr) < 0)
            die("connect");
        struct seccomp_notif_addfd add = {
            .id = req.id, .flags = SECCOMP_ADDFD_FLAG_SETFD, .srcfd = mine, .newfd = (int)req.data.args[0], .newfd_flags = cloexec ? O_CLOEXEC : 0};
        if (ioctl(l, SECCOMP_IOCTL_NOTIF_ADDFD, &add) < 0)
            die("addfd");
        close(mine);
        struct seccomp_notif_resp resp = {.id = req.id, .val = 0, .error = 0, .flags = 0};
        if (ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
            die("send");
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
    if (argc != 3 && !(argc == 4 && !strcmp(argv[1], "notify-connect"))) {
        fprintf(stderr, "usage: broker-floor notify|notify-work|seqpacket N, or broker-floor notify-connect N PORT\n");
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
    if (!strcmp(argv[1], "notify-connect"))
        return notify_connect(n, atoi(argv[3]));
    fprintf(stderr, "broker-floor: unknown mode %s\n", argv[1]);
    return 2;
}
