/* The network guard's cost per call (scripts/bench/netguard.py): fd 3 is a
 * UDP socket (preopened by capexec, or bound here when absent). It waits for
 * one datagram (the script sends it from the host), which makes the sender a
 * peer the guard lets the socket answer; then it times, per call, a sendto to
 * that peer and a connect to it followed by a disconnect. Prints
 * "NAME NANOSECONDS" lines. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	int fd = 3;
	struct sockaddr_in me;
	socklen_t len = sizeof me;
	if (getsockname(fd, (struct sockaddr *)&me, &len) != 0) {
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
			perror("bind");
			return 1;
		}
	}
	printf("READY\n");
	fflush(stdout);
	char buf[64];
	struct sockaddr_in peer;
	len = sizeof peer;
	if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len) < 0) {
		perror("recvfrom");
		return 1;
	}
	struct sockaddr unspec = {.sa_family = AF_UNSPEC};
	double t0 = now();
	for (long i = 0; i < n; i++)
		if (sendto(fd, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&peer, len) != 1) {
			perror("sendto");
			return 1;
		}
	double t1 = now();
	for (long i = 0; i < n; i++)
		if (connect(fd, (struct sockaddr *)&peer, len) != 0 || connect(fd, &unspec, sizeof unspec) != 0) {
			perror("connect");
			return 1;
		}
	double t2 = now();
	printf("sendto_peer %.1f\nconnect+disconnect %.1f\n", (t1 - t0) / n, (t2 - t1) / n);
	return 0;
}
