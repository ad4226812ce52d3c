// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - VMware memory balloon driver: the policy.
 *
 * A delayed work item polls the host's target once a second, and ten
 * times a second for five seconds after the target changed or the balloon
 * moved (a host short of memory changes the target in steps). Each run
 * moves at most one request's worth of pages toward the goal (the host's
 * target, bounded by what the guest can give and what the admin allows)
 * and runs again at once while the per-second rate budget lasts (by
 * default there is no budget: the rates only bind after a failure). The
 * lock is dropped between runs, so pressure callbacks get in.
 *
 * How pages are allocated, locked, refused and freed is in pages.c; the
 * pressure response in pressure.c; the parameters in params.c.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cc_platform.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/workqueue.h>
#include <asm/hypervisor.h>

#include "backdoor.h"
#include "vmmemctl.h"

#define CREATE_TRACE_POINTS
#include "vmmemctl_trace.h"

/* Length of a rate period: the rate budgets are per period. */
#define VMB_PERIOD		HZ
/*
 * Between period ends the target is polled again: at rest every half
 * period (without the doorbell, a new target waits a quarter of a second
 * on average, not half a second), and at the quick interval for about five
 * seconds after a change.
 */
#define VMB_IDLE_POLL		(VMB_PERIOD / 2)
#define VMB_QUICK_POLL		(HZ / 10)
#define VMB_QUICK_POLLS		(5 * HZ / VMB_QUICK_POLL)

static struct vmb_balloon vmb_balloon = {
	.lock		= __MUTEX_INITIALIZER(vmb_balloon.lock),
	.huge_pages	= LIST_HEAD_INIT(vmb_balloon.huge_pages),
	.refused	= { LIST_HEAD_INIT(vmb_balloon.refused[VMB_PAGE_4K]),
			    LIST_HEAD_INIT(vmb_balloon.refused[VMB_PAGE_2M]) },
	.inflate	= { .cur = UINT_MAX,
			    .bounds = &vmb_params.inflate_rate },
	.deflate	= { .cur = UINT_MAX,
			    .bounds = &vmb_params.deflate_rate },
};

/* Most refused frames kept allocated across periods: RAM/16, 64 MiB at most. */
static unsigned long vmb_refused_hold(unsigned long ram)
{
	return min(ram / 16, 64UL << (20 - PAGE_SHIFT));
}

/* ---- The session with the host ---------------------------------------- */

static u32 vmb_offered_caps(void)
{
	u32 caps = VMB_CAP_BASIC;

	if (IS_ENABLED(CONFIG_64BIT))
		caps |= VMB_CAP_TARGET_64;
	if (READ_ONCE(vmb_params.batching)) {
		caps |= VMB_CAP_BATCHED;
		if (READ_ONCE(vmb_params.huge_pages))
			caps |= VMB_CAP_BATCHED_2M;
	}
	return caps;
}

static const char *vmb_protocol_name(const struct vmb_host *h)
{
	if (vmb_host_huge(h))
		return "batched with 2 MiB pages";
	if (vmb_host_batched(h))
		return "batched";
	if (vmb_host_can(h, VMB_CAP_BASIC))
		return "basic";
	return "none usable";
}

/*
 * (Re)start the session: give back whatever the host forgot, then START
 * and GUEST_ID.
 *
 * Return: true when the session is open.
 */
