/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Backing chain changes:
 *   vireo-img rebase [-q] [-f fmt] [-t cache] [-p] [-u] [-U] -b BACKING [-F fmt] FILE
 *   vireo-img commit [-q] [-f fmt] [-t cache] [-d] [-p] FILE
 *
 * Safe rebase (without -u) keeps what the guest sees: every range FILE
 * does not define itself and that reads differently through the old and
 * the new backing file is copied into FILE first, then the header changes.
 */
#include <getopt.h>
#include <string.h>

#include "vireo/img.h"

#define IMG_REBASE_CHUNK (1u << 20)

/* Copies into @bs what differs between its current view and @new_base. */
static gboolean rebase_copy(BlockDev *bs, BlockDev *new_base, const char *file,
                            ImgProgress *prog)
{
    uint64_t size = block_get_size(bs);
    uint64_t base_size = new_base ? block_get_size(new_base) : 0;
    uint32_t gran = block_get_cluster_size(bs) ? block_get_cluster_size(bs) : 65536;
    g_autofree uint8_t *old = g_malloc(IMG_REBASE_CHUNK);
    g_autofree uint8_t *now = g_malloc(IMG_REBASE_CHUNK);

    for (uint64_t off = 0; off < size; ) {
        g_autoptr(GError) err = NULL;
        BlockStatus st;
        uint64_t len;

        if (!block_get_status_layer(bs, off, MIN((uint64_t)IMG_REBASE_CHUNK, size - off),
                                    &st, &err)) {
            img_util_error_gerror(file, err);
            return FALSE;
        }
        len = st.length;
        if (st.flags & BLOCK_STATUS_ALLOCATED) {
            off += len;     /* FILE defines it: the backing file does not matter */
            continue;
        }
        if (!block_pread(bs, off, old, len, &err)) {
            img_util_error_gerror(file, err);
            return FALSE;
        }
        memset(now, 0, len);
        if (off < base_size &&
            !block_pread(new_base, off, now, MIN(len, base_size - off), &err)) {
            img_util_error_gerror(block_get_filename(new_base), err);
            return FALSE;
        }
        /* Copy only the clusters that differ, so FILE stays sparse. */
        for (uint64_t p = 0; p < len; ) {
            uint64_t n = MIN(len - p, gran - (off + p) % gran);
            if (memcmp(old + p, now + p, n) != 0 &&
                !block_pwrite(bs, off + p, old + p, n, 0, &err)) {
                img_util_error_gerror(file, err);
                return FALSE;
            }
            p += n;
        }
        off += len;
        img_util_progress_update(prog, off, size);
    }
    return TRUE;
}

int img_chain_rebase_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { 0 };
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(BlockDev) base = NULL;
    g_autoptr(GError) err = NULL;
    const char *backing = NULL, *backing_fmt = NULL, *file;
    gboolean unsafe = FALSE, progress = FALSE, quiet = FALSE, have_b = FALSE;
    ImgProgress prog;
    int c;

    while ((c = getopt_long(argc, argv, "hf:F:b:t:T:puqU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'F': backing_fmt = optarg; break;
        case 'b': backing = optarg; have_b = TRUE; break;
        case 't':
            if (!img_util_parse_cache(optarg, &o.cache))
                return 1;
            break;
        case 'T': break;      /* one cache mode for the whole chain */
        case 'p': progress = TRUE; break;
        case 'u': unsafe = TRUE; break;
        case 'q': quiet = TRUE; break;
        case 'U': break;      /* the backing files are only read */
        default: return img_util_usage_error("rebase", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("rebase", "Expecting one image file name");
    file = argv[optind];
    if (!have_b)
        return img_util_usage_error("rebase", "Must specify backing file (-b) "
                                    "(use -b \"\" to remove it)");
    if (backing && !*backing)
        backing = NULL;
    if (!img_util_check_format(backing, backing_fmt))
        return 1;
    /* Unsafe rebase may name a backing file that does not exist (yet). */
    o.no_backing = unsafe;
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    if (backing && (!unsafe || !backing_fmt)) {
        g_autofree char *path = block_resolve_backing_path(file, backing);
        BlockOpenOptions bo = { .format = backing_fmt, .read_only = TRUE };
        base = block_open(path, &bo, &err);
        if (!base) {
            img_util_error(file, "Could not open new backing file '%s': %s", backing,
                           err->message);
            return 1;
        }
        if (!backing_fmt)
            backing_fmt = block_get_format(base);
    }
    if (!unsafe) {
        img_util_progress_start(&prog, progress && !quiet);
        if (!rebase_copy(bs, base, file, &prog)) {
            img_util_progress_end(&prog, FALSE);
            return 1;
        }
        img_util_progress_end(&prog, TRUE);
    }
    if (!block_change_backing_file(bs, backing, backing ? backing_fmt : NULL, &err) ||
        !block_flush_sync(bs, &err)) {
        img_util_error(file, "Could not change the backing file: %s", err->message);
        return 1;
    }
    return 0;
}

int img_chain_commit_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { 0 };
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(GError) err = NULL;
    gboolean quiet = FALSE, keep = FALSE, progress = FALSE;
    const char *file, *base = NULL;
    ImgProgress prog;
    int c;

    while ((c = getopt_long(argc, argv, "hf:t:b:dpqr:", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 't':
            if (!img_util_parse_cache(optarg, &o.cache))
                return 1;
            break;
        case 'b': base = optarg; break;
        case 'd': keep = TRUE; break;
        case 'p': progress = TRUE; break;
        case 'q': quiet = TRUE; break;
        case 'r': break;      /* no rate limit */
        default: return img_util_usage_error("commit", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("commit", "Expecting one image file name");
    file = argv[optind];
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    if (!block_get_backing(bs)) {
        img_util_error(file, "Image does not have a backing file");
        return 1;
    }
    if (base) {
        g_autofree char *want = g_canonicalize_filename(base, NULL);
        g_autofree char *have = g_canonicalize_filename(
            block_get_filename(block_get_backing(bs)), NULL);
        if (strcmp(want, have) != 0) {
            img_util_error(file, "only the immediate backing file can be the commit base "
                           "('%s')", block_get_filename(block_get_backing(bs)));
            return 1;
        }
    }
    /*
     * block_commit() copies in one call and reports nothing on the way, so
     * the line shows 0% before and 100% once the data is in the base.
     */
    img_util_progress_start(&prog, progress && !quiet);
    if (!block_commit(bs, !keep, &err) || !block_flush_sync(bs, &err)) {
        img_util_progress_end(&prog, FALSE);
        img_util_error_gerror(file, err);
        return 1;
    }
    img_util_progress_end(&prog, TRUE);
    if (!quiet)
        printf("Image committed.\n");
    return 0;
}
