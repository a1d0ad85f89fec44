/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Test doubles for device tests; see harness.h. */
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* --- interrupt line --- */

static void harness_irq_set_level(IrqLine *line, gboolean level)
{
    HarnessIrq *irq = (HarnessIrq *)line;

    /* A line is high or low; other "true" values would confuse a real irqchip's users. */
    assert_true(level == TRUE || level == FALSE);
    irq->calls++;
    if (level && !irq->level)
        irq->rises++;
    if (!level && irq->level)
        irq->falls++;
    irq->level = level;
}

void harness_irq_init(HarnessIrq *irq)
{
    memset(irq, 0, sizeof(*irq));
    irq->line.set_level = harness_irq_set_level;
}

/* --- character backend --- */

struct HarnessChar {
    CharBackend be;             /* first: the device hands us back &be */
    const CharFrontendOps *fe;
    void *fe_opaque;
    GByteArray *out;
    size_t limit;
    size_t pending;
    gboolean blocked;
    GByteArray *in;
    unsigned accept_input_calls;
};

static size_t harness_char_write(CharBackend *be, const uint8_t *buf, size_t len)
{
    HarnessChar *c = (HarnessChar *)be;
    size_t room = c->limit > c->pending ? c->limit - c->pending : 0;
    size_t n = MIN(room, len);

    g_byte_array_append(c->out, buf, n);
    c->pending += n;
    if (n < len)
        c->blocked = TRUE;
    return n;
}

static void harness_char_set_frontend(CharBackend *be, const CharFrontendOps *ops, void *opaque)
{
    HarnessChar *c = (HarnessChar *)be;

    c->fe = ops;
    c->fe_opaque = opaque;
}

/* Called with the device lock held: only note it, as the real backend does. */
static void harness_char_accept_input(CharBackend *be)
{
    HarnessChar *c = (HarnessChar *)be;

    c->accept_input_calls++;
}

static const CharBackendOps harness_char_ops = {
    .write = harness_char_write,
    .set_frontend = harness_char_set_frontend,
    .accept_input = harness_char_accept_input,
};

HarnessChar *harness_char_new(void)
{
    HarnessChar *c = g_new0(HarnessChar, 1);

    c->be.ops = &harness_char_ops;
    c->out = g_byte_array_new();
    c->in = g_byte_array_new();
    c->limit = G_MAXSIZE;
    return c;
}

void harness_char_free(HarnessChar *c)
{
    if (!c)
        return;
    g_byte_array_unref(c->out);
    g_byte_array_unref(c->in);
    g_free(c);
}

CharBackend *harness_char_backend(HarnessChar *c)
{
    return &c->be;
}

void harness_char_set_limit(HarnessChar *c, size_t limit)
{
    c->limit = limit;
}

void harness_char_drain(HarnessChar *c)
{
    c->pending = 0;
    if (c->blocked) {
        c->blocked = FALSE;
        if (c->fe && c->fe->writable)
            c->fe->writable(c->fe_opaque);
    }
}

const GByteArray *harness_char_output(HarnessChar *c)
{
    return c->out;
}

void harness_char_clear_output(HarnessChar *c)
{
    g_byte_array_set_size(c->out, 0);
}

size_t harness_char_pending(HarnessChar *c)
{
    return c->pending;
}

gboolean harness_char_blocked(HarnessChar *c)
{
    return c->blocked;
}

size_t harness_char_pump(HarnessChar *c)
{
    size_t total = 0;

    while (c->in->len && c->fe) {
        size_t room = c->fe->can_receive(c->fe_opaque);
        size_t n = MIN(room, (size_t)c->in->len);

        if (!n)
            break;
        c->fe->receive(c->fe_opaque, c->in->data, n);
        g_byte_array_remove_range(c->in, 0, n);
        total += n;
    }
    return total;
}

