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

/* Distinct addresses whose unassigned accesses are reported, then silence. */
#define BUS_UNASSIGNED_LOG_MAX 32

struct Bus {
    char *name;
    GRWLock lock;               /* protects regions */
    GArray *regions;            /* BusRegion, sorted by base, disjoint */
    uint64_t granule;           /* unassigned accesses are reported per granule */
    GMutex log_lock;            /* protects the two fields below */
    uint64_t logged[BUS_UNASSIGNED_LOG_MAX];
    unsigned nr_logged;
};

Bus *bus_new(const char *name, uint64_t granule)
{
    Bus *bus = g_new0(Bus, 1);

    bus->name = g_strdup(name);
    bus->granule = granule ? granule : 1;
    g_mutex_init(&bus->log_lock);
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
    g_mutex_clear(&bus->log_lock);
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

gboolean bus_remove(Bus *bus, uint64_t base, Device *dev)
{
    gboolean found = FALSE;
    guint i;

    g_rw_lock_writer_lock(&bus->lock);
    i = lower_bound(bus, base);
    if (i < bus->regions->len && g_array_index(bus->regions, BusRegion, i).base == base &&
        g_array_index(bus->regions, BusRegion, i).dev == dev) {
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

/*
 * Guests probe for hardware that is not there (Linux scans for PCI, ISA
 * devices...). Report the first access to each unassigned granule, up to
 * BUS_UNASSIGNED_LOG_MAX of them, so a log shows what the guest looked
 * for without being flooded by it.
 */
static gboolean first_unassigned(Bus *bus, uint64_t addr, gboolean *last)
{
    uint64_t key = addr / bus->granule;
    gboolean report = FALSE;

    *last = FALSE;
    g_mutex_lock(&bus->log_lock);
    if (bus->nr_logged < BUS_UNASSIGNED_LOG_MAX) {
        report = TRUE;
        for (unsigned i = 0; i < bus->nr_logged; i++) {
            if (bus->logged[i] == key) {
                report = FALSE;
                break;
            }
        }
        if (report) {
            bus->logged[bus->nr_logged++] = key;
            *last = bus->nr_logged == BUS_UNASSIGNED_LOG_MAX;
        }
    }
    g_mutex_unlock(&bus->log_lock);
    return report;
}

static void report_unassigned(Bus *bus, const char *what, uint64_t addr, size_t len,
                              uint64_t value)
{
    gboolean last;

    if (!first_unassigned(bus, addr, &last))
        return;
    if (value != UINT64_MAX)
        g_warning("guest: %s %s of %zu bytes (0x%" PRIx64 ") at 0x%" PRIx64
                  " hits no device; ignored", bus->name, what, len, value, addr);
    else
        g_warning("guest: %s %s of %zu bytes at 0x%" PRIx64 " hits no device; reads as "
                  "all ones", bus->name, what, len, addr);
    if (last)
        g_warning("guest: %s: further unassigned addresses are not reported", bus->name);
}

gboolean bus_read(Bus *bus, uint64_t addr, void *buf, size_t len)
{
    BusRegion r;

    if (valid_len(len) && lookup(bus, addr, len, &r)) {
        device_read(r.dev, addr - r.base + r.dev_offset, buf, len);
        return TRUE;
    }
    memset(buf, 0xff, len);
    report_unassigned(bus, "read", addr, len, UINT64_MAX);
    return FALSE;
}

gboolean bus_write(Bus *bus, uint64_t addr, const void *buf, size_t len)
{
    BusRegion r;

    if (valid_len(len) && lookup(bus, addr, len, &r)) {
        device_write(r.dev, addr - r.base + r.dev_offset, buf, len);
        return TRUE;
    }
    report_unassigned(bus, "write", addr, len, valid_len(len) ? vireo_le_load(buf, len) : 0);
    return FALSE;
}
