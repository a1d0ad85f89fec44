/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Message-signalled interrupts as a device sees them. A route is one MSI
 * vector's path to the guest: the device programs it with the address and
 * data the guest wrote into its MSI-X table, and fires it to interrupt.
 *
 * The VMM backs a route with a KVM GSI route and an irqfd, so firing is one
 * eventfd write from any thread and KVM injects the interrupt; tests back
 * it with a recorder.
 */
#ifndef VIREO_MSI_H
#define VIREO_MSI_H

#include <glib.h>
#include <stdint.h>

typedef struct MsiController MsiController;
typedef struct MsiRoute MsiRoute;

typedef struct MsiControllerOps {
    MsiRoute *(*route_new)(MsiController *ctrl, GError **error);
    /*
     * Points the route at (@addr, @data). Called with the device lock held
     * when the guest writes an MSI-X table entry; must not block for long.
     */
    void (*route_set)(MsiRoute *route, uint64_t addr, uint32_t data);
    /* Interrupts the guest. Any thread; never blocks. */
    void (*route_fire)(MsiRoute *route);
    void (*route_free)(MsiRoute *route);
} MsiControllerOps;

struct MsiController {
    const MsiControllerOps *ops;
};

struct MsiRoute {
    MsiController *ctrl;
};

static inline MsiRoute *msi_route_new(MsiController *ctrl, GError **error)
{
    return ctrl->ops->route_new(ctrl, error);
}

static inline void msi_route_set(MsiRoute *route, uint64_t addr, uint32_t data)
{
    route->ctrl->ops->route_set(route, addr, data);
}

static inline void msi_route_fire(MsiRoute *route)
{
    route->ctrl->ops->route_fire(route);
}

static inline void msi_route_free(MsiRoute *route)
{
    if (route)
        route->ctrl->ops->route_free(route);
}

#endif
