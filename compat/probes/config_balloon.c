// SPDX-License-Identifier: GPL-2.0
/*
 * config_balloon: the kernel uses the 7.x names of the balloon options:
 * CONFIG_BALLOON (was CONFIG_MEMORY_BALLOON) and CONFIG_BALLOON_MIGRATION
 * (was CONFIG_BALLOON_COMPACTION). Upstream: "mm: balloon infrastructure
 * cleanups", v7.0. Set only where the core is built.
 */
#include <linux/kconfig.h>

#ifndef CONFIG_BALLOON
#error "no CONFIG_BALLOON"
#endif

int vmm_probe(void);
int vmm_probe(void)
{
	return IS_ENABLED(CONFIG_BALLOON_MIGRATION);
}
