/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Port I/O and MMIO dispatch to devices. */
#include <inttypes.h>
#include <string.h>

#include "vireo/bus.h"
#include "vireo/util.h"

typedef struct BusRegion {
    uint64_t base;
    uint64_t len;
    Device *dev;
    uint64_t dev_offset;
} BusRegion;

struct Bus {
    char *name;
    GRWLock lock;               /* protects regions */
    GArray *regions;            /* BusRegion, sorted by base, disjoint */
};

Bus *bus_new(const char *name)
{
    Bus *bus = g_new0(Bus, 1);

    bus->name = g_strdup(name);
    g_rw_lock_init(&bus->lock);
    bus->regions = g_array_new(FALSE, FALSE, sizeof(BusRegion));
    return bus;
}

void bus_free(Bus *bus)
{
    if (!bus)
        return;
    g_array_unref(bus->regions);
    g_rw_lock_clear(&bus->lock);
    g_free(bus->name);
    g_free(bus);
}

/* Index of the first region whose end lies above @addr. Caller holds the lock. */
static guint lower_bound(const Bus *bus, uint64_t addr)
{
    guint lo = 0, hi = bus->regions->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const BusRegion *r = &g_array_index(bus->regions, BusRegion, mid);
        if (r->base + r->len <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

gboolean bus_add(Bus *bus, uint64_t base, uint64_t len, Device *dev, uint64_t dev_offset,
                 GError **error)
{
    BusRegion region = { .base = base, .len = len, .dev = dev, .dev_offset = dev_offset };
    guint i;

    if (len == 0 || base + len < base) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s bus: bad region 0x%" PRIx64 "+0x%" PRIx64 " for '%s'",
                    bus->name, base, len, dev->id);
        return FALSE;
    }
    g_rw_lock_writer_lock(&bus->lock);
    i = lower_bound(bus, base);
    if (i < bus->regions->len) {
        const BusRegion *next = &g_array_index(bus->regions, BusRegion, i);
        if (next->base < base + len) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "%s bus: region 0x%" PRIx64 "+0x%" PRIx64 " for '%s' overlaps '%s'",
                        bus->name, base, len, dev->id, next->dev->id);
            g_rw_lock_writer_unlock(&bus->lock);
            return FALSE;
        }
    }
    g_array_insert_val(bus->regions, i, region);
    g_rw_lock_writer_unlock(&bus->lock);
    return TRUE;
}

gboolean bus_remove(Bus *bus, uint64_t base)
{
    gboolean found = FALSE;
    guint i;

    g_rw_lock_writer_lock(&bus->lock);
    i = lower_bound(bus, base);
    if (i < bus->regions->len && g_array_index(bus->regions, BusRegion, i).base == base) {
        g_array_remove_index(bus->regions, i);
        found = TRUE;
    }
    g_rw_lock_writer_unlock(&bus->lock);
    return found;
}

/*
 * Finds the region for an access and copies it out, so the device call
 * happens without the bus lock.
 */
static gboolean lookup(Bus *bus, uint64_t addr, size_t len, BusRegion *out)
{
    gboolean found = FALSE;
    guint i;

    g_rw_lock_reader_lock(&bus->lock);
    i = lower_bound(bus, addr);
    if (i < bus->regions->len) {
        const BusRegion *r = &g_array_index(bus->regions, BusRegion, i);
        if (addr >= r->base && len <= r->len - (addr - r->base)) {
            *out = *r;
            found = TRUE;
        }
    }
    g_rw_lock_reader_unlock(&bus->lock);
    return found;
}

static gboolean valid_len(size_t len)
{
    return len == 1 || len == 2 || len == 4 || len == 8;
}

gboolean bus_read(Bus *bus, uint64_t addr, void *buf, size_t len)
{
    BusRegion r;

    if (valid_len(len) && lookup(bus, addr, len, &r)) {
        device_read(r.dev, addr - r.base + r.dev_offset, buf, len);
        return TRUE;
    }
    memset(buf, 0xff, len);
    vireo_guest_warn("%s read of %zu bytes at 0x%" PRIx64 " hits no device", bus->name,
                     len, addr);
    return FALSE;
}

gboolean bus_write(Bus *bus, uint64_t addr, const void *buf, size_t len)
{
    BusRegion r;

    if (valid_len(len) && lookup(bus, addr, len, &r)) {
        device_write(r.dev, addr - r.base + r.dev_offset, buf, len);
        return TRUE;
    }
    vireo_guest_warn("%s write of %zu bytes (0x%" PRIx64 ") at 0x%" PRIx64
                     " hits no device", bus->name, len,
                     valid_len(len) ? vireo_le_load(buf, len) : 0, addr);
    return FALSE;
}
