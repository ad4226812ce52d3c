// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - the VMware balloon backdoor.
 *
 * Every request to the host is one "inl" from the balloon port with a magic
 * number in eax. The host answers a status in eax, its result (the target)
 * in ebx, and, for START only, the granted capabilities in ecx. Nothing
 * outside this file issues the instruction or interprets a raw status.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/gfp.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/printk.h>
#include <asm/io.h>

#include "backdoor.h"

#define VMB_BACKDOOR_PORT	0x5670
#define VMB_BACKDOOR_MAGIC	0x456c6d6f

/* START's answer when the host also returns capabilities in ecx. */
#define VMB_STATUS_SUCCESS_WITH_CAPS	0x03000000U

/* Offered by START but never used: the driver polls instead. */
#define VMB_CAP_DOORBELL		0x10U

/* GUEST_ID argument. */
#define VMB_GUEST_ID_LINUX		1

static const char * const vmb_cmd_names[VMB_CMD_NR] = {
	[VMB_CMD_START]			= "start",
	[VMB_CMD_GET_TARGET]		= "target",
	[VMB_CMD_LOCK]			= "lock",
	[VMB_CMD_UNLOCK]		= "unlock",
	[VMB_CMD_GUEST_ID]		= "guestType",
	[VMB_CMD_BATCHED_LOCK]		= "batchLock",
	[VMB_CMD_BATCHED_UNLOCK]	= "batchUnlock",
	[VMB_CMD_BATCHED_2M_LOCK]	= "2m-lock",
	[VMB_CMD_BATCHED_2M_UNLOCK]	= "2m-unlock",
	[VMB_CMD_VMCI_DOORBELL_SET]	= "doorbellSet",
};

static const char * const vmb_status_names[VMB_STATUS_NR] = {
	[VMB_STATUS_SUCCESS]		= "success",
	[VMB_ERROR_CMD_INVALID]		= "cmd-invalid",
	[VMB_ERROR_PPN_INVALID]		= "ppn-invalid",
	[VMB_ERROR_PPN_LOCKED]		= "ppn-locked",
	[VMB_ERROR_PPN_UNLOCKED]	= "ppn-unlocked",
	[VMB_ERROR_PPN_PINNED]		= "ppn-pinned",
	[VMB_ERROR_PPN_NOTNEEDED]	= "ppn-notneeded",
	[VMB_ERROR_RESET]		= "reset",
	[VMB_ERROR_BUSY]		= "busy",
	[VMB_STATUS_OTHER]		= "failure",
};

/* Capability each command needs; START, GET_TARGET and GUEST_ID need none. */
static const u32 vmb_cmd_caps[VMB_CMD_NR] = {
	[VMB_CMD_LOCK]			= VMB_CAP_BASIC,
	[VMB_CMD_UNLOCK]		= VMB_CAP_BASIC,
	[VMB_CMD_BATCHED_LOCK]		= VMB_CAP_BATCHED,
	[VMB_CMD_BATCHED_UNLOCK]	= VMB_CAP_BATCHED,
	[VMB_CMD_BATCHED_2M_LOCK]	= VMB_CAP_BATCHED | VMB_CAP_BATCHED_2M,
	[VMB_CMD_BATCHED_2M_UNLOCK]	= VMB_CAP_BATCHED | VMB_CAP_BATCHED_2M,
	[VMB_CMD_VMCI_DOORBELL_SET]	= VMB_CAP_DOORBELL,
};

/**
 * vmb_cmd_name() - printable name of a command
 * @cmd: command number
 *
 * Return: the name used in logs and statistics, or NULL for a number that is
 * not a command.
 */
const char *vmb_cmd_name(unsigned int cmd)
{
	return cmd < VMB_CMD_NR ? vmb_cmd_names[cmd] : NULL;
}

/**
 * vmb_status_name() - printable name of a status
 * @status: raw status from eax or a batch entry
 *
 * Return: the name used in logs and statistics.
 */
const char *vmb_status_name(unsigned int status)
{
	return status < VMB_STATUS_NR ? vmb_status_names[status] :
					vmb_status_names[VMB_STATUS_OTHER];
}

/*
 * The hypercall itself. Kept out of line so that the module holds exactly
 * one backdoor instruction. The host may change any of these registers and
 * read or write guest memory (the batch page), hence the clobbers.
 */
