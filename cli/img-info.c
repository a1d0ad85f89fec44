/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img info [-f fmt] [--output human|json] [--backing-chain] [-U] FILE
 *
 * qemu-img prints its JSON from a hash table, so its key order looks
 * arbitrary but is fixed; the members below are emitted in that order
 * (taken from qemu-img 7.2's output) so that both tools print identical
 * text for the same image.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "vireo/img.h"

static void snapshot_json(ImgJson *j, const BlockSnapshotInfo *sn)
{
    img_json_open(j, NULL, '{');
    if (sn->icount != G_MAXUINT64)
        img_json_uint(j, "icount", sn->icount);
    img_json_uint(j, "vm-clock-nsec", sn->vm_clock_nsec % 1000000000ull);
    img_json_str(j, "name", sn->name);
    img_json_int(j, "date-sec", sn->date_sec);
    img_json_uint(j, "date-nsec", sn->date_nsec);
    img_json_uint(j, "vm-clock-sec", sn->vm_clock_nsec / 1000000000ull);
    img_json_str(j, "id", sn->id);
    img_json_uint(j, "vm-state-size", sn->vm_state_size);
    img_json_close(j, '{');
}

static void info_json(ImgJson *j, const BlockInfo *info)
{
    gboolean qcow2 = strcmp(info->format, "qcow2") == 0;

    img_json_open(j, NULL, '{');
    if (info->backing_format)
        img_json_str(j, "backing-filename-format", info->backing_format);
    if (info->snapshots->len) {
        img_json_open(j, "snapshots", '[');
        for (guint i = 0; i < info->snapshots->len; i++)
            snapshot_json(j, info->snapshots->pdata[i]);
        img_json_close(j, '[');
    }
    img_json_uint(j, "virtual-size", info->virtual_size);
    img_json_str(j, "filename", info->filename);
    if (info->cluster_size)
        img_json_uint(j, "cluster-size", info->cluster_size);
    img_json_str(j, "format", info->format);
    img_json_uint(j, "actual-size", info->actual_size);
    if (qcow2) {
        gboolean v3 = info->compat && strcmp(info->compat, "0.10") != 0;
        img_json_open(j, "format-specific", '{');
        img_json_str(j, "type", "qcow2");
        img_json_open(j, "data", '{');
        img_json_str(j, "compat", info->compat);
        img_json_str(j, "compression-type", info->compression_type);
        if (v3)
            img_json_bool(j, "lazy-refcounts", info->lazy_refcounts);
        img_json_uint(j, "refcount-bits", info->refcount_bits);
        if (v3) {
            img_json_bool(j, "corrupt", info->corrupt);
            img_json_bool(j, "extended-l2", info->extended_l2);
        }
        img_json_close(j, '{');
        img_json_close(j, '{');
    }
    if (info->full_backing_filename)
        img_json_str(j, "full-backing-filename", info->full_backing_filename);
    if (info->backing_filename)
        img_json_str(j, "backing-filename", info->backing_filename);
    img_json_bool(j, "dirty-flag", info->dirty);
    img_json_close(j, '{');
}

static void snapshot_row(const BlockSnapshotInfo *sn)
{
    g_autofree char *vmsize = img_util_size_to_str(sn->vm_state_size);
    char date[32] = "", clock[32], icount[32] = "";
    time_t t = (time_t)sn->date_sec;
    struct tm tm;
    uint64_t secs = sn->vm_clock_nsec / 1000000000ull;

    if (localtime_r(&t, &tm))
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(clock, sizeof(clock), "%02" PRIu64 ":%02u:%02u.%03u", secs / 3600,
             (unsigned)(secs / 60 % 60), (unsigned)(secs % 60),
             (unsigned)(sn->vm_clock_nsec / 1000000 % 1000));
    if (sn->icount != G_MAXUINT64)
        snprintf(icount, sizeof(icount), "%" PRIu64, sn->icount);
    printf("%-9s %-17s %7s%20s%13s%11s\n", sn->id, sn->name, vmsize, date, clock, icount);
}

void img_info_print_snapshots(GPtrArray *snapshots)
{
    if (!snapshots->len)
        return;
    printf("Snapshot list:\n");
    printf("%-9s %-17s %7s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
           "ICOUNT");
    for (guint i = 0; i < snapshots->len; i++)
        snapshot_row(snapshots->pdata[i]);
}

static void info_human(const BlockInfo *info)
{
    g_autofree char *vsize = img_util_size_to_str(info->virtual_size);
    g_autofree char *dsize = img_util_size_to_str(info->actual_size);

    printf("image: %s\nfile format: %s\n", info->filename, info->format);
    printf("virtual size: %s (%" PRIu64 " bytes)\n", vsize, info->virtual_size);
    printf("disk size: %s\n", dsize);
    if (info->cluster_size)
        printf("cluster_size: %u\n", info->cluster_size);
    if (info->dirty)
        printf("cleanly shut down: no\n");
    if (info->backing_filename) {
        printf("backing file: %s", info->backing_filename);
        if (info->full_backing_filename &&
            strcmp(info->full_backing_filename, info->backing_filename) != 0)
            printf(" (actual path: %s)", info->full_backing_filename);
        printf("\n");
    }
    if (info->backing_format)
        printf("backing file format: %s\n", info->backing_format);
    img_info_print_snapshots(info->snapshots);
    if (strcmp(info->format, "qcow2") == 0) {
        gboolean v3 = info->compat && strcmp(info->compat, "0.10") != 0;
        printf("Format specific information:\n");
        printf("    compat: %s\n", info->compat);
        printf("    compression type: %s\n", info->compression_type);
        if (v3)
            printf("    lazy refcounts: %s\n", info->lazy_refcounts ? "true" : "false");
        printf("    refcount bits: %u\n", info->refcount_bits);
        if (v3) {
            printf("    corrupt: %s\n", info->corrupt ? "true" : "false");
            printf("    extended l2: %s\n", info->extended_l2 ? "true" : "false");
        }
    }
}

int img_info_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, IMG_OPT_OUTPUT },
        { "backing-chain", no_argument, NULL, IMG_OPT_BACKING_CHAIN },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { .read_only = TRUE };
    ImgOutput output = IMG_OUTPUT_HUMAN;
    gboolean chain = FALSE;
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(GPtrArray) infos = g_ptr_array_new_with_free_func(
        (GDestroyNotify)block_info_free);
    ImgJson j = { .out = stdout };
    const char *file;
    int c;

    while ((c = getopt_long(argc, argv, "hf:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'U': o.force_share = TRUE; break;
        case IMG_OPT_OUTPUT:
            if (!img_util_parse_output(optarg, &output))
                return 1;
            break;
        case IMG_OPT_BACKING_CHAIN: chain = TRUE; break;
        default: return img_util_usage_error("info", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("info", "Expecting one image file name");
    file = argv[optind];
    /* The chain is opened only to show it; a missing backing file must not
     * hide the top image's information. */
    o.no_backing = !chain;
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    for (BlockDev *b = bs; b; b = chain ? block_get_backing(b) : NULL) {
        g_autoptr(GError) err = NULL;
        BlockInfo *info = block_get_info(b, &err);
        if (!info) {
            img_util_error_gerror(block_get_filename(b), err);
            return 1;
        }
        g_ptr_array_add(infos, info);
    }

    if (output == IMG_OUTPUT_JSON) {
        if (chain)
            img_json_open(&j, NULL, '[');
        for (guint i = 0; i < infos->len; i++)
            info_json(&j, infos->pdata[i]);
        if (chain)
            img_json_close(&j, '[');
        img_json_end(&j);
        return 0;
    }
    for (guint i = 0; i < infos->len; i++) {
        if (i)
            printf("\n");
        info_human(infos->pdata[i]);
    }
    return 0;
}
