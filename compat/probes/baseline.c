// SPDX-License-Identifier: GPL-2.0
/*
 * baseline: a module compiles against the kernel's build tree at all.
 * Every other probe means nothing when this one fails, so the Makefile
 * stops with one line (and the log) instead.
 */
#include <linux/module.h>

int vmb_probe(void);
int vmb_probe(void)
{
	return 0;
}
