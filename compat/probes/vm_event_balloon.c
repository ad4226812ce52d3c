// SPDX-License-Identifier: GPL-2.0
/*
 * vm_event_balloon: the balloon_inflate and balloon_deflate events of
 * /proc/vmstat exist. They depend on the balloon core being built, under
 * CONFIG_MEMORY_BALLOON before 7.0 and CONFIG_BALLOON since ("mm: balloon
 * infrastructure cleanups", v7.0); probing the events, not a config name,
 * keeps them counted whatever the option is called.
 */
#include <linux/mm.h>
#include <linux/vmstat.h>

int vmb_probe(void);
int vmb_probe(void)
{
	count_vm_event(BALLOON_INFLATE);
	count_vm_event(BALLOON_DEFLATE);
	return 0;
}
