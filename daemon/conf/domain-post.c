/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * After parsing: the defaults libvirt fills in when a domain is defined,
 * implicit devices, deterministic address assignment, and the checks that
 * need more than one element. Runs while the parsed document is alive so
 * that errors can name the element they are about.
 */
#include <string.h>

#include "vireo/conf-value.h"
#include "vireo/util.h"
#include "domain-internal.h"

#define PCI_SLOTS 32

typedef struct PciMap {
    gboolean used[PCI_SLOTS];            /* bus 0000:00, any function */
    GHashTable *owners;                  /* "dddd:bb:ss.f" -> owner path */
} PciMap;

/* The element for dev, or its child called child if it has one. */
static xmlNodePtr node_of(DomainParseCtx *ctx, gconstpointer dev, const char *child)
{
    xmlNodePtr n = domain_parse_node(ctx, dev);
    xmlNodePtr c = child && g_hash_table_contains(ctx->nodes, dev) ?
        conf_xml_child(n, child) : NULL;

    return c ? c : n;
}

static xmlNodePtr top_node(DomainParseCtx *ctx, const char *name)
{
    xmlNodePtr n = conf_xml_child(ctx->root, name);

    return n ? n : ctx->root;
}

static gboolean machine_is_i440fx(const char *m)
{
    return g_str_has_prefix(m, "pc-i440fx-") || strcmp(m, "pc") == 0;
}

/* ---- top level ---- */

static gboolean post_top(DomainParseCtx *ctx, GError **error)
{
    DomainDef *def = ctx->def;

    if (def->max_memory_kib && def->max_memory_kib < def->memory_kib)
        return conf_xml_error(error, top_node(ctx, "maxMemory"), "maximum memory (%"
                              G_GUINT64_FORMAT " KiB) is less than memory (%" G_GUINT64_FORMAT
                              " KiB)", def->max_memory_kib, def->memory_kib);
    if (!def->current_memory_kib || def->current_memory_kib > def->memory_kib)
        def->current_memory_kib = def->memory_kib;
    if (!def->vcpus)
        def->vcpus = 1;
    if (!def->vcpus_current)
        def->vcpus_current = def->vcpus;
    if (!def->vcpu_placement)
        def->vcpu_placement = g_strdup("static");
    if (def->cpu.has_topology) {
        guint64 n = def->cpu.sockets * def->cpu.dies * def->cpu.cores * def->cpu.threads;
        if (n != def->vcpus) {
            xmlNodePtr cpu = top_node(ctx, "cpu");
            xmlNodePtr topo = conf_xml_child(cpu, "topology");
            return conf_xml_error(error, topo ? topo : cpu, "CPU topology (%u sockets x %u "
                                  "dies x %u cores x %u threads = %" G_GUINT64_FORMAT ") does "
                                  "not match the vcpu count (%u)", (guint)def->cpu.sockets,
                                  (guint)def->cpu.dies, (guint)def->cpu.cores,
                                  (guint)def->cpu.threads, n, def->vcpus);
        }
    }
    if (!def->os.arch)
        def->os.arch = g_strdup("x86_64");
    if (!def->os.machine) {
        def->os.machine = g_strdup("vireo");
    } else if (strcmp(def->os.machine, "pc") == 0) {
        g_free(def->os.machine);
        def->os.machine = g_strdup("pc-i440fx-7.2");   /* libvirt 9.0 with QEMU 7.2 */
    } else if (strcmp(def->os.machine, "q35") == 0) {
        g_free(def->os.machine);
        def->os.machine = g_strdup("pc-q35-7.2");
    }
    if (!def->clock.offset)
        def->clock.offset = g_strdup("utc");
    if (!def->on_poweroff)
        def->on_poweroff = g_strdup("destroy");
    if (!def->on_reboot)
        def->on_reboot = g_strdup("restart");
    if (!def->on_crash)
        def->on_crash = g_strdup("destroy");
    return TRUE;
}

/* ---- character devices ---- */

static const char *serial_model_for(const char *target_type)
{
    static const char *const same[] = { "isa-serial", "usb-serial", "pci-serial", NULL };

    return conf_enum_from_string(same, target_type) >= 0 ? target_type : NULL;
}