static bool vmb_start_session(struct vmb_balloon *b)
{
	struct vmb_host *h = &b->host;
	/* The pressure path may have freed some of them already. */
	unsigned long size = vmb_balloon_size(b) + b->dropped;
	u32 status;

	b->dropped = 0;
	if (size) {
		b->resets++;
		pr_info_ratelimited("host reset the balloon; %lu pages returned to the guest\n",
				    size);
	}
	vmb_pages_pop(b);

	status = vmb_host_start(h, vmb_offered_caps());
	if (status != VMB_STATUS_SUCCESS) {
		if (!b->host_failing)
			pr_info("host does not answer START (%s); retrying every second\n",
				vmb_status_name(status));
		b->host_failing = true;
		return false;
	}
	vmb_host_guest_id(h);
	if (h->reset_required)
		return false;

	if (b->host_failing || b->caps_logged != h->caps)
		pr_info("session started: %s protocol, capabilities %#x%s\n",
			vmb_protocol_name(h), h->caps,
			vmb_host_can(h, VMB_CAP_TARGET_64) ?
			", 64-bit target" : "");
	b->caps_logged = h->caps;
	b->host_failing = false;
	return true;
}

/*
 * An admin changed what the driver offers: drop the balloon, start anew.
 * START without capabilities makes the host drop the balloon; only once it
 * said so (or answered RESET: it already did) may the pages be freed. A
 * busy or failing host still holds them: try again on the next run.
 * Return: true when the balloon was dropped.
 */
static bool vmb_renegotiate(struct vmb_balloon *b)
{
	struct vmb_host *h = &b->host;

	if (!h->reset_required) {
		if (vmb_host_start(h, 0) != VMB_STATUS_SUCCESS &&
		    !h->reset_required)
			return false;
		h->reset_required = true;
	}
	vmb_pages_pop(b);
	return true;
}

/* ---- The goal ---------------------------------------------------------- */

/* Bound the host's target by what the guest can and may give. */
static void vmb_update_goal(struct vmb_balloon *b)
{
	unsigned long ram = totalram_pages();
	unsigned long size = vmb_balloon_size(b);
	unsigned long goal, cap, room, floor, avail;
	enum vmb_limit limit = VMB_LIMIT_NONE;
	u64 target = b->host.target;

	if (target != b->host_target) {
		trace_vmmemctl_target(target, size);
		b->quick_polls = VMB_QUICK_POLLS;
	}
	WRITE_ONCE(b->host_target, target);

	goal = min_t(u64, target, ram);
	if (goal < target)
		limit = VMB_LIMIT_RAM;

	cap = vmb_max_size_pages(ram);
	if (goal > cap) {
		goal = cap;
		limit = VMB_LIMIT_CAP;
	}

	if (goal > size) {
		if (vmb_holding_off(b)) {
			goal = size;
			limit = VMB_LIMIT_HOLDOFF;
		} else {
			avail = max_t(long, si_mem_available(), 0);
			floor = vmb_floor_pages(ram);
			room = avail > floor ? avail - floor : 0;
			room = min(room, vmb_zone_room());
			if (goal - size > room) {
				goal = size + room;
				limit = VMB_LIMIT_FLOOR;
			}
		}
	}

	if (!READ_ONCE(vmb_params.enabled) || !vmb_host_can_lock(&b->host)) {
		goal = 0;
		limit = VMB_LIMIT_DISABLED;
	}

	WRITE_ONCE(b->goal, goal);
	WRITE_ONCE(b->limited_by, limit);
}

/* ---- The work item ---------------------------------------------------- */

/**
 * vmb_lock() - the work item takes the balloon lock
 * @b: the balloon
 */
void vmb_lock(struct vmb_balloon *b)
{
	mutex_lock(&b->lock);
	b->lock_hold_since = ktime_get();
}

/**
 * vmb_unlock() - the work item drops the balloon lock
 * @b: the balloon
 *
 * Keeps the longest stretch the work item held it (debugfs) and traces
 * each one (vmmemctl_lock_hold).
 */
void vmb_unlock(struct vmb_balloon *b)
{
	u64 held = ktime_to_ns(ktime_sub(ktime_get(), b->lock_hold_since));

	if (held > b->lock_hold_max_ns)
		WRITE_ONCE(b->lock_hold_max_ns, held);
	mutex_unlock(&b->lock);
	trace_vmmemctl_lock_hold(held);
}

