// SPDX-License-Identifier: GPL-2.0
/*
 * memhog <MiB> [hold_seconds] [holes]: allocate and touch MiB of memory,
 * hold, exit 0. With "holes", every other 4 KiB page is given back after
 * touching, so free memory is scattered one page at a time until exit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long mib, hold = 0, i, page = sysconf(_SC_PAGESIZE);
	int holes = argc > 3 && !strcmp(argv[3], "holes");
	size_t len;
	char *p;

	if (argc < 2) {
		fprintf(stderr, "usage: memhog <MiB> [hold_seconds] [holes]\n");
		return 2;
	}
	mib = strtol(argv[1], NULL, 0);
	if (argc > 2)
		hold = strtol(argv[2], NULL, 0);
	len = (size_t)mib << 20;
	p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "memhog: mmap %ld MiB failed\n", mib);
		return 1;
	}
	/* Huge pages would defeat the holes. */
	if (holes)
		madvise(p, len, MADV_NOHUGEPAGE);
	for (i = 0; (size_t)i < len; i += page)
		p[i] = (char)(i >> 12 | 1);
	printf("memhog: touched %ld MiB\n", mib);
	if (holes) {
		for (i = page; (size_t)i < len; i += 2 * page)
			madvise(p + i, page, MADV_DONTNEED);
		printf("memhog: holes made\n");
	}
	fflush(stdout);
	if (hold > 0)
		sleep((unsigned int)hold);
	return 0;
}
