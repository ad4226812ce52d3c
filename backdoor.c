// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - the VMware balloon backdoor.
 *
 * Every request to the host is one "inl" from the balloon port with a magic
 * number in eax. The host answers a status in eax, its result (the target)
 * in ebx, and, for START only, the granted capabilities in ecx. Nothing
 * outside this file issues the instruction or interprets a raw status.
 */

#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/printk.h>
#include <asm/io.h>

#include "backdoor.h"

#define VMM_BACKDOOR_PORT	0x5670
#define VMM_BACKDOOR_MAGIC	0x456c6d6f

static const char * const vmm_cmd_names[VMM_CMD_NR] = {
	[VMM_CMD_START]			= "start",
	[VMM_CMD_GET_TARGET]		= "target",
	[VMM_CMD_LOCK]			= "lock",
	[VMM_CMD_UNLOCK]		= "unlock",
	[VMM_CMD_GUEST_ID]		= "guestType",
	[VMM_CMD_BATCHED_LOCK]		= "batchLock",
	[VMM_CMD_BATCHED_UNLOCK]	= "batchUnlock",
	[VMM_CMD_BATCHED_2M_LOCK]	= "2m-lock",
	[VMM_CMD_BATCHED_2M_UNLOCK]	= "2m-unlock",
	[VMM_CMD_VMCI_DOORBELL_SET]	= "doorbellSet",
};

static const char * const vmm_status_names[VMM_STATUS_NR] = {
	[VMM_STATUS_SUCCESS]		= "success",
	[VMM_ERROR_CMD_INVALID]		= "cmd-invalid",
	[VMM_ERROR_PPN_INVALID]		= "ppn-invalid",
	[VMM_ERROR_PPN_LOCKED]		= "ppn-locked",
	[VMM_ERROR_PPN_UNLOCKED]	= "ppn-unlocked",
	[VMM_ERROR_PPN_PINNED]		= "ppn-pinned",
	[VMM_ERROR_PPN_NOTNEEDED]	= "ppn-notneeded",
	[VMM_ERROR_RESET]		= "reset",
	[VMM_ERROR_BUSY]		= "busy",
	[VMM_STATUS_OTHER]		= "failure",
};

/* Capability each command needs; START, GET_TARGET and GUEST_ID need none. */
static const u32 vmm_cmd_caps[VMM_CMD_NR] = {
	[VMM_CMD_LOCK]			= VMM_CAP_BASIC,
	[VMM_CMD_UNLOCK]		= VMM_CAP_BASIC,
	[VMM_CMD_BATCHED_LOCK]		= VMM_CAP_BATCHED,
	[VMM_CMD_BATCHED_UNLOCK]	= VMM_CAP_BATCHED,
	[VMM_CMD_BATCHED_2M_LOCK]	= VMM_CAP_BATCHED | VMM_CAP_BATCHED_2M,
	[VMM_CMD_BATCHED_2M_UNLOCK]	= VMM_CAP_BATCHED | VMM_CAP_BATCHED_2M,
	[VMM_CMD_VMCI_DOORBELL_SET]	= VMM_CAP_DOORBELL,
};

/**
 * vmm_cmd_name() - printable name of a command
 * @cmd: command number
 *
 * Return: the name used in logs and statistics, or NULL for a number that is
 * not a command.
 */
const char *vmm_cmd_name(unsigned int cmd)
{
	return cmd < VMM_CMD_NR ? vmm_cmd_names[cmd] : NULL;
}

/**
 * vmm_status_name() - printable name of a status
 * @status: raw status from eax or a batch entry
 *
 * Return: the name used in logs and statistics.
 */
const char *vmm_status_name(unsigned int status)
{
	return status < VMM_STATUS_NR ? vmm_status_names[status] :
					vmm_status_names[VMM_STATUS_OTHER];
}

/*
 * The hypercall itself. Kept out of line so that the module holds exactly
 * one backdoor instruction. The host may change any of these registers and
 * read or write guest memory (the batch page), hence the clobbers.
 */