size_t harness_char_input(HarnessChar *c, const void *buf, size_t len)
{
    g_byte_array_append(c->in, buf, len);
    return harness_char_pump(c);
}

size_t harness_char_input_queued(HarnessChar *c)
{
    return c->in->len;
}

void harness_char_discard_input(HarnessChar *c)
{
    g_byte_array_set_size(c->in, 0);
}

unsigned harness_char_accept_input_calls(HarnessChar *c)
{
    return c->accept_input_calls;
}

gboolean harness_char_has_frontend(HarnessChar *c)
{
    return c->fe != NULL;
}

/* --- machine control --- */

static void harness_machine_request(MachineControl *mc, MachineRequest req, int status)
{
    HarnessMachine *m = (HarnessMachine *)mc;

    m->requests++;
    m->last = req;
    m->last_status = status;
    switch (req) {
    case MACHINE_REQUEST_RESET:
        m->resets++;
        break;
    case MACHINE_REQUEST_POWEROFF:
        m->poweroffs++;
        break;
    case MACHINE_REQUEST_EXIT:
        m->exits++;
        break;
    }
}

void harness_machine_init(HarnessMachine *m)
{
    memset(m, 0, sizeof(*m));
    m->mc.request = harness_machine_request;
}

/* --- timers --- */

typedef struct HarnessTimer {
    Timer base;                 /* first: devices hold &base */
    HarnessTimers *owner;
    TimerFn fn;
    void *opaque;
    gboolean armed;
    int64_t deadline;
    uint64_t seq;               /* arming order, to break ties */
} HarnessTimer;

struct HarnessTimers {
    TimerService ts;            /* first: devices hold &ts */
    int64_t now;
    GPtrArray *timers;
    uint64_t seq;
};

static int64_t harness_timers_op_now(TimerService *ts)
{
    return ((HarnessTimers *)ts)->now;
}

static Timer *harness_timers_op_new(TimerService *ts, TimerFn fn, void *opaque)
{
    HarnessTimers *t = (HarnessTimers *)ts;
    HarnessTimer *tm = g_new0(HarnessTimer, 1);

    tm->base.service = ts;
    tm->owner = t;
    tm->fn = fn;
    tm->opaque = opaque;
    g_ptr_array_add(t->timers, tm);
    return &tm->base;
}

static void harness_timers_op_arm(Timer *timer, int64_t deadline)
{
    HarnessTimer *tm = (HarnessTimer *)timer;

    tm->armed = TRUE;
    tm->deadline = deadline;
    tm->seq = tm->owner->seq++;
}

static void harness_timers_op_cancel(Timer *timer)
{
    ((HarnessTimer *)timer)->armed = FALSE;
}

static void harness_timers_op_free(Timer *timer)
{
    HarnessTimer *tm = (HarnessTimer *)timer;

    g_assert_true(g_ptr_array_remove(tm->owner->timers, tm));
    g_free(tm);
}

static const TimerServiceOps harness_timers_ops = {
    .now = harness_timers_op_now,
    .timer_new = harness_timers_op_new,
    .timer_arm = harness_timers_op_arm,
    .timer_cancel = harness_timers_op_cancel,
    .timer_free = harness_timers_op_free,
};

HarnessTimers *harness_timers_new(int64_t start_ns)
{
    HarnessTimers *t = g_new0(HarnessTimers, 1);

    t->ts.ops = &harness_timers_ops;
    t->now = start_ns;
    t->timers = g_ptr_array_new();
    return t;
}

void harness_timers_free(HarnessTimers *t)
{
    if (!t)
        return;
    /* Every device must have freed its timers by now. */
    assert_int_equal(t->timers->len, 0);
    g_ptr_array_unref(t->timers);
    g_free(t);
}

TimerService *harness_timers_service(HarnessTimers *t)
{
    return &t->ts;
}

int64_t harness_timers_now(HarnessTimers *t)
{
    return t->now;
}

