/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img convert [-c] [-p] [-q] [-n] [-f fmt] [-O fmt] [-o options]
 *                   [-S sparse_size] [-t cache] [-T src_cache] [-U] SRC DST
 *
 * Copies what SRC shows through its backing chain into a new DST (or an
 * existing one with -n). Ranges the source reports as zero are skipped,
 * since a new image reads as zeroes, and so are zero runs of at least
 * sparse_size bytes inside data (default 4 KiB, as qemu-img), so DST stays
 * sparse. Several chunks are in flight at once on one engine, so reading
 * the source overlaps writing the target. -c writes compressed clusters,
 * one at a time (the library does not allow them concurrently).
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "vireo/img.h"

#define CONVERT_CHUNK (2u << 20)
#define CONVERT_SLOTS 8

typedef struct Convert Convert;

typedef struct ConvertSlot {
    Convert *cv;
    uint8_t *buf;
    uint64_t off, len;
    unsigned writes;          /* write requests of this chunk in flight */
    gboolean ready;           /* done: the main loop gives it the next range */
    struct iovec *iov;        /* one per write run */
} ConvertSlot;

struct Convert {
    BlockDev *src, *dst;
    const char *src_name, *dst_name;
    uint64_t size, next, done;
    uint64_t sparse;          /* 0: write zero runs as data */
    gboolean target_zero;     /* DST reads as zeroes where nothing was written */
    unsigned in_flight;
    int error;                /* first -errno of a request */
    const char *error_file;
    GError *gerror;
    ImgProgress *prog;
    ConvertSlot slots[CONVERT_SLOTS];
};

static void fail(Convert *cv, int ret, const char *file)
{
    if (!cv->error) {
        cv->error = ret;
        cv->error_file = file;
    }
}

/*
 * The next range is taken in the main loop, not here: planning it may need
 * synchronous I/O, which must not run inside a completion callback.
 */
static void slot_finish(ConvertSlot *s)
{
    Convert *cv = s->cv;

    cv->done += s->len;
    img_util_progress_update(cv->prog, cv->done, cv->size);
    s->ready = TRUE;
}

static void write_done(void *opaque, int ret)
{
    ConvertSlot *s = opaque;

    s->cv->in_flight--;
    if (ret < 0)
        fail(s->cv, ret, s->cv->dst_name);
    if (--s->writes == 0)
        slot_finish(s);
}

