// SPDX-License-Identifier: GPL-2.0
/*
 * maple_tree: the oldest kernel vmmemctl supports, Linux 6.1. The maple
 * tree came with 6.1 ("maple_tree: add new data structure", v6.1-rc1) and
 * was never backported, so a kernel without it is older than 6.1. The
 * Makefile requires this probe.
 */
#include <linux/maple_tree.h>

int vmb_probe(void);
int vmb_probe(void)
{
	struct maple_tree mt = MTREE_INIT(mt, 0);

	return mtree_empty(&mt);
}