static HarnessTimer *harness_timers_earliest(HarnessTimers *t)
{
    HarnessTimer *best = NULL;

    for (guint i = 0; i < t->timers->len; i++) {
        HarnessTimer *tm = g_ptr_array_index(t->timers, i);

        if (tm->armed && (!best || tm->deadline < best->deadline ||
                          (tm->deadline == best->deadline && tm->seq < best->seq)))
            best = tm;
    }
    return best;
}

unsigned harness_timers_advance(HarnessTimers *t, int64_t ns)
{
    int64_t target = t->now + ns;
    unsigned fired = 0, stalled = 0;

    g_assert(ns >= 0);
    for (;;) {
        HarnessTimer *tm = harness_timers_earliest(t);

        if (!tm || tm->deadline > target)
            break;
        if (tm->deadline > t->now) {
            t->now = tm->deadline;
            stalled = 0;
        } else if (++stalled > 10000) {
            fail_msg("timers keep firing at %" G_GINT64_FORMAT " ns without time passing",
                     t->now);
        }
        tm->armed = FALSE;
        tm->fn(tm->opaque);
        fired++;
    }
    t->now = target;
    return fired;
}

int64_t harness_timers_next(HarnessTimers *t)
{
    HarnessTimer *tm = harness_timers_earliest(t);

    return tm ? tm->deadline : -1;
}

unsigned harness_timers_armed(HarnessTimers *t)
{
    unsigned n = 0;

    for (guint i = 0; i < t->timers->len; i++)
        n += ((HarnessTimer *)g_ptr_array_index(t->timers, i))->armed;
    return n;
}

/* --- environment --- */

/* --- event loop --- */

typedef struct HarnessSource {
    HarnessLoop *loop;
    int fd;
    uint32_t events;
    EventFdFn fn;
    void *opaque;
    gboolean removed;
} HarnessSource;

typedef struct HarnessCall {
    EventCallFn fn;
    void *opaque;
} HarnessCall;

struct HarnessLoop {
    EventLoop loop;
    GMutex lock;                /* calls may be queued from other threads */
    GQueue calls;               /* HarnessCall* */
    GPtrArray *sources;         /* HarnessSource* */
};

static EventSource *hl_add_fd(EventLoop *el, int fd, uint32_t events, EventFdFn fn,
                              void *opaque, GError **error)
{
    HarnessLoop *l = VIREO_CONTAINER_OF(el, HarnessLoop, loop);
    HarnessSource *src = g_new0(HarnessSource, 1);

    src->loop = l;
    src->fd = fd;
    src->events = events;
    src->fn = fn;
    src->opaque = opaque;
    g_ptr_array_add(l->sources, src);
    return (EventSource *)src;
}

static void hl_set_events(EventSource *s, uint32_t events)
{
    ((HarnessSource *)s)->events = events;
}

static void hl_remove(EventSource *s)
{
    /* Freed by the next harness_loop_run(): the caller may be its callback. */
    ((HarnessSource *)s)->removed = TRUE;
}

static void hl_call(EventLoop *el, EventCallFn fn, void *opaque)
{
    HarnessLoop *l = VIREO_CONTAINER_OF(el, HarnessLoop, loop);
    HarnessCall *c = g_new(HarnessCall, 1);

    c->fn = fn;
    c->opaque = opaque;
    g_mutex_lock(&l->lock);
    g_queue_push_tail(&l->calls, c);
    g_mutex_unlock(&l->lock);
}

static const EventLoopOps harness_loop_ops = {
    .add_fd = hl_add_fd,
    .set_events = hl_set_events,
    .remove = hl_remove,
    .call = hl_call,
};

HarnessLoop *harness_loop_new(void)
{
    HarnessLoop *l = g_new0(HarnessLoop, 1);

    l->loop.ops = &harness_loop_ops;
    g_mutex_init(&l->lock);
    g_queue_init(&l->calls);
    l->sources = g_ptr_array_new_with_free_func(g_free);
    return l;
}

