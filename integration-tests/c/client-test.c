/* A C service using capexec's broker through libcapexec_client.so, as it would
 * use libcasper: open a granted file, look up a granted user and group, read a
 * granted sysctl, and be refused what is not granted. Prints one line per
 * check ("ok ..." or "FAIL ...") and exits non-zero on any failure. */
#include <capexec.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (!ok)
        failures++;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: client-test GRANTED_FILE\n");
        return 2;
    }
    capexec_broker *b = capexec_broker_init();
    check(b != NULL, "capexec_broker_init finds CAPEXEC_BROKER_FD");
    if (!b)
        return 1;

    int fd = capexec_open(b, argv[1], O_RDONLY, 0);
    char buf[64] = {0};
    check(fd >= 0 && read(fd, buf, sizeof buf - 1) > 0 && strcmp(buf, "granted") == 0, "capexec_open reads the granted file");
    check(fd < 0 || (fcntl(fd, F_GETFD) & FD_CLOEXEC), "the descriptor is close-on-exec");
    errno = 0;
    check(capexec_open(b, "/etc/shadow", O_RDONLY, 0) == -1 && errno == EACCES, "capexec_open of /etc/shadow fails with EACCES");

    struct passwd pw, *pres;
    char pbuf[512];
    check(capexec_getpwnam_r(b, "daemon", &pw, pbuf, sizeof pbuf, &pres) == 0 && pres == &pw && pw.pw_uid == 1, "capexec_getpwnam_r(daemon)");
    check(capexec_getpwnam_r(b, "root", &pw, pbuf, sizeof pbuf, &pres) == ENOENT && pres == NULL, "capexec_getpwnam_r(root) is refused");
    check(capexec_getpwnam_r(b, "daemon", &pw, pbuf, 4, &pres) == ERANGE, "a small buffer gives ERANGE");

    struct group gr, *gres;
    char gbuf[512];
    check(capexec_getgrnam_r(b, "adm", &gr, gbuf, sizeof gbuf, &gres) == 0 && gres == &gr && gr.gr_gid == 4 && gr.gr_mem != NULL,
          "capexec_getgrnam_r(adm)");

    char val[64] = {0};
    ssize_t n = capexec_sysctl_read(b, "kernel.ostype", val, sizeof val - 1);
    check(n == 6 && strcmp(val, "Linux\n") == 0, "capexec_sysctl_read(kernel.ostype)");
    errno = 0;
    check(capexec_sysctl_read(b, "kernel.hostname", val, sizeof val) == -1 && errno == EACCES, "an ungranted sysctl is refused");

    struct sockaddr_storage addrs[8];
    int na = capexec_getaddrinfo(b, "localhost", AF_INET, addrs, 8);
    check(na >= 1 && addrs[0].ss_family == AF_INET && ((struct sockaddr_in *)&addrs[0])->sin_addr.s_addr == htonl(INADDR_LOOPBACK),
          "capexec_getaddrinfo(localhost)");
    check(capexec_syslog(b, LOG_NOTICE, "hello from C") == 0, "capexec_syslog");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    errno = 0;
    check(capexec_connect(b, IPPROTO_TCP, (struct sockaddr *)&sin, sizeof sin) == -1 && errno == EACCES, "an ungranted connect is refused");
    capexec_broker_free(b);
    return failures ? 1 : 0;
}
