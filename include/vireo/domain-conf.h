/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvirt's domain XML (https://libvirt.org/formatdomain.html) as a typed
 * definition: parse, fill in defaults, validate, format back as libvirt
 * 9.0.0 does, and tell whether Vireo can run it. docs/domain-xml.md lists
 * what is supported, what is kept but refused at start, the defaults and
 * the known differences from libvirt.
 *
 * Reading a DomainDef (for the daemon, e.g. to build vireo-vmm's command
 * line): after a successful parse every default below is filled in, so
 * a consumer never re-derives one:
 *   - uuid is set (generated if absent); memory_kib > 0 and
 *     current_memory_kib <= memory_kib, both in KiB;
 *   - vcpus >= 1, vcpus_current in 1..vcpus;
 *   - os.type is "hvm", os.arch "x86_64", os.machine set;
 *   - every disk has a bus, every typed interface a MAC and a model,
 *     every serial a port and target type, every controller an index,
 *     every device that sits on PCI a PCI address (given ones are kept,
 *     missing ones are assigned on domain 0, bus 0);
 *   - strings are NULL when the XML did not have them.
 * Fields marked "live" are only meaningful for a running domain; they
 * are formatted unless DOMAIN_DEF_FORMAT_INACTIVE is given and dropped by
 * DOMAIN_DEF_PARSE_INACTIVE.
 *
 * An element with `raw` set is kept verbatim (a libvirt device or setting
 * Vireo does not model); only the fields documented next to `raw` are
 * filled for it. domain_def_check_runnable() refuses every such element.
 */
#ifndef VIREO_DOMAIN_CONF_H
#define VIREO_DOMAIN_CONF_H

#include <glib.h>
#include <stdint.h>
#include <libxml/tree.h>

#include "vireo/conf-xml.h"

typedef enum {
    /* Ignore and drop live-only data (domain id, pty paths, vnet* target
     * names, non-user aliases...): what libvirt does for define. */
    DOMAIN_DEF_PARSE_INACTIVE = 1 << 0,
} DomainDefParseFlags;

typedef enum {
    /* The persistent definition, as `virsh dumpxml --inactive`. */
    DOMAIN_DEF_FORMAT_INACTIVE = 1 << 0,
    /* Include secrets (graphics passwd), as VIR_DOMAIN_XML_SECURE. */
    DOMAIN_DEF_FORMAT_SECURE = 1 << 1,
} DomainDefFormatFlags;

typedef enum {
    DOMAIN_VIRT_KVM,
    DOMAIN_VIRT_QEMU,      /* TCG: parsed, refused at start */
} DomainVirtType;

/* ---- device addresses and common device data ---- */

typedef enum {
    DOMAIN_ADDR_NONE,
    DOMAIN_ADDR_PCI,
    DOMAIN_ADDR_DRIVE,
    DOMAIN_ADDR_VIRTIO_SERIAL,
    DOMAIN_ADDR_USB,
    DOMAIN_ADDR_ISA,
} DomainAddrType;

typedef struct DomainAddress {
    DomainAddrType type;
    struct {
        guint domain, bus, slot, function;
        ConfTristate multifunction;
    } pci;
    struct {
        guint controller, bus, target, unit;
    } drive;
    struct {
        guint controller, bus, port;
    } vserial;
    struct {
        guint bus;
        char *port;          /* "1" or "1.2" */
    } usb;
    struct {
        guint iobase, irq;
        gboolean has_iobase, has_irq;
    } isa;
} DomainAddress;

typedef struct DomainDeviceInfo {
    DomainAddress addr;
    char *alias;             /* "ua-..." (persistent) or live ("net0") */
    guint boot_order;        /* <boot order='N'/>, 0 = none */
} DomainDeviceInfo;

/* ---- disks ---- */

typedef enum {
    DOMAIN_DISK_TYPE_FILE,
    DOMAIN_DISK_TYPE_BLOCK,
    DOMAIN_DISK_TYPE_VOLUME,
    DOMAIN_DISK_TYPE_OTHER,  /* network, dir, nvme, ...: kept raw */
} DomainDiskType;

typedef enum {
    DOMAIN_DISK_DEVICE_DISK,
    DOMAIN_DISK_DEVICE_CDROM,
    DOMAIN_DISK_DEVICE_FLOPPY,
    DOMAIN_DISK_DEVICE_LUN,
} DomainDiskDevice;

