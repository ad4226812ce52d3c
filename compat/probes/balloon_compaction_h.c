// SPDX-License-Identifier: GPL-2.0
/*
 * balloon_compaction_h: the balloon core's header is
 * <linux/balloon_compaction.h>, as in 6.1 (renamed <linux/balloon.h> in
 * 7.0).
 */
#include <linux/balloon_compaction.h>

int vmm_probe(void);
int vmm_probe(void)
{
	struct balloon_dev_info b;

	balloon_devinfo_init(&b);
	return b.isolated_pages;
}
