// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - module parameters.
 *
 * Every parameter is writable at run time and validated: a bad value is
 * refused with -EINVAL, the old value kept, and the reason logged. Setters
 * take no lock; the work item reads each value once per use.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "vmmemctl.h"

/* Largest rate an admin may set, in 4 KiB pages per second (16 GiB/s). */
#define VMB_RATE_LIMIT		4194304U

struct vmb_params vmb_params = {
	.inflate_rate		= { .min = 512, .max = VMB_RATE_UNLIMITED },
	.deflate_rate		= { .min = 512, .max = VMB_RATE_UNLIMITED },
	.refused_max		= 16,
	.pressure_holdoff	= 10,
	.max_size_percent	= 100,
	.max_size_is_percent	= true,
	.batching		= true,
	.huge_pages		= true,
	.enabled		= true,
	.pressure_release	= true,
};

/**
 * vmb_floor_pages() - available memory the balloon never takes
 * @ram: the guest's RAM in 4 KiB pages
 *
 * Return: min_free_mb, or RAM/32 within 8-512 MiB when that is 0.
 */
unsigned long vmb_floor_pages(unsigned long ram)
{
	unsigned long mb = READ_ONCE(vmb_params.min_free_mb);

	if (mb)
		return mb << (20 - PAGE_SHIFT);
	return clamp(ram / 32, 8UL << (20 - PAGE_SHIFT),
		     512UL << (20 - PAGE_SHIFT));
}

/**
 * vmb_max_size_pages() - the admin's cap on the balloon
 * @ram: the guest's RAM in 4 KiB pages
 *
 * Return: max_size in 4 KiB pages.
 */
unsigned long vmb_max_size_pages(unsigned long ram)
{
	if (READ_ONCE(vmb_params.max_size_is_percent))
		return ram / 100 * READ_ONCE(vmb_params.max_size_percent);
	return READ_ONCE(vmb_params.max_size_pages);
}

