// SPDX-License-Identifier: GPL-2.0
/*
 * balloon_h: the balloon core's header is <linux/balloon.h> (was
 * <linux/balloon_compaction.h>). Upstream: "mm: balloon infrastructure
 * cleanups", v7.0.
 */
#include <linux/balloon.h>

int vmb_probe(void);
int vmb_probe(void)
{
	struct balloon_dev_info b;

	balloon_devinfo_init(&b);
	return b.isolated_pages;
}
