// SPDX-License-Identifier: GPL-2.0
/*
 * balloon_page_finalize: balloon_page_finalize() replaces
 * balloon_page_delete() ("mm/balloon_compaction: convert
 * balloon_page_delete() to balloon_page_finalize()", v6.17; Debian's 6.1
 * has it from a stable backport, hence a probe). Gone again from the
 * header in 7.0, where the core finalizes pages itself.
 */
#include "balloon_header.h"

int vmb_probe(void);
int vmb_probe(void)
{
	void (*finalize)(struct page *page) = balloon_page_finalize;

	return !!finalize;
}