typedef enum {
    DOMAIN_DISK_BUS_NONE,
    DOMAIN_DISK_BUS_IDE,
    DOMAIN_DISK_BUS_FDC,
    DOMAIN_DISK_BUS_SCSI,
    DOMAIN_DISK_BUS_VIRTIO,
    DOMAIN_DISK_BUS_XEN,
    DOMAIN_DISK_BUS_USB,
    DOMAIN_DISK_BUS_UML,
    DOMAIN_DISK_BUS_SATA,
    DOMAIN_DISK_BUS_SD,
} DomainDiskBus;

typedef struct DomainDiskDef {
    xmlNodePtr raw;          /* kept verbatim; then only dst, bus, raw_what */
    char *raw_what;          /* "disk type 'network'" */
    DomainDiskType type;
    DomainDiskDevice device;
    struct {
        char *name;          /* "qemu" or NULL */
        char *format;        /* "raw", "qcow2", ... (driver type=) */
        char *cache, *error_policy, *io, *discard, *detect_zeroes;
    } driver;
    struct {
        char *path;          /* file= (file) or dev= (block); NULL = empty */
        char *pool, *volume, *mode;   /* volume */
        char *startup_policy;
    } src;
    xmlNodePtr backing_store;   /* kept verbatim if given */
    char *dst;               /* "vda" */
    DomainDiskBus bus;
    char *tray;              /* "open"/"closed" */
    ConfTristate removable;
    gboolean readonly;       /* always TRUE for cdrom */
    gboolean shareable;
    char *serial;
    DomainDeviceInfo info;
} DomainDiskDef;

/* ---- controllers ---- */

typedef enum {
    DOMAIN_CONTROLLER_IDE,
    DOMAIN_CONTROLLER_FDC,
    DOMAIN_CONTROLLER_SCSI,
    DOMAIN_CONTROLLER_SATA,
    DOMAIN_CONTROLLER_VIRTIO_SERIAL,
    DOMAIN_CONTROLLER_CCID,
    DOMAIN_CONTROLLER_USB,
    DOMAIN_CONTROLLER_PCI,
    DOMAIN_CONTROLLER_XENBUS,
    DOMAIN_CONTROLLER_ISA,
} DomainControllerType;

typedef struct DomainControllerDef {
    DomainControllerType type;
    int index;
    char *model;             /* "pci-root", "pcie-root", "qemu-xhci", ... */
    guint64 ports, vectors;
    gboolean has_ports, has_vectors;
    GPtrArray *extra;        /* xmlNodePtr children kept verbatim (driver,
                              * model, target, master), in order */
    DomainDeviceInfo info;
} DomainControllerDef;

/* ---- network interfaces ---- */

typedef enum {
    DOMAIN_NET_NETWORK,
    DOMAIN_NET_BRIDGE,
    DOMAIN_NET_ETHERNET,
    DOMAIN_NET_OTHER,        /* user, direct, hostdev, ...: kept raw */
} DomainNetType;

typedef struct DomainNetDef {
    xmlNodePtr raw;          /* kept verbatim; then only raw_what */
    char *raw_what;
    DomainNetType type;
    uint8_t mac[6];
    char *source;            /* network name or bridge name; NULL for ethernet */
    char *portgroup;
    char *live_bridge;       /* live: bridge of a network interface */
    char *live_portid;       /* live */
    char *ifname;            /* <target dev>: host tap; vnet* names are live */
    ConfTristate managed;    /* <target managed='no'/> (ethernet) */
    char *model;             /* "virtio", "e1000", "rtl8139", ... */
    char *driver_name;       /* "vhost", "qemu" */
    guint64 driver_queues;
    char *link_state;        /* "up", "down" */
    guint64 mtu;
    DomainDeviceInfo info;
} DomainNetDef;

/* ---- serial, console, channel ---- */

typedef enum {
    DOMAIN_CHR_NULL,
    DOMAIN_CHR_PTY,
    DOMAIN_CHR_FILE,
    DOMAIN_CHR_UNIX,
    DOMAIN_CHR_OTHER,        /* tcp, udp, dev, stdio, ...: kept raw */
} DomainChrType;

typedef struct DomainChrDef {
    xmlNodePtr raw;          /* kept verbatim; then only raw_what, target_port */
    char *raw_what;
    DomainChrType type;
    char *path;              /* pty: live path; file: file; unix: socket */
    gboolean listen;         /* unix: mode='bind' (default) vs 'connect' */
    ConfTristate append;     /* file */
    char *target_type;       /* serial: "isa-serial"...; console: "serial",
                              * "virtio"; channel: "virtio" */
    int target_port;         /* serial/console port, -1 = none */
    char *target_model;      /* serial: "isa-serial" ... */
    char *target_name;       /* channel: "org.qemu.guest_agent.0" */
    char *live_state;        /* channel: "connected"/"disconnected" */
    DomainDeviceInfo info;
} DomainChrDef;

