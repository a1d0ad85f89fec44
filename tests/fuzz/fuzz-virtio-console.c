/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/console.c (and console-socket.c):
 * the input plays a hostile driver, a host on port 0's character backend
 * and a client of a named port's socket. Control messages of any length
 * and content, control receive buffers of any size, port data chains of
 * any shape on any queue, notifications for any queue, guest memory
 * scribbled over, resets, back-pressure, socket clients coming and going,
 * and save/load round trips (also of damaged state). The target checks,
 * besides what ASan and UBSan catch:
 *
 * - every control message the device writes for the driver is one a
 *   device may send: 8 bytes (PORT_NAME: plus the port's name), a port
 *   below max_nr_ports that the device has, PORT_ADD/CONSOLE_PORT/
 *   PORT_OPEN/PORT_NAME, CONSOLE_PORT for port 0 only, values 0 or 1
 *   (checked only while the guest has not scribbled over its rings);
 * - the device's own state saves, loads back into it, and saves the same
 *   again; a damaged state is refused or loads, and the device goes on.
 *
 * The device is driven through the virtio core (virtio.h) as a transport
 * would. The transport is this file's (virtio_pci_device_new() and
 * virtio_pci_device_ops, which console.c links against, are defined
 * here): PCI register decoding has tests of its own, and leaving it out
 * keeps every execution on the console's code. Guest memory is one 64 KiB
 * heap block at guest address 0.
 *
 * Input: u8 config (bits 0-1: max-ports - 1; bit 2: accept MULTIPORT;
 * bit 3: EVENT_IDX; bit 4: INDIRECT_DESC; bit 5: named port 1 on a
 * socket), then operations (see enum Op), one byte each plus arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/state.h"
#include "vireo/util.h"
#include "vireo/virtio-console.h"
#include "vireo/virtio-pci.h"

#define RAM_SIZE 0x10000
#define QSIZE 16
#define RING_AREA 0x200                 /* per queue: descriptors, then avail, then used */
#define DATA_BASE 0x4000                /* buffers from here (after 2 * (4 + 1) rings) */
#define MAX_OPS 2000
#define MAX_QUEUES 10
#define MAX_NAME "org.qemu.guest_agent.0"