static noinline u32 vmb_backdoor(unsigned long cmd, unsigned long arg1,
				 unsigned long arg2, unsigned long *result,
				 unsigned long *caps)
{
	unsigned long status, rbx, rcx, rdx, rsi;

	asm volatile ("inl (%%dx), %%eax"
		      : "=a" (status), "=b" (rbx), "=c" (rcx), "=d" (rdx),
			"=S" (rsi)
		      : "a" (VMB_BACKDOOR_MAGIC), "b" (arg1), "c" (cmd),
			"d" (VMB_BACKDOOR_PORT), "S" (arg2)
		      : "memory");

	*result = rbx;
	*caps = rcx;
	return (u32)status;
}

/* Fold a raw status into a statistics bucket. */
static unsigned int vmb_status_bucket(u32 status)
{
	return status < VMB_STATUS_NR ? status : VMB_STATUS_OTHER;
}

/**
 * vmb_host_note_status() - account for the status of a call; notice a reset
 * @h: host session
 * @status: raw status of a call
 *
 * Only a call answering RESET means the host dropped the session (and with
 * it the balloon). A RESET in one entry of a batch that itself succeeded
 * is that page's status: the page is refused (or stays locked), and every
 * other page of the batch is still the host's, so nothing may be freed
 * until the call itself says so. This is what the in-tree driver does.
 */
static void vmb_host_note_status(struct vmb_host *h, u32 status)
{
	if (status == VMB_STATUS_SUCCESS)
		return;
	h->status_count[vmb_status_bucket(status)]++;
	if (status == VMB_ERROR_RESET)
		h->reset_required = true;
}

/* Account for the status of one batch entry. */
static void vmb_host_note_entry_status(struct vmb_host *h, u32 status)
{
	if (status != VMB_STATUS_SUCCESS)
		h->status_count[vmb_status_bucket(status)]++;
}

static u32 vmb_cmd(struct vmb_host *h, unsigned int cmd, unsigned long arg1,
		   unsigned long arg2)
{
	unsigned long result, caps;
	u32 status;

	/* Never send what the host did not grant: that is a driver bug. */
	if ((h->caps & vmb_cmd_caps[cmd]) != vmb_cmd_caps[cmd]) {
		pr_err_once("refusing to send %s: not granted (caps %#x)\n",
			    vmb_cmd_names[cmd], h->caps);
		return VMB_ERROR_CMD_INVALID;
	}

	status = vmb_backdoor(cmd, arg1, arg2, &result, &caps);
	h->cmd_count[cmd]++;

	if (cmd == VMB_CMD_START) {
		if (status == VMB_STATUS_SUCCESS_WITH_CAPS) {
			/* Only what was offered can be used. */
			h->caps = (u32)caps & (u32)arg1;
			return VMB_STATUS_SUCCESS;
		}
		if (status == VMB_STATUS_SUCCESS) {
			/* An old host: protocol version 2, basic only. */
			h->caps = (u32)arg1 & VMB_CAP_BASIC;
			return VMB_STATUS_SUCCESS;
		}
	}

	if (status != VMB_STATUS_SUCCESS) {
		h->cmd_fail[cmd]++;
		vmb_host_note_status(h, status);
		return status;
	}

	switch (cmd) {
	case VMB_CMD_GET_TARGET:
	case VMB_CMD_LOCK:
	case VMB_CMD_UNLOCK:
	case VMB_CMD_BATCHED_LOCK:
	case VMB_CMD_BATCHED_UNLOCK:
	case VMB_CMD_BATCHED_2M_LOCK:
	case VMB_CMD_BATCHED_2M_UNLOCK:
		h->target = vmb_host_can(h, VMB_CAP_TARGET_64) ?
			    (u64)result : (u32)result;
		break;
	default:
		break;
	}
	return status;
}

/**
 * vmb_host_start() - open (or reopen) the session with the host
 * @h: host session
 * @offered: capabilities the guest offers; 0 asks the host to drop the
 *           balloon and tracks nothing afterwards
 *
 * On success the granted capabilities (a subset of @offered) are in
 * @h->caps and the reset request is cleared. On failure @h->caps is 0, so
 * nothing but START, GET_TARGET and GUEST_ID can be sent.
 *
 * Return: %VMB_STATUS_SUCCESS or the host's error status.
 */
u32 vmb_host_start(struct vmb_host *h, u32 offered)
{
	u32 status;

	h->caps = 0;
	h->offered = offered;
	status = vmb_cmd(h, VMB_CMD_START, offered, 0);
	if (status == VMB_STATUS_SUCCESS)
		h->reset_required = false;
	return status;
}