/* ---- the rest ---- */

typedef struct DomainInputDef {
    xmlNodePtr raw;          /* passthrough/evdev inputs are kept raw */
    char *raw_what;
    char *type;              /* "mouse", "tablet", "keyboard" */
    char *bus;               /* "ps2", "usb", "virtio", "xen", "none" */
    char *model;             /* virtio model */
    DomainDeviceInfo info;
} DomainInputDef;

typedef struct DomainMemballoonDef {
    char *model;             /* "virtio", "none", ... */
    ConfTristate autodeflate, free_page_reporting;
    guint64 stats_period;
    gboolean has_stats;
    DomainDeviceInfo info;
} DomainMemballoonDef;

typedef struct DomainRngDef {
    xmlNodePtr raw;          /* egd backends are kept raw */
    char *raw_what;
    char *model;             /* "virtio" ... */
    guint64 rate_bytes, rate_period;
    gboolean has_rate;
    char *backend;           /* "random", "builtin" */
    char *backend_path;      /* random: "/dev/urandom" */
    DomainDeviceInfo info;
} DomainRngDef;

typedef struct DomainWatchdogDef {
    char *model;             /* "i6300esb", "ib700", "itco", "diag288" */
    char *action;            /* "reset" (default), "poweroff", ... */
    DomainDeviceInfo info;
} DomainWatchdogDef;

/* A libvirt element Vireo keeps verbatim (graphics, video, memtune...). */
typedef struct DomainRawDef {
    char *name;              /* element name, "graphics" */
    char *what;              /* for messages: "graphics device 'vnc'" */
    xmlNodePtr node;
} DomainRawDef;

typedef struct DomainCpuFeature {
    char *policy;            /* "require", "disable", ... */
    char *name;
} DomainCpuFeature;

typedef struct DomainTimerDef {
    char *name, *tickpolicy, *track, *mode;
    ConfTristate present;
    guint64 frequency;
} DomainTimerDef;

typedef struct DomainDef {
    DomainVirtType virt_type;
    int id;                  /* live; -1 when not running */
    char *name;
    uint8_t uuid[16];
    char *title;
    char *description;
    xmlNodePtr metadata;     /* <metadata> copy; children in namespaces only */

    guint64 memory_kib;      /* <memory> */
    guint64 current_memory_kib;
    guint64 max_memory_kib;  /* <maxMemory>, 0 = absent */
    guint64 max_memory_slots;

    guint vcpus;             /* maximum */
    guint vcpus_current;     /* online at start */
    char *vcpu_placement;    /* "static" or "auto" */
    char *vcpu_cpuset;       /* canonical, "0-3,8" */

    struct {
        char *type;          /* "hvm" */
        char *arch;          /* "x86_64" */
        char *machine;       /* see docs/domain-xml.md */
        char *firmware;      /* <os firmware='efi'> */
        char *loader;        /* path */
        ConfTristate loader_readonly, loader_secure;
        char *loader_type;   /* "rom", "pflash" */
        char *nvram;
        char *nvram_template;
        char *kernel, *initrd, *cmdline, *dtb;
        guint nboot;
        char *boot[4];       /* "hd", "cdrom", "network", "fd" in order */
        ConfTristate bootmenu;
        guint64 bootmenu_timeout;
        gboolean has_bootmenu_timeout;
    } os;

    gboolean acpi, apic, pae;
    ConfTristate apic_eoi;
    GPtrArray *raw_features; /* DomainRawDef: hyperv, kvm, smm, vmport ... */

    struct {
        gboolean present;
        char *mode;          /* "custom", "host-model", "host-passthrough", "maximum" */
        char *match, *check;
        ConfTristate migratable;
        char *model, *fallback, *vendor_id;
        char *vendor;
        gboolean has_topology;
        guint64 sockets, dies, cores, threads;
        GPtrArray *features; /* DomainCpuFeature */
    } cpu;

    struct {
        char *offset;        /* "utc" (default), "localtime", "timezone", "variable" */
        char *timezone;
        char *adjustment;
        char *basis;
        GPtrArray *timers;   /* DomainTimerDef */
    } clock;

    char *on_poweroff, *on_reboot, *on_crash;
    ConfTristate pm_suspend_to_mem, pm_suspend_to_disk;

    char *emulator;          /* kept, not used by Vireo */
    GPtrArray *disks;        /* DomainDiskDef, in libvirt's order */
    GPtrArray *controllers;  /* DomainControllerDef */
    GPtrArray *nets;         /* DomainNetDef */
    GPtrArray *serials;      /* DomainChrDef */
    GPtrArray *consoles;     /* DomainChrDef; a console whose target is
                              * 'serial' mirrors serials[i] on output */
    GPtrArray *channels;     /* DomainChrDef */
    GPtrArray *inputs;       /* DomainInputDef */
    DomainMemballoonDef *memballoon;
    GPtrArray *rngs;         /* DomainRngDef */
    DomainWatchdogDef *watchdog;
    GPtrArray *raw_devices;  /* DomainRawDef: graphics, video, sound, ... */
    GPtrArray *raw_elements; /* DomainRawDef: memtune, numatune, ... */

    xmlDocPtr raw_doc;       /* owns every kept xmlNode above */
} DomainDef;

