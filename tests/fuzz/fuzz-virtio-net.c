/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/net.c: the input plays a hostile
 * driver and a hostile host network. Transmit chains of any shape with any
 * virtio-net header, control commands of any length and content, receive
 * buffers of any size (zero-length and header-sized ones included), frames
 * and headers from the backend of any length, notifications for any
 * queue, guest memory scribbled over, resets, link changes and save/load
 * round trips. The backend is one end of an AF_UNIX SOCK_DGRAM socketpair
 * (fd=N, as the device tests use), the host's end is this target's. It
 * checks, besides what ASan and UBSan catch:
 *
 * - every frame the device hands the backend carries a header it may
 *   pass on: flags NEEDS_CSUM at most, and then only with VIRTIO_NET_F_CSUM
 *   and a checksum field inside the frame behind the MAC header; a GSO
 *   type the driver negotiated, with a non-zero gso_size and NEEDS_CSUM;
 *   hdr_len within the frame; num_buffers 0; a frame of 14 to 65550 bytes
 *   (with vnet-hdr=off: a bare frame of that size);
 * - the device's state saves, loads back into it and saves the same again.
 *
 * The device is driven through the virtio core as a transport would; the
 * transport is this file's (virtio_pci_device_new() and friends, which
 * net.c links against). Guest memory is one 64 KiB heap block at 0.
 *
 * Input: u8 config, then operations (enum Op), one byte each plus
 * arguments; tests/fuzz/gen-virtio-net-seeds.py writes seeds.
 *   config bit 0 MRG_RXBUF, 1 EVENT_IDX, 2 INDIRECT_DESC, 3 CSUM and
 *   HOST_TSO4/TSO6/ECN/UFO, 4 GUEST_CSUM and GUEST_TSO4/TSO6/ECN/UFO,
 *   5 CTRL_VQ with every control feature, 6 vnet-hdr=off, 7 queues=2 (MQ)
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vireo/state.h"
#include "vireo/util.h"
#include "vireo/virtio-net.h"
#include "vireo/virtio-pci.h"

#define RAM_SIZE 0x10000
#define QSIZE 64
#define RING_AREA 0x800                 /* per queue: descriptors, avail, used */
#define DATA_BASE 0x3000                /* buffers from here to the end of RAM */
#define MAX_QUEUES 5
#define MAX_OPS 3000
#define F(bit) VIRTIO_BIT(VIRTIO_NET_F_##bit)

typedef enum {
    OP_TX,              /* u8 q, u8 parts, u16 len, bytes: a transmit chain */
    OP_CTRL,            /* u8 flags, u8 len, bytes: a control command */
    OP_RX_BUFS,         /* u8 q, u8 n, u16 size: receive buffers */
    OP_HOST,            /* u16 len, bytes: a datagram from the host */
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_KICK,            /* u8 queue */
    OP_RUN,
    OP_DRAIN,
    OP_RESET,
    OP_SAVE_LOAD,
    OP_LINK,            /* u8 up */
    OP_COUNT,
} Op;

typedef struct Input {
    const uint8_t *p;
    size_t left;
} Input;

static uint64_t take(Input *in, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n && in->left; i++, in->p++, in->left--)
        v |= (uint64_t)in->p[0] << (8 * i);
    return v;
}

static size_t take_bytes(Input *in, void *buf, size_t n)
{
    n = MIN(n, in->left);
    memcpy(buf, in->p, n);
    in->p += n;
    in->left -= n;
    return n;
}

/* --- the transport: the core's contract, nothing of PCI --- */

typedef struct FuzzTransport {
    Device dev;
    VirtioTransport transport;
    VirtioDevice *vdev;
} FuzzTransport;

static void ft_notify_queue(VirtioTransport *t, unsigned index)
{
    if (index >= VIREO_CONTAINER_OF(t, FuzzTransport, transport)->vdev->nr_queues)
        abort();
}

static void ft_notify_config(VirtioTransport *t)
{
}

static const VirtioTransportOps fuzz_transport_ops = {
    .notify_queue = ft_notify_queue,
    .notify_config = ft_notify_config,
};

static gboolean ft_save(Device *dev, StateWriter *w, GError **error)
{
    state_writer_begin_section(w, dev->id, 1);
    if (!virtio_device_save(((FuzzTransport *)dev)->vdev, w, error))
        return FALSE;
    state_writer_end_section(w);
    return TRUE;
}

