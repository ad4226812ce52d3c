/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - the kernel's balloon core, across its three shapes.
 *
 * 4 KiB ballooned pages live on the core's list (struct balloon_dev_info),
 * which makes them movable where the kernel can migrate balloon pages. The
 * core's API moved twice:
 *
 *  - <linux/balloon_compaction.h> (6.1 to 6.16): the driver's migratepage
 *    does the bookkeeping itself: insert the new page, count
 *    BALLOON_MIGRATE, drop isolated_pages, finalize (older: delete) and put
 *    the old page, all with the pages locked by the caller;
 *  - 6.17: balloon_page_finalize() replaces balloon_page_delete() (Debian
 *    backported it to its 6.1 and 6.12);
 *  - <linux/balloon.h> (7.0): one global lock, the core does all of the
 *    above after the driver's callback, which only talks to the host and
 *    returns 0, -ENOENT (old page deflated, new one not inflated) or an
 *    error (the old page goes back to the balloon).
 *
 * The core counts BALLOON_INFLATE/DEFLATE (and, where it exists,
 * NR_BALLOON_PAGES) for the pages it enqueues and dequeues: the module
 * counts only the 2 MiB pages it keeps on its own list, and, on 7.x, the
 * NR_BALLOON_PAGES of a page that left during migration (-ENOENT), which
 * the core forgets.
 *
 * The shape is chosen by the compile-time probes (VMB_HAVE_BALLOON_H,
 * VMB_HAVE_BALLOON_PAGE_FINALIZE, VMB_HAVE_NR_BALLOON_PAGES in
 * compat_probes.h), never by a version number.
 */
#ifndef VMMEMCTL_COMPAT_BALLOON_H
#define VMMEMCTL_COMPAT_BALLOON_H

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/spinlock.h>
#include <linux/vmstat.h>

#include "compat_probes.h"

#ifdef VMB_HAVE_BALLOON_H
#include <linux/balloon.h>
#else
#include <linux/balloon_compaction.h>
#endif

#if !defined(CONFIG_MEMORY_BALLOON) && !defined(CONFIG_BALLOON)
#error "vmmemctl needs the kernel's balloon core (CONFIG_MEMORY_BALLOON or CONFIG_BALLOON)"
#endif

/* The kernel can migrate pages on a balloon core's list. */
#if defined(CONFIG_BALLOON_COMPACTION) || defined(CONFIG_BALLOON_MIGRATION)
#define VMB_MOVABLE_PAGES 1
#define VMB_GFP_BALLOON_4K	GFP_HIGHUSER_MOVABLE
#else
#define VMB_GFP_BALLOON_4K	GFP_HIGHUSER
#endif

typedef int (*vmb_migratepage_t)(struct balloon_dev_info *info,
				 struct page *newpage, struct page *page,
				 enum migrate_mode mode);

/**
 * vmb_core_init() - set up a balloon core list for the module's pages
 * @info: the balloon core's descriptor
 * @migratepage: the callback that moves a page with the host
 *
 * Return: true when the pages will be movable.
 */
static inline bool vmb_core_init(struct balloon_dev_info *info,
				 vmb_migratepage_t migratepage)
{
	balloon_devinfo_init(info);
#ifdef VMB_MOVABLE_PAGES
	info->migratepage = migratepage;
	return true;
#else
	return false;
#endif
}

/* Pages the host locked join the core's list (PG_offline, vm events). */
static inline size_t vmb_core_enqueue(struct balloon_dev_info *info,
				      struct list_head *pages)
{
	return balloon_page_list_enqueue(info, pages);
}

/*
 * Up to @n pages off the core's list, for unlocking or freeing; isolated
 * pages are not on it. On 7.x the pages stay PG_offline until freed.
 */
static inline size_t vmb_core_dequeue(struct balloon_dev_info *info,
				      struct list_head *pages, size_t n)
{
	return balloon_page_list_dequeue(info, pages, n);
}

/* Pages isolated for migration: off the list, still the balloon's. */
static inline unsigned long vmb_core_isolated(struct balloon_dev_info *info)
{
#ifdef VMB_HAVE_BALLOON_H
	return READ_ONCE(info->isolated_pages);
#else
	unsigned long flags, n;

	spin_lock_irqsave(&info->pages_lock, flags);
	n = info->isolated_pages;
	spin_unlock_irqrestore(&info->pages_lock, flags);
	return n;
#endif
}

#ifdef VMB_MOVABLE_PAGES
/**
 * vmb_core_migrated() - finish a migration the host took part in
 * @info: the balloon core's descriptor
 * @newpage: the page the host was asked to lock instead of @page
 * @page: the isolated page the host unlocked
 * @new_locked: the host locked @newpage; otherwise the balloon lost
 *              @page (effectively a deflate)
 *
 * Called with the host done and both pages locked by the migration core.
 *
 * Return: what the kernel's migration core expects from migratepage.
 * Where the driver does the bookkeeping, a deflate must be reported as
 * success: @page is no longer a balloon page and cannot be put back
 * (upstream vmw_balloon fix "indicate success when effectively deflating
 * during migration", 6.18).
 */
static inline int vmb_core_migrated(struct balloon_dev_info *info,
				    struct page *newpage, struct page *page,
				    bool new_locked)
{
#ifdef VMB_HAVE_BALLOON_H
	if (new_locked)
		return 0;
#ifdef VMB_HAVE_NR_BALLOON_PAGES
	/*
	 * On -ENOENT the core counts BALLOON_DEFLATE and frees @page but
	 * leaves NR_BALLOON_PAGES as it was (7.3): without this, meminfo's
	 * Balloon: keeps every page that left the balloon this way.
	 */
	dec_node_page_state(page, NR_BALLOON_PAGES);
#endif
	return -ENOENT;
#else
	unsigned long flags;

	if (new_locked)
		get_page(newpage);	/* the balloon list's reference */
	spin_lock_irqsave(&info->pages_lock, flags);
	if (new_locked) {
		balloon_page_insert(info, newpage);
		__count_vm_event(BALLOON_MIGRATE);
	} else {
		__count_vm_event(BALLOON_DEFLATE);
#ifdef VMB_HAVE_NR_BALLOON_PAGES
		dec_node_page_state(page, NR_BALLOON_PAGES);
#endif
	}
	info->isolated_pages--;
	spin_unlock_irqrestore(&info->pages_lock, flags);

#ifdef VMB_HAVE_BALLOON_PAGE_FINALIZE
	balloon_page_finalize(page);
#else
	balloon_page_delete(page);
#endif
	put_page(page);		/* the balloon list's reference */
	return 0;
#endif
}
#endif /* VMB_MOVABLE_PAGES */

#endif /* VMMEMCTL_COMPAT_BALLOON_H */
