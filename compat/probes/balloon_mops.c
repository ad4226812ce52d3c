// SPDX-License-Identifier: GPL-2.0
/*
 * balloon_mops: the core's movable_operations for balloon pages are
 * declared and exported (GPL), so a driver can set them on its pages.
 * Since 6.17 the core registers them for offline pages itself and no
 * longer exports them. The declaration and the export went together.
 */
#include "balloon_header.h"

int vmm_probe(void);
int vmm_probe(void)
{
	const struct movable_operations *ops = &balloon_mops;

	return !!ops->isolate_page;
}
