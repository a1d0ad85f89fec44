/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The domain XML vireo-install defines: written from the InstallConfig,
 * then parsed and formatted by daemon/conf, so that what is printed
 * (--print-xml) is validated and is exactly what a define stores, with
 * the defaults (UUID, MACs, controllers, PCI addresses) filled in.
 */
#include <string.h>
#include <sys/stat.h>

#include "vireo/domain-conf.h"
#include "vireo/install-config.h"

/* @before, then @value escaped for XML text or attributes, then @after. */
static void add_escaped(GString *x, const char *before, const char *value, const char *after)
{
    g_autofree char *esc = g_markup_escape_text(value, -1);

    g_string_append(x, before);
    g_string_append(x, esc);
    g_string_append(x, after);
}

/* vda, vdb, ... vdz, vdaa (libvirt's disk names). */
static char *disk_target(const char *prefix, guint index)
{
    g_autoptr(GString) s = g_string_new(NULL);

    index++;
    while (index) {
        index--;
        g_string_prepend_c(s, (char)('a' + index % 26));
        index /= 26;
    }
    return g_strdup_printf("%s%s", prefix, s->str);
}

static const char *bus_prefix(const char *bus)
{
    if (!strcmp(bus, "virtio"))
        return "vd";
    if (!strcmp(bus, "ide"))
        return "hd";
    return "sd";                /* sata, scsi */
}

static void add_disks(GString *x, const InstallConfig *cfg)
{
    guint used[3] = { 0 };      /* vd, hd, sd */

    for (guint i = 0; i < cfg->disks->len; i++) {
        const InstallDisk *d = g_ptr_array_index(cfg->disks, i);
        const char *prefix = bus_prefix(d->bus);
        guint *n = &used[!strcmp(prefix, "vd") ? 0 : !strcmp(prefix, "hd") ? 1 : 2];
        g_autofree char *dev = disk_target(prefix, (*n)++);
        struct stat st;
        gboolean block = stat(d->path, &st) == 0 && S_ISBLK(st.st_mode);

        g_string_append_printf(x, "    <disk type='%s' device='%s'>\n", block ? "block" : "file",
                               d->device);
        g_string_append_printf(x, "      <driver name='qemu' type='%s'/>\n", d->format);
        add_escaped(x, block ? "      <source dev='" : "      <source file='", d->path, "'/>\n");
        g_string_append_printf(x, "      <target dev='%s' bus='%s'/>\n", dev, d->bus);
        if (d->readonly)
            g_string_append(x, "      <readonly/>\n");
        if (d->boot_order)
            g_string_append_printf(x, "      <boot order='%u'/>\n", d->boot_order);
        g_string_append(x, "    </disk>\n");
    }
}

static void add_nets(GString *x, const InstallConfig *cfg)
{
    for (guint i = 0; i < cfg->nets->len; i++) {
        const InstallNet *n = g_ptr_array_index(cfg->nets, i);

        if (n->bridge) {
            g_string_append(x, "    <interface type='bridge'>\n");
            add_escaped(x, "      <source bridge='", n->bridge, "'/>\n");
        } else {
            g_string_append(x, "    <interface type='network'>\n");
            add_escaped(x, "      <source network='", n->network, "'/>\n");
        }
        if (n->mac)
            add_escaped(x, "      <mac address='", n->mac, "'/>\n");
        add_escaped(x, "      <model type='", n->model, "'/>\n");
        g_string_append(x, "    </interface>\n");
    }
}

static void add_cpu(GString *x, const InstallConfig *cfg)
{
    gboolean topo = cfg->sockets > 0;

    if (!strcmp(cfg->cpu, "host-passthrough") || !strcmp(cfg->cpu, "host-model"))
        g_string_append_printf(x, "  <cpu mode='%s'%s>\n", cfg->cpu, topo ? "" : "/");
    else
        add_escaped(x, "  <cpu mode='custom' match='exact'>\n    <model>", cfg->cpu, "</model>\n");
    if (topo)
        g_string_append_printf(x, "    <topology sockets='%u' cores='%u' threads='%u'/>\n",
                               cfg->sockets, cfg->cores, cfg->threads);
    if (topo || (strcmp(cfg->cpu, "host-passthrough") && strcmp(cfg->cpu, "host-model")))
        g_string_append(x, "  </cpu>\n");
}