static gboolean post_chr(DomainParseCtx *ctx, GError **error)
{
    DomainDef *def = ctx->def;

    /* libvirt: a serial without a port takes the highest port so far plus one */
    for (guint i = 0; i < def->serials->len; i++) {
        DomainChrDef *c = def->serials->pdata[i];

        if (c->target_port < 0) {
            int max = -1;
            for (guint j = 0; j < i; j++)
                max = MAX(max, ((DomainChrDef *)def->serials->pdata[j])->target_port);
            c->target_port = max + 1;
        }
        if (c->raw)
            continue;
        if (!c->target_type)
            c->target_type = g_strdup("isa-serial");
        if (!c->target_model && serial_model_for(c->target_type))
            c->target_model = g_strdup(serial_model_for(c->target_type));
        if (strcmp(c->target_type, "isa-serial") == 0 && c->target_port > 3)
            return conf_xml_error(error, node_of(ctx, c, "target"), "an ISA serial port "
                                  "must be 0 to 3");
    }
    for (guint i = 0; i < def->serials->len; i++)
        for (guint j = 0; j < i; j++) {
            DomainChrDef *a = def->serials->pdata[i], *b = def->serials->pdata[j];
            if (a->target_port == b->target_port) {
                g_autofree char *other = conf_xml_path(node_of(ctx, b, NULL));
                return conf_xml_error(error, node_of(ctx, a, "target"), "serial port %d is "
                                      "already used by %s", a->target_port, other);
            }
        }

    /* libvirt's virDomainDefAddConsoleCompat() for x86 HVM guests */
    if (def->consoles->len) {
        DomainChrDef *c0 = def->consoles->pdata[0];

        if (!c0->raw && !c0->target_type)
            c0->target_type = g_strdup("serial");
        if (!c0->raw && strcmp(c0->target_type, "serial") == 0 && !def->serials->len) {
            DomainChrDef *s = domain_device_chr_copy(c0);
            g_free(s->target_type);
            s->target_type = g_strdup("isa-serial");
            s->target_model = g_strdup("isa-serial");
            s->target_port = 0;
            s->info.alias = g_strdup(c0->info.alias);
            g_ptr_array_insert(def->serials, 0, s);
        }
    } else if (def->serials->len) {
        DomainChrDef *s0 = def->serials->pdata[0];

        if (!s0->raw && strcmp(s0->target_type, "isa-serial") == 0) {
            DomainChrDef *c = domain_device_chr_copy(s0);
            g_free(c->target_type);
            c->target_type = g_strdup("serial");
            g_clear_pointer(&c->target_model, g_free);
            g_ptr_array_add(def->consoles, c);
        }
    }
    for (guint i = 0; i < def->consoles->len; i++) {
        DomainChrDef *c = def->consoles->pdata[i];

        if (c->raw)
            continue;
        if (!c->target_type)
            c->target_type = g_strdup("serial");
        if (strcmp(c->target_type, "serial") == 0 && i < def->serials->len)
            c->target_port = ((DomainChrDef *)def->serials->pdata[i])->target_port;
        else if (c->target_port < 0)
            c->target_port = (int)i;
        if (strcmp(c->target_type, "serial") == 0 && i >= def->serials->len)
            return conf_xml_error(error, node_of(ctx, c, "target"), "console %u has target "
                                  "'serial' but there is no serial port %u", i, i);
    }

    /* virtio channels: names are unique, ports on virtio-serial are assigned */
    for (guint i = 0; i < def->channels->len; i++) {
        DomainChrDef *c = def->channels->pdata[i];

        if (c->raw)
            continue;
        if (c->info.addr.type != DOMAIN_ADDR_NONE &&
            c->info.addr.type != DOMAIN_ADDR_VIRTIO_SERIAL)
            return conf_xml_error(error, node_of(ctx, c, "address"), "a virtio channel needs "
                                  "an address of type 'virtio-serial'");
        for (guint j = 0; j < i && c->target_name; j++) {
            DomainChrDef *o = def->channels->pdata[j];
            if (!o->raw && o->target_name && strcmp(o->target_name, c->target_name) == 0) {
                g_autofree char *other = conf_xml_path(node_of(ctx, o, NULL));
                return conf_xml_error(error, node_of(ctx, c, "target"), "channel name '%s' is "
                                      "already used by %s", c->target_name, other);
            }
        }
    }
    for (guint i = 0; i < def->channels->len; i++) {
        DomainChrDef *c = def->channels->pdata[i];
        DomainAddress *a = &c->info.addr;

        if (c->raw)
            continue;
        if (a->type == DOMAIN_ADDR_VIRTIO_SERIAL && a->vserial.port != 0) {
            for (guint j = 0; j < i; j++) {
                DomainAddress *o = &((DomainChrDef *)def->channels->pdata[j])->info.addr;
                if (o->type == DOMAIN_ADDR_VIRTIO_SERIAL &&
                    o->vserial.controller == a->vserial.controller &&
                    o->vserial.bus == a->vserial.bus && o->vserial.port == a->vserial.port)
                    return conf_xml_error(error, node_of(ctx, c, "address"), "virtio-serial "
                                          "port %u is used twice", a->vserial.port);
            }
            continue;
        }
        {
            guint ctrl = a->type == DOMAIN_ADDR_VIRTIO_SERIAL ? a->vserial.controller : 0;
            guint bus = a->type == DOMAIN_ADDR_VIRTIO_SERIAL ? a->vserial.bus : 0;
            guint port = 1;
            gboolean clash;

            /* port 0 belongs to a virtio console; channels start at 1 */
            do {
                clash = FALSE;
                for (guint j = 0; j < def->channels->len; j++) {
                    DomainAddress *o = &((DomainChrDef *)def->channels->pdata[j])->info.addr;
                    if (j != i && o->type == DOMAIN_ADDR_VIRTIO_SERIAL &&
                        o->vserial.controller == ctrl && o->vserial.bus == bus &&
                        o->vserial.port == port) {
                        clash = TRUE;
                        port++;
                        break;
                    }
                }
            } while (clash);
            a->type = DOMAIN_ADDR_VIRTIO_SERIAL;
            a->vserial.controller = ctrl;
            a->vserial.bus = bus;
            a->vserial.port = port;
        }
    }
    return TRUE;
}

