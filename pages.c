// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - the balloon's pages: allocation, the lock/unlock path, refused
 * pages, 2 MiB split and pop.
 *
 * Every lock and unlock goes through vmb_lock_request(): it hands the host
 * the frames of a list of pages, VMB_BATCH_MAX at a time, and sorts the
 * pages by the answer into accepted, refused and not answered. Whether the
 * host was asked with one batched call or one call per page, with which
 * command, and what its status codes mean, is backdoor.c's business.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/mutex.h>
#include <linux/sched.h>

#include "backdoor.h"
#include "compat.h"
#include "vmmemctl.h"
#include "vmmemctl_trace.h"

/* Pages per request with the basic protocol (one hypercall each). */
#define VMB_BASIC_CHUNK		64

/*
 * Inflation never enters direct reclaim, never dips into the emergency
 * reserves, and never warns. 4 KiB allocations may wake kswapd, so that
 * page cache is trimmed in the background for the host, and are movable
 * where the kernel can migrate them; 2 MiB allocations are not movable and
 * do not wake kswapd, since they fall back to 4 KiB pages anyway.
 */
#define VMB_GFP_NOWAIT	(__GFP_NOWARN | __GFP_NOMEMALLOC | __GFP_NORETRY)
#define VMB_GFP_4K	((VMB_GFP_BALLOON_4K | VMB_GFP_NOWAIT) & \
			 ~__GFP_DIRECT_RECLAIM)
#define VMB_GFP_2M	((GFP_HIGHUSER | VMB_GFP_NOWAIT) & \
			 ~(__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM))

/**
 * struct vmb_request - pages on their way to or from the host
 * @op: lock or unlock
 * @size: the size of every page on the lists
 * @max_refused: refusals after which the request stops (the rest of
 *               @pages is not sent)
 * @pages: in: the pages to ask for; out: those the host did not answer for
 *         because a call failed (see @status) or the request stopped
 * @accepted: out: lock: pages the host holds; unlock: pages the host no
 *            longer holds (it let them go, or did not hold them)
 * @refused: out: pages the host refused, each with its own reason
 * @nr_accepted: pages on @accepted
 * @nr_not_held: unlock: pages of @accepted the host said it did not hold
 * @nr_refused: pages on @refused
 * @host_full: one of the refusals said the host needs no more pages
 * @status: %VMB_STATUS_SUCCESS, or the status of the call that failed
 */
struct vmb_request {
	enum vmb_op op;
	enum vmb_page_size size;
	unsigned int max_refused;
	struct list_head pages;
	struct list_head accepted;
	struct list_head refused;
	unsigned int nr_accepted;
	unsigned int nr_not_held;
	unsigned int nr_refused;
	bool host_full;
	u32 status;
};

static void vmb_request_init(struct vmb_request *req, enum vmb_op op,
			     enum vmb_page_size size, unsigned int max_refused)
{
	*req = (struct vmb_request){ .op = op, .size = size,
				     .max_refused = max_refused,
				     .status = VMB_STATUS_SUCCESS };
	INIT_LIST_HEAD(&req->pages);
	INIT_LIST_HEAD(&req->accepted);
	INIT_LIST_HEAD(&req->refused);
}

/* A lock request stops at the host's "no more" or at its refusal limit. */
static bool vmb_request_stopped(const struct vmb_request *req)
{
	return req->host_full || req->nr_refused >= req->max_refused;
}

/* The one path to the host for every page the balloon locks or unlocks. */
static void vmb_lock_request(struct vmb_balloon *b, struct vmb_request *req)
{
	struct vmb_host *h = &b->host;
	struct page *page, *next;
	unsigned int n, i, done;

	while (!list_empty(&req->pages) && !vmb_request_stopped(req)) {
		n = 0;
		list_for_each_entry(page, &req->pages, lru) {
			vmb_host_set_page(h, n, page_to_pfn(page));
			if (++n == VMB_BATCH_MAX)
				break;
		}
		req->status = vmb_host_lock_op(h, req->op, req->size, n,
					       req->max_refused - req->nr_refused,
					       &done);
		i = 0;
		list_for_each_entry_safe(page, next, &req->pages, lru) {
			if (i == done)
				break;
			switch (vmb_host_page_answer(h, req->op, i++)) {
			case VMB_ANSWER_NOT_HELD:
				req->nr_not_held++;
				fallthrough;
			case VMB_ANSWER_DONE:
				list_move_tail(&page->lru, &req->accepted);
				req->nr_accepted++;
				break;
			case VMB_ANSWER_HOST_FULL:
				req->host_full = true;
				fallthrough;
			case VMB_ANSWER_REFUSED:
				list_move_tail(&page->lru, &req->refused);
				req->nr_refused++;
				break;
			}
		}
		if (req->status != VMB_STATUS_SUCCESS)
			break;
	}
}

