/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * <devices>: parse each device libvirt defines into its typed struct (or
 * keep it verbatim when Vireo does not model it) and format them back in
 * libvirt 9.0.0's order and layout (virDomainDefFormatInternal() prints
 * devices grouped by kind, in the order of device_kinds[] below).
 */
#include <string.h>

#include "vireo/conf-value.h"
#include "vireo/util.h"
#include "domain-internal.h"

const char *const domain_disk_bus_names[] = {
    "", "ide", "fdc", "scsi", "virtio", "xen", "usb", "uml", "sata", "sd", NULL,
};
const char *const domain_controller_type_names[] = {
    "ide", "fdc", "scsi", "sata", "virtio-serial", "ccid", "usb", "pci", "xenbus", "isa", NULL,
};
const char *const domain_chr_type_names[] = {
    "null", "pty", "file", "unix", "", NULL,
};
static const char *const disk_type_names[] = { "file", "block", "volume", NULL };
static const char *const disk_type_raw[] = {
    "network", "dir", "nvme", "vhostuser", "vhostvdpa", NULL,
};
static const char *const disk_device_names[] = { "disk", "cdrom", "floppy", "lun", NULL };
static const char *const disk_formats[] = {
    "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop",
    "cow", "qcow", "qcow2", "qed", "vmdk", "luks", NULL,
};
static const char *const disk_caches[] = {
    "default", "none", "writethrough", "writeback", "directsync", "unsafe", NULL,
};
static const char *const disk_error_policies[] = { "stop", "report", "ignore", "enospace", NULL };
static const char *const disk_ios[] = { "threads", "native", "io_uring", NULL };
static const char *const disk_discards[] = { "unmap", "ignore", NULL };
static const char *const disk_detect_zeroes[] = { "off", "on", "unmap", NULL };
static const char *const disk_startup_policies[] = { "mandatory", "requisite", "optional", NULL };
static const char *const disk_volume_modes[] = { "host", "direct", NULL };
static const char *const disk_trays[] = { "closed", "open", NULL };
static const char *const net_type_names[] = { "network", "bridge", "ethernet", NULL };
static const char *const net_type_raw[] = {
    "user", "direct", "hostdev", "vhostuser", "server", "client", "mcast", "udp",
    "internal", "vdpa", "null", "vds", NULL,
};
static const char *const net_driver_names[] = { "qemu", "vhost", NULL };
static const char *const net_link_states[] = { "up", "down", NULL };
static const char *const chr_type_raw[] = {
    "dev", "tcp", "udp", "stdio", "vc", "pipe", "spicevmc", "spiceport", "nmdm",
    "qemu-vdagent", "dbus", NULL,
};
static const char *const serial_target_types[] = {
    "isa-serial", "usb-serial", "pci-serial", "spapr-vio-serial", "system-serial",
    "sclp-serial", "isa-debug", NULL,
};
static const char *const serial_target_models[] = {
    "isa-serial", "usb-serial", "pci-serial", "spapr-vty", "pl011", "16550a",
    "sclpconsole", "sclplmconsole", "isa-debugcon", NULL,
};
static const char *const console_target_types[] = {
    "serial", "virtio", "xen", "uml", "lxc", "openvz", "sclp", "sclplm", NULL,
};
static const char *const channel_states[] = { "connected", "disconnected", NULL };
static const char *const input_types[] = { "mouse", "tablet", "keyboard", NULL };
static const char *const input_types_raw[] = { "passthrough", "evdev", NULL };
static const char *const input_buses[] = { "ps2", "usb", "xen", "virtio", "none", NULL };
static const char *const virtio_models[] = {
    "virtio", "virtio-transitional", "virtio-non-transitional", NULL,
};
static const char *const balloon_models[] = {
    "virtio", "xen", "none", "virtio-transitional", "virtio-non-transitional", NULL,
};
static const char *const watchdog_models[] = { "i6300esb", "ib700", "diag288", "itco", NULL };
static const char *const watchdog_actions[] = {
    "reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi", NULL,
};
static const char *const addr_type_names[] = {
    "", "pci", "drive", "virtio-serial", "usb", "isa", NULL,
};
static const char *const pci_models[] = {
    "pci-root", "pcie-root", "pci-bridge", "dmi-to-pci-bridge", "pcie-root-port",
    "pcie-switch-upstream-port", "pcie-switch-downstream-port", "pci-expander-bus",
    "pcie-expander-bus", "pcie-to-pci-bridge", NULL,
};
static const char *const usb_models[] = {
    "piix3-uhci", "piix4-uhci", "ehci", "ich9-ehci1", "ich9-uhci1", "ich9-uhci2",
    "ich9-uhci3", "vt82c686b-uhci", "pci-ohci", "nec-xhci", "qusb1", "qusb2",
    "qemu-xhci", "none", NULL,
};
static const char *const scsi_models[] = {
    "auto", "buslogic", "lsilogic", "lsisas1068", "vmpvscsi", "ibmvscsi", "virtio-scsi",
    "lsisas1078", "virtio-transitional", "virtio-non-transitional", "ncr53c90",
    "am53c974", "dc390", NULL,
};
static const char *const ide_models[] = { "piix3", "piix4", "ich6", NULL };

/*
 * Device kinds in the order libvirt 9.0.0 formats them. Kinds with a
 * parser are typed; the others are kept verbatim.
 */
typedef enum {
    K_EMULATOR, K_DISK, K_CONTROLLER, K_LEASE, K_FILESYSTEM, K_INTERFACE, K_SMARTCARD,
    K_SERIAL, K_PARALLEL, K_CONSOLE, K_CHANNEL, K_INPUT, K_TPM, K_GRAPHICS, K_SOUND,
    K_AUDIO, K_VIDEO, K_HOSTDEV, K_REDIRDEV, K_REDIRFILTER, K_HUB, K_WATCHDOG,
    K_MEMBALLOON, K_RNG, K_NVRAM, K_PANIC, K_SHMEM, K_MEMORY, K_IOMMU, K_VSOCK,
    K_CRYPTO, K_LAST,
} DeviceKind;

static const char *const device_kinds[] = {
    "emulator", "disk", "controller", "lease", "filesystem", "interface", "smartcard",
    "serial", "parallel", "console", "channel", "input", "tpm", "graphics", "sound",
    "audio", "video", "hostdev", "redirdev", "redirfilter", "hub", "watchdog",
    "memballoon", "rng", "nvram", "panic", "shmem", "memory", "iommu", "vsock",
    "crypto", NULL,
};

const char *domain_disk_bus_to_string(DomainDiskBus bus)
{
    return domain_disk_bus_names[bus];
}

const char *domain_controller_type_to_string(DomainControllerType type)
{
    return domain_controller_type_names[type];
}

const char *domain_chr_type_to_string(DomainChrType type)
{
    return domain_chr_type_names[type];
}

/* ---- freeing ---- */

static void info_clear(DomainDeviceInfo *info)
{
    g_free(info->alias);
    g_free(info->addr.usb.port);
}

void domain_device_disk_free(gpointer p)
{
    DomainDiskDef *d = p;

    if (!d)
        return;
    g_free(d->raw_what);
    g_free(d->driver.name);
    g_free(d->driver.format);
    g_free(d->driver.cache);
    g_free(d->driver.error_policy);
    g_free(d->driver.io);
    g_free(d->driver.discard);
    g_free(d->driver.detect_zeroes);
    g_free(d->src.path);
    g_free(d->src.pool);
    g_free(d->src.volume);
    g_free(d->src.mode);
    g_free(d->src.startup_policy);
    g_free(d->dst);
    g_free(d->tray);
    g_free(d->serial);
    info_clear(&d->info);
    g_free(d);
}

void domain_device_controller_free(gpointer p)
{
    DomainControllerDef *c = p;

    if (!c)
        return;
    g_free(c->model);
    if (c->extra)
        g_ptr_array_unref(c->extra);
    info_clear(&c->info);
    g_free(c);
}

void domain_device_net_free(gpointer p)
{
    DomainNetDef *n = p;

    if (!n)
        return;
    g_free(n->raw_what);
    g_free(n->source);
    g_free(n->portgroup);
    g_free(n->live_bridge);
    g_free(n->live_portid);
    g_free(n->ifname);
    g_free(n->model);
    g_free(n->driver_name);
    g_free(n->link_state);
    info_clear(&n->info);
    g_free(n);
}

void domain_device_chr_free(gpointer p)
{
    DomainChrDef *c = p;

    if (!c)
        return;
    g_free(c->raw_what);
    g_free(c->path);
    g_free(c->target_type);
    g_free(c->target_model);
    g_free(c->target_name);
    g_free(c->live_state);
    info_clear(&c->info);
    g_free(c);
}

void domain_device_input_free(gpointer p)
{
    DomainInputDef *i = p;

    if (!i)
        return;
    g_free(i->raw_what);
    g_free(i->type);
    g_free(i->bus);
    g_free(i->model);
    info_clear(&i->info);
    g_free(i);
}

void domain_device_rng_free(gpointer p)
{
    DomainRngDef *r = p;

    if (!r)
        return;
    g_free(r->raw_what);
    g_free(r->model);
    g_free(r->backend);
    g_free(r->backend_path);
    info_clear(&r->info);
    g_free(r);
}

void domain_device_memballoon_free(DomainMemballoonDef *m)
{
    if (!m)
        return;
    g_free(m->model);
    info_clear(&m->info);
    g_free(m);
}

void domain_device_watchdog_free(DomainWatchdogDef *w)
{
    if (!w)
        return;
    g_free(w->model);
    g_free(w->action);
    info_clear(&w->info);
    g_free(w);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainDiskDef, domain_device_disk_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainControllerDef, domain_device_controller_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainNetDef, domain_device_net_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainChrDef, domain_device_chr_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainInputDef, domain_device_input_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainRngDef, domain_device_rng_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainMemballoonDef, domain_device_memballoon_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DomainWatchdogDef, domain_device_watchdog_free)

