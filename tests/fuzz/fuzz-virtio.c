/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A fake machine and a minimal driver for fuzzing virtio device types; see fuzz-virtio.h. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-virtio.h"
#include "vireo/chardev.h"
#include "vireo/util.h"

/*
 * --- the transport ---
 *
 * Instead of virtio-pci (whose registers fuzz-virtqueue and the device
 * tests cover): the device types call virtio_pci_device_new(), defined
 * here, which attaches the VirtioDevice to a transport that only checks
 * the core's calls and counts them.
 */

typedef struct FuzzTransport {
    Device dev;
    VirtioTransport transport;
    VirtioDevice *vdev;
    unsigned notifications;
} FuzzTransport;

static void fuzz_notify_queue(VirtioTransport *t, unsigned index)
{
    FuzzTransport *ft = VIREO_CONTAINER_OF(t, FuzzTransport, transport);

    if (index >= ft->vdev->nr_queues)
        abort();
    ft->notifications++;
}

static void fuzz_notify_config(VirtioTransport *t)
{
    VIREO_CONTAINER_OF(t, FuzzTransport, transport)->notifications++;
}

static const VirtioTransportOps fuzz_transport_ops = {
    .notify_queue = fuzz_notify_queue,
    .notify_config = fuzz_notify_config,
};

static void fuzz_transport_reset(Device *dev)
{
    virtio_device_reset(((FuzzTransport *)dev)->vdev);
}

static gboolean fuzz_transport_save(Device *dev, StateWriter *w, GError **error)
{
    state_writer_begin_section(w, dev->id, 1);
    if (!virtio_device_save(((FuzzTransport *)dev)->vdev, w, error))
        return FALSE;
    state_writer_end_section(w);
    return TRUE;
}

