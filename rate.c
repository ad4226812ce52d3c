// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - VMware memory balloon driver: inflate and deflate rates.
 *
 * A rate is a budget of frames per period (a second). UINT_MAX is no
 * budget: the default, since the maximum defaults to VMB_RATE_UNLIMITED.
 * A failed allocation or host refusal halves the rate; so do the guest's
 * own signals of memory pressure at a period's end (pressure.c); quiet
 * periods let it grow back.
 */

#include <linux/kernel.h>
#include <linux/minmax.h>

#include "vmmemctl.h"
#include "vmmemctl_trace.h"

static unsigned int vmb_rate_ceiling(const struct vmb_rate *r)
{
	unsigned int max = READ_ONCE(r->bounds->max);

	return max == VMB_RATE_UNLIMITED ? UINT_MAX : max;
}

/**
 * vmb_rate_budget() - a rate's budget for the current period
 * @r: the rate
 *
 * Return: frames that may move in this period; UINT_MAX for no budget.
 */
unsigned int vmb_rate_budget(const struct vmb_rate *r)
{
	return clamp(r->cur, min(READ_ONCE(r->bounds->min),
				 vmb_rate_ceiling(r)),
		     vmb_rate_ceiling(r));
}

/**
 * vmb_rate_now() - a rate as debugfs shows it
 * @r: the rate
 *
 * Return: the current budget in frames per second, 0 when there is none.
 */
unsigned int vmb_rate_now(const struct vmb_rate *r)
{
	unsigned int rate = vmb_rate_budget(r);

	return rate == UINT_MAX ? 0 : rate;
}

/**
 * vmb_rate_grow() - double a rate, up to its ceiling
 * @r: the rate
 */
void vmb_rate_grow(struct vmb_rate *r)
{
	unsigned int rate = vmb_rate_budget(r), ceiling = vmb_rate_ceiling(r);

	r->cur = rate > ceiling / 2 ? ceiling : rate * 2;
}

/**
 * vmb_rate_shrink() - slow a rate down after trouble
 * @r: the rate
 * @done: frames moved in this period
 *
 * Halve the rate, or what moved in this period when that is less: from no
 * budget at all, halving UINT_MAX would not slow anything down.
 */
void vmb_rate_shrink(struct vmb_rate *r, unsigned long done)
{
	unsigned int min = READ_ONCE(r->bounds->min);
	unsigned long base = min_t(unsigned long, vmb_rate_budget(r),
				   max_t(unsigned long, done, min));

	r->cur = max_t(unsigned long, base / 2, min);
}

/*
 * Quiet periods in a row before a rate the guest's signals slowed grows
 * again: a workload allocating in bursts leaves single quiet seconds.
 */
#define VMB_QUIET_PERIODS	3

/**
 * vmb_rate_period_end() - the inflate rate at a period's end
 * @b: the balloon
 * @now: jiffies
 *
 * The inflate rate at a period's end. The guest reclaiming, or its own
 * allocations heading for the floor (vmb_guest_signals()), halve what
 * inflation achieved in the period, as a failed allocation does in
 * vmb_inflate(): the balloon does not race the guest for free pages. A
 * period without trouble lets the rate double back: when the budget bound
 * (saturated) or the balloon did not inflate. Inflating below the budget
 * without trouble means the budget no longer binds: it goes.
 */
void vmb_rate_period_end(struct vmb_balloon *b, unsigned long now)
{
	struct vmb_rate *r = &b->inflate;
	enum vmb_limit slow = vmb_guest_signals(b, now);
	unsigned int before = vmb_rate_budget(r);
	bool by_guest = b->inflate_slowed == VMB_LIMIT_RECLAIM ||
			b->inflate_slowed == VMB_LIMIT_NEAR_FLOOR;

	if (slow != VMB_LIMIT_NONE) {
		vmb_rate_shrink(r, b->signals.grew);
		b->inflate_slowed = slow;
		b->slowdowns++;
	} else if (!b->period_failed &&
		   (!by_guest || b->signals.quiet >= VMB_QUIET_PERIODS)) {
		if (b->period_saturated == r || !b->signals.grew)
			vmb_rate_grow(r);
		else
			r->cur = UINT_MAX;
	}
	if (vmb_rate_budget(r) == vmb_rate_ceiling(r))
		b->inflate_slowed = VMB_LIMIT_NONE;
	if (slow != VMB_LIMIT_NONE || vmb_rate_budget(r) != before)
		trace_vmmemctl_inflate_rate(vmb_rate_now(r), slow,
					    &b->signals);
}
