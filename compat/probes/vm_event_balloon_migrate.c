// SPDX-License-Identifier: GPL-2.0
/*
 * vm_event_balloon_migrate: balloon page migration is built
 * (CONFIG_BALLOON_COMPACTION before 7.0, CONFIG_BALLOON_MIGRATION since),
 * and with it the balloon_migrate event of /proc/vmstat.
 */
#include <linux/mm.h>
#include <linux/vmstat.h>

int vmm_probe(void);
int vmm_probe(void)
{
	count_vm_event(BALLOON_MIGRATE);
	return 0;
}