/* ---- common pieces: alias, boot, address ---- */

static gboolean alias_is_user(const char *alias)
{
    return g_str_has_prefix(alias, "ua-");
}

static gboolean parse_alias(DomainParseCtx *ctx, xmlNodePtr n, DomainDeviceInfo *info,
                            GError **error)
{
    static const char *const attrs[] = { "name", NULL };
    g_autofree char *name = NULL;

    if (!conf_xml_check(n, attrs, NULL, FALSE, error) ||
        !(name = conf_xml_prop_required(n, "name", error)))
        return FALSE;
    if (alias_is_user(name)) {
        if (!name[3])
            return conf_xml_error(error, n, "user alias '%s' is empty after 'ua-'", name);
        for (const char *p = name + 3; *p; p++)
            if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-')
                return conf_xml_error(error, n, "user alias '%s' may contain only "
                                      "letters, digits, '_' and '-'", name);
    } else if (ctx->flags & DOMAIN_DEF_PARSE_INACTIVE) {
        return TRUE;   /* live alias: dropped on define, as libvirt does */
    }
    info->alias = g_steal_pointer(&name);
    return TRUE;
}

static gboolean parse_boot(xmlNodePtr n, DomainDeviceInfo *info, GError **error)
{
    static const char *const attrs[] = { "order", NULL };
    g_autofree char *v = NULL;
    guint64 order;

    if (!conf_xml_check(n, attrs, NULL, FALSE, error) ||
        !(v = conf_xml_prop_required(n, "order", error)))
        return FALSE;
    if (!conf_parse_uint(v, 10, G_MAXINT, &order) || order == 0)
        return conf_xml_error(error, n, "boot order '%s' must be a positive integer", v);
    info->boot_order = (guint)order;
    return TRUE;
}

static gboolean parse_address(xmlNodePtr n, DomainAddress *a, GError **error)
{
    static const char *const pci_attrs[] = {
        "type", "domain", "bus", "slot", "function", "multifunction", NULL,
    };
    static const char *const drive_attrs[] = {
        "type", "controller", "bus", "target", "unit", NULL,
    };
    static const char *const vs_attrs[] = { "type", "controller", "bus", "port", NULL };
    static const char *const usb_attrs[] = { "type", "bus", "port", NULL };
    static const char *const isa_attrs[] = { "type", "iobase", "irq", NULL };
    static const char *const *const attrs[] = {
        NULL, pci_attrs, drive_attrs, vs_attrs, usb_attrs, isa_attrs,
    };
    g_autofree char *type = conf_xml_prop_required(n, "type", error);
    guint64 v[4] = { 0, 0, 0, 0 };
    gboolean has[4] = { FALSE, FALSE, FALSE, FALSE };
    int t;

    if (!type)
        return FALSE;
    t = conf_enum_from_string(addr_type_names, type);
    if (t <= 0)
        return conf_xml_error(error, n, "unsupported address type '%s'", type);
    if (!conf_xml_check(n, attrs[t], NULL, FALSE, error))
        return FALSE;
    memset(a, 0, sizeof(*a));
    a->type = t;
    switch (t) {
    case DOMAIN_ADDR_PCI:
        if (!conf_xml_prop_uint(n, "domain", 0xffff, &v[0], &has[0], error) ||
            !conf_xml_prop_uint(n, "bus", 0xff, &v[1], &has[1], error) ||
            !conf_xml_prop_uint(n, "slot", 0x1f, &v[2], &has[2], error) ||
            !conf_xml_prop_uint(n, "function", 7, &v[3], &has[3], error) ||
            !conf_xml_prop_tristate(n, "multifunction", TRUE, &a->pci.multifunction, error))
            return FALSE;
        /* <address type='pci'/> without a slot asks for one to be assigned */
        if (!has[2]) {
            if (has[1] || has[3] || a->pci.multifunction)
                return conf_xml_error(error, n, "a PCI address needs attribute 'slot'");
            a->type = DOMAIN_ADDR_NONE;
            return TRUE;
        }
        a->pci.domain = v[0];
        a->pci.bus = v[1];
        a->pci.slot = v[2];
        a->pci.function = v[3];
        break;
    case DOMAIN_ADDR_DRIVE:
        if (!conf_xml_prop_uint(n, "controller", G_MAXUINT16, &v[0], NULL, error) ||
            !conf_xml_prop_uint(n, "bus", G_MAXUINT16, &v[1], NULL, error) ||
            !conf_xml_prop_uint(n, "target", G_MAXUINT16, &v[2], NULL, error) ||
            !conf_xml_prop_uint(n, "unit", G_MAXUINT16, &v[3], NULL, error))
            return FALSE;
        a->drive.controller = v[0];
        a->drive.bus = v[1];
        a->drive.target = v[2];
        a->drive.unit = v[3];
        break;
    case DOMAIN_ADDR_VIRTIO_SERIAL:
        if (!conf_xml_prop_uint(n, "controller", G_MAXUINT16, &v[0], NULL, error) ||
            !conf_xml_prop_uint(n, "bus", G_MAXUINT16, &v[1], NULL, error) ||
            !conf_xml_prop_uint(n, "port", G_MAXUINT16, &v[2], &has[2], error))
            return FALSE;
        a->vserial.controller = v[0];
        a->vserial.bus = v[1];
        a->vserial.port = v[2];
        if (!has[2])
            a->vserial.port = 0;   /* assigned in post-parse */
        break;
    case DOMAIN_ADDR_USB:
        if (!conf_xml_prop_uint(n, "bus", G_MAXUINT16, &v[0], NULL, error))
            return FALSE;
        a->usb.bus = v[0];
        a->usb.port = conf_xml_prop(n, "port");
        if (a->usb.port) {
            g_auto(GStrv) parts = g_strsplit(a->usb.port, ".", -1);
            for (int i = 0; parts[i]; i++) {
                guint64 p;
                if (i >= 5 || !conf_parse_uint(parts[i], 10, 255, &p))
                    return conf_xml_error(error, n, "invalid USB port '%s'", a->usb.port);
            }
        }
        break;
    case DOMAIN_ADDR_ISA:
        if (!conf_xml_prop_uint(n, "iobase", 0xffff, &v[0], &a->isa.has_iobase, error) ||
            !conf_xml_prop_uint(n, "irq", 0xff, &v[1], &a->isa.has_irq, error))
            return FALSE;
        a->isa.iobase = v[0];
        a->isa.irq = v[1];
        break;
    }
    return TRUE;
}

/* Handles <alias>, <address> and (if allowed) <boot>; FALSE/NULL error = not ours. */
static gboolean parse_info_child(DomainParseCtx *ctx, xmlNodePtr c, DomainDeviceInfo *info,
                                 gboolean allow_boot, gboolean *handled, GError **error)
{
    const char *name = (const char *)c->name;

    *handled = TRUE;
    if (strcmp(name, "alias") == 0)
        return parse_alias(ctx, c, info, error);
    if (strcmp(name, "address") == 0)
        return parse_address(c, &info->addr, error);
    if (allow_boot && strcmp(name, "boot") == 0)
        return parse_boot(c, info, error);
    *handled = FALSE;
    return TRUE;
}

static void format_address(GString *b, int ind, const DomainAddress *a)
{
    switch (a->type) {
    case DOMAIN_ADDR_NONE:
        return;
    case DOMAIN_ADDR_PCI:
        conf_buf_indent(b, ind);
        g_string_append_printf(b, "<address type='pci' domain='0x%04x' bus='0x%02x' "
                               "slot='0x%02x' function='0x%x'", a->pci.domain, a->pci.bus,
                               a->pci.slot, a->pci.function);
        conf_buf_attr(b, "multifunction", conf_tristate_str(a->pci.multifunction, TRUE));
        break;
    case DOMAIN_ADDR_DRIVE:
        conf_buf_indent(b, ind);
        g_string_append_printf(b, "<address type='drive' controller='%u' bus='%u' "
                               "target='%u' unit='%u'", a->drive.controller, a->drive.bus,
                               a->drive.target, a->drive.unit);
        break;
    case DOMAIN_ADDR_VIRTIO_SERIAL:
        conf_buf_indent(b, ind);
        g_string_append_printf(b, "<address type='virtio-serial' controller='%u' bus='%u' "
                               "port='%u'", a->vserial.controller, a->vserial.bus,
                               a->vserial.port);
        break;
    case DOMAIN_ADDR_USB:
        conf_buf_indent(b, ind);
        g_string_append_printf(b, "<address type='usb' bus='%u'", a->usb.bus);
        conf_buf_attr(b, "port", a->usb.port);
        break;
    case DOMAIN_ADDR_ISA:
        conf_buf_indent(b, ind);
        g_string_append(b, "<address type='isa'");
        if (a->isa.has_iobase)
            g_string_append_printf(b, " iobase='0x%x'", a->isa.iobase);
        if (a->isa.has_irq)
            g_string_append_printf(b, " irq='0x%x'", a->isa.irq);
        break;
    }
    g_string_append(b, "/>\n");
}

static gboolean info_has_output(const DomainDeviceInfo *info, unsigned flags)
{
    return info->boot_order || info->addr.type != DOMAIN_ADDR_NONE ||
        (info->alias && (!(flags & DOMAIN_DEF_FORMAT_INACTIVE) || alias_is_user(info->alias)));
}

static void format_info(GString *b, int ind, const DomainDeviceInfo *info, unsigned flags)
{
    if (info->boot_order) {
        conf_buf_indent(b, ind);
        g_string_append_printf(b, "<boot order='%u'/>\n", info->boot_order);
    }
    if (info->alias && (!(flags & DOMAIN_DEF_FORMAT_INACTIVE) || alias_is_user(info->alias))) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<alias");
        conf_buf_attr(b, "name", info->alias);
        g_string_append(b, "/>\n");
    }
    format_address(b, ind, &info->addr);
}