/* How often a host that answers BUSY is asked again to drop the balloon. */
#define VMB_DROP_TRIES	10

/**
 * vmb_host_drop_balloon() - make the host let go of every page (unload)
 * @h: host session
 *
 * START without capabilities drops the whole balloon at once; a busy host
 * is asked again, 100 ms apart. A START the host did not take changed
 * nothing: the session stands as it was, with its capabilities.
 *
 * Context: may sleep.
 * Return: true when the host holds none of the balloon's pages (it took
 * the START, or it had already reset the session).
 */
bool vmb_host_drop_balloon(struct vmb_host *h)
{
	u32 caps = h->caps, offered = h->offered, status;
	int i;

	for (i = 0; i < VMB_DROP_TRIES && !h->reset_required; i++) {
		status = vmb_host_start(h, 0);
		if (status == VMB_STATUS_SUCCESS)
			return true;
		if (status != VMB_ERROR_BUSY)
			break;
		msleep(100);
	}
	if (h->reset_required)
		return true;
	h->caps = caps;
	h->offered = offered;
	return false;
}

/**
 * vmb_host_guest_id() - tell the host the guest runs Linux
 * @h: host session
 *
 * Return: the host's status.
 */
u32 vmb_host_guest_id(struct vmb_host *h)
{
	return vmb_cmd(h, VMB_CMD_GUEST_ID, VMB_GUEST_ID_LINUX, 0);
}

/**
 * vmb_host_get_target() - ask the host how many pages it wants
 * @h: host session
 * @ram_pages: the guest's RAM in 4 KiB pages, sent as the limit
 *
 * A limit that does not fit 32 bits cannot be sent unless the host granted
 * the 64-bit target capability; the call is then refused locally.
 * On success the (unbounded) answer is in @h->target.
 *
 * Return: the host's status, or %VMB_ERROR_CMD_INVALID when refused locally.
 */
u32 vmb_host_get_target(struct vmb_host *h, u64 ram_pages)
{
	if (ram_pages != (u32)ram_pages && !vmb_host_can(h, VMB_CAP_TARGET_64))
		return VMB_ERROR_CMD_INVALID;
	return vmb_cmd(h, VMB_CMD_GET_TARGET, ram_pages, 0);
}

/* A per-page answer: the host kept going, only this page was refused. */
static bool vmb_status_is_refusal(u32 status)
{
	return status >= VMB_ERROR_PPN_INVALID &&
	       status <= VMB_ERROR_PPN_NOTNEEDED;
}

/*
 * What a page's status means for that page. PPN_LOCKED to a lock says the
 * host already holds the page, PPN_UNLOCKED to an unlock that it does not:
 * either way the page is where it was asked to be.
 */
static enum vmb_answer vmb_answer(enum vmb_op op, u32 status)
{
	if (status == VMB_STATUS_SUCCESS)
		return VMB_ANSWER_DONE;
	if (op == VMB_OP_LOCK) {
		if (status == VMB_ERROR_PPN_LOCKED)
			return VMB_ANSWER_DONE;
		if (status == VMB_ERROR_PPN_NOTNEEDED)
			return VMB_ANSWER_HOST_FULL;
	} else if (status == VMB_ERROR_PPN_UNLOCKED) {
		return VMB_ANSWER_NOT_HELD;
	}
	return VMB_ANSWER_REFUSED;
}

/* The host's status for entry @i of the last request. */
static u32 vmb_host_page_status(const struct vmb_host *h, unsigned int i)
{
	return (u32)(READ_ONCE(h->batch[i]) & 0x1f);
}

/**
 * vmb_host_page_answer() - what the host did with entry @i of a request
 * @h: host session owning the batch page
 * @op: the request's operation
 * @i: entry index, below the count vmb_host_lock_op() reported done
 *
 * Return: where the page is now, as far as the host is concerned.
 */
enum vmb_answer vmb_host_page_answer(const struct vmb_host *h,
				     enum vmb_op op, unsigned int i)
{
	return vmb_answer(op, vmb_host_page_status(h, i));
}

/*
 * The basic protocol: one call per 4 KiB frame, its status written back
 * into the entry as a batched host would. A call that fails for any reason
 * other than this page stops the request there; so do a host that needs
 * no more pages and the @max_refused-th refusal, since every further call
 * would be refused too or is not wanted.
 */