static gboolean ft_load(Device *dev, StateReader *r, GError **error)
{
    uint32_t version;

    if (!state_reader_begin_section(r, dev->id, 1, &version, error) ||
        !virtio_device_load(((FuzzTransport *)dev)->vdev, r, error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    virtio_device_loaded(((FuzzTransport *)dev)->vdev);
    return TRUE;
}

static void ft_free(Device *dev)
{
    FuzzTransport *ft = (FuzzTransport *)dev;

    virtio_device_free(ft->vdev);
    device_cleanup(dev);
    g_free(ft);
}

const DeviceOps virtio_pci_device_ops = {
    .save = ft_save,
    .load = ft_load,
    .free = ft_free,
};

Device *virtio_pci_device_new(const DeviceType *type, const DeviceEnv *env, VirtioDevice *vdev,
                              GError **error)
{
    FuzzTransport *ft = g_new0(FuzzTransport, 1);

    device_init(&ft->dev, type, env->id);
    ft->transport.ops = &fuzz_transport_ops;
    ft->vdev = vdev;
    virtio_device_attach(vdev, &ft->transport, &ft->dev.lock);
    return &ft->dev;
}

VirtioDevice *virtio_pci_get_device(Device *dev)
{
    return ((FuzzTransport *)dev)->vdev;
}

/* --- the event loop: queued calls and polled fds --- */

typedef struct FuzzSource {
    int fd;
    uint32_t events;
    EventFdFn fn;
    void *opaque;
    gboolean removed;
} FuzzSource;

typedef struct FuzzLoop {
    EventLoop base;
    GQueue calls;               /* pairs: fn, opaque */
    GPtrArray *sources;
} FuzzLoop;

static EventSource *fl_add_fd(EventLoop *el, int fd, uint32_t events, EventFdFn fn,
                              void *opaque, GError **error)
{
    FuzzSource *s = g_new0(FuzzSource, 1);

    *s = (FuzzSource){ .fd = fd, .events = events, .fn = fn, .opaque = opaque };
    g_ptr_array_add(((FuzzLoop *)el)->sources, s);
    return (EventSource *)s;
}

static void fl_set_events(EventSource *src, uint32_t events)
{
    ((FuzzSource *)src)->events = events;
}

static void fl_remove(EventSource *src)
{
    ((FuzzSource *)src)->removed = TRUE;
}

static void fl_call(EventLoop *el, EventCallFn fn, void *opaque)
{
    g_queue_push_tail(&((FuzzLoop *)el)->calls, (gpointer)fn);
    g_queue_push_tail(&((FuzzLoop *)el)->calls, opaque);
}

static const EventLoopOps fuzz_loop_ops = {
    .add_fd = fl_add_fd,
    .set_events = fl_set_events,
    .remove = fl_remove,
    .call = fl_call,
};

/* Runs queued calls and ready fds until nothing is left; the device must let it end. */
static void fl_run(FuzzLoop *l)
{
    for (unsigned round = 0; round < 10000; round++) {
        gboolean progress = FALSE;

        while (!g_queue_is_empty(&l->calls)) {
            EventCallFn fn = (EventCallFn)g_queue_pop_head(&l->calls);
            void *opaque = g_queue_pop_head(&l->calls);

            fn(opaque);
            progress = TRUE;
        }
        for (guint i = 0; i < l->sources->len; i++) {
            FuzzSource *s = g_ptr_array_index(l->sources, i);
            struct pollfd p = { .fd = s->fd, .events = s->events };

            if (s->removed || !s->events || poll(&p, 1, 0) <= 0 || !p.revents)
                continue;
            s->fn(s->fd, p.revents, s->opaque);
            progress = TRUE;
        }
        for (guint i = l->sources->len; i-- > 0;) {
            if (((FuzzSource *)g_ptr_array_index(l->sources, i))->removed)
                g_ptr_array_remove_index(l->sources, i);
        }
        if (!progress)
            return;
    }
    abort();                            /* the device keeps the loop busy */
}

/* --- the driver --- */

typedef struct Fuzz {
    FuzzLoop loop;
    GuestMemory mem;
    uint8_t *ram;
    Device *dev;
    VirtioDevice *vdev;
    int host;                           /* the host's end of the socketpair */
    uint64_t features;
    gboolean vnet_hdr;
    uint16_t avail_idx[MAX_QUEUES];
    uint16_t next_desc[MAX_QUEUES];
    uint32_t data_next;                 /* rotating buffer allocator */
} Fuzz;

static uint64_t ring_desc(unsigned q)
{
    return (uint64_t)q * RING_AREA;
}

static uint64_t ring_avail(unsigned q)
{
    return ring_desc(q) + 16 * QSIZE;
}

static uint64_t ring_used(unsigned q)
{
    return ring_avail(q) + 0x100;
}

static uint64_t fz_alloc(Fuzz *f, uint32_t size)
{
    uint64_t a;

    size = MIN(size, (uint32_t)(RAM_SIZE - DATA_BASE));
    if (f->data_next + size > RAM_SIZE - DATA_BASE)
        f->data_next = 0;
    a = DATA_BASE + f->data_next;
    f->data_next += (size + 15) & ~15u;
    return a;
}

/* Reset, features, every queue of the configuration at its place, DRIVER_OK. */
static void fz_start(Fuzz *f)
{
    VirtioDevice *v = f->vdev;

    virtio_device_lock(v);
    virtio_device_reset(v);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(v, 0, (uint32_t)(f->features & v->host_features));
    virtio_set_driver_features(v, 1, (uint32_t)((f->features & v->host_features) >> 32));
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK);
    for (unsigned q = 0; q < v->nr_queues && q < MAX_QUEUES; q++) {
        virtio_queue_set_size(v, q, QSIZE);
        virtio_queue_set_desc(v, q, ring_desc(q));
        virtio_queue_set_driver(v, q, ring_avail(q));
        virtio_queue_set_device(v, q, ring_used(q));
        virtio_queue_enable(v, q);
        f->avail_idx[q] = 0;
        f->next_desc[q] = 0;
    }
    memset(f->ram, 0, DATA_BASE);
    virtio_set_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    virtio_device_unlock(v);
    fl_run(&f->loop);
}

static void fz_kick(Fuzz *f, unsigned q)
{
    if (q < f->vdev->nr_queues)
        virtio_queue_kick(&f->vdev->queues[q]);
}

/* A chain of @n buffers (@write: device-writable from index @first_in) on queue @q. */
static void fz_chain(Fuzz *f, unsigned q, const uint64_t *addr, const uint32_t *len, unsigned n,
                     unsigned first_in)
{
    uint16_t head = f->next_desc[q] % QSIZE;
    uint8_t *avail = f->ram + ring_avail(q);

    if (q >= MAX_QUEUES || !n)
        return;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *d = f->ram + ring_desc(q) + 16 * ((head + i) % QSIZE);
        uint16_t flags = (i >= first_in ? VIRTQ_DESC_F_WRITE : 0) |
                         (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);

        vireo_le_store(d, 8, addr[i]);
        vireo_le_store(d + 8, 4, len[i]);
        vireo_le_store(d + 12, 2, flags);
        vireo_le_store(d + 14, 2, (head + i + 1) % QSIZE);
    }
    f->next_desc[q] += n;
    vireo_le_store(avail + 4 + 2 * (f->avail_idx[q] % QSIZE), 2, head);
    f->avail_idx[q]++;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    vireo_le_store(avail + 2, 2, f->avail_idx[q]);
}

