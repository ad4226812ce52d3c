// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - memory pressure: a shrinker and an OOM notifier give ballooned
 * memory back when the guest runs short, and inflation holds off for
 * pressure_holdoff seconds afterwards (read by the goal in balloon_core.c).
 * Before it comes to that, the guest's reclaim activity and its own
 * allocations, sampled once per period, slow inflation down (the rates in
 * balloon_core.c).
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/math.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/nodemask.h>
#include <linux/notifier.h>
#include <linux/oom.h>
#include <linux/shrinker.h>
#include <linux/sizes.h>

#include "compat.h"
#include "vmmemctl.h"
#include "vmmemctl_trace.h"

/* Frames given back per OOM notification. */
#define VMB_OOM_FRAMES		1024

static struct vmb_balloon *vmb_pressure_balloon;
static struct shrinker *vmb_shrinker;

/*
 * Give back up to @frames frames now, ignoring the rates, and hold off
 * inflation. Return: frames freed.
 */
static unsigned long vmb_release_under_pressure(struct vmb_balloon *b,
						unsigned long frames)
{
	bool failed = b->period_failed;
	unsigned long freed, step, holdoff;

	/* Refused pages are not locked: they go first, without a hypercall. */
	freed = vmb_refused_frames(b);
	vmb_refused_free(b);

	while (!b->host.reset_required && vmb_host_can_lock(&b->host) &&
	       freed < frames && vmb_balloon_size(b)) {
		step = vmb_pages_deflate(b, frames - freed,
					 VMB_DEFLATE_UNDER_PRESSURE);
		if (!step)
			break;
		freed += step;
	}
	/*
	 * A session that needs a reset holds nothing with the host: it
	 * answered RESET (maybe to one of the unlocks above) or acknowledged
	 * the START that dropped the balloon. Its pages are the guest's
	 * already; the next session start would pop them, but the guest needs
	 * them now.
	 */
	if (b->host.reset_required && freed < frames)
		freed += vmb_pages_drop(b, frames - freed);
	/* A refusal here must not stall the work item's period. */
	b->period_failed = failed;
	if (freed) {
		holdoff = READ_ONCE(vmb_params.pressure_holdoff) * HZ;
		b->holdoff_until = jiffies + holdoff;
		b->holding_off = holdoff != 0;
		trace_vmmemctl_pressure(freed, vmb_balloon_size(b));
	}
	return freed;
}

/**
 * vmb_holding_off() - whether inflation holds off after a pressure release
 * @b: the balloon, locked
 *
 * The stamp is compared only while a hold-off runs, and the work item asks
 * every second, so it never gets more than an hour (the longest hold-off)
 * old: time_before() stays valid however jiffies wraps.
 *
 * Return: true while the hold-off runs.
 */
bool vmb_holding_off(struct vmb_balloon *b)
{
	if (b->holding_off && !time_before(jiffies, b->holdoff_until))
		b->holding_off = false;
	return b->holding_off;
}

/* ---- The kernel's zones on a guest with ZONE_MOVABLE --------------------- */

/*
 * On a node with a ZONE_MOVABLE (movablecore=, memory onlined movable), the
 * kernel's own allocations can only use the zones below it. The balloon's
 * 4 KiB pages, being movable, come from ZONE_MOVABLE first and then from
 * those same zones, its 2 MiB pages from those zones only. Available
 * memory, counted over every zone, cannot tell a drained ZONE_NORMAL from a
 * drained ZONE_MOVABLE: so each zone the kernel needs keeps its share of
 * the floor (by its size) free, above its high watermark. A guest without
 * ZONE_MOVABLE has only the floor.
 */
static bool vmb_node_has_movable(pg_data_t *pgdat)
{
	return managed_zone(&pgdat->node_zones[ZONE_MOVABLE]);
}

/* Free pages the balloon leaves in @zone. */
static unsigned long vmb_zone_keep(struct zone *zone, unsigned long floor,
				   unsigned long ram)
{
	unsigned long keep = high_wmark_pages(zone);

	if (zone_idx(zone) < ZONE_MOVABLE &&
	    vmb_node_has_movable(zone->zone_pgdat))
		keep += mult_frac(floor, zone_managed_pages(zone), ram);
	return keep;
}

/**
 * vmb_zone_at_floor() - may the balloon not keep a page of this zone
 * @zone: the zone a page just allocated for the balloon came from
 *
 * Return: true when @zone is one the kernel's own allocations need, on a
 * node with a ZONE_MOVABLE, and its free pages are down to what the
 * balloon leaves there.
 */
