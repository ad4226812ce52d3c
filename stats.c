// SPDX-License-Identifier: GPL-2.0
/*
 * vmmemctl - statistics: /sys/kernel/debug/vmmemctl for root, and a few
 * world-readable attributes in /sys/kernel/vmmemctl/ for everyone.
 *
 * The debugfs file keeps the in-tree vmw_balloon layout ("%-22s: value")
 * and its field names, so that existing admin scripts keep working.
 */

#include <linux/dcache.h>
#include <linux/debugfs.h>
#include <linux/kobject.h>
#include <linux/mm.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>

#include "backdoor.h"
#include "vmmemctl.h"

static struct vmm_balloon *vmm_stats_balloon;
static struct kobject *vmm_kobj;

static const char * const vmm_size_names[VMM_NR_SIZES] = {
	[VMM_4K] = "4k",
	[VMM_2M] = "2M",
};

static void vmm_show_ul(struct seq_file *f, const char *name,
			unsigned long v)
{
	seq_printf(f, "%-22s: %16lu\n", name, v);
}

static int vmm_stats_show(struct seq_file *f, void *unused)
{
	struct vmm_balloon *b = f->private;
	struct vmm_host *h = &b->host;
	enum vmm_size size;
	unsigned int i;
	char name[32];

	seq_printf(f, "%-22s: %16s\n", "version", VMMEMCTL_VERSION);
	seq_printf(f, "%-22s: %#16x\n", "balloon capabilities",
		   READ_ONCE(h->offered));
	seq_printf(f, "%-22s: %#16x\n", "used capabilities", READ_ONCE(h->caps));
	seq_printf(f, "%-22s: %16s\n", "is resetting",
		   READ_ONCE(h->reset_required) ? "y" : "n");

	/* The two lines admins' scripts look for. */
	vmm_show_ul(f, "target", READ_ONCE(b->host_target));
	vmm_show_ul(f, "current", vmm_balloon_size(b));

	vmm_show_ul(f, "goal", READ_ONCE(b->goal));
	seq_printf(f, "%-22s: %16s\n", "limited by",
		   vmm_limit_name(READ_ONCE(b->limited_by)));
	vmm_show_ul(f, "pages 4k", READ_ONCE(b->nr_pages[VMM_4K]));
	vmm_show_ul(f, "pages 2M", READ_ONCE(b->nr_pages[VMM_2M]));
	vmm_show_ul(f, "refused 4k", READ_ONCE(b->nr_refused[VMM_4K]));
	vmm_show_ul(f, "refused 2M", READ_ONCE(b->nr_refused[VMM_2M]));
	vmm_show_ul(f, "inflate rate", READ_ONCE(b->inflate.cur));
	vmm_show_ul(f, "inflate rate min", READ_ONCE(b->inflate.min));
	vmm_show_ul(f, "inflate rate max", READ_ONCE(b->inflate.max));
	vmm_show_ul(f, "deflate rate", READ_ONCE(b->deflate.cur));
	vmm_show_ul(f, "deflate rate min", READ_ONCE(b->deflate.min));
	vmm_show_ul(f, "deflate rate max", READ_ONCE(b->deflate.max));
	seq_putc(f, '\n');

	for (i = 0; i < VMM_CMD_NR; i++) {
		if (!vmm_cmd_name(i))
			continue;
		seq_printf(f, "%-22s: %16lu (%lu failed)\n", vmm_cmd_name(i),
			   READ_ONCE(h->cmd_count[i]), READ_ONCE(h->cmd_fail[i]));
	}
	for (i = 1; i < VMM_STATUS_NR; i++) {
		snprintf(name, sizeof(name), "status %s", vmm_status_name(i));
		vmm_show_ul(f, name, READ_ONCE(h->status_count[i]));
	}
	vmm_show_ul(f, "timer", READ_ONCE(b->timer_runs));
	vmm_show_ul(f, "doorbell", 0);
	vmm_show_ul(f, "reset", READ_ONCE(b->resets));
	vmm_show_ul(f, "shrink", READ_ONCE(b->shrink_calls));
	vmm_show_ul(f, "shrinkFree", READ_ONCE(b->shrink_frames));
	vmm_show_ul(f, "oom", READ_ONCE(b->oom_calls));
	vmm_show_ul(f, "oomFree", READ_ONCE(b->oom_frames));
	seq_putc(f, '\n');

	for (size = 0; size < VMM_NR_SIZES; size++) {
		const struct vmm_page_stats *s = &b->stat[size];
		const char *sz = vmm_size_names[size];

		snprintf(name, sizeof(name), "alloc (%s)", sz);
		vmm_show_ul(f, name, READ_ONCE(s->alloc));
		snprintf(name, sizeof(name), "allocFail (%s)", sz);
		vmm_show_ul(f, name, READ_ONCE(s->alloc_fail));
		snprintf(name, sizeof(name), "errAlloc (%s)", sz);
		vmm_show_ul(f, name, READ_ONCE(s->refused));
		snprintf(name, sizeof(name), "errFree (%s)", sz);
		vmm_show_ul(f, name, READ_ONCE(s->unlock_fail));
		snprintf(name, sizeof(name), "free (%s)", sz);
		vmm_show_ul(f, name, READ_ONCE(s->free));
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vmm_stats);

/* World-readable sysfs attributes: /sys/kernel/vmmemctl/<name>. */

static ssize_t size_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%lu\n", vmm_balloon_size(vmm_stats_balloon));
}

