/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - VMware balloon backdoor protocol.
 *
 * This header and backdoor.c are the only places that know how the
 * hypervisor is reached and what its commands and status codes are.
 */
#ifndef VMMEMCTL_BACKDOOR_H
#define VMMEMCTL_BACKDOOR_H

#include <linux/types.h>

/* Commands, passed in ecx. Command 5 is reserved and never sent. */
enum vmm_cmd {
	VMM_CMD_START			= 0,
	VMM_CMD_GET_TARGET		= 1,
	VMM_CMD_LOCK			= 2,
	VMM_CMD_UNLOCK			= 3,
	VMM_CMD_GUEST_ID		= 4,
	VMM_CMD_BATCHED_LOCK		= 6,
	VMM_CMD_BATCHED_UNLOCK		= 7,
	VMM_CMD_BATCHED_2M_LOCK		= 8,
	VMM_CMD_BATCHED_2M_UNLOCK	= 9,
	VMM_CMD_VMCI_DOORBELL_SET	= 10,
	VMM_CMD_NR
};

/* Status codes, returned in eax (and per page in a batch entry). */
enum vmm_status {
	VMM_STATUS_SUCCESS		= 0,
	VMM_ERROR_CMD_INVALID		= 1,
	VMM_ERROR_PPN_INVALID		= 2,
	VMM_ERROR_PPN_LOCKED		= 3,
	VMM_ERROR_PPN_UNLOCKED		= 4,
	VMM_ERROR_PPN_PINNED		= 5,
	VMM_ERROR_PPN_NOTNEEDED		= 6,
	VMM_ERROR_RESET			= 7,
	VMM_ERROR_BUSY			= 8,
	/* Any other value is folded into this one (the "unknown" bucket). */
	VMM_STATUS_OTHER		= 9,
	VMM_STATUS_NR
};

/* Raw values that do not fit the per-page 5-bit status field. */
#define VMM_STATUS_FAILURE		0xffffffffU
#define VMM_STATUS_SUCCESS_WITH_CAPS	0x03000000U

/* Capabilities negotiated by START. Bit 0 is reserved. */
#define VMM_CAP_BASIC			0x02U
#define VMM_CAP_BATCHED			0x04U
#define VMM_CAP_BATCHED_2M		0x08U
#define VMM_CAP_DOORBELL		0x10U
#define VMM_CAP_TARGET_64		0x20U

/* GUEST_ID argument. */
#define VMM_GUEST_ID_LINUX		1

/* A batch page holds this many 64-bit entries. */
#define VMM_BATCH_MAX			512

/* Frames in a 2 MiB page (order 9 on x86). */
#define VMM_2M_ORDER			9

/**
 * struct vmm_host - what the guest knows about its session with the host
 * @offered: capabilities offered at the last START
 * @caps: capabilities the host granted at the last successful START
 *        (always a subset of @offered)
 * @target: last target, in 4 KiB pages, the host reported with a
 *          successful command; the caller bounds it
 * @target_fresh: a lock or unlock command refreshed @target since the
 *                caller last cleared this
 * @reset_required: set when any command answered ERROR_RESET, or when the
 *                  session has not been started yet; cleared by START
 * @batch: the communication page for batched commands, or NULL
 * @cmd_count: hypercalls issued, per command
 * @cmd_fail: hypercalls that did not answer success, per command
 * @status_count: non-success statuses seen, per status, for calls and
 *                batch entries alike
 *
 * The counters are written only by the holder of the balloon lock and read
 * locklessly by the statistics code.
 */
struct vmm_host {
	u32 offered;
	u32 caps;
	u64 target;
	bool target_fresh;
	bool reset_required;
	u64 *batch;
	unsigned long cmd_count[VMM_CMD_NR];
	unsigned long cmd_fail[VMM_CMD_NR];
	unsigned long status_count[VMM_STATUS_NR];
};

int vmm_host_init(struct vmm_host *h);
void vmm_host_exit(struct vmm_host *h);

const char *vmm_cmd_name(unsigned int cmd);
const char *vmm_status_name(unsigned int status);

u32 vmm_hv_start(struct vmm_host *h, u32 offered);
u32 vmm_hv_guest_id(struct vmm_host *h);
u32 vmm_hv_get_target(struct vmm_host *h, u64 ram_pages);
u32 vmm_hv_lock(struct vmm_host *h, unsigned long pfn, bool lock);
u32 vmm_hv_batch(struct vmm_host *h, unsigned int n, bool lock, bool huge);

/**
 * vmm_batch_set() - put a page frame into a batch entry
 * @h: host session owning the batch page
 * @i: entry index, below %VMM_BATCH_MAX
 * @pfn: frame number (of the first 4 KiB frame for a 2 MiB page)
 */
static inline void vmm_batch_set(struct vmm_host *h, unsigned int i,
				 unsigned long pfn)
{
	h->batch[i] = (u64)pfn << 12;
}

/**
 * vmm_batch_status() - per-entry status the host wrote back
 * @h: host session owning the batch page
 * @i: entry index
 *
 * Return: the 5-bit status of entry @i.
 */
static inline u32 vmm_batch_status(struct vmm_host *h, unsigned int i)
{
	return (u32)(READ_ONCE(h->batch[i]) & 0x1f);
}

/**
 * vmm_host_can() - whether the granted capabilities include all of @caps
 * @h: host session
 * @caps: capability bits
 *
 * Return: true when every bit of @caps was granted.
 */
static inline bool vmm_host_can(const struct vmm_host *h, u32 caps)
{
	return (h->caps & caps) == caps;
}

#endif /* VMMEMCTL_BACKDOOR_H */