/*
 * 2 MiB pages per step: 256 MiB. Marking a batch offline (512 frames a
 * page) and the host's answer are under the balloon lock; a full batch of
 * 512 (1 GiB) held it for over 10 ms under TCG.
 */
#define VMB_2M_PER_REQUEST	128

/**
 * vmb_pages_per_request() - pages one step of the work item moves at most
 * @b: the balloon
 * @size: page size
 *
 * Return: a batch page's worth when batched (fewer 2 MiB pages), fewer
 * with one call per page.
 */
unsigned int vmb_pages_per_request(const struct vmb_balloon *b,
				   enum vmb_page_size size)
{
	if (!vmb_host_batched(&b->host))
		return VMB_BASIC_CHUNK;
	return size == VMB_PAGE_2M ? VMB_2M_PER_REQUEST : VMB_BATCH_MAX;
}

static unsigned int vmb_order(enum vmb_page_size size)
{
	return size == VMB_PAGE_2M ? VMB_2M_ORDER : 0;
}

/* Mark a ballooned page so that kdump and hibernation skip its frames. */
static void vmb_set_offline(struct page *page, enum vmb_page_size size)
{
	unsigned long i;

	for (i = 0; i < vmb_frames(size); i++)
		__SetPageOffline(page + i);
}

static void vmb_clear_offline(struct page *page, enum vmb_page_size size)
{
	unsigned long i;

	for (i = 0; i < vmb_frames(size); i++)
		__ClearPageOffline(page + i);
}

/**
 * vmb_pages_alloc() - allocate pages to inflate with
 * @b: the balloon, locked
 * @list: where the pages go, linked through page->lru
 * @size: page size
 * @n: pages wanted
 * @at_floor: out: the allocation stopped at a zone the kernel needs
 *
 * Drops @b->lock while allocating and takes it back: the allocator zeroes
 * every page with init_on_alloc (a batch of 2 MiB pages is up to 1 GiB),
 * and reclaim and the OOM notifier must not wait for that. The caller
 * checks what changed meanwhile.
 *
 * Stops at the first failure: the allocator has nothing more to give
 * without reclaim; and at the first page from a zone the kernel needs that
 * is down to what the balloon leaves there (@at_floor, see
 * vmb_zone_at_floor()), which goes back at once.
 *
 * Return: pages allocated.
 */
unsigned int vmb_pages_alloc(struct vmb_balloon *b, struct list_head *list,
			     enum vmb_page_size size, unsigned int n,
			     bool *at_floor)
{
	gfp_t gfp = size == VMB_PAGE_2M ? VMB_GFP_2M : VMB_GFP_4K;
	struct page *page;
	unsigned int i;

	*at_floor = false;
	vmb_unlock(b);
	for (i = 0; i < n; i++) {
		page = alloc_pages(gfp, vmb_order(size));
		if (!page)
			break;
		if (vmb_zone_at_floor(page_zone(page))) {
			__free_pages(page, vmb_order(size));
			*at_floor = true;
			break;
		}
		list_add_tail(&page->lru, list);
	}
	vmb_lock(b);
	b->stat[size].alloc += i;
	if (i < n && !*at_floor)
		b->stat[size].alloc_fail++;
	return i;
}

void vmb_free_list(struct vmb_balloon *b, struct list_head *list,
		   enum vmb_page_size size)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, list, lru) {
		list_del(&page->lru);
		__free_pages(page, vmb_order(size));
		b->stat[size].free++;
	}
}

/*
 * Pages the host now holds become part of the balloon: 4 KiB pages on the
 * balloon core's list (which marks and counts them), 2 MiB pages on ours.
 */
