/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The balloon core's header for the probes that need it, whatever its name:
 * <linux/balloon.h> since 7.0, <linux/balloon_compaction.h> before.
 */
#ifndef VMB_PROBE_BALLOON_HEADER_H
#define VMB_PROBE_BALLOON_HEADER_H

#if __has_include("linux/balloon.h")
#include <linux/balloon.h>
#else
#include <linux/balloon_compaction.h>
#endif

#endif /* VMB_PROBE_BALLOON_HEADER_H */
