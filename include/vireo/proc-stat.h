/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the daemon reads from /proc about a vireo-vmm it supervises: the
 * start time (to tell a pid from a reused one after a daemon restart), CPU
 * time of the process and of each vCPU thread, and the command line.
 */
#ifndef VIREO_PROC_STAT_H
#define VIREO_PROC_STAT_H

#include <glib.h>
#include <sys/types.h>

typedef struct ProcStat {
    char state;             /* 'R', 'S', 'Z', ... */
    guint64 cpu_time_ns;    /* utime + stime */
    guint64 start_ticks;    /* since boot, in clock ticks */
    int processor;          /* CPU it last ran on */
} ProcStat;

/*
 * /proc/@pid/stat, or /proc/@pid/task/@tid/stat when @tid > 0. FALSE
 * (without an error: the usual case is a process that is gone) when it
 * cannot be read or parsed.
 */
gboolean proc_stat_read(pid_t pid, pid_t tid, ProcStat *st);
/* Parses the content of a stat file (tests). */
gboolean proc_stat_parse(const char *text, ProcStat *st);
/* TRUE when one of /proc/@pid/cmdline's arguments equals @arg. */
gboolean proc_cmdline_has_arg(pid_t pid, const char *arg);

#endif