/* ---- inputs, disks, controllers ---- */

static void maybe_add_input(DomainDef *def, const char *type, const char *bus)
{
    for (guint i = 0; i < def->inputs->len; i++) {
        DomainInputDef *in = def->inputs->pdata[i];
        if (!in->raw && strcmp(in->type, type) == 0 && strcmp(in->bus, bus) == 0)
            return;
    }
    g_ptr_array_add(def->inputs, domain_device_input_new(type, bus));
}

static DomainControllerDef *find_controller(DomainDef *def, DomainControllerType type, int idx)
{
    for (guint i = 0; i < def->controllers->len; i++) {
        DomainControllerDef *c = def->controllers->pdata[i];
        if (c->type == type && c->index == idx)
            return c;
    }
    return NULL;
}

static void maybe_add_controller(DomainDef *def, DomainControllerType type, int idx,
                                 const char *model)
{
    if (!find_controller(def, type, idx))
        domain_device_controller_insert(def, domain_device_controller_new(type, idx, model));
}

static DomainControllerType disk_controller_type(DomainDiskBus bus)
{
    switch (bus) {
    case DOMAIN_DISK_BUS_SCSI:
        return DOMAIN_CONTROLLER_SCSI;
    case DOMAIN_DISK_BUS_FDC:
        return DOMAIN_CONTROLLER_FDC;
    case DOMAIN_DISK_BUS_IDE:
        return DOMAIN_CONTROLLER_IDE;
    default:
        return DOMAIN_CONTROLLER_SATA;
    }
}

