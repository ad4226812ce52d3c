/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - the differences between the kernels we build for, in one place.
 *
 * Oldest kernel: Debian's 6.1. Newer kernels allocate shrinkers for their
 * users (6.7), account ballooned memory in /proc/meminfo (6.15) and rename
 * the balloon core and its options (7.0). Each difference is found by a
 * compile test against the target kernel (compat/probes/<name>.c, run by
 * the Makefile), never by a version number, so distribution backports are
 * handled too. The results are the VMB_HAVE_<NAME> macros of the generated
 * compat_probes.h; compat_balloon.h holds those of the kernel's balloon
 * core.
 */
#ifndef VMMEMCTL_COMPAT_H
#define VMMEMCTL_COMPAT_H

#include <linux/mm.h>
#include <linux/shrinker.h>
#include <linux/vmstat.h>

#include "compat_probes.h"

/*
 * Shrinkers: allocated by the kernel since 6.7, a caller-owned struct
 * before (allocated here, so both look the same to the caller).
 * vmb_shrinker_create() hides the difference.
 */
static inline struct shrinker *
vmb_shrinker_create(unsigned long (*count)(struct shrinker *,
					   struct shrink_control *),
		    unsigned long (*scan)(struct shrinker *,
					  struct shrink_control *),
		    int seeks)
{
#ifdef VMB_HAVE_SHRINKER_ALLOC
	struct shrinker *s = shrinker_alloc(0, "vmmemctl");
#else
	struct shrinker *s = kzalloc(sizeof(*s), GFP_KERNEL);
#endif

	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
#ifdef VMB_HAVE_SHRINKER_ALLOC
	shrinker_register(s);
#else
	if (register_shrinker(s, "vmmemctl")) {
		kfree(s);
		return NULL;
	}
#endif
	return s;
}

static inline void vmb_shrinker_destroy(struct shrinker *s)
{
#ifdef VMB_HAVE_SHRINKER_ALLOC
	shrinker_free(s);
#else
	unregister_shrinker(s);
	kfree(s);
#endif
}

/*
 * Kernel-wide accounting of ballooned memory: the balloon_inflate and
 * balloon_deflate events of /proc/vmstat and, where the kernel has it, the
 * "Balloon:" line of /proc/meminfo. @frames counts 4 KiB pages: positive
 * when the balloon grows, negative when it shrinks. The events exist when
 * the kernel's balloon core is built, whatever its option is called
 * (CONFIG_MEMORY_BALLOON before 7.0, CONFIG_BALLOON since).
 */
static inline void vmb_account_balloon(long frames)
{
#ifdef VMB_HAVE_VM_EVENT_BALLOON
	if (frames > 0)
		count_vm_events(BALLOON_INFLATE, frames);
	else
		count_vm_events(BALLOON_DEFLATE, -frames);
#endif
#ifdef VMB_HAVE_NR_BALLOON_PAGES
	mod_node_page_state(NODE_DATA(numa_node_id()), NR_BALLOON_PAGES,
			    frames);
#endif
}

/*
 * Reclaim activity for the inflate rate (pressure.c): cumulative counters,
 * read once per period and compared with the last reading. Summing a vm
 * event reads one word per online CPU, as /proc/vmstat does; a CPU going
 * offline folds its counts into another, so a delta is at worst late.
 */
#ifdef VMB_HAVE_VM_EVENT_STATES
static inline unsigned long vmb_sum_vm_event(enum vm_event_item item)
{
	unsigned long sum = 0;
	int cpu;

	for_each_online_cpu(cpu)
		sum += per_cpu(vm_event_states, cpu).event[item];
	return sum;
}
#endif

/*
 * Pages scanned by kswapd and by direct reclaim (pgscan_kswapd +
 * pgscan_direct): vm events before 7.x, node statistics since; 0 when the
 * kernel counts neither.
 */
static inline unsigned long vmb_reclaim_scanned(void)
{
#if defined(VMB_HAVE_PGSCAN_NODE_STAT)
	return global_node_page_state(PGSCAN_KSWAPD) +
	       global_node_page_state(PGSCAN_DIRECT);
#elif defined(VMB_HAVE_PGSCAN_VM_EVENT)
	return vmb_sum_vm_event(PGSCAN_KSWAPD) +
	       vmb_sum_vm_event(PGSCAN_DIRECT);
#else
	return 0;
#endif
}

/*
 * Allocations that entered direct reclaim (allocstall_*, one event per
 * zone type, the kernel's own indexing: ALLOCSTALL_NORMAL - ZONE_NORMAL +
 * zone); 0 without vm event counters.
 */
static inline unsigned long vmb_reclaim_stalls(void)
{
	unsigned long sum = 0;
#ifdef VMB_HAVE_VM_EVENT_STATES
	int zid;

	for (zid = 0; zid <= ZONE_MOVABLE; zid++)
		sum += vmb_sum_vm_event(ALLOCSTALL_NORMAL - ZONE_NORMAL + zid);
#endif
	return sum;
}

/*
 * Pages the page allocator handed out less those freed back to it
 * (pgalloc_* - pgfree, one event per zone type as above), as a cumulative
 * count whose differences matter. Unlike free memory, it does not move
 * when freed pages park on the per-cpu lists, which since 6.7 grow on
 * demand to tens of MiB. Return: false without vm event counters.
 */
static inline bool vmb_pages_handed_out(unsigned long *pages)
{
#ifdef VMB_HAVE_VM_EVENT_STATES
	unsigned long sum = 0;
	int zid;

	for (zid = 0; zid <= ZONE_MOVABLE; zid++)
		sum += vmb_sum_vm_event(PGALLOC_NORMAL - ZONE_NORMAL + zid);
	*pages = sum - vmb_sum_vm_event(PGFREE);
	return true;
#else
	*pages = 0;
	return false;
#endif
}

#endif /* VMMEMCTL_COMPAT_H */
