/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Doorbells: a guest write to an address a device registered reaches the
 * device on the event loop thread without a userspace exit. The VMM backs
 * this with KVM_IOEVENTFD (the vCPU only signals an eventfd), tests with a
 * direct call.
 *
 * A device must also handle a write to the same address through its
 * register ops (before registration, or where ioeventfds are missing), by
 * deferring the same work to the loop.
 */
#ifndef VIREO_IOEVENT_H
#define VIREO_IOEVENT_H

#include <glib.h>
#include <stdint.h>

typedef struct IoEventService IoEventService;
typedef struct IoEvent IoEvent;
typedef void (*IoEventFn)(void *opaque);

typedef struct IoEventServiceOps {
    /*
     * Calls @fn on the loop thread after each write of @len bytes to @addr
     * (MMIO when @mmio, else port I/O). With @match, only writes of
     * @datamatch count (virtio queue numbers on a shared notify address).
     */
    IoEvent *(*add)(IoEventService *svc, gboolean mmio, uint64_t addr, unsigned len,
                    gboolean match, uint64_t datamatch, IoEventFn fn, void *opaque,
                    GError **error);
    void (*remove)(IoEvent *ev);
} IoEventServiceOps;

struct IoEventService {
    const IoEventServiceOps *ops;
};

struct IoEvent {
    IoEventService *svc;
};

static inline IoEvent *ioevent_add(IoEventService *svc, gboolean mmio, uint64_t addr,
                                   unsigned len, gboolean match, uint64_t datamatch,
                                   IoEventFn fn, void *opaque, GError **error)
{
    return svc->ops->add(svc, mmio, addr, len, match, datamatch, fn, opaque, error);
}

static inline void ioevent_remove(IoEvent *ev)
{
    if (ev)
        ev->svc->ops->remove(ev);
}

#endif