void harness_loop_free(HarnessLoop *l)
{
    if (!l)
        return;
    g_queue_clear_full(&l->calls, g_free);
    g_ptr_array_unref(l->sources);
    g_mutex_clear(&l->lock);
    g_free(l);
}

EventLoop *harness_loop_event_loop(HarnessLoop *l)
{
    return &l->loop;
}

static void reap_sources(HarnessLoop *l)
{
    for (guint i = l->sources->len; i-- > 0;) {
        HarnessSource *src = g_ptr_array_index(l->sources, i);
        if (src->removed)
            g_ptr_array_remove_index(l->sources, i);
    }
}

unsigned harness_loop_run(HarnessLoop *l)
{
    unsigned ran = 0;
    gboolean progress = TRUE;

    for (unsigned round = 0; progress; round++) {
        HarnessCall *c;

        if (round > 100000)
            fail_msg("the event loop never runs dry: a device keeps queueing work");
        progress = FALSE;
        g_mutex_lock(&l->lock);
        c = g_queue_pop_head(&l->calls);
        g_mutex_unlock(&l->lock);
        if (c) {
            c->fn(c->opaque);
            g_free(c);
            ran++;
            progress = TRUE;
            continue;
        }
        for (guint i = 0; i < l->sources->len; i++) {
            HarnessSource *src = g_ptr_array_index(l->sources, i);
            struct pollfd p = { .fd = src->fd, .events = src->events };

            if (src->removed || !src->events || poll(&p, 1, 0) <= 0 || !p.revents)
                continue;
            src->fn(src->fd, p.revents, src->opaque);
            ran++;
            progress = TRUE;
        }
        reap_sources(l);
    }
    return ran;
}

unsigned harness_loop_watched(HarnessLoop *l)
{
    unsigned n = 0;

    for (guint i = 0; i < l->sources->len; i++)
        n += !((HarnessSource *)g_ptr_array_index(l->sources, i))->removed;
    return n;
}

/* --- MSI --- */

static MsiRoute *hm_route_new(MsiController *ctrl, GError **error)
{
    HarnessMsi *m = VIREO_CONTAINER_OF(ctrl, HarnessMsi, ctrl);
    HarnessMsiRoute *r = g_new0(HarnessMsiRoute, 1);

    r->base.ctrl = ctrl;
    g_ptr_array_add(m->routes, r);
    return &r->base;
}

static void hm_route_set(MsiRoute *route, uint64_t addr, uint32_t data)
{
    HarnessMsiRoute *r = (HarnessMsiRoute *)route;

    r->addr = addr;
    r->data = data;
    r->sets++;
}

static void hm_route_fire(MsiRoute *route)
{
    g_atomic_int_inc(&((HarnessMsiRoute *)route)->fires);
}

static void hm_route_free(MsiRoute *route)
{
    HarnessMsi *m = VIREO_CONTAINER_OF(route->ctrl, HarnessMsi, ctrl);

    g_ptr_array_remove(m->routes, route);
    g_free(route);
}

static const MsiControllerOps harness_msi_ops = {
    .route_new = hm_route_new,
    .route_set = hm_route_set,
    .route_fire = hm_route_fire,
    .route_free = hm_route_free,
};

void harness_msi_init(HarnessMsi *m)
{
    m->ctrl.ops = &harness_msi_ops;
    m->routes = g_ptr_array_new();
}

void harness_msi_cleanup(HarnessMsi *m)
{
    /* Devices free their routes; what is left is a leak. */
    assert_int_equal(m->routes->len, 0);
    g_ptr_array_unref(m->routes);
}

unsigned harness_msi_fires(HarnessMsi *m, uint32_t data)
{
    unsigned n = 0;

    for (guint i = 0; i < m->routes->len; i++) {
        HarnessMsiRoute *r = g_ptr_array_index(m->routes, i);
        if (r->sets && r->data == data)
            n += g_atomic_int_get(&r->fires);
    }
    return n;
}

