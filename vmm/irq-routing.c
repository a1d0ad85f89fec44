/* SPDX-License-Identifier: GPL-2.0-or-later */
/* KVM GSI routing: the PC's interrupt lines plus MSI routes with irqfds. */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vireo/irq-routing.h"
#include "vireo/kvm.h"
#include "vireo/util.h"

/* KVM's limit is KVM_MAX_IRQ_ROUTES (4096); more than any machine here needs. */
#define IRQ_ROUTING_MAX_ROUTES 1024

typedef struct KvmMsiRoute {
    MsiRoute base;
    IrqRouting *routing;
    uint32_t gsi;
    int fd;                     /* irqfd */
    gboolean programmed;        /* has a routing entry */
    uint64_t addr;
    uint32_t data;
} KvmMsiRoute;

struct IrqRouting {
    MsiController ctrl;
    int vm_fd;
    GMutex lock;                /* protects routes and next_gsi */
    GPtrArray *routes;          /* KvmMsiRoute */
    uint32_t next_gsi;
    GArray *free_gsis;          /* uint32_t, from freed routes */
};

static void add_irqchip(struct kvm_irq_routing *t, uint32_t gsi, uint32_t chip, uint32_t pin)
{
    struct kvm_irq_routing_entry *e = &t->entries[t->nr++];

    memset(e, 0, sizeof(*e));
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_IRQCHIP;
    e->u.irqchip.irqchip = chip;
    e->u.irqchip.pin = pin;
}

/* Writes the whole table to KVM. Caller holds r->lock. */
static gboolean commit_locked(IrqRouting *r, GError **error)
{
    g_autofree struct kvm_irq_routing *t =
        g_malloc0(sizeof(*t) + (64 + r->routes->len) * sizeof(struct kvm_irq_routing_entry));

    for (uint32_t i = 0; i < 8; i++) {
        if (i != 2)             /* the cascade */
            add_irqchip(t, i, KVM_IRQCHIP_PIC_MASTER, i);
    }
    for (uint32_t i = 8; i < 16; i++)
        add_irqchip(t, i, KVM_IRQCHIP_PIC_SLAVE, i - 8);
    for (uint32_t i = 0; i < IRQ_ROUTING_PC_GSIS; i++) {
        if (i == 0)
            add_irqchip(t, i, KVM_IRQCHIP_IOAPIC, 2);
        else if (i != 2)
            add_irqchip(t, i, KVM_IRQCHIP_IOAPIC, i);
    }
    for (guint i = 0; i < r->routes->len; i++) {
        KvmMsiRoute *m = g_ptr_array_index(r->routes, i);
        struct kvm_irq_routing_entry *e;

        if (!m->programmed)
            continue;
        e = &t->entries[t->nr++];
        memset(e, 0, sizeof(*e));
        e->gsi = m->gsi;
        e->type = KVM_IRQ_ROUTING_MSI;
        e->u.msi.address_lo = (uint32_t)m->addr;
        e->u.msi.address_hi = m->addr >> 32;
        e->u.msi.data = m->data;
    }
    return KVM_IOCTL(r->vm_fd, KVM_SET_GSI_ROUTING, t, error) >= 0;
}

static MsiRoute *route_new(MsiController *ctrl, GError **error)
{
    IrqRouting *r = VIREO_CONTAINER_OF(ctrl, IrqRouting, ctrl);
    g_autofree KvmMsiRoute *m = g_new0(KvmMsiRoute, 1);
    struct kvm_irqfd irqfd = { 0 };

    m->base.ctrl = ctrl;
    m->routing = r;
    m->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "eventfd for an MSI route: %s",
                    g_strerror(saved));
        return NULL;
    }
    g_mutex_lock(&r->lock);
    if (r->free_gsis->len) {
        m->gsi = g_array_index(r->free_gsis, uint32_t, r->free_gsis->len - 1);
        g_array_set_size(r->free_gsis, r->free_gsis->len - 1);
    } else if (r->next_gsi < IRQ_ROUTING_PC_GSIS + IRQ_ROUTING_MAX_ROUTES) {
        m->gsi = r->next_gsi++;
    } else {
        g_mutex_unlock(&r->lock);
        close(m->fd);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "out of MSI routes (%d)",
                    IRQ_ROUTING_MAX_ROUTES);
        return NULL;
    }
    g_mutex_unlock(&r->lock);
    /* An irqfd on a GSI without a route is accepted; it routes once programmed. */
    irqfd.fd = m->fd;
    irqfd.gsi = m->gsi;
    if (KVM_IOCTL(r->vm_fd, KVM_IRQFD, &irqfd, error) < 0) {
        close(m->fd);
        return NULL;
    }
    g_mutex_lock(&r->lock);
    g_ptr_array_add(r->routes, m);
    g_mutex_unlock(&r->lock);
    return &g_steal_pointer(&m)->base;
}

static void route_set(MsiRoute *route, uint64_t addr, uint32_t data)
{
    KvmMsiRoute *m = (KvmMsiRoute *)route;
    IrqRouting *r = m->routing;
    g_autoptr(GError) err = NULL;

    g_mutex_lock(&r->lock);
    if (!m->programmed || m->addr != addr || m->data != data) {
        m->addr = addr;
        m->data = data;
        m->programmed = TRUE;
        /* The guest's message is just stored: a bad one is the guest's problem. */
        if (!commit_locked(r, &err))
            g_warning("MSI route for GSI %u: %s", m->gsi, err->message);
    }
    g_mutex_unlock(&r->lock);
}

static void route_fire(MsiRoute *route)
{
    KvmMsiRoute *m = (KvmMsiRoute *)route;
    uint64_t one = 1;
    ssize_t n;

    do {
        n = write(m->fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
}

static void route_free(MsiRoute *route)
{
    KvmMsiRoute *m = (KvmMsiRoute *)route;
    IrqRouting *r = m->routing;
    struct kvm_irqfd irqfd = { .fd = m->fd, .gsi = m->gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };

    kvm_ioctl_raw(r->vm_fd, KVM_IRQFD, (unsigned long)&irqfd);
    close(m->fd);
    g_mutex_lock(&r->lock);
    g_ptr_array_remove(r->routes, m);
    g_array_append_val(r->free_gsis, m->gsi);
    g_mutex_unlock(&r->lock);
    g_free(m);
}

static const MsiControllerOps kvm_msi_ops = {
    .route_new = route_new,
    .route_set = route_set,
    .route_fire = route_fire,
    .route_free = route_free,
};

IrqRouting *irq_routing_new(int vm_fd, GError **error)
{
    g_autoptr(IrqRouting) r = g_new0(IrqRouting, 1);
    gboolean ok;

    r->ctrl.ops = &kvm_msi_ops;
    r->vm_fd = vm_fd;
    g_mutex_init(&r->lock);
    r->routes = g_ptr_array_new();
    r->free_gsis = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    r->next_gsi = IRQ_ROUTING_PC_GSIS;
    g_mutex_lock(&r->lock);
    ok = commit_locked(r, error);
    g_mutex_unlock(&r->lock);
    return ok ? g_steal_pointer(&r) : NULL;
}

void irq_routing_free(IrqRouting *r)
{
    if (!r)
        return;
    /* Devices free their routes first. */
    g_warn_if_fail(r->routes->len == 0);
    g_ptr_array_unref(r->routes);
    g_array_unref(r->free_gsis);
    g_mutex_clear(&r->lock);
    g_free(r);
}

MsiController *irq_routing_msi_controller(IrqRouting *r)
{
    return &r->ctrl;
}