static char *write_xml(const InstallConfig *cfg)
{
    const InstallOsInfo *os = install_osinfo_find(cfg->osinfo);
    g_autoptr(GString) x = g_string_new("<domain type='kvm'>\n");
    gboolean per_device_boot = FALSE;

    add_escaped(x, "  <name>", cfg->name, "</name>\n");
    if (cfg->uuid)
        add_escaped(x, "  <uuid>", cfg->uuid, "</uuid>\n");
    /* Which OS this is, as virt-install records it for virt-manager. */
    g_string_append(x, "  <metadata>\n"
                    "    <libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\n");
    g_string_append_printf(x, "      <libosinfo:os id=\"vireo:%s\"/>\n", os->id);
    g_string_append(x, "    </libosinfo:libosinfo>\n  </metadata>\n");
    g_string_append_printf(x, "  <memory unit='MiB'>%" G_GUINT64_FORMAT "</memory>\n",
                           cfg->memory_mib);
    if (cfg->current_memory_mib)
        g_string_append_printf(x, "  <currentMemory unit='MiB'>%" G_GUINT64_FORMAT
                               "</currentMemory>\n", cfg->current_memory_mib);
    if (cfg->vcpus != cfg->max_vcpus)
        g_string_append_printf(x, "  <vcpu current='%u'>%u</vcpu>\n", cfg->vcpus, cfg->max_vcpus);
    else
        g_string_append_printf(x, "  <vcpu>%u</vcpu>\n", cfg->vcpus);

    g_string_append_printf(x, "  <os%s>\n", cfg->uefi ? " firmware='efi'" : "");
    if (cfg->machine)
        add_escaped(x, "    <type arch='x86_64' machine='", cfg->machine, "'>hvm</type>\n");
    else
        g_string_append(x, "    <type arch='x86_64'>hvm</type>\n");
    if (cfg->kernel)
        add_escaped(x, "    <kernel>", cfg->kernel, "</kernel>\n");
    if (cfg->initrd)
        add_escaped(x, "    <initrd>", cfg->initrd, "</initrd>\n");
    if (cfg->kernel_args)
        add_escaped(x, "    <cmdline>", cfg->kernel_args, "</cmdline>\n");
    for (guint i = 0; i < cfg->disks->len; i++)
        per_device_boot |= ((InstallDisk *)g_ptr_array_index(cfg->disks, i))->boot_order != 0;
    if (!per_device_boot) {
        for (guint i = 0; i < cfg->boot_devs->len; i++)
            g_string_append_printf(x, "    <boot dev='%s'/>\n",
                                   (char *)g_ptr_array_index(cfg->boot_devs, i));
        if (!cfg->boot_devs->len && !cfg->kernel)
            g_string_append(x, "    <boot dev='hd'/>\n");
    }
    g_string_append(x, "  </os>\n  <features>\n    <acpi/>\n    <apic/>\n  </features>\n");
    add_cpu(x, cfg);
    g_string_append(x, "  <clock offset='utc'/>\n  <devices>\n");
    add_disks(x, cfg);
    add_nets(x, cfg);
    /* --graphics none: the serial port on a pty is the console. */
    g_string_append(x, "    <serial type='pty'>\n      <target port='0'/>\n    </serial>\n");
    if (os->rng)
        g_string_append(x, "    <rng model='virtio'>\n"
                        "      <backend model='random'>/dev/urandom</backend>\n    </rng>\n");
    g_string_append(x, "  </devices>\n</domain>\n");
    return g_string_free(g_steal_pointer(&x), FALSE);
}

char *install_xml_build(const InstallConfig *cfg, GError **error)
{
    g_autofree char *xml = write_xml(cfg);
    g_autoptr(DomainDef) def = domain_def_parse_string(xml, DOMAIN_DEF_PARSE_INACTIVE, error);

    if (!def) {
        g_prefix_error(error, "the domain XML is not valid: ");
        return NULL;
    }
    return domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE);
}
