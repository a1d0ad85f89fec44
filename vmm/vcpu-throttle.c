/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vCPU throttling for migration's auto-converge: a vCPU that has run for
 * a slice (10 ms) sleeps percent / (100 - percent) of the time it ran, so
 * it gets (100 - percent)% of the wall clock. A per-thread timer kicks the
 * thread out of KVM_RUN every slice, so even a guest that never exits is
 * held to it. Every function here runs on the vCPU's own thread.
 */
#include <errno.h>
#include <signal.h>
#include <time.h>

#include "vireo/machine-internal.h"
#include "vireo/vcpu.h"

/* glibc only names the field from 2.37 on (Debian 12 has 2.36). */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define SLICE_NS (10 * 1000 * 1000)
/* A vCPU never sleeps longer than this in one go (99% of a 10 ms slice is 990 ms). */
#define MAX_SLEEP_NS (1000 * 1000 * 1000)

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void set_timer(VcpuThrottle *t, int64_t interval_ns)
{
    struct itimerspec its = {
        .it_interval = { interval_ns / 1000000000, interval_ns % 1000000000 },
        .it_value = { interval_ns / 1000000000, interval_ns % 1000000000 },
    };

    timer_settime(t->timer, 0, &its, NULL);
}

/* FALSE if no timer could be made: the vCPU is then throttled at its exits only. */
static gboolean arm(Vcpu *vcpu)
{
    VcpuThrottle *t = &vcpu->throttle;

    if (!t->has_timer) {
        struct sigevent sev = {
            .sigev_notify = SIGEV_THREAD_ID,
            .sigev_signo = VCPU_KICK_SIGNAL,
        };

        sev.sigev_notify_thread_id = vcpu->tid;
        if (timer_create(CLOCK_MONOTONIC, &sev, &t->timer) < 0) {
            g_warning("vcpu%u: no throttle timer: %s", vcpu->index, g_strerror(errno));
            return FALSE;
        }
        t->has_timer = TRUE;
    }
    set_timer(t, SLICE_NS);
    t->armed = TRUE;
    t->ran_since = now_ns();
    return TRUE;
}

static void sleep_until(Machine *m, int64_t deadline)
{
    struct timespec ts = { deadline / 1000000000, deadline % 1000000000 };

    /* The slice timer and kicks interrupt the sleep; only a stop ends it early. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        if (machine_vcpus_should_stop(m))
            return;
    }
}

void vcpu_throttle(Vcpu *vcpu, int percent)
{
    VcpuThrottle *t = &vcpu->throttle;
    int64_t ran, now;

    if (percent <= 0) {
        if (t->armed) {
            set_timer(t, 0);
            t->armed = FALSE;
        }
        return;
    }
    if (!t->armed) {
        arm(vcpu);
        return;
    }
    now = now_ns();
    ran = now - t->ran_since;
    if (ran < SLICE_NS)
        return;
    percent = MIN(percent, 99);
    sleep_until(vcpu->machine, now + MIN(ran * percent / (100 - percent), MAX_SLEEP_NS));
    t->ran_since = now_ns();
}

void vcpu_throttle_cleanup(Vcpu *vcpu)
{
    VcpuThrottle *t = &vcpu->throttle;

    if (t->has_timer)
        timer_delete(t->timer);
    t->has_timer = FALSE;
    t->armed = FALSE;
}
