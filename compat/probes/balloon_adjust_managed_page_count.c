// SPDX-License-Identifier: GPL-2.0
/*
 * balloon_adjust_managed_page_count: struct balloon_dev_info has
 * adjust_managed_page_count, and the core adjusts the managed page count
 * for drivers that set it. Upstream: "mm: balloon infrastructure
 * cleanups", v7.0.
 */
#include "balloon_header.h"

int vmm_probe(void);
int vmm_probe(void)
{
	struct balloon_dev_info b = { .adjust_managed_page_count = true };

	return b.adjust_managed_page_count;
}