typedef enum {
    OP_CTRL_MSG,        /* u8 len, bytes: one chain in the control transmitq */
    OP_CTRL_BUF,        /* u8 n, u16 size: control receive buffers */
    OP_RX_BUF,          /* u8 port, u16 size: a receive buffer */
    OP_TX,              /* u8 port, u8 parts, u8 len, bytes: output chain */
    OP_HOST_INPUT,      /* u8 len, bytes: to port 0's backend */
    OP_BACKEND,         /* u8 limit: output room of port 0's backend, then drained */
    OP_KICK,            /* u8 queue: any number */
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_RUN,
    OP_RESET,
    OP_SETUP,           /* the driver starts over: features, queues, DRIVER_OK */
    OP_SAVE_LOAD,
    OP_LOAD_DAMAGED,    /* u8 n, n x (u16 offset, u8 xor) */
    OP_CLIENT,          /* u8 what (connect, send u8 len bytes, read, close) */
    OP_READ_CTRL,       /* the driver takes control messages and checks them */
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

static void ignore_log(const gchar *domain, GLogLevelFlags level, const gchar *message,
                       gpointer data)
{
}

/* --- the transport: the core's contract, nothing of PCI --- */

typedef struct FuzzTransport {
    Device dev;
    VirtioTransport transport;
    VirtioDevice *vdev;
    unsigned queue_notifications;
    unsigned config_notifications;
} FuzzTransport;

static void ft_notify_queue(VirtioTransport *t, unsigned index)
{
    FuzzTransport *ft = VIREO_CONTAINER_OF(t, FuzzTransport, transport);

    if (index >= ft->vdev->nr_queues)
        abort();
    ft->queue_notifications++;
}

static void ft_notify_config(VirtioTransport *t)
{
    VIREO_CONTAINER_OF(t, FuzzTransport, transport)->config_notifications++;
}

static const VirtioTransportOps fuzz_transport_ops = {
    .notify_queue = ft_notify_queue,
    .notify_config = ft_notify_config,
};

static void ft_reset(Device *dev)
{
    virtio_device_reset(((FuzzTransport *)dev)->vdev);
}

static gboolean ft_save(Device *dev, StateWriter *w, GError **error)
{
    state_writer_begin_section(w, dev->id, 1);
    if (!virtio_device_save(((FuzzTransport *)dev)->vdev, w, error))
        return FALSE;
    state_writer_end_section(w);
    return TRUE;
}

/* As virtio-pci does: a failed load puts back what the device had. */
static gboolean ft_load(Device *dev, StateReader *r, GError **error)
{
    VirtioDevice *vdev = ((FuzzTransport *)dev)->vdev;
    g_autoptr(StateWriter) before = state_writer_new();
    g_autoptr(StateReader) undo = NULL;
    const uint8_t *data;
    uint32_t version;
    size_t len;

    if (!ft_save(dev, before, error))
        abort();
    if (state_reader_begin_section(r, dev->id, 1, &version, error) &&
        virtio_device_load(vdev, r, error) && state_reader_end_section(r, error)) {
        virtio_device_loaded(vdev);
        return TRUE;
    }
    data = state_writer_data(before, &len);
    undo = state_reader_new(data, len);
    if (!state_reader_begin_section(undo, dev->id, 1, &version, NULL) ||
        !virtio_device_load(vdev, undo, NULL))
        abort();
    return FALSE;
}

static void ft_free(Device *dev)
{
    FuzzTransport *ft = (FuzzTransport *)dev;

    virtio_device_free(ft->vdev);
    device_cleanup(dev);
    g_free(ft);
}

const DeviceOps virtio_pci_device_ops = {
    .reset = ft_reset,
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
    FuzzLoop *l = (FuzzLoop *)el;
    FuzzSource *s = g_new0(FuzzSource, 1);

    *s = (FuzzSource){ .fd = fd, .events = events, .fn = fn, .opaque = opaque };
    g_ptr_array_add(l->sources, s);
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
    FuzzLoop *l = (FuzzLoop *)el;

    g_queue_push_tail(&l->calls, (gpointer)fn);
    g_queue_push_tail(&l->calls, opaque);
}

static const EventLoopOps fuzz_loop_ops = {
    .add_fd = fl_add_fd,
    .set_events = fl_set_events,
    .remove = fl_remove,
    .call = fl_call,
};

/* Runs queued calls and ready fds until nothing is left (bounded). */
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
    abort();                            /* the device keeps queueing work */
}

/* --- port 0's character backend --- */

typedef struct FuzzChar {
    CharBackend base;
    const CharFrontendOps *fe;
    void *opaque;
    size_t room;
    gboolean refused;
} FuzzChar;

static size_t fc_write(CharBackend *be, const uint8_t *buf, size_t len)
{
    FuzzChar *c = (FuzzChar *)be;
    size_t n = MIN(len, c->room);

    c->room -= n;
    if (n < len)
        c->refused = TRUE;
    return n;
}

static void fc_set_frontend(CharBackend *be, const CharFrontendOps *ops, void *opaque)
{
    FuzzChar *c = (FuzzChar *)be;

    c->fe = ops;
    c->opaque = opaque;
}

static void fc_accept_input(CharBackend *be)
{
}

static const CharBackendOps fuzz_char_ops = {
    .write = fc_write,
    .set_frontend = fc_set_frontend,
    .accept_input = fc_accept_input,
};

/* --- the driver --- */

typedef struct FuzzQueue {
    uint64_t desc, avail, used;
    uint16_t avail_idx;
    uint16_t last_used;
    uint16_t next_desc;
    uint64_t buf[QSIZE];                /* what each descriptor was given, for OP_READ_CTRL */
    uint32_t len[QSIZE];
    uint32_t busy;                      /* descriptors the device has and read_ctrl() has not */
} FuzzQueue;