static int vmb_parse_uint(const char *val, unsigned int lo, unsigned int hi,
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

/*
 * ---- Rates: each bound is checked against the other --------------------
 *
 * A maximum of 0 (VMB_RATE_UNLIMITED) means no ceiling. At run time a
 * bound that crosses the other is refused. While the module loads the
 * parameters arrive in the order the admin wrote them, so there each one
 * is taken as given and vmb_params_fixup() reconciles them afterwards.
 */

static bool vmb_params_live;

static bool vmb_rate_crosses(unsigned int min, unsigned int max)
{
	return max != VMB_RATE_UNLIMITED && min > max;
}

/**
 * enum vmb_rate_bound - which bound of a rate a parameter sets
 * @VMB_RATE_MIN: the minimum
 * @VMB_RATE_MAX: the maximum (VMB_RATE_UNLIMITED for none)
 */
enum vmb_rate_bound {
	VMB_RATE_MIN,
	VMB_RATE_MAX,
};

/**
 * struct vmb_rate_rule - what one bound of a rate accepts
 * @lo: the smallest value (the largest is VMB_RATE_LIMIT)
 * @unit: what the value counts, for the refusal message
 * @crossing: how a value crosses the other bound, for the refusal message
 */
struct vmb_rate_rule {
	unsigned int lo;
	const char *unit;
	const char *crossing;
};

static const struct vmb_rate_rule vmb_rate_rules[] = {
	[VMB_RATE_MIN] = { 1, "pages per second", "above the maximum" },
	[VMB_RATE_MAX] = { 0, "pages per second (0 for no limit)",
			   "below the minimum" },
};

/* One bound of one rate, as a module parameter. */
struct vmb_rate_param {
	struct vmb_rate_bounds *rate;
	enum vmb_rate_bound bound;
};

static unsigned int *vmb_rate_field(struct vmb_rate_bounds *r,
				    enum vmb_rate_bound bound)
{
	return bound == VMB_RATE_MIN ? &r->min : &r->max;
}

static int vmb_set_rate(const char *val, const struct kernel_param *kp)
{
	const struct vmb_rate_param *p = kp->arg;
	const struct vmb_rate_rule *rule = &vmb_rate_rules[p->bound];
	struct vmb_rate_bounds next = {
		.min = READ_ONCE(p->rate->min),
		.max = READ_ONCE(p->rate->max),
	};
	unsigned int *v = vmb_rate_field(&next, p->bound);
	int ret;

	ret = vmb_parse_uint(val, rule->lo, VMB_RATE_LIMIT, kp->name,
			     rule->unit, v);
	if (ret)
		return ret;
	if (READ_ONCE(vmb_params_live) &&
	    vmb_rate_crosses(next.min, next.max)) {
		pr_err("%s: %u is %s (%u); value unchanged\n", kp->name, *v,
		       rule->crossing,
		       p->bound == VMB_RATE_MIN ? next.max : next.min);
		return -EINVAL;
	}
	WRITE_ONCE(*vmb_rate_field(p->rate, p->bound), *v);
	return 0;
}

static int vmb_get_rate(char *buf, const struct kernel_param *kp)
{
	const struct vmb_rate_param *p = kp->arg;

	return sysfs_emit(buf, "%u\n",
			  READ_ONCE(*vmb_rate_field(p->rate, p->bound)));
}

static void vmb_rate_fixup(struct vmb_rate_bounds *r, const char *name)
{
	unsigned int max = READ_ONCE(r->max);

	if (!vmb_rate_crosses(READ_ONCE(r->min), max))
		return;
	pr_warn("%s_rate_min: %u is above %s_rate_max; using %u\n",
		name, READ_ONCE(r->min), name, max);
	WRITE_ONCE(r->min, max);
}

/**
 * vmb_params_fixup() - reconcile the parameters given at load
 *
 * A minimum rate above the maximum given at load is lowered to the maximum,
 * with a warning. From then on a setter refuses a bound that crosses the
 * other.
 */
void vmb_params_fixup(void)
{
	vmb_rate_fixup(&vmb_params.inflate_rate, "inflate");
	vmb_rate_fixup(&vmb_params.deflate_rate, "deflate");
	WRITE_ONCE(vmb_params_live, true);
}

static const struct kernel_param_ops vmb_rate_ops = {
	.set = vmb_set_rate,
	.get = vmb_get_rate,
};

static const struct vmb_rate_param vmb_inflate_min_param = {
	&vmb_params.inflate_rate, VMB_RATE_MIN
};
module_param_cb(inflate_rate_min, &vmb_rate_ops,
		(void *)&vmb_inflate_min_param, 0644);
MODULE_PARM_DESC(inflate_rate_min,
		 "Slowest inflate rate, 4 KiB pages per second (1-4194304, default 512)");

static const struct vmb_rate_param vmb_inflate_max_param = {
	&vmb_params.inflate_rate, VMB_RATE_MAX
};
module_param_cb(inflate_rate_max, &vmb_rate_ops,
		(void *)&vmb_inflate_max_param, 0644);
MODULE_PARM_DESC(inflate_rate_max,
		 "Fastest inflate rate, 4 KiB pages per second (0-4194304, 0 = no limit, default 0)");

static const struct vmb_rate_param vmb_deflate_min_param = {
	&vmb_params.deflate_rate, VMB_RATE_MIN
};
module_param_cb(deflate_rate_min, &vmb_rate_ops,
		(void *)&vmb_deflate_min_param, 0644);
MODULE_PARM_DESC(deflate_rate_min,
		 "Slowest deflate rate, 4 KiB pages per second (1-4194304, default 512)");

static const struct vmb_rate_param vmb_deflate_max_param = {
	&vmb_params.deflate_rate, VMB_RATE_MAX
};
module_param_cb(deflate_rate_max, &vmb_rate_ops,
		(void *)&vmb_deflate_max_param, 0644);
MODULE_PARM_DESC(deflate_rate_max,
		 "Fastest deflate rate, 4 KiB pages per second (0-4194304, 0 = no limit, default 0)");

/* ---- Whole numbers within bounds -------------------------------------- */

struct vmb_uint_param {
	unsigned int *val;
	unsigned int lo;
	unsigned int hi;
	const char *unit;
};

static int vmb_set_uint(const char *val, const struct kernel_param *kp)
{
	const struct vmb_uint_param *p = kp->arg;
	unsigned int v;
	int ret;

	ret = vmb_parse_uint(val, p->lo, p->hi, kp->name, p->unit, &v);
	if (!ret)
		WRITE_ONCE(*p->val, v);
	return ret;
}

static int vmb_get_uint(char *buf, const struct kernel_param *kp)
{
	const struct vmb_uint_param *p = kp->arg;

	return sysfs_emit(buf, "%u\n", READ_ONCE(*p->val));
}

static const struct kernel_param_ops vmb_uint_ops = {
	.set = vmb_set_uint,
	.get = vmb_get_uint,
};

static const struct vmb_uint_param vmb_refused_max_param = {
	&vmb_params.refused_max, 1, 4096, "a count of pages"
};
module_param_cb(refused_max, &vmb_uint_ops, (void *)&vmb_refused_max_param,
		0644);
MODULE_PARM_DESC(refused_max,
		 "Refused pages after which inflation pauses until the next second (1-4096, default 16)");

static const struct vmb_uint_param vmb_holdoff_param = {
	&vmb_params.pressure_holdoff, 0, 3600, "seconds"
};
module_param_cb(pressure_holdoff, &vmb_uint_ops, (void *)&vmb_holdoff_param,
		0644);
MODULE_PARM_DESC(pressure_holdoff,
		 "Seconds without inflation after memory was given back under pressure (0-3600, default 10)");

static const struct vmb_uint_param vmb_min_free_param = {
	&vmb_params.min_free_mb, 0, 1U << 30, "MiB (0 for automatic)"
};
module_param_cb(min_free_mb, &vmb_uint_ops, (void *)&vmb_min_free_param,
		0644);
MODULE_PARM_DESC(min_free_mb,
		 "Available memory (MiB) the balloon never takes; 0 = automatic, RAM/32 within 8-512 MiB (default 0)");

/* ---- max_size: 4 KiB pages, or a percentage of RAM ("25%") ------------ */

static int vmb_set_max_size(const char *val, const struct kernel_param *kp)
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
		WRITE_ONCE(vmb_params.max_size_percent, v);
		WRITE_ONCE(vmb_params.max_size_is_percent, true);
		return 0;
	}
	if (kstrtoul(buf, 0, &v))
		goto bad;
	WRITE_ONCE(vmb_params.max_size_pages, v);
	WRITE_ONCE(vmb_params.max_size_is_percent, false);
	return 0;
