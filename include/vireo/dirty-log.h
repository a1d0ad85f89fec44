/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * KVM dirty page logging over guest RAM, for migration. Pages are
 * numbered by their offset in the RAM memfd (GuestRegion.file_offset),
 * the order the migration stream uses. Memory slot i is region i (as
 * guest_ram_register() sets them up). Any thread.
 */
#ifndef VIREO_DIRTY_LOG_H
#define VIREO_DIRTY_LOG_H

#include <glib.h>

#include "vireo/guest-memory.h"

/* Sets or clears KVM_MEM_LOG_DIRTY_PAGES on every slot. */
gboolean dirty_log_enable(int vm_fd, const GuestMemory *mem, gboolean on, GError **error);

/*
 * KVM_GET_DIRTY_LOG on every slot (which also re-arms logging): ORs the
 * pages written since the last call into @bitmap.
 */
gboolean dirty_log_sync(int vm_fd, const GuestMemory *mem, unsigned long *bitmap,
                        GError **error);

#endif
