// SPDX-License-Identifier: GPL-2.0
/*
 * nr_balloon_pages: the node counter behind "Balloon:" in /proc/meminfo.
 * Upstream: "meminfo: add a per node counter for balloon drivers", v6.15.
 */
#include <linux/mm.h>
#include <linux/mmzone.h>

int vmb_probe(void);
int vmb_probe(void)
{
	return NR_BALLOON_PAGES;
}
