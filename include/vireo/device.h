/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The device model interface.
 *
 * A device sees only offsets into its own register window. The bus
 * (vmm/bus.c) resolves an address to (device, offset), checks that the
 * access is 1, 2, 4 or 8 bytes long and lies inside the window, and calls
 * read/write with the device's lock held. Accesses arrive from vCPU threads.
 * Values are little-endian in buf, as on x86.
 */
#ifndef VIREO_DEVICE_H
#define VIREO_DEVICE_H

#include <glib.h>
#include <stdint.h>

#include "vireo/chardev.h"
#include "vireo/event-loop.h"
#include "vireo/guest-memory.h"
#include "vireo/ioevent.h"
#include "vireo/irq.h"
#include "vireo/machine-control.h"
#include "vireo/msi.h"
#include "vireo/state.h"
#include "vireo/timer.h"

typedef struct Device Device;
typedef struct DeviceType DeviceType;

typedef struct DeviceOps {
    /* Fill @len bytes of @buf. Called with dev->lock held. */
    void (*read)(Device *dev, uint64_t off, void *buf, size_t len);
    void (*write)(Device *dev, uint64_t off, const void *buf, size_t len);
    /* Back to power-on state (machine reset); called with vCPUs stopped. */
    void (*reset)(Device *dev);
    /*
     * One versioned section named after the device id. save runs with vCPUs
     * stopped; load runs before the device is on a bus and before any vCPU
     * starts (never on a running device). NULL save/load blocks migration.
     */
    gboolean (*save)(Device *dev, StateWriter *w, GError **error);
    gboolean (*load)(Device *dev, StateReader *r, GError **error);
    /*
     * Hands host resources that two VMMs cannot hold at once (a disk
     * image's write lock) between the ends of a migration. Inactive, the
     * device has flushed and let them go and does no I/O (requests wait);
     * active again, it takes them back, re-reading what the other side may
     * have changed, and serves what waited. vCPUs stopped, loop thread.
     * Optional: devices without such resources are always active.
     */
    gboolean (*set_active)(Device *dev, gboolean active, GError **error);
    void (*free)(Device *dev);
} DeviceOps;

/*
 * What the machine hands a device at creation. Each device takes what it
 * needs and ignores the rest.
 */
typedef struct DeviceEnv {
    const char *id;             /* instance name, also its state section name */
    IrqLine *irq;               /* its interrupt line, if it has one */
    CharBackend *chr;           /* its character backend, if it has one */
    MachineControl *machine;
    TimerService *timers;
    EventLoop *loop;            /* fds to watch and work for the loop thread */
    const GuestMemory *mem;     /* guest RAM, for DMA-capable devices */
    MsiController *msi;         /* MSI-X routes (PCI devices) */
    IoEventService *ioevents;   /* doorbells (virtio notify) */
    gboolean inactive;          /* for an incoming migration: start inactive (set_active) */
} DeviceEnv;

struct DeviceType {
    const char *name;
    const char *description;
    const DeviceOps *ops;
    gboolean pci;               /* instances are PciDevices, for the PCI host to attach */
    /* @options: "key=value,..." from the command line, or NULL. */
    Device *(*create)(const DeviceEnv *env, const char *options, GError **error);
};

struct Device {
    const DeviceType *type;
    char *id;
    GMutex lock;                /* serialises register access and backend callbacks */
};

void device_type_register(const DeviceType *type);
const DeviceType *device_type_find(const char *name);
/* All registered types, sorted by name. Free the array (not the types). */
GPtrArray *device_type_list(void);

#define DEVICE_TYPE_REGISTER(type)                                          \
    static void __attribute__((constructor)) device_type_register_##type(void) \
    {                                                                       \
        device_type_register(&(type));                                      \
    }

/* Used by device constructors for the common part. */
void device_init(Device *dev, const DeviceType *type, const char *id);
void device_cleanup(Device *dev);

Device *device_create(const char *type_name, const DeviceEnv *env, const char *options,
                      GError **error);
void device_free(Device *dev);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Device, device_free)

void device_reset(Device *dev);
/* Saving a device without save/load fails with an error naming it. */
gboolean device_save(Device *dev, StateWriter *w, GError **error);
gboolean device_load(Device *dev, StateReader *r, GError **error);
gboolean device_set_active(Device *dev, gboolean active, GError **error);

/* Register access with the lock taken; used by the bus and by device tests. */
void device_read(Device *dev, uint64_t off, void *buf, size_t len);
void device_write(Device *dev, uint64_t off, const void *buf, size_t len);

/*
 * Parse "key=value,key2=value2". A value may contain ',' when doubled
 * (",,"), as in QEMU. Returns a table of key -> value; keys may not repeat.
 */
GHashTable *device_options_parse(const char *options, GError **error);
/* Fails naming the first key that is not in @known (NULL-terminated). */
gboolean device_options_check_known(GHashTable *opts, const char *const *known,
                                    const char *what, GError **error);

#endif
