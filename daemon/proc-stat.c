/* SPDX-License-Identifier: GPL-2.0-or-later */
/* /proc readers (include/vireo/proc-stat.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vireo/proc-stat.h"

gboolean proc_stat_parse(const char *text, ProcStat *st)
{
    /* The command name may hold spaces and parentheses: skip to the last ')'. */
    const char *p = text ? strrchr(text, ')') : NULL;
    g_auto(GStrv) f = NULL;
    long ticks = sysconf(_SC_CLK_TCK);
    guint64 utime, stime;

    if (!p || ticks <= 0)
        return FALSE;
    f = g_strsplit(p + 1, " ", -1);
    /* f[0] is "" (the space after ')'); f[1] is field 3, state. */
    if (g_strv_length(f) < 38 || strlen(f[1]) != 1)
        return FALSE;
    st->state = f[1][0];
    utime = g_ascii_strtoull(f[12], NULL, 10);      /* field 14 */
    stime = g_ascii_strtoull(f[13], NULL, 10);      /* field 15 */
    st->start_ticks = g_ascii_strtoull(f[20], NULL, 10);   /* field 22 */
    st->processor = atoi(f[37]);                    /* field 39 */
    st->cpu_time_ns = (utime + stime) * (1000000000ull / ticks);
    return TRUE;
}

gboolean proc_stat_read(pid_t pid, pid_t tid, ProcStat *st)
{
    g_autofree char *path = tid > 0 ? g_strdup_printf("/proc/%d/task/%d/stat", pid, tid)
                                    : g_strdup_printf("/proc/%d/stat", pid);
    g_autofree char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL))
        return FALSE;
    return proc_stat_parse(text, st);
}

gboolean proc_cmdline_has_arg(pid_t pid, const char *arg)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/cmdline", pid);
    g_autofree char *text = NULL;
    gsize len;

    if (!g_file_get_contents(path, &text, &len, NULL))
        return FALSE;
    for (gsize off = 0; off < len; off += strlen(text + off) + 1)
        if (!strcmp(text + off, arg))
            return TRUE;
    return FALSE;
}
