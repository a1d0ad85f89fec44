/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img create [-q] [-f fmt] [-b backing [-F fmt]] [-u] [-o options] FILE [SIZE]
 *
 * Prints qemu-img's "Formatting ..." line, with the options in qemu-img's
 * order, so logs and scripts that parse it keep working.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "vireo/img.h"
#include "vireo/qcow2.h"

typedef struct CreateOpts {
    Qcow2CreateOptions q;
    uint64_t size;
    gboolean have_size;
    const char *prealloc;     /* as given, for the summary line */
    const char *compat;
    GPtrArray *keep;          /* of GStrv: the parsed -o strings */
} CreateOpts;

static gboolean parse_bool(const char *file, const char *key, const char *v, gboolean *out)
{
    if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
        *out = TRUE;
    else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
        *out = FALSE;
    else {
        img_util_error(file, "Parameter '%s' expects 'on' or 'off'", key);
        return FALSE;
    }
    return TRUE;
}

static void print_option_help(const char *fmt)
{
    printf("Supported %s options:\n", fmt);
    printf("  size=<size>            - Virtual disk size\n");
    if (strcmp(fmt, "raw") == 0) {
        printf("  preallocation=<str>    - Preallocation mode (allowed values: off)\n");
        return;
    }
    printf("  backing_file=<str>     - File name of a base image\n"
           "  backing_fmt=<str>      - Image format of the base image\n"
           "  cluster_size=<size>    - qcow2 cluster size (4k to 2M, a power of two)\n"
           "  compat=<str>           - Compatibility level (0.10 or 1.1)\n"
           "  compression_type=<str> - Compression method used for image cluster "
           "compression (zlib, zstd)\n"
           "  extended_l2=<bool>     - Extended L2 tables (off only)\n"
           "  lazy_refcounts=<bool>  - Postpone refcount updates\n"
           "  preallocation=<str>    - Preallocation mode (allowed values: off, metadata)\n"
           "  refcount_bits=<num>    - Width of a reference count entry in bits (16 only)\n");
}

/*
 * One -o string: key=value pairs separated by commas. Returns 0 to go on,
 * 1 after an error, 2 after printing help.
 */
static int parse_options(const char *file, const char *fmt, const char *list, CreateOpts *o,
                         const char **backing, const char **backing_fmt)
{
    /* Values are kept (backing file names, the summary line): o owns them. */
    char **items = g_strsplit(list, ",", -1);
    gboolean raw = strcmp(fmt, "raw") == 0;

    g_ptr_array_add(o->keep, items);
    for (char **it = items; *it; it++) {
        char *eq = strchr(*it, '=');
        const char *key = *it, *val = eq ? eq + 1 : NULL;
        uint64_t n;

        if (!**it)
            continue;
        if (strcmp(key, "help") == 0 || strcmp(key, "?") == 0) {
            print_option_help(fmt);
            return 2;
        }
        if (!eq) {
            img_util_error(file, "Invalid parameter '%s'", key);
            return 1;
        }
        *eq = '\0';
        if (strcmp(key, "size") == 0) {
            if (!img_util_parse_size(val, &o->size)) {
                img_util_error(file, "invalid size '%s'", val);
                return 1;
            }
            o->have_size = TRUE;
        } else if (strcmp(key, "preallocation") == 0) {
            if (strcmp(val, "off") == 0)
                o->q.preallocation = QCOW2_PREALLOC_OFF;
            else if (!raw && strcmp(val, "metadata") == 0)
                o->q.preallocation = QCOW2_PREALLOC_METADATA;
            else {
                img_util_error(file, "Unsupported preallocation mode '%s' (supported: %s)", val,
                               raw ? "off" : "off, metadata");
                return 1;
            }
            o->prealloc = val;
        } else if (raw) {
            img_util_error(file, "Invalid parameter '%s'", key);
            return 1;
        } else if (strcmp(key, "cluster_size") == 0) {
            if (!img_util_parse_size(val, &n) || n > G_MAXUINT32) {
                img_util_error(file, "invalid cluster_size '%s'", val);
                return 1;
            }
            o->q.cluster_size = (uint32_t)n;
        } else if (strcmp(key, "compat") == 0) {
            if (strcmp(val, "0.10") == 0 || strcmp(val, "v2") == 0)
                o->q.version = 2;
            else if (strcmp(val, "1.1") == 0 || strcmp(val, "v3") == 0)
                o->q.version = 3;
            else {
                img_util_error(file, "Invalid compatibility level: '%s'", val);
                return 1;
            }
            o->compat = val;
        } else if (strcmp(key, "compression_type") == 0) {
            if (strcmp(val, "zlib") == 0)
                o->q.compression_type = QCOW2_COMPRESSION_ZLIB;
            else if (strcmp(val, "zstd") == 0)
                o->q.compression_type = QCOW2_COMPRESSION_ZSTD;
            else {
                img_util_error(file, "Invalid compression_type '%s' (supported: zlib, zstd)",
                               val);
                return 1;
            }
        } else if (strcmp(key, "lazy_refcounts") == 0) {
            if (!parse_bool(file, key, val, &o->q.lazy_refcounts))
                return 1;
        } else if (strcmp(key, "extended_l2") == 0) {
            gboolean on;
            if (!parse_bool(file, key, val, &on))
                return 1;
            if (on) {
                img_util_error(file, "extended L2 entries (subclusters) are not supported");
                return 1;
            }
        } else if (strcmp(key, "refcount_bits") == 0) {
            if (strcmp(val, "16") != 0) {
                img_util_error(file, "refcount_bits=%s is not supported (only 16)", val);
                return 1;
            }
        } else if (strcmp(key, "backing_file") == 0) {
            *backing = val;
        } else if (strcmp(key, "backing_fmt") == 0) {
            *backing_fmt = val;
        } else {
            img_util_error(file, "Invalid parameter '%s'", key);
            return 1;
        }
    }
    return 0;
}