static gboolean post_disks(DomainParseCtx *ctx, GError **error)
{
    DomainDef *def = ctx->def;
    static const DomainDiskBus drive_buses[] = {
        DOMAIN_DISK_BUS_SCSI, DOMAIN_DISK_BUS_FDC, DOMAIN_DISK_BUS_IDE, DOMAIN_DISK_BUS_SATA,
    };

    for (guint i = 0; i < def->disks->len; i++) {
        DomainDiskDef *d = def->disks->pdata[i];
        DomainAddress *a = &d->info.addr;
        int idx = domain_device_disk_name_index(d->dst);
        gboolean drive_bus = d->bus == DOMAIN_DISK_BUS_SCSI || d->bus == DOMAIN_DISK_BUS_FDC ||
            d->bus == DOMAIN_DISK_BUS_IDE || d->bus == DOMAIN_DISK_BUS_SATA;

        for (guint j = 0; j < i; j++) {
            DomainDiskDef *o = def->disks->pdata[j];
            if (strcmp(o->dst, d->dst) == 0) {
                g_autofree char *other = conf_xml_path(node_of(ctx, o, NULL));
                return conf_xml_error(error, node_of(ctx, d, "target"), "target '%s' is "
                                      "already used by %s", d->dst, other);
            }
        }
        if (d->raw)
            continue;
        if (a->type != DOMAIN_ADDR_NONE) {
            gboolean ok = drive_bus ? a->type == DOMAIN_ADDR_DRIVE :
                d->bus == DOMAIN_DISK_BUS_VIRTIO ? a->type == DOMAIN_ADDR_PCI :
                d->bus == DOMAIN_DISK_BUS_USB ? a->type == DOMAIN_ADDR_USB : TRUE;
            if (!ok)
                return conf_xml_error(error, node_of(ctx, d, "address"), "an address of type "
                                      "'%s' is not valid for a disk on bus '%s'",
                                      a->type == DOMAIN_ADDR_PCI ? "pci" :
                                      a->type == DOMAIN_ADDR_DRIVE ? "drive" :
                                      a->type == DOMAIN_ADDR_USB ? "usb" :
                                      a->type == DOMAIN_ADDR_ISA ? "isa" : "virtio-serial",
                                      domain_disk_bus_names[d->bus]);
            continue;
        }
        /* libvirt's virDomainDiskDefAssignAddress() (no wide SCSI) */
        if (!drive_bus || idx < 0)
            continue;
        a->type = DOMAIN_ADDR_DRIVE;
        switch (d->bus) {
        case DOMAIN_DISK_BUS_SCSI:
            a->drive.controller = idx / 7;
            a->drive.unit = idx % 7;
            break;
        case DOMAIN_DISK_BUS_FDC:
            a->drive.controller = idx / 2;
            a->drive.unit = idx % 2;
            break;
        case DOMAIN_DISK_BUS_IDE:
            a->drive.controller = idx / 4;
            a->drive.bus = (idx % 4) / 2;
            a->drive.unit = idx % 2;
            break;
        default:
            a->drive.controller = idx / 6;
            a->drive.unit = idx % 6;
            break;
        }
    }
    for (guint i = 0; i < def->disks->len; i++)
        for (guint j = 0; j < i; j++) {
            DomainDiskDef *d = def->disks->pdata[i], *o = def->disks->pdata[j];
            DomainAddress *a = &d->info.addr, *b = &o->info.addr;
            if (a->type == DOMAIN_ADDR_DRIVE && b->type == DOMAIN_ADDR_DRIVE &&
                d->bus == o->bus && a->drive.controller == b->drive.controller &&
                a->drive.bus == b->drive.bus && a->drive.target == b->drive.target &&
                a->drive.unit == b->drive.unit) {
                g_autofree char *other = conf_xml_path(node_of(ctx, o, NULL));
                return conf_xml_error(error, node_of(ctx, d, NULL), "drive address "
                                      "%u:%u:%u:%u is already used by %s", a->drive.controller,
                                      a->drive.bus, a->drive.target, a->drive.unit, other);
            }
        }
    /* libvirt's virDomainDefAddDiskControllersForType(): controllers 0..max */
    for (guint b = 0; b < G_N_ELEMENTS(drive_buses); b++) {
        int max = -1;
        for (guint i = 0; i < def->disks->len; i++) {
            DomainDiskDef *d = def->disks->pdata[i];
            if (!d->raw && d->bus == drive_buses[b] && d->info.addr.type == DOMAIN_ADDR_DRIVE)
                max = MAX(max, (int)d->info.addr.drive.controller);
        }
        for (int i = 0; i <= max; i++)
            maybe_add_controller(def, disk_controller_type(drive_buses[b]), i, NULL);
    }
    return TRUE;
}

/* A controller without index takes the lowest free one of its type. */
static void controllers_assign_index(DomainDef *def)
{
    for (guint i = 0; i < def->controllers->len; i++) {
        DomainControllerDef *c = def->controllers->pdata[i];
        int idx = 0;

        if (c->index >= 0)
            continue;
        while (find_controller(def, c->type, idx))
            idx++;
        c->index = idx;
    }
}

/*
 * Re-insert every controller the way parsing inserts them, so that the
 * output parses back into the same order (formatting is a fixed point).
 */
static void controllers_sort(DomainDef *def)
{
    GPtrArray *old = def->controllers;

    def->controllers = g_ptr_array_new_with_free_func(domain_device_controller_free);
    for (guint i = 0; i < old->len; i++)
        domain_device_controller_insert(def, old->pdata[i]);
    g_ptr_array_set_free_func(old, NULL);
    g_ptr_array_unref(old);
}