/* --- doorbells --- */

typedef struct HarnessIoEvent {
    IoEvent base;
    gboolean mmio;
    uint64_t addr;
    unsigned len;
    gboolean match;
    uint64_t datamatch;
    IoEventFn fn;
    void *opaque;
} HarnessIoEvent;

static IoEvent *hio_add(IoEventService *svc, gboolean mmio, uint64_t addr, unsigned len,
                        gboolean match, uint64_t datamatch, IoEventFn fn, void *opaque,
                        GError **error)
{
    HarnessIoEvents *io = VIREO_CONTAINER_OF(svc, HarnessIoEvents, svc);
    HarnessIoEvent *ev = g_new0(HarnessIoEvent, 1);

    /* KVM refuses two registrations that would both match one write. */
    for (guint i = 0; i < io->events->len; i++) {
        HarnessIoEvent *o = g_ptr_array_index(io->events, i);
        if (o->mmio == mmio && o->addr == addr && o->len == len &&
            (!o->match || !match || o->datamatch == datamatch))
            fail_msg("doorbell at 0x%" PRIx64 " registered twice", addr);
    }
    ev->base.svc = svc;
    ev->mmio = mmio;
    ev->addr = addr;
    ev->len = len;
    ev->match = match;
    ev->datamatch = datamatch;
    ev->fn = fn;
    ev->opaque = opaque;
    g_ptr_array_add(io->events, ev);
    return &ev->base;
}

static void hio_remove(IoEvent *base)
{
    HarnessIoEvents *io = VIREO_CONTAINER_OF(base->svc, HarnessIoEvents, svc);

    assert_true(g_ptr_array_remove(io->events, base));
    g_free(base);
}

static const IoEventServiceOps harness_ioevent_ops = {
    .add = hio_add,
    .remove = hio_remove,
};

void harness_ioevents_init(HarnessIoEvents *io)
{
    io->svc.ops = &harness_ioevent_ops;
    io->events = g_ptr_array_new();
}

void harness_ioevents_cleanup(HarnessIoEvents *io)
{
    assert_int_equal(io->events->len, 0);
    g_ptr_array_unref(io->events);
}

unsigned harness_ioevents_count(HarnessIoEvents *io)
{
    return io->events->len;
}

gboolean harness_ioevents_ring(HarnessIoEvents *io, gboolean mmio, uint64_t addr, uint64_t value)
{
    for (guint i = 0; i < io->events->len; i++) {
        HarnessIoEvent *ev = g_ptr_array_index(io->events, i);
        if (ev->mmio == mmio && ev->addr == addr && (!ev->match || ev->datamatch == value)) {
            ev->fn(ev->opaque);
            return TRUE;
        }
    }
    return FALSE;
}

/* --- guest memory --- */

void harness_mem_init(HarnessMem *m, uint64_t gpa, size_t size)
{
    size_t page = sysconf(_SC_PAGESIZE);

    size = VIREO_ALIGN_UP(size, page);
    m->map_len = size + 2 * page;
    m->map = mmap(NULL, m->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                  -1, 0);
    assert_true(m->map != MAP_FAILED);
    assert_int_equal(mprotect(m->map + page, size, PROT_READ | PROT_WRITE), 0);
    memset(&m->mem, 0, sizeof(m->mem));
    m->mem.regions[0] = (GuestRegion){ .gpa = gpa, .size = size, .host = m->map + page };
    m->mem.nr_regions = 1;
    m->mem.ram_size = size;
}

void harness_mem_cleanup(HarnessMem *m)
{
    if (m->map)
        munmap(m->map, m->map_len);
    m->map = NULL;
}

void *harness_mem_ptr(HarnessMem *m, uint64_t gpa, size_t len)
{
    void *p = guest_memory_ptr(&m->mem, gpa, len);

    assert_non_null(p);
    return p;
}