typedef struct Fuzz {
    uint8_t *ram;
    GuestMemory mem;
    FuzzLoop loop;
    FuzzChar chr;
    Device *dev;
    VirtioDevice *vdev;
    unsigned max_ports;
    unsigned nr_queues;
    uint64_t features;
    gboolean named;
    gboolean poked;                     /* the guest scribbled: no more message checks */
    uint64_t next_data;
    FuzzQueue q[MAX_QUEUES];
    char *dir;
    char *sock_path;
    int client;
} Fuzz;

static void put(Fuzz *z, uint64_t gpa, uint64_t v, size_t len)
{
    vireo_le_store(z->ram + gpa, len, v);
}

static uint64_t alloc_data(Fuzz *z, uint32_t size)
{
    uint64_t at = z->next_data;

    if (size > RAM_SIZE - DATA_BASE)
        size = RAM_SIZE - DATA_BASE;
    if (at + size > RAM_SIZE) {
        /* Buffers overlap from now on, as a bad guest's may: messages are not checked. */
        at = DATA_BASE;
        z->poked = TRUE;
    }
    z->next_data = at + size;
    return at;
}

/* Adds a chain of @n buffers (@write: device-writable) to queue @qi. */
static void add_chain(Fuzz *z, unsigned qi, const uint64_t *addr, const uint32_t *len,
                      unsigned n, gboolean write)
{
    FuzzQueue *q = &z->q[qi];
    uint16_t head = q->next_desc % QSIZE;

    for (unsigned i = 0; i < n; i++) {
        uint16_t d = (head + i) % QSIZE;
        uint64_t at = q->desc + 16ULL * d;

        /*
         * Rewriting a control receive descriptor the device still has (or
         * whose message was not read): a bad driver, not checked further.
         */
        if (qi == VIRTIO_CONSOLE_Q_CTRL_RX) {
            if (q->busy & (1u << d))
                z->poked = TRUE;
            q->busy |= 1u << d;
        }

        put(z, at, addr[i], 8);
        put(z, at + 8, len[i], 4);
        put(z, at + 12, (write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0),
            2);
        put(z, at + 14, (head + i + 1) % QSIZE, 2);
    }
    q->buf[head] = addr[0];
    q->len[head] = len[0];
    q->next_desc += n;
    put(z, q->avail + 4 + 2 * (q->avail_idx % QSIZE), head, 2);
    q->avail_idx++;
    put(z, q->avail + 2, q->avail_idx, 2);
}

static void kick(Fuzz *z, unsigned qi)
{
    if (qi < z->nr_queues)
        virtio_queue_kick(&z->vdev->queues[qi]);
}

/* Reset, features, every queue, DRIVER_OK: what a driver does first. */
static void setup(Fuzz *z)
{
    VirtioDevice *vdev = z->vdev;
    unsigned nq = z->features & VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT) ? z->nr_queues : 2;

    device_reset(z->dev);
    memset(z->q, 0, sizeof(z->q));
    virtio_device_lock(vdev);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    virtio_set_driver_features(vdev, 0, (uint32_t)z->features);
    virtio_set_driver_features(vdev, 1, z->features >> 32);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                            VIRTIO_STATUS_FEATURES_OK);
    for (unsigned i = 0; i < nq; i++) {
        FuzzQueue *q = &z->q[i];

        q->desc = RING_AREA * 2 * i;
        q->avail = q->desc + 16 * QSIZE;
        q->used = q->desc + RING_AREA;
        memset(z->ram + q->desc, 0, 2 * RING_AREA);
        virtio_queue_set_size(vdev, i, QSIZE);
        virtio_queue_set_desc(vdev, i, q->desc);
        virtio_queue_set_driver(vdev, i, q->avail);
        virtio_queue_set_device(vdev, i, q->used);
        virtio_queue_enable(vdev, i);
    }
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                            VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    virtio_device_unlock(vdev);
    fl_run(&z->loop);
}