/* What the device sent to the host: check every frame's header. */
static void fz_drain(Fuzz *f)
{
    static uint8_t buf[VIRTIO_NET_MAX_FRAME + 64];
    ssize_t r;

    while ((r = recv(f->host, buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
        size_t hdr = f->vnet_hdr ? VIRTIO_NET_HDR_SIZE : 0, frame;
        uint8_t flags, gso;
        uint32_t start, off, hdr_len, gso_size;
        uint64_t need;

        if ((size_t)r < hdr + 14 || (size_t)r > hdr + VIRTIO_NET_MAX_FRAME)
            abort();
        if (!hdr)
            continue;
        frame = r - hdr;
        flags = buf[VIRTIO_NET_HDR_FLAGS];
        gso = buf[VIRTIO_NET_HDR_GSO_TYPE];
        hdr_len = vireo_le_load(buf + VIRTIO_NET_HDR_HDR_LEN, 2);
        gso_size = vireo_le_load(buf + VIRTIO_NET_HDR_GSO_SIZE, 2);
        start = vireo_le_load(buf + VIRTIO_NET_HDR_CSUM_START, 2);
        off = vireo_le_load(buf + VIRTIO_NET_HDR_CSUM_OFFSET, 2);
        if ((flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) || hdr_len > frame ||
            vireo_le_load(buf + VIRTIO_NET_HDR_NUM_BUFFERS, 2))
            abort();
        if (flags && (!(f->vdev->features & F(CSUM)) || start < 14 || start + off + 2 > frame))
            abort();
        switch (gso & ~VIRTIO_NET_HDR_GSO_ECN) {
        case VIRTIO_NET_HDR_GSO_NONE: need = 0; break;
        case VIRTIO_NET_HDR_GSO_TCPV4: need = F(HOST_TSO4); break;
        case VIRTIO_NET_HDR_GSO_TCPV6: need = F(HOST_TSO6); break;
        case VIRTIO_NET_HDR_GSO_UDP: need = F(HOST_UFO); break;
        default: abort();
        }
        if (!need && (gso || gso_size))
            abort();
        if (need && (!(f->vdev->features & need) || !gso_size || !flags ||
                     ((gso & VIRTIO_NET_HDR_GSO_ECN) && !(f->vdev->features & F(HOST_ECN)))))
            abort();
    }
    if (errno != EAGAIN)
        abort();
}

static void fz_save_load(Fuzz *f)
{
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(StateWriter) again = state_writer_new();
    g_autoptr(StateReader) r = NULL;
    const uint8_t *data, *data2;
    size_t len, len2;

    fl_run(&f->loop);
    if (!device_save(f->dev, w, NULL))
        abort();
    data = state_writer_data(w, &len);
    r = state_reader_new(data, len);
    if (!device_load(f->dev, r, NULL) || !device_save(f->dev, again, NULL))
        abort();
    data2 = state_writer_data(again, &len2);
    if (len != len2 || memcmp(data, data2, len) != 0)
        abort();
    fl_run(&f->loop);
}

static void fz_silence(const gchar *domain, GLogLevelFlags level, const gchar *message,
                       gpointer data)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Input in = { data, size };
    uint8_t cfg = take(&in, 1);
    g_autofree char *opts = NULL;
    g_autoptr(GError) err = NULL;
    DeviceEnv env = { 0 };
    Fuzz f = { 0 };
    int sv[2];

    g_log_set_handler(NULL, G_LOG_LEVEL_MASK, fz_silence, NULL);
    g_log_set_handler("vireo-fuzz", G_LOG_LEVEL_MASK, fz_silence, NULL);
    f.ram = g_malloc0(RAM_SIZE);
    f.mem.nr_regions = 1;
    f.mem.regions[0] = (GuestRegion){ .gpa = 0, .size = RAM_SIZE, .host = f.ram };
    f.mem.ram_size = RAM_SIZE;
    f.loop.base.ops = &fuzz_loop_ops;
    g_queue_init(&f.loop.calls);
    f.loop.sources = g_ptr_array_new_with_free_func(g_free);
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    f.host = sv[1];
    f.vnet_hdr = !(cfg & 0x40);
    if (cfg & 0x80) {
        int sv2[2];

        /* A second pair: its host end is closed, so what goes there fails. */
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv2) < 0)
            abort();
        opts = g_strdup_printf("fds=%d:%d,mac=52:54:00:12:34:56%s", sv[0], sv2[0],
                               f.vnet_hdr ? "" : ",vnet-hdr=off");
        close(sv2[1]);
    } else {
        opts = g_strdup_printf("fd=%d,mac=52:54:00:12:34:56%s", sv[0],
                               f.vnet_hdr ? "" : ",vnet-hdr=off");
    }
    env.id = "net";
    env.loop = &f.loop.base;
    env.mem = &f.mem;
    f.dev = device_create("virtio-net", &env, opts, &err);
    if (!f.dev)
        abort();
    f.vdev = virtio_pci_get_device(f.dev);
    f.features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | F(MAC) | F(STATUS);
    if (cfg & 1)
        f.features |= F(MRG_RXBUF);
    if (cfg & 2)
        f.features |= VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX);
    if (cfg & 4)
        f.features |= VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC);
    if (cfg & 8)
        f.features |= F(CSUM) | F(HOST_TSO4) | F(HOST_TSO6) | F(HOST_ECN) | F(HOST_UFO);
    if (cfg & 0x10)
        f.features |= F(GUEST_CSUM) | F(GUEST_TSO4) | F(GUEST_TSO6) | F(GUEST_ECN) |
                      F(GUEST_UFO);
    if (cfg & 0x20)
        f.features |= F(CTRL_VQ) | F(CTRL_RX) | F(CTRL_RX_EXTRA) | F(CTRL_VLAN) |
                      F(CTRL_MAC_ADDR) | F(CTRL_GUEST_OFFLOADS) | F(MQ);
    fz_start(&f);

    for (unsigned ops = 0; in.left && ops < MAX_OPS; ops++) {
        switch (take(&in, 1) % OP_COUNT) {
        case OP_TX: {
            unsigned q = (take(&in, 1) % 2) * 2 + 1, parts = 1 + take(&in, 1) % 6;
            uint32_t len = take(&in, 2) % 4096, lens[6];
            uint64_t base = fz_alloc(&f, len), addrs[6];
            uint32_t at = 0;

            take_bytes(&in, f.ram + base, MIN(len, (uint32_t)(RAM_SIZE - base)));
            for (unsigned i = 0; i < parts; i++) {
                uint32_t k = i + 1 == parts ? len - at : (i == 0 ? MIN(len, 12u) : (len - at) / 2);

                addrs[i] = base + at;
                lens[i] = k;
                at += k;
            }
            fz_chain(&f, q, addrs, lens, parts, parts);
            fz_kick(&f, q);
            break;
        }
        case OP_CTRL: {
            uint8_t flags = take(&in, 1), len = take(&in, 1);
            unsigned q = f.vdev->features & F(MQ) ? 4 : 2;
            uint64_t base = fz_alloc(&f, len + 1), addrs[3] = { base, base + 2, base + len };
            uint32_t lens[3] = { MIN(len, (uint8_t)2), len > 2 ? len - 2u : 0, flags & 1 ? 0 : 1 };

            take_bytes(&in, f.ram + base, len);
            fz_chain(&f, q, addrs, lens, 3, 2);
            fz_kick(&f, q);
            break;
        }
        case OP_RX_BUFS: {
            unsigned q = (take(&in, 1) % 2) * 2, n = 1 + take(&in, 1) % 16;
            uint32_t size = take(&in, 2) % 4096;

            for (unsigned i = 0; i < n; i++) {
                uint64_t a = fz_alloc(&f, size);

                fz_chain(&f, q, &a, &size, 1, 0);
            }
            fz_kick(&f, q);
            break;
        }
        case OP_HOST: {
            static uint8_t buf[70000];
            size_t len = take(&in, 2);

            /* Short inputs grow into big frames: the rest is a pattern. */
            size_t got = take_bytes(&in, buf, MIN(len, (size_t)256));

            for (size_t i = got; i < len; i++)
                buf[i] = (uint8_t)i;
            if (send(f.host, buf, len, MSG_DONTWAIT) < 0 && errno != EAGAIN)
                abort();
            break;
        }
        case OP_POKE: {
            uint16_t gpa = take(&in, 2);
            uint8_t len = take(&in, 1);

            take_bytes(&in, f.ram + gpa, MIN((size_t)len, (size_t)(RAM_SIZE - gpa)));
            break;
        }
        case OP_KICK:
            fz_kick(&f, take(&in, 1) % (MAX_QUEUES + 1));
            break;
        case OP_RUN:
            fl_run(&f.loop);
            break;
        case OP_DRAIN:
            fl_run(&f.loop);
            fz_drain(&f);
            break;
        case OP_RESET:
            fz_start(&f);
            break;
        case OP_SAVE_LOAD:
            fz_save_load(&f);
            break;
        case OP_LINK:
            virtio_net_set_link(f.dev, take(&in, 1) & 1);
            break;
        default:
            break;
        }
    }
    fl_run(&f.loop);
    fz_drain(&f);
    fz_save_load(&f);
    device_free(f.dev);
    fl_run(&f.loop);
    close(f.host);
    g_queue_clear(&f.loop.calls);
    g_ptr_array_unref(f.loop.sources);
    g_free(f.ram);
    return 0;
}