static gboolean post_controllers(DomainParseCtx *ctx, GError **error)
{
    DomainDef *def = ctx->def;
    DomainControllerDef *root;
    const char *root_model = machine_is_i440fx(def->os.machine) ? "pci-root" : "pcie-root";
    for (guint i = 0; i < def->controllers->len; i++)
        for (guint j = 0; j < i; j++) {
            DomainControllerDef *c = def->controllers->pdata[i], *o = def->controllers->pdata[j];
            /* USB companion controllers share the index of their master */
            gboolean companion = c->type == DOMAIN_CONTROLLER_USB &&
                ((c->extra && c->extra->len) || (o->extra && o->extra->len));
            if (c->type == o->type && c->index == o->index && !companion) {
                g_autofree char *other = conf_xml_path(node_of(ctx, o, NULL));
                return conf_xml_error(error, node_of(ctx, c, NULL), "controller '%s' index %d "
                                      "is already used by %s",
                                      domain_controller_type_names[c->type], c->index, other);
            }
        }
    for (guint i = 0; i < def->channels->len; i++) {
        DomainChrDef *c = def->channels->pdata[i];
        if (!c->raw)
            maybe_add_controller(def, DOMAIN_CONTROLLER_VIRTIO_SERIAL,
                                 (int)c->info.addr.vserial.controller, NULL);
    }
    for (guint i = 0; i < def->consoles->len; i++) {
        DomainChrDef *c = def->consoles->pdata[i];
        if (!c->raw && strcmp(c->target_type, "virtio") == 0)
            maybe_add_controller(def, DOMAIN_CONTROLLER_VIRTIO_SERIAL, 0, NULL);
    }
    root = find_controller(def, DOMAIN_CONTROLLER_PCI, 0);
    if (!root) {
        domain_device_controller_insert(def, domain_device_controller_new(DOMAIN_CONTROLLER_PCI,
                                                                          0, root_model));
    } else {
        if (!root->model)
            root->model = g_strdup(root_model);
        if (strcmp(root->model, root_model) != 0)
            return conf_xml_error(error, node_of(ctx, root, NULL), "the PCI controller with "
                                  "index 0 must have model '%s' for machine '%s'", root_model,
                                  def->os.machine);
        if (root->info.addr.type != DOMAIN_ADDR_NONE)
            return conf_xml_error(error, node_of(ctx, root, "address"), "the PCI root "
                                  "controller cannot have an address");
    }
    for (guint i = 0; i < def->controllers->len; i++) {
        DomainControllerDef *c = def->controllers->pdata[i];
        if (c->type == DOMAIN_CONTROLLER_PCI && c->index > 0 && c->model &&
            (strcmp(c->model, "pci-root") == 0 || strcmp(c->model, "pcie-root") == 0))
            return conf_xml_error(error, node_of(ctx, c, NULL), "only the PCI controller with "
                                  "index 0 can be a root");
        if (c->info.addr.type != DOMAIN_ADDR_NONE && c->info.addr.type != DOMAIN_ADDR_PCI)
            return conf_xml_error(error, node_of(ctx, c, "address"), "a controller needs an "
                                  "address of type 'pci'");
    }
    return TRUE;
}

/* ---- PCI addresses ---- */

static gboolean pci_reserve(DomainParseCtx *ctx, PciMap *map, gconstpointer dev, xmlNodePtr n,
                            const DomainAddress *a, GError **error)
{
    g_autofree char *key = g_strdup_printf("%04x:%02x:%02x.%x", a->pci.domain, a->pci.bus,
                                           a->pci.slot, a->pci.function);
    const char *owner = g_hash_table_lookup(map->owners, key);

    if (a->pci.domain == 0 && a->pci.bus == 0 && a->pci.slot == 0)
        return conf_xml_error(error, dev ? node_of(ctx, dev, "address") : n, "PCI address "
                              "%s is the host bridge", key);
    if (owner)
        return conf_xml_error(error, dev ? node_of(ctx, dev, "address") : n, "PCI address "
                              "%s is already used by %s", key, owner);
    g_hash_table_insert(map->owners, g_steal_pointer(&key),
                        conf_xml_path(dev ? node_of(ctx, dev, NULL) : n));
    if (a->pci.domain == 0 && a->pci.bus == 0)
        map->used[a->pci.slot] = TRUE;
    return TRUE;
}

