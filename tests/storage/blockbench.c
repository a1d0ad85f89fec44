/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * qemu-img bench's I/O pattern on the storage library, to compare engines
 * before vireo-img exists (docs/storage.md, "Measurements"):
 *
 *   blockbench [-f FMT] [-t none|writeback] [-d DEPTH] [-c COUNT] [-s SIZE]
 *              [-S STEP] [-o OFFSET] [-w] IMAGE
 *
 * Offsets follow qemu-img bench: start at OFFSET, advance by STEP, wrap
 * modulo (image size - SIZE). Prints requests per second.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vireo/block.h"
#include "vireo/util.h"

typedef struct Bench {
    BlockDev *bs;
    uint64_t size, step, offset, image_size;
    unsigned remaining, in_flight;
    gboolean write, failed;
} Bench;

typedef struct Slot {
    Bench *b;
    struct iovec iov;
} Slot;

static void issue(Slot *s);

static void done(void *opaque, int ret)
{
    Slot *s = opaque;

    s->b->in_flight--;
    if (ret < 0) {
        fprintf(stderr, "blockbench: request failed: %s\n", g_strerror(-ret));
        s->b->failed = TRUE;
        return;
    }
    if (s->b->remaining)
        issue(s);
}

static void issue(Slot *s)
{
    Bench *b = s->b;
    uint64_t off = b->offset;

    b->remaining--;
    b->in_flight++;
    b->offset += b->step;
    b->offset = b->image_size <= b->size ? 0 : b->offset % (b->image_size - b->size);
    if (b->write)
        block_writev(b->bs, off, &s->iov, 1, 0, done, s);
    else
        block_readv(b->bs, off, &s->iov, 1, done, s);
}

int main(int argc, char **argv)
{
    BlockOpenOptions o = { .cache = BLOCK_CACHE_WRITEBACK };
    g_autoptr(GError) err = NULL;
    Bench b = { .size = 4096, .remaining = 75000 };
    unsigned depth = 64;
    gboolean step_set = FALSE;
    g_autofree Slot *slots = NULL;
    gint64 t0, t1;
    unsigned count;
    int opt;

    while ((opt = getopt(argc, argv, "f:t:d:c:s:S:o:w")) != -1) {
        switch (opt) {
        case 'f': o.format = optarg; break;
        case 't': o.cache = strcmp(optarg, "none") == 0 ? BLOCK_CACHE_NONE :
                            BLOCK_CACHE_WRITEBACK; break;
        case 'd': depth = atoi(optarg); break;
        case 'c': b.remaining = atoi(optarg); break;
        case 's': b.size = g_ascii_strtoull(optarg, NULL, 0); break;
        case 'S': b.step = g_ascii_strtoull(optarg, NULL, 0); step_set = TRUE; break;
        case 'o': b.offset = g_ascii_strtoull(optarg, NULL, 0); break;
        case 'w': b.write = TRUE; break;
        default:
            fprintf(stderr, "usage: see the comment in blockbench.c\n");
            return 2;
        }
    }
    if (optind >= argc || depth == 0)
        return fprintf(stderr, "usage: see the comment in blockbench.c\n"), 2;
    if (!step_set)
        b.step = b.size;
    o.read_only = !b.write;
    b.bs = block_open(argv[optind], &o, &err);
    if (!b.bs)
        return fprintf(stderr, "blockbench: %s\n", err->message), 1;
    b.image_size = block_get_size(b.bs);
    slots = g_new0(Slot, depth);
    for (unsigned i = 0; i < depth; i++) {
        slots[i].b = &b;
        if (posix_memalign(&slots[i].iov.iov_base, 4096, b.size))
            return 1;
        memset(slots[i].iov.iov_base, 0xa5, b.size);
        slots[i].iov.iov_len = b.size;
    }
    count = b.remaining;
    t0 = g_get_monotonic_time();
    for (unsigned i = 0; i < depth && b.remaining; i++)
        issue(&slots[i]);
    while (b.in_flight)
        block_engine_wait(block_get_engine(b.bs), -1);
    t1 = g_get_monotonic_time();
    if (b.write && !block_flush_sync(b.bs, &err))
        return fprintf(stderr, "blockbench: %s\n", err->message), 1;
    printf("engine %s: %.3f s, %.0f requests/s\n",
           block_engine_get_backend(block_get_engine(b.bs)), (t1 - t0) / 1e6,
           count / ((t1 - t0) / 1e6));
    block_close(b.bs);
    return b.failed;
}