static void vmb_balloon_insert(struct vmb_balloon *b, struct list_head *list,
			       enum vmb_page_size size, unsigned int n)
{
	struct page *page;

	if (size == VMB_PAGE_4K) {
		vmb_core_enqueue(&b->core, list);
	} else {
		list_for_each_entry(page, list, lru)
			vmb_set_offline(page, size);
		list_splice_init(list, &b->huge_pages);
		vmb_account_balloon(n * vmb_frames(size));
	}
	WRITE_ONCE(b->nr_pages[size], b->nr_pages[size] + n);
}

/*
 * Take up to @n ballooned pages off the balloon's list (still locked with
 * the host). 4 KiB pages leave the balloon core here (which unmarks and
 * counts them); a page isolated for migration cannot be taken.
 */
static unsigned int vmb_balloon_take(struct vmb_balloon *b,
				     struct list_head *list,
				     enum vmb_page_size size, unsigned int n)
{
	struct page *page;
	unsigned int i;

	if (size == VMB_PAGE_4K) {
		i = vmb_core_dequeue(&b->core, list, n);
	} else {
		for (i = 0; i < n; i++) {
			page = list_first_entry_or_null(&b->huge_pages,
							struct page, lru);
			if (!page)
				break;
			list_move_tail(&page->lru, list);
		}
	}
	WRITE_ONCE(b->nr_pages[size], b->nr_pages[size] - i);
	return i;
}

/*
 * Put back pages that are still locked. 2 MiB pages go to the tail, so
 * they come last; 4 KiB pages re-enter the balloon core, which counts
 * them as inflated again (it counted them deflated when taken).
 */
static void vmb_balloon_put_back(struct vmb_balloon *b, struct list_head *list,
				 enum vmb_page_size size, unsigned int n)
{
	if (size == VMB_PAGE_4K)
		vmb_core_enqueue(&b->core, list);
	else
		list_splice_tail_init(list, &b->huge_pages);
	WRITE_ONCE(b->nr_pages[size], b->nr_pages[size] + n);
}

/* Taken pages the host no longer holds leave the balloon. */
static void vmb_balloon_remove(struct list_head *list,
			       enum vmb_page_size size, unsigned int n)
{
	struct page *page;

	if (size == VMB_PAGE_4K)
		return;		/* the balloon core did it when they were taken */
	list_for_each_entry(page, list, lru)
		vmb_clear_offline(page, size);
	vmb_account_balloon(-(long)(n * vmb_frames(size)));
}

/**
 * vmb_pages_lock() - lock freshly allocated pages with the host
 * @b: the balloon
 * @list: the pages; empty on return
 * @size: their size
 *
 * Pages the host holds join the balloon. Refused ones are held on the
 * refused list; too many refusals in the period (refused_max), or the host
 * saying it needs no more, stop the request at once and end the period.
 * When a call fails or the request stopped, the pages it did not answer
 * for are freed and the period ends.
 *
 * Return: pages locked.
 */
unsigned long vmb_pages_lock(struct vmb_balloon *b, struct list_head *list,
			     enum vmb_page_size size)
{
	unsigned int refused_max = READ_ONCE(vmb_params.refused_max);
	struct vmb_request req;

	vmb_request_init(&req, VMB_OP_LOCK, size,
			 refused_max > b->period_refused ?
			 refused_max - b->period_refused : 1);
	list_splice_init(list, &req.pages);
	vmb_lock_request(b, &req);

	vmb_balloon_insert(b, &req.accepted, size, req.nr_accepted);

	if (req.nr_refused) {
		list_splice(&req.refused, &b->refused[size]);
		b->nr_refused[size] += req.nr_refused;
		b->stat[size].refused += req.nr_refused;
		b->period_refused += req.nr_refused;
		if (req.host_full || b->period_refused >= refused_max)
			vmb_fail_period(b);
	}

	if (!list_empty(&req.pages)) {
		vmb_fail_period(b);
		vmb_free_list(b, &req.pages, size);
	}
	return req.nr_accepted;
}

/*
 * Unlock up to @n ballooned pages of @size. Pages the host let go, or said
 * it did not hold, are left on @req->accepted, out of the balloon but
 * still allocated; the others stay ballooned. Anything short of all @n
 * (when there were @n) ends the period.
 */
