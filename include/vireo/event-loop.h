/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The event loop as a device sees it: watch fds (a tap device, a block
 * engine's completion fd, sockets), run work on the loop thread. The VMM
 * implements it with its epoll loop (vmm/loop.c); device tests with a loop
 * they step by hand.
 *
 * Callbacks run on the loop thread with no lock held; a callback takes its
 * device's lock itself. add_fd/set_events/remove are for the loop thread (or
 * before the loop runs); call() is safe from any thread.
 */
#ifndef VIREO_EVENT_LOOP_H
#define VIREO_EVENT_LOOP_H

#include <glib.h>
#include <stdint.h>

typedef struct EventLoop EventLoop;
typedef struct EventSource EventSource;
/* @events: EPOLLIN/EPOLLOUT/EPOLLHUP/EPOLLERR as reported. */
typedef void (*EventFdFn)(int fd, uint32_t events, void *opaque);
typedef void (*EventCallFn)(void *opaque);

typedef struct EventLoopOps {
    EventSource *(*add_fd)(EventLoop *loop, int fd, uint32_t events, EventFdFn fn, void *opaque,
                           GError **error);
    void (*set_events)(EventSource *src, uint32_t events);
    /* Safe from inside any callback, including the source's own. */
    void (*remove)(EventSource *src);
    void (*call)(EventLoop *loop, EventCallFn fn, void *opaque);
} EventLoopOps;

struct EventLoop {
    const EventLoopOps *ops;
};

static inline EventSource *event_loop_add_fd(EventLoop *loop, int fd, uint32_t events,
                                             EventFdFn fn, void *opaque, GError **error)
{
    return loop->ops->add_fd(loop, fd, events, fn, opaque, error);
}

static inline void event_source_set_events(EventLoop *loop, EventSource *src, uint32_t events)
{
    loop->ops->set_events(src, events);
}

static inline void event_source_remove(EventLoop *loop, EventSource *src)
{
    if (src)
        loop->ops->remove(src);
}

static inline void event_loop_call(EventLoop *loop, EventCallFn fn, void *opaque)
{
    loop->ops->call(loop, fn, opaque);
}

#endif