bool vmb_zone_at_floor(struct zone *zone)
{
	unsigned long ram = totalram_pages();

	if (zone_idx(zone) >= ZONE_MOVABLE ||
	    !vmb_node_has_movable(zone->zone_pgdat))
		return false;
	return zone_page_state(zone, NR_FREE_PAGES) <=
	       vmb_zone_keep(zone, vmb_floor_pages(ram), ram);
}

/**
 * vmb_zone_room() - free pages the balloon may still take, zone by zone
 *
 * Return: on a guest with a ZONE_MOVABLE, the free pages above what each
 * zone keeps (vmb_zone_keep()); ULONG_MAX on any other guest.
 */
unsigned long vmb_zone_room(void)
{
	unsigned long ram = totalram_pages(), floor = vmb_floor_pages(ram);
	unsigned long room = 0, free, keep;
	bool movable = false;
	struct zone *zone;
	int nid, z;

	for_each_online_node(nid)
		movable |= vmb_node_has_movable(NODE_DATA(nid));
	if (!movable)
		return ULONG_MAX;
	for_each_online_node(nid) {
		for (z = 0; z < MAX_NR_ZONES; z++) {
			zone = &NODE_DATA(nid)->node_zones[z];
			if (!managed_zone(zone))
				continue;
			free = zone_page_state(zone, NR_FREE_PAGES);
			keep = vmb_zone_keep(zone, floor, ram);
			if (free > keep)
				room += free - keep;
		}
	}
	return room;
}

/*
 * Inflation would race the guest for the same free pages when, at the rate
 * the guest's own allocations took available memory in the last period,
 * what is left above the floor would be gone within this many seconds.
 */
#define VMB_RACE_SECONDS	60
/* Less taken by the guest in a period is counter drift and page cache churn. */
#define VMB_GUEST_ALLOC_MIN	(SZ_1M >> PAGE_SHIFT)

/**
 * vmb_guest_signals() - sample the guest's memory state for the inflate rate
 * @b: the balloon (lock held)
 * @now: jiffies at the end of the period
 *
 * Called once per period. Reads a few kernel-wide counters (on the
 * kernels with per-CPU vm events: one word per online CPU each) and
 * MemAvailable, and compares them with the last period's.
 *
 * Return: VMB_LIMIT_RECLAIM when kswapd or direct reclaim scanned pages
 * or an allocation entered direct reclaim in the last period,
 * VMB_LIMIT_NEAR_FLOOR when the guest's own allocations would bring
 * available memory down to the floor within VMB_RACE_SECONDS at their
 * last period's pace, VMB_LIMIT_NONE otherwise (and on the first sample).
 */
enum vmb_limit vmb_guest_signals(struct vmb_balloon *b, unsigned long now)
{
	struct vmb_signals *s = &b->signals;
	unsigned long scanned = vmb_reclaim_scanned();
	unsigned long stalls = vmb_reclaim_stalls();
	unsigned long avail = max_t(long, si_mem_available(), 0);
	unsigned long handed_out;
	bool counted = vmb_pages_handed_out(&handed_out);
	unsigned long size = vmb_balloon_size(b) + vmb_refused_frames(b);
	unsigned long floor = vmb_floor_pages(totalram_pages());
	unsigned long elapsed = max(now - s->when, 1UL), room;
	long growth = (long)(size - s->size);
	long guest = (long)(s->avail - avail) - growth;
	bool first = !s->when;

	/*
	 * Available memory that went down and not into the balloon: the
	 * guest's. Pages freed to the per-cpu lists are not available, so
	 * that alone would count a deflating balloon's pages as the guest's;
	 * the allocator's own counts, which include page cache the guest can
	 * drop, bound it from the other side. Without vm events (no count)
	 * available memory decides alone.
	 */
	if (counted)
		guest = min(guest, (long)(handed_out - s->handed_out) - growth);
	s->d_scanned = first ? 0 : scanned - s->scanned;
	s->d_stalls = first ? 0 : stalls - s->stalls;
	s->guest_alloc = first || guest < 0 ? 0 : guest;
	s->grew = first || growth < 0 ? 0 : growth;
	s->when = now ? now : 1;
	s->scanned = scanned;
	s->stalls = stalls;
	s->avail = avail;
	s->handed_out = handed_out;
	s->size = size;