/* Ask the host for its target; a failure ends the period. */
static void vmb_poll_target(struct vmb_balloon *b)
{
	u32 status;

	status = vmb_host_get_target(&b->host, totalram_pages());
	if (status != VMB_STATUS_SUCCESS) {
		if (!b->host_failing)
			pr_info("host does not answer GET_TARGET (%s); retrying every second\n",
				vmb_status_name(status));
		b->host_failing = true;
		vmb_fail_period(b);
	} else if (b->host_failing) {
		pr_info("host answers again\n");
		b->host_failing = false;
	}
}

static void vmb_new_period(struct vmb_balloon *b, unsigned long now)
{
	unsigned long refused = vmb_refused_frames(b);

	/*
	 * Refused pages stay allocated while the balloon is still inflating,
	 * or the allocator would hand the same frames straight back. They go
	 * back once the goal is reached or when they grow too many.
	 */
	if (refused && (vmb_balloon_size(b) >= b->goal ||
			refused > vmb_refused_hold(totalram_pages())))
		vmb_refused_free(b);

	/* A rate that was the limit for a whole period without trouble grows. */
	if (b->period_saturated == &b->deflate && !b->period_failed)
		vmb_rate_grow(b->period_saturated);
	vmb_rate_period_end(b, now);
	b->period_saturated = NULL;

	b->period_end = now + VMB_PERIOD;
	b->period_done = 0;
	b->period_refused = 0;
	b->period_failed = false;
	b->huge_failed = false;

	/*
	 * Lock and unlock answers carry the target too, but only GET_TARGET
	 * tells the host the guest's RAM (a hot-add, say): once a period, even
	 * while the balloon moves.
	 */
	vmb_poll_target(b);
}

/*
 * Did the balloon change course while vmb_pages_alloc() had dropped the
 * lock? An unload, a reset or renegotiation, or a release under pressure
 * (hold-off) means the pages are not wanted now.
 */
static bool vmb_inflate_stale(struct vmb_balloon *b)
{
	return !b->running || b->host.reset_required ||
	       READ_ONCE(vmb_params.protocol_changed) || vmb_holding_off(b);
}

/*
 * Below its goal and slowed: that is what holds the balloon back now. Once
 * the balloon reaches the goal, the goal's own reason (vmb_update_goal())
 * stays.
 */
static void vmb_show_slowdown(struct vmb_balloon *b)
{
	if (b->inflate_slowed != VMB_LIMIT_NONE &&
	    vmb_balloon_size(b) < b->goal)
		WRITE_ONCE(b->limited_by, b->inflate_slowed);
}

/* Allocate and lock up to @frames, within the rate budget. */
static unsigned long vmb_inflate(struct vmb_balloon *b, unsigned long frames)
{
	unsigned long budget = vmb_rate_budget(&b->inflate), locked;
	enum vmb_page_size size = VMB_PAGE_4K;
	bool at_floor = false;
	unsigned int n;
	LIST_HEAD(list);

	if (b->period_done >= budget) {
		vmb_show_slowdown(b);
		return 0;
	}
	frames = min(frames, budget - b->period_done);
	if (vmb_host_huge(&b->host) && !b->huge_failed &&
	    frames >= vmb_frames(VMB_PAGE_2M))
		size = VMB_PAGE_2M;
	n = min_t(unsigned long, frames / vmb_frames(size),
		  vmb_pages_per_request(b, size));

	if (vmb_pages_alloc(b, &list, size, n, &at_floor) < n) {
		if (size == VMB_PAGE_2M) {
			b->huge_failed = true;
			at_floor = false;
		} else if (at_floor) {
			/* What the balloon holds now is all it may have. */
			vmb_fail_period(b);
		} else {
			vmb_rate_shrink(&b->inflate, b->period_done);
			b->inflate_slowed = VMB_LIMIT_ALLOC_FAIL;
			vmb_fail_period(b);
		}
	}
	if (vmb_inflate_stale(b)) {
		vmb_free_list(b, &list, size);
		return 0;
	}
	/* No 2 MiB page to be had is not a failure: go on with 4 KiB pages. */
	if (size == VMB_PAGE_2M && list_empty(&list))
		return vmb_inflate(b, frames);

	locked = vmb_pages_lock(b, &list, size) * vmb_frames(size);
	if (at_floor) {
		WRITE_ONCE(b->goal, vmb_balloon_size(b));
		WRITE_ONCE(b->limited_by, VMB_LIMIT_FLOOR);
	}
	vmb_show_slowdown(b);
	b->period_done += locked;
	if (b->period_done >= budget)
		b->period_saturated = &b->inflate;
	if (locked)
		trace_vmmemctl_inflate(locked, vmb_balloon_size(b), b->goal);
	return locked;
}

