/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small table of OSes vireo-install knows (--osinfo), with the defaults
 * virt-install would take from libosinfo: memory and vCPUs when not
 * given, the size of a new disk given as plain "size=" less, the disk bus,
 * the network card, firmware and a virtio-rng. The figures follow the
 * distributions' recommended (not minimum) resources.
 */
#include <string.h>

#include "vireo/install-config.h"

static const InstallOsInfo table[] = {
    { "generic", "Generic OS", 1024, 1, 10, "virtio", "virtio", FALSE, FALSE },
    { "linux2022", "Generic Linux 2022", 2048, 2, 20, "virtio", "virtio", FALSE, TRUE },
    { "debian12", "Debian 12", 2048, 2, 20, "virtio", "virtio", FALSE, TRUE },
    { "fedora39", "Fedora Linux 39", 2048, 2, 20, "virtio", "virtio", FALSE, TRUE },
    { "ubuntu22.04", "Ubuntu 22.04 LTS", 2048, 2, 25, "virtio", "virtio", FALSE, TRUE },
    /* Windows has no virtio drivers out of the box: SATA and e1000e. */
    { "win11", "Microsoft Windows 11", 4096, 2, 64, "sata", "e1000e", TRUE, FALSE },
};

/* Other names the same OSes go by in libosinfo. */
static const struct { const char *alias, *id; } aliases[] = {
    { "ubuntujammy", "ubuntu22.04" },
    { "debianbookworm", "debian12" },
    { "linux", "linux2022" },
};

const InstallOsInfo *install_osinfo_find(const char *id)
{
    for (gsize i = 0; i < G_N_ELEMENTS(aliases); i++)
        if (!strcmp(id, aliases[i].alias))
            id = aliases[i].id;
    for (gsize i = 0; i < G_N_ELEMENTS(table); i++)
        if (!strcmp(id, table[i].id))
            return &table[i];
    return NULL;
}

const InstallOsInfo *install_osinfo_table(gsize *n)
{
    *n = G_N_ELEMENTS(table);
    return table;
}