/* Checks that the backing file opens and, without a size, takes its size. */
static gboolean probe_backing(const char *file, CreateOpts *o, const char *backing,
                              const char *backing_fmt)
{
    g_autofree char *path = block_resolve_backing_path(file, backing);
    BlockOpenOptions bo = { .format = backing_fmt, .read_only = TRUE, .force_share = TRUE,
                            .no_backing = TRUE };
    g_autoptr(BlockDev) bs = NULL;
    g_autoptr(GError) err = NULL;

    if (!backing_fmt) {
        /* qemu-img 7.2 refuses this too: a probed format is a guess. */
        bs = block_open(path, &bo, NULL);
        img_util_error(file, "Backing file specified without backing format (-F)%s%s%s",
                       bs ? "; detected format of " : "", bs ? block_get_format(bs) : "",
                       bs ? "." : "");
        return FALSE;
    }
    if (!img_util_check_format(backing, backing_fmt))
        return FALSE;
    bs = block_open(path, &bo, &err);
    if (!bs) {
        img_util_error(file, "Could not open backing image: %s", err->message);
        return FALSE;
    }
    if (!o->have_size) {
        o->size = block_get_size(bs);
        o->have_size = TRUE;
    }
    return TRUE;
}

int img_create_image(const ImgCreateRequest *req)
{
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    CreateOpts o = { .size = req->size, .have_size = req->have_size, .keep = keep };
    const char *file = req->file, *fmt = req->fmt;
    const char *backing = req->backing, *backing_fmt = req->backing_fmt;
    g_autoptr(GError) err = NULL;

    if (!img_util_check_format(file, fmt))
        return 1;
    for (guint i = 0; req->optlists && i < req->optlists->len; i++) {
        int r = parse_options(file, fmt, req->optlists->pdata[i], &o, &backing, &backing_fmt);
        if (r)
            return r;
    }
    if (backing && strcmp(fmt, "qcow2") != 0) {
        img_util_error(file, "Backing file not supported for file format '%s'", fmt);
        return 1;
    }
    if (backing && !(req->unsafe && o.have_size && backing_fmt) &&
        !probe_backing(file, &o, backing, backing_fmt))
        return 1;
    if (backing && backing_fmt && !img_util_check_format(backing, backing_fmt))
        return 1;
    if (!o.have_size) {
        img_util_error(file, "Image creation needs a size parameter");
        return 1;
    }

    if (strcmp(fmt, "raw") == 0) {
        if (!req->quiet)
            printf("Formatting '%s', fmt=raw size=%" PRIu64 "%s%s\n", file, o.size,
                   o.prealloc ? " preallocation=" : "", o.prealloc ? o.prealloc : "");
        if (!block_create_raw(file, o.size, &err)) {
            img_util_error_gerror(file, err);
            return 1;
        }
        return 0;
    }

    o.q.size = o.size;
    o.q.backing_file = backing;
    o.q.backing_format = backing_fmt;
    if (!req->quiet) {
        g_autoptr(GString) s = g_string_new(NULL);
        g_string_append_printf(s, "Formatting '%s', fmt=qcow2 cluster_size=%u extended_l2=off",
                               file, o.q.cluster_size ? o.q.cluster_size :
                               QCOW2_DEFAULT_CLUSTER_SIZE);
        if (o.prealloc)
            g_string_append_printf(s, " preallocation=%s", o.prealloc);
        g_string_append_printf(s, " compression_type=%s size=%" PRIu64,
                               o.q.compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib",
                               o.size);
        if (backing)
            g_string_append_printf(s, " backing_file=%s", backing);
        if (backing_fmt)
            g_string_append_printf(s, " backing_fmt=%s", backing_fmt);
        if (o.compat)
            g_string_append_printf(s, " compat=%s", o.compat);
        g_string_append_printf(s, " lazy_refcounts=%s refcount_bits=16",
                               o.q.lazy_refcounts ? "on" : "off");
        printf("%s\n", s->str);
    }
    if (!qcow2_create(file, &o.q, &err)) {
        img_util_error_gerror(file, err);
        return 1;
    }
    return 0;
}

int img_create_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(GPtrArray) optlists = g_ptr_array_new_with_free_func(g_free);
    ImgCreateRequest req = { .fmt = "raw", .optlists = optlists };
    int c, r;

    while ((c = getopt_long(argc, argv, "hf:b:F:o:qu", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': req.fmt = optarg; break;
        case 'b': req.backing = optarg; break;
        case 'F': req.backing_fmt = optarg; break;
        case 'o': g_ptr_array_add(optlists, g_strdup(optarg)); break;
        case 'q': req.quiet = TRUE; break;
        case 'u': req.unsafe = TRUE; break;
        default: return img_util_usage_error("create", "invalid option");
        }
    }
    if (optind >= argc)
        return img_util_usage_error("create", "Expecting image file name");
    req.file = argv[optind++];
    if (optind < argc) {
        if (!img_util_parse_size(argv[optind], &req.size)) {
            img_util_error(req.file, "Invalid image size '%s': use a number with an optional "
                           "k, M, G, T, P or E suffix (powers of 1024)", argv[optind]);
            return 1;
        }
        req.have_size = TRUE;
        optind++;
    }
    if (optind < argc)
        return img_util_usage_error("create", "Unexpected argument");
    r = img_create_image(&req);
    return r == 2 ? 0 : r;
}
