/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img map [-f fmt] [--output human|json] [--start-offset N]
 *               [--max-length N] [-U] FILE
 *
 * Extents through the backing chain, merged like qemu-img merges them
 * (same depth and flags, contiguous host offsets, same file).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vireo/img.h"
#include "vireo/util.h"

typedef struct MapEntry {
    uint64_t start, length, offset;
    unsigned flags, depth;
    const char *filename;
} MapEntry;

typedef struct MapState {
    ImgOutput output;
    int *layer_fds;           /* per depth, opened on demand for SEEK_DATA */
    gboolean *layer_recurse;  /* per depth: ask the file about data clusters */
    unsigned nr_layers;
    BlockDev **layers;
    gboolean printed;
} MapState;

/*
 * qemu asks the image file about qcow2 data clusters (and then reports
 * holes in them as zero) only when it guesses that the image was made with
 * metadata preallocation: when the file holds clearly more clusters than
 * it has blocks on disk (more than 10/9 of them, and at least two more).
 * qemu counts the clusters in use from the refcounts; the file length is
 * the same count unless clusters were freed, which only makes us ask the
 * file in a few more cases, where it reports the same data anyway.
 */
static gboolean layer_looks_preallocated(int fd, uint32_t cluster_size)
{
    struct stat sb;
    uint64_t in_file, on_disk;

    if (fstat(fd, &sb) < 0 || !cluster_size)
        return FALSE;
    in_file = ((uint64_t)sb.st_size + cluster_size - 1) / cluster_size;
    on_disk = (uint64_t)sb.st_blocks * 512 / cluster_size;
    return in_file > MAX(on_disk * 10 / 9, on_disk + 2);
}

/*
 * For such images, a data cluster may be a hole in the file (written
 * partly, or never): SEEK_DATA/SEEK_HOLE on the layer's file tell.
 */
static void refine_with_file(MapState *m, BlockStatus *st)
{
    const unsigned want = BLOCK_STATUS_DATA | BLOCK_STATUS_OFFSET_VALID;
    BlockDev *layer;
    struct stat sb;
    off_t data, hole;
    int fd;

    if ((st->flags & want) != want || st->depth >= m->nr_layers)
        return;
    layer = m->layers[st->depth];
    if (strcmp(block_get_format(layer), "qcow2") != 0)
        return;               /* raw already answers from the file */
    fd = m->layer_fds[st->depth];
    if (fd < 0) {
        fd = open(block_get_filename(layer), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return;
        m->layer_fds[st->depth] = fd;
        m->layer_recurse[st->depth] = layer_looks_preallocated(fd,
                                                               block_get_cluster_size(layer));
    }
    if (!m->layer_recurse[st->depth])
        return;
    /* Past the end of the file (a cluster not written out yet) qemu-img
     * asks nothing more, so neither do we. */
    if (fstat(fd, &sb) < 0 || st->host_offset >= (uint64_t)sb.st_size)
        return;
    data = lseek(fd, (off_t)st->host_offset, SEEK_DATA);
    if (data < 0 && errno != ENXIO)
        return;
    if (data < 0 || (uint64_t)data > st->host_offset) {
        st->flags |= BLOCK_STATUS_ZERO;
        st->length = MIN(st->length, (data < 0 ? (uint64_t)sb.st_size : (uint64_t)data) -
                         st->host_offset);
        return;
    }
    hole = lseek(fd, (off_t)st->host_offset, SEEK_HOLE);
    if (hole > (off_t)st->host_offset)
        st->length = MIN(st->length, (uint64_t)hole - st->host_offset);
}

/* Returns FALSE for the error qemu-img gives on compressed data in human form. */
static gboolean print_entry(MapState *m, const MapEntry *e, const char *image)
{
    gboolean data = e->flags & BLOCK_STATUS_DATA, zero = e->flags & BLOCK_STATUS_ZERO;
    gboolean has_offset = e->flags & BLOCK_STATUS_OFFSET_VALID;

    if (m->output == IMG_OUTPUT_JSON) {
        printf("%s{ \"start\": %" PRIu64 ", \"length\": %" PRIu64 ", \"depth\": %u, "
               "\"present\": %s, \"zero\": %s, \"data\": %s", m->printed ? ",\n" : "[",
               e->start, e->length, e->depth,
               e->flags & BLOCK_STATUS_ALLOCATED ? "true" : "false",
               zero ? "true" : "false", data ? "true" : "false");
        if (has_offset)
            printf(", \"offset\": %" PRIu64, e->offset);
        printf("}");
        m->printed = TRUE;
        return TRUE;
    }
    if (data && !has_offset) {
        img_util_error(image, "File contains external, encrypted or compressed clusters.");
        return FALSE;
    }
    if (data && !zero) {
        /* %#x prints 0 without a prefix, as qemu-img shows it. */
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start, e->length,
               has_offset ? e->offset : 0, e->filename);
    }
    return TRUE;
}

