/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * IoEventService (ioevent.h) on KVM_IOEVENTFD: KVM signals an eventfd
 * instead of exiting to userspace, and the event loop runs the device's
 * handler.
 */
#ifndef VIREO_IOEVENT_KVM_H
#define VIREO_IOEVENT_KVM_H

#include <glib.h>

#include "vireo/ioevent.h"
#include "vireo/loop.h"

typedef struct KvmIoEvents KvmIoEvents;

KvmIoEvents *kvm_ioevents_new(int vm_fd, Loop *loop);
void kvm_ioevents_free(KvmIoEvents *k);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KvmIoEvents, kvm_ioevents_free)
IoEventService *kvm_ioevents_service(KvmIoEvents *k);
/*
 * Rings every doorbell once, as if the guest had written each: devices
 * that stopped while the VM was quiesced catch up (spurious kicks are
 * harmless). Loop thread.
 */
void kvm_ioevents_ring_all(KvmIoEvents *k);

#endif
