// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - statistics: /sys/kernel/debug/vmmemctl for root, and a few
 * world-readable attributes in /sys/kernel/vmmemctl/ for everyone.
 *
 * The debugfs file starts with exactly the in-tree vmw_balloon's lines, in
 * its order and format, so that existing admin scripts keep working; our
 * own lines follow them, in the same "%-22s: value" layout.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dcache.h>
#include <linux/debugfs.h>
#include <linux/kobject.h>
#include <linux/mm.h>
#include <linux/seq_file.h>
#include <linux/stddef.h>
#include <linux/sysfs.h>

#include "backdoor.h"
#include "vmmemctl.h"

static struct vmb_balloon *vmb_stats_balloon;
static struct kobject *vmb_kobj;
static struct dentry *vmb_debugfs;

static const char * const vmb_limit_names[VMB_LIMIT_NR] = {
	[VMB_LIMIT_NONE]	= "none",
	[VMB_LIMIT_RAM]		= "ram",
	[VMB_LIMIT_CAP]		= "max_size",
	[VMB_LIMIT_FLOOR]	= "min_free",
	[VMB_LIMIT_HOLDOFF]	= "holdoff",
	[VMB_LIMIT_DISABLED]	= "disabled",
	[VMB_LIMIT_RECLAIM]	= "reclaim",
	[VMB_LIMIT_NEAR_FLOOR]	= "near_floor",
	[VMB_LIMIT_ALLOC_FAIL]	= "alloc_fail",
};

static const char *vmb_limit_name(enum vmb_limit limit)
{
	return limit < VMB_LIMIT_NR ? vmb_limit_names[limit] : "?";
}

static const char * const vmb_size_names[VMB_NR_PAGE_SIZES] = {
	[VMB_PAGE_4K] = "4k",
	[VMB_PAGE_2M] = "2M",
};

/* The in-tree driver's per page size counters, in its order. */
static const struct {
	const char *name;
	size_t offset;
} vmb_page_stat_fields[] = {
	{ "alloc",	offsetof(struct vmb_page_stats, alloc) },
	{ "allocFail",	offsetof(struct vmb_page_stats, alloc_fail) },
	{ "errAlloc",	offsetof(struct vmb_page_stats, refused) },
	{ "errFree",	offsetof(struct vmb_page_stats, unlock_fail) },
	{ "free",	offsetof(struct vmb_page_stats, free) },
};

static unsigned long vmb_page_stat(const struct vmb_page_stats *s,
				   size_t offset)
{
	return READ_ONCE(*(const unsigned long *)((const char *)s + offset));
}

static void vmb_show_ul(struct seq_file *f, const char *name,
			unsigned long v)
{
	seq_printf(f, "%-22s: %16lu\n", name, v);
}

static void vmb_show_str(struct seq_file *f, const char *name,
			 const char *v)
{
	seq_printf(f, "%-22s: %16s\n", name, v);
}

/* "<name> 4k" and "<name> 2M": one of our per-size lines. */
static void vmb_show_per_size(struct seq_file *f, const char *name,
			      const unsigned long *v)
{
	enum vmb_page_size size;
	char line[32];

	for (size = 0; size < VMB_NR_PAGE_SIZES; size++) {
		snprintf(line, sizeof(line), "%s %s", name, vmb_size_names[size]);
		vmb_show_ul(f, line, READ_ONCE(v[size]));
	}
}

static void vmb_show_rate(struct seq_file *f, const char *name,
			  const struct vmb_rate *r)
{
	char line[32];

	snprintf(line, sizeof(line), "%s rate", name);
	vmb_show_ul(f, line, vmb_rate_now(r));
	snprintf(line, sizeof(line), "%s rate min", name);
	vmb_show_ul(f, line, READ_ONCE(r->bounds->min));
	snprintf(line, sizeof(line), "%s rate max", name);
	vmb_show_ul(f, line, READ_ONCE(r->bounds->max));
}

/*
 * The in-tree vmw_balloon's lines, in its order and format, so that scripts
 * written for it keep working; then ours.
 */
static void vmb_show_in_tree(struct seq_file *f, struct vmb_balloon *b)
{
	struct vmb_host *h = &b->host;
	enum vmb_page_size size;
	unsigned int i;

	seq_printf(f, "%-22s: %#16x\n", "balloon capabilities",
		   READ_ONCE(h->offered));
	seq_printf(f, "%-22s: %#16x\n", "used capabilities", READ_ONCE(h->caps));
	vmb_show_str(f, "is resetting", READ_ONCE(h->reset_required) ? "y" : "n");
	vmb_show_ul(f, "target", READ_ONCE(b->host_target));
	vmb_show_ul(f, "current", vmb_balloon_size(b));

	for (i = 0; i < VMB_CMD_NR; i++) {
		if (!vmb_cmd_name(i))
			continue;
		seq_printf(f, "%-22s: %16lu (%lu failed)\n", vmb_cmd_name(i),
			   READ_ONCE(h->cmd_count[i]), READ_ONCE(h->cmd_fail[i]));
	}

	vmb_show_ul(f, "timer", READ_ONCE(b->timer_runs));
	vmb_show_ul(f, "doorbell", 0);
	vmb_show_ul(f, "reset", READ_ONCE(b->resets));
	vmb_show_ul(f, "shrink", READ_ONCE(b->shrink_calls));
	vmb_show_ul(f, "shrinkFree", READ_ONCE(b->shrink_frames));

	/* Grouped by counter, then by size: "alloc             (4k)". */
	for (i = 0; i < ARRAY_SIZE(vmb_page_stat_fields); i++)
		for (size = 0; size < VMB_NR_PAGE_SIZES; size++)
			seq_printf(f, "%-18s(%s): %16lu\n",
				   vmb_page_stat_fields[i].name,
				   vmb_size_names[size],
				   vmb_page_stat(&b->stat[size],
						 vmb_page_stat_fields[i].offset));
}

