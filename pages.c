// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - the balloon's pages: allocation, the lock/unlock path, refused
 * pages, 2 MiB split and pop.
 *
 * Every lock and unlock goes through vmb_lock_request(): it hands the host
 * the frames of a list of pages, VMB_BATCH_MAX at a time, and sorts the
 * pages by the answer into accepted, refused and not answered. Whether the
 * host was asked with one batched call or one call per page, and with which
 * command, is backdoor.c's business.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
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
 * page cache is trimmed in the background for the host; 2 MiB allocations
 * do not, since they fall back to 4 KiB pages anyway.
 */
#define VMB_GFP_4K	((GFP_HIGHUSER | __GFP_NOWARN | __GFP_NOMEMALLOC | \
			  __GFP_NORETRY) & ~__GFP_DIRECT_RECLAIM)
#define VMB_GFP_2M	(VMB_GFP_4K & ~__GFP_KSWAPD_RECLAIM)

/**
 * struct vmb_request - pages on their way to or from the host
 * @op: lock or unlock
 * @size: the size of every page on the lists
 * @pages: in: the pages to ask for; out: those the host did not answer for
 *         because a call failed (see @status)
 * @accepted: out: pages the host locked or unlocked
 * @refused: out: pages the host refused, each with its own reason
 * @nr_accepted: pages on @accepted
 * @nr_refused: pages on @refused
 * @host_full: one of the refusals said the host needs no more pages
 * @status: %VMB_STATUS_SUCCESS, or the status of the call that failed
 */
struct vmb_request {
	enum vmb_op op;
	enum vmb_page_size size;
	struct list_head pages;
	struct list_head accepted;
	struct list_head refused;
	unsigned int nr_accepted;
	unsigned int nr_refused;
	bool host_full;
	u32 status;
};

static void vmb_request_init(struct vmb_request *req, enum vmb_op op,
			     enum vmb_page_size size)
{
	*req = (struct vmb_request){ .op = op, .size = size,
				     .status = VMB_STATUS_SUCCESS };
	INIT_LIST_HEAD(&req->pages);
	INIT_LIST_HEAD(&req->accepted);
	INIT_LIST_HEAD(&req->refused);
}

/* The one path to the host for every page the balloon locks or unlocks. */
static void vmb_lock_request(struct vmb_balloon *b, struct vmb_request *req)
{
	struct vmb_host *h = &b->host;
	struct page *page, *next;
	unsigned int n, i, done;
	u32 status;

	while (!list_empty(&req->pages)) {
		n = 0;
		list_for_each_entry(page, &req->pages, lru) {
			vmb_host_set_page(h, n, page_to_pfn(page));
			if (++n == VMB_BATCH_MAX)
				break;
		}
		req->status = vmb_host_lock_op(h, req->op, req->size, n, &done);
		i = 0;
		list_for_each_entry_safe(page, next, &req->pages, lru) {
			if (i == done)
				break;
			status = vmb_host_page_status(h, i++);
			if (status == VMB_STATUS_SUCCESS) {
				list_move_tail(&page->lru, &req->accepted);
				req->nr_accepted++;
				continue;
			}
			list_move_tail(&page->lru, &req->refused);
			req->nr_refused++;
			if (vmb_status_host_full(status))
				req->host_full = true;
		}
		if (req->status != VMB_STATUS_SUCCESS)
			break;
	}
}

/**
 * vmb_pages_per_request() - pages one step of the work item moves at most
 * @b: the balloon
 *
 * Return: a batch page's worth when batched, fewer with one call per page.
 */
unsigned int vmb_pages_per_request(const struct vmb_balloon *b)
{
	return vmb_host_batched(&b->host) ? VMB_BATCH_MAX : VMB_BASIC_CHUNK;
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
 * @b: the balloon
 * @list: where the pages go, linked through page->lru
 * @size: page size
 * @n: pages wanted
 *
 * Stops at the first failure: the allocator has nothing more to give
 * without reclaim.
 *
 * Return: pages allocated.
 */
unsigned int vmb_pages_alloc(struct vmb_balloon *b, struct list_head *list,
			     enum vmb_page_size size, unsigned int n)
{
	gfp_t gfp = size == VMB_PAGE_2M ? VMB_GFP_2M : VMB_GFP_4K;
	struct page *page;
	unsigned int i;

	for (i = 0; i < n; i++) {
		page = alloc_pages(gfp, vmb_order(size));
		if (!page) {
			b->stat[size].alloc_fail++;
			break;
		}
		b->stat[size].alloc++;
		list_add_tail(&page->lru, list);
	}
	return i;
}

static void vmb_free_list(struct vmb_balloon *b, struct list_head *list,
			  enum vmb_page_size size)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, list, lru) {
		list_del(&page->lru);
		__free_pages(page, vmb_order(size));
		b->stat[size].free++;
	}
}

/* Pages the host now holds become part of the balloon. */
static void vmb_balloon_insert(struct vmb_balloon *b, struct list_head *list,
			       enum vmb_page_size size, unsigned int n)
{
	struct page *page;

