// SPDX-License-Identifier: GPL-2.0
/* memhog <MiB> [hold_seconds]: allocate and touch MiB of memory, hold, exit 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long mib, hold = 0, i, page = sysconf(_SC_PAGESIZE);
	size_t len;
	char *p;

	if (argc < 2) {
		fprintf(stderr, "usage: memhog <MiB> [hold_seconds]\n");
		return 2;
	}
	mib = strtol(argv[1], NULL, 0);
	if (argc > 2)
		hold = strtol(argv[2], NULL, 0);
	len = (size_t)mib << 20;
	p = malloc(len ? len : 1);
	if (!p) {
		fprintf(stderr, "memhog: malloc %ld MiB failed\n", mib);
		return 1;
	}
	for (i = 0; (size_t)i < len; i += page)
		p[i] = (char)(i >> 12 | 1);
	printf("memhog: touched %ld MiB\n", mib);
	fflush(stdout);
	if (hold > 0)
		sleep((unsigned int)hold);
	return 0;
}
