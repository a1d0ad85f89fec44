/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One-shot timers for devices (RTC periodic/alarm interrupts and the like).
 * The VMM implements them on its event loop; tests implement them with a
 * fake clock they advance by hand.
 *
 * Callbacks run on the event loop thread with no lock held: a callback takes
 * its device's lock itself. Deadlines are on the monotonic clock in
 * nanoseconds, as returned by timer_service_now().
 */
#ifndef VIREO_TIMER_H
#define VIREO_TIMER_H

#include <glib.h>
#include <stdint.h>

typedef struct TimerService TimerService;
typedef struct Timer Timer;
typedef void (*TimerFn)(void *opaque);

typedef struct TimerServiceOps {
    int64_t (*now)(TimerService *ts);
    Timer *(*timer_new)(TimerService *ts, TimerFn fn, void *opaque);
    /* (Re)arm; an armed timer is moved. Safe from any thread. */
    void (*timer_arm)(Timer *t, int64_t deadline_ns);
    void (*timer_cancel)(Timer *t);
    /* Cancels and frees; after it returns the callback is not running. */
    void (*timer_free)(Timer *t);
} TimerServiceOps;

struct TimerService {
    const TimerServiceOps *ops;
};

struct Timer {
    TimerService *service;
};

static inline int64_t timer_service_now(TimerService *ts)
{
    return ts->ops->now(ts);
}

static inline Timer *timer_new(TimerService *ts, TimerFn fn, void *opaque)
{
    return ts->ops->timer_new(ts, fn, opaque);
}

static inline void timer_arm(Timer *t, int64_t deadline_ns)
{
    t->service->ops->timer_arm(t, deadline_ns);
}

static inline void timer_cancel(Timer *t)
{
    t->service->ops->timer_cancel(t);
}

static inline void timer_free(Timer *t)
{
    if (t)
        t->service->ops->timer_free(t);
}

#endif
