// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - VMware memory balloon driver: the policy.
 *
 * A delayed work item polls the host's target once a second. Each run
 * moves at most one batch of pages toward the goal (the host's target,
 * bounded by what the guest can give and what the admin allows) and runs
 * again at once while the per-second rate budget lasts.
 *
 * Inflating allocates pages without entering direct reclaim or touching
 * the emergency reserves, locks them with the host, and keeps them on
 * b->pages. Pages the host refuses go to b->refused until the period ends,
 * so the allocator cannot hand them straight back. Deflating unlocks pages
 * and frees them. On a RESET from the host every page is freed without
 * unlocking (the host already forgot them) and the session is restarted.
 *
 * Under memory pressure a shrinker and an OOM notifier give pages back, and
 * inflation holds off for a while afterwards.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/oom.h>
#include <linux/page-flags.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include <asm/hypervisor.h>

#include "backdoor.h"
#include "compat.h"
#include "vmmemctl.h"

#define CREATE_TRACE_POINTS
#include "vmmemctl_trace.h"

/* Length of a rate period, and the poll interval. */
#define VMM_PERIOD		HZ

/* Largest rate an admin may set, in 4 KiB pages per second (16 GiB/s). */
#define VMM_RATE_LIMIT		4194304U

/* Pages per run with the basic protocol (one hypercall each). */
#define VMM_BASIC_CHUNK		64

/* Frames given back per OOM notification. */
#define VMM_OOM_FRAMES		1024

/*
 * Inflation never enters direct reclaim, never dips into the emergency
 * reserves, and never warns. 4 KiB allocations may wake kswapd, so that
 * page cache is trimmed in the background for the host; 2 MiB allocations
 * do not, since they fall back to 4 KiB pages anyway.
 */
#define VMM_GFP_4K	((GFP_HIGHUSER | __GFP_NOWARN | __GFP_NOMEMALLOC | \
			  __GFP_NORETRY) & ~__GFP_DIRECT_RECLAIM)
#define VMM_GFP_2M	(VMM_GFP_4K & ~__GFP_KSWAPD_RECLAIM)

static struct vmm_balloon vmm_balloon = {
	.lock		= __MUTEX_INITIALIZER(vmm_balloon.lock),
	.pages		= { LIST_HEAD_INIT(vmm_balloon.pages[VMM_4K]),
			    LIST_HEAD_INIT(vmm_balloon.pages[VMM_2M]) },
	.refused	= { LIST_HEAD_INIT(vmm_balloon.refused[VMM_4K]),
			    LIST_HEAD_INIT(vmm_balloon.refused[VMM_2M]) },
	.inflate	= { .cur = 65536, .min = 512, .max = 65536 },
	.deflate	= { .cur = 131072, .min = 512, .max = 131072 },
};

/* ---- Module parameters ------------------------------------------------ */

static unsigned int refused_max = 16;
static bool batching = true;
static bool huge_pages = true;
static bool enabled = true;
static bool pressure_release = true;
static unsigned int pressure_holdoff = 10;
static unsigned int min_free_mb;

/* max_size: a number of 4 KiB pages, or a percentage of RAM ("25%"). */
static struct {
	unsigned long pages;
	unsigned int percent;
	bool is_percent;
} max_size = { .percent = 100, .is_percent = true };