/* The control messages the device wrote since the last call, each checked. */
static void read_ctrl(Fuzz *z)
{
    FuzzQueue *q = &z->q[VIRTIO_CONSOLE_Q_CTRL_RX];
    uint16_t used_idx;

    if (!q->used)
        return;
    used_idx = vireo_le_load(z->ram + q->used + 2, 2);
    for (unsigned n = 0; q->last_used != used_idx && n < QSIZE; n++, q->last_used++) {
        uint64_t entry = q->used + 4 + 8 * (q->last_used % QSIZE);
        uint32_t id = vireo_le_load(z->ram + entry, 4), len = vireo_le_load(z->ram + entry + 4, 4);
        const uint8_t *m;
        uint32_t port;
        uint16_t event, value;

        if (id < QSIZE)
            q->busy &= ~(1u << id);
        if (z->poked || id >= QSIZE || len == 0)
            continue;
        if (len < VIRTIO_CONSOLE_CTRL_SIZE || len > q->len[id] ||
            q->buf[id] + len > RAM_SIZE)
            abort();
        m = z->ram + q->buf[id];
        port = vireo_le_load(m, 4);
        event = vireo_le_load(m + 4, 2);
        value = vireo_le_load(m + 6, 2);
        if (port >= z->max_ports || (port != 0 && !(port == 1 && z->named)))
            abort();
        switch (event) {
        case VIRTIO_CONSOLE_PORT_ADD:
        case VIRTIO_CONSOLE_PORT_OPEN:
        case VIRTIO_CONSOLE_CONSOLE_PORT:
            if (len != VIRTIO_CONSOLE_CTRL_SIZE || value > 1 ||
                (event == VIRTIO_CONSOLE_CONSOLE_PORT && (port != 0 || value != 1)))
                abort();
            break;
        case VIRTIO_CONSOLE_PORT_NAME:
            /* The name, or as much of it as the buffer held. */
            if (port != 1 || len - VIRTIO_CONSOLE_CTRL_SIZE > strlen(MAX_NAME) ||
                memcmp(m + VIRTIO_CONSOLE_CTRL_SIZE, MAX_NAME, len - VIRTIO_CONSOLE_CTRL_SIZE))
                abort();
            break;
        default:
            abort();
        }
    }
}

/* Saves the device; the bytes are returned. */
static GBytes *save(Fuzz *z)
{
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(GError) err = NULL;

    if (!device_save(z->dev, w, &err))
        abort();
    return state_writer_steal_bytes(w);
}

/*
 * Loads @b. The loop is not run: a successful load queues a catch-up kick
 * of every queue, which may find guest work that was waiting (a blocked
 * chain in a scribbled ring breaks its queue then), so the state right
 * after the load is what compares with the saved one.
 */
static gboolean load(Fuzz *z, GBytes *b)
{
    gsize len;
    const uint8_t *data = g_bytes_get_data(b, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);
    g_autoptr(GError) err = NULL;

    return device_load(z->dev, r, &err);
}