/* ---- disks ---- */

static const char *const disk_prefixes[] = { "fd", "hd", "vd", "sd", "xvd", "ubd", NULL };

gboolean domain_device_disk_name_valid(const char *dst, const char **prefix)
{
    for (int i = 0; disk_prefixes[i]; i++) {
        const char *p = disk_prefixes[i];
        size_t l = strlen(p);

        if (strncmp(dst, p, l) != 0 || !dst[l])
            continue;
        for (const char *s = dst + l; *s; s++)
            if (!g_ascii_islower(*s))
                return FALSE;
        if (strlen(dst + l) > 3)
            return FALSE;
        if (prefix)
            *prefix = p;
        return TRUE;
    }
    return FALSE;
}

/* libvirt's virDiskNameToIndex(): "vda" 0, "vdz" 25, "vdaa" 26. */
int domain_device_disk_name_index(const char *dst)
{
    const char *prefix;
    int idx = 0, i = 0;

    if (!dst || !domain_device_disk_name_valid(dst, &prefix))
        return -1;
    for (const char *p = dst + strlen(prefix); *p; p++, i++)
        idx = (idx + (i < 1 ? 0 : 1)) * 26 + (*p - 'a');
    return idx;
}

static DomainDiskBus disk_bus_from_dst(const char *dst, DomainDiskDevice device)
{
    if (device == DOMAIN_DISK_DEVICE_FLOPPY)
        return DOMAIN_DISK_BUS_FDC;
    if (g_str_has_prefix(dst, "hd"))
        return DOMAIN_DISK_BUS_IDE;
    if (g_str_has_prefix(dst, "sd"))
        return DOMAIN_DISK_BUS_SCSI;
    if (g_str_has_prefix(dst, "vd"))
        return DOMAIN_DISK_BUS_VIRTIO;
    if (g_str_has_prefix(dst, "xvd"))
        return DOMAIN_DISK_BUS_XEN;
    if (g_str_has_prefix(dst, "ubd"))
        return DOMAIN_DISK_BUS_UML;
    return DOMAIN_DISK_BUS_IDE;
}

/* The dev name prefix Vireo expects for a bus (libvirt itself is laxer). */
static const char *disk_bus_prefix(DomainDiskBus bus)
{
    switch (bus) {
    case DOMAIN_DISK_BUS_IDE:
        return "hd";
    case DOMAIN_DISK_BUS_FDC:
        return "fd";
    case DOMAIN_DISK_BUS_VIRTIO:
        return "vd";
    case DOMAIN_DISK_BUS_XEN:
        return "xvd";
    case DOMAIN_DISK_BUS_UML:
        return "ubd";
    case DOMAIN_DISK_BUS_SCSI:
    case DOMAIN_DISK_BUS_USB:
    case DOMAIN_DISK_BUS_SATA:
    case DOMAIN_DISK_BUS_SD:
        return "sd";
    default:
        return NULL;
    }
}

static gboolean parse_disk_target(xmlNodePtr t, DomainDiskDef *d, GError **error)
{
    static const char *const attrs[] = { "dev", "bus", "tray", "removable", NULL };
    int bus = DOMAIN_DISK_BUS_NONE;
    const char *prefix, *want;

    if (!conf_xml_check(t, attrs, NULL, FALSE, error) ||
        !(d->dst = conf_xml_prop_required(t, "dev", error)) ||
        !conf_xml_prop_enum(t, "bus", domain_disk_bus_names, &bus, error) ||
        !conf_xml_prop_choice(t, "tray", disk_trays, &d->tray, error) ||
        !conf_xml_prop_tristate(t, "removable", TRUE, &d->removable, error))
        return FALSE;
    if (!domain_device_disk_name_valid(d->dst, &prefix))
        return conf_xml_error(error, t, "invalid disk target '%s' (expected a name like "
                              "'vda', 'sda', 'hda' or 'fda')", d->dst);
    d->bus = bus != DOMAIN_DISK_BUS_NONE ? (DomainDiskBus)bus :
        disk_bus_from_dst(d->dst, d->device);
    want = disk_bus_prefix(d->bus);
    if (want && strcmp(prefix, want) != 0)
        return conf_xml_error(error, t, "disk target '%s' does not match bus '%s' "
                              "(expected a name starting with '%s')", d->dst,
                              domain_disk_bus_names[d->bus], want);
    return TRUE;
}

static gboolean parse_disk_raw(DomainParseCtx *ctx, xmlNodePtr n, const char *type,
                               DomainDiskDef *d, GError **error)
{
    xmlNodePtr t = conf_xml_child(n, "target");

    d->type = DOMAIN_DISK_TYPE_OTHER;
    d->raw_what = g_strdup_printf("disk type '%s'", type);
    if (!t)
        return conf_xml_error(error, n, "element 'target' is required");
    d->dst = conf_xml_prop_required(t, "dev", error);
    if (!d->dst)
        return FALSE;
    {
        int bus = DOMAIN_DISK_BUS_NONE;
        if (!conf_xml_prop_enum(t, "bus", domain_disk_bus_names, &bus, error))
            return FALSE;
        d->bus = bus ? (DomainDiskBus)bus : disk_bus_from_dst(d->dst, DOMAIN_DISK_DEVICE_DISK);
    }
    d->raw = domain_raw_keep(ctx->def, n);
    return TRUE;
}

static gboolean parse_disk_source(xmlNodePtr s, DomainDiskDef *d, GError **error)
{
    static const char *const file_attrs[] = { "file", "startupPolicy", "index", NULL };
    static const char *const block_attrs[] = { "dev", "startupPolicy", "index", NULL };
    static const char *const vol_attrs[] = {
        "pool", "volume", "mode", "startupPolicy", "index", NULL,
    };
    static const char *const *const attrs[] = { file_attrs, block_attrs, vol_attrs };

    if (!conf_xml_check(s, attrs[d->type], NULL, FALSE, error) ||
        !conf_xml_prop_choice(s, "startupPolicy", disk_startup_policies,
                              &d->src.startup_policy, error))
        return FALSE;
    switch (d->type) {
    case DOMAIN_DISK_TYPE_FILE:
        d->src.path = conf_xml_prop(s, "file");
        break;
    case DOMAIN_DISK_TYPE_BLOCK:
        d->src.path = conf_xml_prop(s, "dev");
        break;
    case DOMAIN_DISK_TYPE_VOLUME:
        if (!(d->src.pool = conf_xml_prop_required(s, "pool", error)) ||
            !(d->src.volume = conf_xml_prop_required(s, "volume", error)) ||
            !conf_xml_prop_choice(s, "mode", disk_volume_modes, &d->src.mode, error))
            return FALSE;
        break;
    default:
        break;
    }
    if (d->src.path && !*d->src.path)
        g_clear_pointer(&d->src.path, g_free);
    return TRUE;
}

static gboolean parse_disk_driver(xmlNodePtr n, DomainDiskDef *d, GError **error)
{
    static const char *const attrs[] = {
        "name", "type", "cache", "error_policy", "io", "discard", "detect_zeroes", NULL,
    };
    static const char *const names[] = { "qemu", NULL };

    return conf_xml_check(n, attrs, NULL, FALSE, error) &&
        conf_xml_prop_choice(n, "name", names, &d->driver.name, error) &&
        conf_xml_prop_choice(n, "type", disk_formats, &d->driver.format, error) &&
        conf_xml_prop_choice(n, "cache", disk_caches, &d->driver.cache, error) &&
        conf_xml_prop_choice(n, "error_policy", disk_error_policies,
                             &d->driver.error_policy, error) &&
        conf_xml_prop_choice(n, "io", disk_ios, &d->driver.io, error) &&
        conf_xml_prop_choice(n, "discard", disk_discards, &d->driver.discard, error) &&
        conf_xml_prop_choice(n, "detect_zeroes", disk_detect_zeroes,
                             &d->driver.detect_zeroes, error);
}

static gboolean check_empty(xmlNodePtr n, GError **error)
{
    return conf_xml_check(n, NULL, NULL, FALSE, error);
}

