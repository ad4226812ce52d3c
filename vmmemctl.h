/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - state shared between the balloon core and its statistics.
 */
#ifndef VMMEMCTL_H
#define VMMEMCTL_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>

#include "backdoor.h"

#define VMMEMCTL_VERSION	"1.0.0"

/**
 * enum vmm_size - the page sizes the balloon holds
 * @VMM_4K: 4 KiB pages
 * @VMM_2M: 2 MiB pages (order 9, not compound)
 * @VMM_NR_SIZES: number of sizes
 */
enum vmm_size {
	VMM_4K,
	VMM_2M,
	VMM_NR_SIZES
};

/**
 * enum vmm_limit - why the balloon's goal is below the host's target
 * @VMM_LIMIT_NONE: the goal is the host's target
 * @VMM_LIMIT_RAM: the host asked for more than the guest has
 * @VMM_LIMIT_CAP: the admin's max_size cap
 * @VMM_LIMIT_FLOOR: the admin's (or the automatic) free-memory floor
 * @VMM_LIMIT_HOLDOFF: the guest recently needed memory back
 * @VMM_LIMIT_DISABLED: ballooning is switched off
 * @VMM_LIMIT_NR: number of reasons
 */
enum vmm_limit {
	VMM_LIMIT_NONE,
	VMM_LIMIT_RAM,
	VMM_LIMIT_CAP,
	VMM_LIMIT_FLOOR,
	VMM_LIMIT_HOLDOFF,
	VMM_LIMIT_DISABLED,
	VMM_LIMIT_NR
};

/**
 * struct vmm_rate - an adaptive per-second rate, in 4 KiB pages
 * @cur: current rate, kept within [@min, @max]
 * @min: lower bound (module parameter)
 * @max: upper bound (module parameter)
 */
struct vmm_rate {
	unsigned int cur;
	unsigned int min;
	unsigned int max;
};

/**
 * struct vmm_page_stats - per page size counters
 * @alloc: pages allocated for inflation
 * @alloc_fail: allocations that failed
 * @refused: pages the host refused to lock
 * @unlock_fail: pages the host refused to unlock (they stay ballooned)
 * @free: pages freed back to the guest
 */
struct vmm_page_stats {
	unsigned long alloc;
	unsigned long alloc_fail;
	unsigned long refused;
	unsigned long unlock_fail;
	unsigned long free;
};

/**
 * struct vmm_balloon - the balloon
 * @lock: serialises the work item, the pressure callbacks, parameter
 *        changes that touch the host session, and unload; held across
 *        every hypercall
 * @host: the session with the host
 * @work: the delayed work that polls the target and moves pages
 * @pages: ballooned (locked) pages, per size, linked through page->lru
 * @refused: pages the host refused to lock, kept allocated so the
 *           allocator does not hand them straight back; freed once the
 *           balloon stops inflating
 * @nr_pages: pages on @pages, per size
 * @nr_refused: pages on @refused, per size
 * @host_target: the host's last target, in 4 KiB pages, as sent
 * @goal: the bounded target the balloon is moving to
 * @limited_by: why @goal is below @host_target
 * @inflate: inflate rate
 * @deflate: deflate rate
 * @period_end: jiffies at which the current one-second period ends
 * @period_done: frames moved in the current period
 * @period_refused: pages refused in the current period
 * @period_saturated: the rate that limited this period, grown when it ends
 * @period_failed: something failed in this period; no more until it ends
 * @huge_failed: a 2 MiB allocation failed in this period
 * @holdoff_until: jiffies before which the balloon does not inflate,
 *                 after it gave memory back under pressure
 * @host_failing: the host stopped answering; logged once until it recovers
 * @caps_logged: capabilities last reported in the kernel log
 * @running: the work item may be queued (cleared on unload)
 * @renegotiate: an admin changed the protocol switches; restart the session
 * @stat: per page size counters
 * @timer_runs: work runs
 * @resets: sessions (re)started after a reset
 * @shrink_calls: times reclaim asked the balloon for memory and got some
 * @shrink_frames: frames given back to reclaim
 * @oom_calls: times the OOM notifier was called
 * @oom_frames: frames given back to avert an OOM kill
 * @debugfs: the debugfs file
 */
struct vmm_balloon {
	struct mutex lock;	/* see @lock above */
	struct vmm_host host;
	struct delayed_work work;

	struct list_head pages[VMM_NR_SIZES];
	struct list_head refused[VMM_NR_SIZES];
	unsigned long nr_pages[VMM_NR_SIZES];
	unsigned long nr_refused[VMM_NR_SIZES];

	u64 host_target;
	unsigned long goal;
	enum vmm_limit limited_by;

	struct vmm_rate inflate;
	struct vmm_rate deflate;
	unsigned long period_end;
	unsigned long period_done;
	unsigned int period_refused;
	struct vmm_rate *period_saturated;
	bool period_failed;
	bool huge_failed;
	unsigned long holdoff_until;

	bool host_failing;
	u32 caps_logged;
	bool running;
	bool renegotiate;

	struct vmm_page_stats stat[VMM_NR_SIZES];
	unsigned long timer_runs;
	unsigned long resets;
	unsigned long shrink_calls;
	unsigned long shrink_frames;
	unsigned long oom_calls;
	unsigned long oom_frames;

	struct dentry *debugfs;
};

/**
 * vmm_frames() - 4 KiB frames in one page of a balloon page size
 * @size: the page size
 *
 * Return: 1 or 512.
 */
static inline unsigned long vmm_frames(enum vmm_size size)
{
	return size == VMM_2M ? 1UL << VMM_2M_ORDER : 1;
}

/**
 * vmm_balloon_size() - frames the balloon holds locked with the host
 * @b: the balloon
 *
 * Return: the size in 4 KiB frames.
 */
static inline unsigned long vmm_balloon_size(const struct vmm_balloon *b)
{
	return READ_ONCE(b->nr_pages[VMM_4K]) +
	       READ_ONCE(b->nr_pages[VMM_2M]) * vmm_frames(VMM_2M);
}

const char *vmm_limit_name(enum vmm_limit limit);

int vmm_stats_init(struct vmm_balloon *b);
void vmm_stats_exit(struct vmm_balloon *b);

#endif /* VMMEMCTL_H */
