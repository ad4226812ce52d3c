/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - the balloon's state, and what each file offers the others.
 *
 *   balloon_core.c  work loop, session, goal, periods, load/unload
 *   rate.c          inflate/deflate budgets and how they adapt
 *   pages.c         allocation, the lock/unlock path, refused pages, 2 MiB
 *                   split, pop
 *   migrate.c       page migration
 *   pressure.c      shrinker, OOM notifier, hold-off, zone floor, signals
 *   params.c        module parameters and their validation
 *   stats.c         debugfs and sysfs (reads only)
 *   backdoor.c      the hypercall
 */
#ifndef VMMEMCTL_H
#define VMMEMCTL_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>

#include "backdoor.h"
#include "compat_balloon.h"

#define VMMEMCTL_VERSION	"1.0.0"

/* ---- params.c --------------------------------------------------------- */

/**
 * struct vmb_rate_bounds - an admin's bounds on a rate, in 4 KiB pages/s
 * @min: lower bound
 * @max: upper bound, never below @min; VMB_RATE_UNLIMITED for none
 */
struct vmb_rate_bounds {
	unsigned int min;
	unsigned int max;
};

/**
 * struct vmb_params - the module parameters
 * @inflate_rate: bounds of the inflate rate
 * @deflate_rate: bounds of the deflate rate
 * @refused_max: refused pages after which inflation pauses for the period
 * @pressure_holdoff: seconds without inflation after a pressure release
 * @min_free_mb: the free-memory floor in MiB, 0 for automatic
 * @max_size_pages: largest balloon in 4 KiB pages, when not a percentage
 * @max_size_percent: largest balloon in percent of RAM, when a percentage
 * @max_size_is_percent: which of the two @max_size_* applies
 * @batching: offer the batched protocol
 * @huge_pages: offer 2 MiB pages
 * @enabled: follow the host's target
 * @pressure_release: give memory back under pressure
 * @protocol_changed: @batching or @huge_pages changed; the work item
 *                    restarts the session and clears this
 *
 * Written by the parameter setters with WRITE_ONCE(), read with
 * READ_ONCE() without a lock.
 */
struct vmb_params {
	struct vmb_rate_bounds inflate_rate;
	struct vmb_rate_bounds deflate_rate;
	unsigned int refused_max;
	unsigned int pressure_holdoff;
	unsigned int min_free_mb;
	unsigned long max_size_pages;
	unsigned int max_size_percent;
	bool max_size_is_percent;
	bool batching;
	bool huge_pages;
	bool enabled;
	bool pressure_release;
	bool protocol_changed;
};

extern struct vmb_params vmb_params;

/* A maximum rate of 0: no ceiling (the default for both rates). */
#define VMB_RATE_UNLIMITED	0U

void vmb_params_fixup(void);

unsigned long vmb_floor_pages(unsigned long ram);
unsigned long vmb_max_size_pages(unsigned long ram);

/* ---- The balloon ------------------------------------------------------ */

/**
 * enum vmb_limit - why the balloon is below the host's target
 * @VMB_LIMIT_NONE: the goal is the host's target
 * @VMB_LIMIT_RAM: the host asked for more than the guest has
 * @VMB_LIMIT_CAP: the admin's max_size cap
 * @VMB_LIMIT_FLOOR: the admin's (or the automatic) free-memory floor
 * @VMB_LIMIT_HOLDOFF: the guest recently needed memory back
 * @VMB_LIMIT_DISABLED: ballooning is switched off
 * @VMB_LIMIT_RECLAIM: the balloon is below its goal and inflation is
 *                     slowed: the guest was reclaiming (kswapd or direct
 *                     reclaim)
 * @VMB_LIMIT_NEAR_FLOOR: below the goal, inflation slowed: the guest's own
 *                        allocations are bringing available memory toward
 *                        the floor
 * @VMB_LIMIT_ALLOC_FAIL: below the goal, inflation slowed: the allocator
 *                        ran out of free pages
 * @VMB_LIMIT_NR: number of reasons
 *
 * The last three are also why the inflate rate was last slowed
 * (&vmb_balloon.inflate_slowed).
 */
enum vmb_limit {
	VMB_LIMIT_NONE,
	VMB_LIMIT_RAM,
	VMB_LIMIT_CAP,
	VMB_LIMIT_FLOOR,
	VMB_LIMIT_HOLDOFF,
	VMB_LIMIT_DISABLED,
	VMB_LIMIT_RECLAIM,
	VMB_LIMIT_NEAR_FLOOR,
	VMB_LIMIT_ALLOC_FAIL,
	VMB_LIMIT_NR
};

/**
 * struct vmb_signals - the guest's memory state, sampled once per period
 * @when: jiffies of the last sample; 0 before the first
 * @scanned: pages reclaim had scanned (pgscan_kswapd + pgscan_direct)
 * @stalls: allocations that had entered direct reclaim (allocstall_*)
 * @avail: available memory (MemAvailable), 4 KiB pages
 * @handed_out: pages the allocator handed out less those freed
 *              (vmb_pages_handed_out())
 * @size: frames the balloon holds: ballooned and refused
 * @d_scanned: growth of @scanned over the last period
 * @d_stalls: growth of @stalls over the last period
 * @guest_alloc: memory the guest itself (not the balloon) took over the
 *               last period, frames: the lesser of what available memory
 *               and what the allocator's counts say
 * @grew: frames @size grew by over the last period
 * @quiet: periods in a row without a signal
 *
 * Written by vmb_guest_signals() under the balloon lock.
 */
