// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - migration of ballooned 4 KiB pages: when compaction or memory
 * offlining moves one, the host gives back the old frame and takes the new
 * one. The balloon core of the running kernel (compat_balloon.h) isolates
 * the page, calls vmb_migratepage() and does the list and vmstat work the
 * kernel leaves to it.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mutex.h>

#include "backdoor.h"
#include "compat.h"
#include "vmmemctl.h"

#ifdef VMB_MOVABLE_PAGES
/*
 * Lock or unlock one page that the migration core holds (its lru is the
 * core's, so it cannot go through a request's lists). A failed call is a
 * refusal: the page stays as it was.
 */
static enum vmb_answer vmb_lock_one(struct vmb_balloon *b, enum vmb_op op,
				    struct page *page)
{
	struct vmb_host *h = &b->host;
	unsigned int done;

	vmb_host_set_page(h, 0, page_to_pfn(page));
	vmb_host_lock_op(h, op, VMB_PAGE_4K, 1, 1, &done);
	return done ? vmb_host_page_answer(h, op, 0) : VMB_ANSWER_REFUSED;
}

/**
 * vmb_migratepage() - move a ballooned 4 KiB page with the host
 * @info: the balloon core's descriptor (in the balloon)
 * @newpage: the page that takes @page's place, locked by the caller
 * @page: the isolated ballooned page, locked by the caller
 * @mode: the migration's mode; %MIGRATE_ASYNC must not block
 *
 * The host gives back @page's frame and takes @newpage's. Unlock first: a
 * host asked to lock first may answer that it needs no more pages.
 *
 * Return: what vmb_core_migrated() returns for this kernel when the host
 * took part (the page moved, or the balloon shrank by it); -%EAGAIN when
 * the balloon is busy, unloading or cannot talk to the host; -%EBUSY when
 * the host still holds @page.
 */
int vmb_migratepage(struct balloon_dev_info *info, struct page *newpage,
		    struct page *page, enum migrate_mode mode)
{
	struct vmb_balloon *b = container_of(info, struct vmb_balloon, core);
	enum vmb_answer old;
	int ret;

	/*
	 * Asynchronous migration must not block. The others may wait: the
	 * lock's holders only talk to the host and never allocate with direct
	 * reclaim or wait for a page lock with the lock held (the work item
	 * allocates with it dropped, pop waits for isolated pages with it
	 * dropped). Giving up instead fails the migration whenever the holder
	 * is preempted: the migration core's retries are over in far less
	 * than one hypercall, and memory offlining logs every failed page.
	 */
	if (mode == MIGRATE_ASYNC) {
		if (!mutex_trylock(&b->lock))
			return -EAGAIN;
	} else {
		mutex_lock(&b->lock);
	}
	/* An unload is emptying the balloon: let it have @page. */
	if (!b->running) {
		ret = -EAGAIN;
		goto out;
	}
	/*
	 * The host forgot every lock (RESET): @page is not the host's any
	 * more and leaves the balloon now, without a hypercall, as a pop
	 * would free it. Refusing would keep it isolated: pop waits for
	 * isolated pages, and memory offlining, which retries until the
	 * block is empty, isolates them again as fast as they come back.
	 */
	if (b->host.reset_required)
		goto forgotten;
	if (!vmb_host_can_lock(&b->host)) {
		ret = -EAGAIN;
		goto out;
	}

	old = vmb_lock_one(b, VMB_OP_UNLOCK, page);
	if (old != VMB_ANSWER_DONE && old != VMB_ANSWER_NOT_HELD) {
		b->migrate_fails++;
		if (b->host.reset_required)
			goto forgotten;
		/* Still locked: it stays ballooned. */
		ret = -EBUSY;
		goto out;
	}
	if (vmb_lock_one(b, VMB_OP_LOCK, newpage) == VMB_ANSWER_DONE) {
		b->migrations++;
		ret = vmb_core_migrated(info, newpage, page, true);
		goto out;
	}
	/* Refused, or the host reset: the balloon shrank by @page. */
	b->migrate_fails++;
forgotten:
	/* The kernel frees @page and @newpage. */
	WRITE_ONCE(b->nr_pages[VMB_PAGE_4K], b->nr_pages[VMB_PAGE_4K] - 1);
	b->stat[VMB_PAGE_4K].free++;
	/* The reset still counts when migration emptied the balloon first. */
	if (b->host.reset_required)
		b->dropped++;
	ret = vmb_core_migrated(info, newpage, page, false);
out:
	mutex_unlock(&b->lock);
	return ret;
}
#endif /* VMB_MOVABLE_PAGES */