static DomainDiskDef *parse_disk(DomainParseCtx *ctx, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "type", "device", NULL };
    static const char *const children[] = {
        "driver", "source", "backingStore", "target", "readonly", "shareable", "serial",
        "boot", "alias", "address", NULL,
    };
    g_autoptr(DomainDiskDef) d = g_new0(DomainDiskDef, 1);
    g_autofree char *type = conf_xml_prop(n, "type");
    int t = DOMAIN_DISK_TYPE_FILE, dev = DOMAIN_DISK_DEVICE_DISK;
    xmlNodePtr source = NULL, target = NULL;

    if (type && conf_enum_from_string(disk_type_raw, type) >= 0)
        return parse_disk_raw(ctx, n, type, d, error) ? g_steal_pointer(&d) : NULL;
    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !conf_xml_prop_enum(n, "type", disk_type_names, &t, error) ||
        !conf_xml_prop_enum(n, "device", disk_device_names, &dev, error))
        return NULL;
    d->type = t;
    d->device = dev;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        const char *name = (const char *)c->name;
        gboolean handled;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!parse_info_child(ctx, c, &d->info, TRUE, &handled, error))
            return NULL;
        if (handled)
            continue;
        if (strcmp(name, "driver") == 0) {
            if (!parse_disk_driver(c, d, error))
                return NULL;
        } else if (strcmp(name, "source") == 0) {
            source = c;
            if (!parse_disk_source(c, d, error))
                return NULL;
        } else if (strcmp(name, "backingStore") == 0) {
            d->backing_store = domain_raw_keep(ctx->def, c);
        } else if (strcmp(name, "target") == 0) {
            target = c;
        } else if (strcmp(name, "readonly") == 0) {
            if (!check_empty(c, error))
                return NULL;
            d->readonly = TRUE;
        } else if (strcmp(name, "shareable") == 0) {
            if (!check_empty(c, error))
                return NULL;
            d->shareable = TRUE;
        } else if (strcmp(name, "serial") == 0) {
            if (!conf_xml_check(c, NULL, NULL, TRUE, error))
                return NULL;
            d->serial = conf_xml_text(c);
            for (const char *p = d->serial; *p; p++)
                if (!g_ascii_isalnum(*p) && !strchr("_ .+-", *p)) {
                    conf_xml_error(error, c, "disk serial '%s' contains invalid characters "
                                   "(allowed: letters, digits, '_', ' ', '.', '+', '-')",
                                   d->serial);
                    return NULL;
                }
        }
    }
    if (!target) {
        conf_xml_error(error, n, "element 'target' is required");
        return NULL;
    }
    if (!parse_disk_target(target, d, error))
        return NULL;
    if (d->device == DOMAIN_DISK_DEVICE_FLOPPY && d->bus != DOMAIN_DISK_BUS_FDC) {
        conf_xml_error(error, target, "a floppy disk must be on bus 'fdc'");
        return NULL;
    }
    if (d->device != DOMAIN_DISK_DEVICE_FLOPPY && d->bus == DOMAIN_DISK_BUS_FDC) {
        conf_xml_error(error, target, "bus 'fdc' is only for floppy disks");
        return NULL;
    }
    if (d->tray && d->device != DOMAIN_DISK_DEVICE_CDROM &&
        d->device != DOMAIN_DISK_DEVICE_FLOPPY) {
        conf_xml_error(error, target, "attribute 'tray' is only valid for cdrom and floppy disks");
        return NULL;
    }
    if (d->type == DOMAIN_DISK_TYPE_VOLUME && !source) {
        conf_xml_error(error, n, "element 'source' is required for a disk of type 'volume'");
        return NULL;
    }
    if ((d->device == DOMAIN_DISK_DEVICE_DISK || d->device == DOMAIN_DISK_DEVICE_LUN) &&
        d->type != DOMAIN_DISK_TYPE_VOLUME && !d->src.path) {
        conf_xml_error(error, n, "a disk of device '%s' needs a source %s",
                       disk_device_names[d->device],
                       d->type == DOMAIN_DISK_TYPE_FILE ? "file" : "dev");
        return NULL;
    }
    if (d->device == DOMAIN_DISK_DEVICE_CDROM)
        d->readonly = TRUE;   /* as libvirt: a cdrom is always read-only */
    return g_steal_pointer(&d);
}

static void format_disk(GString *b, int ind, const DomainDiskDef *d, unsigned flags)
{
    if (d->raw) {
        conf_xml_format_node(b, ind, d->raw, NULL);
        return;
    }
    conf_buf_indent(b, ind);
    g_string_append_printf(b, "<disk type='%s' device='%s'>\n", disk_type_names[d->type],
                           disk_device_names[d->device]);
    ind += 2;
    if (d->driver.name || d->driver.format || d->driver.cache || d->driver.error_policy ||
        d->driver.io || d->driver.discard || d->driver.detect_zeroes) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<driver");
        conf_buf_attr(b, "name", d->driver.name);
        conf_buf_attr(b, "type", d->driver.format);
        conf_buf_attr(b, "cache", d->driver.cache);
        conf_buf_attr(b, "error_policy", d->driver.error_policy);
        conf_buf_attr(b, "io", d->driver.io);
        conf_buf_attr(b, "discard", d->driver.discard);
        conf_buf_attr(b, "detect_zeroes", d->driver.detect_zeroes);
        g_string_append(b, "/>\n");
    }
    if (d->src.path || d->src.pool || d->src.startup_policy) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<source");
        if (d->type == DOMAIN_DISK_TYPE_VOLUME) {
            conf_buf_attr(b, "pool", d->src.pool);
            conf_buf_attr(b, "volume", d->src.volume);
            conf_buf_attr(b, "mode", d->src.mode);
        } else {
            conf_buf_attr(b, d->type == DOMAIN_DISK_TYPE_FILE ? "file" : "dev", d->src.path);
        }
        conf_buf_attr(b, "startupPolicy", d->src.startup_policy);
        g_string_append(b, "/>\n");
    }
    if (d->backing_store)
        conf_xml_format_node(b, ind, d->backing_store, NULL);
    conf_buf_indent(b, ind);
    g_string_append(b, "<target");
    conf_buf_attr(b, "dev", d->dst);
    conf_buf_attr(b, "bus", domain_disk_bus_names[d->bus]);
    conf_buf_attr(b, "tray", d->tray);
    conf_buf_attr(b, "removable", conf_tristate_str(d->removable, TRUE));
    g_string_append(b, "/>\n");
    if (d->readonly) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<readonly/>\n");
    }
    if (d->shareable) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<shareable/>\n");
    }
    conf_buf_text_element(b, ind, "serial", d->serial);
    format_info(b, ind, &d->info, flags);
    conf_buf_indent(b, ind - 2);
    g_string_append(b, "</disk>\n");
}

/*
 * libvirt's virDomainDiskInsertPreAlloced(): disks are grouped by bus and
 * kept in target order within a bus.
 */
static void disk_insert(DomainDef *def, DomainDiskDef *disk)
{
    int insert_at = -1;
    int idx = domain_device_disk_name_index(disk->dst);

    for (int i = (int)def->disks->len - 1; i >= 0; i--) {
        DomainDiskDef *cur = def->disks->pdata[i];

        if (cur->bus == disk->bus && domain_device_disk_name_index(cur->dst) > idx)
            insert_at = i;
        else if (cur->bus == disk->bus && insert_at == -1)
            insert_at = i + 1;
    }
    if (insert_at == -1)
        insert_at = (int)def->disks->len;
    g_ptr_array_insert(def->disks, insert_at, disk);
}

/* ---- controllers ---- */

static const char *const *controller_models(DomainControllerType t)
{
    switch (t) {
    case DOMAIN_CONTROLLER_PCI:
        return pci_models;
    case DOMAIN_CONTROLLER_USB:
        return usb_models;
    case DOMAIN_CONTROLLER_SCSI:
        return scsi_models;
    case DOMAIN_CONTROLLER_IDE:
        return ide_models;
    case DOMAIN_CONTROLLER_VIRTIO_SERIAL:
        return virtio_models;
    default:
        return NULL;
    }
}

DomainControllerDef *domain_device_controller_new(DomainControllerType type, int index,
                                                  const char *model)
{
    DomainControllerDef *c = g_new0(DomainControllerDef, 1);

    c->type = type;
    c->index = index;
    c->model = g_strdup(model);
    return c;
}

/* libvirt's virDomainControllerInsertPreAlloced(), without USB companions. */
void domain_device_controller_insert(DomainDef *def, DomainControllerDef *cont)
{
    int insert_at = -1;

    for (int i = (int)def->controllers->len - 1; i >= 0; i--) {
        DomainControllerDef *cur = def->controllers->pdata[i];

        if (cur->type != cont->type)
            continue;
        if (cont->index == -1) {
            insert_at = i + 1;
            break;
        }
        if (cur->index > cont->index)
            insert_at = i;
        else if (insert_at == -1)
            insert_at = i + 1;
    }
    if (insert_at == -1)
        insert_at = (int)def->controllers->len;
    g_ptr_array_insert(def->controllers, insert_at, cont);
}

static DomainControllerDef *parse_controller(DomainParseCtx *ctx, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "type", "index", "model", "ports", "vectors", NULL };
    static const char *const children[] = {
        "*driver", "*model", "*target", "*master", "alias", "address", NULL,
    };
    g_autoptr(DomainControllerDef) c = g_new0(DomainControllerDef, 1);
    g_autofree char *type = conf_xml_prop_required(n, "type", error);
    const char *const *models;
    guint64 index;
    gboolean has_index;
    int t = -1;

    if (!type || !conf_xml_check(n, attrs, children, FALSE, error) ||
        !conf_xml_prop_enum(n, "type", domain_controller_type_names, &t, error) ||
        !conf_xml_prop_uint(n, "index", G_MAXINT16, &index, &has_index, error) ||
        !conf_xml_prop_uint(n, "ports", 255, &c->ports, &c->has_ports, error) ||
        !conf_xml_prop_uint(n, "vectors", 255, &c->vectors, &c->has_vectors, error))
        return NULL;
    c->type = t;
    c->index = has_index ? (int)index : -1;
    models = controller_models(c->type);
    if (models) {
        if (!conf_xml_prop_choice(n, "model", models, &c->model, error))
            return NULL;
    } else if ((c->model = conf_xml_prop(n, "model"))) {
        conf_xml_error(error, n, "controller type '%s' has no models", type);
        return NULL;
    }
    if ((c->has_ports || c->has_vectors) && c->type != DOMAIN_CONTROLLER_VIRTIO_SERIAL &&
        !(c->has_ports && !c->has_vectors && c->type == DOMAIN_CONTROLLER_USB)) {
        conf_xml_error(error, n, "attribute '%s' is not valid for a '%s' controller",
                       c->has_vectors ? "vectors" : "ports", type);
        return NULL;
    }
    for (xmlNodePtr ch = n->children; ch; ch = ch->next) {
        gboolean handled;

        if (ch->type != XML_ELEMENT_NODE)
            continue;
        if (!parse_info_child(ctx, ch, &c->info, FALSE, &handled, error))
            return NULL;
        if (handled)
            continue;
        if (!c->extra)
            c->extra = g_ptr_array_new();
        g_ptr_array_add(c->extra, domain_raw_keep(ctx->def, ch));
    }
    return g_steal_pointer(&c);
}

