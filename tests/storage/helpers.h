/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared by the storage cmocka tests: temporary directories, patterns,
 * an asynchronous request counter. Header-only, each test is one file. */
#ifndef VIREO_TESTS_STORAGE_HELPERS_H
#define VIREO_TESTS_STORAGE_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <glib/gstdio.h>
#include <string.h>

#include "vireo/block.h"
#include "vireo/qcow2.h"
#include "vireo/util.h"

static inline char *tmpdir_new(void)
{
    g_autoptr(GError) err = NULL;
    char *d = g_dir_make_tmp("vireo-storage-XXXXXX", &err);

    assert_non_null(d);
    return d;
}

static inline void rm_rf(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    const char *name;

    if (d) {
        while ((name = g_dir_read_name(d))) {
            g_autofree char *p = g_build_filename(path, name, NULL);
            if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
                rm_rf(p);
            else
                g_unlink(p);
        }
        g_dir_close(d);
    }
    g_rmdir(path);
}

/* Deterministic bytes: a function of the seed and the absolute offset. */
static inline void pattern_fill(uint8_t *buf, size_t len, uint64_t offset, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (offset + i) * 0x9e3779b97f4a7c15ull ^ seed;
        buf[i] = (uint8_t)(x >> 29) ^ (uint8_t)seed;
    }
}

static inline BlockDev *open_or_fail(const char *path, const BlockOpenOptions *o)
{
    g_autoptr(GError) err = NULL;
    BlockDev *bs = block_open(path, o, &err);

    if (!bs)
        fail_msg("open %s: %s", path, err->message);
    return bs;
}

static inline void create_qcow2(const char *path, uint64_t size, uint32_t cs,
                                const char *backing, const char *backing_fmt)
{
    g_autoptr(GError) err = NULL;
    Qcow2CreateOptions o = { .size = size, .cluster_size = cs, .backing_file = backing,
                             .backing_format = backing_fmt };

    if (!qcow2_create(path, &o, &err))
        fail_msg("create %s: %s", path, err->message);
}

static inline void check_clean(BlockDev *bs)
{
    g_autoptr(GError) err = NULL;
    BlockCheckResult r;

    if (!block_check(bs, 0, &r, &err))
        fail_msg("check: %s", err->message);
    if (r.corruptions || r.leaks || r.check_errors)
        fail_msg("check of %s: %" G_GUINT64_FORMAT " corruptions, %" G_GUINT64_FORMAT
                 " leaks, %" G_GUINT64_FORMAT " errors", block_get_filename(bs),
                 r.corruptions, r.leaks, r.check_errors);
}

#endif