	room = avail > floor ? avail - floor : 0;
	if (s->d_scanned || s->d_stalls) {
		s->quiet = 0;
		return VMB_LIMIT_RECLAIM;
	}
	if (s->guest_alloc >= VMB_GUEST_ALLOC_MIN &&
	    room / VMB_RACE_SECONDS < s->guest_alloc * HZ / elapsed) {
		s->quiet = 0;
		return VMB_LIMIT_NEAR_FLOOR;
	}
	if (s->quiet < UINT_MAX)
		s->quiet++;
	return VMB_LIMIT_NONE;
}

/*
 * How far available memory is below the floor, in frames: 0 when the guest
 * is not short. Inflation stops at the same floor, so the reclaim that
 * ordinary page cache churn causes does not deflate the balloon
 * (Documentation/design.rst, Memory pressure).
 */
static unsigned long vmb_shortfall(void)
{
	long avail = max_t(long, si_mem_available(), 0);
	unsigned long floor = vmb_floor_pages(totalram_pages());

	return avail < floor ? floor - avail : 0;
}

static unsigned long vmb_shrink_count(struct shrinker *s,
				      struct shrink_control *sc)
{
	struct vmb_balloon *b = vmb_pressure_balloon;

	if (!READ_ONCE(vmb_params.pressure_release) || !READ_ONCE(b->running))
		return 0;
	if (!vmb_shortfall())
		return 0;
	return vmb_balloon_size(b);
}

static unsigned long vmb_shrink_scan(struct shrinker *s,
				     struct shrink_control *sc)
{
	struct vmb_balloon *b = vmb_pressure_balloon;
	unsigned long freed, short_by;

	/*
	 * The core keeps scanning in batches what count promised, without
	 * asking again: stop as soon as the guest is no longer short, and give
	 * no more than it is short by (kswapd on another CPU may have freed
	 * memory meanwhile), so the balloon is not drained by one reclaim pass.
	 */
	short_by = vmb_shortfall();
	if (!short_by)
		return SHRINK_STOP;
	/* Never wait here: the work item may hold the lock. */
	if (!mutex_trylock(&b->lock))
		return SHRINK_STOP;
	freed = vmb_release_under_pressure(b, min(sc->nr_to_scan, short_by));
	if (freed) {
		b->shrink_calls++;
		b->shrink_frames += freed;
	}
	mutex_unlock(&b->lock);
	return freed ? freed : SHRINK_STOP;
}

static int vmb_oom_notify(struct notifier_block *nb, unsigned long unused,
			  void *parm)
{
	struct vmb_balloon *b = vmb_pressure_balloon;
	unsigned long *total = parm, freed = 0, held;

	held = vmb_balloon_size(b);
	/*
	 * Waiting is safe: whoever holds the lock never allocates with
	 * direct reclaim, so it cannot be waiting for this OOM to end.
	 */
	mutex_lock(&b->lock);
	b->oom_calls++;
	if (READ_ONCE(vmb_params.pressure_release) && b->running) {
		freed = vmb_release_under_pressure(b, VMB_OOM_FRAMES);
		b->oom_frames += freed;
	}
	mutex_unlock(&b->lock);
	*total += freed;

	pr_info_ratelimited("out of memory: balloon held %lu MiB, gave back %lu MiB\n",
			    held >> (20 - PAGE_SHIFT),
			    freed >> (20 - PAGE_SHIFT));
	return NOTIFY_OK;
}

static struct notifier_block vmb_oom_nb = {
	.notifier_call = vmb_oom_notify,
};

/**
 * vmb_pressure_init() - register the shrinker and the OOM notifier
 * @b: the balloon they give memory back from
 *
 * Return: 0 or a negative errno.
 */
int vmb_pressure_init(struct vmb_balloon *b)
{
	int ret;

	vmb_pressure_balloon = b;
	vmb_shrinker = vmb_shrinker_create(vmb_shrink_count, vmb_shrink_scan,
					   DEFAULT_SEEKS);
	if (!vmb_shrinker)
		return -ENOMEM;
	ret = register_oom_notifier(&vmb_oom_nb);
	if (ret)
		vmb_shrinker_destroy(vmb_shrinker);
	return ret;
}

/**
 * vmb_pressure_exit() - unregister what vmb_pressure_init() registered
 */
void vmb_pressure_exit(void)
{
	unregister_oom_notifier(&vmb_oom_nb);
	vmb_shrinker_destroy(vmb_shrinker);
}
