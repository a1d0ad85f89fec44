/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Doorbells through KVM_IOEVENTFD (ioevent-kvm.h). */
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vireo/ioevent-kvm.h"
#include "vireo/kvm.h"
#include "vireo/util.h"

struct KvmIoEvents {
    IoEventService svc;
    int vm_fd;
    Loop *loop;
    GList *watched;             /* KvmIoEvent, loop thread only */
};

typedef struct KvmIoEvent {
    IoEvent base;
    KvmIoEvents *owner;
    struct kvm_ioeventfd args;  /* as registered, to deassign the same */
    LoopSource *src;
    IoEventFn fn;
    void *opaque;
} KvmIoEvent;

static void on_doorbell(int fd, uint32_t events, void *opaque)
{
    KvmIoEvent *ev = opaque;
    uint64_t count;

    /* Several writes may have been merged into one count: one call serves them. */
    if (read(fd, &count, sizeof(count)) == sizeof(count))
        ev->fn(ev->opaque);
}

/* On the loop thread. */
static void watch(void *opaque)
{
    KvmIoEvent *ev = opaque;
    g_autoptr(GError) err = NULL;

    ev->src = loop_add_fd(ev->owner->loop, ev->args.fd, EPOLLIN, on_doorbell, ev, &err);
    if (!ev->src)
        g_warning("doorbell at 0x%llx will not be heard: %s", ev->args.addr, err->message);
    else
        ev->owner->watched = g_list_prepend(ev->owner->watched, ev);
}

/* On the loop thread: after every add's watch, as loop calls run in order. */
static void unwatch(void *opaque)
{
    KvmIoEvent *ev = opaque;

    ev->owner->watched = g_list_remove(ev->owner->watched, ev);
    loop_source_remove(ev->src);
    close(ev->args.fd);
    g_free(ev);
}

static IoEvent *kvm_ioevent_add(IoEventService *svc, gboolean mmio, uint64_t addr,
                                unsigned len, gboolean match, uint64_t datamatch,
                                IoEventFn fn, void *opaque, GError **error)
{
    KvmIoEvents *k = VIREO_CONTAINER_OF(svc, KvmIoEvents, svc);
    g_autofree KvmIoEvent *ev = g_new0(KvmIoEvent, 1);
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    if (fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "eventfd for a doorbell: %s",
                    g_strerror(saved));
        return NULL;
    }
    ev->base.svc = svc;
    ev->owner = k;
    ev->fn = fn;
    ev->opaque = opaque;
    ev->args.addr = addr;
    ev->args.len = len;
    ev->args.fd = fd;
    ev->args.datamatch = datamatch;
    ev->args.flags = (mmio ? 0 : KVM_IOEVENTFD_FLAG_PIO) |
                     (match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0);
    if (KVM_IOCTL(k->vm_fd, KVM_IOEVENTFD, &ev->args, error) < 0) {
        close(fd);
        return NULL;
    }
    /* Guests move BARs from vCPU threads: the loop's side is done on the loop. */
    if (loop_owns_thread(k->loop))
        watch(ev);
    else
        loop_call(k->loop, watch, ev);
    return &g_steal_pointer(&ev)->base;
}

static void kvm_ioevent_remove(IoEvent *base)
{
    KvmIoEvent *ev = (KvmIoEvent *)base;

    /* No more doorbells from KVM as of now; the eventfd goes with the watch. */
    ev->args.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    kvm_ioctl_raw(ev->owner->vm_fd, KVM_IOEVENTFD, (unsigned long)&ev->args);
    if (loop_owns_thread(ev->owner->loop))
        unwatch(ev);
    else
        loop_call(ev->owner->loop, unwatch, ev);
}

static const IoEventServiceOps kvm_ioevent_ops = {
    .add = kvm_ioevent_add,
    .remove = kvm_ioevent_remove,
};

KvmIoEvents *kvm_ioevents_new(int vm_fd, Loop *loop)
{
    KvmIoEvents *k = g_new0(KvmIoEvents, 1);

    k->svc.ops = &kvm_ioevent_ops;
    k->vm_fd = vm_fd;
    k->loop = loop;
    return k;
}

void kvm_ioevents_free(KvmIoEvents *k)
{
    if (!k)
        return;
    g_list_free(k->watched);
    g_free(k);
}

void kvm_ioevents_ring_all(KvmIoEvents *k)
{
    static const uint64_t one = 1;

    for (GList *l = k->watched; l; l = l->next) {
        KvmIoEvent *ev = l->data;

        /* Cannot fail short of a counter overflow, which is a doorbell too. */
        if (write(ev->args.fd, &one, sizeof(one)) < 0)
            continue;
    }
}

IoEventService *kvm_ioevents_service(KvmIoEvents *k)
{
    return &k->svc;
}