static void vmb_show_ours(struct seq_file *f, struct vmb_balloon *b)
{
	struct vmb_host *h = &b->host;
	unsigned int i;
	char name[32];

	vmb_show_str(f, "version", VMMEMCTL_VERSION);
	vmb_show_ul(f, "goal", READ_ONCE(b->goal));
	vmb_show_str(f, "limited by", vmb_limit_name(READ_ONCE(b->limited_by)));
	vmb_show_per_size(f, "pages", b->nr_pages);
	vmb_show_per_size(f, "refused", b->nr_refused);
	vmb_show_rate(f, "inflate", &b->inflate);
	vmb_show_str(f, "inflate slowed by",
		     vmb_limit_name(READ_ONCE(b->inflate_slowed)));
	vmb_show_rate(f, "deflate", &b->deflate);
	for (i = 1; i < VMB_STATUS_NR; i++) {
		snprintf(name, sizeof(name), "status %s", vmb_status_name(i));
		vmb_show_ul(f, name, READ_ONCE(h->status_count[i]));
	}
	vmb_show_ul(f, "oom", READ_ONCE(b->oom_calls));
	vmb_show_ul(f, "oomFree", READ_ONCE(b->oom_frames));
	vmb_show_ul(f, "migrate", READ_ONCE(b->migrations));
	vmb_show_ul(f, "migrateFail", READ_ONCE(b->migrate_fails));
	vmb_show_ul(f, "slowdowns", READ_ONCE(b->slowdowns));
	vmb_show_ul(f, "reclaim scanned", READ_ONCE(b->signals.d_scanned));
	vmb_show_ul(f, "reclaim stalls", READ_ONCE(b->signals.d_stalls));
	vmb_show_ul(f, "guest alloc", READ_ONCE(b->signals.guest_alloc));
	vmb_show_ul(f, "lock hold max (us)",
		    div_u64(READ_ONCE(b->lock_hold_max_ns), NSEC_PER_USEC));
}

static int vmb_stats_show(struct seq_file *f, void *unused)
{
	struct vmb_balloon *b = f->private;

	/*
	 * One consistent snapshot: the work item holds the lock while a batch
	 * is between the allocator and the balloon's list, so without it the
	 * page counts would not add up while the balloon moves.
	 */
	if (mutex_lock_interruptible(&b->lock))
		return -EINTR;
	vmb_show_in_tree(f, b);
	vmb_show_ours(f, b);
	mutex_unlock(&b->lock);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vmb_stats);

/* World-readable sysfs attributes: /sys/kernel/vmmemctl/<name>. */

static ssize_t size_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%lu\n", vmb_balloon_size(vmb_stats_balloon));
}

static ssize_t target_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(vmb_stats_balloon->host_target));
}

static ssize_t goal_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%lu\n", READ_ONCE(vmb_stats_balloon->goal));
}

static ssize_t limited_by_show(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  vmb_limit_name(READ_ONCE(vmb_stats_balloon->limited_by)));
}

static struct kobj_attribute vmb_attr_size = __ATTR_RO(size);
static struct kobj_attribute vmb_attr_target = __ATTR_RO(target);
static struct kobj_attribute vmb_attr_goal = __ATTR_RO(goal);
static struct kobj_attribute vmb_attr_limited_by = __ATTR_RO(limited_by);

static struct attribute *vmb_attrs[] = {
	&vmb_attr_size.attr,
	&vmb_attr_target.attr,
	&vmb_attr_goal.attr,
	&vmb_attr_limited_by.attr,
	NULL
};

static const struct attribute_group vmb_attr_group = {
	.attrs = vmb_attrs,
};

/**
 * vmb_stats_init() - publish the balloon's statistics
 * @b: the balloon
 *
 * The sysfs directory is required; debugfs is best effort (the module
 * works without it). Refuses when another balloon driver is loaded.
 *
 * Return: 0 or a negative errno.
 */
int vmb_stats_init(struct vmb_balloon *b)
{
	struct dentry *other;
	int ret;

	/* The in-tree vmw_balloon uses the same debugfs name. */
	other = debugfs_lookup("vmmemctl", NULL);
	if (!IS_ERR_OR_NULL(other)) {
		dput(other);
		pr_err("another balloon driver (vmw_balloon?) is loaded; unload it first\n");
		return -EBUSY;
	}

	vmb_stats_balloon = b;
	vmb_kobj = kobject_create_and_add("vmmemctl", kernel_kobj);
	if (!vmb_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(vmb_kobj, &vmb_attr_group);
	if (ret) {
		kobject_put(vmb_kobj);
		vmb_kobj = NULL;
		return ret;
	}
	vmb_debugfs = debugfs_create_file("vmmemctl", 0400, NULL, b,
					  &vmb_stats_fops);
	return 0;
}

/**
 * vmb_stats_exit() - remove what vmb_stats_init() published
 */
void vmb_stats_exit(void)
{
	debugfs_remove(vmb_debugfs);
	vmb_debugfs = NULL;
	if (vmb_kobj) {
		sysfs_remove_group(vmb_kobj, &vmb_attr_group);
		kobject_put(vmb_kobj);
		vmb_kobj = NULL;
	}
}
