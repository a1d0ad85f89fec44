/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The event loop thread: one epoll fd for every fd vireo-vmm waits on
 * (control sockets, character backends, eventfds from vCPU threads, signals)
 * and the timers devices use. Everything that may block runs here, never on
 * a vCPU thread.
 *
 * All functions except loop_wakeup()/loop_call() and the timer service are
 * for the loop thread only (or before loop_run()).
 */
#ifndef VIREO_LOOP_H
#define VIREO_LOOP_H

#include <glib.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "vireo/event-loop.h"
#include "vireo/timer.h"

typedef struct Loop Loop;
typedef struct LoopSource LoopSource;
/* @events: EPOLLIN/EPOLLOUT/EPOLLHUP/EPOLLERR as reported. */
typedef void (*LoopFdFn)(int fd, uint32_t events, void *opaque);
typedef void (*LoopCallFn)(void *opaque);

Loop *loop_new(GError **error);
void loop_free(Loop *loop);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Loop, loop_free)

/* Watches @fd (not owned) for @events. */
LoopSource *loop_add_fd(Loop *loop, int fd, uint32_t events, LoopFdFn fn, void *opaque,
                        GError **error);
void loop_source_set_events(LoopSource *src, uint32_t events);
/* Safe from inside any callback, including the source's own. */
void loop_source_remove(LoopSource *src);

/*
 * Runs @fn on the loop thread soon. Safe from any thread; @fn runs once per
 * call, in order.
 */
void loop_call(Loop *loop, LoopCallFn fn, void *opaque);

/*
 * TRUE on the thread running loop_run(), and on any thread while the loop
 * is not running (set-up and teardown own it then).
 */
gboolean loop_owns_thread(const Loop *loop);

/* Runs until loop_quit(); returns the status given to it. */
int loop_run(Loop *loop);
void loop_quit(Loop *loop, int status);
gboolean loop_quitting(const Loop *loop);

/* The loop as devices see it (event-loop.h). */
EventLoop *loop_event_loop(Loop *loop);

/* Timers run on this loop (see timer.h); CLOCK_MONOTONIC nanoseconds. */
TimerService *loop_timer_service(Loop *loop);
int64_t loop_now_ns(void);

#endif