/* --- a whole DeviceEnv --- */

#define HARNESS_RAM_SIZE (16 * 1024 * 1024)

HarnessEnv *harness_env_new(const char *id, int64_t start_ns)
{
    HarnessEnv *e = g_new0(HarnessEnv, 1);

    harness_irq_init(&e->irq);
    harness_machine_init(&e->machine);
    e->chr = harness_char_new();
    e->timers = harness_timers_new(start_ns);
    e->loop = harness_loop_new();
    harness_msi_init(&e->msi);
    harness_ioevents_init(&e->ioevents);
    harness_mem_init(&e->mem, 0, HARNESS_RAM_SIZE);
    e->env.id = id;
    e->env.irq = &e->irq.line;
    e->env.chr = harness_char_backend(e->chr);
    e->env.machine = &e->machine.mc;
    e->env.timers = harness_timers_service(e->timers);
    e->env.loop = harness_loop_event_loop(e->loop);
    e->env.mem = &e->mem.mem;
    e->env.msi = &e->msi.ctrl;
    e->env.ioevents = &e->ioevents.svc;
    return e;
}

void harness_env_free(HarnessEnv *e)
{
    if (!e)
        return;
    harness_char_free(e->chr);
    harness_timers_free(e->timers);
    harness_loop_free(e->loop);
    harness_msi_cleanup(&e->msi);
    harness_ioevents_cleanup(&e->ioevents);
    harness_mem_cleanup(&e->mem);
    g_free(e);
}

Device *harness_device_new(HarnessEnv *e, const char *type, const char *options)
{
    g_autoptr(GError) err = NULL;
    Device *dev = device_create(type, &e->env, options, &err);

    if (!dev)
        fail_msg("creating %s (%s): %s", type, options ? options : "no options", err->message);
    return dev;
}

char *harness_device_new_fail(HarnessEnv *e, const char *type, const char *options, int code)
{
    g_autoptr(GError) err = NULL;
    Device *dev = device_create(type, &e->env, options, &err);

    if (dev) {
        device_free(dev);
        fail_msg("creating %s with '%s' succeeded", type, options ? options : "");
    }
    assert_true(g_error_matches(err, VIREO_ERROR, code));
    return g_strdup(err->message);
}

uint64_t harness_read(Device *dev, uint64_t off, size_t len)
{
    uint8_t buf[8];

    g_assert(len <= sizeof(buf));
    device_read(dev, off, buf, len);
    return vireo_le_load(buf, len);
}

void harness_write(Device *dev, uint64_t off, size_t len, uint64_t val)
{
    uint8_t buf[8];

    g_assert(len <= sizeof(buf));
    vireo_le_store(buf, len, val);
    device_write(dev, off, buf, len);
}

/* --- state --- */

GBytes *harness_save(Device *dev)
{
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(GError) err = NULL;

    if (!device_save(dev, w, &err))
        fail_msg("saving %s: %s", dev->id, err->message);
    return state_writer_steal_bytes(w);
}

gboolean harness_load(Device *dev, GBytes *state, GError **error)
{
    gsize len;
    const void *data = g_bytes_get_data(state, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);

    if (!device_load(dev, r, error))
        return FALSE;
    /* One device, one section: nothing may be left over. */
    assert_true(state_reader_at_end(r));
    return TRUE;
}

Device *harness_clone(Device *src, HarnessEnv *dst, const char *type, const char *options)
{
    g_autoptr(GBytes) state = harness_save(src);
    g_autoptr(GError) err = NULL;
    Device *dev = harness_device_new(dst, type, options);

    if (!harness_load(dev, state, &err))
        fail_msg("loading %s: %s", dev->id, err->message);
    return dev;
}

/* Section layout: 'S' u8 namelen name u32 version u32 bodylen body. */
static size_t harness_state_name_len(GBytes *state)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(state, &len);

    g_assert(len >= 10 && p[0] == 'S');
    return p[1];
}