DomainDef *domain_def_new(void);
void domain_def_free(DomainDef *def);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainDef, domain_def_free)

/*
 * Parses, fills in defaults, assigns addresses and validates. Errors are
 * VIREO_ERROR_INVALID_ARGUMENT with "<element path>: <reason>" messages,
 * e.g. "domain/devices/disk[2]/target: attribute 'dev' is required".
 */
DomainDef *domain_def_parse_string(const char *xml, unsigned flags, GError **error);
DomainDef *domain_def_parse_file(const char *path, unsigned flags, GError **error);

/* Formats as libvirt 9.0.0 would (2-space indent, trailing newline). */
char *domain_def_format(const DomainDef *def, unsigned flags);

/* A deep copy (through format and parse of the live XML). */
DomainDef *domain_def_copy(const DomainDef *def, GError **error);

/*
 * What the vireo-vmm in use can run beyond the fixed machine, so that
 * daemon/conf never needs to know vireo-vmm. The daemon passes what its
 * vireo-vmm offers; DOMAIN_RUN_CAPS_NONE is vireo-vmm 0.1 (direct kernel
 * boot, COM1, i8042, no PCI devices).
 */
typedef enum {
    DOMAIN_RUN_CAPS_NONE = 0,
    DOMAIN_RUN_DISK_VIRTIO = 1 << 0,     /* virtio-blk disks, file and block */
    DOMAIN_RUN_DISK_QCOW2 = 1 << 1,      /* qcow2 images */
    DOMAIN_RUN_DISK_VOLUME = 1 << 2,     /* type='volume' (pools resolved by the daemon) */
    DOMAIN_RUN_NET_VIRTIO = 1 << 3,      /* virtio-net on a tap */
    DOMAIN_RUN_VIRTIO_SERIAL = 1 << 4,   /* virtio-serial channels and consoles */
    DOMAIN_RUN_MEMBALLOON = 1 << 5,      /* virtio-balloon */
    DOMAIN_RUN_RNG = 1 << 6,             /* virtio-rng */
    DOMAIN_RUN_WATCHDOG = 1 << 7,        /* i6300esb */
    DOMAIN_RUN_FIRMWARE = 1 << 8,        /* <loader>/<nvram>, booting without <kernel> */
    DOMAIN_RUN_INPUT_VIRTIO = 1 << 9,    /* virtio-input */
    DOMAIN_RUN_SERIAL_EXTRA = 1 << 10,   /* serial ports other than COM1 */
} DomainRunCaps;

/*
 * Can Vireo start this definition? FALSE with VIREO_ERROR_UNSUPPORTED and
 * a message in libvirt's style naming the first thing that cannot run:
 * "unsupported configuration: graphics device 'vnc' is not supported by
 * Vireo".
 */
gboolean domain_def_check_runnable(const DomainDef *def, unsigned caps, GError **error);

/* Lookups for the daemon. Borrowed pointers. */
DomainDiskDef *domain_def_find_disk(const DomainDef *def, const char *dst);
DomainNetDef *domain_def_find_net(const DomainDef *def, const uint8_t mac[6]);

const char *domain_disk_bus_to_string(DomainDiskBus bus);
const char *domain_controller_type_to_string(DomainControllerType type);
const char *domain_chr_type_to_string(DomainChrType type);

#endif