static gboolean all_zero(const uint8_t *p, size_t len)
{
    /* memcmp against itself shifted by one byte: fast and allocation-free. */
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static void submit_write(ConvertSlot *s, uint64_t start, uint64_t end, gboolean zero)
{
    Convert *cv = s->cv;

    s->writes++;
    cv->in_flight++;
    if (zero) {
        block_write_zeroes(cv->dst, s->off + start, end - start, BLOCK_REQ_MAY_UNMAP,
                           write_done, s);
        return;
    }
    s->iov[s->writes - 1] = (struct iovec){ .iov_base = s->buf + start,
                                            .iov_len = end - start };
    block_writev(cv->dst, s->off + start, &s->iov[s->writes - 1], 1, 0, write_done, s);
}

/* Splits the chunk into data and zero runs of sparse-size granules. */
static void read_done(void *opaque, int ret)
{
    ConvertSlot *s = opaque;
    Convert *cv = s->cv;
    uint64_t gran = cv->sparse ? cv->sparse : s->len;
    uint64_t run = 0;
    gboolean run_zero = FALSE;

    cv->in_flight--;
    if (ret < 0) {
        fail(cv, ret, cv->src_name);
        return;
    }
    /* Count ourselves as one write until every run is submitted, so that an
     * early completion cannot finish the slot. */
    s->writes = 1;
    for (uint64_t p = 0; p < s->len; ) {
        uint64_t n = MIN(gran - (s->off + p) % gran, s->len - p);
        gboolean z = cv->sparse && all_zero(s->buf + p, n);

        if (p > run && z != run_zero) {
            if (!run_zero || !cv->target_zero)
                submit_write(s, run, p, run_zero);
            run = p;
        }
        run_zero = z;
        p += n;
    }
    if (!run_zero || !cv->target_zero)
        submit_write(s, run, s->len, run_zero);
    if (--s->writes == 0)
        slot_finish(s);
}

/* Takes the next range of the source; returns with nothing in flight at the end. */
static void slot_start(ConvertSlot *s)
{
    Convert *cv = s->cv;

    while (!cv->error && cv->next < cv->size) {
        g_autoptr(GError) err = NULL;
        uint64_t len = MIN((uint64_t)CONVERT_CHUNK, cv->size - cv->next);
        BlockStatus st;

        if (!block_get_status(cv->src, cv->next, len, &st, &err)) {
            if (!cv->gerror) {
                cv->gerror = g_steal_pointer(&err);
                cv->error_file = cv->src_name;
            }
            fail(cv, -EIO, cv->src_name);
            return;
        }
        s->off = cv->next;
        s->len = st.length;
        /* Requests are in 512-byte units; only a raw tail can be shorter. */
        if (s->len >= BLOCK_SECTOR_SIZE)
            s->len -= s->len % BLOCK_SECTOR_SIZE;
        cv->next += s->len;
        if ((st.flags & BLOCK_STATUS_ZERO) && !(st.flags & BLOCK_STATUS_DATA)) {
            if (cv->target_zero) {
                cv->done += s->len;
                continue;
            }
            s->writes = 0;
            submit_write(s, 0, s->len, TRUE);
            return;
        }
        if (s->len % BLOCK_SECTOR_SIZE) {
            /* The unaligned tail of a raw source: a synchronous copy. */
            if (!block_pread(cv->src, s->off, s->buf, s->len, &err) ||
                !block_pwrite(cv->dst, s->off, s->buf, s->len, 0, &err)) {
                cv->gerror = g_steal_pointer(&err);
                fail(cv, -EIO, cv->dst_name);
                return;
            }
            cv->done += s->len;
            continue;
        }
        s->iov[0] = (struct iovec){ .iov_base = s->buf, .iov_len = s->len };
        cv->in_flight++;
        block_readv(cv->src, s->off, &s->iov[0], 1, read_done, s);
        return;
    }
}

static gboolean convert_copy(Convert *cv)
{
    BlockEngine *engine = block_get_engine(cv->src);
    size_t max_runs = CONVERT_CHUNK / 512 / 2 + 2;

    for (unsigned i = 0; i < CONVERT_SLOTS; i++) {
        cv->slots[i].cv = cv;
        /* Aligned, so cache=none needs no bounce buffers. */
        cv->slots[i].buf = g_aligned_alloc(CONVERT_CHUNK, 1, 4096);
        cv->slots[i].iov = g_new(struct iovec, max_runs);
    }
    for (unsigned i = 0; i < CONVERT_SLOTS; i++)
        cv->slots[i].ready = TRUE;
    for (;;) {
        for (unsigned i = 0; i < CONVERT_SLOTS; i++) {
            if (cv->slots[i].ready) {
                cv->slots[i].ready = FALSE;
                slot_start(&cv->slots[i]);
            }
        }
        /* Only callbacks make slots ready again: nothing in flight = done. */
        if (!cv->in_flight)
            break;
        block_engine_wait(engine, -1);
    }
    for (unsigned i = 0; i < CONVERT_SLOTS; i++) {
        g_aligned_free(cv->slots[i].buf);
        g_free(cv->slots[i].iov);
    }
    if (cv->gerror) {
        img_util_error_gerror(cv->error_file, cv->gerror);
        g_clear_error(&cv->gerror);
        return FALSE;
    }
    if (cv->error) {
        img_util_error(cv->error_file, "error while %s: %s",
                       cv->error_file == cv->src_name ? "reading" : "writing",
                       g_strerror(-cv->error));
        return FALSE;
    }
    return TRUE;
}

/* -c: whole clusters through block_write_compressed, skipping zero ones. */
static gboolean convert_compressed(Convert *cv)
{
    uint32_t cs = block_get_cluster_size(cv->dst);
    g_autofree uint8_t *buf = g_malloc(cs);

    for (uint64_t off = 0; off < cv->size; ) {
        g_autoptr(GError) err = NULL;
        uint64_t len = MIN((uint64_t)cs, cv->size - off);
        BlockStatus st;

        if (!block_get_status(cv->src, off, len, &st, &err)) {
            img_util_error_gerror(cv->src_name, err);
            return FALSE;
        }
        if ((st.flags & BLOCK_STATUS_ZERO) && !(st.flags & BLOCK_STATUS_DATA) &&
            st.length == len) {
            off += len;
            continue;
        }
        if (!block_pread(cv->src, off, buf, len, &err)) {
            img_util_error_gerror(cv->src_name, err);
            return FALSE;
        }
        if (!all_zero(buf, len) && !block_write_compressed(cv->dst, off, buf, len, &err)) {
            img_util_error_gerror(cv->dst_name, err);
            return FALSE;
        }
        off += len;
        img_util_progress_update(cv->prog, off, cv->size);
    }
    return TRUE;
}

int img_convert_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(GPtrArray) optlists = g_ptr_array_new_with_free_func(g_free);
    /* qemu-img convert writes with cache=unsafe unless told otherwise. */
    BlockOpenOptions so = { .read_only = TRUE }, dopt = { .cache = BLOCK_CACHE_UNSAFE };
    g_autoptr(BlockEngine) engine = NULL;
    g_autoptr(BlockDev) src = NULL;
    g_autoptr(BlockDev) dst = NULL;
    g_autoptr(GError) err = NULL;
    const char *out_fmt = "raw";
    gboolean compress = FALSE, progress = FALSE, quiet = FALSE, no_create = FALSE;
    uint64_t sparse = 4096;
    Convert cv = { 0 };
    ImgProgress prog;
    gboolean ok;
    int c;

    while ((c = getopt_long(argc, argv, "hf:O:o:cpqnS:t:T:UW", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': so.format = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'o': g_ptr_array_add(optlists, g_strdup(optarg)); break;
        case 'c': compress = TRUE; break;
        case 'p': progress = TRUE; break;
        case 'q': quiet = TRUE; break;
        case 'n': no_create = TRUE; break;
        case 'W': break;      /* out-of-order writes: the default here */
        case 'S':
            if (!img_util_parse_size(optarg, &sparse) || sparse % BLOCK_SECTOR_SIZE ||
                sparse > CONVERT_CHUNK) {
                img_util_error(NULL, "Invalid buffer size for sparse output specified. "
                               "Valid sizes are multiples of 512 up to 2M.");
                return 1;
            }
            break;
        case 't':
            if (!img_util_parse_cache(optarg, &dopt.cache))
                return 1;
            break;
        case 'T':
            if (!img_util_parse_cache(optarg, &so.cache))
                return 1;
            break;
        case 'U': so.force_share = TRUE; break;
        default: return img_util_usage_error("convert", "invalid option");
        }
    }
    if (optind != argc - 2)
        return img_util_usage_error("convert", "Expecting a source and a target file name");
    cv.src_name = argv[optind];
    cv.dst_name = argv[optind + 1];
    if (!img_util_check_format(cv.dst_name, out_fmt))
        return 1;
    if (compress && strcmp(out_fmt, "qcow2") != 0) {
        img_util_error(cv.dst_name, "Compression not supported for this file format");
        return 1;
    }
    for (guint i = 0; compress && i < optlists->len; i++) {
        const char *pre = strstr(optlists->pdata[i], "preallocation=");
        if (pre && !g_str_has_prefix(pre, "preallocation=off")) {
            img_util_error(cv.dst_name, "Compression and preallocation not supported at "
                           "the same time");
            return 1;
        }
    }
    if (no_create && optlists->len) {
        img_util_error(cv.dst_name, "-o cannot be used with -n: the target exists");
        return 1;
    }

    engine = block_engine_new(&err);
    if (!engine) {
        img_util_error_gerror(NULL, err);
        return 1;
    }
    so.engine = dopt.engine = engine;
    src = img_util_open(cv.src_name, &so);
    if (!src)
        return 1;
    cv.size = block_get_size(src);
    if (!no_create) {
        ImgCreateRequest req = { .file = cv.dst_name, .fmt = out_fmt, .optlists = optlists,
                                 .have_size = TRUE, .size = cv.size, .quiet = TRUE };
        int r = img_create_image(&req);
        if (r)
            return r == 2 ? 0 : 1;
    }
    dopt.format = out_fmt;
    dopt.discard = TRUE;
    dst = img_util_open(cv.dst_name, &dopt);
    if (!dst)
        return 1;
    if (block_get_backing(dst) && !no_create) {
        img_util_error(cv.dst_name, "a backing file for the target is not supported");
        return 1;
    }
    if (block_get_size(dst) < cv.size) {
        img_util_error(cv.dst_name, "target is smaller than the source");
        return 1;
    }

    cv.src = src;
    cv.dst = dst;
    cv.sparse = sparse;
    cv.target_zero = !no_create;
    cv.prog = &prog;
    img_util_progress_start(&prog, progress && !quiet);
    ok = compress ? convert_compressed(&cv) : convert_copy(&cv);
    if (ok && !block_flush_sync(dst, &err)) {
        img_util_error_gerror(cv.dst_name, err);
        ok = FALSE;
    }
    img_util_progress_end(&prog, ok);
    return ok ? 0 : 1;
}
