// SPDX-License-Identifier: GPL-2.0
/*
 * vm_event_states: the per-CPU counters behind the events of /proc/vmstat
 * can be read (CONFIG_VM_EVENT_COUNTERS; vm_event_states is exported on
 * 6.1, 6.12 and 7.3), and ALLOCSTALL_* (allocations that entered direct
 * reclaim) is one of them. The pragma turns an enumerator of another
 * enum into an error, so an event that moved elsewhere fails the probe.
 */
#include <linux/mm.h>
#include <linux/vmstat.h>

#pragma GCC diagnostic error "-Wenum-conversion"

int vmb_probe(void);
int vmb_probe(void)
{
	enum vm_event_item item = ALLOCSTALL_NORMAL;

	return per_cpu(vm_event_states, 0).event[item] != 0;
}
