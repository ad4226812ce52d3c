// SPDX-License-Identifier: GPL-2.0
/*
 * pgscan_node_stat: pgscan_kswapd and pgscan_direct are node statistics
 * (enum node_stat_item, summed in vm_node_stat, exported), as on Debian's
 * 7.3; before, they were vm events (pgscan_vm_event). The pragma makes
 * an enumerator of enum vm_event_item fail here.
 */
#include <linux/mm.h>
#include <linux/vmstat.h>

#pragma GCC diagnostic error "-Wenum-conversion"

int vmb_probe(void);
int vmb_probe(void)
{
	enum node_stat_item kswapd = PGSCAN_KSWAPD, direct = PGSCAN_DIRECT;

	return global_node_page_state(kswapd) +
	       global_node_page_state(direct) != 0;
}