static GByteArray *harness_state_copy(GBytes *state)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(state, &len);
    GByteArray *a = g_byte_array_sized_new(len);

    g_byte_array_append(a, p, len);
    return a;
}

GBytes *harness_state_truncated(GBytes *state, size_t keep)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(state, &len);

    g_assert(keep <= len);
    return g_bytes_new(p, keep);
}

GBytes *harness_state_with_version(GBytes *state, uint32_t version)
{
    GByteArray *a = harness_state_copy(state);

    vireo_le_store(a->data + 2 + harness_state_name_len(state), 4, version);
    return g_byte_array_free_to_bytes(a);
}

GBytes *harness_state_renamed(GBytes *state)
{
    GByteArray *a = harness_state_copy(state);

    a->data[2] ^= 0x20;         /* flips the case of the first letter */
    return g_byte_array_free_to_bytes(a);
}

GBytes *harness_state_with_extra_field(GBytes *state)
{
    static const uint8_t field[] = { STATE_FIELD_U8, 5, 'e', 'x', 't', 'r', 'a', 0x2a };
    GByteArray *a = harness_state_copy(state);
    size_t len_at = 2 + harness_state_name_len(state) + 4;
    uint64_t body = vireo_le_load(a->data + len_at, 4);

    g_byte_array_append(a, field, sizeof(field));
    vireo_le_store(a->data + len_at, 4, body + sizeof(field));
    return g_byte_array_free_to_bytes(a);
}

GBytes *harness_state_poked(GBytes *state, const char *name, size_t at, uint8_t value)
{
    GByteArray *a = harness_state_copy(state);
    size_t pos = 2 + harness_state_name_len(state) + 8;

    while (pos + 2 <= a->len) {
        uint8_t type = a->data[pos];
        uint8_t nlen = a->data[pos + 1];
        size_t vpos = pos + 2 + nlen;
        size_t vlen;

        if (nlen == strlen(name) && memcmp(a->data + pos + 2, name, nlen) == 0) {
            assert_true(vpos + at < a->len);
            a->data[vpos + at] = value;
            return g_byte_array_free_to_bytes(a);
        }
        switch (type) {
        case STATE_FIELD_U8: vlen = 1; break;
        case STATE_FIELD_U16: vlen = 2; break;
        case STATE_FIELD_U32: vlen = 4; break;
        case STATE_FIELD_U64: vlen = 8; break;
        default: vlen = 4 + vireo_le_load(a->data + vpos, 4); break;
        }
        pos = vpos + vlen;
    }
    fail_msg("no field '%s' in the saved state", name);
    return NULL;
}

void harness_load_fails(Device *dev, GBytes *state)
{
    g_autoptr(GError) err = NULL;

    assert_false(harness_load(dev, state, &err));
    assert_non_null(err);
    if (!g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE))
        fail_msg("unexpected error: %s", err->message);
    /* device_load() names the device; the message must say what is wrong. */
    assert_non_null(strstr(err->message, dev->id));
    if (g_getenv("VIREO_TEST_VERBOSE"))
        g_printerr("expected load failure: %s\n", err->message);
}

void harness_check_bad_loads(Device *dev, GBytes *good)
{
    gsize len = g_bytes_get_size(good);
    size_t cuts[] = { 0, 1, 5, len / 2, len - 1 };

    for (size_t i = 0; i < G_N_ELEMENTS(cuts); i++) {
        g_autoptr(GBytes) b = harness_state_truncated(good, cuts[i]);
        g_autoptr(GError) err = NULL;

        /* An empty stream fails too, just with the reader's own words. */
        assert_false(harness_load(dev, b, &err));
        assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE));
    }
    for (uint32_t v = 0; v < 3; v++) {
        g_autoptr(GBytes) b = harness_state_with_version(good, v == 0 ? 0 : 1 + v);

        harness_load_fails(dev, b);
    }
    {
        g_autoptr(GBytes) renamed = harness_state_renamed(good);
        g_autoptr(GBytes) extra = harness_state_with_extra_field(good);

        harness_load_fails(dev, renamed);
        harness_load_fails(dev, extra);
    }
}

