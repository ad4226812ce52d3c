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

#endif /* VMMEMCTL_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE vmmemctl_trace
#include <trace/define_trace.h>
