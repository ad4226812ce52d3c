// SPDX-License-Identifier: GPL-2.0
/*
 * debugfs_lookup_and_remove: remove a debugfs entry by name without
 * leaking the dentry debugfs_lookup() returns. Upstream: "debugfs: add
 * debugfs_lookup_and_remove()", v6.0 (backported to older stable trees).
 */
#include <linux/debugfs.h>

int vmm_probe(void);
int vmm_probe(void)
{
	debugfs_lookup_and_remove("probe", NULL);
	return 0;
}
