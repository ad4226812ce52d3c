// SPDX-License-Identifier: GPL-2.0
/*
 * pgscan_vm_event: pgscan_kswapd and pgscan_direct of /proc/vmstat are
 * per-CPU vm events (6.1, 6.12). 7.x counts them as node statistics
 * instead (pgscan_node_stat); there the enumerators belong to enum
 * node_stat_item and the pragma makes this probe fail.
 */
#include <linux/mm.h>
#include <linux/vmstat.h>

#pragma GCC diagnostic error "-Wenum-conversion"

int vmb_probe(void);
int vmb_probe(void)
{
	enum vm_event_item kswapd = PGSCAN_KSWAPD, direct = PGSCAN_DIRECT;

	return per_cpu(vm_event_states, 0).event[kswapd] +
	       per_cpu(vm_event_states, 0).event[direct] != 0;
}