static u32 vmb_host_lock_each(struct vmb_host *h, enum vmb_op op,
			      unsigned int n, unsigned int max_refused,
			      unsigned int *done)
{
	unsigned int cmd = op == VMB_OP_LOCK ? VMB_CMD_LOCK : VMB_CMD_UNLOCK;
	unsigned int i = 0, refused = 0;
	enum vmb_answer answer;
	unsigned long pfn;
	u32 status;

	while (i < n) {
		pfn = h->batch[i] >> 12;
		if (pfn != (u32)pfn) {
			/* The basic protocol carries 32-bit frame numbers. */
			h->status_count[VMB_ERROR_PPN_INVALID]++;
			status = VMB_ERROR_PPN_INVALID;
		} else {
			status = vmb_cmd(h, cmd, pfn, 0);
		}
		if (status != VMB_STATUS_SUCCESS &&
		    !vmb_status_is_refusal(status)) {
			*done = i;
			return status;
		}
		h->batch[i++] |= status;
		answer = vmb_answer(op, status);
		if (answer == VMB_ANSWER_HOST_FULL ||
		    (answer == VMB_ANSWER_REFUSED && ++refused >= max_refused))
			break;
	}
	*done = i;
	return VMB_STATUS_SUCCESS;
}

/**
 * vmb_host_lock_op() - lock or unlock the pages in the first @n entries
 * @h: host session
 * @op: lock or unlock
 * @size: the size of every page of the request
 * @n: number of entries set with vmb_host_set_page(), 1 to %VMB_BATCH_MAX
 * @max_refused: with one call per page, send no more once this many pages
 *               were refused (at least one), or once the host said it
 *               needs no more pages
 * @done: entries the host answered for; each has its own answer, read
 *        with vmb_host_page_answer()
 *
 * Batched when granted (one call, every entry answered), one call per
 * page otherwise. When a call fails, the entries from @done on are left
 * unanswered; with one call per page they are also left unsent when the
 * request stopped at a refusal (see @max_refused).
 *
 * Return: %VMB_STATUS_SUCCESS unless a call failed, otherwise the status
 * of the call that stopped the request.
 */
u32 vmb_host_lock_op(struct vmb_host *h, enum vmb_op op,
		     enum vmb_page_size size, unsigned int n,
		     unsigned int max_refused, unsigned int *done)
{
	static const unsigned int batched_cmd[VMB_NR_PAGE_SIZES][2] = {
		[VMB_PAGE_4K] = { [VMB_OP_LOCK] = VMB_CMD_BATCHED_LOCK,
				  [VMB_OP_UNLOCK] = VMB_CMD_BATCHED_UNLOCK },
		[VMB_PAGE_2M] = { [VMB_OP_LOCK] = VMB_CMD_BATCHED_2M_LOCK,
				  [VMB_OP_UNLOCK] = VMB_CMD_BATCHED_2M_UNLOCK },
	};
	unsigned int i;
	u32 status;

	*done = 0;
	if (n == 0 || n > VMB_BATCH_MAX)
		return VMB_ERROR_CMD_INVALID;
	if (!vmb_host_batched(h)) {
		if (size != VMB_PAGE_4K)
			return VMB_ERROR_CMD_INVALID;
		return vmb_host_lock_each(h, op, n, max(max_refused, 1U), done);
	}

	status = vmb_cmd(h, batched_cmd[size][op],
			 PHYS_PFN(virt_to_phys(h->batch)), n);
	if (status != VMB_STATUS_SUCCESS)
		return status;
	for (i = 0; i < n; i++)
		vmb_host_note_entry_status(h, vmb_host_page_status(h, i));
	*done = n;
	return status;
}

/**
 * vmb_host_init() - prepare a host session
 * @h: host session to initialise
 *
 * Allocates the batch page (used by the basic protocol too, to hold a
 * request's frames and answers). The session starts closed: the first work run
 * must START it.
 *
 * Return: 0 or -ENOMEM.
 */
int vmb_host_init(struct vmb_host *h)
{
	*h = (struct vmb_host){ .reset_required = true };
	h->batch = (u64 *)get_zeroed_page(GFP_KERNEL);
	return h->batch ? 0 : -ENOMEM;
}

/**
 * vmb_host_exit() - release what vmb_host_init() allocated
 * @h: host session
 */
void vmb_host_exit(struct vmb_host *h)
{
	free_page((unsigned long)h->batch);
	h->batch = NULL;
}