	list_for_each_entry(page, list, lru)
		vmb_set_offline(page, size);
	list_splice(list, &b->pages[size]);
	INIT_LIST_HEAD(list);
	b->nr_pages[size] += n;
	vmm_account_balloon(n * vmb_frames(size));
}

/* Take up to @n ballooned pages off the balloon's list (still locked). */
static unsigned int vmb_balloon_take(struct vmb_balloon *b,
				     struct list_head *list,
				     enum vmb_page_size size, unsigned int n)
{
	struct page *page;
	unsigned int i;

	for (i = 0; i < n; i++) {
		page = list_first_entry_or_null(&b->pages[size], struct page,
						lru);
		if (!page)
			break;
		list_move_tail(&page->lru, list);
	}
	b->nr_pages[size] -= i;
	return i;
}

/* Put back pages that are still locked; at the tail, so they come last. */
static void vmb_balloon_put_back(struct vmb_balloon *b, struct list_head *list,
				 enum vmb_page_size size, unsigned int n)
{
	list_splice_tail_init(list, &b->pages[size]);
	b->nr_pages[size] += n;
}

/* Pages the host no longer holds leave the balloon, still allocated. */
static void vmb_balloon_remove(struct list_head *list,
			       enum vmb_page_size size, unsigned int n)
{
	struct page *page;

	list_for_each_entry(page, list, lru)
		vmb_clear_offline(page, size);
	vmm_account_balloon(-(long)(n * vmb_frames(size)));
}

/**
 * vmb_pages_lock() - lock freshly allocated pages with the host
 * @b: the balloon
 * @list: the pages; empty on return
 * @size: their size
 *
 * Locked pages join the balloon. Refused ones are held on the refused
 * list; too many refusals, or the host saying it needs no more, end the
 * period. When a call fails, the pages it did not answer for are freed and
 * the period ends.
 *
 * Return: pages locked.
 */
unsigned long vmb_pages_lock(struct vmb_balloon *b, struct list_head *list,
			     enum vmb_page_size size)
{
	struct vmb_request req;

	vmb_request_init(&req, VMB_OP_LOCK, size);
	list_splice_init(list, &req.pages);
	vmb_lock_request(b, &req);

	vmb_balloon_insert(b, &req.accepted, size, req.nr_accepted);

	if (req.nr_refused) {
		list_splice(&req.refused, &b->refused[size]);
		b->nr_refused[size] += req.nr_refused;
		b->stat[size].refused += req.nr_refused;
		b->period_refused += req.nr_refused;
		if (req.host_full ||
		    b->period_refused >= READ_ONCE(vmb_params.refused_max))
			vmb_fail_period(b);
	}

	if (req.status != VMB_STATUS_SUCCESS) {
		vmb_fail_period(b);
		vmb_free_list(b, &req.pages, size);
	}
	return req.nr_accepted;
}

/*
 * Unlock up to @n ballooned pages of @size. Pages the host let go are left
 * on @req->accepted, out of the balloon but still allocated; the others
 * stay ballooned. Anything short of all @n (when there were @n) ends the
 * period.
 */
static void vmb_pages_unlock(struct vmb_balloon *b, struct vmb_request *req,
			     enum vmb_page_size size, unsigned int n)
{
	unsigned int taken;

	vmb_request_init(req, VMB_OP_UNLOCK, size);
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

	if (!frames)
		return 0;
	if (b->nr_pages[VMB_PAGE_2M] &&
	    (frames >= huge || mode == VMB_DEFLATE_UNDER_PRESSURE ||
	     !b->nr_pages[VMB_PAGE_4K])) {
		if (mode == VMB_DEFLATE_UNDER_PRESSURE)
			return vmb_pages_unlock_free(b, VMB_PAGE_2M,
						     DIV_ROUND_UP(frames, huge)) *
			       huge;
		if (frames >= huge)
			return vmb_pages_unlock_free(b, VMB_PAGE_2M,
						     frames / huge) * huge;
		if (vmb_host_huge(&b->host))
			return vmb_split_huge(b, frames);
	}
	return vmb_pages_unlock_free(b, VMB_PAGE_4K,
				     min_t(unsigned long, frames,
					   vmb_pages_per_request(b)));
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

/**
 * vmb_pages_pop() - free every page without unlocking it
 * @b: the balloon
 *
 * For when the host has forgotten the balloon (RESET) or is told to (START
 * without capabilities).
 */
void vmb_pages_pop(struct vmb_balloon *b)
{
	unsigned long popped = vmb_balloon_size(b);
	enum vmb_page_size size;
	unsigned int n;
	LIST_HEAD(list);

	for (size = 0; size < VMB_NR_PAGE_SIZES; size++) {
		while ((n = vmb_balloon_take(b, &list, size,
					     VMB_BATCH_MAX))) {
			vmb_balloon_remove(&list, size, n);
			vmb_free_list(b, &list, size);
			cond_resched();
		}
	}
	vmb_refused_free(b);
	if (popped)
		trace_vmmemctl_reset(popped);
}