void harness_check_corrupt_state(Device *dev, const HarnessPoke *pokes, size_t n,
                                 gboolean real_time)
{
    g_autoptr(GBytes) good = harness_save(dev);
    g_autoptr(GBytes) after = NULL;

    harness_check_bad_loads(dev, good);
    for (size_t i = 0; i < n; i++) {
        g_autoptr(GBytes) bad = harness_state_poked(good, pokes[i].field, pokes[i].at,
                                                    pokes[i].value);

        harness_load_fails(dev, bad);
    }
    /* Nothing of the failed loads stuck. */
    after = harness_save(dev);
    if (!real_time)
        assert_true(g_bytes_equal(good, after));
}

/* --- hostile guest --- */

void harness_hostile(Device *dev, HarnessEnv *e, size_t window, guint32 seed, unsigned iterations,
                     HarnessHostileFn extra)
{
    static const size_t lens[] = { 1, 2, 4, 8 };
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);

    for (unsigned i = 0; i < iterations; i++) {
        unsigned op = g_rand_int_range(rand, 0, 1000);
        size_t len;
        uint64_t off;

        do {
            len = lens[g_rand_int_range(rand, 0, G_N_ELEMENTS(lens))];
        } while (len > window);
        off = g_rand_int_range(rand, 0, window - len + 1);

        if (op < 480) {
            uint64_t v = ((uint64_t)g_rand_int(rand) << 32) | g_rand_int(rand);

            /* Small values reach the interesting states (commands, indexes) more often. */
            if (g_rand_boolean(rand))
                v &= 0x1f1f1f1f1f1f1f1fULL;
            harness_write(dev, off, len, v);
        } else if (op < 940) {
            harness_read(dev, off, len);
        } else if (op < 960) {
            int64_t ns = g_rand_boolean(rand) ? g_rand_int_range(rand, 0, 2000000)
                                              : (int64_t)g_rand_int_range(rand, 0, 3000) * 1000000;

            harness_timers_advance(e->timers, ns);
        } else if (op < 970) {
            uint8_t in[24];
            size_t n = g_rand_int_range(rand, 0, sizeof(in));

            for (size_t k = 0; k < n; k++)
                in[k] = g_rand_int(rand);
            harness_char_input(e->chr, in, n);
        } else if (op < 980) {
            size_t limit = g_rand_boolean(rand) ? G_MAXSIZE
                                                : (size_t)g_rand_int_range(rand, 0, 40);

            harness_char_set_limit(e->chr, limit);
            harness_char_drain(e->chr);
            harness_char_pump(e->chr);
        } else if (op < 990) {
            if (extra)
                extra(dev, e, rand);
        } else if (op < 995) {
            device_reset(dev);
        } else {
            /* A device must load what it saved, in any state it can reach. */
            g_autoptr(GBytes) state = harness_save(dev);
            g_autoptr(GError) err = NULL;

            if (!harness_load(dev, state, &err))
                fail_msg("iteration %u: reloading own state: %s", i, err->message);
        }
    }
}

/* --- logging --- */

static unsigned harness_guest_warnings;

static void harness_log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                                gpointer data)
{
    if (g_str_has_prefix(message, "guest: ")) {
        harness_guest_warnings++;
        if (!g_getenv("VIREO_TEST_VERBOSE"))
            return;
    }
    g_log_default_handler(domain, level, message, data);
}

unsigned harness_take_guest_warnings(void)
{
    unsigned n = harness_guest_warnings;

    harness_guest_warnings = 0;
    return n;
}

void harness_init(void)
{
    g_log_set_handler("vireo-devices", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                      harness_log_handler, NULL);
}