static ssize_t target_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(vmm_stats_balloon->host_target));
}

static ssize_t goal_show(struct kobject *kobj, struct kobj_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%lu\n", READ_ONCE(vmm_stats_balloon->goal));
}

static ssize_t limited_by_show(struct kobject *kobj,
			       struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  vmm_limit_name(READ_ONCE(vmm_stats_balloon->limited_by)));
}

static struct kobj_attribute vmm_attr_size = __ATTR_RO(size);
static struct kobj_attribute vmm_attr_target = __ATTR_RO(target);
static struct kobj_attribute vmm_attr_goal = __ATTR_RO(goal);
static struct kobj_attribute vmm_attr_limited_by = __ATTR_RO(limited_by);

static struct attribute *vmm_attrs[] = {
	&vmm_attr_size.attr,
	&vmm_attr_target.attr,
	&vmm_attr_goal.attr,
	&vmm_attr_limited_by.attr,
	NULL
};

static const struct attribute_group vmm_attr_group = {
	.attrs = vmm_attrs,
};

/**
 * vmm_stats_init() - publish the balloon's statistics
 * @b: the balloon
 *
 * The sysfs directory is required; debugfs is best effort (the module
 * works without it). Refuses when another balloon driver is loaded.
 *
 * Return: 0 or a negative errno.
 */
int vmm_stats_init(struct vmm_balloon *b)
{
	struct dentry *other;
	int ret;

	/* The in-tree vmw_balloon uses the same debugfs name. */
	other = debugfs_lookup("vmmemctl", NULL);
	if (!IS_ERR_OR_NULL(other)) {
		dput(other);
		pr_err("vmmemctl: another balloon driver (vmw_balloon?) is loaded; unload it first\n");
		return -EBUSY;
	}

	vmm_stats_balloon = b;
	vmm_kobj = kobject_create_and_add("vmmemctl", kernel_kobj);
	if (!vmm_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(vmm_kobj, &vmm_attr_group);
	if (ret) {
		kobject_put(vmm_kobj);
		vmm_kobj = NULL;
		return ret;
	}
	b->debugfs = debugfs_create_file("vmmemctl", 0400, NULL, b,
					 &vmm_stats_fops);
	return 0;
}

/**
 * vmm_stats_exit() - remove what vmm_stats_init() published
 * @b: the balloon
 */
void vmm_stats_exit(struct vmm_balloon *b)
{
	debugfs_remove(b->debugfs);
	b->debugfs = NULL;
	if (vmm_kobj) {
		sysfs_remove_group(vmm_kobj, &vmm_attr_group);
		kobject_put(vmm_kobj);
		vmm_kobj = NULL;
	}
}
