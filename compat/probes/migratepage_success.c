// SPDX-License-Identifier: GPL-2.0
/*
 * migratepage_success: MIGRATEPAGE_SUCCESS exists; since 6.18 ("mm/migrate:
 * remove MIGRATEPAGE_SUCCESS") a migratepage callback returns 0.
 */
#include <linux/migrate.h>

int vmm_probe(void);
int vmm_probe(void)
{
	return MIGRATEPAGE_SUCCESS;
}