static void format_controller(GString *b, int ind, const DomainControllerDef *c, unsigned flags)
{
    conf_buf_indent(b, ind);
    g_string_append_printf(b, "<controller type='%s' index='%d'",
                           domain_controller_type_names[c->type], c->index);
    conf_buf_attr(b, "model", c->model);
    if (c->has_ports)
        g_string_append_printf(b, " ports='%u'", (guint)c->ports);
    if (c->has_vectors)
        g_string_append_printf(b, " vectors='%u'", (guint)c->vectors);
    if (!(c->extra && c->extra->len) && !info_has_output(&c->info, flags)) {
        g_string_append(b, "/>\n");
        return;
    }
    g_string_append(b, ">\n");
    for (guint i = 0; c->extra && i < c->extra->len; i++)
        conf_xml_format_node(b, ind + 2, c->extra->pdata[i], NULL);
    format_info(b, ind + 2, &c->info, flags);
    conf_buf_indent(b, ind);
    g_string_append(b, "</controller>\n");
}

/* ---- interfaces ---- */

static gboolean ifname_is_generated(const char *name)
{
    return g_str_has_prefix(name, "vnet") || g_str_has_prefix(name, "macvtap") ||
        g_str_has_prefix(name, "macvlan");
}

static DomainNetDef *parse_net(DomainParseCtx *ctx, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "type", NULL };
    static const char *const children[] = {
        "mac", "source", "target", "model", "driver", "link", "mtu", "boot", "alias",
        "address", NULL,
    };
    g_autoptr(DomainNetDef) d = g_new0(DomainNetDef, 1);
    g_autofree char *type = conf_xml_prop_required(n, "type", error);
    int t = -1;
    gboolean has_mac = FALSE;

    if (!type)
        return NULL;
    if (conf_enum_from_string(net_type_raw, type) >= 0) {
        d->type = DOMAIN_NET_OTHER;
        d->raw_what = g_strdup_printf("interface type '%s'", type);
        d->raw = domain_raw_keep(ctx->def, n);
        return g_steal_pointer(&d);
    }
    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !conf_xml_prop_enum(n, "type", net_type_names, &t, error))
        return NULL;
    d->type = t;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        const char *name = (const char *)c->name;
        gboolean handled;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!parse_info_child(ctx, c, &d->info, TRUE, &handled, error))
            return NULL;
        if (handled)
            continue;
        if (strcmp(name, "mac") == 0) {
            static const char *const a[] = { "address", NULL };
            g_autofree char *mac = NULL;

            if (!conf_xml_check(c, a, NULL, FALSE, error) ||
                !(mac = conf_xml_prop_required(c, "address", error)))
                return NULL;
            if (!conf_mac_parse(mac, d->mac)) {
                conf_xml_error(error, c, "invalid MAC address '%s'", mac);
                return NULL;
            }
            if (conf_mac_is_multicast(d->mac)) {
                conf_xml_error(error, c, "expected a unicast MAC address, found "
                               "multicast '%s'", mac);
                return NULL;
            }
            has_mac = TRUE;
        } else if (strcmp(name, "source") == 0) {
            static const char *const net_a[] = { "network", "portgroup", "portid", "bridge", NULL };
            static const char *const br_a[] = { "bridge", NULL };

            if (d->type == DOMAIN_NET_ETHERNET) {
                conf_xml_error(error, n, "element 'source' is not supported for an "
                               "interface of type 'ethernet'");
                return NULL;
            }
            if (d->type == DOMAIN_NET_NETWORK) {
                if (!conf_xml_check(c, net_a, NULL, FALSE, error) ||
                    !(d->source = conf_xml_prop_required(c, "network", error)))
                    return NULL;
                d->portgroup = conf_xml_prop(c, "portgroup");
                if (!(ctx->flags & DOMAIN_DEF_PARSE_INACTIVE)) {
                    d->live_bridge = conf_xml_prop(c, "bridge");
                    d->live_portid = conf_xml_prop(c, "portid");
                }
            } else if (!conf_xml_check(c, br_a, NULL, FALSE, error) ||
                       !(d->source = conf_xml_prop_required(c, "bridge", error))) {
                return NULL;
            }
        } else if (strcmp(name, "target") == 0) {
            static const char *const a[] = { "dev", "managed", NULL };

            if (!conf_xml_check(c, a, NULL, FALSE, error) ||
                !(d->ifname = conf_xml_prop_required(c, "dev", error)) ||
                !conf_xml_prop_tristate(c, "managed", FALSE, &d->managed, error))
                return NULL;
            if (d->managed && d->type != DOMAIN_NET_ETHERNET) {
                conf_xml_error(error, c, "attribute 'managed' is only valid for an "
                               "interface of type 'ethernet'");
                return NULL;
            }
            if (strlen(d->ifname) >= 16 || strchr(d->ifname, '/') || strchr(d->ifname, ' ')) {
                conf_xml_error(error, c, "invalid interface name '%s'", d->ifname);
                return NULL;
            }
            if ((ctx->flags & DOMAIN_DEF_PARSE_INACTIVE) && !d->managed &&
                ifname_is_generated(d->ifname))
                g_clear_pointer(&d->ifname, g_free);
        } else if (strcmp(name, "model") == 0) {
            static const char *const a[] = { "type", NULL };

            if (!conf_xml_check(c, a, NULL, FALSE, error) ||
                !(d->model = conf_xml_prop_required(c, "type", error)))
                return NULL;
            for (const char *p = d->model; *p; p++)
                if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-') {
                    conf_xml_error(error, c, "invalid interface model '%s'", d->model);
                    return NULL;
                }
        } else if (strcmp(name, "driver") == 0) {
            static const char *const a[] = { "name", "queues", NULL };

            if (!conf_xml_check(c, a, NULL, FALSE, error) ||
                !conf_xml_prop_choice(c, "name", net_driver_names, &d->driver_name, error) ||
                !conf_xml_prop_uint(c, "queues", 256, &d->driver_queues, NULL, error))
                return NULL;
        } else if (strcmp(name, "link") == 0) {
            static const char *const a[] = { "state", NULL };

            if (!conf_xml_check(c, a, NULL, FALSE, error) ||
                !conf_xml_prop_choice(c, "state", net_link_states, &d->link_state, error))
                return NULL;
        } else if (strcmp(name, "mtu") == 0) {
            static const char *const a[] = { "size", NULL };
            gboolean has = FALSE;

            if (!conf_xml_check(c, a, NULL, FALSE, error) ||
                !conf_xml_prop_uint(c, "size", 65535, &d->mtu, &has, error))
                return NULL;
            if (!has || d->mtu == 0) {
                conf_xml_error(error, c, "attribute 'size' must be a positive integer");
                return NULL;
            }
        }
    }
    if (d->type != DOMAIN_NET_ETHERNET && !d->source) {
        conf_xml_error(error, n, "element 'source' with attribute '%s' is required",
                       d->type == DOMAIN_NET_NETWORK ? "network" : "bridge");
        return NULL;
    }
    if (!has_mac)
        conf_mac_generate(d->mac);
    return g_steal_pointer(&d);
}

static void format_net(GString *b, int ind, const DomainNetDef *d, unsigned flags)
{
    char mac[CONF_MAC_STRING_LEN];
    gboolean inactive = flags & DOMAIN_DEF_FORMAT_INACTIVE;

    if (d->raw) {
        conf_xml_format_node(b, ind, d->raw, NULL);
        return;
    }
    conf_buf_indent(b, ind);
    g_string_append_printf(b, "<interface type='%s'>\n", net_type_names[d->type]);
    ind += 2;
    conf_mac_format(d->mac, mac);
    conf_buf_indent(b, ind);
    g_string_append_printf(b, "<mac address='%s'/>\n", mac);
    if (d->source) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<source");
        if (d->type == DOMAIN_NET_NETWORK) {
            conf_buf_attr(b, "network", d->source);
            conf_buf_attr(b, "portgroup", d->portgroup);
            if (!inactive) {
                conf_buf_attr(b, "portid", d->live_portid);
                conf_buf_attr(b, "bridge", d->live_bridge);
            }
        } else {
            conf_buf_attr(b, "bridge", d->source);
        }
        g_string_append(b, "/>\n");
    }
    if (d->ifname && (d->managed == CONF_OFF || !inactive || !ifname_is_generated(d->ifname))) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<target");
        conf_buf_attr(b, "dev", d->ifname);
        conf_buf_attr(b, "managed", conf_tristate_str(d->managed, FALSE));
        g_string_append(b, "/>\n");
    }
    if (d->model) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<model");
        conf_buf_attr(b, "type", d->model);
        g_string_append(b, "/>\n");
    }
    if (d->driver_name || d->driver_queues) {
        conf_buf_indent(b, ind);
        g_string_append(b, "<driver");
        conf_buf_attr(b, "name", d->driver_name);
        if (d->driver_queues)
            g_string_append_printf(b, " queues='%u'", (guint)d->driver_queues);
        g_string_append(b, "/>\n");
    }
    if (d->link_state) {
        conf_buf_indent(b, ind);
        g_string_append_printf(b, "<link state='%s'/>\n", d->link_state);
    }
    if (d->mtu) {
        conf_buf_indent(b, ind);
        g_string_append_printf(b, "<mtu size='%u'/>\n", (guint)d->mtu);
    }
    format_info(b, ind, &d->info, flags);
    conf_buf_indent(b, ind - 2);
    g_string_append(b, "</interface>\n");
}

/* ---- serial, console, channel ---- */

typedef enum { CHR_SERIAL, CHR_CONSOLE, CHR_CHANNEL } ChrKind;
static const char *const chr_kind_names[] = { "serial", "console", "channel" };

