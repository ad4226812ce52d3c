/* SPDX-License-Identifier: GPL-2.0 */
/*
 * vmmemctl - tracepoints: watch the balloon with ftrace, perf or trace-cmd
 * (events/vmmemctl/) without polling debugfs.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vmmemctl

#if !defined(VMMEMCTL_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VMMEMCTL_TRACE_H

#include <linux/tracepoint.h>

#include "vmmemctl.h"

TRACE_DEFINE_ENUM(VMB_LIMIT_NONE);
TRACE_DEFINE_ENUM(VMB_LIMIT_RECLAIM);
TRACE_DEFINE_ENUM(VMB_LIMIT_NEAR_FLOOR);

DECLARE_EVENT_CLASS(vmmemctl_move,
		    TP_PROTO(unsigned long frames, unsigned long size,
			     unsigned long goal),
		    TP_ARGS(frames, size, goal),
		    TP_STRUCT__entry(__field(unsigned long, frames)
				     __field(unsigned long, size)
				     __field(unsigned long, goal)),
		    TP_fast_assign(__entry->frames = frames;
				   __entry->size = size;
				   __entry->goal = goal;),
		    TP_printk("pages=%lu size=%lu goal=%lu",
			      __entry->frames, __entry->size, __entry->goal)
);

/* Pages locked with the host in one step (4 KiB frames). */
DEFINE_EVENT(vmmemctl_move, vmmemctl_inflate,
	     TP_PROTO(unsigned long frames, unsigned long size,
		      unsigned long goal),
	     TP_ARGS(frames, size, goal)
);

/* Pages unlocked and given back in one step (4 KiB frames). */
DEFINE_EVENT(vmmemctl_move, vmmemctl_deflate,
	     TP_PROTO(unsigned long frames, unsigned long size,
		      unsigned long goal),
	     TP_ARGS(frames, size, goal)
);

/* The balloon was emptied without unlocking: reset or renegotiation. */
TRACE_EVENT(vmmemctl_reset,
	    TP_PROTO(unsigned long popped),
	    TP_ARGS(popped),
	    TP_STRUCT__entry(__field(unsigned long, popped)),
	    TP_fast_assign(__entry->popped = popped;),
	    TP_printk("popped=%lu", __entry->popped)
);

/* The host's target changed. */
TRACE_EVENT(vmmemctl_target,
	    TP_PROTO(u64 target, unsigned long size),
	    TP_ARGS(target, size),
	    TP_STRUCT__entry(__field(u64, target)
			     __field(unsigned long, size)),
	    TP_fast_assign(__entry->target = target;
			   __entry->size = size;),
	    TP_printk("target=%llu size=%lu", __entry->target, __entry->size)
);

/* Memory given back because the guest ran short. */
TRACE_EVENT(vmmemctl_pressure,
	    TP_PROTO(unsigned long freed, unsigned long size),
	    TP_ARGS(freed, size),
	    TP_STRUCT__entry(__field(unsigned long, freed)
			     __field(unsigned long, size)),
	    TP_fast_assign(__entry->freed = freed;
			   __entry->size = size;),
	    TP_printk("freed=%lu size=%lu", __entry->freed, __entry->size)
);

/*
 * The work item let go of the balloon lock after holding it this long
 * (guest time, ns): the stretches the shrinker and the OOM notifier may
 * have waited behind.
 */
TRACE_EVENT(vmmemctl_lock_hold,
	    TP_PROTO(u64 held_ns),
	    TP_ARGS(held_ns),
	    TP_STRUCT__entry(__field(u64, held_ns)),
	    TP_fast_assign(__entry->held_ns = held_ns;),
	    TP_printk("held_ns=%llu", __entry->held_ns)
);

/*
 * The inflate rate at a period's end, when the guest's state slowed it or
 * it changed: the budget (0: none), what slowed it this period (none,
 * reclaim, near_floor) and the signals over the period: pages reclaim
 * scanned, allocations that stalled in direct reclaim, frames the guest
 * itself took, and MemAvailable (4 KiB pages) at its end.
 */
TRACE_EVENT(vmmemctl_inflate_rate,
	    TP_PROTO(unsigned int rate, enum vmb_limit slowed_by,
		     const struct vmb_signals *s),
	    TP_ARGS(rate, slowed_by, s),
	    TP_STRUCT__entry(__field(unsigned int, rate)
			     __field(unsigned int, slowed_by)
			     __field(unsigned long, scanned)
			     __field(unsigned long, stalls)
			     __field(unsigned long, guest_alloc)
			     __field(unsigned long, avail)),
	    TP_fast_assign(__entry->rate = rate;
			   __entry->slowed_by = slowed_by;
			   __entry->scanned = s->d_scanned;
			   __entry->stalls = s->d_stalls;
			   __entry->guest_alloc = s->guest_alloc;
			   __entry->avail = s->avail;),
	    TP_printk("rate=%u slowed_by=%s scanned=%lu stalls=%lu guest_alloc=%lu avail=%lu",
		      __entry->rate,
		      __print_symbolic(__entry->slowed_by,
				       { VMB_LIMIT_NONE, "none" },
				       { VMB_LIMIT_RECLAIM, "reclaim" },
				       { VMB_LIMIT_NEAR_FLOOR, "near_floor" }),
		      __entry->scanned, __entry->stalls,
		      __entry->guest_alloc, __entry->avail)
);

#endif /* VMMEMCTL_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE vmmemctl_trace
#include <trace/define_trace.h>