static gboolean mergeable(const MapEntry *a, const MapEntry *b)
{
    const unsigned keys = BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO | BLOCK_STATUS_ALLOCATED |
                          BLOCK_STATUS_OFFSET_VALID;

    if (a->start + a->length != b->start || a->depth != b->depth ||
        (a->flags & keys) != (b->flags & keys) || strcmp(a->filename, b->filename) != 0)
        return FALSE;
    return !(a->flags & BLOCK_STATUS_OFFSET_VALID) || a->offset + a->length == b->offset;
}

int img_map_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, IMG_OPT_OUTPUT },
        { "start-offset", required_argument, NULL, IMG_OPT_START_OFFSET },
        { "max-length", required_argument, NULL, IMG_OPT_MAX_LENGTH },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { .read_only = TRUE };
    MapState m = { .output = IMG_OUTPUT_HUMAN };
    g_autoptr(BlockDev) bs = NULL;
    g_autofree int *fds = NULL;
    g_autofree BlockDev **layers = NULL;
    g_autofree gboolean *recurse = NULL;
    uint64_t start = 0, max_len = G_MAXUINT64, end, off;
    MapEntry cur = { 0 };
    gboolean have = FALSE, ok = TRUE;
    const char *file;
    int c;

    while ((c = getopt_long(argc, argv, "hf:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o.format = optarg; break;
        case 'U': o.force_share = TRUE; break;
        case IMG_OPT_OUTPUT:
            if (!img_util_parse_output(optarg, &m.output))
                return 1;
            break;
        case IMG_OPT_START_OFFSET:
        case IMG_OPT_MAX_LENGTH:
            if (!img_util_parse_size(optarg, c == IMG_OPT_START_OFFSET ? &start : &max_len)) {
                img_util_error(NULL, "Invalid %s specified", c == IMG_OPT_START_OFFSET ?
                               "start offset" : "max length");
                return 1;
            }
            break;
        default: return img_util_usage_error("map", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("map", "Expecting one image file name");
    file = argv[optind];
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    if (m.output == IMG_OUTPUT_HUMAN)
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");

    for (BlockDev *b = bs; b; b = block_get_backing(b))
        m.nr_layers++;
    layers = g_new0(BlockDev *, m.nr_layers);
    fds = g_new(int, m.nr_layers);
    recurse = g_new0(gboolean, m.nr_layers);
    m.layer_recurse = recurse;
    m.nr_layers = 0;
    for (BlockDev *b = bs; b; b = block_get_backing(b)) {
        fds[m.nr_layers] = -1;
        layers[m.nr_layers++] = b;
    }
    m.layers = layers;
    m.layer_fds = fds;

    end = block_get_size(bs);
    if (max_len < end && start < end - max_len)
        end = start + max_len;
    for (off = start; off < end && ok; ) {
        g_autoptr(GError) err = NULL;
        BlockStatus st;
        MapEntry e;

        if (!block_get_status(bs, off, end - off, &st, &err)) {
            img_util_error_gerror(file, err);
            ok = FALSE;
            break;
        }
        refine_with_file(&m, &st);
        e = (MapEntry){ .start = off, .length = st.length, .offset = st.host_offset,
                        .flags = st.flags, .depth = st.depth, .filename = st.filename };
        if (have && mergeable(&cur, &e)) {
            cur.length += e.length;
        } else {
            if (have)
                ok = print_entry(&m, &cur, file);
            cur = e;
            have = TRUE;
        }
        off += st.length;
    }
    if (have && ok)
        ok = print_entry(&m, &cur, file);
    if (m.output == IMG_OUTPUT_JSON)
        printf(m.printed ? "]\n" : "[]\n");
    for (unsigned i = 0; i < m.nr_layers; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return ok ? 0 : 1;
}