DomainChrDef *domain_device_chr_copy(const DomainChrDef *s)
{
    DomainChrDef *c = g_new0(DomainChrDef, 1);

    c->raw = s->raw;
    c->raw_what = g_strdup(s->raw_what);
    c->type = s->type;
    c->path = g_strdup(s->path);
    c->listen = s->listen;
    c->append = s->append;
    c->target_type = g_strdup(s->target_type);
    c->target_port = s->target_port;
    c->target_model = g_strdup(s->target_model);
    c->target_name = g_strdup(s->target_name);
    c->live_state = g_strdup(s->live_state);
    c->info.alias = g_strdup(s->info.alias);
    return c;
}

static gboolean parse_chr_source(DomainParseCtx *ctx, xmlNodePtr s, DomainChrDef *c,
                                 GError **error)
{
    static const char *const pty_a[] = { "path", NULL };
    static const char *const file_a[] = { "path", "append", NULL };
    static const char *const unix_a[] = { "mode", "path", NULL };
    static const char *const modes[] = { "bind", "connect", NULL };
    int mode = 0;

    switch (c->type) {
    case DOMAIN_CHR_PTY:
        if (!conf_xml_check(s, pty_a, NULL, FALSE, error))
            return FALSE;
        if (!(ctx->flags & DOMAIN_DEF_PARSE_INACTIVE))
            c->path = conf_xml_prop(s, "path");
        return TRUE;
    case DOMAIN_CHR_FILE:
        return conf_xml_check(s, file_a, NULL, FALSE, error) &&
            (c->path = conf_xml_prop_required(s, "path", error)) &&
            conf_xml_prop_tristate(s, "append", TRUE, &c->append, error);
    case DOMAIN_CHR_UNIX:
        if (!conf_xml_check(s, unix_a, NULL, FALSE, error) ||
            !conf_xml_prop_enum(s, "mode", modes, &mode, error))
            return FALSE;
        c->listen = mode == 0;
        c->path = conf_xml_prop(s, "path");
        if (c->path && !g_path_is_absolute(c->path))
            return conf_xml_error(error, s, "socket path '%s' must be absolute", c->path);
        return TRUE;
    default:
        return conf_xml_error(error, s, "a '%s' character device has no source",
                              domain_chr_type_names[c->type]);
    }
}

static gboolean parse_chr_target(xmlNodePtr t, ChrKind kind, DomainChrDef *c, GError **error)
{
    static const char *const serial_a[] = { "type", "port", NULL };
    static const char *const serial_ch[] = { "model", NULL };
    static const char *const console_a[] = { "type", "port", NULL };
    static const char *const channel_a[] = { "type", "name", "state", NULL };
    guint64 port;
    gboolean has_port = FALSE;

    switch (kind) {
    case CHR_SERIAL:
        if (!conf_xml_check(t, serial_a, serial_ch, FALSE, error) ||
            !conf_xml_prop_choice(t, "type", serial_target_types, &c->target_type, error) ||
            !conf_xml_prop_uint(t, "port", 3, &port, &has_port, error))
            return FALSE;
        if (conf_xml_child(t, "model")) {
            static const char *const ma[] = { "name", NULL };
            xmlNodePtr m = conf_xml_child(t, "model");

            if (!conf_xml_check(m, ma, NULL, FALSE, error) ||
                !conf_xml_prop_choice(m, "name", serial_target_models, &c->target_model, error))
                return FALSE;
            if (!c->target_model)
                return conf_xml_error(error, m, "attribute 'name' is required");
        }
        break;
    case CHR_CONSOLE:
        if (!conf_xml_check(t, console_a, NULL, FALSE, error) ||
            !conf_xml_prop_choice(t, "type", console_target_types, &c->target_type, error) ||
            !conf_xml_prop_uint(t, "port", G_MAXINT16, &port, &has_port, error))
            return FALSE;
        break;
    case CHR_CHANNEL:
        if (!conf_xml_check(t, channel_a, NULL, FALSE, error))
            return FALSE;
        c->target_type = conf_xml_prop(t, "type");
        c->target_name = conf_xml_prop(t, "name");
        if (!conf_xml_prop_choice(t, "state", channel_states, &c->live_state, error))
            return FALSE;
        if (c->target_name && (!*c->target_name || strchr(c->target_name, '/')))
            return conf_xml_error(error, t, "invalid channel name '%s'", c->target_name);
        break;
    }
    if (has_port)
        c->target_port = (int)port;
    return TRUE;
}

static DomainChrDef *parse_chr(DomainParseCtx *ctx, xmlNodePtr n, ChrKind kind, GError **error)
{
    static const char *const attrs[] = { "type", NULL };
    static const char *const console_attrs[] = { "type", "tty", NULL };
    static const char *const children[] = { "source", "target", "alias", "address", NULL };
    g_autoptr(DomainChrDef) c = g_new0(DomainChrDef, 1);
    g_autofree char *type = conf_xml_prop_required(n, "type", error);
    xmlNodePtr target;
    int t = -1;

    if (!type)
        return NULL;
    c->target_port = -1;
    c->listen = TRUE;
    target = conf_xml_child(n, "target");
    if (kind == CHR_CHANNEL && target) {
        g_autofree char *tt = conf_xml_prop(target, "type");
        if (!tt) {
            conf_xml_error(error, target, "attribute 'type' is required");
            return NULL;
        }
        if (strcmp(tt, "virtio") != 0) {
            static const char *const known[] = { "guestfwd", "xen", NULL };
            if (conf_enum_from_string(known, tt) < 0) {
                conf_xml_error(error, target, "unknown channel target type '%s'", tt);
                return NULL;
            }
            c->type = DOMAIN_CHR_OTHER;
            c->raw_what = g_strdup_printf("channel target type '%s'", tt);
            c->raw = domain_raw_keep(ctx->def, n);
            return g_steal_pointer(&c);
        }
    }
    if (conf_enum_from_string(chr_type_raw, type) >= 0) {
        c->type = DOMAIN_CHR_OTHER;
        c->raw_what = g_strdup_printf("%s type '%s'", chr_kind_names[kind], type);
        if (target && kind != CHR_CHANNEL) {
            guint64 port;
            gboolean has = FALSE;
            if (!conf_xml_prop_uint(target, "port", G_MAXINT16, &port, &has, error))
                return NULL;
            if (has)
                c->target_port = (int)port;
        }
        c->raw = domain_raw_keep(ctx->def, n);
        return g_steal_pointer(&c);
    }
    if (!conf_xml_check(n, kind == CHR_CONSOLE ? console_attrs : attrs, children, FALSE, error) ||
        !conf_xml_prop_enum(n, "type", domain_chr_type_names, &t, error))
        return NULL;
    if (t < 0 || t == DOMAIN_CHR_OTHER) {
        conf_xml_error(error, n, "unknown character device type '%s'", type);
        return NULL;
    }
    c->type = t;
    for (xmlNodePtr ch = n->children; ch; ch = ch->next) {
        const char *name = (const char *)ch->name;
        gboolean handled;

        if (ch->type != XML_ELEMENT_NODE)
            continue;
        if (!parse_info_child(ctx, ch, &c->info, FALSE, &handled, error))
            return NULL;
        if (handled)
            continue;
        if (strcmp(name, "source") == 0 && !parse_chr_source(ctx, ch, c, error))
            return NULL;
        if (strcmp(name, "target") == 0 && !parse_chr_target(ch, kind, c, error))
            return NULL;
    }
    if (kind == CHR_CHANNEL) {
        if (!target) {
            conf_xml_error(error, n, "element 'target' is required");
            return NULL;
        }
        if (c->type != DOMAIN_CHR_UNIX && c->type != DOMAIN_CHR_PTY &&
            c->type != DOMAIN_CHR_NULL) {
            conf_xml_error(error, n, "a virtio channel of type '%s' is not supported", type);
            return NULL;
        }
    }
    if (c->type == DOMAIN_CHR_FILE && !c->path) {
        conf_xml_error(error, n, "element 'source' with attribute 'path' is required");
        return NULL;
    }
    if ((ctx->flags & DOMAIN_DEF_PARSE_INACTIVE))
        g_clear_pointer(&c->live_state, g_free);
    return g_steal_pointer(&c);
}

static void format_chr(GString *b, int ind, const DomainChrDef *c, ChrKind kind, unsigned flags)
{
    gboolean inactive = flags & DOMAIN_DEF_FORMAT_INACTIVE;

    if (c->raw) {
        conf_xml_format_node(b, ind, c->raw, NULL);
        return;
    }
    conf_buf_indent(b, ind);
    g_string_append_printf(b, "<%s type='%s'", chr_kind_names[kind],
                           domain_chr_type_names[c->type]);
    if (kind == CHR_CONSOLE && c->type == DOMAIN_CHR_PTY && c->path && !inactive)
        conf_buf_attr(b, "tty", c->path);
    g_string_append(b, ">\n");
    ind += 2;
    switch (c->type) {
    case DOMAIN_CHR_PTY:
        if (c->path && !inactive) {
            conf_buf_indent(b, ind);
            g_string_append(b, "<source");
            conf_buf_attr(b, "path", c->path);
            g_string_append(b, "/>\n");
        }
        break;
    case DOMAIN_CHR_FILE:
        conf_buf_indent(b, ind);
        g_string_append(b, "<source");
        conf_buf_attr(b, "path", c->path);
        conf_buf_attr(b, "append", conf_tristate_str(c->append, TRUE));
        g_string_append(b, "/>\n");
        break;
    case DOMAIN_CHR_UNIX:
        if (c->path) {
            conf_buf_indent(b, ind);
            g_string_append_printf(b, "<source mode='%s'", c->listen ? "bind" : "connect");
            conf_buf_attr(b, "path", c->path);
            g_string_append(b, "/>\n");
        }
        break;
    default:
        break;
    }
    conf_buf_indent(b, ind);
    switch (kind) {
    case CHR_SERIAL:
        g_string_append(b, "<target");
        conf_buf_attr(b, "type", c->target_type);
        g_string_append_printf(b, " port='%d'", c->target_port);
        if (c->target_model) {
            g_string_append(b, ">\n");
            conf_buf_indent(b, ind + 2);
            g_string_append_printf(b, "<model name='%s'/>\n", c->target_model);
            conf_buf_indent(b, ind);
            g_string_append(b, "</target>\n");
        } else {
            g_string_append(b, "/>\n");
        }
        break;
    case CHR_CONSOLE:
        g_string_append_printf(b, "<target type='%s' port='%d'/>\n",
                               c->target_type ? c->target_type : "serial", c->target_port);
        break;
    case CHR_CHANNEL:
        g_string_append(b, "<target");
        conf_buf_attr(b, "type", c->target_type);
        conf_buf_attr(b, "name", c->target_name);
        if (!inactive)
            conf_buf_attr(b, "state", c->live_state);
        g_string_append(b, "/>\n");
        break;
    }
    format_info(b, ind, &c->info, flags);
    conf_buf_indent(b, ind - 2);
    g_string_append_printf(b, "</%s>\n", chr_kind_names[kind]);
}

