/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The epoll event loop, cross-thread calls and device timers. */
#include <errno.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "vireo/loop.h"
#include "vireo/util.h"

#define LOOP_MAX_EVENTS 32

struct LoopSource {
    Loop *loop;
    int fd;
    uint32_t events;
    LoopFdFn fn;
    void *opaque;
    gboolean removed;
};

typedef struct LoopTimer {
    Timer base;
    Loop *loop;
    TimerFn fn;
    void *opaque;
    int64_t deadline;           /* -1 when not armed */
} LoopTimer;

typedef struct LoopCall {
    LoopCallFn fn;
    void *opaque;
} LoopCall;

struct Loop {
    int epfd;
    int call_fd;                /* eventfd: loop_call() queued something */
    int timer_fd;               /* timerfd armed for the earliest timer */
    LoopSource *call_src;
    LoopSource *timer_src;
    GPtrArray *dead;            /* sources removed during dispatch */
    gboolean quit;
    int status;

    GMutex lock;                /* protects calls and timers */
    GArray *calls;              /* LoopCall */
    GPtrArray *timers;          /* LoopTimer, armed or not */
    TimerService timer_service;
    EventLoop event_loop;
    GThread *thread;            /* running loop_run(), or NULL */
};

int64_t loop_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

LoopSource *loop_add_fd(Loop *loop, int fd, uint32_t events, LoopFdFn fn, void *opaque,
                        GError **error)
{
    LoopSource *src = g_new0(LoopSource, 1);
    struct epoll_event ev = { .events = events, .data.ptr = src };

    src->loop = loop;
    src->fd = fd;
    src->events = events;
    src->fn = fn;
    src->opaque = opaque;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot watch fd %d: %s", fd,
                    g_strerror(saved));
        g_free(src);
        return NULL;
    }
    return src;
}

void loop_source_set_events(LoopSource *src, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = src };

    if (src->removed || src->events == events)
        return;
    src->events = events;
    if (epoll_ctl(src->loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0)
        g_warning("epoll_ctl(MOD) on fd %d: %s", src->fd, g_strerror(errno));
}

void loop_source_remove(LoopSource *src)
{
    if (!src || src->removed)
        return;
    src->removed = TRUE;
    epoll_ctl(src->loop->epfd, EPOLL_CTL_DEL, src->fd, NULL);
    /* Freed after the current batch: a pending event may still point at it. */
    g_ptr_array_add(src->loop->dead, src);
}

