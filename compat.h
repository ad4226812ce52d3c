/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - the differences between the kernels we build for, in one place.
 *
 * Oldest kernel: Debian's 6.1. Newer kernels allocate shrinkers for their
 * users (6.7), account ballooned memory in /proc/meminfo (6.15) and rename
 * the balloon core and its options (7.0). Each difference is found by a
 * compile test against the target kernel (compat/probes/<name>.c, run by
 * the Makefile), never by a version number, so distribution backports are
 * handled too. The results are the VMM_HAVE_<NAME> macros of the generated
 * compat_probes.h. Some are for the balloon migration support to come:
 * VMM_HAVE_BALLOON_H, VMM_HAVE_BALLOON_COMPACTION_H,
 * VMM_HAVE_BALLOON_PAGE_FINALIZE, VMM_HAVE_BALLOON_ADJUST_MANAGED_PAGE_COUNT,
 * VMM_HAVE_MIGRATEPAGE_SUCCESS, VMM_HAVE_BALLOON_MOPS,
 * VMM_HAVE_VM_EVENT_BALLOON_MIGRATE, VMM_HAVE_CONFIG_BALLOON and
 * VMM_HAVE_DEBUGFS_LOOKUP_AND_REMOVE. Where reclaim counts its scans moved
 * in 7.x (vm events to node statistics): VMM_HAVE_PGSCAN_VM_EVENT,
 * VMM_HAVE_PGSCAN_NODE_STAT, VMM_HAVE_VM_EVENT_STATES.
 */
#ifndef VMMEMCTL_COMPAT_H
#define VMMEMCTL_COMPAT_H

#include <linux/mm.h>
#include <linux/shrinker.h>
#include <linux/vmstat.h>

#include "compat_probes.h"

/*
 * Shrinkers: registered from a caller-owned struct before 6.7, allocated by
 * the kernel since. vmm_shrinker_create() hides the difference.
 */
#ifdef VMM_HAVE_SHRINKER_ALLOC
static inline struct shrinker *
vmm_shrinker_create(unsigned long (*count)(struct shrinker *,
					   struct shrink_control *),
		    unsigned long (*scan)(struct shrinker *,
					  struct shrink_control *),
		    int seeks)
{
	struct shrinker *s = shrinker_alloc(0, "vmmemctl");

	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
	shrinker_register(s);
	return s;
}

static inline void vmm_shrinker_destroy(struct shrinker *s)
{
	shrinker_free(s);
}
#else
static inline struct shrinker *
vmm_shrinker_create(unsigned long (*count)(struct shrinker *,
					   struct shrink_control *),
		    unsigned long (*scan)(struct shrinker *,
					  struct shrink_control *),
		    int seeks)
{
	static struct shrinker storage;
	struct shrinker *s = &storage;

	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
	if (register_shrinker(s, "vmmemctl"))
		return NULL;
	return s;
}

static inline void vmm_shrinker_destroy(struct shrinker *s)
{
	unregister_shrinker(s);
}
#endif

/*
 * Kernel-wide accounting of ballooned memory: the balloon_inflate and
 * balloon_deflate events of /proc/vmstat and, where the kernel has it, the
 * "Balloon:" line of /proc/meminfo. @frames counts 4 KiB pages: positive
 * when the balloon grows, negative when it shrinks. The events exist when
 * the kernel's balloon core is built, whatever its option is called
 * (CONFIG_MEMORY_BALLOON before 7.0, CONFIG_BALLOON since).
 */
static inline void vmm_account_balloon(long frames)
{
#ifdef VMM_HAVE_VM_EVENT_BALLOON
	if (frames > 0)
		count_vm_events(BALLOON_INFLATE, frames);
	else
		count_vm_events(BALLOON_DEFLATE, -frames);
#endif
#ifdef VMM_HAVE_NR_BALLOON_PAGES
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
#ifdef VMM_HAVE_VM_EVENT_STATES
static inline unsigned long vmm_sum_vm_event(enum vm_event_item item)
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
static inline unsigned long vmm_reclaim_scanned(void)
{
#if defined(VMM_HAVE_PGSCAN_NODE_STAT)
	return global_node_page_state(PGSCAN_KSWAPD) +
	       global_node_page_state(PGSCAN_DIRECT);
#elif defined(VMM_HAVE_PGSCAN_VM_EVENT)
	return vmm_sum_vm_event(PGSCAN_KSWAPD) +
	       vmm_sum_vm_event(PGSCAN_DIRECT);
#else
	return 0;
#endif
}

/*
 * Allocations that entered direct reclaim (allocstall_*, one event per
 * zone type, the kernel's own indexing: ALLOCSTALL_NORMAL - ZONE_NORMAL +
 * zone); 0 without vm event counters.
 */
static inline unsigned long vmm_reclaim_stalls(void)
{
	unsigned long sum = 0;
#ifdef VMM_HAVE_VM_EVENT_STATES
	int zid;

	for (zid = 0; zid <= ZONE_MOVABLE; zid++)
		sum += vmm_sum_vm_event(ALLOCSTALL_NORMAL - ZONE_NORMAL + zid);
#endif
	return sum;
}

#endif /* VMMEMCTL_COMPAT_H */
