/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-blk without a guest: the device-test driver (tests/devices/
 * virtio-driver.c) keeps QD requests of 4 KiB in flight on one queue, at
 * random aligned offsets of an image, for SECONDS, and the figures are
 * requests/s and host CPU time (user + system, all threads, io_uring
 * workers included) per request: device, storage engine and the driver.
 *
 * The device runs on an epoll loop of this program's own (an EventLoop
 * as vmm/loop.c provides one), which sleeps in epoll_wait() like the VMM's
 * loop thread, so the CPU time is not inflated by spinning.
 *
 * Usage: bench-virtio-blk IMAGE [read|write] [QD] [SECONDS]
 * Prints one line: "virtio-blk <rw> qd=N: R req/s, C us CPU/req, N requests".
 * Not a test: tests/bench/blk.py runs it next to fio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../devices/virtio-driver.h"
#include "vireo/virtio-blk.h"

/* --- an epoll EventLoop, as the VMM's --- */

typedef struct BenchSource {
    int fd;
    EventFdFn fn;
    void *opaque;
    gboolean removed;
} BenchSource;

typedef struct BenchLoop {
    EventLoop base;
    int epfd;
    GQueue calls;               /* BenchCall* */
    GPtrArray *sources;
} BenchLoop;

typedef struct BenchCall {
    EventCallFn fn;
    void *opaque;
} BenchCall;

static BenchLoop bench_loop;

static EventSource *bl_add_fd(EventLoop *l, int fd, uint32_t events, EventFdFn fn, void *opaque,
                              GError **error)
{
    BenchSource *s = g_new0(BenchSource, 1);
    struct epoll_event ev = { .events = events, .data.ptr = s };

    s->fd = fd;
    s->fn = fn;
    s->opaque = opaque;
    if (epoll_ctl(bench_loop.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "epoll_ctl: %s", g_strerror(errno));
        g_free(s);
        return NULL;
    }
    g_ptr_array_add(bench_loop.sources, s);
    return (EventSource *)s;
}