static noinline u32 vmm_backdoor(unsigned long cmd, unsigned long arg1,
				 unsigned long arg2, unsigned long *result,
				 unsigned long *caps)
{
	unsigned long status, rbx, rcx, rdx, rsi;

	asm volatile ("inl (%%dx), %%eax"
		      : "=a" (status), "=b" (rbx), "=c" (rcx), "=d" (rdx),
			"=S" (rsi)
		      : "a" (VMM_BACKDOOR_MAGIC), "b" (arg1), "c" (cmd),
			"d" (VMM_BACKDOOR_PORT), "S" (arg2)
		      : "memory");

	*result = rbx;
	*caps = rcx;
	return (u32)status;
}

/* Fold a raw status into a statistics bucket. */
static unsigned int vmm_status_bucket(u32 status)
{
	return status < VMM_STATUS_NR ? status : VMM_STATUS_OTHER;
}

/**
 * vmm_host_note_status() - account for a status and notice a reset
 * @h: host session
 * @status: raw status of a call or of one batch entry
 */
static void vmm_host_note_status(struct vmm_host *h, u32 status)
{
	if (status == VMM_STATUS_SUCCESS)
		return;
	h->status_count[vmm_status_bucket(status)]++;
	if (status == VMM_ERROR_RESET)
		h->reset_required = true;
}

static u32 vmm_cmd(struct vmm_host *h, unsigned int cmd, unsigned long arg1,
		   unsigned long arg2)
{
	unsigned long result, caps;
	u32 status;

	/* Never send what the host did not grant: that is a driver bug. */
	if ((h->caps & vmm_cmd_caps[cmd]) != vmm_cmd_caps[cmd]) {
		pr_err_once("vmmemctl: refusing to send %s: not granted (caps %#x)\n",
			    vmm_cmd_names[cmd], h->caps);
		return VMM_ERROR_CMD_INVALID;
	}

	status = vmm_backdoor(cmd, arg1, arg2, &result, &caps);
	h->cmd_count[cmd]++;

	if (cmd == VMM_CMD_START) {
		if (status == VMM_STATUS_SUCCESS_WITH_CAPS) {
			/* Only what was offered can be used. */
			h->caps = (u32)caps & (u32)arg1;
			return VMM_STATUS_SUCCESS;
		}
		if (status == VMM_STATUS_SUCCESS) {
			/* An old host: protocol version 2, basic only. */
			h->caps = (u32)arg1 & VMM_CAP_BASIC;
			return VMM_STATUS_SUCCESS;
		}
	}

	if (status != VMM_STATUS_SUCCESS) {
		h->cmd_fail[cmd]++;
		vmm_host_note_status(h, status);
		return status;
	}

	switch (cmd) {
	case VMM_CMD_GET_TARGET:
	case VMM_CMD_LOCK:
	case VMM_CMD_UNLOCK:
	case VMM_CMD_BATCHED_LOCK:
	case VMM_CMD_BATCHED_UNLOCK:
	case VMM_CMD_BATCHED_2M_LOCK:
	case VMM_CMD_BATCHED_2M_UNLOCK:
		h->target = vmm_host_can(h, VMM_CAP_TARGET_64) ?
			    (u64)result : (u32)result;
		h->target_fresh = cmd != VMM_CMD_GET_TARGET;
		break;
	default:
		break;
	}
	return status;
}

/**
 * vmm_hv_start() - open (or reopen) the session with the host
 * @h: host session
 * @offered: capabilities the guest offers; 0 asks the host to drop the
 *           balloon and tracks nothing afterwards
 *
 * On success the granted capabilities (a subset of @offered) are in
 * @h->caps and the reset request is cleared. On failure @h->caps is 0, so
 * nothing but START, GET_TARGET and GUEST_ID can be sent.
 *
 * Return: %VMM_STATUS_SUCCESS or the host's error status.
 */
u32 vmm_hv_start(struct vmm_host *h, u32 offered)
{
	u32 status;

	h->caps = 0;
	h->offered = offered;
	h->target_fresh = false;
	status = vmm_cmd(h, VMM_CMD_START, offered, 0);
	if (status == VMM_STATUS_SUCCESS)
		h->reset_required = false;
	return status;
}

