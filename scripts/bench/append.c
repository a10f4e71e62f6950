/* What an append-only file costs the service that writes it
 * (scripts/bench/append.py): fd 3 is the file (or, under an append-only
 * preopen, the pipe capexec's broker copies to it). Writes N records of SIZE
 * bytes, one write(2) each, and prints "write NANOSECONDS" (per record) and
 * "bytes TOTAL". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	long n = argc > 1 ? atol(argv[1]) : 100000;
	long size = argc > 2 ? atol(argv[2]) : 100;
	char *rec = malloc(size);
	if (!rec)
		return 1;
	memset(rec, 'x', size);
	rec[size - 1] = '\n';
	double t0 = now();
	for (long i = 0; i < n; i++) {
		if (write(3, rec, size) != size) {
			perror("write");
			return 1;
		}
	}
	double t1 = now();
	printf("write %.1f\nbytes %ld\n", (t1 - t0) / n, n * size);
	return 0;
}
