/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Atomic replacement of small files (domain definitions, VM state files):
 * a temporary file in the same directory, written and fsync'ed, renamed
 * over the target, then the directory fsync'ed. A reader (or a daemon
 * starting after a crash or power loss) sees either the old content or
 * the new one, never a mix; on failure the old file is untouched and the
 * temporary file removed.
 */
#ifndef VIREO_ATOMIC_FILE_H
#define VIREO_ATOMIC_FILE_H

#include <glib.h>

gboolean atomic_file_write(const char *path, const void *data, gsize len, int mode,
                           GError **error);

/*
 * Tests: make the next atomic_file_write() fail at one step, as if the
 * disk were full (write), or the system call failed. Not thread-safe;
 * for unit tests only.
 */
typedef enum {
    ATOMIC_FILE_FAULT_NONE,
    ATOMIC_FILE_FAULT_OPEN,
    ATOMIC_FILE_FAULT_WRITE,    /* after writing half of the data */
    ATOMIC_FILE_FAULT_FSYNC,
    ATOMIC_FILE_FAULT_RENAME,
} AtomicFileFault;

void atomic_file_inject_fault(AtomicFileFault fault);

#endif