/* As virtio-pci does: a failed load puts back what the device had. */
static gboolean fuzz_transport_load(Device *dev, StateReader *r, GError **error)
{
    VirtioDevice *vdev = ((FuzzTransport *)dev)->vdev;
    g_autoptr(StateWriter) before = state_writer_new();
    g_autoptr(StateReader) undo = NULL;
    const uint8_t *data;
    uint32_t version;
    size_t len;

    if (!fuzz_transport_save(dev, before, error))
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

static void fuzz_transport_free(Device *dev)
{
    FuzzTransport *ft = (FuzzTransport *)dev;

    virtio_device_free(ft->vdev);
    device_cleanup(dev);
    g_free(ft);
}

const DeviceOps virtio_pci_device_ops = {
    .reset = fuzz_transport_reset,
    .save = fuzz_transport_save,
    .load = fuzz_transport_load,
    .free = fuzz_transport_free,
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

/* --- loop --- */

typedef struct FuzzSource {
    int fd;
    uint32_t events;
    EventFdFn fn;
    void *opaque;
    gboolean removed;
} FuzzSource;

typedef struct FuzzCall {
    EventCallFn fn;
    void *opaque;
} FuzzCall;

/* --- timers --- */

typedef struct FuzzTimer {
    Timer base;
    FuzzEnv *f;
    TimerFn fn;
    void *opaque;
    gboolean armed;
    int64_t deadline;
} FuzzTimer;

/* --- character backend --- */

typedef struct FuzzChar {
    CharBackend base;
    const CharFrontendOps *fe;
    void *opaque;
    size_t room;
    gboolean refused;                   /* output was cut short: owe a writable() */
} FuzzChar;

/* --- driver --- */

typedef struct FuzzQueue {
    uint16_t size;                      /* FUZZ_QUEUE_SIZE or the device's maximum */
    uint16_t avail_idx;
    uint16_t last_used;
    uint16_t free[FUZZ_QUEUE_SIZE];     /* stack of free descriptors */
    unsigned nr_free;
    uint16_t chain_next[FUZZ_QUEUE_SIZE];
    uint16_t chain_len[FUZZ_QUEUE_SIZE];
    gboolean in_flight[FUZZ_QUEUE_SIZE];
} FuzzQueue;

struct FuzzEnv {
    GuestMemory mem;
    uint8_t *ram;
    size_t ram_size;
    EventLoop loop;
    GPtrArray *sources;
    GQueue calls;
    TimerService timers;
    GPtrArray *timer_list;
    int64_t now;
    DeviceEnv env;
    FuzzChar chr;
    GArray *host_fds;                   /* host ends of fuzz_env_socketpair() */
    Device *dev;
    unsigned nr_queues;
    gboolean tainted;                   /* the input wrote into the rings */
    FuzzQueue q[FUZZ_MAX_QUEUES];
    uint64_t data_next;
    uint64_t data_end;
};

static FuzzEnv *fuzz_env_of_loop(EventLoop *l)
{
    return VIREO_CONTAINER_OF(l, FuzzEnv, loop);
}

static EventSource *fl_add_fd(EventLoop *l, int fd, uint32_t events, EventFdFn fn, void *opaque,
                              GError **error)
{
    FuzzSource *s = g_new0(FuzzSource, 1);

    *s = (FuzzSource){ .fd = fd, .events = events, .fn = fn, .opaque = opaque };
    g_ptr_array_add(fuzz_env_of_loop(l)->sources, s);
    return (EventSource *)s;
}

static void fl_set_events(EventSource *s, uint32_t events)
{
    ((FuzzSource *)s)->events = events;
}

static void fl_remove(EventSource *s)
{
    ((FuzzSource *)s)->removed = TRUE;
}

static void fl_call(EventLoop *l, EventCallFn fn, void *opaque)
{
    FuzzCall *c = g_new(FuzzCall, 1);

    c->fn = fn;
    c->opaque = opaque;
    g_queue_push_tail(&fuzz_env_of_loop(l)->calls, c);
}

static const EventLoopOps fuzz_loop_ops = {
    .add_fd = fl_add_fd, .set_events = fl_set_events, .remove = fl_remove, .call = fl_call,
};

static void fuzz_reap(FuzzEnv *f)
{
    for (guint i = f->sources->len; i-- > 0;) {
        if (((FuzzSource *)g_ptr_array_index(f->sources, i))->removed)
            g_ptr_array_remove_index(f->sources, i);
    }
}

void fuzz_env_run(FuzzEnv *f)
{
    gboolean progress = TRUE;

    for (unsigned round = 0; progress; round++) {
        FuzzCall *c = g_queue_pop_head(&f->calls);

        if (round > 100000)
            abort();                    /* the loop never runs dry */
        progress = FALSE;
        if (c) {
            c->fn(c->opaque);
            g_free(c);
            progress = TRUE;
            continue;
        }
        for (guint i = 0; i < f->sources->len; i++) {
            FuzzSource *s = g_ptr_array_index(f->sources, i);
            struct pollfd p = { .fd = s->fd, .events = s->events };

            if (s->removed || !s->events || poll(&p, 1, 0) <= 0 || !p.revents)
                continue;
            s->fn(s->fd, p.revents, s->opaque);
            progress = TRUE;
        }
        fuzz_reap(f);
    }
}

static FuzzEnv *fuzz_env_of_timers(TimerService *ts)
{
    return VIREO_CONTAINER_OF(ts, FuzzEnv, timers);
}

static int64_t ft_now(TimerService *ts)
{
    return fuzz_env_of_timers(ts)->now;
}

static Timer *ft_new(TimerService *ts, TimerFn fn, void *opaque)
{
    FuzzTimer *t = g_new0(FuzzTimer, 1);

    t->base.service = ts;
    t->f = fuzz_env_of_timers(ts);
    t->fn = fn;
    t->opaque = opaque;
    g_ptr_array_add(t->f->timer_list, t);
    return &t->base;
}

static void ft_arm(Timer *timer, int64_t deadline)
{
    ((FuzzTimer *)timer)->armed = TRUE;
    ((FuzzTimer *)timer)->deadline = deadline;
}

static void ft_cancel(Timer *timer)
{
    ((FuzzTimer *)timer)->armed = FALSE;
}

static void ft_free(Timer *timer)
{
    FuzzTimer *t = (FuzzTimer *)timer;

    g_ptr_array_remove(t->f->timer_list, t);
    g_free(t);
}

static const TimerServiceOps fuzz_timer_ops = {
    .now = ft_now, .timer_new = ft_new, .timer_arm = ft_arm, .timer_cancel = ft_cancel,
    .timer_free = ft_free,
};

void fuzz_env_advance(FuzzEnv *f, int64_t ns)
{
    int64_t target = f->now + ns;

    for (unsigned fired = 0;; fired++) {
        FuzzTimer *best = NULL;

        if (fired > 10000)
            abort();                    /* a timer re-arming for "now" forever */
        for (guint i = 0; i < f->timer_list->len; i++) {
            FuzzTimer *t = g_ptr_array_index(f->timer_list, i);

            if (t->armed && t->deadline <= target && (!best || t->deadline < best->deadline))
                best = t;
        }
        if (!best)
            break;
        if (best->deadline > f->now)
            f->now = best->deadline;
        best->armed = FALSE;
        best->fn(best->opaque);
    }
    f->now = target;
}

/* --- environment --- */

FuzzEnv *fuzz_env_new(size_t ram_size)
{
    FuzzEnv *f;

    if (ram_size < FUZZ_DATA_BASE + 4096)
        abort();                        /* no room for buffers after the rings */
    f = g_new0(FuzzEnv, 1);
    f->ram_size = ram_size;
    /* Page-aligned, so that a balloon's madvise() acts (inside the block only). */
    f->ram = aligned_alloc(4096, VIREO_ALIGN_UP(ram_size, 4096));
    if (!f->ram)
        abort();
    memset(f->ram, 0, ram_size);
    f->mem.regions[0] = (GuestRegion){ .gpa = 0, .size = ram_size, .host = f->ram };
    f->mem.nr_regions = 1;
    f->mem.ram_size = ram_size;
    f->loop.ops = &fuzz_loop_ops;
    f->sources = g_ptr_array_new_with_free_func(g_free);
    g_queue_init(&f->calls);
    f->timers.ops = &fuzz_timer_ops;
    f->timer_list = g_ptr_array_new();
    f->env = (DeviceEnv){ .id = "fuzz", .loop = &f->loop, .timers = &f->timers, .mem = &f->mem };
    f->host_fds = g_array_new(FALSE, FALSE, sizeof(int));
    f->data_next = FUZZ_DATA_BASE;
    f->data_end = ram_size;
    return f;
}

void fuzz_env_free(FuzzEnv *f)
{
    if (f->dev) {
        fuzz_env_run(f);
        device_free(f->dev);
    }
    for (guint i = 0; i < f->host_fds->len; i++)
        close(g_array_index(f->host_fds, int, i));
    g_array_unref(f->host_fds);
    g_queue_clear_full(&f->calls, g_free);
    g_ptr_array_unref(f->sources);
    if (f->timer_list->len)
        abort();                        /* the device leaked a timer */
    g_ptr_array_unref(f->timer_list);
    free(f->ram);
    g_free(f);
}

void fuzz_env_create(FuzzEnv *f, const char *type, const char *options)
{
    g_autoptr(GError) err = NULL;

    f->dev = device_create(type, &f->env, options, &err);
    if (!f->dev) {
        g_printerr("fuzz: creating %s (%s): %s\n", type, options, err->message);
        abort();
    }
}

Device *fuzz_env_device(FuzzEnv *f)
{
    return f->dev;
}

VirtioDevice *fuzz_env_vdev(FuzzEnv *f)
{
    return virtio_pci_get_device(f->dev);
}

uint8_t *fuzz_env_ram(FuzzEnv *f, uint64_t gpa, size_t len)
{
    uint8_t *p = guest_memory_ptr(&f->mem, gpa, len);

    if (!p)
        abort();
    return p;
}

size_t fuzz_env_ram_size(FuzzEnv *f)
{
    return f->ram_size;
}

void fuzz_env_reset(FuzzEnv *f)
{
    device_reset(f->dev);
    f->nr_queues = 0;
    memset(f->q, 0, sizeof(f->q));
}

GBytes *fuzz_env_save(FuzzEnv *f)
{
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(GError) err = NULL;

    if (!device_save(f->dev, w, &err)) {
        g_printerr("fuzz: save: %s\n", err->message);
        abort();
    }
    return state_writer_steal_bytes(w);
}

gboolean fuzz_env_load(FuzzEnv *f, GBytes *state, GError **error)
{
    gsize len;
    const uint8_t *data = g_bytes_get_data(state, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);

    return device_load(f->dev, r, error);
}

/* Returns the saved state, for fuzz_env_save_load_same(). */
static GBytes *fuzz_env_save_load_state(FuzzEnv *f)
{
    g_autoptr(GBytes) state = NULL;
    g_autoptr(GError) err = NULL;

    fuzz_env_run(f);
    state = fuzz_env_save(f);
    if (!fuzz_env_load(f, state, &err)) {
        g_printerr("fuzz: loading own state: %s\n", err->message);
        abort();
    }
    return g_steal_pointer(&state);
}

void fuzz_env_save_load(FuzzEnv *f)
{
    g_bytes_unref(fuzz_env_save_load_state(f));
}

void fuzz_env_save_load_same(FuzzEnv *f)
{
    g_autoptr(GBytes) a = fuzz_env_save_load_state(f);
    g_autoptr(GBytes) b = fuzz_env_save(f);

    if (!g_bytes_equal(a, b))
        abort();                        /* the load lost or changed state */
}

gboolean fuzz_env_load_damaged(FuzzEnv *f, FuzzInput *in)
{
    unsigned n = 1 + fuzz_take(in, 1) % 4;
    g_autoptr(GBytes) before = NULL;
    g_autoptr(GBytes) bad = NULL;
    g_autoptr(GBytes) after = NULL;
    uint8_t *data;
    gsize len;

    fuzz_env_run(f);
    before = fuzz_env_save(f);
    data = g_memdup2(g_bytes_get_data(before, &len), len);
    for (unsigned i = 0; i < n; i++) {
        size_t off = fuzz_take(in, 2) % len;

        data[off] ^= fuzz_take(in, 1) | 1;
    }
    bad = g_bytes_new_take(data, len);
    if (fuzz_env_load(f, bad, NULL)) {
        fuzz_driver_taint(f);
        return TRUE;
    }
    after = fuzz_env_save(f);
    if (!g_bytes_equal(before, after))
        abort();                        /* a refused state changed the device */
    return FALSE;
}

int fuzz_env_socketpair(FuzzEnv *f, int type, int *host)
{
    int sv[2];

    if (socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (host) {
        *host = sv[1];
        g_array_append_val(f->host_fds, sv[1]);
    } else {
        close(sv[1]);
    }
    return sv[0];
}

/* --- character backend --- */

static size_t fc_write(CharBackend *be, const uint8_t *buf, size_t len)
{
    FuzzChar *c = VIREO_CONTAINER_OF(be, FuzzChar, base);
    size_t n = MIN(len, c->room);

    c->room -= n;
    if (n < len)
        c->refused = TRUE;
    return n;
}

static void fc_set_frontend(CharBackend *be, const CharFrontendOps *ops, void *opaque)
{
    FuzzChar *c = VIREO_CONTAINER_OF(be, FuzzChar, base);

    c->fe = ops;
    c->opaque = opaque;
}

/* Input is pushed by fuzz_chr_input() only: nothing to resume. */
static void fc_accept_input(CharBackend *be)
{
}

static const CharBackendOps fuzz_char_ops = {
    .write = fc_write, .set_frontend = fc_set_frontend, .accept_input = fc_accept_input,
};

void fuzz_chr_attach(FuzzEnv *f)
{
    f->chr.base.ops = &fuzz_char_ops;
    f->chr.room = G_MAXSIZE;
    f->env.chr = &f->chr.base;
}

void fuzz_chr_set_room(FuzzEnv *f, size_t room)
{
    FuzzChar *c = &f->chr;

    c->room = room;
    if (c->refused && c->fe) {
        c->refused = FALSE;
        c->fe->writable(c->opaque);
    }
}

void fuzz_chr_input(FuzzEnv *f, const uint8_t *buf, size_t len)
{
    FuzzChar *c = &f->chr;
    size_t room;

    if (!c->fe)
        return;
    /* As a backend does: no more than can_receive() allows. */
    room = c->fe->can_receive(c->opaque);
    if (room)
        c->fe->receive(c->opaque, buf, MIN(room, len));
}

/* --- driver --- */

static uint64_t fuzz_desc_addr(unsigned q)
{
    return (uint64_t)q * 0x2000;
}

static uint64_t fuzz_avail_addr(unsigned q)
{
    return fuzz_desc_addr(q) + 0x1000;
}

static uint64_t fuzz_used_addr(unsigned q)
{
    return fuzz_desc_addr(q) + 0x1800;
}

gboolean fuzz_driver_start(FuzzEnv *f, uint64_t features, unsigned nr_queues)
{
    VirtioDevice *vdev = fuzz_env_vdev(f);
    gboolean ok;

    fuzz_env_run(f);
    memset(f->ram, 0, FUZZ_RING_AREA);
    memset(f->q, 0, sizeof(f->q));
    f->tainted = FALSE;
    f->nr_queues = MIN(nr_queues, (unsigned)FUZZ_MAX_QUEUES);
    virtio_device_lock(vdev);
    virtio_device_reset(vdev);
    virtio_set_status(vdev, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    features = (features & vdev->host_features) | VIRTIO_BIT(VIRTIO_F_VERSION_1);
    virtio_set_driver_features(vdev, 0, (uint32_t)features);
    virtio_set_driver_features(vdev, 1, features >> 32);
    virtio_set_status(vdev, VIRTIO_STATUS_FEATURES_OK);
    ok = (vdev->status & VIRTIO_STATUS_FEATURES_OK) != 0;
    for (unsigned q = 0; ok && q < f->nr_queues && q < vdev->nr_queues; q++) {
        FuzzQueue *fq = &f->q[q];

        fq->size = MIN(FUZZ_QUEUE_SIZE, virtq_get_max_size(vdev->queues[q].vq));
        for (unsigned i = 0; i < fq->size; i++)
            fq->free[i] = fq->size - 1 - i;
        fq->nr_free = fq->size;
        virtio_queue_set_size(vdev, q, fq->size);
        virtio_queue_set_desc(vdev, q, fuzz_desc_addr(q));
        virtio_queue_set_driver(vdev, q, fuzz_avail_addr(q));
        virtio_queue_set_device(vdev, q, fuzz_used_addr(q));
        virtio_queue_enable(vdev, q);
    }
    if (ok)
        virtio_set_status(vdev, VIRTIO_STATUS_DRIVER_OK);
    virtio_device_unlock(vdev);
    fuzz_env_run(f);
    return ok;
}

uint64_t fuzz_driver_alloc(FuzzEnv *f, uint32_t len)
{
    uint64_t a = VIREO_ALIGN_UP(f->data_next, 8);

    if (len > f->data_end - FUZZ_DATA_BASE)
        abort();
    if (a + len > f->data_end)
        a = FUZZ_DATA_BASE;
    f->data_next = a + len;
    return a;
}

void fuzz_driver_reserve(FuzzEnv *f, size_t bytes)
{
    if (bytes > f->ram_size - FUZZ_DATA_BASE - 4096)
        abort();
    f->data_end = f->ram_size - bytes;
}

unsigned fuzz_driver_next_head(FuzzEnv *f, unsigned q)
{
    const FuzzQueue *fq = &f->q[q];

    return fq->nr_free ? fq->free[fq->nr_free - 1] : 0;
}

void fuzz_driver_add(FuzzEnv *f, unsigned q, const uint64_t *addr, const uint32_t *len,
                     const gboolean *write, unsigned n)
{
    FuzzQueue *fq = &f->q[q];
    uint16_t head = 0, prev = 0;
    uint8_t *avail;

    if (q >= f->nr_queues || !n || n > fq->nr_free)
        return;
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = fq->free[--fq->nr_free];
        uint8_t *p = fuzz_env_ram(f, fuzz_desc_addr(q) + 16 * d, 16);

        vireo_le_store(p, 8, addr[i]);
        vireo_le_store(p + 8, 4, len[i]);
        vireo_le_store(p + 12, 2, (write[i] ? VIRTQ_DESC_F_WRITE : 0) |
                                  (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        vireo_le_store(p + 14, 2, 0);
        if (i == 0) {
            head = d;
        } else {
            vireo_le_store(fuzz_env_ram(f, fuzz_desc_addr(q) + 16 * prev + 14, 2), 2, d);
            fq->chain_next[prev] = d;
        }
        prev = d;
    }
    fq->chain_len[head] = n;
    fq->in_flight[head] = TRUE;
    avail = fuzz_env_ram(f, fuzz_avail_addr(q), 4 + 2 * fq->size + 2);
    vireo_le_store(avail + 4 + 2 * (fq->avail_idx % fq->size), 2, head);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    vireo_le_store(avail + 2, 2, ++fq->avail_idx);
}

void fuzz_driver_kick(FuzzEnv *f, unsigned q)
{
    VirtioDevice *vdev = fuzz_env_vdev(f);

    if (q < vdev->nr_queues)
        virtio_queue_kick(&vdev->queues[q]);
}

gboolean fuzz_driver_used(FuzzEnv *f, unsigned q, uint32_t *id, uint32_t *len)
{
    FuzzQueue *fq = &f->q[q];
    uint8_t *used;
    uint16_t d;

    if (q >= f->nr_queues || !fq->size)
        return FALSE;
    used = fuzz_env_ram(f, fuzz_used_addr(q), 4 + 8 * fq->size + 2);
    if ((uint16_t)vireo_le_load(used + 2, 2) == fq->last_used)
        return FALSE;
    *id = vireo_le_load(used + 4 + 8 * (fq->last_used % fq->size), 4);
    *len = vireo_le_load(used + 8 + 8 * (fq->last_used % fq->size), 4);
    fq->last_used++;
    if (f->tainted)
        return *id < fq->size;
    /* The device returns only what the driver made available (virtqueue.h). */
    if (*id >= fq->size || !fq->in_flight[*id])
        abort();
    fq->in_flight[*id] = FALSE;
    d = *id;
    for (unsigned i = 0; i < fq->chain_len[*id]; i++) {
        fq->free[fq->nr_free++] = d;
        d = fq->chain_next[d];
    }
    return TRUE;
}

void fuzz_driver_reap(FuzzEnv *f, unsigned q)
{
    uint32_t id, len;

    while (fuzz_driver_used(f, q, &id, &len))
        ;
}

void fuzz_driver_poke(FuzzEnv *f, uint64_t gpa, const uint8_t *data, size_t len)
{
    if (gpa >= f->ram_size || len > f->ram_size - gpa)
        return;
    memcpy(f->ram + gpa, data, len);
    if (gpa < FUZZ_RING_AREA)
        f->tainted = TRUE;
}

void fuzz_driver_taint(FuzzEnv *f)
{
    f->tainted = TRUE;
}

gboolean fuzz_driver_tainted(FuzzEnv *f)
{
    return f->tainted;
}

void fuzz_driver_desc(FuzzEnv *f, unsigned q, uint32_t id, uint64_t *addr, uint32_t *len)
{
    uint8_t *p = fuzz_env_ram(f, fuzz_desc_addr(q) + 16 * (id % FUZZ_QUEUE_SIZE), 16);

    *addr = vireo_le_load(p, 8);
    *len = vireo_le_load(p + 8, 4);
}