bad:
	pr_err("%s: expects 4 KiB pages or a percentage of RAM (0%%-100%%); value unchanged\n",
	       kp->name);
	return -EINVAL;
}

static int vmb_get_max_size(char *buf, const struct kernel_param *kp)
{
	if (READ_ONCE(vmb_params.max_size_is_percent))
		return sysfs_emit(buf, "%u%%\n",
				  READ_ONCE(vmb_params.max_size_percent));
	return sysfs_emit(buf, "%lu\n", READ_ONCE(vmb_params.max_size_pages));
}

static const struct kernel_param_ops vmb_max_size_ops = {
	.set = vmb_set_max_size,
	.get = vmb_get_max_size,
};

module_param_cb(max_size, &vmb_max_size_ops, NULL, 0644);
MODULE_PARM_DESC(max_size,
		 "Largest balloon: 4 KiB pages, or a percentage of RAM such as 25% (default 100%)");

/* ---- Switches --------------------------------------------------------- */

static int vmb_set_bool(const char *val, const struct kernel_param *kp)
{
	int ret = param_set_bool(val, kp);

	if (ret)
		pr_err("%s: expects y or n; value unchanged\n", kp->name);
	return ret;
}

/* What the driver offers the host: a change restarts the session. */
static int vmb_set_protocol_switch(const char *val,
				   const struct kernel_param *kp)
{
	bool old = *(bool *)kp->arg;
	int ret;

	ret = vmb_set_bool(val, kp);
	if (!ret && old != *(bool *)kp->arg)
		WRITE_ONCE(vmb_params.protocol_changed, true);
	return ret;
}

static const struct kernel_param_ops vmb_protocol_switch_ops = {
	.set = vmb_set_protocol_switch,
	.get = param_get_bool,
};

static const struct kernel_param_ops vmb_bool_ops = {
	.set = vmb_set_bool,
	.get = param_get_bool,
};

module_param_cb(batching, &vmb_protocol_switch_ops, &vmb_params.batching,
		0644);
MODULE_PARM_DESC(batching,
		 "Use batched lock/unlock when the host offers it (default y); a change restarts the session");
module_param_cb(huge_pages, &vmb_protocol_switch_ops, &vmb_params.huge_pages,
		0644);
MODULE_PARM_DESC(huge_pages,
		 "Balloon 2 MiB pages when the host offers them (default y); a change restarts the session");
module_param_cb(enabled, &vmb_bool_ops, &vmb_params.enabled, 0644);
MODULE_PARM_DESC(enabled,
		 "Follow the host's target (default y); n deflates the balloon to zero and keeps it there");
module_param_cb(pressure_release, &vmb_bool_ops,
		&vmb_params.pressure_release, 0644);
MODULE_PARM_DESC(pressure_release,
		 "Give memory back when the guest runs short, and before an OOM kill (default y)");