/* ---- input, memballoon, rng, watchdog ---- */

DomainInputDef *domain_device_input_new(const char *type, const char *bus)
{
    DomainInputDef *i = g_new0(DomainInputDef, 1);

    i->type = g_strdup(type);
    i->bus = g_strdup(bus);
    return i;
}

static DomainInputDef *parse_input(DomainParseCtx *ctx, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "type", "bus", "model", NULL };
    static const char *const children[] = { "alias", "address", NULL };
    g_autoptr(DomainInputDef) d = g_new0(DomainInputDef, 1);
    g_autofree char *type = conf_xml_prop_required(n, "type", error);

    if (!type)
        return NULL;
    if (conf_enum_from_string(input_types_raw, type) >= 0) {
        d->raw_what = g_strdup_printf("input device '%s'", type);
        d->raw = domain_raw_keep(ctx->def, n);
        return g_steal_pointer(&d);
    }
    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !conf_xml_prop_choice(n, "type", input_types, &d->type, error) ||
        !conf_xml_prop_choice(n, "bus", input_buses, &d->bus, error) ||
        !conf_xml_prop_choice(n, "model", virtio_models, &d->model, error))
        return NULL;
    if (!d->bus)
        d->bus = g_strdup(strcmp(d->type, "tablet") == 0 ? "usb" : "ps2");
    if (strcmp(d->bus, "ps2") == 0 && strcmp(d->type, "tablet") == 0) {
        conf_xml_error(error, n, "bus 'ps2' does not support a tablet");
        return NULL;
    }
    if (d->model && strcmp(d->bus, "virtio") != 0) {
        conf_xml_error(error, n, "attribute 'model' is only valid on bus 'virtio'");
        return NULL;
    }
    for (xmlNodePtr c = n->children; c; c = c->next) {
        gboolean handled;

        if (c->type == XML_ELEMENT_NODE && !parse_info_child(ctx, c, &d->info, FALSE,
                                                             &handled, error))
            return NULL;
    }
    return g_steal_pointer(&d);
}

static void format_input(GString *b, int ind, const DomainInputDef *d, unsigned flags)
{
    if (d->raw) {
        conf_xml_format_node(b, ind, d->raw, NULL);
        return;
    }
    conf_buf_indent(b, ind);
    g_string_append(b, "<input");
    conf_buf_attr(b, "type", d->type);
    conf_buf_attr(b, "bus", d->bus);
    conf_buf_attr(b, "model", d->model);
    if (!info_has_output(&d->info, flags)) {
        g_string_append(b, "/>\n");
        return;
    }
    g_string_append(b, ">\n");
    format_info(b, ind + 2, &d->info, flags);
    conf_buf_indent(b, ind);
    g_string_append(b, "</input>\n");
}

static DomainMemballoonDef *parse_memballoon(DomainParseCtx *ctx, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "model", "autodeflate", "freePageReporting", NULL };
    static const char *const children[] = { "stats", "alias", "address", NULL };
    g_autoptr(DomainMemballoonDef) m = g_new0(DomainMemballoonDef, 1);

    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !(m->model = conf_xml_prop_required(n, "model", error)))
        return NULL;
    g_clear_pointer(&m->model, g_free);
    if (!conf_xml_prop_choice(n, "model", balloon_models, &m->model, error) ||
        !conf_xml_prop_tristate(n, "autodeflate", TRUE, &m->autodeflate, error) ||
        !conf_xml_prop_tristate(n, "freePageReporting", TRUE, &m->free_page_reporting, error))
        return NULL;
    for (xmlNodePtr c = n->children; c; c = c->next) {
        gboolean handled;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!parse_info_child(ctx, c, &m->info, FALSE, &handled, error))
            return NULL;
        if (!handled) {   /* stats */
            static const char *const sa[] = { "period", NULL };
            if (!conf_xml_check(c, sa, NULL, FALSE, error) ||
                !conf_xml_prop_uint(c, "period", G_MAXINT, &m->stats_period, &m->has_stats,
                                    error))
                return NULL;
            if (!m->has_stats) {
                conf_xml_error(error, c, "attribute 'period' is required");
                return NULL;
            }
        }
    }
    if (strcmp(m->model, "none") == 0 && (m->has_stats || m->info.addr.type)) {
        conf_xml_error(error, n, "a memballoon of model 'none' takes no stats or address");
        return NULL;
    }
    return g_steal_pointer(&m);
}

static void format_memballoon(GString *b, int ind, const DomainMemballoonDef *m, unsigned flags)
{
    conf_buf_indent(b, ind);
    g_string_append(b, "<memballoon");
    conf_buf_attr(b, "model", m->model);
    conf_buf_attr(b, "autodeflate", conf_tristate_str(m->autodeflate, TRUE));
    conf_buf_attr(b, "freePageReporting", conf_tristate_str(m->free_page_reporting, TRUE));
    if (!m->has_stats && !info_has_output(&m->info, flags)) {
        g_string_append(b, "/>\n");
        return;
    }
    g_string_append(b, ">\n");
    if (m->has_stats) {
        conf_buf_indent(b, ind + 2);
        g_string_append_printf(b, "<stats period='%u'/>\n", (guint)m->stats_period);
    }
    format_info(b, ind + 2, &m->info, flags);
    conf_buf_indent(b, ind);
    g_string_append(b, "</memballoon>\n");
}

static DomainRngDef *parse_rng(DomainParseCtx *ctx, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "model", NULL };
    static const char *const children[] = { "rate", "backend", "alias", "address", NULL };
    static const char *const backends[] = { "random", "builtin", NULL };
    g_autoptr(DomainRngDef) r = g_new0(DomainRngDef, 1);
    xmlNodePtr be = conf_xml_child(n, "backend");
    g_autofree char *bmodel = be ? conf_xml_prop(be, "model") : NULL;

    if (bmodel && strcmp(bmodel, "egd") == 0) {
        r->raw_what = g_strdup("rng backend 'egd'");
        r->raw = domain_raw_keep(ctx->def, n);
        return g_steal_pointer(&r);
    }
    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !(r->model = conf_xml_prop_required(n, "model", error)))
        return NULL;
    g_clear_pointer(&r->model, g_free);
    if (!conf_xml_prop_choice(n, "model", virtio_models, &r->model, error))
        return NULL;
    if (!be) {
        conf_xml_error(error, n, "element 'backend' is required");
        return NULL;
    }
    for (xmlNodePtr c = n->children; c; c = c->next) {
        const char *name = (const char *)c->name;
        gboolean handled;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!parse_info_child(ctx, c, &r->info, FALSE, &handled, error))
            return NULL;
        if (handled)
            continue;
        if (strcmp(name, "rate") == 0) {
            static const char *const ra[] = { "bytes", "period", NULL };
            gboolean has_bytes = FALSE;

            if (!conf_xml_check(c, ra, NULL, FALSE, error) ||
                !conf_xml_prop_uint(c, "bytes", G_MAXUINT, &r->rate_bytes, &has_bytes, error) ||
                !conf_xml_prop_uint(c, "period", G_MAXUINT, &r->rate_period, NULL, error))
                return NULL;
            if (!has_bytes || r->rate_bytes == 0) {
                conf_xml_error(error, c, "attribute 'bytes' must be a positive integer");
                return NULL;
            }
            r->has_rate = TRUE;
        } else if (strcmp(name, "backend") == 0) {
            static const char *const ba[] = { "model", NULL };

            if (!conf_xml_check(c, ba, NULL, TRUE, error) ||
                !conf_xml_prop_choice(c, "model", backends, &r->backend, error))
                return NULL;
            if (!r->backend) {
                conf_xml_error(error, c, "attribute 'model' is required");
                return NULL;
            }
            r->backend_path = conf_xml_text(c);
            g_strstrip(r->backend_path);
            if (!*r->backend_path)
                g_clear_pointer(&r->backend_path, g_free);
            if (r->backend_path && strcmp(r->backend, "builtin") == 0) {
                conf_xml_error(error, c, "the 'builtin' backend takes no path");
                return NULL;
            }
            if (r->backend_path && !g_path_is_absolute(r->backend_path)) {
                conf_xml_error(error, c, "backend path '%s' must be absolute", r->backend_path);
                return NULL;
            }
        }
    }
    return g_steal_pointer(&r);
}

static void format_rng(GString *b, int ind, const DomainRngDef *r, unsigned flags)
{
    if (r->raw) {
        conf_xml_format_node(b, ind, r->raw, NULL);
        return;
    }
    conf_buf_indent(b, ind);
    g_string_append_printf(b, "<rng model='%s'>\n", r->model);
    if (r->has_rate) {
        conf_buf_indent(b, ind + 2);
        g_string_append_printf(b, "<rate bytes='%u'", (guint)r->rate_bytes);
        if (r->rate_period)
            g_string_append_printf(b, " period='%u'", (guint)r->rate_period);
        g_string_append(b, "/>\n");
    }
    conf_buf_indent(b, ind + 2);
    g_string_append_printf(b, "<backend model='%s'", r->backend);
    if (r->backend_path) {
        g_string_append_c(b, '>');
        conf_buf_escape(b, r->backend_path);
        g_string_append(b, "</backend>\n");
    } else {
        g_string_append(b, "/>\n");
    }
    format_info(b, ind + 2, &r->info, flags);
    conf_buf_indent(b, ind);
    g_string_append(b, "</rng>\n");
}

