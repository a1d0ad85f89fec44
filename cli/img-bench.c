/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img bench [-c count] [-d depth] [-f fmt] [--flush-interval=N] [-i aio]
 *                 [-n] [--no-drain] [-o offset] [--pattern=P] [-q] [-s size]
 *                 [-S step] [-t cache] [-w] [-U] FILE
 *
 * qemu-img bench's access pattern and summary lines: @count requests of
 * @size bytes, @depth in flight, starting at @offset and advancing by
 * @step, wrapping around before the end of the image. The library takes
 * requests in 512-byte units, so size, offset and step must be multiples
 * of 512 (qemu-img also takes odd byte counts).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/img.h"

typedef struct Bench {
    BlockDev *bs;
    uint64_t image_size, bufsize, step, offset;
    unsigned count, issued, completed, in_flight;
    unsigned flush_interval, since_flush;
    gboolean write, drain, flushing, flush_wanted;
    int error;
    struct iovec *iov;        /* one buffer per slot of the queue */
    struct BenchReq *reqs;    /* one per slot, so requests allocate nothing */
    unsigned *free_slots;
    unsigned nr_free;
} Bench;

typedef struct BenchReq {
    Bench *b;
    unsigned slot;
} BenchReq;

static void bench_issue(Bench *b);

static void flush_done(void *opaque, int ret)
{
    Bench *b = opaque;

    b->in_flight--;
    b->flushing = FALSE;
    if (ret < 0 && !b->error)
        b->error = ret;
    bench_issue(b);
}

static void request_done(void *opaque, int ret)
{
    BenchReq *r = opaque;
    Bench *b = r->b;

    b->in_flight--;
    b->completed++;
    b->free_slots[b->nr_free++] = r->slot;
    if (ret < 0 && !b->error)
        b->error = ret;
    bench_issue(b);
}

/* Fills the queue up to its depth, and sends flushes when they are due. */
static void bench_issue(Bench *b)
{
    while (!b->error) {
        BenchReq *r;
        uint64_t off;

        if (b->flush_wanted && (!b->drain || b->in_flight == 0)) {
            b->flush_wanted = FALSE;
            b->flushing = TRUE;
            b->in_flight++;
            block_flush(b->bs, flush_done, b);
            continue;
        }
        /* Draining: nothing new until the flush has been sent and done. */
        if (b->drain && (b->flush_wanted || b->flushing))
            return;
        if (b->issued == b->count || b->nr_free == 0)
            return;
        r = &b->reqs[b->free_slots[--b->nr_free]];
        off = b->offset;
        b->offset += b->step;
        b->offset = b->image_size <= b->bufsize ? 0 : b->offset % (b->image_size - b->bufsize);
        b->issued++;
        b->in_flight++;
        if (b->write)
            block_writev(b->bs, off, &b->iov[r->slot], 1, 0, request_done, r);
        else
            block_readv(b->bs, off, &b->iov[r->slot], 1, request_done, r);
        if (b->flush_interval && ++b->since_flush == b->flush_interval) {
            b->since_flush = 0;
            b->flush_wanted = TRUE;
        }
    }
}

static gboolean parse_uint(const char *what, const char *s, unsigned *out)
{
    uint64_t v;

    if (!img_util_parse_size(s, &v) || v > G_MAXINT) {
        img_util_error(NULL, "Invalid %s specified", what);
        return FALSE;
    }
    *out = (unsigned)v;
    return TRUE;
}