/* Unlock and free up to @frames, within the rate budget. */
static unsigned long vmb_deflate(struct vmb_balloon *b, unsigned long frames)
{
	unsigned long budget = vmb_rate_budget(&b->deflate), freed;

	if (b->period_done >= budget)
		return 0;
	freed = vmb_pages_deflate(b, min(frames, budget - b->period_done),
				  VMB_DEFLATE_TO_GOAL);
	b->period_done += freed;
	if (b->period_failed)
		vmb_rate_shrink(&b->deflate, b->period_done);
	else if (b->period_done >= budget)
		b->period_saturated = &b->deflate;
	if (freed)
		trace_vmmemctl_deflate(freed, vmb_balloon_size(b), b->goal);
	return freed;
}

/* One run of the work item. Return: delay before the next run. */
static unsigned long vmb_step(struct vmb_balloon *b)
{
	unsigned long now = jiffies, size, moved = 0, delay;
	struct vmb_host *h = &b->host;

	b->timer_runs++;
	/* Expire a hold-off even while nothing moves (see vmb_holding_off()). */
	vmb_holding_off(b);

	if (xchg(&vmb_params.protocol_changed, false)) {
		if (!vmb_renegotiate(b)) {
			WRITE_ONCE(vmb_params.protocol_changed, true);
			return VMB_PERIOD;
		}
		b->period_end = now;
	}

	if (time_after_eq(now, b->period_end)) {
		if (h->reset_required && !vmb_start_session(b)) {
			b->period_end = now + VMB_PERIOD;
			return VMB_PERIOD;
		}
		vmb_new_period(b, now);
	} else if (b->quick_poll_due && !h->reset_required) {
		/* (The pressure path may have met a RESET since.) */
		vmb_poll_target(b);
	}
	b->quick_poll_due = false;
	if (h->reset_required || b->period_failed)
		goto wait;

	vmb_update_goal(b);
	size = vmb_balloon_size(b);
	if (size < b->goal)
		moved = vmb_inflate(b, b->goal - size);
	else if (size > b->goal)
		moved = vmb_deflate(b, size - b->goal);

	if (moved) {
		b->quick_polls = VMB_QUICK_POLLS;
		if (!b->period_failed && vmb_balloon_size(b) != b->goal)
			return 0;
	}
wait:
	delay = time_after(b->period_end, now) ? b->period_end - now : 1;
	/*
	 * At the goal: ask again before the period ends, sooner soon after a
	 * change. Not while the rate budget or a failure holds the balloon
	 * back.
	 */
	if (!h->reset_required && !b->period_failed &&
	    vmb_balloon_size(b) == b->goal) {
		unsigned long poll = b->quick_polls ? VMB_QUICK_POLL :
						      VMB_IDLE_POLL;

		if (delay > poll) {
			if (b->quick_polls)
				b->quick_polls--;
			b->quick_poll_due = true;
			delay = poll;
		}
	}
	return delay;
}