/* Address of a device kept verbatim, read leniently: only to avoid its slot. */
static gboolean pci_reserve_raw(DomainParseCtx *ctx, PciMap *map, xmlNodePtr raw,
                                GError **error)
{
    xmlNodePtr an = raw ? conf_xml_child(raw, "address") : NULL;
    g_autofree char *type = an ? conf_xml_prop(an, "type") : NULL;
    const char *names[] = { "domain", "bus", "slot", "function" };
    guint64 v[4] = { 0, 0, 0, 0 };
    DomainAddress a = { 0 };

    if (!type || strcmp(type, "pci") != 0)
        return TRUE;
    for (int i = 0; i < 4; i++) {
        g_autofree char *s = conf_xml_prop(an, names[i]);
        if (s && !conf_parse_uint(s, 0, i == 0 ? 0xffff : i == 1 ? 0xff : i == 2 ? 0x1f : 7,
                                  &v[i]))
            return conf_xml_error(error, an, "invalid PCI address attribute %s='%s'",
                                  names[i], s);
        if (!s && i == 2)
            return TRUE;
    }
    a.type = DOMAIN_ADDR_PCI;
    a.pci.domain = v[0];
    a.pci.bus = v[1];
    a.pci.slot = v[2];
    a.pci.function = v[3];
    return pci_reserve(ctx, map, NULL, raw, &a, error);
}

static gboolean pci_assign(DomainParseCtx *ctx, PciMap *map, gconstpointer dev,
                           DomainDeviceInfo *info, GError **error)
{
    if (info->addr.type == DOMAIN_ADDR_PCI)
        return TRUE;
    if (info->addr.type != DOMAIN_ADDR_NONE)
        return conf_xml_error(error, node_of(ctx, dev, "address"), "this device needs an "
                              "address of type 'pci'");
    for (guint slot = 1; slot < PCI_SLOTS; slot++) {
        if (map->used[slot])
            continue;
        map->used[slot] = TRUE;
        info->addr.type = DOMAIN_ADDR_PCI;
        info->addr.pci.slot = slot;
        return TRUE;
    }
    return conf_xml_error(error, node_of(ctx, dev, NULL), "no free PCI slot left on bus 0");
}

static gboolean controller_on_pci(const DomainControllerDef *c, gboolean bridges)
{
    if (c->type == DOMAIN_CONTROLLER_PCI)
        return bridges && c->index > 0;
    if (bridges)
        return FALSE;
    switch (c->type) {
    case DOMAIN_CONTROLLER_SCSI:
    case DOMAIN_CONTROLLER_SATA:
    case DOMAIN_CONTROLLER_VIRTIO_SERIAL:
        return TRUE;
    case DOMAIN_CONTROLLER_USB:
        return !c->model || strcmp(c->model, "none") != 0;
    default:
        return FALSE;
    }
}

