/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * An address space (port I/O or MMIO) mapping ranges to devices.
 *
 * bus_read/bus_write resolve an address once, check that the access is 1,
 * 2, 4 or 8 bytes and lies wholly inside one region, and call the device
 * with its lock held and an offset into its own window. An access that
 * hits nothing or straddles a region's end reads as all ones and writes
 * are dropped, as on a PC; the first access to each unassigned @granule
 * (up to a bound) is logged, and it is never fatal.
 * Lookups may run on any thread; regions may be added while vCPUs run.
 */
#ifndef VIREO_BUS_H
#define VIREO_BUS_H

#include <glib.h>
#include <stdint.h>

#include "vireo/device.h"

typedef struct Bus Bus;

Bus *bus_new(const char *name, uint64_t granule);
void bus_free(Bus *bus);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Bus, bus_free)

/*
 * Maps [base, base + len) to @dev; an access at @base reaches the device at
 * offset @dev_offset. Overlapping regions are refused.
 */
gboolean bus_add(Bus *bus, uint64_t base, uint64_t len, Device *dev, uint64_t dev_offset,
                 GError **error);
/* Removes @dev's region starting at @base; FALSE if there is none. */
gboolean bus_remove(Bus *bus, uint64_t base, Device *dev);

/* TRUE when a device took the access. */
gboolean bus_read(Bus *bus, uint64_t addr, void *buf, size_t len);
gboolean bus_write(Bus *bus, uint64_t addr, const void *buf, size_t len);

#endif