static DomainWatchdogDef *parse_watchdog(DomainParseCtx *ctx, xmlNodePtr n, GError **error)
{
    static const char *const attrs[] = { "model", "action", NULL };
    static const char *const children[] = { "alias", "address", NULL };
    g_autoptr(DomainWatchdogDef) w = g_new0(DomainWatchdogDef, 1);

    if (!conf_xml_check(n, attrs, children, FALSE, error) ||
        !(w->model = conf_xml_prop_required(n, "model", error)))
        return NULL;
    g_clear_pointer(&w->model, g_free);
    if (!conf_xml_prop_choice(n, "model", watchdog_models, &w->model, error) ||
        !conf_xml_prop_choice(n, "action", watchdog_actions, &w->action, error))
        return NULL;
    if (!w->action)
        w->action = g_strdup("reset");
    for (xmlNodePtr c = n->children; c; c = c->next) {
        gboolean handled;

        if (c->type == XML_ELEMENT_NODE &&
            !parse_info_child(ctx, c, &w->info, FALSE, &handled, error))
            return NULL;
    }
    return g_steal_pointer(&w);
}

static void format_watchdog(GString *b, int ind, const DomainWatchdogDef *w, unsigned flags)
{
    conf_buf_indent(b, ind);
    g_string_append_printf(b, "<watchdog model='%s' action='%s'", w->model, w->action);
    if (!info_has_output(&w->info, flags)) {
        g_string_append(b, "/>\n");
        return;
    }
    g_string_append(b, ">\n");
    format_info(b, ind + 2, &w->info, flags);
    conf_buf_indent(b, ind);
    g_string_append(b, "</watchdog>\n");
}

/* ---- devices kept verbatim ---- */

static char *raw_device_what(xmlNodePtr n)
{
    g_autofree char *type = conf_xml_prop(n, "type");
    g_autofree char *model = conf_xml_prop(n, "model");
    const char *name = (const char *)n->name;
    xmlNodePtr m;

    if (!type && strcmp(name, "video") == 0 && (m = conf_xml_child(n, "model")))
        type = conf_xml_prop(m, "type");
    if (!type && !model && (m = conf_xml_child(n, "model")))
        type = conf_xml_prop(m, "type");
    if (type || model)
        return g_strdup_printf("%s device '%s'", name, type ? type : model);
    return g_strdup_printf("%s device", name);
}

/* ---- the <devices> element ---- */

static void remember(DomainParseCtx *ctx, gpointer dev, xmlNodePtr n)
{
    g_hash_table_insert(ctx->nodes, dev, n);
}

gboolean domain_device_parse_all(DomainParseCtx *ctx, xmlNodePtr devices, GError **error)
{
    DomainDef *def = ctx->def;

    if (!conf_xml_check(devices, NULL, conf_xml_any_child, FALSE, error))
        return FALSE;
    for (xmlNodePtr n = devices->children; n; n = n->next) {
        const char *name = (const char *)n->name;
        int kind;

        if (n->type != XML_ELEMENT_NODE)
            continue;
        kind = n->ns ? -1 : conf_enum_from_string(device_kinds, name);
        if (kind < 0)
            return conf_xml_error(error, devices, "unknown element '%s%s%s'",
                                  n->ns && n->ns->prefix ? (const char *)n->ns->prefix : "",
                                  n->ns && n->ns->prefix ? ":" : "", name);
        switch ((DeviceKind)kind) {
        case K_EMULATOR:
            if (def->emulator)
                return conf_xml_error(error, devices, "element 'emulator' may appear only once");
            if (!conf_xml_check(n, NULL, NULL, TRUE, error))
                return FALSE;
            def->emulator = conf_xml_text(n);
            break;
        case K_DISK: {
            DomainDiskDef *d = parse_disk(ctx, n, error);
            if (!d)
                return FALSE;
            remember(ctx, d, n);
            disk_insert(def, d);
            break;
        }
        case K_CONTROLLER: {
            DomainControllerDef *c = parse_controller(ctx, n, error);
            if (!c)
                return FALSE;
            remember(ctx, c, n);
            domain_device_controller_insert(def, c);
            break;
        }
        case K_INTERFACE: {
            DomainNetDef *d = parse_net(ctx, n, error);
            if (!d)
                return FALSE;
            remember(ctx, d, n);
            g_ptr_array_add(def->nets, d);
            break;
        }
        case K_SERIAL:
        case K_CONSOLE:
        case K_CHANNEL: {
            ChrKind ck = kind == K_SERIAL ? CHR_SERIAL : kind == K_CONSOLE ? CHR_CONSOLE :
                CHR_CHANNEL;
            DomainChrDef *c = parse_chr(ctx, n, ck, error);
            if (!c)
                return FALSE;
            remember(ctx, c, n);
            g_ptr_array_add(ck == CHR_SERIAL ? def->serials :
                            ck == CHR_CONSOLE ? def->consoles : def->channels, c);
            break;
        }
        case K_INPUT: {
            DomainInputDef *d = parse_input(ctx, n, error);
            if (!d)
                return FALSE;
            remember(ctx, d, n);
            g_ptr_array_add(def->inputs, d);
            break;
        }
        case K_MEMBALLOON:
            if (def->memballoon)
                return conf_xml_error(error, n, "only one memballoon device is supported");
            if (!(def->memballoon = parse_memballoon(ctx, n, error)))
                return FALSE;
            remember(ctx, def->memballoon, n);
            break;
        case K_RNG: {
            DomainRngDef *r = parse_rng(ctx, n, error);
            if (!r)
                return FALSE;
            remember(ctx, r, n);
            g_ptr_array_add(def->rngs, r);
            break;
        }
        case K_WATCHDOG:
            if (def->watchdog)
                return conf_xml_error(error, n, "only one watchdog device is supported");
            if (!(def->watchdog = parse_watchdog(ctx, n, error)))
                return FALSE;
            remember(ctx, def->watchdog, n);
            break;
        default: {
            g_autofree char *what = raw_device_what(n);
            DomainRawDef *r = domain_raw_new(def, n, what);
            remember(ctx, r, n);
            g_ptr_array_add(def->raw_devices, r);
            break;
        }
        }
    }
    return TRUE;
}

void domain_device_format_all(const DomainDef *def, GString *b, int ind, unsigned flags)
{
    for (int k = 0; k < K_LAST; k++) {
        switch ((DeviceKind)k) {
        case K_EMULATOR:
            conf_buf_text_element(b, ind, "emulator", def->emulator);
            break;
        case K_DISK:
            for (guint i = 0; i < def->disks->len; i++)
                format_disk(b, ind, def->disks->pdata[i], flags);
            break;
        case K_CONTROLLER:
            for (guint i = 0; i < def->controllers->len; i++)
                format_controller(b, ind, def->controllers->pdata[i], flags);
            break;
        case K_INTERFACE:
            for (guint i = 0; i < def->nets->len; i++)
                format_net(b, ind, def->nets->pdata[i], flags);
            break;
        case K_SERIAL:
            for (guint i = 0; i < def->serials->len; i++)
                format_chr(b, ind, def->serials->pdata[i], CHR_SERIAL, flags);
            break;
        case K_CONSOLE:
            for (guint i = 0; i < def->consoles->len; i++) {
                const DomainChrDef *c = def->consoles->pdata[i];
                /*
                 * As libvirt: a console with target 'serial' on an HVM guest
                 * is an alias of the serial port with the same index and is
                 * printed from that serial's data.
                 */
                if ((!c->target_type || strcmp(c->target_type, "serial") == 0) &&
                    i < def->serials->len && !c->raw &&
                    !((DomainChrDef *)def->serials->pdata[i])->raw) {
                    g_autoptr(DomainChrDef) alias = domain_device_chr_copy(def->serials->pdata[i]);
                    g_free(alias->target_type);
                    alias->target_type = g_strdup("serial");
                    g_clear_pointer(&alias->target_model, g_free);
                    format_chr(b, ind, alias, CHR_CONSOLE, flags);
                } else {
                    format_chr(b, ind, c, CHR_CONSOLE, flags);
                }
            }
            break;
        case K_CHANNEL:
            for (guint i = 0; i < def->channels->len; i++)
                format_chr(b, ind, def->channels->pdata[i], CHR_CHANNEL, flags);
            break;
        case K_INPUT:
            for (guint i = 0; i < def->inputs->len; i++)
                format_input(b, ind, def->inputs->pdata[i], flags);
            break;
        case K_WATCHDOG:
            if (def->watchdog)
                format_watchdog(b, ind, def->watchdog, flags);
            break;
        case K_MEMBALLOON:
            if (def->memballoon)
                format_memballoon(b, ind, def->memballoon, flags);
            break;
        case K_RNG:
            for (guint i = 0; i < def->rngs->len; i++)
                format_rng(b, ind, def->rngs->pdata[i], flags);
            break;
        default:
            for (guint i = 0; i < def->raw_devices->len; i++) {
                const DomainRawDef *r = def->raw_devices->pdata[i];
                if (strcmp(r->name, device_kinds[k]) != 0)
                    continue;
                conf_xml_format_node(b, ind, r->node,
                                     k == K_GRAPHICS && !(flags & DOMAIN_DEF_FORMAT_SECURE) ?
                                     "passwd" : NULL);
            }
            break;
        }
    }
}