struct vmb_signals {
	unsigned long when;
	unsigned long scanned;
	unsigned long stalls;
	unsigned long avail;
	unsigned long handed_out;
	unsigned long size;
	unsigned long d_scanned;
	unsigned long d_stalls;
	unsigned long guest_alloc;
	unsigned long grew;
	unsigned int quiet;
};

/**
 * struct vmb_rate - an adaptive per-second rate, in 4 KiB pages
 * @cur: current rate, clamped to @bounds on use; UINT_MAX for no budget
 * @bounds: the admin's bounds (module parameters)
 */
struct vmb_rate {
	unsigned int cur;
	const struct vmb_rate_bounds *bounds;
};

/**
 * struct vmb_page_stats - per page size counters
 * @alloc: pages allocated for inflation
 * @alloc_fail: allocations that failed
 * @refused: pages the host refused to lock
 * @unlock_fail: pages the host refused to unlock (they stay ballooned)
 * @free: pages freed back to the guest
 */
struct vmb_page_stats {
	unsigned long alloc;
	unsigned long alloc_fail;
	unsigned long refused;
	unsigned long unlock_fail;
	unsigned long free;
};

/**
 * struct vmb_balloon - the balloon
 * @lock: serialises the work item, the pressure callbacks and unload;
 *        held across every hypercall
 * @host: the session with the host
 * @work: the delayed work that polls the target and moves pages
 * @core: the kernel's balloon core holding the ballooned 4 KiB pages (on
 *        its list, or isolated while the kernel migrates them)
 * @huge_pages: ballooned 2 MiB pages, linked through page->lru
 * @refused: pages the host refused to lock, kept allocated so the
 *           allocator does not hand them straight back; freed once the
 *           balloon stops inflating
 * @nr_pages: ballooned pages, per size (4 KiB: isolated ones included);
 *            read without the lock (sysfs, shrinker)
 * @nr_refused: pages on @refused, per size
 * @host_target: the host's last target, in 4 KiB pages, as sent; read
 *               without the lock (sysfs)
 * @goal: the bounded target the balloon is moving to; read without the
 *        lock (sysfs)
 * @limited_by: why @goal is below @host_target or, while the balloon is
 *               below @goal, why inflation is slowed (@inflate_slowed);
 *               read without the lock
 * @inflate: inflate rate
 * @deflate: deflate rate
 * @period_end: jiffies at which the current one-second period ends
 * @period_done: frames moved in the current period
 * @period_refused: pages refused in the current period
 * @period_saturated: the rate that limited this period, grown when it ends
 * @period_failed: something failed in this period; no more until it ends
 * @huge_failed: a 2 MiB allocation failed in this period
 * @quick_polls: polls left at the quick interval, after the target
 *               changed or the balloon moved
 * @quick_poll_due: the next work run, before the period ends, polls the
 *                  target
 * @holdoff_until: jiffies before which the balloon does not inflate,
 *                 after it gave memory back under pressure; valid only
 *                 while @holding_off
 * @holding_off: a hold-off is running (see vmb_holding_off())
 * @dropped: frames the pressure path or page migration freed since the
 *           host reset, before the next session start (which counts and
 *           logs the reset)
 * @signals: the guest's memory state at the last period's end
 * @inflate_slowed: why the inflate rate was last slowed, VMB_LIMIT_NONE
 *                  once it has no budget again
 * @slowdowns: periods in which the guest's reclaim or allocations slowed
 *             inflation
 * @host_failing: the host stopped answering; logged once until it recovers
 * @caps_logged: capabilities last reported in the kernel log
 * @running: the work item may be queued (cleared on unload); read
 *           without the lock (shrinker)
 * @stat: per page size counters
 * @timer_runs: work runs
 * @resets: sessions (re)started after a reset
 * @shrink_calls: times reclaim asked the balloon for memory and got some
 * @shrink_frames: frames given back to reclaim
 * @oom_calls: times the OOM notifier was called
 * @oom_frames: frames given back to avert an OOM kill
 * @migrations: 4 KiB pages the kernel moved, the host locking the new one
 * @migrate_fails: migrations the host refused or failed, either side
 * @lock_hold_since: when the work item last took @lock
 * @lock_hold_max_ns: longest time the work item held @lock at a stretch
 */
struct vmb_balloon {
	struct mutex lock;	/* see @lock above */
	struct vmb_host host;
	struct delayed_work work;

	struct balloon_dev_info core;
	struct list_head huge_pages;
	struct list_head refused[VMB_NR_PAGE_SIZES];
	unsigned long nr_pages[VMB_NR_PAGE_SIZES];
	unsigned long nr_refused[VMB_NR_PAGE_SIZES];