static void wake(Loop *loop)
{
    uint64_t one = 1;
    ssize_t n;

    do {
        n = write(loop->call_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
}

void loop_call(Loop *loop, LoopCallFn fn, void *opaque)
{
    LoopCall call = { .fn = fn, .opaque = opaque };

    g_mutex_lock(&loop->lock);
    g_array_append_val(loop->calls, call);
    g_mutex_unlock(&loop->lock);
    wake(loop);
}

static void run_calls(int fd, uint32_t events, void *opaque)
{
    Loop *loop = opaque;
    uint64_t count;
    g_autoptr(GArray) calls = NULL;

    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        g_warning("loop eventfd read: %s", g_strerror(errno));
    g_mutex_lock(&loop->lock);
    calls = g_steal_pointer(&loop->calls);
    loop->calls = g_array_new(FALSE, FALSE, sizeof(LoopCall));
    g_mutex_unlock(&loop->lock);
    for (guint i = 0; i < calls->len; i++) {
        LoopCall *c = &g_array_index(calls, LoopCall, i);
        c->fn(c->opaque);
    }
}

/* Caller holds loop->lock. */
static void rearm_timerfd_locked(Loop *loop)
{
    int64_t earliest = -1;
    struct itimerspec its = { 0 };

    for (guint i = 0; i < loop->timers->len; i++) {
        LoopTimer *t = g_ptr_array_index(loop->timers, i);
        if (t->deadline >= 0 && (earliest < 0 || t->deadline < earliest))
            earliest = t->deadline;
    }
    if (earliest >= 0) {
        /* 0 would disarm; a deadline in the past fires at once. */
        if (earliest == 0)
            earliest = 1;
        its.it_value.tv_sec = earliest / 1000000000;
        its.it_value.tv_nsec = earliest % 1000000000;
    }
    timerfd_settime(loop->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void run_timers(int fd, uint32_t events, void *opaque)
{
    Loop *loop = opaque;
    uint64_t expirations;
    int64_t now = loop_now_ns();
    g_autoptr(GPtrArray) due = g_ptr_array_new();

    if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        g_warning("timerfd read: %s", g_strerror(errno));
    g_mutex_lock(&loop->lock);
    for (guint i = 0; i < loop->timers->len; i++) {
        LoopTimer *t = g_ptr_array_index(loop->timers, i);
        if (t->deadline >= 0 && t->deadline <= now) {
            t->deadline = -1;
            g_ptr_array_add(due, t);
        }
    }
    rearm_timerfd_locked(loop);
    g_mutex_unlock(&loop->lock);
    /*
     * Timers are freed only on this thread, so the ones collected stay
     * valid until their callbacks have run (a callback may free another
     * due timer: check it is still registered).
     */
    for (guint i = 0; i < due->len; i++) {
        LoopTimer *t = g_ptr_array_index(due, i);
        gboolean alive;

        g_mutex_lock(&loop->lock);
        alive = g_ptr_array_find(loop->timers, t, NULL);
        g_mutex_unlock(&loop->lock);
        if (alive)
            t->fn(t->opaque);
    }
}

static int64_t timer_now(TimerService *ts)
{
    return loop_now_ns();
}

static Timer *loop_timer_new(TimerService *ts, TimerFn fn, void *opaque)
{
    Loop *loop = VIREO_CONTAINER_OF(ts, Loop, timer_service);
    LoopTimer *t = g_new0(LoopTimer, 1);

    t->base.service = ts;
    t->loop = loop;
    t->fn = fn;
    t->opaque = opaque;
    t->deadline = -1;
    g_mutex_lock(&loop->lock);
    g_ptr_array_add(loop->timers, t);
    g_mutex_unlock(&loop->lock);
    return &t->base;
}

static void loop_timer_arm(Timer *timer, int64_t deadline_ns)
{
    LoopTimer *t = (LoopTimer *)timer;

    g_mutex_lock(&t->loop->lock);
    t->deadline = deadline_ns < 0 ? 0 : deadline_ns;
    rearm_timerfd_locked(t->loop);
    g_mutex_unlock(&t->loop->lock);
}

static void loop_timer_cancel(Timer *timer)
{
    LoopTimer *t = (LoopTimer *)timer;

    g_mutex_lock(&t->loop->lock);
    t->deadline = -1;
    rearm_timerfd_locked(t->loop);
    g_mutex_unlock(&t->loop->lock);
}

static void loop_timer_free(Timer *timer)
{
    LoopTimer *t = (LoopTimer *)timer;

    g_mutex_lock(&t->loop->lock);
    g_ptr_array_remove(t->loop->timers, t);
    rearm_timerfd_locked(t->loop);
    g_mutex_unlock(&t->loop->lock);
    g_free(t);
}

static const TimerServiceOps loop_timer_ops = {
    .now = timer_now,
    .timer_new = loop_timer_new,
    .timer_arm = loop_timer_arm,
    .timer_cancel = loop_timer_cancel,
    .timer_free = loop_timer_free,
};

TimerService *loop_timer_service(Loop *loop)
{
    return &loop->timer_service;
}

static EventSource *event_add_fd(EventLoop *el, int fd, uint32_t events, EventFdFn fn,
                                 void *opaque, GError **error)
{
    Loop *loop = VIREO_CONTAINER_OF(el, Loop, event_loop);
    return (EventSource *)loop_add_fd(loop, fd, events, fn, opaque, error);
}

static void event_set_events(EventSource *src, uint32_t events)
{
    loop_source_set_events((LoopSource *)src, events);
}

static void event_remove(EventSource *src)
{
    loop_source_remove((LoopSource *)src);
}

static void event_call(EventLoop *el, EventCallFn fn, void *opaque)
{
    loop_call(VIREO_CONTAINER_OF(el, Loop, event_loop), fn, opaque);
}

static const EventLoopOps loop_event_ops = {
    .add_fd = event_add_fd,
    .set_events = event_set_events,
    .remove = event_remove,
    .call = event_call,
};

EventLoop *loop_event_loop(Loop *loop)
{
    return &loop->event_loop;
}

Loop *loop_new(GError **error)
{
    g_autoptr(Loop) loop = g_new0(Loop, 1);

    loop->epfd = loop->call_fd = loop->timer_fd = -1;
    g_mutex_init(&loop->lock);
    loop->calls = g_array_new(FALSE, FALSE, sizeof(LoopCall));
    loop->timers = g_ptr_array_new();
    loop->dead = g_ptr_array_new_with_free_func(g_free);
    loop->timer_service.ops = &loop_timer_ops;
    loop->event_loop.ops = &loop_event_ops;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    loop->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (loop->epfd < 0 || loop->call_fd < 0 || loop->timer_fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot create the event loop: %s",
                    g_strerror(saved));
        return NULL;
    }
    loop->call_src = loop_add_fd(loop, loop->call_fd, EPOLLIN, run_calls, loop, error);
    if (!loop->call_src)
        return NULL;
    loop->timer_src = loop_add_fd(loop, loop->timer_fd, EPOLLIN, run_timers, loop, error);
    if (!loop->timer_src)
        return NULL;
    return g_steal_pointer(&loop);
}

void loop_free(Loop *loop)
{
    if (!loop)
        return;
    loop_source_remove(loop->call_src);
    loop_source_remove(loop->timer_src);
    if (loop->timers->len)
        g_warning("event loop freed with %u timers left", loop->timers->len);
    g_ptr_array_free(loop->timers, TRUE);
    g_array_unref(loop->calls);
    g_ptr_array_unref(loop->dead);
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->call_fd >= 0)
        close(loop->call_fd);
    if (loop->timer_fd >= 0)
        close(loop->timer_fd);
    g_mutex_clear(&loop->lock);
    g_free(loop);
}

gboolean loop_owns_thread(const Loop *loop)
{
    GThread *t = g_atomic_pointer_get((GThread **)&loop->thread);
    return !t || t == g_thread_self();
}

int loop_run(Loop *loop)
{
    struct epoll_event events[LOOP_MAX_EVENTS];

    g_atomic_pointer_set(&loop->thread, g_thread_self());
    while (!loop->quit) {
        int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            g_warning("epoll_wait: %s", g_strerror(errno));
            loop_quit(loop, 1);
            break;
        }
        for (int i = 0; i < n && !loop->quit; i++) {
            LoopSource *src = events[i].data.ptr;
            if (!src->removed)
                src->fn(src->fd, events[i].events, src->opaque);
        }
        g_ptr_array_set_size(loop->dead, 0);
    }
    g_atomic_pointer_set(&loop->thread, NULL);
    return loop->status;
}

void loop_quit(Loop *loop, int status)
{
    if (loop->quit)
        return;
    loop->quit = TRUE;
    loop->status = status;
}

gboolean loop_quitting(const Loop *loop)
{
    return loop->quit;
}
