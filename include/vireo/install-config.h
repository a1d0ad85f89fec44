/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-install: virt-install's options for what Vireo runs, parsed into
 * an InstallConfig (install-opts.c), completed from the OS table
 * (install-osinfo.c), turned into domain XML (install-xml.c) and disk
 * images (install-disk.c). See docs/vireo-install.1.
 *
 * Errors are VIREO_ERROR_INVALID_ARGUMENT with virt-install's wording
 * where it has one ("--name is required").
 */
#ifndef VIREO_INSTALL_CONFIG_H
#define VIREO_INSTALL_CONFIG_H

#include <glib.h>

typedef struct InstallDisk {
    char *path;              /* NULL: generated from the name when size is set */
    guint64 size_bytes;      /* size=, GiB given; 0 = none */
    char *format;            /* "qcow2", "raw"; NULL = detect or qcow2 when created */
    char *bus;               /* "virtio", "sata", "scsi", "ide"; NULL = OS default */
    char *device;            /* "disk" or "cdrom" */
    gboolean readonly;
    guint boot_order;        /* 0 = none */
    gboolean create;         /* the image does not exist yet and must be made */
} InstallDisk;

typedef struct InstallNet {
    char *network;           /* network=NAME */
    char *bridge;            /* bridge=NAME */
    char *model;             /* NULL = OS default */
    char *mac;
} InstallNet;

typedef struct InstallConfig {
    char *connect;           /* -c/--connect; NULL = default */
    char *name;
    char *uuid;
    guint64 memory_mib;      /* 0 = OS default */
    guint64 current_memory_mib; /* currentMemory=; 0 = as memory */
    guint vcpus;             /* 0 = OS default */
    guint max_vcpus;
    guint sockets, cores, threads;
    char *cpu;               /* "host-passthrough", "host-model", a model name */
    char *osinfo;            /* the OS table's id; NULL = "generic" */
    GPtrArray *disks;        /* InstallDisk */
    GPtrArray *nets;         /* InstallNet */
    gboolean no_network;     /* --network none */
    char *cdrom;
    char *kernel, *initrd, *kernel_args;
    gboolean uefi;
    GPtrArray *boot_devs;    /* "hd", "cdrom", "network", "fd" */
    gboolean import;
    char *machine;
    gboolean console;        /* a serial pty console (always added; --console pty) */
    gboolean noautoconsole;
    gboolean print_xml;
    gboolean dry_run;
    gboolean transient;
    gboolean autostart;
    gboolean list_osinfo;    /* --osinfo list */
} InstallConfig;

InstallConfig *install_config_new(void);
void install_config_free(InstallConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(InstallConfig, install_config_free)

/*
 * install-opts.c: parses argv (virt-install's option names and
 * sub-option syntax "key=value,key=value"). --help prints the usage and
 * sets *@exit_now.
 */
InstallConfig *install_opts_parse(int argc, char **argv, gboolean *exit_now, GError **error);

/*
 * Fills what the user left out from the OS table, checks the whole
 * (name, install method, conflicts) and picks disk paths.
 * @image_dir: where size-only disks go (/var/lib/vireo/images).
 */
gboolean install_config_finish(InstallConfig *cfg, const char *image_dir, GError **error);

/* ---- install-osinfo.c: the small table of known OSes ---- */
typedef struct InstallOsInfo {
    const char *id;           /* "debian12" */
    const char *name;         /* "Debian 12" */
    guint memory_mib;
    guint vcpus;
    guint disk_gib;           /* for --disk size= without a size */
    const char *disk_bus;
    const char *net_model;
    gboolean uefi;
    gboolean rng;             /* a virtio-rng device */
} InstallOsInfo;

const InstallOsInfo *install_osinfo_find(const char *id);
const InstallOsInfo *install_osinfo_table(gsize *n);

/* ---- install-xml.c ---- */
/*
 * The domain XML for @cfg, parsed and formatted by daemon/conf (so it is
 * what a define stores, defaults and PCI addresses filled in).
 */
char *install_xml_build(const InstallConfig *cfg, GError **error);

/* ---- install-disk.c ---- */
/* "qcow2" when @path starts with the qcow2 magic, else "raw"; NULL on I/O error. */
char *install_disk_detect_format(const char *path, GError **error);
/* Creates the image of @disk (qcow2 or raw, sparse). */
gboolean install_disk_create(const InstallDisk *disk, GError **error);

#endif /* VIREO_INSTALL_CONFIG_H */
