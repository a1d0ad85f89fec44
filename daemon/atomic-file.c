/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Atomic file replacement (include/vireo/atomic-file.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vireo/atomic-file.h"
#include "vireo/util.h"

static AtomicFileFault injected;

void atomic_file_inject_fault(AtomicFileFault fault)
{
    injected = fault;
}

/* The injected fault for @step, consumed: -errno to fail with, or 0. */
static int fault_at(AtomicFileFault step)
{
    if (injected != step)
        return 0;
    injected = ATOMIC_FILE_FAULT_NONE;
    return step == ATOMIC_FILE_FAULT_WRITE ? -ENOSPC : -EIO;
}

static gboolean fail(GError **error, int err, const char *what, const char *path)
{
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(err), "cannot %s '%s': %s",
                what, path, g_strerror(err));
    return FALSE;
}

static int write_all(int fd, const char *data, gsize len)
{
    gsize half = len / 2;
    int f = injected == ATOMIC_FILE_FAULT_WRITE ? fault_at(ATOMIC_FILE_FAULT_WRITE) : 0;

    if (f) {
        /* Half written, then the disk is full. */
        if (half && write(fd, data, half) < 0)
            return -errno;
        return f;
    }
    while (len) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= n;
    }
    return 0;
}

gboolean atomic_file_write(const char *path, const void *data, gsize len, int mode,
                           GError **error)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
    autoclose int fd = -1;
    autoclose int dfd = -1;
    int err;

    err = -fault_at(ATOMIC_FILE_FAULT_OPEN);
    fd = err ? -1 : g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0)
        return fail(error, err ? err : errno, "create temporary file for", path);
    err = -write_all(fd, data, len);
    if (!err)
        err = -fault_at(ATOMIC_FILE_FAULT_FSYNC);
    if (!err && fsync(fd) < 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return fail(error, err, "write", path);
    }
    err = -fault_at(ATOMIC_FILE_FAULT_RENAME);
    if (!err && rename(tmp, path) < 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return fail(error, err, "rename temporary file to", path);
    }
    /* The rename itself must reach the disk too. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        return fail(error, errno, "sync directory of", path);
    return TRUE;
}