static void vmb_pages_unlock(struct vmb_balloon *b, struct vmb_request *req,
			     enum vmb_page_size size, unsigned int n)
{
	unsigned int taken;

	vmb_request_init(req, VMB_OP_UNLOCK, size, UINT_MAX);
	taken = vmb_balloon_take(b, &req->pages, size, n);
	if (!taken)
		return;
	vmb_lock_request(b, req);

	vmb_balloon_remove(&req->accepted, size, req->nr_accepted);
	b->stat[size].unlock_fail += req->nr_refused;
	vmb_balloon_put_back(b, &req->refused, size, req->nr_refused);
	vmb_balloon_put_back(b, &req->pages, size,
			     taken - req->nr_accepted - req->nr_refused);
	if (req->nr_accepted < taken)
		vmb_fail_period(b);
}

/* Unlock and free up to @n pages. Return: pages freed. */
static unsigned int vmb_pages_unlock_free(struct vmb_balloon *b,
					  enum vmb_page_size size,
					  unsigned int n)
{
	struct vmb_request req;

	vmb_pages_unlock(b, &req, size, n);
	vmb_free_list(b, &req.accepted, size);
	return req.nr_accepted;
}

/*
 * Shrink the balloon by less than a 2 MiB page when it holds no 4 KiB
 * pages: unlock one 2 MiB page, free @frames of it, and lock the rest
 * again as 4 KiB pages.
 *
 * Return: frames freed.
 */
static unsigned long vmb_split_huge(struct vmb_balloon *b,
				    unsigned long frames)
{
	struct vmb_request req;
	struct page *page;
	unsigned long i;
	LIST_HEAD(rest);

	vmb_pages_unlock(b, &req, VMB_PAGE_2M, 1);
	page = list_first_entry_or_null(&req.accepted, struct page, lru);
	if (!page)
		return 0;
	list_del(&page->lru);

	b->stat[VMB_PAGE_2M].free++;
	split_page(page, VMB_2M_ORDER);
	b->stat[VMB_PAGE_4K].alloc += vmb_frames(VMB_PAGE_2M);
	for (i = 0; i < vmb_frames(VMB_PAGE_2M); i++) {
		if (i < frames) {
			__free_page(page + i);
			b->stat[VMB_PAGE_4K].free++;
		} else {
			list_add_tail(&page[i].lru, &rest);
		}
	}
	vmb_pages_lock(b, &rest, VMB_PAGE_4K);
	return frames;
}

/**
 * vmb_pages_deflate() - give back up to @frames frames in one step
 * @b: the balloon
 * @frames: 4 KiB frames wanted back
 * @mode: whether 2 MiB pages may be split or go whole
 *
 * Return: frames freed.
 */
unsigned long vmb_pages_deflate(struct vmb_balloon *b, unsigned long frames,
				enum vmb_deflate_mode mode)
{
	unsigned long huge = vmb_frames(VMB_PAGE_2M);
	unsigned int n;

	if (!frames)
		return 0;
	if (b->nr_pages[VMB_PAGE_2M] &&
	    (frames >= huge || mode == VMB_DEFLATE_UNDER_PRESSURE ||
	     !b->nr_pages[VMB_PAGE_4K])) {
		if (mode == VMB_DEFLATE_UNDER_PRESSURE)
			return vmb_pages_unlock_free(b, VMB_PAGE_2M,
						     DIV_ROUND_UP(frames, huge)) *
			       huge;
		/* One request at most: the caller holds the lock. */
		n = min_t(unsigned long, frames / huge,
			  vmb_pages_per_request(b, VMB_PAGE_2M));
		if (n)
			return vmb_pages_unlock_free(b, VMB_PAGE_2M, n) * huge;
		if (vmb_host_huge(&b->host))
			return vmb_split_huge(b, frames);
	}
	return vmb_pages_unlock_free(b, VMB_PAGE_4K,
				     min_t(unsigned long, frames,
					   vmb_pages_per_request(b, VMB_PAGE_4K)));
}

/**
 * vmb_refused_frames() - frames held on the refused lists
 * @b: the balloon
 *
 * Return: 4 KiB frames.
 */