static void client_op(Fuzz *z, Input *in)
{
    unsigned what = take(in, 1) % 4;
    uint8_t buf[256];

    if (!z->named)
        return;
    if (what == 0 && z->client < 0) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };

        z->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        g_strlcpy(addr.sun_path, z->sock_path, sizeof(addr.sun_path));
        if (z->client >= 0 && connect(z->client, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
            close(z->client);
            z->client = -1;
        }
    } else if (what == 1 && z->client >= 0) {
        size_t n = take(in, 1);

        n = MIN(n, in->left);

        if (send(z->client, in->p, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
            abort();
        in->p += n;
        in->left -= n;
    } else if (what == 2 && z->client >= 0) {
        while (recv(z->client, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ;
    } else if (what == 3 && z->client >= 0) {
        close(z->client);
        z->client = -1;
    }
    fl_run(&z->loop);
}

static void run_op(Fuzz *z, Input *in, Op op)
{
    switch (op) {
    case OP_CTRL_MSG: {
        uint32_t len = take(in, 1) % 24;
        uint64_t at = alloc_data(z, MAX(len, 1));

        for (uint32_t i = 0; i < len; i++)
            z->ram[at + i] = take(in, 1);
        if (z->q[VIRTIO_CONSOLE_Q_CTRL_TX].desc || z->q[VIRTIO_CONSOLE_Q_CTRL_TX].used) {
            add_chain(z, VIRTIO_CONSOLE_Q_CTRL_TX, &at, &len, 1, FALSE);
            kick(z, VIRTIO_CONSOLE_Q_CTRL_TX);
        }
        break;
    }
    case OP_CTRL_BUF: {
        unsigned n = 1 + take(in, 1) % 4;
        uint32_t size = take(in, 2) % 600;

        if (!z->q[VIRTIO_CONSOLE_Q_CTRL_RX].used)
            break;
        for (unsigned i = 0; i < n; i++) {
            uint64_t at = alloc_data(z, MAX(size, 1));

            add_chain(z, VIRTIO_CONSOLE_Q_CTRL_RX, &at, &size, 1, TRUE);
        }
        kick(z, VIRTIO_CONSOLE_Q_CTRL_RX);
        break;
    }
    case OP_RX_BUF: {
        unsigned qi = virtio_console_rx_queue(take(in, 1) % z->max_ports);
        uint32_t size = take(in, 2) % 2048;
        uint64_t at = alloc_data(z, MAX(size, 1));

        if (qi < MAX_QUEUES && z->q[qi].used) {
            add_chain(z, qi, &at, &size, 1, TRUE);
            kick(z, qi);
        }
        break;
    }
    case OP_TX: {
        unsigned qi = virtio_console_tx_queue(take(in, 1) % z->max_ports);
        unsigned parts = 1 + take(in, 1) % 4;
        uint32_t total = take(in, 1), len[4];
        uint64_t at = alloc_data(z, MAX(total, 1)), addr[4];

        for (uint32_t i = 0; i < total; i++)
            z->ram[at + i] = i;
        for (unsigned i = 0; i < parts; i++) {
            len[i] = i + 1 == parts ? total - total / parts * i : total / parts;
            addr[i] = at + total / parts * i;
        }
        if (qi < MAX_QUEUES && z->q[qi].used) {
            add_chain(z, qi, addr, len, parts, FALSE);
            kick(z, qi);
        }
        break;
    }
    case OP_HOST_INPUT: {
        uint8_t buf[256];
        size_t n = take(in, 1);
        size_t room;

        for (size_t i = 0; i < n; i++)
            buf[i] = take(in, 1);
        if (!z->chr.fe)
            break;
        /* As a backend does: no more than can_receive() allows. */
        room = z->chr.fe->can_receive(z->chr.opaque);
        if (room)
            z->chr.fe->receive(z->chr.opaque, buf, MIN(room, n));
        break;
    }
    case OP_BACKEND:
        z->chr.room = take(in, 1);
        if (z->chr.refused && z->chr.fe) {
            z->chr.refused = FALSE;
            z->chr.fe->writable(z->chr.opaque);
        }
        break;
    case OP_KICK:
        kick(z, take(in, 1));
        break;
    case OP_POKE: {
        uint64_t gpa = take(in, 2) % RAM_SIZE;
        size_t n = take(in, 1) % 16;

        for (size_t i = 0; i < n && gpa + i < RAM_SIZE; i++)
            z->ram[gpa + i] = take(in, 1);
        z->poked = TRUE;
        break;
    }
    case OP_RUN:
        fl_run(&z->loop);
        break;
    case OP_RESET:
        device_reset(z->dev);
        memset(z->q, 0, sizeof(z->q));
        break;
    case OP_SETUP:
        setup(z);
        break;
    case OP_SAVE_LOAD: {
        g_autoptr(GBytes) a = NULL;
        g_autoptr(GBytes) b = NULL;

        fl_run(&z->loop);
        a = save(z);
        if (!load(z, a))
            abort();
        b = save(z);
        if (!g_bytes_equal(a, b))
            abort();
        fl_run(&z->loop);
        break;
    }
    case OP_LOAD_DAMAGED: {
        g_autoptr(GBytes) a = NULL;
        g_autoptr(GBytes) bad = NULL;
        gsize len;
        uint8_t *data;
        unsigned n = 1 + take(in, 1) % 4;

        fl_run(&z->loop);
        a = save(z);
        data = g_memdup2(g_bytes_get_data(a, &len), len);

        for (unsigned i = 0; i < n; i++) {
            size_t off = take(in, 2) % len;

            data[off] ^= take(in, 1) | 1;
        }
        bad = g_bytes_new_take(data, len);
        if (!load(z, bad)) {
            g_autoptr(GBytes) b = save(z);

            /* A refused state changes nothing. */
            if (!g_bytes_equal(a, b))
                abort();
        } else {
            /* Whatever loaded is state the guest could not have made: stop checking. */
            z->poked = TRUE;
        }
        fl_run(&z->loop);
        break;
    }
    case OP_CLIENT:
        client_op(z, in);
        break;
    case OP_READ_CTRL:
        fl_run(&z->loop);
        read_ctrl(z);
        break;
    case OP_COUNT:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static gboolean init;
    Input in = { data, size };
    g_autoptr(GError) err = NULL;
    g_autofree char *options = NULL;
    DeviceEnv env = { .id = "con" };
    Fuzz *z = g_new0(Fuzz, 1);
    uint8_t cfg;

    if (!init) {
        g_log_set_handler(G_LOG_DOMAIN, G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL |
                          G_LOG_FLAG_RECURSION, ignore_log, NULL);
        init = TRUE;
    }
    cfg = take(&in, 1);
    z->ram = g_malloc0(RAM_SIZE);
    z->mem.regions[0] = (GuestRegion){ .gpa = 0, .size = RAM_SIZE, .host = z->ram };
    z->mem.nr_regions = 1;
    z->mem.ram_size = RAM_SIZE;
    z->loop.base.ops = &fuzz_loop_ops;
    g_queue_init(&z->loop.calls);
    z->loop.sources = g_ptr_array_new_with_free_func(g_free);
    z->chr.base.ops = &fuzz_char_ops;
    z->chr.room = G_MAXSIZE;
    z->client = -1;
    z->next_data = DATA_BASE;
    z->max_ports = 1 + (cfg & 3);
    z->named = (cfg & 0x20) && z->max_ports >= 2;
    z->features = VIRTIO_BIT(VIRTIO_F_VERSION_1) |
                  (cfg & 4 ? VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT) : 0) |
                  (cfg & 8 ? VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX) : 0) |
                  (cfg & 0x10 ? VIRTIO_BIT(VIRTIO_F_RING_INDIRECT_DESC) : 0);
    if (z->named) {
        z->dir = g_dir_make_tmp("fuzz-console-XXXXXX", NULL);
        if (!z->dir)
            abort();
        z->sock_path = g_build_filename(z->dir, "p1.sock", NULL);
        options = g_strdup_printf("max-ports=%u,name1=%s,socket1=%s", z->max_ports, MAX_NAME,
                                  z->sock_path);
    } else {
        options = g_strdup_printf("max-ports=%u", z->max_ports);
    }
    env.chr = &z->chr.base;
    env.loop = &z->loop.base;
    env.mem = &z->mem;
    z->dev = device_create("virtio-console", &env, options, &err);
    if (!z->dev)
        abort();
    z->vdev = virtio_pci_get_device(z->dev);
    z->nr_queues = MIN(z->vdev->nr_queues, MAX_QUEUES);
    setup(z);
    for (unsigned n = 0; in.left && n < MAX_OPS; n++)
        run_op(z, &in, take(&in, 1) % OP_COUNT);
    fl_run(&z->loop);
    read_ctrl(z);

    if (z->client >= 0)
        close(z->client);
    /* The loop is dry: nothing queued points into the device once it is gone. */
    device_free(z->dev);
    if (z->dir) {
        rmdir(z->dir);
        g_free(z->dir);
        g_free(z->sock_path);
    }
    g_queue_clear(&z->loop.calls);
    g_ptr_array_unref(z->loop.sources);
    g_free(z->ram);
    g_free(z);
    return 0;
}