static void vmb_work(struct work_struct *work)
{
	struct vmb_balloon *b = container_of(to_delayed_work(work),
					     struct vmb_balloon, work);
	unsigned long delay;

	/*
	 * One step (one batch) per run: the lock is free between batches, and
	 * while the batch is allocated, so the shrinker's trylock and the OOM
	 * notifier get in, and the worker yields before the next run.
	 */
	vmb_lock(b);
	delay = vmb_step(b);
	if (b->running)
		queue_delayed_work(system_freezable_wq, &b->work, delay);
	vmb_unlock(b);
	if (!delay)
		cond_resched();
}

/* ---- Load and unload -------------------------------------------------- */

static int __init vmb_init(void)
{
	struct vmb_balloon *b = &vmb_balloon;
	int ret;

	if (!hypervisor_is_type(X86_HYPER_VMWARE)) {
		pr_info("not running on VMware; not loading\n");
		return -ENODEV;
	}
	/*
	 * With encrypted guest memory (SEV, SEV-ES/SNP, TDX) the host reads
	 * neither the registers of the backdoor call nor the batch page.
	 */
	if (cc_platform_has(CC_ATTR_GUEST_MEM_ENCRYPT)) {
		pr_info("confidential guest (encrypted memory): the balloon backdoor cannot work; not loading\n");
		return -ENODEV;
	}

	ret = vmb_host_init(&b->host);
	if (ret)
		return ret;
	vmb_pages_init(b);

	ret = vmb_stats_init(b);
	if (ret)
		goto err_host;

	ret = vmb_pressure_init(b);
	if (ret)
		goto err_stats;

	INIT_DELAYED_WORK(&b->work, vmb_work);
	b->period_end = jiffies;
	WRITE_ONCE(b->running, true);
	vmb_params_fixup();
	queue_delayed_work(system_freezable_wq, &b->work, 0);

	pr_info("version " VMMEMCTL_VERSION " loaded\n");
	return 0;

err_stats:
	vmb_stats_exit();
err_host:
	vmb_host_exit(&b->host);
	return ret;
}
module_init(vmb_init);

/*
 * Unload: the host must let go of every page before the guest reuses it.
 * If it would not drop the whole balloon (vmb_host_drop_balloon()), its
 * session stands: unlock the pages batch by batch, as a deflate does, each
 * freed only once the host let it go.
 *
 * Return: true when the host holds none of the balloon's pages.
 */
static bool vmb_release_host(struct vmb_balloon *b)
{
	if (vmb_host_drop_balloon(&b->host))
		return true;
	while (vmb_balloon_size(b) &&
	       vmb_pages_deflate(b, vmb_balloon_size(b),
				 VMB_DEFLATE_UNDER_PRESSURE))
		cond_resched();
	return !vmb_balloon_size(b);
}

static void __exit vmb_exit(void)
{
	struct vmb_balloon *b = &vmb_balloon;
	unsigned long size;

	vmb_pressure_exit();

	mutex_lock(&b->lock);
	WRITE_ONCE(b->running, false);
	mutex_unlock(&b->lock);
	cancel_delayed_work_sync(&b->work);

	vmb_stats_exit();

	mutex_lock(&b->lock);
	size = vmb_balloon_size(b);
	if (!vmb_release_host(b))
		pr_warn("host did not acknowledge the unload; it may still count %lu pages\n",
			vmb_balloon_size(b));
	vmb_pages_pop(b);
	mutex_unlock(&b->lock);

	vmb_host_exit(&b->host);
	pr_info("unloaded; %lu MiB given back to the guest\n",
		size >> (20 - PAGE_SHIFT));
}
module_exit(vmb_exit);

MODULE_DESCRIPTION("VMware memory balloon driver (standalone, rate-limited, pressure-aware)");
MODULE_AUTHOR("vmmemctl developers");
MODULE_LICENSE("GPL");
MODULE_VERSION(VMMEMCTL_VERSION);
MODULE_ALIAS("dmi:*:svnVMware*:*");
