/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img compare [-f fmt] [-F fmt] [-p] [-q] [-s] [-U] A B
 *
 * Exit status as qemu-img's: 0 identical, 1 different, 2 error. Images of
 * different sizes are identical when the longer one reads as zeroes past
 * the end of the shorter one, unless -s (strict) is given. Mismatch
 * offsets are rounded down to 512 bytes, as qemu-img reports them.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "vireo/img.h"

#define IMG_COMPARE_CHUNK (1u << 20)

enum { COMPARE_SAME = 0, COMPARE_DIFFERENT = 1, COMPARE_ERROR = 2 };

/* Both read as zeroes over [off, off + *len)? *len shrinks to what was asked. */
static int known_zero(BlockDev *bs, uint64_t off, uint64_t *len, const char *file)
{
    g_autoptr(GError) err = NULL;
    BlockStatus st;

    if (!block_get_status(bs, off, *len, &st, &err)) {
        img_util_error_gerror(file, err);
        return -1;
    }
    *len = MIN(*len, st.length);
    return (st.flags & BLOCK_STATUS_ZERO) != 0;
}

static int read_chunk(BlockDev *bs, uint64_t off, uint8_t *buf, size_t len, const char *file)
{
    g_autoptr(GError) err = NULL;

    if (!block_pread(bs, off, buf, len, &err)) {
        img_util_error_gerror(file, err);
        return -1;
    }
    return 0;
}

static uint64_t first_difference(const uint8_t *a, const uint8_t *b, size_t len)
{
    size_t i = 0;

    while (i < len && a[i] == b[i])
        i++;
    return i;
}

static gboolean is_zero(const uint8_t *buf, size_t len, size_t *first_nonzero)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i]) {
            *first_nonzero = i;
            return FALSE;
        }
    }
    return TRUE;
}

int img_compare_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions oa = { .read_only = TRUE }, ob = { .read_only = TRUE };
    g_autoptr(BlockDev) a = NULL;
    g_autoptr(BlockDev) b = NULL;
    g_autofree uint8_t *ba = g_malloc(IMG_COMPARE_CHUNK);
    g_autofree uint8_t *bb = g_malloc(IMG_COMPARE_CHUNK);
    gboolean quiet = FALSE, strict = FALSE, progress = FALSE;
    const char *fa, *fb;
    uint64_t sa, sb, common, off, total;
    ImgProgress prog;
    int c;

    while ((c = getopt_long(argc, argv, "hf:F:T:pqsU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': oa.format = optarg; break;
        case 'F': ob.format = optarg; break;
        case 'T':
            if (!img_util_parse_cache(optarg, &oa.cache))
                return COMPARE_ERROR;
            ob.cache = oa.cache;
            break;
        case 'p': progress = TRUE; break;
        case 'q': quiet = TRUE; break;
        case 's': strict = TRUE; break;
        case 'U': oa.force_share = ob.force_share = TRUE; break;
        default: img_util_usage_error("compare", "invalid option"); return COMPARE_ERROR;
        }
    }
    if (optind != argc - 2) {
        img_util_usage_error("compare", "Expecting two image file names");
        return COMPARE_ERROR;
    }
    fa = argv[optind];
    fb = argv[optind + 1];
    a = img_util_open(fa, &oa);
    if (!a)
        return COMPARE_ERROR;
    b = img_util_open(fb, &ob);
    if (!b)
        return COMPARE_ERROR;
    sa = block_get_size(a);
    sb = block_get_size(b);
    if (strict && sa != sb) {
        if (!quiet)
            printf("Strict mode: Image size mismatch!\n");
        return COMPARE_DIFFERENT;
    }
    common = MIN(sa, sb);
    total = MAX(sa, sb);
    img_util_progress_start(&prog, progress && !quiet);

    for (off = 0; off < common; ) {
        uint64_t len = MIN((uint64_t)IMG_COMPARE_CHUNK, common - off), la = len, lb = len;
        int za = known_zero(a, off, &la, fa), zb;
        uint64_t d;

        if (za < 0 || (zb = known_zero(b, off, &lb, fb)) < 0)
            return COMPARE_ERROR;
        if (za && zb) {
            off += MIN(la, lb);
            continue;
        }
        if (read_chunk(a, off, ba, len, fa) || read_chunk(b, off, bb, len, fb))
            return COMPARE_ERROR;
        d = first_difference(ba, bb, len);
        if (d < len) {
            img_util_progress_end(&prog, FALSE);
            if (!quiet)
                printf("Content mismatch at offset %" PRIu64 "!\n",
                       (off + d) / BLOCK_SECTOR_SIZE * BLOCK_SECTOR_SIZE);
            return COMPARE_DIFFERENT;
        }
        off += len;
        img_util_progress_update(&prog, off, total);
    }

    if (sa != sb) {
        BlockDev *longer = sa > sb ? a : b;
        const char *lf = sa > sb ? fa : fb;

        if (!quiet)
            printf("Warning: Image size mismatch!\n");
        for (off = common; off < total; ) {
            uint64_t len = MIN((uint64_t)IMG_COMPARE_CHUNK, total - off), l = len;
            int z = known_zero(longer, off, &l, lf);
            size_t nz;

            if (z < 0)
                return COMPARE_ERROR;
            if (z) {
                off += l;
                continue;
            }
            if (read_chunk(longer, off, ba, len, lf))
                return COMPARE_ERROR;
            if (!is_zero(ba, len, &nz)) {
                img_util_progress_end(&prog, FALSE);
                if (!quiet)
                    printf("Content mismatch at offset %" PRIu64 "!\n",
                           (off + nz) / BLOCK_SECTOR_SIZE * BLOCK_SECTOR_SIZE);
                return COMPARE_DIFFERENT;
            }
            off += len;
            img_util_progress_update(&prog, off, total);
        }
    }
    img_util_progress_end(&prog, TRUE);
    if (!quiet)
        printf("Images are identical.\n");
    return COMPARE_SAME;
}