/**
 * vmm_hv_guest_id() - tell the host the guest runs Linux
 * @h: host session
 *
 * Return: the host's status.
 */
u32 vmm_hv_guest_id(struct vmm_host *h)
{
	return vmm_cmd(h, VMM_CMD_GUEST_ID, VMM_GUEST_ID_LINUX, 0);
}

/**
 * vmm_hv_get_target() - ask the host how many pages it wants
 * @h: host session
 * @ram_pages: the guest's RAM in 4 KiB pages, sent as the limit
 *
 * A limit that does not fit 32 bits cannot be sent unless the host granted
 * the 64-bit target capability; the call is then refused locally.
 * On success the (unbounded) answer is in @h->target.
 *
 * Return: the host's status, or %VMM_ERROR_CMD_INVALID when refused locally.
 */
u32 vmm_hv_get_target(struct vmm_host *h, u64 ram_pages)
{
	if (ram_pages != (u32)ram_pages && !vmm_host_can(h, VMM_CAP_TARGET_64))
		return VMM_ERROR_CMD_INVALID;
	return vmm_cmd(h, VMM_CMD_GET_TARGET, ram_pages, 0);
}

/**
 * vmm_hv_lock() - lock or unlock one 4 KiB page with the basic protocol
 * @h: host session
 * @pfn: the page frame; must fit 32 bits
 * @lock: true to lock (inflate), false to unlock (deflate)
 *
 * Return: the host's status, or %VMM_ERROR_PPN_INVALID without a hypercall
 * when @pfn does not fit the protocol.
 */
u32 vmm_hv_lock(struct vmm_host *h, unsigned long pfn, bool lock)
{
	if (pfn != (u32)pfn) {
		h->status_count[VMM_ERROR_PPN_INVALID]++;
		return VMM_ERROR_PPN_INVALID;
	}
	return vmm_cmd(h, lock ? VMM_CMD_LOCK : VMM_CMD_UNLOCK, pfn, 0);
}

/**
 * vmm_hv_batch() - lock or unlock the first @n entries of the batch page
 * @h: host session
 * @n: number of entries, 1 to %VMM_BATCH_MAX
 * @lock: true to lock, false to unlock
 * @huge: entries are 2 MiB pages
 *
 * Per-entry statuses are read back with vmm_batch_status() and accounted
 * here; when the call itself fails none of the entries was processed.
 *
 * Return: the status of the call.
 */
u32 vmm_hv_batch(struct vmm_host *h, unsigned int n, bool lock, bool huge)
{
	unsigned int cmd, i;
	u32 status;

	if (!h->batch || n == 0 || n > VMM_BATCH_MAX)
		return VMM_ERROR_CMD_INVALID;

	if (huge)
		cmd = lock ? VMM_CMD_BATCHED_2M_LOCK : VMM_CMD_BATCHED_2M_UNLOCK;
	else
		cmd = lock ? VMM_CMD_BATCHED_LOCK : VMM_CMD_BATCHED_UNLOCK;

	status = vmm_cmd(h, cmd, PHYS_PFN(virt_to_phys(h->batch)), n);
	if (status == VMM_STATUS_SUCCESS)
		for (i = 0; i < n; i++)
			vmm_host_note_status(h, vmm_batch_status(h, i));
	return status;
}

/**
 * vmm_host_init() - prepare a host session
 * @h: host session to initialise
 *
 * Allocates the batch page. The session starts closed: the first work run
 * must START it.
 *
 * Return: 0 or -ENOMEM.
 */
int vmm_host_init(struct vmm_host *h)
{
	*h = (struct vmm_host){ .reset_required = true };
	h->batch = (u64 *)get_zeroed_page(GFP_KERNEL);
	return h->batch ? 0 : -ENOMEM;
}

/**
 * vmm_host_exit() - release what vmm_host_init() allocated
 * @h: host session
 */
void vmm_host_exit(struct vmm_host *h)
{
	free_page((unsigned long)h->batch);
	h->batch = NULL;
}
