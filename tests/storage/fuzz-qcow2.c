/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: a whole qcow2 file from the fuzzer, opened read-only
 * (header, extensions, L1, refcount and snapshot tables are parsed and
 * validated), read, mapped and checked; then opened read-write (dirty-bit
 * repair, a write that allocates, check with repair). Backing files are
 * not opened: their names would point anywhere.
 *
 * Build: meson does it when clang can link -fsanitize=fuzzer (see
 * tests/storage/meson.build). Longer runs: docs/storage.md, "Fuzzing".
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vireo/block.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer p)
{
}

static void exercise(const char *path, gboolean write)
{
    BlockOpenOptions o = { .format = "qcow2", .read_only = !write, .no_backing = TRUE };
    BlockDev *bs = block_open(path, &o, NULL);
    static uint8_t buf[65536];
    BlockCheckResult r;
    uint64_t off = 0;

    if (!bs)
        return;
    block_pread(bs, 0, buf, MIN(block_get_size(bs), sizeof(buf)), NULL);
    for (int n = 0; n < 8 && off < block_get_size(bs); n++) {
        BlockStatus st;
        if (!block_get_status(bs, off, block_get_size(bs) - off, &st, NULL))
            break;
        off += st.length;
    }
    {
        GPtrArray *sn = block_snapshot_list(bs, NULL);
        if (sn)
            g_ptr_array_unref(sn);
    }
    block_check(bs, 0, &r, NULL);
    if (write) {
        memset(buf, 0x5a, 4096);
        block_pwrite(bs, 0, buf, MIN(block_get_size(bs), (uint64_t)4096), 0, NULL);
        block_flush_sync(bs, NULL);
        block_check(bs, BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS, &r, NULL);
    }
    block_close(bs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];

    if (fd < 0) {
        fd = memfd_create("fuzz-qcow2", 0);
        if (fd < 0)
            return 0;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        g_log_set_handler("vireo-storage", G_LOG_LEVEL_MASK, quiet, NULL);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        return 0;
    exercise(path, FALSE);
    exercise(path, TRUE);
    return 0;
}
