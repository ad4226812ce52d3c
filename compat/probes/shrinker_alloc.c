// SPDX-License-Identifier: GPL-2.0
/*
 * shrinker_alloc: shrinkers are allocated by the kernel (shrinker_alloc(),
 * shrinker_register(), shrinker_free()); register_shrinker() is gone.
 * Upstream: "mm: shrinker: add infrastructure for dynamically allocating
 * shrinker", v6.7.
 */
#include <linux/mm.h>
#include <linux/shrinker.h>

int vmb_probe(void);
int vmb_probe(void)
{
	struct shrinker *s = shrinker_alloc(0, "probe");

	shrinker_register(s);
	shrinker_free(s);
	return 0;
}