unsigned long vmb_refused_frames(const struct vmb_balloon *b)
{
	return b->nr_refused[VMB_PAGE_4K] +
	       b->nr_refused[VMB_PAGE_2M] * vmb_frames(VMB_PAGE_2M);
}

/**
 * vmb_refused_free() - give the refused pages back to the allocator
 * @b: the balloon
 */
void vmb_refused_free(struct vmb_balloon *b)
{
	enum vmb_page_size size;

	for (size = 0; size < VMB_NR_PAGE_SIZES; size++) {
		vmb_free_list(b, &b->refused[size], size);
		b->nr_refused[size] = 0;
	}
}

/*
 * Free up to @max pages of @size on the balloon's list, without unlocking.
 * Pages isolated for migration are not on the list: they are left alone.
 * Return: pages freed.
 */
static unsigned long vmb_balloon_drain(struct vmb_balloon *b,
				       enum vmb_page_size size,
				       unsigned long max)
{
	unsigned long drained = 0;
	unsigned int n;
	LIST_HEAD(list);

	while (drained < max &&
	       (n = vmb_balloon_take(b, &list, size,
				     min_t(unsigned long, max - drained,
					   VMB_BATCH_MAX)))) {
		vmb_balloon_remove(&list, size, n);
		vmb_free_list(b, &list, size);
		drained += n;
		cond_resched();
	}
	return drained;
}

/**
 * vmb_pages_drop() - free ballooned pages the host has forgotten, now
 * @b: the balloon, locked, its session needing a reset (the host holds
 *     none of its pages)
 * @frames: 4 KiB frames wanted
 *
 * For the pressure path between a RESET and the pop of the next session
 * start: the pages are freed without a hypercall, 2 MiB pages first and
 * whole. Unlike vmb_pages_pop() this never waits: pages isolated for
 * migration stay counted in the balloon for the next pop.
 *
 * Return: frames freed.
 */
unsigned long vmb_pages_drop(struct vmb_balloon *b, unsigned long frames)
{
	unsigned long huge = vmb_frames(VMB_PAGE_2M), freed;

	freed = vmb_balloon_drain(b, VMB_PAGE_2M,
				  DIV_ROUND_UP(frames, huge)) * huge;
	if (freed < frames)
		freed += vmb_balloon_drain(b, VMB_PAGE_4K, frames - freed);
	if (freed)
		trace_vmmemctl_reset(freed);
	b->dropped += freed;
	return freed;
}

/**
 * vmb_pages_pop() - free every page without unlocking it
 * @b: the balloon, locked
 *
 * For when the host has forgotten the balloon (RESET) or is told to (START
 * without capabilities). The caller has made migration refuse (session
 * needing a reset, or the balloon not running): pages isolated for
 * migration come back to the list, and this waits for them, dropping the
 * lock meanwhile. Nothing of the balloon is left, so after an unload no
 * page can call back into the module.
 */
void vmb_pages_pop(struct vmb_balloon *b)
{
	unsigned long popped = vmb_balloon_size(b), waited = 0;

	vmb_balloon_drain(b, VMB_PAGE_2M, ULONG_MAX);
	vmb_balloon_drain(b, VMB_PAGE_4K, ULONG_MAX);
	while (b->nr_pages[VMB_PAGE_4K]) {
		/* Never give up: a page left behind would call back. */
		if (++waited == 10 * HZ)
			pr_warn("%lu ballooned pages still held by page migration; waiting\n",
				b->nr_pages[VMB_PAGE_4K]);
		mutex_unlock(&b->lock);
		schedule_timeout_uninterruptible(1);
		mutex_lock(&b->lock);
		vmb_balloon_drain(b, VMB_PAGE_4K, ULONG_MAX);
	}
	vmb_refused_free(b);
	if (popped)
		trace_vmmemctl_reset(popped);
}

/**
 * vmb_pages_init() - set up the balloon's lists
 * @b: the balloon
 */
void vmb_pages_init(struct vmb_balloon *b)
{
	if (!vmb_core_init(&b->core, vmb_migratepage))
		pr_info("this kernel cannot migrate balloon pages: ballooned memory stays unmovable\n");
}