static int vmm_param_uint(const char *val, unsigned int lo, unsigned int hi,
			  const char *name, const char *unit,
			  unsigned int *out)
{
	unsigned int v;

	if (kstrtouint(val, 0, &v) || v < lo || v > hi) {
		pr_err("%s: expects %s from %u to %u; value unchanged\n",
		       name, unit, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int vmm_set_rate_min(const char *val, const struct kernel_param *kp)
{
	struct vmm_rate *r = container_of((unsigned int *)kp->arg,
					  struct vmm_rate, min);
	unsigned int v;
	int ret;

	ret = vmm_param_uint(val, 1, VMM_RATE_LIMIT, kp->name,
			     "pages per second", &v);
	if (ret)
		return ret;
	if (v > READ_ONCE(r->max)) {
		pr_err("%s: %u is above the maximum (%u); value unchanged\n",
		       kp->name, v, READ_ONCE(r->max));
		return -EINVAL;
	}
	WRITE_ONCE(r->min, v);
	return 0;
}

static int vmm_set_rate_max(const char *val, const struct kernel_param *kp)
{
	struct vmm_rate *r = container_of((unsigned int *)kp->arg,
					  struct vmm_rate, max);
	unsigned int v;
	int ret;

	ret = vmm_param_uint(val, 1, VMM_RATE_LIMIT, kp->name,
			     "pages per second", &v);
	if (ret)
		return ret;
	if (v < READ_ONCE(r->min)) {
		pr_err("%s: %u is below the minimum (%u); value unchanged\n",
		       kp->name, v, READ_ONCE(r->min));
		return -EINVAL;
	}
	WRITE_ONCE(r->max, v);
	return 0;
}

static const struct kernel_param_ops vmm_rate_min_ops = {
	.set = vmm_set_rate_min,
	.get = param_get_uint,
};

static const struct kernel_param_ops vmm_rate_max_ops = {
	.set = vmm_set_rate_max,
	.get = param_get_uint,
};

module_param_cb(inflate_rate_min, &vmm_rate_min_ops,
		&vmm_balloon.inflate.min, 0644);
MODULE_PARM_DESC(inflate_rate_min,
		 "Slowest inflate rate, 4 KiB pages per second (1-4194304, default 512)");
module_param_cb(inflate_rate_max, &vmm_rate_max_ops,
		&vmm_balloon.inflate.max, 0644);
MODULE_PARM_DESC(inflate_rate_max,
		 "Fastest inflate rate, 4 KiB pages per second (1-4194304, default 65536)");
module_param_cb(deflate_rate_min, &vmm_rate_min_ops,
		&vmm_balloon.deflate.min, 0644);
MODULE_PARM_DESC(deflate_rate_min,
		 "Slowest deflate rate, 4 KiB pages per second (1-4194304, default 512)");
module_param_cb(deflate_rate_max, &vmm_rate_max_ops,
		&vmm_balloon.deflate.max, 0644);
MODULE_PARM_DESC(deflate_rate_max,
		 "Fastest deflate rate, 4 KiB pages per second (1-4194304, default 131072)");

/* A whole number within bounds; anything else is refused, value kept. */
struct vmm_uint_param {
	unsigned int *val;
	unsigned int lo;
	unsigned int hi;
	const char *unit;
};

static int vmm_set_uint(const char *val, const struct kernel_param *kp)
{
	const struct vmm_uint_param *p = kp->arg;
	unsigned int v;
	int ret;

	ret = vmm_param_uint(val, p->lo, p->hi, kp->name, p->unit, &v);
	if (!ret)
		WRITE_ONCE(*p->val, v);
	return ret;
}

static int vmm_get_uint(char *buf, const struct kernel_param *kp)
{
	const struct vmm_uint_param *p = kp->arg;

	return sysfs_emit(buf, "%u\n", READ_ONCE(*p->val));
}

static const struct kernel_param_ops vmm_uint_ops = {
	.set = vmm_set_uint,
	.get = vmm_get_uint,
};

static const struct vmm_uint_param vmm_refused_max_param = {
	&refused_max, 1, 4096, "a count of pages"
};
module_param_cb(refused_max, &vmm_uint_ops, (void *)&vmm_refused_max_param,
		0644);
MODULE_PARM_DESC(refused_max,
		 "Refused pages after which inflation pauses until the next second (1-4096, default 16)");

static const struct vmm_uint_param vmm_holdoff_param = {
	&pressure_holdoff, 0, 3600, "seconds"
};
module_param_cb(pressure_holdoff, &vmm_uint_ops, (void *)&vmm_holdoff_param,
		0644);
MODULE_PARM_DESC(pressure_holdoff,
		 "Seconds without inflation after memory was given back under pressure (0-3600, default 10)");

static const struct vmm_uint_param vmm_min_free_param = {
	&min_free_mb, 0, 1U << 30, "MiB (0 for automatic)"
};
module_param_cb(min_free_mb, &vmm_uint_ops, (void *)&vmm_min_free_param,
		0644);
MODULE_PARM_DESC(min_free_mb,
		 "Available memory (MiB) the balloon never takes; 0 = automatic, RAM/32 within 8-512 MiB (default 0)");

static int vmm_set_max_size(const char *val, const struct kernel_param *kp)
{
	char buf[24];
	size_t len;
	unsigned long v;

	strscpy(buf, val, sizeof(buf));
	len = strlen(strim(buf));
	if (len && buf[len - 1] == '%') {
		buf[len - 1] = '\0';
		if (kstrtoul(buf, 10, &v) || v > 100)
			goto bad;
		WRITE_ONCE(max_size.percent, v);
		WRITE_ONCE(max_size.is_percent, true);
		return 0;
	}
	if (kstrtoul(buf, 0, &v))
		goto bad;
	WRITE_ONCE(max_size.pages, v);
	WRITE_ONCE(max_size.is_percent, false);
	return 0;
bad:
	pr_err("%s: expects 4 KiB pages or a percentage of RAM (0%%-100%%); value unchanged\n",
	       kp->name);
	return -EINVAL;
}

static int vmm_get_max_size(char *buf, const struct kernel_param *kp)
{
	if (max_size.is_percent)
		return sysfs_emit(buf, "%u%%\n", max_size.percent);
	return sysfs_emit(buf, "%lu\n", max_size.pages);
}

static const struct kernel_param_ops vmm_max_size_ops = {
	.set = vmm_set_max_size,
	.get = vmm_get_max_size,
};

module_param_cb(max_size, &vmm_max_size_ops, &max_size, 0644);
MODULE_PARM_DESC(max_size,
		 "Largest balloon: 4 KiB pages, or a percentage of RAM such as 25% (default 100%)");

/* Protocol switches: a change restarts the session with the host. */
static int vmm_set_protocol_switch(const char *val,
				   const struct kernel_param *kp)
{
	bool old = *(bool *)kp->arg;
	int ret;

	ret = param_set_bool(val, kp);
	if (ret) {
		pr_err("%s: expects y or n; value unchanged\n", kp->name);
		return ret;
	}
	if (old != *(bool *)kp->arg)
		WRITE_ONCE(vmm_balloon.renegotiate, true);
	return 0;
}

static const struct kernel_param_ops vmm_protocol_switch_ops = {
	.set = vmm_set_protocol_switch,
	.get = param_get_bool,
};

module_param_cb(batching, &vmm_protocol_switch_ops, &batching, 0644);
MODULE_PARM_DESC(batching,
		 "Use batched lock/unlock when the host offers it (default y); a change restarts the session");
module_param_cb(huge_pages, &vmm_protocol_switch_ops, &huge_pages, 0644);
MODULE_PARM_DESC(huge_pages,
		 "Balloon 2 MiB pages when the host offers them (default y); a change restarts the session");

static int vmm_set_bool(const char *val, const struct kernel_param *kp)
{
	int ret = param_set_bool(val, kp);

	if (ret)
		pr_err("%s: expects y or n; value unchanged\n", kp->name);
	return ret;
}

static const struct kernel_param_ops vmm_bool_ops = {
	.set = vmm_set_bool,
	.get = param_get_bool,
};

module_param_cb(enabled, &vmm_bool_ops, &enabled, 0644);
MODULE_PARM_DESC(enabled,
		 "Follow the host's target (default y); n deflates the balloon to zero and keeps it there");
module_param_cb(pressure_release, &vmm_bool_ops, &pressure_release, 0644);
MODULE_PARM_DESC(pressure_release,
		 "Give memory back when the guest runs short, and before an OOM kill (default y)");

/* ---- Helpers ----------------------------------------------------------- */

static const char * const vmm_limit_names[VMM_LIMIT_NR] = {
	[VMM_LIMIT_NONE]	= "none",
	[VMM_LIMIT_RAM]		= "ram",
	[VMM_LIMIT_CAP]		= "max_size",
	[VMM_LIMIT_FLOOR]	= "min_free",
	[VMM_LIMIT_HOLDOFF]	= "holdoff",
	[VMM_LIMIT_DISABLED]	= "disabled",
};

/**
 * vmm_limit_name() - printable name of a goal limit
 * @limit: the limit
 *
 * Return: the name shown in debugfs and sysfs.
 */
const char *vmm_limit_name(enum vmm_limit limit)
{
	return limit < VMM_LIMIT_NR ? vmm_limit_names[limit] : "?";
}

static unsigned int vmm_rate(struct vmm_rate *r)
{
	return clamp(r->cur, READ_ONCE(r->min), READ_ONCE(r->max));
}

static void vmm_rate_grow(struct vmm_rate *r)
{
	r->cur = min(vmm_rate(r) * 2, READ_ONCE(r->max));
}

static void vmm_rate_shrink(struct vmm_rate *r)
{
	r->cur = max(vmm_rate(r) / 2, READ_ONCE(r->min));
}

static unsigned int vmm_order(enum vmm_size size)
{
	return size == VMM_2M ? VMM_2M_ORDER : 0;
}

static bool vmm_use_batched(struct vmm_balloon *b)
{
	return vmm_host_can(&b->host, VMM_CAP_BATCHED);
}

static bool vmm_use_huge(struct vmm_balloon *b)
{
	return vmm_host_can(&b->host, VMM_CAP_BATCHED | VMM_CAP_BATCHED_2M);
}

static bool vmm_can_lock(struct vmm_balloon *b)
{
	return vmm_host_can(&b->host, VMM_CAP_BASIC) || vmm_use_batched(b);
}

static unsigned int vmm_chunk(struct vmm_balloon *b)
{
	return vmm_use_batched(b) ? VMM_BATCH_MAX : VMM_BASIC_CHUNK;
}

static unsigned long vmm_floor_pages(unsigned long ram)
{
	unsigned long mb = READ_ONCE(min_free_mb);

	if (mb)
		return mb << (20 - PAGE_SHIFT);
	return clamp(ram / 32, 8UL << (20 - PAGE_SHIFT),
		     512UL << (20 - PAGE_SHIFT));
}

/* Most refused frames kept allocated across periods: RAM/16, 64 MiB at most. */
static unsigned long vmm_refused_hold(unsigned long ram)
{
	return min(ram / 16, 64UL << (20 - PAGE_SHIFT));
}

static unsigned long vmm_cap_pages(unsigned long ram)
{
	if (READ_ONCE(max_size.is_percent))
		return ram / 100 * READ_ONCE(max_size.percent);
	return READ_ONCE(max_size.pages);
}

/* Mark a ballooned page so that kdump and hibernation skip its frames. */
static void vmm_mark_offline(struct page *page, enum vmm_size size, bool on)
{
	unsigned long i;

	for (i = 0; i < vmm_frames(size); i++) {
		if (on)
			__SetPageOffline(page + i);
		else
			__ClearPageOffline(page + i);
	}
}

static struct page *vmm_alloc(enum vmm_size size)
{
	return alloc_pages(size == VMM_2M ? VMM_GFP_2M : VMM_GFP_4K,
			   vmm_order(size));
}

static void vmm_free(struct vmm_balloon *b, struct page *page,
		     enum vmm_size size)
{
	__free_pages(page, vmm_order(size));
	b->stat[size].free++;
}

static void vmm_free_list(struct vmm_balloon *b, struct list_head *list,
			  enum vmm_size size)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, list, lru) {
		list_del(&page->lru);
		vmm_free(b, page, size);
	}
}

/* A page the host locked: it is now part of the balloon. */
static void vmm_add(struct vmm_balloon *b, struct page *page,
		    enum vmm_size size)
{
	vmm_mark_offline(page, size, true);
	list_add(&page->lru, &b->pages[size]);
	b->nr_pages[size]++;
	vmm_account_balloon(vmm_frames(size));
}

/* Take a ballooned page off the balloon's list (it stays locked). */
static struct page *vmm_take(struct vmm_balloon *b, enum vmm_size size)
{
	struct page *page;

	page = list_first_entry_or_null(&b->pages[size], struct page, lru);
	if (page) {
		list_del(&page->lru);
		b->nr_pages[size]--;
	}
	return page;
}

/* Put back a page that is still locked; at the tail, so it is tried last. */
static void vmm_put_back(struct vmm_balloon *b, struct page *page,
			 enum vmm_size size)
{
	list_add_tail(&page->lru, &b->pages[size]);
	b->nr_pages[size]++;
}

/* A page the host no longer holds: unmark it and give it to the guest. */
static void vmm_release(struct vmm_balloon *b, struct page *page,
			enum vmm_size size)
{
	vmm_mark_offline(page, size, false);
	vmm_account_balloon(-(long)vmm_frames(size));
	vmm_free(b, page, size);
}

static void vmm_refuse(struct vmm_balloon *b, struct page *page,
		       enum vmm_size size)
{
	list_add(&page->lru, &b->refused[size]);
	b->nr_refused[size]++;
	b->stat[size].refused++;
}

static unsigned long vmm_refused_frames(struct vmm_balloon *b)
{
	return b->nr_refused[VMM_4K] +
	       b->nr_refused[VMM_2M] * vmm_frames(VMM_2M);
}

static void vmm_free_refused(struct vmm_balloon *b)
{
	enum vmm_size size;

	for (size = 0; size < VMM_NR_SIZES; size++) {
		vmm_free_list(b, &b->refused[size], size);
		b->nr_refused[size] = 0;
	}
}

/*
 * Free every page the balloon holds without unlocking it: the host has
 * forgotten them (RESET) or is told to (START on unload).
 */
static void vmm_pop(struct vmm_balloon *b)
{
	unsigned long popped = vmm_balloon_size(b);
	enum vmm_size size;
	struct page *page;

	for (size = 0; size < VMM_NR_SIZES; size++) {
		while ((page = vmm_take(b, size))) {
			vmm_release(b, page, size);
			cond_resched();
		}
	}
	vmm_free_refused(b);
	if (popped)
		trace_vmmemctl_reset(popped);
}

static bool vmm_lock_refusal(u32 status)
{
	return status >= VMM_ERROR_PPN_INVALID &&
	       status <= VMM_ERROR_PPN_NOTNEEDED;
}

/* Stop the period after a failed call or after too many refusals. */
static void vmm_fail_period(struct vmm_balloon *b)
{
	b->period_failed = true;
}

static void vmm_note_refusal(struct vmm_balloon *b, u32 status)
{
	if (status == VMM_ERROR_PPN_NOTNEEDED ||
	    ++b->period_refused >= READ_ONCE(refused_max))
		vmm_fail_period(b);
}

/*
 * Lock the pages on @list with the host. Locked pages join the balloon,
 * refused ones go to the refused list; when a call fails, the pages it
 * carried and all that follow are freed. @list is empty on return.
 *
 * Return: the number of pages locked.
 */
static unsigned long vmm_lock_list(struct vmm_balloon *b,
				   struct list_head *list, enum vmm_size size)
{
	struct vmm_host *h = &b->host;
	struct page *page, *next;
	unsigned long locked = 0;
	unsigned int i, n;
	u32 status;

	if (!vmm_use_batched(b)) {
		list_for_each_entry_safe(page, next, list, lru) {
			status = vmm_hv_lock(h, page_to_pfn(page), true);
			if (status != VMM_STATUS_SUCCESS &&
			    !vmm_lock_refusal(status)) {
				vmm_fail_period(b);
				break;
			}
			list_del(&page->lru);
			if (status == VMM_STATUS_SUCCESS) {
				vmm_add(b, page, size);
				locked++;
			} else {
				vmm_refuse(b, page, size);
				vmm_note_refusal(b, status);
			}
		}
		vmm_free_list(b, list, size);
		return locked;
	}

	while (!list_empty(list)) {
		n = 0;
		list_for_each_entry(page, list, lru) {
			vmm_batch_set(h, n, page_to_pfn(page));
			if (++n == VMM_BATCH_MAX)
				break;
		}
		status = vmm_hv_batch(h, n, true, size == VMM_2M);
		if (status != VMM_STATUS_SUCCESS) {
			vmm_fail_period(b);
			break;
		}
		i = 0;
		list_for_each_entry_safe(page, next, list, lru) {
			if (i == n)
				break;
			status = vmm_batch_status(h, i++);
			list_del(&page->lru);
			if (status == VMM_STATUS_SUCCESS) {
				vmm_add(b, page, size);
				locked++;
			} else {
				vmm_refuse(b, page, size);
				vmm_note_refusal(b, status);
			}
		}
	}
	vmm_free_list(b, list, size);
	return locked;
}

/*
 * Unlock up to @n pages of @size and free those the host let go. Pages the
 * host keeps stay ballooned; a failed call leaves all its pages ballooned.
 *
 * Return: the number of pages freed.
 */
static unsigned long vmm_unlock_pages(struct vmm_balloon *b,
				      enum vmm_size size, unsigned int n)
{
	struct vmm_host *h = &b->host;
	struct page *pages[VMM_BASIC_CHUNK];
	struct page *page, *next;
	unsigned long freed = 0;
	unsigned int i, taken;
	LIST_HEAD(list);
	u32 status;

	if (!vmm_use_batched(b)) {
		n = min_t(unsigned int, n, ARRAY_SIZE(pages));
		for (taken = 0; taken < n; taken++) {
			pages[taken] = vmm_take(b, size);
			if (!pages[taken])
				break;
		}
		for (i = 0; i < taken; i++) {
			page = pages[i];
			status = vmm_hv_lock(h, page_to_pfn(page), false);
			if (status == VMM_STATUS_SUCCESS) {
				vmm_release(b, page, size);
				freed++;
				continue;
			}
			vmm_put_back(b, page, size);
			if (vmm_lock_refusal(status)) {
				b->stat[size].unlock_fail++;
				continue;
			}
			vmm_fail_period(b);
			while (++i < taken)
				vmm_put_back(b, pages[i], size);
		}
		return freed;
	}

	n = min_t(unsigned int, n, VMM_BATCH_MAX);
	for (taken = 0; taken < n; taken++) {
		page = vmm_take(b, size);
		if (!page)
			break;
		vmm_batch_set(h, taken, page_to_pfn(page));
		list_add_tail(&page->lru, &list);
	}
	if (!taken)
		return 0;

	status = vmm_hv_batch(h, taken, false, size == VMM_2M);
	i = 0;
	list_for_each_entry_safe(page, next, &list, lru) {
		list_del(&page->lru);
		if (status == VMM_STATUS_SUCCESS &&
		    vmm_batch_status(h, i++) == VMM_STATUS_SUCCESS) {
			vmm_release(b, page, size);
			freed++;
			continue;
		}
		vmm_put_back(b, page, size);
		if (status == VMM_STATUS_SUCCESS)
			b->stat[size].unlock_fail++;
	}
	if (status != VMM_STATUS_SUCCESS || freed < taken)
		vmm_fail_period(b);
	return freed;
}

/*
 * Shrink the balloon by less than a 2 MiB page when it holds no 4 KiB
 * pages: unlock one 2 MiB page, free @frames of it, and lock the rest
 * again as 4 KiB pages.
 *
 * Return: frames freed.
 */
static unsigned long vmm_split_huge(struct vmm_balloon *b,
				    unsigned long frames)
{
	struct vmm_host *h = &b->host;
	struct page *page;
	unsigned long i;
	LIST_HEAD(rest);
	u32 status;

	page = vmm_take(b, VMM_2M);
	if (!page)
		return 0;
	vmm_batch_set(h, 0, page_to_pfn(page));
	status = vmm_hv_batch(h, 1, false, true);
	if (status != VMM_STATUS_SUCCESS ||
	    vmm_batch_status(h, 0) != VMM_STATUS_SUCCESS) {
		vmm_put_back(b, page, VMM_2M);
		if (status == VMM_STATUS_SUCCESS)
			b->stat[VMM_2M].unlock_fail++;
		vmm_fail_period(b);
		return 0;
	}

	vmm_mark_offline(page, VMM_2M, false);
	vmm_account_balloon(-(long)vmm_frames(VMM_2M));
	b->stat[VMM_2M].free++;
	split_page(page, VMM_2M_ORDER);
	b->stat[VMM_4K].alloc += vmm_frames(VMM_2M);
	for (i = 0; i < vmm_frames(VMM_2M); i++) {
		if (i < frames)
			vmm_free(b, page + i, VMM_4K);
		else
			list_add_tail(&page[i].lru, &rest);
	}
	vmm_lock_list(b, &rest, VMM_4K);
	return frames;
}

/*
 * Give back up to @frames frames in one step. Under @pressure a 2 MiB page
 * is given back whole rather than split.
 *
 * Return: frames freed.
 */
static unsigned long vmm_deflate_step(struct vmm_balloon *b,
				      unsigned long frames, bool pressure)
{
	unsigned long huge = vmm_frames(VMM_2M);

	if (!frames)
		return 0;
	if (b->nr_pages[VMM_2M] && (frames >= huge || pressure ||
				    !b->nr_pages[VMM_4K])) {
		if (pressure)
			return vmm_unlock_pages(b, VMM_2M,
						DIV_ROUND_UP(frames, huge)) *
			       huge;
		if (frames >= huge)
			return vmm_unlock_pages(b, VMM_2M, frames / huge) *
			       huge;
		if (vmm_use_huge(b))
			return vmm_split_huge(b, frames);
	}
	return vmm_unlock_pages(b, VMM_4K, min(frames, vmm_chunk(b) + 0UL));
}

/*
 * Give memory back to a guest that needs it (reclaim or OOM), ignoring the
 * rate limits, and hold off inflation for a while.
 *
 * Return: frames freed.
 */
static unsigned long vmm_give_back(struct vmm_balloon *b,
				   unsigned long frames)
{
	unsigned long freed, step;
	bool failed = b->period_failed;

	/* Refused pages are not locked: they go first, without a hypercall. */
	freed = vmm_refused_frames(b);
	vmm_free_refused(b);

	while (!b->host.reset_required && vmm_can_lock(b) &&
	       freed < frames && vmm_balloon_size(b)) {
		step = vmm_deflate_step(b, frames - freed, true);
		if (!step)
			break;
		freed += step;
	}
	b->period_failed = failed;
	if (freed) {
		b->holdoff_until = jiffies +
				   READ_ONCE(pressure_holdoff) * HZ;
		trace_vmmemctl_pressure(freed, vmm_balloon_size(b));
	}
	return freed;
}

/* ---- The session with the host ------------------------------------- */

static u32 vmm_offered_caps(void)
{
	u32 caps = VMM_CAP_BASIC;

	if (IS_ENABLED(CONFIG_64BIT))
		caps |= VMM_CAP_TARGET_64;
	if (READ_ONCE(batching)) {
		caps |= VMM_CAP_BATCHED;
		if (READ_ONCE(huge_pages))
			caps |= VMM_CAP_BATCHED_2M;
	}
	return caps;
}

static const char *vmm_protocol_name(struct vmm_balloon *b)
{
	if (vmm_use_huge(b))
		return "batched with 2 MiB pages";
	if (vmm_use_batched(b))
		return "batched";
	if (vmm_host_can(&b->host, VMM_CAP_BASIC))
		return "basic";
	return "none usable";
}

/*
 * (Re)start the session: give back whatever the host forgot, then START
 * and GUEST_ID.
 *
 * Return: true when the session is open.
 */
static bool vmm_start_session(struct vmm_balloon *b)
{
	struct vmm_host *h = &b->host;
	unsigned long size = vmm_balloon_size(b);
	u32 status;

	if (size) {
		b->resets++;
		pr_info_ratelimited("host reset the balloon; %lu pages returned to the guest\n",
				    size);
	}
	vmm_pop(b);

	status = vmm_hv_start(h, vmm_offered_caps());
	if (status != VMM_STATUS_SUCCESS) {
		if (!b->host_failing)
			pr_info("host does not answer START (%s); retrying every second\n",
				vmm_status_name(status));
		b->host_failing = true;
		return false;
	}
	vmm_hv_guest_id(h);
	if (h->reset_required)
		return false;

	if (b->host_failing || b->caps_logged != h->caps)
		pr_info("session started: %s protocol, capabilities %#x%s\n",
			vmm_protocol_name(b), h->caps,
			vmm_host_can(h, VMM_CAP_TARGET_64) ?
			", 64-bit target" : "");
	b->caps_logged = h->caps;
	b->host_failing = false;
	return true;
}

/* ---- The work item ------------------------------------------------- */

/* Bound the host's target by what the guest can and may give. */
static void vmm_update_goal(struct vmm_balloon *b)
{
	unsigned long ram = totalram_pages();
	unsigned long size = vmm_balloon_size(b);
	unsigned long goal, cap, room, floor, avail;
	enum vmm_limit limit = VMM_LIMIT_NONE;
	u64 target = b->host.target;

	if (target != b->host_target)
		trace_vmmemctl_target(target, size);
	b->host_target = target;

	goal = min_t(u64, target, ram);
	if (goal < target)
		limit = VMM_LIMIT_RAM;

	cap = vmm_cap_pages(ram);
	if (goal > cap) {
		goal = cap;
		limit = VMM_LIMIT_CAP;
	}

	if (goal > size) {
		if (time_before(jiffies, b->holdoff_until)) {
			goal = size;
			limit = VMM_LIMIT_HOLDOFF;
		} else {
			avail = max_t(long, si_mem_available(), 0);
			floor = vmm_floor_pages(ram);
			room = avail > floor ? avail - floor : 0;
			if (goal - size > room) {
				goal = size + room;
				limit = VMM_LIMIT_FLOOR;
			}
		}
	}

	if (!READ_ONCE(enabled)) {
		goal = 0;
		limit = VMM_LIMIT_DISABLED;
	}
	if (!vmm_can_lock(b)) {
		goal = 0;
		limit = VMM_LIMIT_DISABLED;
	}

	WRITE_ONCE(b->goal, goal);
	WRITE_ONCE(b->limited_by, limit);
}

static void vmm_new_period(struct vmm_balloon *b, unsigned long now)
{
	unsigned long refused = vmm_refused_frames(b);
	u32 status;

	/*
	 * Refused pages stay allocated while the balloon is still inflating,
	 * or the allocator would hand the same frames straight back. They go
	 * back once the goal is reached or when they grow too many.
	 */
	if (refused && (vmm_balloon_size(b) >= b->goal ||
			refused > vmm_refused_hold(totalram_pages())))
		vmm_free_refused(b);

	/* A rate that was the limit for a whole period without trouble grows. */
	if (b->period_saturated && !b->period_failed)
		vmm_rate_grow(b->period_saturated);
	b->period_saturated = NULL;

	b->period_end = now + VMM_PERIOD;
	b->period_done = 0;
	b->period_refused = 0;
	b->period_failed = false;
	b->huge_failed = false;

	/*
	 * Every lock and unlock answer carries the target: a balloon still
	 * on its way needs no GET_TARGET to see it. One at rest polls.
	 */
	if (b->host.target_fresh && vmm_balloon_size(b) != b->goal) {
		b->host.target_fresh = false;
		return;
	}
	b->host.target_fresh = false;
	status = vmm_hv_get_target(&b->host, totalram_pages());
	if (status != VMM_STATUS_SUCCESS) {
		if (!b->host_failing)
			pr_info("host does not answer GET_TARGET (%s); retrying every second\n",
				vmm_status_name(status));
		b->host_failing = true;
		vmm_fail_period(b);
	} else if (b->host_failing) {
		pr_info("host answers again\n");
		b->host_failing = false;
	}
}

/* Inflate by up to @frames, within the rate budget. Return: frames moved. */
static unsigned long vmm_inflate(struct vmm_balloon *b, unsigned long frames)
{
	unsigned long budget = vmm_rate(&b->inflate), locked, n, i;
	enum vmm_size size = VMM_4K;
	struct page *page;
	LIST_HEAD(list);

	if (b->period_done >= budget)
		return 0;
	frames = min(frames, budget - b->period_done);
	if (vmm_use_huge(b) && !b->huge_failed && frames >= vmm_frames(VMM_2M))
		size = VMM_2M;
	n = min_t(unsigned long, frames / vmm_frames(size), vmm_chunk(b));

	for (i = 0; i < n; i++) {
		page = vmm_alloc(size);
		if (!page) {
			b->stat[size].alloc_fail++;
			if (size == VMM_2M) {
				b->huge_failed = true;
			} else {
				vmm_rate_shrink(&b->inflate);
				vmm_fail_period(b);
			}
			break;
		}
		b->stat[size].alloc++;
		list_add_tail(&page->lru, &list);
	}
	/* No 2 MiB page to be had is not a failure: go on with 4 KiB pages. */
	if (size == VMM_2M && list_empty(&list))
		return vmm_inflate(b, frames);

	locked = vmm_lock_list(b, &list, size) * vmm_frames(size);
	b->period_done += locked;
	if (b->period_done >= budget)
		b->period_saturated = &b->inflate;
	if (locked)
		trace_vmmemctl_inflate(locked, vmm_balloon_size(b), b->goal);
	return locked;
}

/* Deflate by up to @frames, within the rate budget. Return: frames moved. */
static unsigned long vmm_deflate(struct vmm_balloon *b, unsigned long frames)
{
	unsigned long budget = vmm_rate(&b->deflate), freed;

	if (b->period_done >= budget)
		return 0;
	freed = vmm_deflate_step(b, min(frames, budget - b->period_done),
				 false);
	b->period_done += freed;
	if (b->period_failed)
		vmm_rate_shrink(&b->deflate);
	else if (b->period_done >= budget)
		b->period_saturated = &b->deflate;
	if (freed)
		trace_vmmemctl_deflate(freed, vmm_balloon_size(b), b->goal);
	return freed;
}

/* One run of the work item. Return: delay before the next run. */
static unsigned long vmm_step(struct vmm_balloon *b)
{
	unsigned long now = jiffies, size, moved = 0;
	struct vmm_host *h = &b->host;

	b->timer_runs++;

	if (READ_ONCE(b->renegotiate)) {
		WRITE_ONCE(b->renegotiate, false);
		if (!h->reset_required) {
			/* The host drops the balloon; then start anew. */
			vmm_hv_start(h, 0);
			h->reset_required = true;
		}
		vmm_pop(b);
		b->period_end = now;
	}

	if (time_after_eq(now, b->period_end)) {
		if (h->reset_required && !vmm_start_session(b)) {
			b->period_end = now + VMM_PERIOD;
			return VMM_PERIOD;
		}
		vmm_new_period(b, now);
	}
	if (h->reset_required || b->period_failed)
		goto wait;

	vmm_update_goal(b);
	size = vmm_balloon_size(b);
	if (size < b->goal)
		moved = vmm_inflate(b, b->goal - size);
	else if (size > b->goal)
		moved = vmm_deflate(b, size - b->goal);

	if (moved && !b->period_failed && vmm_balloon_size(b) != b->goal)
		return 0;
wait:
	return time_after(b->period_end, now) ? b->period_end - now : 1;
}

static void vmm_work(struct work_struct *work)
{
	struct vmm_balloon *b = container_of(to_delayed_work(work),
					     struct vmm_balloon, work);
	unsigned long delay;

	mutex_lock(&b->lock);
	delay = vmm_step(b);
	if (b->running)
		queue_delayed_work(system_freezable_wq, &b->work, delay);
	mutex_unlock(&b->lock);
}

/* ---- Memory pressure --------------------------------------------------- */

static unsigned long vmm_shrink_count(struct shrinker *s,
				      struct shrink_control *sc)
{
	struct vmm_balloon *b = &vmm_balloon;
	long avail;

	if (!READ_ONCE(pressure_release) || !READ_ONCE(b->running))
		return 0;
	/*
	 * Only when the guest is short: inflation stops at the floor, so
	 * reclaim that ordinary page cache churn causes does not deflate the
	 * balloon. Gating at half the floor left nearly all the work to the
	 * OOM notifier (30 near-OOMs for a 60% allocation in a 256 MiB
	 * guest); at the floor the shrinker did it all, as fast.
	 */
	avail = si_mem_available();
	if (avail > 0 && avail >= vmm_floor_pages(totalram_pages()))
		return 0;
	return vmm_balloon_size(b);
}

static unsigned long vmm_shrink_scan(struct shrinker *s,
				     struct shrink_control *sc)
{
	struct vmm_balloon *b = &vmm_balloon;
	unsigned long freed;

	/* Never wait here: the work item may hold the lock. */
	if (!mutex_trylock(&b->lock))
		return SHRINK_STOP;
	freed = vmm_give_back(b, sc->nr_to_scan);
	if (freed) {
		b->shrink_calls++;
		b->shrink_frames += freed;
	}
	mutex_unlock(&b->lock);
	return freed ? freed : SHRINK_STOP;
}

static int vmm_oom_notify(struct notifier_block *nb, unsigned long unused,
			  void *parm)
{
	struct vmm_balloon *b = &vmm_balloon;
	unsigned long *total = parm, freed = 0, held;

	held = vmm_balloon_size(b);
	/*
	 * Waiting is safe: whoever holds the lock never allocates with
	 * direct reclaim, so it cannot be waiting for this OOM to end.
	 */
	mutex_lock(&b->lock);
	b->oom_calls++;
	if (READ_ONCE(pressure_release) && b->running) {
		freed = vmm_give_back(b, VMM_OOM_FRAMES);
		b->oom_frames += freed;
	}
	mutex_unlock(&b->lock);
	*total += freed;

	pr_info_ratelimited("out of memory: balloon held %lu MiB, gave back %lu MiB\n",
			    held >> (20 - PAGE_SHIFT),
			    freed >> (20 - PAGE_SHIFT));
	return NOTIFY_OK;
}

static struct notifier_block vmm_oom_nb = {
	.notifier_call = vmm_oom_notify,
};

/* ---- Load and unload ------------------------------------------------ */

static struct shrinker *vmm_shrinker;

static int __init vmm_init(void)
{
	struct vmm_balloon *b = &vmm_balloon;
	int ret;

	if (!hypervisor_is_type(X86_HYPER_VMWARE)) {
		pr_info("not running on VMware; not loading\n");
		return -ENODEV;
	}

	ret = vmm_host_init(&b->host);
	if (ret)
		return ret;

	ret = vmm_stats_init(b);
	if (ret)
		goto err_host;

	vmm_shrinker = vmm_shrinker_create(vmm_shrink_count, vmm_shrink_scan,
					   DEFAULT_SEEKS);
	if (!vmm_shrinker) {
		ret = -ENOMEM;
		goto err_stats;
	}
	ret = register_oom_notifier(&vmm_oom_nb);
	if (ret)
		goto err_shrinker;

	INIT_DELAYED_WORK(&b->work, vmm_work);
	b->period_end = jiffies;
	b->running = true;
	queue_delayed_work(system_freezable_wq, &b->work, 0);

	pr_info("version " VMMEMCTL_VERSION " loaded\n");
	return 0;

err_shrinker:
	vmm_shrinker_destroy(vmm_shrinker);
err_stats:
	vmm_stats_exit(b);
err_host:
	vmm_host_exit(&b->host);
	return ret;
}
module_init(vmm_init);

static void __exit vmm_exit(void)
{
	struct vmm_balloon *b = &vmm_balloon;
	unsigned long size;

	unregister_oom_notifier(&vmm_oom_nb);
	vmm_shrinker_destroy(vmm_shrinker);

	mutex_lock(&b->lock);
	b->running = false;
	mutex_unlock(&b->lock);
	cancel_delayed_work_sync(&b->work);

	vmm_stats_exit(b);

	mutex_lock(&b->lock);
	size = vmm_balloon_size(b);
	/*
	 * START without capabilities makes the host drop the whole balloon;
	 * then every page goes back without a hypercall each. If the host
	 * already reset, it holds nothing of ours.
	 */
	if (!b->host.reset_required &&
	    vmm_hv_start(&b->host, 0) != VMM_STATUS_SUCCESS && size)
		pr_warn("host did not acknowledge the unload; it may still count %lu pages\n",
			size);
	vmm_pop(b);
	mutex_unlock(&b->lock);

	vmm_host_exit(&b->host);
	pr_info("unloaded; %lu MiB given back to the guest\n",
		size >> (20 - PAGE_SHIFT));
}
module_exit(vmm_exit);

MODULE_DESCRIPTION("VMware memory balloon driver (standalone, rate-limited, pressure-aware)");
MODULE_AUTHOR("vmmemctl developers");
MODULE_LICENSE("GPL");
MODULE_VERSION(VMMEMCTL_VERSION);
MODULE_ALIAS("dmi:*:svnVMware*:*");