static gboolean post_pci(DomainParseCtx *ctx, GError **error)
{
    DomainDef *def = ctx->def;
    g_autoptr(GHashTable) owners = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    PciMap map = { .owners = owners };
    GPtrArray *lists[] = { def->disks, def->controllers, def->nets, def->serials,
                           def->channels, def->inputs, def->rngs };
    gboolean ok = TRUE;

    map.used[0] = TRUE;
    /* every PCI address given in the XML, typed or kept verbatim */
#define RESERVE(dev, info)                                                     \
    ((info)->addr.type != DOMAIN_ADDR_PCI ||                                   \
     pci_reserve(ctx, &map, (dev), NULL, &(info)->addr, error))
    for (guint i = 0; ok && i < def->disks->len; i++) {
        DomainDiskDef *d = def->disks->pdata[i];
        ok = d->raw ? pci_reserve_raw(ctx, &map, d->raw, error) : RESERVE(d, &d->info);
    }
    for (guint i = 0; ok && i < def->controllers->len; i++) {
        DomainControllerDef *c = def->controllers->pdata[i];
        ok = RESERVE(c, &c->info);
    }
    for (guint i = 0; ok && i < def->nets->len; i++) {
        DomainNetDef *n = def->nets->pdata[i];
        ok = n->raw ? pci_reserve_raw(ctx, &map, n->raw, error) : RESERVE(n, &n->info);
    }
    for (guint l = 3; ok && l < 5; l++)
        for (guint i = 0; ok && i < lists[l]->len; i++) {
            DomainChrDef *c = lists[l]->pdata[i];
            ok = c->raw ? pci_reserve_raw(ctx, &map, c->raw, error) : RESERVE(c, &c->info);
        }
    for (guint i = 0; ok && i < def->inputs->len; i++) {
        DomainInputDef *in = def->inputs->pdata[i];
        ok = in->raw ? pci_reserve_raw(ctx, &map, in->raw, error) : RESERVE(in, &in->info);
    }
    if (ok && def->memballoon)
        ok = RESERVE(def->memballoon, &def->memballoon->info);
    for (guint i = 0; ok && i < def->rngs->len; i++) {
        DomainRngDef *r = def->rngs->pdata[i];
        ok = r->raw ? pci_reserve_raw(ctx, &map, r->raw, error) : RESERVE(r, &r->info);
    }
    if (ok && def->watchdog)
        ok = RESERVE(def->watchdog, &def->watchdog->info);
    for (guint i = 0; ok && i < def->raw_devices->len; i++)
        ok = pci_reserve_raw(ctx, &map, ((DomainRawDef *)def->raw_devices->pdata[i])->node,
                             error);
#undef RESERVE
    if (!ok)
        return FALSE;

    /* then free slots in libvirt's order of device kinds */
    for (guint i = 0; i < def->controllers->len; i++) {
        DomainControllerDef *c = def->controllers->pdata[i];
        if (controller_on_pci(c, TRUE) && !pci_assign(ctx, &map, c, &c->info, error))
            return FALSE;
    }
    for (guint i = 0; i < def->nets->len; i++) {
        DomainNetDef *n = def->nets->pdata[i];
        if (!n->raw && !pci_assign(ctx, &map, n, &n->info, error))
            return FALSE;
    }
    for (guint i = 0; i < def->controllers->len; i++) {
        DomainControllerDef *c = def->controllers->pdata[i];
        if (controller_on_pci(c, FALSE) && !pci_assign(ctx, &map, c, &c->info, error))
            return FALSE;
    }
    for (guint i = 0; i < def->disks->len; i++) {
        DomainDiskDef *d = def->disks->pdata[i];
        if (!d->raw && d->bus == DOMAIN_DISK_BUS_VIRTIO &&
            !pci_assign(ctx, &map, d, &d->info, error))
            return FALSE;
    }
    if (def->memballoon && g_str_has_prefix(def->memballoon->model, "virtio") &&
        !pci_assign(ctx, &map, def->memballoon, &def->memballoon->info, error))
        return FALSE;
    for (guint i = 0; i < def->rngs->len; i++) {
        DomainRngDef *r = def->rngs->pdata[i];
        if (!r->raw && !pci_assign(ctx, &map, r, &r->info, error))
            return FALSE;
    }
    if (def->watchdog && strcmp(def->watchdog->model, "i6300esb") == 0 &&
        !pci_assign(ctx, &map, def->watchdog, &def->watchdog->info, error))
        return FALSE;
    for (guint i = 0; i < def->inputs->len; i++) {
        DomainInputDef *in = def->inputs->pdata[i];
        if (!in->raw && strcmp(in->bus, "virtio") == 0 &&
            !pci_assign(ctx, &map, in, &in->info, error))
            return FALSE;
    }
    return TRUE;
}

/* ---- checks across devices ---- */

typedef struct DeviceRef {
    gconstpointer dev;
    DomainDeviceInfo *info;
} DeviceRef;

static GArray *all_infos(DomainDef *def)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(DeviceRef));
    GPtrArray *chr[] = { def->serials, def->consoles, def->channels };
    DeviceRef r;

#define ADD(d, i) do { r.dev = (d); r.info = (i); g_array_append_val(a, r); } while (0)
    for (guint i = 0; i < def->disks->len; i++) {
        DomainDiskDef *d = def->disks->pdata[i];
        if (!d->raw)
            ADD(d, &d->info);
    }
    for (guint i = 0; i < def->controllers->len; i++)
        ADD(def->controllers->pdata[i], &((DomainControllerDef *)def->controllers->pdata[i])->info);
    for (guint i = 0; i < def->nets->len; i++) {
        DomainNetDef *n = def->nets->pdata[i];
        if (!n->raw)
            ADD(n, &n->info);
    }
    for (guint l = 0; l < G_N_ELEMENTS(chr); l++)
        for (guint i = 0; i < chr[l]->len; i++) {
            DomainChrDef *c = chr[l]->pdata[i];
            /* a console that mirrors a serial port shares its alias */
            if (!c->raw && !(l == 1 && strcmp(c->target_type, "serial") == 0 &&
                             i < def->serials->len))
                ADD(c, &c->info);
        }
    for (guint i = 0; i < def->inputs->len; i++) {
        DomainInputDef *in = def->inputs->pdata[i];
        if (!in->raw)
            ADD(in, &in->info);
    }
    if (def->memballoon)
        ADD(def->memballoon, &def->memballoon->info);
    for (guint i = 0; i < def->rngs->len; i++) {
        DomainRngDef *rg = def->rngs->pdata[i];
        if (!rg->raw)
            ADD(rg, &rg->info);
    }
    if (def->watchdog)
        ADD(def->watchdog, &def->watchdog->info);