	u64 host_target;
	unsigned long goal;
	enum vmb_limit limited_by;

	struct vmb_rate inflate;
	struct vmb_rate deflate;
	unsigned long period_end;
	unsigned long period_done;
	unsigned int period_refused;
	struct vmb_rate *period_saturated;
	bool period_failed;
	bool huge_failed;
	unsigned int quick_polls;
	bool quick_poll_due;
	unsigned long holdoff_until;
	bool holding_off;
	struct vmb_signals signals;
	enum vmb_limit inflate_slowed;
	unsigned long slowdowns;

	unsigned long dropped;
	bool host_failing;
	u32 caps_logged;
	bool running;

	struct vmb_page_stats stat[VMB_NR_PAGE_SIZES];
	unsigned long timer_runs;
	unsigned long resets;
	unsigned long shrink_calls;
	unsigned long shrink_frames;
	unsigned long oom_calls;
	unsigned long oom_frames;
	unsigned long migrations;
	unsigned long migrate_fails;
	ktime_t lock_hold_since;
	u64 lock_hold_max_ns;
};

/**
 * vmb_frames() - 4 KiB frames in one page of a balloon page size
 * @size: the page size
 *
 * Return: 1 or 512.
 */
static inline unsigned long vmb_frames(enum vmb_page_size size)
{
	return size == VMB_PAGE_2M ? 1UL << VMB_2M_ORDER : 1;
}

/**
 * vmb_balloon_size() - frames the balloon holds locked with the host
 * @b: the balloon
 *
 * Return: the size in 4 KiB frames.
 */
static inline unsigned long vmb_balloon_size(const struct vmb_balloon *b)
{
	return READ_ONCE(b->nr_pages[VMB_PAGE_4K]) +
	       READ_ONCE(b->nr_pages[VMB_PAGE_2M]) * vmb_frames(VMB_PAGE_2M);
}

/* Stop moving pages until the period ends (a failure, or the host full). */
static inline void vmb_fail_period(struct vmb_balloon *b)
{
	b->period_failed = true;
}

void vmb_lock(struct vmb_balloon *b);
void vmb_unlock(struct vmb_balloon *b);

/* ---- rate.c ---------------------------------------------------------- */

unsigned int vmb_rate_budget(const struct vmb_rate *r);
unsigned int vmb_rate_now(const struct vmb_rate *r);
void vmb_rate_grow(struct vmb_rate *r);
void vmb_rate_shrink(struct vmb_rate *r, unsigned long done);
void vmb_rate_period_end(struct vmb_balloon *b, unsigned long now);

/* ---- pages.c ---------------------------------------------------------- */

/**
 * enum vmb_deflate_mode - how a deflate treats 2 MiB pages
 * @VMB_DEFLATE_TO_GOAL: give back exactly the frames asked, splitting a
 *                       2 MiB page when needed
 * @VMB_DEFLATE_UNDER_PRESSURE: the guest needs memory now: give back
 *                              whole 2 MiB pages, rounding up
 */
enum vmb_deflate_mode {
	VMB_DEFLATE_TO_GOAL,
	VMB_DEFLATE_UNDER_PRESSURE,
};

void vmb_pages_init(struct vmb_balloon *b);
unsigned int vmb_pages_per_request(const struct vmb_balloon *b,
				   enum vmb_page_size size);
unsigned int vmb_pages_alloc(struct vmb_balloon *b, struct list_head *list,
			     enum vmb_page_size size, unsigned int n,
			     bool *at_floor);
void vmb_free_list(struct vmb_balloon *b, struct list_head *list,
		   enum vmb_page_size size);
unsigned long vmb_pages_lock(struct vmb_balloon *b, struct list_head *list,
			     enum vmb_page_size size);
unsigned long vmb_pages_deflate(struct vmb_balloon *b, unsigned long frames,
				enum vmb_deflate_mode mode);
unsigned long vmb_refused_frames(const struct vmb_balloon *b);
void vmb_refused_free(struct vmb_balloon *b);
unsigned long vmb_pages_drop(struct vmb_balloon *b, unsigned long frames);
void vmb_pages_pop(struct vmb_balloon *b);

/* ---- migrate.c -------------------------------------------------------- */

#ifdef VMB_MOVABLE_PAGES
int vmb_migratepage(struct balloon_dev_info *info, struct page *newpage,
		    struct page *page, enum migrate_mode mode);
#else
#define vmb_migratepage NULL
#endif

/* ---- pressure.c ------------------------------------------------------- */

enum vmb_limit vmb_guest_signals(struct vmb_balloon *b, unsigned long now);
int vmb_pressure_init(struct vmb_balloon *b);
void vmb_pressure_exit(void);
bool vmb_holding_off(struct vmb_balloon *b);
bool vmb_zone_at_floor(struct zone *zone);
unsigned long vmb_zone_room(void);

/* ---- stats.c ---------------------------------------------------------- */

int vmb_stats_init(struct vmb_balloon *b);
void vmb_stats_exit(void);

#endif /* VMMEMCTL_H */