static void bl_set_events(EventSource *src, uint32_t events)
{
    BenchSource *s = (BenchSource *)src;
    struct epoll_event ev = { .events = events, .data.ptr = s };

    epoll_ctl(bench_loop.epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void bl_remove(EventSource *src)
{
    BenchSource *s = (BenchSource *)src;

    epoll_ctl(bench_loop.epfd, EPOLL_CTL_DEL, s->fd, NULL);
    s->removed = TRUE;          /* freed at exit: a callback may still hold it */
}

static void bl_call(EventLoop *l, EventCallFn fn, void *opaque)
{
    BenchCall *c = g_new(BenchCall, 1);

    c->fn = fn;
    c->opaque = opaque;
    g_queue_push_tail(&bench_loop.calls, c);
}

static const EventLoopOps bench_loop_ops = {
    .add_fd = bl_add_fd,
    .set_events = bl_set_events,
    .remove = bl_remove,
    .call = bl_call,
};

/* One pass: queued calls, then ready fds (waiting up to @timeout_ms). */
static void bench_loop_pass(int timeout_ms)
{
    struct epoll_event evs[8];
    BenchCall *c;
    int n;

    while ((c = g_queue_pop_head(&bench_loop.calls))) {
        c->fn(c->opaque);
        g_free(c);
    }
    n = epoll_wait(bench_loop.epfd, evs, G_N_ELEMENTS(evs), timeout_ms);
    for (int i = 0; i < n; i++) {
        BenchSource *s = evs[i].data.ptr;

        if (!s->removed)
            s->fn(s->fd, evs[i].events, s->opaque);
    }
}

/* --- the benchmark --- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

typedef struct Slot {
    uint64_t hdr, data, status;
} Slot;

static void add(VirtioDriver *d, VirtioDriverQueue *q, Slot *s, gboolean write, uint64_t sectors,
                GRand *rand)
{
    uint8_t *h = virtio_driver_mem(d, s->hdr, 16);
    uint64_t sector = (uint64_t)g_rand_int_range(rand, 0, (gint32)(sectors / 8)) * 8;
    VirtioDriverBuf hdr = { s->hdr, 16 }, data = { s->data, 4096 }, st = { s->status, 1 };
    VirtioDriverBuf out[2] = { hdr, data }, in[2] = { data, st };

    vireo_le_store(h, 4, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
    vireo_le_store(h + 8, 8, sector);
    if (write)
        g_assert(virtio_driver_add(q, out, 2, &st, 1, s) >= 0);
    else
        g_assert(virtio_driver_add(q, &hdr, 1, in, 2, s) >= 0);
}

int main(int argc, char **argv)
{
    const char *image = argc > 1 ? argv[1] : NULL;
    gboolean write = argc > 2 && strcmp(argv[2], "write") == 0;
    unsigned qd = argc > 3 ? (unsigned)atoi(argv[3]) : 32;
    double seconds = argc > 4 ? atof(argv[4]) : 5;
    g_autoptr(HarnessEnv) e = NULL;
    g_autoptr(VirtioDriver) d = NULL;
    g_autofree char *opts = NULL;
    g_autofree Slot *slots = NULL;
    g_autoptr(GRand) rand = g_rand_new_with_seed(1);
    VirtioDriverQueue *q;
    uint64_t sectors, done = 0;
    double t0, c0, t, c;

    if (!image || qd < 1 || qd > 128 || seconds <= 0) {
        fprintf(stderr, "usage: bench-virtio-blk IMAGE [read|write] [QD 1..128] [SECONDS]\n");
        return 2;
    }
    harness_init();
    bench_loop.base.ops = &bench_loop_ops;
    bench_loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    bench_loop.sources = g_ptr_array_new_with_free_func(g_free);
    g_queue_init(&bench_loop.calls);
    e = harness_env_new("blk", 0);
    e->env.loop = &bench_loop.base;
    opts = g_strdup_printf("path=%s,format=raw", image);
    d = virtio_driver_new(e, "virtio-blk", opts, NULL);
    g_assert(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    q = virtio_driver_setup_queue(d, 0, 0);
    virtio_driver_ok(d);
    virtio_driver_config_read(d, VIRTIO_BLK_CFG_CAPACITY, &sectors, 8);

    slots = g_new0(Slot, qd);
    for (unsigned i = 0; i < qd; i++) {
        slots[i].hdr = virtio_driver_alloc(d, 16, 16);
        slots[i].data = virtio_driver_alloc(d, 4096, 4096);
        slots[i].status = virtio_driver_alloc(d, 1, 1);
        memset(virtio_driver_mem(d, slots[i].data, 4096), 0x5a, 4096);
        add(d, q, &slots[i], write, sectors, rand);
    }
    t0 = now_s();
    c0 = cpu_s();
    virtio_driver_kick(q);
    for (;;) {
        Slot *s;
        gboolean added = FALSE;

        bench_loop_pass(1000);
        while ((s = virtio_driver_get_used(q, NULL))) {
            if (*(uint8_t *)virtio_driver_mem(d, s->status, 1) != VIRTIO_BLK_S_OK) {
                fprintf(stderr, "request failed\n");
                return 1;
            }
            done++;
            add(d, q, s, write, sectors, rand);
            added = TRUE;
        }
        if (added)
            virtio_driver_kick(q);
        if (now_s() - t0 >= seconds)
            break;
    }
    t = now_s() - t0;
    c = cpu_s() - c0;
    printf("virtio-blk %s qd=%u: %.0f req/s, %.2f us CPU/req, %" G_GUINT64_FORMAT " requests\n",
           write ? "write" : "read", qd, done / t, c * 1e6 / done, done);
    /* Let what is in flight finish before the device goes. */
    while (virtio_driver_queue_inflight(q)) {
        bench_loop_pass(100);
        while (virtio_driver_get_used(q, NULL)) {
        }
    }
    return 0;
}
