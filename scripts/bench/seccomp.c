/* The per-call cost of the service's seccomp filter: N calls each of a
 * syscall without an argument rule (getppid: the kernel's constant-action
 * cache answers it without running the filter), and of the ruled hot calls
 * sendto (MSG_FASTOPEN rule) and openat (setuid/setgid rule). Prints
 * "name ns_per_call" lines. Built and run by scripts/bench/seccomp.py. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, len) < 0 || getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        perror("seccomp bench: udp socket");
        return 1;
    }
    double t = now();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    printf("getppid %.1f\n", (now() - t) / n);
    t = now();
    /* A datagram to itself; once the receive buffer is full the kernel drops
     * them, which costs the same each time. */
    for (long i = 0; i < n; i++) sendto(s, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&a, len);
    printf("sendto %.1f\n", (now() - t) / n);
    t = now();
    for (long i = 0; i < n / 10; i++) close(openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC));
    printf("openat+close %.1f\n", (now() - t) / (n / 10));
    return 0;
}
