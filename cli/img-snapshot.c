/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img snapshot [-q] [-U] -l | -c NAME | -a NAME | -d NAME FILE
 *
 * Internal snapshots of qcow2 images (disk state only).
 */
#include <getopt.h>
#include <string.h>

#include "vireo/img.h"

int img_snapshot_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { 0 };
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(GError) err = NULL;
    const char *name = NULL, *file, *what = NULL;
    char action = 0;
    gboolean ok;
    int c;

    while ((c = getopt_long(argc, argv, "hf:la:c:d:qU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'U': o.force_share = TRUE; break;
        case 'q': break;
        case 'l': case 'a': case 'c': case 'd':
            if (action)
                return img_util_usage_error("snapshot",
                                            "Cannot mix '-l', '-a', '-c', '-d'");
            action = (char)c;
            name = optarg;
            break;
        default: return img_util_usage_error("snapshot", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("snapshot", "Expecting one image file name");
    file = argv[optind];
    if (!action)
        action = 'l';
    o.read_only = action == 'l';
    if (o.force_share && !o.read_only) {
        img_util_error(file, "-U can only be used with -l: changes need the image locked");
        return 1;
    }
    /* Snapshots live in this image alone; the backing chain is irrelevant. */
    o.no_backing = TRUE;
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    if (strcmp(block_get_format(bs), "qcow2") != 0) {
        img_util_error(file, "format '%s' does not support internal snapshots",
                       block_get_format(bs));
        return 1;
    }
    switch (action) {
    case 'l': {
        g_autoptr(GPtrArray) list = block_snapshot_list(bs, &err);
        if (!list) {
            img_util_error_gerror(file, err);
            return 1;
        }
        img_info_print_snapshots(list);
        return 0;
    }
    case 'c':
        what = "create";
        ok = block_snapshot_create(bs, name, &err);
        break;
    case 'a':
        what = "apply";
        ok = block_snapshot_apply(bs, name, &err);
        break;
    default:
        what = "delete";
        ok = block_snapshot_delete(bs, name, &err);
        break;
    }
    if (ok)
        ok = block_flush_sync(bs, &err);
    if (!ok) {
        img_util_error(file, "Could not %s snapshot '%s': %s", what, name, err->message);
        return 1;
    }
    return 0;
}
