/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img check [-q] [-f fmt] [--output human|json] [-r leaks|all] [-U] FILE
 *
 * Exit status as qemu-img's: 0 clean, 1 the check could not complete,
 * 2 corruptions, 3 leaks only, 63 the format cannot be checked (raw).
 * The per-cluster lines qemu-img prints on stderr are not reproduced; the
 * counts and the summary are.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "vireo/img.h"

#define IMG_CHECK_UNSUPPORTED 63

static void check_json(const char *file, const char *format, const BlockCheckResult *r)
{
    ImgJson j = { .out = stdout };

    /* qemu-img's key order; zero counts are left out, as qemu-img does. */
    img_json_open(&j, NULL, '{');
    if (r->image_end_offset)
        img_json_uint(&j, "image-end-offset", r->image_end_offset);
    if (r->compressed_clusters)
        img_json_uint(&j, "compressed-clusters", r->compressed_clusters);
    if (r->total_clusters)
        img_json_uint(&j, "total-clusters", r->total_clusters);
    if (r->corruptions)
        img_json_uint(&j, "corruptions", r->corruptions);
    if (r->corruptions_fixed)
        img_json_uint(&j, "corruptions-fixed", r->corruptions_fixed);
    img_json_uint(&j, "check-errors", r->check_errors);
    if (r->leaks)
        img_json_uint(&j, "leaks", r->leaks);
    if (r->leaks_fixed)
        img_json_uint(&j, "leaks-fixed", r->leaks_fixed);
    if (r->allocated_clusters)
        img_json_uint(&j, "allocated-clusters", r->allocated_clusters);
    img_json_str(&j, "filename", file);
    img_json_str(&j, "format", format);
    if (r->fragmented_clusters)
        img_json_uint(&j, "fragmented-clusters", r->fragmented_clusters);
    img_json_close(&j, '{');
    img_json_end(&j);
}

static void check_human(const BlockCheckResult *r)
{
    if (!r->corruptions && !r->leaks && !r->check_errors) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions)
            printf("\n%" PRIu64 " errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may corrupt it.\n",
                   r->corruptions);
        if (r->leaks)
            printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n", r->leaks);
        if (r->check_errors)
            printf("\n%" PRIu64 " internal errors have occurred during the check.\n",
                   r->check_errors);
    }
    if (r->total_clusters && r->allocated_clusters)
        printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, "
               "%0.2f%% compressed clusters\n", r->allocated_clusters, r->total_clusters,
               r->allocated_clusters * 100.0 / r->total_clusters,
               r->fragmented_clusters * 100.0 / r->allocated_clusters,
               r->compressed_clusters * 100.0 / r->allocated_clusters);
    if (r->image_end_offset)
        printf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

int img_check_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "repair", required_argument, NULL, 'r' },
        { "output", required_argument, NULL, IMG_OPT_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { .read_only = TRUE };
    ImgOutput output = IMG_OUTPUT_HUMAN;
    BlockCheckFix fix = BLOCK_CHECK_NO_FIX;
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(GError) err = NULL;
    BlockCheckResult r;
    gboolean quiet = FALSE;
    const char *file;
    int c;

    while ((c = getopt_long(argc, argv, "hf:r:T:qU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'r':
            if (strcmp(optarg, "leaks") == 0)
                fix = BLOCK_CHECK_FIX_LEAKS;
            else if (strcmp(optarg, "all") == 0)
                fix = BLOCK_CHECK_FIX_LEAKS | BLOCK_CHECK_FIX_ERRORS;
            else
                return img_util_usage_error("check",
                                            "Unknown option value for -r (expecting 'leaks' "
                                            "or 'all')");
            break;
        case 'T':
            if (!img_util_parse_cache(optarg, &o.cache))
                return 1;
            break;
        case 'q': quiet = TRUE; break;
        case 'U': o.force_share = TRUE; break;
        case IMG_OPT_OUTPUT:
            if (!img_util_parse_output(optarg, &output))
                return 1;
            break;
        default: return img_util_usage_error("check", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("check", "Expecting one image file name");
    file = argv[optind];
    if (fix && o.force_share) {
        img_util_error(file, "-U cannot be used with -r: repair needs the image locked");
        return 1;
    }
    o.read_only = !fix;
    /* Only this image's metadata is checked, as qemu-img does. */
    o.no_backing = TRUE;
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    if (strcmp(block_get_format(bs), "raw") == 0) {
        img_util_error(file, "This image format does not support checks");
        return IMG_CHECK_UNSUPPORTED;
    }
    if (fix & BLOCK_CHECK_FIX_ERRORS) {
        /*
         * Repairing errors rebuilds the refcount structures after the end
         * of the image; qemu-img does that only when there are
         * corruptions, and otherwise just drops the leaks. So do we, for
         * the same resulting image.
         */
        if (!block_check(bs, BLOCK_CHECK_NO_FIX, &r, &err)) {
            img_util_error(file, "Check failed: %s", err->message);
            return 1;
        }
        if (!r.corruptions)
            fix = BLOCK_CHECK_FIX_LEAKS;
    }
    if (!block_check(bs, fix, &r, &err)) {
        img_util_error(file, "Check failed: %s", err->message);
        return 1;
    }
    if (output == IMG_OUTPUT_HUMAN && !quiet && (r.leaks_fixed || r.corruptions_fixed))
        printf("The following inconsistencies were found and repaired:\n\n"
               "    %" PRIu64 " leaked clusters\n    %" PRIu64 " corruptions\n\n"
               "Double checking the fixed image now...\n", r.leaks_fixed, r.corruptions_fixed);
    if (output == IMG_OUTPUT_JSON)
        check_json(file, block_get_format(bs), &r);
    else if (!quiet)
        check_human(&r);
    if (r.check_errors) {
        img_util_error(file, "Check failed");
        return 1;
    }
    return r.corruptions ? 2 : r.leaks ? 3 : 0;
}
