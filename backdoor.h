/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - VMware balloon backdoor protocol.
 *
 * This header and backdoor.c are the only places that know how the
 * hypervisor is reached and what its commands and status codes are. Above
 * this line a request is "lock (or unlock) these page frames, of this
 * size"; whether that takes one batched call or one call per frame is
 * decided here.
 */
#ifndef VMMEMCTL_BACKDOOR_H
#define VMMEMCTL_BACKDOOR_H

#include <linux/types.h>

/* Commands, passed in ecx. Command 5 is reserved and never sent. */
enum vmb_cmd {
	VMB_CMD_START			= 0,
	VMB_CMD_GET_TARGET		= 1,
	VMB_CMD_LOCK			= 2,
	VMB_CMD_UNLOCK			= 3,
	VMB_CMD_GUEST_ID		= 4,
	VMB_CMD_BATCHED_LOCK		= 6,
	VMB_CMD_BATCHED_UNLOCK		= 7,
	VMB_CMD_BATCHED_2M_LOCK		= 8,
	VMB_CMD_BATCHED_2M_UNLOCK	= 9,
	VMB_CMD_VMCI_DOORBELL_SET	= 10,
	VMB_CMD_NR
};

/* Status codes, returned in eax (and per page in a batch entry). */
enum vmb_status {
	VMB_STATUS_SUCCESS		= 0,
	VMB_ERROR_CMD_INVALID		= 1,
	VMB_ERROR_PPN_INVALID		= 2,
	VMB_ERROR_PPN_LOCKED		= 3,
	VMB_ERROR_PPN_UNLOCKED		= 4,
	VMB_ERROR_PPN_PINNED		= 5,
	VMB_ERROR_PPN_NOTNEEDED		= 6,
	VMB_ERROR_RESET			= 7,
	VMB_ERROR_BUSY			= 8,
	/* Any other value is folded into this one (the "unknown" bucket). */
	VMB_STATUS_OTHER		= 9,
	VMB_STATUS_NR
};

/* Capabilities negotiated by START. Bit 0 is reserved. */
#define VMB_CAP_BASIC			0x02U
#define VMB_CAP_BATCHED			0x04U
#define VMB_CAP_BATCHED_2M		0x08U
#define VMB_CAP_TARGET_64		0x20U

/* One request carries at most this many pages (the batch page's entries). */
#define VMB_BATCH_MAX			512

/* 4 KiB frames in a 2 MiB page: order 9 on x86. */
#define VMB_2M_ORDER			9

/**
 * enum vmb_op - what a request asks the host to do with pages
 * @VMB_OP_LOCK: take the frames (the balloon inflates)
 * @VMB_OP_UNLOCK: give the frames back (the balloon deflates)
 */
enum vmb_op {
	VMB_OP_LOCK,
	VMB_OP_UNLOCK,
};

/**
 * enum vmb_page_size - the page sizes the balloon holds
 * @VMB_PAGE_4K: 4 KiB pages
 * @VMB_PAGE_2M: 2 MiB pages (order 9, not compound)
 * @VMB_NR_PAGE_SIZES: number of sizes
 */
enum vmb_page_size {
	VMB_PAGE_4K,
	VMB_PAGE_2M,
	VMB_NR_PAGE_SIZES
};

/**
 * struct vmb_host - what the guest knows about its session with the host
 * @offered: capabilities offered at the last START
 * @caps: capabilities the host granted at the last successful START
 *        (always a subset of @offered)
 * @target: last target, in 4 KiB pages, the host reported with a
 *          successful command; the caller bounds it
 * @reset_required: set when any command answered ERROR_RESET, or when the
 *                  session has not been started yet; cleared by START
 * @batch: the page holding a request's entries (frame and per-page status)
 * @cmd_count: hypercalls issued, per command
 * @cmd_fail: hypercalls that did not answer success, per command
 * @status_count: non-success statuses seen, per status, for calls and
 *                batch entries alike
 *
 * Everything is written only by the holder of the balloon lock; the
 * statistics code reads it under that lock too.
 */
struct vmb_host {
	u32 offered;
	u32 caps;
	u64 target;
	bool reset_required;
	u64 *batch;
	unsigned long cmd_count[VMB_CMD_NR];
	unsigned long cmd_fail[VMB_CMD_NR];
	unsigned long status_count[VMB_STATUS_NR];
};

/**
 * enum vmb_answer - what the host's answer for one page of a request means
 * @VMB_ANSWER_DONE: as asked: after a lock the host holds the page (it
 *                   locked it, or already held it); after an unlock it
 *                   let the page go
 * @VMB_ANSWER_NOT_HELD: unlock only: the host did not hold the page (it
 *                       never had it, or forgot it); the page is the
 *                       guest's
 * @VMB_ANSWER_REFUSED: the host refused; the page is as it was before
 * @VMB_ANSWER_HOST_FULL: lock only: refused because the host needs no
 *                        more pages
 */
enum vmb_answer {
	VMB_ANSWER_DONE,
	VMB_ANSWER_NOT_HELD,
	VMB_ANSWER_REFUSED,
	VMB_ANSWER_HOST_FULL,
};

int vmb_host_init(struct vmb_host *h);
void vmb_host_exit(struct vmb_host *h);

const char *vmb_cmd_name(unsigned int cmd);
const char *vmb_status_name(unsigned int status);

u32 vmb_host_start(struct vmb_host *h, u32 offered);
bool vmb_host_drop_balloon(struct vmb_host *h);
u32 vmb_host_guest_id(struct vmb_host *h);
u32 vmb_host_get_target(struct vmb_host *h, u64 ram_pages);
u32 vmb_host_lock_op(struct vmb_host *h, enum vmb_op op,
		     enum vmb_page_size size, unsigned int n,
		     unsigned int max_refused, unsigned int *done);
enum vmb_answer vmb_host_page_answer(const struct vmb_host *h,
				     enum vmb_op op, unsigned int i);

/**
 * vmb_host_set_page() - put a page frame into entry @i of the next request
 * @h: host session owning the batch page
 * @i: entry index, below %VMB_BATCH_MAX
 * @pfn: frame number (of the first 4 KiB frame for a 2 MiB page)
 */
static inline void vmb_host_set_page(struct vmb_host *h, unsigned int i,
				     unsigned long pfn)
{
	h->batch[i] = (u64)pfn << 12;
}

/**
 * vmb_host_can() - whether the granted capabilities include all of @caps
 * @h: host session
 * @caps: capability bits
 *
 * Return: true when every bit of @caps was granted.
 */
static inline bool vmb_host_can(const struct vmb_host *h, u32 caps)
{
	return (h->caps & caps) == caps;
}

/* Lock and unlock requests go in batches of up to VMB_BATCH_MAX pages. */
static inline bool vmb_host_batched(const struct vmb_host *h)
{
	return vmb_host_can(h, VMB_CAP_BATCHED);
}

/* 2 MiB pages can be locked. */
static inline bool vmb_host_huge(const struct vmb_host *h)
{
	return vmb_host_can(h, VMB_CAP_BATCHED | VMB_CAP_BATCHED_2M);
}

/* Some way of locking pages was granted. */
static inline bool vmb_host_can_lock(const struct vmb_host *h)
{
	return vmb_host_can(h, VMB_CAP_BASIC) || vmb_host_batched(h);
}

#endif /* VMMEMCTL_BACKDOOR_H */
