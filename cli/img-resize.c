/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img resize [-f fmt] [-q] [--shrink] FILE [+|-]SIZE
 *
 * Shrinking needs --shrink, as in qemu-img, because it drops data; the
 * library shrinks raw images only.
 */
#include <getopt.h>
#include <string.h>

#include "vireo/img.h"

int img_resize_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "shrink", no_argument, NULL, IMG_OPT_SHRINK },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { 0 };
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(GError) err = NULL;
    gboolean quiet = FALSE, shrink = FALSE;
    const char *file, *size_arg;
    uint64_t cur, n, size;
    char sign = 0;
    int c;

    /* "-1G" would otherwise be taken for options: the size is always last. */
    if (argc < 3)
        return img_util_usage_error("resize", "Expecting image file name and size");
    size_arg = argv[argc - 1];
    argc--;
    while ((c = getopt_long(argc, argv, "hf:q", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'q': quiet = TRUE; break;
        case IMG_OPT_SHRINK: shrink = TRUE; break;
        default: return img_util_usage_error("resize", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("resize", "Expecting image file name and size");
    file = argv[optind];
    if (*size_arg == '+' || *size_arg == '-')
        sign = *size_arg++;
    if (!img_util_parse_size(size_arg, &n)) {
        img_util_error(file, "Invalid size '%s': use a number with an optional k, M, G, T, "
                       "P or E suffix (powers of 1024)", argv[argc]);
        return 1;
    }
    /* The backing chain plays no part in a size change. */
    o.no_backing = TRUE;
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    cur = block_get_size(bs);
    if (sign == '+')
        size = cur + n;
    else if (sign == '-') {
        if (n > cur) {
            img_util_error(file, "New image size must be positive");
            return 1;
        }
        size = cur - n;
    } else
        size = n;
    if (size < cur && !shrink) {
        img_util_error(file, "Use the --shrink option to perform a shrink operation.");
        return 1;
    }
    if (size != cur && (!block_truncate(bs, size, &err) || !block_flush_sync(bs, &err))) {
        img_util_error_gerror(file, err);
        return 1;
    }
    if (!quiet)
        printf("Image resized.\n");
    return 0;
}