int img_bench_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "flush-interval", required_argument, NULL, IMG_OPT_FLUSH_INTERVAL },
        { "no-drain", no_argument, NULL, IMG_OPT_NO_DRAIN },
        { "pattern", required_argument, NULL, IMG_OPT_PATTERN },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BlockOpenOptions o = { .cache = BLOCK_CACHE_WRITEBACK };
    Bench b = { .count = 75000, .bufsize = 4096, .drain = TRUE };
    g_autoptr(BlockDev) bs = NULL;
    g_autofree unsigned *free_slots = NULL;
    g_autofree struct iovec *iov = NULL;
    g_autofree BenchReq *reqs = NULL;
    unsigned depth = 64, pattern = 0;
    gboolean step_set = FALSE;
    gint64 t0, t1;
    const char *file;
    uint64_t v;
    int c;

    while ((c = getopt_long(argc, argv, "hc:d:f:i:no:qs:S:t:wU", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!parse_uint("request count", optarg, &b.count))
                return 1;
            break;
        case 'd':
            if (!parse_uint("queue depth", optarg, &depth) || depth == 0) {
                if (depth == 0)
                    img_util_error(NULL, "Invalid queue depth specified");
                return 1;
            }
            break;
        case 'f': o.format = optarg; break;
        case 'i':
            /* One engine serves all requests; "threads" selects its
             * worker-pool path, the others its io_uring path. */
            if (strcmp(optarg, "threads") == 0)
                g_setenv("VIREO_BLOCK_ENGINE", "threads", TRUE);
            else if (strcmp(optarg, "native") != 0 && strcmp(optarg, "io_uring") != 0) {
                img_util_error(NULL, "Invalid aio option: %s", optarg);
                return 1;
            }
            break;
        case 'n':
            /* qemu's -n is native AIO, which qemu only allows with O_DIRECT. */
            o.cache = BLOCK_CACHE_NONE;
            break;
        case 'o':
            if (!img_util_parse_size(optarg, &b.offset)) {
                img_util_error(NULL, "Invalid offset specified");
                return 1;
            }
            break;
        case 'q': break;
        case 's':
            if (!img_util_parse_size(optarg, &b.bufsize) || b.bufsize == 0 ||
                b.bufsize > G_MAXINT) {
                img_util_error(NULL, "Invalid buffer size specified");
                return 1;
            }
            break;
        case 'S':
            if (!img_util_parse_size(optarg, &b.step) || b.step > G_MAXINT) {
                img_util_error(NULL, "Invalid step size specified");
                return 1;
            }
            step_set = TRUE;
            break;
        case 't':
            if (!img_util_parse_cache(optarg, &o.cache))
                return 1;
            break;
        case 'w': b.write = TRUE; break;
        case 'U': o.force_share = TRUE; break;
        case IMG_OPT_FLUSH_INTERVAL:
            if (!parse_uint("flush interval", optarg, &b.flush_interval))
                return 1;
            break;
        case IMG_OPT_NO_DRAIN: b.drain = FALSE; break;
        case IMG_OPT_PATTERN:
            if (!img_util_parse_size(optarg, &v) || v > 0xff) {
                img_util_error(NULL, "Invalid pattern byte specified");
                return 1;
            }
            pattern = (unsigned)v;
            break;
        default: return img_util_usage_error("bench", "invalid option");
        }
    }
    if (optind != argc - 1)
        return img_util_usage_error("bench", "Expecting one image file name");
    file = argv[optind];
    if (!step_set)
        b.step = b.bufsize;
    if (b.flush_interval && b.flush_interval < depth && b.drain) {
        img_util_error(NULL, "Flush interval can't be smaller than depth");
        return 1;
    }
    if (b.flush_interval && !b.write) {
        img_util_error(NULL, "--flush-interval is only available in write tests");
        return 1;
    }
    if ((b.bufsize | b.step | b.offset) % BLOCK_SECTOR_SIZE) {
        img_util_error(file, "buffer size, step and offset must be multiples of %d",
                       BLOCK_SECTOR_SIZE);
        return 1;
    }
    o.read_only = !b.write;
    bs = img_util_open(file, &o);
    if (!bs)
        return 1;
    b.bs = bs;
    b.image_size = block_get_size(bs);
    if (b.bufsize > b.image_size || b.offset > b.image_size - b.bufsize) {
        img_util_error(file, "requests of %" PRIu64 " bytes at offset %" PRIu64
                       " do not fit in the image (%" PRIu64 " bytes)", b.bufsize, b.offset,
                       b.image_size);
        return 1;
    }

    iov = g_new(struct iovec, depth);
    free_slots = g_new(unsigned, depth);
    reqs = g_new(BenchReq, depth);
    for (unsigned i = 0; i < depth; i++) {
        reqs[i] = (BenchReq){ .b = &b, .slot = i };
        /* Aligned buffers, so that cache=none needs no bounce buffer. */
        iov[i].iov_base = g_aligned_alloc(b.bufsize, 1, 4096);
        iov[i].iov_len = b.bufsize;
        memset(iov[i].iov_base, (int)pattern, b.bufsize);
        free_slots[b.nr_free++] = depth - 1 - i;
    }
    b.iov = iov;
    b.reqs = reqs;
    b.free_slots = free_slots;

    printf("Sending %u %s requests, %" PRIu64 " bytes each, %u in parallel "
           "(starting at offset %" PRIu64 ", step size %" PRIu64 ")\n", b.count,
           b.write ? "write" : "read", b.bufsize, depth, b.offset, b.step);
    if (b.flush_interval)
        printf("Sending flush every %u requests\n", b.flush_interval);
    fflush(stdout);

    t0 = g_get_monotonic_time();
    bench_issue(&b);
    while (b.in_flight)
        block_engine_wait(block_get_engine(bs), -1);
    t1 = g_get_monotonic_time();

    for (unsigned i = 0; i < depth; i++)
        g_aligned_free(iov[i].iov_base);
    if (b.error) {
        img_util_error(file, "request failed: %s", g_strerror(-b.error));
        return 1;
    }
    printf("Run completed in %3.3f seconds.\n", (t1 - t0) / 1e6);
    return 0;
}