#undef ADD
    return a;
}

static gboolean post_cross(DomainParseCtx *ctx, GError **error)
{
    DomainDef *def = ctx->def;
    g_autoptr(GArray) refs = all_infos(def);
    gboolean device_boot = FALSE;

    for (guint i = 0; i < refs->len; i++) {
        DeviceRef *a = &g_array_index(refs, DeviceRef, i);

        if (a->info->boot_order)
            device_boot = TRUE;
        for (guint j = 0; j < i; j++) {
            DeviceRef *b = &g_array_index(refs, DeviceRef, j);
            g_autofree char *other = NULL;

            if (a->info->boot_order && a->info->boot_order == b->info->boot_order) {
                other = conf_xml_path(node_of(ctx, b->dev, NULL));
                return conf_xml_error(error, node_of(ctx, a->dev, "boot"), "boot order %u is "
                                      "already used by %s", a->info->boot_order, other);
            }
            if (a->info->alias && b->info->alias && strcmp(a->info->alias, b->info->alias) == 0) {
                other = conf_xml_path(node_of(ctx, b->dev, NULL));
                return conf_xml_error(error, node_of(ctx, a->dev, "alias"), "alias '%s' is "
                                      "already used by %s", a->info->alias, other);
            }
        }
    }
    if (device_boot && def->os.nboot) {
        xmlNodePtr boot = ctx->os_node ? conf_xml_child(ctx->os_node, "boot") : NULL;
        return conf_xml_error(error, boot ? boot : ctx->root, "per-device boot elements "
                              "cannot be used together with os/boot elements");
    }
    if (!device_boot && !def->os.nboot)
        def->os.boot[def->os.nboot++] = g_strdup("hd");

    for (guint i = 0; i < def->nets->len; i++) {
        DomainNetDef *n = def->nets->pdata[i];

        if (n->raw)
            continue;
        if (!n->model)
            n->model = g_strdup("virtio");
        for (guint j = 0; j < i && n->ifname; j++) {
            DomainNetDef *o = def->nets->pdata[j];
            if (!o->raw && o->ifname && strcmp(o->ifname, n->ifname) == 0) {
                g_autofree char *other = conf_xml_path(node_of(ctx, o, NULL));
                return conf_xml_error(error, node_of(ctx, n, "target"), "interface name '%s' "
                                      "is already used by %s", n->ifname, other);
            }
        }
    }
    for (guint i = 0; i < def->inputs->len; i++) {
        DomainInputDef *in = def->inputs->pdata[i];
        gboolean usb;

        if (in->raw || in->info.addr.type == DOMAIN_ADDR_NONE)
            continue;
        usb = strcmp(in->bus, "usb") == 0;
        if ((usb && in->info.addr.type != DOMAIN_ADDR_USB) ||
            (strcmp(in->bus, "virtio") == 0 && in->info.addr.type != DOMAIN_ADDR_PCI) ||
            strcmp(in->bus, "ps2") == 0)
            return conf_xml_error(error, node_of(ctx, in, "address"), "this address type is "
                                  "not valid for an input on bus '%s'", in->bus);
    }
    return TRUE;
}

gboolean domain_post_parse(DomainParseCtx *ctx, GError **error)
{
    DomainDef *def = ctx->def;

    controllers_assign_index(def);
    controllers_sort(def);
    if (!post_top(ctx, error) || !post_chr(ctx, error) || !post_disks(ctx, error))
        return FALSE;
    /* libvirt's QEMU driver adds these for every x86 machine with an i8042 */
    maybe_add_input(def, "mouse", "ps2");
    maybe_add_input(def, "keyboard", "ps2");
    if (!post_controllers(ctx, error) || !post_cross(ctx, error) || !post_pci(ctx, error))
        return FALSE;
    return TRUE;
}
