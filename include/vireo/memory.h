/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest RAM: one memfd, mapped once, split into the regions of the memory
 * map (low RAM below the PCI hole, the rest from 4 GiB). A memfd keeps RAM
 * out of our anonymous memory and lets migration and save/restore share it.
 */
#ifndef VIREO_MEMORY_H
#define VIREO_MEMORY_H

#include <glib.h>

#include "vireo/guest-memory.h"

typedef struct GuestRam {
    GuestMemory mem;
    int memfd;
    uint8_t *base;              /* mapping of the whole memfd */
    uint64_t size;
} GuestRam;

GuestRam *guest_ram_new(uint64_t size, GError **error);
void guest_ram_free(GuestRam *ram);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GuestRam, guest_ram_free)

/* Registers every region with KVM as slots 0..n-1. */
gboolean guest_ram_register(GuestRam *ram, int vm_fd, GError **error);

#endif
